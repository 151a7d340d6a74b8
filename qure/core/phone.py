"""Phone numbers: one stored form (E.164, India the default country) and one way of showing
them. Staff type numbers every way people say them: "98765 43210", "098765-43210",
"+91 98765 43210", "0091 98765 43210", "(0)98765 43210"; all of them are the same number
and are stored as "+919876543210". Numbers of other countries need their + or 00 code.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

DEFAULT_REGION = "IN"
MAX_TYPED = 40  # longer text is not a phone number; refuse it before parsing

_EXAMPLE = "e.g. 98765 43210 or +91 98765 43210"
_TOO_SHORT = f"Too short for a phone number; give all of it, {_EXAMPLE}."
_TOO_LONG = f"Too long for one phone number; give one, {_EXAMPLE}."
_NOT_A_NUMBER = f"Not a phone number; type it as {_EXAMPLE}."
_BAD_CODE = "Unknown country code after the + (India is +91)."
_REASONS = {
    ValidationResult.TOO_SHORT: _TOO_SHORT,
    ValidationResult.INVALID_LENGTH: "The number of digits is wrong for that country.",
    ValidationResult.TOO_LONG: _TOO_LONG,
    ValidationResult.INVALID_COUNTRY_CODE: _BAD_CODE,
}
_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: _BAD_CODE,
    NumberParseException.TOO_SHORT_NSN: _TOO_SHORT,
    NumberParseException.TOO_SHORT_AFTER_IDD: _TOO_SHORT,
    NumberParseException.TOO_LONG: _TOO_LONG,
}


def normalize(text: str) -> str:
    """The E.164 form ("+919876543210") of a number typed any common way, India being the
    country when none is given.

    Raises ValueError whose message says, for the person who typed it, what is wrong
    (e.g. "Too short for a phone number; ..."). Letters and an extension are refused.
    """
    # Tabs and no-break spaces (pasted from a chat) are spaces to a person, not to the library.
    text = " ".join((text or "").split())
    if not text:
        raise ValueError(f"Give a phone number, {_EXAMPLE}.")
    if len(text) > MAX_TYPED:
        raise ValueError(_TOO_LONG)
    if any(char.isalpha() for char in text):
        # The library would read letters as a keypad ("98765 ABCDE"): a typo, not a number.
        raise ValueError(_NOT_A_NUMBER)
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except NumberParseException as exc:
        raise ValueError(_PARSE_REASONS.get(exc.error_type, _NOT_A_NUMBER)) from None
    if number.extension:
        raise ValueError("Leave out the extension; give the number only.")
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason in _REASONS:
        raise ValueError(_REASONS[reason])
    if not phonenumbers.is_valid_number(number):
        where = "an Indian number" if number.country_code == 91 else "a number of that country"
        raise ValueError(f"Not {where} in use; check the digits.")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def display(e164: str | None) -> str:
    """How a stored number is shown: "+91 98765 43210" (each country's own grouping for
    others). Text that is not a number (an old value that never parsed) is shown as is;
    nothing (None, "") shows as ""."""
    return _international(e164) if e164 and isinstance(e164, str) else ""


@lru_cache(maxsize=4096)  # a page lists the same few numbers again and again
def _international(e164: str) -> str:
    try:
        number = phonenumbers.parse(e164, DEFAULT_REGION)
    except NumberParseException:
        return e164
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
