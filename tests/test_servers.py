"""Tests of the real Dovecot and SMTP servers the integration tests stand on."""

import asyncio
import dataclasses
import os
import socket
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import aiosmtplib
import imapclient.exceptions
import pytest

from tests.servers import (
    DovecotServer,
    ImapAccount,
    SmtpSink,
    child_pids,
)

pytestmark = pytest.mark.integration

MADRID = ZoneInfo("Europe/Madrid")
SAMPLE = (
    b"From: Ajuntament <secretaria@example.org>\r\n"
    b"To: localretmeet@webfine.com\r\n"
    b"Subject: Ple ordinari\r\n"
    b"Message-ID: <sample@example.org>\r\n"
    b"\r\n"
    b"Convocatoria del ple.\r\n"
)


@pytest.fixture
def own_dovecot() -> Iterator[DovecotServer]:
    """A Dovecot of the test's own, for tests that stop or restart it."""
    with DovecotServer() as server:
        yield server


def outgoing_message(subject: str = "Reserva confirmada") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "localretmeet@webfine.com"
    message["To"] = "secretaria@example.org"
    message["Subject"] = subject
    message.set_content("Hola.")
    return message


def send(sink: SmtpSink, message: EmailMessage, *, sender: str = "") -> None:
    asyncio.run(
        aiosmtplib.send(
            message,
            hostname=sink.host,
            port=sink.port,
            sender=sender,
            recipients=["secretaria@example.org"],
            timeout=10,
        )
    )


def process_owners(master_pid: int) -> dict[str, set[int]]:
    """Map each process name under a Dovecot master to its effective uids."""
    owners: dict[str, set[int]] = {}
    for pid in child_pids(master_pid):
        proc = Path("/proc") / str(pid)
        name = (proc / "comm").read_text().strip()
        status = (proc / "status").read_text().splitlines()
        uid_line = next(line for line in status if line.startswith("Uid:"))
        owners.setdefault(name, set()).add(int(uid_line.split()[2]))
    return owners


def test_account_logs_in_and_server_offers_idle(imap_account: ImapAccount) -> None:
    with imap_account.client() as client:
        capabilities = client.capabilities()

    assert b"IDLE" in capabilities


def test_server_offers_move_and_uidplus(imap_account: ImapAccount) -> None:
    with imap_account.client() as client:
        capabilities = set(client.capabilities())

    assert {b"MOVE", b"UIDPLUS"} <= capabilities


def test_wrong_password_is_refused(imap_account: ImapAccount) -> None:
    intruder = dataclasses.replace(imap_account, password=imap_account.password + "x")

    with pytest.raises(imapclient.exceptions.LoginError):
        intruder.client()


def test_new_account_has_only_an_empty_inbox(imap_account: ImapAccount) -> None:
    assert imap_account.folders() == ["INBOX"]
    assert imap_account.messages("INBOX") == []


def test_messages_of_a_missing_folder_are_empty(imap_account: ImapAccount) -> None:
    assert imap_account.messages("Processed") == []


def test_append_stores_the_message_unchanged(imap_account: ImapAccount) -> None:
    imap_account.append("INBOX", SAMPLE)

    assert imap_account.messages("INBOX") == [SAMPLE]


def test_append_creates_a_missing_folder(imap_account: ImapAccount) -> None:
    imap_account.append("Processed", SAMPLE)

    assert sorted(imap_account.folders()) == ["INBOX", "Processed"]
    assert imap_account.messages("Processed") == [SAMPLE]


def test_append_sets_arrival_time_as_internaldate(
    imap_account: ImapAccount,
) -> None:
    arrived = datetime(2024, 3, 1, 9, 30, tzinfo=MADRID)

    uid = imap_account.append("INBOX", SAMPLE, arrived=arrived)
    with imap_account.client() as client:
        client.normalise_times = False
        client.select_folder("INBOX", readonly=True)
        internal_date = client.fetch([uid], ["INTERNALDATE"])[uid][b"INTERNALDATE"]

    assert arrived == internal_date


def test_append_refuses_an_arrival_time_without_time_zone(
    imap_account: ImapAccount,
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        imap_account.append("INBOX", SAMPLE, arrived=datetime(2024, 3, 1, 9, 30))


def test_append_returns_increasing_uids(imap_account: ImapAccount) -> None:
    first = imap_account.append("INBOX", SAMPLE)
    second = imap_account.append("INBOX", SAMPLE)

    assert first < second


def test_move_files_a_message_in_another_folder(imap_account: ImapAccount) -> None:
    uid = imap_account.append("INBOX", SAMPLE)
    imap_account.append("Processed", SAMPLE)

    with imap_account.client() as client:
        client.select_folder("INBOX")
        client.move([uid], "Processed")

    assert imap_account.messages("INBOX") == []
    assert imap_account.messages("Processed") == [SAMPLE, SAMPLE]


def test_accounts_do_not_share_mail(dovecot: DovecotServer) -> None:
    sender, other = dovecot.new_account(), dovecot.new_account()

    sender.append("INBOX", SAMPLE)

    assert sender.username != other.username
    assert other.messages("INBOX") == []


def test_idle_reports_mail_delivered_with_doveadm(
    dovecot: DovecotServer, imap_account: ImapAccount
) -> None:
    with imap_account.client() as client:
        client.select_folder("INBOX")
        client.idle()
        dovecot.doveadm(
            "save", "-u", imap_account.username, "-m", "INBOX", stdin=SAMPLE
        )
        responses = client.idle_check(timeout=10)
        client.idle_done()

    assert (1, b"EXISTS") in responses


def test_kick_drops_a_logged_in_session(
    dovecot: DovecotServer, imap_account: ImapAccount
) -> None:
    with imap_account.client() as client:
        dovecot.kick(imap_account.username)

        with pytest.raises(imapclient.exceptions.IMAPClientAbortError):
            client.noop()


def test_kick_without_a_session_fails(
    dovecot: DovecotServer, imap_account: ImapAccount
) -> None:
    with pytest.raises(RuntimeError, match="no users kicked"):
        dovecot.kick(imap_account.username)


@pytest.mark.slow
def test_stopped_server_refuses_connections(own_dovecot: DovecotServer) -> None:
    own_dovecot.stop()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((own_dovecot.host, own_dovecot.port), timeout=2)


@pytest.mark.slow
def test_restarted_server_accepts_logins_and_keeps_mail(
    own_dovecot: DovecotServer,
) -> None:
    account = own_dovecot.new_account()
    account.append("INBOX", SAMPLE)

    own_dovecot.restart()

    assert account.messages("INBOX") == [SAMPLE]


@pytest.mark.skipif(os.geteuid() != 0, reason="privileges drop only when root")
def test_imap_processes_do_not_run_as_root(
    dovecot: DovecotServer, imap_account: ImapAccount
) -> None:
    assert dovecot.pid is not None

    with imap_account.client():
        owners = process_owners(dovecot.pid)

    assert "imap" in owners
    assert set() == {
        name for name in ("imap", "imap-login") if 0 in owners.get(name, set())
    }


def test_sink_accepts_mail_with_a_null_sender(smtp_sink: SmtpSink) -> None:
    send(smtp_sink, outgoing_message("Reserva confirmada"), sender="")

    [received] = smtp_sink.wait_for(1)

    assert received.mail_from == ""
    assert received.rcpt_tos == ("secretaria@example.org",)
    assert received.message["Subject"] == "Reserva confirmada"


def test_sink_keeps_the_sender_address(smtp_sink: SmtpSink) -> None:
    send(smtp_sink, outgoing_message(), sender="localretmeet@webfine.com")

    [received] = smtp_sink.wait_for(1)

    assert received.mail_from == "localretmeet@webfine.com"


def test_sink_keeps_the_raw_data_and_parses_it(smtp_sink: SmtpSink) -> None:
    send(smtp_sink, outgoing_message("Reserva confirmada"))

    [received] = smtp_sink.wait_for(1)

    assert b"\r\nSubject: Reserva confirmada\r\n" in received.data
    assert received.message.get_content() == "Hola.\r\n"


def test_fail_next_fails_one_send_then_recovers(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(451, "4.3.0 Try again later")

    with pytest.raises(aiosmtplib.SMTPDataError) as failure:
        send(smtp_sink, outgoing_message("first"))
    send(smtp_sink, outgoing_message("second"))

    assert failure.value.code == 451
    assert [m.message["Subject"] for m in smtp_sink.wait_for(1)] == ["second"]


def test_fail_next_can_refuse_the_sender(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(550, "5.7.1 Sender refused", command="MAIL")

    with pytest.raises(aiosmtplib.SMTPSenderRefused) as failure:
        send(smtp_sink, outgoing_message())

    assert failure.value.code == 550
    assert smtp_sink.received == []


def test_fail_next_counts_failures(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(451, "4.3.0 Try again later", count=2)

    codes = []
    for _ in range(3):
        try:
            send(smtp_sink, outgoing_message())
        except aiosmtplib.SMTPResponseException as error:
            codes.append(error.code)

    assert codes == [451, 451]
    assert len(smtp_sink.received) == 1


def test_wait_for_times_out_when_too_few_arrive(smtp_sink: SmtpSink) -> None:
    with pytest.raises(TimeoutError, match="0 of 1 messages"):
        smtp_sink.wait_for(1, timeout=0.1)
