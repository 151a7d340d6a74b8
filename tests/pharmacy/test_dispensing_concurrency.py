"""Pharmacists at the counter at the same moment, against real PostgreSQL with real
commits: never more handed over than the stock held, no batch below zero, the movements
adding up, no deadlock; and never more taken back than was handed over."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from qure.core import clock
from qure.core.db import commit
from qure.core.errors import Conflict, InvalidInput
from qure.core.models import OutboxEvent
from qure.extensions import db
from qure.pharmacy import dispensing
from qure.pharmacy.models import Batch, DispensedItem
from qure.prescriptions.models import DispenseStatus, Prescription
from tests.helpers import NOW, make_patient, run_together
from tests.pharmacy.helpers import medicine, paid_prescription, stocked

pytestmark = [pytest.mark.concurrency, pytest.mark.usefixtures("clinic_now")]


def movements(kind: str) -> list[dict]:
    db.session.rollback()
    rows = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.topic == "stock_movements").order_by(OutboxEvent.id)
    )
    return [row.payload for row in rows if row.payload["type"] == kind]


def test_ten_pharmacists_never_hand_over_more_than_the_stock(app, doctor, reception, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    cough = medicine("Coughex", "85.00", 18, form="SYRUP", strength="100 ml")
    stocked(pharmacist, para, ("PC-1", 7, 40), ("PC-2", 8, 20), ("PC-3", 10, 90))
    stocked(pharmacist, cough, ("CX-1", 6, 60), ("CX-2", 6, 30))
    commit()
    prescriptions = []
    for n in range(10):
        wanted = [(para, 4), (cough, 2)] if n % 2 else [(cough, 2), (para, 4)]
        prescription, _ = paid_prescription(
            doctor, reception, wanted, patient=make_patient(full_name=f"Patient {n}")
        )
        prescriptions.append(prescription.id)

    jobs = [
        (
            lambda actor, pid=pid: dispensing.dispense(
                actor, {"prescription_id": pid, "allow_partial": True}
            )
        )
        for pid in prescriptions
    ]
    results = run_together(app, pharmacist.id, jobs, now=NOW)

    failures = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, Conflict) and r.code == "insufficient_stock" for r in failures), (
        failures
    )
    done = [r for r in results if isinstance(r, dict)]
    assert done, "nobody dispensed"
    db.session.rollback()
    batches = {
        b.batch_number: b.quantity
        for b in db.session.scalars(select(Batch).execution_options(populate_existing=True))
    }
    assert batches == {"PC-1": 0, "PC-2": 0, "PC-3": 0, "CX-1": 0, "CX-2": 0}
    given = db.session.execute(
        select(Batch.medicine_id, func.sum(DispensedItem.quantity))
        .join(Batch, Batch.id == DispensedItem.batch_id)
        .group_by(Batch.medicine_id)
    ).all()
    assert dict(given) == {para.id: 25, cough.id: 12}
    answered = sum(item["quantity"] for r in done for item in r["items"])
    assert answered == 37
    out = movements("OUT")
    assert sum(d["quantity"] for d in out) == 37
    assert len(out) == db.session.scalar(select(func.count()).select_from(DispensedItem))
    for name, total in (("Paracip", 25), ("Coughex", 12)):
        assert sum(d["quantity"] for d in out if d["medicine"]["name"] == name) == total
    statuses = list(
        db.session.scalars(
            select(Prescription.dispense_status).where(Prescription.id.in_(prescriptions))
        )
    )
    assert statuses.count(DispenseStatus.DISPENSED) <= 6  # 6 x 2 syrups is all there was
    assert statuses.count(DispenseStatus.AWAITING) == len(failures)
    with clock.fixed(NOW):
        assert len(dispensing.to_dispense().items) == 10 - sum(
            1 for r in done if r["dispense_status"] == DispenseStatus.DISPENSED
        )


def test_ten_returns_at_once_never_take_back_more_than_was_handed_over(
    app, doctor, reception, pharmacist
):
    para = medicine("Paracip", "2.50", 12)
    (batch,) = stocked(pharmacist, para, ("PC-1", 20, 90))
    commit()
    prescription, _ = paid_prescription(doctor, reception, [(para, 5)])
    done = dispensing.dispense(pharmacist, {"prescription_id": prescription.id})
    commit()
    (item,) = done["items"]

    body = {"items": [{"dispensed_item_id": item["id"], "quantity": 1}], "reason": "Unopened"}
    jobs = [(lambda actor: dispensing.returns(actor, done["id"], body)) for _ in range(10)]
    results = run_together(app, pharmacist.id, jobs, now=NOW)

    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 5 and all(isinstance(r, InvalidInput) for r in refused), refused
    assert all(r.fields.keys() == {"items.0.quantity"} for r in refused)
    db.session.rollback()
    fresh = {"populate_existing": True}
    assert db.session.get(DispensedItem, item["id"], **fresh).returned_quantity == 5
    assert db.session.get(Batch, batch.id, **fresh).quantity == 20
    assert sum(d["quantity"] for d in movements("RETURN")) == 5
