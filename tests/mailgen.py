"""Invitations shaped like the ones real calendar clients send, dated as a test needs.

The shapes follow the real messages in tests/data (Outlook/Exchange: a
multipart/alternative with a base64 text/calendar part and a Windows zone
name; Google: UTC times, an inline text/calendar part plus an invite.ics
attachment).  Only the dates, people and texts change.
"""

from __future__ import annotations

import base64
import textwrap
from datetime import UTC, datetime
from email.utils import format_datetime

SERVICE = "localretmeet@webfine.com"

ROMANCE_VTIMEZONE = """\
BEGIN:VTIMEZONE
TZID:Romance Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE"""


def _fold(line: str) -> str:
    """Fold a content line at 74 octets as RFC 5545 says (ASCII text here)."""
    if len(line) <= 74:
        return line
    parts = [
        line[:74],
        *textwrap.wrap(line[74:], 73, drop_whitespace=False, break_on_hyphens=False),
    ]
    return "\r\n ".join(parts)


def _escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\n", "\\n")
    )


def _calendar(
    method: str, event_lines: list[str], *, prodid: str, extra: str = ""
) -> str:
    lines = ["BEGIN:VCALENDAR", f"PRODID:{prodid}", "VERSION:2.0"]
    if method:
        lines.append(f"METHOD:{method}")
    if extra:
        lines.extend(extra.splitlines())
    lines.append("BEGIN:VEVENT")
    lines.extend(_fold(line) for line in event_lines)
    lines += ["END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def outlook_invitation(
    *,
    uid: str,
    organizer: str,
    summary: str,
    description: str,
    start: datetime,
    end: datetime,
    sequence: int = 0,
    method: str = "REQUEST",
    message_id: str | None = None,
    sent: datetime | None = None,
    attendee: str = SERVICE,
    rrule: str | None = None,
    recurrence_id: datetime | None = None,
) -> bytes:
    """Outlook/Exchange: Windows zone with its VTIMEZONE, base64 calendar part.

    ``start`` and ``end`` are naive wall-clock times in Romance Standard Time
    (Madrid); ``recurrence_id`` too.
    """
    sent = sent or datetime.now(UTC)
    fmt = "%Y%m%dT%H%M%S"
    event = [
        f"ORGANIZER;CN=Secretaria:mailto:{organizer}",
        f"ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=LOCALRETMEET:mailto:{attendee}",
        f"DESCRIPTION;LANGUAGE=ca-ES:{_escape(description)}",
        f"UID:{uid}",
        f"SUMMARY;LANGUAGE=ca-ES:{_escape(summary)}",
        f"DTSTART;TZID=Romance Standard Time:{start.strftime(fmt)}",
        f"DTEND;TZID=Romance Standard Time:{end.strftime(fmt)}",
        "CLASS:PUBLIC",
        "PRIORITY:5",
        f"DTSTAMP:{_stamp(sent)}",
        "TRANSP:OPAQUE",
        "STATUS:CANCELLED" if method == "CANCEL" else "STATUS:CONFIRMED",
        f"SEQUENCE:{sequence}",
        "LOCATION;LANGUAGE=ca-ES:Zoom",
    ]
    if rrule:
        event.append(f"RRULE:{rrule}")
    if recurrence_id is not None:
        event.append(
            f"RECURRENCE-ID;TZID=Romance Standard Time:{recurrence_id.strftime(fmt)}"
        )
    calendar = _calendar(
        method,
        event,
        prodid="Microsoft Exchange Server 2010",
        extra=ROMANCE_VTIMEZONE,
    )
    encoded = base64.encodebytes(calendar.encode("utf-8")).decode("ascii")
    body = base64.encodebytes(description.encode("utf-8")).decode("ascii")
    message_id = message_id or f"<{uid}.{sequence}.{method.lower()}@outlook.example>"
    return _crlf(
        f"""From: Secretaria <{organizer}>
To: LOCALRETMEET <{SERVICE}>
Subject: {summary}
Date: {format_datetime(sent)}
Message-ID: {message_id}
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="_000_outlook_"

--_000_outlook_
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: base64

{body}
--_000_outlook_
Content-Type: text/calendar; charset="utf-8"; method={method}
Content-Transfer-Encoding: base64

{encoded}
--_000_outlook_--
"""
    )


def google_invitation(
    *,
    uid: str,
    organizer: str,
    summary: str,
    description: str,
    start: datetime | str,
    end: datetime | str | None,
    sequence: int = 0,
    method: str = "REQUEST",
    message_id: str | None = None,
    sent: datetime | None = None,
    attendee: str = SERVICE,
) -> bytes:
    """Google Calendar: UTC times, inline calendar plus an invite.ics attachment.

    A ``str`` start or end is written as a DATE value (an all-day event).
    """
    sent = sent or datetime.now(UTC)

    def when(name: str, value: datetime | str) -> str:
        if isinstance(value, str):
            return f"{name};VALUE=DATE:{value}"
        return f"{name}:{_stamp(value)}"

    event = [when("DTSTART", start)]
    if end is not None:
        event.append(when("DTEND", end))
    event += [
        f"DTSTAMP:{_stamp(sent)}",
        f"ORGANIZER;CN={organizer}:mailto:{organizer}",
        f"UID:{uid}",
        "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP="
        f"TRUE;CN={attendee};X-NUM-GUESTS=0:mailto:{attendee}",
        f"DESCRIPTION:{_escape(description)}",
        f"SEQUENCE:{sequence}",
        "STATUS:CANCELLED" if method == "CANCEL" else "STATUS:CONFIRMED",
        f"SUMMARY:{_escape(summary)}",
        "TRANSP:OPAQUE",
    ]
    calendar = _calendar(
        method, event, prodid="-//Google Inc//Google Calendar 70.9054//EN"
    )
    attachment = base64.encodebytes(calendar.encode("utf-8")).decode("ascii")
    message_id = message_id or f"<{uid}.{sequence}.{method.lower()}@google.example>"
    return _crlf(
        f"""From: {organizer}
To: {SERVICE}
Subject: =?UTF-8?Q?Invitaci=C3=B3:?= {summary}
Date: {format_datetime(sent)}
Message-ID: {message_id}
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="000000000000google_mixed"

--000000000000google_mixed
Content-Type: multipart/alternative; boundary="000000000000google_alt"

--000000000000google_alt
Content-Type: text/plain; charset="UTF-8"

{description}

--000000000000google_alt
Content-Type: text/calendar; charset="UTF-8"; method={method}
Content-Transfer-Encoding: 7bit

{calendar}
--000000000000google_alt--

--000000000000google_mixed
Content-Type: application/ics; name="invite.ics"
Content-Disposition: attachment; filename="invite.ics"
Content-Transfer-Encoding: base64

{attachment}
--000000000000google_mixed--
"""
    )


def auto_reply(*, sender: str, subject: str, sent: datetime | None = None) -> bytes:
    sent = sent or datetime.now(UTC)
    return _crlf(
        f"""From: {sender}
To: {SERVICE}
Subject: Resposta automàtica: {subject}
Date: {format_datetime(sent)}
Message-ID: <auto.{abs(hash((sender, subject)))}@auto.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 8bit

Sóc fora de l'oficina fins dilluns.
"""
    )


def entities_csv() -> str:
    return (
        "nif,name,email,senders,youtube_channel,channel_agreement,language\n"
        "P0801900B,Ajuntament de Barcelona,secretaria@ajbcn.example,,"
        "https://www.youtube.com/@ajbcn,no,ca\n"
        "P2500000A,Consell Comarcal de la Demo,secretaria@ccdemo.example,"
        "@ccdemo.example,,yes,es\n"
    )


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
