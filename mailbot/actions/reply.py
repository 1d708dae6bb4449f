"""Replies: a decision rendered as a templated e-mail with its iTIP REPLY.

``render_reply`` builds the message a council (and, where a person must act,
the support team) reads. The text comes from one Jinja2 template per outcome
and language under ``mailbot/templates/<language>/``; three notices have
their own template, chosen by the decision's reason instead of its outcome:
``reply-cap``, ``registration-confirmed`` and ``registration-rejected``.

Registration outcomes read ``ReplyFacts.registration`` as the pipeline lays
out a registration request: the fields ``entity_name``, ``nif``,
``contact_name``, ``contact_role``, ``phone``, ``zoom_email``,
``youtube_channel`` (text), ``has_own_channel`` and ``channel_agreement``
(bool or None); ``problems`` and ``warnings`` (lists of mappings with
``field``, ``code`` and ``detail``); and, for a rejection, ``reason``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from mailbot.config import ServiceConfig
from mailbot.errors import InputError
from mailbot.models import (
    Decision,
    Entity,
    Envelope,
    Invitation,
    Needs,
    Occurrence,
    Outcome,
)
from mailbot.rules import NOT_CHECKED

LANGUAGES = ("ca", "es")
CONSORTIUM_ADDRESS = "localretmeet@localret.cat"  # copied on registrations
PRODID = "-//LOCALRETMEET//mailbot//EN"
MAX_SUBJECT = 150  # characters of the Subject header, at most
MAX_LISTED = 50  # occurrences listed in one reply; the rest are counted
MAX_LINE_OCTETS = 998  # RFC 5322's hard limit on a header line
MAX_DECODING_PASSES = 4  # encoded words inside encoded words, at most
MAX_REFERENCES = 20  # message ids kept in References, the newest
NOTICES = frozenset({"reply-cap", "registration-confirmed", "registration-rejected"})
REGISTRATION_FIELDS = (
    "entity_name",
    "nif",
    "contact_name",
    "contact_role",
    "phone",
    "zoom_email",
    "has_own_channel",
    "youtube_channel",
    "channel_agreement",
)

PARTSTAT: Mapping[Outcome, str] = {
    Outcome.BOOKED: "ACCEPTED",
    Outcome.UPDATED: "ACCEPTED",
    Outcome.PENDING: "TENTATIVE",
    Outcome.NEEDS_INFO: "TENTATIVE",
    Outcome.DECLINED: "DECLINED",
    Outcome.UNREGISTERED: "DECLINED",
}

TEMPLATED = frozenset(
    {
        Outcome.BOOKED,
        Outcome.UPDATED,
        Outcome.PENDING,
        Outcome.NEEDS_INFO,
        Outcome.DECLINED,
        Outcome.UNREGISTERED,
        Outcome.CANCELLED,
        Outcome.QUARANTINED,
        Outcome.REGISTRATION_PENDING,
        Outcome.REGISTRATION_INCOMPLETE,
    }
)

# The reason a failed check stands for, when the decision names another one.
RULE_REASONS: Mapping[str, str] = {
    "registered": "unregistered",
    "confirmed": "entity-not-confirmed",
    "sender-match": "sender-mismatch",
    "duration": "no-duration",
    "future": "in-the-past",
    "notice": "late-notice",
    "capacity": "pool-full",
    "channel": "consortium-channel-not-allowed",
    "participants": "too-many-participants",
    "recurrence": "recurrence",
}
# Reason codes that say the same thing as another one.
ALIASES: Mapping[str, str] = {
    "not-registered": "unregistered",
    "series-does-not-fit": "recurrence",
}
# Codes the templates explain with a sentence of their own (``explain`` in
# _macros.j2); any other code is told only when it is the deciding one.
EXPLAINED = frozenset(
    {
        "unregistered",
        "sender-mismatch",
        "entity-not-confirmed",
        "entity-rejected",
        "all-day",
        "no-end",
        "no-duration",
        "non-positive-duration",
        "unknown-timezone",
        "ambiguous-time",
        "timezone-conflict",
        "nonexistent-time",
        "beyond-horizon",
        "no-occurrences",
        "several-events",
        "copies-disagree",
        "unmatched-override",
        "no-start",
        "no-calendar",
        "no-event",
        "winmail-dat",
        "unreadable",
        "unparseable-calendar",
        "too-large",
        "too-deep",
        "too-many-parts",
        "too-many-components",
        "invalid-recurrence",
        "unbounded-recurrence",
        "in-the-past",
        "nothing-to-book",
        "late-notice",
        "pool-full",
        "consortium-channel-not-allowed",
        "too-many-participants",
        "recurrence",
        "unknown-booking",
        "cancelled",
    }
)
ENTITY_REASONS = frozenset(
    {"unregistered", "sender-mismatch", "entity-not-confirmed", "entity-rejected"}
)

# A registered sender writing for another entity is not "unregistered".
MISMATCH_SUBJECTS: Mapping[str, str] = {
    "ca": "Convocatòria no acceptada: el remitent no és de l'entitat organitzadora",
    "es": "Convocatoria no aceptada: el remitente no es de la entidad organizadora",
}
SUBJECTS: Mapping[str, Mapping[str, str]] = {
    "ca": {
        "booked": "Reserva confirmada",
        "updated": "Reserva actualitzada",
        "pending": "Reserva pendent de revisió",
        "needs-info": "Falta informació per a la reserva",
        "declined": "Reserva no possible",
        "unregistered": "Remitent no registrat al servei",
        "cancelled": "Cancel·lació rebuda",
        "quarantined": "No hem pogut llegir el missatge",
        "registration-pending": "Sol·licitud d'alta rebuda",
        "registration-incomplete": "Sol·licitud d'alta incompleta",
        "registration-confirmed": "Alta confirmada",
        "registration-rejected": "Alta no acceptada",
        "reply-cap": "Límit diari de respostes automàtiques",
    },
    "es": {
        "booked": "Reserva confirmada",
        "updated": "Reserva actualizada",
        "pending": "Reserva pendiente de revisión",
        "needs-info": "Falta información para la reserva",
        "declined": "Reserva no posible",
        "unregistered": "Remitente no registrado en el servicio",
        "cancelled": "Cancelación recibida",
        "quarantined": "No hemos podido leer el mensaje",
        "registration-pending": "Solicitud de alta recibida",
        "registration-incomplete": "Solicitud de alta incompleta",
        "registration-confirmed": "Alta confirmada",
        "registration-rejected": "Alta no aceptada",
        "reply-cap": "Límite diario de respuestas automáticas",
    },
}

COMMENTS: Mapping[str, Mapping[str, str]] = {
    "ca": {
        "booked": "Reserva confirmada: la sessió té una llicència avançada.",
        "updated": "Reserva actualitzada: la sessió manté la llicència avançada.",
        "pending": "Reserva pendent: l'equip de suport la revisarà.",
        "needs-info": "Falta informació: vegi el correu de resposta.",
        "declined": "No es pot reservar: vegi el correu de resposta.",
        "unregistered": "Remitent no registrat: vegi el correu de resposta.",
    },
    "es": {
        "booked": "Reserva confirmada: la sesión tiene una licencia avanzada.",
        "updated": "Reserva actualizada: la sesión mantiene la licencia avanzada.",
        "pending": "Reserva pendiente: el equipo de soporte la revisará.",
        "needs-info": "Falta información: vea el correo de respuesta.",
        "declined": "No se puede reservar: vea el correo de respuesta.",
        "unregistered": "Remitente no registrado: vea el correo de respuesta.",
    },
}

WEEKDAYS: Mapping[str, tuple[str, ...]] = {
    "ca": (
        "dilluns",
        "dimarts",
        "dimecres",
        "dijous",
        "divendres",
        "dissabte",
        "diumenge",
    ),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
}
MONTHS: Mapping[str, tuple[str, ...]] = {
    "ca": (
        "gener",
        "febrer",
        "març",
        "abril",
        "maig",
        "juny",
        "juliol",
        "agost",
        "setembre",
        "octubre",
        "novembre",
        "desembre",
    ),
    "es": (
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ),
}

MAX_HEADER_LINE = 78  # columns of a header line, as the SMTP policy folds
MAX_ENCODED = 60  # encoded text in one RFC 2047 word (the word is 72 at most)
ICAL_LINE = 75  # octets of an iCalendar content line
REMEMBERED_HEADERS = 256  # parsed header values kept for reuse

# RFC 2047 "Q" for a phrase: ASCII letters and digits as they are, space as
# "_", every other byte as =XX.
_Q_BYTES = tuple(
    "_" if byte == 0x20 else chr(byte) if chr(byte).isalnum() else f"={byte:02X}"
    for byte in range(128)
) + tuple(f"={byte:02X}" for byte in range(128, 256))
_UNSAFE_HEADER = re.compile(r"[\x00-\x1f\x7f]")
_ICAL_QUOTABLE = re.compile("[,;:\u2019]")
_ICAL_BREAKS = re.compile(r"\r\n|\r|\n")


class _Remembering(HeaderRegistry):
    """The standard header classes, remembering the values parsed last.

    Writing a message reads its Content-Type several times a part, and the
    parts' headers are the same in every reply: each is parsed once here.
    Header objects are never changed once made, so sharing them is safe.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[tuple[str, str], BaseHeader] = {}

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if not isinstance(value, str):
            made: BaseHeader = super().__call__(name, value)
            return made
        key = (name.lower(), value)
        found = self._seen.get(key)
        if found is None:
            if len(self._seen) >= REMEMBERED_HEADERS:
                self._seen.clear()
            found = self._seen[key] = super().__call__(name, value)
        return found


# The SMTP policy (CRLF, 78 columns), parsing each header value once.
POLICY = SMTP.clone(header_factory=_Remembering())

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True, slots=True)
class ReplyFacts:
    """Everything a reply says, gathered by the pipeline."""

    decision: Decision
    envelope: Envelope  # the incoming message's headers
    invitation: Invitation | None  # None for non-calendar mail
    needs: Needs | None
    entity: Entity | None
    booking_id: int | None
    licenses: tuple[tuple[Occurrence, str], ...] = ()  # license held per occurrence
    registration: Mapping[str, object] | None = None  # for registration outcomes
    arrived: datetime | None = None  # server arrival time, shown to support


@dataclass(frozen=True, slots=True)
class _Listed:
    """One line of a list of occurrences: when, and what about it."""

    when: str
    note: str


@dataclass(frozen=True, slots=True)
class _Meeting:
    """The meeting as understood, already formatted for the reply's language."""

    summary: str
    organizer: str
    when: str  # the first occurrence, "" when no time could be trusted
    duration: str
    series: bool
    count: int
    first: str
    last: str
    occurrence: str  # the original time of the one occurrence replied to, or ""
    truncated: bool
    problem: str
    tzid: str
    sessions: tuple[str, ...] = ()  # every session, when not all at one time
    sessions_more: int = 0  # sessions past MAX_LISTED, counted only


@dataclass(frozen=True, slots=True)
class _Registration:
    """A registration request's fields, as the templates show them."""

    values: Mapping[str, object]
    missing: tuple[str, ...]  # field names
    invalid: tuple[str, ...]  # field names whose value is wrong
    warnings: tuple[str, ...]  # warning codes, e.g. "personal-address"
    reason: str  # why support rejected it, "" when not rejected


def render_reply(
    facts: ReplyFacts,
    *,
    service: ServiceConfig,
    language: str,
    message_id: str,
    now: datetime,
) -> EmailMessage:
    """The reply to the message ``facts`` describe, ready to send."""
    decision = facts.decision
    language = language if language in LANGUAGES else service.language
    language = language if language in LANGUAGES else LANGUAGES[0]
    template = template_name(decision)
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)

    recipient = _recipient(facts)
    text = _render_text(facts, template=template, service=service, language=language)

    # Headers go in pre-folded (set_raw): the header registry would parse
    # each one when set and again when written.  Reading one back still
    # gives the registry's object, so the message reads as any other.
    message = EmailMessage(policy=POLICY)
    _put(message, "From", _constant("From", service.name, (service.address,)))
    _put(message, "To", _address_header("To", recipient))
    if decision.notify_support and service.support:
        _put(message, "Cc", _constant("Cc", "", tuple(service.support)))
    subject = reply_subject(facts, template=template, language=language)
    _put(message, "Subject", _text_header("Subject", subject))
    message.set_raw("Date", format_datetime(now.astimezone(UTC)))
    _put(message, "Message-ID", _id_header("Message-ID", _message_id(message_id)))
    incoming = _message_id(facts.envelope.message_id)
    if incoming:
        _put(message, "In-Reply-To", _id_header("In-Reply-To", incoming))
    references = _references(facts.envelope.references, incoming)
    if references:
        _put(message, "References", _id_header("References", *references))
    message.set_raw("Auto-Submitted", "auto-replied")
    message.set_raw("X-Auto-Response-Suppress", "All")
    message.set_raw("X-Mailbot-Outcome", decision.outcome.value)
    if facts.booking_id is not None:
        message.set_raw("X-Mailbot-Booking", str(facts.booking_id))
    message.set_raw("MIME-Version", "1.0")

    body = _text_part(text)
    partstat = PARTSTAT.get(decision.outcome)
    invitation = facts.invitation
    if (
        invitation is None
        or partstat is None
        or template in NOTICES
        or invitation.method == "CANCEL"
        or not _answers_organizer(facts)
    ):
        for name, value in body.raw_items():
            message.set_raw(name, value)
        message.set_payload(body.get_payload())
    else:
        calendar = itip_reply(
            invitation,
            service=service,
            partstat=partstat,
            comment=COMMENTS[language][decision.outcome.value],
            organizer=recipient.addr_spec,
            now=now,
        )
        boundary = "=_" + hashlib.sha256(message_id.encode()).hexdigest()[:32]
        message.set_raw(
            "Content-Type", f'multipart/alternative;\r\n boundary="{boundary}"'
        )
        message.attach(body)
        message.attach(_calendar_part(calendar))
    message.set_raw("Content-Language", language)
    return message


def template_name(decision: Decision) -> str:
    """The template a decision is rendered with, without language or suffix."""
    if decision.reason in NOTICES:
        return decision.reason
    if decision.outcome not in TEMPLATED:
        raise ValueError(f"outcome {decision.outcome.value!r} gets no reply")
    return decision.outcome.value


def itip_reply(
    invitation: Invitation,
    *,
    service: ServiceConfig,
    partstat: str,
    comment: str,
    organizer: str,
    now: datetime,
) -> bytes:
    """An iTIP REPLY (RFC 5546) answering ``invitation`` for the service.

    Written as text lines, escaped and folded as RFC 5545 asks.
    """
    event = []
    if invitation.summary:
        event.append(f"SUMMARY:{_ical_text(invitation.summary)}")
    event.append(f"DTSTAMP:{_ical_utc(now)}")
    event.append(f"UID:{_ical_text(invitation.uid)}")
    if invitation.recurrence_id is not None:
        event.append(f"RECURRENCE-ID:{_ical_utc(invitation.recurrence_id)}")
    event.append(f"SEQUENCE:{max(invitation.sequence, 0)}")
    attendee = _ical_address(service.address, service.name)
    event.append(f"ATTENDEE{attendee[0]};PARTSTAT={partstat}:{attendee[1]}")
    event.append(f"COMMENT:{_ical_text(comment)}")
    name, address = _ical_address(invitation.organizer or organizer, "")
    event.append(f"ORGANIZER{name}:{address}")

    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "METHOD:REPLY",
        "BEGIN:VEVENT",
        *event,
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "".join(f"{_ical_fold(line)}\r\n" for line in lines).encode("utf-8")


def reply_subject(facts: ReplyFacts, *, template: str, language: str) -> str:
    """The Subject: the outcome, then the meeting's summary or the subject."""
    label = SUBJECTS[language][template]
    if facts.decision.reason == "sender-mismatch":
        label = MISMATCH_SUBJECTS[language]
    topic = ""
    if template.startswith("registration"):
        name = (facts.registration or {}).get("entity_name")
        if name is None and facts.entity is not None:
            name = facts.entity.name
        topic = header_text(str(name or ""))
    elif facts.invitation is not None:
        topic = header_text(facts.invitation.summary)
    if template != "reply-cap":
        topic = topic or header_text(facts.envelope.subject)
    if not topic:
        return label
    room = MAX_SUBJECT - len(label) - 2
    if len(topic) > room:
        topic = topic[: room - 1].rstrip() + "…"
    return f"{label}: {topic}"


def header_text(value: str) -> str:
    """``value`` on one line, as a header will show it.

    The e-mail package decodes RFC 2047 encoded words when a header is set,
    so an encoded CR LF would become a real line break there.  Encoded words
    are decoded here first, as often as they nest (a few times at most), and
    control characters removed after every pass; one still left after that
    is broken up, so that it is shown as written and never decoded.
    """
    text = _one_line(value)
    for _ in range(MAX_DECODING_PASSES):
        if "=?" not in text:
            return text
        decoded = _one_line(str(SMTP.header_factory("subject", text)))
        if decoded == text:
            break
        text = decoded
    return text.replace("=?", "=\u2060?")


def _one_line(value: str) -> str:
    return _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()


def format_date(moment: datetime, *, language: str) -> str:
    """E.g. "dijous 17 de desembre de 2026" / "jueves 17 de diciembre de 2026"."""
    weekday = WEEKDAYS[language][moment.weekday()]
    month = MONTHS[language][moment.month - 1]
    of = "d'" if language == "ca" and month[0] in "aeiou" else "de "
    return f"{weekday} {moment.day} {of}{month} de {moment.year}"


def format_span(
    start: datetime, end: datetime, *, zone: ZoneInfo, language: str
) -> str:
    """A meeting's time in ``zone``: one day, or from one day to another."""
    start, end = start.astimezone(zone), end.astimezone(zone)
    label = zone_label(zone, language=language)
    if start.date() == end.date():
        day = format_date(start, language=language)
        # Catalan elides "de" before a vowel sound: "d'11:00", "d'01:00".
        of = "d'" if language == "ca" and start.hour in (1, 11) else "de "
        return f"{day}, {of}{start:%H:%M} a {end:%H:%M} ({label})"
    first = f"{format_date(start, language=language)}, {start:%H:%M}"
    last = f"{format_date(end, language=language)}, {end:%H:%M}"
    if language == "ca":
        return f"des del {first}, fins al {last} ({label})"
    return f"desde el {first}, hasta el {last} ({label})"


def format_moment(moment: datetime, *, zone: ZoneInfo, language: str) -> str:
    """E.g. "dijous 17 de desembre de 2026, 18:00 (hora de Madrid)"."""
    moment = moment.astimezone(zone)
    label = zone_label(zone, language=language)
    return f"{format_date(moment, language=language)}, {moment:%H:%M} ({label})"


def zone_label(zone: ZoneInfo, *, language: str) -> str:
    """ "hora de Madrid" for Europe/Madrid; the zone's city otherwise."""
    city = str(zone.key).rsplit("/", 1)[-1].replace("_", " ")
    return f"hora de {city}"


def format_duration(delta: timedelta, *, language: str) -> str:
    """E.g. "2 hores i 30 minuts" / "2 horas y 30 minutos"."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    hours, minutes = divmod(minutes, 60)
    if language == "ca":
        units = (("hora", "hores"), ("minut", "minuts"), " i ")
    else:
        units = (("hora", "horas"), ("minuto", "minutos"), " y ")
    parts = []
    if hours:
        parts.append(f"{hours} {units[0][0] if hours == 1 else units[0][1]}")
    if minutes or not hours:
        parts.append(f"{minutes} {units[1][0] if minutes == 1 else units[1][1]}")
    return units[2].join(parts)


def format_zoom_id(digits: str) -> str:
    """A Zoom meeting ID grouped as Zoom shows it, e.g. "111 2222 3333"."""
    if not digits.isdigit():
        return digits
    if len(digits) == 11:
        return f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    if len(digits) in (9, 10):
        return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
    return digits


def reason_codes(decision: Decision, invitation: Invitation | None) -> tuple[str, ...]:
    """The reasons a reply explains: the deciding one first, then the others.

    The others are the failed checks after the first (which gave the deciding
    reason), leaving out those that could not be evaluated (they prove
    nothing) and those without a sentence of their own in the templates.
    """
    primary = ALIASES.get(decision.reason, decision.reason)
    codes = [primary] if primary else []
    failed = [check for check in decision.checks if not check.passed]
    for check in failed[1:]:
        if check.detail.startswith(NOT_CHECKED):
            continue
        code = RULE_REASONS.get(check.rule, check.rule)
        if check.rule == "registered" and decision.reason in ENTITY_REASONS:
            code = decision.reason
        elif check.rule == "duration" and invitation is not None:
            code = invitation.problem or code
        code = ALIASES.get(code, code)
        if code in EXPLAINED and code not in codes:
            codes.append(code)
    return tuple(codes)


def _render_text(
    facts: ReplyFacts, *, template: str, service: ServiceConfig, language: str
) -> str:
    zone = ZoneInfo(service.timezone)
    decision = facts.decision

    def span(occurrence: Occurrence) -> str:
        return format_span(
            occurrence.start, occurrence.end, zone=zone, language=language
        )

    failing = [_Listed(span(o), code) for o, code in decision.failing]
    licenses = [_Listed(span(o), name) for o, name in facts.licenses]
    context: dict[str, object] = {
        "outcome": decision.outcome.value,
        "reason": decision.reason,
        "reasons": reason_codes(decision, facts.invitation),
        "detail": decision.detail,
        "checks": decision.checks,
        "notify_support": decision.notify_support,
        "meeting": _meeting(facts.invitation, zone=zone, language=language),
        "invitation": facts.invitation,
        "needs": facts.needs,
        "zoom_id": format_zoom_id(facts.needs.zoom_id or "") if facts.needs else "",
        "entity": facts.entity,
        "booking_id": facts.booking_id,
        "licenses": licenses[:MAX_LISTED],
        "licenses_more": max(len(licenses) - MAX_LISTED, 0),
        "license_names": tuple(dict.fromkeys(name for _, name in facts.licenses)),
        "failing": failing[:MAX_LISTED],
        "failing_more": max(len(failing) - MAX_LISTED, 0),
        "failing_total": len(failing),
        "proposals": [
            format_span(s.start, s.end, zone=zone, language=language)
            for s in sorted(decision.proposals, key=lambda slot: slot.start)
        ],
        "sender": facts.envelope.from_addr,
        "subject": header_text(facts.envelope.subject),
        "arrived": (
            format_moment(facts.arrived, zone=zone, language=language)
            if facts.arrived is not None
            else ""
        ),
        "registration": _registration(facts.registration),
        "service_name": service.name,
        "service_address": service.address,
        "support_addresses": service.support or (service.address,),
        "registration_addresses": tuple(
            dict.fromkeys((service.address, CONSORTIUM_ADDRESS))
        ),
        "zone_label": zone_label(zone, language=language),
    }
    text = _environment().get_template(f"{language}/{template}.j2").render(context)
    return _tidy(text)


def _meeting(
    invitation: Invitation | None, *, zone: ZoneInfo, language: str
) -> _Meeting | None:
    if invitation is None:
        return None
    live = [o for o in invitation.occurrences if not o.cancelled]
    shown = live or list(invitation.occurrences)

    def span(occurrence: Occurrence) -> str:
        return format_span(
            occurrence.start, occurrence.end, zone=zone, language=language
        )

    # A series whose sessions are not all at the same local time of day (a
    # rule written in another zone crosses a clock change, an override moved
    # one) is listed in full: "first" and "last" alone would hide an hour.
    times = {
        (o.start.astimezone(zone).time(), o.end.astimezone(zone).time()) for o in live
    }
    sessions = tuple(span(o) for o in live[:MAX_LISTED]) if len(times) > 1 else ()

    organizer = invitation.organizer
    if invitation.organizer_name and organizer:
        organizer = f"{header_text(invitation.organizer_name)} <{organizer}>"
    return _Meeting(
        summary=header_text(invitation.summary),
        organizer=organizer,
        when=span(shown[0]) if shown else "",
        duration=(
            format_duration(shown[0].end - shown[0].start, language=language)
            if shown
            else ""
        ),
        series=invitation.recurring and invitation.recurrence_id is None,
        count=len(live),
        first=span(live[0]) if live else "",
        last=span(live[-1]) if live else "",
        occurrence=(
            format_moment(invitation.recurrence_id, zone=zone, language=language)
            if invitation.recurrence_id is not None
            else ""
        ),
        truncated=invitation.truncated,
        problem=invitation.problem or "",
        tzid=header_text(invitation.tzid or ""),
        sessions=sessions,
        sessions_more=max(len(live) - MAX_LISTED, 0) if sessions else 0,
    )


def _registration(data: Mapping[str, object] | None) -> _Registration | None:
    if data is None:
        return None
    values: dict[str, object] = {}
    for key in REGISTRATION_FIELDS:
        value = data.get(key)
        if isinstance(value, bool):
            values[key] = value
        elif value is not None and str(value).strip():
            values[key] = header_text(str(value))
    problems = _problems(data.get("problems"))
    reason = data.get("reason")
    return _Registration(
        values=values,
        missing=tuple(dict.fromkeys(f for f, c in problems if c == "missing")),
        invalid=tuple(dict.fromkeys(f for f, c in problems if c != "missing")),
        warnings=tuple(dict.fromkeys(c for _, c in _problems(data.get("warnings")))),
        reason=header_text(str(reason)) if reason is not None else "",
    )


def _problems(value: object) -> list[tuple[str, str]]:
    """(field, code) pairs from a list of problem mappings; anything else: none."""
    if not isinstance(value, Iterable) or isinstance(value, str | bytes):
        return []
    found = []
    for item in value:
        if isinstance(item, Mapping):
            found.append((str(item.get("field", "")), str(item.get("code", ""))))
    return found


def answers_organizer(decision: Decision, invitation: Invitation | None) -> bool:
    """Whether the reply goes to the invitation's organizer.

    Not when the sender and the organizer are not of one entity: anybody can
    write a council's address in an ORGANIZER line, and the robot must not
    be made to mail that council; the answer goes to the sender instead.
    """
    return invitation is not None and decision.reason != "sender-mismatch"


def _answers_organizer(facts: ReplyFacts) -> bool:
    return answers_organizer(facts.decision, facts.invitation)


def _recipient(facts: ReplyFacts) -> Address:
    candidates: list[tuple[str, str]] = []
    if facts.invitation is not None and _answers_organizer(facts):
        candidates.append((facts.invitation.organizer, facts.invitation.organizer_name))
    candidates.append((facts.envelope.reply_to, ""))
    candidates.append((facts.envelope.from_addr, facts.envelope.from_name))
    for address, name in candidates:
        address = header_text(address)
        if "@" not in address:
            continue
        try:
            return Address(display_name=header_text(name), addr_spec=address)
        except (ValueError, IndexError):
            continue
    raise InputError("no-recipient", "no address to reply to")


def _ical_address(address: str, name: str) -> tuple[str, str]:
    """(";CN=..." or "", "mailto:...") of a calendar user address."""
    value = f"mailto:{header_text(address)}"
    name = header_text(name)
    if not name:
        return "", value
    name = name.replace("^", "^^").replace('"', "^'")  # RFC 6868
    if _ICAL_QUOTABLE.search(name):
        name = f'"{name}"'
    return f";CN={name}", value


def _ical_text(value: str) -> str:
    """A TEXT value escaped as RFC 5545 section 3.3.11 asks."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return _ICAL_BREAKS.sub("\\\\n", value)


def _ical_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _ical_fold(line: str) -> str:
    """``line`` folded into lines of at most 75 octets, never inside a character
    and never right after an escaping backslash or caret."""
    if len(line) <= ICAL_LINE and line.isascii():
        return line
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for char in line:
        width = len(char.encode("utf-8"))
        if current and size + width > ICAL_LINE:
            carried = current.pop() if len(current) > 1 and current[-1] in "\\^" else ""
            pieces.append("".join(current))
            current = [" ", carried] if carried else [" "]
            size = 1 + len(carried.encode("utf-8"))
        current.append(char)
        size += width
    pieces.append("".join(current))
    return "\r\n".join(pieces)


def _text_part(text: str) -> EmailMessage:
    """The text as a quoted-printable UTF-8 part."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii")
    part = EmailMessage(policy=POLICY)
    part.set_raw("Content-Type", 'text/plain; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", "quoted-printable")
    part.set_payload(encoded)
    return part


def _calendar_part(data: bytes) -> EmailMessage:
    """The iTIP REPLY as a base64 text/calendar part."""
    part = EmailMessage(policy=POLICY)
    part.set_raw("Content-Type", 'text/calendar; charset="UTF-8"; method="REPLY"')
    part.set_raw("Content-Transfer-Encoding", "base64")
    part.set_payload(base64.encodebytes(data).decode("ascii"))
    return part


_Header = tuple[str, object]  # (pre-folded value or "", what the registry takes)


def _put(message: EmailMessage, name: str, header: _Header) -> None:
    """Add a header pre-folded, or else through the header registry as before."""
    folded, value = header
    if folded:
        message.set_raw(name, folded)
    else:
        message[name] = value


def _text_header(name: str, value: str) -> _Header:
    """An unstructured header, folded, its non-ASCII words RFC 2047 encoded."""
    words = value.split(" ")
    plain = value.isascii() and "=?" not in value
    if _UNSAFE_HEADER.search(value) or (not plain and not all(words)):
        return "", value  # controls, or runs of spaces among encoded words
    tokens: list[str] = []
    run: list[str] = []
    for word in words:
        if not plain and (not word.isascii() or "=?" in word):
            run.append(word)
            continue
        if run:
            tokens.extend(_encoded_words(" ".join(run)))
            run = []
        tokens.append(word)
    if run:
        tokens.extend(_encoded_words(" ".join(run)))
    return _fold_tokens(name, tokens), value


def _address_header(name: str, address: Address) -> _Header:
    """One mailbox, its display name RFC 2047 encoded when not ASCII."""
    display = address.display_name
    if not address.addr_spec.isascii() or _UNSAFE_HEADER.search(str(address)):
        return "", address
    if not display:
        return _fold_tokens(name, [address.addr_spec]), address
    if display.isascii() and "=?" not in display:
        return _fold_tokens(name, str(address).split(" ")), address
    words = _encoded_words(display)
    if len(words) > 1:  # a phrase keeps the space between encoded words
        return "", address
    return _fold_tokens(name, [words[0], f"<{address.addr_spec}>"]), address


def _id_header(name: str, *ids: str) -> _Header:
    """Message ids in angle brackets, folded between them."""
    tokens = [f"<{value}>" for value in ids]
    value = " ".join(tokens)
    if not value.isascii() or "=?" in value or _UNSAFE_HEADER.search(value):
        return "", value
    return _fold_tokens(name, tokens, longest=MAX_LINE_OCTETS), value


@functools.lru_cache(maxsize=16)
def _constant(name: str, display: str, addresses: tuple[str, ...]) -> _Header:
    """From and Cc: the same in every reply, so folded by the registry once."""
    value = tuple(
        Address(display_name=header_text(display), addr_spec=address)
        for address in addresses
    )
    _, header = SMTP.header_store_parse(name, value)
    folded = str(header.fold(policy=SMTP)).removesuffix("\r\n")
    lines = folded.split("\r\n")
    if (
        folded.isascii()
        and folded.startswith(f"{name}: ")
        and all(len(line) <= MAX_HEADER_LINE for line in lines)
    ):
        return folded.removeprefix(f"{name}: "), value
    return "", value


def _encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 "Q" encoded words of UTF-8, none split in a character."""
    words: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        encoded = "".join(_Q_BYTES[byte] for byte in char.encode("utf-8"))
        if current and size + len(encoded) > MAX_ENCODED:
            words.append("=?utf-8?q?" + "".join(current) + "?=")
            current, size = [], 0
        current.append(encoded)
        size += len(encoded)
    words.append("=?utf-8?q?" + "".join(current) + "?=")
    return words


def _fold_tokens(name: str, tokens: Sequence[str], *, longest: int = 0) -> str:
    """Tokens joined by spaces, a line break before any that would pass 78
    columns; "" when one token alone is too long for a line, unless it fits
    in ``longest`` (message ids may not be broken or encoded: a long one
    stands alone on a longer line, as RFC 5322 allows up to 998)."""
    lines: list[str] = []
    line = ""
    room = MAX_HEADER_LINE - len(name) - 2
    for token in tokens:
        if not line:
            line = token
        elif len(line) + 1 + len(token) <= room or not token:
            line = f"{line} {token}"
        else:
            lines.append(line)
            line, room = f" {token}", MAX_HEADER_LINE
        if len(line) > max(room, longest - len(name) - 2):
            return ""
    lines.append(line)
    return "\r\n".join(lines)


def _message_id(value: str) -> str:
    return "".join(c for c in header_text(value) if c not in "<> ")


def _references(previous: tuple[str, ...], incoming: str) -> list[str]:
    ids = [i for i in (_message_id(r) for r in previous) if i and i != incoming]
    if incoming:
        ids.append(incoming)
    return list(dict.fromkeys(ids))[-MAX_REFERENCES:]


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)) + "\n"


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("mailbot", "templates"),
        autoescape=False,  # noqa: S701 - plain-text mail: there is no HTML to escape
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
