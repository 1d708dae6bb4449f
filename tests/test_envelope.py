"""Tests of the MIME layer: headers, automatic mail, body text, calendar parts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.errors import MimeError
from mailbot.models import Envelope
from mailbot.parsers.envelope import guess_language, parse_envelope

DATA = Path(__file__).parent / "data"
SHARED_CORPUS = Path("/work/shared/corpus")
SERVICE = "localretmeet@webfine.com"
OWN_DOMAIN = "mailbot.localret.cat"


def corpus(name: str) -> bytes:
    """A corpus message: the copy in tests/data if there is one, else the
    shared corpus; the test is skipped when neither is present."""
    for path in (*DATA.rglob(name), SHARED_CORPUS / name):
        if path.is_file():
            return path.read_bytes()
    pytest.skip(f"corpus file {name} is not available")


def mail(name: str) -> bytes:
    return (DATA / "mail" / name).read_bytes()


def parse(data: bytes, **caps: int) -> Envelope:
    return parse_envelope(data, service_address=SERVICE, own_domain=OWN_DOMAIN, **caps)


def message(*headers: str, body: str = "Hola", content_type: str = "") -> bytes:
    """A small single-part message with the given extra header lines."""
    lines = [
        "From: Secretaria <secretaria@ajuntament.cat>",
        f"To: {SERVICE}",
        "Subject: Prova",
        "Message-ID: <m1@ajuntament.cat>",
        *headers,
        content_type or "Content-Type: text/plain; charset=utf-8",
        "",
        body,
    ]
    return "\r\n".join(lines).encode("utf-8")


def nested(depth: int) -> bytes:
    """A message whose text part sits ``depth`` multiparts deep."""
    head = "From: a@b.cat\nMessage-ID: <deep@b.cat>\nMIME-Version: 1.0\n"
    parts = [head]
    for level in range(depth):
        parts.append(
            f'Content-Type: multipart/mixed; boundary="b{level}"\n\n--b{level}\n'
        )
    parts.append("Content-Type: text/plain\n\nfons\n")
    for level in reversed(range(depth)):
        parts.append(f"--b{level}--\n")
    return "".join(parts).encode()


def many_parts(count: int) -> bytes:
    body = "".join(f"--b\nContent-Type: text/plain\n\npart {n}\n" for n in range(count))
    return (
        "From: a@b.cat\nMessage-ID: <many@b.cat>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n'
        f"{body}--b--\n"
    ).encode()


# --- identity and addresses -----------------------------------------------


def test_message_id_loses_its_angle_brackets() -> None:
    envelope = parse(message())

    assert "m1@ajuntament.cat" == envelope.message_id


def test_missing_message_id_becomes_a_hash_of_the_bytes() -> None:
    data = b"From: a@b.cat\r\nSubject: sense id\r\n\r\nHola\r\n"

    envelope = parse(data)

    expected = f"sha256-{hashlib.sha256(data).hexdigest()[:32]}@mailbot.invalid"
    assert expected == envelope.message_id


def test_from_address_is_lower_cased_and_name_decoded() -> None:
    data = message().replace(
        b"From: Secretaria <secretaria@ajuntament.cat>",
        b"From: =?ISO-8859-1?Q?Secretar=EDa_G=E8neral?= <Secretaria@Ajuntament.CAT>",
    )

    envelope = parse(data)

    assert ("secretaria@ajuntament.cat", "Secretaría Gèneral") == (
        envelope.from_addr,
        envelope.from_name,
    )


def test_to_and_cc_are_lower_cased_address_lists() -> None:
    data = message("Cc: Un <U@X.cat>, dos@Y.cat")

    envelope = parse(data)

    assert ((SERVICE,), ("u@x.cat", "dos@y.cat")) == (envelope.to, envelope.cc)


def test_reply_to_is_read() -> None:
    envelope = parse(message("Reply-To: Tecnic <Tecnic@Ajuntament.cat>"))

    assert "tecnic@ajuntament.cat" == envelope.reply_to


def test_absent_return_path_is_none() -> None:
    assert parse(message()).return_path is None


def test_return_path_address_is_read() -> None:
    envelope = parse(message("Return-Path: <Bounce@Ajuntament.cat>"))

    assert "bounce@ajuntament.cat" == envelope.return_path


def test_references_are_oldest_first_with_in_reply_to_last() -> None:
    data = message("In-Reply-To: <c@x>", "References: <a@x> <b@x>\r\n <c@x>")

    envelope = parse(data)

    assert ("a@x", "b@x", "c@x") == envelope.references


# --- subject ---------------------------------------------------------------


def test_subject_is_decoded_from_rfc2047() -> None:
    data = message().replace(
        b"Subject: Prova", b"Subject: =?UTF-8?B?U2Vzc2nDsyBkZWwgUGxl?="
    )

    assert "Sessió del Ple" == parse(data).subject


def test_encoded_cr_lf_in_subject_become_spaces() -> None:
    data = message().replace(b"Subject: Prova", b"Subject: =?UTF-8?Q?Ple=0D=0ABcc:_x?=")

    assert "Ple  Bcc: x" == parse(data).subject


def test_raw_bare_line_feed_in_subject_never_survives() -> None:
    data = message().replace(b"Subject: Prova", b"Subject: Ple\rBcc: x@y.cat")

    subject = parse(data).subject

    assert ("\r" not in subject, "\n" not in subject) == (True, True)


def test_folded_subject_is_unfolded() -> None:
    data = message().replace(b"Subject: Prova", b"Subject: Sessio\r\n del Ple")

    assert "Sessio del Ple" == parse(data).subject


def test_undeclared_latin1_subject_is_read_as_windows_1252() -> None:
    data = message().replace(b"Subject: Prova", b"Subject: Sessi\xf3 del Ple")

    assert "Sessió del Ple" == parse(data).subject


# --- automatic mail --------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Auto-Submitted: auto-replied", "auto-submitted"),
        ("Auto-Submitted: auto-generated (vacation)", "auto-submitted"),
        ("Precedence: bulk", "precedence"),
        ("Precedence: JUNK", "precedence"),
        ("Precedence: list", "precedence"),
        ("List-Id: <ple.llistes.cat>", "list"),
        ("List-Unsubscribe: <mailto:baixa@llistes.cat>", "list"),
        ("Return-Path: <>", "null-return-path"),
        ("X-Auto-Response-Suppress: All", "x-auto-response-suppress"),
        ("X-Auto-Response-Suppress: DR, OOF, AutoReply", "x-auto-response-suppress"),
        ("X-Mailbot-Outcome: booked", "loop"),
        ("Sender: MAILER-DAEMON@mx.ajuntament.cat", "mailer-daemon"),
    ],
)
def test_automatic_header_is_recognised(header: str, reason: str) -> None:
    assert reason == parse(message(header)).automatic


def test_auto_submitted_no_is_not_automatic() -> None:
    assert parse(message("Auto-Submitted: no")).automatic is None


def test_auto_response_suppress_for_receipts_only_is_not_automatic() -> None:
    assert parse(message("X-Auto-Response-Suppress: DR, RN, NRN")).automatic is None


def test_ordinary_mail_is_not_automatic() -> None:
    assert parse(message()).automatic is None


def test_mailer_daemon_sender_is_automatic() -> None:
    data = message().replace(
        b"From: Secretaria <secretaria@ajuntament.cat>",
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>",
    )

    assert "mailer-daemon" == parse(data).automatic


def test_postmaster_sender_is_automatic() -> None:
    data = message().replace(b"secretaria@ajuntament.cat", b"postmaster@ajuntament.cat")

    assert "mailer-daemon" == parse(data).automatic


def test_own_address_as_sender_is_automatic() -> None:
    data = message().replace(b"secretaria@ajuntament.cat", b"LocalretMeet@Webfine.com")

    assert "own-address" == parse(data).automatic


def test_message_id_in_own_domain_is_a_loop() -> None:
    data = message().replace(
        b"<m1@ajuntament.cat>", f"<reply-1@{OWN_DOMAIN.upper()}>".encode()
    )

    assert "loop" == parse(data).automatic


def test_delivery_status_report_is_a_bounce() -> None:
    data = (
        b"From: mx@example.org\r\nMessage-ID: <dsn@example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"'
        b"\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nNo s'ha pogut lliurar\r\n"
        b"--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; x@y\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n--r--\r\n"
    )

    assert "bounce" == parse(data).automatic


# --- body text -------------------------------------------------------------


def test_plain_text_body_is_preferred() -> None:
    assert "Hola" == parse(message()).text


def test_html_body_is_converted_when_plain_text_is_empty() -> None:
    data = (
        b"From: a@b.cat\r\nMessage-ID: <h@b.cat>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="a"\r\n\r\n'
        b"--a\r\nContent-Type: text/plain\r\n\r\n \r\n"
        b"--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p {color: red}</style><script>var x;</script></head>"
        b"<body><p>Ple&nbsp;ordinari</p><div>Retransmissi&oacute; &amp; gravaci&#243;"
        b"</div>Fi<br>l&iacute;nia</body></html>\r\n--a--\r\n"
    )

    assert "Ple ordinari\n\nRetransmissió & gravació\nFi\nlínia" == parse(data).text


def test_outlook_iso_8859_1_body_is_decoded() -> None:
    assert (
        "Reunió de la comissió informativa"
        == parse(mail("outlook_winmail_dat_attachment.eml")).text
    )


def test_body_with_wrong_declared_charset_falls_back_and_says_so() -> None:
    data = message(body="Sessi@").replace(b"Sessi@", b"Sessi\xf3")

    envelope = parse(data)

    assert ("Sessió", True) == (envelope.text, "charset-fallback" in envelope.defects)


def test_unknown_charset_body_is_still_read() -> None:
    data = message(content_type="Content-Type: text/plain; charset=x-klingon").replace(
        b"Hola", b"Hola, sessi\xc3\xb3"
    )

    assert "Hola, sessió" == parse(data).text


def test_utf8_bom_before_the_headers_is_stripped() -> None:
    envelope = parse(b"\xef\xbb\xbf" + message())

    assert ("m1@ajuntament.cat", True) == (
        envelope.message_id,
        "bom-stripped" in envelope.defects,
    )


def test_lf_only_message_reads_like_crlf() -> None:
    crlf = parse(message())
    lf = parse(message().replace(b"\r\n", b"\n"))

    assert (crlf.subject, crlf.text, crlf.from_addr) == (
        lf.subject,
        lf.text,
        lf.from_addr,
    )


def test_calendar_is_never_the_body_text() -> None:
    envelope = parse(corpus("comm-central__repeat-event.eml"))

    assert "" == envelope.text


def test_body_text_is_capped() -> None:
    envelope = parse(message(body="x" * 150_000))

    assert (100_000, True) == (len(envelope.text), "text-truncated" in envelope.defects)


# --- calendars and attachments --------------------------------------------


def test_gmail_two_copies_give_two_calendar_parts() -> None:
    envelope = parse(mail("gmail_two_copies_inline_and_attached.eml"))

    found = [(c.content_type, c.method, c.filename) for c in envelope.calendars]
    assert [
        ("text/calendar", "REQUEST", None),
        ("application/ics", None, "invite.ics"),
    ] == found


def test_attached_ics_is_decoded_and_its_bom_stripped() -> None:
    envelope = parse(mail("gmail_two_copies_inline_and_attached.eml"))

    assert envelope.calendars[1].data.startswith(b"BEGIN:VCALENDAR\nMETHOD:REQUEST")


def test_real_google_meet_invite_gives_two_calendar_parts() -> None:
    envelope = parse(corpus("comm-central__meet-meeting-invite.eml"))

    assert ["text/calendar", "application/ics"] == [
        c.content_type for c in envelope.calendars
    ]


def test_text_plain_ics_attachment_is_a_calendar() -> None:
    envelope = parse(corpus("comm-central__invite-notes-style.eml"))

    assert ("text/plain", "c141520.ics") == (
        envelope.calendars[1].content_type,
        envelope.calendars[1].filename,
    )


def test_mixed_case_content_type_is_a_calendar_with_its_method() -> None:
    envelope = parse(corpus("comm-central__message-containing-event.eml"))

    calendar = envelope.calendars[0]
    assert ("text/calendar", "PUBLISH", "booking.ics", True) == (
        calendar.content_type,
        calendar.method,
        calendar.filename,
        calendar.data.startswith(b"BEGIN:VCALENDAR"),
    )


def test_base64_outlook_calendar_is_decoded() -> None:
    envelope = parse(corpus("comm-central__outlook-test-invite.eml"))

    assert envelope.calendars[0].data.startswith(b"BEGIN:VCALENDAR\nMETHOD:REQUEST")


def test_doubled_semicolon_keeps_method_and_charset() -> None:
    envelope = parse(mail("zoom_double_semicolon_broken_qp.eml"))

    assert ("text/calendar", "REQUEST") == (
        envelope.calendars[0].content_type,
        envelope.calendars[0].method,
    )


def test_broken_quoted_printable_keeps_raw_equals_and_decodes_escapes() -> None:
    envelope = parse(mail("zoom_double_semicolon_broken_qp.eml"))

    data = envelope.calendars[0].data
    assert (True, True, True, True) == (
        b"ORGANIZER;CN=Zoom:" in data,
        b"CN=Receiver" in data,
        b"and not by iCalendar" in data,
        "invalid-quoted-printable" in envelope.defects,
    )


def test_winmail_dat_is_listed_as_an_attachment() -> None:
    envelope = parse(mail("outlook_winmail_dat_attachment.eml"))

    assert (("winmail.dat",), ()) == (envelope.attachments, envelope.calendars)


# --- language --------------------------------------------------------------


def test_catalan_text_is_recognised() -> None:
    assert "ca" == guess_language("Sessió del ple de l'ajuntament amb retransmissió")


def test_spanish_text_is_recognised() -> None:
    assert "es" == guess_language("Sesión del pleno del ayuntamiento con grabación")


def test_short_or_mixed_text_has_no_language() -> None:
    assert guess_language("Meeting") is None


def test_envelope_language_reads_subject_and_body() -> None:
    data = message(body="També hi haurà retransmissió.").replace(
        b"Subject: Prova", b"Subject: =?UTF-8?Q?Reuni=C3=B3?="
    )

    assert "ca" == parse(data).language


# --- caps and broken input ------------------------------------------------


def test_too_many_parts_raise_a_mime_error() -> None:
    with pytest.raises(MimeError) as caught:
        parse(many_parts(20), max_parts=10)

    assert "too-many-parts" == caught.value.reason


def test_parts_within_the_cap_are_read() -> None:
    assert 9 == len(parse(many_parts(9), max_parts=10).text.splitlines())


def test_too_deep_nesting_raises_a_mime_error() -> None:
    with pytest.raises(MimeError) as caught:
        parse(nested(6), max_depth=5)

    assert "too-deep" == caught.value.reason


def test_nesting_within_the_cap_is_read() -> None:
    assert "fons" == parse(nested(5), max_depth=5).text


def test_empty_input_still_gives_an_envelope() -> None:
    envelope = parse(b"")

    assert ("", "") == (envelope.from_addr, envelope.subject)


def test_stdlib_defects_are_reported() -> None:
    data = b"From: a@b.cat\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n"

    assert "no-boundary-in-multipart" in parse(data).defects


# --- nothing but Envelope or MimeError ------------------------------------


def _tree(draw: st.DrawFn, depth: int) -> str:
    kind = draw(
        st.sampled_from(
            ["text/plain", "text/html", "TeXt/CaLeNdAr", "application/ics", "multi"]
            if depth < 4
            else ["text/plain", "text/calendar"]
        )
    )
    extra = draw(
        st.sampled_from(
            [
                "",
                "; method=REQUEST;; charset=UTF-8",
                "; charset=x-bogus",
                '; name="a.ics"',
            ]
        )
    )
    encoding = draw(st.sampled_from(["", "base64", "quoted-printable", "8bit", "x"]))
    headers = f"Content-Type: {kind}{extra}\n"
    if encoding:
        headers += f"Content-Transfer-Encoding: {encoding}\n"
    if kind != "multi":
        body = draw(st.text(max_size=60))
        return f"{headers}\n{body}\n"
    boundary = f"b{depth}"
    children = draw(st.lists(st.integers(), min_size=0, max_size=3))
    inner = "".join(f"--{boundary}\n{_tree(draw, depth + 1)}" for _ in children)
    closing = draw(st.sampled_from([f"--{boundary}--\n", ""]))
    return f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n{inner}{closing}'


@st.composite
def mime_messages(draw: st.DrawFn) -> bytes:
    headers = draw(
        st.lists(
            st.sampled_from(
                [
                    "From: =?utf-8?q?=C3=A0?= <A@B>",
                    "From: <>",
                    "From: ,,,@",
                    "Subject: =?x-unknown?q?a=0Ab?=",
                    "Subject: =?utf-8?b?!!!?=",
                    "Message-ID:",
                    "Message-ID: <<>>",
                    "References: <a> <",
                    "Return-Path: <>",
                    "To: undisclosed-recipients:;",
                    "Content-Disposition: attachment; filename*=utf-8''%ff.ics",
                ]
            ),
            max_size=5,
        )
    )
    text = "\n".join(headers) + "\n" + _tree(draw, 0)
    raw = text.encode("utf-8", errors="surrogatepass")
    noise = draw(st.binary(max_size=20))
    cut = draw(st.integers(min_value=0, max_value=len(raw)))
    return raw[:cut] + noise + raw[cut:]


def _parse_or_error(data: bytes) -> object:
    try:
        return parse(data, max_parts=20, max_depth=3)
    except MimeError as error:
        return error


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_give_an_envelope_or_a_mime_error(data: bytes) -> None:
    assert isinstance(_parse_or_error(data), Envelope | MimeError)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mime_messages())
def test_random_mime_trees_give_an_envelope_or_a_mime_error(data: bytes) -> None:
    assert isinstance(_parse_or_error(data), Envelope | MimeError)
