"""Registration over IMAP: a request arrives, support confirms it, the entity books."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from tests.helpers import (
    PASSWORD_ENV,
    SUPPORT,
    assert_no_traceback,
    run_mailbot,
    sink_config,
)
from tests.mailgen import outlook_invitation
from tests.servers import ImapAccount, SmtpSink

MADRID = ZoneInfo("Europe/Madrid")
NIF = "P1708500B"
ADDRESS = "secretaria@girona-demo.example"

REQUEST = f"""\
From: Secretaria <{ADDRESS}>
To: localretmeet@webfine.com
Cc: localretmeet@localret.cat
Subject: Sol·licitud d'alta d'usuari LOCALRETMEET
Date: Thu, 3 Dec 2026 09:12:00 +0100
Message-ID: <alta-girona-demo@girona-demo.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Bon dia,

Us demanem l'alta de l'usuari de l'Ajuntament al servei LOCALRETMEET.

Nom de l'ens: Ajuntament de Girona Demo
NIF: {NIF}
Persona de contacte: Marta Puig
Càrrec: Secretària municipal
Telèfon: 972 419 000
Correu electrònic del compte Zoom: {ADDRESS}
Canal de YouTube propi: no
Hem signat l'acord d'adhesió per a l'ús del canal del consorci: sí

Cordialment,

Marta Puig
""".replace("\n", "\r\n").encode("utf-8")

pytestmark = pytest.mark.integration


def test_registration_confirmed_from_the_command_line_lets_the_entity_book(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = sink_config(tmp_path, imap_account, smtp_sink)
    env = {PASSWORD_ENV: imap_account.password}

    def mailbot(*args: str) -> subprocess.CompletedProcess[str]:
        done = run_mailbot(*args, "-c", str(config), cwd=tmp_path, env=env)
        assert_no_traceback(done)
        assert 0 == done.returncode, done.stderr
        return done

    def deliver(data: bytes) -> EmailMessage:
        before = len(smtp_sink.received)
        imap_account.append("INBOX", data, arrived=datetime.now(UTC))
        mailbot("run", "--once")
        assert before + 1 == len(smtp_sink.received)
        return smtp_sink.received[-1].message

    day = (datetime.now(MADRID) + timedelta(days=7)).date()

    def invitation(uid: str, hour: int) -> bytes:
        return outlook_invitation(
            uid=uid,
            organizer=ADDRESS,
            summary="Ple ordinari",
            description="Ple ordinari, retransmès pel canal del consorci.",
            start=datetime(day.year, day.month, day.day, hour),
            end=datetime(day.year, day.month, day.day, hour + 2),
        )

    acknowledged = deliver(REQUEST)
    assert "registration-pending" == acknowledged["X-Mailbot-Outcome"]
    assert SUPPORT in [a.addr_spec for a in acknowledged["Cc"].addresses]
    db = sqlite_utils.Database(tmp_path / "mailbot.sqlite3")
    assert "pending" == db["entities"].get(NIF)["status"]

    early = deliver(invitation("before-confirmation", 10))
    assert "pending" == early["X-Mailbot-Outcome"]

    confirmed = mailbot("entities", "confirm", NIF)
    assert NIF in confirmed.stdout
    notice = smtp_sink.received[-1].message
    assert "registration-confirmed" == notice["X-Mailbot-Outcome"]
    assert ADDRESS == notice["To"].addresses[0].addr_spec
    assert "active" == db["entities"].get(NIF)["status"]
    sources = [
        row["source"] for row in db["entity_changes"].rows_where("nif = ?", [NIF])
    ]
    assert any(s.startswith("registration message") for s in sources)
    assert any(s.startswith("confirmed by") for s in sources)

    booked = deliver(invitation("after-confirmation", 17))
    assert "booked" == booked["X-Mailbot-Outcome"]


def test_same_request_forwarded_again_is_one_request(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = sink_config(tmp_path, imap_account, smtp_sink)
    env = {PASSWORD_ENV: imap_account.password}
    again = REQUEST.replace(
        b"Message-ID: <alta-girona-demo@girona-demo.example>",
        b"Message-ID: <alta-girona-demo-2@girona-demo.example>",
    )
    imap_account.append("INBOX", REQUEST, arrived=datetime.now(UTC))
    imap_account.append("INBOX", again, arrived=datetime.now(UTC))

    done = run_mailbot("run", "--once", "-c", str(config), cwd=tmp_path, env=env)

    assert 0 == done.returncode, done.stderr
    assert 1 == len(smtp_sink.received)
    db = sqlite_utils.Database(tmp_path / "mailbot.sqlite3")
    outcomes = [
        row["outcome"] for row in db.query("SELECT outcome FROM decisions ORDER BY id")
    ]
    assert ["registration-pending", "duplicate"] == outcomes


def test_reject_needs_a_reason_and_tells_the_entity(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = sink_config(tmp_path, imap_account, smtp_sink)
    env = {PASSWORD_ENV: imap_account.password}
    imap_account.append("INBOX", REQUEST, arrived=datetime.now(UTC))
    run_mailbot("run", "--once", "-c", str(config), cwd=tmp_path, env=env)

    empty = run_mailbot(
        "entities",
        "reject",
        NIF,
        "--reason",
        " ",
        "-c",
        str(config),
        cwd=tmp_path,
        env=env,
    )
    rejected = run_mailbot(
        "entities",
        "reject",
        NIF,
        "--reason",
        "No consta l'acord d'adhesió a EACAT.",
        "-c",
        str(config),
        cwd=tmp_path,
        env=env,
    )

    assert 2 == empty.returncode
    assert_no_traceback(empty)
    assert 0 == rejected.returncode, rejected.stderr
    notice = smtp_sink.received[-1].message
    assert "registration-rejected" == notice["X-Mailbot-Outcome"]
    body = notice.get_body(preferencelist=("plain",))
    assert body is not None
    assert "EACAT" in body.get_content()
    db = sqlite_utils.Database(tmp_path / "mailbot.sqlite3")
    assert "rejected" == db["entities"].get(NIF)["status"]
