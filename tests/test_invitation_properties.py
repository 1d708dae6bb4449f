"""Any calendar text gives an Invitation or a CalendarError, and quickly."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.errors import CalendarError
from mailbot.models import Invitation
from mailbot.parsers.invitation import parse_calendar

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PER_CALL_LIMIT_SECONDS = 2.0

TZIDS = st.sampled_from(
    [
        "Europe/Madrid",
        '"(UTC+01:00) Brussels, Copenhagen, Madrid, Paris"',
        "(UTC+01:00) Bruselas, Copenhague, Madrid, París",
        "Romance Standard Time",
        "/mozilla.org/20070129_1/Europe/Berlin",
        "Customized Time Zone",
        "",
        " 1",
        "tzone://Microsoft/Custom",
        "Mars/Olympus",
    ]
)
DATES = st.builds(
    lambda y, mo, d, h, mi, z: (
        f"{y:04d}{mo:02d}{d:02d}" + (f"T{h:02d}{mi:02d}00{z}" if h is not None else "")
    ),
    st.sampled_from([1, 1601, 1969, 2026, 2027, 9999]),
    st.integers(1, 12),
    st.integers(1, 31),
    st.one_of(st.none(), st.integers(0, 23)),
    st.integers(0, 59),
    st.sampled_from(["", "Z"]),
)
VALUES = st.one_of(
    DATES, st.text(max_size=20), st.sampled_from(["PT1H", "-P1D", "P", "PT"])
)
RULES = st.builds(
    lambda parts: ";".join(parts),
    st.lists(
        st.sampled_from(
            [
                "FREQ=SECONDLY",
                "FREQ=MINUTELY",
                "FREQ=HOURLY",
                "FREQ=DAILY",
                "FREQ=WEEKLY",
                "FREQ=MONTHLY",
                "FREQ=YEARLY",
                "FREQ=BOGUS",
                "INTERVAL=0",
                "INTERVAL=7",
                "INTERVAL=-3",
                "COUNT=1000000000",
                "COUNT=0",
                "COUNT=3",
                "UNTIL=20270101",
                "UNTIL=20261231T235959Z",
                "UNTIL=garbage",
                "BYDAY=MO, TU,5FR,-1SU",
                "BYDAY=XX",
                "BYMONTH=2",
                "BYMONTHDAY=30",
                "BYMONTHDAY=-1",
                "BYYEARDAY=366",
                "BYWEEKNO=53",
                "BYSETPOS=-1",
                "BYHOUR=25",
                "WKST=SU",
            ]
        ),
        max_size=6,
    ),
)
NAMES = st.sampled_from(
    ["DTSTART", "DTEND", "DURATION", "RDATE", "EXDATE", "RECURRENCE-ID", "DTSTAMP"]
)


@st.composite
def event_lines(draw: st.DrawFn) -> list[str]:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(NAMES)
        params = ""
        if draw(st.booleans()):
            params += f";TZID={draw(TZIDS)}"
        if draw(st.booleans()):
            params += ";VALUE=" + draw(st.sampled_from(["DATE", "DATE-TIME", "PERIOD"]))
        values = ",".join(draw(st.lists(VALUES, min_size=1, max_size=3)))
        lines.append(f"{name}{params}:{values}")
    if draw(st.booleans()):
        lines.append(f"RRULE:{draw(RULES)}")
    lines.extend(draw(st.lists(st.text(max_size=30), max_size=2)))
    return lines


VTIMEZONE = (
    "BEGIN:VTIMEZONE\nTZID:Customized Time Zone\nBEGIN:STANDARD\n"
    "DTSTART:16010101T030000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\n"
    "RRULE:{rule}\nEND:STANDARD\nEND:VTIMEZONE\n"
)


@st.composite
def calendars(draw: st.DrawFn) -> bytes:
    parts = [
        "BEGIN:VCALENDAR",
        draw(st.sampled_from(["", "METHOD:REQUEST", "METHOD:CANCEL"])),
    ]
    if draw(st.booleans()):
        parts.append(VTIMEZONE.format(rule=draw(RULES)))
    for index in range(draw(st.integers(0, 3))):
        parts.append("BEGIN:VEVENT")
        parts.append(draw(st.sampled_from(["UID:a", "UID:b", ""])))
        parts.extend(draw(event_lines()))
        if index or draw(st.booleans()):
            parts.append("END:VEVENT")
    if draw(st.booleans()):
        parts.append("END:VCALENDAR")
    separator = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return separator.join(parts).encode("utf-8", errors="surrogatepass")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(calendars())
def test_any_calendar_gives_an_invitation_or_a_calendar_error_quickly(
    data: bytes,
) -> None:
    started = time.monotonic()
    try:
        result: Invitation | CalendarError = parse_calendar(data, now=NOW)
    except CalendarError as error:
        result = error
    elapsed = time.monotonic() - started

    assert isinstance(result, Invitation | CalendarError)
    assert elapsed < PER_CALL_LIMIT_SECONDS


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_an_invitation_or_a_calendar_error(data: bytes) -> None:
    try:
        result: Invitation | CalendarError = parse_calendar(
            b"BEGIN:VCALENDAR\nBEGIN:VEVENT\n" + data, now=NOW
        )
    except CalendarError as error:
        result = error

    assert isinstance(result, Invitation | CalendarError)
