"""Scale: one capacity check and one booking with a year of bookings stored."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.workload import ENTITIES, MADRID, entity_nif, organizer
from mailbot.config import Config, parse_config
from mailbot.models import Entity, Invitation, Needs, Occurrence, RawMessage
from mailbot.pipeline import PROPOSAL_WINDOW, handle
from mailbot.pool import hold_interval
from mailbot.rules import Verdict, decide_request
from mailbot.store import Store
from tests.mailgen import SERVICE, outlook_invitation

LICENSES = tuple(f"adv-{number:03d}" for number in range(1, 151))
REPLY_BYTES = 6000  # about the size of a rendered reply with its iTIP part


@dataclass(frozen=True, slots=True)
class Latencies:
    """Milliseconds taken by repeated calls of one operation."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


@dataclass(frozen=True, slots=True)
class ScaleResult:
    bookings: int
    held: int
    build_seconds: float
    capacity_check: Latencies
    holdings_only: Latencies
    booking: Latencies


def config_for(database: Path) -> Config:
    """A configuration with the large pool a year of 100,000 bookings needs."""
    return parse_config(
        {
            "service": {"address": SERVICE, "daily_reply_cap": 1000},
            "licenses": {"pool": list(LICENSES)},
            "maildir": {"path": str(database.parent / "inbox")},
            "outbox": {"maildir": str(database.parent / "outbox")},
            "database": {"path": str(database)},
        },
        path=database.parent / "bench.toml",
    )


def build_year(store: Store, config: Config, *, bookings: int, now: datetime) -> int:
    """Store ``bookings`` bookings spread over the coming year, as a year of mail.

    Each comes with its message, decision and sent reply rows, as the
    pipeline would have left them. Licenses are given greedily, without
    overlap; a booking that finds none is stored as pending. Returns how
    many hold a license.
    """
    rng = random.Random(4)
    meetings = []
    for index in range(bookings):
        day = (now + timedelta(days=1 + rng.randrange(365))).astimezone(MADRID).date()
        local = datetime(
            day.year, day.month, day.day, rng.randrange(9, 21), tzinfo=MADRID
        )
        start = local.astimezone(UTC)
        end = start + timedelta(minutes=rng.choice((60, 90, 120, 180)))
        meetings.append((start, end, index))
    meetings.sort()

    free_from = dict.fromkeys(LICENSES, datetime.min.replace(tzinfo=UTC))
    held = 0
    reply = b"x" * REPLY_BYTES
    with store.transaction():
        for number in range(1, ENTITIES + 1):
            store.save_entity(
                Entity(
                    nif=entity_nif(number),
                    name=f"Ajuntament {number}",
                    email=organizer(number),
                ),
                source="bench",
                now=now,
            )
        for start, end, index in meetings:
            number = 1 + index % ENTITIES
            occurrence = Occurrence(start, end)
            hold = hold_interval(occurrence, config.rules)
            license_ = next((n for n in LICENSES if free_from[n] <= hold.start), None)
            if license_ is not None:
                free_from[license_] = hold.end
                held += 1
            status = "booked" if license_ else "pending"
            booking = store.save_booking(
                uid=f"year-{index}",
                entity=entity_nif(number),
                organizer=organizer(number),
                summary="Junta de Govern",
                sequence=0,
                dtstamp=now,
                status=status,
                needs=Needs(kind="board"),
                zone="Europe/Madrid",
                recurring=False,
                occurrences=[(occurrence, hold.start, hold.end, license_, status)],
                now=now,
            )
            message = store.add_message(
                message_id=f"year-{index}@bench.example",
                folder="INBOX",
                uidvalidity=1,
                uid=index + 1,
                from_addr=organizer(number),
                subject="Junta de Govern",
                arrived=now - timedelta(days=rng.randrange(365)),
                now=now,
                size=2000,
                kind="calendar",
            )
            decision = store.add_decision(
                message=message,
                now=now,
                outcome=status,
                reason="fits" if license_ else "pool-full",
                detail="",
                checks=[],
                facts={},
                filed_to="processed",
                entity=entity_nif(number),
                booking=booking,
                calendar_uid=f"year-{index}",
                sequence=0,
            )
            store.enqueue(
                decision=decision,
                message_id=f"reply-{index}@bench.example",
                kind="reply",
                recipients=[organizer(number)],
                subject="Re: Junta de Govern",
                data=reply,
                now=now - timedelta(days=rng.randrange(365)),
            )
    return held


def measure_scale(folder: Path, *, bookings: int, samples: int) -> ScaleResult:
    """Build the year in ``folder`` and time ``samples`` checks and bookings."""
    now = datetime.now(UTC)
    database = folder / "scale.sqlite3"
    config = config_for(database)
    store = Store(database)
    try:
        started = time.monotonic()
        held = build_year(store, config, bookings=bookings, now=now)
        build_seconds = time.monotonic() - started
        store.conn.execute("ANALYZE")

        rng = random.Random(5)
        starts = [
            now + timedelta(days=30 + rng.randrange(300), hours=rng.randrange(24))
            for _ in range(samples)
        ]
        checks = _timed(lambda at: _capacity_check(store, config, at, now=now), starts)
        windows = _timed(lambda at: _holdings_only(store, config, at), starts)
        booked = _timed(
            lambda at, i: _one_booking(store, config, at, i, now=now),
            starts,
            keyed=True,
        )
    finally:
        store.close()
    return ScaleResult(bookings, held, build_seconds, checks, windows, booked)


def _timed(
    operation: Callable[..., object], starts: list[datetime], *, keyed: bool = False
) -> Latencies:
    samples = []
    for index, start in enumerate(starts):
        args = (start, index) if keyed else (start,)
        began = time.perf_counter()
        operation(*args)
        samples.append((time.perf_counter() - began) * 1000)
    return Latencies(tuple(samples))


def _invitation(start: datetime, uid: str) -> Invitation:
    end = start + timedelta(hours=2)
    return Invitation(
        uid=uid,
        method="REQUEST",
        sequence=0,
        dtstamp=start,
        organizer=organizer(1),
        organizer_name="",
        attendees=(SERVICE,),
        summary="Ple ordinari",
        description="",
        location="",
        comment="",
        status="CONFIRMED",
        tzid="Romance Standard Time",
        zone="Europe/Madrid",
        occurrences=(Occurrence(start, end),),
    )


def _capacity_check(
    store: Store, config: Config, start: datetime, *, now: datetime
) -> object:
    """What the pipeline does to check one meeting: its holdings, then the rules.

    As in the pipeline, only a full pool pays for reading the week around the
    meeting (for the nearest free slots) and deciding again.
    """
    invitation = _invitation(start, "check")
    hold = hold_interval(invitation.occurrences[0], config.rules)
    entity = store.entity(entity_nif(1))

    def decide(windows: list[tuple[datetime, datetime]]) -> Verdict:
        holdings = {
            (h.start, h.end, h.license, h.booking_id): h
            for window in windows
            for h in store.holdings(*window)
        }
        return decide_request(
            invitation,
            entity=entity,
            needs=Needs(),
            arrived=now,
            now=now,
            rules=config.rules,
            pool=config.pool,
            holdings=list(holdings.values()),
        )

    windows = [(hold.start, hold.end)]
    verdict = decide(windows)
    if verdict.decision.reason != "pool-full":
        return verdict
    windows.append((hold.start - PROPOSAL_WINDOW, hold.end + PROPOSAL_WINDOW))
    return decide(windows)


def _holdings_only(store: Store, config: Config, start: datetime) -> object:
    hold = hold_interval(_invitation(start, "check").occurrences[0], config.rules)
    return store.holdings(hold.start, hold.end)


def _one_booking(
    store: Store, config: Config, start: datetime, index: int, *, now: datetime
) -> object:
    """One invitation through the whole pipeline: decided, booked, reply queued."""
    local = start.astimezone(MADRID).replace(tzinfo=None)
    data = outlook_invitation(
        uid=f"scale-{index}",
        organizer=organizer(1 + index % ENTITIES),
        summary="Ple ordinari",
        description="Ple ordinari. Retransmissió pel canal de YouTube de l'Ajuntament.",
        start=local,
        end=local + timedelta(hours=2),
    )
    raw = RawMessage(
        folder="INBOX",
        uidvalidity=2,
        uid=index + 1,
        data=data,
        arrived=now - timedelta(hours=1),
        size=len(data),
    )
    return handle(raw, config=config, store=store, now=now)
