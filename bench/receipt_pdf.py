"""How long a receipt PDF takes to render, warm (issue 11: A4 p50 at or under 120 ms).

Not part of the suite (it measures, it does not check); run it with the suite's fixtures
and the stores of the tests:

    make bench-receipts

which runs (with TEST_DATABASE_URL / TEST_REDIS_URL, else embedded servers)

    .venv/bin/python -m pytest -p tests.conftest -p tests.billing.conftest \
        -p tests.billing.test_receipts -p no:cacheprovider -q -s bench/receipt_pdf.py

(the other plugins bring the billing tests' fixtures: the clinic's settings, a desk and a
finalised AUTO invoice of 565.48 with its consultation and two medicines).

It renders an unpaid A4 receipt with its UPI QR code (the QR drawn afresh too), the 80 mm
roll, and interleaved with them the A5 prescription as a yardstick for the machine, 20
rounds after two warm-ups, and prints each one's wall and CPU p50.
"""

from __future__ import annotations

import statistics
import time

from qure.billing import receipts
from tests.billing.helpers import completed_visit, medicine


def test_the_warm_receipt(desk, clinic, billed, doctor):
    """Prints the warm p50 of one A4 receipt (the brief: at or under 120 ms), of the roll,
    and, interleaved with them, of the A5 prescription as a yardstick for this machine."""
    from qure.billing.qr import qr_png
    from qure.prescriptions import service as prescriptions

    _, prescription = completed_visit(doctor, [(medicine("Benchol", "4.00", 12), 5)])
    invoice_id = billed["id"]
    jobs = {
        "A4 receipt, unpaid with QR": lambda: receipts.receipt_pdf(invoice_id),
        "A4 receipt, QR drawn afresh": lambda: (
            qr_png.cache_clear(),
            receipts.receipt_pdf(invoice_id),
        ),
        "80 mm roll, unpaid with QR": lambda: receipts.receipt_pdf(invoice_id, thermal=True),
        "A5 prescription (yardstick)": lambda: prescriptions.print_pdf(prescription.id),
    }
    wall: dict[str, list[float]] = {name: [] for name in jobs}
    cpu: dict[str, list[float]] = {name: [] for name in jobs}
    for job in jobs.values():
        job(), job()  # warm: the stylesheet, its fonts, the templates
    for _ in range(20):
        for name, job in jobs.items():
            started, used = time.perf_counter(), time.process_time()
            job()
            wall[name].append((time.perf_counter() - started) * 1000)
            cpu[name].append((time.process_time() - used) * 1000)
    for name in jobs:
        print(
            f"\n{name}: wall p50 {statistics.median(wall[name]):.1f} ms "
            f"(min {min(wall[name]):.1f}), CPU p50 {statistics.median(cpu[name]):.1f} ms"
        )
