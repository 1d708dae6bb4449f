"""``mailbot run --once`` as a subprocess, over real Dovecot and SMTP servers."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage, Message
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils
from icalendar import Calendar

from tests.helpers import PASSWORD_ENV, SUPPORT, run_mailbot, sink_config
from tests.mailgen import (
    SERVICE,
    auto_reply,
    entities_csv,
    google_invitation,
    outlook_invitation,
)
from tests.servers import ImapAccount, ReceivedMail, SmtpSink

MADRID = ZoneInfo("Europe/Madrid")

pytestmark = pytest.mark.integration


def mailbot(
    config: Path, account: ImapAccount, *args: str
) -> subprocess.CompletedProcess[str]:
    return run_mailbot(
        *args,
        "-c",
        str(config),
        cwd=config.parent,
        env={PASSWORD_ENV: account.password},
    )


def madrid(day: date, hour: int, minute: int = 0) -> datetime:
    """A naive Madrid wall-clock time, as Outlook writes it with its TZID."""
    return datetime(day.year, day.month, day.day, hour, minute)


def utc(day: date, hour: int, minute: int = 0) -> datetime:
    """The UTC instant of a Madrid wall-clock time, as Google writes it."""
    return madrid(day, hour, minute).replace(tzinfo=MADRID).astimezone(UTC)


def reply_to(received: list[ReceivedMail], incoming_id: str) -> EmailMessage:
    matches = [
        mail.message
        for mail in received
        if str(mail.message["In-Reply-To"]).strip() == incoming_id
    ]
    assert 1 == len(matches), f"replies to {incoming_id}: {len(matches)}"
    return matches[0]


def partstat(message: EmailMessage) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    assert "REPLY" == part.get_param("method").upper()
    calendar = Calendar.from_ical(part.get_payload(decode=True))
    event = calendar.walk("VEVENT")[0]
    attendee = event.get("ATTENDEE")
    assert f"mailto:{SERVICE}" == str(attendee).lower()
    return str(attendee.params["PARTSTAT"])


def text_of(message: Message) -> str:
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def test_run_once_books_answers_and_files_every_kind_of_message(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = sink_config(tmp_path, imap_account, smtp_sink)
    csv = tmp_path / "entities.csv"
    csv.write_text(entities_csv(), encoding="utf-8")
    imported = mailbot(config, imap_account, "entities", "import", str(csv))
    assert 0 == imported.returncode, imported.stderr

    now = datetime.now(UTC)
    day = (now.astimezone(MADRID) + timedelta(days=10)).date()
    later = day + timedelta(days=2)
    soon = now + timedelta(hours=6)
    barcelona = "secretaria@ajbcn.example"
    comarca = "tecnic@ccdemo.example"
    messages = {
        "plenary": outlook_invitation(
            uid="e2e-plenary",
            organizer=barcelona,
            summary="Ple ordinari",
            description="Ple ordinari. Retransmissió pel canal de YouTube de"
            " l'Ajuntament. ID de la reunió: 111 2222 3333. Codi d'accés: 443511",
            start=madrid(day, 18),
            end=madrid(day, 20, 30),
        ),
        "full": google_invitation(
            uid="e2e-full@google.com",
            organizer=comarca,
            summary="Junta de Govern",
            description="Junta de Govern, uns 20 participants.",
            start=utc(day, 19),
            end=utc(day, 20),
        ),
        "late": google_invitation(
            uid="e2e-late@google.com",
            organizer=comarca,
            summary="Comissió informativa",
            description="Comissió informativa",
            start=soon,
            end=soon + timedelta(hours=1),
        ),
        "unregistered": outlook_invitation(
            uid="e2e-unregistered",
            organizer="alcaldia@unknown.example",
            summary="Ple extraordinari",
            description="Ple extraordinari",
            start=madrid(later, 10),
            end=madrid(later, 11),
        ),
        "allday": google_invitation(
            uid="e2e-allday@google.com",
            organizer=comarca,
            summary="Jornada de treball",
            description="Tot el dia",
            start=later.strftime("%Y%m%d"),
            end=(later + timedelta(days=1)).strftime("%Y%m%d"),
        ),
        "automatic": auto_reply(sender=barcelona, subject="Reserva confirmada"),
        "board": google_invitation(
            uid="e2e-board@google.com",
            organizer=comarca,
            summary="Junta de Govern extraordinària",
            description="Junta de Govern",
            start=utc(later, 9),
            end=utc(later, 10),
        ),
        "cancel": google_invitation(
            uid="e2e-board@google.com",
            organizer=comarca,
            summary="Junta de Govern extraordinària",
            description="Junta de Govern",
            start=utc(later, 9),
            end=utc(later, 10),
            sequence=1,
            method="CANCEL",
        ),
    }
    ids = {}
    for name, data in messages.items():
        imap_account.append("INBOX", data, arrived=now - timedelta(minutes=5))
        ids[name] = next(
            line.split(b":", 1)[1].strip().decode()
            for line in data.splitlines()
            if line.lower().startswith(b"message-id:")
        )

    done = mailbot(config, imap_account, "run", "--once")

    assert 0 == done.returncode, done.stderr
    received = smtp_sink.wait_for(7)
    assert 7 == len(received)
    assert all("" == mail.mail_from for mail in received)

    plenary = reply_to(received, ids["plenary"])
    assert "booked" == plenary["X-Mailbot-Outcome"]
    assert plenary["X-Mailbot-Booking"]
    assert "auto-replied" == plenary["Auto-Submitted"]
    assert barcelona == plenary["To"].addresses[0].addr_spec
    assert plenary["Cc"] is None
    assert ids["plenary"] in str(plenary["References"])
    assert "ACCEPTED" == partstat(plenary)
    body = text_of(plenary)
    assert "18:00" in body
    assert "20:30" in body
    assert "111 2222 3333" in body or "11122223333" in body

    full = reply_to(received, ids["full"])
    assert "pending" == full["X-Mailbot-Outcome"]
    assert "TENTATIVE" == partstat(full)
    assert SUPPORT == full["Cc"].addresses[0].addr_spec

    late = reply_to(received, ids["late"])
    assert "pending" == late["X-Mailbot-Outcome"]
    assert SUPPORT == late["Cc"].addresses[0].addr_spec

    unregistered = reply_to(received, ids["unregistered"])
    assert "unregistered" == unregistered["X-Mailbot-Outcome"]
    assert "DECLINED" == partstat(unregistered)

    allday = reply_to(received, ids["allday"])
    assert "needs-info" == allday["X-Mailbot-Outcome"]
    assert "TENTATIVE" == partstat(allday)

    assert "booked" == reply_to(received, ids["board"])["X-Mailbot-Outcome"]
    assert "cancelled" == reply_to(received, ids["cancel"])["X-Mailbot-Outcome"]

    assert [] == imap_account.messages("INBOX")
    assert 8 == len(imap_account.messages("Processed"))
    assert [] == imap_account.messages("Quarantine")

    db = sqlite_utils.Database(tmp_path / "mailbot.sqlite3")
    outcomes = {
        row["message_id"]: row["outcome"]
        for row in db.query(
            "SELECT m.message_id, d.outcome FROM messages m"
            " JOIN decisions d ON d.message = m.id"
        )
    }
    assert 8 == len(outcomes)
    assert "automatic" == outcomes[ids["automatic"].strip("<>")]
    sent = list(db.query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status"))
    assert [{"status": "sent", "n": 7}] == sent
    held = list(
        db.query(
            "SELECT b.uid, o.license, o.status FROM occurrences o"
            " JOIN bookings b ON b.id = o.booking_id ORDER BY b.uid"
        )
    )
    assert {"uid": "e2e-plenary", "license": "adv-01", "status": "booked"} in held
    assert {
        "uid": "e2e-board@google.com",
        "license": "adv-01",
        "status": "cancelled",
    } in held
