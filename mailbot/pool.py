"""The floating license pool: which named license each booking holds, and when.

A booking holds one advanced license for each of its occurrences, from
``setup_minutes`` before the meeting starts until ``overrun_minutes`` after it
is expected to end. Every interval here is half-open, ``[start, end)``: a hold
that ends at 10:00 and one that starts at 10:00 do not overlap.

The rule is that at no instant may more licenses be held than the pool has.
Because each hold names its license, this module enforces the stricter form
that implies it: a new hold gets a license only when one single license of
the pool is free throughout the whole interval.

Fragmentation is treated as full, not re-coloured. With a pool of two, A on
L1 for [1, 3) and B on L2 for [4, 6), a new [2, 5) finds room by count (never
more than two at once) but no license free throughout; ``allocate`` answers
None and the request goes to the support team. Moving B to L1 would fit it,
but it is not done here, for these reasons:

* safety: the caller passes only the holdings that overlap a window, and a
  moved hold may collide, on its new license, with a hold outside that
  window; re-colouring safely needs the whole chain of overlapping holds,
  which has no bound, so the promise "never over-book a named license"
  could not be kept from the data given;
* a license may already be applied in Zoom for a booking that is about to
  start, so moving it is a decision for a person, not the robot;
* the case is rare (sessions of different entities seldom overlap) and its
  cost is small: the request is pending, and the support team sees why.

Holdings whose license is not in the pool (a license since removed from the
configuration) count in ``peak`` but never block a license of the pool.
Every function runs in O(n log n) in the holdings it is given.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbot.config import RulesConfig
from mailbot.models import Occurrence, Slot


@dataclass(frozen=True, slots=True)
class Holding:
    """One license held for one occurrence of a booking."""

    start: datetime  # hold start (meeting start - setup), UTC
    end: datetime  # hold end (meeting end + overrun), UTC
    license: str
    booking_id: int | None = None


def hold_interval(occurrence: Occurrence, rules: RulesConfig) -> Slot:
    """The time a license is held for ``occurrence``: setup before, overrun after."""
    return Slot(
        start=occurrence.start - timedelta(minutes=rules.setup_minutes),
        end=occurrence.end + timedelta(minutes=rules.overrun_minutes),
    )


def meeting_slot(hold: Slot, rules: RulesConfig) -> Slot:
    """The meeting inside a hold interval: the inverse of ``hold_interval``."""
    return Slot(
        start=hold.start + timedelta(minutes=rules.setup_minutes),
        end=hold.end - timedelta(minutes=rules.overrun_minutes),
    )


def overlaps(a: Slot | Holding, b: Slot | Holding) -> bool:
    """Whether two half-open intervals share an instant."""
    return a.start < b.end and b.start < a.end


def peak(interval: Slot, holdings: Sequence[Holding]) -> int:
    """The most holdings held at one instant of ``interval``."""
    events: list[tuple[datetime, int]] = []
    for holding in holdings:
        if holding.end <= holding.start or not overlaps(holding, interval):
            continue
        events.append((max(holding.start, interval.start), 1))
        events.append((min(holding.end, interval.end), -1))

    # At the same instant an end (-1) sorts before a start (+1): half-open.
    events.sort()
    held = most = 0
    for _, change in events:
        held += change
        most = max(most, held)
    return most


def allocate(
    intervals: Sequence[Slot], holdings: Sequence[Holding], pool: Sequence[str]
) -> tuple[str | None, ...]:
    """A license for each interval, free throughout it, or None where none is.

    Intervals are served in the order given; each one also avoids the
    licenses given to the earlier ones. The first free license in pool
    order is chosen, so the answer is deterministic.
    """
    busy = _Busy(holdings, pool)
    chosen: list[str | None] = []
    for interval in intervals:
        _check(interval)
        license = next((name for name in pool if busy.free(name, interval)), None)
        if license is not None:
            busy.take(license, interval)
        chosen.append(license)
    return tuple(chosen)


def nearest_free_slots(
    interval: Slot,
    holdings: Sequence[Holding],
    pool: Sequence[str],
    *,
    not_before: datetime,
    count: int = 3,
    step: timedelta = timedelta(minutes=30),
    search: timedelta = timedelta(days=7),
) -> tuple[Slot, ...]:
    """Up to ``count`` intervals as long as ``interval`` where a license is free.

    Candidates are ``interval`` moved by whole ``step``s, before or after, at
    most ``search`` away, starting at or after ``not_before``; the requested
    interval itself is a candidate. They come nearest first (the earlier of
    two at the same distance first). Give hold intervals, get hold
    intervals; ``holdings`` should cover ``search`` on both sides.
    """
    _check(interval)
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    busy = _Busy(holdings, pool)
    found: list[Slot] = []
    for shift in _shifts(step, search):
        if len(found) >= count:
            break
        candidate = Slot(interval.start + shift, interval.end + shift)
        if candidate.start < not_before:
            continue
        if any(busy.free(name, candidate) for name in pool):
            found.append(candidate)
    return tuple(found)


def _shifts(step: timedelta, search: timedelta) -> Iterator[timedelta]:
    yield timedelta(0)
    distance = step
    while distance <= search:
        yield -distance
        yield distance
        distance += step


def _check(interval: Slot) -> None:
    if interval.end <= interval.start:
        raise ValueError(f"interval ends before it starts: {interval}")


class _Busy:
    """When each license of the pool is taken, for O(log n) "free?" questions.

    The given holdings are sorted by start with a running maximum of their
    ends, so that even holds that wrongly overlap on one license are seen.
    Licenses taken during one call never overlap each other, so a sorted
    list and its two neighbours answer for them.
    """

    def __init__(self, holdings: Sequence[Holding], pool: Sequence[str]) -> None:
        by_license: dict[str, list[Holding]] = {name: [] for name in pool}
        for holding in holdings:
            if holding.license in by_license and holding.start < holding.end:
                by_license[holding.license].append(holding)

        self._starts: dict[str, list[datetime]] = {}
        self._max_ends: dict[str, list[datetime]] = {}
        for name, held in by_license.items():
            held.sort(key=lambda holding: holding.start)
            self._starts[name] = [holding.start for holding in held]
            running: list[datetime] = []
            for holding in held:
                running.append(
                    max(running[-1], holding.end) if running else holding.end
                )
            self._max_ends[name] = running
        self._taken: dict[str, list[tuple[datetime, datetime]]] = {
            name: [] for name in pool
        }

    def free(self, license: str, interval: Slot) -> bool:
        before = bisect.bisect_left(self._starts[license], interval.end)
        if before and self._max_ends[license][before - 1] > interval.start:
            return False

        taken = self._taken[license]
        index = bisect.bisect_left(taken, (interval.start, interval.start))
        if index and taken[index - 1][1] > interval.start:
            return False
        return not (index < len(taken) and taken[index][0] < interval.end)

    def take(self, license: str, interval: Slot) -> None:
        bisect.insort(self._taken[license], (interval.start, interval.end))
