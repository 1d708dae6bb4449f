"""The fast paths of issue 6: headers read once, replies pre-folded, no idle NOOP."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from icalendar import Calendar

from mailbot.actions.outbox import NOOP_AFTER, SmtpTransport
from mailbot.actions.reply import itip_reply, render_reply
from mailbot.config import SmtpConfig
from mailbot.models import Outcome
from mailbot.parsers.envelope import parse_envelope
from tests.servers import free_port
from tests.test_reply import NOW, SERVICE, facts, invitation
from tests.test_transport import RECIPIENTS, reply


def envelope_of(content_type: str, *, disposition: str = "") -> tuple[str, ...]:
    data = (
        "From: secretaria@vic.cat\r\nSubject: Ple\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: {content_type}\r\n{disposition}\r\n"
        "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n--b--\r\n"
    ).encode()
    envelope = parse_envelope(data, service_address="a@b.cat", own_domain="b.cat")
    return tuple(part.content_type for part in envelope.calendars)


def test_folded_calendar_content_type_is_read_with_its_method() -> None:
    assert ("text/calendar",) == envelope_of("text/calendar;\r\n method=REQUEST")


def test_calendar_named_by_an_encoded_filename_is_still_a_calendar() -> None:
    disposition = "attachment; filename*=utf-8''reuni%C3%B3.ics"
    found = envelope_of(
        "application/octet-stream",
        disposition=f"Content-Disposition: {disposition}\r\n",
    )

    assert ("application/octet-stream",) == found


def reparsed_subject(summary: str) -> str:
    one = replace(invitation(), summary=summary)
    message = render_reply(
        facts(Outcome.BOOKED, invitation=one),
        service=SERVICE,
        language="ca",
        message_id="reply-1@webfine.com",
        now=NOW,
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.SMTP)
    return str(parsed["Subject"])


def test_long_accented_subject_keeps_every_space() -> None:
    summary = " ".join(["Sessió extraordinària"] * 5)

    assert f"Reserva confirmada: {summary}" == reparsed_subject(summary)


def test_subject_that_fills_the_first_line_gains_no_leading_space() -> None:
    summary = "Ple Bcc: evil@attacker.example and a few words more"

    assert f"Reserva confirmada: {summary}" == reparsed_subject(summary)


def test_accented_display_name_reaches_the_to_header() -> None:
    one = replace(
        invitation(), organizer_name="Secretària de l'Ajuntament de Sant Martí"
    )
    message = render_reply(
        facts(Outcome.BOOKED, invitation=one),
        service=SERVICE,
        language="ca",
        message_id="reply-1@webfine.com",
        now=NOW,
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.SMTP)

    (address,) = parsed["To"].addresses
    assert "Secretària de l'Ajuntament de Sant Martí" == address.display_name


@pytest.mark.parametrize(
    "summary",
    ["Ple; ordinari, amb \\ barra", "Reunió " * 30, "a" * 74 + "é\\;"],
)
def test_itip_text_values_round_trip_through_icalendar(summary: str) -> None:
    data = itip_reply(
        replace(invitation(), summary=summary, uid="uid,1;x"),
        service=SERVICE,
        partstat="ACCEPTED",
        comment="Reserva: vegi, el correu",
        organizer="secretaria@vic.cat",
        now=NOW,
    )
    event = Calendar.from_ical(data).walk("VEVENT")[0]

    assert [] == [line for line in data.split(b"\r\n") if len(line) > 75]
    assert (summary.strip(), "uid,1;x", "Reserva: vegi, el correu") == (
        str(event["SUMMARY"]).strip(),
        str(event["UID"]),
        str(event["COMMENT"]),
    )


class CountingHandler:
    """An aiosmtpd handler that accepts every message and counts NOOPs."""

    def __init__(self) -> None:
        self.noops = 0
        self.messages = 0

    async def handle_NOOP(
        self, server: Any, session: Any, envelope: Any, arg: str
    ) -> str:
        self.noops += 1
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        return "250 Message accepted"


@pytest.fixture
def counting(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[CountingHandler, SmtpTransport]]:
    handler = CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    transport = SmtpTransport(
        SmtpConfig(host="127.0.0.1", port=controller.port, tls="none", timeout=5),
        noop_after=getattr(request, "param", NOOP_AFTER),
    )
    yield handler, transport
    transport.close()
    controller.stop()


@pytest.mark.integration
def test_sends_in_quick_succession_need_no_noop(
    counting: tuple[CountingHandler, SmtpTransport],
) -> None:
    handler, transport = counting
    for number in range(5):
        transport.send(reply(number), recipients=RECIPIENTS, message_id=f"r{number}")

    assert (0, 5) == (handler.noops, handler.messages)


@pytest.mark.integration
@pytest.mark.parametrize("counting", [0.0], indirect=True)
def test_send_after_the_idle_limit_checks_the_connection_with_noop(
    counting: tuple[CountingHandler, SmtpTransport],
) -> None:
    handler, transport = counting
    transport.send(reply(1), recipients=RECIPIENTS, message_id="r1")

    transport.send(reply(2), recipients=RECIPIENTS, message_id="r2")

    assert (1, 2) == (handler.noops, handler.messages)
