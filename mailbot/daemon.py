"""The loop: connect, drain the inbox, deliver replies, wait (IDLE or poll), repeat.

Order for each batch of messages: decide and commit each one, deliver the
queued replies, then file the batch out of the inbox.  A message therefore
leaves the inbox only after its decision and its reply are committed; a
reply that cannot be delivered yet stays in the outbox and is retried.
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
from datetime import UTC, datetime
from types import FrameType

from mailbot.actions.delivery import deliver_due
from mailbot.actions.outbox import Transport, open_transport
from mailbot.config import Config, ImapConfig, SmtpConfig
from mailbot.errors import MailboxError
from mailbot.mailbox import Mailbox, open_mailbox
from mailbot.models import Folder
from mailbot.pipeline import Handled, handle
from mailbot.store import Store

log = logging.getLogger("mailbot.daemon")

Clock = Callable[[], datetime]


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
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.open_box = open_box or (lambda: open_mailbox(config.mailbox))
        self.open_sender = open_sender or (lambda: open_transport(config.transport))
        self.stopper = stopper or Stopper()
        self.on_handled = on_handled
        self.outcomes: dict[str, int] = defaultdict(int)
        self.handled = 0

    @property
    def max_attempts(self) -> int:
        transport = self.config.transport
        return transport.max_attempts if isinstance(transport, SmtpConfig) else 1

    @property
    def batch_size(self) -> int:
        return self.config.mailbox.batch_size

    def run_once(self) -> RunReport:
        """Drain the inbox, deliver what is due, and return; errors propagate."""
        with self.open_box() as box:
            self._drain(box)
        self._deliver()
        return RunReport(self.handled, dict(self.outcomes))

    def run_forever(self) -> RunReport:
        """Serve until stopped; reconnect with backoff after mailbox failures."""
        failures = 0
        while not self.stopper.requested:
            try:
                with self.open_box() as box:
                    failures = 0
                    self._serve(box)
            except MailboxError as exc:
                failures += 1
                delay = min(2.0 ** min(failures, 8), 300.0) * (0.5 + random.random())
                log.warning("mailbox: %s; reconnecting in %.0f s", exc, delay)
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
        mailbox = self.config.mailbox
        if isinstance(mailbox, ImapConfig):
            return float(mailbox.idle_seconds)
        return float(mailbox.poll_seconds)

    def _drain(self, box: Mailbox) -> None:
        while not self.stopper.requested:
            uids = box.pending_uids()
            if not uids:
                return
            batch = uids[: self.batch_size]
            filed: dict[Folder, list[int]] = defaultdict(list)
            for raw in box.fetch(batch):
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

    def _deliver(self) -> None:
        if not self.store.due(self.clock(), limit=1):
            return
        transport = self.open_sender()
        try:
            report = deliver_due(
                self.store, transport, now=self.clock, max_attempts=self.max_attempts
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
        self.stopper.waiting = True
        try:
            time.sleep(seconds)
        finally:
            self.stopper.waiting = False
