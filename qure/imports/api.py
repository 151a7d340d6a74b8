"""`/api/v1/imports/{patients|medicines}` (ADMIN: upload a CSV; its job imports it) and
`/api/v1/jobs/{id}` (a job's status and progress, for the admin or the job's owner)."""

from __future__ import annotations

from flask import current_app, g
from flask_smorest import Blueprint
from flask_smorest.fields import Upload
from marshmallow import Schema, fields
from redis.exceptions import RedisError

from qure.core import jobs
from qure.core.errors import NotFound
from qure.core.http import body_limit, transactional
from qure.core.roles import Role, api_roles
from qure.core.schemas import ErrorSchema
from qure.imports import service, tasks
from qure.imports.models import ImportKind
from qure.imports.views import IMPORTERS, LIMIT_SETTING

blp = Blueprint("api_imports", __name__, url_prefix="/api/v1/imports", description="Imports")
jobs_blp = Blueprint("api_jobs", __name__, url_prefix="/api/v1/jobs", description="Jobs")


class UploadSchema(Schema):
    file = Upload(
        required=True,
        metadata={"description": "A UTF-8 CSV file with a header line (see /imports/template)."},
    )


class ImportStartedSchema(Schema):
    job_id = fields.String(metadata={"description": "Follow it at /api/v1/jobs/{job_id}"})
    import_id = fields.Integer()
    existing = fields.Boolean(
        metadata={"description": "True when the same file was uploaded before: its import"}
    )


class ProgressSchema(Schema):
    done = fields.Integer()
    total = fields.Integer()


class RejectedRowSchema(Schema):
    line = fields.Integer(metadata={"description": "The file's line (the header is line 1)"})
    reason = fields.String(metadata={"description": "Names the column(s) at fault"})
    values = fields.List(fields.String())


class JobSchema(Schema):
    id = fields.String()
    name = fields.String()
    status = fields.String(
        metadata={"description": "queued | started | finished | failed | scheduled (to retry)"}
    )
    progress = fields.Nested(ProgressSchema)
    result = fields.Raw(allow_none=True)
    error = fields.String(allow_none=True, metadata={"description": "The error's last line"})
    rejected = fields.List(
        fields.Nested(RejectedRowSchema),
        metadata={"description": "An import's refused rows (the first 1000)"},
    )


def _upload(kind: ImportKind, files: dict):
    sent = files["file"]
    found, new = service.receive(
        g.actor, kind, sent.filename, sent.read(), current_app.config[LIMIT_SETTING]
    )
    return found, new


def _started(kind: ImportKind, files: dict):
    with_commit = transactional(_upload)
    found, new = with_commit(kind, files)
    tasks.submit(found)  # JobsUnavailable (503) when Redis does not answer: the file is kept
    body = {"job_id": found.job_id, "import_id": found.id, "existing": not new}
    return body, 202 if new else 200


DOC = {
    "responses": {
        "200": {
            "description": "The same file was uploaded before: its import",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ImportStarted"}}
            },
        }
    }
}


@blp.post("/patients")
@api_roles(*IMPORTERS)
@body_limit(LIMIT_SETTING)
@blp.arguments(UploadSchema, location="files")
@blp.response(202, ImportStartedSchema)
@blp.alt_response(413, schema=ErrorSchema, description="too_large")
@blp.alt_response(422, schema=ErrorSchema, description="not a CSV, or the wrong header")
@blp.alt_response(503, schema=ErrorSchema, description="jobs_unavailable")
@blp.doc(**DOC)
def import_patients(files):
    """Import patients from a CSV (multipart field `file`): 202 with the job to follow.
    Same full name, date of birth and phone as a patient on file: skipped as a duplicate."""
    return _started(ImportKind.PATIENTS, files)


@blp.post("/medicines")
@api_roles(*IMPORTERS)
@body_limit(LIMIT_SETTING)
@blp.arguments(UploadSchema, location="files")
@blp.response(202, ImportStartedSchema)
@blp.alt_response(413, schema=ErrorSchema, description="too_large")
@blp.alt_response(422, schema=ErrorSchema, description="not a CSV, or the wrong header")
@blp.alt_response(503, schema=ErrorSchema, description="jobs_unavailable")
@blp.doc(**DOC)
def import_medicines(files):
    """Import medicines and their opening stock from a CSV (multipart field `file`): 202
    with the job to follow. Same name, strength and form: the medicine on file; a batch
    number it already has is not received again."""
    return _started(ImportKind.MEDICINES, files)


@jobs_blp.get("/<job_id>")
@api_roles()
@jobs_blp.response(200, JobSchema)
@jobs_blp.alt_response(404, schema=ErrorSchema, description="job_not_found")
@jobs_blp.alt_response(503, schema=ErrorSchema, description="jobs_unavailable")
def job_status(job_id: str):
    """A background job's status, progress, result or error (and an import's refused
    rows). Shown to an admin and to the job's owner; to anyone else it is not found."""
    try:
        found = jobs.status(job_id[:100])
    except RedisError as exc:
        raise jobs.JobsUnavailable() from exc
    owner = found.meta.get("owner_id") if found is not None else None
    if found is None or (g.actor.role != Role.ADMIN and owner != g.actor.id):
        raise NotFound("No such job.", "job_not_found")
    rejected = []
    if found.meta.get("import_id"):
        rejected = service.get_import(int(found.meta["import_id"])).rejected_rows
    return {
        "id": found.id,
        "name": found.name,
        "status": found.status,
        "progress": {"done": found.done, "total": found.total},
        "result": found.result,
        "error": found.error,
        "rejected": rejected,
    }
