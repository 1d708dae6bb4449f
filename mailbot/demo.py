"""``mailbot demo``: the whole job on bundled sample mail, with no server at all.

The samples (mailbot/samples) are dated relative to today, delivered into a
temporary Maildir, and run through the same daemon code as ``mailbot run
--once``; replies are written to a Maildir outbox instead of being sent.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import os
import tempfile
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from importlib import resources
from pathlib import Path
from string import Template
from typing import TextIO
from zoneinfo import ZoneInfo

from mailbot.config import load_config
from mailbot.daemon import Daemon
from mailbot.directory import import_csv
from mailbot.mailbox import maildir_uid
from mailbot.pipeline import Handled
from mailbot.store import Store

MADRID = ZoneInfo("Europe/Madrid")

CONFIG = """\
# The demo's configuration: a Maildir in, a Maildir out, no server.
[service]
address = "localretmeet@webfine.com"
support = ["suport@localret.example"]
language = "ca"

[rules]
min_notice_hours = 24

[licenses]
pool = ["adv-01", "adv-02"]

[maildir]
path = "inbox"

[outbox]
maildir = "outbox"

[database]
path = "mailbot.sqlite3"
"""


def run_demo(*, keep: Path | None, out: TextIO) -> int:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return _run(keep, out)
    with tempfile.TemporaryDirectory(prefix="mailbot-demo-") as folder:
        code = _run(Path(folder), out)
    out.write(f"\n({folder} was removed; `mailbot demo --keep DIR` keeps the files)\n")
    return code


def _run(folder: Path, out: TextIO) -> int:
    now = datetime.now(UTC)
    (folder / "mailbot.toml").write_text(CONFIG, encoding="utf-8")
    config = load_config(folder / "mailbot.toml")
    samples = resources.files("mailbot") / "samples"

    entities = folder / "entities.csv"
    entities.write_bytes((samples / "entities.csv").read_bytes())
    store = Store(config.database)
    import_csv(store, entities, now=now)

    names = _deliver_samples(folder / "inbox", now)
    out.write(f"mailbot demo in {folder}\n")
    out.write(f"{len(names)} messages in the inbox; pool: {', '.join(config.pool)}\n\n")

    def show(result: Handled) -> None:
        name = names.get(result.uid, f"uid {result.uid}")
        out.write(f"  {name:<28} -> {result.outcome}\n")

    daemon = Daemon(
        config, store=store, clock=lambda: datetime.now(UTC), on_handled=show
    )
    report = daemon.run_once()
    store.close()

    replies = sorted((folder / "outbox" / "new").iterdir())
    out.write(
        f"\n{report.handled} messages decided, {len(replies)} replies written to"
        f" {folder / 'outbox'}\n"
    )
    if replies:
        first = email.message_from_bytes(
            replies[0].read_bytes(), policy=email.policy.default
        )
        assert isinstance(first, EmailMessage)
        out.write("\nThe first reply, in full:\n\n")
        out.write(_readable(first))
    return 0


def _deliver_samples(inbox: Path, now: datetime) -> dict[int, str]:
    """Write the samples into the Maildir, oldest first; returns UID -> name."""
    for sub in ("new", "cur", "tmp"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    local_now = now.astimezone(MADRID)
    day = (local_now + timedelta(days=5)).date()
    late = (local_now + timedelta(hours=10)).replace(minute=0, second=0, microsecond=0)
    board_start = datetime(day.year, day.month, day.day, 17, 30, tzinfo=MADRID)
    values = {
        "date": email.utils.format_datetime(now),
        "dtstamp": now.strftime("%Y%m%dT%H%M%SZ"),
        "plenary_day": day.strftime("%Y%m%d"),
        "board_start": board_start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "board_end": (board_start + timedelta(hours=2))
        .astimezone(UTC)
        .strftime("%Y%m%dT%H%M%SZ"),
        "late_start": late.strftime("%Y%m%dT%H%M%S"),
        "late_end": (late + timedelta(hours=1)).strftime("%Y%m%dT%H%M%S"),
    }
    samples = resources.files("mailbot") / "samples"
    sample_names = sorted(
        entry.name for entry in samples.iterdir() if entry.name.endswith(".eml")
    )
    names = {}
    start = int(now.timestamp()) - 60 * len(sample_names)
    for number, name in enumerate(sample_names):
        text = Template((samples / name).read_text(encoding="utf-8"))
        data = text.safe_substitute(values).encode("utf-8")
        arrived = start + 60 * number
        file_name = f"{arrived}.M{number}P0.mailbot-demo"
        path = inbox / "new" / file_name
        path.write_bytes(data)
        os.utime(path, (arrived, arrived))
        names[maildir_uid(file_name)] = name
    return names


def _readable(message: EmailMessage) -> str:
    lines = [
        f"{header}: {message[header]}"
        for header in (
            "From",
            "To",
            "Cc",
            "Subject",
            "X-Mailbot-Outcome",
            "X-Mailbot-Booking",
        )
        if message[header]
    ]
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if isinstance(body, EmailMessage) else ""
    return "\n".join(lines) + "\n\n" + text.rstrip() + "\n"
