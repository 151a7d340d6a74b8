"""The day's receipts as one PDF: asked for from the day close (once however often the
button is pressed), made by a job that reports its progress, then downloaded: one page per
receipt of the invoices paid that day, nothing else."""

from __future__ import annotations

from io import BytesIO

import pytest
from pypdf import PdfReader

from qure.billing import bundles
from qure.billing import tasks as billing_tasks
from qure.core import jobs
from qure.core.errors import Conflict
from qure.core.roles import Role
from qure.extensions import db, redis_store
from tests.billing.test_receipts import manual, pdf_text
from tests.helpers import TODAY, dead_redis, error, form_post, make_user, page_text, sign_in

DAY = TODAY.isoformat()
ITEM = {"kind": "OTHER", "description": "Dressing", "quantity": "1", "unit_price": "100.00"}


def _bundle_jobs() -> list[str]:
    """The queued bundle jobs (paying also queues the outbox relay)."""
    return [j for j in jobs.queue().job_ids if j.startswith("receipts-")]


def _run_jobs() -> None:
    jobs.ThreadWorker([jobs.queue()], connection=redis_store.client).work(
        burst=True, logging_level="WARNING"
    )


@pytest.fixture
def paid_day(desk, patient):
    """Three invoices paid today and one finalised but unpaid (no receipt in the bundle)."""
    numbers = []
    for _ in range(3):
        invoice = manual(desk, patient, [ITEM])
        final = desk.post(f"/{invoice['id']}/finalize").get_json()
        assert desk.pay(final).status_code == 200
        numbers.append(final["number"])
    unpaid = manual(desk, patient, [ITEM])
    desk.post(f"/{unpaid['id']}/finalize")
    return numbers


def test_the_job_makes_one_page_per_paid_receipt_and_reports_progress(app, paid_day):
    job_id = billing_tasks.submit_bundle(TODAY)
    assert job_id == f"receipts-{DAY}"
    assert billing_tasks.bundle_progress(TODAY)["state"] == "queued"
    _run_jobs()
    status = jobs.status(job_id)
    assert status.status == "finished" and (status.done, status.total) == (3, 3)
    bundle = bundles.get(TODAY)
    reader = PdfReader(BytesIO(bundle.pdf))
    assert len(reader.pages) == 3
    for page, number in zip(reader.pages, paid_day, strict=True):
        assert number in page.extract_text()
    assert "UNPAID" not in pdf_text(bundle.pdf)
    progress = billing_tasks.bundle_progress(TODAY)
    assert progress["state"] == "ready" and progress["receipts"] == 3


def test_submitting_twice_queues_once(app, paid_day):
    first = billing_tasks.submit_bundle(TODAY)
    second = billing_tasks.submit_bundle(TODAY)
    assert first == second
    assert _bundle_jobs() == [first]


def test_a_day_with_nothing_paid_is_refused(app):
    with pytest.raises(Conflict) as refused:
        billing_tasks.submit_bundle(TODAY)
    assert refused.value.code == "no_receipts"
    assert _bundle_jobs() == []


def test_the_day_close_button_queues_it_and_the_page_follows_it_to_the_download(
    app, client, reception, paid_day
):
    sign_in(client, reception)
    close_page = f"/billing/day-close?date={DAY}"
    assert "Put the receipts in one PDF" in page_text(client.get(close_page))
    for _ in range(2):
        asked = form_post(client, f"/billing/receipts/{DAY}", {}, page=close_page)
        assert asked.status_code == 302 and asked.location.endswith(f"/billing/receipts/{DAY}")
    assert len(_bundle_jobs()) == 1
    waiting = client.get(f"/billing/receipts/{DAY}")
    assert '<meta http-equiv="refresh" content="2">' in page_text(waiting)
    assert "Waiting to start" in page_text(waiting)
    assert client.get(f"/billing/receipts/{DAY}/progress").get_json()["state"] == "queued"
    _run_jobs()
    ready = page_text(client.get(f"/billing/receipts/{DAY}"))
    assert "http-equiv" not in ready and "3 receipts" in ready
    assert f'href="/billing/receipts/{DAY}.pdf"' in ready
    answer = client.get(f"/billing/receipts/{DAY}/progress").get_json()
    assert answer["state"] == "ready" and answer["download_url"] == f"/billing/receipts/{DAY}.pdf"
    download = client.get(f"/billing/receipts/{DAY}.pdf")
    assert download.status_code == 200 and download.mimetype == "application/pdf"
    assert f"filename=receipts-{DAY}.pdf" in download.headers["Content-Disposition"]
    assert len(PdfReader(BytesIO(download.get_data())).pages) == 3


def test_nothing_paid_flashes_the_reason_on_the_day_close(app, client, reception):
    sign_in(client, reception)
    close_page = f"/billing/day-close?date={DAY}"
    asked = form_post(client, f"/billing/receipts/{DAY}", {}, page=close_page)
    assert asked.status_code == 302
    assert "Nothing was paid on" in page_text(client.get(asked.location))
    assert client.get(f"/billing/receipts/{DAY}.pdf").status_code == 404


@pytest.mark.parametrize("role", [Role.PHARMACIST, Role.DOCTOR])
def test_only_the_billing_desk_may_ask_for_or_download_it(app, client, role):
    sign_in(client, make_user(role))
    for url in (f"/billing/receipts/{DAY}", f"/billing/receipts/{DAY}.pdf"):
        assert client.get(url).status_code == 403
    asked = form_post(client, f"/billing/receipts/{DAY}", {}, page="/home", follow_redirects=True)
    assert asked.status_code == 403
    assert _bundle_jobs() == []


def test_a_redis_outage_answers_503_on_the_page_and_its_progress(
    app, client, reception, paid_day, monkeypatch
):
    sign_in(client, reception)
    monkeypatch.setattr(redis_store, "client", dead_redis())
    page = client.get(f"/billing/receipts/{DAY}")
    assert page.status_code == 503
    text = page_text(page)
    assert "Background jobs are unavailable just now: try again in a few minutes." in text
    assert f"Receipts of {TODAY:%a} " in text and "Day close" in text  # in the layout
    assert "bundle-download" not in text and "http-equiv" not in text
    answer = client.get(f"/billing/receipts/{DAY}/progress")
    assert error(answer, 503, "jobs_unavailable")
    asked = form_post(client, f"/billing/receipts/{DAY}", {}, page=f"/billing/day-close?date={DAY}")
    assert asked.status_code == 302  # the day close says why
    assert "Background jobs are unavailable" in page_text(client.get(asked.location))


def test_a_remake_that_failed_is_shown_beside_the_earlier_bundle_and_can_be_run_again(
    app, client, reception, paid_day
):
    billing_tasks.submit_bundle(TODAY)
    _run_jobs()
    # The re-make fails (here: the job is given a day that does not exist), for good.
    # No retries, so that it fails at once; the finished run is forgotten first, as submit
    # forgets it.
    jobs.queue().fetch_job(bundles.job_id(TODAY)).delete()
    jobs.queue().enqueue(billing_tasks.bundle_receipts, "2030-02-30", job_id=bundles.job_id(TODAY))
    _run_jobs()

    progress = billing_tasks.bundle_progress(TODAY)
    assert progress["state"] == "ready" and progress["receipts"] == 3
    assert progress["last_failed"] is True
    assert "ValueError" in progress["error"] and "earlier ones" in progress["error"]
    sign_in(client, reception)
    text = page_text(client.get(f"/billing/receipts/{DAY}"))
    assert f'href="/billing/receipts/{DAY}.pdf"' in text
    assert 'id="bundle-last-failed"' in text and "The last attempt" in text
    assert "ValueError" in text
    answer = client.get(f"/billing/receipts/{DAY}/progress").get_json()
    assert answer["last_failed"] is True and answer["download_url"].endswith(f"{DAY}.pdf")

    billing_tasks.submit_bundle(TODAY)  # asked again: queued afresh, no progress left over
    queued = billing_tasks.bundle_progress(TODAY)
    assert (queued["state"], queued["done"], queued["last_failed"]) == ("queued", 0, False)
    _run_jobs()
    again = billing_tasks.bundle_progress(TODAY)
    assert again["state"] == "ready" and again["last_failed"] is False
    assert "bundle-last-failed" not in page_text(client.get(f"/billing/receipts/{DAY}"))


def test_the_job_may_run_longer_for_a_day_of_more_receipts(app, paid_day):
    job_id = billing_tasks.submit_bundle(TODAY)
    timeout = jobs.queue().fetch_job(job_id).timeout
    assert timeout == billing_tasks.bundle_timeout(3)
    assert 180 <= timeout < billing_tasks.bundle_timeout(300) < jobs.FOLLOWED_TIMEOUT


def test_a_run_killed_before_its_commit_keeps_the_earlier_bundle_and_a_rerun_is_clean(
    app, desk, patient, paid_day
):
    billing_tasks.submit_bundle(TODAY)
    _run_jobs()
    before = bundles.get(TODAY)
    earlier = (bytes(before.pdf), before.made_at)
    invoice = manual(desk, patient, [ITEM])
    assert desk.pay(desk.post(f"/{invoice['id']}/finalize").get_json()).status_code == 200
    # A run killed half-way: every receipt rendered and the bundle written, never committed
    # (the worker died; PostgreSQL drops what its connection had not committed).
    seen = []
    with app.app_context():  # the run's own session, as in the worker
        bundles.make(TODAY, progress=lambda done, total: seen.append((done, total)))
        db.session.rollback()
    assert seen[-1] == (4, 4)
    db.session.expire_all()
    kept = bundles.get(TODAY)
    assert (bytes(kept.pdf), kept.made_at) == earlier and kept.receipts == 3
    billing_tasks.submit_bundle(TODAY)
    _run_jobs()
    db.session.expire_all()  # the test's session still holds the earlier row
    remade = bundles.get(TODAY)
    assert remade.receipts == 4 and len(PdfReader(BytesIO(remade.pdf)).pages) == 4
