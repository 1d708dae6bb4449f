"""Tests of the transports: SMTP against the real aiosmtpd sink, the Maildir outbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbot.actions.outbox import (
    MaildirTransport,
    SmtpTransport,
    open_transport,
)
from mailbot.config import OutboxConfig, SmtpConfig
from mailbot.errors import DeliveryError
from tests.servers import SmtpSink, free_port


def reply(number: int, *, body: bytes = b"Reserva confirmada.\r\n") -> bytes:
    return (
        b"From: LOCALRETMEET <localretmeet@webfine.com>\r\n"
        b"To: secretaria@example.org\r\n"
        b"Cc: suport@localret.cat\r\n"
        b"Subject: Re: Ple ordinari\r\n"
        b"Message-ID: <reply-" + str(number).encode() + b"@webfine.com>\r\n"
        b"Auto-Submitted: auto-replied\r\n"
        b"\r\n" + body
    )


RECIPIENTS = ["secretaria@example.org", "suport@localret.cat"]


@pytest.fixture
def smtp(smtp_sink: SmtpSink) -> Iterator[SmtpTransport]:
    transport = SmtpTransport(
        SmtpConfig(host=smtp_sink.host, port=smtp_sink.port, tls="none", timeout=5)
    )
    yield transport
    transport.close()


# SMTP, against the real aiosmtpd sink


@pytest.mark.integration
def test_smtp_send_uses_the_empty_envelope_sender_and_the_recipients(
    smtp_sink: SmtpSink, smtp: SmtpTransport
) -> None:
    smtp.send(reply(1), recipients=RECIPIENTS, message_id="reply-1@webfine.com")

    [received] = smtp_sink.wait_for(1)
    assert ("", tuple(RECIPIENTS)) == (received.mail_from, received.rcpt_tos)


@pytest.mark.integration
def test_smtp_send_delivers_the_message_unchanged(
    smtp_sink: SmtpSink, smtp: SmtpTransport
) -> None:
    data = reply(1, body="Sessió plenària reservada.\r\n".encode())

    smtp.send(data, recipients=RECIPIENTS, message_id="reply-1@webfine.com")

    [received] = smtp_sink.wait_for(1)
    assert data == received.data


@pytest.mark.integration
def test_smtp_send_returns_the_servers_answer(smtp: SmtpTransport) -> None:
    answer = smtp.send(reply(1), recipients=RECIPIENTS, message_id="reply-1")

    assert "OK" == answer


@pytest.mark.integration
def test_smtp_sends_several_messages_in_turn(
    smtp_sink: SmtpSink, smtp: SmtpTransport
) -> None:
    for number in range(3):
        smtp.send(reply(number), recipients=RECIPIENTS, message_id=f"reply-{number}")

    received = smtp_sink.wait_for(3)
    assert [reply(n) for n in range(3)] == [mail.data for mail in received]


@pytest.mark.integration
def test_smtp_temporary_failure_raises_a_temporary_delivery_error(
    smtp_sink: SmtpSink, smtp: SmtpTransport
) -> None:
    smtp_sink.fail_next(451, "Try again later")

    with pytest.raises(DeliveryError) as raised:
        smtp.send(reply(1), recipients=RECIPIENTS, message_id="reply-1")

    assert (False, True) == (raised.value.permanent, "451" in str(raised.value))


@pytest.mark.integration
def test_smtp_permanent_failure_raises_a_permanent_delivery_error(
    smtp_sink: SmtpSink, smtp: SmtpTransport
) -> None:
    smtp_sink.fail_next(550, "Mailbox unavailable")

    with pytest.raises(DeliveryError) as raised:
        smtp.send(reply(1), recipients=RECIPIENTS, message_id="reply-1")

    assert (True, True) == (raised.value.permanent, "550" in str(raised.value))


@pytest.mark.integration
def test_smtp_refused_sender_raises_a_permanent_delivery_error(
    smtp_sink: SmtpSink, smtp: SmtpTransport
) -> None:
    smtp_sink.fail_next(553, "Null sender not allowed", command="MAIL")

    with pytest.raises(DeliveryError) as raised:
        smtp.send(reply(1), recipients=RECIPIENTS, message_id="reply-1")

    assert raised.value.permanent


@pytest.mark.integration
def test_smtp_send_after_a_failure_succeeds(
    smtp_sink: SmtpSink, smtp: SmtpTransport
) -> None:
    smtp_sink.fail_next(451, "Try again later")
    with pytest.raises(DeliveryError):
        smtp.send(reply(1), recipients=RECIPIENTS, message_id="reply-1")

    smtp.send(reply(2), recipients=RECIPIENTS, message_id="reply-2")

    assert [reply(2)] == [mail.data for mail in smtp_sink.wait_for(1)]


@pytest.mark.integration
def test_smtp_send_after_the_server_came_back_succeeds(
    smtp_sink: SmtpSink, smtp: SmtpTransport
) -> None:
    smtp.send(reply(1), recipients=RECIPIENTS, message_id="reply-1")
    smtp_sink.stop()
    smtp_sink.start()

    smtp.send(reply(2), recipients=RECIPIENTS, message_id="reply-2")

    assert [reply(2)] == [mail.data for mail in smtp_sink.wait_for(2)[1:]]


@pytest.mark.integration
def test_smtp_closed_port_raises_a_temporary_delivery_error() -> None:
    transport = SmtpTransport(
        SmtpConfig(host="127.0.0.1", port=free_port(), tls="none", timeout=2)
    )

    try:
        with pytest.raises(DeliveryError) as raised:
            transport.send(reply(1), recipients=RECIPIENTS, message_id="reply-1")
    finally:
        transport.close()

    assert not raised.value.permanent


def test_smtp_send_without_recipients_raises_a_permanent_delivery_error() -> None:
    transport = SmtpTransport(SmtpConfig(host="127.0.0.1", port=free_port()))

    try:
        with pytest.raises(DeliveryError) as raised:
            transport.send(reply(1), recipients=[], message_id="reply-1")
    finally:
        transport.close()

    assert raised.value.permanent


# The Maildir outbox


def test_maildir_transport_writes_the_message_into_new(tmp_path: Path) -> None:
    transport = MaildirTransport(OutboxConfig(maildir=tmp_path / "outbox"))

    transport.send(reply(1), recipients=RECIPIENTS, message_id="reply-1@webfine.com")

    [written] = (tmp_path / "outbox" / "new").iterdir()
    assert (True, reply(1)) == (
        "reply-1@webfine.com" in written.name,
        written.read_bytes(),
    )


def test_maildir_transport_keeps_each_message_apart(tmp_path: Path) -> None:
    transport = MaildirTransport(OutboxConfig(maildir=tmp_path / "outbox"))

    for _ in range(2):
        transport.send(reply(1), recipients=RECIPIENTS, message_id="same@webfine.com")

    assert 2 == len(list((tmp_path / "outbox" / "new").iterdir()))


def test_maildir_transport_makes_the_message_id_safe_for_a_file_name(
    tmp_path: Path,
) -> None:
    transport = MaildirTransport(OutboxConfig(maildir=tmp_path / "outbox"))

    transport.send(reply(1), recipients=RECIPIENTS, message_id="<a/b:c@x>")

    [written] = (tmp_path / "outbox" / "new").iterdir()
    assert written.name.endswith(".a_b_c@x")


def test_maildir_transport_returns_where_it_wrote(tmp_path: Path) -> None:
    transport = MaildirTransport(OutboxConfig(maildir=tmp_path / "outbox"))

    answer = transport.send(reply(1), recipients=RECIPIENTS, message_id="reply-1")

    [written] = (tmp_path / "outbox" / "new").iterdir()
    assert f"written to {written}" == answer


def test_maildir_transport_that_cannot_write_raises_a_temporary_delivery_error(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    transport = MaildirTransport(OutboxConfig(maildir=blocker / "outbox"))

    with pytest.raises(DeliveryError) as raised:
        transport.send(reply(1), recipients=RECIPIENTS, message_id="reply-1")

    assert not raised.value.permanent


# Choosing the transport


def test_open_transport_gives_a_maildir_transport_for_outbox_config(
    tmp_path: Path,
) -> None:
    transport = open_transport(OutboxConfig(maildir=tmp_path))

    assert isinstance(transport, MaildirTransport)


def test_open_transport_gives_an_smtp_transport_for_smtp_config() -> None:
    transport = open_transport(SmtpConfig(host="127.0.0.1"))
    transport.close()

    assert isinstance(transport, SmtpTransport)
