"""`/api/v1/prescriptions`: every rule of SPEC section 6 and every status code a client can
meet when writing, changing and reading a prescription."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from qure.core.db import commit
from qure.core.roles import Role
from qure.extensions import db
from qure.pharmacy import service as pharmacy_service
from qure.prescriptions import service as prescriptions_service
from qure.prescriptions.dosing import FREQUENCY_HELP
from qure.prescriptions.models import Prescription, PrescriptionItem
from qure.visits import service as visits_service
from tests.helpers import NOW, bearer, make_patient, make_user
from tests.prescriptions.test_service import (
    audit_payloads,
    complete_visit,
    item,
    make_medicines,
    start_visit,
)

URL = "/api/v1/prescriptions"
PRESCRIPTION_KEYS = {
    "id",
    "visit_id",
    "patient",
    "doctor",
    "notes",
    "allergy_override_reason",
    "dispense_status",
    "created_at",
    "items",
}
ITEM_KEYS = {
    "medicine",
    "dose",
    "frequency",
    "frequency_words",
    "duration_days",
    "quantity",
    "route",
    "instructions",
}


# ---- helpers -------------------------------------------------------------------------------


def error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json["error"]
    if code is not None:
        assert body["code"] == code, body
    assert body["message"]
    return body


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


class Desk:
    """The prescriptions API as one signed-in user uses it."""

    def __init__(self, client, user):
        self.client = client
        self.user = user
        self.headers = bearer(client, user)

    def create(self, visit, items, **extra):
        body = {"visit_id": visit.id, "items": items, **extra}
        return self.client.post(URL, json=body, headers=self.headers)

    def post(self, body):
        return self.client.post(URL, json=body, headers=self.headers)

    def get(self, prescription_id: int):
        return self.client.get(f"{URL}/{prescription_id}", headers=self.headers)

    def patch(self, prescription_id: int, body: dict):
        return self.client.patch(f"{URL}/{prescription_id}", json=body, headers=self.headers)


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


@pytest.fixture
def meds(app):
    return make_medicines()


@pytest.fixture
def patient(reception):
    return make_patient(reception, full_name="Asha Devi Sharma")


@pytest.fixture
def visit(doctor, patient):
    return start_visit(doctor, patient)


@pytest.fixture
def doc(client, doctor):
    return Desk(client, doctor)


@pytest.fixture
def written(doc, visit, meds) -> dict:
    """The visit's prescription (Crocin 1 BD for 5 days, with a note) as GET answers it."""
    created = ok(doc.create(visit, [item(meds["crocin"])], notes="Rest"), 201)
    return ok(doc.get(created["id"]))


def allergic_visit(doctor, *allergies):
    return start_visit(doctor, make_patient(allergies=list(allergies)))


# ---- create ---------------------------------------------------------------------------------


def test_create_answers_the_prescription(doc, doctor, visit, patient, meds):
    response = doc.create(
        visit,
        [
            item(meds["amoxil"], dose=0.5, frequency="1-0-1", instructions="after food"),
            item(meds["crocin"], dose=1, frequency="TDS", route="oral"),
            item(meds["augmentin"], dose=1, frequency="BD", quantity=12),
        ],
        notes="Plenty of fluids",
    )
    body = ok(response, 201)
    assert response.headers["Location"].endswith(f"{URL}/{body['id']}")
    assert set(body) == PRESCRIPTION_KEYS
    assert body["visit_id"] == visit.id
    assert body["patient"] == {
        "id": patient.id,
        "full_name": "Asha Devi Sharma",
        "mrn": patient.mrn,
    }
    assert body["doctor"] == {"id": doctor.id, "full_name": doctor.full_name}
    assert body["notes"] == "Plenty of fluids"
    assert body["allergy_override_reason"] is None
    assert datetime.fromisoformat(body["created_at"]) == NOW

    amoxil, crocin, augmentin = body["items"]
    for answered in body["items"]:
        assert set(answered) == ITEM_KEYS
    assert amoxil["medicine"] == {
        "id": meds["amoxil"].id,
        "name": "Amoxil",
        "generic_name": "Amoxicillin",
        "strength": "500 mg",
        "dosage_form": "CAPSULE",
    }
    assert Decimal(amoxil["dose"]) == Decimal("0.5")
    assert amoxil["frequency"] == "1-0-1"
    assert amoxil["frequency_words"] == "1-0-1: morning and night"
    assert (amoxil["duration_days"], amoxil["quantity"]) == (5, 5)
    assert (amoxil["route"], amoxil["instructions"]) == (None, "after food")

    assert crocin["medicine"]["name"] == "Crocin"
    assert (crocin["frequency"], crocin["frequency_words"]) == ("TDS", "TDS: three times a day")
    assert (crocin["quantity"], crocin["route"]) == (15, "oral")

    assert augmentin["frequency_words"] == "BD: twice a day"
    assert augmentin["quantity"] == 12  # given: kept, not the computed 10

    assert count(Prescription) == 1
    assert count(PrescriptionItem) == 3


def test_create_answers_what_get_answers(doc, visit, meds):
    created = ok(
        doc.create(visit, [item(meds["amoxil"], dose=0.5, frequency="1-0-1")], notes="Rest"),
        201,
    )
    read = ok(doc.get(created["id"]))
    # The same instant may be written with another offset; everything else is the same text.
    assert datetime.fromisoformat(created.pop("created_at")) == datetime.fromisoformat(
        read.pop("created_at")
    )
    assert created == read


def test_packs_and_as_needed_medicines_need_a_quantity(doc, visit, meds):
    items = [
        item(meds["crocin"]),
        item(meds["benadryl"], dose=5, frequency="TDS"),
        item(meds["asthalin"], dose=2, frequency="SOS"),
        item(meds["crocin"], dose=1, frequency="SOS"),
    ]
    body = error(doc.create(visit, items), 422, "invalid_input")
    assert set(body["fields"]) == {"items.1.quantity", "items.2.quantity", "items.3.quantity"}
    assert body["message"].startswith("items.1.quantity")
    assert count(Prescription) == 0

    items[1]["quantity"], items[2]["quantity"], items[3]["quantity"] = 2, 1, 6
    answered = ok(doc.create(visit, items), 201)
    assert [i["quantity"] for i in answered["items"]] == [10, 2, 1, 6]
    assert answered["items"][2]["frequency_words"] == "SOS: when needed"


@pytest.mark.parametrize("frequency", ["thrice daily", "1-0", "0-0-0", "", None])
def test_a_bad_frequency_names_the_item_and_lists_the_accepted_forms(doc, visit, meds, frequency):
    items = [item(meds["crocin"]), item(meds["crocin"]), item(meds["crocin"], frequency=frequency)]
    body = error(doc.create(visit, items), 422, "invalid_input")
    assert set(body["fields"]) == {"items.2.frequency"}
    assert body["fields"]["items.2.frequency"] == FREQUENCY_HELP
    assert "OD, BD, TDS, QID, HS, STAT, SOS" in body["fields"]["items.2.frequency"]
    assert "1-0-1" in body["fields"]["items.2.frequency"]


@pytest.mark.parametrize("medicine_id", ["retired", 999_999, 0, 2**31, 2**63, "1", None])
def test_an_unknown_or_retired_medicine_is_a_field_error(doc, visit, meds, medicine_id):
    if medicine_id == "retired":
        medicine_id = meds["retired"].id
    bad = {**item(meds["crocin"]), "medicine_id": medicine_id}
    body = error(doc.create(visit, [item(meds["crocin"]), bad]), 422, "invalid_input")
    assert set(body["fields"]) == {"items.1.medicine_id"}


def test_a_prescription_has_1_to_30_items(doc, visit, meds):
    body = error(doc.create(visit, []), 422, "invalid_input")
    assert set(body["fields"]) == {"items"}
    body = error(doc.create(visit, [item(meds["crocin"]) for _ in range(31)]), 422)
    assert set(body["fields"]) == {"items"}
    assert count(Prescription) == 0
    answered = ok(doc.create(visit, [item(meds["crocin"]) for _ in range(30)]), 201)
    assert len(answered["items"]) == 30


def test_unknown_item_fields_are_refused(doc, visit, meds):
    body = error(doc.create(visit, [item(meds["crocin"], strength="650 mg")]), 422)
    assert set(body["fields"]) == {"items.0.strength"}
    body = error(doc.create(visit, [item(meds["crocin"]), ["Crocin", 1, "BD"]]), 422)
    assert "items.1" in body["fields"]
    assert count(Prescription) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": []}, "visit_id"),
        ({"visit_id": "first"}, "visit_id"),
        ({"visit_id": True}, "visit_id"),
        ({"visit_id": 1}, "items"),
        ({"visit_id": 1, "items": "Crocin"}, "items"),
        ({"visit_id": 1, "items": [], "notes": 5}, "notes"),
        ({"visit_id": 1, "items": [], "doctor_id": 1}, "doctor_id"),
    ],
)
def test_a_malformed_body_is_a_field_error(doc, visit, body, field):
    answer = error(doc.post(body), 422, "invalid_input")
    assert field in answer["fields"]


def test_a_body_that_is_not_json_is_a_bad_request(doc, visit):
    response = doc.client.post(
        URL, data="{visit_id: 1", content_type="application/json", headers=doc.headers
    )
    error(response, 400)


def test_an_unknown_visit_is_not_found(doc, meds):
    error(doc.post({"visit_id": 999_999, "items": [item(meds["crocin"])]}), 404, "visit_not_found")
    error(doc.post({"visit_id": 2**40, "items": [item(meds["crocin"])]}), 404)


def test_one_prescription_per_visit(doc, visit, meds, written):
    body = error(doc.create(visit, [item(meds["amoxil"])]), 409, "prescription_exists")
    assert body["details"] == {"prescription_id": written["id"]}
    assert count(Prescription) == 1
    assert [i["medicine"]["name"] for i in ok(doc.get(written["id"]))["items"]] == ["Crocin"]


def test_another_doctor_may_not_prescribe_on_the_visit(client, visit, meds):
    other = Desk(client, make_user(Role.DOCTOR))
    error(other.create(visit, [item(meds["crocin"])]), 403, "not_your_visit")
    assert count(Prescription) == 0


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.PHARMACIST, Role.ADMIN])
def test_only_a_doctor_prescribes(client, visit, meds, role):
    desk = Desk(client, make_user(role))
    error(desk.create(visit, [item(meds["crocin"])]), 403, "forbidden")
    assert count(Prescription) == 0


def test_prescriptions_need_a_token(client, visit, meds, written):
    error(client.post(URL, json={"visit_id": visit.id, "items": [item(meds["crocin"])]}), 401)
    error(client.get(f"{URL}/{written['id']}"), 401)
    error(client.patch(f"{URL}/{written['id']}", json={"notes": "x"}), 401)
    error(client.get(f"{URL}/{written['id']}/print"), 401)


def test_a_completed_visit_takes_no_prescription(doc, doctor, visit, meds):
    complete_visit(doctor, visit)
    error(doc.create(visit, [item(meds["crocin"])]), 409, "visit_completed")
    assert count(Prescription) == 0


def test_creating_is_audited_with_the_request(doc, doctor, visit, meds):
    body = ok(doc.create(visit, [item(meds["crocin"])]), 201)
    (record,) = audit_payloads("PRESCRIPTION_CREATED")
    assert record["resource"] == {"type": "prescription", "id": body["id"]}
    assert record["user"] == {"id": doctor.id, "name": doctor.full_name, "role": "DOCTOR"}
    assert record["request_id"]
    assert record["changes"]["new"]["items"][0]["quantity"] == 10


# ---- allergies -----------------------------------------------------------------------------


def test_an_allergy_match_is_a_conflict_listing_each_match(doc, doctor, meds):
    visit = allergic_visit(doctor, "penicillin")
    items = [item(meds["crocin"]), item(meds["amoxil"]), item(meds["augmentin"])]
    body = error(doc.create(visit, items), 409, "allergy_conflict")
    assert body["details"]["matches"] == [
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
    assert count(Prescription) == 0
    assert count(PrescriptionItem) == 0
    assert audit_payloads("PRESCRIPTION_CREATED") == []
    assert audit_payloads("ALLERGY_OVERRIDDEN") == []


def test_an_ingredient_allergy_matches(doc, doctor, meds):
    visit = allergic_visit(doctor, "Paracetamol")
    body = error(doc.create(visit, [item(meds["crocin"])]), 409, "allergy_conflict")
    (match,) = body["details"]["matches"]
    assert match == {
        "medicine_id": meds["crocin"].id,
        "medicine": "Crocin 500 mg",
        "allergy": "Paracetamol",
        "matched": "Paracetamol",
        "via": "ingredient",
    }


def test_a_sulfa_allergy_does_not_block_septran_or_sulfur(doc, doctor, meds):
    visit = allergic_visit(doctor, "Sulfa")
    items = [item(meds["septran"]), item(meds["sulfolac"], frequency="HS", quantity=1)]
    body = ok(doc.create(visit, items), 201)
    assert [i["medicine"]["name"] for i in body["items"]] == ["Septran", "Sulfolac"]
    assert body["allergy_override_reason"] is None


def test_an_override_reason_writes_the_prescription_and_is_audited(doc, doctor, meds):
    visit = allergic_visit(doctor, "penicillin")
    reason = "Took amoxicillin in 2028 without reaction"
    body = ok(doc.create(visit, [item(meds["amoxil"])], override_reason=reason), 201)
    assert body["allergy_override_reason"] == reason
    assert ok(doc.get(body["id"]))["allergy_override_reason"] == reason

    (record,) = audit_payloads("ALLERGY_OVERRIDDEN")
    assert record["resource"] == {"type": "visit", "id": visit.id}
    assert record["user"]["id"] == doctor.id
    assert record["changes"]["new"]["reason"] == reason
    assert record["changes"]["new"]["matches"] == [
        {
            "medicine_id": meds["amoxil"].id,
            "medicine": "Amoxil 500 mg",
            "allergy": "penicillin",
            "matched": "Penicillin",
            "via": "drug class",
        }
    ]


def test_a_blank_override_reason_is_no_override(doc, doctor, meds):
    visit = allergic_visit(doctor, "penicillin")
    error(doc.create(visit, [item(meds["amoxil"])], override_reason="  "), 409, "allergy_conflict")
    body = error(doc.create(visit, [item(meds["amoxil"])], override_reason="r" * 501), 422)
    assert set(body["fields"]) == {"override_reason"}
    assert count(Prescription) == 0


# ---- change -------------------------------------------------------------------------------


def test_patch_changes_items_and_notes(doc, meds, written):
    body = ok(
        doc.patch(
            written["id"],
            {
                "items": [
                    item(meds["amoxil"], dose=0.5, frequency="1-0-1"),
                    item(meds["benadryl"], dose=5, frequency="TDS", quantity=1),
                ],
                "notes": "Rest and fluids",
            },
        )
    )
    assert body["id"] == written["id"]
    assert body["notes"] == "Rest and fluids"
    assert [(i["medicine"]["name"], i["quantity"]) for i in body["items"]] == [
        ("Amoxil", 5),
        ("Benadryl", 1),
    ]
    read = ok(doc.get(written["id"]))
    assert [i["medicine"]["name"] for i in read["items"]] == ["Amoxil", "Benadryl"]
    assert count(PrescriptionItem) == 2

    (record,) = audit_payloads("PRESCRIPTION_UPDATED")
    assert record["resource"] == {"type": "prescription", "id": written["id"]}
    assert record["changes"]["old"]["notes"] == "Rest"
    assert record["changes"]["new"]["notes"] == "Rest and fluids"


def test_patch_of_the_notes_alone_keeps_the_items(doc, written):
    body = ok(doc.patch(written["id"], {"notes": "After food"}))
    assert body["notes"] == "After food"
    assert body["items"] == written["items"]


def test_patch_checks_items_like_create(doc, meds, written):
    body = error(
        doc.patch(written["id"], {"items": [item(meds["benadryl"], frequency="TDS")]}), 422
    )
    assert set(body["fields"]) == {"items.0.quantity"}
    body = error(doc.patch(written["id"], {"items": []}), 422)
    assert set(body["fields"]) == {"items"}
    body = error(doc.patch(written["id"], {"visit_id": 7}), 422)
    assert "visit_id" in body["fields"]
    assert ok(doc.get(written["id"]))["items"] == written["items"]


def test_patch_checks_allergies_again(doc, doctor, meds):
    visit = allergic_visit(doctor, "penicillin")
    written = ok(doc.get(ok(doc.create(visit, [item(meds["crocin"])]), 201)["id"]))
    changed = {"items": [item(meds["crocin"]), item(meds["augmentin"])]}
    body = error(doc.patch(written["id"], changed), 409, "allergy_conflict")
    assert [m["medicine"] for m in body["details"]["matches"]] == ["Augmentin 625 mg"]
    assert ok(doc.get(written["id"]))["items"] == written["items"]

    body = ok(doc.patch(written["id"], {**changed, "override_reason": "Specialist advice"}))
    assert [i["medicine"]["name"] for i in body["items"]] == ["Crocin", "Augmentin"]
    assert body["allergy_override_reason"] == "Specialist advice"
    (record,) = audit_payloads("ALLERGY_OVERRIDDEN")
    assert record["changes"]["new"]["reason"] == "Specialist advice"


def test_patch_after_the_visit_is_completed_is_refused(doc, doctor, visit, written):
    complete_visit(doctor, visit)
    error(doc.patch(written["id"], {"notes": "Too late"}), 409, "visit_completed")
    assert ok(doc.get(written["id"]))["notes"] == "Rest"


def test_only_the_visits_doctor_patches(client, written):
    other = Desk(client, make_user(Role.DOCTOR))
    error(other.patch(written["id"], {"notes": "Mine"}), 403, "not_your_visit")
    for role in (Role.RECEPTION, Role.PHARMACIST, Role.ADMIN):
        desk = Desk(client, make_user(role))
        error(desk.patch(written["id"], {"notes": "Mine"}), 403, "forbidden")
    assert ok(other.get(written["id"]))["notes"] == "Rest"


def test_patch_of_an_unknown_prescription_is_not_found(doc):
    error(doc.patch(999_999, {"notes": "x"}), 404, "prescription_not_found")


# ---- read ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.PHARMACIST, Role.ADMIN, Role.DOCTOR])
def test_every_staff_role_reads_a_prescription(client, written, role):
    desk = Desk(client, make_user(role))
    body = ok(desk.get(written["id"]))
    assert body == written


@pytest.mark.parametrize("prescription_id", [999_999, 0, 2**40])
def test_an_unknown_prescription_is_not_found(doc, prescription_id):
    error(doc.get(prescription_id), 404)
    error(doc.client.get(f"{URL}/{prescription_id}/print", headers=doc.headers), 404)


def test_prescriptions_are_listed_newest_first_by_patient_and_doctor(client, doctor, reception):
    medicine = pharmacy_service.create(
        None,
        {
            "name": "Listol",
            "generic_name": "Paracetamol",
            "dosage_form": "TABLET",
            "strength": "500 mg",
            "unit_price": "1.00",
            "gst_rate": 12,
        },
    )
    made = []
    for _ in range(2):
        patient = make_patient()
        visit = visits_service.start(doctor, {"patient_id": patient.id})
        item = {"medicine_id": medicine.id, "dose": 1, "frequency": "BD", "duration_days": 2}
        made.append(prescriptions_service.create(doctor, {"visit_id": visit.id, "items": [item]}))
        commit()
    headers = bearer(client, reception)

    everything = client.get("/api/v1/prescriptions", headers=headers)
    assert everything.status_code == 200
    assert [p["id"] for p in everything.json["items"]] == [made[1].id, made[0].id]
    assert everything.json["total"] == 2

    one = client.get(f"/api/v1/prescriptions?patient_id={made[0].patient_id}", headers=headers)
    assert [p["id"] for p in one.json["items"]] == [made[0].id]
    other = make_user(Role.DOCTOR)
    none = client.get(f"/api/v1/prescriptions?doctor_id={other.id}", headers=headers)
    assert none.json == {"items": [], "page": 1, "per_page": 50, "total": 0}
    bad = client.get("/api/v1/prescriptions?patient_id=abc", headers=headers)
    assert bad.status_code == 422
