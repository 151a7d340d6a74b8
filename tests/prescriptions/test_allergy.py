"""The allergy check of prescription items (SPEC section 6): whole words, any case, any
accents; pure text, no database."""

from __future__ import annotations

import pytest

from qure.prescriptions.allergy import AllergyMatch, allergy_matches, warning, words

AUGMENTIN = {
    "name": "Augmentin 625",
    "ingredients": ["Amoxicillin", "Clavulanic Acid"],
    "drug_class": "Penicillin",
}
SEPTRAN = {
    "name": "Septran DS",
    "ingredients": ["Sulfamethoxazole", "Trimethoprim"],
    "drug_class": "Sulfonamide antibacterial",
}


def matches(allergies, name, ingredients=(), drug_class=None):
    found = allergy_matches(list(allergies), name, list(ingredients), drug_class)
    return [(m.allergy, m.matched, m.via) for m in found]


def test_sulfa_does_not_match_sulfur_or_sulfamethoxazole():
    assert matches(["Sulfa"], "Sulfur Ointment", ["Precipitated Sulfur"]) == []
    assert matches(["Sulfa"], **SEPTRAN) == []


def test_sulfa_matches_a_medicine_that_names_it_as_a_word():
    assert matches(["Sulfa"], "Sulfa-Cream", [], "Sulfa drugs") == [
        ("Sulfa", "Sulfa-Cream", "name"),
        ("Sulfa", "Sulfa drugs", "drug class"),
    ]


def test_penicillin_matches_amoxicillin_through_its_drug_class():
    assert matches(["penicillin"], "Amoxicillin 500", ["Amoxicillin"], "Penicillin") == [
        ("penicillin", "Penicillin", "drug class")
    ]


def test_the_medicine_name_matches_whatever_follows_it():
    assert matches(["Amoxicillin"], "Amoxicillin 500", [], None) == [
        ("Amoxicillin", "Amoxicillin 500", "name")
    ]


def test_a_word_matches_its_plural_either_way():
    assert matches(["Penicillin"], "Amoxil", [], "Penicillins") == [
        ("Penicillin", "Penicillins", "drug class")
    ]
    assert matches(["NSAIDs"], "Brufen", ["Ibuprofen"], "NSAID") == [
        ("NSAIDs", "NSAID", "drug class")
    ]
    assert matches(["as"], "A medicine", [], None) == []  # too short to be a plural


def test_a_multi_word_allergy_needs_every_word_adjacent_and_in_order():
    assert matches(["clavulanic acid"], **AUGMENTIN) == [
        ("clavulanic acid", "Clavulanic Acid", "ingredient")
    ]
    assert matches(["acid clavulanic"], **AUGMENTIN) == []
    assert matches(["clavulanic acid"], "Clav", ["Clavulanic potassium acid"]) == []
    assert matches(["Folic acid"], **AUGMENTIN) == []


@pytest.mark.parametrize(
    "allergy",
    [
        "AMOXICILLIN",
        "amoxicillin",
        "  Amoxicillin  ",
        "Amöxicillin",
        "\uff21\uff2d\uff2fXICILLIN",
    ],  # full-width AMO,
)
def test_case_spaces_accents_and_full_width_letters_do_not_count(allergy):
    assert matches([allergy], "Mox 250", ["Amoxicillin"]) == [
        (allergy.strip(), "Amoxicillin", "ingredient")
    ]


def test_accents_in_the_medicine_do_not_count_either():
    assert matches(["cefalexine"], "Céfalexine 500", ["Céfalexine"], "Céphalosporine") == [
        ("cefalexine", "Céfalexine 500", "name"),
        ("cefalexine", "Céfalexine", "ingredient"),
    ]


@pytest.mark.parametrize("part", ["cillin", "Amoxi", "Clavulanic Ac", "Penicill", "625 mg"])
def test_no_match_on_part_of_a_word(part):
    assert matches([part], **AUGMENTIN) == []


@pytest.mark.parametrize("blank", ["", "   ", "-", "—", "()"])
def test_a_blank_allergy_matches_nothing(blank):
    assert matches([blank], **AUGMENTIN) == []


def test_punctuation_separates_words():
    assert matches(["clavulanic acid"], "Clav", ["Clavulanic-Acid (as potassium)"]) == [
        ("clavulanic acid", "Clavulanic-Acid (as potassium)", "ingredient")
    ]
    assert words("Amoxicillin/Clavulanate_625") == ("amoxicillin", "clavulanate", "625")


def test_every_allergy_and_every_way_in_the_allergies_order():
    allergies = ["Dust", "penicillin", "Amoxicillin", "Clavulanic acid", "Sulfa"]
    medicine = {**AUGMENTIN, "name": "Amoxicillin + Clavulanic Acid 625"}
    assert matches(allergies, **medicine) == [
        ("penicillin", "Penicillin", "drug class"),
        ("Amoxicillin", "Amoxicillin + Clavulanic Acid 625", "name"),
        ("Amoxicillin", "Amoxicillin", "ingredient"),
        ("Clavulanic acid", "Amoxicillin + Clavulanic Acid 625", "name"),
        ("Clavulanic acid", "Clavulanic Acid", "ingredient"),
    ]


def test_one_match_per_allergy_and_way():
    # Both ingredients name "acid": only the first is reported; the allergy repeated in
    # another case is the same allergy.
    found = allergy_matches(["Acid", "ACID"], "Duo", ["Folic Acid", "Ascorbic Acid"], None)
    assert found == [AllergyMatch(allergy="Acid", matched="Folic Acid", via="ingredient")]


def test_no_allergies_no_matches_and_missing_parts_are_skipped():
    assert allergy_matches([], "Amoxicillin", ["Amoxicillin"], "Penicillin") == []
    assert matches(["Penicillin"], "Amoxil", ["", "  "], None) == []


def test_the_warning_names_the_allergy_once_and_what_the_medicine_is_made_of():
    assert (
        warning("Penicillin", "Augmentin 625", ["amoxicillin", "clavulanic acid"], "Penicillin")
        == "Allergy: Penicillin — Augmentin 625 contains amoxicillin + clavulanic acid, "
        "class Penicillin."
    )
    assert warning(" Sulfa ", "Septran", ["Sulfamethoxazole"], None) == (
        "Allergy: Sulfa — Septran contains Sulfamethoxazole."
    )
    assert warning("Crocin", "Crocin 500 mg", [], "") == "Allergy: Crocin — Crocin 500 mg."
