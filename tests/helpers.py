"""Helpers for tests that run the installed ``mailbot`` command on their own files."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from itertools import count
from pathlib import Path

from tests.mailgen import SERVICE
from tests.servers import ImapAccount, SmtpSink

MAILBOT = Path(sys.executable).parent / "mailbot"
SUPPORT = "suport@localret.example"
PASSWORD_ENV = "MAILBOT_TEST_IMAP_PASSWORD"  # noqa: S105 (a variable name)

_deliveries = count(1)


def run_mailbot(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the installed command in ``cwd`` with a bare environment plus ``env``."""
    return subprocess.run(
        [str(MAILBOT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        check=False,
    )


def maildir_config(
    folder: Path,
    *,
    name: str = "mailbot.toml",
    pool: tuple[str, ...] = ("adv-01",),
    poll_seconds: int = 1,
) -> Path:
    """A configuration reading ``folder/inbox`` and writing ``folder/outbox``."""
    path = folder / name
    licenses = ", ".join(f'"{license}"' for license in pool)
    path.write_text(
        f"""
[service]
address = "{SERVICE}"
support = ["{SUPPORT}"]

[licenses]
pool = [{licenses}]

[maildir]
path = "inbox"
poll_seconds = {poll_seconds}

[outbox]
maildir = "outbox"

[database]
path = "mailbot.sqlite3"
""",
        encoding="utf-8",
    )
    return path


def imap_config(
    folder: Path,
    account: ImapAccount,
    *,
    smtp_host: str,
    smtp_port: int,
    imap_port: int | None = None,
    batch_size: int = 50,
) -> Path:
    """A configuration for a test Dovecot account and an SMTP server on loopback.

    The password is read from :data:`PASSWORD_ENV`.
    """
    path = folder / "mailbot.toml"
    path.write_text(
        f"""
[service]
address = "{SERVICE}"
support = ["{SUPPORT}"]

[licenses]
pool = ["adv-01"]

[imap]
host = "{account.host}"
port = {imap_port or account.port}
tls = "none"
username = "{account.username}"
password_env = "{PASSWORD_ENV}"
connect_timeout = 5
read_timeout = 20
batch_size = {batch_size}
poll_seconds = 60

[smtp]
host = "{smtp_host}"
port = {smtp_port}
tls = "none"
timeout = 10

[database]
path = "mailbot.sqlite3"
""",
        encoding="utf-8",
    )
    return path


def sink_config(folder: Path, account: ImapAccount, sink: SmtpSink) -> Path:
    return imap_config(folder, account, smtp_host=sink.host, smtp_port=sink.port)


def deliver(inbox: Path, data: bytes, *, arrived: datetime) -> Path:
    """Write a message into a Maildir's new/ as a delivery agent would."""
    for sub in ("new", "cur", "tmp"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    seconds = int(arrived.timestamp())
    path = inbox / "new" / f"{seconds}.M{next(_deliveries)}P{os.getpid()}.test"
    path.write_bytes(data)
    os.utime(path, (seconds, seconds))
    return path


def assert_no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert "Traceback" not in done.stdout, done.stdout
