"""`/api/v1/visits` and a patient's visit history: every rule of SPEC section 5 and every
status code a client can meet."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from qure.core import clock, outbox
from qure.core.db import commit
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db, mongo, redis_store
from qure.queue import service as queue
from qure.scheduling import service as scheduling
from qure.visits import service as visits_service
from qure.visits.models import Visit
from tests.helpers import (
    NOW,
    TODAY,
    bearer,
    later,
    make_appointment,
    make_patient,
    make_slots,
    make_user,
)

URL = "/api/v1/visits"
VISIT_KEYS = {
    "id",
    "patient",
    "doctor",
    "appointment_id",
    "status",
    "started_at",
    "completed_at",
    "vitals",
    "chief_complaint",
    "symptom_duration",
    "diagnosis",
    "icd10_code",
    "treatment_plan",
    "follow_up_date",
    "notes",
}
VITAL_KEYS = {
    "bp_systolic",
    "bp_diastolic",
    "temperature_c",
    "pulse",
    "spo2",
    "weight_kg",
    "height_cm",
    "respiratory_rate",
    "bmi",
}
NOTE_KEYS = {"id", "category", "text", "author", "created_at", "is_addendum"}
ALL_VITALS = {
    "bp_systolic": 128,
    "bp_diastolic": 84,
    "temperature": 100.4,
    "temperature_unit": "F",
    "pulse": 88,
    "spo2": 97,
    "weight_kg": 70,
    "height_cm": 175,
    "respiratory_rate": 18,
}


# ---- helpers -------------------------------------------------------------------------------


def error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json["error"]
    if code is not None:
        assert body["code"] == code, body
    assert body["message"]
    return body


def ok(response, status: int = 200):
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def listed(body) -> list[dict]:
    """The visits of a history answer (the shape itself is checked on its own)."""
    return body["items"] if isinstance(body, dict) else body


def actions() -> list[str]:
    db.session.expire_all()
    rows = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.topic == "audit_logs").order_by(OutboxEvent.id)
    )
    return [r.payload["action"] for r in rows]


def history_rows() -> list[dict]:
    db.session.expire_all()
    rows = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.topic == "visit_history").order_by(OutboxEvent.id)
    )
    return [r.payload for r in rows]


def visits_in_db() -> int:
    db.session.expire_all()
    return len(db.session.scalars(select(Visit)).all())


def redis_current(doctor_id: int) -> int | None:
    value = redis_store.client.get(f"q:{TODAY}:cur:{doctor_id}")
    return int(value) if value is not None else None


class Api:
    """The API as one signed-in user uses it."""

    def __init__(self, client, user):
        self.client = client
        self.user = user
        self.headers = bearer(client, user)

    def get(self, path: str, **kwargs):
        return self.client.get(path, headers=self.headers, **kwargs)

    def post(self, path: str, body: dict | None = None):
        return self.client.post(path, json=body if body is not None else {}, headers=self.headers)

    def patch(self, path: str, body: dict):
        return self.client.patch(path, json=body, headers=self.headers)

    def start(self, **body):
        return self.post(URL, body)

    def visit(self, visit_id: int):
        return self.get(f"{URL}/{visit_id}")

    def change(self, visit_id: int, **body):
        return self.patch(f"{URL}/{visit_id}", body)

    def note(self, visit_id: int, category: str = "SYMPTOM", text: str = "Dry cough"):
        return self.post(f"{URL}/{visit_id}/notes", {"category": category, "text": text})

    def notes(self, visit_id: int):
        return self.get(f"{URL}/{visit_id}/notes")

    def complete(self, visit_id: int):
        return self.post(f"{URL}/{visit_id}/complete")

    def history(self, patient_id: int, **query):
        return self.get(f"/api/v1/patients/{patient_id}/visits", query_string=query)


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    """Every test runs at NOW (Monday 2030-01-07 10:00 clinic time)."""
    return clinic_now


@pytest.fixture
def doc(client, doctor):
    return Api(client, doctor)


@pytest.fixture
def other_doc(client):
    return Api(client, make_user(Role.DOCTOR))


@pytest.fixture
def boss(client, admin):
    return Api(client, admin)


@pytest.fixture
def slots(doctor):
    return make_slots(doctor)


@pytest.fixture
def patient(reception):
    return make_patient(reception)


@pytest.fixture
def booked(reception, slots):
    def _booked(index: int, reason: str | None = None):
        return make_appointment(make_patient(reception), slots[index], reception, reason)

    return _booked


@pytest.fixture
def called(doctor, reception, booked):
    """called(index=0, reason=None): booked, checked in and called by the doctor."""

    def _called(index: int = 0, reason: str | None = None):
        appointment = booked(index, reason)
        queue.check_in(reception, appointment.id)
        commit()
        entry = queue.call_next(doctor)
        commit()
        return entry

    return _called


@pytest.fixture
def visit(doc, patient) -> dict:
    """A visit the doctor started for a patient, as the API answered it."""
    return ok(doc.start(patient_id=patient.id), 201)


# ---- starting ------------------------------------------------------------------------------


def test_start_from_the_called_token(doc, doctor, called):
    entry = called(0, reason="Fever for three days")

    response = doc.start(token_number=entry.token_number)

    body = ok(response, 201)
    assert set(body) >= VISIT_KEYS
    assert response.headers["Location"].endswith(f"{URL}/{body['id']}")
    assert body["status"] == "IN_PROGRESS"
    assert body["patient"]["id"] == entry.patient_id
    assert body["doctor"] == {"id": doctor.id, "full_name": doctor.full_name}
    assert body["appointment_id"] == entry.appointment_id
    assert datetime.fromisoformat(body["started_at"]) == NOW
    assert body["completed_at"] is None
    assert body["chief_complaint"] == "Fever for three days"
    assert body["vitals"] == dict.fromkeys(VITAL_KEYS)
    assert body["notes"] == []
    assert ok(doc.get(response.headers["Location"]))["id"] == body["id"]
    assert "VISIT_STARTED" in actions()


def test_start_from_a_walk_in_token_copies_the_complaint(doc, doctor, reception, patient):
    queue.walk_in(
        reception, {"patient_id": patient.id, "doctor_id": doctor.id, "complaint": "Ear pain"}
    )
    commit()
    entry = queue.call_next(doctor)
    commit()
    body = ok(doc.start(token_number=entry.token_number), 201)
    assert body["chief_complaint"] == "Ear pain"
    assert body["appointment_id"] is None


def test_start_from_a_token_that_is_not_with_you(doc, other_doc, reception, booked, called):
    entry = called(0)
    body = error(other_doc.start(token_number=entry.token_number), 409, "token_not_with_you")
    assert body["details"] == {"token_number": entry.token_number, "status": "WITH_DOCTOR"}

    waiting = queue.check_in(reception, booked(1).id)
    commit()
    body = error(doc.start(token_number=waiting.token_number), 409, "token_not_with_you")
    assert body["details"]["status"] == "WAITING"
    assert visits_in_db() == 0


@pytest.mark.parametrize("token_number", [42, 0, -3, 100_000])
def test_start_from_an_unknown_token(doc, called, token_number):
    called(0)
    body = error(doc.start(token_number=token_number), 422, "invalid_input")
    assert set(body["fields"]) == {"token_number"}
    assert visits_in_db() == 0


@pytest.mark.parametrize("token_number", ["one", True, [1], {"n": 1}])
def test_start_with_a_token_that_is_not_a_number(doc, called, token_number):
    called(0)
    body = error(doc.start(token_number=token_number), 422, "invalid_input")
    assert "token_number" in body["fields"]


@pytest.mark.parametrize("field", ["appointment_id", "patient_id"])
@pytest.mark.parametrize("value", ["one", True, [1]])
def test_start_with_an_id_that_is_not_a_number(doc, booked, field, value):
    booked(0)
    body = error(doc.start(**{field: value}), 422, "invalid_input")
    assert field in body["fields"]


def test_start_for_an_appointment(doc, booked):
    appointment = booked(1, reason="Knee pain")
    body = ok(doc.start(appointment_id=appointment.id), 201)
    assert body["appointment_id"] == appointment.id
    assert body["patient"]["id"] == appointment.patient_id
    assert body["chief_complaint"] == "Knee pain"


def test_start_for_another_doctors_appointment(other_doc, booked):
    appointment = booked(0)
    error(other_doc.start(appointment_id=appointment.id), 403, "not_your_appointment")
    assert visits_in_db() == 0


def test_start_for_a_cancelled_appointment(doc, client, reception, booked):
    appointment = booked(0)
    desk = Api(client, reception)
    response = client.delete(f"/api/v1/appointments/{appointment.id}", headers=desk.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    error(doc.start(appointment_id=appointment.id), 409, "appointment_not_open")
    assert visits_in_db() == 0


def test_start_for_an_unknown_appointment(doc):
    body = error(doc.start(appointment_id=999_999), 422, "invalid_input")
    assert set(body["fields"]) == {"appointment_id"}


def test_start_for_a_patient(doc, doctor, patient):
    body = ok(doc.start(patient_id=patient.id), 201)
    assert body["patient"] == {"id": patient.id, "full_name": patient.full_name, "mrn": patient.mrn}
    assert body["doctor"]["id"] == doctor.id
    assert body["appointment_id"] is None
    assert body["chief_complaint"] is None


def test_start_for_an_unknown_patient(doc):
    """Like an unknown token or appointment in the body: a field error, not a 404."""
    body = error(doc.start(patient_id=999_999), 422, "invalid_input")
    assert set(body["fields"]) == {"patient_id"}


def test_start_with_a_patient_id_out_of_range_is_not_a_500(doc):
    error(doc.start(patient_id=2**63), 422)


@pytest.mark.parametrize(
    "keys", [(), ("token_number", "patient_id"), ("appointment_id", "patient_id")]
)
def test_start_needs_exactly_one_of_the_three(doc, called, keys):
    entry = called(0)
    values = {
        "token_number": entry.token_number,
        "appointment_id": entry.appointment_id,
        "patient_id": entry.patient_id,
    }
    error(doc.start(**{k: values[k] for k in keys}), 422, "invalid_input")
    error(doc.start(**values), 422, "invalid_input")
    assert visits_in_db() == 0


def test_start_refuses_unknown_keys(doc, patient):
    body = error(doc.start(patient_id=patient.id, doctor_id=1), 422, "invalid_input")
    assert "doctor_id" in body["fields"]


@pytest.mark.parametrize("role", [Role.ADMIN, Role.RECEPTION, Role.PHARMACIST])
def test_only_a_doctor_starts_a_visit(client, patient, role):
    other = Api(client, make_user(role))
    error(other.start(patient_id=patient.id), 403, "forbidden")
    assert visits_in_db() == 0


def test_signed_out_is_401(client, visit):
    assert client.post(URL, json={"patient_id": 1}).status_code == 401
    assert client.get(f"{URL}/{visit['id']}").status_code == 401
    assert client.patch(f"{URL}/{visit['id']}", json={}).status_code == 401


def test_a_second_visit_in_progress_is_a_conflict(doc, other_doc, patient, visit):
    for who in (doc, other_doc):
        body = error(who.start(patient_id=patient.id), 409, "visit_in_progress")
        assert body["details"] == {"visit_id": visit["id"]}
    assert visits_in_db() == 1


def test_after_completion_a_new_visit_may_start(doc, patient, visit):
    ok(doc.change(visit["id"], diagnosis="Cold"))
    ok(doc.complete(visit["id"]))
    second = ok(doc.start(patient_id=patient.id), 201)
    assert second["id"] != visit["id"]


# ---- vitals ---------------------------------------------------------------------------------


def test_vitals_in_fahrenheit_are_answered_in_celsius_with_bmi(doc, visit):
    body = ok(doc.change(visit["id"], vitals=ALL_VITALS))
    assert body["vitals"] == {
        "bp_systolic": 128,
        "bp_diastolic": 84,
        "temperature_c": "38.0",
        "pulse": 88,
        "spo2": 97,
        "weight_kg": "70.00",
        "height_cm": "175.0",
        "respiratory_rate": 18,
        "bmi": "22.9",
    }
    assert ok(doc.visit(visit["id"]))["vitals"] == body["vitals"]


def test_vitals_in_celsius(doc, visit):
    body = ok(doc.change(visit["id"], vitals={"temperature": "37.6", "temperature_unit": "C"}))
    assert body["vitals"]["temperature_c"] == "37.6"
    assert body["vitals"]["bmi"] is None


@pytest.mark.parametrize(
    ("vitals", "field"),
    [
        ({"spo2": 101}, "vitals.spo2"),
        ({"pulse": 5}, "vitals.pulse"),
        ({"temperature": 50, "temperature_unit": "C"}, "vitals.temperature"),
        ({"temperature": 130, "temperature_unit": "F"}, "vitals.temperature"),
        ({"weight_kg": 0}, "vitals.weight_kg"),
        ({"height_cm": 400}, "vitals.height_cm"),
        ({"bp_systolic": 20, "bp_diastolic": 10}, "vitals.bp_systolic"),
        ({"bp_systolic": 20, "bp_diastolic": 10}, "vitals.bp_diastolic"),
        ({"respiratory_rate": 0}, "vitals.respiratory_rate"),
        ({"pulse": 72.5}, "vitals.pulse"),
        ({"pulse": "quick"}, "vitals.pulse"),
        ({"bp_systolic": 120, "bp_diastolic": 120}, "vitals.bp_systolic"),
        ({"bp_systolic": 90, "bp_diastolic": 110}, "vitals.bp_systolic"),
        ({"glucose": 100}, "vitals.glucose"),
        ({"temperature": 37, "temperature_unit": "K"}, "vitals.temperature_unit"),
    ],
)
def test_impossible_vitals_are_field_errors_and_nothing_is_saved(doc, visit, vitals, field):
    body = error(
        doc.change(visit["id"], vitals={"spo2": 95, **vitals}, diagnosis="Flu"),
        422,
        "invalid_input",
    )
    assert field in body["fields"], body
    after = ok(doc.visit(visit["id"]))
    assert after["vitals"] == dict.fromkeys(VITAL_KEYS)
    assert after["diagnosis"] is None


def test_systolic_checked_against_the_stored_diastolic(doc, visit):
    ok(doc.change(visit["id"], vitals={"bp_systolic": 120}))
    body = error(doc.change(visit["id"], vitals={"bp_diastolic": 125}), 422)
    assert set(body["fields"]) == {"vitals.bp_systolic"}
    ok(doc.change(visit["id"], vitals={"bp_diastolic": 80}))
    body = error(doc.change(visit["id"], vitals={"bp_systolic": 80}), 422)
    assert set(body["fields"]) == {"vitals.bp_systolic"}
    vitals = ok(doc.visit(visit["id"]))["vitals"]
    assert (vitals["bp_systolic"], vitals["bp_diastolic"]) == (120, 80)


@pytest.mark.parametrize("vitals", ["120/80", [120, 80], 37])
def test_vitals_must_be_an_object(doc, visit, vitals):
    body = error(doc.change(visit["id"], vitals=vitals), 422)
    assert "vitals" in body["fields"]


# ---- findings --------------------------------------------------------------------------------


def test_findings(doc, visit):
    body = ok(
        doc.change(
            visit["id"],
            chief_complaint="Cough",
            symptom_duration="5 days",
            diagnosis="Acute bronchitis",
            icd10_code="j20.9",
            treatment_plan="Steam inhalation",
            follow_up_date="2030-01-14",
        )
    )
    assert body["chief_complaint"] == "Cough"
    assert body["symptom_duration"] == "5 days"
    assert body["diagnosis"] == "Acute bronchitis"
    assert body["icd10_code"] == "J20.9"
    assert body["treatment_plan"] == "Steam inhalation"
    assert body["follow_up_date"] == "2030-01-14"
    assert "VISIT_UPDATED" in actions()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"icd10_code": "XYZ"}, "icd10_code"),
        ({"follow_up_date": "2030-01-06"}, "follow_up_date"),
        ({"follow_up_date": TODAY.isoformat()}, "follow_up_date"),
        ({"follow_up_date": "2030-13-01"}, "follow_up_date"),
        ({"follow_up_date": (TODAY + timedelta(days=731)).isoformat()}, "follow_up_date"),
        ({"chief_complaint": "x" * 501}, "chief_complaint"),
        ({"status": "COMPLETED"}, "status"),
        ({"temperature": 37}, "temperature"),
        ({"diagnosis": 42}, "diagnosis"),
    ],
)
def test_bad_findings_are_field_errors(doc, visit, data, field):
    body = error(doc.change(visit["id"], treatment_plan="Rest", **data), 422, "invalid_input")
    assert field in body["fields"], body
    assert ok(doc.visit(visit["id"]))["treatment_plan"] is None


def test_icd10_codes_are_normalised_and_checked_against_the_who_table(doc, visit):
    assert ok(doc.change(visit["id"], icd10_code="j029"))["icd10_code"] == "J02.9"
    assert ok(doc.change(visit["id"], icd10_code="U07.1 "))["icd10_code"] == "U07.1"

    body = error(doc.change(visit["id"], icd10_code="J02.7"), 422, "invalid_input")
    assert set(body["fields"]) == {"icd10_code"}
    assert body["fields"]["icd10_code"].startswith("Not a code in the WHO ICD-10 list")
    body = error(doc.change(visit["id"], icd10_code="Acute pharyngitis"), 422, "invalid_input")
    assert "Did you mean: J02.9 Acute pharyngitis, unspecified;" in body["fields"]["icd10_code"]
    assert ok(doc.visit(visit["id"]))["icd10_code"] == "U07.1"


@pytest.mark.parametrize(
    "when", [20300114, True, ["2030-01-14"], {"date": "2030-01-14"}, "next week", "2030-13-01"]
)
def test_a_follow_up_that_is_not_a_date_is_a_422_never_a_500(doc, visit, when):
    body = error(doc.change(visit["id"], follow_up_date=when), 422, "invalid_input")
    assert body["fields"] == {"follow_up_date": "Use a date such as 02 Dec 2026 (or 2026-12-02)."}


def test_a_follow_up_is_read_the_clinics_way(doc, visit):
    assert ok(doc.change(visit["id"], follow_up_date="14 Jan 2030"))["follow_up_date"] == (
        "2030-01-14"
    )
    assert ok(doc.change(visit["id"], follow_up_date=""))["follow_up_date"] is None


def test_a_follow_up_can_be_cleared(doc, visit):
    ok(doc.change(visit["id"], follow_up_date="2030-02-01"))
    assert ok(doc.change(visit["id"], follow_up_date=None))["follow_up_date"] is None


# ---- who reads, who changes -------------------------------------------------------------------


def test_only_the_visits_doctor_changes_it(client, doc, other_doc, boss, visit, reception):
    error(other_doc.change(visit["id"], diagnosis="Flu"), 403, "not_your_visit")
    error(other_doc.note(visit["id"]), 403, "not_your_visit")
    error(other_doc.complete(visit["id"]), 403, "not_your_visit")
    for who in (boss, Api(client, reception), Api(client, make_user(Role.PHARMACIST))):
        error(who.change(visit["id"], diagnosis="Flu"), 403, "forbidden")
        error(who.note(visit["id"]), 403, "forbidden")
        error(who.complete(visit["id"]), 403, "forbidden")
    body = ok(doc.visit(visit["id"]))
    assert (body["diagnosis"], body["notes"], body["status"]) == (None, [], "IN_PROGRESS")


def test_any_doctor_and_an_admin_read_a_visit(client, doc, other_doc, boss, visit, reception):
    ok(doc.note(visit["id"]), 201)
    for who in (doc, other_doc, boss):
        assert ok(who.visit(visit["id"]))["id"] == visit["id"]
        assert len(ok(who.notes(visit["id"]))) == 1
    for who in (Api(client, reception), Api(client, make_user(Role.PHARMACIST))):
        error(who.visit(visit["id"]), 403, "forbidden")
        error(who.notes(visit["id"]), 403, "forbidden")


def test_unknown_visits_are_404(doc):
    error(doc.visit(999_999), 404, "visit_not_found")
    error(doc.notes(999_999), 404, "visit_not_found")
    error(doc.change(999_999, diagnosis="Flu"), 404, "visit_not_found")
    error(doc.note(999_999), 404, "visit_not_found")
    error(doc.complete(999_999), 404, "visit_not_found")
    error(doc.visit(10**20), 404)


# ---- notes -----------------------------------------------------------------------------------


def test_notes_answer_their_author_and_time_oldest_first(doc, doctor, visit):
    with clock.fixed(later(3)):
        first = ok(doc.note(visit["id"], "SYMPTOM", "Cough at night"), 201)
    with clock.fixed(later(5)):
        ok(doc.note(visit["id"], "OBSERVATION", "Wheeze, left base"), 201)
    with clock.fixed(later(8)):
        ok(doc.note(visit["id"], "diagnosis", "Asthma"), 201)
    with clock.fixed(later(9)):
        ok(doc.note(visit["id"], "TREATMENT", "Inhaler"), 201)

    assert set(first) == NOTE_KEYS
    assert first["category"] == "SYMPTOM"
    assert first["text"] == "Cough at night"
    assert first["author"] == {"id": doctor.id, "full_name": doctor.full_name}
    assert datetime.fromisoformat(first["created_at"]) == later(3)
    assert first["is_addendum"] is False

    notes = ok(doc.notes(visit["id"]))
    assert [n["category"] for n in notes] == ["SYMPTOM", "OBSERVATION", "DIAGNOSIS", "TREATMENT"]
    assert [datetime.fromisoformat(n["created_at"]) for n in notes] == [
        later(3),
        later(5),
        later(8),
        later(9),
    ]
    assert [n["id"] for n in ok(doc.visit(visit["id"]))["notes"]] == [n["id"] for n in notes]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"category": "PLAN", "text": "Rest"}, "category"),
        ({"category": "HISTORY", "text": "Rest"}, "category"),
        ({"text": "Rest"}, "category"),
        ({"category": "SYMPTOM", "text": ""}, "text"),
        ({"category": "SYMPTOM", "text": "   "}, "text"),
        ({"category": "SYMPTOM"}, "text"),
        ({"category": "SYMPTOM", "text": 5}, "text"),
    ],
)
def test_bad_notes_are_field_errors(doc, visit, body, field):
    answer = error(doc.post(f"{URL}/{visit['id']}/notes", body), 422, "invalid_input")
    assert field in answer["fields"], answer
    assert ok(doc.notes(visit["id"])) == []


def test_after_completion_notes_are_addenda_and_the_visit_is_read_only(doc, visit):
    ok(doc.note(visit["id"], "SYMPTOM", "Cough"), 201)
    ok(doc.change(visit["id"], diagnosis="Bronchitis"))
    ok(doc.complete(visit["id"]))

    addendum = ok(doc.note(visit["id"], "TREATMENT", "X-ray clear"), 201)
    assert addendum["is_addendum"] is True
    assert [n["is_addendum"] for n in ok(doc.notes(visit["id"]))] == [False, True]

    error(doc.change(visit["id"], diagnosis="Asthma"), 409, "visit_completed")
    error(doc.change(visit["id"], vitals={"pulse": 80}), 409, "visit_completed")
    body = ok(doc.visit(visit["id"]))
    assert (body["diagnosis"], body["vitals"]["pulse"]) == ("Bronchitis", None)
    assert "VISIT_ADDENDUM_ADDED" in actions()


# ---- completing ----------------------------------------------------------------------------------


def test_complete_needs_a_diagnosis(doc, visit):
    ok(doc.change(visit["id"], treatment_plan="Rest"))
    body = error(doc.complete(visit["id"]), 422, "diagnosis_required")
    assert set(body["fields"]) == {"diagnosis"}
    assert ok(doc.visit(visit["id"]))["status"] == "IN_PROGRESS"
    assert history_rows() == []


def test_complete_the_visit_the_appointment_and_the_token(
    doc, doctor, reception, client, called, booked
):
    entry = called(0, reason="Fever")
    started = ok(doc.start(token_number=entry.token_number), 201)
    ok(doc.change(started["id"], diagnosis="Viral fever"))
    queue.check_in(reception, booked(1).id)
    commit()

    with clock.fixed(later(15)):
        body = ok(doc.complete(started["id"]))

    assert body["status"] == "COMPLETED"
    assert datetime.fromisoformat(body["completed_at"]) == later(15)
    appointment = ok(doc.get(f"/api/v1/appointments/{entry.appointment_id}"))
    assert appointment["status"] == "COMPLETED"
    token = ok(doc.get(f"/api/v1/queue/{entry.token_number}"))
    assert token["status"] == "COMPLETED"
    assert datetime.fromisoformat(token["completed_at"]) == later(15)
    assert redis_current(doctor.id) is None
    raw = redis_store.client.hget(f"q:{TODAY}:tok:{entry.token_number:06d}", "status")
    assert raw == b"COMPLETED"

    # Call next works again.
    nxt = ok(doc.post("/api/v1/queue/next"))
    assert nxt["token_number"] == entry.token_number + 1
    assert redis_current(doctor.id) == nxt["token_number"]

    error(doc.complete(started["id"]), 409, "visit_completed")
    assert actions().count("VISIT_COMPLETED") == 1
    assert len(history_rows()) == 1


def test_complete_records_the_history_snapshot(client, reception):
    doctor = make_user(Role.DOCTOR, full_name="Anil Rao", registration_number="MMC-2030-77")
    doc = Api(client, doctor)
    patient = make_patient(reception, full_name="Sunita Pillai")
    visit = ok(doc.start(patient_id=patient.id), 201)
    ok(
        doc.change(
            visit["id"],
            vitals=ALL_VITALS,
            diagnosis="Acute gastroenteritis",
            icd10_code="a09",
            treatment_plan="ORS",
        )
    )
    with clock.fixed(later(4)):
        ok(doc.note(visit["id"], "OBSERVATION", "Mild dehydration"), 201)
    with clock.fixed(later(10)):
        ok(doc.complete(visit["id"]))

    assert "VISIT_COMPLETED" in actions()
    (payload,) = history_rows()
    assert payload["visit_id"] == visit["id"]
    assert payload["patient"]["id"] == patient.id
    assert payload["patient"]["full_name"] == "Sunita Pillai"
    assert payload["doctor"] == {
        "id": doctor.id,
        "full_name": "Anil Rao",
        "registration_number": "MMC-2030-77",
    }
    assert payload["vitals"]["temperature_c"] == "38.0"
    assert payload["vitals"]["bmi"] == "22.9"
    assert payload["vitals"]["pulse"] == 88
    assert payload["diagnosis"] == "Acute gastroenteritis"
    assert payload["icd10_code"] == "A09"
    assert payload["treatment_plan"] == "ORS"
    assert [(n["category"], n["text"], n["author"]) for n in payload["notes"]] == [
        ("OBSERVATION", "Mild dehydration", "Anil Rao")
    ]
    assert payload["prescription"] is None

    outbox.relay()
    document = mongo.db["visit_history"].find_one()
    assert document["visit_id"] == visit["id"]
    assert document["patient"]["id"] == patient.id
    assert document["doctor"]["registration_number"] == "MMC-2030-77"
    assert document["vitals"]["bmi"] == "22.9"
    assert document["diagnosis"] == "Acute gastroenteritis"
    assert document["notes"][0]["text"] == "Mild dehydration"
    assert document["prescription"] is None
    assert document["timestamp"] == later(10)


# ---- a patient's visit history ------------------------------------------------------------------


def test_a_patients_visits_newest_first(doc, other_doc, boss, client, reception, patient):
    ids = []
    for days_ago, who in ((60, other_doc), (14, doc), (0, doc)):
        with clock.fixed(NOW - timedelta(days=days_ago)):
            started = ok(who.start(patient_id=patient.id), 201)
            if days_ago:
                ok(who.change(started["id"], diagnosis=f"Seen {days_ago} days ago"))
                ok(who.complete(started["id"]))
        ids.append(started["id"])
    ok(doc.start(patient_id=make_patient(reception).id), 201)  # someone else's visit

    for who in (doc, other_doc, boss):
        visits = listed(ok(who.history(patient.id)))
        assert [v["id"] for v in visits] == ids[::-1]
        assert [v["status"] for v in visits] == ["IN_PROGRESS", "COMPLETED", "COMPLETED"]
        assert {v["patient"]["id"] for v in visits} == {patient.id}
    assert listed(ok(doc.history(make_patient(reception).id))) == []


def test_a_patients_visits_come_in_pages(doc, patient):
    """SPEC 12: lists answer {items, page, per_page, total} and take ?page=&per_page=."""
    ids = []
    for days_ago in (3, 2, 1):
        with clock.fixed(NOW - timedelta(days=days_ago)):
            started = ok(doc.start(patient_id=patient.id), 201)
            ok(doc.change(started["id"], diagnosis="Check-up"))
            ok(doc.complete(started["id"]))
        ids.append(started["id"])

    body = ok(doc.history(patient.id, page=2, per_page=2))
    assert isinstance(body, dict), body
    assert (body["page"], body["per_page"], body["total"]) == (2, 2, 3)
    assert [v["id"] for v in body["items"]] == [ids[0]]


def test_visit_history_of_an_unknown_patient_is_404(doc):
    error(doc.history(999_999), 404, "patient_not_found")


def test_visit_history_is_not_for_the_front_desk(client, reception, patient):
    for role_user in (reception, make_user(Role.PHARMACIST)):
        error(Api(client, role_user).history(patient.id), 403, "forbidden")


# ---- the whole consultation ---------------------------------------------------------------------


def test_a_whole_consultation(doc, doctor, reception, client, booked):
    desk = Api(client, reception)
    appointment = booked(0, reason="Cough")
    token = ok(desk.post("/api/v1/queue/checkin", {"appointment_id": appointment.id}), 201)
    called_token = ok(doc.post("/api/v1/queue/next"))
    assert called_token["token_number"] == token["token_number"]

    # The call opened the patient's visit in the same transaction.
    visit = ok(doc.get(f"/api/v1/visits/{called_token['visit_id']}"))
    assert visit["chief_complaint"] == "Cough"
    assert visit["status"] == "IN_PROGRESS"
    ok(doc.change(visit["id"], vitals={"temperature": 99.5, "temperature_unit": "F"}))
    ok(doc.note(visit["id"], "SYMPTOM", "Productive cough"), 201)
    ok(doc.change(visit["id"], diagnosis="Bronchitis", follow_up_date="2030-01-21"))
    done = ok(doc.complete(visit["id"]))

    assert done["status"] == "COMPLETED"
    assert done["vitals"]["temperature_c"] == "37.5"
    assert done["follow_up_date"] == "2030-01-21"
    assert ok(desk.get(f"/api/v1/appointments/{appointment.id}"))["status"] == "COMPLETED"
    assert ok(doc.get(f"/api/v1/queue/{token['token_number']}"))["status"] == "COMPLETED"
    error(doc.post("/api/v1/queue/next"), 404, "queue_empty")
    actions_seen = actions()
    assert actions_seen.index("VISIT_STARTED") < actions_seen.index("VISIT_COMPLETED")
    assert scheduling.get_appointment(appointment.id).status == "COMPLETED"


@pytest.mark.parametrize("value", ["1e999999999", "-1E+999999999", "1234567890"])
def test_a_temperature_with_absurd_digits_is_a_field_error(client, doctor, value):
    visit = visits_service.start(doctor, {"patient_id": make_patient().id})
    commit()
    response = client.patch(
        f"/api/v1/visits/{visit.id}",
        json={"vitals": {"temperature": value, "temperature_unit": "F"}},
        headers=bearer(client, doctor),
    )
    assert response.status_code == 422
    assert "vitals.temperature" in response.json["error"]["fields"]
