"""Sender authentication: only the border server's Authentication-Results count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailbot.config import Config, parse_config
from mailbot.errors import ConfigError
from mailbot.models import Entity, RawMessage
from mailbot.parsers.authres import (
    AuthResult,
    aligned,
    check_authentication,
    parse_header,
    trusted_headers,
)
from mailbot.pipeline import handle
from mailbot.store import Store
from tests.mailgen import SERVICE, outlook_invitation

NOW = datetime(2026, 12, 4, 10, tzinfo=UTC)
BORDER = "mx.localret.example"
BARCELONA = "secretaria@ajbcn.example"
RECEIVED = (
    "Received: from mail.ajbcn.example (mail.ajbcn.example [192.0.2.7])\r\n"
    f"\tby {BORDER} with ESMTPS; Fri, 4 Dec 2026 10:00:00 +0000\r\n"
)


def ar(text: str) -> str:
    return f"Authentication-Results: {text}\r\n"


def invitation(*, above: str = "", below: str = "", sender: str = BARCELONA) -> bytes:
    """An Outlook invitation with ``above`` prepended and ``below`` as the
    first headers the sender wrote; the border's Received line in between."""
    start = datetime(2026, 12, 15, 10)
    data = outlook_invitation(
        uid="spoof-1@ajbcn.example",
        organizer=sender,
        summary="Ple ordinari",
        description="Ple ordinari. Retransmissió al canal propi.",
        start=start,
        end=start + timedelta(hours=2),
        sent=NOW - timedelta(days=1),
    )
    return (above + RECEIVED + below).encode() + data


def verdict(data: bytes, require: str, sender: str = BARCELONA) -> bool:
    return check_authentication(
        data, from_addr=sender, require=require, authserv_id=BORDER
    ).passed


# -- reading the header -------------------------------------------------------


def test_header_gives_authserv_id_methods_results_and_properties() -> None:
    header = parse_header(
        " MX.Localret.example 1; dkim=pass (good signature)"
        ' header.d=ajbcn.example header.s="sel 1";\r\n\tspf=fail'
        " smtp.mailfrom=x@y.example; dmarc=pass header.from=ajbcn.example"
    )

    assert header is not None
    assert BORDER == header.authserv_id
    assert (
        AuthResult(
            "dkim", "pass", (("header.d", "ajbcn.example"), ("header.s", "sel 1"))
        ),
        AuthResult("spf", "fail", (("smtp.mailfrom", "x@y.example"),)),
        AuthResult("dmarc", "pass", (("header.from", "ajbcn.example"),)),
    ) == header.results


def test_header_with_no_results_says_none() -> None:
    header = parse_header(f"{BORDER}; none")

    assert header is not None
    assert () == header.results


def test_comment_that_looks_like_a_result_is_not_one() -> None:
    header = parse_header(f"{BORDER}; dkim=fail (dkim=pass header.d=ajbcn.example)")

    assert header is not None
    assert (AuthResult("dkim", "fail"),) == header.results


def test_trusted_headers_are_the_topmost_run_with_the_border_id() -> None:
    lines = [
        "Authentication-Results: internal.example; dkim=pass",
        f"Authentication-Results: {BORDER}; dmarc=pass",
        f"Authentication-Results: {BORDER}; dkim=fail",
        "Received: from somewhere",
        f"Authentication-Results: {BORDER}; dkim=pass header.d=ajbcn.example",
    ]

    trusted = trusted_headers(lines, authserv_id=BORDER)

    assert [("dmarc", "pass"), ("dkim", "fail")] == [
        (r.method, r.result) for h in trusted for r in h.results
    ]


@pytest.mark.parametrize(
    ("signer", "domain", "expected"),
    [
        ("ajbcn.example", "ajbcn.example", True),
        ("ajbcn.example", "mail.ajbcn.example", True),
        ("mail.ajbcn.example", "ajbcn.example", True),
        ("AJBCN.example.", "ajbcn.example", True),
        ("other.example", "ajbcn.example", False),
        ("xajbcn.example", "ajbcn.example", False),
        ("example", "ajbcn.example", False),
        ("", "ajbcn.example", False),
    ],
)
def test_relaxed_alignment(signer: str, domain: str, expected: bool) -> None:
    assert expected == aligned(signer, domain)


# -- the policy against forged headers ----------------------------------------


def test_dkim_pass_from_the_border_with_aligned_domain_passes() -> None:
    data = invitation(above=ar(f"{BORDER}; dkim=pass header.d=ajbcn.example"))

    assert verdict(data, "dkim")


def test_pass_from_another_authserv_id_is_ignored() -> None:
    data = invitation(above=ar("mx.evil.example; dkim=pass header.d=ajbcn.example"))

    assert not verdict(data, "dkim")


def test_forged_border_header_below_the_real_one_is_ignored() -> None:
    data = invitation(
        above=ar(f"{BORDER}; dkim=none"),
        below=ar(f"{BORDER}; dkim=pass header.d=ajbcn.example; dmarc=pass"),
    )

    assert (False, False) == (verdict(data, "dkim"), verdict(data, "dmarc"))


def test_dkim_pass_with_unaligned_signing_domain_fails() -> None:
    data = invitation(above=ar(f"{BORDER}; dkim=pass header.d=mailer.example"))

    assert not verdict(data, "dkim")


def test_dkim_pass_for_one_of_two_signatures_aligned_passes() -> None:
    data = invitation(
        above=ar(
            f"{BORDER}; dkim=pass header.d=mailer.example;"
            " dkim=pass header.i=@ajbcn.example"
        )
    )

    assert verdict(data, "dkim")


def test_dkim_fail_with_aligned_domain_fails() -> None:
    data = invitation(above=ar(f"{BORDER}; dkim=fail header.d=ajbcn.example"))

    assert not verdict(data, "dkim")


def test_dmarc_pass_passes() -> None:
    data = invitation(above=ar(f"{BORDER}; dmarc=pass header.from=ajbcn.example"))

    assert verdict(data, "dmarc")


def test_dmarc_pass_for_another_from_domain_fails() -> None:
    data = invitation(above=ar(f"{BORDER}; dmarc=pass header.from=evil.example"))

    assert not verdict(data, "dmarc")


def test_dmarc_policy_is_not_met_by_dkim_alone() -> None:
    data = invitation(above=ar(f"{BORDER}; dkim=pass header.d=ajbcn.example"))

    assert not verdict(data, "dmarc")


def test_missing_header_fails() -> None:
    data = invitation()

    assert (False, False) == (verdict(data, "dkim"), verdict(data, "dmarc"))


def test_policy_none_accepts_everything() -> None:
    data = invitation(below=ar(f"{BORDER}; dkim=fail; dmarc=fail"))

    assert verdict(data, "none")


def test_results_split_over_two_adjacent_border_headers_both_count() -> None:
    data = invitation(
        above=ar(f"{BORDER}; dmarc=fail header.from=ajbcn.example")
        + ar(f"{BORDER}; dkim=pass header.d=ajbcn.example")
    )

    assert (True, False) == (verdict(data, "dkim"), verdict(data, "dmarc"))


# -- configuration ------------------------------------------------------------


def settings(security: dict[str, Any] | None, folder: Path) -> Config:
    document: dict[str, Any] = {
        "service": {"address": SERVICE, "support": ["suport@localret.example"]},
        "licenses": {"pool": ["adv-01"]},
        "maildir": {"path": "inbox"},
        "outbox": {"maildir": "outbox"},
        "database": {"path": "mailbot.sqlite3"},
    }
    if security is not None:
        document["security"] = security
    return parse_config(document, path=folder / "mailbot.toml")


def test_security_defaults_to_no_policy(tmp_path: Path) -> None:
    config = settings(None, tmp_path)

    assert ("none", "") == (
        config.security.require_authentication,
        config.security.authserv_id,
    )


def test_policy_without_authserv_id_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings({"require_authentication": "dkim"}, tmp_path)

    assert "security.authserv_id" == caught.value.key


def test_unknown_policy_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings({"require_authentication": "spf", "authserv_id": BORDER}, tmp_path)

    assert "security.require_authentication" == caught.value.key


def test_authserv_id_with_a_space_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings({"require_authentication": "dkim", "authserv_id": "a b"}, tmp_path)

    assert "security.authserv_id" == caught.value.key


def test_example_configuration_documents_every_security_key() -> None:
    text = (Path(__file__).parent.parent / "config.example.toml").read_text()

    assert "[security]" in text
    assert "require_authentication = " in text
    assert "authserv_id = " in text


# -- through the pipeline -----------------------------------------------------


def decide(folder: Path, data: bytes, security: dict[str, Any] | None) -> Any:
    config = settings(security, folder)
    store = Store(config.database)
    store.save_entity(
        Entity("P0801900B", "Ajuntament de Barcelona", BARCELONA), source="t", now=NOW
    )
    raw = RawMessage("INBOX", 1, 1, data, NOW - timedelta(days=1), len(data))
    handled = handle(raw, config=config, store=store, now=NOW)
    row = store.conn.execute(
        "SELECT d.outcome, d.reason, d.filed_to,"
        " (SELECT COUNT(*) FROM outbox) AS queued,"
        " (SELECT COUNT(*) FROM bookings) AS bookings FROM decisions d"
    ).fetchone()
    store.close()
    return handled.folder.value, tuple(row)


def test_forged_pass_is_filed_for_people_unanswered_and_unbooked(
    tmp_path: Path,
) -> None:
    data = invitation(
        above=ar(f"{BORDER}; dkim=fail header.d=ajbcn.example"),
        below=ar(f"{BORDER}; dkim=pass header.d=ajbcn.example"),
    )

    folder, row = decide(
        tmp_path, data, {"require_authentication": "dkim", "authserv_id": BORDER}
    )

    assert ("people", ("people", "unauthenticated", "people", 0, 0)) == (folder, row)


def test_authenticated_invitation_is_booked(tmp_path: Path) -> None:
    data = invitation(above=ar(f"{BORDER}; dmarc=pass header.from=ajbcn.example"))

    folder, row = decide(
        tmp_path, data, {"require_authentication": "dmarc", "authserv_id": BORDER}
    )

    assert ("processed", ("booked", "fits", "processed", 1, 1)) == (folder, row)


def test_without_policy_an_unauthenticated_invitation_is_booked(
    tmp_path: Path,
) -> None:
    data = invitation()

    folder, row = decide(tmp_path, data, None)

    assert ("processed", ("booked", "fits", "processed", 1, 1)) == (folder, row)


def test_unauthenticated_bounce_stays_automatic(tmp_path: Path) -> None:
    data = invitation(below="Auto-Submitted: auto-replied\r\n")

    folder, row = decide(
        tmp_path, data, {"require_authentication": "dkim", "authserv_id": BORDER}
    )

    assert ("processed", "automatic", 0) == (folder, row[0], row[3])
