"""Dose, frequency and quantity of a prescription item.

Pure arithmetic: no database, no Flask. A frequency is one of the clinic's codes (OD, BD,
TDS, QID, HS, STAT, SOS) or a pattern of doses through the day such as 1-0-1. Quantities
are computed exactly with Decimal, so half tablets add up as the pharmacy counts them and
only the total is rounded up.

Pattern parts are whole numbers or halves ("0.5", "1.5", "½", "1½"), at most 99 each;
quarters and other fractions are refused, because a tablet is split in two, not four (a
quarter dose is written as dose 0.25 with a pattern of 1s). Spaces around the dashes are
allowed ("1 - 0 - 1").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any, NoReturn

from qure.core.errors import InvalidInput
from qure.pharmacy.models import DOSAGE_FORMS  # the one list of forms


@dataclass(frozen=True)
class Frequency:
    """How often a medicine is taken. `code` is normalised ("BD", "1-0-1"); `per_day` is
    None for STAT and SOS, which have no daily count; `words` is what the printed
    prescription says, always "<code>: <meaning>" ("BD: twice a day", "1-0-1: morning and
    night")."""

    code: str
    per_day: Decimal | None
    words: str
    as_needed: bool = False
    once: bool = False


FREQUENCY_CODES: dict[str, Frequency] = {
    "OD": Frequency("OD", Decimal(1), "OD: once a day"),
    "BD": Frequency("BD", Decimal(2), "BD: twice a day"),
    "TDS": Frequency("TDS", Decimal(3), "TDS: three times a day"),
    "QID": Frequency("QID", Decimal(4), "QID: four times a day"),
    "HS": Frequency("HS", Decimal(1), "HS: at night"),
    "STAT": Frequency("STAT", None, "STAT: once, now", once=True),
    "SOS": Frequency("SOS", None, "SOS: when needed", as_needed=True),
}
FREQUENCY_HELP = "Use OD, BD, TDS, QID, HS, STAT, SOS or a pattern such as 1-0-1 or 1-1-1-1."
PATTERN_SLOTS = {
    3: ("morning", "afternoon", "night"),
    4: ("morning", "noon", "evening", "night"),
}
SLOT_PHRASES = {
    "morning": "in the morning",
    "afternoon": "in the afternoon",
    "noon": "at noon",
    "evening": "in the evening",
    "night": "at night",
}
PART_RE = re.compile(r"[0-9]{1,2}(?:\.[0-9]{1,2})?|[0-9]{0,2}½")
HALF = Decimal("0.5")

COUNTED_FORMS = frozenset({"TABLET", "CAPSULE"})  # counted one by one: quantity computed
PACKED_FORMS = frozenset(DOSAGE_FORMS) - COUNTED_FORMS  # dispensed in packs: quantity given
PACK_NAMES = {
    "SYRUP": "a syrup",
    "SUSPENSION": "a suspension",
    "INJECTION": "an injection",
    "OINTMENT": "an ointment",
    "CREAM": "a cream",
    "DROPS": "drops",
    "INHALER": "an inhaler",
    "OTHER": "this form of medicine",
}
MAX_DOSE = Decimal(100)
DOSE_STEP = Decimal("0.01")
MAX_DAYS = 365
MAX_QUANTITY = 10000


# ---- frequency ---------------------------------------------------------------------------


def parse_frequency(text: str, field: str = "frequency") -> Frequency:
    """The frequency `text` names: a code (any case, surrounding spaces ignored) or a
    pattern of 3 parts (morning, afternoon, night) or 4 (morning, noon, evening, night).
    Raises InvalidInput naming `field` for anything else, including a pattern that gives
    nothing all day ("0-0-0"). Returns the Frequency; a pattern's per_day is its sum."""
    cleaned = text.strip().upper() if isinstance(text, str) else ""
    if cleaned in FREQUENCY_CODES:
        return FREQUENCY_CODES[cleaned]
    parts = _pattern_parts(cleaned)
    if not parts or sum(parts) == 0:
        raise InvalidInput(f"{field}: not a frequency", fields={field: FREQUENCY_HELP})
    code = "-".join(_plain(part) for part in parts)
    return Frequency(code, _plain_decimal(sum(parts)), f"{code}: {_pattern_words(parts)}")


def _pattern_parts(text: str) -> list[Decimal] | None:
    pieces = re.split(r"\s*-\s*", text)
    if len(pieces) not in PATTERN_SLOTS or not all(PART_RE.fullmatch(p) for p in pieces):
        return None
    parts = [_part_value(piece) for piece in pieces]
    if any(part % HALF for part in parts):
        return None
    return parts


def _part_value(piece: str) -> Decimal:
    if piece.endswith("½"):
        return Decimal(piece[:-1] or 0) + HALF
    return Decimal(piece)


def _pattern_words(parts: list[Decimal]) -> str:
    slots = PATTERN_SLOTS[len(parts)]
    taken = [(amount, slot) for amount, slot in zip(parts, slots, strict=True) if amount]
    # One of each is the usual case and reads best bare ("morning and night"); as soon as
    # one amount differs, every amount is said so that none can be misread.
    if all(amount == 1 for amount, _ in taken):
        if len(taken) == 1:  # a lone "night" reads as a label, "at night" as an instruction
            return SLOT_PHRASES[taken[0][1]]
        return _join([slot for _, slot in taken])
    return _join([f"{_amount_words(amount)} {SLOT_PHRASES[slot]}" for amount, slot in taken])


def _amount_words(amount: Decimal) -> str:
    return "half" if amount == HALF else dose_words(amount)


def _join(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


# ---- dose and quantity -------------------------------------------------------------------


def dose_words(dose: Decimal) -> str:
    """A dose as the printed prescription says it: whole numbers plainly ("1", "2"),
    halves with ½ ("½", "1½"), anything else as a decimal ("0.25"). Raises nothing."""
    whole, rest = divmod(dose, 1)
    if rest == HALF:
        return f"{_plain(whole)}½" if whole else "½"
    return _plain(dose)


def quantity(
    dosage_form: str,
    dose: Decimal,
    frequency: Frequency,
    duration_days: int,
    given: Decimal | int | None,
) -> int:
    """How much of a medicine goes out for one prescription item.

    For tablets and capsules taken a number of times a day it is ceil(dose * per day *
    days), unless `given`. For SOS, STAT and every form dispensed in packs the number of
    packs must be given. Raises InvalidInput naming each bad field at once (`dose` above 0,
    at most 100, two decimals; `duration_days` a whole number 1-365; `quantity` a whole
    number 1-10000; `dosage_form` one of DOSAGE_FORMS), then naming `quantity` when it is
    required but missing or computes to more than 10000. Returns the given quantity when
    there is one, otherwise the computed one.
    """
    _check(dosage_form, dose, duration_days, given)
    if given is not None:
        return int(_decimal(given))
    form = dosage_form.strip().upper()
    if form in PACKED_FORMS:
        _quantity_required(f"Give the number of packs for {PACK_NAMES[form]}.")
    if frequency.per_day is None:
        _quantity_required(
            "Give the quantity for a medicine taken when needed."
            if frequency.as_needed
            else "Give the quantity for a single dose (STAT)."
        )
    total = _decimal(dose) * frequency.per_day * duration_days
    count = int(total.to_integral_value(rounding=ROUND_CEILING))
    if count > MAX_QUANTITY:
        _quantity_required(f"This comes to {count}; give at most {MAX_QUANTITY}.")
    return count


def _check(dosage_form: Any, dose: Any, duration_days: Any, given: Any) -> None:
    errors = {
        field: message
        for field, message in (
            ("dosage_form", _form_error(dosage_form)),
            ("dose", _dose_error(dose)),
            ("duration_days", _days_error(duration_days)),
            ("quantity", None if given is None else _given_error(given)),
        )
        if message
    }
    if errors:
        raise InvalidInput.naming(errors)


def _form_error(dosage_form: Any) -> str | None:
    if isinstance(dosage_form, str) and dosage_form.strip().upper() in DOSAGE_FORMS:
        return None
    return "One of " + ", ".join(DOSAGE_FORMS) + "."


def _dose_error(dose: Any) -> str | None:
    value = _decimal(dose)
    if value is None:
        return "Give the dose as a number such as 1 or 0.5."
    if not 0 < value <= MAX_DOSE:
        return f"Give a dose above 0 and at most {MAX_DOSE}."
    if value != value.quantize(DOSE_STEP):
        return "Give the dose with at most 2 decimal places."
    return None


def _days_error(days: Any) -> str | None:
    # A prescription's items arrive as the JSON body's own dicts (untyped, so that every
    # bad item field is named in one answer): True is an int to Python, not a day count.
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        return f"Give a whole number of days from 1 to {MAX_DAYS}."
    return None


def _given_error(given: Any) -> str | None:
    value = _decimal(given)
    if value is None or value != value.to_integral_value() or not 1 <= value <= MAX_QUANTITY:
        return f"Give the quantity as a whole number from 1 to {MAX_QUANTITY}."
    return None


def _quantity_required(message: str) -> NoReturn:
    raise InvalidInput(f"quantity: {message}", fields={"quantity": message})


# ---- numbers -----------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal | None:
    """A finite Decimal read from a Decimal, an int, a float or numeric text; None otherwise."""
    # Doses and quantities come untyped inside a prescription's items (see `_days_error`).
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        return None
    try:
        # A float goes through its shortest text, so 0.1 is read as 0.1, not 0.1000000000000000055.
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _plain_decimal(value: Decimal) -> Decimal:
    # normalize() alone writes 10 as 1E+1; the integral value keeps it readable.
    integral = value.to_integral_value()
    return integral if value == integral else value.normalize()


def _plain(value: Decimal) -> str:
    return format(_plain_decimal(Decimal(value)), "f")
