"""What is to dispense (`dispensing.to_dispense`): the API's page written directly
(`prescriptions.schemas.listed`) exactly as PrescriptionSchema documents and dumps it, and
the statements the API list and the counter's page send, pinned."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from qure.billing import service as billing
from qure.billing.models import InvoiceMode, PaymentMethod
from qure.core import clock
from qure.core.db import commit
from qure.extensions import db
from qure.pharmacy import dispensing
from qure.prescriptions import service as prescriptions
from qure.prescriptions.models import DispenseStatus, Prescription, PrescriptionItem
from qure.prescriptions.schemas import PrescriptionSchema, listed
from tests.helpers import NOW, bearer, count_statements, make_patient, sign_in
from tests.pharmacy.helpers import medicine, stocked
from tests.prescriptions.test_service import complete_visit, item, start_visit

URL = "/api/v1/prescriptions?status=awaiting_dispense"


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


def awaiting(doctor, desk, items, minutes_before: int = 0, patient=None, **fields):
    """A prescription of `items`, written `minutes_before` NOW, with its AUTO invoice
    PAID at the desk; committed."""
    with clock.fixed(NOW - timedelta(minutes=minutes_before)):
        visit = start_visit(doctor, patient or make_patient())
        body = {"visit_id": visit.id, "items": items, **fields}
        prescription = prescriptions.create(doctor, body)
        commit()
        complete_visit(doctor, visit)
        invoice = billing.create(
            desk, {"mode": InvoiceMode.AUTO, "prescription_id": prescription.id}
        )
        billing.pay(desk, invoice.id, {"method": PaymentMethod.CASH, "amount": invoice.total})
        commit()
    return prescription


def loaded(ids: list[int]) -> list[Prescription]:
    """These prescriptions as ORM objects, read afresh with what the schema shows."""
    query = (
        select(Prescription)
        .where(Prescription.id.in_(ids))
        .options(
            joinedload(Prescription.patient),
            joinedload(Prescription.doctor),
            selectinload(Prescription.items).joinedload(PrescriptionItem.medicine),
        )
        .execution_options(populate_existing=True)
    )
    found = {p.id: p for p in db.session.scalars(query).unique()}
    return [found[i] for i in ids]


def assert_same(got: list[dict], want: list[dict]) -> None:
    """Equal field by field (each named when not), in the same order of keys."""
    assert len(got) == len(want)
    for mine, theirs in zip(got, want, strict=True):
        assert list(mine) == list(theirs)
        for field, value in theirs.items():
            if field == "items":
                for n, (a, b) in enumerate(zip(mine[field], value, strict=True)):
                    assert list(a) == list(b), (theirs["id"], n)
                    for key in b:
                        assert a[key] == b[key], (theirs["id"], n, key)
            else:
                assert mine[field] == value, (theirs["id"], field)
    assert json.dumps(got) == json.dumps(want)  # the bytes: order and formats


def test_the_list_is_built_as_its_schema_documents_it(client, doctor, reception, pharmacist):
    """Every optional field both set and None: the prescription's notes and allergy
    override reason, an item's route and instructions, a quantity given or worked out;
    doses with and without decimals, codes and patterns of frequency, a name outside
    ASCII, a prescription partly dispensed. The list is oldest first by when it was
    written (not by id)."""
    para = medicine("Paracip", "2.50", 12, generic_name="Paracetamol")
    cough = medicine("Coughex", "85.00", 18, form="SYRUP", strength="100 ml")
    cetirizine = medicine("Cetzine", "1.20", 12, strength="10 mg")
    stocked(pharmacist, cough, ("CX-1", 1, 100))
    allergic = make_patient(full_name="Zoë D'Souza", allergies=["Paracetamol"])
    full = awaiting(
        doctor,
        reception,
        [
            item(para, dose="0.5", frequency="1-0-1", duration_days=5, route="Oral"),
            item(cough, dose="12.25", frequency="TDS", quantity=2, instructions="after food"),
        ],
        minutes_before=10,
        patient=allergic,
        notes="Plenty of water",
        override_reason="Tolerated it for years",
    )
    bare = awaiting(doctor, reception, [item(cetirizine, frequency="OD", duration_days=3)], 30)
    partial = awaiting(doctor, reception, [item(cough, dose=2, quantity=4)], 20)
    dispensing.dispense(pharmacist, {"prescription_id": partial.id, "allow_partial": True})
    commit()

    rows = dispensing.to_dispense().items
    assert [p["id"] for p in rows] == [bare.id, partial.id, full.id]
    shown = PrescriptionSchema(many=True).dump(loaded([p["id"] for p in rows]))
    assert_same(listed(rows), shown)
    # Both sides of every optional field are in what was compared.
    assert {p["notes"] is None for p in shown} == {True, False}
    assert {p["allergy_override_reason"] is None for p in shown} == {True, False}
    items = [i for p in shown for i in p["items"]]
    assert {i["route"] is None for i in items} == {True, False}
    assert {i["instructions"] is None for i in items} == {True, False}
    assert [i["quantity"] for i in items] == [3, 4, 5, 2]
    assert [i["dose"] for i in items] == ["1.00", "2.00", "0.50", "12.25"]
    assert [p["dispense_status"] for p in shown] == [
        DispenseStatus.AWAITING,
        DispenseStatus.PARTIALLY_DISPENSED,
        DispenseStatus.AWAITING,
    ]

    # Through the API: the page as documented, each prescription as its own page shows it.
    headers = bearer(client, pharmacist)
    page = client.get(URL, headers=headers).get_json()
    assert list(page) == ["items", "page", "per_page", "total"]
    assert (page["page"], page["per_page"], page["total"]) == (1, 50, 3)
    one_by_one = [
        client.get(f"/api/v1/prescriptions/{p['id']}", headers=headers).get_json()
        for p in page["items"]
    ]
    assert_same(page["items"], one_by_one)
    later = client.get(f"{URL}&per_page=2&page=2", headers=headers).get_json()
    assert ([p["id"] for p in later["items"]], later["total"]) == ([full.id], 3)
    past = client.get(f"{URL}&page=9", headers=headers).get_json()
    assert (past["items"], past["total"]) == ([], 3)


def test_the_list_sends_the_statements_it_is_pinned_to(app, client, doctor, reception, admin):
    """The API's list: the bearer token's user, then one statement (the page with its
    count, its patients, doctors, items and medicines), for 2 prescriptions as for 25; a
    page past the last asks the count apart. The counter's page sends as many for 25 as
    for 2."""
    para = medicine("Paracip", "2.50", 12)
    cough = medicine("Coughex", "85.00", 18, form="SYRUP", strength="100 ml")
    headers = bearer(client, admin)
    browser = app.test_client()
    sign_in(browser, admin)

    def sent(send) -> int:
        db.session.expire_all()  # read as a request in production reads: nothing cached
        return count_statements(app, send)

    pages = {}
    for rows in (2, 25):
        while len(dispensing.to_dispense(1, 200).items) < rows:
            awaiting(doctor, reception, [item(para), item(cough, quantity=1)])
        answers = []
        counts = {
            query: sent(
                lambda q=query, out=answers: out.append(client.get(URL + q, headers=headers))
            )
            for query in ("", "&per_page=1&page=2", "&page=99")
        }
        assert all(a.status_code == 200 for a in answers)
        assert [len(a.get_json()["items"]) for a in answers] == [rows, 1, 0]
        assert counts == {"": 2, "&per_page=1&page=2": 2, "&page=99": 3}, rows
        shown = []
        pages[rows] = sent(lambda out=shown: out.append(browser.get("/pharmacy/dispense")))
        assert shown[0].status_code == 200
        assert f"To dispense ({rows})" in shown[0].get_data(as_text=True)
    assert pages[2] == pages[25], pages
