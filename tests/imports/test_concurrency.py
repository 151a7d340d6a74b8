"""Two runs of one import at once (a retry while the first still runs, two workers): real
threads, real commits, the import's row lock between them."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from qure.core.roles import Role
from qure.extensions import db
from qure.imports import service, tasks
from qure.imports.models import Import, ImportStatus
from qure.patients.models import Patient
from tests.helpers import make_user
from tests.imports.helpers import PATIENT_HEADER, csv_bytes, patient_rows

pytestmark = pytest.mark.concurrency

TIMEOUT = 120
ROWS = 450  # three chunks, the last one short


def test_two_runs_at_once_count_each_row_once(app):
    admin = make_user(Role.ADMIN)
    upload, _new = service.receive(
        admin, "patients", "p.csv", csv_bytes(PATIENT_HEADER, patient_rows(ROWS)), 10**7
    )
    import_id = upload.id
    db.session.commit()
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    results: list = [None, None]

    def run(index: int) -> None:
        with app.app_context():
            try:
                barrier.wait()
                results[index] = tasks.run_import(import_id)
            except Exception as exc:  # reported to the test thread
                results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a run is stuck"
    assert not [r for r in results if isinstance(r, Exception)], results
    db.session.rollback()
    db.session.expire_all()
    done = db.session.get(Import, import_id)
    assert done.status == ImportStatus.FINISHED
    assert (done.processed, done.total_rows) == (ROWS, ROWS)
    assert (done.imported, done.duplicates, done.rejected) == (ROWS, 0, 0)
    assert db.session.scalar(select(func.count()).select_from(Patient)) == ROWS
    for counts in results:
        assert counts == {"import_id": import_id, "imported": ROWS, "duplicates": 0, "rejected": 0}
