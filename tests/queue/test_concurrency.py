"""Many desks and doctors at once: real threads, real commits, real PostgreSQL and Redis.

Every job runs in its own thread and application context, released together, with the
clock pinned to NOW (Monday 2030-01-07 10:00 clinic time).
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from qure.auth.models import User
from qure.core import clock
from qure.core.db import commit
from qure.core.errors import Conflict
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db, redis_store
from qure.queue import service
from qure.queue.models import QueueEntry
from qure.scheduling.models import Appointment
from tests.helpers import (
    NOW,
    TODAY,
    make_appointment,
    make_patient,
    make_slots,
    make_user,
    run_together,
)

pytestmark = pytest.mark.concurrency


# ---- reading what the threads left -----------------------------------------------------


def rows() -> list[QueueEntry]:
    db.session.rollback()
    db.session.expire_all()
    query = select(QueueEntry).where(QueueEntry.day == TODAY).order_by(QueueEntry.token_number)
    return list(db.session.scalars(query))


def events(action: str) -> int:
    db.session.rollback()
    return sum(1 for e in db.session.scalars(select(OutboxEvent)) if e.payload["action"] == action)


def redis_waiting(doctor_id: int) -> list[int]:
    return [int(m) for m in redis_store.client.zrange(f"q:{TODAY}:wait:{doctor_id}", 0, -1)]


def redis_current(doctor_id: int) -> int | None:
    value = redis_store.client.get(f"q:{TODAY}:cur:{doctor_id}")
    return int(value) if value is not None else None


def redis_status(token_number: int) -> str | None:
    value = redis_store.client.hget(f"q:{TODAY}:tok:{token_number:06d}", "status")
    return value.decode() if value is not None else None


def database_order(entries: list[QueueEntry], doctor_id: int) -> list[int]:
    """A doctor's WAITING tokens in the order PostgreSQL says they are called."""
    mine = [e for e in entries if e.doctor_id == doctor_id and e.status == "WAITING"]
    mine.sort(key=lambda e: (e.tier, e.sort_at, e.token_number))
    return [e.token_number for e in mine]


def assert_redis_matches_the_database(doctors: list[User]) -> None:
    """Every live token is in Redis, in its doctor's queue, in the database's order."""
    entries = rows()
    for doctor in doctors:
        assert redis_waiting(doctor.id) == database_order(entries, doctor.id), doctor.id
        current = [
            e.token_number
            for e in entries
            if e.doctor_id == doctor.id and e.status == "WITH_DOCTOR"
        ]
        assert redis_current(doctor.id) == (current[0] if current else None), doctor.id
    for entry in entries:
        if entry.status in ("WAITING", "WITH_DOCTOR"):
            assert redis_status(entry.token_number) == entry.status, entry.token_number


def failures(results: list) -> list:
    return [r for r in results if isinstance(r, BaseException)]


# ---- acting in threads ----------------------------------------------------------------------


def checking_in(appointment_id: int):
    def job(actor):
        return service.check_in(actor, appointment_id).token_number

    return job


def walking_in(patient_id: int, doctor_id: int | None = None):
    def job(actor):
        body = {"patient_id": patient_id}
        if doctor_id is not None:
            body["doctor_id"] = doctor_id
        return service.walk_in(actor, body).token_number

    return job


def calling(doctor_id: int):
    """The doctor calls their own queue (whoever run_together names as the actor)."""

    def job(_actor):
        doctor = db.session.get(User, doctor_id)
        return service.call_next(doctor).token_number

    return job


def flushing(_actor):
    redis_store.client.flushall()
    return "flushed"


def walk_in_now(actor, patient, doctor) -> int:
    with clock.fixed(NOW):
        entry = service.walk_in(actor, {"patient_id": patient.id, "doctor_id": doctor.id})
        commit()
    return entry.token_number


def check_in_now(actor, appointment) -> int:
    with clock.fixed(NOW):
        entry = service.check_in(actor, appointment.id)
        commit()
    return entry.token_number


# ---- tests ---------------------------------------------------------------------------------


def test_two_hundred_check_ins_and_walk_ins_at_once_get_one_to_two_hundred(app, reception):
    doctors = [make_user(Role.DOCTOR) for _ in range(4)]
    appointments = []
    for doctor in doctors:
        # 25 half-hour slots each, from 10:30 to 23:00.
        slots = make_slots(doctor, start="10:30", end="23:00", minutes=30)
        assert len(slots) == 25
        for slot in slots:
            appointments.append(make_appointment(make_patient(), slot, reception))
    walkers = [make_patient() for _ in range(100)]
    jobs = [checking_in(a.id) for a in appointments]
    for i, patient in enumerate(walkers):
        # Half name their doctor; the others go to whoever has fewest waiting.
        jobs.append(walking_in(patient.id, doctors[i % 4].id if i % 2 else None))

    results = run_together(app, reception.id, jobs, now=NOW)

    assert not failures(results), failures(results)[:5]
    assert sorted(results) == list(range(1, 201))
    entries = rows()
    assert [e.token_number for e in entries] == list(range(1, 201))
    assert Counter(e.kind for e in entries) == {"APPOINTMENT": 100, "WALK_IN": 100}
    assert {e.doctor_id for e in entries} == {d.id for d in doctors}
    # The token each thread was given is the one written for its appointment.
    by_appointment = {e.appointment_id: e.token_number for e in entries if e.appointment_id}
    assert [by_appointment[a.id] for a in appointments] == results[:100]
    db.session.expire_all()
    statuses = db.session.scalars(select(Appointment.status)).all()
    assert Counter(statuses) == {"CHECKED_IN": 100}
    assert events("TOKEN_ISSUED") == 200
    assert events("APPOINTMENT_CHECKED_IN") == 100

    # Every token is in Redis, each once, in its doctor's queue in the database's order.
    assert redis_store.client.get(f"q:{TODAY}:counter") == b"200"
    in_redis = [n for d in doctors for n in redis_waiting(d.id)]
    assert sorted(in_redis) == list(range(1, 201))
    assert_redis_matches_the_database(doctors)


def test_two_calls_at_once_give_one_patient_and_one_conflict(app, reception):
    for attempt in range(3):
        doctor = make_user(Role.DOCTOR)
        first = walk_in_now(reception, make_patient(), doctor)
        second = walk_in_now(reception, make_patient(), doctor)

        results = run_together(app, doctor.id, [calling(doctor.id), calling(doctor.id)], now=NOW)

        called = [r for r in results if isinstance(r, int)]
        refused = [r for r in results if not isinstance(r, int)]
        assert called == [first], (attempt, results)
        assert len(refused) == 1, results
        assert isinstance(refused[0], Conflict), repr(refused[0])
        assert refused[0].code == "patient_with_doctor"
        assert refused[0].details == {"token_number": first}
        entries = [e for e in rows() if e.doctor_id == doctor.id]
        assert [e.token_number for e in entries if e.status == "WITH_DOCTOR"] == [first]
        assert [e.token_number for e in entries if e.status == "WAITING"] == [second]
        assert redis_current(doctor.id) == first
        assert redis_waiting(doctor.id) == [second]
        assert events("TOKEN_CALLED") == attempt + 1


def test_two_calls_at_once_after_redis_lost_its_keys(app, reception):
    doctor = make_user(Role.DOCTOR)
    first = walk_in_now(reception, make_patient(), doctor)
    second = walk_in_now(reception, make_patient(), doctor)
    redis_store.client.flushall()

    results = run_together(app, doctor.id, [calling(doctor.id)] * 4, now=NOW)

    assert [r for r in results if isinstance(r, int)] == [first], results
    assert all(
        isinstance(r, Conflict) and r.code == "patient_with_doctor"
        for r in results
        if not isinstance(r, int)
    ), results
    entries = rows()
    assert [e.token_number for e in entries if e.status == "WITH_DOCTOR"] == [first]
    assert [e.token_number for e in entries if e.status == "WAITING"] == [second]
    assert redis_current(doctor.id) == first
    assert redis_waiting(doctor.id) == [second]


def test_ten_doctors_call_their_own_queues_at_once(app, reception):
    doctors = [make_user(Role.DOCTOR) for _ in range(10)]
    expected = {}
    for doctor in doctors:
        slot = make_slots(doctor, start="10:15", end="10:30")[0]
        appointment = make_appointment(make_patient(), slot, reception)
        walk_in_now(reception, make_patient(), doctor)
        walk_in_now(reception, make_patient(), doctor)
        # The appointment patient, on time, is first although they arrived last.
        expected[doctor.id] = check_in_now(reception, appointment)

    jobs = [calling(d.id) for d in doctors]
    results = run_together(app, doctors[0].id, jobs, now=NOW)

    assert not failures(results), results
    assert results == [expected[d.id] for d in doctors]
    entries = rows()
    with_doctor = {e.doctor_id: e.token_number for e in entries if e.status == "WITH_DOCTOR"}
    assert with_doctor == expected
    assert sum(1 for e in entries if e.status == "WAITING") == 20
    for doctor in doctors:
        assert redis_current(doctor.id) == expected[doctor.id]
        assert len(redis_waiting(doctor.id)) == 2
    assert_redis_matches_the_database(doctors)
    assert events("TOKEN_CALLED") == 10


def test_redis_flushed_while_check_ins_go_on(app, reception):
    doctors = [make_user(Role.DOCTOR) for _ in range(3)]
    appointments = []
    for doctor in doctors:
        for slot in make_slots(doctor, start="10:30", end="15:30", minutes=30):
            appointments.append(make_appointment(make_patient(), slot, reception))
    assert len(appointments) == 30
    walkers = [make_patient() for _ in range(90)]

    def batch(appointment_slice, walker_slice):
        jobs = [checking_in(a.id) for a in appointment_slice]
        jobs += [walking_in(p.id, doctors[i % 3].id) for i, p in enumerate(walker_slice)]
        return jobs

    # Before the loss.
    before = run_together(app, reception.id, batch(appointments[:10], walkers[:30]), now=NOW)
    assert not failures(before), failures(before)[:5]
    assert sorted(before) == list(range(1, 41))

    # Redis is flushed at the very moment forty more patients arrive.
    during = run_together(
        app, reception.id, [flushing, *batch(appointments[10:20], walkers[30:60])], now=NOW
    )
    assert during[0] == "flushed"
    assert not failures(during), failures(during)[:5]
    assert sorted(during[1:]) == list(range(41, 81))

    # And again, from outside, before the last forty.
    redis_store.client.flushall()
    after = run_together(app, reception.id, batch(appointments[20:], walkers[60:]), now=NOW)
    assert not failures(after), failures(after)[:5]
    assert sorted(after) == list(range(81, 121))

    numbers = [e.token_number for e in rows()]
    assert numbers == list(range(1, 121))  # no number twice, none skipped
    with clock.fixed(NOW):
        service.today()
        db.session.rollback()
    assert redis_store.client.get(f"q:{TODAY}:counter") == b"120"
    assert sorted(n for d in doctors for n in redis_waiting(d.id)) == list(range(1, 121))
    assert_redis_matches_the_database(doctors)


def test_calling_a_named_token_and_call_next_at_once_never_deadlock(app, reception):
    """The doctor calls token 2 by number while Call next runs for the same queue: one of
    them gets a patient, the other a conflict; never a deadlock or a second current."""
    for _ in range(5):
        doctor = make_user(Role.DOCTOR)
        first = walk_in_now(reception, make_patient(), doctor)
        second = walk_in_now(reception, make_patient(), doctor)

        def named(_actor, doctor_id=doctor.id, token=second):
            me = db.session.get(User, doctor_id)
            return service.set_status(me, token, "WITH_DOCTOR").token_number

        results = run_together(app, doctor.id, [named, calling(doctor.id)], now=NOW)

        called = [r for r in results if isinstance(r, int)]
        assert len(called) == 1, results
        refused = [r for r in results if not isinstance(r, int)]
        assert isinstance(refused[0], Conflict), repr(refused[0])
        assert refused[0].code == "patient_with_doctor"
        entries = {e.token_number: e.status for e in rows() if e.doctor_id == doctor.id}
        assert list(entries.values()).count("WITH_DOCTOR") == 1
        assert entries[called[0]] == "WITH_DOCTOR"
        assert set(entries) == {first, second}
        assert redis_current(doctor.id) == called[0]
        assert redis_waiting(doctor.id) == [t for t in (first, second) if t != called[0]]
