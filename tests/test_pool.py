"""Tests of the floating license pool: holds, peaks, allocation, free slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot.config import RulesConfig
from mailbot.models import Occurrence, Slot
from mailbot.pool import (
    Holding,
    allocate,
    hold_interval,
    meeting_slot,
    nearest_free_slots,
    overlaps,
    peak,
)

DAY = datetime(2025, 3, 10, tzinfo=UTC)
POOL = ("adv-01", "adv-02", "adv-03")
NAMES = ("adv-01", "adv-02", "adv-03", "adv-04")


def at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


def slot(start: float, end: float) -> Slot:
    return Slot(at(start), at(end))


def held(start: float, end: float, license: str) -> Holding:
    return Holding(at(start), at(end), license)


def test_hold_interval_adds_setup_before_and_overrun_after() -> None:
    occurrence = Occurrence(start=at(10), end=at(12))
    rules = RulesConfig(setup_minutes=30, overrun_minutes=45)
    expected = Slot(at(9.5), at(12.75))

    actual = hold_interval(occurrence, rules)

    assert expected == actual


def test_meeting_slot_undoes_hold_interval() -> None:
    occurrence = Occurrence(start=at(10), end=at(12))
    rules = RulesConfig(setup_minutes=15, overrun_minutes=60)
    expected = Slot(at(10), at(12))

    actual = meeting_slot(hold_interval(occurrence, rules), rules)

    assert expected == actual


def test_overlaps_is_false_for_touching_intervals() -> None:
    expected = (False, False, True)

    actual = (
        overlaps(slot(9, 10), slot(10, 11)),
        overlaps(slot(10, 11), slot(9, 10)),
        overlaps(slot(9, 10.5), slot(10, 11)),
    )

    assert expected == actual


def test_peak_is_zero_without_holdings() -> None:
    expected = 0

    actual = peak(slot(9, 10), [])

    assert expected == actual


def test_peak_counts_holdings_overlapping_at_one_instant() -> None:
    holdings = [held(9, 11, "a"), held(10, 12, "b"), held(10.5, 13, "c")]
    expected = 3

    actual = peak(slot(8, 14), holdings)

    assert expected == actual


def test_peak_does_not_add_holdings_that_never_meet() -> None:
    holdings = [held(9, 10, "a"), held(11, 12, "b"), held(13, 14, "c")]
    expected = 1

    actual = peak(slot(8, 15), holdings)

    assert expected == actual


def test_peak_treats_touching_holdings_as_not_overlapping() -> None:
    holdings = [held(9, 10, "a"), held(10, 11, "b")]
    expected = 1

    actual = peak(slot(9, 11), holdings)

    assert expected == actual


def test_peak_ignores_holdings_that_end_when_the_interval_starts() -> None:
    holdings = [held(9, 10, "a"), held(9, 10, "b"), held(10, 11, "c")]
    expected = 1

    actual = peak(slot(10, 11), holdings)

    assert expected == actual


def test_peak_counts_only_what_meets_inside_the_interval() -> None:
    # b and c are held together only from 11.5, after the interval ends.
    holdings = [held(9, 10, "a"), held(10.5, 12, "b"), held(11.5, 13, "c")]
    expected = 1

    actual = peak(slot(9, 11), holdings)

    assert expected == actual


def test_allocate_takes_the_first_license_in_pool_order() -> None:
    expected = ("adv-01",)

    actual = allocate([slot(10, 11)], [], POOL)

    assert expected == actual


def test_allocate_skips_a_license_held_at_the_same_time() -> None:
    holdings = [held(9, 12, "adv-01")]
    expected = ("adv-02",)

    actual = allocate([slot(10, 11)], holdings, POOL)

    assert expected == actual


def test_allocate_reuses_a_license_freed_exactly_at_the_start() -> None:
    holdings = [held(9, 10, "adv-01")]
    expected = ("adv-01",)

    actual = allocate([slot(10, 11)], holdings, POOL)

    assert expected == actual


def test_allocate_reuses_a_license_taken_exactly_at_the_end() -> None:
    holdings = [held(11, 12, "adv-01")]
    expected = ("adv-01",)

    actual = allocate([slot(10, 11)], holdings, POOL)

    assert expected == actual


def test_allocate_avoids_a_license_taken_a_minute_before_the_end() -> None:
    holdings = [held(11 - 1 / 60, 12, "adv-01")]
    expected = ("adv-02",)

    actual = allocate([slot(10, 11)], holdings, POOL)

    assert expected == actual


def test_allocate_gives_none_when_every_license_is_held() -> None:
    holdings = [held(9, 12, name) for name in POOL]
    expected = (None,)

    actual = allocate([slot(10, 11)], holdings, POOL)

    assert expected == actual


def test_allocate_gives_none_with_an_empty_pool() -> None:
    expected = (None,)

    actual = allocate([slot(10, 11)], [], ())

    assert expected == actual


def test_allocate_counts_licenses_taken_earlier_in_the_same_call() -> None:
    intervals = [slot(10, 11), slot(10.5, 11.5), slot(10.75, 12), slot(10.9, 11)]
    expected = ("adv-01", "adv-02", "adv-03", None)

    actual = allocate(intervals, [], POOL)

    assert expected == actual


def test_allocate_reuses_a_license_for_series_occurrences_that_do_not_meet() -> None:
    intervals = [slot(10, 11), slot(34, 35), slot(58, 59)]
    expected = ("adv-01", "adv-01", "adv-01")

    actual = allocate(intervals, [], POOL)

    assert expected == actual


def test_allocate_sees_a_later_interval_taken_before_an_earlier_one() -> None:
    intervals = [slot(12, 13), slot(10, 12.5), slot(9, 10)]
    expected = ("adv-01", "adv-02", "adv-01")

    actual = allocate(intervals, [], POOL)

    assert expected == actual


def test_allocate_ignores_holdings_on_licenses_outside_the_pool() -> None:
    holdings = [held(9, 12, "retired")]
    expected = ("adv-01",)

    actual = allocate([slot(10, 11)], holdings, POOL)

    assert expected == actual


def test_allocate_sees_wrongly_overlapping_holds_on_one_license() -> None:
    # A long hold hidden behind a short one that starts later must still block.
    holdings = [held(8, 14, "adv-01"), held(9, 9.5, "adv-01")]
    expected = ("adv-02",)

    actual = allocate([slot(10, 11)], holdings, POOL)

    assert expected == actual


def test_allocate_treats_room_by_count_without_one_free_license_as_full() -> None:
    # Never more than one held at once in [2, 5), but each license is taken
    # during part of it: the new hold is refused, not re-coloured.
    pool = ("L1", "L2")
    holdings = [held(1, 3, "L1"), held(4, 6, "L2")]
    expected = (1, (None,))

    actual = (peak(slot(2, 5), holdings), allocate([slot(2, 5)], holdings, pool))

    assert expected == actual


def test_allocate_rejects_an_interval_that_ends_before_it_starts() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        allocate([slot(11, 10)], [], POOL)


def test_nearest_free_slots_reject_a_step_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="step must be positive"):
        nearest_free_slots(slot(10, 11), [], POOL, not_before=at(0), step=timedelta())


def test_nearest_free_slots_come_nearest_first_the_earlier_on_a_tie() -> None:
    holdings = [held(9, 12, name) for name in POOL]
    expected = (slot(8, 9), slot(12, 13), slot(7.5, 8.5))

    actual = nearest_free_slots(slot(10, 11), holdings, POOL, not_before=at(0))

    assert expected == actual


def test_nearest_free_slots_have_a_license_free_throughout() -> None:
    holdings = [held(6, 12, "adv-01"), held(8, 14, "adv-02"), held(7, 13, "adv-03")]
    expected = (slot(12, 13), slot(12.5, 13.5), slot(7, 8))
    licenses = ("adv-01", "adv-01", "adv-02")

    actual = nearest_free_slots(slot(10, 11), holdings, POOL, not_before=at(0))

    assert expected == actual
    assert licenses == tuple(allocate([p], holdings, POOL)[0] for p in actual)


def test_nearest_free_slots_keep_the_length_of_the_interval() -> None:
    holdings = [held(9, 12, name) for name in POOL]
    expected = {timedelta(hours=1.5)}

    actual = nearest_free_slots(slot(9.5, 11), holdings, POOL, not_before=at(0))

    assert expected == {p.end - p.start for p in actual}


def test_nearest_free_slots_start_no_earlier_than_not_before() -> None:
    # 08:00-09:00 is free and nearer, but starts before not_before (12:00).
    holdings = [held(9, 12, name) for name in POOL]
    expected = (slot(12, 13), slot(12.5, 13.5), slot(13, 14))

    actual = nearest_free_slots(slot(10, 11), holdings, POOL, not_before=at(12))

    assert expected == actual


def test_nearest_free_slots_include_the_requested_one_when_free() -> None:
    expected = (slot(10, 11),)

    actual = nearest_free_slots(slot(10, 11), [], POOL, not_before=at(0), count=1)

    assert expected == actual


def test_nearest_free_slots_stay_within_the_search() -> None:
    holdings = [held(0, 20, name) for name in POOL]
    expected = (slot(20, 21),)

    actual = nearest_free_slots(
        slot(10, 11), holdings, POOL, not_before=at(0), search=timedelta(hours=10)
    )

    assert expected == actual


def test_nearest_free_slots_are_empty_when_nothing_is_free() -> None:
    holdings = [held(-200, 200, name) for name in POOL]
    expected = ()

    actual = nearest_free_slots(slot(10, 11), holdings, POOL, not_before=at(0))

    assert expected == actual


hours = st.integers(min_value=0, max_value=48)
lengths = st.integers(min_value=1, max_value=12)
spans = st.tuples(hours, lengths).map(lambda p: slot(p[0] / 2, (p[0] + p[1]) / 2))


@st.composite
def consistent_holdings(draw: st.DrawFn) -> list[Holding]:
    """Random holds, dropping any that would share a license with an earlier one."""
    drawn = draw(st.lists(st.tuples(spans, st.sampled_from(NAMES)), max_size=16))
    kept: list[Holding] = []
    for interval, license in drawn:
        holding = Holding(interval.start, interval.end, license)
        if not any(k.license == license and overlaps(k, holding) for k in kept):
            kept.append(holding)
    return kept


@given(
    holdings=consistent_holdings(),
    requests=st.lists(spans, min_size=1, max_size=12),
    size=st.integers(min_value=0, max_value=len(NAMES)),
)
def test_allocate_never_double_books_a_license_nor_exceeds_the_pool(
    holdings: list[Holding], requests: list[Slot], size: int
) -> None:
    pool = NAMES[:size]

    licenses = allocate(requests, holdings, pool)

    new = [
        Holding(interval.start, interval.end, license)
        for interval, license in zip(requests, licenses, strict=True)
        if license is not None
    ]
    everything = holdings + new
    in_pool = [h for h in everything if h.license in pool]
    for one in new:
        same = [h for h in everything if h is not one and h.license == one.license]
        assert not any(overlaps(h, one) for h in same)
        assert one.license in pool
        assert peak(Slot(one.start, one.end), in_pool) <= len(pool)


@given(
    holdings=consistent_holdings(),
    requests=st.lists(spans, min_size=1, max_size=12),
)
def test_allocate_gives_the_first_license_not_busy_in_pool_order(
    holdings: list[Holding], requests: list[Slot]
) -> None:
    licenses = allocate(requests, holdings, POOL)

    taken = list(holdings)
    for interval, license in zip(requests, licenses, strict=True):
        busy = {h.license for h in taken if overlaps(h, interval)}
        assert next((name for name in POOL if name not in busy), None) == license
        if license is not None:
            taken.append(Holding(interval.start, interval.end, license))


@given(holdings=consistent_holdings(), request=spans)
def test_nearest_free_slots_are_all_free_and_ordered_by_distance(
    holdings: list[Holding], request: Slot
) -> None:
    proposals = nearest_free_slots(
        request, holdings, POOL, not_before=at(0), search=timedelta(hours=12)
    )

    distances = [abs(p.start - request.start) for p in proposals]
    assert sorted(distances) == distances
    assert all(allocate([p], holdings, POOL) != (None,) for p in proposals)
    assert all(p.start >= at(0) for p in proposals)
