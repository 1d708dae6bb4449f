"""Sending the queued replies from the outbox table, with retries and backoff.

A reply is written to the outbox in the same transaction as its decision;
this module hands it to the transport afterwards.  Each attempt is recorded
before it is made (``sending``) and its result after (``sent``, ``queued``
again with a later time, or ``failed``), so a restart knows what was tried.

A reply that fails for good is logged as an ERROR and, when ``support`` is
given, the support team is told by a notice queued in the same transaction.
A notice that fails for good is only logged: notices never beget notices.
"""

from __future__ import annotations

import email.policy
import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from mailbot.actions.outbox import Transport
from mailbot.config import Config
from mailbot.errors import DeliveryError
from mailbot.store import OutboxItem, Store

log = logging.getLogger("mailbot.delivery")

FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)

# The outbox ``kind`` of the notice that tells support a reply failed for good.
FAILURE_NOTICE = "delivery-failed"

# ``retry_now`` asks for every queued reply, whatever its next attempt time.
_EVERY_QUEUED = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class Support:
    """Who is told of a reply that failed for good, and as whom the notice goes."""

    addresses: tuple[str, ...]
    sender: str
    sender_name: str
    message_id_domain: str
    language: str = "ca"  # the service's language: the support team's

    @classmethod
    def from_config(cls, config: Config) -> Support:
        service = config.service
        return cls(
            addresses=tuple(service.support),
            sender=service.address,
            sender_name=service.name,
            message_id_domain=config.message_id_domain,
            language=service.language,
        )


def retry_delay(
    attempts: int,
    *,
    first: timedelta = FIRST_RETRY,
    rand: Callable[[], float] = random.random,
) -> timedelta:
    """Exponential backoff with jitter: about 30 s, 1 min, 2 min ... at most 1 h."""
    base = min(first * 2 ** max(attempts - 1, 0), LONGEST_RETRY)
    return timedelta(seconds=base.total_seconds() * (0.5 + rand()))


def deliver_due(
    store: Store,
    transport: Transport,
    *,
    now: Callable[[], datetime],
    max_attempts: int = 8,
    limit: int = 100,
    support: Support | None = None,
    first_retry: timedelta = FIRST_RETRY,
    retry_now: bool = False,
) -> DeliveryReport:
    """Send every reply that is due; one failure never stops the others.

    ``retry_now`` also sends the deferred replies whose next attempt is still
    to come.  Notices to support queued by this call are sent by it too.
    """
    counts = {"sent": 0, "deferred": 0, "failed": 0}
    items = store.due(_EVERY_QUEUED if retry_now else now(), limit=limit)
    while items:
        notices: list[int] = []
        for item in items:
            result, notice = _attempt(
                item,
                store=store,
                transport=transport,
                now=now,
                max_attempts=max_attempts,
                support=support,
                first_retry=first_retry,
            )
            counts[result] += 1
            if notice is not None:
                notices.append(notice)
        items = [item for item in store.due(now(), limit=limit) if item.id in notices]
    return DeliveryReport(**counts)


def _attempt(
    item: OutboxItem,
    *,
    store: Store,
    transport: Transport,
    now: Callable[[], datetime],
    max_attempts: int,
    support: Support | None,
    first_retry: timedelta,
) -> tuple[str, int | None]:
    """Send one item; return what became of it and the id of a notice queued."""
    if store.mark_sending(item.id, now()):
        log.warning(
            "reply %s: the attempt before was cut short, its outcome unknown;"
            " sending it again with the same Message-ID",
            item.message_id,
        )
    try:
        response = transport.send(
            item.data, recipients=item.recipients, message_id=item.message_id
        )
    except DeliveryError as exc:
        attempts = item.attempts + 1
        if not exc.permanent and attempts < max_attempts:
            when = now() + retry_delay(attempts, first=first_retry)
            store.mark_retry(item.id, error=str(exc), when=when)
            log.warning(
                "reply %s deferred (attempt %d, next at %s): %s",
                item.message_id,
                attempts,
                when.strftime("%H:%M:%S"),
                exc,
            )
            return "deferred", None

        notice = None
        with store.transaction():
            store.mark_failed(item.id, error=str(exc))
            if support and support.addresses and item.kind != FAILURE_NOTICE:
                notice = _queue_notice(store, item, str(exc), support, now())
        log.error(
            "%s %s to %s failed for good after %d attempts%s: %s",
            "notice" if item.kind == FAILURE_NOTICE else "reply",
            item.message_id,
            ", ".join(item.recipients),
            attempts,
            "; support told" if notice is not None else "",
            exc,
        )
        return "failed", notice

    store.mark_sent(item.id, response=response, now=now())
    log.debug("reply %s sent: %s", item.message_id, response)
    return "sent", None


def _queue_notice(
    store: Store, item: OutboxItem, answer: str, support: Support, now: datetime
) -> int:
    notice = failure_notice(item, answer=answer, support=support, now=now)
    return store.enqueue(
        decision=item.decision,
        message_id=str(notice["Message-ID"]).strip("<>"),
        kind=FAILURE_NOTICE,
        recipients=list(support.addresses),
        subject=str(notice["Subject"]),
        data=notice.as_bytes(policy=email.policy.SMTP),
        now=now,
    )


# The notice to the support team, in the service's language.
NOTICE_WORDS: dict[str, dict[str, str]] = {
    "ca": {
        "subject": "Resposta no lliurada",
        "lead": "Una resposta del robot de reserves no s'ha pogut lliurar i no es"
        " tornarà a intentar. Poseu-vos en contacte amb els destinataris per un"
        " altre mitjà.",
        "recipients": "Destinataris",
        "subject_label": "Assumpte",
        "message_id": "Message-ID de la resposta",
        "decision": "Decisió",
        "attempts": "Intents",
        "answer": "Resposta del servidor SMTP",
        "tail": "La resposta queda a la taula outbox (id {id}, estat 'failed');"
        " la decisió no canvia.",
    },
    "es": {
        "subject": "Respuesta no entregada",
        "lead": "Una respuesta del robot de reservas no se ha podido entregar y no"
        " se volverá a intentar. Contactad con los destinatarios por otro medio.",
        "recipients": "Destinatarios",
        "subject_label": "Asunto",
        "message_id": "Message-ID de la respuesta",
        "decision": "Decisión",
        "attempts": "Intentos",
        "answer": "Respuesta del servidor SMTP",
        "tail": "La respuesta queda en la tabla outbox (id {id}, estado 'failed');"
        " la decisión no cambia.",
    },
}


def failure_notice(
    item: OutboxItem, *, answer: str, support: Support, now: datetime
) -> EmailMessage:
    """The e-mail that tells support a reply will never reach its recipients."""
    digest = hashlib.sha256(f"{FAILURE_NOTICE}\0{item.message_id}".encode())
    notice = EmailMessage()
    notice["From"] = formataddr((support.sender_name, support.sender))
    notice["To"] = ", ".join(support.addresses)
    words = NOTICE_WORDS.get(support.language, NOTICE_WORDS["ca"])
    notice["Subject"] = _one_line(f"{words['subject']}: {item.subject}")
    notice["Date"] = format_datetime(now.astimezone(UTC))
    notice["Message-ID"] = (
        f"<mailbot.{digest.hexdigest()[:32]}@{support.message_id_domain}>"
    )
    notice["Auto-Submitted"] = "auto-generated"
    notice["X-Mailbot-Notice"] = FAILURE_NOTICE
    notice.set_content(
        "\n".join(
            [
                words["lead"],
                "",
                *_fields(
                    [
                        (words["recipients"], ", ".join(item.recipients)),
                        (words["subject_label"], item.subject),
                        (words["message_id"], f"<{item.message_id}>"),
                        (
                            words["decision"],
                            "" if item.decision is None else str(item.decision),
                        ),
                        (words["attempts"], str(item.attempts + 1)),
                        (words["answer"], _one_line(answer)),
                    ]
                ),
                "",
                words["tail"].format(id=item.id),
            ]
        )
        + "\n"
    )
    return notice


def _fields(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{name}: {value}" for name, value in pairs]


def _one_line(text: str) -> str:
    return " ".join(text.split())
