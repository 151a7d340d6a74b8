"""Fault drill: a worker killed in the middle of a job; the job is retried by another
worker and its effect happens once.

The job is a patient import (600 rows, committed 200 at a time), its queue on a Redis of
the drill's own. The worker is a real process of its own (`tests.drills.worker_main`:
what `flask worker` runs), beating every second. While it imports, a receptionist
registers at the desk someone with the same phone and date of birth as row 251 (a twin)
and has not saved yet: the import waits for her at that row (registrations of one phone
and date of birth go one at a time), with its first chunk committed and half of the
second written but not. The worker is then killed with SIGKILL, its scheduler with it (as
when its container or machine dies), and the receptionist gives up. A new worker is
started.

What is checked: the dead worker's job is taken for abandoned once its heartbeat lapses
and is retried (one of its retries spent, never listed as failed); the retry reads on
from the rows committed, so every patient of the file is on file exactly once and the
import's counts are the file's; the job answers finished with those counts.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from rq.job import Job
from sqlalchemy import func, select, text

from qure.core import jobs
from qure.core.roles import Role
from qure.extensions import db, redis_store
from qure.imports.models import Import, ImportStatus
from qure.patients import service as patients
from qure.patients.models import Patient
from tests.drills.redis_server import own_redis_server
from tests.helpers import bearer, make_user
from tests.imports.helpers import PATIENT_HEADER, csv_bytes, patient_rows

pytestmark = pytest.mark.concurrency

ROOT = Path(__file__).resolve().parents[2]
ROWS = 600  # three chunks of 200
HELD_ROW = 250  # in the second chunk: the receptionist is registering this person
# Seconds: the dead worker's job is abandoned after three beats. More than the app's Redis
# reply timeout (2 s), which an idle worker's wait for a job must not be cut by.
HEARTBEAT = 3
LIVE_BEAT = 1  # the live worker's, below
STEP_TIMEOUT = 30.0
# Retried at once. A retry that waits sits in RQ's schedule until a worker's scheduler
# enqueues it, and the dead worker's scheduler leaves its lock for a minute: the new
# worker's scheduler starts only then.
RETRY_SECONDS = "0"


def wait_for(what: str, check: Callable[[], object], timeout: float = STEP_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; sessions: {sessions()}")
        time.sleep(0.05)


class WorkerProcess:
    """`python -m tests.drills.worker_main` in a process group of its own (the worker and
    the scheduler it forks), its output kept in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.output = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.drills.worker_main"],
            cwd=ROOT,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL to the worker and its scheduler: nothing runs on the way out."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(STEP_TIMEOUT)
        self.output.close()

    def stop(self) -> None:
        """A warm shutdown (SIGTERM), then SIGKILL if it does not end."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        self.kill()


@pytest.fixture
def retry_at_once(app):
    """The retries a job is enqueued with are the enqueuing app's: this one's too."""
    saved = app.config["JOB_RETRY_SECONDS"]
    app.config["JOB_RETRY_SECONDS"] = RETRY_SECONDS
    yield
    app.config["JOB_RETRY_SECONDS"] = saved


@pytest.fixture
def own_redis(app):
    """Jobs on a Redis of the drill's own: the shared test server may be flushed by another
    test run meanwhile, and the job with it."""
    with own_redis_server(app) as server:
        yield server


@pytest.fixture
def worker_env(app, urls, own_redis, retry_at_once):
    database, _shared = urls
    redis_url = own_redis.url
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "MONGO_"))}
    env.update(
        {
            "QURE_ENV": "testing",
            "DATABASE_URL": database,
            "REDIS_URL": redis_url,
            "SECRET_KEY": app.config["SECRET_KEY"],
            "WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT),
            "JOB_RETRY_SECONDS": RETRY_SECONDS,
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


@pytest.fixture
def workers(worker_env):
    folder = Path(tempfile.mkdtemp(prefix="qure-drill-worker-"))
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(worker_env, folder / "worker.log")
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
        log = folder / "worker.log"
        if log.exists():
            # The workers' own account, for a drill that fails.
            sys.stderr.write(log.read_text(errors="replace")[-6000:])
            log.unlink()
        folder.rmdir()


def sessions() -> list[tuple]:
    """What each session of the database is doing (for a drill that times out)."""
    with db.engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT pid, state, wait_event_type, wait_event, left(query, 120) "
                "FROM pg_stat_activity WHERE datname = current_database()"
            )
        ).all()


def import_state(import_id: int) -> tuple[str, int, int, int, int]:
    with db.engine.connect() as conn:
        row = conn.execute(
            select(
                Import.status,
                Import.processed,
                Import.imported,
                Import.duplicates,
                Import.rejected,
            ).where(Import.id == import_id)
        ).one()
    return tuple(row)


def committed_patients() -> int:
    with db.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(Patient))


def waiting_on_a_lock() -> bool:
    """Whether a session is waiting for an advisory lock (the import, on the person the
    desk is registering)."""
    with db.engine.connect() as conn:
        return bool(
            conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND wait_event = 'advisory' AND datname = current_database()"
                )
            )
        )


def test_a_worker_killed_in_the_middle_of_an_import(app, client, workers):
    admin = make_user(Role.ADMIN)
    rows = patient_rows(ROWS)
    auth = bearer(client, admin)
    sent = client.post(
        "/api/v1/imports/patients",
        data={"file": (io.BytesIO(csv_bytes(PATIENT_HEADER, rows)), "patients.csv")},
        content_type="multipart/form-data",
        headers=auth,
    )
    assert sent.status_code == 202, sent.get_data(as_text=True)
    job_id, import_id = sent.json["job_id"], sent.json["import_id"]

    # At the desk, a receptionist is registering a twin of row 251's person (the same
    # phone and date of birth) and has not saved yet.
    _name, born, _sex, phone, _allergies = rows[HELD_ROW]
    twin = {"full_name": "Anjali Twin", "date_of_birth": date.fromisoformat(born), "sex": "F"}
    patients.register(admin, {**twin, "phone": phone})

    first = workers()
    wait_for("the first chunk", lambda: import_state(import_id)[1] == 200)
    wait_for("the import to wait at row 251", waiting_on_a_lock)
    assert import_state(import_id)[:2] == (ImportStatus.RUNNING, 200)
    assert committed_patients() == 200
    running = client.get(f"/api/v1/jobs/{job_id}", headers=auth).json
    assert running["status"] == "started"
    assert running["progress"] == {"done": 200, "total": ROWS}

    first.kill()
    db.session.rollback()  # the receptionist gives up: the import may go on
    assert committed_patients() == 200  # the killed chunk's rows were never committed
    killed_at = time.monotonic()

    second = workers()
    finished = wait_for(
        "the import to finish",
        lambda: import_state(import_id)[0] == ImportStatus.FINISHED,
        timeout=45.0,
    )
    assert finished
    # Not before the dead worker's heartbeat lapsed: three beats.
    assert time.monotonic() - killed_at >= 2 * HEARTBEAT
    assert second.process.poll() is None

    # Each patient of the file once; the import's counts are the file's.
    assert import_state(import_id) == (ImportStatus.FINISHED, ROWS, ROWS, 0, 0)
    assert committed_patients() == ROWS
    with db.engine.connect() as conn:
        names = conn.execute(
            select(Patient.full_name, func.count()).group_by(Patient.full_name)
        ).all()
    assert sorted(names) == sorted((row[0], 1) for row in rows)

    # The job was retried (one of its three retries spent), never failed.
    done = client.get(f"/api/v1/jobs/{job_id}", headers=auth).json
    assert done["status"] == "finished"
    assert done["progress"] == {"done": ROWS, "total": ROWS}
    expected = {"import_id": import_id, "imported": ROWS, "duplicates": 0, "rejected": 0}
    assert done["result"] == expected
    assert Job.fetch(job_id, connection=redis_store.client).retries_left == jobs.RETRIES - 1
    assert jobs.failed() == []
    # Waiting for jobs, neither worker lost its connection to Redis.
    assert "could not connect to Redis" not in second.log.read_text(errors="replace")


@jobs.job
def takes_a_while(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


def test_a_live_worker_with_a_long_job_is_not_taken_for_dead(app, own_redis):
    """The other side: a job that runs longer than three beats, on a worker that is alive,
    stays its worker's; the maintenance any worker runs does not hand it out again."""
    job_id = jobs.submit(takes_a_while, 5 * LIVE_BEAT)
    worker = jobs.ThreadWorker([jobs.queue()], connection=redis_store.client, heartbeat=LIVE_BEAT)

    def work() -> None:
        with app.app_context():  # the job runs in this app, as in `flask serve`
            worker.work(burst=True, logging_level="WARNING")

    runner = threading.Thread(target=work)
    runner.start()
    try:
        wait_for("the job to start", lambda: jobs.status(job_id).status == "started")
        time.sleep(4 * LIVE_BEAT)  # past three beats since it started
        jobs.queue().started_job_registry.cleanup()  # what a worker's maintenance does
        assert jobs.status(job_id).status == "started"
        assert Job.fetch(job_id, connection=redis_store.client).retries_left == jobs.RETRIES
    finally:
        runner.join(STEP_TIMEOUT)
    assert not runner.is_alive()
    done = jobs.status(job_id)
    assert (done.status, done.result) == ("finished", "done")
    assert jobs.queue().job_ids == []


def test_an_idle_worker_waits_for_jobs_without_losing_redis(app, own_redis):
    """A worker waits for a job a beat at a time, blocked in Redis, longer than the app's
    Redis client lets a reply take (2 s): its wait must end as a wait (nothing queued),
    not as a lost connection, which RQ answers with a pause and a longer one each time."""
    redis_store.client.ping()  # the app's client holds a connection already
    saved = app.config["WORKER_HEARTBEAT_SECONDS"]
    app.config["WORKER_HEARTBEAT_SECONDS"] = HEARTBEAT
    try:
        worker = jobs.make_worker()
    finally:
        app.config["WORKER_HEARTBEAT_SECONDS"] = saved
    assert worker.dequeue_timeout == HEARTBEAT
    found: list = []

    def wait() -> None:
        found.append(worker.dequeue_job_and_maintain_ttl(HEARTBEAT, max_idle_time=HEARTBEAT + 1))

    waiting = threading.Thread(target=wait, daemon=True)
    started = time.monotonic()
    waiting.start()
    waiting.join(STEP_TIMEOUT)
    assert not waiting.is_alive(), "the worker lost its connection waiting for a job"
    assert found == [None]
    assert HEARTBEAT <= time.monotonic() - started < 3 * HEARTBEAT
    worker.connection.close()
