"""Time zones of invitations: VTIMEZONE rules, IANA, Windows and Outlook names."""

from __future__ import annotations

import functools
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dateutil import rrule as dateutil_rrule
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from mailbot.parsers.calendar_text import (
    Component,
    clean_tzid,
    parse_date_value,
)
from mailbot.parsers.windows_zones import DISPLAY_NAMES

# The Gregorian calendar repeats every 400 years, weekdays included; rules are
# evaluated that many years later so that dateutil, which scans up to year
# 9999 when a rule yields nothing, has little left to scan.
CYCLE_YEARS = 400
_HIGH_YEAR = 9598
_MAX_RDATES = 200

_OFFSET = re.compile(r"([+-])(\d{2})(\d{2})(\d{2})?")
_DISPLAY_PREFIX = re.compile(
    r"\(?\s*(?:UTC|GMT)\s*(?:([+-])\s*(\d{1,2})(?::?(\d{2}))?)?\s*\)\s*(.*)",
    re.IGNORECASE | re.DOTALL,
)
_WEEKDAYS = {
    "MO": dateutil_rrule.MO,
    "TU": dateutil_rrule.TU,
    "WE": dateutil_rrule.WE,
    "TH": dateutil_rrule.TH,
    "FR": dateutil_rrule.FR,
    "SA": dateutil_rrule.SA,
    "SU": dateutil_rrule.SU,
}
_BYDAY = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)")


class Zone:
    """A time zone that turns local wall times into UTC and back."""

    name: str | None  # the IANA name, when there is one

    def to_utc(self, local: datetime) -> datetime:
        """UTC for a naive local time (the earlier one when it is repeated)."""
        raise NotImplementedError

    def from_utc(self, moment: datetime) -> datetime:
        """The naive local wall time of an aware moment."""
        raise NotImplementedError


class IanaZone(Zone):
    """A zone of the IANA database (through ``zoneinfo`` and ``tzdata``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._info = zoneinfo.ZoneInfo(name)

    def to_utc(self, local: datetime) -> datetime:
        return local.replace(tzinfo=self._info, fold=0).astimezone(UTC)

    def from_utc(self, moment: datetime) -> datetime:
        return moment.astimezone(self._info).replace(tzinfo=None)

    def standard_offset(self, year: int) -> timedelta:
        """The smaller of the January and July offsets of ``year``."""
        offsets = []
        for month in (1, 7):
            offset = datetime(year, month, 1, tzinfo=self._info).utcoffset()
            offsets.append(offset if offset is not None else timedelta(0))
        return min(offsets)


@dataclass(frozen=True, slots=True)
class Observance:
    """One STANDARD or DAYLIGHT block of a VTIMEZONE."""

    start: datetime  # local wall time, in the offset before the onset
    offset_from: timedelta
    offset_to: timedelta
    rule: dict[str, object] | None  # dateutil keyword arguments, YEARLY only
    until: datetime | None  # UTC, aware; or naive local
    rdates: tuple[datetime, ...]


class VtimezoneZone(Zone):
    """A zone built from the VTIMEZONE component sent with the invitation."""

    def __init__(
        self, tzid: str, observances: tuple[Observance, ...], name: str | None
    ) -> None:
        self.tzid = tzid
        self.name = name
        self._observances = observances
        self._offsets = sorted({o.offset_to for o in observances}, reverse=True)
        self._onsets: dict[int, list[tuple[datetime, timedelta]]] = {}

    def offset_at(self, moment: datetime) -> timedelta:
        """The UTC offset in force at an aware (or naive UTC) moment."""
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        best: tuple[datetime, timedelta] | None = None
        for onset, offset in self._onsets_near(naive.year):
            if onset <= naive and (best is None or onset > best[0]):
                best = (onset, offset)
        if best is not None:
            return best[1]
        first = min(self._observances, key=lambda o: o.start)
        return first.offset_from

    def to_utc(self, local: datetime) -> datetime:
        for offset in self._offsets:
            moment = (local - offset).replace(tzinfo=UTC)
            if self.offset_at(moment) == offset:
                return moment
        probe = (local - self._offsets[0]).replace(tzinfo=UTC)
        return (local - self.offset_at(probe)).replace(tzinfo=UTC)

    def from_utc(self, moment: datetime) -> datetime:
        return moment.astimezone(UTC).replace(tzinfo=None) + self.offset_at(moment)

    def _onsets_near(self, year: int) -> list[tuple[datetime, timedelta]]:
        cached = self._onsets.get(year)
        if cached is None:
            cached = []
            for observance in self._observances:
                cached.extend(_observance_onsets(observance, year))
            self._onsets[year] = cached
        return cached


class ZoneConflictError(Exception):
    """A calendar's VTIMEZONE and the official rules of the zone it names disagree."""


class CheckedZone(Zone):
    """A VTIMEZONE that names an official zone, checked against it at every use.

    Calendar clients show a time in an IANA or Windows zone by the official
    rules, whatever VTIMEZONE came with it; a sender's VTIMEZONE that says
    otherwise (a missing daylight-saving block, an outdated rule) would give
    a believable wrong hour.  Where the two agree the time is certain; where
    they do not, :class:`ZoneConflictError` says so and no time is guessed.
    """

    def __init__(self, sent: VtimezoneZone, official: IanaZone, tzid: str) -> None:
        self.name = official.name
        self.tzid = tzid
        self._sent = sent
        self._official = official

    def to_utc(self, local: datetime) -> datetime:
        sent, official = self._sent.to_utc(local), self._official.to_utc(local)
        if sent != official:
            raise ZoneConflictError(
                f"TZID {self.tzid!r} at {local:%Y-%m-%d %H:%M}: the VTIMEZONE sent"
                f" gives {sent:%H:%M} UTC, the rules of {self.name} give"
                f" {official:%H:%M} UTC"
            )
        return official

    def from_utc(self, moment: datetime) -> datetime:
        return self._official.from_utc(moment)


def resolve_zone(
    tzid: str,
    *,
    vtimezones: Mapping[str, Component],
    year: int,
    defects: list[str] | None = None,
) -> Zone | None:
    """Find the zone a TZID names, in the order the product documents.

    1. a VTIMEZONE of the same calendar (TZIDs compared after unescaping and
       stripping quotes and spaces); 2. an IANA name, also behind a vendor
       prefix; 3. a Windows zone name; 4. an Outlook display name. None when
       nothing matches: the caller reports ``unknown-timezone``.  A VTIMEZONE
       whose TZID also names an official zone is checked against that zone
       (:class:`CheckedZone`).
    """
    notes = defects if defects is not None else []
    key = clean_tzid(tzid)
    named = zone_by_name(key, year=year, defects=notes)

    component = vtimezones.get(key)
    if component is not None:
        built = vtimezone_zone(component, name=named.name if named else None)
        if isinstance(built, VtimezoneZone) and isinstance(named, IanaZone):
            return CheckedZone(built, named, key)
        if built is not None:
            return built
        notes.append("unusable-vtimezone")
    return named


def zone_by_name(
    tzid: str, *, year: int, defects: list[str] | None = None
) -> IanaZone | None:
    """Resolve a TZID by its name alone (steps 2 to 4), or None."""
    notes = defects if defects is not None else []
    key = clean_tzid(tzid)
    if not key:
        return None

    iana = _iana_name(key)
    if iana is not None:
        return IanaZone(iana)
    if key.startswith("/"):
        parts = key.strip("/").split("/")
        for first in range(1, len(parts)):
            iana = _iana_name("/".join(parts[first:]))
            if iana is not None:
                notes.append("vendor-prefixed-tzid")
                return IanaZone(iana)

    windows = _windows_names().get(key.casefold())
    if windows is not None:
        return IanaZone(windows)
    lotus = _windows_names().get(f"{key} Standard Time".casefold())
    if lotus is not None:
        notes.append("short-windows-zone-name")
        return IanaZone(lotus)

    return _display_name_zone(key, year=year, defects=notes)


def vtimezone_zone(component: Component, *, name: str | None) -> Zone | None:
    """Build a zone from a VTIMEZONE, or None when its rules cannot be used."""
    observances: list[Observance] = []
    for child in component.children:
        if child.name not in ("STANDARD", "DAYLIGHT"):
            continue
        observance = _observance(child)
        if observance is None:
            return None
        observances.append(observance)
    if not observances:
        return None
    return VtimezoneZone(component.text("TZID"), tuple(observances), name)


def vtimezones_of(calendar: Component) -> dict[str, Component]:
    """The VTIMEZONE components of a calendar, by cleaned TZID (first wins)."""
    found: dict[str, Component] = {}
    for child in calendar.children:
        if child.name == "VTIMEZONE":
            prop = child.first("TZID")
            if prop is not None:
                found.setdefault(clean_tzid(prop.value), child)
    return found


def parse_weekdays(text: str) -> list[dateutil_rrule.weekday] | None:
    """Read a BYDAY list, tolerating spaces (``MO, TU``); None when invalid."""
    days: list[dateutil_rrule.weekday] = []
    for item in text.split(","):
        match = _BYDAY.fullmatch(item.strip().upper())
        if match is None:
            return None
        ordinal = int(match.group(1)) if match.group(1) else None
        if ordinal == 0 or (ordinal is not None and abs(ordinal) > 53):
            return None
        day = _WEEKDAYS[match.group(2)]
        days.append(day(ordinal) if ordinal is not None else day)
    return days


def parse_int_list(text: str, *, low: int, high: int) -> list[int] | None:
    """Read a comma list of integers within ±[low, high]; None when invalid."""
    numbers: list[int] = []
    for item in text.split(","):
        try:
            number = int(item.strip())
        except ValueError:
            return None
        if not low <= abs(number) <= high:
            return None
        numbers.append(number)
    return numbers


def cycle_shift(year: int) -> int:
    """Years to add (a multiple of 400) to bring ``year`` close to 9999."""
    return CYCLE_YEARS * max(0, (_HIGH_YEAR - year) // CYCLE_YEARS)


def shift_years(moment: datetime, years: int) -> datetime:
    return moment.replace(year=moment.year + years)


def _observance(component: Component) -> Observance | None:
    start_prop = component.first("DTSTART")
    start = parse_date_value(start_prop.value) if start_prop else None
    offset_from = _offset(component.first("TZOFFSETFROM"))
    offset_to = _offset(component.first("TZOFFSETTO"))
    if start is None or offset_to is None:
        return None
    if offset_from is None:
        offset_from = offset_to

    rdates: list[datetime] = []
    for prop in component.all("RDATE"):
        for item in prop.value.split(","):
            value = parse_date_value(item)
            if value is None or len(rdates) >= _MAX_RDATES:
                return None
            rdates.append(value.value)

    rule: dict[str, object] | None = None
    until: datetime | None = None
    rule_props = component.all("RRULE")
    if len(rule_props) > 1:
        return None
    if rule_props:
        parsed = _yearly_rule(rule_props[0].value, start.value)
        if parsed is None:
            return None
        rule, until = parsed
    return Observance(start.value, offset_from, offset_to, rule, until, tuple(rdates))


def _yearly_rule(
    text: str, start: datetime
) -> tuple[dict[str, object], datetime | None] | None:
    parts: dict[str, str] = {}
    for item in text.split(";"):
        key, _, value = item.partition("=")
        parts[key.strip().upper()] = value.strip()
    if parts.get("FREQ", "").upper() != "YEARLY":
        return None
    if parts.get("INTERVAL", "1") != "1" or "COUNT" in parts or "BYSETPOS" in parts:
        return None

    kwargs: dict[str, object] = {}
    if "BYMONTH" in parts:
        months = parse_int_list(parts["BYMONTH"], low=1, high=12)
        if months is None or min(months) < 1:
            return None
        kwargs["bymonth"] = months
    if "BYDAY" in parts:
        days = parse_weekdays(parts["BYDAY"])
        if days is None:
            return None
        kwargs["byweekday"] = days
    if "BYMONTHDAY" in parts:
        monthdays = parse_int_list(parts["BYMONTHDAY"], low=1, high=31)
        if monthdays is None:
            return None
        kwargs["bymonthday"] = monthdays
    if "BYYEARDAY" in parts or "BYWEEKNO" in parts:
        return None
    if "bymonth" not in kwargs:
        kwargs["bymonth"] = [start.month]
    if "byweekday" not in kwargs and "bymonthday" not in kwargs:
        kwargs["bymonthday"] = [start.day]

    until: datetime | None = None
    if "UNTIL" in parts:
        until_value = parse_date_value(parts["UNTIL"])
        if until_value is None:
            return None
        until = until_value.value
        if until_value.utc:
            until = until.replace(tzinfo=UTC)
    return kwargs, until


def _observance_onsets(
    observance: Observance, year: int
) -> list[tuple[datetime, timedelta]]:
    """Onsets (as naive UTC) of an observance in the years around ``year``."""
    local_onsets: list[datetime] = [observance.start, *observance.rdates]
    if observance.rule is not None:
        last_year = year + 1
        until = observance.until
        if until is not None:
            last_year = min(last_year, until.year + 1)
        for candidate_year in range(last_year - 2, last_year + 1):
            local_onsets.extend(_rule_onsets(observance, candidate_year))

    onsets: list[tuple[datetime, timedelta]] = []
    for local in local_onsets:
        if local < observance.start:
            continue
        utc = local - observance.offset_from
        until = observance.until
        if until is not None:
            if until.tzinfo is not None and utc > until.replace(tzinfo=None):
                continue
            if until.tzinfo is None and local > until:
                continue
        onsets.append((utc, observance.offset_to))
    return onsets


@functools.lru_cache(maxsize=4096)
def _rule_onsets_cached(
    year: int,
    start_time: tuple[int, int, int],
    months: tuple[int, ...],
    weekdays: tuple[str, ...],
    monthdays: tuple[int, ...],
) -> tuple[datetime, ...]:
    shift = cycle_shift(year)
    hour, minute, second = start_time
    first = datetime(year + shift, 1, 1, hour, minute, second)
    kwargs: dict[str, object] = {"bymonth": list(months)}
    if weekdays:
        kwargs["byweekday"] = [_weekday_from_text(text) for text in weekdays]
    if monthdays:
        kwargs["bymonthday"] = list(monthdays)
    found: list[datetime] = []
    for moment in dateutil_rrule.rrule(dateutil_rrule.YEARLY, dtstart=first, **kwargs):
        if moment.year != first.year:
            break
        found.append(shift_years(moment, -shift))
    return tuple(found)


def _rule_onsets(observance: Observance, year: int) -> tuple[datetime, ...]:
    if observance.rule is None or year < 1 or year > _HIGH_YEAR:
        return ()
    rule = observance.rule
    weekdays = rule.get("byweekday", [])
    monthdays = rule.get("bymonthday", [])
    months = rule.get("bymonth", [])
    assert isinstance(weekdays, list)
    assert isinstance(monthdays, list)
    assert isinstance(months, list)
    start = observance.start
    return _rule_onsets_cached(
        year,
        (start.hour, start.minute, start.second),
        tuple(months),
        tuple(repr(day) for day in weekdays),
        tuple(monthdays),
    )


def _weekday_from_text(text: str) -> dateutil_rrule.weekday:
    match = re.fullmatch(r"(MO|TU|WE|TH|FR|SA|SU)(?:\(([+-]?\d+)\))?", text)
    assert match is not None
    day = _WEEKDAYS[match.group(1)]
    return day(int(match.group(2))) if match.group(2) else day


def _offset(prop: object) -> timedelta | None:
    value = getattr(prop, "value", None)
    if not isinstance(value, str):
        return None
    match = _OFFSET.fullmatch(value.strip())
    if match is None:
        return None
    sign, hours, minutes, seconds = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0))
    if delta >= timedelta(hours=24):
        return None
    return -delta if sign == "-" else delta


@functools.cache
def _available() -> dict[str, str]:
    return {name.casefold(): name for name in zoneinfo.available_timezones()}


@functools.cache
def _windows_names() -> dict[str, str]:
    return {
        windows.casefold(): olson
        for windows, olson in WINDOWS_TO_OLSON.items()
        if olson.casefold() in _available()
    }


@functools.cache
def _display_names() -> dict[str, str]:
    return {_city_key(cities): windows for cities, windows in DISPLAY_NAMES.items()}


def _iana_name(name: str) -> str | None:
    return _available().get(name.casefold())


def _city_key(text: str) -> str:
    text = text.split(" : ", 1)[-1]
    items = []
    for item in text.split(","):
        plain = unicodedata.normalize("NFKD", item)
        letters = "".join(c for c in plain if c.isalnum() and c.isascii())
        if letters:
            items.append(letters.casefold())
    return ",".join(sorted(items))


def _display_name_zone(key: str, *, year: int, defects: list[str]) -> IanaZone | None:
    offset: timedelta | None = None
    cities = key
    match = _DISPLAY_PREFIX.fullmatch(key)
    if match is not None:
        sign, hours, minutes, cities = match.groups()
        offset = timedelta(hours=int(hours or 0), minutes=int(minutes or 0))
        if sign == "-":
            offset = -offset
    windows = _display_names().get(_city_key(cities))
    if windows is None:
        return None
    olson = _windows_names().get(windows.casefold())
    if olson is None:
        return None
    zone = IanaZone(olson)
    if offset is not None and zone.standard_offset(year) != offset:
        defects.append("display-name-offset-mismatch")
        return None
    defects.append("display-name-tzid")
    return zone
