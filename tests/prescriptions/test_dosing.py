"""Frequencies, doses and quantities of prescription items (SPEC section 6): pure
arithmetic, no database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from qure.core.errors import InvalidInput
from qure.prescriptions.dosing import (
    COUNTED_FORMS,
    FREQUENCY_CODES,
    PACKED_FORMS,
    dose_words,
    parse_frequency,
    quantity,
)

D = Decimal
HELP = "Use OD, BD, TDS, QID, HS, STAT, SOS or a pattern such as 1-0-1 or 1-1-1-1."
DAYS = "Give a whole number of days from 1 to 365."
GIVEN = "Give the quantity as a whole number from 1 to 10000."
DOSE_RANGE = "Give a dose above 0 and at most 100."
DOSE_PLACES = "Give the dose with at most 2 decimal places."
DOSE_NUMBER = "Give the dose as a number such as 1 or 0.5."
WHEN_NEEDED = "Give the quantity for a medicine taken when needed."
SINGLE_DOSE = "Give the quantity for a single dose (STAT)."
FORMS = (
    "One of TABLET, CAPSULE, SYRUP, SUSPENSION, INJECTION, OINTMENT, CREAM, DROPS, INHALER, OTHER."
)


def packs(form: str) -> str:
    return f"Give the number of packs for {form}."


# ---- frequency ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "per_day", "words"),
    [
        ("OD", "OD", D(1), "OD: once a day"),
        ("BD", "BD", D(2), "BD: twice a day"),
        ("TDS", "TDS", D(3), "TDS: three times a day"),
        ("QID", "QID", D(4), "QID: four times a day"),
        ("HS", "HS", D(1), "HS: at night"),
        ("STAT", "STAT", None, "STAT: once, now"),
        ("SOS", "SOS", None, "SOS: when needed"),
        ("  bd ", "BD", D(2), "BD: twice a day"),
        ("Tds", "TDS", D(3), "TDS: three times a day"),
        ("sos\t", "SOS", None, "SOS: when needed"),
        ("1-0-1", "1-0-1", D(2), "1-0-1: morning and night"),
        ("1-1-1", "1-1-1", D(3), "1-1-1: morning, afternoon and night"),
        ("0-1-0", "0-1-0", D(1), "0-1-0: in the afternoon"),
        ("0-0-1", "0-0-1", D(1), "0-0-1: at night"),
        ("1-0-2", "1-0-2", D(3), "1-0-2: 1 in the morning and 2 at night"),
        ("2-0-0", "2-0-0", D(2), "2-0-0: 2 in the morning"),
        ("1-1-1-1", "1-1-1-1", D(4), "1-1-1-1: morning, noon, evening and night"),
        ("1-0-1-0", "1-0-1-0", D(2), "1-0-1-0: morning and evening"),
        ("0-1-0-1", "0-1-0-1", D(2), "0-1-0-1: noon and night"),
        (
            "2-1-1-2",
            "2-1-1-2",
            D(6),
            "2-1-1-2: 2 in the morning, 1 at noon, 1 in the evening and 2 at night",
        ),
        ("0.5-0-0.5", "0.5-0-0.5", D(1), "0.5-0-0.5: half in the morning and half at night"),
        ("½-0-½", "0.5-0-0.5", D(1), "0.5-0-0.5: half in the morning and half at night"),
        ("1½-0-1", "1.5-0-1", D("2.5"), "1.5-0-1: 1½ in the morning and 1 at night"),
        (
            "1.5-1-0.5-0",
            "1.5-1-0.5-0",
            D(3),
            "1.5-1-0.5-0: 1½ in the morning, 1 at noon and half in the evening",
        ),
        ("0.50-1.0-0", "0.5-1-0", D("1.5"), "0.5-1-0: half in the morning and 1 in the afternoon"),
        (" 1 - 0 - 1 ", "1-0-1", D(2), "1-0-1: morning and night"),
        ("10-0-10", "10-0-10", D(20), "10-0-10: 10 in the morning and 10 at night"),
    ],
)
def test_frequency_table(text, code, per_day, words):
    frequency = parse_frequency(text)
    assert (frequency.code, frequency.per_day, frequency.words) == (code, per_day, words)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "TID",
        "1-0",
        "1-0-1-1-1",
        "a-b-c",
        "0-0-0",
        "0-0-0-0",
        "-1-0-1",
        "1--1-1",
        "1-0-1-",
        "1 0 1",
        "0.25-0-0.25",  # quarters are refused: a tablet is split in halves
        "1.05-0-1",
        "100-0-0",
        "1e1-0-1",
        "\u0661-0-\u0661",  # Arabic-Indic digits
        "OD BD",
        None,
        2,
    ],
)
def test_refused_frequencies_name_the_field_and_the_accepted_forms(text):
    with pytest.raises(InvalidInput) as caught:
        parse_frequency(text)
    assert caught.value.fields == {"frequency": HELP}
    assert caught.value.message == "frequency: not a frequency"


def test_the_field_named_in_the_error_is_the_callers():
    with pytest.raises(InvalidInput) as caught:
        parse_frequency("TID", field="items.2.frequency")
    assert caught.value.fields == {"items.2.frequency": HELP}


@pytest.mark.parametrize(
    ("text", "as_needed", "once"),
    [("SOS", True, False), ("STAT", False, True), ("OD", False, False), ("1-0-1", False, False)],
)
def test_as_needed_and_once(text, as_needed, once):
    frequency = parse_frequency(text)
    assert (frequency.as_needed, frequency.once) == (as_needed, once)


def test_every_code_is_in_the_table_under_its_own_name():
    assert list(FREQUENCY_CODES) == ["OD", "BD", "TDS", "QID", "HS", "STAT", "SOS"]
    assert all(frequency.code == code for code, frequency in FREQUENCY_CODES.items())


# ---- dose words --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dose", "words"),
    [
        (D(1), "1"),
        (D("0.5"), "½"),
        (D("1.5"), "1½"),
        (D(2), "2"),
        (D("2.50"), "2½"),
        (D("1.00"), "1"),
        (D("0.25"), "0.25"),
        (D("7.5"), "7½"),
        (D(10), "10"),
        (D("1E+1"), "10"),
    ],
)
def test_dose_words(dose, words):
    assert dose_words(dose) == words


# ---- quantity ----------------------------------------------------------------------------


def test_tablets_and_capsules_are_counted_every_other_form_is_packed():
    assert set(COUNTED_FORMS) == {"TABLET", "CAPSULE"}
    assert set(PACKED_FORMS) == {
        "SYRUP",
        "SUSPENSION",
        "INJECTION",
        "OINTMENT",
        "CREAM",
        "DROPS",
        "INHALER",
        "OTHER",
    }


@pytest.mark.parametrize(
    ("form", "dose", "frequency", "days", "given", "expected"),
    [
        ("TABLET", D(1), "OD", 5, None, 5),
        ("TABLET", D(1), "BD", 5, None, 10),
        ("TABLET", D("0.5"), "BD", 5, None, 5),
        ("TABLET", D("0.5"), "TDS", 5, None, 8),  # 7.5 rounds up
        ("TABLET", D(2), "QID", 3, None, 24),
        ("TABLET", D(1), "HS", 30, None, 30),
        ("TABLET", D(1), "1-0-1", 7, None, 14),
        ("TABLET", D(1), "1-1-1-1", 2, None, 8),
        ("TABLET", D(1), "0.5-0-0.5", 5, None, 5),
        ("TABLET", D(1), "½-0-1", 3, None, 5),  # 4.5 rounds up
        ("CAPSULE", D(1), "TDS", 5, None, 15),
        ("capsule", D(1), "TDS", 5, None, 15),
        ("TABLET", D("0.1"), "TDS", 10, None, 3),  # exactly 3: a float product would give 4
        ("TABLET", D("0.33"), "BD", 3, None, 2),  # 1.98 rounds up
        ("TABLET", D(1), "BD", 365, None, 730),
        ("TABLET", D(1), "BD", 5, 12, 12),  # the given quantity wins
        ("TABLET", D("0.5"), "TDS", 5, D("10"), 10),
        ("CAPSULE", D(1), "BD", 5, D("7.0"), 7),
        ("TABLET", D(1), "SOS", 5, 6, 6),
        ("TABLET", D(2), "STAT", 1, 2, 2),
        ("SYRUP", D(5), "TDS", 5, 1, 1),
        ("SUSPENSION", D("2.5"), "BD", 5, 2, 2),
        ("INHALER", D(2), "SOS", 30, 1, 1),
        ("OINTMENT", D(1), "BD", 7, 1, 1),
        ("DROPS", D(2), "QID", 5, 1, 1),
        ("INJECTION", D(1), "STAT", 1, 1, 1),
        ("TABLET", D(1), "OD", 1, 10000, 10000),
        ("TABLET", D(100), "OD", 100, None, 10000),
        ("TABLET", 1, "BD", 5, None, 10),
    ],
)
def test_quantity_table(form, dose, frequency, days, given, expected):
    assert quantity(form, dose, parse_frequency(frequency), days, given) == expected


@pytest.mark.parametrize(
    ("form", "dose", "frequency", "days", "given", "fields"),
    [
        ("TABLET", D(1), "SOS", 5, None, {"quantity": WHEN_NEEDED}),
        ("CAPSULE", D(1), "SOS", 5, None, {"quantity": WHEN_NEEDED}),
        ("TABLET", D(1), "STAT", 1, None, {"quantity": SINGLE_DOSE}),
        ("SYRUP", D(5), "TDS", 5, None, {"quantity": packs("a syrup")}),
        ("SUSPENSION", D(5), "BD", 5, None, {"quantity": packs("a suspension")}),
        ("INHALER", D(2), "BD", 30, None, {"quantity": packs("an inhaler")}),
        ("OINTMENT", D(1), "BD", 7, None, {"quantity": packs("an ointment")}),
        ("CREAM", D(1), "OD", 7, None, {"quantity": packs("a cream")}),
        ("DROPS", D(2), "QID", 5, None, {"quantity": packs("drops")}),
        ("INJECTION", D(1), "STAT", 1, None, {"quantity": packs("an injection")}),
        ("OTHER", D(1), "OD", 1, None, {"quantity": packs("this form of medicine")}),
        (
            "TABLET",
            D(100),
            "QID",
            30,
            None,
            {"quantity": "This comes to 12000; give at most 10000."},
        ),
        ("TABLET", D(0), "BD", 5, None, {"dose": DOSE_RANGE}),
        ("TABLET", D("-1"), "BD", 5, None, {"dose": DOSE_RANGE}),
        ("TABLET", D("100.01"), "BD", 5, None, {"dose": DOSE_RANGE}),
        ("TABLET", D("0.125"), "BD", 5, None, {"dose": DOSE_PLACES}),
        ("TABLET", D("NaN"), "BD", 5, None, {"dose": DOSE_NUMBER}),
        ("TABLET", D("Infinity"), "BD", 5, None, {"dose": DOSE_NUMBER}),
        ("TABLET", None, "BD", 5, None, {"dose": DOSE_NUMBER}),
        ("TABLET", True, "BD", 5, None, {"dose": DOSE_NUMBER}),
        ("TABLET", D(1), "BD", 0, None, {"duration_days": DAYS}),
        ("TABLET", D(1), "BD", 366, None, {"duration_days": DAYS}),
        ("TABLET", D(1), "BD", -3, None, {"duration_days": DAYS}),
        ("TABLET", D(1), "BD", 5.0, None, {"duration_days": DAYS}),
        ("TABLET", D(1), "BD", True, None, {"duration_days": DAYS}),
        ("TABLET", D(1), "BD", 5, 0, {"quantity": GIVEN}),
        ("TABLET", D(1), "BD", 5, -2, {"quantity": GIVEN}),
        ("TABLET", D(1), "BD", 5, D("2.5"), {"quantity": GIVEN}),
        ("SYRUP", D(5), "BD", 5, 10001, {"quantity": GIVEN}),
        ("SYRUP", D(5), "BD", 5, True, {"quantity": GIVEN}),
        ("PILL", D(1), "BD", 5, None, {"dosage_form": FORMS}),
        (
            "TABLET",
            D(0),
            "BD",
            0,
            0,
            {"dose": DOSE_RANGE, "duration_days": DAYS, "quantity": GIVEN},
        ),
    ],
)
def test_quantity_refusals_name_the_field(form, dose, frequency, days, given, fields):
    with pytest.raises(InvalidInput) as caught:
        quantity(form, dose, parse_frequency(frequency), days, given)
    assert caught.value.fields == fields
    first, message = next(iter(fields.items()))
    assert caught.value.message == f"{first}: {message}"
