"""Two doctors starting a visit for the same patient at the same moment: real threads,
real commits, real PostgreSQL. The clock is pinned to NOW in every thread."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from qure.auth.models import User
from qure.core.errors import Conflict
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from qure.visits import service
from qure.visits.models import Visit
from tests.helpers import NOW, make_patient, make_user, run_together

pytestmark = pytest.mark.concurrency


def visits_of(patient_id: int) -> list[Visit]:
    db.session.rollback()
    db.session.expire_all()
    query = select(Visit).where(Visit.patient_id == patient_id).order_by(Visit.id)
    return list(db.session.scalars(query))


def started_events(visit_ids: set[int]) -> int:
    db.session.rollback()
    rows = db.session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "audit_logs"))
    return sum(
        1
        for r in rows
        if r.payload["action"] == "VISIT_STARTED" and r.payload["resource"]["id"] in visit_ids
    )


def starting(doctor_id: int, patient_id: int):
    """The doctor starts a visit directly for the patient (whoever run_together names)."""

    def job(_actor):
        doctor = db.session.get(User, doctor_id)
        return service.start(doctor, {"patient_id": patient_id}).id

    return job


def test_two_doctors_starting_a_visit_for_one_patient_at_once(app, reception):
    for attempt in range(3):
        first, second = make_user(Role.DOCTOR), make_user(Role.DOCTOR)
        patient = make_patient(reception)

        results = run_together(
            app,
            first.id,
            [starting(first.id, patient.id), starting(second.id, patient.id)],
            now=NOW,
        )

        started = [r for r in results if isinstance(r, int)]
        refused = [r for r in results if not isinstance(r, int)]
        assert len(started) == 1, (attempt, results)
        assert len(refused) == 1, (attempt, results)
        assert isinstance(refused[0], Conflict), repr(refused[0])
        assert refused[0].code == "visit_in_progress"
        assert refused[0].details == {"visit_id": started[0]}

        visits = visits_of(patient.id)
        assert [(v.id, v.status) for v in visits] == [(started[0], "IN_PROGRESS")]
        assert visits[0].doctor_id in (first.id, second.id)
        assert visits[0].started_at == NOW
        assert started_events({started[0]}) == 1


def test_many_doctors_at_once_still_one_visit(app, reception):
    doctors = [make_user(Role.DOCTOR) for _ in range(6)]
    patient = make_patient(reception)

    results = run_together(
        app, doctors[0].id, [starting(d.id, patient.id) for d in doctors], now=NOW
    )

    started = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if not isinstance(r, int)]
    assert len(started) == 1, results
    assert len(refused) == 5, results
    assert all(isinstance(r, Conflict) and r.code == "visit_in_progress" for r in refused)
    assert {tuple(r.details.items()) for r in refused} == {(("visit_id", started[0]),)}
    assert [v.id for v in visits_of(patient.id)] == started


def test_a_prescription_and_completing_the_visit_at_once_never_disagree(app):
    """The doctor completes the visit in one tab while a prescription is written in another:
    either the prescription is refused (the visit is completed) or it is on the visit and
    in its history snapshot; never a prescription the snapshot does not know."""
    from qure.pharmacy import service as pharmacy
    from qure.prescriptions import service as prescriptions
    from qure.prescriptions.models import Prescription

    doctor = make_user(Role.DOCTOR)
    medicine = pharmacy.create(
        None,
        {
            "name": "Racetol",
            "generic_name": "Paracetamol",
            "dosage_form": "TABLET",
            "strength": "500 mg",
            "unit_price": "1.00",
            "gst_rate": 12,
        },
    )
    db.session.commit()
    for _ in range(4):
        patient = make_patient()
        visit = service.start(doctor, {"patient_id": patient.id})
        service.update(doctor, visit.id, {"diagnosis": "Fever"})
        db.session.commit()
        item = {"medicine_id": medicine.id, "dose": 1, "frequency": "BD", "duration_days": 3}

        def prescribing(actor, visit_id=visit.id, item=item):
            return prescriptions.create(actor, {"visit_id": visit_id, "items": [item]}).id

        def completing(actor, visit_id=visit.id):
            return service.complete(actor, visit_id).status

        results = run_together(app, doctor.id, [prescribing, completing], now=NOW)

        assert results[1] == "COMPLETED", results
        db.session.rollback()
        written = db.session.scalars(
            select(Prescription).where(Prescription.visit_id == visit.id)
        ).first()
        snapshot = db.session.scalars(
            select(OutboxEvent).where(OutboxEvent.topic == "visit_history")
        ).all()
        mine = [e.payload for e in snapshot if e.payload["visit_id"] == visit.id]
        assert len(mine) == 1
        if written is None:
            assert isinstance(results[0], Conflict) and results[0].code == "visit_completed"
            assert mine[0]["prescription"] is None
        else:
            assert results[0] == written.id
            assert mine[0]["prescription"]["id"] == written.id
