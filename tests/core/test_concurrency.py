"""Many writers and several relays at once: the chain has no holes and no duplicates."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import func, select

from qure.auth import service as users
from qure.core import outbox
from qure.core.models import OutboxEvent
from qure.extensions import db, mongo
from qure.patients import service as patients

pytestmark = pytest.mark.concurrency

WRITERS = 30
RELAYS = 3


def _write(app, n: int) -> None:
    with app.app_context():
        try:
            if n % 5 == 0:
                users.create_user(
                    None,
                    {
                        "username": f"staff{n}",
                        "full_name": f"Staff Member {n}",
                        "email": f"staff{n}@clinic.local",
                        "role": "RECEPTION",
                        "password": "long-pass-123",
                    },
                )
            else:
                patients.register(
                    None,
                    {
                        "full_name": f"Concurrent Patient {n}",
                        "date_of_birth": date(1980, 1, 1 + n % 28),
                        "sex": "F",
                        "phone": f"+9196{n:08d}",
                    },
                    confirm_new=True,
                )
            db.session.commit()
        finally:
            db.session.remove()


def _relay_until(app, writers_done: threading.Event, results: list) -> None:
    with app.app_context():
        try:
            while True:
                finished = writers_done.is_set()
                result = outbox.relay()
                results.append(result)
                if finished:
                    return
        finally:
            db.session.remove()


def test_writers_and_relays_at_once_keep_one_gapless_chain(app):
    errors: list[BaseException] = []
    results: list = []
    start = threading.Barrier(WRITERS + RELAYS)
    writers_done = threading.Event()

    def guarded(fn, *args):
        def run():
            try:
                start.wait(timeout=30)
                fn(*args)
            except BaseException as exc:
                errors.append(exc)

        return threading.Thread(target=run)

    writers = [guarded(_write, app, n) for n in range(WRITERS)]
    relays = [guarded(_relay_until, app, writers_done, results) for _ in range(RELAYS)]
    for thread in writers + relays:
        thread.start()
    for thread in writers:
        thread.join(timeout=60)
    writers_done.set()
    for thread in relays:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in writers + relays), "threads still running"
    assert errors == []
    assert all(r.error is None for r in results)

    final = outbox.relay()
    assert final.error is None
    db.session.remove()

    rows = db.session.scalar(select(func.count()).select_from(OutboxEvent))
    assert rows == WRITERS
    docs = list(mongo.db["audit_logs"].find({}, sort=[("seq", 1)]))
    assert len(docs) == rows
    assert [d["seq"] for d in docs] == list(range(1, rows + 1))
    assert len({d["hash"] for d in docs}) == rows
    actions = sorted(d["action"] for d in docs)
    assert actions.count("USER_CREATED") == WRITERS // 5
    assert actions.count("PATIENT_CREATED") == WRITERS - WRITERS // 5
    assert outbox.backlog() == 0
    report = outbox.verify()
    assert report.ok, report.problems
    assert report.checked == rows
    # Every row shipped exactly once overall, counting the relays that ran alongside.
    assert sum(r.shipped for r in results) + final.shipped == rows
    journal = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq)).all()
    assert [r.hash for r in journal] == [d["hash"] for d in docs]


def test_relays_alone_do_not_duplicate_work(app):
    with app.app_context():
        for n in range(40):
            patients.register(
                None,
                {
                    "full_name": f"Backlog Patient {n}",
                    "date_of_birth": date(1975, 3, 1 + n % 28),
                    "sex": "M",
                    "phone": f"+9195{n:08d}",
                },
                confirm_new=True,
            )
        db.session.commit()
        db.session.remove()
    results: list = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def relay_once():
        try:
            with app.app_context():
                start.wait(timeout=30)
                results.append(outbox.relay())
                db.session.remove()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=relay_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(r.chained for r in results) == 40
    assert sum(r.shipped for r in results) == 40
    docs = list(mongo.db["audit_logs"].find({}, sort=[("seq", 1)]))
    assert [d["seq"] for d in docs] == list(range(1, 41))
    assert outbox.verify().ok
