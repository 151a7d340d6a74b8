"""The import pages: upload, progress, refused rows, templates, size limit, failed jobs."""

from __future__ import annotations

import io
import re

from qure.core import jobs
from qure.extensions import db
from qure.imports.models import Import
from tests.core.test_job_status import breaks
from tests.helpers import csrf_token, flashes, page_text, sign_in
from tests.imports.helpers import PATIENT_HEADER, csv_bytes, patient_rows, run_jobs


def _upload(client, content: bytes, kind: str = "patients", name: str = "people.csv"):
    token = csrf_token(client, "/imports")
    return client.post(
        "/imports",
        data={"csrf_token": token, "kind": kind, "file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def test_admin_uploads_and_sees_progress_then_counts_and_refused_rows(app, client, admin):
    sign_in(client, admin)
    rows = [*patient_rows(3), ("Bad Date", "someday", "F", "9812345678", "")]
    response = _upload(client, csv_bytes(PATIENT_HEADER, rows))
    assert response.status_code == 302
    path = response.headers["Location"]
    waiting = page_text(client.get(path))
    assert '<progress id="import-bar" max="4" value="0">' in waiting
    assert '<meta http-equiv="refresh" content="2">' in waiting  # inside <noscript>
    assert "import-progress.js" in waiting
    run_jobs()
    progress = client.get(path + "/progress").json
    assert (progress["done"], progress["total"], progress["finished"]) == (4, 4, True)
    done = page_text(client.get(path))
    assert '<progress id="import-bar" max="4" value="4">' in done
    assert "http-equiv" not in done
    assert re.search(r'id="count-imported">3<', done)
    table = done.split('id="rejected-rows"')[1]
    assert '<td class="num">5</td>' in table and "date_of_birth:" in table
    listing = page_text(client.get("/imports"))
    assert "people.csv" in listing


def test_the_same_file_again_shows_the_earlier_import(app, client, admin):
    sign_in(client, admin)
    content = csv_bytes(PATIENT_HEADER, patient_rows(2))
    first = _upload(client, content).headers["Location"]
    second = _upload(client, content)
    assert second.headers["Location"] == first
    assert any("imported before" in f for f in flashes(page_text(client.get(first))))
    assert db.session.query(Import).count() == 1


def test_a_wrong_header_is_refused_on_the_file_field(app, client, admin):
    sign_in(client, admin)
    response = _upload(client, b"name,phone\nA,1\n")
    assert response.status_code == 422
    text = page_text(response)
    assert 'id="file-error"' in text and "missing full_name" in text
    assert db.session.query(Import).count() == 0
    assert not [j for j in jobs.queue().job_ids if j.startswith("import-")]


def test_an_upload_over_the_import_limit_is_413_with_a_message(app, client, admin):
    sign_in(client, admin)
    token = csrf_token(client, "/imports")
    saved = app.config["IMPORT_MAX_BYTES"]
    app.config["IMPORT_MAX_BYTES"] = 1024 * 1024
    try:
        big = csv_bytes(PATIENT_HEADER, patient_rows(1)) + b"x" * (1024 * 1024 + 10)
        response = client.post(
            "/imports",
            data={"csrf_token": token, "kind": "patients", "file": (io.BytesIO(big), "b.csv")},
            content_type="multipart/form-data",
        )
    finally:
        app.config["IMPORT_MAX_BYTES"] = saved
    assert response.status_code == 413
    assert "The file is too large: at most 1 MB." in page_text(response)


def test_an_import_may_be_larger_than_other_requests(app, client, admin):
    sign_in(client, admin)
    rows = patient_rows(30_000)  # about 1.2 MB... padded past the app's 2 MB below
    content = csv_bytes(PATIENT_HEADER, [(*r[:4], "x" * 40) for r in rows])
    assert len(content) > app.config["MAX_CONTENT_LENGTH"]
    assert _upload(client, content).status_code == 302


def test_template_csvs(app, client, admin):
    sign_in(client, admin)
    assert "/imports/template/patients.csv" in page_text(client.get("/imports"))
    body = client.get("/imports/template/patients.csv").get_data(as_text=True)
    header, example = body.splitlines()
    assert header.startswith("full_name,date_of_birth")
    assert "Asha Devi Sharma" in example
    medicines = client.get("/imports/template/medicines.csv").get_data(as_text=True)
    assert medicines.startswith("name,generic_name,dosage_form")
    assert client.get("/imports/template/other.csv").status_code == 404


def test_other_roles_may_not_import(app, client, reception, pharmacist):
    for user in (reception, pharmacist):
        sign_in(client, user)
        assert client.get("/imports").status_code == 403
        assert client.get("/admin/jobs").status_code == 403


def test_a_failed_job_is_listed_and_retried(app, client, admin):
    job = jobs.queue().enqueue(breaks)
    run_jobs()
    sign_in(client, admin)
    assert "admin/jobs" in page_text(client.get("/admin/"))
    page = page_text(client.get("/admin/jobs"))
    assert "breaks" in page and "row 3: the file ended inside a quoted cell" in page
    token = csrf_token(client, "/admin/jobs")
    response = client.post(f"/admin/jobs/{job.id}/retry", data={"csrf_token": token})
    assert response.status_code == 302
    assert any("queued again" in f for f in flashes(page_text(client.get("/admin/jobs"))))
    assert jobs.status(job.id).status == "queued"
    assert client.post(f"/admin/jobs/{job.id}/retry", data={}).status_code == 400
