"""The SQLite store on real files: migrations, transactions, holds and entities."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbot.models import Entity, Needs, Occurrence
from mailbot.pool import Holding
from mailbot.store import MIGRATIONS, Store

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
T0 = datetime(2027, 1, 15, 17, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SECRETARIA = "secretaria@ajbcn.example"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "var" / "mailbot.sqlite3")
    yield opened
    opened.close()


def entity(nif: str, email: str, *senders: str, name: str = "Ajuntament") -> Entity:
    return Entity(
        nif=nif,
        name=name,
        email=email,
        language="ca",
        youtube_channel="",
        channel_agreement=False,
        status="active",
        senders=senders,
    )


def book(
    store: Store,
    uid: str,
    *holds: tuple[datetime, datetime, str | None, str],
) -> int:
    """A booking whose occurrences hold (start, end, license, status) exactly."""
    with store.transaction():
        return store.save_booking(
            uid=uid,
            entity=None,
            organizer="secretaria@ajbcn.example",
            summary=uid,
            sequence=0,
            dtstamp=NOW,
            status="booked",
            needs=Needs(),
            zone="Europe/Madrid",
            recurring=len(holds) > 1,
            occurrences=[
                (Occurrence(start=start, end=end), start, end, license_, status)
                for start, end, license_, status in holds
            ],
            now=NOW,
        )


def test_a_new_file_gets_every_migration_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "mailbot.sqlite3"

    Store(path).close()

    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, name FROM migrations ORDER BY id").fetchall()
    expected = [(number, name) for number, (name, _) in enumerate(MIGRATIONS, 1)]
    assert expected == rows


def test_reopening_applies_nothing_again(tmp_path: Path) -> None:
    path = tmp_path / "mailbot.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        before = conn.execute("SELECT * FROM migrations").fetchall()

    reopened = Store(path)
    version = reopened.schema_version()
    reopened.close()

    with sqlite3.connect(path) as conn:
        after = conn.execute("SELECT * FROM migrations").fetchall()
    assert before == after
    assert len(MIGRATIONS) == version


def test_the_file_is_in_wal_mode(store: Store) -> None:
    with sqlite3.connect(store.path) as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]

    assert "wal" == mode


def test_the_connection_syncs_fully_and_checks_foreign_keys(store: Store) -> None:
    synchronous = store.conn.execute("PRAGMA synchronous").fetchone()[0]
    foreign_keys = store.conn.execute("PRAGMA foreign_keys").fetchone()[0]

    assert (2, 1) == (synchronous, foreign_keys)


def _write_then_crash(store: Store) -> None:
    with store.transaction():
        store.save_entity(entity("P0801900B", "a@ajbcn.example"), source="t", now=NOW)
        store.add_message(
            message_id="m1@example",
            folder="INBOX",
            uidvalidity=1,
            uid=1,
            from_addr="a@ajbcn.example",
            subject="s",
            arrived=NOW,
            now=NOW,
            size=10,
            kind="other",
        )
        raise RuntimeError("crash between the writes")


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        _write_then_crash(store)

    assert [] == store.entities()
    assert not store.seen_message_id("m1@example")
    assert 0 == store.conn.execute("SELECT COUNT(*) FROM entity_changes").fetchone()[0]
    assert not store.conn.in_transaction


def test_a_committed_transaction_is_seen_by_another_connection(store: Store) -> None:
    with store.transaction():
        store.save_entity(entity("P0801900B", "a@ajbcn.example"), source="t", now=NOW)

    with sqlite3.connect(store.path) as conn:
        rows = conn.execute("SELECT nif FROM entities").fetchall()
    assert [("P0801900B",)] == rows


def test_holdings_finds_a_hold_that_overlaps(store: Store) -> None:
    booking = book(store, "a", (T0, T0 + 2 * HOUR, "adv-01", "booked"))

    found = store.holdings(T0 + HOUR, T0 + 3 * HOUR)

    assert [Holding(T0, T0 + 2 * HOUR, "adv-01", booking)] == found


def test_holdings_finds_a_long_hold_that_began_well_before(store: Store) -> None:
    book(store, "short", (T0 - HOUR, T0 - HOUR / 2, "adv-02", "booked"))
    booking = book(store, "long", (T0 - 9 * HOUR, T0 + HOUR, "adv-01", "booked"))

    found = store.holdings(T0, T0 + 2 * HOUR)

    assert [Holding(T0 - 9 * HOUR, T0 + HOUR, "adv-01", booking)] == found


def test_holdings_ignores_occurrences_that_are_not_booked(store: Store) -> None:
    book(
        store,
        "series",
        (T0, T0 + HOUR, "adv-01", "cancelled"),
        (T0, T0 + HOUR, None, "pending"),
    )

    assert [] == store.holdings(T0, T0 + HOUR)


@pytest.mark.parametrize(
    ("start", "end"),
    [(T0 + 2 * HOUR, T0 + 3 * HOUR), (T0 - HOUR, T0)],
    ids=["starting as it ends", "ending as it starts"],
)
def test_holdings_boundaries_are_half_open(
    store: Store, start: datetime, end: datetime
) -> None:
    book(store, "a", (T0, T0 + 2 * HOUR, "adv-01", "booked"))

    assert [] == store.holdings(start, end)


def test_holdings_leaves_out_the_booking_being_rechecked(store: Store) -> None:
    mine = book(store, "mine", (T0, T0 + HOUR, "adv-01", "booked"))
    other = book(store, "other", (T0, T0 + HOUR, "adv-02", "booked"))

    found = store.holdings(T0, T0 + HOUR, exclude_booking=mine)

    assert [other] == [holding.booking_id for holding in found]


def test_entity_for_prefers_an_exact_address_to_a_domain(store: Store) -> None:
    council = entity("P0801900B", "secretaria@ajbcn.example", "@ajbcn.example")
    district = entity("P0800001B", "districte@bcn.example", "alcaldia@ajbcn.example")
    store.save_entity(council, source="test", now=NOW)
    store.save_entity(district, source="test", now=NOW)

    exact = store.entity_for("Alcaldia@AJBCN.example")
    by_domain = store.entity_for("urbanisme@ajbcn.example")
    nobody = store.entity_for("urbanisme@elsewhere.example")

    assert "P0800001B" == (exact.nif if exact else None)
    assert "P0801900B" == (by_domain.nif if by_domain else None)
    assert nobody is None


def test_a_domain_sender_does_not_match_a_subdomain(store: Store) -> None:
    store.save_entity(
        entity("P0801900B", "secretaria@ajbcn.example", "@ajbcn.example"),
        source="test",
        now=NOW,
    )

    assert store.entity_for("someone@mail.ajbcn.example") is None


def test_save_entity_records_every_change_with_its_source(store: Store) -> None:
    first = entity("P0801900B", "secretaria@ajbcn.example", name="Ajuntament")
    renamed = entity(
        "P0801900B", "secretaria@ajbcn.example", "@ajbcn.example", name="Ajuntament B"
    )
    later = NOW + timedelta(days=1)

    created = store.save_entity(first, source="import a.csv", now=NOW)
    changed = store.save_entity(renamed, source="message <x@y>", now=later)
    unchanged = store.save_entity(renamed, source="import b.csv", now=later)

    assert ["created", "senders"] == created
    assert ["name", "senders"] == changed
    assert [] == unchanged
    rows = store.conn.execute(
        "SELECT changed_at, source, field, old_value, new_value FROM entity_changes"
        " WHERE nif = 'P0801900B' ORDER BY id"
    ).fetchall()
    assert [
        ("2026-12-01T09:00:00Z", "import a.csv", "created", None, "Ajuntament"),
        ("2026-12-01T09:00:00Z", "import a.csv", "senders", "", SECRETARIA),
        ("2026-12-02T09:00:00Z", "message <x@y>", "name", "Ajuntament", "Ajuntament B"),
        (
            "2026-12-02T09:00:00Z",
            "message <x@y>",
            "senders",
            SECRETARIA,
            f"@ajbcn.example {SECRETARIA}",
        ),
    ] == [tuple(row) for row in rows]


def test_progress_marks_leave_decisions_fully_synchronous(store: Store) -> None:
    seen: list[int] = []
    with store.progress_transaction():
        seen.append(store.conn.execute("PRAGMA synchronous").fetchone()[0])

    seen.append(store.conn.execute("PRAGMA synchronous").fetchone()[0])

    assert [1, 2] == seen  # NORMAL for the mark, FULL again after it
