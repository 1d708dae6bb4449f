"""Which reasons a reply explains: the deciding one, then the others that count."""

from __future__ import annotations

from mailbot.actions.reply import reason_codes
from mailbot.models import Check, Decision, Outcome
from mailbot.rules import NO_TIME


def test_deciding_reason_comes_first_and_is_not_repeated() -> None:
    decision = Decision(
        Outcome.PENDING,
        "late-notice",
        checks=(
            Check("registered", True),
            Check("notice", False, "arrived 10 h before"),
            Check("capacity", False, "no license free"),
        ),
    )

    assert ("late-notice", "pool-full") == reason_codes(decision, None)


def test_checks_that_could_not_be_evaluated_are_not_reasons() -> None:
    decision = Decision(
        Outcome.NEEDS_INFO,
        "all-day",
        checks=(
            Check("duration", False, "all-day"),
            Check("future", False, NO_TIME),
            Check("notice", False, NO_TIME),
            Check("capacity", False, NO_TIME),
        ),
    )

    assert ("all-day",) == reason_codes(decision, None)


def test_aliases_name_one_reason_once() -> None:
    decision = Decision(
        Outcome.UNREGISTERED,
        "not-registered",
        checks=(Check("registered", False, "no entity"),),
    )

    assert ("unregistered",) == reason_codes(decision, None)


def test_a_code_without_a_sentence_is_told_only_when_it_decides() -> None:
    decision = Decision(
        Outcome.PENDING,
        "martian-invasion",
        checks=(Check("first", False), Check("odd-rule", False, "odd")),
    )

    assert ("martian-invasion",) == reason_codes(decision, None)
