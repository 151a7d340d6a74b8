"""Money: Decimal rupees with two places, rounded half-up in one place."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from qure.core.errors import InvalidInput

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999.99")  # NUMERIC(12, 2)


def round_money(value: Decimal) -> Decimal:
    """Two decimal places, half-up (the GST rule for a line)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_money(value: Any, field: str, allow_zero: bool = True) -> Decimal:
    """An amount given as text or a number ("120", "120.5", 120.50) as Decimal rupees with
    two places. Raises InvalidInput naming `field` for text that is not an amount, more
    than two decimal places, a negative amount (or zero when not allowed), or one too large
    to store."""
    # Amounts arrive as text from forms and as text or numbers from JSON: this is where they
    # are read, and a JSON true must not pass for 1 rupee.
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"{field}: give an amount", fields={field: "Give an amount in rupees."})
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        amount = None
    if amount is None or not amount.is_finite():
        raise InvalidInput(
            f"{field}: not an amount", fields={field: "Give an amount such as 120.50."}
        )
    # copy_abs() and comparisons never round, so even 1e999999999 gets this answer.
    if amount.copy_abs() > MAX_AMOUNT:
        lowest = "0" if allow_zero else "0.01"
        raise InvalidInput(
            f"{field}: out of range",
            fields={field: f"Give an amount from {lowest} to {MAX_AMOUNT}."},
        )
    if amount != amount.quantize(CENT):
        raise InvalidInput(
            f"{field}: at most two decimal places", fields={field: "At most two decimal places."}
        )
    if amount < 0 or (amount == 0 and not allow_zero) or amount > MAX_AMOUNT:
        lowest = "0" if allow_zero else "0.01"
        raise InvalidInput(
            f"{field}: out of range",
            fields={field: f"Give an amount from {lowest} to {MAX_AMOUNT}."},
        )
    return amount.quantize(CENT)
