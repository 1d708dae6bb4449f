"""Tests of reading registration requests: fields, NIF, phone, address, channel.

The mails under tests/data/registration were written for these tests; their
NIFs are built with the official control algorithm and are not necessarily
the entities' real ones. The real NIFs below are published ones.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.parsers.registration import (
    Problem,
    RegistrationRequest,
    looks_like_registration,
    normalise_phone,
    normalise_youtube_url,
    parse_registration,
    valid_nif,
)
from mailbot.parsers.text import html_to_text

DATA = Path(__file__).parent / "data" / "registration"
REMINDER = Problem(
    "zoom_email",
    "paid-zoom-reminder",
    "the address must not already own a paid Zoom account",
)


def read(name: str) -> tuple[str, str]:
    """The subject and plain-text body of one of the registration mails."""
    message = email.message_from_bytes(
        (DATA / name).read_bytes(), policy=email.policy.default
    )
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    return str(message["Subject"]), body.get_content()


def parse(name: str) -> RegistrationRequest:
    subject, text = read(name)
    return parse_registration(subject, text)


def codes(problems: tuple[Problem, ...]) -> list[tuple[str, str]]:
    return [(problem.field, problem.code) for problem in problems]


# Whole requests, one mail each.


def test_catalan_labels_with_own_channel_are_read_completely() -> None:
    expected = RegistrationRequest(
        entity_name="Ajuntament de Vic",
        nif="P0829800B",
        contact_name="Anna Casals Puigdomènech",
        contact_role="Tècnica d'organització",
        phone="+34 938 862 100",
        zoom_email="secretaria@vic.cat",
        youtube_channel="https://www.youtube.com/@ajuntamentdevic",
        has_own_channel=True,
        channel_agreement=None,
        language="ca",
        problems=(),
        warnings=(REMINDER,),
    )

    actual = parse("ca_labels_own_channel.eml")

    assert expected == actual


def test_spanish_labels_without_channel_and_with_agreement_are_complete() -> None:
    expected = RegistrationRequest(
        entity_name="Ayuntamiento de Les Borges Blanques",
        nif="P2500900B",
        contact_name="Jordi Solé Roca",
        contact_role="Secretario-interventor",
        phone="+34 973 142 850",
        zoom_email="secretaria@ajlesborgesblanques.cat",
        youtube_channel=None,
        has_own_channel=False,
        channel_agreement=True,
        language="es",
        problems=(),
        warnings=(REMINDER,),
    )

    actual = parse("es_labels_no_channel_agreement.eml")

    assert expected == actual


def test_free_form_letter_is_read_and_its_signature_and_footer_do_not_win() -> None:
    expected = RegistrationRequest(
        entity_name="Ajuntament de Sant Joan de les Abadesses",
        nif="P1716400E",
        contact_name="Marta Vila Font",
        contact_role="secretària-interventora",
        phone="+34 972 720 013",
        zoom_email="alcaldia@santjoandelesabadesses.cat",
        youtube_channel=None,
        has_own_channel=False,
        channel_agreement=True,
        language="ca",
        problems=(),
        warnings=(REMINDER,),
    )

    actual = parse("ca_free_form_letter_footer.eml")

    assert expected == actual


def test_outlook_table_flattened_with_tabs_is_read() -> None:
    expected = RegistrationRequest(
        entity_name="Consell Comarcal d’Osona",
        nif="Q0800200H",
        contact_name="Pere Serrat i Bosch",
        contact_role="Cap de Serveis Informàtics",
        phone="+34 938 832 212 ext. 215",
        zoom_email="tic@ccosona.cat",
        youtube_channel="https://www.youtube.com/c/ConsellComarcaldOsona",
        has_own_channel=True,
        channel_agreement=False,
        language="ca",
        problems=(),
        warnings=(REMINDER,),
    )

    actual = parse("ca_outlook_table_tabs.eml")

    assert expected == actual


def test_html_table_flattened_by_the_mime_layer_gives_the_same_parse() -> None:
    message = email.message_from_bytes(
        (DATA / "ca_outlook_table_tabs.eml").read_bytes(), policy=email.policy.default
    )
    assert isinstance(message, EmailMessage)
    html = message.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage)
    expected = parse("ca_outlook_table_tabs.eml")

    actual = parse_registration(
        str(message["Subject"]), html_to_text(html.get_content())
    )

    assert expected == actual


def test_label_and_value_separated_by_one_space_are_split() -> None:
    text = (
        "Nom de l'ens Ajuntament de Vic\nNIF P0829800B\n"
        "Persona de contacte Anna Casals\nCàrrec Tècnica\n"
        "Telèfon 938 862 100 ext. 12\nCorreu del compte Zoom secretaria@vic.cat"
    )

    actual = parse_registration("", text)

    assert (
        "Ajuntament de Vic",
        "P0829800B",
        "Anna Casals",
        "Tècnica",
        "+34 938 862 100 ext. 12",
        "secretaria@vic.cat",
    ) == (
        actual.entity_name,
        actual.nif,
        actual.contact_name,
        actual.contact_role,
        actual.phone,
        actual.zoom_email,
    )


def test_sentence_that_starts_with_label_words_is_not_split() -> None:
    actual = parse_registration("", "Nom de l'ens i NIF els trobareu al decret adjunt")

    assert (None, None) == (actual.entity_name, actual.nif)


def test_pipe_table_is_read() -> None:
    expected = RegistrationRequest(
        entity_name="Ayuntamiento de Tàrrega",
        nif="P2521700A",
        contact_name="Laura Pons Miró",
        contact_role="Técnica de sistemas",
        phone="+34 973 311 500",
        zoom_email="informatica@ajtarrega.cat",
        youtube_channel="https://www.youtube.com/channel/UCq3Zk8nVd2Xy7LmPa1bQwEr",
        has_own_channel=True,
        channel_agreement=None,
        language="es",
        problems=(),
        warnings=(REMINDER,),
    )

    actual = parse("es_pipe_table.eml")

    assert expected == actual


def test_request_forwarded_again_gives_the_same_parse() -> None:
    expected = parse("ca_labels_own_channel.eml")

    actual = parse("ca_forwarded_again.eml")

    assert expected == actual


def test_reply_with_a_correction_prefers_the_newest_text() -> None:
    actual = parse("ca_reply_corrects_phone.eml")

    assert ("+34 938 680 833", "P0803100G", "Alcalde", False, True, ()) == (
        actual.phone,
        actual.nif,
        actual.contact_role,
        actual.has_own_channel,
        actual.channel_agreement,
        actual.problems,
    )


def test_missing_role_is_the_only_problem() -> None:
    actual = parse("ca_missing_role.eml")

    assert [("contact_role", "missing")] == codes(actual.problems)


def test_wrong_nif_control_character_is_a_problem() -> None:
    actual = parse("es_wrong_nif.eml")

    assert ("P2516400C", [("nif", "invalid-nif")]) == (
        actual.nif,
        codes(actual.problems),
    )


def test_personal_zoom_address_is_accepted_with_a_warning() -> None:
    actual = parse("ca_personal_address.eml")

    assert (
        (),
        [("zoom_email", "personal-address"), ("zoom_email", "paid-zoom-reminder")],
    ) == (
        actual.problems,
        codes(actual.warnings),
    )


def test_invalid_phone_is_a_problem_that_quotes_it() -> None:
    actual = parse("es_invalid_phone.eml")

    assert (Problem("phone", "invalid-phone", "977 42 00"),) == actual.problems


def test_video_link_given_as_channel_is_an_invalid_url() -> None:
    actual = parse("ca_channel_url_invalid.eml")

    assert [("youtube_channel", "invalid-youtube-url")] == codes(actual.problems)


def test_no_channel_sentence_and_signed_agreement_sentence_are_read() -> None:
    actual = parse("ca_no_channel_signed_agreement.eml")

    assert (False, True, None, ()) == (
        actual.has_own_channel,
        actual.channel_agreement,
        actual.youtube_channel,
        actual.problems,
    )


def test_forwarded_outlook_original_with_fields_out_of_order_is_read() -> None:
    expected = RegistrationRequest(
        entity_name="Ayuntamiento de Amposta",
        nif="P4301400J",
        contact_name="Marc Vidal Queralt",
        contact_role="Técnico de informática",
        phone="+34 977 700 018",
        zoom_email="alcaldia@ajamposta.cat",
        youtube_channel="https://www.youtube.com/@AjuntamentAmposta",
        has_own_channel=True,
        channel_agreement=None,
        language="es",
        problems=(),
        warnings=(REMINDER,),
    )

    actual = parse("es_outlook_original_message_out_of_order.eml")

    assert expected == actual


def test_dni_as_nif_is_accepted_with_a_warning_and_pending_agreement_is_no() -> None:
    actual = parse("es_dni_as_nif.eml")

    assert (
        "12345678Z",
        (),
        ["unusual-nif", "paid-zoom-reminder", "no-stream-channel"],
        False,
    ) == (
        actual.nif,
        actual.problems,
        [warning.code for warning in actual.warnings],
        actual.channel_agreement,
    )


def test_labels_with_values_on_the_next_line_are_read() -> None:
    actual = parse("ca_labels_on_next_line.eml")

    assert (
        "Ajuntament de Begur",
        "P1702200E",
        "Lluís Pagès Rovira",
        "+34 972 624 000",
        "secretaria@ajbagur.cat",
        False,
        True,
        (),
    ) == (
        actual.entity_name,
        actual.nif,
        actual.contact_name,
        actual.phone,
        actual.zoom_email,
        actual.has_own_channel,
        actual.channel_agreement,
        actual.problems,
    )


def test_spanish_free_form_answer_above_quoted_question_is_read() -> None:
    expected = RegistrationRequest(
        entity_name="Ayuntamiento de Flix",
        nif="P4306300G",
        contact_name="Teresa Borràs Mestre",
        contact_role="secretaria-interventora",
        phone="+34 977 410 006",
        zoom_email="ajuntament@flix.cat",
        youtube_channel="https://www.youtube.com/@ajuntamentdeflix",
        has_own_channel=True,
        channel_agreement=None,
        language="es",
        problems=(),
        warnings=(REMINDER,),
    )

    actual = parse("es_free_form_with_quoted_history.eml")

    assert expected == actual


@pytest.mark.parametrize("name", sorted(path.name for path in DATA.glob("*.eml")))
def test_every_registration_mail_looks_like_one(name: str) -> None:
    subject, text = read(name)

    assert looks_like_registration(subject, text) is True


# Completeness rules, on short texts.


def test_empty_text_misses_every_field() -> None:
    expected = [
        ("entity_name", "missing"),
        ("nif", "missing"),
        ("contact_name", "missing"),
        ("contact_role", "missing"),
        ("phone", "missing"),
        ("zoom_email", "missing"),
        ("youtube_channel", "missing"),
    ]

    actual = parse_registration("", "")

    assert expected == codes(actual.problems)


def test_paid_zoom_reminder_is_always_given() -> None:
    actual = parse_registration("Alta", "Correu del compte Zoom: secretaria@ajvic.cat")

    assert REMINDER in actual.warnings


def test_own_channel_without_address_asks_for_it() -> None:
    actual = parse_registration("", "Disposem de canal propi de YouTube: Sí")

    assert Problem("youtube_channel", "missing", "the channel's address") in (
        actual.problems
    )


def test_no_own_channel_without_agreement_answer_asks_for_it() -> None:
    actual = parse_registration("", "Canal de YouTube propi: No")

    assert ("channel_agreement", "missing") in codes(actual.problems)


def test_channel_answer_no_ignores_a_stray_url() -> None:
    actual = parse_registration(
        "", "Canal de YouTube: no\nVegeu https://www.youtube.com/@algu"
    )

    assert (False, None) == (actual.has_own_channel, actual.youtube_channel)


def test_invalid_zoom_address_is_a_problem() -> None:
    actual = parse_registration("", "Correu electrònic del compte Zoom: secretaria@vic")

    assert ("zoom_email", "invalid-email") in codes(actual.problems)


def test_zoom_address_is_normalised() -> None:
    actual = parse_registration("", "Correo electrónico: Secretaria@AJVIC.CAT")

    assert "Secretaria@ajvic.cat" == actual.zoom_email


def test_contact_persons_own_address_is_not_taken_for_the_zoom_user() -> None:
    actual = parse_registration(
        "", "Correu electrònic de la persona de contacte: anna.casals@vic.cat"
    )

    assert actual.zoom_email is None


def test_service_address_in_the_text_is_not_taken_for_the_zoom_user() -> None:
    actual = parse_registration(
        "", "Demanem l'alta de l'usuari escrivint a localretmeet@webfine.com."
    )

    assert actual.zoom_email is None


@pytest.mark.parametrize(
    ("text", "personal"),
    [
        ("secretaria@ajvic.cat", False),
        ("alcaldia@santjoan.cat", False),
        ("tic@ccosona.cat", False),
        ("ajuntament.vic@vic.cat", False),
        ("ple.videoactes@ajvic.cat", False),
        ("anna.casals@vic.cat", True),
        ("anna@vic.cat", True),
        ("acasals@vic.cat", True),
        ("ajuntamentvic@gmail.com", True),
    ],
)
def test_personal_address_warning(text: str, personal: bool) -> None:
    actual = parse_registration(
        "", f"Persona de contacte: Anna Casals Puig\nCorreu del compte Zoom: {text}"
    )

    assert personal == ("personal-address" in [w.code for w in actual.warnings])


@pytest.mark.parametrize(
    ("subject", "text", "language"),
    [
        ("Alta", "Bon dia, us enviem les dades de l'ens per a l'alta.", "ca"),
        ("Alta", "Buenos días, les enviamos los datos del ente para el alta.", "es"),
        ("Solicitud de alta", "", "es"),
        ("", "", "ca"),
    ],
)
def test_language_of_the_request(subject: str, text: str, language: str) -> None:
    actual = parse_registration(subject, text)

    assert language == actual.language


# NIF.


@pytest.mark.parametrize(
    "nif",
    [
        "P0801900B",  # Ajuntament de Barcelona
        "P1708500B",  # Ajuntament de Girona
        "P2515100B",  # Ajuntament de Lleida
        "P0800000B",  # Diputació de Barcelona
        "S0811001G",  # Generalitat de Catalunya
        "Q2826000H",  # a public body (Q, letter control)
        "A58818501",  # a company (A, digit control)
        "B65410011",  # a company (B, digit control)
        "G0829800B",  # an association (G accepts the letter...)
        "G08298002",  # ...and the digit
        "12345678Z",  # DNI
        "X1234567L",  # NIE
        "Y0000000Z",  # NIE
    ],
)
def test_valid_nif(nif: str) -> None:
    assert valid_nif(nif) is True


@pytest.mark.parametrize(
    "nif",
    [
        "P0801900C",  # wrong control letter
        "P08019002",  # P requires the letter form
        "S08110017",  # S requires the letter form
        "Q2826000I",  # wrong control letter
        "A5881850A",  # A requires the digit form
        "B65410012",  # wrong control digit
        "G08298003",  # wrong control digit
        "12345678A",  # DNI, wrong letter
        "X1234567A",  # NIE, wrong letter
        "I0801900B",  # I is no NIF letter
        "P080190B",  # too short
        "",
        "hola",
    ],
)
def test_invalid_nif(nif: str) -> None:
    assert valid_nif(nif) is False


@pytest.mark.parametrize("text", ["p-0801900-b", "P 0801900 B", "ES-P0801900B"])
def test_nif_is_normalised_before_the_check(text: str) -> None:
    actual = parse_registration("", f"NIF: {text}")

    assert ("P0801900B", []) == (
        actual.nif,
        [p for p in codes(actual.problems) if p[0] == "nif"],
    )


def test_company_nif_is_accepted_with_a_warning() -> None:
    actual = parse_registration("", "NIF: B65410011")

    assert ["unusual-nif"] == [w.code for w in actual.warnings if w.field == "nif"]


# Phone numbers.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("938 862 100", "+34 938 862 100"),
        ("93 886 21 00", "+34 938 862 100"),
        ("93.886.21.00", "+34 938 862 100"),
        ("938-86-21-00", "+34 938 862 100"),
        ("+34 938 86 21 00", "+34 938 862 100"),
        ("0034 938862100", "+34 938 862 100"),
        ("(+34) 938 862 100", "+34 938 862 100"),
        ("650 12 34 56", "+34 650 123 456"),
        ("712345678", "+34 712 345 678"),
        ("938 862 100 ext. 215", "+34 938 862 100 ext. 215"),
        ("938 862 100 (extensió 21)", "+34 938 862 100 ext. 21"),
        ("938 862 100 / 650 123 456", "+34 938 862 100"),
    ],
)
def test_valid_phone_is_normalised(text: str, expected: str) -> None:
    assert expected == normalise_phone(text)


@pytest.mark.parametrize(
    "text",
    ["977 42 00", "538 862 100", "+33 1 23 45 67 89", "9388621001", "telèfon", ""],
)
def test_invalid_phone_is_refused(text: str) -> None:
    assert normalise_phone(text) is None


# YouTube channel addresses.


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://www.youtube.com/channel/UCq3Zk8nVd2Xy7LmPa1bQwEr",
            "https://www.youtube.com/channel/UCq3Zk8nVd2Xy7LmPa1bQwEr",
        ),
        (
            "http://youtube.com/c/AjuntamentVic",
            "https://www.youtube.com/c/AjuntamentVic",
        ),
        ("https://m.youtube.com/@ajvic/streams", "https://www.youtube.com/@ajvic"),
        ("www.youtube.com/user/ajvic/", "https://www.youtube.com/user/ajvic"),
        ("https://www.youtube.com/@ajvic?si=abc", "https://www.youtube.com/@ajvic"),
    ],
)
def test_valid_youtube_channel_url_is_normalised(url: str, expected: str) -> None:
    assert expected == normalise_youtube_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://youtu.be/dQw4w9WgXcQ",
        "https://www.youtube.com/channel/UCshort",
        "https://www.vimeo.com/ajvic",
        "https://www.vic.cat/ple-en-directe",
        "https://www.youtube.com/",
        "Ajuntament de Vic TV",
    ],
)
def test_other_url_is_not_a_youtube_channel(url: str) -> None:
    assert normalise_youtube_url(url) is None


def test_channel_name_without_address_is_an_invalid_url() -> None:
    actual = parse_registration("", "Canal de YouTube: Ajuntament de Vic TV")

    assert (True, [("youtube_channel", "invalid-youtube-url")]) == (
        actual.has_own_channel,
        [p for p in codes(actual.problems) if p[0] == "youtube_channel"],
    )


# Telling registrations from other mail.

CATALAN_INVITATION = """\
Ajuntament de Vic us convida a una reunió de Zoom programada.

Tema: Ple ordinari de març
Hora: 27 mar 2025 07:00 PM Madrid

Unir-se a la reunió Zoom
https://us06web.zoom.us/j/11122223333?pwd=abcdef

ID de reunió: 111 2222 3333
Codi d'accés: 443511

Retransmissió en directe pel canal de YouTube propi. NIF P0829800B.
Necessitem l'alta de la llicència avançada.
"""

SPANISH_INVITATION = """\
Ayuntamiento de Flix le está invitando a una reunión de Zoom programada.

Tema: Junta de gobierno local
Unirse a la reunión Zoom
https://zoom.us/j/98765432100

ID de reunión: 987 6543 2100
Código de acceso: 123456
Persona de contacto: Teresa Borràs (secretaria)
"""


@pytest.mark.parametrize(
    ("subject", "text"),
    [
        ("Invitació: Ple ordinari @ dj. 27 de març 19:00", CATALAN_INVITATION),
        ("Invitación: Junta de gobierno", SPANISH_INVITATION),
        (
            "No puc donar d'alta la reunió",
            "Bon dia, no puc donar d'alta la reunió del ple al Zoom amb el "
            "nostre usuari. Ens podeu ajudar?\nAtentament,\nAnna Casals\n"
            "Ajuntament de Vic\nTel. 938 862 100",
        ),
        (
            "Contrasenya",
            "Com puc canviar la contrasenya del compte de Zoom? Gràcies.",
        ),
        (
            "Registre d'entrada 2025/1234",
            "Us fem arribar el justificant del registre d'entrada de la "
            "sol·licitud de subvenció. Ajuntament de Tavertet, NIF P0827900B.",
        ),
        (
            "Problema con la grabación",
            "Buenos días, ayer la grabación del pleno se cortó a los 40 minutos. "
            "¿Tenemos que darnos de alta otra vez? Un saludo, Ayuntamiento de Flix.",
        ),
        ("", ""),
    ],
)
def test_other_mail_does_not_look_like_registration(subject: str, text: str) -> None:
    assert looks_like_registration(subject, text) is False


@pytest.mark.parametrize(
    ("subject", "text"),
    [
        ("Alta d'usuari", "Us enviem les dades. NIF: P0829800B"),
        ("", "Sol·licitem donar d'alta l'ens. Persona de contacte: Anna Casals"),
        ("Solicitud de alta", "Persona de contacto: Jordi Solé. Cargo: Secretario"),
        (
            "Dades",
            "Nom de l'ens: Ajuntament de Vic\nNIF: P0829800B\n"
            "Persona de contacte: Anna\nCàrrec: Tècnica\n"
            "Correu del compte Zoom: secretaria@vic.cat",
        ),
    ],
)
def test_short_registration_looks_like_one(subject: str, text: str) -> None:
    assert looks_like_registration(subject, text) is True


# Any text at all.


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text())
def test_any_text_gives_a_request(subject: str, text: str) -> None:
    actual = parse_registration(subject, text)

    assert isinstance(actual, RegistrationRequest)
    assert actual.language in ("ca", "es")


_PIECES = st.sampled_from(
    [
        "Nom de l'ens: ",
        "NIF: ",
        "| Telèfon | ",
        "\t",
        "> ",
        "-----Missatge original-----\n",
        "El dia 3 va escriure:\n",
        "Correu electrònic del compte Zoom: ",
        "Canal de YouTube: https://www.youtube.com/@",
        "No tenim canal. Hem signat el conveni del canal del consorci.",
        "Ajuntament de ",
        "P0801900B",
        "+34 938 ",
        "@vic.cat",
        "\n",
        "-- \n",
        "Atentament,\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=40))
def test_any_mix_of_labels_gives_a_request(pieces: list[str]) -> None:
    text = "".join(pieces)

    actual = parse_registration("Alta", text)

    assert isinstance(actual, RegistrationRequest)
    assert isinstance(looks_like_registration("Alta", text), bool)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/c/evil%0d%0aBcc",
        "https://www.youtube.com/c/\u202eevil",
        "https://www.youtube.com/@name\u200b",
    ],
)
def test_channel_names_with_encoded_breaks_or_invisible_characters_are_refused(
    url: str,
) -> None:
    assert normalise_youtube_url(url) is None


def test_contact_person_with_the_role_after_a_comma_gives_both() -> None:
    request = parse_registration(
        "Alta d'usuari",
        "Nom de l'ens: Ajuntament de Girona\nNIF: P1708500B\n"
        "Persona de contacte: Joan Garcia, secretari municipal\n"
        "Telèfon: 972 419 000\n"
        "Correu electrònic del compte Zoom: secretaria@girona.cat\n"
        "Canal de YouTube propi: no\n"
        "Hem signat l'acord d'ús del canal del consorci: sí\n",
    )

    assert ("Joan Garcia", "secretari municipal") == (
        request.contact_name,
        request.contact_role,
    )
    assert [] == [p for p in request.problems if p.field.startswith("contact")]
