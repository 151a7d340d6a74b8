"""Prescriptions through the service functions, against the real database (SPEC section 6):
quantities, item validation, one per visit, who may write, the allergy check and its
override, changes, and the audit trail.

The helpers at the top (medicines, visits, items, audit rows) are shared with
test_api.py and test_pdf.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from qure.core import clock
from qure.core.db import commit, constraint_name
from qure.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from qure.patients import service as patients
from qure.pharmacy import service as pharmacy
from qure.prescriptions import service
from qure.prescriptions.dosing import FREQUENCY_HELP
from qure.prescriptions.models import Prescription, PrescriptionItem
from qure.visits import service as visits
from tests.helpers import NOW, make_patient, make_user

# ---- shared helpers ----------------------------------------------------------------------

MEDICINES = {
    "amoxil": ("Amoxil", "Amoxicillin", "Penicillin", "CAPSULE", "500 mg"),
    "augmentin": ("Augmentin", "Amoxicillin + Clavulanic Acid", "Penicillin", "TABLET", "625 mg"),
    "crocin": ("Crocin", "Paracetamol", "Analgesic", "TABLET", "500 mg"),
    "benadryl": ("Benadryl", "Diphenhydramine", "Antihistamine", "SYRUP", "12.5 mg/5 ml"),
    "asthalin": ("Asthalin", "Salbutamol", "Bronchodilator", "INHALER", "100 mcg"),
    "septran": ("Septran", "Sulfamethoxazole + Trimethoprim", "Sulfonamide", "TABLET", "480 mg"),
    "sulfolac": ("Sulfolac", "Precipitated Sulfur", "Sulfur preparations", "OINTMENT", "10%"),
}


def make_medicines() -> dict:
    """The catalogue the tests prescribe from, keyed as MEDICINES; plus `retired`, a
    medicine no longer in use."""
    made = {}
    for key, (name, generic, drug_class, form, strength) in MEDICINES.items():
        made[key] = pharmacy.create(
            None,
            {
                "name": name,
                "generic_name": generic,
                "drug_class": drug_class,
                "dosage_form": form,
                "strength": strength,
                "unit_price": "10.00",
                "gst_rate": 12,
            },
        )
    retired = pharmacy.create(
        None,
        {
            "name": "Oldcillin",
            "generic_name": "Ampicillin",
            "dosage_form": "CAPSULE",
            "strength": "250 mg",
            "unit_price": "5.00",
            "gst_rate": 12,
        },
    )
    made["retired"] = pharmacy.update(None, retired.id, {"is_active": False})
    commit()
    return made


def start_visit(doctor, patient=None, **findings):
    """A visit in progress by `doctor` (for a new patient unless one is given), with any
    findings recorded through the visit service."""
    patient = patient or make_patient()
    visit = visits.start(doctor, {"patient_id": patient.id})
    commit()
    if findings:
        visits.update(doctor, visit.id, findings)
        commit()
    return visit


def complete_visit(doctor, visit) -> None:
    visits.update(doctor, visit.id, {"diagnosis": "Viral fever"})
    visits.complete(doctor, visit.id)
    commit()


def item(medicine, dose=1, frequency="BD", duration_days=5, **extra) -> dict:
    return {
        "medicine_id": medicine.id,
        "dose": dose,
        "frequency": frequency,
        "duration_days": duration_days,
        **extra,
    }


def audit_payloads(action: str) -> list[dict]:
    """The audit records written for `action`, oldest first."""
    db.session.expire_all()
    query = select(OutboxEvent).where(OutboxEvent.topic == "audit_logs").order_by(OutboxEvent.id)
    return [row.payload for row in db.session.scalars(query) if row.payload["action"] == action]


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# ---- fixtures ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


@pytest.fixture
def meds(app):
    return make_medicines()


@pytest.fixture
def visit(doctor):
    return start_visit(doctor, make_patient(full_name="Asha Devi Sharma"))


def allergic_visit(doctor, *allergies):
    return start_visit(doctor, make_patient(allergies=list(allergies)))


def write(doctor, visit, items, **extra):
    prescription = service.create(doctor, {"visit_id": visit.id, "items": items, **extra})
    commit()
    return prescription


def field_errors(call) -> dict[str, str]:
    """The per-field messages of the InvalidInput `call` raises."""
    with pytest.raises(InvalidInput) as caught:
        call()
    assert caught.value.fields, caught.value.message
    return caught.value.fields


# ---- quantities and stored values ----------------------------------------------------------


def test_create_computes_quantities_for_tablets_and_capsules(doctor, visit, meds):
    prescription = write(
        doctor,
        visit,
        [
            item(meds["amoxil"], dose=0.5, frequency="1-0-1", instructions="  after   food "),
            item(meds["crocin"], dose=1, frequency=" tds ", route="oral"),
            item(meds["augmentin"], dose=1, frequency="BD", quantity=12),
            item(meds["crocin"], dose="1.5", frequency="1-1-1-1", duration_days=3),
        ],
        notes="Plenty of fluids.",
    )
    assert prescription.visit_id == visit.id
    assert prescription.patient_id == visit.patient_id
    assert prescription.doctor_id == doctor.id
    assert prescription.created_at == NOW
    assert prescription.notes == "Plenty of fluids."
    assert prescription.allergy_override_reason is None

    db.session.expire_all()
    rows = db.session.scalars(
        select(PrescriptionItem)
        .where(PrescriptionItem.prescription_id == prescription.id)
        .order_by(PrescriptionItem.position)
    ).all()
    assert [(r.position, r.medicine_id) for r in rows] == [
        (1, meds["amoxil"].id),
        (2, meds["crocin"].id),
        (3, meds["augmentin"].id),
        (4, meds["crocin"].id),
    ]
    assert [r.dose for r in rows] == [Decimal("0.5"), Decimal(1), Decimal(1), Decimal("1.5")]
    assert [r.frequency for r in rows] == ["1-0-1", "TDS", "BD", "1-1-1-1"]
    # 0.5 x 2 x 5 = 5; 1 x 3 x 5 = 15; given 12 kept (10 computed); 1.5 x 4 x 3 = 18.
    assert [r.quantity for r in rows] == [5, 15, 12, 18]
    assert [r.duration_days for r in rows] == [5, 5, 5, 3]
    assert [r.route for r in rows] == [None, "oral", None, None]
    assert [r.instructions for r in rows] == ["after food", None, None, None]


def test_plain_items_say_dose_and_frequency_in_words(doctor, visit, meds):
    prescription = write(
        doctor,
        visit,
        [
            item(meds["amoxil"], dose=0.5, frequency="1-0-1"),
            item(meds["crocin"], dose=1, frequency="TDS"),
        ],
    )
    first, second = service.plain(prescription)["items"]
    assert first["medicine"] == {
        "name": "Amoxil",
        "generic_name": "Amoxicillin",
        "strength": "500 mg",
        "dosage_form": "CAPSULE",
    }
    assert (first["dose_words"], first["frequency_words"]) == ("½", "1-0-1: morning and night")
    assert (second["dose_words"], second["frequency_words"]) == ("1", "TDS: three times a day")


def test_a_computed_quantity_rounds_up_only_the_total(doctor, visit, meds):
    # 0.5 x 3 x 3 = 4.5 tablets: 5 go out.
    prescription = write(
        doctor, visit, [item(meds["crocin"], dose=0.5, frequency="TDS", duration_days=3)]
    )
    assert prescription.items[0].quantity == 5


def test_packs_and_as_needed_medicines_need_a_quantity(doctor, visit, meds):
    items = [
        item(meds["benadryl"], dose=5, frequency="TDS"),
        item(meds["asthalin"], dose=2, frequency="SOS"),
        item(meds["crocin"], dose=1, frequency="SOS"),
        item(meds["crocin"], dose=1, frequency="STAT", duration_days=1),
        item(meds["sulfolac"], dose=1, frequency="HS"),
    ]
    fields = field_errors(lambda: service.create(doctor, {"visit_id": visit.id, "items": items}))
    assert set(fields) == {f"items.{n}.quantity" for n in range(5)}
    assert "syrup" in fields["items.0.quantity"]
    assert "inhaler" in fields["items.1.quantity"]
    assert "needed" in fields["items.2.quantity"]
    assert service.for_visit(visit.id) is None

    for n, quantity in enumerate((1, 1, 10, 1, 2)):
        items[n]["quantity"] = quantity
    prescription = write(doctor, visit, items)
    assert [i.quantity for i in prescription.items] == [1, 1, 10, 1, 2]


@pytest.mark.parametrize(
    "frequency", ["", "   ", "thrice", "1-0", "1-0-1-0-1", "0-0-0", "1/0/1", "Q6H", None, 3]
)
def test_a_bad_frequency_names_the_item_and_the_accepted_forms(doctor, visit, meds, frequency):
    items = [item(meds["crocin"]), item(meds["amoxil"], frequency=frequency)]
    fields = field_errors(lambda: service.create(doctor, {"visit_id": visit.id, "items": items}))
    assert set(fields) == {"items.1.frequency"}
    message = fields["items.1.frequency"]
    assert message == FREQUENCY_HELP
    for form in ("OD", "BD", "TDS", "QID", "HS", "STAT", "SOS", "1-0-1"):
        assert form in message


@pytest.mark.parametrize("medicine_id", ["retired", 999_999, 0, -1, 2**31, True, None, "abc"])
def test_an_unknown_or_retired_medicine_names_the_item(doctor, visit, meds, medicine_id):
    if medicine_id == "retired":
        medicine_id = meds["retired"].id
    items = [item(meds["crocin"]), {**item(meds["crocin"]), "medicine_id": medicine_id}]
    fields = field_errors(lambda: service.create(doctor, {"visit_id": visit.id, "items": items}))
    assert set(fields) == {"items.1.medicine_id"}


@pytest.mark.parametrize("items", [[], None, "Crocin", {"medicine_id": 1}])
def test_a_prescription_needs_a_list_of_items(doctor, visit, meds, items):
    fields = field_errors(lambda: service.create(doctor, {"visit_id": visit.id, "items": items}))
    assert set(fields) == {"items"}


def test_at_most_thirty_items(doctor, visit, meds):
    too_many = [item(meds["crocin"]) for _ in range(31)]
    fields = field_errors(lambda: service.create(doctor, {"visit_id": visit.id, "items": too_many}))
    assert set(fields) == {"items"}
    assert "30" in fields["items"]

    prescription = write(doctor, visit, too_many[:30])
    assert [i.position for i in prescription.items] == list(range(1, 31))


def test_unknown_item_fields_and_non_objects_are_named(doctor, visit, meds):
    items = [
        item(meds["crocin"], colour="red", medicine_name="Crocin"),
        "Crocin 1 BD",
        item(meds["amoxil"]),
    ]
    fields = field_errors(lambda: service.create(doctor, {"visit_id": visit.id, "items": items}))
    assert set(fields) == {"items.0.colour", "items.0.medicine_name", "items.1"}


def test_every_bad_field_of_every_item_is_named_at_once(doctor, visit, meds):
    items = [
        item(meds["crocin"], dose=0, duration_days=0),
        item(meds["crocin"], dose="0.333", duration_days="5"),
        item(meds["crocin"], dose=101, duration_days=366, quantity=0),
        item(meds["crocin"], dose=True, duration_days=2.5, quantity=1.5),
        item(meds["crocin"], instructions="x" * 301, route="r" * 41),
    ]
    fields = field_errors(lambda: service.create(doctor, {"visit_id": visit.id, "items": items}))
    assert set(fields) == {
        "items.0.dose",
        "items.0.duration_days",
        "items.1.dose",
        "items.1.duration_days",
        "items.2.dose",
        "items.2.duration_days",
        "items.2.quantity",
        "items.3.dose",
        "items.3.duration_days",
        "items.3.quantity",
        "items.4.instructions",
        "items.4.route",
    }
    assert service.for_visit(visit.id) is None


def test_notes_are_plain_text_of_at_most_1000_characters(doctor, visit, meds):
    with pytest.raises(InvalidInput) as caught:
        service.create(
            doctor, {"visit_id": visit.id, "items": [item(meds["crocin"])], "notes": "n" * 1001}
        )
    assert set(caught.value.fields) == {"notes"}
    prescription = write(doctor, visit, [item(meds["crocin"])], notes="  rest\n and   fluids ")
    assert prescription.notes == "rest and fluids"


def test_the_visit_must_be_named(doctor, meds):
    fields = field_errors(lambda: service.create(doctor, {"items": [item(meds["crocin"])]}))
    assert set(fields) == {"visit_id"}


@pytest.mark.parametrize("visit_id", [999_999, 0, 2**40])
def test_an_unknown_visit_is_not_found(doctor, meds, visit_id):
    with pytest.raises(NotFound):
        service.create(doctor, {"visit_id": visit_id, "items": [item(meds["crocin"])]})


# ---- one per visit, its doctor, while in progress --------------------------------------------


def test_one_prescription_per_visit(doctor, visit, meds):
    first = write(doctor, visit, [item(meds["crocin"])])
    with pytest.raises(Conflict) as caught:
        service.create(doctor, {"visit_id": visit.id, "items": [item(meds["amoxil"])]})
    assert caught.value.code == "prescription_exists"
    assert caught.value.details == {"prescription_id": first.id}
    assert count(Prescription) == 1
    assert [i.medicine_id for i in service.get_prescription(first.id).items] == [meds["crocin"].id]


def test_the_database_holds_one_prescription_per_visit(doctor, visit, meds):
    write(doctor, visit, [item(meds["crocin"])])
    second = Prescription(
        visit_id=visit.id,
        patient_id=visit.patient_id,
        doctor_id=doctor.id,
        created_at=clock.now(),
    )
    with pytest.raises(IntegrityError) as caught, db.session.begin_nested():
        db.session.add(second)
    assert constraint_name(caught.value) == "uq_prescriptions_visit"
    assert count(Prescription) == 1


def test_two_doctors_racing_get_prescription_exists_not_an_error(doctor, visit, meds, monkeypatch):
    """The unique constraint, not the look-up before it, is what keeps one per visit: when
    the look-up misses the other request's row, the insert's refusal is the same 409."""
    first = write(doctor, visit, [item(meds["crocin"])])
    monkeypatch.setattr(service, "for_visit", lambda visit_id: None)
    with pytest.raises(Conflict) as caught:
        service.create(doctor, {"visit_id": visit.id, "items": [item(meds["amoxil"])]})
    assert caught.value.code == "prescription_exists"
    monkeypatch.undo()
    # The savepoint went; the session and the first prescription are intact.
    commit()
    assert count(Prescription) == 1
    assert service.for_visit(visit.id).id == first.id


def test_only_the_visits_doctor_writes_its_prescription(doctor, visit, meds):
    body = {"visit_id": visit.id, "items": [item(meds["crocin"])]}
    other = make_user(Role.DOCTOR)
    with pytest.raises(Forbidden) as caught:
        service.create(other, body)
    assert caught.value.code == "not_your_visit"
    for role in (Role.ADMIN, Role.RECEPTION, Role.PHARMACIST):
        with pytest.raises(Forbidden):
            service.create(make_user(role), body)
    assert count(Prescription) == 0


def test_a_completed_visit_takes_no_prescription(doctor, visit, meds):
    complete_visit(doctor, visit)
    with pytest.raises(Conflict) as caught:
        service.create(doctor, {"visit_id": visit.id, "items": [item(meds["crocin"])]})
    assert caught.value.code == "visit_completed"
    assert count(Prescription) == 0


def test_creating_is_audited(doctor, visit, meds):
    prescription = write(
        doctor, visit, [item(meds["amoxil"], dose=0.5, frequency="1-0-1")], notes="Rest"
    )
    (record,) = audit_payloads("PRESCRIPTION_CREATED")
    assert record["resource"] == {"type": "prescription", "id": prescription.id}
    assert record["user"]["id"] == doctor.id
    assert record["changes"]["old"] is None
    new = record["changes"]["new"]
    assert new["visit_id"] == visit.id
    assert new["notes"] == "Rest"
    (audited,) = new["items"]
    assert audited["medicine_id"] == meds["amoxil"].id
    assert audited["quantity"] == 5
    assert audited["frequency"] == "1-0-1"
    assert Decimal(audited["dose"]) == Decimal("0.5")
    assert audit_payloads("ALLERGY_OVERRIDDEN") == []


# ---- allergies ------------------------------------------------------------------------------


def test_a_drug_class_allergy_matches_every_medicine_of_the_class(doctor, meds):
    visit = allergic_visit(doctor, "penicillin")
    patient = visit.patient
    medicines = [meds["amoxil"], meds["crocin"], meds["augmentin"]]
    assert service.allergy_conflicts(patient, medicines) == [
        {
            "medicine_id": meds["amoxil"].id,
            "medicine": "Amoxil 500 mg",
            "allergy": "penicillin",
            "matched": "Penicillin",
            "via": "drug class",
        },
        {
            "medicine_id": meds["augmentin"].id,
            "medicine": "Augmentin 625 mg",
            "allergy": "penicillin",
            "matched": "Penicillin",
            "via": "drug class",
        },
    ]


@pytest.mark.parametrize(
    ("allergy", "key", "matched", "via"),
    [
        ("Paracetamol", "crocin", "Paracetamol", "ingredient"),
        ("PARACETAMOL", "crocin", "Paracetamol", "ingredient"),
        ("crocin", "crocin", "Crocin", "name"),
        ("Clavulanic acid", "augmentin", "Clavulanic Acid", "ingredient"),
        ("Trimethoprim", "septran", "Trimethoprim", "ingredient"),
        ("Sulfonamides", "septran", "Sulfonamide", "drug class"),
        ("Analgesic", "crocin", "Analgesic", "drug class"),
    ],
)
def test_allergies_match_name_ingredient_or_class(doctor, meds, allergy, key, matched, via):
    patient = make_patient(allergies=[allergy])
    (match,) = service.allergy_conflicts(patient, [meds[key]])
    assert (match["allergy"], match["matched"], match["via"]) == (allergy, matched, via)


@pytest.mark.parametrize(
    ("allergy", "key"),
    [
        ("Sulfa", "septran"),
        ("Sulfa", "sulfolac"),
        ("Sulfa drugs", "septran"),
        ("cillin", "amoxil"),
        ("Amox", "augmentin"),
        ("Paracetamol", "amoxil"),
    ],
)
def test_allergies_match_whole_words_only(doctor, meds, allergy, key):
    patient = make_patient(allergies=[allergy])
    assert service.allergy_conflicts(patient, [meds[key]]) == []


def test_sulfa_allergy_lets_septran_and_sulfur_through(doctor, meds):
    visit = allergic_visit(doctor, "Sulfa")
    prescription = write(
        doctor,
        visit,
        [item(meds["septran"]), item(meds["sulfolac"], frequency="HS", quantity=1)],
    )
    assert prescription.allergy_override_reason is None
    assert audit_payloads("ALLERGY_OVERRIDDEN") == []


def test_an_allergy_conflict_refuses_and_saves_nothing(doctor, meds):
    visit = allergic_visit(doctor, "Dust", "penicillin")
    body = {
        "visit_id": visit.id,
        "items": [item(meds["crocin"]), item(meds["amoxil"]), item(meds["augmentin"])],
    }
    with pytest.raises(Conflict) as caught:
        service.create(doctor, body)
    assert caught.value.code == "allergy_conflict"
    assert "Amoxil 500 mg" in caught.value.message
    assert "Augmentin 625 mg" in caught.value.message
    matches = caught.value.details["matches"]
    assert [(m["medicine_id"], m["allergy"], m["via"]) for m in matches] == [
        (meds["amoxil"].id, "penicillin", "drug class"),
        (meds["augmentin"].id, "penicillin", "drug class"),
    ]
    commit()
    assert count(Prescription) == 0
    assert count(PrescriptionItem) == 0
    assert audit_payloads("PRESCRIPTION_CREATED") == []
    assert audit_payloads("ALLERGY_OVERRIDDEN") == []


@pytest.mark.parametrize("reason", [None, "", "   \n "])
def test_a_blank_override_reason_is_no_override(doctor, meds, reason):
    visit = allergic_visit(doctor, "penicillin")
    with pytest.raises(Conflict) as caught:
        write(doctor, visit, [item(meds["amoxil"])], override_reason=reason)
    assert caught.value.code == "allergy_conflict"


def test_an_override_reason_is_at_most_500_characters(doctor, meds):
    visit = allergic_visit(doctor, "penicillin")
    fields = field_errors(
        lambda: write(doctor, visit, [item(meds["amoxil"])], override_reason="r" * 501)
    )
    assert set(fields) == {"override_reason"}
    assert count(Prescription) == 0


def test_an_override_writes_the_prescription_and_is_audited(doctor, meds):
    visit = allergic_visit(doctor, "penicillin", "Paracetamol")
    reason = "Tolerated amoxicillin last year without reaction."
    prescription = write(
        doctor,
        visit,
        [item(meds["amoxil"]), item(meds["crocin"])],
        override_reason=f"  {reason} ",
    )
    assert prescription.allergy_override_reason == reason
    db.session.expire_all()
    assert service.get_prescription(prescription.id).allergy_override_reason == reason

    (record,) = audit_payloads("ALLERGY_OVERRIDDEN")
    assert record["resource"] == {"type": "visit", "id": visit.id}
    assert record["user"]["id"] == doctor.id
    new = record["changes"]["new"]
    assert new["reason"] == reason
    assert new["patient_id"] == visit.patient_id
    assert new["matches"] == [
        {
            "medicine_id": meds["amoxil"].id,
            "medicine": "Amoxil 500 mg",
            "allergy": "penicillin",
            "matched": "Penicillin",
            "via": "drug class",
        },
        {
            "medicine_id": meds["crocin"].id,
            "medicine": "Crocin 500 mg",
            "allergy": "Paracetamol",
            "matched": "Paracetamol",
            "via": "ingredient",
        },
    ]
    assert len(audit_payloads("PRESCRIPTION_CREATED")) == 1


def test_no_match_needs_no_reason_and_an_unneeded_reason_is_not_kept(doctor, meds):
    visit = allergic_visit(doctor, "penicillin")
    prescription = write(doctor, visit, [item(meds["crocin"])], override_reason="just in case")
    assert prescription.allergy_override_reason is None
    assert audit_payloads("ALLERGY_OVERRIDDEN") == []


# ---- changing -------------------------------------------------------------------------------


def test_update_replaces_items_and_notes_and_is_audited(doctor, visit, meds):
    prescription = write(doctor, visit, [item(meds["crocin"])], notes="Rest")
    changed = service.update(
        doctor,
        prescription.id,
        {
            "items": [
                item(meds["amoxil"], dose=0.5, frequency="1-0-1"),
                item(meds["benadryl"], dose=5, frequency="TDS", quantity=1),
            ],
            "notes": "Rest and fluids",
        },
    )
    commit()
    db.session.expire_all()
    stored = service.get_prescription(changed.id)
    assert [(i.position, i.medicine_id, i.quantity) for i in stored.items] == [
        (1, meds["amoxil"].id, 5),
        (2, meds["benadryl"].id, 1),
    ]
    assert stored.notes == "Rest and fluids"
    assert count(PrescriptionItem) == 2

    (record,) = audit_payloads("PRESCRIPTION_UPDATED")
    assert record["resource"] == {"type": "prescription", "id": prescription.id}
    assert record["changes"]["old"]["notes"] == "Rest"
    assert record["changes"]["new"]["notes"] == "Rest and fluids"
    assert [i["medicine_id"] for i in record["changes"]["old"]["items"]] == [meds["crocin"].id]
    assert [i["medicine_id"] for i in record["changes"]["new"]["items"]] == [
        meds["amoxil"].id,
        meds["benadryl"].id,
    ]


def test_update_of_notes_alone_keeps_the_items(doctor, visit, meds):
    prescription = write(doctor, visit, [item(meds["crocin"], frequency="TDS")])
    service.update(doctor, prescription.id, {"notes": "After food"})
    commit()
    db.session.expire_all()
    stored = service.get_prescription(prescription.id)
    assert [(i.medicine_id, i.quantity) for i in stored.items] == [(meds["crocin"].id, 15)]
    assert stored.notes == "After food"
    (record,) = audit_payloads("PRESCRIPTION_UPDATED")
    assert record["changes"] == {"old": {"notes": None}, "new": {"notes": "After food"}}


def test_an_update_that_changes_nothing_is_not_audited(doctor, visit, meds):
    prescription = write(doctor, visit, [item(meds["crocin"])], notes="Rest")
    service.update(doctor, prescription.id, {"items": [item(meds["crocin"])], "notes": "Rest"})
    commit()
    assert audit_payloads("PRESCRIPTION_UPDATED") == []


def test_update_checks_items_like_create(doctor, visit, meds):
    prescription = write(doctor, visit, [item(meds["crocin"])])
    fields = field_errors(
        lambda: service.update(
            doctor,
            prescription.id,
            {"items": [item(meds["crocin"]), item(meds["benadryl"], frequency="sometimes")]},
        )
    )
    assert set(fields) == {"items.1.frequency"}
    fields = field_errors(lambda: service.update(doctor, prescription.id, {"items": []}))
    assert set(fields) == {"items"}
    db.session.expire_all()
    assert [i.medicine_id for i in service.get_prescription(prescription.id).items] == [
        meds["crocin"].id
    ]


def test_update_adding_an_allergy_match_is_refused_without_a_reason(doctor, meds):
    visit = allergic_visit(doctor, "penicillin")
    prescription = write(doctor, visit, [item(meds["crocin"])])
    changed = {"items": [item(meds["crocin"]), item(meds["augmentin"])]}
    with pytest.raises(Conflict) as caught:
        service.update(doctor, prescription.id, changed)
    assert caught.value.code == "allergy_conflict"
    assert [m["medicine_id"] for m in caught.value.details["matches"]] == [meds["augmentin"].id]
    commit()
    db.session.expire_all()
    assert [i.medicine_id for i in service.get_prescription(prescription.id).items] == [
        meds["crocin"].id
    ]
    assert audit_payloads("PRESCRIPTION_UPDATED") == []

    service.update(doctor, prescription.id, {**changed, "override_reason": "Specialist advice"})
    commit()
    db.session.expire_all()
    stored = service.get_prescription(prescription.id)
    assert [i.medicine_id for i in stored.items] == [meds["crocin"].id, meds["augmentin"].id]
    assert stored.allergy_override_reason == "Specialist advice"
    (record,) = audit_payloads("ALLERGY_OVERRIDDEN")
    assert record["changes"]["new"]["reason"] == "Specialist advice"
    assert [m["medicine_id"] for m in record["changes"]["new"]["matches"]] == [meds["augmentin"].id]


def test_an_overridden_medicine_kept_on_the_prescription_needs_no_new_reason(doctor, meds):
    visit = allergic_visit(doctor, "penicillin")
    prescription = write(
        doctor, visit, [item(meds["amoxil"])], override_reason="No reaction before"
    )
    service.update(doctor, prescription.id, {"items": [item(meds["amoxil"]), item(meds["crocin"])]})
    commit()
    db.session.expire_all()
    stored = service.get_prescription(prescription.id)
    assert [i.medicine_id for i in stored.items] == [meds["amoxil"].id, meds["crocin"].id]
    assert stored.allergy_override_reason == "No reaction before"
    assert len(audit_payloads("ALLERGY_OVERRIDDEN")) == 1


def test_update_checks_an_allergy_recorded_after_the_prescription(doctor, reception, meds):
    """The prescription was written before the patient's penicillin allergy was known, so
    no check ever weighed Amoxil against it; re-sending the items must not slip past the
    check (SPEC section 6: a match is refused unless the request carries a reason)."""
    visit = allergic_visit(doctor)
    prescription = write(doctor, visit, [item(meds["amoxil"])])
    patients.update(reception, visit.patient_id, {"allergies": ["Penicillin"]})
    commit()
    with pytest.raises(Conflict) as caught:
        service.update(
            doctor, prescription.id, {"items": [item(meds["amoxil"]), item(meds["crocin"])]}
        )
    assert caught.value.code == "allergy_conflict"
    assert [m["medicine_id"] for m in caught.value.details["matches"]] == [meds["amoxil"].id]


def test_only_the_visits_doctor_changes_the_prescription(doctor, visit, meds):
    prescription = write(doctor, visit, [item(meds["crocin"])])
    with pytest.raises(Forbidden) as caught:
        service.update(make_user(Role.DOCTOR), prescription.id, {"notes": "Mine now"})
    assert caught.value.code == "not_your_visit"
    for role in (Role.ADMIN, Role.RECEPTION, Role.PHARMACIST):
        with pytest.raises(Forbidden):
            service.update(make_user(role), prescription.id, {"notes": "Mine now"})
    db.session.expire_all()
    assert service.get_prescription(prescription.id).notes is None


def test_a_completed_visits_prescription_is_read_only(doctor, visit, meds):
    prescription = write(doctor, visit, [item(meds["crocin"])])
    complete_visit(doctor, visit)
    with pytest.raises(Conflict) as caught:
        service.update(doctor, prescription.id, {"notes": "Too late"})
    assert caught.value.code == "visit_completed"
    with pytest.raises(Conflict):
        service.update(doctor, prescription.id, {"items": [item(meds["amoxil"])]})


@pytest.mark.parametrize("prescription_id", [999_999, 0, -5, 2**40])
def test_an_unknown_prescription_is_not_found(doctor, prescription_id):
    with pytest.raises(NotFound) as caught:
        service.get_prescription(prescription_id)
    assert caught.value.code == "prescription_not_found"
    with pytest.raises(NotFound):
        service.update(doctor, prescription_id, {"notes": "x"})
