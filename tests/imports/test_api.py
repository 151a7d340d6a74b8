"""POST /api/v1/imports/{kind} and GET /api/v1/jobs/{id}."""

from __future__ import annotations

import io

from qure.core import jobs
from tests.helpers import bearer, error
from tests.imports.helpers import PATIENT_HEADER, csv_bytes, patient_rows, run_jobs


def _post(client, headers, content: bytes, kind: str = "patients"):
    return client.post(
        f"/api/v1/imports/{kind}",
        data={"file": (io.BytesIO(content), "p.csv")},
        content_type="multipart/form-data",
        headers=headers,
    )


def test_import_then_follow_the_job_to_its_end(app, client, admin):
    auth = bearer(client, admin)
    rows = [*patient_rows(3), ("Bad", "1990-01-01", "Q", "9812345678", "")]
    response = _post(client, auth, csv_bytes(PATIENT_HEADER, rows))
    assert response.status_code == 202, response.json
    job_id, import_id = response.json["job_id"], response.json["import_id"]
    queued = client.get(f"/api/v1/jobs/{job_id}", headers=auth).json
    assert queued["status"] == "queued" and queued["name"] == "run_import"
    run_jobs()
    done = client.get(f"/api/v1/jobs/{job_id}", headers=auth).json
    assert done["status"] == "finished"
    assert done["progress"] == {"done": 4, "total": 4}
    assert done["result"] == {
        "import_id": import_id,
        "imported": 3,
        "duplicates": 0,
        "rejected": 1,
    }
    assert [r["line"] for r in done["rejected"]] == [5]
    assert done["rejected"][0]["reason"].startswith("sex:")
    again = _post(client, auth, csv_bytes(PATIENT_HEADER, rows))
    assert again.status_code == 200
    assert again.json == {"job_id": job_id, "import_id": import_id, "existing": True}


def test_wrong_header_missing_file_and_too_large(app, client, admin):
    auth = bearer(client, admin)
    body = error(_post(client, auth, b"name,phone\nA,1\n"), 422, "invalid_input")
    assert "file" in body["fields"]
    missing = client.post(
        "/api/v1/imports/patients", data={}, content_type="multipart/form-data", headers=auth
    )
    assert "file" in error(missing, 422, "invalid_input")["fields"]
    saved = app.config["IMPORT_MAX_BYTES"]
    app.config["IMPORT_MAX_BYTES"] = 1024 * 1024
    try:
        big = csv_bytes(PATIENT_HEADER, patient_rows(1)) + b"x" * (1024 * 1024 + 1)
        error(_post(client, auth, big), 413, "too_large")
    finally:
        app.config["IMPORT_MAX_BYTES"] = saved
    assert not [j for j in jobs.queue().job_ids if j.startswith("import-")]


def test_who_may_import_and_see_a_job(app, client, admin, reception, pharmacist):
    content = csv_bytes(PATIENT_HEADER, patient_rows(1))
    for user in (reception, pharmacist):
        error(_post(client, bearer(client, user), content), 403, "forbidden")
    job_id = _post(client, bearer(client, admin), content).json["job_id"]
    error(
        client.get(f"/api/v1/jobs/{job_id}", headers=bearer(client, reception)),
        404,
        "job_not_found",
    )
    error(
        client.get("/api/v1/jobs/no-such-job", headers=bearer(client, admin)), 404, "job_not_found"
    )
    # A job's owner sees it (a job someone else submitted for them).
    own = jobs.submit(tasks_counted(), 2, meta={"owner_id": reception.id})
    seen = client.get(f"/api/v1/jobs/{own}", headers=bearer(client, reception))
    assert seen.status_code == 200 and seen.json["rejected"] == []


def tasks_counted():
    from tests.core.test_job_status import counted

    return counted


def test_the_upload_is_documented_as_multipart(app, client):
    spec = client.get("/api/v1/openapi.json").json
    post = spec["paths"]["/api/v1/imports/patients"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert "/api/v1/jobs/{job_id}" in spec["paths"]
