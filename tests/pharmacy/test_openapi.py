"""Every inventory, dispensing and H1 register operation is in the OpenAPI document, and
what each answers validates against the schema documented for its status."""

from __future__ import annotations

import pytest

from tests.billing.test_openapi import Documented
from tests.helpers import bearer
from tests.pharmacy.helpers import DISPENSING, INVENTORY, medicine, paid_prescription

OPERATIONS = {
    ("get", "/api/v1/inventory/medicines"),
    ("post", "/api/v1/inventory/medicines"),
    ("get", "/api/v1/inventory/medicines/{medicine_id}"),
    ("patch", "/api/v1/inventory/medicines/{medicine_id}"),
    ("post", "/api/v1/inventory/batches"),
    ("get", "/api/v1/inventory/batches"),
    ("patch", "/api/v1/inventory/batches/{batch_id}"),
    ("get", "/api/v1/inventory/low-stock"),
    ("get", "/api/v1/inventory/expiring"),
    ("get", "/api/v1/inventory/expired"),
    ("post", "/api/v1/dispensing"),
    ("get", "/api/v1/dispensing/{dispensing_id}"),
    ("post", "/api/v1/dispensing/{dispensing_id}/returns"),
    ("get", "/api/v1/pharmacy/h1-register"),
}


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


def test_every_pharmacy_operation_is_documented(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    documented = {
        (method, path)
        for path, operations in paths.items()
        if path.startswith(("/api/v1/inventory", "/api/v1/dispensing", "/api/v1/pharmacy"))
        for method in operations
        if method != "parameters"
    }
    assert documented == OPERATIONS
    register = paths["/api/v1/pharmacy/h1-register"]["get"]["responses"]["200"]["content"]
    assert set(register) == {"application/json", "text/csv"}
    batch = client.get("/api/v1/openapi.json").json["components"]["schemas"]["Batch"]
    assert batch["properties"]["purchase_price"]["type"] == "string"


def test_the_answers_validate_against_their_schemas(client, doctor, reception, pharmacist):
    docs = Documented(client)
    headers = bearer(client, pharmacist)
    tramadol = medicine("Tramazac", "9.00", 12, schedule="H1", reorder_level=100)

    def call(method, path, url, **kwargs):
        return docs.check(method, path, getattr(client, method)(url, headers=headers, **kwargs))

    batches = f"{INVENTORY}/batches"
    body = {
        "medicine_id": tramadol.id,
        "batches": [
            {
                "batch_number": "TR-1",
                "quantity": 30,
                "expiry_date": "2030-02-28",
                "mfg_date": "2029-03-01",
                "supplier": "Apollo",
                "purchase_price": "6.25",
            }
        ],
    }
    made = call("post", batches, batches, json=body)
    call("post", batches, batches, json=body)  # 422 the batch exists
    call("post", batches, batches, json={**body, "medicine_id": 999999})  # 404
    call("get", batches, f"{batches}?medicine_id={tramadol.id}")
    one = "/api/v1/inventory/batches/{batch_id}"
    batch_id = made["items"][0]["id"]
    call("patch", one, f"{batches}/{batch_id}", json={"delta": -1, "reason": "DAMAGED"})
    call("patch", one, f"{batches}/{batch_id}", json={"delta": -100, "reason": "DAMAGED"})
    call("get", f"{INVENTORY}/medicines", f"{INVENTORY}/medicines?q=trama")
    call("get", f"{INVENTORY}/low-stock", f"{INVENTORY}/low-stock")
    call("get", f"{INVENTORY}/expiring", f"{INVENTORY}/expiring?days=60")
    call("get", f"{INVENTORY}/expired", f"{INVENTORY}/expired")

    prescription, _ = paid_prescription(doctor, reception, [(tramadol, 40)])
    body = {"prescription_id": prescription.id}
    call("post", DISPENSING, DISPENSING, json=body)  # 409 insufficient_stock
    done = call("post", DISPENSING, DISPENSING, json={**body, "allow_partial": True})
    one = "/api/v1/dispensing/{dispensing_id}"
    call("get", one, f"{DISPENSING}/{done['id']}")
    back = {"items": [{"dispensed_item_id": done["items"][0]["id"], "quantity": 1}], "reason": "x"}
    call("post", one + "/returns", f"{DISPENSING}/{done['id']}/returns", json=back)
    call("get", "/api/v1/pharmacy/h1-register", "/api/v1/pharmacy/h1-register")
