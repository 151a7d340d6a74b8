"""Dispensing a paid prescription: earliest expiry first, all or nothing or partial, the
refunded lines, returns, the H1 register; by the service and by the API."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from qure.billing import service as billing
from qure.billing.models import InvoiceMode, PaymentMethod
from qure.core import clock
from qure.core.db import add_pending, commit
from qure.core.errors import Conflict, InvalidInput
from qure.core.models import OutboxEvent
from qure.extensions import db
from qure.pharmacy import dispensing, stock
from qure.pharmacy.models import Batch, Dispensing, H1RegisterEntry
from qure.prescriptions.models import DispenseStatus, Prescription
from tests.billing.helpers import completed_visit
from tests.helpers import bearer, error, make_patient, statements
from tests.pharmacy.helpers import DISPENSING, in_days, medicine, paid_prescription, stocked


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


def quantities(*batches) -> list[int]:
    return [db.session.get(Batch, b.id, populate_existing=True).quantity for b in batches]


def taken(done: dict) -> list[tuple[str, int]]:
    return [(item["batch_number"], item["quantity"]) for item in done["items"]]


def out_movements() -> list[dict]:
    add_pending()
    rows = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.topic == "stock_movements").order_by(OutboxEvent.id)
    )
    return [row.payload for row in rows if row.payload["type"] == "OUT"]


def status_of(prescription) -> str:
    return db.session.scalar(
        select(Prescription.dispense_status).where(Prescription.id == prescription.id)
    )


def test_earliest_expiry_first_across_batches_never_an_expired_one(doctor, reception, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    (later,) = stocked(pharmacist, para, ("LATER", 3, 20))
    expired = Batch(
        medicine_id=para.id,
        batch_number="EXPIRED",
        quantity=50,
        expiry_date=in_days(-1),
        received_by_id=pharmacist.id,
        received_at=clock.now(),
    )
    db.session.add(expired)
    db.session.flush()
    soonest, last = stocked(pharmacist, para, ("SOONEST", 4, 10), ("LAST", 10, 60))
    prescription, _ = paid_prescription(doctor, reception, [(para, 9)])

    done = dispensing.dispense(pharmacist, {"prescription_id": prescription.id})
    assert taken(done) == [("SOONEST", 4), ("LATER", 3), ("LAST", 2)]
    assert done["dispense_status"] == DispenseStatus.DISPENSED and not done["partial"]
    assert quantities(soonest, later, expired, last) == [0, 0, 50, 8]
    assert status_of(prescription) == DispenseStatus.DISPENSED
    docs = out_movements()
    assert [(d["batch"]["batch_number"], d["quantity"], d["dispensing_id"]) for d in docs] == [
        ("SOONEST", 4, done["id"]),
        ("LATER", 3, done["id"]),
        ("LAST", 2, done["id"]),
    ]
    assert all(isinstance(d["timestamp"], str) and "T" in d["timestamp"] for d in docs)
    assert docs[0]["batch"]["expiry_date"] == in_days(10).isoformat()
    (audited,) = [
        row.payload
        for row in db.session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "audit_logs"))
        if row.payload["action"] == "STOCK_DISPENSED"
    ]
    assert audited["resource"] == {"type": "dispensing", "id": done["id"]}
    assert audited["user"]["id"] == pharmacist.id
    assert [i["quantity"] for i in audited["changes"]["new"]["items"]] == [4, 3, 2]

    with pytest.raises(Conflict) as caught:
        dispensing.dispense(pharmacist, {"prescription_id": prescription.id})
    assert caught.value.code == "already_dispensed"


def test_all_or_nothing_unless_partial_then_the_rest_later(doctor, reception, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    cough = medicine("Coughex", "85.00", 18, form="SYRUP", strength="100 ml")
    (para_batch,) = stocked(pharmacist, para, ("PC-1", 10, 100))
    (cough_batch,) = stocked(pharmacist, cough, ("CX-1", 1, 100))
    prescription, _ = paid_prescription(doctor, reception, [(para, 10), (cough, 3)])

    with pytest.raises(Conflict) as caught:
        dispensing.dispense(pharmacist, {"prescription_id": prescription.id})
    assert caught.value.code == "insufficient_stock"
    (short,) = caught.value.details["items"]
    assert (short["medicine"], short["due"], short["available"]) == ("Coughex", 3, 1)
    assert quantities(para_batch, cough_batch) == [10, 1]
    assert db.session.scalar(select(func.count()).select_from(Dispensing)) == 0

    first = dispensing.dispense(
        pharmacist, {"prescription_id": prescription.id, "allow_partial": True}
    )
    assert taken(first) == [("PC-1", 10), ("CX-1", 1)]
    assert first["partial"] and first["dispense_status"] == DispenseStatus.PARTIALLY_DISPENSED
    assert [(o["medicine"], o["quantity"]) for o in first["outstanding"]] == [("Coughex", 2)]
    assert status_of(prescription) == DispenseStatus.PARTIALLY_DISPENSED
    assert [p["id"] for p in dispensing.to_dispense().items] == [prescription.id]

    with pytest.raises(Conflict) as caught:  # nothing usable at all is still short
        dispensing.dispense(pharmacist, {"prescription_id": prescription.id, "allow_partial": True})
    assert caught.value.code == "insufficient_stock"

    stocked(pharmacist, cough, ("CX-2", 5, 100))
    rest = dispensing.dispense(pharmacist, {"prescription_id": prescription.id})
    assert taken(rest) == [("CX-2", 2)]
    assert rest["dispense_status"] == DispenseStatus.DISPENSED and rest["outstanding"] == []
    assert dispensing.to_dispense().items == []
    with pytest.raises(Conflict) as caught:
        dispensing.dispense(pharmacist, {"prescription_id": prescription.id})
    assert caught.value.code == "already_dispensed"


def test_no_dispensing_without_a_paid_invoice(doctor, reception, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    stocked(pharmacist, para, ("PC-1", 10, 100))
    _, unbilled = completed_visit(doctor, [(para, 2)])
    with pytest.raises(Conflict) as caught:
        dispensing.dispense(pharmacist, {"prescription_id": unbilled.id})
    assert caught.value.code == "invoice_not_paid"
    invoice = billing.create(reception, {"mode": InvoiceMode.AUTO, "prescription_id": unbilled.id})
    billing.finalize(reception, invoice.id)
    with pytest.raises(Conflict) as caught:
        dispensing.dispense(pharmacist, {"prescription_id": unbilled.id})
    assert caught.value.code == "invoice_not_paid"
    assert dispensing.to_dispense().items == []
    with pytest.raises(InvalidInput) as caught:
        dispensing.dispense(pharmacist, {"prescription_id": "1", "allow_partial": "yes"})
    assert caught.value.fields.keys() == {"allow_partial"}


def test_a_refunded_line_is_not_dispensed(doctor, reception, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    cough = medicine("Coughex", "85.00", 18, form="SYRUP", strength="100 ml")
    stocked(pharmacist, para, ("PC-1", 20, 100))
    stocked(pharmacist, cough, ("CX-1", 5, 100))
    prescription, invoice = paid_prescription(doctor, reception, [(para, 10), (cough, 2)])
    lines = {line.medicine_id: line for line in invoice.lines}
    billing.issue_credit_note(
        reception,
        invoice.id,
        {
            "items": [
                {"line_id": lines[cough.id].id, "quantity": 2},
                {"line_id": lines[para.id].id, "quantity": 4},
            ],
            "reason": "Not wanted",
            "method": PaymentMethod.CASH,
        },
    )
    commit()
    done = dispensing.dispense(pharmacist, {"prescription_id": prescription.id})
    assert taken(done) == [("PC-1", 6)]
    assert done["dispense_status"] == DispenseStatus.DISPENSED


def test_returns_go_back_into_their_batch_never_more_than_handed_over(
    client, doctor, reception, pharmacist
):
    para = medicine("Paracip", "2.50", 12)
    first, second = stocked(pharmacist, para, ("PC-1", 4, 30), ("PC-2", 10, 90))
    prescription, _ = paid_prescription(doctor, reception, [(para, 6)])
    done = dispensing.dispense(pharmacist, {"prescription_id": prescription.id})
    one, two = done["items"]
    assert quantities(first, second) == [0, 8]

    back = dispensing.returns(
        pharmacist,
        done["id"],
        {"items": [{"dispensed_item_id": two["id"], "quantity": 2}], "reason": "Unopened"},
    )
    assert [
        (i["batch_number"], i["returned_quantity"], i["returnable"]) for i in back["items"]
    ] == [
        ("PC-1", 0, 4),
        ("PC-2", 2, 0),
    ]
    assert quantities(first, second) == [0, 10]
    assert status_of(prescription) == DispenseStatus.DISPENSED  # not handed over again

    with pytest.raises(InvalidInput) as caught:
        dispensing.returns(
            pharmacist,
            done["id"],
            {
                "items": [
                    {"dispensed_item_id": one["id"], "quantity": 5},
                    {"dispensed_item_id": two["id"], "quantity": 1},
                    {"dispensed_item_id": 999999, "quantity": 1},
                ],
                "reason": "Unopened",
            },
        )
    assert caught.value.fields.keys() == {
        "items.0.quantity",
        "items.1.quantity",
        "items.2.dispensed_item_id",
    }
    add_pending()
    returns = [
        row.payload
        for row in db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        if row.topic == "stock_movements" and row.payload["type"] == "RETURN"
    ]
    assert [(r["batch"]["batch_number"], r["quantity"], r["balance"]) for r in returns] == [
        ("PC-2", 2, 10)
    ]

    url = f"{DISPENSING}/{done['id']}/returns"
    body = {"items": [{"dispensed_item_id": one["id"], "quantity": 9}], "reason": "Unopened"}
    refused = client.post(url, json=body, headers=bearer(client, pharmacist))
    assert error(refused, 422, "invalid_input")["fields"].keys() == {"items.0.quantity"}
    body["items"][0]["quantity"] = 1
    assert client.post(url, json=body, headers=bearer(client, reception)).status_code == 403
    ok = client.post(url, json=body, headers=bearer(client, pharmacist))
    assert ok.status_code == 200 and ok.get_json()["items"][0]["returned_quantity"] == 1


def test_the_h1_register_has_an_entry_for_an_h1_medicine_only(
    client, doctor, reception, pharmacist
):
    tramadol = medicine("Tramazac", "9.00", 12, schedule="H1")
    para = medicine("Paracip", "2.50", 12, schedule="H")
    stocked(pharmacist, tramadol, ("TR-1", 10, 100))
    stocked(pharmacist, para, ("PC-1", 10, 100))
    patient = make_patient(full_name="Ravi Kumar", address="12 MG Road, Pune")
    prescription, _ = paid_prescription(
        doctor, reception, [(tramadol, 5), (para, 3)], patient=patient
    )
    done = dispensing.dispense(pharmacist, {"prescription_id": prescription.id})

    (entry,) = db.session.scalars(select(H1RegisterEntry)).all()
    assert (
        entry.entry_date,
        entry.patient_name,
        entry.patient_address,
        entry.doctor_name,
        entry.doctor_registration,
        entry.medicine_name,
        entry.batch_number,
        entry.quantity,
        entry.dispensing_id,
    ) == (
        clock.today(),
        "Ravi Kumar",
        "12 MG Road, Pune",
        doctor.full_name,
        doctor.registration_number,
        "Tramazac 500 mg",
        "TR-1",
        5,
        done["id"],
    )

    url = "/api/v1/pharmacy/h1-register"
    for outsider in (doctor, reception):  # patients' addresses: the pharmacy's record
        assert client.get(url, headers=bearer(client, outsider)).status_code == 403
    listed = client.get(f"{url}?from=2030-01-07&to=2030-01-07", headers=bearer(client, pharmacist))
    assert listed.status_code == 200
    (row,) = listed.get_json()["items"]
    assert (row["patient_name"], row["quantity"], row["schedule"]) == ("Ravi Kumar", 5, "H1")
    assert (
        client.get(f"{url}?from=2030-01-08", headers=bearer(client, pharmacist)).get_json()["items"]
        == []
    )
    headers = {**bearer(client, pharmacist), "Accept": "text/csv"}
    as_csv = client.get(url, headers=headers)
    assert as_csv.status_code == 200 and as_csv.mimetype == "text/csv"
    lines = as_csv.get_data(as_text=True).splitlines()
    assert lines[0].startswith("Date,Patient,Address,Prescriber,Registration no.,Medicine")
    assert lines[1].startswith('2030-01-07,Ravi Kumar,"12 MG Road, Pune",')
    assert len(lines) == 2
    by_format = client.get(f"{url}?format=csv", headers=bearer(client, pharmacist))
    assert by_format.mimetype == "text/csv"
    backwards = client.get(f"{url}?from=2030-01-08&to=2030-01-01", headers=headers)
    assert error(backwards, 422, "invalid_input")["fields"].keys() == {"from"}


def test_the_h1_register_is_append_only(doctor, reception, pharmacist):
    tramadol = medicine("Tramazac", "9.00", 12, schedule="X")
    stocked(pharmacist, tramadol, ("TR-1", 10, 100))
    prescription, _ = paid_prescription(doctor, reception, [(tramadol, 2)])
    dispensing.dispense(pharmacist, {"prescription_id": prescription.id})
    db.session.flush()
    for statement in ("UPDATE h1_register SET quantity = 1", "DELETE FROM h1_register"):
        with pytest.raises(DBAPIError, match="append-only"), db.session.begin_nested():
            db.session.execute(text(statement))
    assert db.session.scalar(select(H1RegisterEntry.quantity)) == 2


def test_at_half_past_eleven_on_a_batch_s_last_day(doctor, reception, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    (batch,) = stocked(pharmacist, para, ("LAST", 10, 1))  # expires tomorrow
    kolkata = ZoneInfo("Asia/Kolkata")
    today, tomorrow = clock.today(), in_days(1)
    first, _ = paid_prescription(doctor, reception, [(para, 4)])
    second, _ = paid_prescription(doctor, reception, [(para, 4)])
    with clock.fixed(datetime.combine(today, time(23, 30), tzinfo=kolkata)):
        done = dispensing.dispense(pharmacist, {"prescription_id": first.id})
        assert taken(done) == [("LAST", 4)]
    with clock.fixed(datetime.combine(tomorrow, time(0, 5), tzinfo=kolkata)):
        with pytest.raises(Conflict) as caught:
            dispensing.dispense(pharmacist, {"prescription_id": second.id})
        assert caught.value.code == "insufficient_stock"
        assert caught.value.details["items"][0]["available"] == 0
    assert quantities(batch) == [6]


def test_the_dispensing_api(client, doctor, reception, pharmacist, admin):
    para = medicine("Paracip", "2.50", 12)
    stocked(pharmacist, para, ("PC-1", 3, 30), ("PC-2", 10, 90))
    prescription, _ = paid_prescription(doctor, reception, [(para, 5)])
    listed = client.get(
        "/api/v1/prescriptions?status=awaiting_dispense", headers=bearer(client, pharmacist)
    ).get_json()
    assert [(p["id"], p["dispense_status"]) for p in listed["items"]] == [
        (prescription.id, "AWAITING")
    ]
    body = {"prescription_id": prescription.id}
    for user in (admin, reception, doctor):
        assert client.post(DISPENSING, json=body, headers=bearer(client, user)).status_code == 403
    bad = client.post(DISPENSING, json={"prescription_id": "x"}, headers=bearer(client, pharmacist))
    assert error(bad, 422, "invalid_input")["fields"].keys() == {"prescription_id"}
    missing = client.post(
        DISPENSING, json={"prescription_id": 999999}, headers=bearer(client, pharmacist)
    )
    assert error(missing, 404, "prescription_not_found")

    made = client.post(DISPENSING, json=body, headers=bearer(client, pharmacist))
    assert made.status_code == 201, made.get_json()
    done = made.get_json()
    assert made.headers["Location"].endswith(f"{DISPENSING}/{done['id']}")
    shown = client.get(f"{DISPENSING}/{done['id']}", headers=bearer(client, reception)).get_json()
    assert shown == done
    assert [(i["batch_number"], i["expiry_date"], i["quantity"]) for i in shown["items"]] == [
        ("PC-1", in_days(30).isoformat(), 3),
        ("PC-2", in_days(90).isoformat(), 2),
    ]
    assert shown["dispensed_by"] == {"id": pharmacist.id, "full_name": pharmacist.full_name}
    assert all(isinstance(i["id"], int) for i in shown["items"])
    again = client.post(DISPENSING, json=body, headers=bearer(client, pharmacist))
    assert error(again, 409, "already_dispensed")
    assert (
        client.get(
            "/api/v1/prescriptions?status=awaiting_dispense", headers=bearer(client, pharmacist)
        ).get_json()["items"]
        == []
    )
    assert error(
        client.get(f"{DISPENSING}/999999", headers=bearer(client, doctor)),
        404,
        "dispensing_not_found",
    )
    assert stock.levels([para.id])[para.id][0] == 8


def test_a_dispensing_sends_the_statements_it_is_pinned_to(
    app, client, doctor, reception, pharmacist
):
    """Two medicines from three batches, the path every patient at the counter takes: the
    user; the prescription locked with its patient, doctor and items (one statement); the PAID
    invoice locked FOR SHARE with its lines (one statement); the usable batches locked;
    the batches' new quantities (one executemany); the dispensing; the prescription's
    state; its items; the outbox (audit record and movements, one insert). Nothing asks
    what was handed over before while the prescription is still AWAITING. Lower the
    figure when a change saves one."""
    a = medicine("Alpha", "2.00", 12)
    b = medicine("Beta", "3.00", 12)
    stocked(pharmacist, a, ("A1", 5, 100), ("A2", 50, 200))
    stocked(pharmacist, b, ("B1", 50, 100))
    commit()
    prescription, _ = paid_prescription(doctor, reception, [(a, 10), (b, 4)])
    headers = bearer(client, pharmacist)
    answers = []

    def dispense():
        answers.append(
            client.post(DISPENSING, json={"prescription_id": prescription.id}, headers=headers)
        )

    sent = statements(app, dispense)
    assert answers[0].status_code == 201, answers[0].get_json()
    assert [(i["batch_number"], i["quantity"]) for i in answers[0].get_json()["items"]] == [
        ("A1", 5),
        ("A2", 5),
        ("B1", 4),
    ]
    assert len(sent) == 9, sent
