"""Text helpers shared by the parsers: bytes to text, HTML to text, folding."""

from __future__ import annotations

import codecs
import html
import re
import unicodedata
from html.parser import HTMLParser

BOM = b"\xef\xbb\xbf"
MAX_FOLDED = 20_000  # distinct characters whose folded form is remembered

# Charsets that mail clients label one way and mean another (as browsers do).
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "ks_c_5601-1987": "cp949",
    "gb2312": "gb18030",
}

_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl",
        "dt", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
        "tbody", "thead", "tfoot", "tr", "ul",
    }
)  # fmt: skip
_PARAGRAPH_TAGS = frozenset(
    {"blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "ol", "p", "table", "ul"}
)
_CELL_TAGS = frozenset({"td", "th"})
_SKIPPED_TAGS = frozenset({"script", "style", "title", "template"})


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, bool]:
    """Decode ``data`` as ``charset``, falling back to UTF-8 and Windows-1252.

    Returns the text and whether a fallback was needed (a defect to record).
    A leading byte-order mark is dropped.
    """
    if data.startswith(BOM):
        data = data[len(BOM) :]

    declared = (charset or "").strip().strip('"').lower()
    candidates = [_codec(_CHARSET_ALIASES.get(declared, declared)), "utf-8", "cp1252"]
    known = [name for name in candidates if name]

    for position, name in enumerate(known):
        text = _try_decode(data, name)
        if text is not None:
            return text, bool(declared) and (position > 0 or not candidates[0])
    return data.decode("cp1252", errors="replace"), True


def _codec(name: str) -> str:
    """The codec's canonical name, or "" when Python does not know it."""
    if not name:
        return ""
    try:
        return codecs.lookup(name).name
    except LookupError:
        return ""


def _try_decode(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def clean_surrogates(value: str) -> str:
    """Turn the surrogate escapes the e-mail parser leaves for raw 8-bit bytes
    back into text, reading them as UTF-8 or else Windows-1252."""
    if not any("\udc80" <= char <= "\udcff" for char in value):
        return value
    raw = value.encode("utf-8", errors="surrogateescape")
    text, _ = decode_bytes(raw, "utf-8")
    return text.encode("utf-8", errors="replace").decode("utf-8")


class _TextExtractor(HTMLParser):
    """Collects the visible text of an HTML document, one block per line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.pieces.append(_break(tag))
        elif tag in _CELL_TAGS:
            self.pieces.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.pieces.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.pieces.append(_break(tag))

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.pieces.append(re.sub(r"[ \t\r\n\f]+", " ", data))


def _break(tag: str) -> str:
    """A paragraph-like element ends a paragraph; other blocks end a line."""
    return "\n\n" if tag in _PARAGRAPH_TAGS else "\n"


def html_to_text(markup: str) -> str:
    """The visible text of an HTML document: scripts and styles dropped, a line
    break at each block element, entities unescaped, blank runs collapsed."""
    extractor = _TextExtractor()
    try:
        extractor.feed(markup)
        extractor.close()
        text = "".join(extractor.pieces)
    except Exception:  # a broken document still has its words
        text = html.unescape(re.sub(r"<[^>]*>", " ", markup))

    text = text.replace("\xa0", " ")
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def looks_like_html(text: str) -> bool:
    """Whether ``text`` carries HTML markup (as Google's DESCRIPTION often does)."""
    return (
        re.search(r"<(?:br|p|div|span|b|i|a|html|body|table)\b[^>]*>", text, re.I)
        is not None
    )


def fold(text: str) -> str:
    """Lower-case ``text`` and drop accents, keeping every character's position
    so that a match in the folded text points at the same span of the original.
    Curly apostrophes become straight ones."""
    folded = _FOLDED
    try:
        return "".join([folded[char] for char in text])
    except KeyError:
        if len(folded) > MAX_FOLDED:  # hostile text: keep the memory bounded
            folded.clear()
        for char in set(text) - folded.keys():
            folded[char] = _fold_char(char)
        return "".join([folded[char] for char in text])


def _fold_char(char: str) -> str:
    if char in "’ʼ´`":
        return "'"
    base = "".join(
        c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c)
    )
    if len(base) != 1:
        base = char
    lower = base.lower()
    return lower if len(lower) == 1 else base


# Each character's folded form, computed the first time it is met.
_FOLDED: dict[str, str] = {}
