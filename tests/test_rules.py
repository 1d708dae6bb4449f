"""Tests of the booking rules: one rule at a time, with a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbot.config import RulesConfig
from mailbot.models import (
    Check,
    Entity,
    Folder,
    Invitation,
    Needs,
    Occurrence,
    Outcome,
    Slot,
)
from mailbot.pool import Holding
from mailbot.rules import Verdict, decide_cancel, decide_request

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
RULES = RulesConfig()
POOL = ("adv-01", "adv-02", "adv-03")
NO_NEEDS = Needs()
ENTITY = Entity(nif="P0801900B", name="Ajuntament de Prova", email="sec@prova.cat")
RULE_ORDER = (
    "registered",
    "duration",
    "future",
    "notice",
    "capacity",
    "channel",
    "participants",
    "recurrence",
)


def at(days: float, hours: float = 0) -> datetime:
    """A moment ``days`` and ``hours`` after NOW."""
    return NOW + timedelta(days=days, hours=hours)


def meeting(
    start: datetime, hours: float = 2, *, cancelled: bool = False
) -> Occurrence:
    end = start + timedelta(hours=hours)
    return Occurrence(start=start, end=end, cancelled=cancelled)


def invitation(*occurrences: Occurrence, **fields: Any) -> Invitation:
    base = Invitation(
        uid="uid-1@prova.cat",
        method="REQUEST",
        sequence=0,
        dtstamp=NOW,
        organizer="sec@prova.cat",
        organizer_name="Secretaria",
        attendees=("localretmeet@webfine.com",),
        summary="Ple ordinari",
        description="",
        location="",
        comment="",
        status="CONFIRMED",
        tzid="Europe/Madrid",
        zone="Europe/Madrid",
        occurrences=occurrences,
        recurring=len(occurrences) > 1,
    )
    return replace(base, **fields)


def decide(
    request: Invitation,
    *,
    entity: Entity | None = ENTITY,
    needs: Needs = NO_NEEDS,
    arrived: datetime = NOW,
    holdings: tuple[Holding, ...] = (),
    previous: tuple[Occurrence, ...] = (),
    sender_matches: bool = True,
    pool: tuple[str, ...] = POOL,
) -> Verdict:
    return decide_request(
        request,
        entity=entity,
        needs=needs,
        arrived=arrived,
        now=NOW,
        rules=RULES,
        pool=pool,
        holdings=holdings,
        previous=previous,
        sender_matches=sender_matches,
    )


def check(verdict: Verdict, rule: str) -> Check:
    return next(c for c in verdict.decision.checks if c.rule == rule)


def outcome(verdict: Verdict) -> tuple[Outcome, str]:
    return verdict.decision.outcome, verdict.decision.reason


def full_pool(start: datetime, end: datetime) -> tuple[Holding, ...]:
    return tuple(Holding(start, end, name, booking_id=n) for n, name in enumerate(POOL))


TOMORROW = meeting(at(2))  # two days ahead: every rule passes by default


# The whole decision.


def test_a_fitting_request_is_booked_with_a_license() -> None:
    expected = (Outcome.BOOKED, "fits", ((TOMORROW, "adv-01"),))

    verdict = decide(invitation(TOMORROW))

    assert expected == (*outcome(verdict), verdict.allocations)


def test_a_booked_request_is_filed_and_answered_without_support() -> None:
    expected = (Folder.PROCESSED, True, False, (), ())

    decision = decide(invitation(TOMORROW)).decision

    assert expected == (
        decision.folder,
        decision.reply,
        decision.notify_support,
        decision.failing,
        decision.proposals,
    )


def test_every_rule_is_kept_in_order_when_all_pass() -> None:
    expected = (RULE_ORDER, (True,) * len(RULE_ORDER))

    checks = decide(invitation(TOMORROW)).decision.checks

    assert expected == (tuple(c.rule for c in checks), tuple(c.passed for c in checks))


def test_every_failing_rule_is_kept_while_the_first_one_decides() -> None:
    late = meeting(at(0, 3))
    needs = Needs(participants=400)
    holdings = full_pool(at(0, 2), at(0, 6))
    expected = (Outcome.PENDING, "late-notice", ("notice", "capacity", "participants"))

    verdict = decide(invitation(late), needs=needs, holdings=holdings)

    failed = tuple(c.rule for c in verdict.decision.checks if not c.passed)
    assert expected == (*outcome(verdict), failed)
    assert [*RULE_ORDER] == [c.rule for c in verdict.decision.checks]


def test_the_detail_names_every_failing_rule() -> None:
    verdict = decide(invitation(meeting(at(0, 3))), needs=Needs(participants=400))

    detail = verdict.decision.detail

    assert detail.startswith("notice: ")
    assert "; participants: 400, more than 300" in detail


def test_nothing_is_allocated_unless_booked() -> None:
    expected = ()

    verdict = decide(invitation(TOMORROW), needs=Needs(participants=301))

    assert expected == verdict.allocations


# 1. registered


def test_no_entity_is_unregistered_and_declined_with_a_reply() -> None:
    expected = (Outcome.UNREGISTERED, "not-registered", True, False)

    decision = decide(invitation(TOMORROW), entity=None).decision

    actual = (
        decision.outcome,
        decision.reason,
        decision.reply,
        decision.notify_support,
    )
    assert expected == actual


def test_a_pending_entity_waits_for_support() -> None:
    entity = replace(ENTITY, status="pending")
    expected = (Outcome.PENDING, "entity-not-confirmed", True)

    decision = decide(invitation(TOMORROW), entity=entity).decision

    assert expected == (decision.outcome, decision.reason, decision.notify_support)


def test_a_rejected_entity_is_unregistered() -> None:
    entity = replace(ENTITY, status="rejected")
    expected = (Outcome.UNREGISTERED, "entity-rejected")

    actual = outcome(decide(invitation(TOMORROW), entity=entity))

    assert expected == actual


def test_an_organizer_and_sender_of_different_entities_is_a_sender_mismatch() -> None:
    expected = (Outcome.UNREGISTERED, "sender-mismatch")

    actual = outcome(decide(invitation(TOMORROW), sender_matches=False))

    assert expected == actual


def test_unregistered_comes_before_every_other_failure() -> None:
    request = invitation(problem="all-day")
    expected = (Outcome.UNREGISTERED, "not-registered")

    actual = outcome(decide(request, entity=None, needs=Needs(participants=999)))

    assert expected == actual


# 2. duration


def test_an_invitation_problem_asks_for_information_without_support() -> None:
    request = invitation(problem="no-end", problem_detail="no DTEND nor DURATION")
    expected = (Outcome.NEEDS_INFO, "no-end", True, False)

    decision = decide(request).decision

    actual = (
        decision.outcome,
        decision.reason,
        decision.reply,
        decision.notify_support,
    )
    assert expected == actual


def test_an_invitation_problem_is_detailed_in_the_duration_check() -> None:
    request = invitation(problem="no-end", problem_detail="no DTEND nor DURATION")
    expected = Check("duration", False, "no-end: no DTEND nor DURATION")

    actual = check(decide(request), "duration")

    assert expected == actual


def test_the_time_rules_are_kept_as_not_checked_without_a_usable_time() -> None:
    request = invitation(problem="unknown-timezone")
    expected = {"future", "notice", "capacity"}

    verdict = decide(request)

    not_checked = {
        c.rule
        for c in verdict.decision.checks
        if not c.passed and c.detail.startswith("not checked")
    }
    assert expected == not_checked


def test_an_all_day_invitation_without_a_problem_code_still_needs_information() -> None:
    request = invitation(meeting(at(2), hours=24), all_day=True)
    expected = (Outcome.NEEDS_INFO, "all-day")

    actual = outcome(decide(request))

    assert expected == actual


def test_an_occurrence_ending_at_its_start_has_no_usable_duration() -> None:
    request = invitation(meeting(at(2), hours=0))
    expected = (Outcome.NEEDS_INFO, "non-positive-duration")

    actual = outcome(decide(request))

    assert expected == actual


def test_the_duration_check_states_the_minutes() -> None:
    expected = Check("duration", True, "120 minutes")

    actual = check(decide(invitation(TOMORROW)), "duration")

    assert expected == actual


# 3. future


def test_a_meeting_in_the_past_is_declined() -> None:
    expected = (Outcome.DECLINED, "in-the-past", True)

    decision = decide(invitation(meeting(at(-1)))).decision

    assert expected == (decision.outcome, decision.reason, decision.reply)


def test_a_meeting_starting_now_is_in_the_past() -> None:
    expected = (Outcome.DECLINED, "in-the-past")

    actual = outcome(decide(invitation(meeting(NOW))))

    assert expected == actual


def test_a_series_ignores_its_past_occurrences_when_one_is_ahead() -> None:
    past, ahead = meeting(at(-7)), meeting(at(7))
    expected = (Outcome.BOOKED, "fits", ((ahead, "adv-01"),))

    verdict = decide(invitation(past, ahead), arrived=at(-8))

    assert expected == (*outcome(verdict), verdict.allocations)


def test_a_series_entirely_in_the_past_is_declined() -> None:
    expected = (Outcome.DECLINED, "in-the-past")

    actual = outcome(decide(invitation(meeting(at(-14)), meeting(at(-7)))))

    assert expected == actual


def test_a_request_with_every_occurrence_cancelled_has_nothing_to_book() -> None:
    request = invitation(meeting(at(2), cancelled=True))
    expected = (Outcome.DECLINED, "nothing-to-book")

    actual = outcome(decide(request))

    assert expected == actual


# 4. notice


def test_exactly_the_minimum_notice_passes() -> None:
    start = at(1)
    expected = (Outcome.BOOKED, "fits")

    actual = outcome(
        decide(invitation(meeting(start)), arrived=start - timedelta(hours=24))
    )

    assert expected == actual


def test_a_minute_less_than_the_minimum_notice_is_late() -> None:
    start = at(2)
    arrived = start - timedelta(hours=23, minutes=59)
    expected = (Outcome.PENDING, "late-notice", True)

    decision = decide(invitation(meeting(start)), arrived=arrived).decision

    assert expected == (decision.outcome, decision.reason, decision.notify_support)


def test_notice_is_counted_from_arrival_not_from_now() -> None:
    start = at(0, 30)
    expected = (Outcome.BOOKED, "fits")

    actual = outcome(decide(invitation(meeting(start)), arrived=at(-1)))

    assert expected == actual


def test_an_update_with_unchanged_time_arriving_late_is_still_booked() -> None:
    occurrence = meeting(at(0, 3))
    request = invitation(occurrence, sequence=1, description="new agenda")
    expected = (Outcome.BOOKED, "fits")

    actual = outcome(decide(request, previous=(occurrence,)))

    assert expected == actual


def test_an_update_that_moves_the_meeting_late_is_pending() -> None:
    before = meeting(at(0, 3))
    moved = meeting(at(0, 4))
    expected = (Outcome.PENDING, "late-notice", ((moved, "late-notice"),))

    decision = decide(invitation(moved, sequence=1), previous=(before,)).decision

    assert expected == (decision.outcome, decision.reason, decision.failing)


def test_an_update_that_changes_only_the_end_is_checked_for_notice() -> None:
    before = meeting(at(0, 3), hours=2)
    longer = meeting(at(0, 3), hours=3)
    expected = (Outcome.PENDING, "late-notice")

    actual = outcome(decide(invitation(longer, sequence=1), previous=(before,)))

    assert expected == actual


def test_a_series_lists_only_its_late_occurrences() -> None:
    late, fine = meeting(at(0, 5)), meeting(at(7))
    expected = ((late, "late-notice"),)

    decision = decide(invitation(late, fine)).decision

    assert expected == decision.failing


# 5. capacity


def test_a_full_pool_is_pending_with_support_copied() -> None:
    start = at(2)
    holdings = full_pool(start - timedelta(hours=1), start + timedelta(hours=3))
    expected = (Outcome.PENDING, "pool-full", True)

    decision = decide(invitation(meeting(start)), holdings=holdings).decision

    assert expected == (decision.outcome, decision.reason, decision.notify_support)


def test_a_full_pool_proposes_the_nearest_free_meeting_times() -> None:
    # Three licenses held 11:00-16:00. A 12:00-14:00 meeting, held 30 min on
    # each side, fits if it ends by 10:30 (3.5 h earlier) or starts at 16:30.
    start = at(2, 3)  # 12:00
    holdings = full_pool(at(2, 2), at(2, 7))
    expected = (
        Slot(at(2, -0.5), at(2, 1.5)),
        Slot(at(2, -1), at(2, 1)),
        Slot(at(2, -1.5), at(2, 0.5)),
    )

    decision = decide(invitation(meeting(start)), holdings=holdings).decision

    assert expected == decision.proposals


def test_proposals_respect_the_minimum_notice() -> None:
    # The meeting is 25 h ahead; earlier proposals would be under 24 h notice.
    start = at(1, 1)
    holdings = full_pool(start - timedelta(hours=1), start + timedelta(hours=3))

    expected = 3

    decision = decide(invitation(meeting(start)), holdings=holdings).decision

    assert expected == len(decision.proposals)
    assert all(p.start >= at(1) for p in decision.proposals)


def test_setup_and_overrun_make_back_to_back_meetings_collide() -> None:
    # Others meet 08:00-10:00, held until 10:30; ours at 10:00 is held from 09:30.
    start = at(2, 1)
    holdings = full_pool(
        start - timedelta(hours=2, minutes=30), start + timedelta(minutes=30)
    )
    expected = (Outcome.PENDING, "pool-full")

    actual = outcome(decide(invitation(meeting(start)), holdings=holdings))

    assert expected == actual


def test_holds_that_only_touch_do_not_collide() -> None:
    # Others held until 09:30; ours, at 10:00, is held from 09:30.
    start = at(2, 1)
    holdings = full_pool(start - timedelta(hours=3), start - timedelta(minutes=30))
    expected = (Outcome.BOOKED, "fits")

    actual = outcome(decide(invitation(meeting(start)), holdings=holdings))

    assert expected == actual


def test_a_series_where_one_occurrence_collides_lists_exactly_that_one() -> None:
    first, second, third = meeting(at(2)), meeting(at(9)), meeting(at(16))
    holdings = full_pool(at(9, -1), at(9, 3))
    expected = (Outcome.PENDING, "pool-full", ((second, "pool-full"),))

    decision = decide(invitation(first, second, third), holdings=holdings).decision

    assert expected == (decision.outcome, decision.reason, decision.failing)


def test_a_series_gets_a_license_for_each_occurrence() -> None:
    occurrences = (meeting(at(2)), meeting(at(9)), meeting(at(16)))
    holdings = (Holding(at(9, -1), at(9, 3), "adv-01"),)
    expected = tuple(zip(occurrences, ("adv-01", "adv-02", "adv-01"), strict=True))

    verdict = decide(invitation(*occurrences), holdings=holdings)

    assert expected == verdict.allocations


def test_room_by_count_without_one_free_license_is_treated_as_full() -> None:
    # Pool of two: adv-01 held before our start, adv-02 after it, never both.
    start = at(2)
    holdings = (
        Holding(start - timedelta(hours=2), start, "adv-01"),
        Holding(start + timedelta(hours=1), start + timedelta(hours=4), "adv-02"),
    )
    request = invitation(meeting(start))
    expected = (Outcome.PENDING, "pool-full")

    verdict = decide(request, holdings=holdings, pool=("adv-01", "adv-02"))

    assert expected == outcome(verdict)
    assert "1 of 2 held at once" in check(verdict, "capacity").detail


# 6. channel


def test_a_plenary_on_the_consortium_channel_by_an_entity_with_its_own_is_pending() -> (
    None
):
    entity = replace(
        ENTITY, youtube_channel="https://youtube.com/@prova", channel_agreement=True
    )
    needs = Needs(stream=True, channel="consortium", kind="plenary")
    expected = (Outcome.PENDING, "consortium-channel-not-allowed", True)

    decision = decide(invitation(TOMORROW), entity=entity, needs=needs).decision

    assert expected == (decision.outcome, decision.reason, decision.notify_support)


def test_the_consortium_channel_without_the_agreement_is_pending() -> None:
    needs = Needs(stream=True, channel="consortium")
    expected = (Outcome.PENDING, "consortium-channel-not-allowed")

    actual = outcome(decide(invitation(TOMORROW), needs=needs))

    assert expected == actual


def test_the_consortium_channel_with_the_agreement_and_no_own_channel_is_booked() -> (
    None
):
    entity = replace(ENTITY, channel_agreement=True)
    needs = Needs(stream=True, channel="consortium", kind="plenary")
    expected = (Outcome.BOOKED, "fits")

    actual = outcome(decide(invitation(TOMORROW), entity=entity, needs=needs))

    assert expected == actual


def test_a_plenary_without_a_stated_channel_passes_and_says_so() -> None:
    needs = Needs(stream=True, channel=None, kind="plenary")
    expected = Check("channel", True, "channel not stated")

    actual = check(decide(invitation(TOMORROW), needs=needs), "channel")

    assert expected == actual


def test_the_own_channel_is_always_allowed() -> None:
    needs = Needs(stream=True, channel="own")
    expected = Check("channel", True, "own channel")

    actual = check(decide(invitation(TOMORROW), needs=needs), "channel")

    assert expected == actual


# 7. participants


def test_the_maximum_of_participants_is_allowed() -> None:
    expected = (Outcome.BOOKED, "fits")

    actual = outcome(decide(invitation(TOMORROW), needs=Needs(participants=300)))

    assert expected == actual


def test_one_participant_over_the_maximum_is_pending() -> None:
    expected = (Outcome.PENDING, "too-many-participants")

    actual = outcome(decide(invitation(TOMORROW), needs=Needs(participants=301)))

    assert expected == actual


def test_participants_not_stated_pass() -> None:
    expected = Check("participants", True, "not stated")

    actual = check(decide(invitation(TOMORROW)), "participants")

    assert expected == actual


# 8. recurrence


def test_a_single_meeting_passes_the_recurrence_rule() -> None:
    expected = Check("recurrence", True, "a single meeting")

    actual = check(decide(invitation(TOMORROW)), "recurrence")

    assert expected == actual


def test_a_series_that_fits_is_booked_and_counts_its_occurrences() -> None:
    request = invitation(meeting(at(2)), meeting(at(9)))
    expected = Check("recurrence", True, "2 occurrences checked over 12 months")

    actual = check(decide(request), "recurrence")

    assert expected == actual


def test_a_truncated_series_says_only_the_first_were_checked() -> None:
    request = invitation(meeting(at(2)), meeting(at(9)), truncated=True)
    expected = Check("recurrence", True, "only the first 2 occurrences were checked")

    actual = check(decide(request), "recurrence")

    assert expected == actual


def test_a_series_with_a_misfit_fails_the_recurrence_rule() -> None:
    request = invitation(meeting(at(0, 5)), meeting(at(9)))

    actual = check(decide(request), "recurrence")

    assert not actual.passed
    assert actual.detail.endswith("; 1 do not fit")


def test_cancelled_occurrences_are_ignored() -> None:
    # A cancelled occurrence that is late and collides changes nothing.
    cancelled = meeting(at(0, 5), cancelled=True)
    kept = meeting(at(7))
    holdings = full_pool(at(0, 4), at(0, 8))
    expected = (Outcome.BOOKED, "fits", ((kept, "adv-01"),))

    verdict = decide(invitation(cancelled, kept), holdings=holdings)

    assert expected == (*outcome(verdict), verdict.allocations)


def test_a_cancelled_occurrence_without_duration_needs_no_information() -> None:
    cancelled = meeting(at(3), hours=0, cancelled=True)
    expected = (Outcome.BOOKED, "fits")

    actual = outcome(decide(invitation(TOMORROW, cancelled)))

    assert expected == actual


def test_a_sender_mismatch_comes_before_a_pending_registration() -> None:
    entity = replace(ENTITY, status="pending")
    expected = (Outcome.UNREGISTERED, "sender-mismatch")

    actual = outcome(decide(invitation(TOMORROW), entity=entity, sender_matches=False))

    assert expected == actual


def test_a_cancelled_first_occurrence_is_not_the_start() -> None:
    cancelled = meeting(at(-1), cancelled=True)
    expected = (Outcome.BOOKED, "fits")

    actual = outcome(decide(invitation(cancelled, TOMORROW)))

    assert expected == actual


# Cancellations.


def test_cancelling_a_known_booking_is_confirmed() -> None:
    expected = (Outcome.CANCELLED, "cancelled", True, Folder.PROCESSED)

    decision = decide_cancel(invitation(method="CANCEL"), known=True)

    assert expected == (
        decision.outcome,
        decision.reason,
        decision.reply,
        decision.folder,
    )


def test_cancelling_an_unknown_booking_is_answered_politely() -> None:
    expected = (Outcome.CANCELLED, "unknown-booking", True, False)

    decision = decide_cancel(invitation(method="CANCEL"), known=False)

    actual = (
        decision.outcome,
        decision.reason,
        decision.reply,
        decision.notify_support,
    )
    assert expected == actual
