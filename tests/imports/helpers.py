"""CSV files for the import tests."""

from __future__ import annotations

import csv
import io

from qure.core import jobs
from qure.extensions import redis_store

PATIENT_HEADER = ("full_name", "date_of_birth", "sex", "phone", "allergies")


def csv_bytes(header, rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def patient_rows(n: int, start: int = 0) -> list[tuple]:
    return [
        (f"Imported Person {i}", f"19{50 + i % 40}-0{1 + i % 9}-1{i % 9}", "F", f"98{i:08d}", "")
        for i in range(start, start + n)
    ]


def run_jobs() -> None:
    jobs.ThreadWorker([jobs.queue()], connection=redis_store.client).work(
        burst=True, logging_level="WARNING"
    )
