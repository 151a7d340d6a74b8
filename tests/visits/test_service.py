"""Visit rules (SPEC sections 0, 4 and 5) through the service functions, against real
PostgreSQL and Redis. Every helper commits the way a view does, so the queue's Redis side
follows."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from qure.core import clock, outbox
from qure.core.db import commit
from qure.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db, mongo, redis_store
from qure.patients import service as patients
from qure.patients.models import Patient
from qure.queue import service as queue
from qure.queue.models import QueueEntry
from qure.scheduling import service as scheduling
from qure.scheduling.models import Appointment
from qure.visits import service, vitals
from qure.visits.models import Visit
from tests.helpers import NOW, TODAY, later, make_appointment, make_patient, make_slots, make_user

# ---- acting as the views do --------------------------------------------------------------


def start(actor, **data) -> Visit:
    visit = service.start(actor, data)
    commit()
    return visit


def update(actor, visit, **data) -> Visit:
    changed = service.update(actor, visit.id, data)
    commit()
    return changed


def note(actor, visit, category="SYMPTOM", text="Dry cough at night"):
    written = service.add_note(actor, visit.id, {"category": category, "text": text})
    commit()
    return written


def complete(actor, visit) -> Visit:
    done = service.complete(actor, visit.id)
    commit()
    return done


def refused(error_type, call, *args, **kwargs):
    """The error `call` raises; the transaction is rolled back, as a view's would be."""
    with pytest.raises(error_type) as caught:
        call(*args, **kwargs)
    db.session.rollback()
    return caught.value


# ---- reading afresh -----------------------------------------------------------------------


def stored(visit_id: int) -> Visit:
    db.session.expire_all()
    return db.session.get(Visit, visit_id, options=service.SHOWN, populate_existing=True)


def token_row(token_number: int) -> QueueEntry:
    db.session.expire_all()
    query = select(QueueEntry).where(
        QueueEntry.day == TODAY, QueueEntry.token_number == token_number
    )
    return db.session.scalars(query).one()


def appointment_status(appointment_id: int) -> str:
    db.session.expire_all()
    return db.session.get(Appointment, appointment_id).status


def events(topic: str = "audit_logs") -> list[dict]:
    db.session.expire_all()
    rows = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(OutboxEvent.id)
    )
    return [r.payload for r in rows]


def audited(action: str) -> list[dict]:
    return [e for e in events() if e["action"] == action]


def redis_current(doctor_id: int) -> int | None:
    value = redis_store.client.get(f"q:{TODAY}:cur:{doctor_id}")
    return int(value) if value is not None else None


def redis_status(token_number: int) -> str | None:
    value = redis_store.client.hget(f"q:{TODAY}:tok:{token_number:06d}", "status")
    return value.decode() if value is not None else None


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    """Every test starts at NOW (Monday 2030-01-07 10:00 clinic time)."""
    return clinic_now


@pytest.fixture
def slots(doctor):
    """The doctor's slots today, 10:15 to 12:45 (10:00 has started at NOW)."""
    return make_slots(doctor)


@pytest.fixture
def patient(reception):
    return make_patient(reception)


@pytest.fixture
def booked(reception, slots):
    """booked(index, reason=None, patient=None): an appointment in one of the slots."""

    def _booked(index: int, reason: str | None = None, patient=None) -> Appointment:
        return make_appointment(patient or make_patient(reception), slots[index], reception, reason)

    return _booked


@pytest.fixture
def called(doctor, reception, booked):
    """called(index=0, reason=None): a patient booked, checked in and called by the doctor:
    the token, WITH_DOCTOR."""

    def _called(index: int = 0, reason: str | None = None) -> QueueEntry:
        appointment = booked(index, reason)
        queue.check_in(reception, appointment.id)
        commit()
        entry = queue.call_next(doctor)
        commit()
        assert entry.status == "WITH_DOCTOR"
        return entry

    return _called


@pytest.fixture
def visit(doctor, patient) -> Visit:
    """A visit the doctor started directly for a patient."""
    return start(doctor, patient_id=patient.id)


# ---- starting: from the called token -------------------------------------------------------


def test_start_from_the_called_token(doctor, called):
    entry = called(0, reason="Fever for three days")

    visit = start(doctor, token_number=entry.token_number)

    row = stored(visit.id)
    assert row.status == "IN_PROGRESS"
    assert (row.patient_id, row.doctor_id) == (entry.patient_id, doctor.id)
    assert row.appointment_id == entry.appointment_id
    assert row.queue_entry_id == entry.id
    assert row.started_at == NOW
    assert row.completed_at is None
    assert row.chief_complaint == "Fever for three days"
    assert service.in_progress_for(entry.patient_id).id == visit.id


def test_start_copies_the_walk_in_complaint(doctor, reception, patient):
    queue.walk_in(
        reception,
        {"patient_id": patient.id, "doctor_id": doctor.id, "complaint": "Headache since Friday"},
    )
    commit()
    entry = queue.call_next(doctor)
    commit()

    visit = start(doctor, token_number=entry.token_number)

    row = stored(visit.id)
    assert row.chief_complaint == "Headache since Friday"
    assert row.appointment_id is None
    assert row.queue_entry_id == entry.id


@pytest.mark.parametrize("token_number", [99, 0, -1, 100_000, 2**40])
def test_start_from_an_unknown_token_is_a_field_error(doctor, called, token_number):
    called(0)  # token 1 exists and is with the doctor
    error = refused(InvalidInput, service.start, doctor, {"token_number": token_number})
    assert set(error.fields) == {"token_number"}
    assert db.session.scalars(select(Visit)).all() == []


def test_start_from_a_token_that_is_not_with_the_doctor(doctor, reception, booked):
    waiting = booked(0)
    entry = queue.check_in(reception, waiting.id)
    commit()

    error = refused(Conflict, service.start, doctor, {"token_number": entry.token_number})
    assert error.code == "token_not_with_you"
    assert error.details == {"token_number": entry.token_number, "status": "WAITING"}
    assert db.session.scalars(select(Visit)).all() == []


def test_start_from_another_doctors_called_token(doctor, called):
    entry = called(0)
    other = make_user(Role.DOCTOR)

    error = refused(Conflict, service.start, other, {"token_number": entry.token_number})
    assert error.code == "token_not_with_you"
    assert error.details["status"] == "WITH_DOCTOR"
    assert db.session.scalars(select(Visit)).all() == []


def test_start_from_a_completed_token(doctor, called):
    entry = called(0)
    queue.set_status(doctor, entry.token_number, "COMPLETED")
    commit()

    error = refused(Conflict, service.start, doctor, {"token_number": entry.token_number})
    assert error.code == "token_not_with_you"
    assert error.details["status"] == "COMPLETED"


# ---- starting: for an appointment ------------------------------------------------------------


def test_start_for_an_appointment(doctor, booked):
    appointment = booked(2, reason="Follow-up of asthma")

    visit = start(doctor, appointment_id=appointment.id)

    row = stored(visit.id)
    assert (row.patient_id, row.doctor_id) == (appointment.patient_id, doctor.id)
    assert row.appointment_id == appointment.id
    assert row.queue_entry_id is None  # not checked in: no token
    assert row.chief_complaint == "Follow-up of asthma"


def test_start_for_a_checked_in_appointment_links_its_token(doctor, reception, booked):
    appointment = booked(0, reason="Back pain")
    entry = queue.check_in(reception, appointment.id)
    commit()
    queue.call_next(doctor)
    commit()

    visit = start(doctor, appointment_id=appointment.id)

    row = stored(visit.id)
    assert row.queue_entry_id == entry.id
    assert row.chief_complaint == "Back pain"


def test_a_patient_still_waiting_is_called_before_the_visit_starts(doctor, reception, booked):
    """The queue knows who is with whom: a checked-in patient is seen once called."""
    appointment = booked(0)
    entry = queue.check_in(reception, appointment.id)
    commit()

    for how in ({"appointment_id": appointment.id}, {"patient_id": appointment.patient_id}):
        error = refused(Conflict, service.start, doctor, how)
        assert error.code == "token_not_with_you"
        assert error.details == {"token_number": entry.token_number, "status": "WAITING"}
    assert db.session.scalars(select(Visit)).all() == []


def test_start_for_another_doctors_appointment(doctor, booked):
    appointment = booked(0)
    other = make_user(Role.DOCTOR)

    error = refused(Forbidden, service.start, other, {"appointment_id": appointment.id})
    assert error.code == "not_your_appointment"
    assert db.session.scalars(select(Visit)).all() == []


def test_start_for_a_cancelled_appointment(doctor, reception, booked):
    appointment = booked(0)
    scheduling.cancel(reception, appointment.id)
    commit()

    error = refused(Conflict, service.start, doctor, {"appointment_id": appointment.id})
    assert error.code == "appointment_not_open"
    assert db.session.scalars(select(Visit)).all() == []


def test_start_for_a_completed_appointment(doctor, called):
    entry = called(0)
    first = start(doctor, token_number=entry.token_number)
    update(doctor, first, diagnosis="Viral fever")
    complete(doctor, first)

    error = refused(Conflict, service.start, doctor, {"appointment_id": entry.appointment_id})
    assert error.code == "appointment_not_open"


@pytest.mark.parametrize("appointment_id", [999_999, 0, -5, 2**40])
def test_start_for_an_unknown_appointment_is_a_field_error(doctor, booked, appointment_id):
    booked(0)
    error = refused(InvalidInput, service.start, doctor, {"appointment_id": appointment_id})
    assert set(error.fields) == {"appointment_id"}


# ---- starting: for a patient ---------------------------------------------------------------


def test_start_for_a_patient(doctor, patient):
    visit = start(doctor, patient_id=patient.id)

    row = stored(visit.id)
    assert (row.patient_id, row.doctor_id, row.status) == (patient.id, doctor.id, "IN_PROGRESS")
    assert row.appointment_id is None
    assert row.queue_entry_id is None
    assert row.chief_complaint is None


def test_start_for_an_archived_patient_is_a_field_error(doctor, admin, patient):
    patients.archive(admin, patient.id)
    commit()
    error = refused(InvalidInput, service.start, doctor, {"patient_id": patient.id})
    assert set(error.fields) == {"patient_id"}


def test_start_for_an_unknown_patient_is_a_field_error(doctor):
    """Like an unknown token or appointment: the body names nothing, a 422 on the field."""
    error = refused(InvalidInput, service.start, doctor, {"patient_id": 999_999})
    assert set(error.fields) == {"patient_id"}


@pytest.mark.parametrize(
    "keys",
    [
        (),
        ("token_number", "patient_id"),
        ("appointment_id", "patient_id"),
        ("token_number", "appointment_id"),
    ],
)
def test_start_needs_exactly_one_of_the_three(doctor, called, keys):
    entry = called(0)
    values = {
        "token_number": entry.token_number,
        "appointment_id": entry.appointment_id,
        "patient_id": entry.patient_id,
    }
    data = {k: values[k] for k in keys}
    refused(InvalidInput, service.start, doctor, data)
    assert db.session.scalars(select(Visit)).all() == []


def test_start_with_all_three_is_refused(doctor, called):
    entry = called(0)
    data = {
        "token_number": entry.token_number,
        "appointment_id": entry.appointment_id,
        "patient_id": entry.patient_id,
    }
    refused(InvalidInput, service.start, doctor, data)
    # None counts as not given.
    visit = start(doctor, token_number=entry.token_number, appointment_id=None, patient_id=None)
    assert stored(visit.id).queue_entry_id == entry.id


@pytest.mark.parametrize("role", [Role.ADMIN, Role.RECEPTION, Role.PHARMACIST])
def test_only_a_doctor_starts_a_visit(patient, role):
    error = refused(Forbidden, service.start, make_user(role), {"patient_id": patient.id})
    assert error.code == "forbidden"
    assert db.session.scalars(select(Visit)).all() == []


# ---- one visit in progress per patient -----------------------------------------------------


def test_a_second_visit_while_one_is_in_progress(doctor, patient, visit):
    for who in (doctor, make_user(Role.DOCTOR)):
        error = refused(Conflict, service.start, who, {"patient_id": patient.id})
        assert error.code == "visit_in_progress"
        assert error.details == {"visit_id": visit.id}
    assert [v.id for v in db.session.scalars(select(Visit))] == [visit.id]


def test_a_second_visit_through_the_token_while_one_is_in_progress(doctor, called):
    entry = called(0)
    first = start(doctor, patient_id=entry.patient_id)

    for data in ({"token_number": entry.token_number}, {"appointment_id": entry.appointment_id}):
        error = refused(Conflict, service.start, doctor, data)
        assert error.code == "visit_in_progress"
        assert error.details == {"visit_id": first.id}


def test_after_completion_the_patient_may_have_a_new_visit(doctor, patient, visit):
    update(doctor, visit, diagnosis="Common cold")
    complete(doctor, visit)
    second = start(doctor, patient_id=patient.id)
    assert second.id != visit.id
    assert service.in_progress_for(patient.id).id == second.id


def test_the_database_holds_one_in_progress_visit_per_patient(doctor, patient, visit):
    other = make_user(Role.DOCTOR)
    with pytest.raises(IntegrityError) as caught, db.session.begin_nested():
        db.session.add(
            Visit(
                patient_id=patient.id,
                doctor_id=other.id,
                status="IN_PROGRESS",
                started_at=later(5),
            )
        )
    assert "uq_visits_patient_in_progress" in str(caught.value)
    # A completed one is allowed next to it.
    with db.session.begin_nested():
        db.session.add(
            Visit(
                patient_id=patient.id,
                doctor_id=other.id,
                status="COMPLETED",
                started_at=later(-60),
                completed_at=later(-30),
            )
        )
    assert len(db.session.scalars(select(Visit).where(Visit.patient_id == patient.id)).all()) == 2


def test_start_is_audited(doctor, called):
    entry = called(0, reason="Sore throat")
    visit = start(doctor, token_number=entry.token_number)

    (record,) = audited("VISIT_STARTED")
    assert record["resource"] == {"type": "visit", "id": visit.id}
    assert record["user"] == {"id": doctor.id, "name": doctor.full_name, "role": "DOCTOR"}
    assert record["changes"]["old"] is None
    new = record["changes"]["new"]
    assert new["patient_id"] == entry.patient_id
    assert new["doctor_id"] == doctor.id
    assert new["appointment_id"] == entry.appointment_id
    assert new["status"] == "IN_PROGRESS"
    assert new["chief_complaint"] == "Sore throat"


def test_a_refused_start_records_nothing(doctor, admin, patient, visit):
    before = len(events())
    refused(Conflict, service.start, doctor, {"patient_id": patient.id})
    refused(Forbidden, service.start, admin, {"patient_id": patient.id})
    assert len(events()) == before


# ---- vitals ---------------------------------------------------------------------------------


def test_vitals_are_stored_in_their_units(doctor, visit):
    update(
        doctor,
        visit,
        vitals={
            "bp_systolic": 128,
            "bp_diastolic": 84,
            "temperature": 37.2,
            "temperature_unit": "C",
            "pulse": 76,
            "spo2": 98,
            "weight_kg": 70,
            "height_cm": 175,
            "respiratory_rate": 16,
        },
    )
    row = stored(visit.id)
    assert (row.bp_systolic, row.bp_diastolic, row.pulse, row.spo2) == (128, 84, 76, 98)
    assert row.respiratory_rate == 16
    assert row.temperature_c == Decimal("37.2")
    assert row.weight_kg == Decimal("70.00")
    assert row.height_cm == Decimal("175.0")
    assert vitals.bmi(row) == Decimal("22.9")


def test_fahrenheit_is_converted_to_celsius(doctor, visit):
    update(doctor, visit, vitals={"temperature": 100.4, "temperature_unit": "F"})
    assert stored(visit.id).temperature_c == Decimal("38.0")
    update(doctor, visit, vitals={"temperature": "98.6", "temperature_unit": "f"})
    assert stored(visit.id).temperature_c == Decimal("37.0")


def test_temperature_without_a_unit_is_celsius(doctor, visit):
    update(doctor, visit, vitals={"temperature": "38.45"})
    assert stored(visit.id).temperature_c == Decimal("38.5")


def test_bmi_needs_weight_and_height(doctor, visit):
    assert vitals.bmi(stored(visit.id)) is None
    update(doctor, visit, vitals={"weight_kg": 70})
    assert vitals.bmi(stored(visit.id)) is None
    update(doctor, visit, vitals={"height_cm": 175})
    assert vitals.bmi(stored(visit.id)) == Decimal("22.9")
    update(doctor, visit, vitals={"weight_kg": "61.5", "height_cm": "162.5"})
    assert vitals.bmi(stored(visit.id)) == Decimal("23.3")


@pytest.mark.parametrize(
    ("vitals", "field"),
    [
        ({"spo2": 101}, "vitals.spo2"),
        ({"spo2": 40}, "vitals.spo2"),
        ({"pulse": 5}, "vitals.pulse"),
        ({"pulse": 300}, "vitals.pulse"),
        ({"temperature": 50, "temperature_unit": "C"}, "vitals.temperature"),
        ({"temperature": 20}, "vitals.temperature"),
        ({"temperature": 130, "temperature_unit": "F"}, "vitals.temperature"),
        ({"temperature": 70, "temperature_unit": "F"}, "vitals.temperature"),
        ({"weight_kg": 0}, "vitals.weight_kg"),
        ({"weight_kg": -3}, "vitals.weight_kg"),
        ({"weight_kg": 900}, "vitals.weight_kg"),
        ({"height_cm": 400}, "vitals.height_cm"),
        ({"height_cm": 5}, "vitals.height_cm"),
        ({"bp_systolic": 20, "bp_diastolic": 10}, "vitals.bp_systolic"),
        ({"bp_systolic": 20, "bp_diastolic": 10}, "vitals.bp_diastolic"),
        ({"bp_systolic": 400, "bp_diastolic": 80}, "vitals.bp_systolic"),
        ({"respiratory_rate": 2}, "vitals.respiratory_rate"),
        ({"respiratory_rate": 120}, "vitals.respiratory_rate"),
        ({"pulse": 72.5}, "vitals.pulse"),
        ({"spo2": "97.5"}, "vitals.spo2"),
        ({"bp_systolic": 120.4, "bp_diastolic": 80}, "vitals.bp_systolic"),
        ({"pulse": "fast"}, "vitals.pulse"),
        ({"pulse": True}, "vitals.pulse"),
        ({"pulse": "NaN"}, "vitals.pulse"),
        ({"temperature": "Infinity"}, "vitals.temperature"),
        ({"temperature": 37, "temperature_unit": "K"}, "vitals.temperature_unit"),
        ({"glucose": 110}, "vitals.glucose"),
        ({"temperature_c": 37}, "vitals.temperature_c"),
    ],
)
def test_vitals_a_living_person_cannot_have_are_field_errors(doctor, visit, vitals, field):
    error = refused(
        InvalidInput, service.update, doctor, visit.id, {"vitals": vitals, "diagnosis": "Flu"}
    )
    assert field in error.fields, error.fields
    assert all(k.startswith("vitals.") for k in error.fields)
    row = stored(visit.id)
    assert row.diagnosis is None  # nothing saved
    assert (row.pulse, row.spo2, row.temperature_c, row.weight_kg) == (None, None, None, None)


def test_vitals_at_the_edges_of_life_are_accepted(doctor, visit):
    update(
        doctor,
        visit,
        vitals={
            "spo2": 100,
            "pulse": 250,
            "temperature": 45,
            "weight_kg": "0.3",
            "height_cm": 20,
            "respiratory_rate": 4,
        },
    )
    row = stored(visit.id)
    assert (row.spo2, row.pulse, row.respiratory_rate) == (100, 250, 4)
    assert row.temperature_c == Decimal("45.0")
    update(doctor, visit, vitals={"pulse": "72.0", "bp_systolic": 300, "bp_diastolic": 200})
    row = stored(visit.id)
    assert (row.pulse, row.bp_systolic, row.bp_diastolic) == (72, 300, 200)


def test_every_bad_vital_is_named(doctor, visit):
    error = refused(
        InvalidInput,
        service.update,
        doctor,
        visit.id,
        {"vitals": {"spo2": 101, "pulse": 5, "weight_kg": 0, "height_cm": 400}},
    )
    assert set(error.fields) == {
        "vitals.spo2",
        "vitals.pulse",
        "vitals.weight_kg",
        "vitals.height_cm",
    }


def test_fahrenheit_range_error_speaks_fahrenheit(doctor, visit):
    error = refused(
        InvalidInput,
        service.update,
        doctor,
        visit.id,
        {"vitals": {"temperature": 130, "temperature_unit": "F"}},
    )
    assert "°F" in error.fields["vitals.temperature"]


@pytest.mark.parametrize(("systolic", "diastolic"), [(120, 120), (80, 120)])
def test_systolic_must_be_above_diastolic(doctor, visit, systolic, diastolic):
    error = refused(
        InvalidInput,
        service.update,
        doctor,
        visit.id,
        {"vitals": {"bp_systolic": systolic, "bp_diastolic": diastolic}},
    )
    assert set(error.fields) == {"vitals.bp_systolic"}
    row = stored(visit.id)
    assert (row.bp_systolic, row.bp_diastolic) == (None, None)


def test_systolic_is_checked_against_the_stored_diastolic(doctor, visit):
    update(doctor, visit, vitals={"bp_diastolic": 90})
    error = refused(InvalidInput, service.update, doctor, visit.id, {"vitals": {"bp_systolic": 85}})
    assert set(error.fields) == {"vitals.bp_systolic"}
    assert stored(visit.id).bp_systolic is None

    update(doctor, visit, vitals={"bp_systolic": 130})
    error = refused(
        InvalidInput, service.update, doctor, visit.id, {"vitals": {"bp_diastolic": 130}}
    )
    assert set(error.fields) == {"vitals.bp_systolic"}
    row = stored(visit.id)
    assert (row.bp_systolic, row.bp_diastolic) == (130, 90)


def test_vitals_must_be_an_object(doctor, visit):
    error = refused(InvalidInput, service.update, doctor, visit.id, {"vitals": [120, 80]})
    assert set(error.fields) == {"vitals"}


def test_a_vital_can_be_cleared(doctor, visit):
    update(doctor, visit, vitals={"pulse": 80, "spo2": 97})
    update(doctor, visit, vitals={"pulse": None})
    row = stored(visit.id)
    assert (row.pulse, row.spo2) == (None, 97)


# ---- findings --------------------------------------------------------------------------------


def test_findings_are_recorded(doctor, visit):
    update(
        doctor,
        visit,
        chief_complaint="  Cough and fever  ",
        symptom_duration="3 days",
        diagnosis="Acute upper respiratory infection",
        icd10_code=" j06.9 ",
        treatment_plan="Rest, fluids, paracetamol when needed.",
        follow_up_date=date(2030, 1, 14),
    )
    row = stored(visit.id)
    assert row.chief_complaint == "Cough and fever"
    assert row.symptom_duration == "3 days"
    assert row.diagnosis == "Acute upper respiratory infection"
    assert row.icd10_code == "J06.9"
    assert row.treatment_plan == "Rest, fluids, paracetamol when needed."
    assert row.follow_up_date == date(2030, 1, 14)


def test_any_subset_leaves_the_rest_alone(doctor, visit):
    update(doctor, visit, diagnosis="Migraine", vitals={"pulse": 70})
    update(doctor, visit, treatment_plan="Dark room")
    row = stored(visit.id)
    assert (row.diagnosis, row.pulse, row.treatment_plan) == ("Migraine", 70, "Dark room")
    update(doctor, visit, diagnosis="")
    assert stored(visit.id).diagnosis is None


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("A09", "A09"),  # a category with subcategories stays valid
        ("J06.9", "J06.9"),
        ("j029", "J02.9"),  # the dot is put back
        ("J02.9 ", "J02.9"),
        ("J06.", "J06"),
        (" e11.6 ", "E11.6"),
        ("i10", "I10"),
        ("K35.8", "K35.8"),
    ],
)
def test_icd10_codes_are_written_as_the_who_table_writes_them(doctor, visit, typed, code):
    update(doctor, visit, icd10_code=typed)
    assert stored(visit.id).icd10_code == code


@pytest.mark.parametrize("code", ["U07.1", "U07.2", "u071"])
def test_icd10_covid_codes_are_accepted(doctor, visit, code):
    """U07.1 and U07.2 (COVID-19) are in the WHO table of 2019 the check uses."""
    update(doctor, visit, icd10_code=code)
    assert stored(visit.id).icd10_code == code.upper().replace("U071", "U07.1")


@pytest.mark.parametrize(
    "code",
    [
        "XYZ",
        "123",
        "J6",
        "J06.12345",
        "J06-9",
        "JJ6.9",
        "J00-J06",  # a block of the table, not a diagnosis
        "E11.65",  # ICD-10-CM (the US extension), not WHO ICD-10
        "S72.001A",
        "J02.7",  # the right shape, but no such code
    ],
)
def test_not_an_icd10_code(doctor, visit, code):
    error = refused(InvalidInput, service.update, doctor, visit.id, {"icd10_code": code})
    assert error.code == "invalid_input"
    assert set(error.fields) == {"icd10_code"}
    assert error.fields["icd10_code"].startswith("Not a code in the WHO ICD-10 list")
    assert stored(visit.id).icd10_code is None


def test_a_diagnosis_typed_in_the_code_field_is_answered_with_codes(doctor, visit):
    error = refused(
        InvalidInput, service.update, doctor, visit.id, {"icd10_code": "acute pharyngitis"}
    )
    assert "Did you mean: J02.9 Acute pharyngitis, unspecified;" in error.fields["icd10_code"]


@pytest.mark.parametrize(
    "when",
    [TODAY, TODAY - timedelta(days=1), TODAY + timedelta(days=731)],
)
def test_follow_up_after_today_within_two_years(doctor, visit, when):
    error = refused(InvalidInput, service.update, doctor, visit.id, {"follow_up_date": when})
    assert set(error.fields) == {"follow_up_date"}
    assert stored(visit.id).follow_up_date is None


def test_follow_up_edges(doctor, visit):
    update(doctor, visit, follow_up_date=TODAY + timedelta(days=1))
    assert stored(visit.id).follow_up_date == TODAY + timedelta(days=1)
    update(doctor, visit, follow_up_date=TODAY + timedelta(days=730))
    assert stored(visit.id).follow_up_date == TODAY + timedelta(days=730)
    update(doctor, visit, follow_up_date=None)
    assert stored(visit.id).follow_up_date is None


def test_text_too_long_or_with_nul_is_refused(doctor, visit):
    for data, field in (
        ({"chief_complaint": "x" * 501}, "chief_complaint"),
        ({"symptom_duration": "x" * 101}, "symptom_duration"),
        ({"diagnosis": "Flu\x00"}, "diagnosis"),
    ):
        error = refused(InvalidInput, service.update, doctor, visit.id, data)
        assert set(error.fields) == {field}


def test_unknown_fields_are_refused(doctor, visit):
    error = refused(
        InvalidInput, service.update, doctor, visit.id, {"diagnosis": "Flu", "status": "DONE"}
    )
    assert set(error.fields) == {"status"}
    assert stored(visit.id).diagnosis is None


def test_only_the_visits_doctor_changes_it(doctor, visit):
    other = make_user(Role.DOCTOR)
    for call, args in (
        (service.update, ({"diagnosis": "Flu"},)),
        (service.add_note, ({"category": "SYMPTOM", "text": "Cough"},)),
        (service.complete, ()),
    ):
        error = refused(Forbidden, call, other, visit.id, *args)
        assert error.code == "not_your_visit"
    row = stored(visit.id)
    assert (row.diagnosis, row.status, row.notes) == (None, "IN_PROGRESS", [])


def test_update_is_audited(doctor, visit):
    update(doctor, visit, diagnosis="Flu", vitals={"pulse": 90})
    (record,) = audited("VISIT_UPDATED")
    assert record["resource"] == {"type": "visit", "id": visit.id}
    assert record["changes"] == {
        "old": {"pulse": None, "diagnosis": None},
        "new": {"pulse": 90, "diagnosis": "Flu"},
    }
    update(doctor, visit, diagnosis="Flu")  # nothing changed, nothing recorded
    assert len(audited("VISIT_UPDATED")) == 1


# ---- reading ---------------------------------------------------------------------------------


def test_who_reads_a_visit(doctor, admin, reception, pharmacist, visit):
    assert service.get_visit(visit.id, doctor).id == visit.id
    assert service.get_visit(visit.id, make_user(Role.DOCTOR)).id == visit.id
    assert service.get_visit(visit.id, admin).id == visit.id
    for who in (reception, pharmacist):
        assert refused(Forbidden, service.get_visit, visit.id, who).code == "forbidden"
    for missing in (999_999, 0, -1, 2**40):
        assert refused(NotFound, service.get_visit, missing, doctor).code == "visit_not_found"


def test_patient_visits_newest_first(doctor, patient):
    ids = []
    for days_ago in (30, 7, 0):
        with clock.fixed(NOW - timedelta(days=days_ago)):
            visit = start(doctor, patient_id=patient.id)
            update(doctor, visit, diagnosis=f"Visit {days_ago} days ago")
            complete(doctor, visit)
        ids.append(visit.id)
    someone_else = make_patient()
    start(doctor, patient_id=someone_else.id)

    assert [v.id for v in service.patient_visits(patient.id)] == ids[::-1]


# ---- notes -----------------------------------------------------------------------------------


def test_notes_by_category(doctor, visit):
    with clock.fixed(later(1)):
        first = note(doctor, visit, "SYMPTOM", "  Dry cough, worse at night  ")
    with clock.fixed(later(2)):
        note(doctor, visit, "observation", "Throat congested")
    with clock.fixed(later(3)):
        note(doctor, visit, "DIAGNOSIS", "Pharyngitis")
    with clock.fixed(later(4)):
        note(doctor, visit, "TREATMENT", "Warm saline gargles")

    assert (first.text, first.author_id, first.is_addendum) == (
        "Dry cough, worse at night",
        doctor.id,
        False,
    )
    assert first.created_at == later(1)
    notes = stored(visit.id).notes
    assert [n.category for n in notes] == ["SYMPTOM", "OBSERVATION", "DIAGNOSIS", "TREATMENT"]
    assert [n.created_at for n in notes] == [later(i) for i in (1, 2, 3, 4)]
    assert len(audited("VISIT_NOTE_ADDED")) == 4


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"category": "PLAN", "text": "Rest"}, "category"),
        ({"category": "", "text": "Rest"}, "category"),
        ({"text": "Rest"}, "category"),
        ({"category": "SYMPTOM", "text": ""}, "text"),
        ({"category": "SYMPTOM", "text": "   "}, "text"),
        ({"category": "SYMPTOM"}, "text"),
        ({"category": "SYMPTOM", "text": "x" * 5001}, "text"),
        ({"category": "SYMPTOM", "text": "Cough\x00"}, "text"),
    ],
)
def test_bad_notes_are_field_errors(doctor, visit, data, field):
    error = refused(InvalidInput, service.add_note, doctor, visit.id, data)
    assert field in error.fields
    assert stored(visit.id).notes == []


def test_a_note_after_completion_is_an_addendum(doctor, visit):
    note(doctor, visit, "SYMPTOM", "Cough")
    update(doctor, visit, diagnosis="Bronchitis")
    complete(doctor, visit)

    with clock.fixed(later(30)):
        addendum = note(doctor, visit, "TREATMENT", "Lab report normal; continue plan")

    assert addendum.is_addendum is True
    assert [n.is_addendum for n in stored(visit.id).notes] == [False, True]
    assert len(audited("VISIT_ADDENDUM_ADDED")) == 1

    error = refused(Conflict, service.update, doctor, visit.id, {"diagnosis": "Asthma"})
    assert error.code == "visit_completed"
    error = refused(Conflict, service.update, doctor, visit.id, {})
    assert error.code == "visit_completed"
    assert stored(visit.id).diagnosis == "Bronchitis"


# ---- completing ----------------------------------------------------------------------------------


def test_complete_needs_a_diagnosis(doctor, visit):
    update(doctor, visit, treatment_plan="Rest")
    error = refused(InvalidInput, service.complete, doctor, visit.id)
    assert error.code == "diagnosis_required"
    assert set(error.fields) == {"diagnosis"}
    row = stored(visit.id)
    assert (row.status, row.completed_at) == ("IN_PROGRESS", None)
    assert events("visit_history") == []


def test_complete_the_visit_its_appointment_and_its_token(doctor, reception, called, booked):
    entry = called(0, reason="Fever")
    visit = start(doctor, token_number=entry.token_number)
    update(doctor, visit, diagnosis="Viral fever")
    waiting = booked(1)
    queue.check_in(reception, waiting.id)
    commit()
    assert redis_current(doctor.id) == entry.token_number

    with clock.fixed(later(12)):
        done = complete(doctor, visit)

    assert done.status == "COMPLETED"
    row = stored(visit.id)
    assert (row.status, row.completed_at) == ("COMPLETED", later(12))
    assert appointment_status(entry.appointment_id) == "COMPLETED"
    token = token_row(entry.token_number)
    assert (token.status, token.completed_at) == ("COMPLETED", later(12))
    assert redis_current(doctor.id) is None
    assert redis_status(entry.token_number) == "COMPLETED"

    # The doctor's queue moves on.
    nxt = queue.call_next(doctor)
    commit()
    assert nxt.appointment_id == waiting.id
    assert redis_current(doctor.id) == nxt.token_number


def test_complete_a_walk_in_visit_completes_its_token(doctor, reception, patient):
    queue.walk_in(reception, {"patient_id": patient.id, "doctor_id": doctor.id})
    commit()
    entry = queue.call_next(doctor)
    commit()
    visit = start(doctor, token_number=entry.token_number)
    update(doctor, visit, diagnosis="Sprain")
    complete(doctor, visit)

    assert token_row(entry.token_number).status == "COMPLETED"
    assert redis_current(doctor.id) is None
    with pytest.raises(NotFound) as caught:
        queue.call_next(doctor)
    assert caught.value.code == "queue_empty"


def test_complete_a_visit_for_an_appointment_not_checked_in(doctor, booked):
    appointment = booked(3)
    visit = start(doctor, appointment_id=appointment.id)
    update(doctor, visit, diagnosis="Hypertension")
    complete(doctor, visit)
    assert appointment_status(appointment.id) == "COMPLETED"
    (record,) = audited("APPOINTMENT_COMPLETED")
    assert record["resource"] == {"type": "appointment", "id": appointment.id}
    assert record["changes"] == {"old": {"status": "SCHEDULED"}, "new": {"status": "COMPLETED"}}


def test_completing_a_called_patients_visit_audits_the_appointment_once(doctor, called):
    entry = called(0)
    visit = start(doctor, token_number=entry.token_number)
    update(doctor, visit, diagnosis="Viral fever")
    complete(doctor, visit)
    moves = [
        (e["action"], e["changes"]["old"]["status"], e["changes"]["new"]["status"])
        for e in events()
        if e["resource"] == {"type": "appointment", "id": entry.appointment_id}
        and e["action"] != "APPOINTMENT_BOOKED"
    ]
    assert moves == [
        ("APPOINTMENT_CHECKED_IN", "SCHEDULED", "CHECKED_IN"),
        ("APPOINTMENT_IN_CONSULTATION", "CHECKED_IN", "IN_CONSULTATION"),
        ("APPOINTMENT_COMPLETED", "IN_CONSULTATION", "COMPLETED"),
    ]


def test_a_visit_whose_appointment_was_cancelled_meanwhile_leaves_it_cancelled(
    doctor, reception, booked
):
    appointment = booked(3)
    visit = start(doctor, appointment_id=appointment.id)
    update(doctor, visit, diagnosis="Hypertension")
    scheduling.cancel(reception, appointment.id, "Patient phoned")
    commit()
    complete(doctor, visit)
    assert appointment_status(appointment.id) == "CANCELLED"
    assert stored(visit.id).status == "COMPLETED"


def test_completing_a_visit_from_a_checked_in_appointment_completes_its_token(
    doctor, reception, booked
):
    """The visit is linked to the appointment's token; once it is completed the patient
    must not be called again (SPEC 5: completing marks the token COMPLETED)."""
    appointment = booked(0)
    entry = queue.check_in(reception, appointment.id)
    commit()
    queue.call_next(doctor)
    commit()
    visit = start(doctor, appointment_id=appointment.id)
    assert stored(visit.id).queue_entry_id == entry.id
    update(doctor, visit, diagnosis="Gastritis")
    complete(doctor, visit)

    assert appointment_status(appointment.id) == "COMPLETED"
    assert token_row(entry.token_number).status == "COMPLETED"
    with pytest.raises(NotFound):
        queue.call_next(doctor)  # nobody else is waiting
    db.session.rollback()
    assert appointment_status(appointment.id) == "COMPLETED"


def test_completing_a_visit_started_for_the_called_patient_completes_their_token(doctor, called):
    """Started directly for the patient the doctor has called: the patient's token is the
    one with this doctor, and completing the visit completes it (SPEC 4 and 5)."""
    entry = called(0)
    visit = start(doctor, patient_id=entry.patient_id)
    update(doctor, visit, diagnosis="Tension headache")
    complete(doctor, visit)

    assert token_row(entry.token_number).status == "COMPLETED"
    assert redis_current(doctor.id) is None


def test_complete_twice_is_a_conflict(doctor, visit):
    update(doctor, visit, diagnosis="Flu")
    complete(doctor, visit)
    error = refused(Conflict, service.complete, doctor, visit.id)
    assert error.code == "visit_completed"
    assert len(audited("VISIT_COMPLETED")) == 1
    assert len(events("visit_history")) == 1


def test_complete_is_audited(doctor, visit):
    update(doctor, visit, diagnosis="Flu")
    complete(doctor, visit)
    (record,) = audited("VISIT_COMPLETED")
    assert record["resource"] == {"type": "visit", "id": visit.id}
    assert record["user"]["id"] == doctor.id
    assert record["changes"] == {
        "old": {"status": "IN_PROGRESS"},
        "new": {"status": "COMPLETED", "diagnosis": "Flu"},
    }


def test_complete_writes_the_full_history_snapshot(reception):
    doctor = make_user(Role.DOCTOR, full_name="Meera Sharma", registration_number="KMC-12345")
    patient = make_patient(reception, full_name="Ravi Kumar Iyer", allergies=["Penicillin"])
    queue.walk_in(reception, {"patient_id": patient.id, "doctor_id": doctor.id})
    commit()
    entry = queue.call_next(doctor)
    commit()
    visit = start(doctor, token_number=entry.token_number)
    update(
        doctor,
        visit,
        vitals={
            "bp_systolic": 130,
            "bp_diastolic": 85,
            "temperature": 100.4,
            "temperature_unit": "F",
            "pulse": 92,
            "spo2": 97,
            "weight_kg": 70,
            "height_cm": 175,
            "respiratory_rate": 18,
        },
        chief_complaint="Fever",
        symptom_duration="2 days",
        diagnosis="Viral fever",
        icd10_code="b34.9",
        treatment_plan="Paracetamol 650 mg when needed",
        follow_up_date=date(2030, 1, 10),
    )
    with clock.fixed(later(2)):
        note(doctor, visit, "SYMPTOM", "Chills at night")
    with clock.fixed(later(20)):
        complete(doctor, visit)

    (payload,) = events("visit_history")
    assert payload["visit_id"] == visit.id
    assert datetime.fromisoformat(payload["timestamp"]) == later(20)
    assert payload["patient"]["id"] == patient.id
    assert payload["patient"]["full_name"] == "Ravi Kumar Iyer"
    assert payload["patient"]["mrn"] == patient.mrn
    assert payload["patient"]["allergies"] == ["Penicillin"]
    assert payload["doctor"] == {
        "id": doctor.id,
        "full_name": "Meera Sharma",
        "registration_number": "KMC-12345",
    }
    assert payload["vitals"] == {
        "bp_systolic": 130,
        "bp_diastolic": 85,
        "temperature_c": "38.0",
        "pulse": 92,
        "spo2": 97,
        "weight_kg": "70.00",
        "height_cm": "175.0",
        "respiratory_rate": 18,
        "bmi": "22.9",
    }
    assert payload["chief_complaint"] == "Fever"
    assert payload["symptom_duration"] == "2 days"
    assert payload["diagnosis"] == "Viral fever"
    assert payload["icd10_code"] == "B34.9"
    assert payload["treatment_plan"] == "Paracetamol 650 mg when needed"
    assert payload["follow_up_date"] == "2030-01-10"
    (written,) = payload["notes"]
    assert datetime.fromisoformat(written.pop("created_at")) == later(2)
    assert written == {
        "category": "SYMPTOM",
        "text": "Chills at night",
        "author": "Meera Sharma",
        "is_addendum": False,
    }
    assert payload["prescription"] is None

    outbox.relay()
    document = mongo.db["visit_history"].find_one({"visit_id": visit.id})
    assert document is not None
    assert document["diagnosis"] == "Viral fever"
    assert document["doctor"]["registration_number"] == "KMC-12345"
    assert document["vitals"]["bmi"] == "22.9"
    assert document["prescription"] is None
    assert document["timestamp"] == later(20)
    assert mongo.db["visit_history"].count_documents({}) == 1


def test_the_snapshot_has_notes_written_in_the_same_transaction(doctor, visit):
    service.add_note(doctor, visit.id, {"category": "OBSERVATION", "text": "Rash on arms"})
    service.update(doctor, visit.id, {"diagnosis": "Urticaria"})
    service.complete(doctor, visit.id)
    commit()
    (payload,) = events("visit_history")
    assert [n["text"] for n in payload["notes"]] == ["Rash on arms"]
    assert payload["diagnosis"] == "Urticaria"


# ---- the whole workspace at once ---------------------------------------------------------------


def workspace(**data) -> dict:
    """The workspace form as the view passes it: every section, a note with no text."""
    return {
        "vitals": {"pulse": None, "temperature": None, "temperature_unit": "C"},
        "diagnosis": "",
        "icd10_code": "",
        "note": {"category": "SYMPTOM", "text": ""},
        **data,
    }


def test_save_workspace_writes_every_section_and_completes(doctor, called):
    from qure.pharmacy import service as pharmacy
    from qure.prescriptions import service as prescriptions

    entry = called(0)
    visit = start(doctor, token_number=entry.token_number)
    crocin = pharmacy.create(
        None,
        {
            "name": "Crocin",
            "generic_name": "Paracetamol",
            "dosage_form": "TABLET",
            "strength": "500 mg",
            "unit_price": "2.00",
            "gst_rate": 12,
        },
    )
    item = {"medicine_id": crocin.id, "dose": 1, "frequency": "BD", "duration_days": 3}
    prescriptions.add_item(doctor, visit.id, item)
    commit()

    service.save_workspace(
        doctor,
        visit.id,
        workspace(
            vitals={"pulse": "88", "temperature": "100.4", "temperature_unit": "F"},
            diagnosis="Acute pharyngitis",
            icd10_code="j029",
            note={"category": "OBSERVATION", "text": "Congested throat"},
            advice="Warm saline gargles",
        ),
        complete_it=True,
    )
    commit()

    row = stored(visit.id)
    assert (row.status, row.pulse, row.temperature_c) == ("COMPLETED", 88, Decimal("38.0"))
    assert (row.diagnosis, row.icd10_code) == ("Acute pharyngitis", "J02.9")
    assert [(n.category, n.text) for n in row.notes] == [("OBSERVATION", "Congested throat")]
    assert prescriptions.for_visit(visit.id).notes == "Warm saline gargles"
    # A token that has a visit completes through the visit.
    assert token_row(entry.token_number).status == "COMPLETED"
    assert appointment_status(entry.appointment_id) == "COMPLETED"
    (history,) = events("visit_history")
    assert history["prescription"]["notes"] == "Warm saline gargles"
    assert [n["text"] for n in history["notes"]] == ["Congested throat"]


def test_save_workspace_names_every_bad_field_at_once_and_writes_nothing(doctor, visit):
    error = refused(
        InvalidInput,
        service.save_workspace,
        doctor,
        visit.id,
        workspace(
            vitals={"pulse": "5", "bp_systolic": "80", "bp_diastolic": "120"},
            chief_complaint="Sore throat",
            icd10_code="XYZ",
            note={"category": "SYMPTOM", "text": "x" * 5001},
            advice="Rest",  # no prescription yet
        ),
        complete_it=True,
    )
    assert error.code == "invalid_input"
    assert set(error.fields) == {
        "vitals.pulse",
        "vitals.bp_systolic",
        "icd10_code",
        "note.text",
        "advice",
        "diagnosis",
    }
    row = stored(visit.id)
    assert (row.status, row.chief_complaint, row.pulse, row.notes) == (
        "IN_PROGRESS",
        None,
        None,
        [],
    )
    assert audited("VISIT_UPDATED") == []


def test_completing_without_a_diagnosis_keeps_nothing_typed(doctor, visit):
    error = refused(
        InvalidInput,
        service.save_workspace,
        doctor,
        visit.id,
        workspace(vitals={"pulse": "80"}, note={"category": "SYMPTOM", "text": "Cough"}),
        complete_it=True,
    )
    assert error.code == "diagnosis_required"
    assert error.fields == {"diagnosis": "Record a diagnosis before completing the visit."}
    row = stored(visit.id)
    assert (row.status, row.pulse, row.notes) == ("IN_PROGRESS", None, [])


def test_a_diagnosis_saved_before_is_enough_to_complete(doctor, visit):
    update(doctor, visit, diagnosis="Migraine")
    service.save_workspace(doctor, visit.id, workspace(diagnosis="Migraine"), complete_it=True)
    commit()
    assert stored(visit.id).status == "COMPLETED"


def test_save_workspace_on_a_completed_or_anothers_visit_is_refused(doctor, visit):
    other = make_user(Role.DOCTOR)
    error = refused(Forbidden, service.save_workspace, other, visit.id, workspace(diagnosis="X"))
    assert error.code == "not_your_visit"
    update(doctor, visit, diagnosis="Flu")
    complete(doctor, visit)
    error = refused(Conflict, service.save_workspace, doctor, visit.id, workspace(diagnosis="X"))
    assert error.code == "visit_completed"
    assert stored(visit.id).diagnosis == "Flu"


# ---- call next opens the visit in the same transaction ----------------------------------------


def test_call_next_calls_and_opens_the_visit_in_one_transaction(doctor, reception, booked):
    appointment = booked(0, reason="Fever")
    queue.check_in(reception, appointment.id)
    commit()
    entry, visit = service.call_next(doctor)
    commit()
    assert token_row(entry.token_number).status == "WITH_DOCTOR"
    assert stored(visit.id).queue_entry_id == entry.id
    assert stored(visit.id).chief_complaint == "Fever"
    assert redis_current(doctor.id) == entry.token_number


def test_call_next_may_call_alone(doctor, reception, booked):
    queue.check_in(reception, booked(0).id)
    commit()
    entry, visit = service.call_next(doctor, open_visit=False)
    commit()
    assert visit is None and entry.status == "WITH_DOCTOR"
    assert db.session.scalars(select(Visit)).all() == []


def test_a_failure_while_opening_the_visit_leaves_the_token_not_called(doctor, reception, booked):
    appointment = booked(0)
    number = queue.check_in(reception, appointment.id).token_number
    commit()
    # The database refuses the visit (as a full disk or a lost connection would): the
    # call and the visit are one transaction, so the call does not stand either.
    db.session.execute(
        text(
            "CREATE FUNCTION refuse_visit() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused'; END $$; "
            "CREATE TRIGGER refuse_visit BEFORE INSERT ON visits "
            "FOR EACH ROW EXECUTE FUNCTION refuse_visit()"
        )
    )
    with pytest.raises(DBAPIError):
        service.call_next(doctor)
    db.session.rollback()
    row = token_row(number)
    assert (row.status, row.called_at) == ("WAITING", None)
    assert appointment_status(appointment.id) == "CHECKED_IN"
    assert db.session.scalars(select(Visit)).all() == []
    assert redis_current(doctor.id) is None
    assert redis_status(number) == "WAITING"
    assert redis_store.client.zrange(f"q:{TODAY}:wait:{doctor.id}", 0, -1) == [b"%06d" % number]


def test_an_archived_patient_is_called_without_a_visit_and_does_not_jam_the_queue(
    doctor, reception, booked
):
    first, second = booked(0), booked(1)
    numbers = [queue.check_in(reception, a.id).token_number for a in (first, second)]
    commit()
    db.session.execute(
        Patient.__table__.update()
        .where(Patient.id == first.patient_id)
        .values(archived_at=clock.now())
    )
    commit()
    entry, visit = service.call_next(doctor)
    commit()
    assert (entry.token_number, visit) == (numbers[0], None)
    assert token_row(numbers[0]).status == "WITH_DOCTOR"
    queue.set_status(doctor, numbers[0], "COMPLETED")
    commit()
    entry, visit = service.call_next(doctor)
    assert entry.token_number == numbers[1] and visit.patient_id == second.patient_id
