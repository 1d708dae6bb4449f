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


def test_long_outlook_message_ids_thread_unencoded() -> None:
    from datetime import UTC, datetime
    from email import message_from_bytes
    from email.policy import default

    from mailbot.actions.reply import ReplyFacts, render_reply
    from mailbot.config import ServiceConfig
    from mailbot.models import Envelope

    incoming = (
        "HE1PR0802MB2283E6B4E1AD4C3A2F0A1C6BB9D20"
        "@HE1PR0802MB2283.eurprd08.prod.outlook.com"
    )
    envelope = Envelope(
        message_id=incoming,
        from_addr="secretaria@ajbcn.example",
        from_name="",
        reply_to="",
        return_path=None,
        to=(),
        cc=(),
        subject="Ple",
        references=(f"older-{incoming}",),
        automatic=None,
        text="",
        calendars=(),
        attachments=(),
    )
    reply = render_reply(
        ReplyFacts(
            decision=Decision(Outcome.QUARANTINED, "unreadable"),
            envelope=envelope,
            invitation=None,
            needs=None,
            entity=None,
            booking_id=None,
        ),
        service=ServiceConfig(address="localretmeet@webfine.com", support=()),
        language="ca",
        message_id="mailbot.1@webfine.com",
        now=datetime(2026, 12, 4, tzinfo=UTC),
    )

    data = reply.as_bytes()
    parsed = message_from_bytes(data, policy=default)

    assert b"=?" not in data.split(b"\r\n\r\n", 1)[0].split(b"Subject:")[0]
    assert f"<{incoming}>" == str(parsed["In-Reply-To"]).strip()
    assert f"<older-{incoming}> <{incoming}>" == " ".join(
        str(parsed["References"]).split()
    )
