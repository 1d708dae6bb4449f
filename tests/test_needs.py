"""Tests of the needs reader: what a meeting needs, read from its text."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.models import Needs
from mailbot.parsers.envelope import parse_envelope
from mailbot.parsers.needs import read_needs, strip_boilerplate

DATA = Path(__file__).parent / "data"
SHARED_CORPUS = Path("/work/shared/corpus")


def corpus_text(name: str) -> str:
    """The body text of a corpus message (tests/data copy first, else shared)."""
    for path in (*DATA.rglob(name), SHARED_CORPUS / name):
        if path.is_file():
            envelope = parse_envelope(
                path.read_bytes(),
                service_address="localretmeet@webfine.com",
                own_domain="mailbot.localret.cat",
            )
            return envelope.text
    pytest.skip(f"corpus file {name} is not available")


TEAMS_EN = """Ple ordinari

________________________________________________________________________________
Microsoft Teams meeting
Join on your computer, mobile app or room device
Click here to join the meeting<https://teams.microsoft.com/l/meetup-join/19%3ameeting>
Meeting ID: 374 516 887 215
Passcode: hT4xY9
Download Teams | Join on the web
Or call in (audio only)
+34 910 00 00 00,,512345678#   Spain, Madrid
Phone Conference ID: 512 345 678#
Find a local number | Reset PIN
Learn More | Meeting options
This meeting will be recorded and streamed on YouTube.
________________________________________________________________________________
"""

MEET_DESCRIPTION = """Junta de Govern Local

-::~:~::~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~::~:~::-
Join with Google Meet: https://meet.google.com/abc-defg-hij
View live stream: https://stream.meet.google.com/stream/6b1c2a
Join by phone
(ES) +34 932 00 00 00 PIN: 123456789#
Please do not edit this section. Recording is available to attendees.
-::~:~::~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~::~:~::-

Invitation from Google Calendar: https://calendar.google.com/calendar/
You are receiving this email because you are an attendee of the event.
Forwarding this invitation could allow any recipient to send a response.
"""

ZOOM_INVITATION = """Ajuntament de Prova is inviting you to a scheduled Zoom meeting.

Topic: Comissió informativa d'Urbanisme
Time: Mar 3, 2026 06:00 PM Madrid

Join Zoom Meeting
https://us02web.zoom.us/j/85712345678?pwd=QWxhZGRpbjpvcGVuIHNlc2FtZQ

Meeting ID: 857 1234 5678
Passcode: 443511
---
One tap mobile
+34917870058,,85712345678#,,,,*443511# Spain
+34931787454,,85712345678#,,,,*443511# Spain

Dial by your location
        +34 91 787 0058 Spain
        +34 93 178 7454 Spain
Meeting ID: 857 1234 5678
Passcode: 443511
Find your local number: https://us02web.zoom.us/u/kb1streamRecord
"""

WEBEX_INVITATION = """Consell d'alcaldes
Join meeting https://ajuntament.webex.com/meet/record-stream
Meeting number (access code): 2634 123 4567
Meeting password: 1234abcd
Join by video system
Dial 26341234567@ajuntament.webex.com
"""


def needs(text: str) -> dict[str, object]:
    return read_needs(text).as_dict()


# --- stream -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Hi haurà retransmissió en directe",
        "La sessió es retransmetrà per YouTube",
        "Emissió en directe",
        "Se hará retransmisión en directo",
        "Emisión en directo del acto",
        "We need a live stream",
        "Streaming on YouTube please",
    ],
)
def test_stream_is_read(text: str) -> None:
    assert read_needs(text).stream is True


@pytest.mark.parametrize(
    "text",
    [
        "Reunió sense retransmissió. YouTube no.",
        "No es retransmetrà. Es farà per YouTube només internament",
        "Sesión sin retransmisión; enlace de YouTube adjunto",
        "No se retransmitirá en YouTube",
        "No streaming, just YouTube links in the agenda",
    ],
)
def test_stream_negation_wins_over_a_keyword_elsewhere(text: str) -> None:
    assert read_needs(text).stream is False


@pytest.mark.parametrize(
    "text",
    [
        "Streaming: no",
        "Retransmissió: no",
        "Retransmisión: no",
        "Retransmissió en directe: no",
        "Emissió en directe: no",
        "Live stream: no",
        "Es retransmetrà? No",
        "Streaming not required",
    ],
)
def test_stream_answered_no_after_its_name_is_false(text: str) -> None:
    assert read_needs(text).stream is False


@pytest.mark.parametrize(
    "text", ["Streaming: yes", "Retransmissió: sí", "Retransmisión (sí/no): sí"]
)
def test_stream_answered_yes_after_its_name_is_true(text: str) -> None:
    assert read_needs(text).stream is True


def test_a_plenary_answered_no_stream_does_not_stream() -> None:
    result = read_needs("Ple ordinari\nRetransmissió: no")

    assert ("plenary", False) == (result.kind, result.stream)


def test_text_without_stream_words_is_not_a_stream() -> None:
    assert read_needs("Reunió de treball amb els tècnics").stream is False


def test_negating_recording_does_not_negate_stream() -> None:
    text = "No cal enregistrar la sessió, però sí retransmetre-la"

    assert (True, False) == (read_needs(text).stream, read_needs(text).recording)


# --- channel ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Retransmissió pel canal propi",
        "Es farà pel nostre canal de YouTube",
        "Retransmissió pel canal de l'ajuntament",
        "Retransmisión por nuestro canal",
        "Retransmisión en el canal propio",
        "Live stream on our own channel",
        "Emissió a https://www.youtube.com/@ajuntamentdeprova",
    ],
)
def test_own_channel_is_read(text: str) -> None:
    assert ("own", True) == (read_needs(text).channel, read_needs(text).stream)


@pytest.mark.parametrize(
    "text",
    [
        "Retransmissió pel canal del consorci",
        "Es farà pel canal de Localret",
        "Retransmisión por el canal del consorcio",
        "Stream on the LOCALRETMEET channel",
    ],
)
def test_consortium_channel_is_read(text: str) -> None:
    assert ("consortium", True) == (read_needs(text).channel, read_needs(text).stream)


def test_no_own_channel_with_consortium_channel_reads_consortium() -> None:
    text = "No tenim canal propi; es retransmetrà pel canal del consorci"

    assert "consortium" == read_needs(text).channel


def test_channel_answers_are_read() -> None:
    text = "Canal propi: no\nCanal del consorci: sí"

    assert "consortium" == read_needs(text).channel


def test_unsaid_channel_is_none() -> None:
    assert read_needs("Retransmissió en directe").channel is None


# --- recording ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Cal enregistrament de la sessió",
        "Volem enregistrar el ple",
        "Gravació de la sessió",
        "Necessitem gravar-la",
        "Se requiere grabación",
        "Queremos grabar la sesión",
        "Please record the meeting",
    ],
)
def test_recording_is_read(text: str) -> None:
    assert read_needs(text).recording is True


@pytest.mark.parametrize(
    "text",
    [
        "No cal enregistrar. Enregistrament no.",
        "Sesión sin grabación",
        "No grabar, por favor",
        "No recording needed",
    ],
)
def test_recording_negation_wins(text: str) -> None:
    assert read_needs(text).recording is False


@pytest.mark.parametrize(
    "text",
    [
        "Recording: no",
        "Enregistrament: no",
        "Gravació: no",
        "Grabación: no",
        "Grabación: NO",
        "Gravació (sí/no): no",
        "- Gravació - no",
        "¿Se grabará la sesión? No",
        "Es gravarà? No.",
        "Recording: not needed",
        "Grabación: ninguna",
        "Enregistrament: cap",
        "Recording: n/a",
        "Enregistrament no.",
        "L'enregistrament no és necessari",
        "Grabación no, gracias",
    ],
)
def test_recording_answered_no_after_its_name_is_false(text: str) -> None:
    assert read_needs(text).recording is False


@pytest.mark.parametrize(
    "text",
    ["Recording: yes", "Gravació: sí", "Grabación: Sí", "Gravació (sí/no): sí"],
)
def test_recording_answered_yes_after_its_name_is_true(text: str) -> None:
    assert read_needs(text).recording is True


def test_each_label_answers_its_own_need() -> None:
    result = read_needs("Retransmissió: no\nEnregistrament: sí")

    assert (False, True) == (result.stream, result.recording)


def test_answers_on_one_line_are_read_separately() -> None:
    result = read_needs("Streaming: sí - Gravació: no")

    assert (True, False) == (result.stream, result.recording)


def test_one_answer_for_two_needs_answers_both() -> None:
    result = read_needs("Retransmissió i gravació: no")

    assert (False, False) == (result.stream, result.recording)


def test_a_negation_at_the_end_of_a_line_does_not_reach_the_next() -> None:
    result = read_needs("Sense retransmissió\nCal enregistrar la sessió")

    assert (False, True) == (result.stream, result.recording)


def test_a_negation_reads_on_across_a_wrapped_line() -> None:
    text = (
        "Aquesta sessió de la comissió informativa d'urbanisme es farà per Zoom i no"
        " es\nretransmetrà"
    )

    assert read_needs(text).stream is False


@pytest.mark.parametrize(
    "text",
    [
        "No es retransmetrà ni s'enregistrarà",
        "No es retransmetrà en directe ni tampoc s'enregistrarà",
        "Sense retransmissió ni gravació",
        "No se retransmitirá ni se grabará",
        "No se retransmitirá por YouTube ni tampoco se grabará",
        "Sin retransmisión ni grabación",
        "no streaming nor recording",
        "No live stream on YouTube nor recording",
        "no recording nor streaming",
        "Neither streamed nor recorded",
    ],
)
def test_a_negation_carries_over_ni_and_nor(text: str) -> None:
    result = read_needs(text)

    assert (False, False) == (result.stream, result.recording)


def test_a_negation_does_not_carry_over_and() -> None:
    result = read_needs("No es retransmetrà i s'enregistrarà")

    assert (False, True) == (result.stream, result.recording)


def test_spanish_recordar_is_not_a_recording() -> None:
    assert (
        read_needs("Recordatorio: recordad traer la documentación").recording is False
    )


# --- support ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Us demanem que feu d'amfitrions",
        "Necessitem un amfitrió de l'equip de suport",
        "Solicitamos que actúen como anfitrión",
        "Please act as host",
    ],
)
def test_host_support_is_read(text: str) -> None:
    assert "host" == read_needs(text).support


@pytest.mark.parametrize(
    "text",
    [
        "Demanem suport tècnic en directe",
        "Cal assistència tècnica durant el ple",
        "Necesitamos soporte técnico",
        "Se pide asistencia técnica",
        "We need technical support",
    ],
)
def test_technical_support_is_read(text: str) -> None:
    assert "technical" == read_needs(text).support


def test_host_wins_over_technical_support() -> None:
    assert "host" == read_needs("Suport tècnic i que feu d'amfitrions").support


def test_declined_technical_support_is_none() -> None:
    assert read_needs("No cal suport tècnic").support is None


@pytest.mark.parametrize(
    "text", ["Suport tècnic: no", "Soporte técnico: no", "Suport tècnic en directe: no"]
)
def test_technical_support_answered_no_is_none(text: str) -> None:
    assert read_needs(text).support is None


def test_host_answered_no_leaves_technical_support() -> None:
    assert "technical" == read_needs("Amfitrió: no\nSuport tècnic: sí").support


def test_sentence_before_does_not_negate_support() -> None:
    assert "technical" == read_needs("Sin grabación. Soporte técnico, gracias").support


# --- kind ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Ple ordinari",
        "Ple extraordinari de juny",
        "Convocatòria de la sessió del Ple",
        "Ple de l'Ajuntament de Prova",
        "Ple municipal",
        "Sessió plenària",
        "Pleno ordinario",
        "Sesión plenaria del ayuntamiento",
        "Convocatoria del pleno",
        "Plenary session",
    ],
)
def test_plenary_is_read(text: str) -> None:
    assert "plenary" == read_needs(text).kind


@pytest.mark.parametrize(
    "text",
    [
        "Reunió de treball: l'aforament és ple",
        "Treballem a ple rendiment",
        "La sala és plena",
        "En pleno centro de la ciudad",
        "El edificio funciona a pleno rendimiento",
    ],
)
def test_full_is_not_plenary(text: str) -> None:
    assert read_needs(text).kind is None


def test_plenary_always_streams() -> None:
    assert (True, "plenary") == (
        read_needs("Ple ordinari").stream,
        read_needs("Ple ordinari").kind,
    )


def test_plenary_with_negated_stream_keeps_kind_and_no_stream() -> None:
    result = read_needs("Ple extraordinari. No es retransmetrà.")

    assert ("plenary", False) == (result.kind, result.stream)


@pytest.mark.parametrize(
    "text",
    ["Junta de Govern Local", "Junta de Gobierno Local", "Sessió de la JGL"],
)
def test_board_is_read(text: str) -> None:
    assert "board" == read_needs(text).kind


@pytest.mark.parametrize(
    "text",
    [
        "Comissió informativa d'Hisenda",
        "Comisión informativa de urbanismo",
        "Comissió especial de comptes",
        "Comisión de seguimiento",
        "Audit committee",
    ],
)
def test_committee_is_read(text: str) -> None:
    assert "committee" == read_needs(text).kind


@pytest.mark.parametrize(
    "text",
    ["Consell d'alcaldes", "Mesa de contractació", "Assemblea general", "Asamblea"],
)
def test_other_kind_is_read(text: str) -> None:
    assert "other" == read_needs(text).kind


def test_kind_named_first_wins() -> None:
    assert "committee" == read_needs("Comissió informativa prèvia al Ple").kind


def test_entity_name_consell_comarcal_is_not_a_kind() -> None:
    assert read_needs("Reunió tècnica - Consell Comarcal del Maresme").kind is None


def test_other_kinds_do_not_stream_by_themselves() -> None:
    assert read_needs("Junta de Govern Local").stream is False


# --- participants -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("Seran 30 participants", 30),
        ("uns 40 assistents", 40),
        ("45 persones", 45),
        ("unos 50 participantes", 50),
        ("100 asistentes", 100),
        ("participants: 25", 25),
        ("Aforament 300", 300),
        ("about 20 people", 20),
        ("entre 30 i 40 persones", 40),
        ("Participantes previstos: 12", 12),
    ],
)
def test_participants_are_read(text: str, count: int) -> None:
    assert count == read_needs(text).participants


@pytest.mark.parametrize(
    "text",
    [
        "1.200 asistentes",
        "1.200 participants",
        "1 200 persones",
        "1\u00a0200 persones",
        "1\u202f200 participants",
        "1,200 attendees",
        "Participants: 1.200",
        "Aforo: 1 200",
        "Expected attendees: 1,200",
        "entre 1.000 i 1.200 persones",
        "1200 participantes",
    ],
)
def test_thousands_separators_are_read(text: str) -> None:
    assert 1200 == read_needs(text).participants


def test_five_digit_counts_are_read() -> None:
    assert 12000 == read_needs("12000 persones").participants


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("Ple a les 18.30, 20 participants", 20),
        ("Sessió de l'1.12.2026, 30 persones", 30),
        ("Meeting ID: 111 222 333\n30 persones", 30),
        ("ID: 857 1234 5678 - 250 participants", 250),
        ("Tel. 93 123 45 67, 20 persones", 20),
    ],
    ids=["time", "date", "nine-digit Zoom ID", "Zoom ID", "phone"],
)
def test_times_dates_zoom_ids_and_phones_are_not_counts(text: str, count: int) -> None:
    assert count == read_needs(text).participants


def test_a_time_is_not_a_count() -> None:
    assert read_needs("Ple a les 18.30 h, participants a la sala").participants is None


def test_unsaid_participants_are_none() -> None:
    assert read_needs("Ple ordinari a les 19 h, sala 2").participants is None


# --- Zoom ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "ID de la reunió: 111 2222 3333",
        "ID de reunió 111-2222-3333",
        "ID de la reunión: 11122223333",
        "Meeting ID: 111 2222 3333",
        "ID: 111 2222 3333",
        "https://us02web.zoom.us/j/11122223333",
    ],
)
def test_zoom_id_is_read_as_digits(text: str) -> None:
    assert "11122223333" == read_needs(text).zoom_id


def test_nine_digit_zoom_id_is_read() -> None:
    assert "123456789" == read_needs("Meeting ID: 123 456 789").zoom_id


def test_twelve_digits_are_not_a_zoom_id() -> None:
    assert read_needs("Meeting ID: 123 456 789 012").zoom_id is None


@pytest.mark.parametrize(
    "text",
    [
        "Codi d'accés: 443511",
        "Codi: 443511",
        "Contrasenya 443511",
        "Código de acceso: 443511",
        "Contraseña: 443511",
        "Passcode: 443511",
        "Password: 443511",
    ],
)
def test_zoom_code_is_read(text: str) -> None:
    assert "443511" == read_needs(text).zoom_code


def test_zoom_code_keeps_its_case() -> None:
    assert "aB12Cd" == read_needs("Passcode: aB12Cd.").zoom_code


def test_pwd_in_the_link_is_a_code_when_none_is_written() -> None:
    text = "https://us02web.zoom.us/j/11122223333?pwd=aBc123"

    assert "aBc123" == read_needs(text).zoom_code


def test_postal_code_is_not_a_zoom_code() -> None:
    assert read_needs("Codi postal: 08001").zoom_code is None


# --- boilerplate --------------------------------------------------------------


def test_teams_block_is_stripped() -> None:
    stripped = strip_boilerplate(TEAMS_EN)

    assert "Ple ordinari" == stripped


def test_teams_block_gives_no_needs_but_the_summary() -> None:
    assert Needs(stream=True, kind="plenary") == read_needs(TEAMS_EN)


def test_meet_block_and_footer_are_stripped() -> None:
    assert "Junta de Govern Local" == strip_boilerplate(MEET_DESCRIPTION)


def test_meet_live_stream_link_is_not_a_need() -> None:
    assert Needs(kind="board") == read_needs(MEET_DESCRIPTION)


def test_zoom_invitation_keeps_id_and_code_only() -> None:
    expected = Needs(kind="committee", zoom_id="85712345678", zoom_code="443511")

    assert expected == read_needs(ZOOM_INVITATION)


def test_zoom_dial_in_lines_are_stripped() -> None:
    stripped = strip_boilerplate(ZOOM_INVITATION)

    assert ("One tap" in stripped, "+34" in stripped, "zoom.us/u/" in stripped) == (
        False,
        False,
        False,
    )


def test_webex_join_block_is_not_a_need() -> None:
    assert Needs(kind="other") == read_needs(WEBEX_INVITATION)


@pytest.mark.parametrize(
    "footer",
    [
        "Aquest missatge és confidencial i s'adreça només al destinatari. "
        "Queda prohibida la gravació o retransmissió del seu contingut.",
        "Este mensaje es confidencial y va dirigido exclusivamente a su "
        "destinatario. Prohibida su grabación o retransmisión.",
        "This e-mail is confidential and intended for the recipient only; "
        "do not record, stream or forward it.",
    ],
)
def test_confidentiality_footer_is_not_a_need(footer: str) -> None:
    assert Needs(kind="board") == read_needs(f"Junta de Govern\n\n{footer}")


def test_html_description_is_read_as_text() -> None:
    text = "<p>Ple ordinari</p><br>Retransmissi&oacute; pel <b>canal propi</b>"

    assert (True, "own", "plenary") == (
        read_needs(text).stream,
        read_needs(text).channel,
        read_needs(text).kind,
    )


def test_real_teams_invitation_body_gives_no_needs() -> None:
    text = corpus_text("comm-central__teams-meeting-invite.eml")

    assert (Needs(), "teams.microsoft.com" in strip_boilerplate(text)) == (
        read_needs(text),
        False,
    )


def test_real_meet_invitation_body_gives_no_needs() -> None:
    text = corpus_text("comm-central__meet-meeting-invite.eml")

    assert (Needs(), "google.com" in strip_boilerplate(text)) == (
        read_needs(text),
        False,
    )


def test_empty_text_gives_no_needs() -> None:
    assert Needs() == read_needs("")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gives_needs(text: str) -> None:
    assert isinstance(read_needs(text), Needs)
