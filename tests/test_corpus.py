"""Each real invitation of tests/data read to the time SOURCES.md says is right."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.errors import CalendarError
from mailbot.models import Invitation
from mailbot.parsers.envelope import parse_envelope
from mailbot.parsers.invitation import read_calendar_events, read_invitation

DATA = Path(__file__).parent / "data"
MADRID = ZoneInfo("Europe/Madrid")
NOW = datetime(2014, 1, 1, tzinfo=UTC)  # before every event of the corpus
HORIZON_MONTHS = 12 * 15

# file name: (which event of a multi-event .ics, the facts expected)
EXPECTED: dict[str, tuple[int, dict[str, object]]] = {
    "comm-central__cancel-repeat-event.eml": (
        0,
        {"method": "CANCEL", "uid": "02e79b96", "problem": None, "times": []},
    ),
    "comm-central__cancel-single-event.eml": (
        0,
        {"method": "CANCEL", "uid": "02e79b96", "problem": None},
    ),
    "comm-central__exception-major.eml": (
        0,
        {
            "times": [("2022-03-17 06:00", "2022-03-17 06:30")],
            "recurrence_id": "2022-03-17 12:00",
        },
    ),
    "comm-central__invite-notes-style.eml": (
        0,
        {"method": "REQUEST", "times": [("2021-10-26 08:00", "2021-10-26 09:00")]},
    ),
    "comm-central__meet-meeting-invite.eml": (
        0,
        {"method": "REQUEST", "times": [("2021-03-22 10:30", "2021-03-22 11:30")]},
    ),
    "comm-central__message-containing-event.eml": (
        0,
        {"method": "PUBLISH", "times": [("2016-09-01 08:25", "2016-09-01 08:50")]},
    ),
    "comm-central__outlook-test-invite.eml": (
        0,
        {"method": "REQUEST", "times": [("2021-11-27 08:00", "2021-11-27 08:30")]},
    ),
    "comm-central__repeat-event.eml": (
        0,
        {
            "times": [
                ("2022-03-16 12:00", "2022-03-16 12:30"),
                ("2022-03-17 12:00", "2022-03-17 12:30"),
                ("2022-03-18 12:00", "2022-03-18 12:30"),
            ]
        },
    ),
    "comm-central__teams-meeting-invite.eml": (
        0,
        {"times": [("2020-12-02 18:00", "2020-12-02 20:00")]},
    ),
    "comm-central__update-major.eml": (
        0,
        {"sequence": 2, "times": [("2022-03-16 06:00", "2022-03-16 06:30")]},
    ),
    "ical4j__apple-iphone-os-26.ics": (
        0,
        {"times": [("2026-05-22 10:30", "2026-05-22 10:40")]},
    ),
    "ical4j__blankTzid_exchange.ics": (
        0,
        {"times": [("2015-08-26 11:00", "2015-08-26 12:00")]},
    ),
    "icalendar__bom_calendar.ics": (0, {"error": "no-event"}),
    "icalendar__issue_165_ms_cdo_custom_tzid_byday_spaces.ics": (
        0,
        {
            "first": ("2015-07-03 10:00", "2015-07-03 10:30"),
            "last": ("2015-07-22 10:00", "2015-07-22 10:30"),
            "count": 14,
        },
    ),
    "icalendar__issue_237_non_ascii_tzid.ics": (
        0,
        {"times": [("2017-05-11 18:30", "2017-05-11 19:00")]},
    ),
    "icalendar__issue_313_prefixed_tzid_evolution_lightning.ics": (
        0,
        {"times": [("2020-04-26 14:00", "2020-04-26 15:00")]},
    ),
    "icalendar__issue_350_x_wr_timezone_method_request.ics": (
        0,
        {"method": "REQUEST", "times": [("2022-02-22 19:30", "2022-02-22 20:30")]},
    ),
    "icalendar__issue_722_missing_vtimezone_custom.ics": (
        0,
        {"problem": "unknown-timezone", "times": []},
    ),
    "icalevents__duration.ics": (
        1,
        {"times": [("2018-01-15 10:00", "2018-01-15 13:00")]},
    ),
    "icalevents__multi_exdate_same_line_ms.ics": (
        0,
        {
            "first": ("2022-03-11 17:00", "2022-03-11 17:30"),
            "dates": [
                "2022-03-11",
                "2022-03-25",
                "2022-04-15",
                "2022-04-22",
                "2022-04-29",
            ],
        },
    ),
    "icalevents__recurrenceid_ms_allday.ics": (
        0,
        {"problem": "all-day", "all_day": True, "times": []},
    ),
    "khal__event_dt_mixed_awareness.ics": (
        0,
        {"problem": "ambiguous-time", "times": []},
    ),
    "khal__event_dt_rrule_invalid_until2.ics": (
        0,
        {
            "first": ("2014-04-09 09:30", "2014-04-09 10:30"),
            "last": ("2014-12-03 09:30", "2014-12-03 10:30"),
        },
    ),
    "node-ical__Office-2012-owa.ics": (
        1,
        {"times": [("2020-10-28 18:30", "2020-10-28 20:00")]},
    ),
    "node-ical__bad_custom_ms_tz.ics": (
        0,
        {"problem": "unknown-timezone", "times": []},
    ),
    "node-ical__bad_ms_tz_customized_time_zone.ics": (
        0,
        {"first": ("2020-08-25 16:35", "2020-08-25 17:50")},
    ),
    "node-ical__exchange-custom-tz.ics": (
        0,
        {"times": [("2019-04-30 04:00", "2019-04-30 07:00")]},
    ),
    "node-ical__test_with_int_tzid.ics": (
        1,
        {"times": [("2024-01-08 11:00", "2024-01-08 12:00")]},
    ),
    "recurring-ical-events__issue_18_cancel_status_lightning.ics": (
        0,
        {"cancelled": ["2020-01-29 22:00"], "count": 3},
    ),
    "recurring-ical-events__issue_86_floating_x_wr_timezone.ics": (
        0,
        {"times": [("2021-09-16 21:00", "2021-09-16 22:45")]},
    ),
    "recurring-ical-events__x_wr_timezone_issue_59_google.ics": (
        0,
        {"times": [("2021-12-22 18:00", "2021-12-22 19:00")]},
    ),
    "vobject__ms_tzid_outlook12_commas.ics": (0, {"problem": "no-end", "times": []}),
}


def read(name: str, index: int) -> Invitation:
    data = (DATA / name).read_bytes()
    if name.endswith(".eml"):
        envelope = parse_envelope(
            data, service_address="localretmeet@webfine.com", own_domain="webfine.com"
        )
        return read_invitation(
            envelope.calendars, now=NOW, horizon_months=HORIZON_MONTHS
        )
    events = read_calendar_events(data, now=NOW, horizon_months=HORIZON_MONTHS)
    return events[index]


def local(moment: datetime) -> str:
    return moment.astimezone(MADRID).strftime("%Y-%m-%d %H:%M")


def facts(invitation: Invitation) -> dict[str, object]:
    pairs = [(local(o.start), local(o.end)) for o in invitation.occurrences]
    rid = invitation.recurrence_id
    return {
        "method": invitation.method,
        "uid": invitation.uid,
        "sequence": invitation.sequence,
        "problem": invitation.problem,
        "all_day": invitation.all_day,
        "times": pairs,
        "first": pairs[0] if pairs else None,
        "last": pairs[-1] if pairs else None,
        "count": len(pairs),
        "dates": [start[:10] for start, _ in pairs],
        "cancelled": [local(o.start) for o in invitation.occurrences if o.cancelled],
        "recurrence_id": local(rid) if rid else None,
    }


def test_every_corpus_file_has_an_expected_reading() -> None:
    files = {p.name for p in DATA.iterdir() if p.is_file() and "__" in p.name}

    assert set(EXPECTED) == files


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=sorted(EXPECTED))
def test_corpus_file_reads_as_sources_say(name: str) -> None:
    index, expected = EXPECTED[name]

    if "error" in expected:
        with pytest.raises(CalendarError) as caught:
            read(name, index)
        actual: dict[str, object] = {"error": caught.value.reason}
    else:
        found = facts(read(name, index))
        actual = {key: found[key] for key in expected}

    assert expected == actual
