"""Hostile input: whatever a sender writes, a decision, a folder, and clean replies."""

from __future__ import annotations

import base64
import quopri
import tempfile
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.config import Config, parse_config
from mailbot.models import Entity, RawMessage
from mailbot.pipeline import handle
from mailbot.store import Store
from tests.helpers import PASSWORD_ENV, assert_no_traceback, run_mailbot
from tests.mailgen import SERVICE, outlook_invitation
from tests.servers import ImapAccount, SmtpSink

NOW = datetime(2026, 12, 4, 10, tzinfo=UTC)
BARCELONA = "secretaria@ajbcn.example"
SUPPORT = "suport@localret.example"
EVIL = "evil@attacker.example"
FOLDERS = {"processed", "quarantine", "people"}
REPLY_HEADERS = {
    "from", "to", "cc", "subject", "date", "message-id", "in-reply-to",
    "references", "auto-submitted", "x-auto-response-suppress",
    "x-mailbot-outcome", "x-mailbot-booking", "mime-version", "content-type",
    "content-transfer-encoding", "content-language",
}  # fmt: skip

# RFC 2047 words that decode to a line break: the e-mail package decodes
# encoded words when a header is set, so reply.header_text must neutralise them.
ENCODED_BREAKS = [
    "=?utf-8?q?Ple=0D=0ABcc:_evil@attacker.example?=",
    "=?utf-8?b?"
    + base64.b64encode(b"Ple\r\nBcc: evil@attacker.example").decode()
    + "?=",
]
NASTY = [
    "\r\n",
    "\n",
    "\r",
    "\r\nBcc: evil@attacker.example",
    "\nBcc: evil@attacker.example\n",
    "=?utf-8?q?Ple?=",
    "=?utf-8?q?Pl=C3=A9?= =?utf-8?b?w6k=?=",
    "=?x-unknown?q?abc?=",
    "=?utf-8?q?broken",
    "\\n",
    "\\r\\nBcc: evil@attacker.example",
    "\x00",
    "\x0b\x0c",
    "\u2028",
    "\x85",
    "é",
    "Ple ordinari",
    *ENCODED_BREAKS,
]


# -- generating whole messages ------------------------------------------------

words = st.lists(st.text(max_size=12) | st.sampled_from(NASTY), max_size=6).map("".join)

CALENDAR_LINES = [
    "BEGIN:VCALENDAR",
    "END:VCALENDAR",
    "BEGIN:VEVENT",
    "END:VEVENT",
    "BEGIN:VTIMEZONE",
    "END:VTIMEZONE",
    "BEGIN:VALARM",
    "METHOD:REQUEST",
    "METHOD:CANCEL",
    "UID:x",
    "SEQUENCE:99999999999999999999",
    "DTSTART:20261215T100000Z",
    "DTSTART;TZID=Romance Standard Time:20261215T100000",
    "DTSTART;TZID=Nowhere/Else:20261215T100000",
    "DTSTART:99991231T235959",
    "DTSTART;VALUE=DATE:20261215",
    "DTEND:20261215T090000Z",
    "DURATION:-P1D",
    "DURATION:P99999999W",
    "RRULE:FREQ=SECONDLY",
    "RRULE:FREQ=DAILY;COUNT=100000000",
    "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=13",
    "EXDATE:garbage",
    "RECURRENCE-ID:20261215T100000Z",
    f"ORGANIZER:mailto:{BARCELONA}",
    f"ATTENDEE:mailto:{SERVICE}",
    " folded continuation",
]


@st.composite
def calendars(draw: st.DrawFn) -> bytes:
    """A plausible invitation with a hostile SUMMARY, or calendar-shaped junk."""
    summary = draw(words)
    kind = draw(st.integers(0, 2))
    if kind == 0:
        start = datetime(2026, 12, 15, 10) + timedelta(hours=draw(st.integers(0, 99)))
        data = outlook_invitation(
            uid=f"fuzz-{draw(st.integers(0, 9))}",
            organizer=BARCELONA,
            summary=summary,
            description=draw(words),
            start=start,
            end=start + timedelta(hours=1),
            sent=NOW - timedelta(days=1),
        )
        body = data.split(b"Content-Type: text/calendar")[1].split(b"\r\n\r\n", 1)[1]
        return base64.b64decode(body.split(b"--_000_outlook_")[0])
    if kind == 1:
        lines = draw(st.lists(st.sampled_from(CALENDAR_LINES) | words, max_size=30))
        lines.insert(min(3, len(lines)), f"SUMMARY:{summary}")
        return "\r\n".join(lines).encode("utf-8", "surrogatepass")
    return draw(st.binary(max_size=300))


@st.composite
def leaves(draw: st.DrawFn) -> tuple[str, ...]:
    content_type = draw(
        st.sampled_from(
            [
                "text/plain",
                "text/html",
                "text/calendar",
                "application/ics",
                "application/octet-stream",
                "message/delivery-status",
                "image/png",
            ]
        )
    )
    body = draw(calendars()) if "cal" in content_type or "ics" in content_type else (
        draw(words).encode("utf-8", "surrogatepass") + draw(st.binary(max_size=40))
    )  # fmt: skip
    return (
        "leaf",
        content_type,
        draw(st.sampled_from(["", "base64", "quoted-printable", "8bit", "x-junk"])),
        draw(st.sampled_from(["utf-8", "iso-8859-1", "x-unknown", "", "utf-16"])),
        draw(st.sampled_from(["", "attachment; filename=invite.ics", "inline"])),
        body.hex(),
    )


def trees(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    multipart = st.tuples(
        st.just("multi"),
        st.sampled_from(["mixed", "alternative", "related", "report"]),
        st.lists(children, max_size=4),
    )
    return multipart | st.tuples(st.just("message"), children)


def render_part(node: Any, depth: int = 0) -> bytes:
    if node[0] == "leaf":
        _, content_type, cte, charset, disposition, hexed = node
        body = bytes.fromhex(hexed)
        if cte == "base64":
            body = base64.encodebytes(body)
        elif cte == "quoted-printable":
            body = quopri.encodestring(body)
        head = f"Content-Type: {content_type}"
        head += f"; charset={charset}" if charset else ""
        head += "; method=REQUEST" if "calendar" in content_type else ""
        head += f"\r\nContent-Transfer-Encoding: {cte}" if cte else ""
        head += f"\r\nContent-Disposition: {disposition}" if disposition else ""
        return head.encode() + b"\r\n\r\n" + body
    if node[0] == "message":
        inner = b"From: someone@example.org\r\nSubject: inner\r\n" + render_part(
            node[1], depth + 1
        )
        return b"Content-Type: message/rfc822\r\n\r\n" + inner
    _, subtype, children = node
    boundary = f"b{depth}x".encode()
    out = b'Content-Type: multipart/%s; boundary="%s"\r\n\r\n' % (
        subtype.encode(),
        boundary,
    )
    for child in children:
        out += b"--" + boundary + b"\r\n" + render_part(child, depth + 1) + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=2000))
    sender = draw(
        st.sampled_from([BARCELONA, "alcaldia@unknown.example", "", "<>", "a@b@c"])
    )
    headers = [
        f"From: {draw(words)} <{sender}>",
        f"To: {SERVICE}",
        f"Subject: {draw(words)}",
        f"Date: {draw(st.sampled_from(['Fri, 4 Dec 2026 09:00:00 +0000', 'x']))}",
    ]
    if draw(st.booleans()):
        headers.append(f"Message-ID: <{draw(st.integers(0, 10**6))}@fuzz.example>")
    extra = draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    ["Reply-To", "References", "X-Junk", "Precedence", "Cc", "Sender"]
                ),
                words,
            ),
            max_size=3,
        )
    )
    headers.extend(f"{name}: {value}" for name, value in extra)
    head = "\r\n".join(headers).encode("utf-8", "surrogatepass")
    tree = draw(st.recursive(leaves(), trees, max_leaves=8))
    return head + b"\r\nMIME-Version: 1.0\r\n" + render_part(tree)


# -- the fuzz test ------------------------------------------------------------


def fuzz_config(folder: Path) -> Config:
    return parse_config(
        {
            "service": {"address": SERVICE, "support": [SUPPORT]},
            "licenses": {"pool": ["adv-01"]},
            "maildir": {"path": "inbox"},
            "outbox": {"maildir": "outbox"},
            "database": {"path": "mailbot.sqlite3"},
        },
        path=folder / "mailbot.toml",
    )


def assert_clean_reply(data: bytes) -> None:
    """Only the headers a reply has, each once, on lines of their own."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    names = [
        line.split(":", 1)[0].lower()
        for line in head.split("\r\n")
        if line and line[0] not in " \t"
    ]
    assert set(names) <= REPLY_HEADERS, names
    assert len(names) == len(set(names)), names
    message = BytesParser(policy=default_policy).parsebytes(data)
    subject = str(message["Subject"])
    assert "\r" not in subject
    assert "\n" not in subject
    recipients = {a.addr_spec for h in ("To", "Cc") for a in message[h].addresses} if (
        message["Cc"]
    ) else {a.addr_spec for a in message["To"].addresses}  # fmt: skip
    assert EVIL not in recipients


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(messages(), min_size=1, max_size=3))
def test_any_message_gets_a_decision_a_folder_and_clean_replies(
    batch: list[bytes],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        config = fuzz_config(Path(folder))
        store = Store(config.database)
        store.save_entity(
            Entity("P0801900B", "Ajuntament de Barcelona", BARCELONA),
            source="test",
            now=NOW,
        )
        try:
            for uid, data in enumerate(batch, start=1):
                raw = RawMessage("INBOX", 1, uid, data, NOW, len(data))
                handled = handle(raw, config=config, store=store, now=NOW)

                row = store.conn.execute(
                    "SELECT d.id, d.filed_to FROM decisions d"
                    " JOIN messages m ON m.id = d.message WHERE m.uid = ?",
                    (uid,),
                ).fetchone()
                assert row is not None
                assert row["filed_to"] in FOLDERS
                assert row["filed_to"] == handled.folder.value
                for (reply,) in store.conn.execute(
                    "SELECT data FROM outbox WHERE decision = ?", (row["id"],)
                ):
                    assert_clean_reply(bytes(reply))
        finally:
            store.close()


def test_summary_with_escaped_line_break_and_bcc_stays_in_the_subject(
    tmp_path: Path,
) -> None:
    config = fuzz_config(tmp_path)
    store = Store(config.database)
    store.save_entity(
        Entity("P0801900B", "Ajuntament de Barcelona", BARCELONA), source="t", now=NOW
    )
    data = hostile_summary_invitation()

    handle(
        RawMessage("INBOX", 1, 1, data, NOW, len(data)),
        config=config,
        store=store,
        now=NOW,
    )

    (reply,) = store.conn.execute("SELECT data FROM outbox").fetchone()
    store.close()
    assert_clean_reply(bytes(reply))
    message = BytesParser(policy=default_policy).parsebytes(bytes(reply))
    assert (None, "Reserva confirmada: Ple Bcc: evil@attacker.example") == (
        message["Bcc"],
        str(message["Subject"]),
    )


@pytest.mark.parametrize("word", ENCODED_BREAKS)
def test_summary_with_encoded_line_break_never_reaches_reply_headers(
    tmp_path: Path, word: str
) -> None:
    reply = first_reply(tmp_path, hostile_summary_invitation(summary=word))

    assert_clean_reply(reply)


def test_subject_with_doubly_encoded_line_break_never_reaches_reply_headers(
    tmp_path: Path,
) -> None:
    inner = ENCODED_BREAKS[0].encode()
    outer = b"=?utf-8?b?" + base64.b64encode(inner) + b"?="
    data = (
        (
            f"From: {BARCELONA}\r\nTo: {SERVICE}\r\nMessage-ID: <double@ajbcn.example>"
            "\r\nContent-Type: text/calendar\r\n"
        ).encode()
        + b"Subject: "
        + outer
        + b"\r\n\r\nBEGIN:VCALENDAR\r\n"
    )

    reply = first_reply(tmp_path, data)

    assert_clean_reply(reply)


def test_registered_sender_of_a_too_deep_message_gets_a_short_reply(
    tmp_path: Path,
) -> None:
    data = plain("Nested", nested_multiparts(200), uid="nested")

    reply = first_reply(tmp_path, data)

    assert "quarantined" == BytesParser().parsebytes(reply)["X-Mailbot-Outcome"]


def first_reply(folder: Path, data: bytes) -> bytes:
    """The first reply queued for ``data``, handled by a fresh robot."""
    config = fuzz_config(folder)
    store = Store(config.database)
    store.save_entity(
        Entity("P0801900B", "Ajuntament de Barcelona", BARCELONA), source="t", now=NOW
    )
    raw = RawMessage("INBOX", 1, 1, data, NOW, len(data))
    handle(raw, config=config, store=store, now=NOW)
    row = store.conn.execute("SELECT data FROM outbox ORDER BY id").fetchone()
    store.close()
    assert row is not None
    return bytes(row[0])


def hostile_summary_invitation(
    *, sent: datetime = NOW, summary: str = "Ple\nBcc: evil@attacker.example"
) -> bytes:
    """An invitation whose SUMMARY (escaped as iCalendar does) holds a Bcc line."""
    start = datetime(2026, 12, 15, 10)
    return outlook_invitation(
        uid="hostile-summary@ajbcn.example",
        organizer=BARCELONA,
        summary=summary,
        description="Ple",
        start=start,
        end=start + timedelta(hours=1),
        sent=sent - timedelta(days=1),
    )


# -- end to end over IMAP -----------------------------------------------------


def nested_multiparts(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    for level in range(depth):
        boundary = b"n%d" % level
        body = (
            b'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n--%s\r\n%s\r\n--%s--'
            b"\r\n" % (boundary, boundary, body, boundary)
        )
    return body


def plain(subject: str, content: bytes, *, uid: str) -> bytes:
    return (
        f"From: {BARCELONA}\r\nTo: {SERVICE}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uid}@ajbcn.example>\r\nMIME-Version: 1.0\r\n"
    ).encode() + content


def hostile_config(folder: Path, account: ImapAccount, sink: SmtpSink) -> Path:
    path = folder / "mailbot.toml"
    path.write_text(
        f"""
[service]
address = "{SERVICE}"
support = ["{SUPPORT}"]

[licenses]
pool = ["adv-01"]

[imap]
host = "{account.host}"
port = {account.port}
tls = "none"
username = "{account.username}"
password_env = "{PASSWORD_ENV}"
connect_timeout = 5
read_timeout = 60
max_message_bytes = 5000000

[smtp]
host = "{sink.host}"
port = {sink.port}
tls = "none"
timeout = 10

[database]
path = "mailbot.sqlite3"
""",
        encoding="utf-8",
    )
    csv = folder / "entities.csv"
    csv.write_text(
        "nif,name,email,senders,youtube_channel,channel_agreement,language\n"
        f"P0801900B,Ajuntament de Barcelona,{BARCELONA},,,no,ca\n",
        encoding="utf-8",
    )
    env = {PASSWORD_ENV: account.password}
    done = run_mailbot(
        "entities", "import", "-c", str(path), str(csv), cwd=folder, env=env
    )
    assert 0 == done.returncode, done.stderr
    return path


@pytest.mark.integration
@pytest.mark.slow
def test_hostile_messages_over_imap_are_quarantined_or_answered_cleanly(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = hostile_config(tmp_path, imap_account, smtp_sink)
    now = datetime.now(UTC)
    components = b"BEGIN:VEVENT\r\nEND:VEVENT\r\n" * 100_000
    messages = {
        "huge": plain(
            "Annex",
            b"Content-Type: text/plain\r\n\r\n" + b"x" * 76 + b"\r\n",
            uid="huge",
        )
        + (b"y" * 998 + b"\r\n") * 30_000,
        "nested": plain("Nested", nested_multiparts(200), uid="nested"),
        "components": plain(
            "Calendar",
            b"Content-Type: text/calendar; method=REQUEST\r\n\r\n"
            b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\n"
            + components
            + b"END:VCALENDAR\r\n",
            uid="components",
        ),
        "summary": hostile_summary_invitation(sent=now),
    }
    for data in messages.values():
        imap_account.append("INBOX", data, arrived=now - timedelta(days=1))

    done = run_mailbot(
        "run", "--once", "-c", str(config),
        cwd=tmp_path, env={PASSWORD_ENV: imap_account.password}, timeout=300,
    )  # fmt: skip

    assert_no_traceback(done)
    assert 0 == done.returncode, done.stderr
    store = Store(tmp_path / "mailbot.sqlite3")
    rows = {
        r["size"]: (r["outcome"], r["reason"], r["filed_to"])
        for r in store.conn.execute(
            "SELECT m.size, d.outcome, d.reason, d.filed_to"
            " FROM decisions d JOIN messages m ON m.id = d.message"
        )
    }
    store.close()
    size = {name: len(data) for name, data in messages.items()}
    assert ("quarantined", "too-large", "quarantine") == rows[size["huge"]]
    assert ("quarantined", "too-deep", "quarantine") == rows[size["nested"]]
    assert rows[size["components"]][0] == "quarantined"
    assert rows[size["components"]][1] in {"too-large", "too-many-components"}
    assert "booked" == rows[size["summary"]][0]
    received = smtp_sink.received
    assert ["booked", "quarantined", "quarantined", "quarantined"] == sorted(
        str(mail.message["X-Mailbot-Outcome"]) for mail in received
    )
    for mail in received:
        assert_clean_reply(mail.data)
        assert ("", (BARCELONA,)) == (mail.mail_from, mail.rcpt_tos)
    assert (0, 3) == (
        len(imap_account.messages("INBOX")),
        len(imap_account.messages("Quarantine")),
    )
