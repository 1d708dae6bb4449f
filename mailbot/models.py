"""The plain values that flow through the pipeline, one stage to the next.

Every time here is an aware ``datetime`` in UTC; conversion to the local
zone happens only when a reply or a listing shows it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Outcome(enum.StrEnum):
    """What happened to one message; stored, shown in ``X-Mailbot-Outcome``."""

    BOOKED = "booked"  # a license is held for the meeting
    UPDATED = "updated"  # an existing booking was changed and still fits
    PENDING = "pending"  # a person on the support team must decide
    NEEDS_INFO = "needs-info"  # the invitation lacks something we must know
    DECLINED = "declined"  # the meeting cannot be booked (e.g. in the past)
    UNREGISTERED = "unregistered"  # the sender belongs to no registered entity
    CANCELLED = "cancelled"  # a cancellation released what it held
    UNCHANGED = "unchanged"  # an older or equal version: nothing to do
    DUPLICATE = "duplicate"  # the same message was already decided
    AUTOMATIC = "automatic"  # auto-reply, bounce or list mail: never answered
    PEOPLE = "people"  # mail for a person: filed for the support team
    QUARANTINED = "quarantined"  # could not be read
    REGISTRATION_PENDING = "registration-pending"
    REGISTRATION_INCOMPLETE = "registration-incomplete"
    REGISTRATION_CONFIRMED = "registration-confirmed"  # by support, from the CLI
    REGISTRATION_REJECTED = "registration-rejected"  # by support, from the CLI


class Folder(enum.StrEnum):
    """Where a handled message is filed (names come from the configuration)."""

    PROCESSED = "processed"
    QUARANTINE = "quarantine"
    PEOPLE = "people"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as the mailbox hands it over, before any parsing."""

    folder: str
    uidvalidity: int
    uid: int
    data: bytes
    arrived: datetime  # IMAP INTERNALDATE (or the Maildir file's mtime), UTC
    size: int  # RFC822.SIZE as the server reports it
    oversized: bool = False  # larger than the cap: ``data`` holds the headers only


@dataclass(frozen=True, slots=True)
class CalendarPart:
    """One iCalendar object found in a message, with where it was found."""

    data: bytes
    content_type: str  # e.g. "text/calendar", "application/ics"
    method: str | None  # the ``method=`` parameter of the MIME part, upper case
    filename: str | None


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the message's headers and MIME structure say."""

    message_id: str  # without angle brackets; a content hash when missing
    from_addr: str  # lower-cased address, "" when none could be read
    from_name: str
    reply_to: str
    return_path: str | None  # None when the header is absent
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str  # decoded, CR/LF removed
    references: tuple[str, ...]  # In-Reply-To and References, oldest first
    automatic: str | None  # why the mail is automatic (never answered), or None
    text: str  # the best plain-text body (HTML converted), for needs/registration
    calendars: tuple[CalendarPart, ...]
    attachments: tuple[str, ...]  # file names of other attachments
    defects: tuple[str, ...] = ()
    language: str | None = None  # "ca" or "es" when the text makes it clear


@dataclass(frozen=True, slots=True)
class Needs:
    """What the meeting needs, as read from the invitation's text."""

    stream: bool = False
    channel: str | None = None  # "own", "consortium" or None (not said)
    recording: bool = False
    support: str | None = None  # "technical", "host" or None
    kind: str | None = None  # "plenary", "board", "committee", "other" or None
    participants: int | None = None
    zoom_id: str | None = None  # digits only, e.g. "11122223333"
    zoom_code: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "stream": self.stream,
            "channel": self.channel,
            "recording": self.recording,
            "support": self.support,
            "kind": self.kind,
            "participants": self.participants,
            "zoom_id": self.zoom_id,
            "zoom_code": self.zoom_code,
        }


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One meeting of a series (or the only one): when it is, in UTC."""

    start: datetime
    end: datetime
    recurrence_id: datetime | None = None  # the original start, UTC; None if single
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class Invitation:
    """One calendar object (a VEVENT and its overrides) as mailbot reads it.

    ``problem`` is set, with ``occurrences`` empty, when no time can be
    trusted; it is the reason code that a ``needs-info`` reply explains.
    """

    uid: str
    method: str  # REQUEST, CANCEL, PUBLISH, REPLY, ... (the calendar's, upper case)
    sequence: int
    dtstamp: datetime | None
    organizer: str  # lower-cased address, "" when none
    organizer_name: str
    attendees: tuple[str, ...]  # lower-cased addresses
    summary: str
    description: str
    location: str
    comment: str
    status: str  # STATUS property, upper case, "" when absent
    tzid: str | None  # the TZID as written on DTSTART
    zone: str | None  # the IANA zone it was resolved to, for showing times
    occurrences: tuple[Occurrence, ...]
    recurring: bool = False  # RRULE or RDATE present
    recurrence_id: datetime | None = None  # set when the object is one occurrence
    truncated: bool = False  # the series was cut at the horizon or the caps
    all_day: bool = False
    problem: str | None = None
    problem_detail: str = ""
    defects: tuple[str, ...] = ()

    @property
    def start(self) -> datetime | None:
        live = [o for o in self.occurrences if not o.cancelled]
        return live[0].start if live else None

    @property
    def end(self) -> datetime | None:
        live = [o for o in self.occurrences if not o.cancelled]
        return live[0].end if live else None


@dataclass(frozen=True, slots=True)
class Entity:
    """A registered local entity and who may book for it."""

    nif: str
    name: str
    email: str
    language: str = "ca"
    youtube_channel: str = ""
    channel_agreement: bool = False
    status: str = "active"  # "active", "pending" (awaiting support), "rejected"
    senders: tuple[str, ...] = ()  # more addresses, or "@domain" entries
    timezone: str = "Europe/Madrid"


@dataclass(frozen=True, slots=True)
class Check:
    """The result of one booking rule, kept for auditors and shown in replies."""

    rule: str  # e.g. "registered", "notice", "capacity"
    passed: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Slot:
    """An interval of time, UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    """What mailbot decided about one message, and why."""

    outcome: Outcome
    reason: str  # a short code, e.g. "late-notice", "pool-full"
    folder: Folder = Folder.PROCESSED
    checks: tuple[Check, ...] = ()
    reply: bool = True  # whether the sender gets a reply
    notify_support: bool = False  # Cc the support addresses
    detail: str = ""  # free text for the audit row and the support team
    failing: tuple[tuple[Occurrence, str], ...] = ()  # occurrences that do not fit
    proposals: tuple[Slot, ...] = ()  # nearest free slots when the pool is full
    extra: dict[str, object] = field(default_factory=dict)
