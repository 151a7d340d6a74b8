"""The import job: reads an uploaded file's rows in chunks, each chunk one transaction, and
reports its progress. It takes the import's id, never the data, and is safe to run twice:
a run goes on after the rows already counted, and the natural keys (see
`qure.imports.service`) keep a row imported twice from adding anything twice."""

from __future__ import annotations

from itertools import islice

from redis.exceptions import RedisError

from qure.core import audit, jobs
from qure.core.http import transaction
from qure.imports import service
from qure.imports.models import Import, ImportStatus

# An import job may run this long a row (and never less than a followed job's default).
SECONDS_A_ROW = 0.02


@jobs.job
def run_import(import_id: int) -> dict:
    """Import every row not yet imported; returns the import's counts. A chunk another run
    of the same import did meanwhile is not done again: this run reads on from where the
    import has got to."""
    # The audit records of the rows name the job in place of a request.
    audit.set_context(None, service.job_id_of(import_id))
    try:
        with transaction(None, catch=()):
            upload = service.begin(import_id)
        if upload is not None:
            jobs.report_progress(upload.processed, upload.total_rows)
            _run_chunks(import_id, upload.processed, upload.total_rows)
            with transaction(None, catch=()):
                upload = service.finish(import_id)
        else:
            upload = service.get_import(import_id)
        jobs.report_progress(upload.total_rows, upload.total_rows)
        return _counts(upload)
    finally:
        audit.clear_context()


def _run_chunks(import_id: int, start: int, total: int) -> None:
    """Import the rows from `start` a chunk (one transaction) at a time, reporting progress
    after each; when a chunk finds the import elsewhere than `start` (another run got there
    first), read on from where it is."""
    while start < total:
        columns, rows = service.pending_rows(import_id, start)
        moved = False
        while chunk := list(islice(rows, service.CHUNK_ROWS)):
            with transaction(None, catch=()):
                upload = service.import_rows(import_id, columns, chunk, start)
            jobs.report_progress(upload.processed, upload.total_rows)
            if upload.status == ImportStatus.FINISHED or upload.processed >= total:
                return
            if upload.processed != start + len(chunk):  # another run did this chunk
                start, moved = upload.processed, True
                break
            start = upload.processed
        if not moved:
            return  # the file has no more records (it cannot have fewer than counted)


def _counts(upload: Import) -> dict:
    return {
        "import_id": upload.id,
        "imported": upload.imported,
        "duplicates": upload.duplicates,
        "rejected": upload.rejected,
    }


def timeout_of(upload: Import) -> int:
    """Seconds the import's job may run: FOLLOWED_TIMEOUT, or more for a file that large."""
    return max(jobs.FOLLOWED_TIMEOUT, int(upload.total_rows * SECONDS_A_ROW))


def submit(upload: Import) -> str | None:
    """Start (or find running) the job of an import that is not finished; its meta names
    the admin who uploaded it (the job's owner) and the import; it may run for a time
    scaled to the file's rows. A job that failed for good is retried. Returns the job id,
    or None for an import read to the end already (nothing to start). Raises
    JobsUnavailable when Redis does not answer (the caller tells the user; the file is
    kept)."""
    if upload.status == ImportStatus.FINISHED:
        return None
    try:
        known = jobs.status(upload.job_id)
        if known is not None and known.status == "failed" and jobs.retry(upload.job_id):
            return upload.job_id
        return jobs.submit(
            run_import,
            upload.id,
            job_id=upload.job_id,
            meta={"owner_id": upload.created_by_id, "import_id": upload.id},
            timeout=timeout_of(upload),
        )
    except RedisError as exc:
        raise jobs.JobsUnavailable(
            "Background jobs are unavailable just now; the file is kept: send it again later "
            "to start the import."
        ) from exc
