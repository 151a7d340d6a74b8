"""Allergy check for a prescription item.

Pure text matching, no database. An allergy names a medicine when its words appear whole,
in order and side by side, in the medicine's name, in one of its ingredients or in its
drug class. Whole words, because a patient allergic to "Sulfa" must not be warned about
"Sulfur" and "cillin" names nothing. Case and accents do not count ("Céfalexine" is
"cefalexine"), and any character that is not a letter or a digit separates words.

One deliberate widening of whole words: a word also matches its plural with a final "s"
("Penicillin" and "Penicillins", "NSAID" and "NSAIDs"), because drug classes are usually
written in the plural and allergies in the singular; a missed allergy costs more than a
warning the doctor overrides.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

WORD_RE = re.compile(r"[^\W_]+")
MIN_PLURAL_STEM = 3  # "ace" and "aces" may match; "as" and "a" may not


@dataclass(frozen=True)
class AllergyMatch:
    """One way a medicine conflicts with an allergy: `allergy` as the patient's record says
    it, `matched` the name, ingredient or drug class it named, and `via` which of the three
    ("name", "ingredient", "drug class")."""

    allergy: str
    matched: str
    via: str


def allergy_matches(
    allergies: list[str], name: str, ingredients: list[str], drug_class: str | None
) -> list[AllergyMatch]:
    """Every way the medicine (`name`, `ingredients`, `drug_class`) is named by one of the
    patient's `allergies`. Blank allergies, ingredients and classes match nothing. Raises
    nothing. Returns at most one match per allergy and way, in the allergies' order and,
    for one allergy, name, then ingredient, then drug class; an empty list when none."""
    sources = _sources(name, ingredients, drug_class)
    found: list[AllergyMatch] = []
    seen: set[tuple[tuple[str, ...], str]] = set()
    for allergy in allergies:
        wanted = words(allergy)
        for via, text, present in sources:
            if wanted and (wanted, via) not in seen and _contains(present, wanted):
                seen.add((wanted, via))
                found.append(AllergyMatch(allergy.strip(), text, via))
    return found


def words(text: str | None) -> tuple[str, ...]:
    """The words of `text`, casefolded and without accents; ("amoxicillin", "500") for
    "Amoxicillin-500". Raises nothing; empty for None or blank text."""
    folded = unicodedata.normalize("NFKD", (text or "").casefold())
    plain = "".join(char for char in folded if not unicodedata.combining(char))
    return tuple(WORD_RE.findall(plain))


def _sources(
    name: str, ingredients: list[str], drug_class: str | None
) -> list[tuple[str, str, tuple[str, ...]]]:
    named = [("name", name)]
    named += [("ingredient", ingredient) for ingredient in ingredients or []]
    named.append(("drug class", drug_class))
    return [(via, text.strip(), words(text)) for via, text in named if words(text)]


def _contains(present: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    last = len(present) - len(wanted)
    return any(
        all(_same_word(present[start + i], word) for i, word in enumerate(wanted))
        for start in range(last + 1)
    )


def _same_word(one: str, other: str) -> bool:
    short, long = sorted((one, other), key=len)
    return short == long or (len(short) >= MIN_PLURAL_STEM and long == short + "s")


def warning(allergy: str, medicine: str, ingredients: list[str], drug_class: str | None) -> str:
    """The warning for one allergy and one medicine, naming the allergy once and what the
    medicine is made of: "Allergy: Penicillin — Augmentin 625 contains amoxicillin +
    clavulanic acid, class Penicillin." Raises nothing."""
    contents = " + ".join(i.strip() for i in ingredients or [] if i.strip())
    parts = [f"contains {contents}"] if contents else []
    if drug_class and drug_class.strip():
        parts.append(f"class {drug_class.strip()}")
    return f"Allergy: {allergy.strip()} — {' '.join([medicine, ', '.join(parts)]).strip()}."
