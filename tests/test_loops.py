"""No mail loops: automatic mail is never answered, replies are capped per sender."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailbot.config import Config, parse_config
from mailbot.models import Entity, RawMessage
from mailbot.pipeline import handle
from mailbot.store import Store
from tests.helpers import (
    PASSWORD_ENV,
    assert_no_traceback,
    run_mailbot,
    sink_config,
)
from tests.mailgen import SERVICE, entities_csv, outlook_invitation
from tests.servers import LOOPBACK, ImapAccount, SmtpSink, free_port

NOW = datetime(2026, 12, 4, 10, tzinfo=UTC)
BARCELONA = "secretaria@ajbcn.example"
SUPPORT = "suport@localret.example"


# -- the pipeline, with a real store ------------------------------------------


class Robot:
    """pipeline.handle with its store; messages get increasing UIDs."""

    def __init__(self, folder: Path) -> None:
        self.config: Config = parse_config(
            {
                "service": {"address": SERVICE, "support": [SUPPORT]},
                "licenses": {"pool": ["adv-01", "adv-02"]},
                "maildir": {"path": "inbox"},
                "outbox": {"maildir": "outbox"},
                "database": {"path": "mailbot.sqlite3"},
            },
            path=folder / "mailbot.toml",
        )
        self.store = Store(self.config.database)
        self.store.save_entity(
            Entity("P0801900B", "Ajuntament de Barcelona", BARCELONA),
            source="test",
            now=NOW,
        )
        self.uid = 0

    def handle(self, data: bytes, *, now: datetime = NOW) -> dict[str, Any]:
        self.uid += 1
        raw = RawMessage("INBOX", 1, self.uid, data, now - timedelta(days=1), len(data))
        handled = handle(raw, config=self.config, store=self.store, now=now)
        row = self.store.conn.execute(
            "SELECT d.id, d.outcome, d.reason, d.filed_to, d.booking FROM decisions d"
            " JOIN messages m ON m.id = d.message WHERE m.uid = ?",
            (self.uid,),
        ).fetchone()
        assert row is not None
        queued = self.store.conn.execute(
            "SELECT kind, recipients FROM outbox WHERE decision = ?", (row["id"],)
        ).fetchall()
        return {
            "outcome": row["outcome"],
            "reason": row["reason"],
            "filed_to": row["filed_to"],
            "folder": handled.folder.value,
            "booking": row["booking"],
            "queued": [(q["kind"], json.loads(q["recipients"])) for q in queued],
        }


@pytest.fixture
def robot(tmp_path: Path) -> Robot:
    return Robot(tmp_path)


def invitation(
    number: int,
    *,
    organizer: str = BARCELONA,
    message_id: str | None = None,
) -> bytes:
    start = datetime(2026, 12, 10, 9) + timedelta(days=number)
    return outlook_invitation(
        uid=f"loop-{number}@ajbcn.example",
        organizer=organizer,
        summary=f"Junta de Govern {number}",
        description="Junta de Govern local.",
        start=start,
        end=start + timedelta(hours=1),
        sent=NOW - timedelta(days=1),
        message_id=message_id,
    )


AUTOMATIC_SHAPES = {
    "auto-submitted": ("Auto-Submitted: auto-replied\r\n", BARCELONA, None),
    "auto-generated": ("Auto-Submitted: auto-generated (x)\r\n", BARCELONA, None),
    "precedence": ("Precedence: bulk\r\n", BARCELONA, None),
    "list-id": ("List-Id: <ple.ajbcn.example>\r\n", BARCELONA, None),
    "list-unsubscribe": ("List-Unsubscribe: <mailto:u@x.example>\r\n", BARCELONA, None),
    "null-return-path": ("Return-Path: <>\r\n", BARCELONA, None),
    "mailer-daemon": (
        "Return-Path: <MAILER-DAEMON@ajbcn.example>\r\n",
        BARCELONA,
        None,
    ),
    "suppress": ("X-Auto-Response-Suppress: OOF, AutoReply\r\n", BARCELONA, None),
    "own-address": ("", SERVICE, None),
    "own-message-id-domain": ("", BARCELONA, "<mailbot.0123@webfine.com>"),
    "loop-header": ("X-Mailbot-Outcome: booked\r\n", BARCELONA, None),
}


@pytest.mark.parametrize("shape", sorted(AUTOMATIC_SHAPES))
def test_automatic_mail_is_recorded_filed_and_never_answered(
    robot: Robot, shape: str
) -> None:
    header, sender, message_id = AUTOMATIC_SHAPES[shape]
    data = header.encode() + invitation(1, organizer=sender, message_id=message_id)

    result = robot.handle(data)

    assert ("automatic", "processed", []) == (
        result["outcome"],
        result["folder"],
        result["queued"],
    )


def test_auto_submitted_no_is_answered(robot: Robot) -> None:
    data = b"Auto-Submitted: no\r\n" + invitation(1)

    result = robot.handle(data)

    assert ("booked", ["reply"]) == (
        result["outcome"],
        [kind for kind, _ in result["queued"]],
    )


def test_daily_cap_gives_ten_replies_one_notice_then_silence(robot: Robot) -> None:
    results = [
        robot.handle(invitation(n), now=NOW + timedelta(minutes=n)) for n in range(14)
    ]

    kinds = [[kind for kind, _ in r["queued"]] for r in results]
    assert [["reply"]] * 10 + [["cap"], [], [], []] == kinds
    assert ["processed"] * 10 + ["people"] * 4 == [r["folder"] for r in results]
    assert [BARCELONA, SUPPORT] == results[10]["queued"][0][1]


def test_capped_invitation_is_still_decided_and_booked(robot: Robot) -> None:
    results = [robot.handle(invitation(n)) for n in range(12)]

    assert ["booked"] * 12 == [r["outcome"] for r in results]
    assert all(r["booking"] is not None for r in results)


def test_cap_is_counted_over_the_last_24_hours(robot: Robot) -> None:
    for n in range(11):
        robot.handle(invitation(n))

    result = robot.handle(invitation(20), now=NOW + timedelta(hours=24, minutes=1))

    assert ("processed", ["reply"]) == (
        result["folder"],
        [kind for kind, _ in result["queued"]],
    )


# -- a storm of bounces over IMAP ---------------------------------------------

OUR_REPLY = (
    "From: LOCALRETMEET <localretmeet@webfine.com>\r\n"
    "To: secretaria@ajbcn.example\r\n"
    "Subject: Reserva confirmada: Ple\r\n"
    "Message-ID: <mailbot.{n:032x}@webfine.com>\r\n"
    "Auto-Submitted: auto-replied\r\n"
    "X-Auto-Response-Suppress: All\r\n"
    "X-Mailbot-Outcome: booked\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Reserva confirmada.\r\n"
)


def bounce(n: int) -> bytes:
    """One of five real-world bounce shapes, numbered ``n``."""
    shape = n % 5
    mid = f"<bounce-{n}@mx.ajbcn.example>"
    ours = OUR_REPLY.format(n=n)
    if shape == 0:  # RFC 3464 report with our reply attached
        text = (
            "From: Mail Delivery System <MAILER-DAEMON@mx.ajbcn.example>\r\n"
            f"To: {SERVICE}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            f"Message-ID: {mid}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status;"
            ' boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
            "The mail could not be delivered.\r\n--b\r\n"
            "Content-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.ajbcn.example\r\n\r\n"
            "Final-Recipient: rfc822; secretaria@ajbcn.example\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n\r\n--b\r\n"
            f"Content-Type: message/rfc822\r\n\r\n{ours}\r\n--b--\r\n"
        )
    elif shape == 1:  # a report that claims a registered sender in From
        text = (
            f"From: {BARCELONA}\r\nTo: {SERVICE}\r\nSubject: Delivery report\r\n"
            f"Message-ID: {mid}\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"'
            "\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.ajbcn.example\r\n\r\n"
            "Final-Recipient: rfc822; nobody@ajbcn.example\r\nAction: failed\r\n"
            "Status: 5.0.0\r\n\r\n--b--\r\n"
        )
    elif shape == 2:  # plain text from the daemon, quoting our reply inline
        text = (
            "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n"
            f"To: {SERVICE}\r\nSubject: Delivery Status Notification (Failure)\r\n"
            f"Message-ID: {mid}\r\nIn-Reply-To: <mailbot.{n:032x}@webfine.com>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Address not found.\r\n\r\n{ours}"
        )
    elif shape == 3:  # postmaster with our reply as an attachment, no report
        text = (
            "From: postmaster@ajbcn.example\r\n"
            f"To: {SERVICE}\r\nSubject: Undeliverable: Reserva confirmada\r\n"
            f"Message-ID: {mid}\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
            "Content-Type: text/plain\r\n\r\nDelivery has failed.\r\n--m\r\n"
            f"Content-Type: message/rfc822\r\n\r\n{ours}\r\n--m--\r\n"
        )
    else:  # the null return path of an automatic answer, from a registered sender
        text = (
            f"Return-Path: <>\r\nFrom: {BARCELONA}\r\nTo: {SERVICE}\r\n"
            f"Subject: Undeliverable: Junta\r\nMessage-ID: {mid}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Your message did not reach some or all of the intended recipients.\r\n"
        )
    return text.encode()


@pytest.mark.integration
def test_storm_of_bounces_gets_no_reply_and_every_one_is_filed(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = sink_config(tmp_path, imap_account, smtp_sink)
    env = {PASSWORD_ENV: imap_account.password}
    csv = tmp_path / "entities.csv"
    csv.write_text(entities_csv(), encoding="utf-8")
    assert 0 == run_mailbot("entities", "import", "-c", str(config), str(csv),
                            cwd=tmp_path, env=env).returncode  # fmt: skip
    with imap_account.client() as client:
        for n in range(100):
            client.append("INBOX", bounce(n))

    done = run_mailbot("run", "--once", "-c", str(config), cwd=tmp_path, env=env)

    assert_no_traceback(done)
    assert 0 == done.returncode, done.stderr
    assert 0 == len(smtp_sink.received)
    assert (0, 100) == (
        len(imap_account.messages("INBOX")),
        len(imap_account.messages("Processed")),
    )
    store = Store(tmp_path / "mailbot.sqlite3")
    rows = store.conn.execute(
        "SELECT outcome, filed_to, COUNT(*) FROM decisions GROUP BY 1, 2"
    ).fetchall()
    queued = store.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    store.close()
    assert ([("automatic", "processed", 100)], 0) == (
        [tuple(r) for r in rows],
        queued,
    )


# -- two robots whose mail reaches each other ---------------------------------


class Relay:
    """A real SMTP server that appends all it accepts to another account's INBOX."""

    def __init__(self, target: ImapAccount) -> None:
        self.target = target
        self.port = free_port()
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname=LOOPBACK, port=self.port)

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        data = envelope.original_content
        assert isinstance(data, bytes)
        mail_from = "" if envelope.mail_from in ("<>", None) else envelope.mail_from
        self.target.append("INBOX", data, arrived=datetime.now(UTC))
        with self._lock:
            self.received.append((str(mail_from), data))
        return "250 OK relayed"

    def __enter__(self) -> Relay:
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()


def robot_config(
    folder: Path, account: ImapAccount, relay: Relay, *, address: str
) -> Path:
    folder.mkdir()
    path = folder / "mailbot.toml"
    domain = address.split("@")[1]
    path.write_text(
        f"""
[service]
address = "{address}"
support = ["support@{domain}"]
message_id_domain = "mailbot.{domain}"

[licenses]
pool = ["adv-01"]

[imap]
host = "{account.host}"
port = {account.port}
tls = "none"
username = "{account.username}"
password_env = "{PASSWORD_ENV}"
connect_timeout = 5
read_timeout = 20

[smtp]
host = "{LOOPBACK}"
port = {relay.port}
tls = "none"
timeout = 10

[database]
path = "mailbot.sqlite3"
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.integration
@pytest.mark.slow
def test_two_robots_answering_each_other_stop_after_one_reply(
    tmp_path: Path, dovecot: Any
) -> None:
    first, second = dovecot.new_account(), dovecot.new_account()
    robot_a, robot_b = "robot@a.example", "robot@b.example"
    with Relay(second) as to_second, Relay(first) as to_first:
        config_a = robot_config(tmp_path / "a", first, to_second, address=robot_a)
        config_b = robot_config(tmp_path / "b", second, to_first, address=robot_b)
        for config, account, other, nif in (
            (config_a, first, robot_b, "P0801900B"),
            (config_b, second, robot_a, "P2500000A"),
        ):
            csv = config.parent / "entities.csv"
            csv.write_text(
                "nif,name,email,senders,youtube_channel,channel_agreement,language\n"
                f"{nif},Robot,{other},,,no,ca\n",
                encoding="utf-8",
            )
            imported = run_mailbot(
                "entities", "import", "-c", str(config), str(csv),
                cwd=config.parent, env={PASSWORD_ENV: account.password},
            )  # fmt: skip
            assert 0 == imported.returncode, imported.stderr
        start = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=10)
        first.append(
            "INBOX",
            outlook_invitation(
                uid="ping-pong@b.example",
                organizer=robot_b,
                summary="Ple ordinari",
                description="Ple ordinari",
                start=start,
                end=start + timedelta(hours=1),
                attendee=robot_a,
            ),
            arrived=datetime.now(UTC) - timedelta(minutes=5),
        )

        for _ in range(4):
            for config, account in ((config_a, first), (config_b, second)):
                done = run_mailbot(
                    "run", "--once", "-c", str(config),
                    cwd=config.parent, env={PASSWORD_ENV: account.password},
                )  # fmt: skip
                assert_no_traceback(done)
                assert 0 == done.returncode, done.stderr
        relayed = to_first.received + to_second.received

    outcomes = {
        name: outcomes_of(config.parent / "mailbot.sqlite3")
        for name, config in (("a", config_a), ("b", config_b))
    }
    assert {"a": ["booked"], "b": ["automatic"]} == outcomes
    assert 1 == len(relayed)
    mail_from, data = relayed[0]
    reply = email.message_from_bytes(data, policy=email.policy.default)
    assert ("", "auto-replied") == (mail_from, str(reply["Auto-Submitted"]))
    assert [] == first.messages("INBOX") == second.messages("INBOX")


def outcomes_of(database: Path) -> list[str]:
    store = Store(database)
    try:
        return [r[0] for r in store.conn.execute("SELECT outcome FROM decisions")]
    finally:
        store.close()
