"""``mailbot run`` as a process: IDLE, polling, and stopping on SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest

from tests.helpers import (
    MAILBOT,
    PASSWORD_ENV,
    assert_no_traceback,
    deliver,
    imap_config,
    maildir_config,
)
from tests.mailgen import outlook_invitation
from tests.servers import ImapAccount, SmtpSink

pytestmark = pytest.mark.integration

READ_TIMEOUT = 20  # imap.read_timeout in tests.helpers.imap_config


def invitation(number: int) -> bytes:
    """An invitation from an unregistered council: cheap to decide, one reply."""
    day = datetime.now(UTC) + timedelta(days=20)
    start = datetime(day.year, day.month, day.day, 10)
    return outlook_invitation(
        uid=f"daemon-{number}",
        organizer=f"alcaldia{number}@unknown.example",
        summary=f"Ple {number}",
        description="Ple ordinari",
        start=start,
        end=start + timedelta(hours=1),
    )


def message_id(data: bytes) -> str:
    return str(message_from_bytes(data)["Message-ID"]).strip().strip("<>")


class Running:
    """``mailbot run`` in the background, stopped and reaped at the end."""

    def __init__(self, config: Path, *, env: dict[str, str]) -> None:
        self.stderr = config.parent / "mailbot.stderr"
        with self.stderr.open("w") as stderr:
            self.process = subprocess.Popen(
                [str(MAILBOT), "run", "-c", str(config)],
                cwd=config.parent,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={"PATH": "/usr/bin:/bin", **env},
            )

    def stop(self, signum: int, *, within: float = 10.0) -> tuple[int, float]:
        """Send ``signum``; return the exit code and the seconds it took."""
        began = time.monotonic()
        self.process.send_signal(signum)
        code = self.process.wait(within)
        return code, time.monotonic() - began

    def output(self) -> subprocess.CompletedProcess[str]:
        text = self.stderr.read_text(encoding="utf-8")
        return subprocess.CompletedProcess([], self.process.returncode, "", text)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def started(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> Iterator[Running]:
    """The daemon on a real Dovecot and aiosmtpd, waiting in IDLE on an empty inbox."""
    config = imap_config(
        tmp_path, imap_account, smtp_host=smtp_sink.host, smtp_port=smtp_sink.port
    )
    running = Running(config, env={PASSWORD_ENV: imap_account.password})
    try:
        _wait_until_idle(imap_account, running)
        yield running
    finally:
        running.close()


def _wait_until_idle(account: ImapAccount, running: Running) -> None:
    """The daemon created its folders, and had time to enter IDLE."""
    deadline = time.monotonic() + 15
    while "Processed" not in account.folders():
        assert running.process.poll() is None, running.output().stderr
        assert time.monotonic() < deadline, "the daemon never opened the mailbox"
        time.sleep(0.1)
    time.sleep(1.0)


def test_a_message_arriving_during_idle_is_answered_within_seconds(
    started: Running, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    data = invitation(1)
    began = time.monotonic()

    imap_account.append("INBOX", data, arrived=datetime.now(UTC))
    [reply] = smtp_sink.wait_for(1, timeout=10)
    took = time.monotonic() - began

    assert took < 5, "poll_seconds is 60: only IDLE answers this fast"
    assert f"<{message_id(data)}>" == str(reply.message["In-Reply-To"]).strip()
    assert "unregistered" == reply.message["X-Mailbot-Outcome"]
    code, _ = started.stop(signal.SIGTERM)
    assert 0 == code


SIGNALS = [signal.SIGTERM, signal.SIGINT]


@pytest.mark.parametrize("signum", SIGNALS, ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_idle_exits_0(started: Running, signum: int) -> None:
    code, _ = started.stop(signum, within=READ_TIMEOUT + 10)

    assert 0 == code
    assert_no_traceback(started.output())


@pytest.mark.parametrize("signum", SIGNALS, ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_idle_exits_within_seconds(
    started: Running, signum: int
) -> None:
    code, took = started.stop(signum, within=READ_TIMEOUT + 10)

    assert 0 == code
    assert took < 5


def test_sigterm_during_a_backlog_finishes_the_message_in_hand(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    total = 40
    for number in range(total):
        imap_account.append("INBOX", invitation(number), arrived=datetime.now(UTC))
    config = imap_config(
        tmp_path,
        imap_account,
        smtp_host=smtp_sink.host,
        smtp_port=smtp_sink.port,
        batch_size=1,
    )
    running = Running(config, env={PASSWORD_ENV: imap_account.password})
    try:
        smtp_sink.wait_for(1, timeout=20)
        code, _ = running.stop(signal.SIGTERM, within=20)
    finally:
        running.close()

    assert 0 == code
    assert_no_traceback(running.output())
    processed = {message_id(m) for m in imap_account.messages("Processed")}
    waiting = {message_id(m) for m in imap_account.messages("INBOX")}
    assert 0 < len(processed) < total
    assert total == len(processed | waiting)
    with sqlite3.connect(tmp_path / "mailbot.sqlite3") as conn:
        decided = {
            row[0]
            for row in conn.execute(
                "SELECT m.message_id FROM messages m JOIN decisions d"
                " ON d.message = m.id"
            )
        }
        unsent = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE status != 'sent'"
        ).fetchone()[0]
    assert processed == decided
    assert 0 == unsent
    answered = {
        str(mail.message["In-Reply-To"]).strip().strip("<>")
        for mail in smtp_sink.received
    }
    assert processed == answered


def test_with_a_maildir_the_daemon_polls(tmp_path: Path) -> None:
    config = maildir_config(tmp_path, poll_seconds=1)
    running = Running(config, env={})
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "mailbot.sqlite3").exists():
            assert running.process.poll() is None, running.output().stderr
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.5)
        deliver(tmp_path / "inbox", invitation(7), arrived=datetime.now(UTC))

        replies = tmp_path / "outbox" / "new"
        deadline = time.monotonic() + 10
        while not (replies.exists() and any(replies.iterdir())):
            assert time.monotonic() < deadline, running.output().stderr
            time.sleep(0.2)
        code, _ = running.stop(signal.SIGTERM)
    finally:
        running.close()

    assert 0 == code
    [reply] = list(replies.iterdir())
    assert b"X-Mailbot-Outcome: unregistered" in reply.read_bytes()
    assert [] == list((tmp_path / "inbox" / "new").iterdir())
