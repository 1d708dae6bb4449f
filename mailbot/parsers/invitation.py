"""iCalendar to Invitation: UID, SEQUENCE, method, times in UTC, recurrence."""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from dateutil import rrule as dateutil_rrule
from dateutil.relativedelta import relativedelta

from mailbot.errors import CalendarError
from mailbot.models import CalendarPart, Invitation, Occurrence
from mailbot.parsers.calendar_text import (
    Component,
    DateValue,
    Property,
    decode_calendar,
    parse_date_value,
    parse_duration,
    parse_text,
    unescape_text,
)
from mailbot.parsers.timezones import (
    IanaZone,
    Zone,
    ZoneConflictError,
    cycle_shift,
    parse_int_list,
    parse_weekdays,
    resolve_zone,
    shift_years,
    vtimezones_of,
)

MAX_OCCURRENCES = 500
MAX_COUNT = 1_000_000  # past it, COUNT changes nothing: the horizon comes first
PAST_MARGIN = timedelta(days=1)  # occurrences over before now minus this are skipped
TIME_BUDGET_SECONDS = 0.5
MAX_RULE_ITEMS = 400
MAX_INTERVAL = 1000
EARLIEST_YEAR = 1970  # recurring series may not start before this year
MIN_YEAR = 1900  # event times outside these years are not believed
MAX_YEAR = 2200

_FREQUENCIES = {
    "YEARLY": dateutil_rrule.YEARLY,
    "MONTHLY": dateutil_rrule.MONTHLY,
    "WEEKLY": dateutil_rrule.WEEKLY,
    "DAILY": dateutil_rrule.DAILY,
}
_SUB_DAILY = frozenset({"HOURLY", "MINUTELY", "SECONDLY"})
_INT_PARTS = {
    # RRULE part: (dateutil keyword, smallest, largest absolute value)
    "BYMONTH": ("bymonth", 1, 12),
    "BYMONTHDAY": ("bymonthday", 1, 31),
    "BYYEARDAY": ("byyearday", 1, 366),
    "BYWEEKNO": ("byweekno", 1, 53),
    "BYSETPOS": ("bysetpos", 1, 366),
    "BYHOUR": ("byhour", 0, 23),
    "BYMINUTE": ("byminute", 0, 59),
    "BYSECOND": ("bysecond", 0, 59),
}


class _NoTime(Exception):
    """No trustworthy time: carries the problem code of the Invitation."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Time:
    """A DTSTART-like value with the zone it is read in."""

    value: DateValue
    zone: Zone
    floating: bool
    tzid: str | None

    @property
    def utc(self) -> datetime:
        return self.zone.to_utc(self.value.value)


@dataclass(frozen=True, slots=True)
class _Span:
    """When one event component starts and how long it lasts."""

    start: _Time
    start_utc: datetime
    end_utc: datetime
    days: timedelta  # nominal part of a DURATION, added in local time
    exact: timedelta  # exact part, added to the UTC time

    def end_of(self, local_start: datetime) -> datetime:
        zone = self.start.zone
        return zone.to_utc(local_start + self.days) + self.exact


@dataclass(slots=True)
class _Context:
    """What one calendar object shares among its events."""

    vtimezones: dict[str, Component]
    floating_zone: str
    wr_timezone: str | None
    defects: list[str]
    deadline: float
    now: datetime
    horizon_end: datetime

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise CalendarError("unbounded-recurrence", "time budget exceeded")

    def floating(self) -> Zone:
        if self.wr_timezone is None:
            return IanaZone(self.floating_zone)
        zone = resolve_zone(
            self.wr_timezone,
            vtimezones=self.vtimezones,
            year=self.now.year,
            defects=self.defects,
        )
        if zone is None:
            raise _NoTime("unknown-timezone", f"X-WR-TIMEZONE {self.wr_timezone!r}")
        return zone


def read_invitation(
    parts: Sequence[CalendarPart],
    *,
    floating_zone: str = "Europe/Madrid",
    now: datetime,
    horizon_months: int = 12,
) -> Invitation:
    """Read the invitation carried by a message's calendar parts.

    Copies of one invitation (same UID and SEQUENCE, as Gmail sends) count
    once; with different UIDs the first REQUEST or CANCEL is taken. Raises
    CalendarError when no part holds a usable calendar.
    """
    if not parts:
        raise CalendarError("no-calendar", "the message has no calendar part")
    read: list[Invitation] = []
    errors: list[CalendarError] = []
    for part in parts:
        try:
            read.append(
                parse_calendar(
                    part.data,
                    method_hint=part.method,
                    floating_zone=floating_zone,
                    now=now,
                    horizon_months=horizon_months,
                )
            )
        except CalendarError as error:
            errors.append(error)
    if not read:
        raise errors[0]

    chosen = next((i for i in read if i.method in ("REQUEST", "CANCEL")), read[0])
    for other in read:
        if other.uid == chosen.uid and other.sequence > chosen.sequence:
            chosen = other

    defects = list(chosen.defects)
    for other in read:
        if other is chosen:
            continue
        if other.uid != chosen.uid:
            defects.append("several-invitations")
        elif other.sequence != chosen.sequence:
            defects.append("copies-with-different-sequence")
        elif (other.occurrences, other.method) != (chosen.occurrences, chosen.method):
            defects.append("copies-disagree")
    if errors:
        defects.append(f"unreadable-calendar-part:{errors[0].reason}")
    return dataclasses.replace(chosen, defects=_unique(defects))


def parse_calendar(
    data: bytes,
    *,
    method_hint: str | None = None,
    floating_zone: str = "Europe/Madrid",
    now: datetime,
    horizon_months: int = 12,
) -> Invitation:
    """Read the first event (with its overrides) of one calendar object."""
    return read_calendar_events(
        data,
        method_hint=method_hint,
        floating_zone=floating_zone,
        now=now,
        horizon_months=horizon_months,
        limit=1,
    )[0]


def read_calendar_events(
    data: bytes,
    *,
    method_hint: str | None = None,
    floating_zone: str = "Europe/Madrid",
    now: datetime,
    horizon_months: int = 12,
    limit: int | None = None,
) -> tuple[Invitation, ...]:
    """Read every event of one calendar object: one Invitation per UID.

    VEVENTs with no UID are read as separate events. ``limit`` stops after
    that many; a defect ``several-events`` says that more were there.
    """
    started = time.monotonic()
    text, decode_defects = decode_calendar(data)
    try:
        return _read_events(
            text,
            defects=list(decode_defects),
            method_hint=method_hint,
            floating_zone=floating_zone,
            now=now,
            horizon_months=horizon_months,
            limit=limit,
            deadline=started + TIME_BUDGET_SECONDS,
        )
    except (OverflowError, ValueError) as error:
        if isinstance(error, CalendarError):
            raise
        raise CalendarError("unparseable-calendar", str(error)[:200]) from error


def _read_events(
    text: str,
    *,
    defects: list[str],
    method_hint: str | None,
    floating_zone: str,
    now: datetime,
    horizon_months: int,
    limit: int | None,
    deadline: float,
) -> tuple[Invitation, ...]:
    parsed = parse_text(text)
    defects.extend(parsed.defects)
    if not parsed.calendars:
        raise CalendarError("no-calendar", "no BEGIN:VCALENDAR")
    with_events = [
        c for c in parsed.calendars if any(x.name == "VEVENT" for x in c.children)
    ]
    if not with_events:
        raise CalendarError("no-event", "the calendar holds no VEVENT")
    if len(parsed.calendars) > 1:
        defects.append("several-calendars")
    calendar = with_events[0]

    groups = _group_events([c for c in calendar.children if c.name == "VEVENT"])
    if limit is not None and len(groups) > limit:
        defects.append("several-events")
        groups = groups[:limit]
    wr_prop = calendar.first("X-WR-TIMEZONE")
    aware_now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    body_method = calendar.text("METHOD").strip().upper() or None

    invitations = []
    for events in groups:
        context = _Context(
            vtimezones=vtimezones_of(calendar),
            floating_zone=floating_zone,
            wr_timezone=unescape_text(wr_prop.value).strip() if wr_prop else None,
            defects=list(defects),
            deadline=deadline,
            now=aware_now.astimezone(UTC),
            horizon_end=aware_now.astimezone(UTC)
            + relativedelta(months=horizon_months),
        )
        invitations.append(_read_group(events, context, body_method, method_hint))
    return tuple(invitations)


def _group_events(events: list[Component]) -> list[list[Component]]:
    groups: dict[str, list[Component]] = {}
    ordered: list[list[Component]] = []
    for event in events:
        uid = event.text("UID").strip()
        if not uid:
            ordered.append([event])
            continue
        if uid not in groups:
            groups[uid] = []
            ordered.append(groups[uid])
        groups[uid].append(event)
    return ordered


def _read_group(
    events: list[Component],
    context: _Context,
    body_method: str | None,
    method_hint: str | None,
) -> Invitation:
    masters = [e for e in events if e.first("RECURRENCE-ID") is None]
    overrides = [e for e in events if e.first("RECURRENCE-ID") is not None]
    if len(masters) > 1:
        context.defects.append("duplicate-event")
    master = masters[0] if masters else None
    base = master if master is not None else overrides[0]

    attendees = _unique(
        address for prop in base.all("ATTENDEE") if (address := _address(prop))
    )
    method = _method(body_method, method_hint, bool(attendees), context.defects)
    organizer_prop = base.first("ORGANIZER")
    sequence = max(_sequence(e, context.defects) for e in events)
    recurring = master is not None and bool(
        master.first("RRULE") or master.first("RDATE")
    )
    uid = base.text("UID").strip()
    if not uid:
        context.defects.append("no-uid")

    invitation = Invitation(
        uid=uid,
        method=method,
        sequence=sequence,
        dtstamp=_dtstamp(base, context.defects),
        organizer=_address(organizer_prop) if organizer_prop else "",
        organizer_name=unescape_text(organizer_prop.param("CN") or "").strip()
        if organizer_prop
        else "",
        attendees=tuple(attendees),
        summary=base.text("SUMMARY").strip(),
        description=base.text("DESCRIPTION").strip(),
        location=base.text("LOCATION").strip(),
        comment="\n".join(unescape_text(p.value) for p in base.all("COMMENT")).strip(),
        status=base.text("STATUS").strip().upper(),
        tzid=_written_tzid(base),
        zone=None,
        occurrences=(),
        recurring=recurring,
    )

    if method == "CANCEL" and base.first("DTSTART") is None:
        return dataclasses.replace(invitation, defects=_unique(context.defects))
    try:
        if master is not None:
            return _with_series(invitation, master, overrides, context)
        return _with_overrides_only(invitation, overrides, context)
    except _NoTime as no_time:
        return dataclasses.replace(
            invitation,
            all_day=no_time.code == "all-day",
            problem=no_time.code,
            problem_detail=no_time.detail,
            defects=_unique(context.defects),
        )
    except ZoneConflictError as conflict:
        return dataclasses.replace(
            invitation,
            problem="timezone-conflict",
            problem_detail=str(conflict),
            defects=_unique(context.defects),
        )


def _with_series(
    invitation: Invitation,
    master: Component,
    overrides: list[Component],
    context: _Context,
) -> Invitation:
    span = _span(master, context, fallback=None)
    zone = span.start.zone
    occurrences: dict[datetime, Occurrence] = {}
    truncated = False
    if invitation.recurring:
        originals, truncated = _expand(master, span, context)
        for _local, utc_start, utc_end in originals:
            occurrences[utc_start] = Occurrence(utc_start, utc_end, utc_start)
    else:
        occurrences[span.start_utc] = Occurrence(span.start_utc, span.end_utc)

    for override in overrides:
        context.check_time()
        _apply_override(override, occurrences, span, context)

    ordered = tuple(sorted(occurrences.values(), key=lambda o: o.start))
    if not ordered:
        if span.start_utc > context.horizon_end:
            raise _NoTime(
                "beyond-horizon",
                f"the series starts {span.start_utc:%Y-%m-%d}, after"
                f" {context.horizon_end:%Y-%m-%d}",
            )
        raise _NoTime("no-occurrences", "every date of the series is excluded")
    return dataclasses.replace(
        invitation,
        zone=zone.name,
        occurrences=ordered,
        truncated=truncated,
        defects=_unique(context.defects),
    )


def _with_overrides_only(
    invitation: Invitation, overrides: list[Component], context: _Context
) -> Invitation:
    found: list[Occurrence] = []
    zone_name: str | None = None
    for override in overrides:
        context.check_time()
        span = _span(override, context, fallback=None)
        rid_prop = override.first("RECURRENCE-ID")
        assert rid_prop is not None
        rid = _read_time(rid_prop, context, code="no-start", fallback=span.start.zone)
        cancelled = override.text("STATUS").strip().upper() == "CANCELLED"
        found.append(Occurrence(span.start_utc, span.end_utc, rid.utc, cancelled))
        if zone_name is None:
            zone_name = span.start.zone.name
    ordered = tuple(sorted(found, key=lambda o: o.start))
    return dataclasses.replace(
        invitation,
        zone=zone_name,
        occurrences=ordered,
        recurrence_id=found[0].recurrence_id,
        defects=_unique(context.defects),
    )


def _apply_override(
    override: Component,
    occurrences: dict[datetime, Occurrence],
    master: _Span,
    context: _Context,
) -> None:
    rid_prop = override.first("RECURRENCE-ID")
    assert rid_prop is not None
    if rid_prop.param("RANGE"):
        context.defects.append("recurrence-range-ignored")
    zone = master.start.zone
    rid_value = parse_date_value(rid_prop.value)
    if rid_value is None:
        context.defects.append("unreadable-recurrence-id")
        return

    # An override of a meeting already over, or past what was expanded (the
    # horizon, the caps), changes nothing that is booked: it is passed by.
    # One that matches no meeting of the series is recorded, not added: a
    # client may show it as an extra session or not at all.
    window_start = context.now - PAST_MARGIN
    last = max(occurrences, default=None)
    if rid_value.is_date:
        day = rid_value.value.date()
        keys = [k for k in occurrences if zone.from_utc(k).date() == day]
        if (
            not keys
            and day >= window_start.date()
            and (last is None or day <= zone.from_utc(last).date())
        ):
            context.defects.append("override-without-occurrence")
    else:
        rid = _read_time(rid_prop, context, code="no-start", fallback=zone)
        keys = [rid.utc] if rid.utc in occurrences else []
        if not keys and window_start <= rid.utc and (last is None or rid.utc <= last):
            context.defects.append("override-without-occurrence")

    cancelled = override.text("STATUS").strip().upper() == "CANCELLED"
    for key in keys:
        original = occurrences.get(key)
        try:
            span = _span(override, context, fallback=master)
            start, end = span.start_utc, span.end_utc
        except _NoTime:
            if not cancelled or original is None:
                raise
            start, end = original.start, original.end
        occurrences[key] = Occurrence(start, end, key, cancelled)


def _span(event: Component, context: _Context, *, fallback: _Span | None) -> _Span:
    start_prop = event.first("DTSTART")
    if start_prop is None:
        if fallback is None:
            raise _NoTime("no-start", "the event has no DTSTART")
        return fallback
    start = _read_time(start_prop, context, code="no-start", fallback=None)
    if start.value.is_date:
        raise _NoTime("all-day", "DTSTART is a date")
    _check_exists(start, "DTSTART")
    start_utc = start.utc

    end_prop = event.first("DTEND")
    duration_prop = event.first("DURATION")
    duration = parse_duration(duration_prop.value) if duration_prop else None
    if duration_prop is not None and duration is None:
        context.defects.append("unreadable-duration")
    days = timedelta(0)
    if end_prop is not None:
        end = _read_time(end_prop, context, code="no-end", fallback=None)
        if end.value.is_date:
            raise _NoTime("ambiguous-time", "DTEND is a date, DTSTART a date-time")
        if end.floating != start.floating:
            raise _NoTime("ambiguous-time", "one of DTSTART and DTEND is floating")
        _check_exists(end, "DTEND")
        end_utc = end.utc
        if duration is not None:
            other = start.zone.to_utc(start.value.value + duration[0]) + duration[1]
            context.defects.append(
                "dtend-and-duration" if other == end_utc else "dtend-duration-disagree"
            )
        exact = end_utc - start_utc
    elif duration is not None:
        days, exact = duration
        end_utc = start.zone.to_utc(start.value.value + days) + exact
    elif fallback is not None:
        days, exact = fallback.days, fallback.exact
        end_utc = start.zone.to_utc(start.value.value + days) + exact
    else:
        raise _NoTime("no-end", "neither DTEND nor DURATION")

    if end_utc <= start_utc:
        raise _NoTime("non-positive-duration", f"{start_utc} to {end_utc}")
    return _Span(start, start_utc, end_utc, days, exact)


def _check_exists(time: _Time, name: str) -> None:
    """A wall time skipped when the clocks go forward names no instant at all."""
    local = time.value.value
    if time.zone.from_utc(time.zone.to_utc(local)) != local:
        where = time.zone.name or time.tzid
        raise _NoTime(
            "nonexistent-time",
            f"{name} {local:%Y-%m-%d %H:%M} does not exist in {where}",
        )


def _read_time(
    prop: Property, context: _Context, *, code: str, fallback: Zone | None
) -> _Time:
    value = parse_date_value(prop.value)
    if value is None:
        raise _NoTime(code, f"{prop.name} {prop.value[:60]!r} is not a date")
    if not MIN_YEAR <= value.value.year <= MAX_YEAR:
        raise _NoTime(code, f"{prop.name} is in the year {value.value.year}")
    tzid = prop.param("TZID")
    if tzid is not None:
        if value.utc:
            raise _NoTime("ambiguous-time", f"{prop.name} has both TZID and Z")
        zone = resolve_zone(
            tzid,
            vtimezones=context.vtimezones,
            year=value.value.year,
            defects=context.defects,
        )
        if zone is None:
            raise _NoTime("unknown-timezone", f"TZID {tzid!r}")
        return _Time(value, zone, False, tzid)
    if value.utc:
        return _Time(value, IanaZone("UTC"), False, None)
    zone = fallback if fallback is not None else context.floating()
    return _Time(value, zone, True, None)


def _expand(
    master: Component, span: _Span, context: _Context
) -> tuple[list[tuple[datetime | None, datetime, datetime]], bool]:
    """Original occurrences of a series as (local start, UTC start, UTC end)."""
    zone = span.start.zone
    local_start = span.start.value.value
    found: dict[datetime, tuple[datetime | None, datetime, datetime]] = {}
    truncated = False

    rules = master.all("RRULE")
    if len(rules) > 1:
        context.defects.append("several-rrules")
    if rules:
        locals_, truncated = _rule_starts(rules[0].value, span, context)
        for local in locals_:
            utc = zone.to_utc(local)
            found.setdefault(utc, (local, utc, span.end_of(local)))
    else:
        found[span.start_utc] = (local_start, span.start_utc, span.end_utc)

    for prop in master.all("RDATE"):
        for start, utc_start, utc_end in _rdates(prop, span, context):
            if len(found) >= MAX_OCCURRENCES:
                truncated = True
                break
            if utc_start <= context.horizon_end:
                found.setdefault(utc_start, (start, utc_start, utc_end))
            else:
                truncated = True

    excluded_moments: set[datetime] = set()
    excluded_dates: set[date] = set()
    for prop in master.all("EXDATE"):
        for item in prop.value.split(","):
            value = parse_date_value(item)
            if value is None:
                context.defects.append("unreadable-exdate")
            elif value.is_date:
                excluded_dates.add(value.value.date())
            else:
                single = Property(prop.name, prop.params, item)
                moment = _read_time(single, context, code="no-start", fallback=zone)
                excluded_moments.add(moment.utc)

    kept = [
        occurrence
        for utc, occurrence in sorted(found.items())
        if utc not in excluded_moments
        and zone.from_utc(utc).date() not in excluded_dates
    ]
    return kept, truncated


def _rule_starts(
    text: str, span: _Span, context: _Context
) -> tuple[list[datetime], bool]:
    """Local start times the RRULE gives, bounded by horizon, caps and budget."""
    zone = span.start.zone
    local_start = span.start.value.value
    kwargs = _rule_arguments(text, local_start, zone, context)
    if local_start.year < EARLIEST_YEAR:
        raise CalendarError(
            "unbounded-recurrence", f"the series starts in {local_start.year}"
        )

    shift = cycle_shift(context.horizon_end.year + 10)
    until = kwargs.pop("until", None)
    if isinstance(until, datetime):
        if until.year + shift <= 9999:
            kwargs["until"] = shift_years(until, shift)
        if until < local_start:
            context.defects.append("until-before-start")
    try:
        rule = dateutil_rrule.rrule(dtstart=shift_years(local_start, shift), **kwargs)
    except (ValueError, TypeError) as error:
        raise CalendarError("invalid-recurrence", str(error)[:200]) from error

    # Occurrences already over are passed by without counting toward the
    # cap, so a series that started years ago still gets its coming dates;
    # the last one over is kept when nothing is left, for the rules to see.
    window_start = context.now - PAST_MARGIN
    starts: list[datetime] = []
    last_over: datetime | None = None
    truncated = False
    candidates = itertools.chain(
        [local_start], (shift_years(shifted, -shift) for shifted in rule)
    )
    try:
        for index, local in enumerate(candidates):
            context.check_time()
            if index and local == local_start:
                continue
            if zone.to_utc(local) > context.horizon_end:
                truncated = True
                break
            if span.end_of(local) < window_start:
                last_over = local
                continue
            if len(starts) >= MAX_OCCURRENCES:
                truncated = True
                break
            starts.append(local)
    except ValueError as error:
        raise CalendarError("invalid-recurrence", str(error)[:200]) from error
    if not starts and last_over is not None:
        starts.append(last_over)
    return starts, truncated


def _rule_arguments(
    text: str, local_start: datetime, zone: Zone, context: _Context
) -> dict[str, object]:
    parts: dict[str, str] = {}
    for item in text.split(";"):
        key, equals, value = item.partition("=")
        if equals:
            parts[key.strip().upper()] = value.strip()
    freq = parts.pop("FREQ", "").upper()
    if freq in _SUB_DAILY:
        raise CalendarError("unbounded-recurrence", f"FREQ={freq}")
    if freq not in _FREQUENCIES:
        raise CalendarError("invalid-recurrence", f"FREQ={freq!r}")
    kwargs: dict[str, object] = {"freq": _FREQUENCIES[freq]}

    interval = _rule_int(parts.pop("INTERVAL", "1"), "INTERVAL")
    if interval < 1:
        raise CalendarError("unbounded-recurrence", f"INTERVAL={interval}")
    if interval > MAX_INTERVAL:
        raise CalendarError("invalid-recurrence", f"INTERVAL={interval}")
    kwargs["interval"] = interval
    if "COUNT" in parts:
        count = _rule_int(parts.pop("COUNT"), "COUNT")
        if count < 1:
            raise CalendarError("invalid-recurrence", f"COUNT={count}")
        kwargs["count"] = min(count, MAX_COUNT)
    if "UNTIL" in parts:
        kwargs["until"] = _until(parts.pop("UNTIL"), zone, context)
        if "count" in kwargs:
            context.defects.append("count-and-until")
            kwargs.pop("count")
    if "WKST" in parts:
        weekstart = parse_weekdays(parts.pop("WKST"))
        if weekstart is None or len(weekstart) != 1:
            raise CalendarError("invalid-recurrence", "WKST")
        kwargs["wkst"] = weekstart[0]
    if "BYDAY" in parts:
        days = parse_weekdays(parts.pop("BYDAY"))
        if days is None or len(days) > MAX_RULE_ITEMS:
            raise CalendarError("invalid-recurrence", "BYDAY")
        kwargs["byweekday"] = days
    for name, (keyword, low, high) in _INT_PARTS.items():
        if name in parts:
            numbers = parse_int_list(parts.pop(name), low=low, high=high)
            if numbers is None or len(numbers) > MAX_RULE_ITEMS:
                raise CalendarError("invalid-recurrence", name)
            if low == 0 and min(numbers) < 0:
                raise CalendarError("invalid-recurrence", name)
            kwargs[keyword] = numbers
    if parts:
        context.defects.append("unknown-rrule-parts:" + ",".join(sorted(parts)))
    return kwargs


def _until(text: str, zone: Zone, context: _Context) -> datetime:
    value = parse_date_value(text)
    if value is None:
        raise CalendarError("invalid-recurrence", f"UNTIL={text[:40]!r}")
    if value.is_date:
        context.defects.append("until-is-a-date")
        return value.value.replace(hour=23, minute=59, second=59)
    if value.utc:
        if value.value.year > MAX_YEAR:
            return datetime(MAX_YEAR, 1, 1)
        return zone.from_utc(value.value.replace(tzinfo=UTC))
    return value.value


def _rule_int(text: str, name: str) -> int:
    try:
        number = int(text.strip())
    except ValueError as error:
        raise CalendarError("invalid-recurrence", f"{name}={text[:20]!r}") from error
    if abs(number) > 10**12:
        raise CalendarError("invalid-recurrence", f"{name} is too large")
    return number


def _rdates(
    prop: Property, span: _Span, context: _Context
) -> list[tuple[datetime | None, datetime, datetime]]:
    zone = span.start.zone
    found: list[tuple[datetime | None, datetime, datetime]] = []
    for item in prop.value.split(",")[: MAX_OCCURRENCES + 1]:
        start_text, slash, end_text = item.partition("/")
        value = parse_date_value(start_text)
        if value is None:
            context.defects.append("unreadable-rdate")
            continue
        if value.is_date:
            context.defects.append("rdate-is-a-date")
            day = datetime.combine(value.value.date(), span.start.value.value.time())
            found.append((day, zone.to_utc(day), span.end_of(day)))
            continue
        single = Property(prop.name, prop.params, start_text)
        start = _read_time(single, context, code="no-start", fallback=zone)
        start_utc = start.utc
        if not slash:
            if start.zone is zone:
                local = start.value.value
                found.append((local, start_utc, span.end_of(local)))
            else:
                found.append((None, start_utc, start_utc + span.exact))
            continue
        end_value = parse_date_value(end_text)
        duration = parse_duration(end_text)
        if end_value is not None and not end_value.is_date:
            single_end = Property(prop.name, prop.params, end_text)
            end_utc = _read_time(single_end, context, code="no-end", fallback=zone).utc
        elif duration is not None:
            end_utc = start.zone.to_utc(start.value.value + duration[0]) + duration[1]
        else:
            context.defects.append("unreadable-rdate")
            continue
        if end_utc <= start_utc:
            context.defects.append("rdate-non-positive-duration")
            continue
        found.append((None, start_utc, end_utc))
    return found


def _method(
    body: str | None, hint: str | None, has_attendees: bool, defects: list[str]
) -> str:
    hint = hint.strip().upper() if hint else None
    if body:
        if hint and hint != body:
            defects.append("method-mismatch")
        return body
    if hint:
        defects.append("method-from-mime-part")
        return hint
    if has_attendees:
        defects.append("no-method-assumed-request")
        return "REQUEST"
    defects.append("no-method")
    return ""


def _sequence(event: Component, defects: list[str]) -> int:
    text = event.text("SEQUENCE").strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        defects.append("unreadable-sequence")
        return 0
    return value if 0 <= value < 10**18 else 0


def _dtstamp(event: Component, defects: list[str]) -> datetime | None:
    prop = event.first("DTSTAMP")
    if prop is None:
        return None
    value = parse_date_value(prop.value)
    if value is None or value.is_date or not value.utc:
        defects.append("unreadable-dtstamp")
        return None
    return value.value.replace(tzinfo=UTC)


def _address(prop: Property) -> str:
    value = unescape_text(prop.value).strip()
    if value.lower().startswith("mailto:"):
        value = value[len("mailto:") :]
    value = value.strip().strip("\"'<>").strip().lower()
    if "@" not in value:
        email = (prop.param("EMAIL") or "").strip().lower()
        if "@" in email:
            return email
    return value


def _written_tzid(event: Component) -> str | None:
    prop = event.first("DTSTART")
    return prop.param("TZID") if prop is not None else None


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
