"""Invoice arithmetic (SPEC 8) against invoices computed by hand, to the paisa: discount
shares, GST per line on the discounted value, the CGST/SGST split, half-up rounding, and
totals in words as Indian receipts print them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from qure.core.errors import InvalidInput
from qure.core.money import (
    AMOUNT,
    PERCENT,
    Line,
    allocate,
    discount_amount,
    financial_year,
    grouped,
    in_words,
    parse_money,
    price,
    quantity_text,
)

CONSULTATION = Line(D("1"), D("500.00"), 0)
PARACETAMOL = Line(D("10"), D("2.50"), 12)
SYRUP = Line(D("3"), D("45.99"), 18)


def lines_of(priced) -> list[tuple[str, ...]]:
    return [
        (str(x.value), str(x.discount), str(x.taxable), str(x.cgst), str(x.sgst))
        for x in priced.lines
    ]


def totals_of(priced) -> tuple[str, ...]:
    return tuple(
        str(getattr(priced, k))
        for k in ("subtotal", "discount", "taxable", "cgst", "sgst", "total")
    )


def test_three_rates_without_a_discount():
    # 137.97 x 9 % = 12.4173 -> 12.42 each half.
    priced = price([CONSULTATION, PARACETAMOL, SYRUP])
    assert lines_of(priced) == [
        ("500.00", "0.00", "500.00", "0.00", "0.00"),
        ("25.00", "0.00", "25.00", "1.50", "1.50"),
        ("137.97", "0.00", "137.97", "12.42", "12.42"),
    ]
    assert totals_of(priced) == ("662.97", "0.00", "662.97", "13.92", "13.92", "690.81")


def test_a_percentage_discount_is_shared_by_value_and_taxed_after():
    # 10 % of 662.97 = 66.297 -> 66.30; 500/662.97 of it = 50.0023 -> 50.00; 25/662.97 of it
    # = 2.5001 -> 2.50; the last line takes the rest, 13.80. 124.17 x 9 % = 11.1753 -> 11.18.
    lines = [CONSULTATION, PARACETAMOL, SYRUP]
    off = discount_amount(price(lines).subtotal, PERCENT, D("10"))
    assert off == D("66.30")
    priced = price(lines, off)
    assert lines_of(priced) == [
        ("500.00", "50.00", "450.00", "0.00", "0.00"),
        ("25.00", "2.50", "22.50", "1.35", "1.35"),
        ("137.97", "13.80", "124.17", "11.18", "11.18"),
    ]
    assert totals_of(priced) == ("662.97", "66.30", "596.67", "12.53", "12.53", "621.73")


def test_an_amount_discount_leaves_its_rounding_remainder_on_the_last_line():
    # 10.00 over three lines of 30.00: 3.33, 3.33 and the rest 3.34. 26.67 x 2.5 % =
    # 0.66675 -> 0.67; 26.66 x 2.5 % = 0.6665 -> 0.67.
    same = Line(D("3"), D("10.00"), 5)
    priced = price([same, same, same], discount_amount(D("90.00"), AMOUNT, D("10.00")))
    assert lines_of(priced) == [
        ("30.00", "3.33", "26.67", "0.67", "0.67"),
        ("30.00", "3.33", "26.67", "0.67", "0.67"),
        ("30.00", "3.34", "26.66", "0.67", "0.67"),
    ]
    assert totals_of(priced) == ("90.00", "10.00", "80.00", "2.01", "2.01", "84.02")


def test_fractions_of_a_paisa_round_half_up():
    # 1.5 x 33.33 = 49.995 -> 50.00; 7 x 0.07 = 0.49, 0.49 x 9 % = 0.0441 -> 0.04; 1.00 x
    # 2.5 % = 0.025 -> 0.03 (half-up, where banker's rounding would give 0.02).
    priced = price(
        [Line(D("1.5"), D("33.33"), 12), Line(D("7"), D("0.07"), 18), Line(D("1"), D("1.00"), 5)]
    )
    assert lines_of(priced) == [
        ("50.00", "0.00", "50.00", "3.00", "3.00"),
        ("0.49", "0.00", "0.49", "0.04", "0.04"),
        ("1.00", "0.00", "1.00", "0.03", "0.03"),
    ]
    assert totals_of(priced) == ("51.49", "0.00", "51.49", "3.07", "3.07", "57.63")


def test_a_zero_rated_consultation_discounted_in_full_costs_nothing():
    priced = price([CONSULTATION], discount_amount(D("500.00"), PERCENT, D("100")))
    assert totals_of(priced) == ("500.00", "500.00", "0.00", "0.00", "0.00", "0.00")


def test_no_share_goes_below_zero_or_above_its_line():
    # Each of the first three shares rounds 0.015 up to 0.02 (0.06 in all, above the 0.05
    # given): the last line's remainder would be -0.01, so the excess moves back a line.
    shares = allocate([D("0.03"), D("0.03"), D("0.03"), D("0.01")], D("0.05"))
    assert shares == [D("0.02"), D("0.02"), D("0.01"), D("0.00")]
    assert sum(shares) == D("0.05")


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (PERCENT, D("100.01")),
        (PERCENT, D("-1")),
        (AMOUNT, D("662.98")),
        (AMOUNT, D("-0.01")),
        ("HALF", D("1")),
    ],
)
def test_a_discount_out_of_range_is_refused_naming_the_field(kind, value):
    with pytest.raises(InvalidInput) as caught:
        discount_amount(D("662.97"), kind, value)
    assert "discount" in caught.value.fields


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        ("102340.50", "Rupees One Lakh Two Thousand Three Hundred Forty and Fifty Paise Only"),
        ("0", "Rupees Zero Only"),
        ("0.05", "Rupees Zero and Five Paise Only"),
        ("19.19", "Rupees Nineteen and Nineteen Paise Only"),
        ("621.73", "Rupees Six Hundred Twenty One and Seventy Three Paise Only"),
        ("1000", "Rupees One Thousand Only"),
        ("100000", "Rupees One Lakh Only"),
        (
            "123456789",
            "Rupees Twelve Crore Thirty Four Lakh Fifty Six Thousand Seven Hundred Eighty"
            " Nine Only",
        ),
        ("1000000000", "Rupees One Hundred Crore Only"),
    ],
)
def test_totals_in_words_use_indian_numbering(amount, words):
    assert in_words(D(amount)) == words


@pytest.mark.parametrize(
    ("day", "year"),
    [
        (date(2026, 4, 1), "2026-27"),
        (date(2027, 3, 31), "2026-27"),
        (date(2026, 3, 31), "2025-26"),
        (date(1999, 6, 1), "1999-00"),
    ],
)
def test_the_financial_year_runs_april_to_march(day, year):
    assert financial_year(day) == year


@pytest.mark.parametrize("text", ["-0", "-0.00", "-0.0", -0.0])
def test_minus_zero_is_read_as_zero(text):
    """Decimal keeps the sign of -0; an amount typed so is 0.00, never "-0.00"."""
    amount = parse_money(text, "amount")
    assert amount == 0 and not amount.is_signed() and f"{amount}" == "0.00"


def test_amounts_are_grouped_as_indian_bills_write_them():
    assert grouped(D("0")) == "0.00"
    assert grouped(D("999.5")) == "999.50"
    assert grouped(D("1000")) == "1,000.00"
    assert grouped(D("102340.50")) == "1,02,340.50"
    assert grouped(D("12345678.9")) == "1,23,45,678.90"
    assert grouped(D("-90.28")) == "\u221290.28"
    assert grouped(D("-0.004")) == "0.00"  # rounds to nothing: no sign


def test_quantities_lose_their_trailing_zeros():
    assert [quantity_text(D(q)) for q in ("10.00", "1.50", "3", "0.25")] == [
        "10",
        "1.5",
        "3",
        "0.25",
    ]
