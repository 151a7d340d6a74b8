"""Stock: receiving batches, adjusting them, usable stock and the alerts; by the service
and by the API."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from qure.core import clock, outbox
from qure.core.db import add_pending
from qure.core.errors import Conflict, InvalidInput
from qure.core.models import OutboxEvent
from qure.extensions import db, mongo
from qure.pharmacy import service as catalogue
from qure.pharmacy import stock
from qure.pharmacy.models import Batch, DrugSchedule
from tests.helpers import bearer, error
from tests.pharmacy.helpers import INVENTORY, in_days, medicine, stocked


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


def movements() -> list[dict]:
    add_pending()  # the rows this transaction writes at commit
    rows = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.topic == "stock_movements").order_by(OutboxEvent.id)
    )
    return [row.payload for row in rows]


# ---- the catalogue's schedule ----------------------------------------------------------


def test_a_medicine_carries_its_schedule(app):
    plain = medicine("Paracip", "2.50", 12)
    assert plain.schedule == DrugSchedule.NONE
    h1 = medicine("Tramazac", "9.00", 12, schedule="h1")
    assert h1.schedule == DrugSchedule.H1
    with pytest.raises(InvalidInput) as caught:
        catalogue.update(None, h1.id, {"schedule": "Q"})
    assert set(caught.value.fields) == {"schedule"}
    assert catalogue.update(None, h1.id, {"schedule": "X"}).schedule == DrugSchedule.X


def test_movements_reach_mongodb_with_bson_dates(pharmacist, clinic_now):
    """What the relay ships is storable and queryable by time: the timestamp a BSON date
    (aware datetimes come back from MongoDB as UTC), the day and expiry as ISO text."""
    para = medicine("Paracip", "2.50", 12)
    stocked(pharmacist, para, ("PC-7", 40, 90))
    db.session.commit()
    outbox.relay()
    (document,) = mongo.db["stock_movements"].find({"type": "IN"})
    assert isinstance(document["timestamp"], datetime)
    assert document["timestamp"].replace(tzinfo=UTC) == clinic_now.astimezone(UTC)
    assert (document["day"], document["quantity"], document["balance"]) == (
        clinic_now.date().isoformat(),
        40,
        40,
    )
    assert document["batch"]["batch_number"] == "PC-7"
    assert document["batch"]["expiry_date"] == in_days(90).isoformat()


# ---- stock-in --------------------------------------------------------------------------


def test_several_batches_are_received_at_once(pharmacist):
    para = medicine("Paracip", "2.50", 12)
    received = stock.stock_in(
        pharmacist,
        {
            "medicine_id": para.id,
            "batches": [
                {
                    "batch_number": " pc-101 ",
                    "quantity": 100,
                    "expiry_date": "2030-06-30",
                    "mfg_date": "2029-06-01",
                    "supplier": "Apollo Distributors",
                    "purchase_price": "1.80",
                },
                {"batch_number": "PC-102", "quantity": 50, "expiry_date": in_days(200)},
            ],
        },
    )
    assert [(b.batch_number, b.quantity) for b in received] == [("PC-101", 100), ("PC-102", 50)]
    assert received[0].received_by_id == pharmacist.id
    assert stock.levels([para.id]) == {para.id: (150, received[0].expiry_date)}
    docs = movements()
    assert [(d["type"], d["quantity"], d["batch"]["batch_number"]) for d in docs] == [
        ("IN", 100, "PC-101"),
        ("IN", 50, "PC-102"),
    ]
    assert docs[0]["batch"]["expiry_date"] == "2030-06-30"
    assert datetime.fromisoformat(docs[0]["timestamp"]).tzinfo is not None


def test_bad_batches_are_refused_naming_the_field(pharmacist):
    para = medicine("Paracip", "2.50", 12)
    stocked(pharmacist, para, ("OLD-1", 10, 100))
    with pytest.raises(InvalidInput) as caught:
        stock.stock_in(
            pharmacist,
            {
                "medicine_id": para.id,
                "batches": [
                    {"batch_number": "A", "quantity": 10, "expiry_date": in_days(0)},
                    {"batch_number": "B", "quantity": 0, "expiry_date": in_days(30)},
                    {"batch_number": "C", "quantity": -5, "expiry_date": in_days(30)},
                    {
                        "batch_number": "D",
                        "quantity": 5,
                        "expiry_date": in_days(30),
                        "mfg_date": in_days(40),
                    },
                    {"batch_number": "E", "quantity": 5, "expiry_date": "soon"},
                    {"batch_number": "", "quantity": 5, "expiry_date": in_days(30)},
                ],
            },
        )
    assert caught.value.fields.keys() == {
        "batches.0.expiry_date",
        "batches.1.quantity",
        "batches.2.quantity",
        "batches.3.mfg_date",
        "batches.4.expiry_date",
        "batches.5.batch_number",
    }
    with pytest.raises(InvalidInput) as caught:
        stocked(pharmacist, para, ("NEW-1", 10, 100), ("old-1", 10, 100), ("NEW-1", 1, 50))
    assert caught.value.fields.keys() == {"batches.1.batch_number", "batches.2.batch_number"}
    assert db.session.scalar(select(Batch.id).where(Batch.batch_number == "NEW-1")) is None
    assert caught.value.code == "invalid_input"  # not only held batches: a twice-given one


def test_a_batch_the_medicine_has_already_is_refused_with_its_own_code(pharmacist, client):
    """Only batch numbers the medicine holds: `batch_exists` (a CSV import skips the row on
    it), still 422 naming the field, as the stock-in form shows it."""
    para = medicine("Paracip", "2.50", 12)
    stocked(pharmacist, para, ("OLD-1", 10, 100))
    with pytest.raises(InvalidInput) as caught:
        stocked(pharmacist, para, ("old-1", 5, 100))
    assert caught.value.code == stock.BATCH_EXISTS == "batch_exists"
    assert caught.value.fields == {"batches.0.batch_number": stock.HELD}
    db.session.commit()
    body = {
        "medicine_id": para.id,
        "batches": [{"batch_number": "OLD-1", "quantity": 5, "expiry_date": str(in_days(100))}],
    }
    response = client.post(f"{INVENTORY}/batches", json=body, headers=bearer(client, pharmacist))
    assert "batches.0.batch_number" in error(response, 422, "batch_exists")["fields"]


def test_a_medicine_is_found_by_name_strength_and_form_in_any_case(app):
    para = medicine("Paracip", "2.50", 12, strength="500 mg")
    assert catalogue.find_medicine("PARACIP", "500 MG", "TABLET") is para
    assert catalogue.find_medicine("Paracip", "500 mg", "SYRUP") is None
    assert catalogue.find_medicine("Paracip", "650 mg", "TABLET") is None


# ---- adjustments -----------------------------------------------------------------------


def test_an_adjustment_never_takes_a_batch_below_zero(pharmacist):
    para = medicine("Paracip", "2.50", 12)
    (batch,) = stocked(pharmacist, para, ("PC-1", 10, 100))
    stock.adjust(pharmacist, batch.id, {"delta": -3, "reason": "DAMAGED"})
    assert batch.quantity == 7
    with pytest.raises(Conflict) as caught:
        stock.adjust(pharmacist, batch.id, {"delta": -8, "reason": "COUNT_CORRECTION"})
    assert caught.value.code == "stock_below_zero"
    assert db.session.get(Batch, batch.id).quantity == 7
    with pytest.raises(InvalidInput) as caught:
        stock.adjust(pharmacist, batch.id, {"delta": 0, "reason": "LOST"})
    assert caught.value.fields.keys() == {"delta", "reason"}
    stock.adjust(pharmacist, batch.id, {"delta": 2, "reason": "COUNT_CORRECTION"})
    assert [(d["type"], d["quantity"], d["balance"], d.get("reason")) for d in movements()] == [
        ("IN", 10, 10, None),
        ("ADJUSTMENT", -3, 7, "DAMAGED"),
        ("ADJUSTMENT", 2, 9, "COUNT_CORRECTION"),
    ]


# ---- usable stock and the alerts -------------------------------------------------------


def test_expired_stock_counts_as_none(pharmacist):
    para = medicine("Paracip", "2.50", 12, reorder_level=20)
    stocked(pharmacist, para, ("PC-1", 30, 10))
    db.session.add(
        Batch(
            medicine_id=para.id,
            batch_number="GONE",
            quantity=500,
            expiry_date=in_days(-1),
            received_by_id=pharmacist.id,
            received_at=clock.now(),
        )
    )
    db.session.flush()
    assert stock.levels([para.id])[para.id] == (30, in_days(10))
    assert stock.low_stock().items == []
    with clock.fixed(clock.at_clinic_time(in_days(10), time(9, 0))):
        assert stock.levels([para.id]) == {}
        low = stock.low_stock().items
        assert [(m["name"], m["usable_stock"]) for m in low] == [("Paracip", 0)]
        assert {b.batch_number for b in stock.expired().items} == {"GONE", "PC-1"}


def test_low_stock_includes_a_medicine_without_batches(pharmacist):
    never = medicine("Neverstocked", "1.00", 0, reorder_level=0)
    level = medicine("Atlevel", "1.00", 0, reorder_level=10)
    above = medicine("Plenty", "1.00", 0, reorder_level=10)
    retired = medicine("Retired", "1.00", 0, reorder_level=10, is_active=False)
    stocked(pharmacist, level, ("A-1", 10, 100))
    stocked(pharmacist, above, ("P-1", 11, 100))
    low = stock.low_stock()
    assert [(m["name"], m["usable_stock"], m["next_expiry"]) for m in low.items] == [
        ("Neverstocked", 0, None),
        ("Atlevel", 10, in_days(100)),
    ]
    assert retired.id not in {m["id"] for m in low.items} and never.is_active
    assert stock.alert_counts()["low_stock"] == 2


def test_expiring_lists_exclude_expired_batches(pharmacist):
    para = medicine("Paracip", "2.50", 12)
    stocked(pharmacist, para, ("D20", 5, 20), ("D45", 5, 45), ("D90", 5, 90), ("D91", 5, 91))
    empty = stocked(pharmacist, para, ("EMPTY", 5, 10))[0]
    stock.adjust(pharmacist, empty.id, {"delta": -5, "reason": "DAMAGED"})
    db.session.add(
        Batch(
            medicine_id=para.id,
            batch_number="GONE",
            quantity=5,
            expiry_date=clock.today(),
            received_by_id=pharmacist.id,
            received_at=clock.now(),
        )
    )
    db.session.flush()

    def numbers(days):
        return [b.batch_number for b in stock.expiring(days).items]

    assert numbers(30) == ["D20"]
    assert numbers(60) == ["D20", "D45"]
    assert numbers(90) == ["D20", "D45", "D90"]
    assert [b.batch_number for b in stock.expired().items] == ["GONE"]
    with pytest.raises(InvalidInput):
        stock.expiring(45)
    assert stock.alert_counts() == {"low_stock": 0, "expiring_30": 1, "expired": 1}


def test_a_batch_is_usable_until_the_end_of_the_day_before_its_expiry(pharmacist):
    para = medicine("Paracip", "2.50", 12)
    stocked(pharmacist, para, ("LAST", 8, 3))
    last_day, expiry = in_days(2), in_days(3)
    kolkata = ZoneInfo("Asia/Kolkata")
    # 23:30 in the clinic is 18:00 UTC: still the batch's last day of life.
    with clock.fixed(datetime.combine(last_day, time(23, 30), tzinfo=kolkata)):
        assert stock.levels([para.id]) == {para.id: (8, expiry)}
        assert [b.batch_number for b in stock.expiring(30).items] == ["LAST"]
    with clock.fixed(datetime.combine(expiry, time(0, 5), tzinfo=kolkata)):
        assert stock.levels([para.id]) == {}
        assert [b.batch_number for b in stock.expired().items] == ["LAST"]


# ---- the API ---------------------------------------------------------------------------


def test_the_inventory_api(client, pharmacist, doctor, reception):
    para = medicine("Paracip", "2.50", 12, reorder_level=50)
    headers = bearer(client, pharmacist)
    made = client.post(
        f"{INVENTORY}/batches",
        json={
            "medicine_id": para.id,
            "batches": [
                {"batch_number": "PC-1", "quantity": 40, "expiry_date": "2030-03-31"},
                {
                    "batch_number": "PC-2",
                    "quantity": 20,
                    "expiry_date": "2030-12-31",
                    "purchase_price": "1.5",
                    "supplier": "Apollo",
                },
            ],
        },
        headers=headers,
    )
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert [b["batch_number"] for b in body["items"]] == ["PC-1", "PC-2"]
    assert body["items"][1]["purchase_price"] == "1.50"

    listed = client.get(f"{INVENTORY}/medicines?q=parac", headers=bearer(client, doctor))
    (row,) = listed.get_json()["items"]
    assert (row["usable_stock"], row["next_expiry"], row["low_stock"]) == (60, "2030-03-31", False)
    one = client.get(f"{INVENTORY}/medicines/{para.id}", headers=bearer(client, doctor))
    assert (one.get_json()["usable_stock"], one.get_json()["next_expiry"]) == (60, "2030-03-31")

    batches = client.get(
        f"{INVENTORY}/batches?medicine_id={para.id}", headers=bearer(client, reception)
    ).get_json()["items"]
    assert [(b["batch_number"], b["quantity"], b["expired"]) for b in batches] == [
        ("PC-1", 40, False),
        ("PC-2", 20, False),
    ]
    first = batches[0]["id"]
    changed = client.patch(
        f"{INVENTORY}/batches/{first}", json={"delta": -15, "reason": "DAMAGED"}, headers=headers
    )
    assert changed.status_code == 200 and changed.get_json()["quantity"] == 25
    below = client.patch(
        f"{INVENTORY}/batches/{first}", json={"delta": -26, "reason": "DAMAGED"}, headers=headers
    )
    assert error(below, 409, "stock_below_zero")["fields"].keys() == {"delta"}

    low = client.get(f"{INVENTORY}/low-stock", headers=headers).get_json()
    assert [(m["name"], m["usable_stock"]) for m in low["items"]] == [("Paracip", 45)]
    soon = client.get(f"{INVENTORY}/expiring?days=90", headers=headers).get_json()
    assert [b["batch_number"] for b in soon["items"]] == ["PC-1"]
    assert client.get(f"{INVENTORY}/expiring?days=7", headers=headers).status_code == 422
    assert client.get(f"{INVENTORY}/expired", headers=headers).get_json()["items"] == []


def test_inventory_bad_input_and_roles(client, pharmacist, doctor, reception, admin):
    para = medicine("Paracip", "2.50", 12)
    body = {
        "medicine_id": para.id,
        "batches": [{"batch_number": "X1", "quantity": 0, "expiry_date": "2029-12-31"}],
    }
    bad = client.post(f"{INVENTORY}/batches", json=body, headers=bearer(client, pharmacist))
    assert error(bad, 422, "invalid_input")["fields"].keys() == {
        "batches.0.quantity",
        "batches.0.expiry_date",
    }
    good = {**body, "batches": [{"batch_number": "X1", "quantity": 5, "expiry_date": "2031-01-31"}]}
    for user in (doctor, reception):
        refused = client.post(f"{INVENTORY}/batches", json=good, headers=bearer(client, user))
        assert refused.status_code == 403
    made = client.post(f"{INVENTORY}/batches", json=good, headers=bearer(client, admin))
    assert made.status_code == 201
    batch_id = made.get_json()["items"][0]["id"]
    adjust = {"delta": 1, "reason": "COUNT_CORRECTION"}
    refused = client.patch(
        f"{INVENTORY}/batches/{batch_id}", json=adjust, headers=bearer(client, doctor)
    )
    assert refused.status_code == 403
    missing = client.patch(
        f"{INVENTORY}/batches/999999", json=adjust, headers=bearer(client, pharmacist)
    )
    assert error(missing, 404, "batch_not_found")
    nothing = client.post(
        f"{INVENTORY}/batches",
        json={"medicine_id": 999999, "batches": good["batches"]},
        headers=bearer(client, pharmacist),
    )
    assert error(nothing, 404, "medicine_not_found")


def test_the_inventory_filters_by_stock(client, pharmacist):
    out = medicine("Outofit", "1.00", 0, reorder_level=5)
    low = medicine("Lowish", "1.00", 0, reorder_level=5)
    soon = medicine("Soonish", "1.00", 0, reorder_level=5)
    plenty = medicine("Plenty", "1.00", 0, reorder_level=5)
    stocked(pharmacist, low, ("L-1", 5, 100))
    stocked(pharmacist, soon, ("S-1", 50, 20))
    stocked(pharmacist, plenty, ("P-1", 50, 200))

    def names(stock_filter, q=None):
        return [m["name"] for m in stock.inventory(q, stock_filter=stock_filter).items]

    assert names(None) == ["Lowish", "Outofit", "Plenty", "Soonish"]
    assert names("low") == ["Lowish", "Outofit"]
    assert names("out") == ["Outofit"]
    assert names("expiring") == ["Soonish"]
    assert names("low", q="low") == ["Lowish"]
    row = stock.inventory(stock_filter="expiring").items[0]
    assert (row["usable_stock"], row["next_expiry"]) == (50, in_days(20))
    assert out.id and plenty.id
    answer = client.get(f"{INVENTORY}/medicines?stock=out", headers=bearer(client, pharmacist))
    assert [m["name"] for m in answer.get_json()["items"]] == ["Outofit"]
    refused = client.get(f"{INVENTORY}/medicines?stock=none", headers=bearer(client, pharmacist))
    assert error(refused, 422, "invalid_input")


def test_the_list_is_built_as_its_schema_documents_it(pharmacist):
    """`schemas.listed` writes the inventory page's items by hand (for speed): they must
    equal what InventoryMedicineSchema dumps, field by field, with stock and without."""
    from qure.pharmacy.schemas import InventoryMedicineSchema, listed

    stocked_one = medicine("Paracip", "2.50", 12, reorder_level=5, drug_class="Analgesic")
    medicine("Zerodol", "7.05", 18, manufacturer="Ipca", hsn_code="30049099")
    stocked(pharmacist, stocked_one, ("PC-1", 40, 90), ("PC-2", 5, 20))
    for rows in (
        stock.inventory().items,
        stock.inventory("para", stock_filter="expiring").items,
        stock.low_stock().items,
    ):
        assert rows
        assert listed(rows) == InventoryMedicineSchema(many=True).dump(rows)
