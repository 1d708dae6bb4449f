"""Tests of the replies: headers, text in Catalan and Spanish, the iTIP REPLY."""

from __future__ import annotations

import email
import email.policy
import importlib.resources
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from icalendar import Calendar

from mailbot.actions.reply import (
    EXPLAINED,
    ReplyFacts,
    format_date,
    format_duration,
    format_zoom_id,
    render_reply,
)
from mailbot.config import ServiceConfig
from mailbot.errors import InputError
from mailbot.models import (
    Check,
    Decision,
    Entity,
    Envelope,
    Invitation,
    Needs,
    Occurrence,
    Outcome,
    Slot,
)

SERVICE = ServiceConfig(
    address="localretmeet@webfine.com", support=("suport@localret.cat",)
)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 17, 17, 0, tzinfo=UTC)  # 18:00 in Madrid
JULY = datetime(2026, 7, 16, 17, 0, tzinfo=UTC)  # 19:00 in Madrid
LANGUAGES = ("ca", "es")
CALENDAR_OUTCOMES = {
    Outcome.BOOKED: "ACCEPTED",
    Outcome.UPDATED: "ACCEPTED",
    Outcome.PENDING: "TENTATIVE",
    Outcome.NEEDS_INFO: "TENTATIVE",
    Outcome.DECLINED: "DECLINED",
    Outcome.UNREGISTERED: "DECLINED",
}
TEXT_OUTCOMES = (
    Outcome.CANCELLED,
    Outcome.QUARANTINED,
    Outcome.REGISTRATION_PENDING,
    Outcome.REGISTRATION_INCOMPLETE,
)
NOTICES = ("reply-cap", "registration-confirmed", "registration-rejected")
# Every code the templates say they explain must have a sentence of its own.
REASON_CODES = tuple(sorted(EXPLAINED))
SIGNATURES = {
    "ca": "Equip de suport de LOCALRETMEET",
    "es": "Equipo de soporte de LOCALRETMEET",
}
GENERIC = {
    "ca": "no compleix alguna de les condicions de reserva",
    "es": "no cumple alguna de las condiciones de reserva",
}
REGISTRATION = {
    "entity_name": "Ajuntament de Vic",
    "nif": "P0830000A",
    "contact_name": "Anna Puig",
    "contact_role": "Secretària",
    "phone": "+34 938 123 456",
    "zoom_email": "anna.puig@vic.cat",
    "youtube_channel": None,
    "has_own_channel": False,
    "channel_agreement": True,
    "problems": [{"field": "phone", "code": "missing", "detail": ""}],
    "warnings": [{"field": "zoom_email", "code": "personal-address", "detail": ""}],
    "reason": "",
}


def occurrence(start: datetime, minutes: int = 150) -> Occurrence:
    return Occurrence(start=start, end=start + timedelta(minutes=minutes))


def invitation(**changes: object) -> Invitation:
    base = Invitation(
        uid="040000008200E00074C5B7101A82E008@vic.cat",
        method="REQUEST",
        sequence=2,
        dtstamp=NOW,
        organizer="secretaria@vic.cat",
        organizer_name="Secretaria Ajuntament de Vic",
        attendees=("localretmeet@webfine.com",),
        summary="Ple ordinari de desembre",
        description="",
        location="",
        comment="",
        status="CONFIRMED",
        tzid="Romance Standard Time",
        zone="Europe/Madrid",
        occurrences=(occurrence(DECEMBER),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def envelope(**changes: object) -> Envelope:
    base = Envelope(
        message_id="invite-1@vic.cat",
        from_addr="secretaria@vic.cat",
        from_name="Secretaria",
        reply_to="",
        return_path="secretaria@vic.cat",
        to=("localretmeet@webfine.com",),
        cc=(),
        subject="Convocatòria: Ple ordinari de desembre",
        references=("earlier@vic.cat",),
        automatic=None,
        text="",
        calendars=(),
        attachments=(),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


ENTITY = Entity(nif="P0830000A", name="Ajuntament de Vic", email="secretaria@vic.cat")
NEEDS = Needs(
    stream=True,
    channel="own",
    kind="plenary",
    zoom_id="11122223333",
    zoom_code="443511",
)


def facts(
    outcome: Outcome,
    *,
    reason: str = "fits",
    calendar: bool = True,
    notify_support: bool = False,
    **changes: object,
) -> ReplyFacts:
    decision = Decision(outcome=outcome, reason=reason, notify_support=notify_support)
    base = ReplyFacts(
        decision=decision,
        envelope=envelope(),
        invitation=invitation() if calendar else None,
        needs=NEEDS if calendar else None,
        entity=ENTITY,
        booking_id=7,
        licenses=((occurrence(DECEMBER), "adv-01"),),
        registration=REGISTRATION,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def render(reply_facts: ReplyFacts, language: str = "ca") -> EmailMessage:
    return render_reply(
        reply_facts,
        service=SERVICE,
        language=language,
        message_id="reply-1@webfine.com",
        now=NOW,
    )


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def calendar_of(message: EmailMessage) -> Calendar | None:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            return Calendar.from_ical(part.get_payload(decode=True))
    return None


def reparsed(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.SMTP)
    assert isinstance(parsed, EmailMessage)
    return parsed


def every_reply() -> list[tuple[ReplyFacts, str]]:
    cases = []
    for language in LANGUAGES:
        for outcome in (*CALENDAR_OUTCOMES, *TEXT_OUTCOMES):
            calendar = outcome not in (
                Outcome.REGISTRATION_PENDING,
                Outcome.REGISTRATION_INCOMPLETE,
            )
            cases.append((facts(outcome, calendar=calendar), language))
        for notice in NOTICES:
            cases.append(
                (facts(Outcome.PEOPLE, reason=notice, calendar=False), language)
            )
    return cases


ALL = pytest.mark.parametrize(
    ("reply_facts", "language"),
    every_reply(),
    ids=lambda value: (
        f"{value.decision.outcome.value}-{value.decision.reason}"
        if isinstance(value, ReplyFacts)
        else value
    ),
)


@ALL
def test_every_reply_has_no_template_syntax_left(
    reply_facts: ReplyFacts, language: str
) -> None:
    text = text_of(render(reply_facts, language))

    assert [] == [mark for mark in ("{{", "{%", "}}", "%}", "{#") if mark in text]


@ALL
def test_every_reply_leaks_no_none_or_undefined(
    reply_facts: ReplyFacts, language: str
) -> None:
    text = text_of(render(reply_facts, language))

    assert [] == [word for word in ("None", "Undefined", "[]", "()") if word in text]


@ALL
def test_every_reply_is_signed_by_the_support_team(
    reply_facts: ReplyFacts, language: str
) -> None:
    text = text_of(render(reply_facts, language))

    assert SIGNATURES[language] in text


@ALL
def test_every_reply_has_no_run_of_blank_lines(
    reply_facts: ReplyFacts, language: str
) -> None:
    text = text_of(render(reply_facts, language))

    assert "\n\n\n" not in text


@ALL
def test_every_reply_carries_the_contract_headers(
    reply_facts: ReplyFacts, language: str
) -> None:
    message = reparsed(render(reply_facts, language))

    assert {
        "From": "LOCALRETMEET <localretmeet@webfine.com>",
        "To": "Secretaria Ajuntament de Vic <secretaria@vic.cat>"
        if reply_facts.invitation
        else "Secretaria <secretaria@vic.cat>",
        "Message-ID": "<reply-1@webfine.com>",
        "In-Reply-To": "<invite-1@vic.cat>",
        "References": "<earlier@vic.cat> <invite-1@vic.cat>",
        "Auto-Submitted": "auto-replied",
        "X-Mailbot-Outcome": reply_facts.decision.outcome.value,
        "X-Mailbot-Booking": "7",
        "Content-Language": language,
        "Date": "Tue, 01 Dec 2026 09:00:00 +0000",
    } == {
        name: str(message[name])
        for name in (
            "From",
            "To",
            "Message-ID",
            "In-Reply-To",
            "References",
            "Auto-Submitted",
            "X-Mailbot-Outcome",
            "X-Mailbot-Booking",
            "Content-Language",
            "Date",
        )
    }


@ALL
def test_every_reply_serialises_with_crlf_only(
    reply_facts: ReplyFacts, language: str
) -> None:
    data = render(reply_facts, language).as_bytes()

    assert data.count(b"\n") == data.count(b"\r\n")


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ca", "Reserva confirmada: Ple ordinari de desembre"),
        ("es", "Reserva confirmada: Ple ordinari de desembre"),
    ],
)
def test_subject_names_the_outcome_and_the_meeting(
    language: str, expected: str
) -> None:
    message = render(facts(Outcome.BOOKED), language)

    assert expected == message["Subject"]


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ca", "Reserva pendent de revisió: Ple ordinari de desembre"),
        ("es", "Reserva pendiente de revisión: Ple ordinari de desembre"),
    ],
)
def test_subject_is_in_the_reply_language(language: str, expected: str) -> None:
    message = render(facts(Outcome.PENDING, reason="late-notice"), language)

    assert expected == message["Subject"]


def test_subject_of_non_calendar_mail_echoes_the_original_subject() -> None:
    message = render(facts(Outcome.QUARANTINED, reason="unreadable", calendar=False))

    expected = "No hem pogut llegir el missatge: Convocatòria: Ple ordinari de desembre"
    assert expected == message["Subject"]


def test_subject_is_cut_to_150_characters() -> None:
    long = invitation(summary="Sessió extraordinària " * 30)

    message = render(facts(Outcome.BOOKED, invitation=long))

    assert len(str(message["Subject"])) <= 150
    assert str(message["Subject"]).endswith("…")


@pytest.mark.parametrize(
    "hostile",
    [
        "Ple\r\nBcc: victim@example.org",
        "Ple\nBcc: victim@example.org",
        "Ple\rBcc: victim@example.org",
        "Ple\u2028Bcc: victim@example.org",
    ],
)
def test_line_breaks_in_summary_never_reach_a_header(hostile: str) -> None:
    reply = facts(Outcome.BOOKED, invitation=invitation(summary=hostile))

    message = reparsed(render(reply))

    assert None is message["Bcc"]
    assert "Reserva confirmada: Ple Bcc: victim@example.org" == message["Subject"]


def test_line_breaks_in_subject_and_names_never_reach_a_header() -> None:
    hostile = envelope(
        subject="Alta\r\nBcc: victim@example.org", from_name="Anna\r\nX-Evil: 1"
    )
    reply = facts(Outcome.QUARANTINED, calendar=False, envelope=hostile)

    message = reparsed(render(reply))

    assert (None, None) == (message["Bcc"], message["X-Evil"])
    assert '"Anna X-Evil: 1" <secretaria@vic.cat>' == message["To"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_cc_support_only_when_decision_says_so(language: str) -> None:
    copied = render(facts(Outcome.PENDING, notify_support=True), language)
    alone = render(facts(Outcome.PENDING, notify_support=False), language)

    assert ("suport@localret.cat", None) == (copied["Cc"], alone["Cc"])


def test_no_booking_header_without_a_booking() -> None:
    message = render(facts(Outcome.NEEDS_INFO, reason="all-day", booking_id=None))

    assert None is message["X-Mailbot-Booking"]


def test_non_calendar_mail_is_answered_to_its_reply_to() -> None:
    reply = facts(
        Outcome.REGISTRATION_PENDING,
        calendar=False,
        envelope=envelope(reply_to="alcaldia@vic.cat"),
    )

    message = render(reply)

    assert "alcaldia@vic.cat" == message["To"]


def test_invitation_without_organizer_is_answered_to_the_sender() -> None:
    reply = facts(Outcome.BOOKED, invitation=invitation(organizer=""))

    message = render(reply)

    assert "Secretaria <secretaria@vic.cat>" == message["To"]


def test_no_address_to_answer_is_an_input_error() -> None:
    reply = facts(
        Outcome.QUARANTINED,
        calendar=False,
        envelope=envelope(from_addr="", reply_to=""),
    )

    with pytest.raises(InputError):
        render(reply)


def test_outcome_that_gets_no_reply_is_refused() -> None:
    with pytest.raises(ValueError, match="unchanged"):
        render(facts(Outcome.UNCHANGED))


@pytest.mark.parametrize(
    ("start", "language", "expected"),
    [
        (DECEMBER, "ca", "dijous 17 de desembre de 2026, de 18:00 a 20:30 (hora"),
        (DECEMBER, "es", "jueves 17 de diciembre de 2026, de 18:00 a 20:30 (hora"),
        (JULY, "ca", "dijous 16 de juliol de 2026, de 19:00 a 21:30 (hora"),
        (JULY, "es", "jueves 16 de julio de 2026, de 19:00 a 21:30 (hora"),
    ],
)  # fmt: skip
def test_meeting_time_is_shown_in_madrid(
    start: datetime, language: str, expected: str
) -> None:
    reply = facts(
        Outcome.BOOKED, invitation=invitation(occurrences=(occurrence(start),))
    )

    text = text_of(render(reply, language))

    assert f"{expected} de Madrid)" in text


@pytest.mark.parametrize(
    ("language", "expected"),
    [("ca", "2 hores i 30 minuts"), ("es", "2 horas y 30 minutos")],
)
def test_duration_is_shown(language: str, expected: str) -> None:
    text = text_of(render(facts(Outcome.BOOKED), language))

    assert expected in text


@pytest.mark.parametrize(("outcome", "partstat"), CALENDAR_OUTCOMES.items())
def test_calendar_part_answers_with_the_outcome_partstat(
    outcome: Outcome, partstat: str
) -> None:
    calendar = calendar_of(reparsed(render(facts(outcome))))

    assert calendar is not None
    event = calendar.walk("VEVENT")[0]
    assert partstat == event["ATTENDEE"].params["PARTSTAT"]


def test_calendar_part_is_an_itip_reply_for_the_invitation() -> None:
    calendar = calendar_of(reparsed(render(facts(Outcome.BOOKED))))

    assert calendar is not None
    event = calendar.walk("VEVENT")[0]
    assert {
        "METHOD": "REPLY",
        "VERSION": "2.0",
        "UID": "040000008200E00074C5B7101A82E008@vic.cat",
        "SEQUENCE": 2,
        "ORGANIZER": "mailto:secretaria@vic.cat",
        "ATTENDEE": "mailto:localretmeet@webfine.com",
        "SUMMARY": "Ple ordinari de desembre",
        "DTSTAMP": NOW,
        "one event": 1,
        "has comment": True,
    } == {
        "METHOD": str(calendar["METHOD"]),
        "VERSION": str(calendar["VERSION"]),
        "UID": str(event["UID"]),
        "SEQUENCE": event["SEQUENCE"],
        "ORGANIZER": str(event["ORGANIZER"]),
        "ATTENDEE": str(event["ATTENDEE"]),
        "SUMMARY": str(event["SUMMARY"]),
        "DTSTAMP": event["DTSTAMP"].dt,
        "one event": len(calendar.walk("VEVENT")),
        "has comment": bool(str(event.get("COMMENT", ""))),
    }


def test_calendar_part_has_the_itip_content_type() -> None:
    message = reparsed(render(facts(Outcome.BOOKED)))

    parts = {p.get_content_type(): p for p in message.walk()}
    calendar = parts["text/calendar"]
    assert ("multipart/alternative", "REPLY", "utf-8") == (
        message.get_content_type(),
        calendar.get_param("method"),
        str(calendar.get_content_charset()),
    )


def test_one_occurrence_reply_carries_its_recurrence_id() -> None:
    original = datetime(2027, 1, 14, 17, 0, tzinfo=UTC)
    one = invitation(recurring=True, recurrence_id=original)

    calendar = calendar_of(render(facts(Outcome.BOOKED, invitation=one)))

    assert calendar is not None
    assert original == calendar.walk("VEVENT")[0]["RECURRENCE-ID"].dt


def test_whole_series_reply_has_no_recurrence_id() -> None:
    series = invitation(recurring=True)

    calendar = calendar_of(render(facts(Outcome.BOOKED, invitation=series)))

    assert calendar is not None
    assert "RECURRENCE-ID" not in calendar.walk("VEVENT")[0]


@pytest.mark.parametrize(
    "reply_facts",
    [
        facts(Outcome.CANCELLED, reason="cancelled"),
        facts(Outcome.CANCELLED, invitation=invitation(method="CANCEL")),
        facts(Outcome.QUARANTINED, reason="unreadable", calendar=False),
        facts(Outcome.REGISTRATION_PENDING, calendar=False),
    ],
)
def test_no_calendar_part_for_cancellations_or_plain_mail(
    reply_facts: ReplyFacts,
) -> None:
    message = render(reply_facts)

    assert ("text/plain", None) == (message.get_content_type(), calendar_of(message))


@pytest.mark.parametrize("language", LANGUAGES)
def test_series_pending_lists_the_occurrences_that_do_not_fit(language: str) -> None:
    weeks = tuple(occurrence(DECEMBER + timedelta(weeks=n)) for n in range(6))
    decision = Decision(
        Outcome.PENDING,
        "recurrence",
        checks=(Check("recurrence", False, "2 of 6 do not fit"),),
        notify_support=True,
        failing=((weeks[2], "pool-full"), (weeks[4], "late-notice")),
    )
    reply = facts(
        Outcome.PENDING,
        decision=decision,
        invitation=invitation(occurrences=weeks, recurring=True),
    )

    text = text_of(render(reply, language))

    expected = {
        "ca": [
            "dijous 31 de desembre de 2026, de 18:00 a 20:30 (hora de Madrid): "
            "no queda cap llicència avançada lliure",
            "dijous 14 de gener de 2027, de 18:00 a 20:30 (hora de Madrid): "
            "la sol·licitud arriba amb menys de 24 hores d'antelació",
            "(2 de 6)",
            "Sèrie periòdica de 6 sessions",
        ],
        "es": [
            "jueves 31 de diciembre de 2026, de 18:00 a 20:30 (hora de Madrid): "
            "no queda ninguna licencia avanzada libre",
            "jueves 14 de enero de 2027, de 18:00 a 20:30 (hora de Madrid): "
            "la solicitud llega con menos de 24 horas de antelación",
            "(2 de 6)",
            "Serie periódica de 6 sesiones",
        ],
    }[language]
    assert [] == [line for line in expected if line not in text]


@pytest.mark.parametrize("language", LANGUAGES)
def test_pool_full_lists_the_nearest_free_slots(language: str) -> None:
    later = DECEMBER + timedelta(hours=3)
    decision = Decision(
        Outcome.PENDING,
        "pool-full",
        proposals=(Slot(later, later + timedelta(minutes=150)),),
    )

    text = text_of(render(facts(Outcome.PENDING, decision=decision), language))

    expected = {
        "ca": "- dijous 17 de desembre de 2026, de 21:00 a 23:30 (hora de Madrid)",
        "es": "- jueves 17 de diciembre de 2026, de 21:00 a 23:30 (hora de Madrid)",
    }[language]
    assert expected in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("code", REASON_CODES)
def test_every_known_reason_has_its_own_sentence(code: str, language: str) -> None:
    reply = facts(Outcome.PENDING, reason=code)

    text = text_of(render(reply, language))

    assert GENERIC[language] not in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_unknown_reason_still_renders_a_generic_sentence(language: str) -> None:
    reply = facts(Outcome.DECLINED, reason="martian-invasion")

    text = text_of(render(reply, language))

    assert (True, False) == (GENERIC[language] in text, "martian-invasion" in text)


@pytest.mark.parametrize("language", LANGUAGES)
def test_failed_checks_are_explained_besides_the_reason(language: str) -> None:
    decision = Decision(
        Outcome.PENDING,
        "late-notice",
        checks=(Check("notice", False), Check("capacity", False)),
    )

    text = text_of(render(facts(Outcome.PENDING, decision=decision), language))

    expected = {"ca": "llicències avançades", "es": "licencias avanzadas"}[language]
    assert expected in text.split("\n\n")[2]


@pytest.mark.parametrize("language", LANGUAGES)
def test_unknown_timezone_names_the_tzid_and_asks_for_madrid(language: str) -> None:
    unreadable = invitation(
        tzid="Customized Time Zone 3", occurrences=(), problem="unknown-timezone"
    )
    reply = facts(Outcome.NEEDS_INFO, reason="unknown-timezone", invitation=unreadable)

    text = text_of(render(reply, language))

    assert "«Customized Time Zone 3»" in text
    assert "Europe/Madrid" in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_unregistered_explains_how_to_register(language: str) -> None:
    reply = facts(Outcome.UNREGISTERED, reason="unregistered", entity=None)

    text = text_of(render(reply, language))

    expected = {
        "ca": "localretmeet@webfine.com i a localretmeet@localret.cat",
        "es": "localretmeet@webfine.com y a localretmeet@localret.cat",
    }[language]
    assert expected in text
    assert "EACAT" in text
    assert "NIF" in text


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "ca",
            [
                "- Retransmissió en directe: sí, al canal de YouTube propi de "
                "l'entitat",
                "- Enregistrament: no",
                "- Tipus de sessió: ple",
                "- Participants previstos: no indicat",
                "- ID de la reunió de Zoom: 111 2222 3333",
                "- Codi d'accés: 443511",
            ],
        ),
        (
            "es",
            [
                "- Retransmisión en directo: sí, en el canal de YouTube propio de "
                "la entidad",
                "- Grabación: no",
                "- Tipo de sesión: pleno",
                "- Participantes previstos: no indicado",
                "- ID de la reunión de Zoom: 111 2222 3333",
                "- Código de acceso: 443511",
            ],
        ),
    ],
)  # fmt: skip
def test_needs_are_shown_back_with_not_stated(
    language: str, expected: list[str]
) -> None:
    text = text_of(render(facts(Outcome.BOOKED), language))

    assert [] == [line for line in expected if line not in text]


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ca", ["- Número de reserva: 7", "- Llicència avançada assignada: adv-01"]),
        ("es", ["- Número de reserva: 7", "- Licencia avanzada asignada: adv-01"]),
    ],
)
def test_booked_reply_shows_booking_number_and_license(
    language: str, expected: list[str]
) -> None:
    text = text_of(render(facts(Outcome.BOOKED), language))

    assert [] == [line for line in expected if line not in text]


@pytest.mark.parametrize("language", LANGUAGES)
def test_support_block_has_the_facts_to_decide(language: str) -> None:
    decision = Decision(
        Outcome.PENDING,
        "late-notice",
        checks=(Check("registered", True), Check("notice", False, "arrived 3 h")),
        notify_support=True,
    )
    arrived = datetime(2026, 12, 17, 14, 0, tzinfo=UTC)
    reply = facts(Outcome.PENDING, decision=decision, arrived=arrived)

    text = text_of(render(reply, language))

    expected = [
        "Ajuntament de Vic (NIF P0830000A",
        "secretaria@vic.cat",
        "17 de desembre de 2026, 15:00" if language == "ca" else "17 de diciembre",
        "notice: NO superada (arrived 3 h)",
        "registered: superada",
    ]
    assert [] == [line for line in expected if line not in text]


def test_no_support_block_when_support_is_not_copied() -> None:
    text = text_of(render(facts(Outcome.BOOKED)))

    assert "Per a l'equip de suport" not in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_registration_incomplete_lists_what_is_missing(language: str) -> None:
    text = text_of(
        render(facts(Outcome.REGISTRATION_INCOMPLETE, calendar=False), language)
    )

    expected = {
        "ca": "Hi falten aquestes dades:\n- Telèfon",
        "es": "Faltan estos datos:\n- Teléfono",
    }
    assert expected[language] in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_registration_warns_about_a_personal_address(language: str) -> None:
    text = text_of(
        render(facts(Outcome.REGISTRATION_PENDING, calendar=False), language)
    )

    expected = {
        "ca": "l'adreça anna.puig@vic.cat sembla d'una persona",
        "es": "la dirección anna.puig@vic.cat parece de una persona",
    }
    assert expected[language] in text


def test_catalan_reply_uses_apostrophes_and_accents() -> None:
    text = text_of(render(facts(Outcome.BOOKED, needs=replace(NEEDS, recording=True))))

    expected = [
        "l'entitat",
        "llicència",
        "retransmetre",
        "l'amfitrió",
        "enregistrament",
    ]
    assert [] == [word for word in expected if word not in text]


@pytest.mark.parametrize(
    ("moment", "language", "expected"),
    [
        (datetime(2026, 4, 2, 10, tzinfo=UTC), "ca", "dijous 2 d'abril de 2026"),
        (datetime(2026, 8, 3, 10, tzinfo=UTC), "ca", "dilluns 3 d'agost de 2026"),
        (datetime(2026, 10, 4, 10, tzinfo=UTC), "ca", "diumenge 4 d'octubre de 2026"),
        (datetime(2026, 3, 4, 10, tzinfo=UTC), "ca", "dimecres 4 de març de 2026"),
        (datetime(2026, 4, 4, 10, tzinfo=UTC), "es", "sábado 4 de abril de 2026"),
    ],
)
def test_dates_are_written_in_words(
    moment: datetime, language: str, expected: str
) -> None:
    assert expected == format_date(moment, language=language)


@pytest.mark.parametrize(
    ("minutes", "language", "expected"),
    [
        (60, "ca", "1 hora"),
        (45, "ca", "45 minuts"),
        (121, "ca", "2 hores i 1 minut"),
        (90, "es", "1 hora y 30 minutos"),
        (1, "es", "1 minuto"),
    ],
)
def test_durations_are_written_in_words(
    minutes: int, language: str, expected: str
) -> None:
    assert expected == format_duration(timedelta(minutes=minutes), language=language)


@pytest.mark.parametrize(
    ("digits", "expected"),
    [("11122223333", "111 2222 3333"), ("1234567890", "123 456 7890"), ("12", "12")],
)
def test_zoom_ids_are_grouped_as_zoom_shows_them(digits: str, expected: str) -> None:
    assert expected == format_zoom_id(digits)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    "name",
    [o.value for o in (*CALENDAR_OUTCOMES, *TEXT_OUTCOMES)] + list(NOTICES),
)
def test_every_template_ships_as_package_data(name: str, language: str) -> None:
    template = importlib.resources.files("mailbot") / "templates" / language
    assert (template / f"{name}.j2").is_file()


@pytest.mark.parametrize("language", LANGUAGES)
def test_cancellation_without_times_does_not_claim_an_unreadable_time(
    language: str,
) -> None:
    cancel = invitation(method="CANCEL", occurrences=())
    reply = facts(Outcome.CANCELLED, reason="cancelled", invitation=cancel)

    text = text_of(render(reply, language))

    assert {"ca": "Data i hora", "es": "Fecha y hora"}[language] not in text
