"""The ``mailbot`` command: argument parsing and the commands; no logic of its own.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad configuration.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from mailbot import directory
from mailbot.config import Config, default_config_path, load_config
from mailbot.errors import ConfigError, MailbotError, MailboxError
from mailbot.store import Store

log = logging.getLogger("mailbot")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _logging(args.verbose)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print(f"mailbot: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except directory.DirectoryError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MailbotError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:
        # The reader went away (`mailbot bookings list | head`): not a failure.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbot",
        description="E-mail-driven booking robot for the shared videoconference"
        " license pool.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log protocol detail (DEBUG)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "-c",
            "--config",
            type=Path,
            default=None,
            help="configuration file (default: $MAILBOT_CONFIG, then ./mailbot.toml)",
        )
        return sub

    run = with_config(
        commands.add_parser("run", help="read the mailbox and answer, until stopped")
    )
    run.add_argument(
        "--once",
        action="store_true",
        help="drain the inbox, send replies, exit (1 if the mailbox cannot be read)",
    )
    run.set_defaults(func=cmd_run)

    demo = commands.add_parser(
        "demo", help="the whole job on bundled sample mail, no server needed"
    )
    demo.add_argument(
        "--keep", type=Path, default=None, help="keep the demo's files in this folder"
    )
    demo.set_defaults(func=cmd_demo)

    check = with_config(
        commands.add_parser("check-config", help="validate, connect and report")
    )
    check.add_argument(
        "--offline", action="store_true", help="only validate, connect to nothing"
    )
    check.set_defaults(func=cmd_check_config)

    entities = commands.add_parser("entities", help="the entity directory")
    entity_commands = entities.add_subparsers(
        dest="entities_command", required=True, metavar="ACTION"
    )
    imp = with_config(
        entity_commands.add_parser("import", help="load entities from a CSV file")
    )
    imp.add_argument("file", type=Path, metavar="FILE.csv")
    imp.set_defaults(func=cmd_entities_import)
    lst = with_config(entity_commands.add_parser("list", help="list the entities"))
    lst.add_argument("--json", action="store_true", help="one JSON document")
    lst.set_defaults(func=cmd_entities_list)

    confirm = with_config(
        entity_commands.add_parser(
            "confirm", help="confirm a registration request: the entity may book"
        )
    )
    confirm.add_argument("nif", metavar="NIF")
    confirm.set_defaults(func=cmd_entities_confirm)
    reject = with_config(
        entity_commands.add_parser("reject", help="reject a registration request")
    )
    reject.add_argument("nif", metavar="NIF")
    reject.add_argument(
        "--reason", required=True, help="why, in words the entity will read"
    )
    reject.set_defaults(func=cmd_entities_reject)

    bookings = commands.add_parser("bookings", help="the bookings")
    booking_commands = bookings.add_subparsers(
        dest="bookings_command", required=True, metavar="ACTION"
    )
    blist = with_config(booking_commands.add_parser("list", help="list bookings"))
    blist.add_argument("--json", action="store_true", help="one JSON document")
    blist.add_argument(
        "--from", dest="start", type=_date, help="meetings ending on or after DATE"
    )
    blist.add_argument(
        "--to", dest="end", type=_date, help="meetings starting before DATE"
    )
    blist.set_defaults(func=cmd_bookings_list)
    return parser


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD)"
        ) from None


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        for noisy in ("imapclient", "mail.log", "aiosmtplib", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config or default_config_path())


def _store(config: Config) -> Store:
    """Open the database, or fail as bad configuration naming ``database.path``."""
    try:
        return Store(config.database)
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(
            f"{config.database} cannot be opened as a database: {exc}",
            key="database.path",
            path=str(config.path),
        ) from None


def cmd_run(args: argparse.Namespace) -> int:
    from mailbot.daemon import Daemon, Stopper

    config = _config(args)
    store = _store(config)
    stopper = Stopper()
    daemon = Daemon(config, store=store, stopper=stopper)
    try:
        with stopper.installed():
            report = daemon.run_once() if args.once else daemon.run_forever()
    except MailboxError as exc:
        print(f"mailbot: mailbox: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        store.close()
    summary = ", ".join(f"{n} {k}" for k, n in sorted(report.outcomes.items()))
    log.info("handled %d messages%s", report.handled, f": {summary}" if summary else "")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from mailbot.demo import run_demo

    if not args.verbose:
        # The demo prints its own line per message; the log would repeat it.
        logging.getLogger("mailbot").setLevel(logging.WARNING)
    return run_demo(keep=args.keep, out=sys.stdout)


def cmd_check_config(args: argparse.Namespace) -> int:
    from mailbot.checks import check_config

    config = _config(args)
    return check_config(config, online=not args.offline, out=sys.stdout)


def cmd_entities_import(args: argparse.Namespace) -> int:
    config = _config(args)
    store = _store(config)
    try:
        report = directory.import_csv(store, args.file, now=datetime.now(UTC))
    finally:
        store.close()
    print(
        f"{args.file}: {report.created} created, {report.updated} updated,"
        f" {report.unchanged} unchanged"
    )
    return EXIT_OK


def cmd_entities_list(args: argparse.Namespace) -> int:
    config = _config(args)
    store = _store(config)
    try:
        entities = store.entities()
    finally:
        store.close()
    rows = [directory.entity_dict(e) for e in entities]
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return EXIT_OK
    for row in rows:
        print(
            f"{row['nif']:<10} {row['status']:<8} {row['language']}  {row['name']}"
            f"  <{row['email']}>"
        )
    return EXIT_OK


def cmd_entities_confirm(args: argparse.Namespace) -> int:
    config = _config(args)
    store = Store(config.database)
    try:
        entity = directory.confirm_registration(
            store, config, args.nif, by=_operator(), now=datetime.now(UTC)
        )
        print(f"{entity.nif} {entity.name}: confirmed; it may book from now on")
        _deliver_now(config, store)
    finally:
        store.close()
    return EXIT_OK


def cmd_entities_reject(args: argparse.Namespace) -> int:
    config = _config(args)
    store = Store(config.database)
    try:
        directory.reject_registration(
            store,
            config,
            args.nif,
            by=_operator(),
            reason=args.reason,
            now=datetime.now(UTC),
        )
        print(f"{args.nif}: registration rejected")
        _deliver_now(config, store)
    finally:
        store.close()
    return EXIT_OK


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _deliver_now(config: Config, store: Store) -> None:
    """Send the answer now if the transport is reachable; else the daemon will."""
    from mailbot.actions.delivery import Support, deliver_due
    from mailbot.actions.outbox import open_transport

    transport = open_transport(config.transport)
    attempts = getattr(config.transport, "max_attempts", 1)
    try:
        report = deliver_due(
            store,
            transport,
            now=lambda: datetime.now(UTC),
            max_attempts=attempts,
            support=Support.from_config(config),
        )
    finally:
        transport.close()
    if report.deferred:
        print("the answer to the entity could not be sent yet; `mailbot run` will")


def cmd_bookings_list(args: argparse.Namespace) -> int:
    config = _config(args)
    zone = ZoneInfo(config.service.timezone)
    start = datetime.combine(args.start, time(), zone) if args.start else None
    end = datetime.combine(args.end, time(), zone) if args.end else None
    store = _store(config)
    try:
        rows = [
            _booking_json(row, zone)
            for row in store.bookings_listing(start=start, end=end)
        ]
    finally:
        store.close()
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return EXIT_OK
    for row in rows:
        when = f"{row['start'] or '?'} - {row['end'] or '?'}"
        print(
            f"#{row['id']:<5} {row['status']:<10} {row['entity'] or '-':<10}"
            f" {when}  {row['license'] or '-':<8} {row['summary']}"
        )
    return EXIT_OK


def _booking_json(row: dict[str, object], zone: ZoneInfo) -> dict[str, object]:
    def local(text: object) -> str | None:
        if not isinstance(text, str):
            return None
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return moment.astimezone(zone).isoformat()

    occurrences = row["occurrences"]
    assert isinstance(occurrences, list)
    live = [o for o in occurrences if o["status"] != "cancelled"] or occurrences
    first = live[0] if live else {}
    needs = row["needs"]
    result: dict[str, object] = {
        "id": row["id"],
        "uid": row["uid"],
        "entity": row["entity"],
        "summary": row["summary"],
        "start": local(first.get("start")),
        "end": local(first.get("end")),
        "license": first.get("license"),
        "status": row["status"],
        "needs": json.loads(needs) if isinstance(needs, str) else {},
        "sequence": row["sequence"],
        "organizer": row["organizer"],
    }
    if row["recurring"] or len(occurrences) > 1:
        result["occurrences"] = [
            {
                "start": local(o["start"]),
                "end": local(o["end"]),
                "license": o["license"],
                "status": o["status"],
            }
            for o in occurrences
        ]
    return result


if __name__ == "__main__":
    sys.exit(main())
