"""Jobs someone follows: an id, progress, the result or the error, and a retry."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from qure.core import jobs
from qure.extensions import redis_store
from tests.helpers import bearer, error

ATTEMPTS = {"n": 0}


@jobs.job
def counted(total: int) -> dict:
    for done in range(1, total + 1):
        jobs.report_progress(done, total)
    return {"done": total}


@jobs.job
def breaks() -> None:
    ATTEMPTS["n"] += 1
    raise ValueError("row 3: the file ended inside a quoted cell")


def _run() -> None:
    worker = jobs.ThreadWorker([jobs.queue()], connection=redis_store.client)
    worker.work(burst=True, logging_level="WARNING")


def test_a_submitted_job_reports_progress_and_its_result(app):
    job_id = jobs.submit(counted, 4, meta={"owner_id": 7})
    queued = jobs.status(job_id)
    assert queued.status == "queued" and queued.meta["owner_id"] == 7
    _run()
    done = jobs.status(job_id)
    assert done.status == "finished"
    assert (done.done, done.total) == (4, 4)
    assert done.result == {"done": 4}
    assert jobs.status("no-such-job") is None


@pytest.mark.parametrize("job_id", ["B-s'a", "a b", "é", "\x14"])
def test_an_id_no_job_could_have_is_not_found(app, client, admin, job_id):
    # RQ raised ValueError for such an id, and the API answered 500 (found by tests/test_fuzz_api).
    assert jobs.status(job_id) is None
    answer = client.get(f"/api/v1/jobs/{quote(job_id, safe='')}", headers=bearer(client, admin))
    error(answer, 404, "job_not_found")


def test_submitting_the_same_id_twice_queues_it_once(app):
    first = jobs.submit(counted, 2, job_id="import-abc")
    second = jobs.submit(counted, 2, job_id="import-abc")
    assert first == second == "import-abc"
    assert len(jobs.queue().job_ids) == 1


def test_two_submits_at_the_same_moment_queue_the_job_once(app):
    """Two uploads of one file, or a double click: each checks, then enqueues; the claim on
    the id lets only one of them enqueue."""
    import threading

    barrier = threading.Barrier(8)
    found: list[str] = []

    def submit() -> None:
        with app.app_context():
            barrier.wait()
            found.append(jobs.submit(counted, 2, job_id="bundle-2030-01-07"))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == ["bundle-2030-01-07"] * 8
    assert jobs.queue().job_ids == ["bundle-2030-01-07"]
    assert jobs.queue().fetch_job("bundle-2030-01-07").timeout == jobs.FOLLOWED_TIMEOUT


def test_a_job_that_fails_is_retried_after_a_pause_before_it_counts_as_failed(app):
    """`submit` (and `enqueue`) give a job three more tries, 10, 30 and 60 s apart: after
    its first failure it waits in RQ's schedule (the worker's scheduler enqueues it when
    due), and it is not among the failed jobs the admin sees."""
    job_id = jobs.submit(breaks)
    _run()
    waiting = jobs.queue().fetch_job(job_id)
    assert jobs.status(job_id).status == "scheduled"
    assert waiting.retries_left == 2
    assert job_id in jobs.queue().scheduled_job_registry.get_job_ids()
    assert jobs.failed() == []


def test_a_failed_job_is_listed_with_its_error_and_can_be_retried(app):
    ATTEMPTS["n"] = 0  # other tests run `breaks` too
    job = jobs.queue().enqueue(breaks)  # no retries: it fails at once
    _run()
    listed = jobs.failed()
    assert [f.id for f in listed] == [job.id]
    assert listed[0].error == "ValueError: row 3: the file ended inside a quoted cell"
    assert listed[0].name == "breaks"
    assert jobs.retry(job.id) is True
    assert jobs.status(job.id).status == "queued"
    assert jobs.retry("not-failed") is False
    _run()
    assert ATTEMPTS["n"] == 2


def test_a_finished_id_submitted_again_starts_afresh(app):
    jobs.submit(counted, 4, job_id="bundle-again")
    _run()
    assert (jobs.status("bundle-again").done, jobs.status("bundle-again").total) == (4, 4)
    jobs.submit(counted, 2, job_id="bundle-again")
    again = jobs.status("bundle-again")
    assert (again.status, again.done, again.total, again.result) == ("queued", 0, 0, None)
    _run()
    assert jobs.status("bundle-again").result == {"done": 2}
