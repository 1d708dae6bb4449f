"""Backlog throughput against the mailbox's own speed, and peak RSS, in one run."""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import (
    PASSWORD_ENV,
    PYTHON,
    StampedSink,
    append_all,
    mailbot,
    timed,
    write_config,
)
from bench.workload import backlog, entities_csv
from tests.servers import DovecotServer


class BenchmarkError(RuntimeError):
    """A run did not do the whole job; its figures would mean nothing."""


@dataclass(frozen=True, slots=True)
class BacklogRun:
    """One backlog of ``messages`` read by the minimal loop and by mailbot."""

    messages: int
    replies: int
    mailbot_seconds: float
    baseline_seconds: float
    mailbot_rss_kib: int
    baseline_rss_kib: int
    outcomes: dict[str, int]
    mailbot_cpu: float = 0.0  # CPU seconds of the process
    baseline_cpu: float = 0.0

    @property
    def cpu_ratio(self) -> float:
        """The ratio of the two CPU costs per message: robust to other load."""
        return self.baseline_cpu / self.mailbot_cpu if self.mailbot_cpu else 0.0

    @property
    def mailbot_rate(self) -> float:
        return self.messages / self.mailbot_seconds

    @property
    def baseline_rate(self) -> float:
        return self.messages / self.baseline_seconds

    @property
    def ratio(self) -> float:
        return self.mailbot_rate / self.baseline_rate


def run_backlog(
    dovecot: DovecotServer, count: int, *, tag: str, baseline: bool = True
) -> BacklogRun:
    """Append ``count`` messages, time the minimal loop, then ``mailbot run --once``.

    Raises BenchmarkError unless every message has a committed decision, every
    queued reply was accepted by the sink and the inbox is empty afterwards.
    """
    account = dovecot.new_account()
    now = datetime.now(UTC)
    mails = backlog(count, now=now, tag=tag)
    with (
        tempfile.TemporaryDirectory(prefix="mailbot-bench-") as name,
        StampedSink() as sink,
    ):
        folder = Path(name)
        config = write_config(folder, account, sink)
        csv = folder / "entities.csv"
        csv.write_text(entities_csv(), encoding="utf-8")
        imported = mailbot(
            "entities", "import", str(csv), config=config, account=account
        )
        if imported.returncode:
            raise BenchmarkError(f"entities import failed: {imported.stderr}")
        append_all(account, mails, arrived=now - timedelta(hours=1))

        floor_seconds = floor_rss = floor_cpu = 0.0
        if baseline:
            floor = timed(
                [
                    str(PYTHON),
                    "-m",
                    "bench.baseline",
                    account.host,
                    str(account.port),
                    account.username,
                    "INBOX",
                ],
                env={PASSWORD_ENV: account.password, "PYTHONPATH": str(Path.cwd())},
                cwd=folder,
            )
            if floor.returncode or floor.stdout.split()[0] != str(count):
                raise BenchmarkError(f"the minimal loop failed: {floor.stderr}")
            floor_seconds, floor_rss = floor.seconds, floor.max_rss_kib
            floor_cpu = floor.cpu_seconds

        done = mailbot("run", "--once", config=config, account=account)
        if done.returncode:
            raise BenchmarkError(
                f"mailbot run --once exited {done.returncode}: {done.stderr[-2000:]}"
            )

        outcomes, queued = _audit(folder / "mailbot.sqlite3", count)
        received = sink.wait_for(queued, timeout=60)
        if len(received) != queued:
            raise BenchmarkError(
                f"{len(received)} replies reached the sink, {queued} queued"
            )
        left = len(account.messages("INBOX"))
        if left:
            raise BenchmarkError(f"{left} messages are still in the inbox")

    return BacklogRun(
        messages=count,
        replies=queued,
        mailbot_seconds=done.seconds,
        baseline_seconds=floor_seconds,
        mailbot_rss_kib=done.max_rss_kib,
        baseline_rss_kib=int(floor_rss),
        outcomes=outcomes,
        mailbot_cpu=done.cpu_seconds,
        baseline_cpu=floor_cpu,
    )


def _audit(database: Path, count: int) -> tuple[dict[str, int], int]:
    """The outcomes decided, and how many replies were queued (all sent)."""
    with sqlite3.connect(database) as conn:
        outcomes = dict(
            conn.execute("SELECT outcome, COUNT(*) FROM decisions GROUP BY outcome")
        )
        statuses = dict(
            conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status")
        )
    decided = sum(outcomes.values())
    if decided != count:
        raise BenchmarkError(f"{decided} decisions committed for {count} messages")
    queued = sum(statuses.values())
    if statuses.get("sent", 0) != queued:
        raise BenchmarkError(f"replies not all sent: {statuses}")
    return outcomes, queued
