"""Plain text of a registration mail to a RegistrationRequest, checked field by field.

Requests arrive as letters, "label: value" lists, HTML tables flattened to
text, or forwards and replies that quote older mail, in Catalan or Spanish.
The text is cut into layers, newest first (what the sender wrote now, then
each quoted or forwarded message), and each layer into its body and its tail
(signature, legal footer). A field takes its value from the newest body that
states it; tails are read last, for what a signature usually carries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from mailbot.parsers.nif import PUBLIC_BODY_LETTERS, nif_kind, normalise_nif, valid_nif
from mailbot.parsers.text import fold as _fold

__all__ = [
    "Problem",
    "RegistrationRequest",
    "looks_like_registration",
    "normalise_phone",
    "normalise_youtube_url",
    "parse_registration",
    "valid_nif",
]

MAX_TEXT = 200_000  # characters of a body that are read at all
MAX_LINE = 1_000  # characters of one line that are read
SERVICE_ADDRESSES = frozenset({"localretmeet@webfine.com", "localretmeet@localret.cat"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing missing, wrong or worth saying about a field of a request."""

    field: str  # "entity_name", "nif", "contact_name", "contact_role", "phone",
    # "zoom_email", "youtube_channel", "channel_agreement"
    code: str  # "missing", "invalid-nif", "invalid-email", "personal-address", ...
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    """What a registration mail asks for, as read; ``problems`` empty = complete."""

    entity_name: str | None
    nif: str | None  # normalised: upper case, no spaces/dashes
    contact_name: str | None
    contact_role: str | None
    phone: str | None  # "+34 938 123 456", with " ext. 12" when one was given
    zoom_email: str | None  # normalised by email-validator
    youtube_channel: str | None  # URL, "https://www.youtube.com/..." when valid
    has_own_channel: bool | None  # None = not said
    channel_agreement: bool | None  # signed the agreement to use the consortium's
    language: str  # "ca" or "es", the language of the request
    problems: tuple[Problem, ...]  # what is missing or wrong (empty = complete)
    warnings: tuple[Problem, ...]  # accepted, but worth saying


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Layers: quoted and forwarded history, signatures and legal footers.

_SEPARATOR = re.compile(
    r"^[-_=*\s]*(?:missatge original|mensaje original|original message"
    r"|missatge reenviat|mensaje reenviado|forwarded message|message transfere"
    r"|begin forwarded message|inici del missatge reenviat)[-_=*\s:]*$"
)
_ATTRIBUTION = re.compile(
    r"(?:va escriure|escribio|ha escrit|ha escrito|wrote|a ecrit)\s*:\s*$"
)
_HEADER = re.compile(
    r"^(?:de|from|enviat(?: el)?|enviado(?: el)?|sent|data|fecha|date|per a|para"
    r"|to|a|cc|cco|a/c|assumpte|asunto|subject|tema|importancia)\s*:"
)
_HEADER_SENT = re.compile(r"^(?:enviat|enviado|sent|data|fecha|date)\b[^:]{0,8}:")
_CLOSING = re.compile(
    r"^(?:molt |ben |muy |un )?(?:atentament|cordialment|salutacions|atentamente"
    r"|cordialmente|saludos|salut|una salutacio|cordiales saludos|moltes gracies"
    r"|gracies|muchas gracias|gracias|best regards|regards)[\s,.!]*$"
)
_FOOTER = re.compile(
    r"avis legal|avis de confidencialitat|aviso legal|aviso de confidencialidad"
    r"|\bconfidencial|proteccio de dades|proteccion de datos|abans d'imprimir"
    r"|antes de imprimir|2016/679|\bthis (?:e-?mail|message)\b"
)


@dataclass(frozen=True, slots=True)
class _Line:
    text: str  # dequoted and stripped
    folded: str
    layer: int  # 0 = newest text, then each older quoted or forwarded message
    tail: bool  # in a signature or a legal footer


def _dequote(line: str) -> tuple[int, str]:
    depth = 0
    rest = line.lstrip()
    while rest.startswith(">"):
        depth += 1
        rest = rest[1:].lstrip()
    return depth, rest


def _lines(text: str) -> list[_Line]:
    raw = text[:MAX_TEXT].replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cleaned = []
    for line in raw:
        depth, body = _dequote(line[:MAX_LINE])
        body = re.sub(r"[\u00a0\u2007\u202f]", " ", body)
        body = body.replace("\u200b", "").replace("\ufeff", "").strip()
        cleaned.append((depth, body, _fold(body)))

    lines: list[_Line] = []
    section = 0
    in_headers = False
    tails: set[int] = set()
    for index, (depth, body, folded) in enumerate(cleaned):
        if _SEPARATOR.match(folded) or _ATTRIBUTION.search(folded):
            section += 1
            in_headers = bool(_SEPARATOR.match(folded))
            continue
        if re.match(r"^(?:de|from)\s*:", folded) and any(
            _HEADER_SENT.match(later) for _, _, later in cleaned[index + 1 : index + 4]
        ):
            section += 1
            in_headers = True
        if in_headers:
            if _HEADER.match(folded):
                continue
            in_headers = False
            if not body:
                continue

        layer = section + depth
        if (
            body in ("--", "-- ", "—")
            or _CLOSING.match(folded)
            or _FOOTER.search(folded)
        ):
            tails.add(layer)
        lines.append(_Line(body, folded, layer, layer in tails))
    return lines


# Finding values in text.

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(
    r"https?://[^\s<>\"'\])|]+|(?<![\w@./])(?:www\.|m\.)?(?:youtube\.com|youtu\.be)/"
    r"[^\s<>\"'\])|]+",
    re.IGNORECASE,
)
_PHONE_CANDIDATE = re.compile(r"\(?(?:\+|00)?\(?\d[\d\s.\-()]{6,18}\d")
_PHONE_SPLIT = re.compile(r"\s+(?:[/,;–-]|o|i|y|or)\s+|\s*/\s*|;")
_EXTENSION = re.compile(
    r"\b(?:ext|extensio|extension|extn|int|interior)\b\.?\s*:?\s*(\d{1,6})\b"
)
_YOUTUBE = re.compile(
    r"(?:https?://)?(?:www\.|m\.)?youtube\.com/"
    r"(?P<path>channel/UC[\w-]{22}|(?:c/|user/|@)[\w.-]+)"
    r"(?:/(?:featured|videos|streams|live|about|playlists|shorts|community))?"
    r"/?(?:[?#]\S*)?",
    re.IGNORECASE,
)
_NIF_TOKEN = re.compile(
    r"(?<![\w-])(?:ES[\s.-]?)?(?:[A-HJNP-SUVW][\s.-]?\d{2}[\s.]?\d{3}[\s.]?\d{2}[\s.-]?"
    r"[0-9A-J]|\d{8}[\s.-]?[A-Z]|[XYZ][\s.-]?\d{7}[\s.-]?[A-Z])(?![\w-])",
    re.IGNORECASE,
)
_ENTITY_NAME = re.compile(
    r"(?i:ajuntament|ayuntamiento|consell comarcal|consejo comarcal|diputaci[óo]"
    r"|consorci|consorcio|mancomunitat|mancomunidad|entitat municipal descentralitzada"
    r"|entidad local menor|entidad municipal descentralizada|[àa]rea metropolitana"
    r"|conselh generau)"
    r"(?:\s+(?:de\s+les|de\s+la|de\s+los|de\s+las|de\s+l['’]|dels|del|de|d['’])\s*|\s+)"
    r"(?:[lL]['’])?[A-ZÀ-ÖØ-Ý][\w·'’-]*"
    r"(?:\s+(?:(?:de\s+les|de\s+la|de\s+l['’]|dels|del|de|d['’]|la|les|el|els|i|y)"
    r"\s*)?(?:[lLdD]['’])?[A-ZÀ-ÖØ-Ý][\w·'’-]*)*"
)
_PERSON_NAME = (
    r"[A-ZÀ-ÖØ-Ý][\w·'’-]+\.?(?:\s+(?:(?:i|y|de|del|de\s+la|dels)\s+)?"
    r"[A-ZÀ-ÖØ-Ý][\w·'’-]+){1,4}"
)
_ROLE_WORDS = re.compile(
    r"secretar|interventor|alcald|tecnic|informatic|administrati|gerent|president"
    r"|regidor|coordinador|\bcap\b|jefe|responsable|auxiliar|tresorer|tesorer"
    r"|funcionari|arxiv|archiv|comunicacio|director|oficial|tinent|teniente"
)
_FREE_CONTACT = re.compile(
    r"(?i:persona de contact[eo]|contact[eo])\s+(?i:ser[aàá]|[eé]s)\s+"
    r"(?i:(?:el|la)\s+(?:senyor|senyora|sr\.?|sra\.?|señor|señora)\s+|en\s+|na\s+"
    r"|(?:d\.|dña\.|don|doña)\s+)?(?P<name>" + _PERSON_NAME + r")"
    r"(?:\s*,\s*(?P<role1>[^,.;()]{3,60})|\s*\((?P<role2>[^)]{3,60})\))?"
)
_PHONE_WORDS = re.compile(
    r"\b(?:telefon|telefono|tel|telf|tlf|tfno|mobil|movil|trucar|llamar)\b"
)
_ZOOM_WORDS = re.compile(r"zoom|usuari|usuario|compte|cuenta|\balta\b")
_CONSORTIUM = re.compile(r"consorci|consorcio|localret")

_YES = re.compile(r"^(?:si|sí|s|yes|y|x|cert|correcte|afirmatiu|afirmativo)\b")
_NO = re.compile(r"^(?:no|n|cap|ninguno|ningun|cap ni un|sense|sin|negatiu|negativo)\b")

_CHANNEL_NEGATIVE = re.compile(
    r"\b(?:no|tampoc|tampoco)\b[^.]{0,40}\b(?:tenim|disposem|disposa|tenemos|disponemos"
    r"|tiene|dispone|hi ha|hay|te|existeix|existe)\b[^.]{0,40}\bcanal"
    r"|\bsense canal\b|\bsin canal\b"
)
_CHANNEL_POSITIVE = re.compile(
    r"\b(?:tenim|disposem|disposa|tenemos|disponemos|dispone|nostre|nuestro)\b"
    r"[^.]{0,40}\bcanal\b"
)
_AGREEMENT_NOUN = re.compile(
    r"\b(?:acord|conveni|convenio|acuerdo|autoritzacio|autorizacion)\b"
)
_AGREEMENT_NEGATIVE = re.compile(
    r"\bno\b[^.]{0,30}\b(?:hem|hemos|ha|han|tenim|tenemos)\b[^.]{0,15}"
    r"\b(?:signat|signada|firmat|firmada|firmado|subscrit|suscrito|formalitzat"
    r"|formalizado)\b|\b(?:pendent|pendiente|en tramit|en tramite|encara no"
    r"|todavia no|aun no)\b"
)
_AGREEMENT_POSITIVE = re.compile(
    r"\b(?:signat|signada|signats|firmat|firmada|firmado|subscrit|subscrita|suscrito"
    r"|formalitzat|formalizado|aprovat|aprobado|adherit|adherido|tramitat|tramitado)\b"
)

# Label classes, tried in this order on the folded label of a "label: value" line.
_LABELS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "channel_agreement",
        re.compile(
            r"(?:acord|conveni|convenio|acuerdo|autoritzacio|autorizacion|signat|firmado"
            r"|subscrit|suscrito).*(?:canal|consorci|consorcio|localret|youtube)"
            r"|(?:canal|youtube).*(?:consorci|consorcio|localret)"
        ),
    ),
    ("youtube_channel", re.compile(r"youtube|\bcanal\b")),
    (
        "phone",
        re.compile(r"\b(?:telefon|telefono|tel|telf|tfn|tfno|tlf|mobil|movil|phone)\b"),
    ),
    (
        "zoom_email",
        re.compile(r"correu|correo|e-?mail|\bmail\b|zoom|usuari|usuario|compte|cuenta"),
    ),
    (
        "nif",
        re.compile(
            r"\b(?:nif|cif|nie|dni)\b|n\.i\.f|c\.i\.f|identificacio fiscal"
            r"|identificacion fiscal|codi fiscal|codigo fiscal"
        ),
    ),
    (
        "contact_role",
        re.compile(r"carrec|\bcargo\b|\brol\b|funcio|puesto|lloc de treball"),
    ),
    (
        "contact_name",
        re.compile(
            r"contact|nom i cognoms|nombre y apellidos|cognoms|apellidos|responsable"
            r"|sol.?licitant|solicitante|interlocutor|\bpersona\b"
        ),
    ),
    (
        "entity_name",
        re.compile(
            r"\b(?:ens|ente|entitat|entidad|organisme|organismo|corporacio|corporacion"
            r"|ajuntament|ayuntamiento|municipi|municipio|institucio|institucion"
            r"|administracio|administracion)\b|rao social|razon social|denominacio"
        ),
    ),
)
_LONG_LABEL_FIELDS = frozenset({"channel_agreement", "youtube_channel"})


def _label_field(label: str) -> str | None:
    """The field a label names, from its folded text; None when it names none."""
    label = re.sub(r"^[\s\d.)(*•·-]*|[\s*?¿:]*$", "", label)
    label = re.sub(r"[^\w@.'-]+", " ", label).strip()
    words = len(label.split())
    if not label or words > 16 or "@" in label or "http" in label:
        return None
    for field, pattern in _LABELS:
        if pattern.search(label):
            if words > 8 and field not in _LONG_LABEL_FIELDS:
                return None
            return field
    return None


def _split_label(line: _Line) -> tuple[str, str, str] | None:
    """Split a table row or "label: value" line into (field, label, value)."""
    text = line.text
    for separator in ("|", "\t"):
        if separator in text:
            cells = [
                cell.strip() for cell in text.strip(separator + " ").split(separator)
            ]
            cells = [cell for cell in cells if cell]
            if cells:
                field = _label_field(_fold(cells[0]))
                if field:
                    return field, cells[0], " ".join(cells[1:2])
                return None
    match = re.match(r"^([^:]{1,120}?)\s*:\s*(.*)$", text) or re.match(
        r"^(.{1,120}?)\s{2,}(\S.*)$", text
    )
    if match:
        field = _label_field(_fold(match.group(1)))
        if field:
            return field, match.group(1), match.group(2).strip()
        return None
    spaced = _split_spaced(text)
    if spaced:
        return spaced
    if len(text.split()) <= 6 and not re.search(r"[.,;!]\s*\S", text):
        field = _label_field(line.folded)
        if field:
            return field, text, ""
    return None


_LABEL_WORDS = _words(
    """
    nom nombre de del dels la les el l d i y ens ente entitat entidad organisme
    organismo corporacio corporacion denominacio denominacion rao razon social nif
    cif codi codigo identificacio identificacion fiscal persona contacte contacto
    responsable interlocutor cognoms apellidos carrec cargo rol funcio lloc treball
    puesto telefon telefono tel telf tlf tfno mobil movil correu correo electronic
    electronico e-mail email mail adreca direccion compte cuenta usuari usuario zoom
    per para a al canal youtube propi propio disposem disposeu disposa disponemos
    disponen dispone teniu tenim tenemos tienen hem heu hemos han ha signat signada
    firmado firmada subscrit suscrito conveni convenio acord acuerdo adhesio
    adhesion us uso utilitzar usar consorci consorcio localret seu su vostre nostre
    nuestro url enllac enlace
    """
)
_VALUE_SHAPES: dict[str, re.Pattern[str]] = {
    "nif": _NIF_TOKEN,
    "phone": _PHONE_CANDIDATE,
    "zoom_email": _EMAIL,
    "youtube_channel": re.compile(r"^(?:\S*youtu|https?://|s[ií]\b|no\b)", re.I),
    "channel_agreement": re.compile(r"^(?:s[ií]|no|signat|firmado)\b", re.I),
}


def _split_spaced(text: str) -> tuple[str, str, str] | None:
    """Split "Label value" separated by one space, as HTML table cells become.

    The label is the longest run of leading words that only label vocabulary
    makes up; the value must have the shape its field expects.
    """
    words = text.split()
    if len(words) > 24 or re.search(r"[.;!?]\s+[A-ZÀ-Ý]", text):
        return None
    count = 0
    for word in words:
        parts = [
            part for part in re.split(r"'", _fold(word).strip("¿?¡!:*()/")) if part
        ]
        if not all(part in _LABEL_WORDS for part in parts):
            break
        count += 1
    if count == 0 or count == len(words):
        return None
    label, value = " ".join(words[:count]), " ".join(words[count:])
    field = _label_field(_fold(label))
    if field is None:
        return None
    shape = _VALUE_SHAPES.get(field)
    if shape is not None and not shape.search(value):
        return None
    if shape is None and not value[:1].isupper():
        return None
    return field, label, value


@dataclass(frozen=True, slots=True)
class _Found:
    field: str
    value: str | bool
    rank: tuple[int, int, int, int]  # tail, layer, kind, order: lowest wins


def _clean_value(value: str) -> str:
    value = re.sub(r"\s+", " ", value).strip(" \t*\"'“”«»[]<>.,;")
    return value[:200]


def _yes_no(folded_value: str) -> bool | None:
    value = folded_value.strip(" \t*\"'[]().:-")
    if _NO.match(value):
        return False
    if _YES.match(value):
        return True
    return None


def _paragraphs(lines: list[_Line]) -> Iterator[tuple[int, bool, str]]:
    """Join the lines of each paragraph, yielding (layer, tail, sentence)."""
    buffer: list[str] = []
    key: tuple[int, bool] | None = None
    for line in [*lines, _Line("", "", -1, False)]:
        if not line.text or (line.layer, line.tail) != key:
            if buffer and key is not None:
                for sentence in re.split(r"(?<=[.;!?])\s+", " ".join(buffer)):
                    yield key[0], key[1], sentence
            buffer = []
            key = (line.layer, line.tail)
        if line.text:
            buffer.append(line.text)


def _urls(text: str) -> list[str]:
    return [match.group().rstrip(".,;:!?)»”'") for match in _URL.finditer(text)]


def _emails(text: str) -> list[str]:
    found = [match.group().strip(".'-") for match in _EMAIL.finditer(text)]
    return [address for address in found if address.lower() not in SERVICE_ADDRESSES]


def _from_label(
    field: str, value: str, rank: tuple[int, int, int, int]
) -> Iterator[_Found]:
    folded = _fold(value)
    if field == "youtube_channel":
        answer = _yes_no(folded)
        urls = _urls(value)
        if urls:
            yield _Found("youtube_channel", urls[0], rank)
            yield _Found("has_own_channel", answer is not False, rank)
        elif answer is not None:
            yield _Found("has_own_channel", answer, rank)
        elif value:
            yield _Found("has_own_channel", True, rank)
            yield _Found("youtube_channel", _clean_value(value), rank)
    elif field == "channel_agreement":
        answer = _yes_no(folded)
        if answer is None and _AGREEMENT_NEGATIVE.search(folded):
            answer = False
        elif answer is None and _AGREEMENT_POSITIVE.search(folded):
            answer = True
        if answer is not None:
            yield _Found("channel_agreement", answer, rank)
    elif field == "zoom_email":
        addresses = _emails(value)
        if addresses:
            yield _Found("zoom_email", addresses[0], rank)
        elif value and _yes_no(folded) is not False:
            yield _Found("zoom_email", _clean_value(value), rank)
    elif field == "nif":
        tokens = _NIF_TOKEN.findall(value)
        yield _Found("nif", normalise_nif(tokens[0] if tokens else value), rank)
    elif field == "phone":
        yield _Found("phone", _clean_value(value), rank)
    elif value:
        yield _Found(field, _clean_value(value), rank)


def _email_label_kind(folded_label: str) -> int | None:
    """0 for the Zoom user's address, 1 for a plain address, None for a person's."""
    if re.search(r"zoom|usuari|usuario|compte|cuenta", folded_label):
        return 0
    if re.search(r"contact|persona|personal|sol.?licitant|solicitante", folded_label):
        return None
    return 1


def _labelled(lines: list[_Line]) -> Iterator[_Found]:
    consumed: set[int] = set()
    for index, line in enumerate(lines):
        if index in consumed:
            continue
        split = _split_label(line)
        if split is None:
            continue
        field, label, value = split
        if not value:
            for later in range(index + 1, min(index + 3, len(lines))):
                candidate = lines[later]
                if candidate.layer != line.layer:
                    break
                if not candidate.text:
                    continue
                if _split_label(candidate) is None:
                    value = candidate.text
                    consumed.add(later)
                break
        if not value:
            continue

        kind = 0
        if field == "zoom_email":
            email_kind = _email_label_kind(_fold(label))
            if email_kind is None:
                continue
            kind = email_kind
        rank = (int(line.tail), line.layer, kind, index)
        yield from _from_label(field, value, rank)


def _free_form(lines: list[_Line]) -> Iterator[_Found]:
    for order, (layer, tail, sentence) in enumerate(_paragraphs(lines)):
        folded = _fold(sentence)
        rank = (int(tail), layer, 2, order)

        for match in _ENTITY_NAME.finditer(sentence):
            yield _Found("entity_name", _clean_value(match.group()), rank)
        for token in _NIF_TOKEN.findall(sentence):
            nif = normalise_nif(token)
            if nif[:1] in PUBLIC_BODY_LETTERS or re.search(r"\b(?:nif|cif)\b", folded):
                yield _Found("nif", nif, rank)
        if _PHONE_WORDS.search(folded) or tail:
            for match in _PHONE_CANDIDATE.finditer(sentence):
                if normalise_phone(match.group()):
                    yield _Found("phone", match.group(), rank)
        if not tail and _ZOOM_WORDS.search(folded):
            for address in _emails(sentence):
                yield _Found("zoom_email", address, rank)
        if not tail:
            yield from _free_contact(sentence, rank)
            yield from _free_channel(sentence, folded, rank)


def _free_contact(sentence: str, rank: tuple[int, int, int, int]) -> Iterator[_Found]:
    match = _FREE_CONTACT.search(sentence)
    if not match:
        return
    yield _Found("contact_name", _clean_value(match.group("name")), rank)
    role = match.group("role1") or match.group("role2")
    if role and _ROLE_WORDS.search(_fold(role)):
        yield _Found("contact_role", _clean_value(role), rank)


def _free_channel(
    sentence: str, folded: str, rank: tuple[int, int, int, int]
) -> Iterator[_Found]:
    consortium = bool(_CONSORTIUM.search(folded))
    if _AGREEMENT_NOUN.search(folded) and re.search(r"\bcanal\b", folded):
        if _AGREEMENT_NEGATIVE.search(folded):
            yield _Found("channel_agreement", False, rank)
        elif _AGREEMENT_POSITIVE.search(folded):
            yield _Found("channel_agreement", True, rank)
    if _CHANNEL_NEGATIVE.search(folded):
        yield _Found("has_own_channel", False, rank)
    elif _CHANNEL_POSITIVE.search(folded) and (
        not consortium or re.search(r"propi|propio|nostre|nuestro", folded)
    ):
        yield _Found("has_own_channel", True, rank)
    if not consortium:
        for url in _urls(sentence):
            if re.search(r"youtu\.?be", url, re.IGNORECASE):
                yield _Found("youtube_channel", url, rank)
                yield _Found("has_own_channel", True, (*rank[:2], rank[2] + 1, rank[3]))


def _signature(lines: list[_Line]) -> Iterator[_Found]:
    """The signer's name and role after a closing formula, as a last resort."""
    for index, line in enumerate(lines):
        if not _CLOSING.match(line.folded) and line.text not in ("--", "-- "):
            continue
        block = [
            later
            for later in lines[index + 1 : index + 4]
            if later.layer == line.layer and later.text
        ]
        for position, later in enumerate(block):
            if re.fullmatch(_PERSON_NAME, later.text) and not _ENTITY_NAME.match(
                later.text
            ):
                rank = (1, line.layer, 3, index)
                yield _Found("contact_name", later.text, rank)
                if position + 1 < len(block):
                    role = block[position + 1]
                    if _ROLE_WORDS.search(role.folded) and not _ENTITY_NAME.match(
                        role.text
                    ):
                        yield _Found("contact_role", _clean_value(role.text), rank)
                break


def _best(found: Iterable[_Found]) -> dict[str, str | bool]:
    chosen: dict[str, _Found] = {}
    for item in found:
        if item.value == "":
            continue
        current = chosen.get(item.field)
        if current is None or item.rank < current.rank:
            chosen[item.field] = item
    return {field: item.value for field, item in chosen.items()}


# Checking the values.


def normalise_phone(text: str) -> str | None:
    """A Spanish phone number as "+34 938 123 456" (and " ext. N"), or None."""
    folded = _fold(text)
    extension = _EXTENSION.search(folded)
    if extension:
        text = text[: extension.start()] + " " + text[extension.end() :]

    for piece in _PHONE_SPLIT.split(text):
        for match in _PHONE_CANDIDATE.finditer(piece):
            digits = re.sub(r"[^\d+]", "", match.group())
            if digits.startswith("+34"):
                digits = digits[3:]
            elif digits.startswith("0034"):
                digits = digits[4:]
            elif len(digits) == 11 and digits.startswith("34"):
                digits = digits[2:]
            if re.fullmatch(r"[6789]\d{8}", digits):
                number = f"+34 {digits[:3]} {digits[3:6]} {digits[6:]}"
                return f"{number} ext. {extension.group(1)}" if extension else number
    return None


def normalise_youtube_url(url: str) -> str | None:
    """A YouTube channel address as "https://www.youtube.com/...", or None."""
    match = _YOUTUBE.fullmatch(url.strip())
    if not match:
        return None
    return f"https://www.youtube.com/{match.group('path')}"


_GENERIC_WORDS = _words(
    """
    secretaria secretari alcaldia alcalde alcaldessa ajuntament ayuntamiento ajt
    ayto info informacio informacion registre registro tic informatica sistemes
    sistemas suport soporte oac sac sac admin administracio administracion
    intervencio intervencion tresoreria tesoreria comunicacio comunicacion premsa
    prensa ple plens pleno plenos actes videoactes reunions reuniones zoom
    videoconferencia consell consorci general contacte contacto correu correo
    email atencio atencion ciutadania ciudadania oficina gestio gestion organs
    govern gobierno localretmeet webmaster it ti cultura urbanisme serveis
    servicios municipal ens emd presidencia gerencia direccio diputacio diputacion
    comarca comarcal noreply no reply esports joventut benestar
    """
)
_GENERIC_PREFIXES = ("aj", "ayto", "ayunt", "secret", "alcald", "inform", "registr")
_FREE_MAIL = _words(
    """
    gmail.com googlemail.com hotmail.com hotmail.es outlook.com outlook.es live.com
    msn.com yahoo.com yahoo.es icloud.com me.com telefonica.net protonmail.com
    proton.me gmx.com gmx.es
    """
)
_NAME_CONNECTORS = frozenset(
    {"i", "y", "de", "del", "dels", "la", "les", "el", "d", "l"}
)


def _personal_reason(
    local: str, domain: str, contact_name: str | None, entity_name: str | None
) -> str | None:
    """Why an address looks like a person's rather than a shared one, or None."""
    if domain.lower() in _FREE_MAIL:
        return f"{domain} is a personal mail service, not the entity's"
    local = _fold(local)
    tokens = [token for token in re.split(r"[^a-z]+", local) if token]
    if not tokens:
        return None
    entity_words = {
        word for word in re.split(r"[^a-z]+", _fold(entity_name or "")) if len(word) > 2
    }
    for token in tokens:
        if token in _GENERIC_WORDS or token.startswith(_GENERIC_PREFIXES):
            return None
        if token in entity_words:
            return None

    names = [
        word
        for word in re.split(r"[^a-z]+", _fold(contact_name or ""))
        if word and word not in _NAME_CONNECTORS
    ]
    if any(token in names for token in tokens if len(token) > 1):
        return "it holds the contact person's name"
    joined = "".join(tokens)
    for surname in names[1:]:
        if len(surname) > 2 and joined in (
            names[0][0] + surname,
            surname + names[0][0],
        ):
            return "it holds the contact person's name"
    if len(tokens) >= 2 and all(len(token) > 1 for token in tokens[:2]):
        return "it looks like name.surname"
    return None


def _check_email(
    value: str,
    *,
    contact_name: str | None,
    entity_name: str | None,
    check_deliverability: bool,
) -> tuple[str, list[Problem], list[Problem]]:
    try:
        checked = validate_email(value, check_deliverability=check_deliverability)
    except EmailNotValidError as error:
        return value, [Problem("zoom_email", "invalid-email", f"{value}: {error}")], []
    address = checked.normalized
    warnings = []
    reason = _personal_reason(
        checked.local_part, checked.domain, contact_name, entity_name
    )
    if reason:
        warnings.append(
            Problem("zoom_email", "personal-address", f"{address}: {reason}")
        )
    return address, [], warnings


_CATALAN = _words(
    """
    ajuntament tenim hem disposem amb els dades telefon carrec correu contacte nostre
    nostra adreca bon gracies salutacions atentament cordialment sollicitud ens
    aquest aquesta perque tambe signat conveni acord us som volem demanar municipi
    alcaldessa senyor senyora adjunt propi consorci i l d nom
    """
)
_SPANISH = _words(
    """
    ayuntamiento tenemos hemos disponemos con los datos telefono cargo correo contacto
    nuestro nuestra direccion buenos gracias saludos atentamente cordialmente
    solicitud ente este esta porque tambien firmado convenio acuerdo le somos
    queremos solicitar municipio alcaldesa senor senora adjunto propio consorcio y
    nombre usuario cuenta
    """
)


def _language(subject: str, lines: list[_Line]) -> str:
    by_layer: dict[int, list[str]] = {}
    for line in lines:
        if not line.tail:
            by_layer.setdefault(line.layer, []).append(line.folded)
    texts = [by_layer[layer] for layer in sorted(by_layer)]
    texts.append([_fold(subject)])
    for text in texts:
        words = re.split(r"[^a-z·]+", " ".join(text).replace("l·l", "ll"))
        catalan = sum(word in _CATALAN for word in words)
        spanish = sum(word in _SPANISH for word in words)
        if catalan + spanish >= 3 or text is texts[-1]:
            return "es" if spanish > catalan else "ca"
    return "ca"


def parse_registration(
    subject: str, text: str, *, check_deliverability: bool = False
) -> RegistrationRequest:
    """Read a registration request from a mail's subject and plain-text body."""
    lines = _lines(text)
    values = _best([*_labelled(lines), *_free_form(lines), *_signature(lines)])

    def text_value(field: str) -> str | None:
        value = values.get(field)
        return value if isinstance(value, str) and value else None

    def bool_value(field: str) -> bool | None:
        value = values.get(field)
        return value if isinstance(value, bool) else None

    entity_name = text_value("entity_name")
    contact_name = text_value("contact_name")
    contact_role = text_value("contact_role")
    if contact_role is None and contact_name is not None and "," in contact_name:
        # "Persona de contacte: Joan Garcia, secretari": the role after a comma.
        name, _, role = contact_name.partition(",")
        if name.strip() and role.strip():
            contact_name, contact_role = name.strip(), role.strip()
    has_own_channel = bool_value("has_own_channel")
    problems: list[Problem] = []
    warnings: list[Problem] = []

    found = {"contact_name": contact_name, "contact_role": contact_role}
    for field in ("entity_name", "nif", "contact_name", "contact_role"):
        if found.get(field, text_value(field)) is None:
            problems.append(Problem(field, "missing"))
    nif = text_value("nif")
    if nif is not None:
        problems.extend(_nif_problems(nif))
        warnings.extend(_nif_warnings(nif))

    phone = text_value("phone")
    if phone is None:
        problems.append(Problem("phone", "missing"))
    else:
        normalised = normalise_phone(phone)
        if normalised is None:
            problems.append(Problem("phone", "invalid-phone", phone))
        else:
            phone = normalised

    zoom_email = text_value("zoom_email")
    if zoom_email is None:
        problems.append(Problem("zoom_email", "missing"))
    else:
        zoom_email, email_problems, email_warnings = _check_email(
            zoom_email,
            contact_name=contact_name,
            entity_name=entity_name,
            check_deliverability=check_deliverability,
        )
        problems.extend(email_problems)
        warnings.extend(email_warnings)
    warnings.append(
        Problem(
            "zoom_email",
            "paid-zoom-reminder",
            "the address must not already own a paid Zoom account",
        )
    )

    youtube_channel = text_value("youtube_channel") if has_own_channel else None
    channel_agreement = bool_value("channel_agreement")
    problems.extend(
        _channel_problems(has_own_channel, youtube_channel, channel_agreement)
    )
    if youtube_channel is not None:
        youtube_channel = normalise_youtube_url(youtube_channel) or youtube_channel
    if has_own_channel is False and channel_agreement is False:
        warnings.append(
            Problem(
                "channel_agreement",
                "no-stream-channel",
                "no own channel and no agreement: sessions cannot be streamed",
            )
        )

    return RegistrationRequest(
        entity_name=entity_name,
        nif=nif,
        contact_name=contact_name,
        contact_role=contact_role,
        phone=phone,
        zoom_email=zoom_email,
        youtube_channel=youtube_channel,
        has_own_channel=has_own_channel,
        channel_agreement=channel_agreement,
        language=_language(subject, lines),
        problems=tuple(problems),
        warnings=tuple(warnings),
    )


def _nif_problems(nif: str) -> list[Problem]:
    if valid_nif(nif):
        return []
    if nif_kind(nif) is None:
        return [Problem("nif", "invalid-nif", f"{nif}: not the shape of a NIF")]
    return [Problem("nif", "invalid-nif", f"{nif}: wrong control character")]


def _nif_warnings(nif: str) -> list[Problem]:
    if not valid_nif(nif) or nif[0] in PUBLIC_BODY_LETTERS:
        return []
    kind = nif_kind(nif)
    what = "a person's NIF" if kind in ("dni", "nie") else f"an {nif[0]} NIF"
    return [
        Problem(
            "nif",
            "unusual-nif",
            f"{nif} is {what}; a local entity's NIF normally starts with P, Q or S",
        )
    ]


def _channel_problems(
    has_own_channel: bool | None, url: str | None, agreement: bool | None
) -> list[Problem]:
    if has_own_channel is None:
        return [Problem("youtube_channel", "missing", "own YouTube channel: yes or no")]
    if has_own_channel:
        if url is None:
            return [Problem("youtube_channel", "missing", "the channel's address")]
        if normalise_youtube_url(url) is None:
            return [Problem("youtube_channel", "invalid-youtube-url", url)]
        return []
    if agreement is None:
        return [Problem("channel_agreement", "missing")]
    return []


# Telling a registration request from other mail.

_STRONG = re.compile(
    r"alta (?:d'|de )(?:l'|el |la |un |una |nou |nova |nuevo |nueva )?(?:usuari|usuario"
    r"|compte|cuenta|ens|ente|entitat|entidad|ajuntament|ayuntamiento)"
    r"|sol.?licitud d'alta|solicitud de alta|peticio d'alta|peticion de alta"
    r"|donar d'alta (?:l'|el |la |al |a l'|els |les |el nostre |la nostra )?"
    r"(?:ens|entitat|ajuntament|usuari|compte|corporacio|consell)"
    r"|dar de alta (?:el |la |al |a la |nuestro |nuestra )?"
    r"(?:ente|entidad|ayuntamiento|usuario|cuenta|corporacion|consejo)"
    r"|alta (?:al|en el|a|en|del) (?:servei|servicio|localretmeet|plataforma)"
    r"|registre (?:d'|de l'|de )(?:usuari|ens|entitat|ajuntament)"
    r"|registro (?:de |del )(?:usuario|ente|entidad|ayuntamiento)"
)
_WEAK = re.compile(
    r"\b(?:alta|registre|registro|inscripcio|inscripcion|registrar|registrarnos"
    r"|donar-nos d'alta|darnos de alta)\b"
    r"(?! (?:d'|de )?(?:una |la |el |les |las |un )?(?:reunio|reunion|sessio|sesion"
    r"|ple\b|pleno|convocatoria|esdeveniment|evento|cita|entrada|sortida|salida))"
)
_SPECIFIC = (
    re.compile(r"\b(?:nif|cif)\b"),
    re.compile(r"persona de contact[eo]"),
    re.compile(r"\b(?:carrec|cargo)\b"),
    re.compile(
        r"canal (?:de youtube )?(?:propi|propio)|\bno (?:tenim|tenemos|disposem"
        r"|disponemos)\b[^.]{0,30}canal|canal (?:del|de) (?:consorci|consorcio)"
    ),
    re.compile(r"(?:acord|conveni|convenio|acuerdo)[^.]{0,80}canal"),
    re.compile(
        r"(?:compte|cuenta|usuari|usuario)(?: de| del)? zoom"
        r"|(?:adreca|direccion|correu|correo)[^.\n]{0,40}(?:usuari|usuario)"
    ),
)
_INVITATION = re.compile(
    r"zoom\.us/(?:j|w|my)/|\bid de (?:la )?reunio|\bid de reunion|codi d'acces"
    r"|codigo de acceso|meeting id|passcode|begin:vcalendar|unir-se a (?:la )?reunio"
    r"|unirse a (?:la )?reunion|join zoom meeting"
)


def looks_like_registration(subject: str, text: str) -> bool:
    """Tell whether a mail (not a calendar invitation) asks to register an entity."""
    folded = _fold(f"{subject}\n{text[:MAX_TEXT]}")
    specific = sum(1 for pattern in _SPECIFIC if pattern.search(folded))
    if any(valid_nif(token) for token in re.findall(r"\b[pqs]\d{7}[0-9a-j]\b", folded)):
        specific += 1
    strong = bool(_STRONG.search(folded))

    if _INVITATION.search(folded):
        return strong and specific >= 2
    if strong:
        return specific >= 1
    if _WEAK.search(folded):
        return specific >= 2
    return specific >= 4
