"""Import pages (ADMIN): upload a CSV of patients or medicines, follow its progress, see
the rows refused; the template CSVs; and the failed background jobs, to retry."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    url_for,
)
from redis.exceptions import RedisError

from qure.core import jobs
from qure.core.errors import InvalidInput
from qure.core.exports import csv_response
from qure.core.forms import ActionForm, checked
from qure.core.http import body_limit, transaction
from qure.core.roles import Role, roles_required
from qure.imports import service, tasks
from qure.imports.forms import ImportForm
from qure.imports.models import ImportKind, ImportStatus
from qure.imports.service import TooLarge

bp = Blueprint("imports", __name__)

# Imports are the admin's: a bulk load of records is a one-off act of running the clinic
# (SPEC lists imports under Admin), not reception's or the pharmacy's daily work.
IMPORTERS = (Role.ADMIN,)
LIMIT_SETTING = "IMPORT_MAX_BYTES"


def _job(job_id: str):
    """The job's status from Redis; None when unknown or Redis does not answer."""
    try:
        return jobs.status(job_id)
    except RedisError:
        return None


def _index_page(form: ImportForm, status: int = 200):
    return render_template(
        "imports/index.html",
        form=form,
        recent=service.recent(),
        kinds=list(ImportKind),
        limit_mb=current_app.config[LIMIT_SETTING] // (1024 * 1024),
    ), status


@bp.route("/imports", methods=["GET", "POST"])
@roles_required(*IMPORTERS)
@body_limit(LIMIT_SETTING)
def index():
    """The upload form and the recent imports; a good upload goes at once to its page."""
    form = ImportForm()
    if not form.is_submitted():
        return _index_page(form)
    if not checked(form):
        return _index_page(form, 422)
    upload = form.file.data
    with transaction(form, catch=(InvalidInput, TooLarge)) as outcome:
        found, new = service.receive(
            g.actor,
            form.kind.data,
            upload.filename,
            upload.read(),
            current_app.config[LIMIT_SETTING],
        )
    if outcome.failed:
        return _index_page(form, outcome.status)
    try:
        tasks.submit(found)
    except jobs.JobsUnavailable as exc:
        flash(exc.message, "error")
    if not new:
        flash(f"This file was imported before ({found.filename}): here is that import.", "info")
    return redirect(url_for(".view", import_id=found.id))


@bp.get("/imports/<int:import_id>")
@roles_required(*IMPORTERS)
def view(import_id: int):
    """An import's progress (a bar, live with JavaScript, refreshed without), and once
    read to the end its counts and the rows refused."""
    upload = service.get_import(import_id)
    job = _job(upload.job_id) if upload.status != ImportStatus.FINISHED else None
    return render_template(
        "imports/view.html",
        upload=service.summary(upload),
        rejected_rows=upload.rejected_rows,
        job_error=job.error if job is not None and job.status == "failed" else None,
    )


@bp.get("/imports/<int:import_id>/progress")
@roles_required(*IMPORTERS)
def progress(import_id: int):
    """The page's figures as JSON, for static/js/import-progress.js."""
    upload = service.get_import(import_id)
    body = service.summary(upload)
    body["created_at"] = body["created_at"].isoformat()
    body["finished_at"] = body["finished_at"].isoformat() if body["finished_at"] else None
    return jsonify(body)


@bp.get("/imports/template/<kind>.csv")
@roles_required(*IMPORTERS)
def template(kind: str):
    """A kind's CSV: its header and one example row."""
    if kind not in set(ImportKind):
        abort(404)
    header, example = service.template(kind)
    return csv_response(f"qure-{kind}-template.csv", header, [example])


@bp.get("/admin/jobs")
@roles_required(Role.ADMIN)
def failed_jobs():
    """Background jobs that failed for good (their retries used up), newest first."""
    try:
        failed = jobs.failed()
        unavailable = False
    except RedisError:
        failed, unavailable = [], True
    return render_template(
        "imports/failed_jobs.html", failed=failed, unavailable=unavailable, action=ActionForm()
    )


@bp.post("/admin/jobs/<job_id>/retry")
@roles_required(Role.ADMIN)
def retry_job(job_id: str):
    """Put a failed job back on the queue."""
    if not checked(ActionForm()):
        abort(400)
    try:
        retried = jobs.retry(job_id[:100])
    except RedisError:
        flash(jobs.JobsUnavailable().message, "error")
        return redirect(url_for(".failed_jobs"))
    if retried:
        flash(f"Job {job_id} is queued again.", "success")
    else:
        flash(f"Job {job_id} is not among the failed jobs.", "error")
    return redirect(url_for(".failed_jobs"))
