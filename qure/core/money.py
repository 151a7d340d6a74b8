"""Money: Decimal rupees with two places, rounded half-up in one place; the arithmetic of an
invoice (discount shares, GST per line, totals), amounts in words and the financial year."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
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
    # "-0" is not below zero, but Decimal keeps its sign: without copy_abs() it would be
    # stored as 0 and answered, and carried into sums, as "-0.00".
    return amount.copy_abs().quantize(CENT)


# ---- invoice arithmetic (SPEC 8): one module for invoices and credit notes alike ------------

GST_RATES = (0, 5, 12, 18, 28)
PERCENT, AMOUNT = "PERCENT", "AMOUNT"


@dataclass(frozen=True)
class Line:
    """What a line is priced from: quantity (> 0), unit price (≥ 0), GST rate (a slab)."""

    quantity: Decimal
    unit_price: Decimal
    gst_rate: int


@dataclass(frozen=True)
class LineAmounts:
    value: Decimal  # quantity x unit price, to the paisa
    discount: Decimal  # the line's share of the invoice discount
    taxable: Decimal  # value - discount
    cgst: Decimal
    sgst: Decimal

    @property
    def tax(self) -> Decimal:
        return self.cgst + self.sgst

    @property
    def total(self) -> Decimal:
        return self.taxable + self.tax


@dataclass(frozen=True)
class Priced:
    """An invoice's lines priced, and its totals (the sums of the lines)."""

    lines: tuple[LineAmounts, ...]

    def _sum(self, name: str) -> Decimal:
        return sum((getattr(line, name) for line in self.lines), Decimal("0.00"))

    @property
    def subtotal(self) -> Decimal:
        return self._sum("value")

    @property
    def discount(self) -> Decimal:
        return self._sum("discount")

    @property
    def taxable(self) -> Decimal:
        return self._sum("taxable")

    @property
    def cgst(self) -> Decimal:
        return self._sum("cgst")

    @property
    def sgst(self) -> Decimal:
        return self._sum("sgst")

    @property
    def total(self) -> Decimal:
        return self._sum("total")


def line_value(quantity: Decimal, unit_price: Decimal) -> Decimal:
    return round_money(quantity * unit_price)


def half_gst(taxable: Decimal, rate: int) -> Decimal:
    """CGST (= SGST) on a taxable value: half the rate, rounded half-up to the paisa."""
    return round_money(taxable * Decimal(rate) / 2 / 100)


def discount_amount(subtotal: Decimal, kind: str | None, value: Decimal | None) -> Decimal:
    """The discount in rupees: a PERCENT becomes round_half_up(subtotal x value / 100), an
    AMOUNT is itself. Raises InvalidInput naming `discount` for a percentage above 100 or
    an amount above the subtotal."""
    if not kind or value is None or value == 0:
        return Decimal("0.00")
    if kind == PERCENT:
        if value < 0 or value > 100:
            raise InvalidInput(
                "discount: a percentage from 0 to 100",
                fields={"discount": "Give a percentage from 0 to 100."},
            )
        return round_money(subtotal * value / 100)
    if kind == AMOUNT:
        if value < 0 or value > subtotal:
            raise InvalidInput(
                "discount: more than the subtotal",
                fields={"discount": f"Give an amount from 0 to the subtotal, {subtotal}."},
            )
        return round_money(value)
    raise InvalidInput(
        "discount: PERCENT or AMOUNT", fields={"discount": "Choose PERCENT or AMOUNT."}
    )


def allocate(values: list[Decimal], amount: Decimal) -> list[Decimal]:
    """Share `amount` (at most the sum of `values`) across the lines in proportion to their
    values, each share rounded half-up to the paisa and the remainder on the last line.
    Rounding every share up can leave the last line a remainder below zero or above its
    own value (many small lines); the excess then moves to the lines before it, last
    first, so that no line's share is negative or larger than the line."""
    total = sum(values, Decimal("0.00"))
    if not values or amount == 0 or total == 0:
        return [Decimal("0.00") for _ in values]
    shares = [round_money(v * amount / total) for v in values[:-1]]
    shares.append(amount - sum(shares, Decimal("0.00")))
    for i in range(len(values) - 1, -1, -1):  # keep every share within 0..value
        excess = shares[i] - values[i] if shares[i] > values[i] else min(shares[i], 0)
        if excess == 0:
            continue
        shares[i] -= excess
        for j in range(i - 1, -1, -1):
            room = values[j] - shares[j] if excess > 0 else -shares[j]
            moved = min(excess, room) if excess > 0 else max(excess, room)
            shares[j] += moved
            excess -= moved
            if excess == 0:
                break
    return shares


def price(lines: list[Line], discount: Decimal = Decimal("0.00")) -> Priced:
    """Price an invoice's lines with `discount` rupees (see `discount_amount`) shared
    before tax: taxable = value - share; CGST = SGST = half the rate on it."""
    values = [line_value(line.quantity, line.unit_price) for line in lines]
    shares = allocate(values, discount)
    priced = []
    for line, value, share in zip(lines, values, shares, strict=True):
        taxable = value - share
        half = half_gst(taxable, line.gst_rate)
        priced.append(LineAmounts(value, share, taxable, half, half))
    return Priced(tuple(priced))


# ---- amounts in words (Indian numbering: thousand, lakh, crore) --------------------------

# fmt: off
_ONES = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten",
         "Eleven", "Twelve", "Thirteen", "Fourteen", "Fifteen", "Sixteen", "Seventeen",
         "Eighteen", "Nineteen")
_TENS = ("", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety")
# fmt: on


def _below_hundred(n: int) -> list[str]:
    if n < 20:
        return [_ONES[n]] if n else []
    return [_TENS[n // 10], *([_ONES[n % 10]] if n % 10 else [])]


def _below_thousand(n: int) -> list[str]:
    words = [_ONES[n // 100], "Hundred"] if n >= 100 else []
    return words + _below_hundred(n % 100)


def _indian(n: int) -> list[str]:
    """Words for a whole number: crores (themselves in words, so a hundred crore and up
    reads "One Hundred Crore"), lakhs, thousands, then the rest."""
    words: list[str] = []
    crore, n = divmod(n, 10_000_000)
    if crore:
        words += [*_indian(crore), "Crore"]
    lakh, n = divmod(n, 100_000)
    if lakh:
        words += [*_below_hundred(lakh), "Lakh"]
    thousand, n = divmod(n, 1000)
    if thousand:
        words += [*_below_hundred(thousand), "Thousand"]
    return words + _below_thousand(n)


def grouped(amount: Decimal) -> str:
    """An amount as Indian bills write it, grouped in lakhs and crores with two places:
    102340.5 -> "1,02,340.50"; a negative one with a minus sign (U+2212) before it."""
    amount = round_money(Decimal(amount))
    whole, paise = f"{abs(amount):.2f}".split(".")
    head, groups = whole[:-3], [whole[-3:]]
    while head:
        head, groups = head[:-2], [head[-2:], *groups]
    return ("\u2212" if amount < 0 else "") + ",".join(groups) + "." + paise


def quantity_text(value: Decimal) -> str:
    """A quantity without trailing zeros: 10.00 -> "10", 1.50 -> "1.5"."""
    text = f"{Decimal(value):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def in_words(amount: Decimal) -> str:
    """ "Rupees One Lakh Two Thousand Three Hundred Forty and Fifty Paise Only" for
    102340.50, as Indian receipts print a total."""
    amount = round_money(amount)
    if amount < 0:
        raise ValueError("an amount in words is never negative")
    rupees, paise = divmod(int(amount * 100), 100)
    text = "Rupees " + (" ".join(_indian(rupees)) or "Zero")
    if paise:
        text += " and " + " ".join(_below_hundred(paise)) + " Paise"
    return text + " Only"


# ---- the Indian financial year (April to March) ------------------------------------------


def financial_year(day: date) -> str:
    """The financial year a clinic day falls in, as invoice numbers carry it: 2026-27 from
    1 April 2026 to 31 March 2027."""
    start = day.year if day.month >= 4 else day.year - 1
    return f"{start}-{(start + 1) % 100:02d}"


# ---- credit notes: reversing part of a billed line ------------------------------------------


@dataclass(frozen=True)
class Reversal:
    taxable: Decimal
    cgst: Decimal
    sgst: Decimal

    @property
    def total(self) -> Decimal:
        return self.taxable + self.cgst + self.sgst


def reverse(billed: LineAmounts, quantity: Decimal, already: Decimal, now: Decimal) -> Reversal:
    """What refunding `now` more of a line billed for `quantity` (of which `already` was
    refunded before) reverses of its taxable value, CGST and SGST.

    Each amount is the line's amount for everything refunded so far, rounded half-up,
    less its amount for what was refunded before: so refunds add up to exactly the line
    once all of it is refunded, and never to more."""
    if now <= 0 or already + now > quantity:
        raise ValueError("a refund is more than one and at most what is left of the line")

    def share(amount: Decimal, part: Decimal) -> Decimal:
        return amount if part == quantity else round_money(amount * part / quantity)

    after, before = already + now, already
    return Reversal(
        *(
            share(amount, after) - share(amount, before)
            for amount in (billed.taxable, billed.cgst, billed.sgst)
        )
    )
