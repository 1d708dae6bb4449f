"""Time zone resolution: VTIMEZONE, IANA, Windows and Outlook display names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailbot.parsers.calendar_text import parse_text
from mailbot.parsers.timezones import (
    ZoneConflictError,
    resolve_zone,
    vtimezones_of,
    zone_by_name,
)
from tests.mailgen import ROMANCE_VTIMEZONE

EXCHANGE_ROMANCE = f"BEGIN:VCALENDAR\n{ROMANCE_VTIMEZONE}\nEND:VCALENDAR\n"


def exchange_calendar(tzid: str, offset: str = "+0700") -> str:
    return (
        "BEGIN:VCALENDAR\nBEGIN:VTIMEZONE\n"
        f"TZID:{tzid}\nBEGIN:STANDARD\nDTSTART:16010101T000000\n"
        f"TZOFFSETFROM:{offset}\nTZOFFSETTO:{offset}\nEND:STANDARD\n"
        "END:VTIMEZONE\nEND:VCALENDAR\n"
    )


def test_exchange_1601_vtimezone_gives_summer_offset_in_july() -> None:
    zones = vtimezones_of(parse_text(EXCHANGE_ROMANCE).calendars[0])
    zone = resolve_zone("Romance Standard Time", vtimezones=zones, year=2026)

    assert zone is not None
    assert datetime(2026, 7, 1, 16, tzinfo=UTC) == zone.to_utc(datetime(2026, 7, 1, 18))


def test_exchange_1601_vtimezone_gives_winter_offset_in_january() -> None:
    zones = vtimezones_of(parse_text(EXCHANGE_ROMANCE).calendars[0])
    zone = resolve_zone("Romance Standard Time", vtimezones=zones, year=2026)

    assert zone is not None
    assert datetime(2026, 1, 15, 17, tzinfo=UTC) == zone.to_utc(
        datetime(2026, 1, 15, 18)
    )


def test_vtimezone_that_contradicts_the_official_zone_it_names_is_refused() -> None:
    text = exchange_calendar("Europe/Madrid", offset="+0700")
    zones = vtimezones_of(parse_text(text).calendars[0])
    zone = resolve_zone("Europe/Madrid", vtimezones=zones, year=2026)

    assert zone is not None
    with pytest.raises(ZoneConflictError, match="Europe/Madrid"):
        zone.to_utc(datetime(2026, 7, 1, 18))


def test_vtimezone_that_agrees_with_the_official_zone_it_names_is_used() -> None:
    text = exchange_calendar("Asia/Bangkok", offset="+0700")
    zones = vtimezones_of(parse_text(text).calendars[0])
    zone = resolve_zone("Asia/Bangkok", vtimezones=zones, year=2026)

    assert zone is not None
    assert datetime(2026, 7, 1, 11, tzinfo=UTC) == zone.to_utc(datetime(2026, 7, 1, 18))


def test_escaped_commas_in_vtimezone_match_the_quoted_parameter() -> None:
    text = exchange_calendar("(UTC+07:00) Bangkok\\, Hanoi\\, Jakarta")
    zones = vtimezones_of(parse_text(text).calendars[0])
    zone = resolve_zone(
        '"(UTC+07:00) Bangkok, Hanoi, Jakarta"', vtimezones=zones, year=2019
    )

    assert zone is not None
    assert datetime(2019, 4, 30, 2, tzinfo=UTC) == zone.to_utc(datetime(2019, 4, 30, 9))


def test_blank_tzid_matches_the_blank_vtimezone() -> None:
    zones = vtimezones_of(parse_text(exchange_calendar("", "+0300")).calendars[0])
    zone = resolve_zone("", vtimezones=zones, year=2015)

    assert zone is not None
    assert datetime(2015, 8, 26, 6, tzinfo=UTC) == zone.to_utc(datetime(2015, 8, 26, 9))


def test_tzid_with_leading_space_matches() -> None:
    zones = vtimezones_of(parse_text(exchange_calendar(" 1", "+0300")).calendars[0])
    zone = resolve_zone(" 1", vtimezones=zones, year=2024)

    assert zone is not None
    assert datetime(2024, 1, 8, 8, tzinfo=UTC) == zone.to_utc(datetime(2024, 1, 8, 11))


def test_vtimezone_with_a_secondly_rule_is_not_used() -> None:
    text = EXCHANGE_ROMANCE.replace("FREQ=YEARLY;INTERVAL=1", "FREQ=SECONDLY")
    zones = vtimezones_of(parse_text(text).calendars[0])
    defects: list[str] = []
    zone = resolve_zone(
        "Romance Standard Time", vtimezones=zones, year=2026, defects=defects
    )

    assert zone is not None
    assert "Europe/Paris" == zone.name
    assert ["unusable-vtimezone"] == defects


def test_vtimezone_repeated_hour_is_read_as_the_first_one() -> None:
    zones = vtimezones_of(parse_text(EXCHANGE_ROMANCE).calendars[0])
    zone = resolve_zone("Romance Standard Time", vtimezones=zones, year=2026)

    assert zone is not None
    assert datetime(2026, 10, 25, 0, 30, tzinfo=UTC) == zone.to_utc(
        datetime(2026, 10, 25, 2, 30)
    )


@pytest.mark.parametrize(
    ("tzid", "expected"),
    [
        ("Europe/Madrid", "Europe/Madrid"),
        ("europe/madrid", "Europe/Madrid"),
        ("/freeassociation.sourceforge.net/Tzfile/Europe/Berlin", "Europe/Berlin"),
        ("/mozilla.org/20070129_1/Europe/Berlin", "Europe/Berlin"),
        ("Romance Standard Time", "Europe/Paris"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("FLE Standard Time", "Europe/Kiev"),
        ("(UTC+01:00) Brussels, Copenhagen, Madrid, Paris", "Europe/Paris"),
        ("(UTC+01:00) Bruselas, Copenhague, Madrid, París", "Europe/Paris"),
        ("(UTC+01:00) Brussel·les, Copenhaguen, Madrid, París", "Europe/Paris"),
        ("(GMT+01:00) Brussels, Copenhagen, Madrid, Paris", "Europe/Paris"),
        ("(UTC-05:00) Eastern Time (US & Canada)", "America/New_York"),
        ("(UTC+00:00) Dublin, Edinburgh, Lisbon, London", "Europe/London"),
        ("Canberra, Melbourne, Sydney", "Australia/Sydney"),
    ],
)
def test_zone_name_resolves_to_iana(tzid: str, expected: str) -> None:
    zone = zone_by_name(tzid, year=2026)

    assert expected == (zone.name if zone else None)


@pytest.mark.parametrize(
    "tzid",
    [
        "(UTC+01:00)",
        "(UTC+02:00) Brussels, Copenhagen, Madrid, Paris",
        "GMT +0100 (Standard) / GMT +0200 (Daylight)",
        "tzone://Microsoft/Custom",
        "Customized Time Zone",
        "CUSTOM_tzid",
        "",
        "../../etc/passwd",
    ],
)
def test_zone_name_that_cannot_be_trusted_gives_none(tzid: str) -> None:
    assert None is zone_by_name(tzid, year=2026)


def test_display_name_zone_follows_summer_time() -> None:
    zone = zone_by_name("(UTC+01:00) Brussels, Copenhagen, Madrid, Paris", year=2026)

    assert zone is not None
    assert datetime(2026, 7, 1, 16, tzinfo=UTC) == zone.to_utc(datetime(2026, 7, 1, 18))
