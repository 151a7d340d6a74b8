"""Invoices through the API (SPEC 8, issue 11): a table of invoices computed by hand to the
paisa, AUTO from a prescription, MANUAL lines, the discount, every 422 naming its field,
finalising with gapless numbers, cancelling, who may do what, and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from qure.admin import settings as clinic_settings
from qure.billing import service
from qure.billing.models import Invoice, InvoiceLine
from qure.core import clock
from qure.core.db import commit
from qure.core.roles import Role
from qure.extensions import db
from qure.prescriptions import service as prescriptions
from tests.billing.helpers import URL, Desk, completed_visit, medicine
from tests.helpers import bearer, error, make_patient
from tests.prescriptions.test_service import audit_payloads, item, start_visit


def line(kind, description, quantity, unit_price, gst_rate=None, **extra) -> dict:
    out = {"kind": kind, "description": description, "quantity": quantity}
    out["unit_price"] = unit_price
    if gst_rate is not None:
        out["gst_rate"] = gst_rate
    return {**out, **extra}


def manual(desk, patient, items, discount=None, **extra):
    body = {"mode": "MANUAL", "patient_id": patient.id, "items": items, **extra}
    if discount is not None:
        body["discount"] = discount
    return desk.post("", body)


def made(response, status: int = 201) -> dict:
    assert response.status_code == status, response.get_json()
    return response.get_json()


# ---- the table: invoices computed by hand ---------------------------------------------------

LINE_KEYS = ("value", "discount", "taxable", "cgst", "sgst", "total")
TOTAL_KEYS = ("subtotal", "discount_amount", "taxable", "cgst", "sgst", "total")

TABLE = [
    pytest.param(
        # Four rates in one invoice, a 7.5 % discount.
        #   consultation 1 x 500.00 @ 0   -> 500.00
        #   tablets      3 x 33.33  @ 5   ->  99.99
        #   drops        7 x 1.15   @ 12  ->   8.05
        #   dressing     1 x 250.00 @ 18  -> 250.00      subtotal 858.04
        # discount round_half_up(858.04 x 7.5 / 100 = 64.353) = 64.35, shared by value:
        #   500.00 x 64.35 / 858.04 = 37.4982 -> 37.50
        #    99.99 x 64.35 / 858.04 =  7.4989 ->  7.50
        #     8.05 x 64.35 / 858.04 =  0.6037 ->  0.60
        #   the rest on the last line: 64.35 - 45.60 = 18.75
        # taxable 462.50, 92.49, 7.45, 231.25 (= 793.69)
        # CGST = SGST: 0; 92.49 x 2.5 % = 2.31225 -> 2.31; 7.45 x 6 % = 0.447 -> 0.45;
        #   231.25 x 9 % = 20.8125 -> 20.81  (= 23.57)
        # line totals 462.50, 97.11, 8.35, 272.87; total 840.83 (= 793.69 + 2 x 23.57)
        [
            line("CONSULTATION", "Consultation", "1", "500.00", 0, hsn_sac="999312"),
            line("MEDICINE", "Tablets", "3", "33.33", 5),
            line("MEDICINE", "Eye drops", 7, 1.15, 12),
            line("PROCEDURE", "Dressing", "1", "250", 18),
        ],
        {"type": "PERCENT", "value": "7.5"},
        [
            ("500.00", "37.50", "462.50", "0.00", "0.00", "462.50"),
            ("99.99", "7.50", "92.49", "2.31", "2.31", "97.11"),
            ("8.05", "0.60", "7.45", "0.45", "0.45", "8.35"),
            ("250.00", "18.75", "231.25", "20.81", "20.81", "272.87"),
        ],
        ("858.04", "64.35", "793.69", "23.57", "23.57", "840.83"),
        id="four-rates-percent",
    ),
    pytest.param(
        # Three equal lines, 10.00 off: 10 x 10 / 30 = 3.333 -> 3.33, 3.33, rest 3.34.
        # taxable 6.67 @ 18, 6.67 @ 12, 6.66 @ 5
        # CGST 6.67 x 9 % = 0.6003 -> 0.60; 6.67 x 6 % = 0.4002 -> 0.40;
        #   6.66 x 2.5 % = 0.1665 -> 0.17 (half-up)
        # totals 7.87, 7.47, 7.00 = 22.34; CGST 1.17
        [
            line("LAB", "CBC", "1", "10.00", 18),
            line("LAB", "ESR", "1", "10.00", 12),
            line("OTHER", "Certificate", "1", "10.00", 5),
        ],
        {"type": "AMOUNT", "value": "10.00"},
        [
            ("10.00", "3.33", "6.67", "0.60", "0.60", "7.87"),
            ("10.00", "3.33", "6.67", "0.40", "0.40", "7.47"),
            ("10.00", "3.34", "6.66", "0.17", "0.17", "7.00"),
        ],
        ("30.00", "10.00", "20.00", "1.17", "1.17", "22.34"),
        id="amount-remainder-on-last",
    ),
    pytest.param(
        # Fractions of a paisa, no discount:
        #   0.5 x 12.25 = 6.125 -> 6.13 @ 12: CGST 6.13 x 6 % = 0.3678 -> 0.37; total 6.87
        #   2.5 x 3.33 = 8.325 -> 8.33 @ 5: CGST 8.33 x 2.5 % = 0.20825 -> 0.21; total 8.75
        #   1 x 0.10 @ 18: CGST 0.10 x 9 % = 0.009 -> 0.01; total 0.12
        #   3 x 0.00 @ 0: nothing
        # subtotal 14.56; CGST 0.59; total 14.56 + 1.18 = 15.74
        [
            line("MEDICINE", "Syrup, half bottle", "0.5", "12.25", 12),
            line("MEDICINE", "Powder", "2.5", "3.33", 5),
            line("OTHER", "Cotton", "1", "0.10", 18),
            line("OTHER", "Leaflet", "3", "0", 0),
        ],
        None,
        [
            ("6.13", "0.00", "6.13", "0.37", "0.37", "6.87"),
            ("8.33", "0.00", "8.33", "0.21", "0.21", "8.75"),
            ("0.10", "0.00", "0.10", "0.01", "0.01", "0.12"),
            ("0.00", "0.00", "0.00", "0.00", "0.00", "0.00"),
        ],
        ("14.56", "0.00", "14.56", "0.59", "0.59", "15.74"),
        id="paisa-fractions",
    ),
    pytest.param(
        # Half off a 999.99 line and a 0.01 line: 999.99 x 500 / 1000 = 499.995 -> 500.00
        # (half-up), so the last line's share is 0.00.
        # taxable 499.99 @ 18: CGST 44.9991 -> 45.00; 0.01 @ 5: CGST 0.00025 -> 0.00
        # totals 589.99 and 0.01 = 590.00
        [
            line("IMAGING", "X-ray", "1", "999.99", 18),
            line("OTHER", "Envelope", "1", "0.01", 5),
        ],
        {"type": "AMOUNT", "value": "500"},
        [
            ("999.99", "500.00", "499.99", "45.00", "45.00", "589.99"),
            ("0.01", "0.00", "0.01", "0.00", "0.00", "0.01"),
        ],
        ("1000.00", "500.00", "500.00", "45.00", "45.00", "590.00"),
        id="half-up-share",
    ),
    pytest.param(
        # The default rate (18) for a line without one; 5 % at its half-paisa edge:
        #   2 x 2.50 = 5.00 @ 5: CGST 0.125 -> 0.13; total 5.26
        #   1 x 100.00, no rate -> 18: CGST 9.00; total 118.00
        [
            line("MEDICINE", "Lozenges", "2", "2.50", 5),
            line("PROCEDURE", "Ear wash", "1", "100.00"),
        ],
        None,
        [
            ("5.00", "0.00", "5.00", "0.13", "0.13", "5.26"),
            ("100.00", "0.00", "100.00", "9.00", "9.00", "118.00"),
        ],
        ("105.00", "0.00", "105.00", "9.13", "9.13", "123.26"),
        id="default-rate-half-paisa",
    ),
    pytest.param(
        # Shares that round up past a small last line: values 0.05 x 4 and 0.01, 0.18 off.
        # 0.05 x 0.18 / 0.21 = 0.0429 -> 0.04 four times (0.16), the rest 0.02 is more
        # than the last line's 0.01: it keeps 0.01 and the paisa over goes to the line
        # before (0.05). Taxable 0.01, 0.01, 0.01, 0.00, 0.00; CGST 0.01 x 9 % -> 0.00.
        [line("OTHER", f"Swab {n}", "1", "0.05", 18) for n in range(4)]
        + [line("OTHER", "Pin", "1", "0.01", 18)],
        {"type": "AMOUNT", "value": "0.18"},
        [
            ("0.05", "0.04", "0.01", "0.00", "0.00", "0.01"),
            ("0.05", "0.04", "0.01", "0.00", "0.00", "0.01"),
            ("0.05", "0.04", "0.01", "0.00", "0.00", "0.01"),
            ("0.05", "0.05", "0.00", "0.00", "0.00", "0.00"),
            ("0.01", "0.01", "0.00", "0.00", "0.00", "0.00"),
        ],
        ("0.21", "0.18", "0.03", "0.00", "0.00", "0.03"),
        id="share-capped-at-line",
    ),
]


@pytest.mark.parametrize(("items", "discount", "lines", "totals"), TABLE)
def test_an_invoice_is_priced_to_the_paisa(desk, patient, items, discount, lines, totals):
    body = made(manual(desk, patient, items, discount))
    assert [tuple(li[k] for k in LINE_KEYS) for li in body["lines"]] == lines
    assert tuple(body[k] for k in TOTAL_KEYS) == totals
    assert [li["position"] for li in body["lines"]] == list(range(1, len(items) + 1))
    assert all(isinstance(li["id"], int) for li in body["lines"])
    # What PostgreSQL holds is what the answer says.
    db.session.expire_all()
    invoice = db.session.get(Invoice, body["id"])
    rows = db.session.scalars(
        select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id).order_by("position")
    ).all()
    assert [tuple(f"{getattr(r, k)}" for k in LINE_KEYS) for r in rows] == lines
    stored = (invoice.subtotal, invoice.discount, invoice.taxable)
    stored += (invoice.cgst, invoice.sgst, invoice.total)
    assert tuple(f"{v}" for v in stored) == totals
    assert all(isinstance(v, Decimal) for v in stored)
    # Reading it back answers the same.
    assert made(desk.get(f"/{body['id']}"), 200) == body


def test_client_totals_are_never_read(desk, patient):
    """A line's amounts sent along are ignored; an invoice's are refused (unknown fields)."""
    items = [line("LAB", "CBC", "1", "100.00", 18, total="1.00", taxable="1.00", cgst="0")]
    body = made(manual(desk, patient, items))
    assert (body["lines"][0]["total"], body["total"]) == ("118.00", "118.00")
    refused = error(manual(desk, patient, items, total="1.00"), 422, "invalid_input")
    assert refused["fields"] == {"total": "Unknown field."}


def test_minus_zero_is_zero(desk, patient):
    """A price typed "-0" is free, not "-0.00" on the invoice (nor in its sums)."""
    body = made(manual(desk, patient, [line("OTHER", "Leaflet", "2", "-0", 18)]))
    assert (body["lines"][0]["unit_price"], body["lines"][0]["value"]) == ("0.00", "0.00")
    assert (body["subtotal"], body["total"]) == ("0.00", "0.00")


# ---- AUTO ------------------------------------------------------------------------------


def test_auto_bills_the_consultation_then_the_medicines_in_prescription_order(desk, doctor, admin):
    clinic_settings.update(admin, {"consultation_fee": "650.00", "consultation_gst_rate": 18})
    commit()
    cough = medicine("Coughex", "85.00", 18, form="SYRUP", strength="100 ml", hsn_code="30049011")
    para = medicine("Paracip", "2.50", 12)
    _, prescription = completed_visit(doctor, [(cough, 1), (para, 10)])
    body = made(desk.auto(prescription))
    assert (body["mode"], body["status"], body["number"]) == ("AUTO", "DRAFT", None)
    assert body["prescription_id"] == prescription.id
    assert body["visit_id"] == prescription.visit_id
    keys = ("kind", "hsn_sac", "medicine_id", "quantity", "unit_price", "gst_rate")
    shown = [tuple(li[k] for k in keys) for li in body["lines"]]
    assert shown == [
        ("CONSULTATION", "999312", None, "1.00", "650.00", 18),
        ("MEDICINE", "30049011", cough.id, "1.00", "85.00", 18),
        ("MEDICINE", None, para.id, "10.00", "2.50", 12),
    ]
    assert body["lines"][0]["description"] == f"Consultation, {doctor.full_name}"
    assert body["lines"][1]["description"].startswith("Coughex 100 ml")
    # 650 @ 18: 58.50 each; 85 @ 18: 7.65 each; 25 @ 12: 1.50 each
    # totals 767.00 + 100.30 + 28.00 = 895.30
    assert [li["total"] for li in body["lines"]] == ["767.00", "100.30", "28.00"]
    assert body["total"] == "895.30"


def test_auto_for_a_visit_without_prescription_bills_the_consultation(desk, doctor):
    visit, none = completed_visit(doctor)
    assert none is None
    body = made(desk.post("", {"mode": "AUTO", "visit_id": visit.id}))
    assert [(li["kind"], li["total"]) for li in body["lines"]] == [("CONSULTATION", "500.00")]
    assert body["prescription_id"] is None and body["total"] == "500.00"
    again = desk.post("", {"mode": "AUTO", "visit_id": visit.id})
    assert error(again, 409, "invoice_exists")["details"] == {"invoice_id": body["id"]}


def test_auto_without_the_consultation(desk, doctor):
    para = medicine("Paracip", "2.50", 12)
    _, prescription = completed_visit(doctor, [(para, 4)])
    body = made(desk.auto(prescription, include_consultation=False))
    assert [li["kind"] for li in body["lines"]] == ["MEDICINE"]
    assert body["total"] == "11.20"  # 10.00 + 0.60 + 0.60
    visit, _ = completed_visit(doctor)
    nothing = desk.post("", {"mode": "AUTO", "visit_id": visit.id, "include_consultation": False})
    assert "include_consultation" in error(nothing, 422, "invalid_input")["fields"]
    wrong = desk.auto(prescription, include_consultation="no")
    assert "include_consultation" in error(wrong, 422, "invalid_input")["fields"]


def test_auto_needs_a_completed_visit(desk, doctor):
    para = medicine("Paracip", "2.50", 12)
    visit = start_visit(doctor, make_patient())
    prescription = prescriptions.create(doctor, {"visit_id": visit.id, "items": [item(para)]})
    commit()
    error(desk.auto(prescription), 409, "visit_not_completed")
    error(desk.post("", {"mode": "AUTO", "visit_id": visit.id}), 409, "visit_not_completed")
    assert db.session.scalar(select(Invoice.id)) is None


def test_auto_for_a_prescription_and_another_visit_is_refused(desk, doctor):
    para = medicine("Paracip", "2.50", 12)
    _, prescription = completed_visit(doctor, [(para, 2)])
    other, _ = completed_visit(doctor)
    both = desk.auto(prescription, visit_id=other.id)
    assert set(error(both, 422, "invalid_input")["fields"]) == {"visit_id"}
    same = made(desk.auto(prescription, visit_id=prescription.visit_id))
    assert same["visit_id"] == prescription.visit_id


def test_auto_of_what_does_not_exist(desk):
    error(desk.post("", {"mode": "AUTO", "prescription_id": 999999}), 404, "prescription_not_found")
    error(desk.post("", {"mode": "AUTO", "visit_id": 999999}), 404, "visit_not_found")
    assert (
        "prescription_id" in error(desk.post("", {"mode": "AUTO"}), 422, "invalid_input")["fields"]
    )


def test_a_second_auto_is_refused_until_the_first_is_cancelled(desk, doctor):
    para = medicine("Paracip", "2.50", 12)
    _, prescription = completed_visit(doctor, [(para, 2)])
    first = made(desk.auto(prescription))
    again = error(desk.auto(prescription), 409, "invoice_exists")
    assert again["details"] == {"invoice_id": first["id"]}
    by_visit = desk.post("", {"mode": "AUTO", "visit_id": prescription.visit_id})
    assert error(by_visit, 409, "invoice_exists")["details"] == {"invoice_id": first["id"]}
    made(desk.post(f"/{first['id']}/cancel", {"reason": "Wrong discount"}), 200)
    second = made(desk.auto(prescription))
    assert second["id"] != first["id"]
    third = error(desk.auto(prescription), 409, "invoice_exists")
    assert third["details"] == {"invoice_id": second["id"]}


def test_an_invoiced_prescription_cannot_change(client, desk, doctor):
    para = medicine("Paracip", "2.50", 12)
    _, prescription = completed_visit(doctor, [(para, 2)])
    invoice = made(desk.auto(prescription))
    url = f"/api/v1/prescriptions/{prescription.id}"
    response = client.patch(url, json={"notes": "After food"}, headers=bearer(client, doctor))
    assert error(response, 409, "prescription_invoiced")["details"] == {"invoice_id": invoice["id"]}


# ---- MANUAL and PATCH ---------------------------------------------------------------------


def test_a_manual_invoice_for_a_visit_of_the_patient(desk, doctor, patient):
    visit, _ = completed_visit(doctor, patient=patient)
    body = made(
        manual(desk, patient, [line("PROCEDURE", "Suturing", "1", "800", 18)], visit_id=visit.id)
    )
    assert (body["mode"], body["visit_id"], body["patient"]["id"]) == (
        "MANUAL",
        visit.id,
        patient.id,
    )
    other_visit, _ = completed_visit(doctor)
    wrong = manual(desk, patient, [line("LAB", "CBC", "1", "1")], visit_id=other_visit.id)
    assert "visit_id" in error(wrong, 422, "invalid_input")["fields"]
    error(
        manual(desk, patient, [line("LAB", "CBC", "1", "1")], visit_id=999999),
        404,
        "visit_not_found",
    )


def test_patch_replaces_the_lines_and_the_discount(desk, patient):
    body = made(
        manual(
            desk,
            patient,
            [line("LAB", "CBC", "1", "300", 18), line("LAB", "ESR", "1", "100", 18)],
            {"type": "PERCENT", "value": "10"},
        )
    )
    old_ids = [li["id"] for li in body["lines"]]
    changed = made(
        desk.patch(
            f"/{body['id']}",
            {"items": [line("IMAGING", "Ultrasound", "1", "1200.00", 18)]},
        ),
        200,
    )
    assert [li["description"] for li in changed["lines"]] == ["Ultrasound"]
    assert changed["lines"][0]["id"] not in old_ids
    # The discount stays: 10 % of 1200 = 120; taxable 1080; CGST 97.20; total 1274.40
    assert changed["discount"] == {"type": "PERCENT", "value": "10.00"}
    assert (changed["discount_amount"], changed["total"]) == ("120.00", "1274.40")
    amount = made(desk.patch(f"/{body['id']}", {"discount": {"type": "AMOUNT", "value": 200}}), 200)
    # 1000 taxable; 90 + 90; 1180
    assert (amount["discount_amount"], amount["total"]) == ("200.00", "1180.00")
    assert amount["discount"] == {"type": "AMOUNT", "value": "200.00"}
    removed = made(desk.patch(f"/{body['id']}", {"discount": None}), 200)
    assert (removed["discount"], removed["total"]) == (None, "1416.00")
    db.session.expire_all()
    rows = db.session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == body["id"]))
    assert [r.description for r in rows] == ["Ultrasound"]


def test_only_a_draft_changes(desk, patient):
    body = made(manual(desk, patient, [line("LAB", "CBC", "1", "300", 18)]))
    made(desk.post(f"/{body['id']}/finalize"), 200)
    patch = desk.patch(f"/{body['id']}", {"discount": {"type": "AMOUNT", "value": "1"}})
    error(patch, 409, "invoice_not_draft")
    error(desk.post(f"/{body['id']}/finalize"), 409, "invoice_not_draft")
    error(desk.patch("/999999", {"discount": None}), 404, "invoice_not_found")


def test_a_typed_line_is_never_a_prescription_item(desk, patient, reception, doctor):
    """Only AUTO links a line to the prescription's item; what a caller of the service
    says of it (the API's schema drops the key) is not read, so no id reaches the
    database's foreign key."""
    para = medicine("Paracip", "2.50", 12)
    _, prescription = completed_visit(doctor, [(para, 2)])
    auto = made(desk.auto(prescription))
    (item_id,) = [i.id for i in prescription.items]
    body = made(manual(desk, patient, [GOOD]))
    for linked in (item_id, 999999):
        service.update(reception, body["id"], {"items": [{**GOOD, "prescription_item_id": linked}]})
        commit()
    db.session.expire_all()
    rows = db.session.scalars(select(InvoiceLine).order_by(InvoiceLine.id)).all()
    assert [(r.invoice_id, r.prescription_item_id) for r in rows if r.medicine_id] == [
        (auto["id"], item_id)
    ]
    assert {r.prescription_item_id for r in rows if r.invoice_id == body["id"]} == {None}


# ---- 422: each names its field, nothing is saved --------------------------------------------

GOOD = {"kind": "LAB", "description": "CBC", "quantity": "1", "unit_price": "100", "gst_rate": 18}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"items": [{**GOOD, "quantity": "-1"}]}, "items.0.quantity"),
        ({"items": [{**GOOD, "quantity": 0}]}, "items.0.quantity"),
        ({"items": [{**GOOD, "quantity": "two"}]}, "items.0.quantity"),
        ({"items": [{**GOOD, "quantity": True}]}, "items.0.quantity"),
        ({"items": [{**GOOD, "quantity": "1.005"}]}, "items.0.quantity"),
        ({"items": [GOOD, {**GOOD, "gst_rate": 7}]}, "items.1.gst_rate"),
        ({"items": [GOOD, {**GOOD, "gst_rate": "eighteen"}]}, "items.1.gst_rate"),
        ({"items": [GOOD, {**GOOD, "gst_rate": True}]}, "items.1.gst_rate"),
        ({"items": [{**GOOD, "unit_price": "-5"}]}, "items.0.unit_price"),
        ({"items": [{**GOOD, "unit_price": "1.234"}]}, "items.0.unit_price"),
        ({"items": [{**GOOD, "unit_price": [1]}]}, "items.0.unit_price"),
        ({"items": [{**GOOD, "kind": "FOOD"}]}, "items.0.kind"),
        ({"items": [{**GOOD, "description": " "}]}, "items.0.description"),
        ({"items": [{**GOOD, "description": ["CBC"]}]}, "items.0.description"),
        ({"items": [{**GOOD, "description": 42}]}, "items.0.description"),
        ({"items": [{**GOOD, "hsn_sac": "12"}]}, "items.0.hsn_sac"),
        ({"items": [{**GOOD, "medicine_id": 999999}]}, "items.0.medicine_id"),
        ({"items": [{**GOOD, "medicine_id": 2**40}]}, "items.0.medicine_id"),
        ({"items": [{**GOOD, "medicine_id": -1}]}, "items.0.medicine_id"),
        ({"items": [{k: v for k, v in GOOD.items() if k != "quantity"}]}, "items.0.quantity"),
        ({"items": []}, "items"),
        ({"items": "CBC"}, "items"),
        ({"items": ["CBC"]}, "items.0"),
        ({"items": [GOOD, 5]}, "items.1"),
        ({"items": [GOOD], "discount": "10"}, "discount"),
        ({"items": [GOOD], "discount": ["PERCENT", 10]}, "discount"),
        ({"items": [GOOD], "discount": {"type": "PERCENT", "value": "101"}}, "discount.value"),
        ({"items": [GOOD], "discount": {"type": "PERCENT", "value": "-1"}}, "discount.value"),
        ({"items": [GOOD], "discount": {"type": "AMOUNT", "value": "ten"}}, "discount.value"),
        ({"items": [GOOD], "discount": {"type": "HALF", "value": "1"}}, "discount.type"),
        ({"items": [GOOD], "discount": {"type": "AMOUNT", "value": "100.01"}}, "discount"),
        ({"items": [GOOD], "surprise": 1}, "surprise"),
        ({"items": [GOOD], "patient_id": "one"}, "patient_id"),
        ({"items": [GOOD], "mode": "BOTH"}, "mode"),
    ],
)
def test_bad_input_names_its_field(desk, patient, change, field):
    body = {"mode": "MANUAL", "patient_id": patient.id, **change}
    response = desk.post("", body)
    fields = error(response, 422, "invalid_input")["fields"]
    assert field in fields, fields
    assert not any("_schema" in name for name in fields), fields
    assert db.session.scalar(select(Invoice.id)) is None


def test_a_patch_with_bad_input_changes_nothing(desk, patient):
    body = made(manual(desk, patient, [GOOD]))
    for change, field in (
        ({"items": [GOOD, {**GOOD, "quantity": "-2"}]}, "items.1.quantity"),
        ({"discount": {"type": "AMOUNT", "value": "500"}}, "discount"),
        ({"discount": {"type": "PERCENT", "value": "x"}}, "discount.value"),
        ({"items": [GOOD], "total": "1"}, "total"),
        ({"items": None}, "items"),
    ):
        fields = error(desk.patch(f"/{body['id']}", change), 422, "invalid_input")["fields"]
        assert field in fields, (change, fields)
    assert made(desk.get(f"/{body['id']}"), 200) == body


def test_new_lines_below_the_amount_discount_change_nothing(desk, patient):
    """The old lines are deleted (flushed) before the new ones are priced; a discount
    then above the new subtotal rolls all of it back."""
    body = made(manual(desk, patient, [GOOD], {"type": "AMOUNT", "value": "50"}))
    cheaper = {"items": [{**GOOD, "unit_price": "10.00"}]}
    fields = error(desk.patch(f"/{body['id']}", cheaper), 422, "invalid_input")["fields"]
    assert set(fields) == {"discount"}
    assert made(desk.get(f"/{body['id']}"), 200) == body
    db.session.expire_all()
    rows = db.session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == body["id"]))
    assert [r.id for r in rows] == [body["lines"][0]["id"]]
    assert audit_payloads("INVOICE_UPDATED") == []


# ---- finalising and cancelling -------------------------------------------------------------


def test_finalising_numbers_the_invoices_of_the_financial_year_without_gaps(
    desk, patient, reception
):
    first = made(manual(desk, patient, [GOOD]))
    second = made(manual(desk, patient, [GOOD]))
    numbered = made(desk.post(f"/{first['id']}/finalize"), 200)
    assert (numbered["number"], numbered["status"]) == ("INV/2029-30/000001", "PENDING")
    assert numbered["finalized_at"] == "2030-01-07T04:30:00+00:00"  # 10:00 in Kolkata
    # A finalising that fails after taking its number gives the number back.
    with pytest.raises(RuntimeError), db.session.begin_nested():
        service.finalize(reception, second["id"])
        raise RuntimeError("the request fails after numbering")
    db.session.expire_all()
    assert made(desk.get(f"/{second['id']}"), 200)["number"] is None
    assert made(desk.post(f"/{second['id']}/finalize"), 200)["number"] == "INV/2029-30/000002"


def test_the_financial_year_turns_on_1_april_in_the_clinics_time_zone(desk, patient):
    """31 March 23:59 in Kolkata is still 2029-30; a minute later (18:30 UTC, still 31
    March there) the year 2030-31 starts again at 000001. A credit note too."""
    ids = [made(manual(desk, patient, [GOOD]))["id"] for _ in range(3)]
    kolkata = ZoneInfo("Asia/Kolkata")
    with clock.fixed(datetime(2030, 3, 31, 23, 59, tzinfo=kolkata)):
        last = made(desk.post(f"/{ids[0]}/finalize"), 200)
    with clock.fixed(datetime(2030, 3, 31, 18, 30, tzinfo=UTC)):
        first = made(desk.post(f"/{ids[1]}/finalize"), 200)
        made(desk.pay(first), 200)
        note = desk.post(f"/{ids[1]}/credit-notes", {"reason": "Returned", "method": "CASH"})
        assert made(note)["number"] == "CN/2030-31/000001"
    with clock.fixed(datetime(2030, 4, 2, 9, 0, tzinfo=kolkata)):
        second = made(desk.post(f"/{ids[2]}/finalize"), 200)
    assert (last["number"], last["invoice_date"]) == ("INV/2029-30/000001", "2030-03-31")
    assert (first["number"], first["invoice_date"]) == ("INV/2030-31/000001", "2030-04-01")
    assert second["number"] == "INV/2030-31/000002"


def test_to_bill_lists_completed_visits_not_yet_invoiced(desk, doctor):
    para = medicine("Paracip", "2.50", 12)
    older, _ = completed_visit(doctor, patient=make_patient(full_name="First Patient"))
    newer, prescription = completed_visit(
        doctor, [(para, 2)], patient=make_patient(full_name="Second Patient")
    )
    start_visit(doctor, make_patient())  # in progress: not yet

    def listed():
        return [
            (v["visit_id"], v["patient"]["full_name"])
            for v in made(desk.get("/to-bill"), 200)["items"]
        ]

    assert listed() == [(newer.id, "Second Patient"), (older.id, "First Patient")]
    page = made(desk.get("/to-bill"), 200)["items"][0]
    assert (page["doctor"]["id"], page["diagnosis"]) == (doctor.id, "Viral fever")
    invoice = made(desk.auto(prescription))
    assert listed() == [(older.id, "First Patient")]
    made(desk.post(f"/{invoice['id']}/cancel", {"reason": "Redo"}), 200)
    assert [v for v, _ in listed()] == [newer.id, older.id]


def test_cancelling_a_draft_or_a_pending_invoice_with_a_reason(desk, patient):
    draft = made(manual(desk, patient, [GOOD]))
    pending = made(desk.post(f"/{made(manual(desk, patient, [GOOD]))['id']}/finalize"), 200)
    for body in (draft, pending):
        no_reason = desk.post(f"/{body['id']}/cancel", {"reason": "  "})
        assert "reason" in error(no_reason, 422, "invalid_input")["fields"]
        missing = desk.post(f"/{body['id']}/cancel", {})
        assert "reason" in error(missing, 422, "invalid_input")["fields"]
        for wrong in (5, ["Billed twice"], {"text": "Billed twice"}, True):
            typed = desk.post(f"/{body['id']}/cancel", {"reason": wrong})
            assert error(typed, 422, "invalid_input")["fields"] == {"reason": "Give text."}
        cancelled = made(desk.post(f"/{body['id']}/cancel", {"reason": "Billed twice"}), 200)
        assert (cancelled["status"], cancelled["cancel_reason"]) == ("CANCELLED", "Billed twice")
        assert cancelled["number"] == body["number"]  # a cancelled number stays used
        again = desk.post(f"/{body['id']}/cancel", {"reason": "Again"})
        error(again, 409, "invoice_cancelled")
        error(desk.patch(f"/{body['id']}", {"discount": None}), 409, "invoice_not_draft")
    # The cancelled number stays taken: the next is 000002.
    third = made(manual(desk, patient, [GOOD]))
    assert made(desk.post(f"/{third['id']}/finalize"), 200)["number"] == "INV/2029-30/000002"


def test_a_paid_invoice_is_not_cancelled(desk, patient):
    body = made(desk.post(f"/{made(manual(desk, patient, [GOOD]))['id']}/finalize"), 200)
    made(desk.pay(body), 200)
    error(desk.post(f"/{body['id']}/cancel", {"reason": "Changed mind"}), 409, "already_paid")
    error(desk.patch(f"/{body['id']}", {"discount": None}), 409, "invoice_not_draft")


def test_listing_by_patient_status_number_and_date(desk, patient):
    other = make_patient(full_name="Other Person")
    a = made(manual(desk, patient, [GOOD]))
    b = made(desk.post(f"/{made(manual(desk, patient, [GOOD]))['id']}/finalize"), 200)
    c = made(manual(desk, other, [GOOD]))

    def ids(**query):
        return [i["id"] for i in made(desk.get("", **query), 200)["items"]]

    assert ids() == [c["id"], b["id"], a["id"]]
    assert ids(patient_id=patient.id) == [b["id"], a["id"]]
    assert ids(status="PENDING") == [b["id"]]
    assert ids(number="1") == [b["id"]] == ids(number="INV/2029-30/000001")
    assert ids(date="2030-01-07", per_page=1) == [c["id"]]
    assert ids(date="2030-01-06") == []
    assert "status" in error(desk.get("", status="OWED"), 422, "invalid_input")["fields"]


# ---- who may do what ------------------------------------------------------------------------


def test_roles(client, patient, doctor, pharmacist, admin):
    assert service.EDITORS == (Role.ADMIN, Role.RECEPTION)
    assert service.READERS == (Role.ADMIN, Role.RECEPTION, Role.PHARMACIST)
    by_admin = made(manual(Desk(client, admin), patient, [GOOD]))
    url = f"/{by_admin['id']}"
    reader = Desk(client, pharmacist)
    assert made(reader.get(url), 200)["id"] == by_admin["id"]
    assert made(reader.get(""), 200)["total"] == 1
    error(manual(reader, patient, [GOOD]), 403, "forbidden")
    error(reader.patch(url, {"discount": None}), 403, "forbidden")
    error(reader.post(f"{url}/finalize"), 403, "forbidden")
    error(reader.post(f"{url}/cancel", {"reason": "x"}), 403, "forbidden")
    error(reader.post(f"{url}/pay", {"method": "CASH", "amount": "118.00"}), 403, "forbidden")
    error(reader.get("/takings"), 403, "forbidden")
    error(reader.post("/day-close", {"date": "2030-01-07", "cash_counted": "0"}), 403, "forbidden")
    medic = Desk(client, doctor)
    for response in (
        medic.get(url),
        medic.get(""),
        medic.get("/to-bill"),
        manual(medic, patient, [GOOD]),
        medic.patch(url, {"discount": None}),
        medic.post(f"{url}/finalize"),
        medic.get("/takings"),
        medic.get("/day-close"),
    ):
        error(response, 403, "forbidden")
    for response in (
        client.get(URL),
        client.get(URL + url),
        client.post(URL, json={"mode": "MANUAL"}),
        client.post(URL + f"{url}/pay", json={}),
        client.get(URL + "/takings"),
    ):
        assert response.status_code == 401, response.get_json()
    assert made(Desk(client, admin).post(f"{url}/finalize"), 200)["status"] == "PENDING"


# ---- the audit trail -------------------------------------------------------------------------


def test_each_change_is_audited(desk, patient, reception):
    body = made(manual(desk, patient, [GOOD]))
    made(desk.patch(f"/{body['id']}", {"discount": {"type": "AMOUNT", "value": "10"}}), 200)
    made(desk.post(f"/{body['id']}/finalize"), 200)
    (created,) = audit_payloads("INVOICE_CREATED")
    assert created["resource"] == {"type": "invoice", "id": body["id"]}
    assert created["user"]["id"] == reception.id
    assert created["changes"]["new"]["total"] == "118.00"
    (updated,) = audit_payloads("INVOICE_UPDATED")
    assert updated["changes"]["new"]["total"] == "106.20"
    assert updated["changes"]["old"]["total"] == "118.00"
    (finalized,) = audit_payloads("INVOICE_FINALIZED")
    assert finalized["changes"]["new"]["number"] == "INV/2029-30/000001"
    unchanged = desk.patch(f"/{body['id']}", {})
    assert unchanged.status_code == 409  # a PENDING invoice: nothing audited
    other = made(manual(desk, patient, [GOOD]))
    made(desk.post(f"/{other['id']}/cancel", {"reason": "Duplicate"}), 200)
    (cancelled,) = audit_payloads("INVOICE_CANCELLED")
    assert cancelled["changes"] == {
        "old": {"status": "DRAFT"},
        "new": {"status": "CANCELLED", "reason": "Duplicate"},
    }
