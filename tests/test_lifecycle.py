"""A booking's life over IMAP: a series, a moved and a cancelled occurrence, updates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils
from icalendar import Calendar

from tests.helpers import PASSWORD_ENV, assert_no_traceback, run_mailbot, sink_config
from tests.mailgen import entities_csv, google_invitation, outlook_invitation
from tests.servers import ImapAccount, ReceivedMail, SmtpSink

MADRID = ZoneInfo("Europe/Madrid")
ORGANIZER = "secretaria@ajbcn.example"
UID = "040000008200E00074C5B7101A82E008000000LIFECYCLE"

pytestmark = pytest.mark.integration


class Bot:
    """mailbot over one Dovecot account and one SMTP sink, run --once at a time."""

    def __init__(self, folder: Path, account: ImapAccount, sink: SmtpSink) -> None:
        self.folder = folder
        self.account = account
        self.sink = sink
        self.config = sink_config(folder, account, sink)
        self.env = {PASSWORD_ENV: account.password}
        csv = folder / "entities.csv"
        csv.write_text(entities_csv(), encoding="utf-8")
        done = self.command("entities", "import", str(csv))
        assert 0 == done.returncode, done.stderr

    def command(self, *args: str) -> object:
        done = run_mailbot(*args, "-c", str(self.config), cwd=self.folder, env=self.env)
        assert_no_traceback(done)
        return done

    def send(self, data: bytes) -> EmailMessage | None:
        """Deliver one message, run once, and return the reply it got (or None)."""
        before = len(self.sink.received)
        self.account.append("INBOX", data, arrived=datetime.now(UTC))
        done = run_mailbot(
            "run", "--once", "-c", str(self.config), cwd=self.folder, env=self.env
        )
        assert 0 == done.returncode, done.stderr
        assert_no_traceback(done)
        assert [] == self.account.messages("INBOX")
        received: list[ReceivedMail] = self.sink.received[before:]
        assert len(received) <= 1
        return received[0].message if received else None

    def occurrences(self) -> list[dict[str, object]]:
        db = sqlite_utils.Database(self.folder / "mailbot.sqlite3")
        return list(
            db.query(
                "SELECT o.start, o.license, o.status FROM occurrences o"
                " JOIN bookings b ON b.id = o.booking_id WHERE b.uid = ?"
                " ORDER BY o.start",
                [UID],
            )
        )


def madrid_text(row: dict[str, object]) -> str:
    start = datetime.strptime(str(row["start"]), "%Y-%m-%dT%H:%M:%SZ")
    return start.replace(tzinfo=UTC).astimezone(MADRID).strftime("%Y-%m-%d %H:%M")


def recurrence_id_of(message: EmailMessage) -> str | None:
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    event = Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")[0]
    value = event.get("RECURRENCE-ID")
    return None if value is None else value.dt.astimezone(MADRID).strftime("%H:%M")


def first_day() -> date:
    return (datetime.now(MADRID) + timedelta(days=10)).date()


def plus_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    return date(day.year + month // 12, month % 12 + 1, min(day.day, 28))


def test_series_then_moved_then_cancelled_occurrence_then_whole_series(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    bot = Bot(tmp_path, imap_account, smtp_sink)
    start = first_day().replace(day=min(first_day().day, 28))
    days = [plus_months(start, n) for n in range(4)]

    def at(day: date, hour: int) -> datetime:
        return datetime(day.year, day.month, day.day, hour)

    series = dict(
        uid=UID,
        organizer=ORGANIZER,
        summary="Ple ordinari mensual",
        description="Ple ordinari. Retransmissió pel canal propi de YouTube.",
    )

    booked = bot.send(
        outlook_invitation(
            **series,
            start=at(start, 18),
            end=at(start, 20),
            rrule="FREQ=MONTHLY;COUNT=4",
        )
    )
    assert booked is not None
    assert "booked" == booked["X-Mailbot-Outcome"]
    rows = bot.occurrences()
    assert [f"{d} 18:00" for d in days] == [madrid_text(r) for r in rows]
    assert {("adv-01", "booked")} == {(r["license"], r["status"]) for r in rows}

    moved = bot.send(
        outlook_invitation(
            **series,
            start=at(days[1], 10),
            end=at(days[1], 12),
            sequence=1,
            recurrence_id=at(days[1], 18),
        )
    )
    assert moved is not None
    assert "updated" == moved["X-Mailbot-Outcome"]
    assert "18:00" == recurrence_id_of(moved)
    rows = bot.occurrences()
    assert [
        f"{days[0]} 18:00",
        f"{days[1]} 10:00",
        f"{days[2]} 18:00",
        f"{days[3]} 18:00",
    ] == [madrid_text(r) for r in rows]
    assert {("adv-01", "booked")} == {(r["license"], r["status"]) for r in rows}

    cancelled = bot.send(
        outlook_invitation(
            **series,
            start=at(days[2], 18),
            end=at(days[2], 20),
            sequence=2,
            method="CANCEL",
            recurrence_id=at(days[2], 18),
        )
    )
    assert cancelled is not None
    assert "cancelled" == cancelled["X-Mailbot-Outcome"]
    statuses = [(madrid_text(r), r["status"]) for r in bot.occurrences()]
    assert [
        (f"{days[0]} 18:00", "booked"),
        (f"{days[1]} 10:00", "booked"),
        (f"{days[2]} 18:00", "cancelled"),
        (f"{days[3]} 18:00", "booked"),
    ] == statuses

    ended = bot.send(
        outlook_invitation(
            **series,
            start=at(start, 18),
            end=at(start, 20),
            sequence=3,
            method="CANCEL",
            rrule="FREQ=MONTHLY;COUNT=4",
        )
    )
    assert ended is not None
    assert "cancelled" == ended["X-Mailbot-Outcome"]
    assert {"cancelled"} == {r["status"] for r in bot.occurrences()}


def test_older_version_changes_nothing_and_gets_no_reply(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    bot = Bot(tmp_path, imap_account, smtp_sink)
    day = first_day()
    meeting = dict(
        uid=UID, organizer=ORGANIZER, summary="Junta de Govern", description="Junta"
    )

    def at(hour: int) -> datetime:
        return datetime(day.year, day.month, day.day, hour)

    first = bot.send(outlook_invitation(**meeting, start=at(9), end=at(10), sequence=2))
    assert first is not None
    assert "booked" == first["X-Mailbot-Outcome"]

    older = bot.send(
        outlook_invitation(**meeting, start=at(16), end=at(17), sequence=1)
    )

    assert older is None
    assert [f"{day} 09:00"] == [madrid_text(r) for r in bot.occurrences()]


def test_update_with_a_new_time_replaces_the_booking_and_releases_the_old_hold(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    bot = Bot(tmp_path, imap_account, smtp_sink)
    day = first_day()
    meeting = dict(
        uid=UID, organizer=ORGANIZER, summary="Junta de Govern", description="Junta"
    )

    def at(hour: int) -> datetime:
        return datetime(day.year, day.month, day.day, hour)

    bot.send(outlook_invitation(**meeting, start=at(9), end=at(10)))
    updated = bot.send(
        outlook_invitation(**meeting, start=at(12), end=at(13), sequence=1)
    )

    assert updated is not None
    assert "updated" == updated["X-Mailbot-Outcome"]
    assert [(f"{day} 12:00", "adv-01", "booked")] == [
        (madrid_text(r), r["license"], r["status"]) for r in bot.occurrences()
    ]


def test_cancellation_of_an_unknown_meeting_is_answered_without_error(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    bot = Bot(tmp_path, imap_account, smtp_sink)
    day = first_day()
    start = datetime(day.year, day.month, day.day, 9, tzinfo=MADRID)

    reply = bot.send(
        google_invitation(
            uid="never-booked@google.com",
            organizer="tecnic@ccdemo.example",
            summary="Junta",
            description="Junta",
            start=start,
            end=start + timedelta(hours=1),
            method="CANCEL",
        )
    )

    assert reply is not None
    assert "cancelled" == reply["X-Mailbot-Outcome"]
