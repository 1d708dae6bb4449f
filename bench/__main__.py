"""``python -m bench``: run every measure and write bench/RESULTS.md."""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.backlog import BacklogRun, run_backlog
from bench.latency import LatencyResult, measure_latency
from bench.scale import ScaleResult, measure_scale
from tests.servers import DovecotServer

RESULTS = Path(__file__).parent / "RESULTS.md"


@dataclass(frozen=True, slots=True)
class Plan:
    backlog: int
    runs: int
    memory: tuple[int, int]
    latency_seconds: float
    bookings: int
    samples: int


FULL = Plan(2000, 3, (1000, 10000), 60.0, 100_000, 200)
QUICK = Plan(300, 3, (200, 2000), 15.0, 10_000, 50)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller run (~2 min)")
    parser.add_argument("-n", type=int, help="messages in each backlog run")
    parser.add_argument("--runs", type=int, help="backlog runs to take the median of")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.n or args.runs:
        plan = Plan(
            args.n or plan.backlog,
            args.runs or plan.runs,
            plan.memory,
            plan.latency_seconds,
            plan.bookings,
            plan.samples,
        )

    # Stopped by SIGTERM, still stop Dovecot and remove the temporary files.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    started = time.monotonic()
    load_before = _load()
    with DovecotServer() as dovecot:
        runs = []
        for number in range(plan.runs):
            runs.append(run_backlog(dovecot, plan.backlog, tag=f"r{number}"))
            _say(f"backlog run {number + 1}: {_rates(runs[-1])}")
        memory = []
        for count in plan.memory:
            memory.append(run_backlog(dovecot, count, tag=f"m{count}", baseline=False))
            _say(f"memory N={count}: {memory[-1].mailbot_rss_kib} KiB")
        latency = measure_latency(dovecot, seconds=plan.latency_seconds)
        _say(f"latency: median {latency.latencies.median:.0f} ms")
    with tempfile.TemporaryDirectory(prefix="mailbot-bench-") as folder:
        scale = measure_scale(
            Path(folder), bookings=plan.bookings, samples=plan.samples
        )
    _say(f"scale: capacity check p99 {scale.capacity_check.p99:.2f} ms")

    command = "python -m bench" + (" --quick" if args.quick else "")
    if args.n or args.runs:
        command += f" -n {plan.backlog} --runs {plan.runs}"
    text = report(
        plan,
        runs=runs,
        memory=memory,
        latency=latency,
        scale=scale,
        command=command,
        seconds=time.monotonic() - started,
        load=(load_before, _load()),
    )
    args.out.write_text(text, encoding="utf-8")
    _say(f"wrote {args.out}")
    return 0


def _load() -> str:
    """The 1-minute load average: other work on a shared machine skews figures."""
    return Path("/proc/loadavg").read_text().split()[0]


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _rates(run: BacklogRun) -> str:
    return (
        f"mailbot {run.mailbot_rate:.0f} msg/s, minimal loop"
        f" {run.baseline_rate:.0f} msg/s, ratio {run.ratio:.2f}"
        f" (CPU time ratio {run.cpu_ratio:.2f})"
    )


def machine() -> str:
    """CPU, cores, memory, OS, Python, SQLite and Dovecot of this machine."""
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = ""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            memory = f"{int(line.split()[1]) // 1024 // 1024} GiB"
    import sqlite3

    dovecot = subprocess.run(
        ["/usr/sbin/dovecot", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory} RAM; {platform.platform()};"
        f" Python {platform.python_version()}, SQLite {sqlite3.sqlite_version},"
        f" Dovecot {dovecot}"
    )


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def report(
    plan: Plan,
    *,
    runs: list[BacklogRun],
    memory: list[BacklogRun],
    latency: LatencyResult,
    scale: ScaleResult,
    command: str,
    seconds: float,
    load: tuple[str, str],
) -> str:
    """RESULTS.md: the command, the machine, the figures and the targets."""
    ratio = statistics.median(run.ratio for run in runs)
    rate = statistics.median(run.mailbot_rate for run in runs)
    floor = statistics.median(run.baseline_rate for run in runs)
    rss = statistics.median(run.mailbot_rss_kib for run in runs)
    cpu_ratio = statistics.median(run.cpu_ratio for run in runs)
    small, large = memory
    growth = large.mailbot_rss_kib / small.mailbot_rss_kib - 1
    lat = latency.latencies
    check = scale.capacity_check
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(runs[0].outcomes.items()))
    lines = [
        "# mailbot benchmark results",
        "",
        f"Command: `{command}` (from the checkout, as root or a user that can run",
        "Dovecot), on " + datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC") + ".",
        f"Machine: {machine()}.",
        f"The whole run took {seconds / 60:.1f} minutes; the load average was"
        f" {load[0]} at its start and {load[1]} at its end.",
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "| --- | --- | --- |",
        f"| throughput at least 30% of the mailbox's own speed | {ratio:.0%}"
        f" | {_verdict(ratio >= 0.30)} |",
        f"| latency with IDLE: median under 1 s | {lat.median / 1000:.2f} s"
        f" | {_verdict(lat.median < 1000)} |",
        f"| latency with IDLE: p99 under 3 s | {lat.p99 / 1000:.2f} s"
        f" | {_verdict(lat.p99 < 3000)} |",
        f"| capacity check p99 under 5 ms at {scale.bookings:,} bookings"
        f" | {check.p99:.2f} ms | {_verdict(check.p99 < 5)} |",
        f"| peak RSS at N = {large.messages:,} within 20% of N = {small.messages:,}"
        f" | {growth:+.0%} | {_verdict(growth <= 0.20)} |",
        "",
        "Where a target is missed, the Findings section of bench/README.md says",
        "what stands in the way, with the profile behind it.",
        "",
        f"## 1-2. Backlog throughput (N = {plan.backlog:,},"
        f" median of {len(runs)} runs)",
        "",
        "Each run: a new Dovecot account, the entity directory imported, N",
        "messages appended (Outlook and Google invitations, weekly series,",
        "updates, cancellations, automatic replies), then the minimal loop",
        "(`bench/baseline.py`: FETCH in batches of 50, `email` and icalendar",
        "parse, nothing else) and `mailbot run --once`, both timed as whole",
        "processes. A run counts only if every message has a committed decision,",
        "every queued reply reached the aiosmtpd sink and the inbox is empty.",
        f"Outcomes of the first run: {outcomes}.",
        "",
        "The wall-clock ratio is the target; the CPU-time ratio (CPU seconds",
        "of the minimal loop over those of mailbot, from `/usr/bin/time`) is",
        "the same comparison made robust to other work on a shared machine.",
        "",
        "| run | mailbot msg/s | minimal loop msg/s | ratio | CPU-time ratio"
        " | replies | mailbot peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for number, run in enumerate(runs, start=1):
        lines.append(
            f"| {number} | {run.mailbot_rate:.1f} | {run.baseline_rate:.1f}"
            f" | {run.ratio:.3f} | {run.cpu_ratio:.3f} | {run.replies}"
            f" | {run.mailbot_rss_kib / 1024:.1f} MiB |"
        )
    lines += [
        f"| median | {rate:.1f} | {floor:.1f} | {ratio:.3f} | {cpu_ratio:.3f} |"
        f" | {rss / 1024:.1f} MiB |",
        "",
        "## 3. Latency with IDLE",
        "",
        f"`mailbot run` waiting in IDLE; {latency.appended} invitations appended,",
        f"one every 200 ms for {plan.latency_seconds:.0f} s, on one IMAP connection.",
        "Time from the APPEND command to the reply's DATA at the sink:",
        f"median {lat.median:.0f} ms, p99 {lat.p99:.0f} ms, worst"
        f" {max(lat.samples):.0f} ms. SIGTERM then stopped the daemon in"
        f" {latency.stop_seconds:.2f} s with exit code {latency.stop_code}.",
        "",
        f"## 4. Scale ({scale.bookings:,} bookings)",
        "",
        f"A generated year: {scale.bookings:,} bookings of 1,000 entities on working",
        f"days of the coming 12 months ({scale.held:,} holding one of 150 licenses),",
        "each with its message, decision and sent reply rows, built in"
        f" {scale.build_seconds:.0f} s. {plan.samples} samples each, in process:",
        "",
        "| operation | median | p99 |",
        "| --- | --- | --- |",
        f"| one capacity check (`Store.holdings` + `rules.decide_request`, as the"
        f" pipeline calls them) | {check.median:.2f} ms | {check.p99:.2f} ms |",
        f"| of which `Store.holdings` for the hold window alone"
        f" | {scale.holdings_only.median:.2f} ms | {scale.holdings_only.p99:.2f} ms |",
        f"| one booking (`pipeline.handle`: parse, decide, commit, reply queued)"
        f" | {scale.booking.median:.2f} ms | {scale.booking.p99:.2f} ms |",
        "",
        "## 5. Memory",
        "",
        "Peak RSS of the `mailbot run --once` process (`/usr/bin/time -v`):",
        f"N = {small.messages:,}: {small.mailbot_rss_kib / 1024:.1f} MiB"
        f" ({small.mailbot_rate:.0f} msg/s);"
        f" N = {large.messages:,}: {large.mailbot_rss_kib / 1024:.1f} MiB"
        f" ({large.mailbot_rate:.0f} msg/s).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
