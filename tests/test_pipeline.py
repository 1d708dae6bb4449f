"""One message through pipeline.handle, with a real SQLite store and no servers."""

from __future__ import annotations

import email
import email.message
import email.policy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.config import Config, parse_config
from mailbot.models import Entity, RawMessage
from mailbot.pipeline import handle
from mailbot.store import Store
from tests.mailgen import SERVICE, google_invitation, outlook_invitation

DATA = Path(__file__).parent / "data"
MADRID = ZoneInfo("Europe/Madrid")
CANARY = ZoneInfo("Atlantic/Canary")
NOW = datetime(2026, 12, 4, 10, tzinfo=UTC)
BARCELONA = "secretaria@ajbcn.example"
COMARCA = "tecnic@ccdemo.example"

# What a message may end in when nothing is wrong with mailbot itself.
OUTCOMES = {
    "booked", "updated", "pending", "needs-info", "declined", "unregistered",
    "cancelled", "unchanged", "duplicate", "automatic", "people", "quarantined",
    "registration-pending", "registration-incomplete",
}  # fmt: skip


class Robot:
    """The pipeline with its store; messages get increasing UIDs."""

    def __init__(self, folder: Path, *, pool: tuple[str, ...] = ("adv-01",)) -> None:
        self.config: Config = parse_config(
            {
                "service": {"address": SERVICE, "support": ["suport@localret.example"]},
                "licenses": {"pool": list(pool)},
                "maildir": {"path": "inbox"},
                "outbox": {"maildir": "outbox"},
                "database": {"path": "mailbot.sqlite3"},
            },
            path=folder / "mailbot.toml",
        )
        self.store = Store(self.config.database)
        self.uid = 0
        for entity in (
            Entity("P0801900B", "Ajuntament de Barcelona", BARCELONA),
            Entity(
                "P2500000A",
                "Consell Comarcal",
                "secretaria@ccdemo.example",
                senders=("@ccdemo.example",),
            ),
            Entity(
                "P3500000C",
                "Ajuntament de les Palmes",
                "secretaria@palmas.example",
                language="es",
                timezone="Atlantic/Canary",
            ),
        ):
            self.store.save_entity(entity, source="test", now=NOW)

    def handle(
        self, data: bytes, *, arrived: datetime = NOW, uid: int | None = None
    ) -> dict[str, object]:
        if uid is None:
            self.uid += 1
            uid = self.uid
        raw = RawMessage("INBOX", 1, uid, data, arrived, len(data))
        handled = handle(raw, config=self.config, store=self.store, now=NOW)
        row = self.store.conn.execute(
            "SELECT d.*, (SELECT COUNT(*) FROM outbox o WHERE o.decision = d.id)"
            " AS replies FROM decisions d JOIN messages m ON m.id = d.message"
            " WHERE m.uid = ?",
            (uid,),
        ).fetchone()
        assert row is not None
        result = dict(row)
        result["folder"] = handled.folder.value
        result["repeated"] = handled.repeated
        return result

    def occurrences(self, uid: str) -> list[tuple[str, str | None, str]]:
        return [
            (
                datetime.strptime(r[0], "%Y-%m-%dT%H:%M:%SZ")
                .replace(tzinfo=UTC)
                .astimezone(MADRID)
                .strftime("%Y-%m-%d %H:%M"),
                r[1],
                r[2],
            )
            for r in self.store.conn.execute(
                "SELECT o.start, o.license, o.status FROM occurrences o"
                " JOIN bookings b ON b.id = o.booking_id WHERE b.uid = ?"
                " ORDER BY o.start",
                (uid,),
            )
        ]


@pytest.fixture
def robot(tmp_path: Path) -> Robot:
    return Robot(tmp_path)


def wall(days: int, hour: int) -> datetime:
    """A naive Madrid wall-clock time ``days`` after NOW."""
    day = (NOW + timedelta(days=days)).astimezone(MADRID).date()
    return datetime(day.year, day.month, day.day, hour)


def instant(days: int, hour: int) -> datetime:
    return wall(days, hour).replace(tzinfo=MADRID).astimezone(UTC)


def outlook(uid: str, days: int, hour: int, **options: object) -> bytes:
    return outlook_invitation(
        uid=uid,
        organizer=str(options.pop("organizer", BARCELONA)),
        summary="Ple ordinari",
        description="Ple ordinari",
        start=wall(days, hour),
        end=wall(days, hour + 1),
        sent=NOW,
        **options,  # type: ignore[arg-type]
    )


CORPUS = sorted(p.name for p in DATA.glob("*.eml")) + sorted(
    p.name for p in DATA.glob("*.ics")
)


def wrap_ics(data: bytes) -> bytes:
    """An .ics file as a calendar client would mail it: a text/calendar part."""
    head = (
        f"From: {BARCELONA}\r\nTo: {SERVICE}\r\nSubject: Convocatoria\r\n"
        "Message-ID: <corpus@ajbcn.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: text/calendar; charset="utf-8"; method=REQUEST\r\n'
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode() + data


@pytest.mark.parametrize("name", CORPUS)
def test_every_corpus_file_ends_in_a_clear_decision(robot: Robot, name: str) -> None:
    data = (DATA / name).read_bytes()
    if name.endswith(".ics"):
        data = wrap_ics(data)

    decision = robot.handle(data)

    assert decision["outcome"] in OUTCOMES
    assert "internal-error" != decision["reason"]
    assert decision["folder"] in ("processed", "quarantine", "people")


def test_cancellation_before_its_invitation_books_nothing_later(robot: Robot) -> None:
    cancel = outlook("overtaken", 5, 10, sequence=1, method="CANCEL")
    request = outlook("overtaken", 5, 10, sequence=0)

    first = robot.handle(cancel)
    second = robot.handle(request)

    assert ("cancelled", "unknown-booking") == (first["outcome"], first["reason"])
    assert ("unchanged", 0) == (second["outcome"], second["replies"])
    assert [] == robot.occurrences("overtaken")


def test_cancellation_from_another_entity_is_left_to_people(robot: Robot) -> None:
    robot.handle(outlook("theirs", 5, 10))

    forged = robot.handle(
        outlook("theirs", 5, 10, sequence=1, method="CANCEL", organizer=COMARCA)
    )

    assert ("people", "cancellation-not-authorised", 0) == (
        forged["outcome"],
        forged["reason"],
        forged["replies"],
    )
    assert [(f"{wall(5, 10):%Y-%m-%d} 10:00", "adv-01", "booked")] == (
        robot.occurrences("theirs")
    )


def test_same_uid_from_another_entity_does_not_replace_the_booking(
    robot: Robot,
) -> None:
    robot.handle(outlook("shared-uid", 5, 10))

    other = robot.handle(outlook("shared-uid", 6, 12, sequence=4, organizer=COMARCA))

    assert ("people", "uid-of-another-entity") == (other["outcome"], other["reason"])
    assert [(f"{wall(5, 10):%Y-%m-%d} 10:00", "adv-01", "booked")] == (
        robot.occurrences("shared-uid")
    )


def test_organizer_not_matching_from_is_not_booked(robot: Robot) -> None:
    spoofed = outlook("spoofed", 5, 10).replace(
        f"From: Secretaria <{BARCELONA}>".encode(),
        b"From: Someone <someone@elsewhere.example>",
    )

    decision = robot.handle(spoofed)

    assert ("unregistered", "sender-mismatch") == (
        decision["outcome"],
        decision["reason"],
    )
    assert [] == robot.occurrences("spoofed")
    recipients = robot.store.conn.execute("SELECT recipients FROM outbox").fetchone()
    assert ["someone@elsewhere.example", "suport@localret.example"] == json.loads(
        recipients[0]
    )


def test_winmail_dat_without_a_calendar_asks_for_a_normal_invitation(
    robot: Robot,
) -> None:
    data = (DATA / "mail" / "outlook_winmail_dat_attachment.eml").read_bytes()

    decision = robot.handle(data)

    assert ("needs-info", "winmail-dat", 1) == (
        decision["outcome"],
        decision["reason"],
        decision["replies"],
    )


def test_publish_from_a_booking_system_goes_to_people(robot: Robot) -> None:
    data = (DATA / "comm-central__message-containing-event.eml").read_bytes()

    decision = robot.handle(data)

    assert ("people", "people", 0) == (
        decision["outcome"],
        decision["folder"],
        decision["replies"],
    )


def test_gmail_two_copies_make_one_booking(robot: Robot) -> None:
    data = google_invitation(
        uid="two-copies@google.com",
        organizer=COMARCA,
        summary="Junta de Govern",
        description="Junta",
        start=instant(5, 9),
        end=instant(5, 10),
        sent=NOW,
    )

    decision = robot.handle(data)

    assert "booked" == decision["outcome"]
    assert 1 == len(robot.occurrences("two-copies@google.com"))


def test_floating_times_of_a_canary_entity_are_canary_times(robot: Robot) -> None:
    day = wall(5, 0)
    data = (
        "From: secretaria@palmas.example\r\nTo: localretmeet@webfine.com\r\n"
        "Subject: Pleno\r\nMessage-ID: <pleno@palmas.example>\r\n"
        "Content-Type: text/calendar; method=REQUEST\r\n\r\n"
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
        "UID:pleno-palmas\r\nORGANIZER:mailto:secretaria@palmas.example\r\n"
        f"ATTENDEE:mailto:{SERVICE}\r\nSUMMARY:Pleno\r\n"
        f"DTSTART:{day:%Y%m%d}T100000\r\nDTEND:{day:%Y%m%d}T110000\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()

    decision = robot.handle(data)

    assert "booked" == decision["outcome"]
    canary_ten = datetime(day.year, day.month, day.day, 10, tzinfo=CANARY)
    madrid_text = canary_ten.astimezone(MADRID).strftime("%Y-%m-%d %H:%M")
    assert madrid_text.endswith("11:00")
    assert madrid_text == robot.occurrences("pleno-palmas")[0][0]


def test_same_message_id_twice_is_decided_once(robot: Robot) -> None:
    data = outlook("twice", 5, 10)

    first = robot.handle(data)
    second = robot.handle(data)

    assert ("booked", 1) == (first["outcome"], first["replies"])
    assert ("duplicate", 0) == (second["outcome"], second["replies"])


def test_same_uid_after_a_restart_is_filed_without_a_second_decision(
    robot: Robot,
) -> None:
    data = outlook("restart", 5, 10)
    first = robot.handle(data, uid=77)

    again = robot.handle(data, uid=77)

    assert first["id"] == again["id"]
    assert again["repeated"]
    assert 1 == robot.store.conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]


def test_update_into_a_full_slot_releases_the_old_hold(robot: Robot) -> None:
    robot.handle(outlook("first", 5, 10))
    robot.handle(outlook("second", 5, 16))

    moved = robot.handle(outlook("second", 5, 10, sequence=1))

    assert ("pending", "pool-full") == (moved["outcome"], moved["reason"])
    assert [(f"{wall(5, 10):%Y-%m-%d} 10:00", None, "pending")] == (
        robot.occurrences("second")
    )


def test_decision_row_keeps_every_rule_result(robot: Robot) -> None:
    decision = robot.handle(outlook("audited", 5, 10))

    rules = [check["rule"] for check in json.loads(str(decision["checks"]))]
    facts = json.loads(str(decision["facts"]))

    assert {"registered", "duration", "future", "notice", "capacity"} <= set(rules)
    assert "audited" == facts["uid"]
    assert "Romance Standard Time" == facts["tzid"]
    assert f"{instant(5, 10):%Y-%m-%dT%H:%M:%SZ}" == facts["start"]


def test_proposed_slots_avoid_bookings_outside_the_meeting_itself(robot: Robot) -> None:
    robot.handle(outlook("morning", 5, 10))
    robot.handle(outlook("noon", 5, 12, organizer=COMARCA))

    full = robot.handle(outlook("wanted", 5, 10, organizer=COMARCA))

    proposals = json.loads(str(full["facts"]))["proposals"]
    starts = [
        datetime.strptime(p["start"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        for p in proposals
    ]
    assert ("pending", "pool-full") == (full["outcome"], full["reason"])
    assert starts
    assert instant(5, 12) not in starts
    assert all(abs(s - instant(5, 12)) >= timedelta(hours=2) for s in starts)


def test_a_failure_while_recording_quarantines_instead_of_blocking(
    robot: Robot,
) -> None:
    robot.store.conn.execute(
        "CREATE TRIGGER refuse_bookings BEFORE INSERT ON bookings"
        " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    )

    decision = robot.handle(outlook("poison", 5, 10))

    assert ("quarantined", "internal-error", "quarantine", 0) == (
        decision["outcome"],
        decision["reason"],
        decision["folder"],
        decision["replies"],
    )
    assert "refused by the test" in str(decision["detail"])
    assert [] == robot.occurrences("poison")


def test_an_invitation_with_nobody_to_answer_is_decided_without_reply(
    robot: Robot,
) -> None:
    day = wall(5, 0)
    data = (
        "From: undisclosed-recipients:;\r\nTo: localretmeet@webfine.com\r\n"
        "Subject: Ple\r\nMessage-ID: <nobody@ajbcn.example>\r\n"
        "Content-Type: text/calendar; method=REQUEST\r\n\r\n"
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
        f"UID:nobody\r\nATTENDEE:mailto:{SERVICE}\r\nSUMMARY:Ple\r\n"
        f"DTSTART:{day:%Y%m%d}T100000\r\nDTEND:{day:%Y%m%d}T110000\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()

    decision = robot.handle(data)

    assert ("unregistered", 0) == (decision["outcome"], decision["replies"])
    assert "no reply" in str(decision["detail"])


def test_series_cancel_is_not_outranked_by_a_changed_occurrence(robot: Robot) -> None:
    robot.handle(outlook("series", 5, 10, rrule="FREQ=DAILY;COUNT=3"))
    robot.handle(outlook("series", 6, 12, sequence=2, recurrence_id=wall(6, 10)))

    cancel = robot.handle(
        outlook(
            "series", 5, 10, sequence=1, method="CANCEL", rrule="FREQ=DAILY;COUNT=3"
        )
    )

    assert ("cancelled", "cancelled") == (cancel["outcome"], cancel["reason"])
    assert {"cancelled"} == {status for _, _, status in robot.occurrences("series")}


def test_older_change_of_one_occurrence_changes_nothing(robot: Robot) -> None:
    robot.handle(outlook("series", 5, 10, rrule="FREQ=DAILY;COUNT=3"))
    robot.handle(outlook("series", 6, 12, sequence=2, recurrence_id=wall(6, 10)))

    older = robot.handle(
        outlook("series", 6, 16, sequence=1, recurrence_id=wall(6, 10))
    )

    assert ("unchanged", 0) == (older["outcome"], older["replies"])
    assert f"{wall(6, 12):%Y-%m-%d} 12:00" in [
        t for t, _, _ in robot.occurrences("series")
    ]


def test_two_meetings_in_one_message_are_not_guessed_between(robot: Robot) -> None:
    day = wall(5, 0)

    def event(uid: str, hour: int) -> str:
        return (
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nORGANIZER:mailto:{BARCELONA}\r\n"
            f"ATTENDEE:mailto:{SERVICE}\r\nSUMMARY:Ple\r\n"
            f"DTSTART;TZID=Europe/Madrid:{day:%Y%m%d}T{hour:02d}0000\r\n"
            f"DTEND;TZID=Europe/Madrid:{day:%Y%m%d}T{hour + 1:02d}0000\r\n"
            "END:VEVENT\r\n"
        )

    data = (
        f"From: {BARCELONA}\r\nTo: {SERVICE}\r\nSubject: Ple\r\n"
        "Message-ID: <two@ajbcn.example>\r\n"
        "Content-Type: text/calendar; method=REQUEST\r\n\r\n"
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\n"
        + event("first", 10)
        + event("second", 16)
        + "END:VCALENDAR\r\n"
    ).encode()

    decision = robot.handle(data)

    assert ("needs-info", "several-events", 1) == (
        decision["outcome"],
        decision["reason"],
        decision["replies"],
    )
    assert [] == robot.occurrences("first")


def test_occurrence_moved_where_it_cannot_be_booked_releases_its_license(
    robot: Robot,
) -> None:
    robot.handle(outlook("series", 5, 10, rrule="FREQ=DAILY;COUNT=3"))

    moved = robot.handle(
        outlook("series", -2, 10, sequence=1, recurrence_id=wall(6, 10))
    )

    assert ("declined", "in-the-past") == (moved["outcome"], moved["reason"])
    rows = robot.occurrences("series")
    assert (f"{wall(-2, 10):%Y-%m-%d} 10:00", None, "released") in rows
    assert 2 == sum(1 for _, license_, _ in rows if license_ == "adv-01")


def test_series_whose_madrid_hour_changes_lists_every_session(robot: Robot) -> None:
    data = (
        f"From: {BARCELONA}\r\nTo: {SERVICE}\r\nSubject: Comissió\r\n"
        "Message-ID: <ny-series@ajbcn.example>\r\n"
        "Content-Type: text/calendar; method=REQUEST\r\n\r\n"
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
        f"UID:ny-series\r\nORGANIZER:mailto:{BARCELONA}\r\n"
        f"ATTENDEE:mailto:{SERVICE}\r\nSUMMARY:Comissió amb Nova York\r\n"
        "DTSTART;TZID=America/New_York:20270304T160000\r\nDURATION:PT1H\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=5\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()

    decision = robot.handle(data)

    assert "booked" == decision["outcome"]
    row = robot.store.conn.execute("SELECT data FROM outbox").fetchone()
    message = email.message_from_bytes(bytes(row[0]), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "no són totes a la mateixa hora" in text
    assert "dijous 18 de març de 2027, de 21:00 a 22:00" in text
    assert "dijous 1 d'abril de 2027, de 22:00 a 23:00" in text


def test_copy_of_an_invitation_the_service_is_not_invited_to_goes_to_people(
    robot: Robot,
) -> None:
    data = outlook("not-invited", 5, 10, attendee="someone@ajbcn.example")

    decision = robot.handle(data)

    assert ("people", "not-invited", 0) == (
        decision["outcome"],
        decision["reason"],
        decision["replies"],
    )
    assert [] == robot.occurrences("not-invited")


def test_override_of_no_meeting_of_the_series_is_not_booked_by_guess(
    robot: Robot,
) -> None:
    day = wall(5, 0)
    data = (
        f"From: {BARCELONA}\r\nTo: {SERVICE}\r\nSubject: Ple\r\n"
        "Message-ID: <orphan@ajbcn.example>\r\n"
        "Content-Type: text/calendar; method=REQUEST\r\n\r\n"
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\n"
        f"BEGIN:VEVENT\r\nUID:orphan\r\nORGANIZER:mailto:{BARCELONA}\r\n"
        f"ATTENDEE:mailto:{SERVICE}\r\nSUMMARY:Ple\r\n"
        f"DTSTART;TZID=Europe/Madrid:{day:%Y%m%d}T180000\r\nDURATION:PT1H\r\n"
        "RRULE:FREQ=DAILY;COUNT=3\r\nEND:VEVENT\r\n"
        f"BEGIN:VEVENT\r\nUID:orphan\r\nORGANIZER:mailto:{BARCELONA}\r\n"
        f"ATTENDEE:mailto:{SERVICE}\r\nSUMMARY:Ple\r\n"
        f"RECURRENCE-ID;TZID=Europe/Madrid:{day:%Y%m%d}T170000\r\n"
        f"DTSTART;TZID=Europe/Madrid:{day:%Y%m%d}T090000\r\nDURATION:PT1H\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()

    decision = robot.handle(data)

    assert ("needs-info", "unmatched-override") == (
        decision["outcome"],
        decision["reason"],
    )
    assert [] == robot.occurrences("orphan")


def test_quoted_organizer_address_is_read_as_the_address(robot: Robot) -> None:
    day = wall(5, 0)
    data = (
        f"From: {BARCELONA}\r\nTo: {SERVICE}\r\nSubject: Ple\r\n"
        "Message-ID: <quoted@ajbcn.example>\r\n"
        "Content-Type: text/calendar; method=REQUEST\r\n\r\n"
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
        f'UID:quoted\r\nORGANIZER:mailto:"{BARCELONA}"\r\n'
        f"ATTENDEE:mailto:{SERVICE}\r\nSUMMARY:Ple\r\n"
        f"DTSTART;TZID=Europe/Madrid:{day:%Y%m%d}T100000\r\nDURATION:PT1H\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()

    decision = robot.handle(data)

    assert "booked" == decision["outcome"]


def test_answer_to_a_sender_writing_for_another_entity_is_in_the_senders_language(
    robot: Robot,
) -> None:
    data = outlook("for-palmas", 5, 10, organizer="secretaria@palmas.example").replace(
        b"From: Secretaria <secretaria@palmas.example>",
        f"From: Secretaria <{BARCELONA}>".encode(),
    )

    decision = robot.handle(data)

    assert "sender-mismatch" == decision["reason"]
    row = robot.store.conn.execute("SELECT data FROM outbox").fetchone()
    message = email.message_from_bytes(bytes(row[0]), policy=email.policy.default)
    assert ("ca", BARCELONA) == (
        str(message["Content-Language"]),
        message["To"].addresses[0].addr_spec,
    )
