"""One message through the robot: classify, parse, decide, record, queue the reply.

:func:`handle` never raises for anything a sender could have written: bad input
becomes a ``quarantined`` decision with its reason.  Everything it writes for
one message (the message row, the decision, booking changes and the reply) is
committed in one transaction, so a crash leaves either all of it or none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from mailbot.actions.reply import ReplyFacts, answers_organizer, render_reply
from mailbot.config import Config
from mailbot.errors import InputError
from mailbot.models import (
    Check,
    Decision,
    Entity,
    Envelope,
    Folder,
    Invitation,
    Needs,
    Occurrence,
    Outcome,
    RawMessage,
)
from mailbot.parsers.authres import check_authentication
from mailbot.parsers.envelope import parse_envelope
from mailbot.parsers.invitation import read_invitation
from mailbot.parsers.needs import read_needs
from mailbot.parsers.registration import (
    RegistrationRequest,
    looks_like_registration,
    parse_registration,
)
from mailbot.pool import Holding, hold_interval
from mailbot.rules import Verdict, decide_cancel, decide_request
from mailbot.store import BookingRecord, Store, iso

log = logging.getLogger("mailbot.pipeline")

REQUEST_METHODS = ("REQUEST",)
WINMAIL = "winmail.dat"
PROPOSAL_WINDOW = timedelta(days=8)
# What a booking's occurrences become after a decision; any other outcome
# releases what they held.
_OCCURRENCE_STATUS = {
    Outcome.BOOKED: "booked",
    Outcome.UPDATED: "booked",
    Outcome.PENDING: "pending",
}
# Defects of the invitation reader after which no single meeting can be
# trusted, and the reason each is answered with.
UNCLEAR_CALENDARS = {
    "several-events": "several-events",
    "several-invitations": "several-events",
    "copies-disagree": "copies-disagree",
    "override-without-occurrence": "unmatched-override",
}
REGISTRATION_KEY_FIELDS = (
    "entity_name",
    "nif",
    "contact_name",
    "contact_role",
    "phone",
    "zoom_email",
    "youtube_channel",
    "has_own_channel",
    "channel_agreement",
)

# Writes one decision's changes (bookings, registrations) inside the
# message's transaction; gets the store, the time and the message row id,
# and returns the booking id the decision concerns, if any.
Writer = Callable[["Store", datetime, int], "int | None"]


@dataclass(frozen=True, slots=True)
class Handled:
    """What became of one message: where to file it and what was decided."""

    uid: int
    folder: Folder
    outcome: str
    message_id: str
    repeated: bool = False  # decided in an earlier run; only filing was left


@dataclass(slots=True)
class _Result:
    """What the steps of :func:`handle` gather before it is all written."""

    decision: Decision
    kind: str
    envelope: Envelope | None = None
    invitation: Invitation | None = None
    needs: Needs | None = None
    entity: Entity | None = None
    licenses: tuple[tuple[Occurrence, str], ...] = ()
    registration: RegistrationRequest | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    write: Writer | None = None  # run inside the message's transaction
    arrived: datetime | None = None  # when the server received the message
    language: str | None = None  # the reply's language, when not the entity's


def handle(raw: RawMessage, *, config: Config, store: Store, now: datetime) -> Handled:
    """Decide one message and commit the decision and its reply."""
    known = store.find_message(
        folder=raw.folder, uidvalidity=raw.uidvalidity, uid=raw.uid
    )
    if known is not None:
        folder = Folder(known.filed_to or Folder.PROCESSED)
        return Handled(
            raw.uid, folder, known.outcome or "", known.message_id, repeated=True
        )

    try:
        result = _decide(raw, config=config, store=store, now=now)
    except InputError as exc:
        result = _quarantine(
            exc.reason, exc.detail, raw=raw, store=store, config=config
        )
    except Exception as exc:  # a defect of ours: keep the daemon going, tell people
        log.exception("uid %s: unexpected error while deciding", raw.uid)
        result = _quarantine(
            "internal-error",
            f"{type(exc).__name__}: {exc}",
            raw=raw,
            store=store,
            config=config,
            reply=False,
        )

    result.arrived = raw.arrived
    message_id = result.envelope.message_id if result.envelope else _content_id(raw)
    try:
        _record(raw, result, message_id=message_id, config=config, store=store, now=now)
    except Exception as exc:
        # A defect of ours while writing (the transaction was rolled back):
        # record the message as quarantined, without a reply, so that it
        # does not stop the inbox at every restart.  If even that fails,
        # the store itself is broken and the error goes up to the daemon.
        log.exception(
            "%s uid %s: unexpected error while recording", message_id, raw.uid
        )
        result = _Result(
            Decision(
                Outcome.QUARANTINED,
                "internal-error",
                folder=Folder.QUARANTINE,
                reply=False,
                detail=f"{type(exc).__name__}: {exc}",
            ),
            result.kind,
            envelope=result.envelope,
            facts=result.facts,
        )
        _record(raw, result, message_id=message_id, config=config, store=store, now=now)
    decision = result.decision
    log.info(
        "%s uid=%s from=%s kind=%s reason=%s outcome=%s",
        message_id,
        raw.uid,
        result.envelope.from_addr if result.envelope else "?",
        result.kind,
        decision.reason,
        decision.outcome.value,
    )
    return Handled(raw.uid, decision.folder, decision.outcome.value, message_id)


# -- deciding -----------------------------------------------------------------


def _decide(raw: RawMessage, *, config: Config, store: Store, now: datetime) -> _Result:
    envelope = parse_envelope(
        raw.data,
        service_address=config.service.address,
        own_domain=config.message_id_domain,
    )
    unauthenticated = _unauthenticated(raw, envelope, config)
    if unauthenticated is not None:
        return unauthenticated

    if raw.oversized:
        return _quarantine_envelope(
            "too-large", f"{raw.size} bytes", envelope=envelope, store=store
        )
    if envelope.automatic is not None:
        decision = Decision(
            Outcome.AUTOMATIC, envelope.automatic, reply=False, folder=Folder.PROCESSED
        )
        return _Result(decision, "automatic", envelope=envelope)
    if store.seen_message_id(envelope.message_id):
        return _duplicate(envelope)

    if envelope.calendars:
        return _decide_calendar(envelope, raw=raw, config=config, store=store, now=now)
    if any(name.lower() == WINMAIL for name in envelope.attachments):
        entity = store.entity_for(envelope.from_addr)
        decision = Decision(
            Outcome.NEEDS_INFO,
            "winmail-dat",
            checks=(Check("calendar", False, "only a winmail.dat attachment"),),
        )
        return _Result(decision, "calendar", envelope=envelope, entity=entity)
    if looks_like_registration(envelope.subject, envelope.text):
        return _decide_registration(envelope, store=store, now=now)

    decision = Decision(
        Outcome.PEOPLE, "not-for-the-robot", folder=Folder.PEOPLE, reply=False
    )
    return _Result(decision, "other", envelope=envelope)


def _unauthenticated(
    raw: RawMessage, envelope: Envelope, config: Config
) -> _Result | None:
    """Mail failing the sender policy: no booking, no reply, filed for people.

    Its sender may be forged, so nobody is answered, and support is not
    mailed per message (that could be used to flood it): the audit row says
    why.  Automatic mail is left to its own rule, which never answers either.
    """
    security = config.security
    if envelope.automatic is not None or security.require_authentication == "none":
        return None
    verdict = check_authentication(
        raw.data,
        from_addr=envelope.from_addr,
        require=security.require_authentication,
        authserv_id=security.authserv_id,
    )
    if verdict.passed:
        return None
    decision = Decision(
        Outcome.PEOPLE,
        "unauthenticated",
        folder=Folder.PEOPLE,
        reply=False,
        detail=verdict.detail,
        checks=(Check("authenticated", False, verdict.detail),),
    )
    return _Result(decision, "unauthenticated", envelope=envelope)


def _decide_calendar(
    envelope: Envelope, *, raw: RawMessage, config: Config, store: Store, now: datetime
) -> _Result:
    sender_entity = store.entity_for(envelope.from_addr)
    floating = sender_entity.timezone if sender_entity else config.service.timezone
    invitation = read_invitation(
        envelope.calendars,
        floating_zone=floating,
        now=now,
        horizon_months=config.rules.horizon_months,
    )
    entity, sender_matches = _who_books(invitation, sender_entity, store)
    text = "\n".join(
        (
            invitation.summary,
            invitation.location,
            invitation.description,
            invitation.comment,
        )
    )
    needs = read_needs(text)
    facts = _invitation_facts(invitation, needs)

    if invitation.method == "CANCEL":
        return _decide_cancellation(
            invitation, envelope, entity, sender_matches, store, facts
        )
    if invitation.method not in REQUEST_METHODS:
        decision = Decision(
            Outcome.PEOPLE,
            f"method-{invitation.method.lower() or 'none'}",
            folder=Folder.PEOPLE,
            reply=False,
            detail="a calendar message that is not a request: left to people",
        )
        return _Result(
            decision, "calendar", envelope, invitation, needs, entity, facts=facts
        )
    service = config.service.address
    if invitation.attendees and service not in invitation.attendees:
        # A copy of somebody else's invitation (forwarded, Bcc): the service
        # was not invited, so it is no request; a person looks at it.
        decision = Decision(
            Outcome.PEOPLE,
            "not-invited",
            folder=Folder.PEOPLE,
            reply=False,
            detail=f"{service} is not among the attendees",
        )
        return _Result(
            decision, "calendar", envelope, invitation, needs, entity, facts=facts
        )
    unclear = [d for d in invitation.defects if d in UNCLEAR_CALENDARS]
    if unclear:
        # Two meetings in one message, or two copies of one that disagree:
        # booking one of them would be a guess.
        decision = Decision(
            Outcome.NEEDS_INFO,
            UNCLEAR_CALENDARS[unclear[0]],
            checks=(Check("calendar", False, ", ".join(unclear)),),
        )
        return _Result(
            decision, "calendar", envelope, invitation, needs, entity, facts=facts
        )

    existing = store.booking(invitation.uid)
    if (
        existing is not None
        and existing.entity is not None
        and (entity is None or entity.nif != existing.entity)
    ):
        # The same UID from another entity must not replace its booking.
        decision = Decision(
            Outcome.PEOPLE,
            "uid-of-another-entity",
            folder=Folder.PEOPLE,
            reply=False,
            detail=f"booking {existing.id} with this UID belongs to {existing.entity}",
        )
        return _Result(
            decision, "calendar", envelope, invitation, needs, entity, facts=facts
        )
    if existing is not None and _is_stale(invitation, existing):
        decision = Decision(
            Outcome.UNCHANGED,
            "not-newer",
            reply=False,
            detail=f"SEQUENCE {invitation.sequence} is not newer than"
            f" {existing.sequence}",
        )
        return _Result(
            decision, "calendar", envelope, invitation, needs, entity, facts=facts
        )

    one_occurrence = invitation.recurrence_id is not None and existing is not None
    verdict = _evaluate(
        invitation,
        entity=entity,
        needs=needs,
        raw=raw,
        config=config,
        store=store,
        now=now,
        existing=existing,
        previous=_previous(invitation, existing),
        sender_matches=sender_matches,
    )
    decision = verdict.decision
    if decision.outcome is Outcome.BOOKED and (one_occurrence or _live(existing)):
        decision = _replace(decision, outcome=Outcome.UPDATED)
    result = _Result(
        decision,
        "calendar",
        envelope,
        invitation,
        needs,
        entity,
        licenses=verdict.allocations,
        facts=facts,
    )
    if one_occurrence:
        assert existing is not None
        result.write = _occurrence_writer(
            invitation, existing, decision, verdict.allocations, config
        )
    elif decision.outcome in (Outcome.BOOKED, Outcome.UPDATED, Outcome.PENDING):
        result.write = _booking_writer(
            invitation, entity, needs, decision, verdict.allocations, config
        )
    elif existing is not None and existing.status != "cancelled":
        # An update that can no longer be booked releases what it held.
        result.write = _booking_writer(invitation, entity, needs, decision, (), config)
    if decision.reason == "sender-mismatch":
        # The answer goes to the sender: in the sender's language.
        result.language = (
            sender_entity.language
            if sender_entity
            else envelope.language or config.service.language
        )
    return result


def _previous(
    invitation: Invitation, existing: BookingRecord | None
) -> list[Occurrence]:
    """What an update replaces: the booking's occurrences, or the one it names."""
    if existing is None:
        return []
    rid = invitation.recurrence_id
    return [
        o.occurrence
        for o in existing.occurrences
        if rid is None
        or o.occurrence.recurrence_id == rid
        or (o.occurrence.recurrence_id is None and o.occurrence.start == rid)
    ]


def _occurrence_writer(
    invitation: Invitation,
    existing: BookingRecord,
    decision: Decision,
    allocations: tuple[tuple[Occurrence, str], ...],
    config: Config,
) -> Writer:
    """A REQUEST that carries one occurrence of a known series: write just it."""
    recurrence_id = invitation.recurrence_id
    assert recurrence_id is not None
    held = dict(allocations)
    occurrence = invitation.occurrences[0] if invitation.occurrences else None
    status = _OCCURRENCE_STATUS.get(decision.outcome, "released")

    def write(store: Store, now: datetime, message: int) -> int | None:
        if occurrence is not None:
            store.replace_occurrence(
                booking_id=existing.id,
                recurrence_id=recurrence_id,
                occurrence=Occurrence(
                    occurrence.start, occurrence.end, recurrence_id=recurrence_id
                ),
                hold=_hold(occurrence, config),
                license_=held.get(occurrence) if status == "booked" else None,
                status=status,
                sequence=invitation.sequence,
                now=now,
            )
        return existing.id

    return write


def _decide_cancellation(
    invitation: Invitation,
    envelope: Envelope,
    entity: Entity | None,
    sender_matches: bool,
    store: Store,
    facts: dict[str, Any],
) -> _Result:
    existing = store.booking(invitation.uid)
    authorised = (
        sender_matches
        and entity is not None
        and (existing is None or existing.entity == entity.nif)
    )
    if existing is not None and not authorised:
        # Only the entity that booked may cancel: a UID is no secret.
        decision = Decision(
            Outcome.PEOPLE,
            "cancellation-not-authorised",
            folder=Folder.PEOPLE,
            reply=False,
            detail=f"booking {existing.id} belongs to {existing.entity};"
            f" the cancellation came from {envelope.from_addr}",
        )
        return _Result(
            decision, "cancellation", envelope, invitation, None, entity, facts=facts
        )
    if existing is not None and invitation.sequence < (
        current := _current_sequence(invitation, existing)
    ):
        decision = Decision(
            Outcome.UNCHANGED,
            "not-newer",
            reply=False,
            detail=f"SEQUENCE {invitation.sequence} is older than {current}",
        )
        return _Result(
            decision, "cancellation", envelope, invitation, None, entity, facts=facts
        )

    decision = decide_cancel(invitation, known=existing is not None)
    result = _Result(
        decision, "cancellation", envelope, invitation, None, entity, facts=facts
    )
    if existing is not None:

        def write(store: Store, now: datetime, message: int) -> int | None:
            released = store.cancel_booking(
                existing.id,
                recurrence_id=invitation.recurrence_id,
                sequence=invitation.sequence,
                now=now,
            )
            result.facts["released"] = released
            return existing.id

        result.write = write
    elif authorised and entity is not None and invitation.recurrence_id is None:
        # A cancellation that overtook its invitation: remember it, so the
        # invitation, when it comes, is seen to be older and books nothing.
        result.write = _tombstone_writer(invitation, entity)
    return result


def _tombstone_writer(invitation: Invitation, entity: Entity) -> Writer:
    def write(store: Store, now: datetime, message: int) -> int | None:
        return store.save_booking(
            uid=invitation.uid,
            entity=entity.nif,
            organizer=invitation.organizer,
            summary=invitation.summary,
            sequence=invitation.sequence,
            dtstamp=invitation.dtstamp,
            status="cancelled",
            needs=Needs(),
            zone=invitation.zone,
            recurring=invitation.recurring,
            occurrences=(),
            now=now,
        )

    return write


def _who_books(
    invitation: Invitation, sender_entity: Entity | None, store: Store
) -> tuple[Entity | None, bool]:
    """The entity an invitation books for, and whether its From may book for it.

    The ORGANIZER and the From must belong to the same registered entity:
    anybody can write someone else's address in an ORGANIZER line.  Without
    an ORGANIZER (some clients send none), the From decides alone.
    """
    if not invitation.organizer:
        return sender_entity, True
    organizer_entity = store.entity_for(invitation.organizer)
    if organizer_entity is None:
        return sender_entity, sender_entity is None
    matches = sender_entity is not None and sender_entity.nif == organizer_entity.nif
    return organizer_entity, matches


def _decide_registration(envelope: Envelope, *, store: Store, now: datetime) -> _Result:
    request = parse_registration(envelope.subject, envelope.text)
    fields = _fields(request)
    facts: dict[str, Any] = {"registration": fields}
    if request.problems:
        decision = Decision(
            Outcome.REGISTRATION_INCOMPLETE,
            "registration-incomplete",
            checks=tuple(
                Check(p.field, False, f"{p.code} {p.detail}".strip())
                for p in request.problems
            ),
        )
        result = _Result(
            decision,
            "registration",
            envelope=envelope,
            registration=request,
            facts=facts,
        )
        result.write = _registration_writer(request, envelope, "incomplete")
        return result

    assert request.nif is not None
    if store.same_registration(request.nif, _registration_key(fields)):
        # The same request again: sent to both addresses, or forwarded again.
        decision = Decision(
            Outcome.DUPLICATE,
            "same-registration",
            reply=False,
            detail=f"a registration with the same data for {request.nif} exists",
        )
        return _Result(decision, "registration", envelope=envelope, facts=facts)

    existing = store.entity(request.nif)
    decision = Decision(
        Outcome.REGISTRATION_PENDING,
        "awaiting-confirmation" if existing is None else "change-awaiting-confirmation",
        notify_support=True,
        checks=tuple(
            Check(w.field, True, f"{w.code} {w.detail}".strip())
            for w in request.warnings
        ),
        detail=""
        if existing is None
        else f"{request.nif} is already registered:"
        " the request changes its data once support confirms it",
    )
    result = _Result(
        decision, "registration", envelope=envelope, registration=request, facts=facts
    )
    result.write = _registration_writer(
        request, envelope, "pending", new_entity=existing is None
    )
    return result


def _registration_writer(
    request: RegistrationRequest,
    envelope: Envelope,
    status: str,
    *,
    new_entity: bool = False,
) -> Writer:
    """Store the request; a new entity is created ``pending`` until support confirms.

    A pending entity cannot book yet: its invitations are answered ``pending``
    saying that the registration is not confirmed.
    """

    def write(store: Store, now: datetime, message: int) -> int | None:
        fields = _fields(request)
        store.add_registration(
            message=message,
            nif=request.nif,
            entity_name=request.entity_name,
            status=status,
            fields=fields,
            key=_registration_key(fields),
            now=now,
        )
        if new_entity and request.nif and request.zoom_email:
            senders = (
                ()
                if envelope.from_addr == request.zoom_email
                else (envelope.from_addr,)
            )
            store.save_entity(
                Entity(
                    nif=request.nif,
                    name=request.entity_name or request.nif,
                    email=request.zoom_email,
                    language=request.language,
                    youtube_channel=request.youtube_channel or "",
                    channel_agreement=bool(request.channel_agreement),
                    status="pending",
                    senders=tuple(s for s in senders if s),
                ),
                source=f"registration message {envelope.message_id}",
                now=now,
            )
        return None

    return write


def _registration_key(fields: dict[str, Any]) -> str:
    keep = {k: v for k, v in fields.items() if k in REGISTRATION_KEY_FIELDS}
    return json.dumps(keep, sort_keys=True, ensure_ascii=False)


def _quarantine(
    reason: str,
    detail: str,
    *,
    raw: RawMessage,
    store: Store,
    config: Config,
    reply: bool = True,
) -> _Result:
    """A message that cannot be read: quarantine it, answer registered senders."""
    envelope: Envelope | None = None
    for headers_only in (False, True):
        try:
            envelope = parse_envelope(
                raw.data,
                service_address=config.service.address,
                own_domain=config.message_id_domain,
                headers_only=headers_only,
            )
            break
        except InputError:
            continue
    if envelope is None:
        decision = Decision(
            Outcome.QUARANTINED,
            reason,
            folder=Folder.QUARANTINE,
            reply=False,
            detail=detail,
        )
        return _Result(decision, "unreadable")
    result = _quarantine_envelope(reason, detail, envelope=envelope, store=store)
    if not reply:
        result.decision = _replace(result.decision, reply=False)
    return result


def _quarantine_envelope(
    reason: str, detail: str, *, envelope: Envelope, store: Store
) -> _Result:
    if store.seen_message_id(envelope.message_id):
        # A second copy: a second reply would reuse the first one's Message-ID.
        return _duplicate(envelope)
    entity = store.entity_for(envelope.from_addr)
    answer = entity is not None and envelope.automatic is None
    decision = Decision(
        Outcome.QUARANTINED,
        reason,
        folder=Folder.QUARANTINE,
        reply=answer,
        detail=detail,
        checks=(Check("readable", False, f"{reason} {detail}".strip()),),
    )
    return _Result(decision, "unreadable", envelope=envelope, entity=entity)


def _duplicate(envelope: Envelope) -> _Result:
    decision = Decision(
        Outcome.DUPLICATE,
        "already-decided",
        reply=False,
        detail="the same Message-ID was decided before",
    )
    return _Result(decision, "duplicate", envelope=envelope)


# -- writing ------------------------------------------------------------------


def _record(
    raw: RawMessage,
    result: _Result,
    *,
    message_id: str,
    config: Config,
    store: Store,
    now: datetime,
) -> None:
    """Write the message, the decision, booking changes and the reply at once."""
    envelope = result.envelope
    decision = result.decision
    reply_to = _reply_address(result) if envelope is not None else ""
    notice_due = False
    if decision.reply and not reply_to:
        decision = _replace(
            decision,
            reply=False,
            detail=f"{decision.detail} (no reply: no address to answer)".strip(),
        )
    if decision.reply and reply_to:
        since = now - timedelta(days=1)
        if store.replies_since(reply_to, since) >= config.service.daily_reply_cap:
            # A loop or a flood: decide, but leave the answer to people, and
            # say so once a day.
            decision = _replace(
                decision,
                reply=False,
                folder=Folder.PEOPLE,
                detail=f"{decision.detail} (reply withheld: daily cap)".strip(),
            )
            notice_due = store.notices_since(reply_to, since, "cap") == 0

    if decision.proposals:
        result.facts["proposals"] = [
            {"start": iso(slot.start), "end": iso(slot.end)}
            for slot in decision.proposals
        ]
    if decision.failing:
        result.facts["failing"] = [
            {"start": iso(occurrence.start), "reason": why}
            for occurrence, why in decision.failing
        ]

    with store.transaction():
        message = store.add_message(
            message_id=message_id,
            folder=raw.folder,
            uidvalidity=raw.uidvalidity,
            uid=raw.uid,
            from_addr=envelope.from_addr if envelope else "",
            subject=envelope.subject if envelope else "",
            arrived=raw.arrived,
            now=now,
            size=raw.size,
            kind=result.kind,
        )
        booking_id = result.write(store, now, message) if result.write else None
        reply: EmailMessage | None = None
        kind = "reply"
        try:
            if decision.reply and reply_to:
                reply = _render(result, decision, booking_id, config, message_id, now)
            elif notice_due:
                cap = Decision(Outcome.PEOPLE, "reply-cap", notify_support=True)
                reply = _render(result, cap, booking_id, config, message_id, now)
                kind = "cap"
        except InputError as exc:  # e.g. no address to answer
            decision = _replace(
                decision,
                reply=False,
                detail=f"{decision.detail} (no reply: {exc})".strip(),
            )
        decision_id = store.add_decision(
            message=message,
            now=now,
            outcome=decision.outcome.value,
            reason=decision.reason,
            detail=decision.detail,
            checks=[
                {"rule": c.rule, "passed": c.passed, "detail": c.detail}
                for c in decision.checks
            ],
            facts=result.facts,
            filed_to=decision.folder.value,
            entity=result.entity.nif if result.entity else None,
            booking=booking_id,
            calendar_uid=result.invitation.uid if result.invitation else None,
            sequence=result.invitation.sequence if result.invitation else None,
        )
        if reply is not None:
            _enqueue(store, reply, decision_id, kind, now)
    result.decision = decision


def _render(
    result: _Result,
    decision: Decision,
    booking_id: int | None,
    config: Config,
    message_id: str,
    now: datetime,
) -> EmailMessage:
    assert result.envelope is not None
    language = _language(result, config)
    facts = ReplyFacts(
        decision=decision,
        envelope=result.envelope,
        invitation=result.invitation,
        needs=result.needs,
        entity=result.entity,
        booking_id=booking_id,
        licenses=result.licenses,
        registration=_fields(result.registration) if result.registration else None,
        arrived=result.arrived,
    )
    kind = "cap" if decision.reason == "reply-cap" else "reply"
    reply_id = _reply_message_id(message_id, kind, config)
    return render_reply(
        facts, service=config.service, language=language, message_id=reply_id, now=now
    )


def _enqueue(
    store: Store, message: EmailMessage, decision_id: int, kind: str, now: datetime
) -> None:
    # The raw header values, as written: reading them through the header
    # registry would parse each again for nothing.
    raw = {name.lower(): value for name, value in message.raw_items()}
    recipients = _addresses([raw.get("to", ""), raw.get("cc", "")])
    store.enqueue(
        decision=decision_id,
        message_id=str(raw.get("message-id", "")).strip().strip("<>"),
        kind=kind,
        recipients=recipients,
        subject=str(message["Subject"] or ""),
        data=message.as_bytes(),
        now=now,
    )


def _booking_writer(
    invitation: Invitation,
    entity: Entity | None,
    needs: Needs,
    decision: Decision,
    allocations: tuple[tuple[Occurrence, str], ...],
    config: Config,
) -> Writer:
    held = dict(allocations)
    status = _OCCURRENCE_STATUS.get(decision.outcome, "released")
    booked = status == "booked"

    def write(store: Store, now: datetime, message: int) -> int | None:
        rows = []
        for occurrence in invitation.occurrences:
            hold_start, hold_end = _hold(occurrence, config)
            if occurrence.cancelled:
                state, license_ = "cancelled", None
            elif booked and occurrence in held:
                state, license_ = "booked", held[occurrence]
            elif booked:
                state, license_ = "past", None  # already over when booked
            else:
                state, license_ = status, None
            rows.append((occurrence, hold_start, hold_end, license_, state))
        return store.save_booking(
            uid=invitation.uid,
            entity=entity.nif if entity else None,
            organizer=invitation.organizer,
            summary=invitation.summary,
            sequence=invitation.sequence,
            dtstamp=invitation.dtstamp,
            status=status,
            needs=needs,
            zone=invitation.zone,
            recurring=invitation.recurring,
            occurrences=rows,
            now=now,
        )

    return write


# -- small helpers ------------------------------------------------------------


def _hold(occurrence: Occurrence, config: Config) -> tuple[datetime, datetime]:
    slot = hold_interval(occurrence, config.rules)
    return slot.start, slot.end


def _evaluate(
    invitation: Invitation,
    *,
    entity: Entity | None,
    needs: Needs,
    raw: RawMessage,
    config: Config,
    store: Store,
    now: datetime,
    existing: BookingRecord | None,
    previous: list[Occurrence],
    sender_matches: bool,
) -> Verdict:
    """The booking rules over the licenses other bookings hold around the meeting."""
    windows = [_hold(o, config) for o in invitation.occurrences if not o.cancelled]

    def decide(holdings: list[Holding]) -> Verdict:
        return decide_request(
            invitation,
            entity=entity,
            needs=needs,
            arrived=raw.arrived,
            now=now,
            rules=config.rules,
            pool=config.pool,
            holdings=holdings,
            previous=previous,
            sender_matches=sender_matches,
        )

    verdict = decide(_holdings(windows, store, existing))
    full = [o for o, why in verdict.decision.failing if why == "pool-full"]
    if not full:
        return verdict

    # The nearest free slots offered for a full pool are searched within a
    # week of the first meeting that does not fit: decide again with the
    # licenses held over that week too.  Only a full pool pays for this.
    start, end = _hold(full[0], config)
    windows.append((start - PROPOSAL_WINDOW, end + PROPOSAL_WINDOW))
    return decide(_holdings(windows, store, existing))


def _holdings(
    windows: list[tuple[datetime, datetime]],
    store: Store,
    existing: BookingRecord | None,
) -> list[Holding]:
    """Licenses held by other bookings in each window, without repeats."""
    seen: dict[tuple[Any, ...], Holding] = {}
    exclude = existing.id if existing else None
    for start, end in windows:
        for holding in store.holdings(start, end, exclude_booking=exclude):
            seen[(holding.start, holding.end, holding.license, holding.booking_id)] = (
                holding
            )
    return list(seen.values())


def _live(booking: BookingRecord | None) -> bool:
    """A booking that holds or awaits licenses (not cancelled or released)."""
    return booking is not None and booking.status in ("booked", "pending")


def _current_sequence(invitation: Invitation, existing: BookingRecord) -> int:
    """The SEQUENCE an invitation must not be older than: the series', or the
    one of the version that last set the occurrence it names."""
    if invitation.recurrence_id is None:
        return existing.sequence
    return max(
        (
            o.sequence
            for o in existing.occurrences
            if o.occurrence.recurrence_id == invitation.recurrence_id
        ),
        default=existing.sequence,
    )


def _is_stale(invitation: Invitation, existing: BookingRecord) -> bool:
    """Older or equal versions change nothing: SEQUENCE first, then DTSTAMP.

    One occurrence of a series is compared with the version that last set
    that occurrence (the series' own, or an earlier change of it).
    """
    if invitation.recurrence_id is not None:
        return invitation.sequence < _current_sequence(invitation, existing)
    if invitation.sequence != existing.sequence:
        return invitation.sequence < existing.sequence
    if invitation.dtstamp is None or existing.dtstamp is None:
        return True
    return invitation.dtstamp <= existing.dtstamp


def _replace(decision: Decision, **changes: Any) -> Decision:
    return dataclasses.replace(decision, **changes)


def _reply_address(result: _Result) -> str:
    """Who the reply goes to: the organizer, or else the sender."""
    envelope = result.envelope
    if envelope is None:
        return ""
    invitation = result.invitation
    if (
        invitation is not None
        and invitation.organizer
        and answers_organizer(result.decision, invitation)
    ):
        return invitation.organizer
    return envelope.reply_to or envelope.from_addr


def _language(result: _Result, config: Config) -> str:
    if result.language in ("ca", "es"):
        return result.language
    if result.entity is not None and result.entity.language in ("ca", "es"):
        return result.entity.language
    if result.registration is not None:
        return result.registration.language
    if result.envelope is not None and result.envelope.language in ("ca", "es"):
        return result.envelope.language
    return config.service.language


def _reply_message_id(incoming: str, kind: str, config: Config) -> str:
    """Stable: the same incoming message always gets the same reply Message-ID."""
    digest = hashlib.sha256(f"{kind}\0{incoming}".encode()).hexdigest()[:32]
    return f"mailbot.{digest}@{config.message_id_domain}"


def _content_id(raw: RawMessage) -> str:
    return f"sha256-{hashlib.sha256(raw.data).hexdigest()[:32]}@mailbot.invalid"


def _addresses(values: list[Any]) -> list[str]:
    return [
        address.lower()
        for _, address in getaddresses([str(v) for v in values])
        if address
    ]


def _invitation_facts(invitation: Invitation, needs: Needs) -> dict[str, Any]:
    return {
        "uid": invitation.uid,
        "method": invitation.method,
        "sequence": invitation.sequence,
        "organizer": invitation.organizer,
        "summary": invitation.summary,
        "tzid": invitation.tzid,
        "zone": invitation.zone,
        "start": iso(invitation.start) if invitation.start else None,
        "end": iso(invitation.end) if invitation.end else None,
        "occurrences": len(invitation.occurrences),
        "recurring": invitation.recurring,
        "recurrence_id": (
            iso(invitation.recurrence_id) if invitation.recurrence_id else None
        ),
        "problem": invitation.problem,
        "problem_detail": invitation.problem_detail,
        "defects": list(invitation.defects),
        "needs": needs.as_dict(),
    }


def _fields(request: RegistrationRequest) -> dict[str, Any]:
    return {
        "entity_name": request.entity_name,
        "nif": request.nif,
        "contact_name": request.contact_name,
        "contact_role": request.contact_role,
        "phone": request.phone,
        "zoom_email": request.zoom_email,
        "youtube_channel": request.youtube_channel,
        "has_own_channel": request.has_own_channel,
        "channel_agreement": request.channel_agreement,
        "language": request.language,
        "problems": [
            {"field": p.field, "code": p.code, "detail": p.detail}
            for p in request.problems
        ],
        "warnings": [
            {"field": w.field, "code": w.code, "detail": w.detail}
            for w in request.warnings
        ],
    }
