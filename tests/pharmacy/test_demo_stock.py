"""The demo pharmacy's stock (`flask seed-demo`, qure.demo.seed_stock): every demo
medicine stocked in 2-3 batches, each of the pharmacy's alerts with something to show, the
Schedule H1 medicines marked, and a second run adding nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from qure import demo
from qure.core import clock
from qure.core.models import OutboxEvent
from qure.extensions import db
from qure.pharmacy import stock
from qure.pharmacy.catalogue import COMMON_MEDICINES
from qure.pharmacy.models import Batch, DrugSchedule, Medicine


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


def seed(app) -> str:
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    return result.output


def batches() -> list[tuple]:
    return list(
        db.session.execute(
            select(
                Medicine.name,
                Batch.batch_number,
                Batch.quantity,
                Batch.expiry_date,
                Batch.mfg_date,
                Batch.supplier,
                Batch.purchase_price,
            )
            .join(Medicine, Medicine.id == Batch.medicine_id)
            .order_by(Medicine.name, Batch.batch_number)
        )
    )


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_seed_demo_stocks_every_demo_medicine_and_every_alert_has_something(app):
    output = seed(app)
    rows = batches()
    assert f"Stock batches added: {len(rows)}." in output
    today = clock.today()
    by_medicine: dict[str, list[tuple]] = {}
    for row in rows:
        by_medicine.setdefault(row[0], []).append(row)
    assert set(by_medicine) == {m[0] for m in COMMON_MEDICINES}
    for name, held in by_medicine.items():
        assert 2 <= len(held) <= 3, name
        for _, number, quantity, expiry, mfg, supplier, price in held:
            assert number[:2].isalpha() and number[2:].isdigit() and len(number) == 6, number
            assert supplier in demo.SUPPLIERS and price > 0 and mfg <= today
            if name in ("Dolo 650", "Cetzine", "Brufen"):
                continue
            assert 20 <= quantity <= 300, (name, quantity)
            assert today + timedelta(days=60) < expiry <= today + timedelta(days=730)

    counts = stock.alert_counts()
    assert all(n >= 1 for n in counts.values()), counts
    assert counts == {"low_stock": 1, "expiring_30": 1, "expired": 1}
    (low,) = stock.low_stock().items
    assert (low["name"], low["usable_stock"], low["reorder_level"]) == ("Dolo 650", 20, 20)
    (soon,) = stock.expiring(30).items
    assert (soon.medicine.name, soon.expiry_date) == ("Cetzine", today + timedelta(days=21))
    (gone,) = stock.expired().items
    assert (gone.medicine.name, gone.quantity) == ("Brufen", 40) and gone.expiry_date < today

    schedules = {n: s for n, s in db.session.execute(select(Medicine.name, Medicine.schedule))}
    h1 = sorted(name for name, schedule in schedules.items() if schedule == DrugSchedule.H1)
    assert h1 == ["Alprax", "Levoflox", "Monocef", "Taxim-O", "Ultracet"]
    assert schedules["Azithral"] == schedules["Crocin"] == DrugSchedule.NONE


def test_seeding_twice_gives_the_same_batches(app):
    seed(app)
    first, events = batches(), count(OutboxEvent)
    again = seed(app)
    assert "Stock batches added: 0." in again
    assert batches() == first
    assert count(OutboxEvent) == events  # no audit record, no stock movement


def test_serve_stocks_only_a_pharmacy_without_any_batch(app):
    seed(app)
    crocin = db.session.scalars(select(Medicine).where(Medicine.name == "Crocin")).one()
    db.session.execute(Batch.__table__.delete().where(Batch.medicine_id == crocin.id))
    assert demo.seed_stock(fresh_only=True) == 0  # other medicines hold stock: in use
    added = demo.seed_stock()  # seed-demo fills the gap, with the same batches as before
    assert added == len([row for row in batches() if row[0] == "Crocin"]) >= 2
