"""What keeps search correct at scale: MRNs past six digits, capped counts, the word index."""

from __future__ import annotations

from sqlalchemy import select, text

from qure.demo import bulk_patients
from qure.extensions import db
from qure.patients import service
from qure.patients.models import PatientSearchTerm
from tests.helpers import bearer, make_patient


def names(page) -> list[str]:
    return [p.full_name for p in page.items]


def terms_of(patient_id: int) -> list[tuple[str, int]]:
    rows = db.session.execute(
        select(PatientSearchTerm.term, PatientSearchTerm.pos)
        .where(PatientSearchTerm.patient_id == patient_id)
        .order_by(PatientSearchTerm.pos)
    )
    return [tuple(row) for row in rows]


def test_mrns_past_six_digits_keep_counting_and_are_found(reception):
    # Sequences are not transactional: put the counter back whatever happens.
    before = db.session.scalar(text("SELECT last_value FROM patient_mrn_seq"))
    try:
        db.session.execute(text("SELECT setval('patient_mrn_seq', 999998)"))
        last_short = make_patient(reception, full_name="Six Digits")
        first_long = make_patient(reception, full_name="Seven Digits")
        assert (last_short.mrn, first_long.mrn) == ("QC-999999", "QC-1000000")
        for q in ("QC-1000000", "qc1000000", "1000000"):
            assert [p.id for p in service.search(q).items][:1] == [first_long.id], q
    finally:
        db.session.execute(text("SELECT setval('patient_mrn_seq', :v)"), {"v": before})


def test_the_word_index_follows_renames_and_archiving(admin):
    patient = make_patient(admin, full_name="Asha  Rani Kulkarni")
    assert terms_of(patient.id) == [("asha", 0), ("rani", 1), ("kulkarni", 2)]

    service.update(admin, patient.id, {"full_name": "Asha Deshpande"})
    assert terms_of(patient.id) == [("asha", 0), ("deshpande", 1)]
    assert names(service.search("kulk")) == []
    assert names(service.search("deshp")) == ["Asha Deshpande"]

    service.archive(admin, patient.id)
    assert terms_of(patient.id) == []
    assert names(service.search("deshp")) == []
    service.restore(admin, patient.id)
    assert names(service.search("deshp")) == ["Asha Deshpande"]


def test_tiers_come_in_order_across_pages(reception):
    for name in ("Meena Iyer", "Meenakshi Rao", "Kamala Meena", "Sumeena Das", "Meena"):
        make_patient(reception, full_name=name)
    everyone = names(service.search("meena", per_page=20))
    assert everyone == ["Meena", "Meena Iyer", "Meenakshi Rao", "Kamala Meena", "Sumeena Das"]
    paged = [names(service.search("meena", page=n, per_page=2)) for n in (1, 2, 3)]
    assert [name for page in paged for name in page] == everyone
    assert {service.search("meena", page=n, per_page=2).total for n in (1, 2, 3)} == {5}


def test_a_patient_matching_by_two_words_is_listed_once(reception):
    make_patient(reception, full_name="Ravi Raviraj Kumar")
    make_patient(reception, full_name="Kumar Ravi Raviraj")
    found = service.search("ravi")
    assert sorted(names(found)) == ["Kumar Ravi Raviraj", "Ravi Raviraj Kumar"]
    assert found.total == 2


def test_bulk_loaded_patients_are_searchable_and_a_common_fragment_is_capped(client, admin):
    added = bulk_patients(600)
    assert added == 600
    loaded = db.session.scalar(select(db.func.count()).select_from(PatientSearchTerm))
    assert loaded >= 1200  # every bulk patient has at least two name words indexed
    after = make_patient(admin, full_name="Registered After Bulk")
    assert terms_of(after.id) == [("registered", 0), ("after", 1), ("bulk", 2)]

    common = service.search("a", per_page=10)
    assert common.total_capped
    assert len(common.items) == 10
    assert all("a" in service.normalise_name(p.full_name) for p in common.items)

    response = client.get("/api/v1/patients?q=a&per_page=5", headers=bearer(client, admin))
    assert response.json["total"] == common.total
    assert response.json["total_capped"] is True

    one = common.items[0]
    surname = one.full_name.split()[-1]
    assert one.id in {p.id for p in service.search(one.full_name, per_page=50).items}
    by_surname = service.search(surname, per_page=200)
    assert not by_surname.total_capped
    assert all(surname.lower() in service.normalise_name(p.full_name) for p in by_surname.items)


def ids(page) -> list[int]:
    return [p.id for p in page.items]


def test_a_first_page_runs_across_all_three_tiers_in_order(reception):
    for name in ("Nira Bose", "Nirav Shah", "Asha Nira", "Kanira Das", "Minirani Roy"):
        make_patient(reception, full_name=name)
    expected = ["Nira Bose", "Nirav Shah", "Asha Nira", "Kanira Das", "Minirani Roy"]
    assert names(service.search("nira", per_page=50)) == expected
    for size in (1, 2, 3, 4):
        pages = [service.search("nira", page=n, per_page=size) for n in range(1, 7)]
        assert [name for page in pages for name in names(page)] == expected, size
        assert {page.total for page in pages} == {5}
        assert not any(page.total_capped for page in pages)


def test_two_words_each_start_a_word_of_the_name_in_any_order(reception):
    for name in (
        "Ravi Sharma",
        "Ravi Kumar Sharma",
        "Sharma Ravindra",
        "Ravi Varma",  # "arma" only inside a word
        "Kavi Sharma",  # no word starts with "ravi"
        "Ravi Sharmila Das",
    ):
        make_patient(reception, full_name=name)
    assert names(service.search("ravi sharma")) == [
        "Ravi Sharma",
        "Ravi Kumar Sharma",
        "Sharma Ravindra",
    ]
    # The name starting with the text first, then the others by name.
    assert names(service.search("sharma ravi")) == [
        "Sharma Ravindra",
        "Ravi Kumar Sharma",
        "Ravi Sharma",
    ]
    assert names(service.search("ravi sh")) == [
        "Ravi Sharma",
        "Ravi Sharmila Das",
        "Ravi Kumar Sharma",
        "Sharma Ravindra",
    ]
    assert names(service.search("ravi arma")) == []
    # A word repeated, or one that starts another query word, asks nothing more.
    assert names(service.search("sharma sharma")) == names(service.search("sharma sharm"))
    assert set(names(service.search("sharma sharma"))) == {
        "Ravi Sharma",
        "Ravi Kumar Sharma",
        "Sharma Ravindra",
        "Kavi Sharma",
    }
    # Words too short for the trigram index: the word index answers (no name starts with
    # "ra sh": all four come in tier 2, by name).
    assert names(service.search("ra sh")) == [
        "Ravi Kumar Sharma",
        "Ravi Sharma",
        "Ravi Sharmila Das",
        "Sharma Ravindra",
    ]
    assert service.search("ra sh").total == 4


def test_two_word_queries_page_and_count_across_both_tiers(reception):
    for name in ("Uma Devi", "Uma Devika Rao", "Devi Uma", "Rani Uma Devi", "Uma Rani Devi"):
        make_patient(reception, full_name=name)
    expected = ["Uma Devi", "Uma Devika Rao", "Devi Uma", "Rani Uma Devi", "Uma Rani Devi"]
    assert names(service.search("uma devi")) == expected
    paged = [service.search("uma devi", page=n, per_page=2) for n in (1, 2, 3, 4)]
    assert [name for page in paged for name in names(page)] == expected
    assert [page.total for page in paged] == [5, 5, 5, 5]


def test_phone_and_mrn_searches_count_and_page(reception):
    first = make_patient(reception, full_name="Phone One", phone="+91 99001 00001")
    second = make_patient(reception, full_name="Phone Two", phone="+91 99001 00002")
    make_patient(reception, full_name="Phone Other", phone="+91 88001 00003")
    assert ids(service.search("9900100001")) == [first.id]
    assert ids(service.search("099001 00002")) == [second.id]
    found = service.search("99001")
    assert sorted(ids(found)) == sorted([first.id, second.id])
    assert (found.total, found.total_capped) == (2, False)
    later = service.search("99001", page=3, per_page=1)
    assert (later.items, later.total) == ([], 2)
    assert (service.search("7770001112").items, service.search("7770001112").total) == ([], 0)
    by_mrn = service.search(second.mrn)
    assert (ids(by_mrn), by_mrn.total) == ([second.id], 1)
    assert service.search(second.mrn, page=2).total == 1


def insert_patients(count: int, name: str) -> None:
    """`count` live patients named "<name> <n>" (the word index filled by its trigger)."""
    db.session.execute(
        text(
            "INSERT INTO patients (full_name, name_search, date_of_birth, sex, phone, "
            "phone_digits) SELECT :name || ' ' || g, lower(:name) || ' ' || g, "
            "DATE '1990-01-01', 'F', '+9177' || lpad(g::text, 8, '0'), "
            "'9177' || lpad(g::text, 8, '0') FROM generate_series(1, :count) AS g"
        ),
        {"name": name, "count": count},
    )


def test_totals_stop_at_the_cap_in_every_tier():
    insert_patients(520, "Capa Test")
    # tier 1 (the name starts), tier 2 (a word starts; and both words), tier 3 (inside)
    for q in ("capa", "test", "capa test", "test capa", "apa"):
        first = service.search(q, per_page=50)
        assert (first.total, first.total_capped, len(first.items)) == (500, True, 50), q
        tenth = service.search(q, page=10, per_page=50)
        assert (tenth.total, tenth.total_capped, len(tenth.items)) == (500, True, 50), q
        assert not set(ids(first)) & set(ids(tenth)), q
        assert service.search(q, page=12, per_page=50).items == [], q
    listed = names(service.search("capa", per_page=3))
    assert listed == ["Capa Test 1", "Capa Test 10", "Capa Test 100"]
    few = service.search("capa test 51")
    assert names(few) == [f"Capa Test {n}" for n in [51, *range(510, 520)]]
    assert (few.total, few.total_capped) == (11, False)


def test_two_words_without_three_letters_in_a_row_are_found_by_the_word_index(reception):
    make_patient(reception, full_name="Menon A.B. C.D.")
    make_patient(reception, full_name="Menon A.B.")
    found = service.search("c.d. a.b.")
    assert (names(found), found.total) == (["Menon A.B. C.D."], 1)
    assert names(service.search("a.b. menon")) == ["Menon A.B.", "Menon A.B. C.D."]
