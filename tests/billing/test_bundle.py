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
from qure.extensions import redis_store
from tests.billing.test_receipts import manual, pdf_text
from tests.helpers import TODAY, form_post, make_user, page_text, sign_in

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
