"""The SQLite database: schema, numbered migrations and every query mailbot makes.

Times are stored as ISO 8601 text in UTC ending in ``Z`` (they sort as text).
Writes happen inside :meth:`Store.transaction`; one message's decision, its
booking changes and its reply are written in one transaction.  The schema is
described for auditors in docs/database.md.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from mailbot.models import Entity, Needs, Occurrence
from mailbot.pool import Holding

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "initial schema",
        """
        CREATE TABLE entities (
            nif TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            language TEXT NOT NULL DEFAULT 'ca',
            youtube_channel TEXT NOT NULL DEFAULT '',
            channel_agreement INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'active',
            timezone TEXT NOT NULL DEFAULT 'Europe/Madrid',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE entity_senders (
            address TEXT PRIMARY KEY,
            nif TEXT NOT NULL REFERENCES entities(nif)
        );
        CREATE INDEX entity_senders_nif ON entity_senders(nif);
        CREATE TABLE entity_changes (
            id INTEGER PRIMARY KEY,
            nif TEXT NOT NULL,
            changed_at TEXT NOT NULL,
            source TEXT NOT NULL,
            field TEXT NOT NULL,
            old_value TEXT,
            new_value TEXT
        );
        CREATE INDEX entity_changes_nif ON entity_changes(nif);
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            message_id TEXT NOT NULL,
            folder TEXT NOT NULL,
            uidvalidity INTEGER NOT NULL,
            uid INTEGER NOT NULL,
            from_addr TEXT NOT NULL DEFAULT '',
            subject TEXT NOT NULL DEFAULT '',
            arrived_at TEXT NOT NULL,
            read_at TEXT NOT NULL,
            size INTEGER NOT NULL,
            kind TEXT NOT NULL,
            UNIQUE (folder, uidvalidity, uid)
        );
        CREATE INDEX messages_message_id ON messages(message_id);
        CREATE TABLE bookings (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            entity TEXT,
            organizer TEXT NOT NULL DEFAULT '',
            summary TEXT NOT NULL DEFAULT '',
            sequence INTEGER NOT NULL DEFAULT 0,
            dtstamp TEXT,
            status TEXT NOT NULL,
            needs TEXT NOT NULL DEFAULT '{}',
            zone TEXT,
            recurring INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX bookings_entity ON bookings(entity);
        CREATE TABLE occurrences (
            id INTEGER PRIMARY KEY,
            booking_id INTEGER NOT NULL REFERENCES bookings(id),
            recurrence_id TEXT,
            start TEXT NOT NULL,
            end TEXT NOT NULL,
            hold_start TEXT NOT NULL,
            hold_end TEXT NOT NULL,
            hold_minutes INTEGER NOT NULL,
            license TEXT,
            status TEXT NOT NULL
        );
        CREATE INDEX occurrences_booking ON occurrences(booking_id);
        CREATE INDEX occurrences_held ON occurrences(hold_start)
            WHERE status = 'booked';
        CREATE INDEX occurrences_length ON occurrences(hold_minutes)
            WHERE status = 'booked';
        CREATE TABLE decisions (
            id INTEGER PRIMARY KEY,
            message INTEGER NOT NULL UNIQUE REFERENCES messages(id),
            decided_at TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            checks TEXT NOT NULL DEFAULT '[]',
            facts TEXT NOT NULL DEFAULT '{}',
            filed_to TEXT NOT NULL,
            entity TEXT,
            booking INTEGER REFERENCES bookings(id),
            calendar_uid TEXT,
            sequence INTEGER
        );
        CREATE INDEX decisions_outcome ON decisions(outcome);
        CREATE INDEX decisions_booking ON decisions(booking);
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            decision INTEGER REFERENCES decisions(id),
            message_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            recipients TEXT NOT NULL,
            subject TEXT NOT NULL,
            data BLOB NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT NOT NULL DEFAULT '',
            smtp_response TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            sent_at TEXT
        );
        CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
        CREATE TABLE registrations (
            id INTEGER PRIMARY KEY,
            message INTEGER REFERENCES messages(id),
            nif TEXT,
            entity_name TEXT,
            status TEXT NOT NULL,
            fields TEXT NOT NULL,
            key TEXT NOT NULL,
            created_at TEXT NOT NULL,
            decided_at TEXT,
            decided_by TEXT,
            note TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX registrations_nif ON registrations(nif, status);
        """,
    ),
    (
        "index replies by their first recipient",
        # The daily reply cap counts the replies to one address each time a
        # message is decided; without this index that was a scan of the
        # whole outbox, which grows by one row per reply for ever.
        """
        CREATE INDEX outbox_first_recipient
            ON outbox(json_extract(recipients, '$[0]'), kind, created_at);
        """,
    ),
    (
        "count the attempts whose outcome is unknown",
        # An attempt still 'sending' when the next one starts was cut short
        # between handing the reply to SMTP and recording the answer.
        """
        ALTER TABLE outbox ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        "a SEQUENCE for each occurrence",
        # A changed occurrence of a series carries its own SEQUENCE; the
        # series keeps the one of its last whole version.
        """
        ALTER TABLE occurrences ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;
        """,
    ),
)


def iso(moment: datetime) -> str:
    """A UTC timestamp as stored: ``2026-12-04T15:32:40Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """A stored timestamp back as an aware UTC datetime.

    ``fromisoformat`` is about five times faster than ``strptime``, which
    counted when a capacity check reads thousands of holds; the length check
    keeps the exact stored form the only one accepted.
    """
    if len(text) != 20 or text[10] != "T" or text[19] != "Z":
        raise ValueError(f"not a stored UTC timestamp: {text!r}")
    return datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: int
    message_id: str
    outcome: str | None  # None when no decision was recorded (should not happen)
    filed_to: str | None


@dataclass(frozen=True, slots=True)
class BookingRecord:
    id: int
    uid: str
    entity: str | None
    sequence: int
    dtstamp: datetime | None
    status: str
    occurrences: tuple[OccurrenceRecord, ...]


@dataclass(frozen=True, slots=True)
class OccurrenceRecord:
    id: int
    occurrence: Occurrence
    license: str | None
    status: str
    sequence: int = 0  # the SEQUENCE of the version that set this occurrence


@dataclass(frozen=True, slots=True)
class RegistrationRecord:
    id: int
    nif: str
    fields: dict[str, Any]
    message_id: str  # of the request, for threading the answer
    from_addr: str
    subject: str


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    message_id: str
    recipients: tuple[str, ...]
    data: bytes
    attempts: int
    status: str
    kind: str = "reply"
    subject: str = ""
    decision: int | None = None


class Store:
    """One SQLite file in WAL mode; the only place SQL is written."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            str(path), isolation_level=None, timeout=30.0, check_same_thread=False
        )
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.db = sqlite_utils.Database(self.conn)
        self._depth = 0
        self.migrate()

    def close(self) -> None:
        self.conn.close()

    # -- transactions and migrations ------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception; nestable."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self.conn.execute("COMMIT")

    @contextmanager
    def progress_transaction(self) -> Iterator[None]:
        """A transaction for the outbox's progress marks, without an fsync.

        In WAL mode a commit with ``synchronous = NORMAL`` survives the end of
        the process (a SIGKILL, a crash); only an operating-system crash or a
        power cut may forget the last such marks, and then the replies they
        concern go out again with the same Message-ID.  Decisions and the
        replies they queue are always committed with ``synchronous = FULL``.
        """
        self.conn.execute("PRAGMA synchronous = NORMAL")
        try:
            with self.transaction():
                yield
        finally:
            self.conn.execute("PRAGMA synchronous = FULL")

    def migrate(self) -> None:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations ("
            " id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in self.conn.execute("SELECT id FROM migrations")}
        for number, (name, script) in enumerate(MIGRATIONS, start=1):
            if number in done:
                continue
            with self.transaction():
                for statement in _statements(script):
                    self.conn.execute(statement)
                self.conn.execute(
                    "INSERT INTO migrations (id, name, applied_at) VALUES (?, ?, ?)",
                    (number, name, iso(datetime.now(UTC))),
                )

    def schema_version(self) -> int:
        row = self.conn.execute("SELECT MAX(id) FROM migrations").fetchone()
        return int(row[0] or 0)

    # -- entities -------------------------------------------------------------

    def entity(self, nif: str) -> Entity | None:
        row = self.conn.execute(
            "SELECT * FROM entities WHERE nif = ?", (nif,)
        ).fetchone()
        return None if row is None else self._entity(row)

    def entity_for(self, address: str) -> Entity | None:
        """The entity that ``address`` may book for: exact address, then domain."""
        address = address.strip().lower()
        if not address:
            return None
        domain = "@" + address.rpartition("@")[2]
        row = self.conn.execute(
            "SELECT e.* FROM entity_senders s JOIN entities e ON e.nif = s.nif"
            " WHERE s.address IN (?, ?)"
            " ORDER BY s.address = ? DESC LIMIT 1",
            (address, domain, address),
        ).fetchone()
        return None if row is None else self._entity(row)

    def entities(self) -> list[Entity]:
        rows = self.conn.execute("SELECT * FROM entities ORDER BY nif").fetchall()
        return [self._entity(row) for row in rows]

    def _entity(self, row: sqlite3.Row) -> Entity:
        senders = tuple(
            r[0]
            for r in self.conn.execute(
                "SELECT address FROM entity_senders WHERE nif = ? ORDER BY address",
                (row["nif"],),
            )
        )
        return Entity(
            nif=row["nif"],
            name=row["name"],
            email=row["email"],
            language=row["language"],
            youtube_channel=row["youtube_channel"],
            channel_agreement=bool(row["channel_agreement"]),
            status=row["status"],
            senders=senders,
            timezone=row["timezone"],
        )

    def save_entity(self, entity: Entity, *, source: str, now: datetime) -> list[str]:
        """Insert or update an entity and its senders; returns the fields changed.

        Every change is written to ``entity_changes`` with ``source`` (a file,
        a command or a message), so auditors see who changed what and when.
        """
        fields = {
            "name": entity.name,
            "email": entity.email.lower(),
            "language": entity.language,
            "youtube_channel": entity.youtube_channel,
            "channel_agreement": int(entity.channel_agreement),
            "status": entity.status,
            "timezone": entity.timezone,
        }
        senders = sorted({entity.email.lower(), *(s.lower() for s in entity.senders)})
        with self.transaction():
            row = self.conn.execute(
                "SELECT * FROM entities WHERE nif = ?", (entity.nif,)
            ).fetchone()
            changed: list[tuple[str, Any, Any]] = []
            if row is None:
                self.conn.execute(
                    "INSERT INTO entities (nif, name, email, language, youtube_channel,"
                    " channel_agreement, status, timezone, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (entity.nif, *fields.values(), iso(now), iso(now)),
                )
                changed.append(("created", None, entity.name))
            else:
                changed = [
                    (key, row[key], value)
                    for key, value in fields.items()
                    if row[key] != value
                ]
                if changed:
                    assignments = ", ".join(f"{key} = ?" for key, _, _ in changed)
                    self.conn.execute(
                        f"UPDATE entities SET {assignments}, updated_at = ?"  # noqa: S608
                        " WHERE nif = ?",
                        (*(v for _, _, v in changed), iso(now), entity.nif),
                    )
            old_senders = sorted(
                r[0]
                for r in self.conn.execute(
                    "SELECT address FROM entity_senders WHERE nif = ?", (entity.nif,)
                )
            )
            if old_senders != senders:
                self.conn.execute(
                    "DELETE FROM entity_senders WHERE nif = ?", (entity.nif,)
                )
                for address in senders:
                    self.conn.execute(
                        "INSERT OR REPLACE INTO entity_senders (address, nif)"
                        " VALUES (?, ?)",
                        (address, entity.nif),
                    )
                changed.append(("senders", " ".join(old_senders), " ".join(senders)))
            for key, old, new in changed:
                self.conn.execute(
                    "INSERT INTO entity_changes (nif, changed_at, source, field,"
                    " old_value, new_value) VALUES (?, ?, ?, ?, ?, ?)",
                    (entity.nif, iso(now), source, key, _text(old), _text(new)),
                )
        return [key for key, _, _ in changed]

    # -- messages and decisions -------------------------------------------------

    def find_message(
        self, *, folder: str, uidvalidity: int, uid: int
    ) -> MessageRecord | None:
        row = self.conn.execute(
            "SELECT m.id, m.message_id, d.outcome, d.filed_to FROM messages m"
            " LEFT JOIN decisions d ON d.message = m.id"
            " WHERE m.folder = ? AND m.uidvalidity = ? AND m.uid = ?",
            (folder, uidvalidity, uid),
        ).fetchone()
        return None if row is None else MessageRecord(*row)

    def last_uidvalidity(self, folder: str) -> int | None:
        """The UIDVALIDITY of the folder's most recently recorded message."""
        row = self.conn.execute(
            "SELECT uidvalidity FROM messages WHERE folder = ?"
            " ORDER BY id DESC LIMIT 1",
            (folder,),
        ).fetchone()
        return None if row is None else int(row[0])

    def seen_message_id(self, message_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM messages WHERE message_id = ? LIMIT 1", (message_id,)
        ).fetchone()
        return row is not None

    def add_message(
        self,
        *,
        message_id: str,
        folder: str,
        uidvalidity: int,
        uid: int,
        from_addr: str,
        subject: str,
        arrived: datetime,
        now: datetime,
        size: int,
        kind: str,
    ) -> int:
        cursor = self.conn.execute(
            "INSERT INTO messages (message_id, folder, uidvalidity, uid, from_addr,"
            " subject, arrived_at, read_at, size, kind)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message_id,
                folder,
                uidvalidity,
                uid,
                from_addr,
                subject,
                iso(arrived),
                iso(now),
                size,
                kind,
            ),
        )
        return int(cursor.lastrowid or 0)

    def add_decision(
        self,
        *,
        message: int,
        now: datetime,
        outcome: str,
        reason: str,
        detail: str,
        checks: Sequence[dict[str, object]],
        facts: dict[str, object],
        filed_to: str,
        entity: str | None,
        booking: int | None,
        calendar_uid: str | None,
        sequence: int | None,
    ) -> int:
        cursor = self.conn.execute(
            "INSERT INTO decisions (message, decided_at, outcome, reason, detail,"
            " checks, facts, filed_to, entity, booking, calendar_uid, sequence)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message,
                iso(now),
                outcome,
                reason,
                detail,
                json.dumps(list(checks), ensure_ascii=False),
                json.dumps(facts, ensure_ascii=False, default=str),
                filed_to,
                entity,
                booking,
                calendar_uid,
                sequence,
            ),
        )
        return int(cursor.lastrowid or 0)

    def replies_since(self, address: str, since: datetime) -> int:
        """How many replies were queued to ``address`` since ``since``."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE json_extract(recipients, '$[0]') = ?"
            " AND kind = 'reply' AND created_at >= ?",
            (address.lower(), iso(since)),
        ).fetchone()
        return int(row[0])

    def notices_since(self, address: str, since: datetime, kind: str) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE json_extract(recipients, '$[0]') = ?"
            " AND kind = ? AND created_at >= ?",
            (address.lower(), kind, iso(since)),
        ).fetchone()
        return int(row[0])

    # -- bookings and the pool ------------------------------------------------

    def booking(self, uid: str) -> BookingRecord | None:
        row = self.conn.execute(
            "SELECT * FROM bookings WHERE uid = ?", (uid,)
        ).fetchone()
        if row is None:
            return None
        occurrences = tuple(
            OccurrenceRecord(
                id=o["id"],
                occurrence=Occurrence(
                    start=parse_iso(o["start"]),
                    end=parse_iso(o["end"]),
                    recurrence_id=(
                        parse_iso(o["recurrence_id"]) if o["recurrence_id"] else None
                    ),
                    cancelled=o["status"] == "cancelled",
                ),
                license=o["license"],
                status=o["status"],
                sequence=o["sequence"],
            )
            for o in self.conn.execute(
                "SELECT * FROM occurrences WHERE booking_id = ? ORDER BY start, id",
                (row["id"],),
            )
        )
        return BookingRecord(
            id=row["id"],
            uid=row["uid"],
            entity=row["entity"],
            sequence=row["sequence"],
            dtstamp=parse_iso(row["dtstamp"]) if row["dtstamp"] else None,
            status=row["status"],
            occurrences=occurrences,
        )

    def holdings(
        self, start: datetime, end: datetime, *, exclude_booking: int | None = None
    ) -> list[Holding]:
        """Licenses held at some instant of [start, end), by other bookings."""
        longest = self.conn.execute(
            "SELECT MAX(hold_minutes) FROM occurrences WHERE status = 'booked'"
        ).fetchone()[0]
        if longest is None:
            return []
        earliest = start - timedelta(minutes=int(longest))
        rows = self.conn.execute(
            "SELECT hold_start, hold_end, license, booking_id FROM occurrences"
            " WHERE status = 'booked' AND hold_start >= ? AND hold_start < ?"
            " AND hold_end > ? AND booking_id IS NOT ?",
            (iso(earliest), iso(end), iso(start), exclude_booking),
        ).fetchall()
        return [
            Holding(
                start=parse_iso(r[0]),
                end=parse_iso(r[1]),
                license=r[2],
                booking_id=r[3],
            )
            for r in rows
        ]

    def save_booking(
        self,
        *,
        uid: str,
        entity: str | None,
        organizer: str,
        summary: str,
        sequence: int,
        dtstamp: datetime | None,
        status: str,
        needs: Needs,
        zone: str | None,
        recurring: bool,
        occurrences: Sequence[tuple[Occurrence, datetime, datetime, str | None, str]],
        now: datetime,
    ) -> int:
        """Create or replace the booking for ``uid`` with these occurrences.

        Each occurrence comes with its hold interval, its license (None when
        none is held) and its status.  The occurrences of an earlier version
        are replaced, which releases every license they held.
        """
        row = self.conn.execute(
            "SELECT id FROM bookings WHERE uid = ?", (uid,)
        ).fetchone()
        values = (
            entity,
            organizer,
            summary,
            sequence,
            iso(dtstamp) if dtstamp else None,
            status,
            json.dumps(needs.as_dict(), ensure_ascii=False),
            zone,
            int(recurring),
        )
        if row is None:
            cursor = self.conn.execute(
                "INSERT INTO bookings (entity, organizer, summary, sequence, dtstamp,"
                " status, needs, zone, recurring, uid, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, uid, iso(now), iso(now)),
            )
            booking_id = int(cursor.lastrowid or 0)
        else:
            booking_id = int(row[0])
            self.conn.execute(
                "UPDATE bookings SET entity = ?, organizer = ?, summary = ?,"
                " sequence = ?, dtstamp = ?, status = ?, needs = ?, zone = ?,"
                " recurring = ?, updated_at = ? WHERE id = ?",
                (*values, iso(now), booking_id),
            )
            self.conn.execute(
                "DELETE FROM occurrences WHERE booking_id = ?", (booking_id,)
            )
        for occurrence, hold_start, hold_end, license_, state in occurrences:
            self._insert_occurrence(
                booking_id, occurrence, hold_start, hold_end, license_, state, sequence
            )
        return booking_id

    def replace_occurrence(
        self,
        *,
        booking_id: int,
        recurrence_id: datetime,
        occurrence: Occurrence,
        hold: tuple[datetime, datetime],
        license_: str | None,
        status: str,
        sequence: int,
        now: datetime,
    ) -> None:
        """Replace (or add) the one occurrence of a series ``recurrence_id`` names."""
        self.conn.execute(
            "DELETE FROM occurrences WHERE booking_id = ?"
            " AND (recurrence_id = ? OR (recurrence_id IS NULL AND start = ?))",
            (booking_id, iso(recurrence_id), iso(recurrence_id)),
        )
        self._insert_occurrence(
            booking_id, occurrence, *hold, license_, status, sequence
        )
        self.conn.execute(
            "UPDATE bookings SET updated_at = ? WHERE id = ?", (iso(now), booking_id)
        )

    def _insert_occurrence(
        self,
        booking_id: int,
        occurrence: Occurrence,
        hold_start: datetime,
        hold_end: datetime,
        license_: str | None,
        status: str,
        sequence: int,
    ) -> None:
        minutes = int((hold_end - hold_start).total_seconds() // 60) + 1
        self.conn.execute(
            "INSERT INTO occurrences (booking_id, recurrence_id, start, end,"
            " hold_start, hold_end, hold_minutes, license, status, sequence)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                booking_id,
                iso(occurrence.recurrence_id) if occurrence.recurrence_id else None,
                iso(occurrence.start),
                iso(occurrence.end),
                iso(hold_start),
                iso(hold_end),
                minutes,
                license_,
                status,
                sequence,
            ),
        )

    def cancel_booking(
        self,
        booking_id: int,
        *,
        recurrence_id: datetime | None,
        sequence: int,
        now: datetime,
    ) -> int:
        """Release the whole booking, or one occurrence; returns how many rows."""
        if recurrence_id is None:
            cursor = self.conn.execute(
                "UPDATE occurrences SET status = 'cancelled'"
                " WHERE booking_id = ? AND status != 'cancelled'",
                (booking_id,),
            )
            self.conn.execute(
                "UPDATE bookings SET status = 'cancelled', sequence = MAX(sequence, ?),"
                " updated_at = ? WHERE id = ?",
                (sequence, iso(now), booking_id),
            )
            return cursor.rowcount
        cursor = self.conn.execute(
            "UPDATE occurrences SET status = 'cancelled'"
            " WHERE booking_id = ? AND status != 'cancelled'"
            " AND (recurrence_id = ? OR (recurrence_id IS NULL AND start = ?))",
            (booking_id, iso(recurrence_id), iso(recurrence_id)),
        )
        self.conn.execute(
            "UPDATE bookings SET updated_at = ? WHERE id = ?", (iso(now), booking_id)
        )
        return cursor.rowcount

    def bookings_listing(
        self, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Bookings with their occurrences, for ``mailbot bookings list``."""
        clauses = []
        params: list[str] = []
        if start is not None:
            clauses.append(
                "EXISTS (SELECT 1 FROM occurrences o WHERE o.booking_id = b.id"
                " AND o.end > ?)"
            )
            params.append(iso(start))
        if end is not None:
            clauses.append(
                "EXISTS (SELECT 1 FROM occurrences o WHERE o.booking_id = b.id"
                " AND o.start < ?)"
            )
            params.append(iso(end))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        result = []
        for row in self.conn.execute(
            f"SELECT * FROM bookings b {where} ORDER BY b.id",  # noqa: S608
            params,
        ).fetchall():
            occurrences = [
                {
                    "start": o["start"],
                    "end": o["end"],
                    "recurrence_id": o["recurrence_id"],
                    "license": o["license"],
                    "status": o["status"],
                }
                for o in self.conn.execute(
                    "SELECT * FROM occurrences WHERE booking_id = ? ORDER BY start, id",
                    (row["id"],),
                )
            ]
            result.append({**dict(row), "occurrences": occurrences})
        return result

    # -- registrations ----------------------------------------------------------

    def add_registration(
        self,
        *,
        message: int | None,
        nif: str | None,
        entity_name: str | None,
        status: str,
        fields: dict[str, Any],
        key: str,
        now: datetime,
    ) -> int:
        cursor = self.conn.execute(
            "INSERT INTO registrations (message, nif, entity_name, status, fields,"
            " key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                message,
                nif,
                entity_name,
                status,
                json.dumps(fields, ensure_ascii=False),
                key,
                iso(now),
            ),
        )
        return int(cursor.lastrowid or 0)

    def same_registration(self, nif: str, key: str) -> bool:
        """A pending or confirmed request for ``nif`` with exactly this data."""
        row = self.conn.execute(
            "SELECT 1 FROM registrations WHERE nif = ? AND key = ?"
            " AND status IN ('pending', 'confirmed') LIMIT 1",
            (nif, key),
        ).fetchone()
        return row is not None

    def pending_registration(self, nif: str) -> RegistrationRecord | None:
        """The newest request for ``nif`` that support has not decided."""
        row = self.conn.execute(
            "SELECT r.id, r.nif, r.fields, m.message_id, m.from_addr, m.subject"
            " FROM registrations r LEFT JOIN messages m ON m.id = r.message"
            " WHERE r.nif = ? AND r.status = 'pending' ORDER BY r.id DESC LIMIT 1",
            (nif,),
        ).fetchone()
        if row is None:
            return None
        return RegistrationRecord(
            id=row[0],
            nif=row[1],
            fields=json.loads(row[2]),
            message_id=row[3] or "",
            from_addr=row[4] or "",
            subject=row[5] or "",
        )

    def decide_registration(
        self, nif: str, *, status: str, by: str, note: str, now: datetime
    ) -> int:
        """Mark every pending request for ``nif`` confirmed or rejected."""
        cursor = self.conn.execute(
            "UPDATE registrations SET status = ?, decided_at = ?, decided_by = ?,"
            " note = ? WHERE nif = ? AND status = 'pending'",
            (status, iso(now), by, note, nif),
        )
        return cursor.rowcount

    # -- the outbox -----------------------------------------------------------

    def enqueue(
        self,
        *,
        decision: int | None,
        message_id: str,
        kind: str,
        recipients: Sequence[str],
        subject: str,
        data: bytes,
        now: datetime,
    ) -> int:
        cursor = self.conn.execute(
            "INSERT INTO outbox (decision, message_id, kind, recipients, subject, data,"
            " status, next_attempt_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
            (
                decision,
                message_id,
                kind,
                json.dumps([r.lower() for r in recipients]),
                subject,
                data,
                iso(now),
                iso(now),
            ),
        )
        return int(cursor.lastrowid or 0)

    def due(self, now: datetime, *, limit: int = 100) -> list[OutboxItem]:
        rows = self.conn.execute(
            "SELECT id, message_id, recipients, data, attempts, status, kind, subject,"
            " decision FROM outbox"
            " WHERE status IN ('queued', 'sending') AND next_attempt_at <= ?"
            " ORDER BY id LIMIT ?",
            (iso(now), limit),
        ).fetchall()
        return [
            OutboxItem(
                id=r[0],
                message_id=r[1],
                recipients=tuple(json.loads(r[2])),
                data=bytes(r[3]),
                attempts=r[4],
                status=r[5],
                kind=r[6],
                subject=r[7],
                decision=r[8],
            )
            for r in rows
        ]

    def next_due(self) -> datetime | None:
        """When the earliest reply still to send falls due; None if none waits."""
        row = self.conn.execute(
            "SELECT MIN(next_attempt_at) FROM outbox"
            " WHERE status IN ('queued', 'sending')"
        ).fetchone()
        return None if row[0] is None else parse_iso(row[0])

    def mark_sending(self, item: int, now: datetime) -> bool:
        """Record that an attempt starts; True when the previous one was cut short.

        A row still ``sending`` is one whose last attempt never recorded its
        answer (the process stopped after handing the reply to SMTP, or
        before): whether it was delivered is unknown.  It is counted in
        ``interrupted`` and goes out again with the same Message-ID.
        """
        with self.progress_transaction():
            row = self.conn.execute(
                "SELECT status FROM outbox WHERE id = ?", (item,)
            ).fetchone()
            interrupted = row is not None and row[0] == "sending"
            self.conn.execute(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1,"
                " interrupted = interrupted + ?, next_attempt_at = ? WHERE id = ?",
                (int(interrupted), iso(now), item),
            )
        return interrupted

    def mark_sent(self, item: int, *, response: str, now: datetime) -> None:
        with self.progress_transaction():
            self.conn.execute(
                "UPDATE outbox SET status = 'sent', smtp_response = ?, sent_at = ?,"
                " last_error = '' WHERE id = ?",
                (response, iso(now), item),
            )

    def mark_retry(self, item: int, *, error: str, when: datetime) -> None:
        with self.progress_transaction():
            self.conn.execute(
                "UPDATE outbox SET status = 'queued', last_error = ?,"
                " next_attempt_at = ? WHERE id = ?",
                (error, iso(when), item),
            )

    def mark_failed(self, item: int, *, error: str) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE outbox SET status = 'failed', last_error = ? WHERE id = ?",
                (error, item),
            )

    def outbox_counts(self) -> dict[str, int]:
        return {
            row[0]: row[1]
            for row in self.conn.execute(
                "SELECT status, COUNT(*) FROM outbox GROUP BY status"
            )
        }


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _text(value: object) -> str | None:
    return None if value is None else str(value)
