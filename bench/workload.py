"""The mail a benchmark feeds mailbot: entities, and a realistic mix of messages."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from mailbot.parsers.nif import organisation_control
from tests.mailgen import auto_reply, google_invitation, outlook_invitation

MADRID = ZoneInfo("Europe/Madrid")
ENTITIES = 1000
POOL = tuple(f"adv-{number:02d}" for number in range(1, 11))

# Shares of the backlog, by kind of message; the rest are new invitations,
# split between the Outlook and the Google shape.
SHARE_UPDATES = 0.08
SHARE_CANCELLATIONS = 0.05
SHARE_AUTOMATIC = 0.07
SHARE_SERIES = 0.03
SHARE_OUTLOOK = 0.55

DESCRIPTIONS = (
    "Ple ordinari. Retransmissió pel canal de YouTube de l'Ajuntament."
    " ID de la reunió: 111 2222 3333. Codi d'accés: 443511",
    "Junta de Govern Local, uns 12 participants. Sense retransmissió.",
    "Comissió informativa d'Urbanisme. Volem suport tècnic durant la sessió.",
    "Pleno extraordinario, emisión en directo en el canal del consorcio.",
    "Sessió de la Junta de Govern. Enregistrament al núvol.",
)


@dataclass(frozen=True, slots=True)
class Mail:
    """One message of a backlog: its bytes, Message-ID and kind."""

    data: bytes
    message_id: str
    kind: str  # outlook, google, series, update, cancellation, automatic


def entity_domain(number: int) -> str:
    return f"ens{number:04d}.example"


def entity_nif(number: int) -> str:
    """A valid organisation NIF (P: a local entity) for entity ``number``."""
    digits = f"08{number:05d}"
    return f"P{digits}{'JABCDEFGHI'[organisation_control(digits)]}"


def organizer(number: int) -> str:
    return f"secretaria@{entity_domain(number)}"


def entities_csv(count: int = ENTITIES) -> str:
    """A directory of ``count`` entities, each allowed to book from its domain."""
    rows = ["nif,name,email,senders,youtube_channel,channel_agreement,language"]
    for number in range(1, count + 1):
        channel = f"https://www.youtube.com/@ens{number:04d}" if number % 3 else ""
        agreement = "yes" if number % 3 == 0 else "no"
        language = "es" if number % 7 == 0 else "ca"
        rows.append(
            f"{entity_nif(number)},Ajuntament {number},{organizer(number)},"
            f"@{entity_domain(number)},{channel},{agreement},{language}"
        )
    return "\n".join(rows) + "\n"


def backlog(count: int, *, now: datetime, seed: int = 6, tag: str = "b") -> list[Mail]:
    """``count`` messages as a busy mailbox holds them, in arrival order.

    Meetings fall on working days of the coming twelve months, 1 to 3 hours
    long, at least two days ahead (so the notice rule passes); updates and
    cancellations refer to invitations earlier in the same backlog.
    """
    rng = random.Random(seed)
    mails: list[Mail] = []
    sent: list[tuple[str, int, datetime, datetime, str]] = []
    sequences: dict[str, int] = {}
    for index in range(count):
        roll = rng.random()
        if sent and roll < SHARE_UPDATES:
            mails.append(_update(rng, sent, sequences, now=now))
        elif sent and roll < SHARE_UPDATES + SHARE_CANCELLATIONS:
            mails.append(_cancellation(rng, sent, sequences, now=now))
        elif roll < SHARE_UPDATES + SHARE_CANCELLATIONS + SHARE_AUTOMATIC:
            number = rng.randint(1, ENTITIES)
            mails.append(_automatic(number, index, tag=tag, now=now))
        else:
            series = roll > 1 - SHARE_SERIES
            mail, meeting = _invitation(rng, index, tag=tag, now=now, series=series)
            mails.append(mail)
            if not series:
                sent.append(meeting)
                sequences[meeting[0]] = 0
    return mails


def invitations(*, now: datetime, tag: str, seed: int = 7) -> Iterator[Mail]:
    """An endless stream of new invitations, Outlook and Google shapes in turn."""
    rng = random.Random(seed)
    index = 0
    while True:
        mail, _ = _invitation(rng, index, tag=tag, now=now, series=False)
        yield mail
        index += 1


def _meeting_time(rng: random.Random, now: datetime) -> tuple[datetime, datetime]:
    """A naive Madrid wall-clock start and end on a working day ahead."""
    first = (now.astimezone(MADRID) + timedelta(days=2)).date()
    day = first + timedelta(days=rng.randrange(360))
    while day.weekday() >= 5:
        day += timedelta(days=1)
    start = datetime.combine(day, datetime.min.time()).replace(
        hour=rng.randrange(9, 21), minute=rng.choice((0, 30))
    )
    return start, start + timedelta(minutes=rng.choice((60, 90, 120, 180)))


def _utc(naive_madrid: datetime) -> datetime:
    return naive_madrid.replace(tzinfo=MADRID).astimezone(UTC)


def _invitation(
    rng: random.Random, index: int, *, tag: str, now: datetime, series: bool
) -> tuple[Mail, tuple[str, int, datetime, datetime, str]]:
    number = rng.randint(1, ENTITIES)
    start, end = _meeting_time(rng, now)
    description = rng.choice(DESCRIPTIONS)
    summary = description.split(".")[0]
    shape = "outlook" if series or rng.random() < SHARE_OUTLOOK else "google"
    uid = f"{tag}-{index}-{shape}"
    if shape == "outlook":
        data = outlook_invitation(
            uid=uid,
            organizer=organizer(number),
            summary=summary,
            description=description,
            start=start,
            end=end,
            rrule="FREQ=WEEKLY;COUNT=10" if series else None,
        )
    else:
        data = google_invitation(
            uid=uid,
            organizer=organizer(number),
            summary=summary,
            description=description,
            start=_utc(start),
            end=_utc(end),
        )
    kind = "series" if series else shape
    return Mail(data, _message_id(data), kind), (uid, number, start, end, shape)


def _update(
    rng: random.Random,
    sent: list[tuple[str, int, datetime, datetime, str]],
    sequences: dict[str, int],
    *,
    now: datetime,
) -> Mail:
    uid, number, start, end, shape = rng.choice(sent)
    sequences[uid] += 1
    sequence = sequences[uid]
    moved_start, moved_end = start + timedelta(hours=1), end + timedelta(hours=1)
    return _calendar_mail(
        shape,
        "REQUEST",
        uid=uid,
        number=number,
        start=moved_start,
        end=moved_end,
        sequence=sequence,
        kind="update",
    )


def _cancellation(
    rng: random.Random,
    sent: list[tuple[str, int, datetime, datetime, str]],
    sequences: dict[str, int],
    *,
    now: datetime,
) -> Mail:
    meeting = sent.pop(rng.randrange(len(sent)))
    uid, number, start, end, shape = meeting
    sequences[uid] += 1
    return _calendar_mail(
        shape,
        "CANCEL",
        uid=uid,
        number=number,
        start=start,
        end=end,
        sequence=sequences[uid],
        kind="cancellation",
    )


def _calendar_mail(
    shape: str,
    method: str,
    *,
    uid: str,
    number: int,
    start: datetime,
    end: datetime,
    sequence: int,
    kind: str,
) -> Mail:
    summary = "Sessió actualitzada" if method == "REQUEST" else "Sessió anul·lada"
    message_id = f"<{uid}.{sequence}.{method.lower()}@{shape}.example>"
    if shape == "outlook":
        data = outlook_invitation(
            uid=uid,
            organizer=organizer(number),
            summary=summary,
            description=summary,
            start=start,
            end=end,
            sequence=sequence,
            method=method,
            message_id=message_id,
        )
    else:
        data = google_invitation(
            uid=uid,
            organizer=organizer(number),
            summary=summary,
            description=summary,
            start=_utc(start),
            end=_utc(end),
            sequence=sequence,
            method=method,
            message_id=message_id,
        )
    return Mail(data, message_id, kind)


def _automatic(number: int, index: int, *, tag: str, now: datetime) -> Mail:
    data = auto_reply(sender=organizer(number), subject=f"Convocatòria {tag}-{index}")
    return Mail(data, _message_id(data), "automatic")


def _message_id(data: bytes) -> str:
    for line in data.splitlines():
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise ValueError("a generated message has no Message-ID")
