"""The booking rules of SPEC section 2, as pure functions of facts and a clock.

``decide_request`` evaluates every rule and keeps every result, in this
order, as a ``Check``; the outcome comes from the first that fails:

=============  ================  ======================================
rule           outcome           reason codes
=============  ================  ======================================
registered     unregistered      not-registered, sender-mismatch,
               (pending)         entity-rejected, (entity-not-confirmed)
duration       needs-info        the invitation's problem code
future         declined          in-the-past, nothing-to-book
notice         pending           late-notice
capacity       pending           pool-full
channel        pending           consortium-channel-not-allowed
participants   pending           too-many-participants
recurrence     pending           series-does-not-fit
(none)         booked            fits
=============  ================  ======================================

A rule that cannot be evaluated (the times of a meeting with no usable
time) is kept as failed with a detail that starts "not checked". Cancelled
occurrences are skipped everywhere, and so are past occurrences of a series
that still has one in the future.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbot.config import RulesConfig
from mailbot.models import (
    Check,
    Decision,
    Entity,
    Invitation,
    Needs,
    Occurrence,
    Outcome,
    Slot,
)
from mailbot.pool import (
    Holding,
    allocate,
    hold_interval,
    meeting_slot,
    nearest_free_slots,
    peak,
)

NOT_CHECKED = "not checked"  # how a check that could not be evaluated begins
NO_TIME = f"{NOT_CHECKED}: the meeting has no usable time"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision about an invitation, and the license of each occurrence."""

    decision: Decision
    # The license held by each occurrence; empty unless the outcome is booked.
    allocations: tuple[tuple[Occurrence, str], ...]


@dataclass(frozen=True, slots=True)
class _Failure:
    outcome: Outcome
    reason: str


@dataclass(frozen=True, slots=True)
class _Fit:
    """The capacity check, and what it found for each upcoming occurrence."""

    check: Check
    licenses: tuple[str | None, ...] = ()
    full: tuple[Occurrence, ...] = ()
    proposals: tuple[Slot, ...] = ()


def decide_request(
    invitation: Invitation,
    *,
    entity: Entity | None,
    needs: Needs,
    arrived: datetime,
    now: datetime,
    rules: RulesConfig,
    pool: Sequence[str],
    holdings: Sequence[Holding],
    previous: Sequence[Occurrence] = (),
    sender_matches: bool = True,
) -> Verdict:
    """Decide an invitation (a request for a license) by the booking rules.

    ``holdings`` are the licenses held by other bookings around the meeting;
    for the proposals of a full pool to be right, they should cover a week
    on each side of it. ``previous`` are the occurrences of the booking this
    invitation updates: those whose start and end are unchanged are not
    checked again for notice.
    """
    checks: list[Check] = []
    failures: list[_Failure | None] = []
    failing: list[tuple[Occurrence, str]] = []

    def record(check: Check, failure: _Failure) -> None:
        checks.append(check)
        failures.append(None if check.passed else failure)

    record(*_registered(entity, sender_matches=sender_matches))

    duration, problem = _duration(invitation)
    record(duration, _Failure(Outcome.NEEDS_INFO, problem))

    live = [o for o in invitation.occurrences if not o.cancelled]
    upcoming = [o for o in live if o.start > now]
    timed = duration.passed
    record(*_future(live, upcoming, timed=timed))
    timed = timed and bool(upcoming)

    notice = Check("notice", False, NO_TIME)
    if timed:
        notice, late = _notice(upcoming, previous, arrived=arrived, rules=rules)
        failing.extend((occurrence, "late-notice") for occurrence in late)
    record(notice, _Failure(Outcome.PENDING, "late-notice"))

    fit = _Fit(Check("capacity", False, NO_TIME))
    if timed:
        fit = _capacity(upcoming, now=now, rules=rules, pool=pool, holdings=holdings)
        failing.extend((occurrence, "pool-full") for occurrence in fit.full)
    record(fit.check, _Failure(Outcome.PENDING, "pool-full"))

    record(
        _channel(needs, entity),
        _Failure(Outcome.PENDING, "consortium-channel-not-allowed"),
    )
    record(
        _participants(needs, rules),
        _Failure(Outcome.PENDING, "too-many-participants"),
    )
    record(
        _recurrence(invitation, upcoming, failing, rules=rules, timed=timed),
        _Failure(Outcome.PENDING, "series-does-not-fit"),
    )

    first = next((failure for failure in failures if failure is not None), None)
    detail = "; ".join(f"{c.rule}: {c.detail}" for c in checks if not c.passed)
    if first is None:
        allocations = tuple(
            (occurrence, license)
            for occurrence, license in zip(upcoming, fit.licenses, strict=True)
            if license is not None
        )
        decision = Decision(
            outcome=Outcome.BOOKED,
            reason="fits",
            checks=tuple(checks),
            detail=_booked_detail(allocations),
        )
        return Verdict(decision=decision, allocations=allocations)

    pending = first.outcome is Outcome.PENDING
    decision = Decision(
        outcome=first.outcome,
        reason=first.reason,
        checks=tuple(checks),
        # A person looks at pending requests, and at a sender writing for
        # another entity (a delegate, or somebody posing as one).
        notify_support=pending or first.reason == "sender-mismatch",
        detail=detail,
        failing=tuple(failing),
        proposals=fit.proposals if pending else (),
    )
    return Verdict(decision=decision, allocations=())


def decide_cancel(invitation: Invitation, *, known: bool) -> Decision:
    """Decide a cancellation: it always ends in ``cancelled`` and a reply."""
    if known and invitation.recurrence_id is not None:
        when = invitation.recurrence_id.strftime("%Y-%m-%dT%H:%M:%SZ")
        check = Check(
            "booking", True, f"the occurrence of {when} of {invitation.uid} is released"
        )
        reason = "cancelled"
    elif known:
        check = Check("booking", True, f"booking {invitation.uid} is released")
        reason = "cancelled"
    else:
        check = Check("booking", False, f"no booking has the UID {invitation.uid}")
        reason = "unknown-booking"
    return Decision(
        outcome=Outcome.CANCELLED,
        reason=reason,
        checks=(check,),
        detail=check.detail,
    )


def _registered(
    entity: Entity | None, *, sender_matches: bool
) -> tuple[Check, _Failure]:
    if entity is None:
        failure = _Failure(Outcome.UNREGISTERED, "not-registered")
        return Check("registered", False, "no registered entity"), failure
    if not sender_matches:
        failure = _Failure(Outcome.UNREGISTERED, "sender-mismatch")
        detail = "the organizer and the sender belong to different entities"
        return Check("registered", False, detail), failure
    if entity.status == "active":
        failure = _Failure(Outcome.UNREGISTERED, "not-registered")
        return Check("registered", True, f"{entity.name} ({entity.nif})"), failure
    if entity.status == "pending":
        failure = _Failure(Outcome.PENDING, "entity-not-confirmed")
        detail = f"{entity.nif}: registration not yet confirmed by support"
        return Check("registered", False, detail), failure
    failure = _Failure(Outcome.UNREGISTERED, "entity-rejected")
    detail = f"{entity.nif}: registration {entity.status}"
    return Check("registered", False, detail), failure


def _duration(invitation: Invitation) -> tuple[Check, str]:
    problem = invitation.problem
    if problem is None and invitation.all_day:
        problem = "all-day"
    if problem is None and not invitation.occurrences:
        problem = "no-start"
    live = [o for o in invitation.occurrences if not o.cancelled]
    if problem is None and any(o.end <= o.start for o in live):
        problem = "non-positive-duration"
    if problem is not None:
        detail = problem
        if invitation.problem_detail:
            detail += f": {invitation.problem_detail}"
        return Check("duration", False, detail), problem

    start, end = invitation.start, invitation.end
    if start is None or end is None:
        return Check("duration", True, "every occurrence is cancelled"), ""
    return Check("duration", True, f"{_minutes(end - start)} minutes"), ""


def _future(
    live: Sequence[Occurrence], upcoming: Sequence[Occurrence], *, timed: bool
) -> tuple[Check, _Failure]:
    past = _Failure(Outcome.DECLINED, "in-the-past")
    if not timed:
        return Check("future", False, NO_TIME), past
    if not live:
        failure = _Failure(Outcome.DECLINED, "nothing-to-book")
        return Check("future", False, "every occurrence is cancelled"), failure
    if not upcoming:
        return Check("future", False, f"starts {_when(live[0].start)}, past"), past
    detail = f"starts {_when(upcoming[0].start)}"
    if len(live) > len(upcoming):
        detail += f"; {_count(len(live) - len(upcoming), 'past occurrence')} ignored"
    return Check("future", True, detail), past


def _notice(
    upcoming: Sequence[Occurrence],
    previous: Sequence[Occurrence],
    *,
    arrived: datetime,
    rules: RulesConfig,
) -> tuple[Check, list[Occurrence]]:
    notice = timedelta(hours=rules.min_notice_hours)
    unchanged = {(o.start, o.end) for o in previous if not o.cancelled}
    checked = [o for o in upcoming if (o.start, o.end) not in unchanged]
    late = [o for o in checked if o.start - arrived < notice]

    kept = len(upcoming) - len(checked)
    tail = f"; {_count(kept, 'unchanged occurrence')} not checked" if kept else ""
    if late:
        detail = (
            f"arrived {_when(arrived)}, less than {rules.min_notice_hours} h "
            f"before {_count(len(late), 'occurrence')}, first {_when(late[0].start)}"
            f"{tail}"
        )
        return Check("notice", False, detail), late
    detail = f"arrived {_when(arrived)}, at least {rules.min_notice_hours} h before"
    return Check("notice", True, detail + tail), late


def _capacity(
    upcoming: Sequence[Occurrence],
    *,
    now: datetime,
    rules: RulesConfig,
    pool: Sequence[str],
    holdings: Sequence[Holding],
) -> _Fit:
    intervals = [hold_interval(o, rules) for o in upcoming]
    licenses = allocate(intervals, holdings, pool)
    full = tuple(
        o for o, license in zip(upcoming, licenses, strict=True) if license is None
    )
    if not full:
        detail = f"a license for each of {_count(len(licenses), 'occurrence')}"
        return _Fit(Check("capacity", True, detail), licenses)

    # The licenses given to the other occurrences of the series are held too.
    held = list(holdings) + [
        Holding(interval.start, interval.end, license)
        for interval, license in zip(intervals, licenses, strict=True)
        if license is not None
    ]
    first = hold_interval(full[0], rules)
    count = peak(first, [holding for holding in held if holding.license in pool])
    if count < len(pool):
        why = f"{count} of {len(pool)} held at once, but no one license is free"
    else:
        why = f"all {len(pool)} licenses held"
    not_before = (
        now
        + timedelta(hours=rules.min_notice_hours)
        - timedelta(minutes=rules.setup_minutes)
    )
    slots = nearest_free_slots(first, held, pool, not_before=not_before)
    proposals = tuple(meeting_slot(slot, rules) for slot in slots)
    detail = (
        f"no license for {len(full)} of {_count(len(licenses), 'occurrence')}, "
        f"first {_when(full[0].start)} ({why})"
    )
    return _Fit(Check("capacity", False, detail), licenses, full, proposals)


def _channel(needs: Needs, entity: Entity | None) -> Check:
    streamed = needs.stream or needs.kind == "plenary"
    if not streamed:
        return Check("channel", True, "no live stream")
    if needs.channel is None:
        return Check("channel", True, "channel not stated")
    if needs.channel != "consortium":
        return Check("channel", True, f"{needs.channel} channel")
    if entity is None:
        return Check("channel", False, "consortium channel: no registered entity")
    if entity.youtube_channel:
        detail = (
            f"consortium channel, but the entity has its own: {entity.youtube_channel}"
        )
        return Check("channel", False, detail)
    if not entity.channel_agreement:
        detail = "consortium channel, but the channel agreement is not signed"
        return Check("channel", False, detail)
    return Check("channel", True, "consortium channel, agreement signed")


def _participants(needs: Needs, rules: RulesConfig) -> Check:
    if needs.participants is None:
        return Check("participants", True, "not stated")
    if needs.participants > rules.max_participants:
        detail = f"{needs.participants}, more than {rules.max_participants}"
        return Check("participants", False, detail)
    return Check("participants", True, f"{needs.participants}")


def _recurrence(
    invitation: Invitation,
    upcoming: Sequence[Occurrence],
    failing: Sequence[tuple[Occurrence, str]],
    *,
    rules: RulesConfig,
    timed: bool,
) -> Check:
    if not invitation.recurring:
        return Check("recurrence", True, "a single meeting")
    if not timed:
        return Check("recurrence", False, NO_TIME)

    checked = _count(len(upcoming), "occurrence")
    detail = f"{checked} checked over {rules.horizon_months} months"
    if invitation.truncated:
        detail = f"only the first {checked} were checked"
    misfits = {occurrence for occurrence, _ in failing}
    if misfits:
        detail += f"; {len(misfits)} do not fit"
        return Check("recurrence", False, detail)
    return Check("recurrence", True, detail)


def _booked_detail(allocations: Sequence[tuple[Occurrence, str]]) -> str:
    return ", ".join(f"{_when(o.start)} {license}" for o, license in allocations)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)
