"""Shared pieces of the benchmark: servers, configuration, timed subprocesses."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.workload import POOL, Mail
from tests.mailgen import SERVICE
from tests.servers import ImapAccount, ReceivedMail, SmtpSink

PYTHON = Path(sys.executable)
MAILBOT = PYTHON.parent / "mailbot"
PASSWORD_ENV = "BENCH_IMAP_PASSWORD"  # noqa: S105 (a variable name, no secret)
TIME = shutil.which("time", path="/usr/bin:/bin")
APPEND_CHUNK = 200
_MAX_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
_CPU = re.compile(r"(?:User|System) time \(seconds\): ([\d.]+)")


@dataclass(frozen=True, slots=True)
class Timed:
    """A finished subprocess: its output, wall time and peak RSS (KiB)."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_kib: int
    cpu_seconds: float  # user + system, as /usr/bin/time reports; 0 without it


class StampedSink(SmtpSink):
    """The test SMTP sink, noting when (time.monotonic) each message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, ReceivedMail]] = []

    def _record(self, mail: ReceivedMail) -> None:
        self.arrivals.append((time.monotonic(), mail))
        super()._record(mail)


def write_config(
    folder: Path, account: ImapAccount, sink: SmtpSink, *, pool: Sequence[str] = POOL
) -> Path:
    """A configuration for one Dovecot account and the sink, all on loopback."""
    licenses = ", ".join(f'"{name}"' for name in pool)
    path = folder / "mailbot.toml"
    path.write_text(
        f"""
[service]
address = "{SERVICE}"
support = ["suport@localret.example"]
daily_reply_cap = 1000

[licenses]
pool = [{licenses}]

[imap]
host = "{account.host}"
port = {account.port}
tls = "none"
username = "{account.username}"
password_env = "{PASSWORD_ENV}"
connect_timeout = 5
read_timeout = 60

[smtp]
host = "{sink.host}"
port = {sink.port}
tls = "none"
timeout = 30

[database]
path = "{folder / "mailbot.sqlite3"}"
""",
        encoding="utf-8",
    )
    return path


def append_all(
    account: ImapAccount, mails: Sequence[Mail], *, arrived: datetime
) -> None:
    """Put ``mails`` in the INBOX with MULTIAPPEND, in chunks, in their order."""
    with account.client() as client:
        for start in range(0, len(mails), APPEND_CHUNK):
            chunk = mails[start : start + APPEND_CHUNK]
            client.multiappend(
                "INBOX", [{"msg": mail.data, "date": arrived} for mail in chunk]
            )


def timed(command: Sequence[str], *, env: dict[str, str], cwd: Path) -> Timed:
    """Run ``command`` under /usr/bin/time -v when present, for its peak RSS."""
    report = cwd / "time.txt"
    prefix = [TIME, "-v", "-o", str(report)] if TIME else []
    started = time.monotonic()
    done = subprocess.run(
        [*prefix, *command],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    seconds = time.monotonic() - started
    rss, cpu = 0, 0.0
    if TIME:
        text = report.read_text()
        match = _MAX_RSS.search(text)
        rss = int(match.group(1)) if match else 0
        cpu = sum(float(value) for value in _CPU.findall(text))
    return Timed(done.returncode, done.stdout, done.stderr, seconds, rss, cpu)


def mailbot(*args: str, config: Path, account: ImapAccount) -> Timed:
    """Run the installed ``mailbot`` command with the account's password."""
    return timed(
        [str(MAILBOT), *args, "-c", str(config)],
        env={PASSWORD_ENV: account.password},
        cwd=config.parent,
    )
