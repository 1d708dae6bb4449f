"""Exactly once under SIGKILL: ``mailbot run`` killed at 50+ points of a backlog.

A backlog of 200 messages sits in one real Dovecot account.  The daemon is
started, stopped dead (SIGSTOP, then SIGKILL) at a moment aimed at one phase
of its work, and started again, until it has been killed at no fewer than 50
different points; ``run --once`` then drains what is left.  What each kill
hit is read from the outside: the daemon's log up to the kill, whether it held
the database's write lock, and the state of the database, the inbox and the
SMTP sink.  The narrow gap between a batch's last commit and its first
delivery is reached by letting the daemon run in 0.2 ms steps (SIGSTOP,
SIGCONT) from the decision before.  The end state is compared with an
uninterrupted run of the same backlog.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.actions.delivery import deliver_due
from mailbot.actions.outbox import SmtpTransport
from mailbot.config import Config, SmtpConfig, parse_config
from mailbot.models import Entity as ModelEntity
from mailbot.models import RawMessage
from mailbot.parsers.nif import organisation_control
from mailbot.pipeline import handle
from mailbot.store import Store
from tests.helpers import (
    MAILBOT,
    PASSWORD_ENV,
    SUPPORT,
    assert_no_traceback,
    run_mailbot,
)
from tests.mailgen import SERVICE, auto_reply, google_invitation, outlook_invitation
from tests.servers import DovecotServer, ImapAccount, ReceivedMail, SmtpSink

MADRID = ZoneInfo("Europe/Madrid")
SEED = 20261205
BACKLOG = 200
MIN_POINTS = 50
PLANNED_KILLS = 66  # spread over the backlog; more if phases are missing
MAX_KILLS = 120
BATCH_SIZE = 4
ENTITIES = 40
POOL = ("adv-01", "adv-02", "adv-03")
ANSWER_DELAY = 0.010  # the sink keeps a reply, then answers DATA this late
STEP = 0.0002  # how long the daemon runs between two stops when stepped

# The phases a kill must hit at least once each (see ``classify``).
DECIDING_IN_TRANSACTION = "deciding: inside a message's transaction"
DECIDING_BETWEEN = "deciding: between messages"
BEFORE_DELIVERY = "after the batch's commits, before delivery"
SENDING_UNANSWERED = "delivering: 'sending' committed, no SMTP answer yet"
SENDING_ACCEPTED = "delivering: accepted by SMTP, 'sent' not yet recorded"
DELIVERING_BETWEEN = "delivering: between replies"
BEFORE_FILING = "after delivery, before filing"
FILING = "filing: a MOVE done, another not yet answered"
BETWEEN_BATCHES = "no message in hand: starting, fetching or waiting"
REQUIRED_PHASES = (
    DECIDING_IN_TRANSACTION,
    DECIDING_BETWEEN,
    BEFORE_DELIVERY,
    SENDING_UNANSWERED,
    SENDING_ACCEPTED,
    BEFORE_FILING,
    FILING,
)


# -- the backlog ----------------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    nif: str
    address: str
    language: str


@dataclass(frozen=True)
class Incoming:
    """One message of the backlog; ``kind`` says what the generator meant it to be."""

    kind: str
    data: bytes

    @property
    def message_id(self) -> str:
        return message_id(self.data)


def message_id(data: bytes) -> str:
    """The Message-ID, or for a message without one a hash of its bytes."""
    found = re.search(rb"^Message-ID: (<[^>]+>)", data, re.MULTILINE)
    if found is None:
        return f"sha256:{hashlib.sha256(data).hexdigest()}"
    return found.group(1).decode()


def make_entities(count: int) -> list[Entity]:
    entities = []
    for number in range(count):
        digits = f"08{number + 100:03d}00"
        control = "JABCDEFGHI"[organisation_control(digits)]
        entities.append(
            Entity(
                nif=f"P{digits}{control}",
                address=f"secretaria@ens{number:02d}.example",
                language="es" if number % 4 == 3 else "ca",
            )
        )
    return entities


def entities_csv(entities: list[Entity]) -> str:
    lines = ["nif,name,email,senders,youtube_channel,channel_agreement,language"]
    for number, entity in enumerate(entities):
        channel = f"https://www.youtube.com/@ens{number:02d}" if number % 3 else ""
        agreement = "yes" if number % 2 else "no"
        lines.append(
            f"{entity.nif},Ajuntament {number:02d},{entity.address},,"
            f"{channel},{agreement},{entity.language}"
        )
    return "\n".join(lines) + "\n"


SUMMARIES = (
    ("Ple ordinari", "Ple ordinari. Retransmissió en directe pel canal propi."),
    ("Ple extraordinari", "Sessió plenària amb retransmissió i enregistrament."),
    ("Junta de Govern Local", "Junta de Govern, uns 12 participants."),
    ("Comissió informativa", "Comissió informativa d'Hisenda. Cal enregistrar-la."),
    ("Consell d'alcaldes", "Reunió del consell, 40 participants. Suport tècnic."),
    ("Pleno ordinario", "Pleno. Retransmisión en el canal del consorcio."),
)


def make_backlog(
    rng: random.Random, entities: list[Entity], now: datetime
) -> list[Incoming]:
    """200 messages as the service mailbox gets them, in a fixed random order.

    Invitations from registered entities (Outlook and Google, many on the
    same few slots so that the pool of three licenses fills), late, past
    and all-day ones, updates and cancellations of earlier invitations,
    invitations from unregistered senders, auto-replies, mail for people,
    unreadable calendars, a few messages without a Message-ID, and the same
    message delivered twice.
    """
    today = now.astimezone(MADRID).date()

    def slot(days: int, hour: int) -> datetime:
        day = today + timedelta(days=days)
        return datetime(day.year, day.month, day.day, hour, 0)

    def invitation(
        number: int, *, organizer: str, start: datetime, hours: int = 2, **extra: object
    ) -> bytes:
        summary, description = SUMMARIES[number % len(SUMMARIES)]
        description += f" ID de la reunió: 8{number:02d} 2222 3333."
        if number % 2:
            return outlook_invitation(
                uid=f"crash-{number:03d}",
                organizer=organizer,
                summary=f"{summary} {number}",
                description=description,
                start=start,
                end=start + timedelta(hours=hours),
                sent=now - timedelta(minutes=30),
                **extra,  # type: ignore[arg-type]
            )
        zone_start = start.replace(tzinfo=MADRID).astimezone(UTC)
        return google_invitation(
            uid=f"crash-{number:03d}@google.com",
            organizer=organizer,
            summary=f"{summary} {number}",
            description=description,
            start=zone_start,
            end=zone_start + timedelta(hours=hours),
            sent=now - timedelta(minutes=30),
            **extra,  # type: ignore[arg-type]
        )

    independent: list[Incoming] = []
    originals: list[tuple[Incoming, int, Entity, datetime]] = []
    number = 0
    for index in range(96):
        number += 1
        entity = entities[index % len(entities)]
        start = slot(rng.randint(3, 30), rng.choice((10, 11, 17, 18)))
        item = Incoming(
            "invitation", invitation(number, organizer=entity.address, start=start)
        )
        if index < 3:  # known by a hash of its content instead
            item = Incoming("invitation without Message-ID", without_message_id(item))
        independent.append(item)
        originals.append((item, number, entity, start))
    for index in range(10):
        number += 1
        entity = entities[(index * 7) % len(entities)]
        soon = (now + timedelta(hours=6)).astimezone(MADRID).replace(tzinfo=None)
        independent.append(
            Incoming("late", invitation(number, organizer=entity.address, start=soon))
        )
    for index in range(4):
        number += 1
        entity = entities[(index * 11 + 3) % len(entities)]
        independent.append(
            Incoming(
                "past", invitation(number, organizer=entity.address, start=slot(-2, 10))
            )
        )
    for index in range(5):
        number += 1
        entity = entities[(index * 13 + 5) % len(entities)]
        day = today + timedelta(days=5 + index)
        independent.append(
            Incoming(
                "all-day",
                google_invitation(
                    uid=f"crash-{number:03d}@google.com",
                    organizer=entity.address,
                    summary=f"Jornada {number}",
                    description="Tot el dia",
                    start=day.strftime("%Y%m%d"),
                    end=(day + timedelta(days=1)).strftime("%Y%m%d"),
                ),
            )
        )
    for index in range(12):
        number += 1
        start = slot(rng.randint(3, 30), 12)
        independent.append(
            Incoming(
                "unregistered",
                invitation(
                    number,
                    organizer=f"alcaldia@desconegut{index:02d}.example",
                    start=start,
                ),
            )
        )
    for index in range(8):
        entity = entities[(index * 5 + 1) % len(entities)]
        independent.append(
            Incoming(
                "automatic", auto_reply(sender=entity.address, subject=f"Ple {index}")
            )
        )
    for index in range(19):
        entity = entities[(index * 3 + 2) % len(entities)]
        independent.append(Incoming("people", people_mail(entity.address, index, now)))
    for index in range(10):
        entity = entities[(index * 7 + 4) % len(entities)]
        independent.append(
            Incoming("broken", broken_invitation(entity.address, index, now))
        )
    rng.shuffle(independent)

    backlog = list(independent)
    dependants: list[tuple[Incoming, Incoming]] = []
    chosen = rng.sample(originals, 35)
    for item, original_number, entity, start in chosen[:15]:
        moved = start + timedelta(days=1)
        data = invitation(
            original_number, organizer=entity.address, start=moved, sequence=1
        )
        dependants.append((item, Incoming("update", data)))
    for item, original_number, entity, start in chosen[15:30]:
        data = invitation(
            original_number,
            organizer=entity.address,
            start=start,
            sequence=2,
            method="CANCEL",
        )
        dependants.append((item, Incoming("cancellation", data)))
    for item, _, _, _ in [*chosen[30:], originals[0]]:
        dependants.append((item, Incoming("duplicate", item.data)))
    for original, dependant in dependants:
        after = backlog.index(original) + 1
        backlog.insert(rng.randint(after, len(backlog)), dependant)

    assert BACKLOG == len(backlog)
    return backlog


def without_message_id(item: Incoming) -> bytes:
    return re.sub(rb"^Message-ID: [^\r\n]*\r\n", b"", item.data, flags=re.MULTILINE)


def broken_invitation(sender: str, index: int, now: datetime) -> bytes:
    """A calendar part that cannot be read: the message goes to quarantine."""
    text = (
        f"From: Secretaria <{sender}>\r\n"
        f"To: {SERVICE}\r\n"
        f"Subject: Ple {index}\r\n"
        f"Date: {format_datetime(now - timedelta(hours=1))}\r\n"
        f"Message-ID: <broken.{index}@{sender.split('@')[1]}>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/calendar; charset="utf-8"; method=REQUEST\r\n'
        "\r\n"
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
        f"UID:broken-{index}\r\nDTSTART:2027-13-45\r\nSUMMARY:Ple\r\n"
        "END:VCALENDAR\r\n"
    )
    return text.encode()


def people_mail(sender: str, index: int, now: datetime) -> bytes:
    text = (
        f"From: Secretaria <{sender}>\r\n"
        f"To: {SERVICE}\r\n"
        f"Subject: Dubte sobre la retransmissio {index}\r\n"
        f"Date: {format_datetime(now - timedelta(hours=1))}\r\n"
        f"Message-ID: <people.{index}@{sender.split('@')[1]}>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "\r\n"
        "Bon dia, com podem provar el so abans del ple? Gracies.\r\n"
    )
    return text.encode()


def write_config(folder: Path, account: ImapAccount, sink: SmtpSink) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mailbot.toml"
    licenses = ", ".join(f'"{name}"' for name in POOL)
    path.write_text(
        f"""
[service]
address = "{SERVICE}"
support = ["{SUPPORT}"]

[licenses]
pool = [{licenses}]

[imap]
host = "{account.host}"
port = {account.port}
tls = "none"
username = "{account.username}"
password_env = "{PASSWORD_ENV}"
connect_timeout = 5
read_timeout = 20
batch_size = {BATCH_SIZE}

[smtp]
host = "{sink.host}"
port = {sink.port}
tls = "none"
timeout = 10

[database]
path = "mailbot.sqlite3"
""",
        encoding="utf-8",
    )
    return path


def append_backlog(
    account: ImapAccount, backlog: list[Incoming], arrived: datetime
) -> None:
    with account.client() as client:
        for item in backlog:
            client.append("INBOX", item.data, msg_time=arrived)


# -- an attempt cut short -----------------------------------------------------------

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
REPLY = (
    b"From: <localretmeet@webfine.com>\r\nTo: <secretaria@ens01.example>\r\n"
    b"Subject: Reserva\r\nMessage-ID: <mailbot.abc@webfine.com>\r\n\r\nReservat.\r\n"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "mailbot.sqlite3")
    yield opened
    opened.close()


def queue_reply(store: Store) -> int:
    return store.enqueue(
        decision=None,
        message_id="mailbot.abc@webfine.com",
        kind="reply",
        recipients=["secretaria@ens01.example"],
        subject="Reserva",
        data=REPLY,
        now=NOW,
    )


def outbox_row(store: Store, item: int) -> tuple[str, int, int]:
    row = store.conn.execute(
        "SELECT status, attempts, interrupted FROM outbox WHERE id = ?", (item,)
    ).fetchone()
    return (row[0], row[1], row[2])


def test_an_attempt_still_sending_when_the_next_starts_counts_as_interrupted(
    store: Store,
) -> None:
    item = queue_reply(store)
    first = store.mark_sending(item, NOW)
    second = store.mark_sending(item, NOW + timedelta(seconds=5))

    assert (False, True) == (first, second)
    assert ("sending", 2, 1) == outbox_row(store, item)


def test_an_attempt_that_recorded_its_answer_does_not_count_as_interrupted(
    store: Store,
) -> None:
    item = queue_reply(store)
    store.mark_sending(item, NOW)
    store.mark_retry(item, error="421 busy", when=NOW)
    again = store.mark_sending(item, NOW + timedelta(seconds=5))

    assert again is False
    assert ("sending", 2, 0) == outbox_row(store, item)


def send_due(store: Store, sink: SmtpSink) -> int:
    transport = SmtpTransport(
        SmtpConfig(host=sink.host, port=sink.port, tls="none", timeout=5)
    )
    try:
        return deliver_due(store, transport, now=lambda: NOW).sent
    finally:
        transport.close()


@pytest.mark.integration
def test_a_reply_left_sending_by_a_dead_daemon_goes_again_with_its_message_id(
    store: Store, smtp_sink: SmtpSink
) -> None:
    item = queue_reply(store)
    store.mark_sending(item, NOW)  # and the process died before the answer
    sent = send_due(store, smtp_sink)

    assert 1 == sent
    assert ("sent", 2, 1) == outbox_row(store, item)
    assert ["<mailbot.abc@webfine.com>"] == [
        str(mail.message["Message-ID"]) for mail in smtp_sink.received
    ]


@pytest.mark.integration
def test_a_reply_sent_again_after_an_attempt_cut_short_is_logged_as_a_warning(
    store: Store, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    item = queue_reply(store)
    store.mark_sending(item, NOW)
    with caplog.at_level(logging.WARNING, logger="mailbot.delivery"):
        send_due(store, smtp_sink)

    assert [
        "reply mailbot.abc@webfine.com: the attempt before was cut short, its"
        " outcome unknown; sending it again with the same Message-ID"
    ] == [record.getMessage() for record in caplog.records]


# -- the same unreadable message twice ------------------------------------------------

BARCELONA = "secretaria@ajbcn.example"


@pytest.fixture
def robot(tmp_path: Path) -> Iterator[tuple[Config, Store]]:
    config = parse_config(
        {
            "service": {"address": SERVICE, "support": [SUPPORT]},
            "licenses": {"pool": list(POOL)},
            "maildir": {"path": "inbox"},
            "outbox": {"maildir": "outbox"},
            "database": {"path": "mailbot.sqlite3"},
        },
        path=tmp_path / "mailbot.toml",
    )
    opened = Store(config.database)
    opened.save_entity(
        ModelEntity("P0801900B", "Ajuntament de Barcelona", BARCELONA),
        source="test",
        now=NOW,
    )
    yield config, opened
    opened.close()


def too_many_parts() -> bytes:
    """From a registered entity, with more MIME parts than mailbot reads."""
    parts = "".join(
        f"--b\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n" for n in range(120)
    )
    return (
        f"From: <{BARCELONA}>\r\nTo: <{SERVICE}>\r\nSubject: Ple\r\n"
        "Message-ID: <many.parts@ajbcn.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + "--b--\r\n"
    ).encode()


def handle_twice(
    robot: tuple[Config, Store], data: bytes, *, oversized: bool = False
) -> tuple[list[str], int]:
    """The outcomes of two copies (UIDs 1 and 2) and the replies queued."""
    config, store = robot
    outcomes = [
        handle(
            RawMessage("INBOX", 1, uid, data, NOW, len(data), oversized=oversized),
            config=config,
            store=store,
            now=NOW,
        ).outcome
        for uid in (1, 2)
    ]
    replies = store.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    return outcomes, replies


def test_an_unreadable_message_delivered_twice_is_quarantined_once_answered_once(
    robot: tuple[Config, Store],
) -> None:
    outcomes, replies = handle_twice(robot, too_many_parts())

    assert (["quarantined", "duplicate"], 1) == (outcomes, replies)


def test_an_oversized_message_delivered_twice_is_quarantined_once_answered_once(
    robot: tuple[Config, Store],
) -> None:
    headers = (
        f"From: <{BARCELONA}>\r\nTo: <{SERVICE}>\r\nSubject: Ple\r\n"
        "Message-ID: <big@ajbcn.example>\r\n\r\n"
    )
    outcomes, replies = handle_twice(robot, headers.encode(), oversized=True)

    assert (["quarantined", "duplicate"], 1) == (outcomes, replies)


# -- stopping the daemon dead ---------------------------------------------------------

# Log lines that mark a step of the daemon's work, as ``-v`` writes them.
MILESTONES = (
    (
        "fetched",
        re.compile(r"mailbot\.mailbox: fetched BODY\.PEEK\[\] of UIDs \[(.*)\]"),
    ),
    ("decided", re.compile(r"mailbot\.pipeline: \S+ uid=(\d+) .* outcome=\S+$")),
    ("connected", re.compile(r"mailbot\.outbox: connected to ")),
    ("accepted", re.compile(r"mailbot\.outbox: \S+ accepted by ")),
    ("sent", re.compile(r"mailbot\.delivery: reply \S+ sent: ")),
    ("filed", re.compile(r"mailbot\.mailbox: filed UIDs \[(.*)\]")),
)


def uids(listed: str) -> set[int]:
    """The UIDs of a logged list: ``1, 2, 3``."""
    return {int(uid) for uid in listed.split(", ")}


def milestone(line: str) -> tuple[str, str] | None:
    """The step a log line marks and what it captured, or None."""
    for name, pattern in MILESTONES:
        found = pattern.search(line)
        if found is not None:
            return name, found.group(1) if found.groups() else ""
    return None


@dataclass(frozen=True)
class State:
    """What the database, the inbox and the sink hold at one moment."""

    inbox: frozenset[int]
    decided: frozenset[int]  # UIDs, in INBOX, that have a decision
    decisions: int
    outbox: dict[str, str]  # reply Message-ID: status
    at_sink: Counter[str]  # reply Message-ID: copies received

    @property
    def in_hand(self) -> frozenset[int]:
        return self.inbox & self.decided

    def with_status(self, status: str) -> list[str]:
        return [mid for mid, found in self.outbox.items() if found == status]


def read_state(db: Path, account: ImapAccount, sink: SmtpSink) -> State:
    with closing(sqlite3.connect(db)) as conn:
        decided = {
            row[0]
            for row in conn.execute(
                "SELECT m.uid FROM messages m JOIN decisions d ON d.message = m.id"
            )
        }
        outbox = dict(conn.execute("SELECT message_id, status FROM outbox"))
    with account.client() as client:
        client.select_folder("INBOX", readonly=True)
        inbox = frozenset(int(uid) for uid in client.search(["UNDELETED"]))
    return State(
        inbox=inbox,
        decided=frozenset(decided) & inbox,
        decisions=len(decided),
        outbox=outbox,
        at_sink=Counter(reply_id(mail) for mail in sink.received),
    )


def reply_id(mail: ReceivedMail) -> str:
    return str(mail.message["Message-ID"]).strip().strip("<>")


def write_lock_held(db: Path) -> bool:
    """Whether some connection is inside a write transaction of the database."""
    with closing(sqlite3.connect(db, timeout=0, isolation_level=None)) as conn:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                return True
            raise
        conn.execute("ROLLBACK")
    return False


def classify(log: list[str], *, locked: bool, before: State, after: State) -> str:
    """Name the phase the daemon was in when it was stopped.

    ``log`` is what it wrote in this run up to the stop, ``locked`` whether
    it held the write lock then, ``before`` and ``after`` the state at its
    start and after the kill.
    """
    steps = [found for line in log if (found := milestone(line)) is not None]
    last = steps[-1][0] if steps else None
    fetches = [n for n, (name, _) in enumerate(steps) if name == "fetched"]
    steps_since_fetch = steps[fetches[-1] :] if fetches else []
    batch = uids(steps_since_fetch[0][1]) if fetches else set()
    sending = after.with_status("sending")

    if sending:
        arrived = any(after.at_sink[mid] > before.at_sink[mid] for mid in sending)
        return SENDING_ACCEPTED if arrived else SENDING_UNANSWERED
    if last == "filed":
        filed = set().union(
            *(uids(captured) for name, captured in steps_since_fetch if name == "filed")
        )
        return FILING if filed < batch else BETWEEN_BATCHES
    if last in ("connected", "accepted", "sent"):
        return DELIVERING_BETWEEN if after.with_status("queued") else BEFORE_FILING
    if last in ("fetched", "decided"):
        if (batch & after.inbox) - after.decided:
            return DECIDING_IN_TRANSACTION if locked else DECIDING_BETWEEN
        # A lock held now is the first 'sending' mark's, not yet committed.
        return BEFORE_DELIVERY if after.with_status("queued") else BEFORE_FILING
    return BETWEEN_BATCHES


@dataclass(frozen=True)
class Aim:
    """When to stop the daemon: ``delay`` seconds after the ``nth`` trigger line.

    Trigger lines count only once ``skip`` messages have been decided, so that
    the kills spread over the whole backlog.
    """

    phase: str  # the phase aimed at; the one hit is found afterwards
    nth: int
    delay: float
    skip: int = 0


# Phase aimed at: how often it is chosen, the last trigger line it may wait
# for, the longest delay after that line.
AIMS = {
    DECIDING_IN_TRANSACTION: (4, 2, 0.015),
    DECIDING_BETWEEN: (2, 2, 0.0005),  # right after a commit, before the next
    BEFORE_DELIVERY: (3, 1, 0.0),
    SENDING_UNANSWERED: (2, 3, 0.004),
    SENDING_ACCEPTED: (2, 3, 0.015),
    BEFORE_FILING: (2, 1, 0.008),
    FILING: (1, 1, 0.001),
    BETWEEN_BATCHES: (1, 1, 0.6),
}


def choose_aim(
    rng: random.Random, *, missing: list[str], short: bool, skip: int
) -> Aim:
    """Aim at a phase not hit yet, else at any; only early when mail runs short."""
    if short:
        skip = 0
    if missing:
        phases = missing
    elif short:
        phases = [DECIDING_IN_TRANSACTION]  # one message further per kill
    else:
        phases = list(AIMS)
    (phase,) = rng.choices(phases, weights=[AIMS[phase][0] for phase in phases])
    _, most, longest = AIMS[phase]
    nth = 1 if short else rng.randint(1, most)
    return Aim(phase, nth, rng.uniform(0, longest), skip)


class Daemon:
    """One ``mailbot -v run`` process; its log lines are read as they come.

    The log is read from the pipe in this thread, with ``select``, so that
    the stop follows a trigger line within a fraction of a millisecond.
    """

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [str(MAILBOT), "-v", "run", "-c", str(config)],
            cwd=config.parent,
            env={"PATH": "/usr/bin:/bin", **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.process.stderr is not None
        self._pipe = self.process.stderr
        self._partial = b""
        self.log: list[str] = []

    def lines(self, *, timeout: float) -> Iterator[str]:
        """The log lines as they are written, until ``timeout`` or the end."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._pipe], [], [], left)
            if not ready:
                return
            chunk = os.read(self._pipe.fileno(), 1 << 16)
            if not chunk:
                return
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace")
                self.log.append(line)
                yield line

    def step_until(self, wanted: Callable[[str], bool], *, timeout: float) -> None:
        """Let it run in steps of ``STEP`` seconds until it writes a line ``wanted``.

        Between steps it is stopped, so it is left stopped at most one step
        after that line, however late this process gets to read it.
        """
        pid = self.process.pid
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any([wanted(line) for line in self.lines(timeout=0)]):
                return
            os.kill(pid, signal.SIGCONT)
            time.sleep(STEP)
            os.kill(pid, signal.SIGSTOP)

    def kill(self, db: Path) -> bool:
        """SIGSTOP, look whether it holds the write lock, SIGKILL; return that."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            locked = write_lock_held(db)
        finally:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        for _ in self.lines(timeout=10):
            pass  # what it wrote before the stop
        self._pipe.close()
        return locked


def wait_for_trigger(
    daemon: Daemon, aim: Aim, *, db: Path, before: State, timeout: float
) -> set[int]:
    """Read the log until the line ``aim`` waits for; return the batch in hand.

    The batch is the UIDs of the last fetch that had no decision before this
    run.  For :data:`BEFORE_DELIVERY` the trigger is the decision before the
    batch's last one (or the fetch itself): :meth:`Daemon.step_until` takes
    it from there.
    """
    if aim.phase == BETWEEN_BATCHES:
        return set()
    seen = decided = 0
    batch: set[int] = set()
    fetched: set[int] = set()
    filed: set[int] = set()
    for line in daemon.lines(timeout=timeout):
        found = milestone(line)
        if found is None:
            continue
        name, captured = found
        decided += name == "decided"
        if name == "fetched":
            fetched, filed = uids(captured), set()
            batch = fetched - before.decided
        if decided < aim.skip:
            continue
        if aim.phase in (DECIDING_IN_TRANSACTION, DECIDING_BETWEEN) and (
            name == "decided"
        ):
            seen += 1
        elif aim.phase == BEFORE_DELIVERY and name in ("fetched", "decided"):
            before_last = sorted(batch)[-2] if len(batch) > 1 else None
            seen += (name == "fetched" and len(batch) == 1) or (
                name == "decided" and int(captured) == before_last
            )
        elif aim.phase in (SENDING_UNANSWERED, SENDING_ACCEPTED):
            seen += name in ("connected", "sent")
        elif aim.phase == BEFORE_FILING and name == "sent":
            seen += not unsent(db)
        elif aim.phase == FILING and name == "filed":
            filed |= uids(captured)
            seen += filed < fetched  # another folder's MOVE is still to come
        if seen >= aim.nth:
            return batch
    return set()


def decision_of(uid: int) -> Callable[[str], bool]:
    def matches(line: str) -> bool:
        return milestone(line) == ("decided", str(uid))

    return matches


def unsent(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'sending')"
        ).fetchone()
    return int(row[0])


@dataclass(frozen=True)
class Kill:
    aim: str
    phase: str
    locked: bool
    state: State
    last_line: str

    @property
    def point(self) -> tuple[str, int, int, int]:
        """Where the work stood: phase, decisions, replies sent, inbox size."""
        sent = len(self.state.with_status("sent"))
        return (self.phase, self.state.decisions, sent, len(self.state.inbox))

    def describe(self) -> str:
        phase, decisions, sent, inbox = self.point
        lock = "write lock held" if self.locked else "no write lock"
        return (
            f"{phase:<55} | decisions {decisions:3} sent {sent:3} inbox {inbox:3}"
            f" | {lock} | aimed at: {self.aim} | last step: {self.last_line[:80]}"
        )


def kill_repeatedly(
    rng: random.Random,
    *,
    config: Path,
    env: dict[str, str],
    account: ImapAccount,
    sink: SmtpSink,
) -> list[Kill]:
    """Start ``mailbot run``, stop it dead at an aimed moment, again and again."""
    db = config.parent / "mailbot.sqlite3"
    kills: list[Kill] = []
    state = read_state(db, account, sink)
    while len(kills) < MAX_KILLS:
        hit = {kill.phase for kill in kills}
        missing = [phase for phase in REQUIRED_PHASES if phase not in hit]
        points = {kill.point for kill in kills}
        enough = len(points) >= MIN_POINTS + 10 and len(kills) >= PLANNED_KILLS
        if enough and not missing:
            break
        if not state.inbox and set(state.outbox.values()) <= {"sent"}:
            break  # the backlog is done

        on_time = (len(kills) + 1) * BACKLOG // PLANNED_KILLS
        aim = choose_aim(
            rng,
            missing=missing if len(points) >= MIN_POINTS else [],
            short=len(state.inbox) < 2 * (MIN_POINTS + 10 - len(points)),
            skip=min(on_time - state.decisions, len(state.inbox) - BATCH_SIZE),
        )
        daemon = Daemon(config, env)
        batch = wait_for_trigger(daemon, aim, db=db, before=state, timeout=10)
        if aim.phase == BEFORE_DELIVERY and batch:
            daemon.step_until(decision_of(max(batch)), timeout=10)
        else:
            time.sleep(aim.delay)
        if daemon.process.poll() is not None:
            shutil.copy(db, config.parent / "at-failure.sqlite3")
            pytest.fail("the daemon died by itself:\n" + "\n".join(daemon.log[-40:]))
        locked = daemon.kill(db)
        failures = [line for line in daemon.log if re.search(r" ERROR |^Trace", line)]
        assert [] == failures
        time.sleep(0.05)  # what the servers had in hand when it died, they finish

        after = read_state(db, account, sink)
        phase = classify(daemon.log, locked=locked, before=state, after=after)
        steps = [line for line in daemon.log if milestone(line) is not None]
        last = steps[-1].split(" ", 3)[-1] if steps else "(none)"
        kills.append(Kill(aim.phase, phase, locked, after, last))
        state = after
    return kills


# -- the whole backlog, killed again and again -------------------------------------


@dataclass(frozen=True)
class EndState:
    """What a run left in its database, compared between runs."""

    decisions: list[tuple[int, str, str, str]]  # uid, Message-ID, outcome, reason
    replies: dict[int, str]  # incoming UID: reply Message-ID
    bookings: list[tuple[str, str, str, str, str | None, str]]


def end_state(db: Path) -> EndState:
    with closing(sqlite3.connect(db)) as conn:
        decisions = conn.execute(
            "SELECT m.uid, m.message_id, d.outcome, d.reason FROM messages m"
            " JOIN decisions d ON d.message = m.id ORDER BY m.uid"
        ).fetchall()
        replies = conn.execute(
            "SELECT m.uid, o.message_id FROM outbox o"
            " JOIN decisions d ON o.decision = d.id"
            " JOIN messages m ON d.message = m.id"
        ).fetchall()
        bookings = conn.execute(
            "SELECT b.uid, b.status, o.start, o.end, o.license, o.status"
            " FROM bookings b JOIN occurrences o ON o.booking_id = b.id"
            " ORDER BY b.uid, o.start"
        ).fetchall()
    assert len(replies) == len(dict(replies)), "an incoming message has two replies"
    return EndState(decisions, dict(replies), bookings)


def prepare(
    folder: Path,
    account: ImapAccount,
    sink: SmtpSink,
    *,
    entities: list[Entity],
    backlog: list[Incoming],
    arrived: datetime,
) -> tuple[Path, dict[str, str]]:
    """A configuration, the entity directory imported, the backlog in INBOX."""
    config = write_config(folder, account, sink)
    env = {PASSWORD_ENV: account.password}
    directory = folder / "entities.csv"
    directory.write_text(entities_csv(entities), encoding="utf-8")
    imported = run_mailbot(
        "entities", "import", "-c", str(config), str(directory), cwd=folder, env=env
    )
    assert 0 == imported.returncode, imported.stderr
    append_backlog(account, backlog, arrived)
    return config, env


def drain(config: Path, env: dict[str, str]) -> None:
    done = run_mailbot("run", "--once", "-c", str(config), cwd=config.parent, env=env)
    assert 0 == done.returncode, done.stderr
    assert_no_traceback(done)


def filed_message_ids(account: ImapAccount) -> Counter[str]:
    found: Counter[str] = Counter()
    for folder in ("Processed", "Quarantine", "Support"):
        for data in account.messages(folder):
            found[message_id(data)] += 1
    return found


def overlapping_holds(db: Path) -> list[tuple[str, str, str]]:
    """Booked occurrences that hold the same license at the same time."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT license, hold_start, hold_end FROM occurrences"
            " WHERE status = 'booked' ORDER BY license, hold_start"
        ).fetchall()
    overlaps = []
    held_until: dict[str, str] = {}
    for license_, start, end in rows:
        if start < held_until.get(license_, ""):
            overlaps.append((license_, start, held_until[license_]))
        held_until[license_] = max(end, held_until.get(license_, ""))
    return overlaps


@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_at_fifty_points_leaves_one_decision_and_one_reply_per_message(
    tmp_path: Path, dovecot: DovecotServer, imap_account: ImapAccount
) -> None:
    """Killed 50+ times in every phase, the daemon does what one clean run does.

    Each message is decided once and filed once; each reply is recorded
    ``sent`` and reached the SMTP server; a reply reached it twice only when an
    attempt was cut short after the server took it (counted, and printed with
    the table of kills).
    """
    rng = random.Random(SEED)
    now = datetime.now(UTC)
    arrived = now - timedelta(minutes=10)
    entities = make_entities(ENTITIES)
    backlog = make_backlog(rng, entities, now)

    with SmtpSink() as clean_sink:
        clean_config, clean_env = prepare(
            tmp_path / "clean",
            dovecot.new_account(),
            clean_sink,
            entities=entities,
            backlog=backlog,
            arrived=arrived,
        )
        drain(clean_config, clean_env)
    expected = end_state(clean_config.parent / "mailbot.sqlite3")
    assert {
        "booked", "updated", "pending", "cancelled", "declined", "needs-info",
        "unregistered", "automatic", "people", "quarantined", "duplicate",
    } == {outcome for _, _, outcome, _ in expected.decisions}  # fmt: skip

    with SmtpSink(answer_delay=ANSWER_DELAY) as sink:
        config, env = prepare(
            tmp_path / "killed",
            imap_account,
            sink,
            entities=entities,
            backlog=backlog,
            arrived=arrived,
        )
        kills = kill_repeatedly(
            rng, config=config, env=env, account=imap_account, sink=sink
        )
        drain(config, env)
        received = sink.received
    db = config.parent / "mailbot.sqlite3"
    actual = end_state(db)
    with closing(sqlite3.connect(db)) as conn:
        outbox = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                "SELECT message_id, status, interrupted FROM outbox"
            )
        }
    copies = Counter(reply_id(mail) for mail in received)
    doubled = {mid: n for mid, n in copies.items() if n > 1}
    interrupted = {mid for mid, (_, count) in outbox.items() if count}
    table = "\n".join(f"{n:3} {kill.describe()}" for n, kill in enumerate(kills, 1))
    summary = (
        f"{len(kills)} kills at {len({kill.point for kill in kills})} points;"
        f" {len(interrupted)} replies had an attempt cut short,"
        f" {len(doubled)} of them reached the sink twice"
    )
    (tmp_path / "kills.txt").write_text(f"{table}\n{summary}\n", encoding="utf-8")
    print(f"{table}\n{summary}")

    hit = {kill.phase for kill in kills}
    assert [] == [phase for phase in REQUIRED_PHASES if phase not in hit], table
    assert len({kill.point for kill in kills}) >= MIN_POINTS, table

    assert [] == imap_account.messages("INBOX")
    assert Counter(item.message_id for item in backlog) == filed_message_ids(
        imap_account
    )
    assert expected.decisions == actual.decisions
    assert BACKLOG == len(actual.decisions)
    assert expected.replies == actual.replies
    assert expected.bookings == actual.bookings
    assert [] == overlapping_holds(db)

    assert {"sent"} == {status for status, _ in outbox.values()}
    assert set(outbox) == set(copies)
    assert set() == set(doubled) - interrupted
    assert all(copies[mid] <= 1 + outbox[mid][1] for mid in doubled)
    for mid in doubled:
        first, *again = [mail.data for mail in received if reply_id(mail) == mid]
        assert all(first == data for data in again)
