"""Spanish tax identifiers (NIF): normalising them and checking their control.

Three shapes are accepted:

- an organisation's NIF (the former CIF): a letter, seven digits and a control
  character. Public bodies use P (local corporations), Q (public bodies) and
  S (state and regional administration); the control is a letter for
  P, Q, R, S, N and W, a digit for A, B, E and H, and either for the others;
- a Spanish citizen's DNI: eight digits and a letter;
- a foreigner's NIE: X, Y or Z, seven digits and a letter.
"""

from __future__ import annotations

import re

ORGANISATION_LETTERS = "ABCDEFGHJNPQRSUVW"
PUBLIC_BODY_LETTERS = "PQS"
_LETTER_CONTROL_ONLY = "PQRSNW"
_DIGIT_CONTROL_ONLY = "ABEH"
_CONTROL_LETTERS = "JABCDEFGHI"
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_NIE_PREFIXES = {"X": "0", "Y": "1", "Z": "2"}

_SEPARATORS = re.compile(r"[\s.\-/_]+")
_ORGANISATION = re.compile(rf"[{ORGANISATION_LETTERS}]\d{{7}}[0-9A-J]")
_DNI = re.compile(r"\d{8}[A-Z]")
_NIE = re.compile(r"[XYZ]\d{7}[A-Z]")


def normalise_nif(text: str) -> str:
    """Upper-case ``text`` and drop spaces, dots, dashes and a leading ``ES``.

    ``ES`` is the prefix of the EU VAT number, which some entities write in
    front of their NIF (``ESP0801900B``).
    """
    nif = _SEPARATORS.sub("", text).upper()
    if len(nif) == 11 and nif.startswith("ES"):
        nif = nif[2:]
    return nif


def nif_kind(nif: str) -> str | None:
    """Say what shape a normalised NIF has: "organisation", "dni", "nie" or None."""
    if _ORGANISATION.fullmatch(nif):
        return "organisation"
    if _DNI.fullmatch(nif):
        return "dni"
    if _NIE.fullmatch(nif):
        return "nie"
    return None


def organisation_control(digits: str) -> int:
    """The control value (0-9) of the seven digits of an organisation's NIF."""
    total = 0
    for position, char in enumerate(digits, start=1):
        value = int(char)
        if position % 2 == 0:
            total += value
        else:
            doubled = value * 2
            total += doubled // 10 + doubled % 10
    return (10 - total % 10) % 10


def valid_nif(nif: str) -> bool:
    """Tell whether ``nif`` (normalised or not) has a correct control character."""
    nif = normalise_nif(nif)
    kind = nif_kind(nif)

    if kind == "organisation":
        letter, digits, control = nif[0], nif[1:8], nif[8]
        expected = organisation_control(digits)
        as_letter = control == _CONTROL_LETTERS[expected]
        as_digit = control == str(expected)
        if letter in _LETTER_CONTROL_ONLY:
            return as_letter
        if letter in _DIGIT_CONTROL_ONLY:
            return as_digit
        return as_letter or as_digit

    if kind == "nie":
        nif = _NIE_PREFIXES[nif[0]] + nif[1:]
    if kind in ("dni", "nie"):
        return nif[8] == _DNI_LETTERS[int(nif[:8]) % 23]
    return False
