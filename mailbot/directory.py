"""The entity directory: loading it from CSV, and the changes support staff make.

Every change goes through :meth:`Store.save_entity`, which records what
changed, when, and from which file, command or message.
"""

from __future__ import annotations

import csv
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from mailbot.errors import MailbotError
from mailbot.models import Entity
from mailbot.parsers.nif import normalise_nif, valid_nif
from mailbot.store import Store

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
        raise DirectoryError(f"{path}: unknown column {unknown[0]!r}")
    reader.fieldnames = header

    entities: dict[str, Entity] = {}
    senders_seen: dict[str, str] = {}
    for number, row in enumerate(reader, start=2):
        where = f"{path}, line {number}"
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
    channel = cell("youtube_channel")
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
