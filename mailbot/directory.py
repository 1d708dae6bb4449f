"""The entity directory: loading it from CSV, and the changes support staff make.

Every change goes through :meth:`Store.save_entity`, which records what
changed, when, and from which file, command or message.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from mailbot.actions.reply import ReplyFacts, render_reply
from mailbot.config import Config
from mailbot.errors import MailbotError
from mailbot.models import Decision, Entity, Envelope, Outcome
from mailbot.parsers.nif import normalise_nif, valid_nif
from mailbot.parsers.registration import normalise_youtube_url
from mailbot.store import RegistrationRecord, Store

COLUMNS = (
    "nif",
    "name",
    "email",
    "senders",
    "youtube_channel",
    "channel_agreement",
    "language",
)
REQUIRED = ("nif", "name", "email")
YES = {"yes", "y", "sí", "si", "true", "1"}
NO = {"no", "n", "false", "0", ""}


class DirectoryError(MailbotError, ValueError):
    """A directory file or command is wrong; says where."""


@dataclass(frozen=True, slots=True)
class ImportReport:
    created: int
    updated: int
    unchanged: int


def import_csv(store: Store, path: Path, *, now: datetime) -> ImportReport:
    """Load (or refresh) entities from a CSV file; the same file twice changes nothing.

    The whole file is checked before anything is written, so a bad line
    leaves the directory as it was.
    """
    entities = read_csv(path)
    created = updated = unchanged = 0
    for entity in entities:
        existed = store.entity(entity.nif) is not None
        changes = store.save_entity(entity, source=f"import {path.name}", now=now)
        if not existed:
            created += 1
        elif changes:
            updated += 1
        else:
            unchanged += 1
    return ImportReport(created, updated, unchanged)


def read_csv(path: Path) -> list[Entity]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DirectoryError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DirectoryError(f"{path}: cannot be read: {exc}") from None

    reader = csv.DictReader(text.splitlines())
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DirectoryError(f"{path}: the header lacks {', '.join(missing)}")
    unknown = [h for h in header if h not in (*COLUMNS, "timezone")]
    if unknown:
        raise DirectoryError(f"{path}, line 1: unknown column {unknown[0]!r}")
    reader.fieldnames = header

    entities: dict[str, Entity] = {}
    senders_seen: dict[str, str] = {}
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        if None in row:
            raise DirectoryError(f"{where}: more cells than the header has columns")
        if None in row.values():
            # An optional column may be left empty, but as an empty cell: a
            # short row more likely lost a comma than its last values.
            cells = sum(value is not None for value in row.values())
            raise DirectoryError(
                f"{where}: {cells} cells where the header has {len(header)} columns"
                " (leave an optional one empty as an empty cell)"
            )
        entity = _entity(row, where)
        if entity.nif in entities:
            raise DirectoryError(f"{where}: NIF {entity.nif} appears twice")
        for address in (entity.email, *entity.senders):
            other = senders_seen.get(address)
            if other is not None and other != entity.nif:
                raise DirectoryError(f"{where}: {address} already books for {other}")
            senders_seen[address] = entity.nif
        entities[entity.nif] = entity
    return list(entities.values())


def _entity(row: dict[str, str | None], where: str) -> Entity:
    def cell(name: str) -> str:
        return (row.get(name) or "").strip()

    nif = normalise_nif(cell("nif"))
    if not valid_nif(nif):
        raise DirectoryError(f"{where}: nif {cell('nif')!r} is not a valid NIF")
    name = cell("name")
    if not name:
        raise DirectoryError(f"{where}: name is empty")
    email = _address(cell("email"), where, "email")
    senders = []
    for item in cell("senders").replace(",", " ").replace(";", " ").split():
        if item.startswith("@"):
            domain = item[1:].lower()
            if "." not in domain or "@" in domain:
                raise DirectoryError(f"{where}: senders: {item!r} is not a domain")
            senders.append("@" + domain)
        else:
            senders.append(_address(item, where, "senders"))
    channel = ""
    if cell("youtube_channel"):
        channel = normalise_youtube_url(cell("youtube_channel")) or ""
        if not channel:
            raise DirectoryError(
                f"{where}: youtube_channel: {cell('youtube_channel')!r} is not"
                " a YouTube channel address (https://www.youtube.com/@name)"
            )
    agreement = cell("channel_agreement").lower()
    if agreement not in YES | NO:
        raise DirectoryError(f"{where}: channel_agreement must be yes or no")
    language = cell("language").lower() or "ca"
    if language not in ("ca", "es"):
        raise DirectoryError(f"{where}: language must be ca or es")
    timezone = cell("timezone") or "Europe/Madrid"
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise DirectoryError(f"{where}: unknown timezone {timezone!r}") from None
    return Entity(
        nif=nif,
        name=name,
        email=email,
        language=language,
        youtube_channel=channel,
        channel_agreement=agreement in YES,
        status="active",
        senders=tuple(senders),
        timezone=timezone,
    )


def _address(text: str, where: str, column: str) -> str:
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise DirectoryError(f"{where}: {column}: {text!r}: {exc}") from None
    return str(checked.normalized).lower()


def entity_dict(entity: Entity) -> dict[str, object]:
    return {
        "nif": entity.nif,
        "name": entity.name,
        "email": entity.email,
        "senders": list(entity.senders),
        "youtube_channel": entity.youtube_channel or None,
        "channel_agreement": entity.channel_agreement,
        "language": entity.language,
        "status": entity.status,
        "timezone": entity.timezone,
    }


def confirm_registration(
    store: Store, config: Config, nif: str, *, by: str, now: datetime
) -> Entity:
    """Support confirms an entity's adhesion: it may book from now on.

    Applies the newest pending registration request for ``nif`` (a new
    entity, or new data for a registered one), records who confirmed it, and
    queues the answer to the entity in the outbox, in one transaction.
    """
    nif = normalise_nif(nif)
    record = _pending(store, nif)
    fields = record.fields
    existing = store.entity(nif)
    email = str(fields.get("zoom_email") or (existing.email if existing else ""))
    senders = set(existing.senders if existing else ())
    if record.from_addr and record.from_addr != email:
        senders.add(record.from_addr)
    has_channel = fields.get("has_own_channel")
    channel = str(fields.get("youtube_channel") or "") if has_channel else ""
    entity = Entity(
        nif=nif,
        name=str(fields.get("entity_name") or (existing.name if existing else nif)),
        email=email,
        language=str(fields.get("language") or "ca"),
        youtube_channel=channel,
        channel_agreement=bool(fields.get("channel_agreement")),
        status="active",
        senders=tuple(sorted(senders - {email})),
        timezone=existing.timezone if existing else "Europe/Madrid",
    )
    with store.transaction():
        store.save_entity(entity, source=f"confirmed by {by}", now=now)
        store.decide_registration(nif, status="confirmed", by=by, note="", now=now)
        _answer(
            store, config, record, entity, Outcome.REGISTRATION_CONFIRMED, "", now=now
        )
    return entity


def reject_registration(
    store: Store, config: Config, nif: str, *, by: str, reason: str, now: datetime
) -> None:
    """Support rejects a registration request, saying why; the entity is told."""
    nif = normalise_nif(nif)
    if not reason.strip():
        raise DirectoryError("a rejection needs a reason (--reason TEXT)")
    record = _pending(store, nif)
    existing = store.entity(nif)
    with store.transaction():
        if existing is not None and existing.status == "pending":
            rejected = dataclasses.replace(existing, status="rejected")
            store.save_entity(rejected, source=f"rejected by {by}", now=now)
        store.decide_registration(
            nif, status="rejected", by=by, note=reason.strip(), now=now
        )
        entity = existing or Entity(nif=nif, name=nif, email=record.from_addr)
        _answer(
            store,
            config,
            record,
            entity,
            Outcome.REGISTRATION_REJECTED,
            reason.strip(),
            now=now,
        )


def _pending(store: Store, nif: str) -> RegistrationRecord:
    record = store.pending_registration(nif)
    if record is None:
        raise DirectoryError(f"no registration request for {nif} awaits a decision")
    return record


def _answer(
    store: Store,
    config: Config,
    record: RegistrationRecord,
    entity: Entity,
    outcome: Outcome,
    reason: str,
    *,
    now: datetime,
) -> None:
    """Queue the answer to the registration request, threaded on it."""
    envelope = Envelope(
        message_id=record.message_id,
        from_addr=record.from_addr or entity.email,
        from_name="",
        reply_to="",
        return_path=None,
        to=(),
        cc=(),
        subject=record.subject,
        references=(),
        automatic=None,
        text="",
        calendars=(),
        attachments=(),
    )
    decision = Decision(outcome, outcome.value)
    fields = {**record.fields, "reason": reason}
    facts = ReplyFacts(
        decision=decision,
        envelope=envelope,
        invitation=None,
        needs=None,
        entity=entity,
        booking_id=None,
        registration=fields,
    )
    digest = hashlib.sha256(f"{outcome.value}\0{record.id}".encode()).hexdigest()[:32]
    language = str(record.fields.get("language") or entity.language)
    message = render_reply(
        facts,
        service=config.service,
        language=language,
        message_id=f"mailbot.{digest}@{config.message_id_domain}",
        now=now,
    )
    recipients = [a.addr_spec for a in message["To"].addresses]
    if message["Cc"] is not None:
        recipients += [a.addr_spec for a in message["Cc"].addresses]
    store.enqueue(
        decision=None,
        message_id=str(message["Message-ID"]).strip("<>"),
        kind=outcome.value,
        recipients=recipients,
        subject=str(message["Subject"]),
        data=message.as_bytes(),
        now=now,
    )
