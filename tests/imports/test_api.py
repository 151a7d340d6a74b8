"""POST /api/v1/imports/{kind} and GET /api/v1/jobs/{id}."""

from __future__ import annotations

import io

from qure.core import jobs
from qure.extensions import redis_store
from tests.helpers import bearer, csrf_token, dead_redis, error, sign_in
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


def test_a_job_while_redis_is_down_is_unavailable(app, client, admin):
    auth = bearer(client, admin)
    saved = redis_store.client
    redis_store.client = dead_redis()
    try:
        response = client.get("/api/v1/jobs/import-1", headers=auth)
        body = error(response, 503, "jobs_unavailable")
        assert body["message"] == jobs.JobsUnavailable().message
        upload = _post(client, auth, csv_bytes(PATIENT_HEADER, patient_rows(1)))
        error(upload, 503, "jobs_unavailable")
    finally:
        redis_store.client = saved


BIG = 3 * 1024 * 1024  # over MAX_CONTENT_LENGTH (2 MB), under IMPORT_MAX_BYTES (10 MB)


def _big_csv() -> bytes:
    filler = "x" * 1000
    rows = [(f"Person {i}", "1990-01-01", "F", f"98{i:08d}", filler) for i in range(3100)]
    return csv_bytes(PATIENT_HEADER, rows)


def test_only_an_importer_may_send_a_large_file(app, client, admin, reception):
    """The import routes' larger limit is for a caller who may import: anybody else's
    body is refused at the app's MAX_CONTENT_LENGTH before it is read."""
    content = _big_csv()
    assert BIG < len(content) < app.config["IMPORT_MAX_BYTES"]
    for path in ("/api/v1/imports/patients", "/imports"):
        anonymous = client.post(
            path,
            data={"file": (io.BytesIO(content), "p.csv")},
            content_type="multipart/form-data",
        )
        assert anonymous.status_code == 413, path
    refused = _post(client, bearer(client, reception), content)
    error(refused, 413, "too_large")
    wrong_token = _post(client, {"Authorization": "Bearer not-a-token"}, content)
    assert wrong_token.status_code == 413
    accepted = _post(client, bearer(client, admin), content)
    assert accepted.status_code == 202, accepted.json
    sign_in(client, reception)  # signed in, but not an importer
    token = csrf_token(client, "/patients/")
    page = client.post(
        "/imports",
        data={"csrf_token": token, "kind": "patients", "file": (io.BytesIO(content), "p.csv")},
        content_type="multipart/form-data",
    )
    assert page.status_code == 413
