"""Background jobs on RQ: the relay is enqueued after a commit and ships the outbox."""

from __future__ import annotations

import importlib
import sys
import threading
import time
from datetime import date

import mongomock
import pytest
from redis.client import PubSubWorkerThread
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

import qure
from qure import create_app
from qure.core import jobs, outbox, tasks
from qure.core.db import add_pending
from qure.core.models import OutboxEvent
from qure.core.tasks import relay_outbox
from qure.extensions import db, mongo, redis_store
from qure.patients import service as patients
from qure.patients.models import Patient
from tests.helpers import make_patient


def _register(n: int) -> None:
    patients.register(
        None,
        {
            "full_name": f"Job Patient {n}",
            "date_of_birth": date(1990, 2, 1 + n % 27),
            "sex": "M",
            "phone": f"+9197{n:08d}",
        },
        confirm_new=True,
    )


def _queued() -> list[str]:
    return [job.func_name for job in jobs.queue().jobs]


def _run_queue() -> None:
    worker = jobs.ThreadWorker([jobs.queue()], connection=redis_store.client)
    worker.work(burst=True, logging_level="WARNING")


BESIDE: dict[str, list[str]] = {}


@jobs.job
def look_beside() -> None:
    """Note the threads that read Redis pubsub beside this job."""
    BESIDE["listeners"] = [
        t.name for t in threading.enumerate() if isinstance(t, PubSubWorkerThread)
    ]


def test_a_thread_worker_keeps_no_pubsub_thread_reading_a_pooled_connection(app):
    """RQ's command channel is a thread reading a connection of the shared pool, which
    RQ's teardown gives back after waiting a second for that thread: on a loaded machine
    the thread then read the replies of whoever used the connection next (a page right
    after a run of the worker answered 503 `jobs_unavailable`)."""
    jobs.enqueue(look_beside)
    _run_queue()
    assert BESIDE["listeners"] == []
    assert not [t for t in threading.enumerate() if isinstance(t, PubSubWorkerThread)]


HELD, RELEASED = threading.Event(), threading.Event()
LATER: list[str] = []


@jobs.job
def held() -> None:
    """Runs until the test releases it."""
    HELD.set()
    RELEASED.wait(10)


@jobs.job
def later() -> None:
    LATER.append("ran")


@pytest.mark.concurrency
def test_stopping_the_in_process_jobs_finishes_the_job_in_hand_and_takes_no_other(app):
    """`stop` that gives up waiting (the job in hand is slow) must not leave the worker
    taking what is queued next: in the test suite, the next test's jobs; at exit, jobs
    against a Redis and a database about to stop."""
    for event in (HELD, RELEASED):
        event.clear()
    LATER.clear()
    background = jobs.InProcessJobs(app)
    try:
        jobs.enqueue(held)
        assert HELD.wait(10), "the in-process worker did not start the job"
        background.stop(timeout=0.2)  # gives up: the job is still running
        jobs.enqueue(later)
        RELEASED.set()
        for thread in background.threads:
            thread.join(10)
        assert not any(t.is_alive() for t in background.threads)
        assert LATER == []
        assert "tests.core.test_jobs.later" in _queued()
    finally:
        RELEASED.set()
        background.stop()


def test_nothing_is_queued_before_a_commit(app):
    _register(1)
    db.session.flush()
    assert _queued() == []
    db.session.commit()
    assert _queued() == ["qure.core.tasks.relay_outbox"]


def test_a_released_savepoint_is_not_the_commit(app):
    """create_user checks the unique username inside a savepoint; releasing it must not
    run the after-commit work while the transaction itself is still open."""
    from qure.auth import service as users

    _register(2)  # an audited change waiting for the commit
    users.create_user(
        None,
        {
            "username": "savepoint.user",
            "full_name": "Savepoint User",
            "email": "savepoint@test.local",
            "role": "RECEPTION",
            "password": "long-enough-1",
        },
    )
    assert _queued() == []
    db.session.commit()
    assert _queued() == ["qure.core.tasks.relay_outbox"]


def test_one_relay_job_for_many_changes_in_one_commit(app):
    for n in range(12):
        _register(n)
    add_pending()  # the rows this transaction writes at commit
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 12
    db.session.commit()
    assert _queued() == ["qure.core.tasks.relay_outbox"]


def test_a_waiting_relay_job_covers_later_commits(app):
    make_patient(None)
    make_patient(None)
    assert _queued() == ["qure.core.tasks.relay_outbox"]
    _run_queue()
    assert _queued() == []
    make_patient(None)  # the job that ran cleared the marker: a new one is queued
    assert _queued() == ["qure.core.tasks.relay_outbox"]


def test_a_rolled_back_transaction_queues_nothing(app):
    _register(1)
    db.session.rollback()
    db.session.commit()  # a later, empty commit must not run the dropped callback
    assert _queued() == []
    add_pending()  # the rows this transaction writes at commit
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 0


def test_a_rolled_back_savepoint_keeps_the_outer_callbacks(app):
    _register(1)
    nested = db.session.begin_nested()
    _register(2)
    nested.rollback()
    db.session.commit()
    assert _queued() == ["qure.core.tasks.relay_outbox"]
    add_pending()  # the rows this transaction writes at commit
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 1


def test_a_savepoint_a_failed_flush_rolled_back_drops_its_records_and_keeps_the_rest(app):
    """A failed INSERT inside a savepoint rolls the savepoint back through the flush's own
    subtransaction: the audit records written inside it go, the relay is still scheduled."""
    first = make_patient(None, full_name="Kept Outside")
    try:
        with db.session.begin_nested():
            _register(5)  # audited, then the clash below rolls it back
            db.session.add(
                Patient(
                    full_name="Clash",
                    mrn=first.mrn,  # unique: the flush fails
                    date_of_birth=first.date_of_birth,
                    sex="F",
                    phone=first.phone,
                    phone_digits=first.phone_digits,
                )
            )
            db.session.flush()
    except IntegrityError:
        pass
    db.session.commit()
    assert _queued() == ["qure.core.tasks.relay_outbox"]
    actions = db.session.scalars(
        select(OutboxEvent.payload["changes"]["new"]["full_name"].astext)
    ).all()
    assert actions == ["Kept Outside"]


def test_running_the_queue_ships_the_outbox(app):
    for n in range(3):
        make_patient(None, full_name=f"Queued {n}")
    assert mongo.db["audit_logs"].count_documents({}) == 0
    _run_queue()
    docs = list(mongo.db["audit_logs"].find({}, sort=[("seq", 1)]))
    assert [d["seq"] for d in docs] == [1, 2, 3]
    assert [d["changes"]["new"]["full_name"] for d in docs] == ["Queued 0", "Queued 1", "Queued 2"]
    assert outbox.backlog() == 0
    assert outbox.verify().ok
    finished = jobs.queue().finished_job_registry.get_job_ids()
    assert len(finished) == 1
    job = jobs.queue().fetch_job(finished[0])
    assert job.return_value() == {"chained": 3, "shipped": 3, "error": None}


def test_the_relay_job_is_safe_to_run_twice(app):
    make_patient(None)
    jobs.enqueue(relay_outbox)  # a second job besides the one the commit queued
    assert len(_queued()) == 2
    _run_queue()
    assert mongo.db["audit_logs"].count_documents({}) == 1
    assert outbox.verify().ok


def test_enqueue_survives_a_redis_outage(app):
    # An app configured with an unreachable Redis; the extension objects are shared by
    # every app in the process, so the test app's Redis client is put back afterwards.
    saved = redis_store.client
    try:
        broken = create_app(
            {
                "TESTING": True,
                "DATABASE_URL": app.config["DATABASE_URL"],
                "REDIS_URL": "redis://127.0.0.1:1/0",
                "SECRET_KEY": app.config["SECRET_KEY"],
            }
        )
        with broken.app_context():
            started = time.monotonic()
            assert jobs.enqueue(relay_outbox) is False
            tasks.schedule_relay()  # no exception either
            assert time.monotonic() - started < 2
    finally:
        redis_store.client = saved
        mongo.use_client(mongomock.MongoClient(tz_aware=True), "qure_test", embedded=True)
    assert _queued() == []


def test_each_room_declares_its_periodic_jobs_in_its_own_tasks_module(app):
    declared = {p.name: (p.every, p.job.__module__) for p in jobs.periodic_schedules()}
    assert declared == {
        "outbox-sweep": ("OUTBOX_SWEEP_SECONDS", "qure.core.tasks"),
        "close-day": ("CLOSE_DAY_CHECK_SECONDS", "qure.queue.tasks"),
        "daily-summary": ("CLOSE_DAY_CHECK_SECONDS", "qure.reports.tasks"),
        "appointment-reminders": ("REMINDER_CHECK_SECONDS", "qure.scheduling.tasks"),
        "stock-alerts": ("CLOSE_DAY_CHECK_SECONDS", "qure.pharmacy.tasks"),
    }
    intervals = {job.__name__: interval for interval, job in jobs.periodic_jobs()}
    assert intervals == {
        "relay_outbox": float(app.config["OUTBOX_SWEEP_SECONDS"]),
        "close_due_day": float(app.config["CLOSE_DAY_CHECK_SECONDS"]),
        "store_due_summary": float(app.config["CLOSE_DAY_CHECK_SECONDS"]),
        "send_due_reminders": float(app.config["REMINDER_CHECK_SECONDS"]),
        "raise_morning_alerts": float(app.config["CLOSE_DAY_CHECK_SECONDS"]),
    }
    # A periodic job is a declared job too, which the ticker's enqueue accepts.
    assert all(jobs.enqueue(job) for _, job in jobs.periodic_jobs())
    assert sorted(_queued()) == [
        "qure.core.tasks.relay_outbox",
        "qure.pharmacy.tasks.raise_morning_alerts",
        "qure.queue.tasks.close_due_day",
        "qure.reports.tasks.store_due_summary",
        "qure.scheduling.tasks.send_due_reminders",
    ]


@pytest.fixture
def new_room(tmp_path, monkeypatch):
    """A room (package) the app has never seen, with a blueprint and a `tasks.py`; the
    registry is put back as it was afterwards."""
    room = tmp_path / "clinic_room"
    room.mkdir()
    (room / "__init__.py").write_text("")
    (room / "views.py").write_text(
        "from flask import Blueprint\n\nbp = Blueprint('clinic_room', __name__)\n"
    )
    (room / "tasks.py").write_text(
        "from qure.core import jobs\n\n\n"
        "@jobs.periodic(every=90, name='room-report')\n"
        "def room_report():\n    return 'done'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(jobs, "_jobs", dict(jobs._jobs))
    monkeypatch.setattr(jobs, "_periodic", dict(jobs._periodic))
    yield "clinic_room"
    for name in [m for m in sys.modules if m == "clinic_room" or m.startswith("clinic_room.")]:
        del sys.modules[name]


def test_a_rooms_tasks_module_is_imported_with_its_blueprint(app, new_room):
    """Adding a room's periodic job is a file in that room: nothing in core changes."""
    from flask import Flask

    room_views = importlib.import_module(f"{new_room}.views")
    shell = Flask("shell")
    shell.register_blueprint(room_views.bp)
    assert "room-report" not in {p.name for p in jobs.periodic_schedules()}
    qure._import_tasks(shell)
    (schedule,) = [p for p in jobs.periodic_schedules() if p.name == "room-report"]
    assert schedule.interval() == 90.0
    assert schedule.job() == "done"  # runs in an app context of its own
    assert jobs.enqueue(schedule.job) is True
    assert _queued() == [f"{new_room}.tasks.room_report"]


def test_two_periodic_jobs_may_not_share_a_name(app, new_room):
    def other():
        return None

    with pytest.raises(ValueError, match="close-day"):
        jobs.periodic(every=60, name="close-day")(other)


def test_only_declared_jobs_are_enqueued(app):
    def undeclared():
        return None

    with pytest.raises(ValueError, match="not declared"):
        jobs.enqueue(undeclared)
    assert _queued() == []


@pytest.mark.concurrency
def test_in_process_worker_ships_a_committed_change(app):
    background = jobs.InProcessJobs(app)
    try:
        time.sleep(1.0)  # let the ticker's first sweep pass: the commit below must be enough
        patient = make_patient(None, full_name="Shipped In Process")
        deadline = time.monotonic() + 5
        store = mongo.db["audit_logs"]
        while time.monotonic() < deadline and store.count_documents({}) < 1:
            time.sleep(0.1)
        docs = list(store.find({}))
        assert len(docs) == 1, "the in-process worker did not ship the change within 5 s"
        assert docs[0]["resource"] == {"type": "patient", "id": patient.id}
        assert docs[0]["seq"] == 1
    finally:
        background.stop(timeout=10)
        assert not any(t.is_alive() for t in background.threads), "the job threads did not stop"
    db.session.remove()
    assert outbox.backlog() == 0
