"""Exactly once under SIGKILL: ``mailbot run`` killed at 50+ points of a backlog.

A backlog of 200 messages sits in one real Dovecot account.  The daemon is
started, stopped dead (SIGSTOP, then SIGKILL) at a moment aimed at one phase
of its work, and started again, until it has been killed at no fewer than 50
different points; ``run --once`` then drains what is left.  What each kill
hit is read from the outside: the daemon's log up to the kill, whether it held
the database's write lock, and the state of the database, the inbox and the
SMTP sink.  The end state is compared with an uninterrupted run of the same
backlog.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.actions.delivery import deliver_due
from mailbot.actions.outbox import SmtpTransport
from mailbot.config import SmtpConfig
from mailbot.parsers.nif import organisation_control
from mailbot.store import Store
from tests.helpers import PASSWORD_ENV, SUPPORT
from tests.mailgen import SERVICE, auto_reply, google_invitation, outlook_invitation
from tests.servers import ImapAccount, SmtpSink

MADRID = ZoneInfo("Europe/Madrid")
SEED = 20261205
BACKLOG = 200
MIN_POINTS = 50
MAX_KILLS = 120
BATCH_SIZE = 8
ENTITIES = 40
POOL = ("adv-01", "adv-02", "adv-03")
ANSWER_DELAY = 0.010  # the sink keeps a reply, then answers DATA this late

# The phases a kill must hit at least once each (see ``classify``).
DECIDING_IN_TRANSACTION = "deciding: inside a message's transaction"
DECIDING_BETWEEN = "deciding: between messages"
BEFORE_DELIVERY = "after the batch's commits, before delivery"
SENDING_UNANSWERED = "delivering: 'sending' committed, no SMTP answer yet"
SENDING_ACCEPTED = "delivering: accepted by SMTP, 'sent' not yet recorded"
DELIVERING_BETWEEN = "delivering: between replies"
BEFORE_FILING = "after delivery, before filing"
FILING = "filing: some folders moved, others not yet"
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
        match = re.search(rb"^Message-ID: (<[^>]+>)", self.data, re.MULTILINE)
        assert match is not None
        return match.group(1).decode()


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
    invitations from unregistered senders, auto-replies, mail for people and
    the same message delivered twice.
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
    for index in range(120):
        number += 1
        entity = entities[index % len(entities)]
        start = slot(rng.randint(3, 30), rng.choice((10, 11, 17, 18)))
        item = Incoming(
            "invitation", invitation(number, organizer=entity.address, start=start)
        )
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
    for index in range(6):
        entity = entities[(index * 3 + 2) % len(entities)]
        independent.append(Incoming("people", people_mail(entity.address, index, now)))
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
    for item, _, _, _ in chosen[30:]:
        dependants.append((item, Incoming("duplicate", item.data)))
    for original, dependant in dependants:
        after = backlog.index(original) + 1
        backlog.insert(rng.randint(after, len(backlog)), dependant)

    assert BACKLOG == len(backlog)
    return backlog


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


@pytest.mark.integration
def test_a_reply_left_sending_by_a_dead_daemon_goes_again_with_its_message_id(
    store: Store, smtp_sink: SmtpSink
) -> None:
    item = queue_reply(store)
    store.mark_sending(item, NOW)  # and the process died before the answer
    transport = SmtpTransport(
        SmtpConfig(host=smtp_sink.host, port=smtp_sink.port, tls="none", timeout=5)
    )
    try:
        report = deliver_due(store, transport, now=lambda: NOW)
    finally:
        transport.close()

    assert 1 == report.sent
    assert ("sent", 2, 1) == outbox_row(store, item)
    assert ["<mailbot.abc@webfine.com>"] == [
        str(mail.message["Message-ID"]) for mail in smtp_sink.received
    ]
