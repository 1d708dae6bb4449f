"""Reading one invitation: times, durations, problems, recurrence, parts."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from mailbot.errors import CalendarError
from mailbot.models import CalendarPart, Invitation
from mailbot.parsers.invitation import parse_calendar, read_invitation

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MADRID = ZoneInfo("Europe/Madrid")


def calendar(*event_lines: str, head: str = "METHOD:REQUEST", extra: str = "") -> bytes:
    body = "\n".join(event_lines)
    text = (
        f"BEGIN:VCALENDAR\nVERSION:2.0\n{head}\n{extra}"
        f"BEGIN:VEVENT\nUID:u1\n{body}\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    return text.replace("\n\n", "\n").encode()


def read(data: bytes, **options: object) -> Invitation:
    return parse_calendar(data, now=NOW, **options)  # type: ignore[arg-type]


def madrid(moment: datetime | None) -> str:
    assert moment is not None
    return moment.astimezone(MADRID).strftime("%Y-%m-%d %H:%M")


def starts(invitation: Invitation) -> list[str]:
    return [madrid(o.start) for o in invitation.occurrences]


def test_dtend_gives_the_end() -> None:
    invitation = read(calendar("DTSTART:20260310T170000Z", "DTEND:20260310T183000Z"))

    assert ("2026-03-10 18:00", "2026-03-10 19:30") == (
        madrid(invitation.start),
        madrid(invitation.end),
    )


def test_duration_gives_the_end_when_there_is_no_dtend() -> None:
    invitation = read(calendar("DTSTART:20260310T170000Z", "DURATION:PT2H15M"))

    assert "2026-03-10 20:15" == madrid(invitation.end)


def test_dtend_wins_over_a_disagreeing_duration_and_is_recorded() -> None:
    invitation = read(
        calendar("DTSTART:20260310T170000Z", "DTEND:20260310T173000Z", "DURATION:PT1H")
    )

    assert "2026-03-10 18:30" == madrid(invitation.end)
    assert "dtend-duration-disagree" in invitation.defects


def test_floating_time_is_read_in_madrid() -> None:
    invitation = read(calendar("DTSTART:20260710T180000", "DTEND:20260710T190000"))

    assert datetime(2026, 7, 10, 16, tzinfo=UTC) == invitation.start


def test_floating_time_is_read_in_the_zone_given_for_the_entity() -> None:
    invitation = read(
        calendar("DTSTART:20260710T180000", "DTEND:20260710T190000"),
        floating_zone="Atlantic/Canary",
    )

    assert datetime(2026, 7, 10, 17, tzinfo=UTC) == invitation.start


def test_x_wr_timezone_applies_to_floating_times() -> None:
    data = calendar(
        "DTSTART:20260710T180000",
        "DTEND:20260710T190000",
        extra="X-WR-TIMEZONE:America/New_York\n",
    )

    assert datetime(2026, 7, 10, 22, tzinfo=UTC) == read(data).start


def test_x_wr_timezone_does_not_shift_utc_times() -> None:
    data = calendar(
        "DTSTART:20260710T180000Z",
        "DTEND:20260710T190000Z",
        extra="X-WR-TIMEZONE:America/New_York\n",
    )

    assert datetime(2026, 7, 10, 18, tzinfo=UTC) == read(data).start


def test_unquoted_display_name_tzid_with_colon_is_read() -> None:
    data = calendar(
        "DTSTART;TZID=(UTC+01:00) Brussels, Copenhagen, Madrid, Paris:20260710T180000",
        "DTEND;TZID=(UTC+01:00) Brussels, Copenhagen, Madrid, Paris:20260710T190000",
    )

    assert "2026-07-10 18:00" == madrid(read(data).start)


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (("DTSTART;VALUE=DATE:20260310", "DTEND;VALUE=DATE:20260311"), "all-day"),
        (("DTSTART:20260310T170000Z",), "no-end"),
        (
            ("DTSTART:20260310T170000Z", "DTEND:20260310T170000Z"),
            "non-positive-duration",
        ),
        (("DTSTART:20260310T170000Z", "DURATION:-PT1H"), "non-positive-duration"),
        (
            ("DTSTART;TZID=Mars/Olympus:20260310T170000", "DURATION:PT1H"),
            "unknown-timezone",
        ),
        (
            ("DTSTART;TZID=Europe/Madrid:20260310T170000Z", "DURATION:PT1H"),
            "ambiguous-time",
        ),
        (
            ("DTSTART:20260310T170000", "DTEND;TZID=Europe/Madrid:20260310T180000"),
            "ambiguous-time",
        ),
        (("DTEND:20260310T180000Z", "SUMMARY:no start"), "no-start"),
        (
            ('DTSTART;TZID="(UTC+01:00)":20260310T170000', "DURATION:PT1H"),
            "unknown-timezone",
        ),
    ],
)
def test_untrustworthy_time_gives_a_problem_and_no_occurrence(
    lines: tuple[str, ...], problem: str
) -> None:
    invitation = read(calendar(*lines))

    assert (problem, ()) == (invitation.problem, invitation.occurrences)


def test_unknown_timezone_names_the_tzid() -> None:
    invitation = read(
        calendar("DTSTART;TZID=Mars/Olympus:20260310T170000", "DURATION:PT1H")
    )

    assert "Mars/Olympus" in invitation.problem_detail


def test_cancel_without_start_has_no_problem() -> None:
    data = calendar("SEQUENCE:3", "STATUS:CANCELLED", head="METHOD:CANCEL")
    invitation = read(data)

    assert ("CANCEL", 3, None, ()) == (
        invitation.method,
        invitation.sequence,
        invitation.problem,
        invitation.occurrences,
    )


def test_organizer_and_attendees_are_lower_case_addresses() -> None:
    invitation = read(
        calendar(
            "DTSTART:20260310T170000Z",
            "DURATION:PT1H",
            'ORGANIZER;CN="Secretaria, Ajuntament":MAILTO:Secretaria@Ajuntament.CAT',
            "ATTENDEE;CN=Suport:mailto:LocalretMeet@webfine.com",
            "ATTENDEE:no-reply@zoom.us",
        )
    )

    assert (
        "secretaria@ajuntament.cat",
        "Secretaria, Ajuntament",
        ("localretmeet@webfine.com", "no-reply@zoom.us"),
    ) == (invitation.organizer, invitation.organizer_name, invitation.attendees)


def test_text_properties_are_unescaped() -> None:
    invitation = read(
        calendar(
            "DTSTART:20260310T170000Z",
            "DURATION:PT1H",
            "SUMMARY:Ple ordinari\\, streaming\\; YouTube",
            "DESCRIPTION:Línia 1\\nLínia 2",
        )
    )

    assert ("Ple ordinari, streaming; YouTube", "Línia 1\nLínia 2") == (
        invitation.summary,
        invitation.description,
    )


def test_weekly_series_stays_at_18_madrid_across_the_march_change() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20260319T180000",
            "DTEND;TZID=Europe/Madrid:20260319T190000",
            "RRULE:FREQ=WEEKLY;COUNT=3",
        )
    )

    assert ["2026-03-19 18:00", "2026-03-26 18:00", "2026-04-02 18:00"] == starts(
        invitation
    )
    assert [17, 17, 16] == [o.start.hour for o in invitation.occurrences]


def test_rdate_adds_occurrences_from_several_lines() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20260310T180000",
            "DURATION:PT1H",
            "RDATE;TZID=Europe/Madrid:20260312T180000,20260314T100000",
            "RDATE:20260320T090000Z",
        )
    )

    assert [
        "2026-03-10 18:00",
        "2026-03-12 18:00",
        "2026-03-14 10:00",
        "2026-03-20 10:00",
    ] == starts(invitation)
    assert invitation.recurring


def test_exdate_list_in_another_zone_and_as_date_removes_occurrences() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20260302T180000",
            "DURATION:PT1H",
            "RRULE:FREQ=DAILY;COUNT=5",
            "EXDATE;TZID=America/New_York:20260303T120000,20260304T120000",
            "EXDATE;VALUE=DATE:20260306",
        )
    )

    assert ["2026-03-02 18:00", "2026-03-05 18:00"] == starts(invitation)


def test_override_moves_one_occurrence_even_in_another_zone() -> None:
    data = (
        b"BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:s\n"
        b"DTSTART;TZID=Europe/Madrid:20260302T180000\nDURATION:PT1H\n"
        b"RRULE:FREQ=DAILY;COUNT=3\nEND:VEVENT\n"
        b"BEGIN:VEVENT\nUID:s\nRECURRENCE-ID:20260303T170000Z\n"
        b"DTSTART;TZID=Europe/Madrid:20260303T200000\nDURATION:PT1H\nEND:VEVENT\n"
        b"END:VCALENDAR\n"
    )

    assert ["2026-03-02 18:00", "2026-03-03 20:00", "2026-03-04 18:00"] == starts(
        read(data)
    )


def test_override_written_as_a_date_matches_that_day() -> None:
    data = (
        b"BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:s\n"
        b"DTSTART;TZID=Europe/Madrid:20260302T180000\nDURATION:PT1H\n"
        b"RRULE:FREQ=DAILY;COUNT=3\nEND:VEVENT\n"
        b"BEGIN:VEVENT\nUID:s\nRECURRENCE-ID;VALUE=DATE:20260304\n"
        b"DTSTART;TZID=Europe/Madrid:20260304T090000\nDURATION:PT1H\nEND:VEVENT\n"
        b"END:VCALENDAR\n"
    )

    assert ["2026-03-02 18:00", "2026-03-03 18:00", "2026-03-04 09:00"] == starts(
        read(data)
    )


def test_cancelled_override_marks_its_occurrence_cancelled() -> None:
    data = (
        b"BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:s\n"
        b"DTSTART;TZID=Europe/Madrid:20260302T180000\nDURATION:PT1H\n"
        b"RRULE:FREQ=DAILY;COUNT=3\nEND:VEVENT\n"
        b"BEGIN:VEVENT\nUID:s\nRECURRENCE-ID;TZID=Europe/Madrid:20260303T180000\n"
        b"STATUS:CANCELLED\nEND:VEVENT\nEND:VCALENDAR\n"
    )

    assert [False, True, False] == [o.cancelled for o in read(data).occurrences]


@pytest.mark.parametrize(
    "until",
    ["20260305", "20260305T170000Z", "20260305T180000"],
)
def test_until_as_date_utc_or_local_includes_the_last_day(until: str) -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20260302T180000",
            "DURATION:PT1H",
            f"RRULE:FREQ=DAILY;UNTIL={until}",
        )
    )

    assert "2026-03-05 18:00" == starts(invitation)[-1]
    assert 4 == len(invitation.occurrences)


def test_byday_with_spaces_is_tolerated() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20260302T180000",
            "DURATION:PT1H",
            "RRULE:FREQ=WEEKLY;COUNT=3;BYDAY=MO, WE",
        )
    )

    assert ["2026-03-02 18:00", "2026-03-04 18:00", "2026-03-09 18:00"] == starts(
        invitation
    )


def test_series_is_cut_at_the_horizon() -> None:
    invitation = read(
        calendar("DTSTART:20260105T170000Z", "DURATION:PT1H", "RRULE:FREQ=WEEKLY"),
        horizon_months=2,
    )

    assert invitation.truncated
    assert "2026-02-23 18:00" == starts(invitation)[-1]


def test_huge_count_is_cut_at_the_cap_quickly() -> None:
    started = time.monotonic()
    invitation = read(
        calendar(
            "DTSTART:20260105T170000Z",
            "DURATION:PT1H",
            "RRULE:FREQ=DAILY;COUNT=1000000000",
        ),
        horizon_months=12 * 100,
    )

    assert invitation.truncated
    assert 500 == len(invitation.occurrences)
    assert time.monotonic() - started < 1


def test_series_started_years_ago_still_gets_its_coming_dates() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20150105T180000",
            "DURATION:PT1H",
            "RRULE:FREQ=WEEKLY;BYDAY=MO",
        )
    )

    assert "2026-01-05 18:00" == starts(invitation)[0]
    assert "2026-12-28 18:00" == starts(invitation)[-1]
    assert 52 == len(invitation.occurrences)
    assert invitation.truncated


def test_count_series_started_years_ago_keeps_its_remaining_dates() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20250106T180000",
            "DURATION:PT1H",
            "RRULE:FREQ=WEEKLY;COUNT=60",
        )
    )

    assert "2026-01-05 18:00" == starts(invitation)[0]
    assert "2026-02-23 18:00" == starts(invitation)[-1]
    assert not invitation.truncated


def test_series_wholly_over_keeps_only_its_last_meeting() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20240105T180000",
            "DURATION:PT1H",
            "RRULE:FREQ=MONTHLY;COUNT=6",
        )
    )

    assert ["2024-06-05 18:00"] == starts(invitation)


def test_daily_series_from_long_ago_with_a_huge_count_is_quick() -> None:
    started = time.monotonic()
    invitation = read(
        calendar(
            "DTSTART:19900105T170000Z",
            "DURATION:PT1H",
            "RRULE:FREQ=DAILY;COUNT=1000000000",
        )
    )

    assert invitation.truncated
    assert "2025-12-31 18:00" == starts(invitation)[0]
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=SECONDLY",
        "FREQ=MINUTELY;COUNT=5",
        "FREQ=DAILY;INTERVAL=0",
    ],
)
def test_hostile_rule_is_refused_as_unbounded(rule: str) -> None:
    with pytest.raises(CalendarError) as caught:
        read(calendar("DTSTART:20260105T170000Z", "DURATION:PT1H", f"RRULE:{rule}"))

    assert "unbounded-recurrence" == caught.value.reason


def test_rule_that_never_matches_returns_quickly() -> None:
    started = time.monotonic()
    invitation = read(
        calendar(
            "DTSTART:20260105T170000Z",
            "DURATION:PT1H",
            "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        )
    )

    assert 1 == len(invitation.occurrences)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello", "no-calendar"),
        (b"BEGIN:VCALENDAR\nEND:VCALENDAR\n", "no-event"),
        (b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n", "unparseable-calendar"),
        (b"BEGIN:VCALENDAR\n" + b"X:" + b"a" * 1_000_001, "too-large"),
        (b"BEGIN:VCALENDAR\n" + b"BEGIN:X\n" * 20, "too-deep"),
        (b"BEGIN:VCALENDAR\n" + b"BEGIN:X\nEND:X\n" * 1001, "too-many-components"),
    ],
)
def test_unusable_calendar_raises_calendar_error(data: bytes, reason: str) -> None:
    with pytest.raises(CalendarError) as caught:
        read(data)

    assert reason == caught.value.reason


def test_apple_calendar_without_method_but_with_attendees_is_a_request() -> None:
    invitation = read(
        calendar(
            "DTSTART:20260310T170000Z",
            "DURATION:PT1H",
            "ATTENDEE:mailto:localretmeet@webfine.com",
            head="PRODID:-//Apple Inc.//iPhone OS//EN",
        )
    )

    assert "REQUEST" == invitation.method
    assert "no-method-assumed-request" in invitation.defects


def test_body_method_wins_over_the_part_method() -> None:
    invitation = read(
        calendar("DTSTART:20260310T170000Z", "DURATION:PT1H", head="METHOD:cancel"),
        method_hint="REQUEST",
    )

    assert "CANCEL" == invitation.method
    assert "method-mismatch" in invitation.defects


def test_two_copies_of_one_invitation_count_once() -> None:
    inline = calendar("DTSTART:20260310T170000Z", "DURATION:PT1H")
    attached = inline.replace(b"\n", b"\r\n")
    invitation = read_invitation(
        [
            CalendarPart(inline, "text/calendar", "REQUEST", None),
            CalendarPart(attached, "application/ics", None, "invite.ics"),
        ],
        now=NOW,
    )

    assert "u1" == invitation.uid
    assert "several-invitations" not in invitation.defects


def test_parts_with_different_uids_take_the_first_request() -> None:
    publish = calendar(
        "DTSTART:20260310T170000Z", "DURATION:PT1H", head="METHOD:PUBLISH"
    )
    request = calendar("DTSTART:20260311T170000Z", "DURATION:PT1H").replace(
        b"UID:u1", b"UID:u2"
    )
    invitation = read_invitation(
        [
            CalendarPart(publish, "text/calendar", None, None),
            CalendarPart(request, "text/calendar", "REQUEST", None),
        ],
        now=NOW,
    )

    assert "u2" == invitation.uid
    assert "several-invitations" in invitation.defects


def test_no_parts_raise_calendar_error() -> None:
    with pytest.raises(CalendarError):
        read_invitation([], now=NOW)


def test_vtimezone_without_summer_time_for_madrid_is_not_trusted() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20260715T100000",
            "DTEND;TZID=Europe/Madrid:20260715T110000",
            extra="BEGIN:VTIMEZONE\nTZID:Europe/Madrid\nBEGIN:STANDARD\n"
            "DTSTART:19701025T030000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0100\n"
            "END:STANDARD\nEND:VTIMEZONE\n",
        )
    )

    assert "timezone-conflict" == invitation.problem
    assert () == invitation.occurrences


def test_series_whose_vtimezone_disagrees_only_in_summer_is_not_trusted() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20260115T100000",
            "DURATION:PT1H",
            "RRULE:FREQ=MONTHLY;COUNT=8",
            extra="BEGIN:VTIMEZONE\nTZID:Europe/Madrid\nBEGIN:STANDARD\n"
            "DTSTART:19701025T030000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0100\n"
            "END:STANDARD\nEND:VTIMEZONE\n",
        )
    )

    assert "timezone-conflict" == invitation.problem


def test_time_skipped_when_clocks_go_forward_is_not_a_time() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20260329T023000",
            "DTEND;TZID=Europe/Madrid:20260329T033000",
        )
    )

    assert "nonexistent-time" == invitation.problem


def test_series_starting_after_the_horizon_says_so() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20280229T100000",
            "DURATION:PT1H",
            "RRULE:FREQ=YEARLY;COUNT=3",
        )
    )

    assert "beyond-horizon" == invitation.problem


def test_series_whose_every_date_is_excluded_says_so() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20260302T100000",
            "DURATION:PT1H",
            "RRULE:FREQ=WEEKLY;COUNT=2",
            "EXDATE;TZID=Europe/Madrid:20260302T100000,20260309T100000",
        )
    )

    assert "no-occurrences" == invitation.problem


def test_override_of_a_meeting_already_over_is_passed_by() -> None:
    invitation = read(
        calendar(
            "DTSTART;TZID=Europe/Madrid:20250106T180000",
            "DURATION:PT1H",
            "RRULE:FREQ=WEEKLY",
        ).replace(
            b"END:VCALENDAR",
            b"BEGIN:VEVENT\nUID:u1\nRECURRENCE-ID;TZID=Europe/Madrid:20250113T180000\n"
            b"DTSTART;TZID=Europe/Madrid:20250113T190000\nDURATION:PT1H\nEND:VEVENT\n"
            b"END:VCALENDAR",
        )
    )

    assert "override-without-occurrence" not in invitation.defects
    assert "2026-01-05 18:00" == starts(invitation)[0]
