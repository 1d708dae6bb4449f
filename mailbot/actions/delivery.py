"""Sending the queued replies from the outbox table, with retries and backoff.

A reply is written to the outbox in the same transaction as its decision;
this module hands it to the transport afterwards.  Each attempt is recorded
before it is made (``sending``) and its result after (``sent``, ``queued``
again with a later time, or ``failed``), so a restart knows what was tried.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbot.actions.outbox import Transport
from mailbot.errors import DeliveryError
from mailbot.store import Store

log = logging.getLogger("mailbot.delivery")

FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0


def retry_delay(
    attempts: int, *, rand: Callable[[], float] = random.random
) -> timedelta:
    """Exponential backoff with jitter: about 30 s, 1 min, 2 min ... at most 1 h."""
    base = min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_RETRY)
    return timedelta(seconds=base.total_seconds() * (0.5 + rand()))


def deliver_due(
    store: Store,
    transport: Transport,
    *,
    now: Callable[[], datetime],
    max_attempts: int = 8,
    limit: int = 100,
) -> DeliveryReport:
    """Send every reply that is due; one failure never stops the others."""
    sent = deferred = failed = 0
    for item in store.due(now(), limit=limit):
        store.mark_sending(item.id, now())
        try:
            response = transport.send(
                item.data, recipients=item.recipients, message_id=item.message_id
            )
        except DeliveryError as exc:
            attempts = item.attempts + 1
            if exc.permanent or attempts >= max_attempts:
                store.mark_failed(item.id, error=str(exc))
                log.error(
                    "reply %s to %s failed for good after %d attempts: %s",
                    item.message_id,
                    ", ".join(item.recipients),
                    attempts,
                    exc,
                )
                failed += 1
            else:
                when = now() + retry_delay(attempts)
                store.mark_retry(item.id, error=str(exc), when=when)
                log.warning(
                    "reply %s deferred (attempt %d): %s", item.message_id, attempts, exc
                )
                deferred += 1
            continue
        store.mark_sent(item.id, response=response, now=now())
        log.debug("reply %s sent: %s", item.message_id, response)
        sent += 1
    return DeliveryReport(sent=sent, deferred=deferred, failed=failed)
