"""What a meeting needs, read from an invitation's free text (ca, es, en)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from mailbot.models import Needs
from mailbot.parsers.text import fold, html_to_text, looks_like_html

# Every pattern below runs on folded text: lower case, accents dropped,
# straight apostrophes (see ``fold``).

_NEGATION = (
    r"(?:\b(?:no|not|sense|sin|without|ni|never|mai|nunca|cap)\b|n't\b)"
    r"(?:\s+(?!(?:que|pero|but|that|i|y|and)\b)[\w'-]+){0,3}?\s+"
)

_STREAM = (
    r"\bretransm\w*",
    r"\bemissio\w* en directe\b",
    r"\bemision\w* en directo\b",
    r"\bemetre en directe\b",
    r"\bemitir en directo\b",
    r"\bs'emetra\b",
    r"\bse emitira\b",
    r"\b(?:en directe|en directo|en vivo)\b",
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

_PEOPLE = (
    r"participants?|participantes?|assistents?|asistentes?|persones|personas"
    r"|people|attendees|usuaris|usuarios|membres|miembros"
)
_COUNT_AFTER = re.compile(
    r"(?<![\d.,])(\d{1,4})(?:\s*(?:-|–|a|i|y|o|or|to)\s*(\d{1,4}))?"
    rf"\s+(?:\w+\s+)?(?:{_PEOPLE})\b"
)
_COUNT_BEFORE = re.compile(
    rf"\b(?:{_PEOPLE}|aforament|aforo|capacity)\b"
    r"(?:\s+(?:previstos?|previstes?|estimats?|estimados?|aproximats?|expected))?"
    r"\s*[:=]?\s*(?:de\s+|of\s+)?(?:uns\s+|unos\s+|aprox\.?\s+|about\s+|~\s*)?"
    r"(\d{1,4})(?![\d.,]\d)"
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
    folded = fold(text)

    stream_negated = _any(folded, _STREAM, negated=True)
    stream = _any(folded, _STREAM) and not stream_negated
    recording = _any(folded, _RECORDING) and not _any(folded, _RECORDING, negated=True)

    channel = _channel(folded)
    if channel is not None and not stream_negated:
        stream = True

    support: str | None = None
    if _any(folded, _HOST) and not _any(folded, _HOST, negated=True):
        support = "host"
    elif _any(folded, _TECHNICAL) and not _any(folded, _TECHNICAL, negated=True):
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


def _any(folded: str, patterns: Iterable[str], *, negated: bool = False) -> bool:
    prefix = _NEGATION if negated else ""
    return any(re.search(prefix + pattern, folded) for pattern in patterns)


def _channel(folded: str) -> str | None:
    consortium = _any(folded, _CONSORTIUM_CHANNEL) and not _any(
        folded, _CONSORTIUM_CHANNEL, negated=True
    )
    own = _any(folded, _OWN_CHANNEL) and not _any(folded, _OWN_CHANNEL, negated=True)
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
        counts.extend(int(group) for group in match.groups() if group)
    for match in _COUNT_BEFORE.finditer(folded):
        counts.append(int(match.group(1)))
    counts = [count for count in counts if count > 0]
    return max(counts) if counts else None


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
