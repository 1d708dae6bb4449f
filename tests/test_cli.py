"""The ``mailbot`` command as an operator types it: help, exit codes, output."""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from mailbot import cli
from mailbot.parsers.nif import valid_nif
from mailbot.store import MIGRATIONS
from tests.helpers import (
    MAILBOT,
    PASSWORD_ENV,
    assert_no_traceback,
    deliver,
    imap_config,
    maildir_config,
    run_mailbot,
    sink_config,
)
from tests.mailgen import entities_csv, outlook_invitation
from tests.servers import ImapAccount, SmtpSink, free_port

README = Path(__file__).parent.parent / "README.md"
BARCELONA = "secretaria@ajbcn.example"


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name))
    return found


COMMANDS = _commands(cli._parser())
LEAVES = [c for c in COMMANDS if c and c not in {("entities",), ("bookings",)}]


def _help_texts(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    texts: dict[str, str | None] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                texts[choice.dest] = choice.help
                texts.update(_help_texts(action.choices[choice.dest]))
    return texts


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_answers_help_with_exit_0(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([*command, "--help"])

    assert 0 == exited.value.code
    assert capsys.readouterr().out.startswith(
        f"usage: {' '.join(('mailbot', *command))}"
    )


def test_every_command_has_a_help_line() -> None:
    texts = _help_texts(cli._parser())

    assert [] == [name for name, text in texts.items() if not text]
    assert {"run", "demo", "check-config", "entities", "bookings"} <= set(texts)


@pytest.mark.parametrize("command", LEAVES, ids=" ".join)
def test_every_command_is_named_in_the_readme(command: tuple[str, ...]) -> None:
    readme = README.read_text(encoding="utf-8")

    assert f"mailbot {' '.join(command)}" in readme


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nonsense"],
        ["entities"],
        ["bookings"],
        ["run", "--forever"],
        ["entities", "import"],
        ["bookings", "list", "--from", "tomorrow"],
        ["bookings", "list", "--to", "2026-02-30"],
    ],
    ids=repr,
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)

    assert 2 == exited.value.code
    assert "usage: mailbot" in capsys.readouterr().err


def test_bad_usage_of_the_installed_command_exits_2_without_traceback(
    tmp_path: Path,
) -> None:
    done = run_mailbot("bookings", "list", "--from", "31/12/2026", cwd=tmp_path)

    assert 2 == done.returncode
    assert "31/12/2026" in done.stderr
    assert_no_traceback(done)


def test_missing_config_exits_2_naming_the_file(tmp_path: Path) -> None:
    done = run_mailbot("check-config", "--offline", cwd=tmp_path)

    assert 2 == done.returncode
    assert "mailbot.toml: file not found" in done.stderr
    assert_no_traceback(done)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (('tls = "none"', 'tls = "sometimes"'), "imap.tls"),
        (("\nport = ", "\nprot = "), "imap.prot"),
        (('pool = ["adv-01"]', "pool = []"), "licenses.pool"),
        (("batch_size = 50", 'batch_size = "many"'), "imap.batch_size"),
        (("[smtp]", "[smtp]\npassword = 'hunter2'"), "smtp.password"),
    ],
    ids=lambda value: value if isinstance(value, str) else value[1],
)
def test_invalid_config_exits_2_naming_the_key_and_the_file(
    tmp_path: Path,
    imap_account: ImapAccount,
    change: tuple[str, str],
    key: str,
) -> None:
    config = imap_config(tmp_path, imap_account, smtp_host="127.0.0.1", smtp_port=25)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(*change, 1), encoding="utf-8")

    done = run_mailbot("run", "--once", "-c", str(config), cwd=tmp_path)

    assert 2 == done.returncode
    assert f"{config}: {key}: " in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert_no_traceback(done)


def test_config_that_is_not_toml_exits_2_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "mailbot.toml"
    config.write_text("[service\naddress = 1\n", encoding="utf-8")

    done = run_mailbot("entities", "list", cwd=tmp_path)

    assert 2 == done.returncode
    assert "mailbot.toml: not valid TOML" in done.stderr
    assert_no_traceback(done)


def test_config_defaults_to_mailbot_toml_in_the_working_directory(
    tmp_path: Path,
) -> None:
    maildir_config(tmp_path)

    done = run_mailbot("check-config", "--offline", cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    assert "configuration: mailbot.toml is valid" in done.stdout


def test_mailbot_config_variable_wins_over_the_working_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "mailbot.toml").write_text("not = [toml\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = maildir_config(elsewhere, name="chosen.toml")

    done = run_mailbot(
        "check-config", "--offline", cwd=tmp_path, env={"MAILBOT_CONFIG": str(config)}
    )

    assert 0 == done.returncode, done.stderr
    assert f"configuration: {config} is valid" in done.stdout


def test_check_config_offline_reports_and_exits_0(tmp_path: Path) -> None:
    config = maildir_config(tmp_path, pool=("adv-01", "adv-02"))

    done = run_mailbot("check-config", "--offline", "-c", str(config), cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    assert "license pool: adv-01, adv-02 (2 licenses)" in done.stdout
    assert f"schema version {len(MIGRATIONS)}," in done.stdout
    assert "connections: not tried (--offline)" in done.stdout
    assert_no_traceback(done)


def test_check_config_reports_both_real_servers_and_exits_0(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = sink_config(tmp_path, imap_account, smtp_sink)

    done = run_mailbot(
        "check-config",
        "-c",
        str(config),
        cwd=tmp_path,
        env={PASSWORD_ENV: imap_account.password},
    )

    assert 0 == done.returncode, done.stderr
    mailbox = f"mailbox: imap {imap_account.username}@127.0.0.1:{imap_account.port}"
    assert f"{mailbox} (none): logged in, 0 messages waiting" in done.stdout
    offers = next(line for line in done.stdout.splitlines() if line.startswith(mailbox))
    assert {"IDLE", "MOVE"} <= set(offers.split("offers ")[1].split())
    replies = f"replies: smtp 127.0.0.1:{smtp_sink.port} (none): answered"
    assert replies in done.stdout
    assert imap_account.password not in done.stdout + done.stderr
    assert [] == smtp_sink.received


def test_check_config_against_a_closed_port_exits_1_without_traceback(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    closed = free_port()
    config = imap_config(
        tmp_path, imap_account, smtp_host=smtp_sink.host, smtp_port=closed
    )

    done = run_mailbot(
        "check-config",
        "-c",
        str(config),
        cwd=tmp_path,
        env={PASSWORD_ENV: imap_account.password},
    )

    assert 1 == done.returncode
    assert f"replies: smtp 127.0.0.1:{closed} (none): FAILED" in done.stdout
    assert "logged in" in done.stdout
    assert imap_account.password not in done.stdout + done.stderr
    assert_no_traceback(done)


def test_check_config_with_a_wrong_password_never_shows_it(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = sink_config(tmp_path, imap_account, smtp_sink)
    wrong = "Wr0ng-Secret-Value"

    done = run_mailbot(
        "check-config", "-c", str(config), cwd=tmp_path, env={PASSWORD_ENV: wrong}
    )

    assert 1 == done.returncode
    assert f"IMAP login as {imap_account.username!r}" in done.stdout
    assert wrong not in done.stdout + done.stderr
    assert_no_traceback(done)


def test_run_once_against_a_closed_imap_port_exits_1_without_traceback(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = imap_config(
        tmp_path,
        imap_account,
        smtp_host=smtp_sink.host,
        smtp_port=smtp_sink.port,
        imap_port=free_port(),
    )

    done = run_mailbot(
        "run",
        "--once",
        "-c",
        str(config),
        cwd=tmp_path,
        env={PASSWORD_ENV: imap_account.password},
    )

    assert 1 == done.returncode
    assert "mailbot: mailbox: cannot connect to the IMAP server" in done.stderr
    assert_no_traceback(done)


def test_unset_password_variable_exits_2_naming_the_key_and_the_file(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = sink_config(tmp_path, imap_account, smtp_sink)

    done = run_mailbot("run", "--once", "-c", str(config), cwd=tmp_path)

    assert 2 == done.returncode
    assert f"{config}: imap.password_env: " in done.stderr


def test_unusable_database_path_exits_2_naming_the_key_without_traceback(
    tmp_path: Path,
) -> None:
    config = maildir_config(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('"mailbot.sqlite3"', '"inbox"'), encoding="utf-8")
    (tmp_path / "inbox").mkdir()

    done = run_mailbot("entities", "list", "-c", str(config), cwd=tmp_path)

    assert 2 == done.returncode
    assert f"{config}: database.path: " in done.stderr
    assert_no_traceback(done)


# -- entities ----------------------------------------------------------------


def _import(tmp_path: Path, text: str) -> tuple[Path, Path]:
    config = maildir_config(tmp_path)
    csv = tmp_path / "entities.csv"
    csv.write_text(text, encoding="utf-8")
    return config, csv


def test_entities_import_then_list_json_gives_the_rows(tmp_path: Path) -> None:
    config, csv = _import(tmp_path, entities_csv())

    imported = run_mailbot(
        "entities", "import", "-c", str(config), str(csv), cwd=tmp_path
    )
    listed = run_mailbot("entities", "list", "-c", str(config), "--json", cwd=tmp_path)

    assert 0 == imported.returncode, imported.stderr
    assert f"{csv}: 2 created, 0 updated, 0 unchanged" in imported.stdout
    assert 0 == listed.returncode, listed.stderr
    expected = [
        {
            "nif": "P0801900B",
            "name": "Ajuntament de Barcelona",
            "email": BARCELONA,
            "senders": [BARCELONA],
            "youtube_channel": "https://www.youtube.com/@ajbcn",
            "channel_agreement": False,
            "language": "ca",
            "status": "active",
            "timezone": "Europe/Madrid",
        },
        {
            "nif": "P2500000A",
            "name": "Consell Comarcal de la Demo",
            "email": "secretaria@ccdemo.example",
            "senders": ["@ccdemo.example", "secretaria@ccdemo.example"],
            "youtube_channel": None,
            "channel_agreement": True,
            "language": "es",
            "status": "active",
            "timezone": "Europe/Madrid",
        },
    ]
    assert expected == json.loads(listed.stdout)


def test_importing_the_same_file_twice_changes_nothing(tmp_path: Path) -> None:
    config, csv = _import(tmp_path, entities_csv())
    first = run_mailbot("entities", "import", "-c", str(config), str(csv), cwd=tmp_path)
    database = tmp_path / "mailbot.sqlite3"
    with sqlite3.connect(database) as conn:
        before = conn.execute("SELECT * FROM entity_changes ORDER BY id").fetchall()

    second = run_mailbot(
        "entities", "import", "-c", str(config), str(csv), cwd=tmp_path
    )

    assert 0 == first.returncode, first.stderr
    assert 0 == second.returncode, second.stderr
    assert f"{csv}: 0 created, 0 updated, 2 unchanged" in second.stdout
    with sqlite3.connect(database) as conn:
        after = conn.execute("SELECT * FROM entity_changes ORDER BY id").fetchall()
    assert before == after
    assert 0 < len(after)


@pytest.mark.parametrize(
    ("text", "where", "complaint"),
    [
        (
            "nif,name,email\nP0801900B,Barcelona,a@ajbcn.example\n"
            "P0801900X,Girona,b@girona.example\n",
            "line 3",
            "'P0801900X' is not a valid NIF",
        ),
        (
            "nif,name,email\nP0801900B,Barcelona,secretaria.ajbcn.example\n",
            "line 2",
            "email: 'secretaria.ajbcn.example'",
        ),
        (
            "nif,name,email,phone\nP0801900B,Barcelona,a@ajbcn.example,93\n",
            "line 1",
            "unknown column 'phone'",
        ),
    ],
    ids=["bad NIF", "bad email", "unknown column"],
)
def test_bad_csv_exits_2_naming_the_file_and_the_line(
    tmp_path: Path, text: str, where: str, complaint: str
) -> None:
    config, csv = _import(tmp_path, text)

    done = run_mailbot("entities", "import", "-c", str(config), str(csv), cwd=tmp_path)

    assert 2 == done.returncode
    assert f"{csv}, {where}: " in done.stderr
    assert complaint in done.stderr
    assert_no_traceback(done)


def test_bad_csv_leaves_the_directory_as_it_was(tmp_path: Path) -> None:
    config, csv = _import(
        tmp_path,
        "nif,name,email\nP0801900B,Barcelona,a@ajbcn.example\n"
        "P0801900X,Girona,b@girona.example\n",
    )

    run_mailbot("entities", "import", "-c", str(config), str(csv), cwd=tmp_path)
    listed = run_mailbot("entities", "list", "-c", str(config), "--json", cwd=tmp_path)

    assert [] == json.loads(listed.stdout)


# -- bookings ----------------------------------------------------------------


def _book_winter_and_summer(tmp_path: Path) -> tuple[Path, int]:
    """Book one meeting in January and one in July of next year with run --once."""
    config, csv = _import(tmp_path, entities_csv())
    imported = run_mailbot(
        "entities", "import", "-c", str(config), str(csv), cwd=tmp_path
    )
    assert 0 == imported.returncode, imported.stderr
    year = datetime.now(UTC).year + 1
    now = datetime.now(UTC)
    deliver(
        tmp_path / "inbox",
        outlook_invitation(
            uid="cli-winter",
            organizer=BARCELONA,
            summary="Ple ordinari de gener",
            description="Ple ordinari. Retransmissió pel canal de YouTube de"
            " l'Ajuntament, amb enregistrament. ID de la reunió: 111 2222 3333."
            " Codi d'accés: 443511",
            start=datetime(year, 1, 15, 18),
            end=datetime(year, 1, 15, 20, 30),
        ),
        arrived=now - timedelta(minutes=2),
    )
    deliver(
        tmp_path / "inbox",
        outlook_invitation(
            uid="cli-summer",
            organizer=BARCELONA,
            summary="Comissió de juliol",
            description="Comissió informativa, uns 20 participants.",
            start=datetime(year, 7, 15, 10),
            end=datetime(year, 7, 15, 11),
        ),
        arrived=now - timedelta(minutes=1),
    )
    done = run_mailbot("run", "--once", "-c", str(config), cwd=tmp_path)
    assert 0 == done.returncode, done.stderr
    return config, year


def _bookings(tmp_path: Path, config: Path, *args: str) -> list[dict[str, object]]:
    done = run_mailbot(
        "bookings", "list", "-c", str(config), "--json", *args, cwd=tmp_path
    )
    assert 0 == done.returncode, done.stderr
    rows = json.loads(done.stdout)
    assert isinstance(rows, list)
    return rows


def test_bookings_list_json_has_the_spec_fields_in_madrid_time(
    tmp_path: Path,
) -> None:
    config, year = _book_winter_and_summer(tmp_path)

    rows = _bookings(tmp_path, config)

    by_uid = {row["uid"]: row for row in rows}
    winter = by_uid["cli-winter"]
    assert isinstance(winter["id"], int)
    assert "P0801900B" == winter["entity"]
    assert "Ple ordinari de gener" == winter["summary"]
    assert f"{year}-01-15T18:00:00+01:00" == winter["start"]
    assert f"{year}-01-15T20:30:00+01:00" == winter["end"]
    assert "adv-01" == winter["license"]
    assert "booked" == winter["status"]
    assert {
        "stream": True,
        "channel": "own",
        "recording": True,
        "support": None,
        "kind": "plenary",
        "participants": None,
        "zoom_id": "11122223333",
        "zoom_code": "443511",
    } == winter["needs"]
    summer = by_uid["cli-summer"]
    assert f"{year}-07-15T10:00:00+02:00" == summer["start"]
    assert f"{year}-07-15T11:00:00+02:00" == summer["end"]
    assert 20 == summer["needs"]["participants"]  # type: ignore[index]


def test_bookings_list_from_and_to_filter_by_meeting_date(tmp_path: Path) -> None:
    config, year = _book_winter_and_summer(tmp_path)

    later = _bookings(tmp_path, config, "--from", f"{year}-06-01")
    earlier = _bookings(tmp_path, config, "--to", f"{year}-02-01")
    between = _bookings(
        tmp_path, config, "--from", f"{year}-01-16", "--to", f"{year}-07-15"
    )
    everything = _bookings(tmp_path, config, "--from", date.today().isoformat())

    assert ["cli-summer"] == [row["uid"] for row in later]
    assert ["cli-winter"] == [row["uid"] for row in earlier]
    assert [] == between
    assert ["cli-winter", "cli-summer"] == [row["uid"] for row in everything]


def test_bookings_list_text_shows_one_line_per_booking(tmp_path: Path) -> None:
    config, year = _book_winter_and_summer(tmp_path)

    done = run_mailbot("bookings", "list", "-c", str(config), cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    lines = done.stdout.splitlines()
    assert 2 == len(lines)
    assert f"{year}-01-15T18:00:00+01:00" in lines[0]
    assert "Ple ordinari de gener" in lines[0]


# -- what a user could send --------------------------------------------------


def test_run_once_files_garbage_empty_and_zero_byte_mail_without_traceback(
    tmp_path: Path,
) -> None:
    config = maildir_config(tmp_path)
    inbox = tmp_path / "inbox"
    now = datetime.now(UTC)
    for data in (
        bytes(range(256)) * 8,
        b"\xff\xfe\x00garbage\r\n\r\n\x80\x81",
        b"",
        b"\r\n",
        b"Subject: nothing\r\n\r\n",
    ):
        deliver(inbox, data, arrived=now)

    done = run_mailbot("run", "--once", "-c", str(config), cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    assert_no_traceback(done)
    assert [] == list((inbox / "new").iterdir()) + list((inbox / "cur").iterdir())
    filed = [p for p in inbox.glob(".*/cur/*")]
    assert 5 == len(filed)
    with sqlite3.connect(tmp_path / "mailbot.sqlite3") as conn:
        decided = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    assert 5 == decided


def test_listing_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    rows = ["nif,name,email,senders,youtube_channel,channel_agreement,language"]
    for number in range(1500):
        base = f"P08{number:05d}"
        nif = next(base + c for c in "ABCDEFGHIJ" if valid_nif(base + c))
        rows.append(f"{nif},Ajuntament número {number},a{number}@x.example,,,no,ca")
    (tmp_path / "many.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = maildir_config(tmp_path)
    imported = run_mailbot(
        "entities", "import", "-c", str(config), "many.csv", cwd=tmp_path
    )
    assert 0 == imported.returncode, imported.stderr

    done = subprocess.run(  # noqa: S602 - the shell's pipe is what is tested
        f"'{MAILBOT}' entities list -c '{config}' --json | head -c 10",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert_no_traceback(done)
    assert "BrokenPipe" not in done.stderr
