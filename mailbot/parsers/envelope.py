"""The MIME layer: a raw message's headers, body text and calendar parts."""

from __future__ import annotations

import email
import email.header
import email.parser
import email.policy
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Any

from mailbot.errors import MimeError
from mailbot.models import CalendarPart, Envelope
from mailbot.parsers.text import BOM, clean_surrogates, decode_bytes, html_to_text

MAX_TEXT = 100_000

_CALENDAR_TYPES = frozenset(
    {"text/calendar", "application/ics", "text/x-vcalendar", "application/x-ics"}
)
_REPORT_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ANGLE_ID = re.compile(r"<([^<>\s]+)>")
_DAEMONS = frozenset({"mailer-daemon", "postmaster"})
_SUPPRESSING = frozenset({"all", "autoreply", "oof"})
_PRECEDENCES = frozenset({"bulk", "junk", "list", "auto_reply"})

# Words common in one language and rare in the other.
_CA_WORDS = frozenset(
    {
        "amb", "també", "però", "sessió", "reunió", "ajuntament", "dijous",
        "dilluns", "dimarts", "dimecres", "divendres", "dissabte", "diumenge",
        "ple", "convocatòria", "retransmissió", "enregistrament", "gràcies",
        "els", "és", "aquesta", "aquest", "molt", "setmana", "avui", "demà",
        "perquè", "vostre", "fins", "mitjançant", "enllaç", "adjunt",
        "salutacions", "gener", "febrer", "març", "maig", "juny", "juliol",
        "setembre", "desembre", "comissió", "ordinària", "sessions", "nostre",
    }
)  # fmt: skip
_ES_WORDS = frozenset(
    {
        "con", "también", "pero", "sesión", "reunión", "ayuntamiento", "jueves",
        "lunes", "martes", "miércoles", "viernes", "sábado", "domingo", "pleno",
        "convocatoria", "retransmisión", "grabación", "gracias", "los", "está",
        "esta", "este", "muy", "semana", "hoy", "mañana", "porque", "vuestro",
        "hasta", "mediante", "enlace", "adjunto", "saludos", "enero", "febrero",
        "marzo", "mayo", "junio", "julio", "septiembre", "diciembre",
        "comisión", "ordinaria", "sesiones", "nuestro", "para",
    }
)  # fmt: skip


@dataclass(slots=True)
class _Walk:
    """What the walk over the MIME tree gathers."""

    max_parts: int
    max_depth: int
    parts: int = 0
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    calendars: list[CalendarPart] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    report: bool = False


def parse_envelope(
    data: bytes,
    *,
    service_address: str,
    own_domain: str,
    max_parts: int = 100,
    max_depth: int = 10,
    headers_only: bool = False,
) -> Envelope:
    """Read what a raw message's headers and MIME structure say.

    Raises ``MimeError`` (with a short reason) when the message cannot be
    read or is larger or deeper than the caps allow; nothing else escapes.
    With ``headers_only`` the body is not read at all: what is left of a
    message whose body broke the caps, to name it and answer its sender.
    """
    try:
        return _parse(
            data,
            service_address=service_address,
            own_domain=own_domain,
            max_parts=max_parts,
            max_depth=max_depth,
            headers_only=headers_only,
        )
    except MimeError:
        raise
    except RecursionError as error:
        raise MimeError("too-deep", "the parser ran out of stack") from error
    except Exception as error:  # the contract: bad input becomes a MimeError
        raise MimeError("unreadable", f"{type(error).__name__}: {error}") from error


def _parse(
    data: bytes,
    *,
    service_address: str,
    own_domain: str,
    max_parts: int,
    max_depth: int,
    headers_only: bool,
) -> Envelope:
    defects: list[str] = []
    body = data
    if body.startswith(BOM):
        body = body[len(BOM) :]
        defects.append("bom-stripped")

    walk = _Walk(max_parts=max_parts, max_depth=max_depth)
    if headers_only:
        parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
        message = parser.parsebytes(body)
        defects.append("body-not-read")
    else:
        # compat32 keeps headers as written: only those read are decoded.
        message = email.message_from_bytes(body, policy=email.policy.compat32)
        _visit(message, walk, depth=0, inside_message=False)
    defects.extend(walk.defects)

    from_name, from_addr = _first_address(message, "From")
    _, reply_to = _first_address(message, "Reply-To")
    return_path = _return_path(message)
    subject = _LINE_BREAKS.sub(" ", _header_text(message, "Subject"))
    message_id = _message_id(message, data)
    text = _body_text(walk, defects)

    automatic = _automatic(
        message,
        walk=walk,
        from_addr=from_addr,
        return_path=return_path,
        message_id=message_id,
        service_address=service_address.strip().lower(),
        own_domain=own_domain.strip().lower(),
    )

    return Envelope(
        message_id=message_id,
        from_addr=from_addr,
        from_name=from_name,
        reply_to=reply_to,
        return_path=return_path,
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        subject=subject,
        references=_references(message),
        automatic=automatic,
        text=text,
        calendars=tuple(walk.calendars),
        attachments=tuple(walk.attachments),
        defects=tuple(dict.fromkeys(defects)),
        language=guess_language(f"{subject}\n{text}"),
    )


# --- the MIME tree ---------------------------------------------------------


def _visit(part: Message, walk: _Walk, *, depth: int, inside_message: bool) -> None:
    """Visit ``part`` and its children, enforcing the caps as it goes."""
    walk.parts += 1
    if walk.parts > walk.max_parts:
        raise MimeError("too-many-parts", f"more than {walk.max_parts} parts")
    if depth > walk.max_depth:
        raise MimeError("too-deep", f"nested deeper than {walk.max_depth}")
    walk.defects.extend(_defect_name(defect) for defect in part.defects)

    head = _Head(part)
    content_type = head.content_type()
    if content_type == "multipart/report" or content_type in _REPORT_TYPES:
        walk.report = True

    if part.is_multipart():
        children = part.get_payload()
        if not isinstance(children, list):
            return
        nested = inside_message or content_type.startswith("message/")
        for child in children:
            if isinstance(child, Message):
                _visit(child, walk, depth=depth + 1, inside_message=nested)
        return

    _visit_leaf(part, head, content_type, walk, inside_message=inside_message)


def _visit_leaf(
    part: Message, head: _Head, content_type: str, walk: _Walk, *, inside_message: bool
) -> None:
    filename = _filename(head)
    if content_type in _CALENDAR_TYPES or filename.lower().endswith(".ics"):
        walk.calendars.append(_calendar(part, head, content_type, filename, walk))
        return

    disposition = (head.disposition() or "").lower()
    if filename or disposition == "attachment":
        walk.attachments.append(filename or content_type)
        return
    if inside_message or content_type.split("/")[0] != "text":
        return

    if content_type == "text/plain":
        walk.plain.append(_part_text(part, head, walk))
    elif content_type == "text/html":
        walk.html.append(html_to_text(_part_text(part, head, walk)))


def _calendar(
    part: Message, head: _Head, content_type: str, filename: str, walk: _Walk
) -> CalendarPart:
    payload = _payload(part, walk)
    if payload.startswith(BOM):
        payload = payload[len(BOM) :]
        walk.defects.append("bom-stripped")
    method = _param(head, "method")
    return CalendarPart(
        data=payload,
        content_type=content_type,
        method=method.upper() if method else None,
        filename=filename or None,
    )


def _payload(part: Message, walk: _Walk) -> bytes:
    """The part's body with its transfer encoding undone."""
    encoding = _unfold(_raw_header(part, "Content-Transfer-Encoding") or "")
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return b""
    if encoding.strip().lower() == "quoted-printable":
        raw = part.get_payload(decode=False)
        if isinstance(raw, str) and re.search(r"=(?![0-9A-Fa-f]{2}|\r?\n|$)", raw):
            walk.defects.append("invalid-quoted-printable")
    return payload


def _part_text(part: Message, head: _Head, walk: _Walk) -> str:
    text, fell_back = decode_bytes(_payload(part, walk), _param(head, "charset"))
    if fell_back:
        walk.defects.append("charset-fallback")
    return text


def _param(head: _Head, name: str) -> str | None:
    """A Content-Type parameter, read from the raw header if the parser lost it."""
    try:
        value = head.param(name, "content-type")
    except Exception:  # a header the parser cannot take apart
        value = None
    if isinstance(value, tuple):
        value = email.utils.collapse_rfc2231_value(value)
    if isinstance(value, str) and value.strip():
        return clean_surrogates(value.strip())

    raw = head.raw_type or ""
    found = re.search(rf'(?i)(?:^|;)\s*{name}\s*=\s*"?([^";\s]+)', raw)
    return found.group(1) if found else None


def _filename(head: _Head) -> str:
    try:
        name = head.filename() or _param(head, "name") or ""
    except Exception:  # an RFC 2231 value the parser cannot decode
        name = _param(head, "name") or ""
    return _LINE_BREAKS.sub(" ", clean_surrogates(str(name))).strip()


class _Head:
    """A part's Content-Type and Content-Disposition, each read once.

    The message is parsed with ``compat32``, which leaves these headers as
    written; they are read here as the modern policy reads them.  A plain
    header (ASCII tokens and quoted strings, no comments, encoded words or
    RFC 2231 parameters) is taken apart with one regular expression; any
    other goes to the modern policy, on a copy holding only these headers.
    """

    __slots__ = ("_default", "_disposition", "_modern", "_type", "raw_type")

    def __init__(self, part: Message) -> None:
        raw_type = raw_disposition = None
        for key, value in part.raw_items():
            lowered = key.lower()
            if lowered == "content-type" and raw_type is None:
                raw_type = _FOLD.sub("", str(value))
            elif lowered == "content-disposition" and raw_disposition is None:
                raw_disposition = _FOLD.sub("", str(value))
        self.raw_type = raw_type
        self._default = part.get_default_type()
        self._type = _plain_header(raw_type, _PLAIN_TYPE)
        self._disposition = _plain_header(raw_disposition, _PLAIN_DISPOSITION)
        self._modern: EmailMessage | None = None
        if self._type is None or self._disposition is None:
            self._modern = EmailMessage(policy=email.policy.default)
            self._modern.set_default_type(self._default)
            for key, value in part.raw_items():
                if key.lower() in ("content-type", "content-disposition"):
                    self._modern.set_raw(key, value)

    def content_type(self) -> str:
        """As ``EmailMessage.get_content_type``."""
        if self._modern is not None:
            return self._modern.get_content_type()
        assert self._type is not None
        return self._type[0] or self._default

    def disposition(self) -> str | None:
        """As ``EmailMessage.get_content_disposition``."""
        if self._modern is not None:
            return self._modern.get_content_disposition()
        assert self._disposition is not None
        return self._disposition[0] or None

    def param(self, name: str, header: str) -> _ParamValue:
        """As ``EmailMessage.get_param(name, header=header)``."""
        value: _ParamValue = self._param(name, header, None)
        return value

    def filename(self) -> str | None:
        """As ``EmailMessage.get_filename``."""
        if self._modern is not None:
            return self._modern.get_filename()
        missing = object()
        found = self._param("filename", "content-disposition", missing)
        if found is missing:
            found = self._param("name", "content-type", missing)
        if found is missing or found is None:
            return None
        return email.utils.collapse_rfc2231_value(found).strip()

    def _param(self, name: str, header: str, failobj: Any) -> Any:
        if self._modern is not None:
            return self._modern.get_param(name, failobj, header)
        plain = self._type if header == "content-type" else self._disposition
        assert plain is not None
        return plain[1].get(name.lower(), failobj)


_ParamValue = str | tuple[str, str, str] | None
_ATOM = r"[!#$%&'*+.^_`|~0-9A-Za-z{}-]+"  # an RFC 2045 token
_QUOTED = r'"[ !#-\[\]-~]*"'  # printable ASCII, no escapes
_PARAMS = rf"((?:[ \t]*;[ \t]*[A-Za-z0-9._-]+[ \t]*=[ \t]*(?:{_ATOM}|{_QUOTED}))*)"
_PLAIN_TYPE = re.compile(rf"[ \t]*({_ATOM}/{_ATOM}){_PARAMS}[ \t]*;?[ \t]*")
_PLAIN_DISPOSITION = re.compile(rf"[ \t]*({_ATOM}){_PARAMS}[ \t]*;?[ \t]*")
_PLAIN_PARAM = re.compile(
    rf"[ \t]*;[ \t]*([A-Za-z0-9._-]+)[ \t]*=[ \t]*({_ATOM}|{_QUOTED})"
)


def _plain_header(
    raw: str | None, pattern: re.Pattern[str]
) -> tuple[str, dict[str, str]] | None:
    """(lower-cased value, parameters) of a plain header; ("", {}) when absent.

    None when the header is not plain and needs the modern policy's parser.
    """
    if raw is None:
        return "", {}
    value = _unfold(raw)
    if "=?" in value:
        return None
    matched = pattern.fullmatch(value)
    if matched is None:
        return None
    params: dict[str, str] = {}
    for name, quoted in _PLAIN_PARAM.findall(matched.group(2)):
        params.setdefault(name.lower(), email.utils.unquote(quoted))
    return matched.group(1).lower(), params


def _unfold(value: str) -> str:
    """A header value as the modern policy reads it: every CR and LF removed."""
    return value.replace("\r", "").replace("\n", "")


def _defect_name(defect: object) -> str:
    name = type(defect).__name__.removesuffix("Defect")
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _body_text(walk: _Walk, defects: list[str]) -> str:
    plain = "\n".join(text for text in walk.plain if text.strip())
    text = plain if plain.strip() else "\n".join(t for t in walk.html if t.strip())
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > MAX_TEXT:
        defects.append("text-truncated")
        text = text[:MAX_TEXT]
    return text


# --- headers ---------------------------------------------------------------


def _raw_header(message: Message, name: str) -> str | None:
    """The first header ``name`` as written (unfolded), or None when absent."""
    for key, value in message.raw_items():
        if key.lower() == name.lower():
            return _FOLD.sub("", str(value))
    return None


def _raw_headers(message: Message, name: str) -> list[str]:
    return [
        _FOLD.sub("", str(value))
        for key, value in message.raw_items()
        if key.lower() == name.lower()
    ]


def _header_text(message: Message, name: str) -> str:
    """An unstructured header, RFC 2047 decoded; "" when absent."""
    raw = _raw_header(message, name)
    if raw is None:
        return ""
    value = clean_surrogates(raw).strip()
    try:
        return str(email.policy.default.header_factory(name, value))
    except Exception:  # the older decoder is more forgiving
        return _decode_words(value)


def _decode_words(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:  # an unknown charset: keep the words as written
        return value


def _address_list(message: Message, name: str) -> list[tuple[str, str]]:
    """(decoded name, lower-cased address) pairs of every header ``name``."""
    values = [clean_surrogates(value) for value in _raw_headers(message, name)]
    pairs = email.utils.getaddresses(values) if values else []
    result = []
    for display, address in pairs:
        address = _LINE_BREAKS.sub("", address).strip().lower()
        display = _LINE_BREAKS.sub(" ", _decode_words(display)).strip()
        if address or display:
            result.append((display, address))
    return result


def _first_address(message: Message, name: str) -> tuple[str, str]:
    for display, address in _address_list(message, name):
        if address:
            return display, address
    return "", ""


def _addresses(message: Message, name: str) -> tuple[str, ...]:
    found = (address for _, address in _address_list(message, name) if address)
    return tuple(dict.fromkeys(found))


def _return_path(message: Message) -> str | None:
    raw = _raw_header(message, "Return-Path")
    if raw is None:
        return None
    value = clean_surrogates(raw).strip()
    if value in ("", "<>") or re.fullmatch(r"<\s*>", value):
        return ""
    _, address = email.utils.parseaddr(value)
    return _LINE_BREAKS.sub("", address).strip().lower()


def _message_id(message: Message, data: bytes) -> str:
    raw = clean_surrogates(_raw_header(message, "Message-ID") or "")
    found = _ANGLE_ID.search(raw)
    if found:
        return found.group(1)
    words = _LINE_BREAKS.sub(" ", raw).split()
    if words:
        return words[0].strip("<>")
    return f"sha256-{hashlib.sha256(data).hexdigest()[:32]}@mailbot.invalid"


def _references(message: Message) -> tuple[str, ...]:
    ids: list[str] = []
    for name in ("References", "In-Reply-To"):
        for raw in _raw_headers(message, name):
            value = clean_surrogates(raw)
            found = _ANGLE_ID.findall(value) or value.split()
            ids.extend(item.strip("<>") for item in found)
    return tuple(dict.fromkeys(item for item in ids if item))


# --- automatic mail --------------------------------------------------------


def _automatic(
    message: Message,
    *,
    walk: _Walk,
    from_addr: str,
    return_path: str | None,
    message_id: str,
    service_address: str,
    own_domain: str,
) -> str | None:
    """Why the message is automatic and must never be answered, or None."""
    names = {key.lower() for key, _ in message.raw_items()}

    domain = message_id.rpartition("@")[2].lower()
    if "x-mailbot-outcome" in names or (own_domain and domain == own_domain):
        return "loop"
    if service_address and from_addr == service_address:
        return "own-address"
    if walk.report:
        return "bounce"

    senders = [from_addr, return_path or ""]
    senders.extend(address for _, address in _address_list(message, "Sender"))
    if any(address.partition("@")[0] in _DAEMONS for address in senders if address):
        return "mailer-daemon"
    if return_path == "":
        return "null-return-path"

    for value in _raw_headers(message, "Auto-Submitted"):
        if _token(value) != "no":
            return "auto-submitted"
    for value in _raw_headers(message, "X-Auto-Response-Suppress"):
        tokens = {word.strip().lower() for word in re.split(r"[,\s]+", value)}
        if tokens & _SUPPRESSING:
            return "x-auto-response-suppress"
    for value in _raw_headers(message, "Precedence"):
        if _token(value) in _PRECEDENCES:
            return "precedence"
    if any(name.startswith("list-") for name in names):
        return "list"
    return None


def _token(value: str) -> str:
    """The first word of a header value, lower case, parameters and comments cut."""
    value = re.sub(r"\([^)]*\)", " ", value)
    return value.split(";")[0].strip().lower()


# --- language --------------------------------------------------------------


def guess_language(text: str) -> str | None:
    """ "ca" or "es" when distinctive words clearly favour one, else None."""
    tokens = text[:MAX_TEXT].lower().split()
    kept = " ".join(t for t in tokens if not any(m in t for m in ("://", "www.", "@")))
    words = re.findall(r"[^\W\d_]{2,}", kept)
    catalan = sum(1 for word in words if word in _CA_WORDS)
    spanish = sum(1 for word in words if word in _ES_WORDS)
    if catalan >= 2 and catalan >= 2 * spanish:
        return "ca"
    if spanish >= 2 and spanish >= 2 * catalan:
        return "es"
    return None
