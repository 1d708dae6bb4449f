"""Language of the replies: what a council reads, in Catalan and in Spanish."""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailbot.actions.reply import (
    COMMENTS,
    SUBJECTS,
    ReplyFacts,
    format_span,
    render_reply,
)
from mailbot.config import RulesConfig, ServiceConfig
from mailbot.models import (
    Check,
    Decision,
    Entity,
    Envelope,
    Folder,
    Invitation,
    Needs,
    Occurrence,
    Outcome,
)
from mailbot.pool import Holding
from mailbot.rules import decide_cancel, decide_request

SERVICE = ServiceConfig(
    address="localretmeet@webfine.com", support=("suport@localret.cat",)
)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MEETING = datetime(2026, 12, 17, 10, 0, tzinfo=UTC)  # 11:00 in Madrid
POOL = ("adv-01", "adv-02")
LANGUAGES = ("ca", "es")
SEPARATOR = "\n" + "-" * 60
ENTITY = Entity(nif="P0830000A", name="Ajuntament d'Olot", email="secretaria@olot.cat")
NEEDS = Needs(
    stream=True,
    channel="own",
    recording=True,
    support="host",
    kind="plenary",
    participants=25,
    zoom_id="11122223333",
    zoom_code="443511",
)
REGISTRATION: dict[str, object] = {
    "entity_name": "Ajuntament d'Olot",
    "nif": "P1712100J",
    "contact_name": "Anna Puig",
    "contact_role": "Secretària",
    "phone": "972 26 01 00",
    "zoom_email": "anna.puig@olot.cat",
    "youtube_channel": None,
    "has_own_channel": False,
    "channel_agreement": False,
    "problems": [],
    "warnings": [
        {"field": "zoom_email", "code": "personal-address", "detail": ""},
        {"field": "zoom_email", "code": "paid-zoom-reminder", "detail": ""},
        {"field": "channel_agreement", "code": "no-stream-channel", "detail": ""},
    ],
    "reason": "",
}
INCOMPLETE: dict[str, object] = {
    **REGISTRATION,
    "nif": "P17121",
    "phone": None,
    "has_own_channel": None,
    "warnings": [],
    "problems": [
        {"field": "phone", "code": "missing", "detail": ""},
        {"field": "youtube_channel", "code": "missing", "detail": "yes or no"},
        {"field": "nif", "code": "invalid-nif", "detail": "not a NIF"},
    ],
}

# Every code a decision or a check may carry, and the entity states.
CODES = (
    *(outcome.value for outcome in Outcome),
    *("fits", "not-registered", "unregistered", "sender-mismatch", "readable"),
    *("entity-not-confirmed", "entity-rejected", "all-day", "no-end", "calendar"),
    *("no-duration", "non-positive-duration", "unknown-timezone", "no-start"),
    *("ambiguous-time", "no-calendar", "winmail-dat", "unreadable", "too-large"),
    *("unparseable-calendar", "invalid-recurrence", "in-the-past", "recurrence"),
    *("nothing-to-book", "late-notice", "pool-full", "too-many-participants"),
    *("consortium-channel-not-allowed", "series-does-not-fit", "unknown-booking"),
    *("awaiting-confirmation", "registration-incomplete", "reply-cap", "active"),
    *("missing", "invalid-nif", "personal-address", "paid-zoom-reminder"),
    *("no-stream-channel", "has_own_channel", "youtube_channel", "zoom_email"),
)
ENGLISH = (
    *("the", "and", "of", "with", "for", "please", "booking", "booked"),
    *("meeting", "license", "licence", "request", "occurrence", "occurrences"),
    *("checked", "support", "team", "minutes", "hours", "series", "pool", "full"),
    *("channel", "not", "past", "late", "unknown", "none", "true", "false"),
)
INFORMAL = {
    # Catalan: "tu" and "vós"/"vosaltres" forms; the replies say "vostè".
    "ca": (
        *("tu", "teu", "teva", "teus", "teves", "tens", "pots", "vols", "saps"),
        *("vegeu", "podeu", "envieu", "torneu", "escriviu", "vostre", "vostra"),
    ),
    # Spanish: "tú" and "vosotros" forms; the replies say "usted".
    "es": (
        *("tú", "tu", "tus", "tienes", "puedes", "quieres", "contigo", "ti"),
        *("vosotros", "podéis", "vuestro", "vuestra", "enviad", "os"),
    ),
}
# "de", "el", "la" before a vowel, an h or the hours one and eleven: Catalan
# writes d', l' (the replies name no word where "la" keeps its vowel, such as
# "la universitat"; "torni-la a enviar" is a pronoun, not an article).
NOT_ELIDED = re.compile(
    r"(?<![-\w'])(?:de|el|la|del)\s+(?:[aeiouàèéíïòóúüh]|(?:0?1|11):\d\d)",
    re.IGNORECASE,
)
CLOCK = re.compile(r"(?<![+\d])\d\d:\d\d\b")  # not an offset like UTC+01:00
UNCHECKED_CLAIMS: dict[str, tuple[str, ...]] = {
    "ca": ("ja estan reservades", "hora passada", "menys de 24 hores"),
    "es": ("ya están reservadas", "hora pasada", "menos de 24 horas"),
}
NEEDS_INFO_PROBLEMS = (
    "all-day",
    "no-end",
    "non-positive-duration",
    "unknown-timezone",
    "ambiguous-time",
    "no-start",
)


def occurrence(start: datetime, minutes: int = 150) -> Occurrence:
    return Occurrence(start=start, end=start + timedelta(minutes=minutes))


def invitation(**changes: object) -> Invitation:
    base = Invitation(
        uid="040000008200E00074C5B7101A82E008@olot.cat",
        method="REQUEST",
        sequence=1,
        dtstamp=NOW,
        organizer="secretaria@olot.cat",
        organizer_name="Secretaria Ajuntament d'Olot",
        attendees=(SERVICE.address,),
        summary="Ple ordinari d'octubre",
        description="",
        location="",
        comment="",
        status="CONFIRMED",
        tzid="Romance Standard Time",
        zone="Europe/Madrid",
        occurrences=(occurrence(MEETING),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


SERIES = invitation(
    summary="Junta de govern local",
    recurring=True,
    occurrences=tuple(occurrence(MEETING + timedelta(weeks=n)) for n in range(4)),
)
ENVELOPE = Envelope(
    message_id="invite-1@olot.cat",
    from_addr="secretaria@olot.cat",
    from_name="Secretaria",
    reply_to="",
    return_path="secretaria@olot.cat",
    to=(SERVICE.address,),
    cc=(),
    subject="Convocatòria: Ple ordinari d'octubre",
    references=(),
    automatic=None,
    text="",
    calendars=(),
    attachments=(),
)


def facts(decision: Decision, **changes: object) -> ReplyFacts:
    base = ReplyFacts(
        decision=decision,
        envelope=ENVELOPE,
        invitation=None,
        needs=None,
        entity=ENTITY,
        booking_id=None,
        arrived=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def request(
    meeting: Invitation,
    *,
    entity: Entity | None = ENTITY,
    needs: Needs = NEEDS,
    holdings: tuple[Holding, ...] = (),
    sender_matches: bool = True,
    **changes: object,
) -> ReplyFacts:
    """The reply to ``meeting`` as the booking rules decide it."""
    verdict = decide_request(
        meeting,
        entity=entity,
        needs=needs,
        arrived=NOW,
        now=NOW,
        rules=RulesConfig(),
        pool=POOL,
        holdings=holdings,
        sender_matches=sender_matches,
    )
    return facts(
        verdict.decision,
        invitation=meeting,
        needs=needs,
        entity=entity,
        licenses=verdict.allocations,
        **changes,
    )


def full_pool(start: datetime) -> tuple[Holding, ...]:
    end = start + timedelta(hours=4)
    return tuple(Holding(start - timedelta(hours=1), end, name) for name in POOL)


def quarantined(reason: str) -> ReplyFacts:
    check = Check("readable", False, f"{reason} detail")
    decision = Decision(
        Outcome.QUARANTINED, reason, folder=Folder.QUARANTINE, checks=(check,)
    )
    return facts(decision)


def needs_info(problem: str) -> ReplyFacts:
    return request(invitation(occurrences=(), problem=problem))


def registration(outcome: Outcome, reason: str, data: dict[str, object]) -> ReplyFacts:
    decision = Decision(outcome, reason, notify_support=True)
    return facts(decision, registration=data, entity=None)


SCENARIOS: dict[str, Callable[[], ReplyFacts]] = {
    "booked": lambda: request(invitation(), booking_id=7),
    "booked-series": lambda: request(SERIES, booking_id=8),
    "updated": lambda: replace(
        request(SERIES, booking_id=8),
        decision=replace(request(SERIES).decision, outcome=Outcome.UPDATED),
    ),
    "pending-late": lambda: request(
        invitation(occurrences=(occurrence(NOW + timedelta(hours=5)),))
    ),
    "pending-pool-full": lambda: request(invitation(), holdings=full_pool(MEETING)),
    "pending-series": lambda: request(
        SERIES, holdings=full_pool(MEETING + timedelta(weeks=2))
    ),
    "pending-entity": lambda: request(
        invitation(), entity=replace(ENTITY, status="pending")
    ),
    "pending-channel": lambda: request(
        invitation(), needs=replace(NEEDS, channel="consortium")
    ),
    "pending-participants": lambda: request(
        invitation(), needs=replace(NEEDS, participants=450)
    ),
    **{
        f"needs-info-{problem}": functools.partial(needs_info, problem)
        for problem in NEEDS_INFO_PROBLEMS
    },
    "needs-info-winmail-dat": lambda: facts(
        Decision(
            Outcome.NEEDS_INFO,
            "winmail-dat",
            checks=(Check("calendar", False, "only a winmail.dat attachment"),),
        ),
        envelope=replace(ENVELOPE, attachments=("winmail.dat",)),
    ),
    "declined-past": lambda: request(
        invitation(occurrences=(occurrence(NOW - timedelta(days=2)),))
    ),
    "declined-cancelled": lambda: request(
        invitation(occurrences=(replace(occurrence(MEETING), cancelled=True),))
    ),
    "unregistered": lambda: request(
        invitation(organizer="regidor@gmail.com", organizer_name=""),
        entity=None,
        envelope=replace(ENVELOPE, from_addr="regidor@gmail.com"),
    ),
    "sender-mismatch": lambda: request(
        invitation(),
        sender_matches=False,
        envelope=replace(ENVELOPE, from_addr="jordi@gmail.com"),
    ),
    "cancelled": lambda: facts(
        decide_cancel(invitation(method="CANCEL"), known=True),
        invitation=invitation(method="CANCEL"),
        booking_id=7,
    ),
    "cancelled-unknown": lambda: facts(
        decide_cancel(invitation(method="CANCEL"), known=False),
        invitation=invitation(method="CANCEL"),
    ),
    "quarantined-calendar": lambda: quarantined("unparseable-calendar"),
    "quarantined-too-large": lambda: quarantined("too-large"),
    "registration-pending": lambda: registration(
        Outcome.REGISTRATION_PENDING, "awaiting-confirmation", REGISTRATION
    ),
    "registration-incomplete": lambda: registration(
        Outcome.REGISTRATION_INCOMPLETE, "registration-incomplete", INCOMPLETE
    ),
    "registration-confirmed": lambda: registration(
        Outcome.REGISTRATION_CONFIRMED, "registration-confirmed", REGISTRATION
    ),
    "registration-rejected": lambda: registration(
        Outcome.REGISTRATION_REJECTED,
        "registration-rejected",
        {**REGISTRATION, "reason": "No consta l'acord d'adhesió a l'EACAT."},
    ),
    "reply-cap": lambda: facts(
        Decision(Outcome.PEOPLE, "reply-cap", notify_support=True)
    ),
}
EVERY = pytest.mark.parametrize(
    ("scenario", "language"),
    [(name, language) for name in SCENARIOS for language in LANGUAGES],
)


def council_part(scenario: str, language: str) -> str:
    """The reply's text above the support team's block."""
    message = render_reply(
        SCENARIOS[scenario](),
        service=SERVICE,
        language=language,
        message_id="reply-1@webfine.com",
        now=NOW,
    )
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).split(SEPARATOR)[0]


def words(text: str) -> set[str]:
    return set(re.findall(r"[\w·'-]+", text.lower()))


def template_names(language: str) -> set[str]:
    folder = importlib.resources.files("mailbot") / "templates" / language
    return {entry.name for entry in folder.iterdir() if entry.name.endswith(".j2")}


def test_both_languages_have_the_same_templates() -> None:
    assert template_names("ca") == template_names("es")


@EVERY
def test_council_part_has_no_english_words(scenario: str, language: str) -> None:
    text = council_part(scenario, language)

    assert [] == sorted(words(text) & set(ENGLISH))


@EVERY
def test_council_part_shows_no_raw_code(scenario: str, language: str) -> None:
    text = council_part(scenario, language)

    shown = [code for code in CODES if re.search(rf"(?<![\w@.-]){code}(?![\w-])", text)]
    assert [] == shown


@EVERY
def test_council_part_keeps_one_register(scenario: str, language: str) -> None:
    text = council_part(scenario, language)

    assert [] == sorted(words(text) & set(INFORMAL[language]))


@pytest.mark.parametrize("language", LANGUAGES)
def test_calendar_comments_and_subjects_keep_one_register(language: str) -> None:
    text = " ".join((*COMMENTS[language].values(), *SUBJECTS[language].values()))

    assert [] == sorted(words(text) & set(INFORMAL[language]))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_catalan_elides_de_el_la_before_a_vowel(scenario: str) -> None:
    text = council_part(scenario, "ca")

    assert [] == NOT_ELIDED.findall(text)


@EVERY
def test_council_part_quotes_with_angle_quotes(scenario: str, language: str) -> None:
    text = council_part(scenario, language)

    assert ('"' in text, "“" in text) == (False, False)


@EVERY
def test_every_clock_time_names_the_time_zone(scenario: str, language: str) -> None:
    text = council_part(scenario, language)

    lines = [line for line in text.splitlines() if CLOCK.search(line)]
    assert [] == [line for line in lines if "(hora de Madrid)" not in line]


@EVERY
def test_no_heading_is_followed_by_a_blank_line(scenario: str, language: str) -> None:
    text = council_part(scenario, language)

    assert [] == re.findall(r"\n[^\n]*:\n\n", text)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    "scenario", [s for s in SCENARIOS if s.startswith(("needs-info-", "declined"))]
)
def test_reasons_claim_nothing_about_rules_never_checked(
    scenario: str, language: str
) -> None:
    text = council_part(scenario, language).split("\n\n")[2]  # the reasons
    claims = UNCHECKED_CLAIMS[language]
    if scenario == "declined-past":
        claims = tuple(c for c in claims if c not in ("hora passada", "hora pasada"))

    assert [] == [claim for claim in claims if claim in text]


@pytest.mark.parametrize(
    ("language", "promise"), [("ca", "revisarà"), ("es", "revisará")]
)
@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.startswith("pending")])
def test_pending_says_once_that_support_will_review(
    scenario: str, language: str, promise: str
) -> None:
    text = council_part(scenario, language)

    assert 1 == text.count(promise)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ca", "dijous 17 de desembre de 2026, d'11:00 a 13:30 (hora de Madrid)"),
        ("es", "jueves 17 de diciembre de 2026, de 11:00 a 13:30 (hora de Madrid)"),
    ],
)
def test_meeting_time_at_eleven_reads_naturally(language: str, expected: str) -> None:
    zone = ZoneInfo("Europe/Madrid")
    end = MEETING + timedelta(minutes=150)

    assert expected == format_span(MEETING, end, zone=zone, language=language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_missing_channel_answer_is_asked_as_yes_or_no(language: str) -> None:
    text = council_part("registration-incomplete", language)

    expected = {
        "ca": "- Si l'entitat té canal de YouTube propi (sí o no)\n",
        "es": "- Si la entidad tiene canal de YouTube propio (sí o no)\n",
    }[language]
    assert expected in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_paid_account_reminder_is_given_once(language: str) -> None:
    text = council_part("registration-incomplete", language)

    expected = {"ca": "compte de Zoom de pagament", "es": "cuenta de Zoom de pago"}
    assert 1 == text.count(expected[language])


@pytest.mark.parametrize("language", LANGUAGES)
def test_organizer_named_by_its_address_is_shown_once(language: str) -> None:
    meeting = invitation(organizer_name="secretaria@olot.cat")
    reply = request(meeting)
    message = render_reply(
        reply, service=SERVICE, language=language, message_id="r@x", now=NOW
    )
    body = message.get_body(("plain",))
    assert body is not None

    assert 1 == str(body.get_content()).count("secretaria@olot.cat")
