"""What a meeting needs, read from an invitation's free text (ca, es, en)."""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass

from mailbot.models import Needs
from mailbot.parsers.text import fold, html_to_text, looks_like_html

# Every pattern below runs on folded text: lower case, accents dropped,
# straight apostrophes (see ``fold``).

# A negation reaches a need up to three words on, and carries over "ni" and
# "nor" (each a negation itself: "no es retransmetra ni s'enregistrara"), but
# not over "and", "but" or "that", nor onto the next line ("Streaming: no"
# above "Cal enregistrar"; see ``_unwrap`` for wrapped paragraphs). The need
# may follow an elided pronoun or article (s', l', d').
_NEGATION = (
    r"(?:\b(?:no|not|sense|sin|without|ni(?:[^\S\n]+(?:tampoc|tampoco|que))?|nor"
    r"|neither|tampoc|tampoco|never|mai|nunca|cap)\b|n't\b)"
    r"(?:[^\S\n]+(?!(?:que|pero|but|that|i|y|and)\b)[\w'-]+){0,3}?[^\S\n]+"
    r"(?:[dlmnst]'|qu')?"
)
# A line at least this long that runs on in lower case was wrapped, not ended.
_WRAPPED_LINE = re.compile(r"(?<=[^\n]{60})\n(?=[^\W\d_])")

# "Live" alone says how support is given as often as that the meeting streams:
# it counts in a sentence but never names a need before an answer.
_LIVE = r"\b(?:en directe|en directo|en vivo)\b"
_STREAM = (
    r"\bretransm\w*",
    r"\bemissio\w* en directe\b",
    r"\bemision\w* en directo\b",
    r"\bemetre en directe\b",
    r"\bemitir en directo\b",
    r"\bs'emetra\b",
    r"\bse emitira\b",
    _LIVE,
    r"\bstream(?:ing|ed)?\b",
    r"\blive[ -]?stream\w*",
    r"\bbroadcast\w*",
    r"\byoutube\b",
    r"\byoutu\.be\b",
)
_RECORDING = (
    r"\benregistr\w*",
    r"\bgravaci\w*",
    r"\bgrav(?:ar|ara|aran|ada|ades|at|ats|em|eu|i)\b",
    r"\bgrabaci\w*",
    r"\bgrab(?:ar|ara|aran|ada|adas|ado|ados|amos|e|en)\b",
    r"\brecord(?:ing|ings|ed|s)?\b",
)
_OWN_CHANNEL = (
    r"\bcanal propi\b",
    r"\bcanal propio\b",
    r"\b(?:el )?nostre (?:propi )?canal\b",
    r"\b(?:nuestro|nuestro propio) canal\b",
    r"\bcanal (?:de youtube )?(?:de l'ajuntament|del consell comarcal|de l'ens)\b",
    r"\bcanal (?:de youtube )?(?:del ayuntamiento|de la entidad)\b",
    r"\b(?:our|our own|own) (?:youtube )?channel\b",
)
_CONSORTIUM_CHANNEL = (
    r"\bcanal (?:de youtube )?(?:del consorci|de localret|del localret)\w*",
    r"\bcanal (?:de youtube )?(?:del consorcio)\b",
    r"\blocalret(?:meet)?(?:'s)? (?:youtube )?channel\b",
    r"\bconsortium(?:'s)? (?:youtube )?channel\b",
    r"\bchannel of (?:the )?(?:consortium|localret)\b",
)
_HOST = (
    r"\b(?:co)?amfitri\w*",
    r"\b(?:co)?anfitri\w*",
    r"\b(?:act|acting|be|as) (?:the |a )?(?:co-?)?host\b",
    r"\bhost the (?:meeting|session)\b",
)
_TECHNICAL = (
    r"\bsuport tecnic\b",
    r"\bassistencia tecnica\b",
    r"\bsoporte tecnico\b",
    r"\basistencia tecnica\b",
    r"\btechnical (?:support|assistance)\b",
    r"\btech support\b",
)

_PLENARY = (
    r"\bplenar(?:i|ia|io|y)\b",
    r"\bple (?:ordinari|extraordinari|urgent|municipal|comarcal)\w*",
    r"\bple (?:de l'ajuntament|del consell|de la corporacio)\b",
    r"\b(?:sessio|convocatoria|ordre del dia|acta)(?: \w+)? del ple\b",
    r"\b(?:el|al|del) ple\b(?! (?:rendiment|sol|dia|centre|hivern|estiu|segle))",
    r"\bpleno (?:ordinario|extraordinario|urgente|municipal|comarcal)\b",
    r"\bpleno (?:del ayuntamiento|del consejo|de la corporacion)\b",
    r"\b(?:sesion|convocatoria|orden del dia|acta)(?: \w+)? del pleno\b",
    r"\b(?:el|al|del) pleno\b(?! (?:rendimiento|derecho|ejercicio|funcionamiento"
    r"|uso|sol|dia|centro|siglo|verano|invierno|apoyo|acuerdo|conocimiento))",
)
# A capitalised "Ple" or "Pleno" is the meeting's name; lower case it may
# just mean "full" (l'aforament és ple, a ple rendiment, en pleno centro).
_PLENARY_NAME = re.compile(r"\b(?:Ple|PLE|Pleno|PLENO)\b")
_BOARD = (
    r"\bjunta de govern\w*",
    r"\bjunta de gobierno\w*",
    r"\bjgl\b",
    r"\bboard meeting\b",
)
_COMMITTEE = (
    r"\bcomissio\w*",
    r"\bcomisio\w*",
    r"\bcommittee\b",
)
_OTHER = (
    r"\bconsell\b(?! comarcal)",
    r"\bconsejo\b(?! comarcal)",
    r"\bmesa (?:de|del|negociadora|general|sectorial)\b",
    r"\bassemblea\b",
    r"\basamblea\b",
    r"\bassembly\b",
    r"\bcomit(?:e|es)\b",
    r"\bjunta (?:de portaveus|de portavoces|general|rectora)\b",
    r"\btribunal\b",
    r"\baudiencia publica\b",
)

# "Recording: no", "Gravacio (si/no): si", "Es gravara? No", "- Streaming - yes":
# a need named near the start of a line or clause, a separator, then an answer.
_LABEL_BEFORE = (
    r"(?:^|(?<=[.;,!?\u00a1\u00bf\u2022\u00b7*|>(/\u2013\u2014-]))"
    r"[^\S\n]*(?:[-\u2013\u2014][^\S\n]*)?(?:[\w'-]+[^\S\n]+){0,3}?(?:[dlmnst]')?"
)
_LABEL_GAP = r"(?:[^\S\n]+(?!(?:si|no|yes|not|none)\b(?!/))[\w'()/-]+){0,3}?"
_REFUSAL = (
    r"(?:no|not|none|cap|ningun[oa]?|n/a|false)\b"
    r"(?![^\S\n]+(?:obstant|obstante|solo|nomes|only)\b)"
)
_LABEL_ANSWER = (
    _LABEL_GAP
    + r"[^\S\n]*(?:[:=?]+|[-\u2013\u2014](?=[^\S\n]))[^\S\n]*"
    + rf"(?:(?P<yes>si|yes|true)\b|{_REFUSAL})"
)
# "Enregistrament no.", "Recording not needed", "L'enregistrament no es
# necessari": a refusal right after the need's name, wherever it stands.
_LABEL_REFUSAL = (
    _LABEL_GAP
    + r"[^\S\n]+(?:no|not)(?=[^\S\n]*(?:$|[.;,!)]|(?:cal|fa falta|hace falta"
    + r"|(?:es )?necess?ari\w*|needed|required|necessary|gracies|gracias|please"
    + r"|si us plau|por favor)\b))"
)

_PEOPLE = (
    r"participants?|participantes?|assistents?|asistentes?|persones|personas"
    r"|people|attendees|usuaris|usuarios|membres|miembros"
)
# A whole count: plain digits, or thousands grouped by one kind of separator
# ("1.200", "1,200", "1 200" with a space or a non-breaking one). Never part
# of a time (18.30), a date (1.12.2026), a Zoom ID or a phone number, whose
# groups are not all of three digits or run on into more digits.
_GROUP = "[ \u00a0\u202f]"
_NUMBER = (
    r"(?<![\d.,])"
    rf"(\d{{1,3}}(?:\.\d{{3}})+|\d{{1,3}}(?:,\d{{3}})+|\d{{1,3}}(?:{_GROUP}\d{{3}})+"
    r"|\d{1,7})"
    rf"(?![\d]|[.,]\d|{_GROUP}\d)"
)
_COUNT_AFTER = re.compile(
    rf"{_NUMBER}(?:\s*(?:-|–|a|i|y|o|or|to)\s*{_NUMBER})?"
    rf"\s+(?:(?!\d)\w+\s+)?(?:{_PEOPLE})\b"
)
_COUNT_BEFORE = re.compile(
    rf"\b(?:{_PEOPLE}|aforament|aforo|capacity)\b"
    r"(?:\s+(?:previstos?|previstes?|estimats?|estimados?|aproximats?|esperats?"
    r"|esperados?|expected|estimated))?"
    r"\s*[:=]?\s*(?:de\s+|of\s+)?(?:uns\s+|unos\s+|aprox\.?\s+|about\s+|~\s*)?"
    rf"{_NUMBER}"
)

_ZOOM_ID = re.compile(
    r"\b(?:id|meeting id|zoom id)\b[^\d\n]{0,25}?"
    r"(?<!\d)(\d{3}[ .\u00a0-]?\d{3,4}[ .\u00a0-]?\d{3,4})(?![ .\u00a0-]?\d)"
)
_ZOOM_LINK = re.compile(r"zoom\.us/(?:j|w|s|wc/join)/(\d{9,11})\b")
_ZOOM_CODE = re.compile(
    r"\b(?:codi d'acces|codigo de acceso|contrasenya|contrasena|passcode"
    r"|password|codi|codigo|clau d'acces|clave de acceso)\b"
    r"(?!\s+postal)(?:\s+(?:de|del|de la)\s+(?:zoom|reunio|reunion))?"
    r"\s*[:=]?\s*(\S+)"
)
_ZOOM_PWD = re.compile(r"[?&]pwd=([\w.-]+)")


def read_needs(text: str) -> Needs:
    """Read what the meeting needs from its text (SUMMARY, LOCATION,
    DESCRIPTION and COMMENT joined by newlines, or a plain body)."""
    if looks_like_html(text):
        text = html_to_text(text)
    text = strip_boilerplate(text)
    folded = _unwrap(text, fold(text))

    stream_said = _said(folded, _STREAM)
    stream_negated = stream_said is False
    stream = stream_said is True
    recording = _said(folded, _RECORDING) is True

    channel = _channel(folded)
    if channel is not None and not stream_negated:
        stream = True

    support: str | None = None
    if _said(folded, _HOST):
        support = "host"
    elif _said(folded, _TECHNICAL):
        support = "technical"

    kind = _kind(text, folded)
    if kind == "plenary" and not stream_negated:
        stream = True

    return Needs(
        stream=stream,
        channel=channel,
        recording=recording,
        support=support,
        kind=kind,
        participants=_participants(folded),
        zoom_id=_zoom_id(folded),
        zoom_code=_zoom_code(text, folded),
    )


def _unwrap(text: str, folded: str) -> str:
    """``folded`` with the line breaks of hard-wrapped paragraphs made spaces,
    so that a sentence reads on; every character keeps its position."""
    breaks = [
        match.start()
        for match in _WRAPPED_LINE.finditer(text)
        if text[match.end()].islower()
    ]
    if not breaks:
        return folded
    chars = list(folded)
    for index in breaks:
        chars[index] = " "
    return "".join(chars)


def _said(folded: str, patterns: tuple[str, ...]) -> bool | None:
    """Whether the text asks for a need, None when it does not name it.

    An answer after the need's name ("Gravacio: no", "Recording: yes") says it
    first, a refusal among several answers winning; then a negation before
    any of its names; then the mere mention of one.
    """
    need = _need(patterns)
    answers = [match.group("yes") is not None for match in need.answer.finditer(folded)]
    if need.refusal.search(folded):
        answers.append(False)
    if answers:
        return all(answers)

    if need.negated.search(folded):
        return False
    return True if need.named.search(folded) else None


@dataclass(frozen=True, slots=True)
class _Need:
    """The expressions that read one need, each a single scan of the text."""

    named: re.Pattern[str]
    negated: re.Pattern[str]
    answer: re.Pattern[str]
    refusal: re.Pattern[str]


@functools.cache
def _need(patterns: tuple[str, ...]) -> _Need:
    names = "(?:" + "|".join(patterns) + ")"
    labels = "(?:" + "|".join(p for p in patterns if p != _LIVE) + ")"
    return _Need(
        named=re.compile(names),
        negated=re.compile(_NEGATION + names),
        answer=re.compile(_LABEL_BEFORE + labels + _LABEL_ANSWER, re.MULTILINE),
        refusal=re.compile(labels + _LABEL_REFUSAL, re.MULTILINE),
    )


def _channel(folded: str) -> str | None:
    consortium = _said(folded, _CONSORTIUM_CHANNEL) is True
    own = _said(folded, _OWN_CHANNEL) is True
    links = re.findall(r"(?:youtube\.com|youtu\.be)/\S*", folded)
    if any("localret" in link for link in links):
        consortium = True
    elif links:
        own = True

    # Both named: the consortium's channel is the one the rules must check.
    if consortium:
        return "consortium"
    return "own" if own else None


def _kind(text: str, folded: str) -> str | None:
    """The kind named first in the text: plenary, board, committee or other."""
    found: list[tuple[int, int, str]] = []
    for rank, (kind, patterns) in enumerate(
        (
            ("plenary", _PLENARY),
            ("board", _BOARD),
            ("committee", _COMMITTEE),
            ("other", _OTHER),
        )
    ):
        for pattern in patterns:
            match = re.search(pattern, folded)
            if match:
                found.append((match.start(), rank, kind))
    name = _PLENARY_NAME.search(text)
    if name:
        found.append((name.start(), 0, "plenary"))
    return min(found)[2] if found else None


def _participants(folded: str) -> int | None:
    counts: list[int] = []
    for match in _COUNT_AFTER.finditer(folded):
        low, high = (_count(group) if group else 0 for group in match.groups())
        # "30 a 40 persones" is a range; "5678 - 250 participants" ends a Zoom ID.
        counts.extend((low, high) if low < high else (high or low,))
    for match in _COUNT_BEFORE.finditer(folded):
        counts.append(_count(match.group(1)))
    counts = [count for count in counts if count > 0]
    return max(counts) if counts else None


def _count(number: str) -> int:
    return int(re.sub(r"\D", "", number))


def _zoom_id(folded: str) -> str | None:
    for pattern in (_ZOOM_ID, _ZOOM_LINK):
        for match in pattern.finditer(folded):
            digits = re.sub(r"\D", "", match.group(1))
            if 9 <= len(digits) <= 11:
                return digits
    return None


def _zoom_code(text: str, folded: str) -> str | None:
    for pattern in (_ZOOM_CODE, _ZOOM_PWD):
        for match in pattern.finditer(folded):
            start, end = match.span(1)
            token = text[start:end].strip(".,;:)(\"'[]<>")
            if 3 <= len(token) <= 64 and any(char.isdigit() for char in token):
                return token
    return None


# --- boilerplate -----------------------------------------------------------

_RULER = re.compile(r"^\s*_{10,}\s*$")
_GOOGLE_BLOCK = re.compile(r"-::~[:~]*::-.*?(?:-::~[:~]*::-|\Z)", re.S)
_GOOGLE_FOOTER = re.compile(
    r"^[^\n]*\b(?:Invitation from Google Calendar|Invitación de Google Calendar"
    r"|Invitació de Google Calendar|Invitació del Google Calendar"
    r"|Inbjudan från Google Kalender)\b.*\Z",
    re.S | re.M | re.I,
)
_TEAMS_MARK = re.compile(
    r"microsoft teams|teams\.microsoft\.com|aka\.ms/jointeams", re.I
)

# Lines that calendar and meeting clients add; matched on folded text.
_BOILERPLATE_LINES = re.compile(
    "|".join(
        (
            # Microsoft Teams
            r"microsoft teams",
            r"teams\.microsoft\.com",
            r"aka\.ms/",
            r"join on your computer",
            r"click here to join the meeting",
            r"join the meeting now",
            r"learn more \| meeting options",
            r"meeting options",
            r"download teams",
            r"join with a video conferencing device",
            r"video conference id",
            r"alternate vtc instructions",
            r"or call in \(audio only\)",
            r"phone conference id",
            r"find a local number",
            r"reset (?:dial-in )?pin",
            r"need help\?",
            r"unirse desde (?:el equipo|su equipo)",
            r"haga clic aqui para unirse",
            r"opciones de (?:la )?reunion",
            r"uniu-vos(?:-hi)? des de",
            r"feu clic aqui per unir-vos",
            r"opcions de la reunio",
            # Google Meet and Google Calendar
            r"join with google meet",
            r"meet\.google\.com",
            r"tel\.meet/",
            r"join by phone",
            r"more phone numbers",
            r"learn more about meet",
            r"unirse con google meet",
            r"unirte? (?:por|con) telefono",
            r"uneix-te (?:amb google meet|per telefon)",
            r"anslut till google meet",
            r"anslutningsinfo",
            r"calendar\.google\.com",
            r"support\.google\.com",
            r"google kalender|google calendar",
            # Zoom, except the meeting ID and code lines
            r"is inviting you to a scheduled zoom meeting",
            r"le esta invitando a una reunion de zoom",
            r"us (?:esta )?convida a una reunio de zoom",
            r"one tap mobile",
            r"movil con un toque",
            r"dial by your location",
            r"marcar segun su ubicacion",
            r"find your local number",
            r"buscar su numero local",
            r"zoom\.us/u/",
            r"join by sip",
            r"join by h\.323",
            r"@zoomcrc\.com",
            r"^\s*\+\d[\d ().-]{6,}",
            r",,\d{6,}#",
            r"^\s*\d{1,3}(?:\.\d{1,3}){3}\b",
            # Webex
            r"webex",
            r"join meeting",
            r"join by video system",
            r"join from a video system",
            r"tap to join from a mobile device",
            r"meeting number \(access code\)",
        )
    )
)
# Dropped even though they look like a Zoom ID or code: other services' secrets.
_FOREIGN_SECRETS = re.compile(r"conference id|meeting password|attendee id|\bpin\b")
# Kept even inside a join block: the Zoom meeting's ID, code and link.
_ZOOM_LINES = re.compile(r"zoom\.us/(?:j|w|s)/|\bid\b|passcode|codi|codigo|contrasen")

_FOOTER_OPENERS = re.compile(
    r"^\s*(?:aquest (?:missatge|correu)|aquesta (?:comunicacio|informacio)"
    r"|este (?:mensaje|correo)|esta (?:comunicacion|informacion)"
    r"|this (?:e-?mail|message|communication)|avis legal|aviso legal"
    r"|disclaimer|confidencialitat|confidencialidad|confidentiality)\b"
)
_FOOTER_WORDS = re.compile(r"confidencial|confidential|destinatari|recipient")


def strip_boilerplate(text: str) -> str:
    """Remove what calendar and meeting clients add to an invitation (join
    blocks, dial-in lists, legal footers) so that it is never read as a need.
    The Zoom meeting ID and access code lines are kept."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _GOOGLE_BLOCK.sub("\n", text)
    text = _GOOGLE_FOOTER.sub("", text)
    text = _strip_teams_blocks(text)

    kept = []
    for line in text.split("\n"):
        folded = fold(line)
        if _FOREIGN_SECRETS.search(folded):
            continue
        if _ZOOM_LINES.search(folded) or not _BOILERPLATE_LINES.search(folded):
            kept.append(line)

    paragraphs = re.split(r"\n\s*\n", "\n".join(kept))
    kept_paragraphs = [
        paragraph for paragraph in paragraphs if not _is_legal_footer(paragraph)
    ]
    return "\n\n".join(p.strip("\n") for p in kept_paragraphs if p.strip()).strip()


def _strip_teams_blocks(text: str) -> str:
    """Drop each stretch between ``____`` rulers that holds a Teams join block
    (an unclosed one runs to the end), and the rulers themselves."""
    lines = text.split("\n")
    rulers = [index for index, line in enumerate(lines) if _RULER.match(line)]
    drop: set[int] = set(rulers)
    bounds = [*rulers, len(lines)]
    for start, end in itertools.pairwise(bounds):
        if _TEAMS_MARK.search("\n".join(lines[start:end])):
            drop.update(range(start, end))
    return "\n".join(line for index, line in enumerate(lines) if index not in drop)


def _is_legal_footer(paragraph: str) -> bool:
    folded = fold(paragraph)
    if _FOOTER_OPENERS.search(folded) and _FOOTER_WORDS.search(folded):
        return True
    return bool(
        re.search(r"confidencial|confidential", folded)
        and re.search(r"destinatari|recipient|addressee", folded)
    )
