"""Latency: the daemon in IDLE, one invitation appended every 200 ms."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import MAILBOT, PASSWORD_ENV, StampedSink, write_config
from bench.scale import Latencies
from bench.workload import entities_csv, invitations
from tests.servers import DovecotServer, ImapAccount

INTERVAL = 0.2


@dataclass(frozen=True, slots=True)
class LatencyResult:
    """Seconds from APPEND to the reply reaching the SMTP sink, per message."""

    appended: int
    latencies: Latencies  # milliseconds
    stop_seconds: float  # from SIGTERM to the daemon's exit
    stop_code: int


def measure_latency(dovecot: DovecotServer, *, seconds: float) -> LatencyResult:
    """Run ``mailbot run`` and append an invitation every 200 ms for ``seconds``."""
    account = dovecot.new_account()
    now = datetime.now(UTC)
    with (
        tempfile.TemporaryDirectory(prefix="mailbot-bench-") as name,
        StampedSink() as sink,
    ):
        folder = Path(name)
        config = write_config(folder, account, sink)
        env = {"PATH": "/usr/bin:/bin", PASSWORD_ENV: account.password}
        csv = folder / "entities.csv"
        csv.write_text(entities_csv(), encoding="utf-8")
        subprocess.run(
            [str(MAILBOT), "entities", "import", str(csv), "-c", str(config)],
            env=env,
            check=True,
            capture_output=True,
        )
        log = (folder / "daemon.log").open("w")
        daemon = subprocess.Popen(
            [str(MAILBOT), "run", "-c", str(config)],
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            time.sleep(3.0)  # connected, inbox drained, waiting in IDLE
            appended = _append_steadily(account, seconds=seconds, now=now)
            sink.wait_for(len(appended), timeout=60)
        finally:
            stop_started = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            try:
                stop_code = daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                stop_code = daemon.wait()
            stop_seconds = time.monotonic() - stop_started
            log.close()

        arrivals = {
            str(mail.message["In-Reply-To"]).strip(): at for at, mail in sink.arrivals
        }
    latencies = tuple((arrivals[mid] - at) * 1000 for mid, at in appended.items())
    return LatencyResult(len(appended), Latencies(latencies), stop_seconds, stop_code)


def _append_steadily(
    account: ImapAccount, *, seconds: float, now: datetime
) -> dict[str, float]:
    """Append on one connection at a fixed pace; the monotonic time of each APPEND."""
    appended: dict[str, float] = {}
    stream = invitations(now=now, tag="lat")
    started = time.monotonic()
    with account.client() as client:
        for count in range(int(seconds / INTERVAL)):
            time.sleep(max(0.0, started + count * INTERVAL - time.monotonic()))
            mail = next(stream)
            appended[mail.message_id] = time.monotonic()
            client.append("INBOX", mail.data, msg_time=now - timedelta(minutes=1))
    return appended
