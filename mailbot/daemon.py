"""The loop: connect, drain the inbox, deliver replies, wait (IDLE or poll), repeat.

Order for each batch of messages: decide and commit each one, deliver the
queued replies, then file the batch out of the inbox.  A message therefore
leaves the inbox only after its decision and its reply are committed; a
reply that cannot be delivered yet stays in the outbox and is retried.

Outages: a mailbox failure (server down, session ended, a connection gone
silent) closes the connection and the daemon connects again after an
exponential backoff with jitter, delivering due replies meanwhile.  A wait
for new mail ends in time for the next deferred reply, so retries happen
even when no mail arrives.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType

from mailbot.actions.delivery import FIRST_RETRY, Support, deliver_due
from mailbot.actions.outbox import Transport, open_transport
from mailbot.config import Config, ImapConfig, SmtpConfig
from mailbot.errors import MailboxError
from mailbot.mailbox import Mailbox, open_mailbox
from mailbot.models import Folder, RawMessage
from mailbot.pipeline import Handled, handle
from mailbot.store import Store

log = logging.getLogger("mailbot.daemon")

Clock = Callable[[], datetime]

# Reconnection backoff: about 2 s after the first failure, doubling up to
# about 5 minutes, each delay scaled by a random factor in [0.5, 1.5).
FIRST_RECONNECT_SECONDS = 2.0
LONGEST_RECONNECT_SECONDS = 300.0

# A session that lasted this long was a working one: the backoff starts over.
STABLE_SESSION_SECONDS = 60.0

# The shortest wait between two rounds, so that nothing can spin.
SHORTEST_WAIT_SECONDS = 1.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class StopRequested(Exception):
    """Raised inside a wait when SIGTERM or SIGINT arrives."""


@dataclass(slots=True)
class Stopper:
    """Set by SIGTERM/SIGINT: the current message is finished, then we exit."""

    requested: bool = False
    waiting: bool = False

    def request(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the current message", signum)
        self.requested = True
        if self.waiting:
            raise StopRequested

    @contextmanager
    def installed(self) -> Iterator[None]:
        old = {
            sig: signal.signal(sig, self.request)
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)


@dataclass(frozen=True, slots=True)
class RunReport:
    handled: int
    outcomes: dict[str, int]


class Daemon:
    """Drains the mailbox through the pipeline; owns reconnection and backoff."""

    def __init__(
        self,
        config: Config,
        *,
        store: Store,
        clock: Clock = utc_now,
        open_box: Callable[[], Mailbox] | None = None,
        open_sender: Callable[[], Transport] | None = None,
        stopper: Stopper | None = None,
        on_handled: Callable[[Handled], None] | None = None,
        first_retry: timedelta = FIRST_RETRY,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.open_box = open_box or (lambda: open_mailbox(config.mailbox))
        self.open_sender = open_sender or (lambda: open_transport(config.transport))
        self.stopper = stopper or Stopper()
        self.on_handled = on_handled
        self.first_retry = first_retry
        self.support = Support.from_config(config)
        self.outcomes: dict[str, int] = defaultdict(int)
        self.handled = 0
        self._uidvalidities: dict[str, int] = {}

    @property
    def max_attempts(self) -> int:
        transport = self.config.transport
        return transport.max_attempts if isinstance(transport, SmtpConfig) else 1

    @property
    def batch_size(self) -> int:
        return self.config.mailbox.batch_size

    def run_once(self) -> RunReport:
        """Drain the inbox, deliver what is due, and return; errors propagate.

        Replies deferred by an earlier run are tried first, whatever their
        backoff says: an operator or a timer asked for this run.  Replies the
        transport cannot take stay queued for the next run.
        """
        self._deliver(retry_now=True)
        with self.open_box() as box:
            self._drain(box)
        self._deliver()
        return RunReport(self.handled, dict(self.outcomes))

    def run_forever(self) -> RunReport:
        """Serve until stopped; reconnect with backoff after mailbox failures."""
        failures = 0
        while not self.stopper.requested:
            opened = time.monotonic()
            try:
                with self.open_box() as box:
                    if failures:
                        log.info("mailbox: connected again after %d failures", failures)
                    self._serve(box)
            except MailboxError as exc:
                if time.monotonic() - opened > STABLE_SESSION_SECONDS:
                    failures = 0
                failures += 1
                delay = reconnect_delay(failures)
                log.warning("mailbox: %s; reconnecting in %.1f s", exc, delay)
                self._deliver()
                self._sleep(delay)
            except StopRequested:
                break
        return RunReport(self.handled, dict(self.outcomes))

    def _serve(self, box: Mailbox) -> None:
        while not self.stopper.requested:
            self._drain(box)
            self._deliver()
            if self.stopper.requested:
                return
            self.stopper.waiting = True
            try:
                box.wait(self._wait_seconds())
            finally:
                self.stopper.waiting = False

    def _wait_seconds(self) -> float:
        """Until the next IDLE renewal or poll, or the next deferred reply."""
        mailbox = self.config.mailbox
        if isinstance(mailbox, ImapConfig):
            seconds = float(mailbox.idle_seconds)
        else:
            seconds = float(mailbox.poll_seconds)
        due = self.store.next_due()
        if due is not None:
            seconds = min(seconds, (due - self.clock()).total_seconds())
        return max(seconds, SHORTEST_WAIT_SECONDS)

    def _drain(self, box: Mailbox) -> None:
        while not self.stopper.requested:
            uids = box.pending_uids()
            if not uids:
                return
            batch = uids[: self.batch_size]
            filed: dict[Folder, list[int]] = defaultdict(list)
            for raw in box.fetch(batch):
                self._check_uidvalidity(raw)
                result = handle(
                    raw, config=self.config, store=self.store, now=self.clock()
                )
                filed[result.folder].append(result.uid)
                if not result.repeated:
                    self.handled += 1
                    self.outcomes[result.outcome] += 1
                if self.on_handled is not None:
                    self.on_handled(result)
                if self.stopper.requested:
                    break
            self._deliver()
            for folder, folder_uids in filed.items():
                box.file(folder_uids, folder)
            if not filed:
                return  # the server listed UIDs it would not give us

    def _check_uidvalidity(self, raw: RawMessage) -> None:
        """Warn once when a folder's UIDVALIDITY is not the one last recorded.

        The old UIDs then mean nothing; the pipeline still knows each message
        by its Message-ID, so copies of decided messages are not decided again.
        """
        known = self._uidvalidities.get(raw.folder)
        if known is None:
            known = self.store.last_uidvalidity(raw.folder)
        if known is not None and known != raw.uidvalidity:
            log.warning(
                "mailbox: UIDVALIDITY of %s changed from %s to %s; messages already"
                " decided are recognised by their Message-ID",
                raw.folder,
                known,
                raw.uidvalidity,
            )
        self._uidvalidities[raw.folder] = raw.uidvalidity

    def _deliver(self, *, retry_now: bool = False) -> None:
        due = self.store.next_due()
        if due is None or (due > self.clock() and not retry_now):
            return
        transport = self.open_sender()
        try:
            report = deliver_due(
                self.store,
                transport,
                now=self.clock,
                max_attempts=self.max_attempts,
                support=self.support,
                first_retry=self.first_retry,
                retry_now=retry_now,
            )
        finally:
            transport.close()
        if report.deferred or report.failed:
            log.warning(
                "replies: %d sent, %d deferred, %d failed",
                report.sent,
                report.deferred,
                report.failed,
            )

    def _sleep(self, seconds: float) -> None:
        if self.stopper.requested:
            return
        self.stopper.waiting = True
        try:
            time.sleep(seconds)
        finally:
            self.stopper.waiting = False


def reconnect_delay(
    failures: int, *, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after ``failures`` failures in a row: doubling, jittered."""
    base = FIRST_RECONNECT_SECONDS * 2.0 ** max(min(failures, 16) - 1, 0)
    return min(base, LONGEST_RECONNECT_SECONDS) * (0.5 + rand())
