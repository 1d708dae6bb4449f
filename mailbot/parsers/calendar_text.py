"""iCalendar text to a tree of components: unfolding, content lines, caps."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailbot.errors import CalendarError

MAX_CALENDAR_BYTES = 1_000_000
MAX_LINE_CHARS = 200_000
MAX_COMPONENTS = 1000
MAX_DEPTH = 8

# Properties whose values never hold a colon: the last unquoted colon of the
# line separates the value, which copes with unquoted TZIDs such as
# ``TZID=(UTC+01:00) Brussels, Copenhagen, Madrid, Paris``.
_DATE_PROPERTIES = frozenset(
    {"DTSTART", "DTEND", "DUE", "RECURRENCE-ID", "RDATE", "EXDATE", "DTSTAMP"}
)
_NAME = re.compile(r"[A-Za-z0-9-]+")
_DATE_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?")
_DURATION_TOKEN = re.compile(r"(\d{1,7})([WDHMS])")
_TEXT_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Property:
    """One content line: name (upper case), parameters and raw value."""

    name: str
    params: dict[str, str]
    value: str

    def param(self, key: str) -> str | None:
        return self.params.get(key)


@dataclass(slots=True)
class Component:
    """A BEGIN/END block with its properties and nested components."""

    name: str
    properties: list[Property] = field(default_factory=list)
    children: list[Component] = field(default_factory=list)

    def first(self, name: str) -> Property | None:
        for prop in self.properties:
            if prop.name == name:
                return prop
        return None

    def all(self, name: str) -> list[Property]:
        return [prop for prop in self.properties if prop.name == name]

    def text(self, name: str) -> str:
        prop = self.first(name)
        return unescape_text(prop.value) if prop is not None else ""


@dataclass(frozen=True, slots=True)
class ParsedText:
    """The VCALENDAR components of a calendar object, and what was odd in it."""

    calendars: tuple[Component, ...]
    defects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DateValue:
    """A DATE or DATE-TIME as written: naive, with ``utc`` when it ended in Z."""

    value: datetime
    is_date: bool
    utc: bool


def decode_calendar(data: bytes) -> tuple[str, tuple[str, ...]]:
    """Decode the bytes of a calendar object: UTF-8, else Windows-1252."""
    if len(data) > MAX_CALENDAR_BYTES:
        raise CalendarError("too-large", f"{len(data)} bytes")
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8"), ()
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), ("not-utf8",)


def unfold(text: str) -> list[str]:
    """Join folded lines (CRLF, LF or CR, then a space or tab); drop blank lines."""
    lines: list[str] = []
    for raw in re.split(r"\r\n|\n|\r", text):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]
            if len(lines[-1]) > MAX_LINE_CHARS:
                raise CalendarError("too-large", "a content line is too long")
        elif raw.strip():
            if len(raw) > MAX_LINE_CHARS:
                raise CalendarError("too-large", "a content line is too long")
            lines.append(raw)
    return lines


def parse_line(line: str) -> Property | None:
    """Split one unfolded content line, or None when it is not one."""
    match = _NAME.match(line)
    if match is None:
        return None
    name = match.group().upper()
    rest = line[match.end() :]
    colons = _unquoted_colons(rest)
    if not colons or (rest[:1] not in (":", ";")):
        return None
    split_at = colons[-1] if name in _DATE_PROPERTIES else colons[0]
    params = _parse_params(rest[:split_at])
    return Property(name, params, rest[split_at + 1 :])


def parse_text(text: str) -> ParsedText:
    """Build the component tree; raise CalendarError when it is broken."""
    defects: list[str] = []
    stack: list[Component] = []
    roots: list[Component] = []
    count = 0
    for line in unfold(text):
        prop = parse_line(line)
        if prop is None:
            defects.append("bad-content-line")
            continue
        if prop.name == "BEGIN":
            count += 1
            if count > MAX_COMPONENTS:
                raise CalendarError("too-many-components", f"more than {count - 1}")
            if len(stack) >= MAX_DEPTH:
                raise CalendarError("too-deep", f"more than {MAX_DEPTH} levels")
            stack.append(Component(prop.value.strip().upper()))
        elif prop.name == "END":
            name = prop.value.strip().upper()
            if not stack or stack[-1].name != name:
                raise CalendarError("unparseable-calendar", f"unexpected END:{name}")
            done = stack.pop()
            if stack:
                stack[-1].children.append(done)
            else:
                roots.append(done)
        elif stack:
            stack[-1].properties.append(prop)
        else:
            defects.append("content-outside-calendar")

    if stack:
        if any(c.name != "VCALENDAR" for c in stack):
            raise CalendarError("unparseable-calendar", f"no END:{stack[-1].name}")
        defects.append("unterminated-calendar")
        roots.append(stack[0])
    return ParsedText(tuple(c for c in roots if c.name == "VCALENDAR"), tuple(defects))


def unescape_text(value: str) -> str:
    """Undo TEXT escaping: ``\\n``, ``\\,``, ``\\;``, ``\\\\``."""

    def replace(match: re.Match[str]) -> str:
        char = match.group(1)
        return "\n" if char in "nN" else char

    return _TEXT_ESCAPE.sub(replace, value)


def clean_tzid(tzid: str) -> str:
    """The form TZIDs are matched in: unescaped, without quotes and outer spaces."""
    return unescape_text(tzid).strip().strip('"').strip()


def parse_date_value(text: str) -> DateValue | None:
    """Read ``YYYYMMDD`` or ``YYYYMMDDTHHMMSS[Z]``; None when it is neither."""
    match = _DATE_TIME.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, zulu = match.groups()
    try:
        if hour is None:
            return DateValue(datetime(int(year), int(month), int(day)), True, False)
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second)
        )
    except ValueError:
        return None
    return DateValue(moment, False, bool(zulu))


def parse_duration(text: str) -> tuple[timedelta, timedelta] | None:
    """Read a DURATION as (nominal days, exact time); None when unreadable."""
    value = text.strip().upper()
    sign = -1 if value.startswith("-") else 1
    value = value.lstrip("+-")
    if not value.startswith("P") or len(value) < 3:
        return None
    body = value[1:]
    date_part, _, time_part = body.partition("T")
    days = 0
    seconds = 0
    for part, in_time in ((date_part, False), (time_part, True)):
        position = 0
        for match in _DURATION_TOKEN.finditer(part):
            if match.start() != position:
                return None
            position = match.end()
            amount, unit = int(match.group(1)), match.group(2)
            if unit == "W":
                days += 7 * amount
            elif unit == "D":
                days += amount
            elif unit == "H" and in_time:
                seconds += 3600 * amount
            elif unit == "M" and in_time:
                seconds += 60 * amount
            elif unit == "S" and in_time:
                seconds += amount
            else:
                return None
        if position != len(part):
            return None
    return timedelta(days=sign * days), timedelta(seconds=sign * seconds)


def _unquoted_colons(text: str) -> list[int]:
    positions: list[int] = []
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            positions.append(index)
    return positions


def _parse_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    pieces: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    for piece in pieces:
        key, equals, value = piece.partition("=")
        if equals and key.strip():
            params.setdefault(key.strip().upper(), _unquote(value))
    return params


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    return value
