"""Several desks at once: real threads, real commits, real PostgreSQL."""

from __future__ import annotations

import re
import threading
from datetime import date

import pytest
from sqlalchemy import select

from qure.auth.models import User
from qure.core.errors import DomainError
from qure.core.models import OutboxEvent
from qure.extensions import db
from qure.patients import service
from qure.patients.models import Patient
from tests.helpers import make_patient

pytestmark = pytest.mark.concurrency

TIMEOUT = 60


def run_together(app, user_id: int, jobs: list) -> list:
    """Run each job (a function of the acting user) in its own thread and app context,
    released together by a barrier; commit each. Returns one result per job: the job's
    return value or the DomainError / exception it raised."""
    barrier = threading.Barrier(len(jobs), timeout=TIMEOUT)
    results: list = [None] * len(jobs)

    def worker(index: int, job) -> None:
        with app.app_context():
            try:
                actor = db.session.get(User, user_id)
                db.session.commit()  # start the job with no transaction open
                barrier.wait()
                value = job(actor)
                db.session.commit()
                results[index] = value
            except Exception as exc:  # reported to the test thread
                db.session.rollback()
                results[index] = exc

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    return results


def all_patients() -> list[Patient]:
    db.session.rollback()
    db.session.expire_all()
    return list(db.session.scalars(select(Patient).order_by(Patient.id)))


def patient_events(action: str) -> list[dict]:
    db.session.rollback()
    events = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
    return [e.payload for e in events if e.payload["action"] == action]


def test_the_same_person_registered_at_two_desks_at_once_is_saved_once(app, reception):
    person = {
        "full_name": "Meera Nair",
        "date_of_birth": date(1985, 6, 15),
        "sex": "F",
        "phone": "+91 98450 12345",
    }

    def register(actor):
        return service.register(actor, dict(person)).id

    for _attempt in range(3):
        results = run_together(app, reception.id, [register, register])
        saved = [r for r in results if isinstance(r, int)]
        refused = [r for r in results if not isinstance(r, int)]
        assert len(saved) == 1, results
        assert len(refused) == 1, results
        conflict = refused[0]
        assert isinstance(conflict, DomainError), repr(conflict)
        assert conflict.code == "possible_duplicate"
        assert [c["id"] for c in conflict.details["candidates"]] == saved
        patients = all_patients()
        assert [p.id for p in patients] == saved
        assert len(patient_events("PATIENT_CREATED")) == 1
        # Again from scratch: the race may go either way, the outcome may not.
        db.session.execute(Patient.__table__.delete())
        db.session.execute(OutboxEvent.__table__.delete())
        db.session.commit()


def test_twenty_desks_register_twenty_patients_at_once(app, reception):
    def job(n: int):
        def register(actor):
            patient = service.register(
                actor,
                {
                    "full_name": f"Crowd Person {n}",
                    "date_of_birth": date(1990, 1, 1 + n),
                    "sex": "O",
                    "phone": f"98450{n:05d}",
                },
            )
            return patient.mrn

        return register

    results = run_together(app, reception.id, [job(n) for n in range(20)])
    assert all(isinstance(r, str) for r in results), results
    patients = all_patients()
    assert len(patients) == 20
    assert sorted(p.full_name for p in patients) == sorted(f"Crowd Person {n}" for n in range(20))
    mrns = [p.mrn for p in patients]
    assert len(set(mrns)) == 20
    assert sorted(mrns) == sorted(results)
    assert all(re.fullmatch(r"QC-\d{6}", mrn) for mrn in mrns)
    assert len(patient_events("PATIENT_CREATED")) == 20


def test_two_desks_edit_one_patient_at_once(app, reception):
    patient_id = make_patient(reception, full_name="Kiran Rao", address="Old street").id
    alpha = {"full_name": "Kiran Alpha", "address": "Alpha street", "allergies": ["Aspirin"]}
    beta = {"full_name": "Kiran Beta", "address": "Beta street", "allergies": ["Latex"]}

    def edit(values):
        def job(actor):
            return service.update(actor, patient_id, dict(values)).full_name

        return job

    results = run_together(app, reception.id, [edit(alpha), edit(beta)])
    assert sorted(results) == ["Kiran Alpha", "Kiran Beta"], results
    (row,) = all_patients()
    final = {"full_name": row.full_name, "address": row.address, "allergies": row.allergies}
    assert final in (alpha, beta)
    first, second = patient_events("PATIENT_UPDATED")
    assert first["changes"]["old"] == {
        "full_name": "Kiran Rao",
        "address": "Old street",
        "allergies": [],
    }
    # The second edit saw the first one's result: no lost update, no mixed record.
    assert second["changes"]["old"] == first["changes"]["new"]
    assert second["changes"]["new"] == final
