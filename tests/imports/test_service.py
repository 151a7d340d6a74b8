"""Imports read through the rooms' own services: good rows land, duplicates are skipped,
bad rows are refused with their line and reason, and nothing is imported twice."""

from __future__ import annotations

from itertools import islice

import pytest
from sqlalchemy import func, select, text

from qure.core import jobs
from qure.core.errors import InvalidInput
from qure.core.models import OutboxEvent
from qure.extensions import db
from qure.imports import service, tasks
from qure.imports.models import Import, ImportStatus
from qure.patients.models import Patient
from qure.pharmacy.models import Batch, Medicine
from tests.imports.helpers import PATIENT_HEADER, csv_bytes, patient_rows, run_jobs

LIMIT = 10 * 1024 * 1024


def _patients() -> int:
    return db.session.scalar(select(func.count()).select_from(Patient))


def _run(admin, kind: str, content: bytes) -> Import:
    upload, _new = service.receive(admin, kind, f"{kind}.csv", content, LIMIT)
    db.session.commit()
    tasks.submit(upload)
    run_jobs()
    db.session.expire_all()
    return db.session.get(Import, upload.id)


def test_good_bad_and_duplicate_patient_rows(app, admin):
    rows = patient_rows(5)
    rows.insert(2, ("No Phone", "1990-01-01", "F", "", ""))  # line 4
    rows.append(("Bad Date", "31/31/1990", "M", "9812345678", ""))  # line 8
    rows.append(("Bad Sex", "1990-01-01", "X", "9812345679", ""))  # line 9
    rows.append(("Too", "Few"))  # line 10
    rows.append(rows[0])  # line 11: the same person again
    done = _run(admin, "patients", csv_bytes(PATIENT_HEADER, rows))
    assert done.status == ImportStatus.FINISHED
    assert (done.imported, done.duplicates, done.rejected) == (5, 1, 4)
    assert (done.processed, done.total_rows) == (10, 10)
    reasons = {r["line"]: r["reason"] for r in done.rejected_rows}
    assert set(reasons) == {4, 8, 9, 10}
    assert reasons[4].startswith("phone:")
    assert reasons[8].startswith("date_of_birth:")
    assert reasons[9].startswith("sex:")
    assert "2 columns" in reasons[10]
    assert _patients() == 5
    imported = db.session.scalar(select(Patient).where(Patient.full_name == "Imported Person 0"))
    assert imported.created_by_id == admin.id  # the audit actor is the admin who uploaded


def test_the_same_rows_imported_twice_add_no_patient(app, admin):
    first = _run(admin, "patients", csv_bytes(PATIENT_HEADER, patient_rows(4)))
    assert first.imported == 4
    # The same rows in another file (one more row, so another SHA-256).
    second = _run(admin, "patients", csv_bytes(PATIENT_HEADER, patient_rows(5)))
    assert second.id != first.id
    assert (second.imported, second.duplicates) == (1, 4)
    assert _patients() == 5
    # The exact same file again is the earlier import; its job run again adds nothing.
    again, new = service.receive(
        admin, "patients", "x.csv", csv_bytes(PATIENT_HEADER, patient_rows(5)), LIMIT
    )
    assert (again.id, new) == (second.id, False)
    tasks.run_import(second.id)
    assert _patients() == 5


def test_a_job_run_again_goes_on_after_the_rows_done(app, admin):
    upload, _ = service.receive(
        admin, "patients", "p.csv", csv_bytes(PATIENT_HEADER, patient_rows(6)), LIMIT
    )
    columns, rows = service.pending_rows(upload.id, 0)
    service.import_rows(upload.id, columns, list(islice(rows, 2)), 0)  # stopped after 2 rows
    db.session.commit()
    tasks.run_import(upload.id)
    db.session.expire_all()
    done = db.session.get(Import, upload.id)
    assert (done.imported, done.duplicates, done.processed) == (6, 0, 6)
    assert _patients() == 6


def test_same_phone_and_birth_under_another_name_is_refused(app, admin):
    rows = [
        ("Ravi Kumar", "1980-05-05", "M", "9811111111", ""),
        ("Sunil Kumar", "1980-05-05", "M", "9811111111", ""),
    ]
    done = _run(admin, "patients", csv_bytes(PATIENT_HEADER, rows))
    assert (done.imported, done.rejected) == (1, 1)
    assert "QC-" in done.rejected_rows[0]["reason"]


def test_a_quote_never_closed_spoils_only_its_line(app, admin):
    content = (
        b"full_name,date_of_birth,sex,phone\n"
        b'"Open Quote,1990-01-01,F,9800000001\n'
        b"Good One,1990-01-02,F,9800000002\n"
        b"Bad \xff Bytes,1990-01-03,F,9800000003\n"
    )
    done = _run(admin, "patients", content)
    assert (done.imported, done.rejected) == (1, 2)
    reasons = {r["line"]: r["reason"] for r in done.rejected_rows}
    assert "never closed" in reasons[2]
    assert reasons[4].startswith("full_name: not UTF-8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "not a CSV"),
        (b"name,phone\nA,1\n", "missing full_name"),
        (b"full_name,date_of_birth,sex,phone,shoe_size\nA,1990-01-01,F,98,4\n", "unknown"),
        (b"full_name,date_of_birth,sex,phone\n", "no rows"),
    ],
)
def test_a_file_that_is_not_a_fitting_csv_is_refused_at_upload(app, admin, content, message):
    with pytest.raises(InvalidInput) as refused:
        service.receive(admin, "patients", "p.csv", content, LIMIT)
    assert set(refused.value.fields) == {"file"}
    assert message in refused.value.fields["file"]


MED_HEADER = (
    "name",
    "generic_name",
    "dosage_form",
    "strength",
    "unit_price",
    "gst_rate",
    "batch_number",
    "quantity",
    "expiry_date",
)


def test_medicines_with_opening_stock_are_not_added_twice(app, admin):
    rows = [
        ("Dolo 650", "Paracetamol", "TABLET", "650 mg", "2.00", "12", "DL-1", "100", "2040-06-30"),
        ("Dolo 650", "Paracetamol", "tablet", "650 MG", "2.00", "12", "DL-2", "50", "2040-07-31"),
        ("Brufen", "Ibuprofen", "TABLET", "400 mg", "1.70", "12", "", "", ""),
        ("Bad Qty", "Ibuprofen", "TABLET", "200 mg", "1.70", "12", "BQ-1", "-5", "2040-01-31"),
        ("Bad Form", "Ibuprofen", "PILL", "200 mg", "1.70", "12", "", "", ""),
    ]
    content = csv_bytes(MED_HEADER, rows)
    done = _run(admin, "medicines", content)
    assert (done.imported, done.duplicates, done.rejected) == (3, 0, 2)
    reasons = {r["line"]: r["reason"] for r in done.rejected_rows}
    assert reasons[5].startswith("quantity:")
    assert reasons[6].startswith("dosage_form:")
    assert db.session.scalar(select(func.count()).select_from(Medicine)) == 2
    assert db.session.scalar(select(func.sum(Batch.quantity))) == 150
    # The same rows in another file: nothing new (the bad rows still refused).
    again = _run(admin, "medicines", content + b"\n")
    assert (again.imported, again.duplicates, again.rejected) == (0, 3, 2)
    assert db.session.scalar(select(func.count()).select_from(Batch)) == 2


def test_a_row_the_database_refuses_is_refused_and_the_rest_of_its_chunk_lands(app, admin):
    """Patient rows run a chunk to one savepoint; a row that passes the checks but that the
    database refuses (here a trigger) sends the chunk round again a savepoint a row."""
    db.session.execute(
        text(
            "CREATE FUNCTION refuse_import_probe() RETURNS trigger AS $$ BEGIN "
            "IF NEW.full_name = 'Imported Person 1' THEN "
            "RAISE EXCEPTION 'no such person here'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql;"
            "CREATE TRIGGER refuse_import_probe BEFORE INSERT ON patients "
            "FOR EACH ROW EXECUTE FUNCTION refuse_import_probe();"
        )
    )
    db.session.commit()
    try:
        done = _run(admin, "patients", csv_bytes(PATIENT_HEADER, patient_rows(3)))
    finally:
        db.session.rollback()
        db.session.execute(
            text(
                "DROP TRIGGER refuse_import_probe ON patients;DROP FUNCTION refuse_import_probe();"
            )
        )
        db.session.commit()
    assert done.status == ImportStatus.FINISHED
    assert (done.imported, done.rejected) == (2, 1)
    assert done.rejected_rows[0]["line"] == 3
    assert done.rejected_rows[0]["reason"] == "The database refused this row (no such person here)."
    names = db.session.scalars(select(Patient.full_name).order_by(Patient.full_name)).all()
    assert names == ["Imported Person 0", "Imported Person 2"]
    audited = db.session.scalar(
        select(func.count())
        .select_from(OutboxEvent)
        .where(OutboxEvent.payload["action"].astext == "PATIENT_CREATED")
    )
    assert audited == 2  # the first pass's records went with its savepoint


def test_a_chunk_another_run_did_is_not_counted_again(app, admin):
    upload, _ = service.receive(
        admin, "patients", "p.csv", csv_bytes(PATIENT_HEADER, patient_rows(4)), LIMIT
    )
    columns, rows = service.pending_rows(upload.id, 0)
    first = list(islice(rows, 2))
    service.import_rows(upload.id, columns, first, 0)
    # A second run that read the same two rows from 0 finds the import at 2: unchanged.
    again = service.import_rows(upload.id, columns, first, 0)
    assert (again.processed, again.imported, again.duplicates) == (2, 2, 0)
    _columns, rest = service.pending_rows(upload.id, again.processed)
    assert [line for line, _cells, _bad in rest] == [4, 5]


def test_pending_rows_are_read_lazily(app, admin):
    upload, _ = service.receive(
        admin, "patients", "p.csv", csv_bytes(PATIENT_HEADER, patient_rows(3)), LIMIT
    )
    _columns, rows = service.pending_rows(upload.id, 1)
    assert iter(rows) is rows  # an iterator over the file, not a list of its rows
    assert next(rows)[0] == 3
    assert list(service.records("a,b\n1,2\n"))  # a generator too
    assert not isinstance(service.records("a,b\n"), list)


def test_only_cr_and_lf_end_a_line(app, admin):
    content = (
        "full_name,date_of_birth,sex,phone,allergies\n"
        "Line Sep,1990-01-01,F,9800000001,Dust\u2028Pollen\n"
        "Form Feed,1990-01-02,F,9800000002,Dust\x0cPollen\x1c\x1d\x1e\x85\u2029\n"
        "Good One,1990-01-03,F,9800000003,\r\n"
        'Quoted,1990-01-04,F,9800000004,"two\nlines"\r'
        "Bad Sex,1990-01-05,Q,9800000005,\n"
    ).encode()
    done = _run(admin, "patients", content)
    assert (done.total_rows, done.imported, done.rejected) == (5, 4, 1)
    assert [r["line"] for r in done.rejected_rows] == [7]  # after the quoted two lines
    assert done.rejected_rows[0]["reason"].startswith("sex:")
    names = db.session.scalars(select(Patient.full_name).order_by(Patient.id)).all()
    assert names == ["Line Sep", "Form Feed", "Good One", "Quoted"]
    allergies = db.session.scalar(select(Patient.allergies).where(Patient.full_name == "Line Sep"))
    assert allergies == ["Dust Pollen"]  # the cell whole (the register folds its spacing)


def test_a_finished_import_starts_no_job(app, admin):
    done = _run(admin, "patients", csv_bytes(PATIENT_HEADER, patient_rows(2)))
    assert done.status == ImportStatus.FINISHED
    assert tasks.submit(done) is None
    assert jobs.queue().job_ids == []


def test_a_large_import_may_run_longer(app, admin):
    upload, _ = service.receive(
        admin, "patients", "p.csv", csv_bytes(PATIENT_HEADER, patient_rows(2)), LIMIT
    )
    small = jobs.queue().fetch_job(tasks.submit(upload))
    assert small.timeout == jobs.FOLLOWED_TIMEOUT
    small.delete()
    upload.total_rows = 500_000  # as if the file had that many rows
    db.session.flush()
    large = jobs.queue().fetch_job(tasks.submit(upload))
    assert large.timeout == 500_000 * tasks.SECONDS_A_ROW > jobs.FOLLOWED_TIMEOUT
