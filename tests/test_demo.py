"""``mailbot demo`` as installed: the whole job on the bundled samples, no server."""

from __future__ import annotations

import re
import sqlite3
from importlib import resources
from pathlib import Path

from tests.helpers import assert_no_traceback, run_mailbot

OUTCOME_LINE = re.compile(r"^  (\S+\.eml) +-> (\S+)$", re.MULTILINE)


def sample_names() -> list[str]:
    samples = resources.files("mailbot") / "samples"
    return sorted(e.name for e in samples.iterdir() if e.name.endswith(".eml"))


def test_demo_prints_one_outcome_line_per_sample(tmp_path: Path) -> None:
    done = run_mailbot("demo", cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    assert_no_traceback(done)
    lines = OUTCOME_LINE.findall(done.stdout)
    assert sample_names() == [name for name, _ in lines]
    outcomes = {outcome for _, outcome in lines}
    assert {"booked", "pending", "cancelled", "automatic", "unregistered"} <= outcomes


def test_demo_shows_a_reply_in_full(tmp_path: Path) -> None:
    done = run_mailbot("demo", cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    reply = done.stdout.split("The first reply, in full:", 1)[1]
    assert "\nFrom: LOCALRETMEET <localretmeet@webfine.com>\n" in reply
    assert "\nX-Mailbot-Outcome: booked\n" in reply
    assert "\nSubject: " in reply
    assert "adv-01" in reply
    assert "Cordialment" in reply


def test_demo_leaves_nothing_in_the_working_directory(tmp_path: Path) -> None:
    done = run_mailbot("demo", cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    assert [] == list(tmp_path.iterdir())


def test_demo_keep_leaves_the_database_and_the_replies(tmp_path: Path) -> None:
    kept = tmp_path / "kept"

    done = run_mailbot("demo", "--keep", str(kept), cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    with sqlite3.connect(kept / "mailbot.sqlite3") as conn:
        decided = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    replies = list((kept / "outbox" / "new").iterdir())
    automatic = sum(1 for name in sample_names() if "automatic" in name)
    assert len(sample_names()) == decided
    assert len(sample_names()) - automatic == len(replies)
