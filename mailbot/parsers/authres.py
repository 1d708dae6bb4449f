"""Authentication-Results headers (RFC 8601) and the sender authentication policy.

Anybody can write an ``Authentication-Results`` header into the mail they
send, so only the headers stamped by the configured border server count: the
topmost header whose authserv-id is the configured one, and those directly
under it with no other header in between (several filters of one server
each prepend their own).  Any header further down, whatever its
authserv-id, came with the message and is ignored.

Policies: ``none`` accepts every message; ``dkim`` wants ``dkim=pass`` whose
signing domain (``header.d``) aligns with the From domain in the relaxed
sense (the same domain, or one a subdomain of the other); ``dmarc`` wants
``dmarc=pass`` (and, where the result names it, ``header.from`` equal to
the From domain).
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections.abc import Sequence
from dataclasses import dataclass

from mailbot.parsers.text import clean_surrogates

POLICIES = ("none", "dkim", "dmarc")
HEADER = "authentication-results"

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_EQUALS = re.compile(r"\s*=\s*")
_TOKEN = re.compile(r"[^\s=]+")


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One ``method=result`` statement with its properties (``header.d`` ...)."""

    method: str  # lower case, version cut: "dkim", "dmarc", "spf"
    result: str  # lower case: "pass", "fail", "none", ...
    properties: tuple[tuple[str, str], ...] = ()  # ("header.d", "example.org")

    def get(self, name: str) -> str:
        """The first value of property ``name`` (e.g. ``header.d``), or ""."""
        for key, value in self.properties:
            if key == name:
                return value
        return ""


@dataclass(frozen=True, slots=True)
class AuthHeader:
    """One Authentication-Results header: who wrote it and what it says."""

    authserv_id: str  # lower case
    results: tuple[AuthResult, ...]


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    """Whether a message meets the policy, and why, for the audit row."""

    passed: bool
    detail: str


def parse_header(value: str) -> AuthHeader | None:
    """Read one header value; None when it has no authserv-id at all."""
    statements = _split(_strip_comments(_FOLD.sub("", value)), ";")
    if not statements:
        return None
    head = statements[0].split()
    if not head:
        return None
    authserv_id = _unquote(head[0]).lower()

    results = []
    for statement in statements[1:]:
        result = _statement(statement)
        if result is not None:
            results.append(result)
    return AuthHeader(authserv_id, tuple(results))


def trusted_headers(values: Sequence[str], *, authserv_id: str) -> list[AuthHeader]:
    """The border server's own Authentication-Results headers.

    ``values`` holds every header of the message, top first, as
    ``"Name: value"`` strings.  The trusted run starts at the topmost header
    with ``authserv_id`` and ends at the next header of any other name or
    authserv-id.
    """
    wanted = authserv_id.strip().lower()
    trusted: list[AuthHeader] = []
    for line in values:
        name, _, value = line.partition(":")
        parsed = parse_header(value) if name.strip().lower() == HEADER else None
        ours = parsed is not None and parsed.authserv_id == wanted
        if ours and parsed is not None:
            trusted.append(parsed)
        elif trusted:
            break
    return trusted


def check_authentication(
    data: bytes, *, from_addr: str, require: str, authserv_id: str
) -> AuthVerdict:
    """Whether the raw message ``data`` meets the policy ``require``."""
    if require == "none":
        return AuthVerdict(True, "no authentication required")
    if require not in POLICIES:
        raise ValueError(f"unknown policy {require!r}")

    domain = from_addr.rpartition("@")[2].strip().lower()
    if not domain:
        return AuthVerdict(False, "no From domain to authenticate")
    headers = trusted_headers(_header_lines(data), authserv_id=authserv_id)
    if not headers:
        return AuthVerdict(False, f"no Authentication-Results from {authserv_id}")
    results = [result for header in headers for result in header.results]

    if require == "dmarc":
        for result in results:
            if result.method != "dmarc" or result.result != "pass":
                continue
            header_from = result.get("header.from").lower()
            if not header_from or header_from == domain:
                return AuthVerdict(True, f"dmarc=pass for {domain}")
        return AuthVerdict(False, f"no dmarc=pass for {domain} from {authserv_id}")

    for result in results:
        if result.method == "dkim" and result.result == "pass":
            signer = _signing_domain(result)
            if aligned(signer, domain):
                return AuthVerdict(True, f"dkim=pass d={signer} for {domain}")
    return AuthVerdict(False, f"no dkim=pass aligned with {domain} from {authserv_id}")


def aligned(signer: str, domain: str) -> bool:
    """Relaxed alignment without a public suffix list.

    The same domain, or one a subdomain of the other; the signing domain
    must have at least two labels, so that ``d=com`` aligns with nothing.
    """
    signer = signer.strip().lower().rstrip(".")
    domain = domain.strip().lower().rstrip(".")
    if not signer or not domain or "." not in signer:
        return False
    return (
        signer == domain
        or domain.endswith("." + signer)
        or signer.endswith("." + domain)
    )


# -- reading the header -------------------------------------------------------


def _header_lines(data: bytes) -> list[str]:
    """Every header of ``data`` in order, as ``"Name: value"`` strings."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    message = parser.parsebytes(data)
    return [
        f"{name}: {clean_surrogates(str(value))}" for name, value in message.items()
    ]


def _statement(text: str) -> AuthResult | None:
    """``method[/version]=result`` and its ``ptype.property=value`` pairs."""
    pairs = _pairs(text)
    if not pairs:
        return None
    method, result = pairs[0]
    method = method.split("/")[0].lower()
    if not method or not result or method == "none":
        return None
    properties = tuple(
        (key.lower(), _unquote(value)) for key, value in pairs[1:] if key
    )
    return AuthResult(method, _unquote(result).lower(), properties)


def _pairs(text: str) -> list[tuple[str, str]]:
    """``key=value`` words of a statement; quoted values may hold spaces."""
    words = _split(_EQUALS.sub("=", text.strip()), None)
    pairs = []
    for word in words:
        key, equals, value = word.partition("=")
        if equals and _TOKEN.fullmatch(key):
            pairs.append((key, value))
    return pairs


def _split(text: str, separator: str | None) -> list[str]:
    """Split ``text`` at ``separator`` (or any white space) outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if quoted and char == "\\":
            current.append(char)
            escaped = True
            continue
        if char == '"':
            quoted = not quoted
        at_separator = char.isspace() if separator is None else char == separator
        if at_separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _strip_comments(text: str) -> str:
    """Remove ``(comments)``, nested ones too, leaving quoted strings alone."""
    kept: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
            if depth == 0:
                kept.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                kept.append(char)
            continue
        if depth == 0 and char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
            kept.append(" ")
            continue
        elif not quoted and char == ")" and depth:
            depth -= 1
            continue
        if depth == 0:
            kept.append(char)
    return "".join(kept)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _signing_domain(result: AuthResult) -> str:
    """``header.d``, or the domain of ``header.i`` when only it is given."""
    signer = result.get("header.d")
    if not signer:
        signer = result.get("header.i").rpartition("@")[2]
    return signer.strip().lower()
