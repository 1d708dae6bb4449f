"""Outages: IMAP sessions that end or die, Dovecot restarts, SMTP 4xx and 5xx."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlite_utils

from mailbot.actions.delivery import (
    FAILURE_NOTICE,
    Support,
    deliver_due,
    retry_delay,
)
from mailbot.actions.outbox import SmtpTransport
from mailbot.config import SmtpConfig, load_config
from mailbot.daemon import Daemon, reconnect_delay
from mailbot.store import Store
from tests.mailgen import SERVICE, entities_csv, google_invitation
from tests.servers import DovecotServer, ImapAccount, ReceivedMail, SmtpSink

MAILBOT = Path(sys.executable).parent / "mailbot"
SUPPORT = "suport@localret.example"
ORGANIZER = "tecnic@ccdemo.example"
PASSWORD_ENV = "MAILBOT_TEST_IMAP_PASSWORD"  # noqa: S105 - a variable name


# Pure logic


def test_reconnect_delay_doubles_from_two_seconds() -> None:
    delays = [reconnect_delay(n, rand=lambda: 0.5) for n in range(1, 6)]

    assert [2.0, 4.0, 8.0, 16.0, 32.0] == delays


def test_reconnect_delay_is_capped_at_five_minutes_before_jitter() -> None:
    assert 300.0 == reconnect_delay(40, rand=lambda: 0.5)


def test_reconnect_delay_jitter_spans_half_to_one_and_a_half_times() -> None:
    low = reconnect_delay(3, rand=lambda: 0.0)
    high = reconnect_delay(3, rand=lambda: 0.999)

    assert (4.0, True) == (low, 11.9 < high < 12.0)


def test_retry_delay_starts_from_the_first_retry_given() -> None:
    delay = retry_delay(1, first=timedelta(seconds=4), rand=lambda: 0.5)

    assert timedelta(seconds=4) == delay


# Servers and the running daemon


@pytest.fixture(scope="module")
def server() -> Iterator[DovecotServer]:
    """A Dovecot of this module's own, so stopping it disturbs no other test.

    It logs every IMAP command as it finishes: the log shows IDLE renewals.
    """
    dovecot = DovecotServer()
    with dovecot.config_path.open("a", encoding="utf-8") as config:
        config.write("log_debug = event=imap_command_finished\n")
    with dovecot:
        yield dovecot


@pytest.fixture
def account(server: DovecotServer) -> ImapAccount:
    return server.new_account()


def write_config(
    tmp_path: Path,
    account: ImapAccount,
    sink: SmtpSink,
    *,
    folder: str = "INBOX",
    idle_seconds: int = 60,
    read_timeout: float = 10.0,
) -> Path:
    config = tmp_path / "mailbot.toml"
    config.write_text(
        f"""
[service]
address = "{SERVICE}"
support = ["{SUPPORT}"]

[licenses]
pool = ["adv-01", "adv-02"]

[imap]
host = "{account.host}"
port = {account.port}
tls = "none"
username = "{account.username}"
password_env = "{PASSWORD_ENV}"
folder = "{folder}"
connect_timeout = 2
read_timeout = {read_timeout}
idle_seconds = {idle_seconds}

[smtp]
host = "{sink.host}"
port = {sink.port}
tls = "none"
timeout = 5

[database]
path = "{tmp_path / "mailbot.sqlite3"}"
""",
        encoding="utf-8",
    )
    csv = tmp_path / "entities.csv"
    csv.write_text(entities_csv(), encoding="utf-8")
    imported = mailbot(config, account, "entities", "import", str(csv))
    assert 0 == imported.returncode, imported.stderr
    return config


def environment(account: ImapAccount) -> dict[str, str]:
    return {PASSWORD_ENV: account.password, "PATH": "/usr/bin:/bin"}


def mailbot(
    config: Path, account: ImapAccount, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MAILBOT), *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(account),
        check=False,
    )


class Running:
    """``mailbot run`` as a subprocess, its log written to a file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def running(config: Path, account: ImapAccount) -> Iterator[Running]:
    log = config.parent / "mailbot.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [str(MAILBOT), "run", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            env=environment(account),
        )
    try:
        yield Running(process, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def eventually(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.1)


def invitation(number: int, *, days: int = 10) -> tuple[bytes, str]:
    """An invitation from a registered entity, and its Message-ID."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    start = start.replace(hour=8 + number % 10, minute=0, second=0)
    data = google_invitation(
        uid=f"outage-{number}-{time.time_ns()}@google.com",
        organizer=ORGANIZER,
        summary=f"Junta de Govern {number}",
        description="Junta de Govern",
        start=start,
        end=start + timedelta(hours=1),
    )
    message_id = next(
        line.split(b":", 1)[1].strip().decode()
        for line in data.splitlines()
        if line.lower().startswith(b"message-id:")
    )
    return data, message_id


def deliver(account: ImapAccount, data: bytes, *, folder: str = "INBOX") -> None:
    account.append(folder, data, arrived=datetime.now(UTC) - timedelta(minutes=5))


def replies_to(received: list[ReceivedMail], message_id: str) -> list[EmailMessage]:
    return [
        mail.message
        for mail in received
        if str(mail.message["In-Reply-To"]).strip() == message_id
    ]


def replied(sink: SmtpSink, message_id: str) -> Callable[[], bool]:
    return lambda: bool(replies_to(sink.received, message_id))


def imap_pids(server: DovecotServer, username: str) -> list[int]:
    who = server.doveadm("who", "-1", username, check=False).stdout.splitlines()
    return [int(line.split()[2]) for line in who[1:] if line.strip()]


def stop_like_systemd(server: DovecotServer, username: str) -> None:
    """Stop Dovecot and signal its sessions too, as ``systemctl stop`` does.

    Dovecot's master alone leaves a session in IDLE running for about 20 s
    after it exits, longer than DovecotServer.stop waits for its children.
    """
    sessions = imap_pids(server, username)
    stopping = threading.Thread(target=server.stop)
    stopping.start()
    time.sleep(0.2)
    for pid in sessions:
        os.kill(pid, signal.SIGTERM)
    stopping.join()


def idle_commands(server: DovecotServer, username: str) -> int:
    text = server.log_path.read_text(encoding="utf-8", errors="replace")
    return sum(
        1
        for line in text.splitlines()
        if f"imap({username})<" in line and "Command finished: IDLE" in line
    )


def outbox(tmp_path: Path) -> list[dict[str, object]]:
    db = sqlite_utils.Database(tmp_path / "mailbot.sqlite3")
    return list(
        db.query(
            "SELECT id, decision, kind, recipients, subject, status, attempts"
            " FROM outbox ORDER BY id"
        )
    )


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


# IMAP outages


@pytest.mark.integration
def test_daemon_goes_on_after_dovecot_is_stopped_and_started_again(
    tmp_path: Path, server: DovecotServer, account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = write_config(tmp_path, account, smtp_sink)
    first, first_id = invitation(1)
    second, second_id = invitation(2)

    with running(config, account) as daemon:
        deliver(account, first)
        eventually(replied(smtp_sink, first_id), timeout=10, what="first reply")
        stop_like_systemd(server, account.username)
        time.sleep(2)
        server.start()
        deliver(account, second)
        eventually(replied(smtp_sink, second_id), timeout=20, what="second reply")
        still_running = daemon.process.poll() is None
    log = daemon.text()

    assert_no_traceback(log)
    assert (True, True) == (still_running, "WARNING mailbot.daemon: mailbox:" in log)
    assert [] == account.messages("INBOX")


@pytest.mark.integration
def test_daemon_kicked_during_idle_connects_again_and_goes_on(
    tmp_path: Path, server: DovecotServer, account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = write_config(tmp_path, account, smtp_sink)
    message, message_id = invitation(3)

    with running(config, account) as daemon:
        eventually(
            lambda: (
                idle_commands(server, account.username) > 0
                or bool(imap_pids(server, account.username))
            ),
            timeout=10,
            what="an IMAP session",
        )
        time.sleep(1)  # in IDLE by now
        server.kick(account.username)
        eventually(
            lambda: "ended the session" in daemon.text(), timeout=10, what="the kick"
        )
        deliver(account, message)
        eventually(replied(smtp_sink, message_id), timeout=15, what="the reply")
        still_running = daemon.process.poll() is None
    log = daemon.text()

    assert_no_traceback(log)
    assert (True, True) == (still_running, "reconnecting in" in log)


@pytest.mark.integration
def test_daemon_notices_a_silently_dead_session_during_idle_and_reconnects(
    tmp_path: Path, server: DovecotServer, account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    # SIGSTOP freezes the session's imap process: the socket stays open, the
    # kernel still acknowledges, and nothing is ever answered.
    config = write_config(tmp_path, account, smtp_sink, read_timeout=2)
    message, message_id = invitation(4)

    with running(config, account) as daemon:
        eventually(
            lambda: bool(imap_pids(server, account.username)),
            timeout=10,
            what="an IMAP session",
        )
        time.sleep(1)
        frozen = imap_pids(server, account.username)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            eventually(
                lambda: "reconnecting in" in daemon.text(),
                timeout=15,
                what="the dead session noticed",
            )
            noticed = time.monotonic() - stopped
            deliver(account, message)
            eventually(replied(smtp_sink, message_id), timeout=15, what="the reply")
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGKILL)
                os.kill(pid, signal.SIGCONT)
    log = daemon.text()

    assert_no_traceback(log)
    # read_timeout of silence, then read_timeout for the answer to DONE.
    assert noticed < 2 * 2 + 3, log


@pytest.mark.integration
def test_daemon_renews_idle_within_idle_seconds(
    tmp_path: Path, server: DovecotServer, account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = write_config(tmp_path, account, smtp_sink, idle_seconds=1)

    with running(config, account):
        eventually(
            lambda: bool(imap_pids(server, account.username)),
            timeout=10,
            what="an IMAP session",
        )
        started = time.monotonic()
        before = idle_commands(server, account.username)
        time.sleep(4.5)
        renewed = idle_commands(server, account.username) - before
        elapsed = time.monotonic() - started

    # One IDLE a second at most, plus the NOOP and SEARCH between two.
    assert True is (3 <= renewed <= elapsed + 1), renewed


@pytest.mark.integration
def test_uidvalidity_change_gives_no_second_decision_or_reply(
    tmp_path: Path, server: DovecotServer, account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    folder = "Entrada"
    config = write_config(tmp_path, account, smtp_sink, folder=folder)
    old, old_id = invitation(5)
    new, new_id = invitation(6)
    deliver(account, old, folder=folder)
    first = mailbot(config, account, "run", "--once")
    assert 0 == first.returncode, first.stderr
    with account.client() as client:
        before = client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"]

    # The folder is deleted and made again (a restore from a backup): the
    # decided message comes back under a new UIDVALIDITY and the same UID.
    time.sleep(1.1)
    server.doveadm("mailbox", "delete", "-u", account.username, folder)
    server.doveadm("mailbox", "create", "-u", account.username, folder)
    deliver(account, old, folder=folder)
    deliver(account, new, folder=folder)
    with account.client() as client:
        after = client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"]
    second = mailbot(config, account, "run", "--once")

    assert 0 == second.returncode, second.stderr
    assert before != after
    assert "UIDVALIDITY of Entrada changed" in second.stderr
    received = smtp_sink.wait_for(2)
    time.sleep(0.5)
    assert (1, 1, 2) == (
        len(replies_to(received, old_id)),
        len(replies_to(received, new_id)),
        len(smtp_sink.received),
    )
    db = sqlite_utils.Database(tmp_path / "mailbot.sqlite3")
    outcomes = [
        row["outcome"]
        for row in db.query(
            "SELECT d.outcome FROM decisions d JOIN messages m ON m.id = d.message"
            " WHERE m.message_id = ? ORDER BY d.id",
            [old_id.strip("<>")],
        )
    ]
    assert ["booked", "duplicate"] == outcomes
    assert 2 == db.execute("SELECT COUNT(*) FROM bookings").fetchone()[0]


# SMTP outages


@pytest.mark.integration
def test_run_once_with_the_smtp_server_down_files_everything_and_exits_0(
    tmp_path: Path, account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = write_config(tmp_path, account, smtp_sink)
    message, _ = invitation(7)
    deliver(account, message)
    smtp_sink.stop()

    done = mailbot(config, account, "run", "--once")

    assert_no_traceback(done.stderr)
    assert 0 == done.returncode, done.stderr
    assert [] == account.messages("INBOX")
    assert 1 == len(account.messages("Processed"))
    assert [("reply", "queued", 1)] == [
        (row["kind"], row["status"], row["attempts"]) for row in outbox(tmp_path)
    ]


@pytest.mark.integration
def test_run_once_sends_the_replies_an_earlier_run_could_not_send(
    tmp_path: Path, account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = write_config(tmp_path, account, smtp_sink)
    message, message_id = invitation(8)
    deliver(account, message)
    smtp_sink.stop()
    mailbot(config, account, "run", "--once")
    smtp_sink.start()

    done = mailbot(config, account, "run", "--once")

    assert 0 == done.returncode, done.stderr
    assert 1 == len(replies_to(smtp_sink.wait_for(1), message_id))
    assert [("sent", 2)] == [
        (row["status"], row["attempts"]) for row in outbox(tmp_path)
    ]


@pytest.mark.integration
def test_smtp_4xx_reply_is_retried_when_due_while_later_mail_is_answered(
    tmp_path: Path,
    server: DovecotServer,
    account: ImapAccount,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # In-process, to make the first retry come after 2.5 to 7.5 s instead of
    # 15 to 45 s; IDLE lasts up to 60 s, so only the due retry wakes the loop.
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    config = load_config(write_config(tmp_path, account, smtp_sink))
    store = Store(config.database)
    daemon = Daemon(config, store=store, first_retry=timedelta(seconds=5))
    deferred, deferred_id = invitation(9)
    later, later_id = invitation(10)
    smtp_sink.fail_next(451, "4.3.0 Try again later")
    caplog.set_level(logging.INFO)

    received: list[ReceivedMail] = []

    def mail_and_stop() -> None:
        # Runs beside the daemon, which has the main thread for its signals.
        try:
            deliver(account, deferred)
            eventually(
                lambda: "deferred (attempt 1" in caplog.text,
                timeout=10,
                what="the deferral",
            )
            deliver(account, later)
            received.extend(smtp_sink.wait_for(2, timeout=15))
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=mail_and_stop)
    helper.start()
    try:
        with daemon.stopper.installed():
            daemon.run_forever()
    finally:
        helper.join()
        store.close()

    assert [later_id, deferred_id] == [
        str(mail.message["In-Reply-To"]).strip() for mail in received
    ]
    assert [] == account.messages("INBOX")
    assert [("sent", 2), ("sent", 1)] == [
        (row["status"], row["attempts"]) for row in outbox(tmp_path)
    ]


@pytest.mark.integration
def test_smtp_5xx_reply_fails_support_is_told_and_later_replies_go_out(
    tmp_path: Path, account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = write_config(tmp_path, account, smtp_sink)
    refused, refused_id = invitation(11)
    later, later_id = invitation(12)
    smtp_sink.fail_next(550, "5.1.1 Mailbox unavailable")

    with running(config, account) as daemon:
        deliver(account, refused)
        notice = smtp_sink.wait_for(1, timeout=15)[0]
        deliver(account, later)
        eventually(replied(smtp_sink, later_id), timeout=15, what="the later reply")
    log = daemon.text()

    rows = outbox(tmp_path)
    failed = rows[0]
    body = notice.message.get_body(preferencelist=("plain",))
    assert body is not None
    text = str(body.get_content())
    assert_no_traceback(log)
    assert "ERROR mailbot.delivery: reply" in log
    assert ((SUPPORT,), FAILURE_NOTICE) == (
        notice.rcpt_tos,
        notice.message["X-Mailbot-Notice"],
    )
    assert ORGANIZER in text
    assert str(failed["subject"]) in text
    assert "550 5.1.1 Mailbox unavailable" in text
    assert f"Decisió: {failed['decision']}" in text
    assert notice.message["Subject"].startswith("Resposta no lliurada: ")
    assert [] == replies_to(smtp_sink.received, refused_id)
    assert [
        ("reply", "failed"),
        (FAILURE_NOTICE, "sent"),
        ("reply", "sent"),
    ] == [(row["kind"], row["status"]) for row in rows]


@pytest.mark.integration
def test_a_notice_that_fails_for_good_is_not_followed_by_another(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    store = Store(tmp_path / "mailbot.sqlite3")
    now = datetime.now(UTC)
    store.enqueue(
        decision=None,
        message_id="reply-1@webfine.com",
        kind="reply",
        recipients=[ORGANIZER],
        subject="Reserva",
        data=b"Subject: Reserva\r\n\r\nHola\r\n",
        now=now,
    )
    smtp_sink.fail_next(550, "5.7.1 Refused", count=2)
    support = Support((SUPPORT,), SERVICE, "LOCALRETMEET", "webfine.com")
    transport = SmtpTransport(
        SmtpConfig(host=smtp_sink.host, port=smtp_sink.port, tls="none", timeout=5)
    )

    try:
        report = deliver_due(
            store, transport, now=lambda: datetime.now(UTC), support=support
        )
    finally:
        transport.close()
    counts = store.outbox_counts()
    store.close()

    assert (2, {"failed": 2}) == (report.failed, counts)
