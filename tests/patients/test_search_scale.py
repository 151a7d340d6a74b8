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
