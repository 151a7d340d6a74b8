"""The day's queue at a glance, as `GET /api/v1/queue/today` answers it: per doctor the
current token, the waiting tokens in order and the counts per status, each token lean.

Built from one SQL statement and one Redis round trip whatever the number of tokens, and
cached in Redis as JSON text per queue version (every change of the live order moves it)
and per stamp of the rows the answer shows (the day's slots and tokens, the doctors, the
patients), so that desks asking again between changes cost one small statement and one
Redis read.
The queue pages (`views.py`) read `service.today` instead: they show more of each token.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlalchemy import func, select, union

from qure.auth.models import User
from qure.core import clock
from qure.core.db import rows_stamp
from qure.core.roles import Role
from qure.extensions import db
from qure.patients.models import Patient
from qure.queue import store
from qure.queue.loading import reload
from qure.queue.models import QueueEntry, TokenStatus
from qure.scheduling.doctors import get_doctor, on_duty_query, slots_stamp_query

STATUSES = tuple(s.value for s in TokenStatus)  # the keys of a queue's counts, in order


def today_text(doctor_id: int | None = None, day: date | None = None) -> str:
    """`today` as JSON text, from the cache when nothing it shows has changed since it was
    built. Raises InvalidInput for a `doctor_id` that is not a doctor's."""
    day = day or clock.today()
    doctors, stamp = str(doctor_id or "all"), _stamp(day)
    found = store.cached_today(day, doctors, stamp)
    if found.cached is not None:
        return found.cached
    text = json.dumps(today(doctor_id, day), separators=(",", ":"))
    if found.built:  # else `today` loaded the day, which moved its version on
        # Built after the version and the stamp were read: never older than they say.
        store.cache_today(day, found.version, doctors, stamp, text)
    return text


def _stamp(day: date) -> str:
    """What changes whenever a row the answer shows does: the day's slots (who is on
    duty), the doctors (names, active), the day's tokens and their patients (names). The
    queue's version alone would not do: a call moves it in Redis before its transaction
    commits, and a token's new state may reach Redis only after others read the row. One
    statement."""
    doctors = select(rows_stamp(User)).select_from(User).where(User.role == Role.DOCTOR)
    patients = (
        select(func.concat(rows_stamp(QueueEntry), ":", rows_stamp(Patient)))
        .select_from(Patient)
        .join(QueueEntry, QueueEntry.patient_id == Patient.id)
        .where(QueueEntry.day == day)
    )
    parts = (slots_stamp_query(day), doctors, patients)
    row = db.session.connection().execute(select(*(p.scalar_subquery() for p in parts)))
    return ":".join(row.one())


def today(doctor_id: int | None = None, day: date | None = None) -> dict[str, Any]:
    """The day's queue as JSON-ready values: {date, doctors: [{doctor {id, full_name},
    current, waiting, counts}]}, the doctors as in `service.today` (on duty or holding
    tokens, by name; with `doctor_id`, that one). A token is lean: {id, token_number,
    display, kind, status, urgent, patient {id, full_name}, checked_in_at}, the current
    one with `called_at`, a waiting one with its `position` (waiting tokens in the live
    order of Redis). Raises InvalidInput for a `doctor_id` that is not a doctor's."""
    day = day or clock.today()
    queues: dict[int, dict[str, Any]] = {}
    for row in _day_rows(day, doctor_id):
        doctor, name, token_id, number, kind, status, urgent, checked_in, called, patient, who = row
        queue = queues.get(doctor)
        if queue is None:
            queue = queues[doctor] = {
                "doctor": {"id": doctor, "full_name": name},
                "current": None,
                "waiting": [],
                "counts": dict.fromkeys(STATUSES, 0),
            }
        if token_id is None:
            continue
        queue["counts"][status] += 1
        if status != TokenStatus.WAITING and status != TokenStatus.WITH_DOCTOR:
            continue
        token = {
            "id": token_id,
            "token_number": number,
            "display": f"{number:03d}",
            "kind": kind,
            "status": status,
            "urgent": urgent,
            "patient": {"id": patient, "full_name": who},
            "checked_in_at": checked_in.isoformat(),
        }
        if status == TokenStatus.WAITING:
            queue["waiting"].append(token)
        else:
            token["called_at"] = called.isoformat()
            queue["current"] = token
    if doctor_id is not None and not queues:
        get_doctor(doctor_id)  # an unknown doctor is a field error
    if queues:
        _place(day, queues)
    return {"date": day.isoformat(), "doctors": list(queues.values())}


def _day_rows(day: date, doctor_id: int | None) -> list[tuple]:
    """One statement: each doctor of the day (on duty or holding tokens, by name) with
    their tokens in database queue order, only the columns the answer shows; a doctor
    without tokens is one row with no token. Run as a plain statement, without the ORM's
    work per row."""
    on_duty = on_duty_query(day, doctor_id)
    holding = select(QueueEntry.doctor_id).where(QueueEntry.day == day)
    if doctor_id is not None:
        holding = holding.where(QueueEntry.doctor_id == doctor_id)
    ids = union(on_duty, holding).subquery()
    query = (
        select(
            User.id,
            User.full_name,
            QueueEntry.id,
            QueueEntry.token_number,
            QueueEntry.kind,
            QueueEntry.status,
            QueueEntry.urgent,
            QueueEntry.checked_in_at,
            QueueEntry.called_at,
            Patient.id,
            Patient.full_name,
        )
        .join(ids, ids.c.doctor_id == User.id)
        .outerjoin(QueueEntry, (QueueEntry.doctor_id == User.id) & (QueueEntry.day == day))
        .outerjoin(Patient, Patient.id == QueueEntry.patient_id)
        .order_by(
            User.full_name, User.id, QueueEntry.tier, QueueEntry.sort_at, QueueEntry.token_number
        )
    )
    return db.session.connection().execute(query).all()


def _place(day: date, queues: dict[int, dict[str, Any]]) -> None:
    """Put each doctor's waiting tokens in the live order and number their positions."""
    order = store.loaded_waiting_order(day, list(queues))
    if order is None:
        reload(day)
        order = store.waiting_order(day, list(queues))
    for doctor_id, queue in queues.items():
        rank = {n: i for i, n in enumerate(order[doctor_id])}
        waiting = queue["waiting"]
        # Redis gives the live order; a row it does not list yet keeps the database order.
        waiting.sort(key=lambda t: (t["token_number"] not in rank, rank.get(t["token_number"], 0)))
        for i, token in enumerate(waiting, start=1):
            token["position"] = i
