"""The import job: reads an uploaded file's rows in chunks, each chunk one transaction, and
reports its progress. It takes the import's id, never the data, and is safe to run twice:
a run goes on after the rows already counted, and the natural keys (see
`qure.imports.service`) keep a row imported twice from adding anything twice."""

from __future__ import annotations

from qure.core import audit, jobs
from qure.core.http import transaction
from qure.imports import service
from qure.imports.models import Import


@jobs.job
def run_import(import_id: int) -> dict:
    """Import every row not yet imported; returns the import's counts."""
    # The audit records of the rows name the job in place of a request.
    audit.set_context(None, service.job_id_of(import_id))
    try:
        with transaction(None, catch=()):
            upload = service.begin(import_id)
        if upload is not None:
            columns, rows = service.pending_rows(import_id)
            done = upload.processed
            jobs.report_progress(done, upload.total_rows)
            for start in range(0, len(rows), service.CHUNK_ROWS):
                chunk = rows[start : start + service.CHUNK_ROWS]
                with transaction(None, catch=()):
                    upload = service.import_rows(import_id, columns, chunk)
                jobs.report_progress(upload.processed, upload.total_rows)
            with transaction(None, catch=()):
                upload = service.finish(import_id)
        else:
            upload = service.get_import(import_id)
        jobs.report_progress(upload.total_rows, upload.total_rows)
        return _counts(upload)
    finally:
        audit.clear_context()


def _counts(upload: Import) -> dict:
    return {
        "import_id": upload.id,
        "imported": upload.imported,
        "duplicates": upload.duplicates,
        "rejected": upload.rejected,
    }


def submit(upload: Import) -> str:
    """Start (or find running) the job of an import that is not finished; its meta names
    the admin who uploaded it (the job's owner) and the import. Returns the job id. A
    Redis outage raises (the caller tells the user; the file is kept). A job that failed
    for good is retried."""
    known = jobs.status(upload.job_id)
    if known is not None and known.status == "failed" and jobs.retry(upload.job_id):
        return upload.job_id
    return jobs.submit(
        run_import,
        upload.id,
        job_id=upload.job_id,
        meta={"owner_id": upload.created_by_id, "import_id": upload.id},
    )
