"""Every billing operation is in the OpenAPI document, and what each answers validates
against the schema documented for its status (money as strings with two decimals)."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from qure.admin import settings as clinic_settings
from qure.core.db import commit
from tests.billing.helpers import Desk, completed_visit, medicine
from tests.helpers import make_patient

OPERATIONS = {
    ("post", "/api/v1/billing"),
    ("get", "/api/v1/billing"),
    ("get", "/api/v1/billing/to-bill"),
    ("get", "/api/v1/billing/takings"),
    ("post", "/api/v1/billing/day-close"),
    ("get", "/api/v1/billing/day-close"),
    ("get", "/api/v1/billing/day-closes"),
    ("get", "/api/v1/billing/{invoice_id}"),
    ("patch", "/api/v1/billing/{invoice_id}"),
    ("post", "/api/v1/billing/{invoice_id}/finalize"),
    ("post", "/api/v1/billing/{invoice_id}/cancel"),
    ("post", "/api/v1/billing/{invoice_id}/pay"),
    ("get", "/api/v1/billing/{invoice_id}/receipt"),
    ("post", "/api/v1/billing/{invoice_id}/credit-notes"),
    ("get", "/api/v1/credit-notes/{credit_note_id}"),
    ("get", "/api/v1/credit-notes/{credit_note_id}/pdf"),
}
MONEY = re.compile(r"^-?[0-9]+\.[0-9]{2}$")


def _strict(node):
    """An OpenAPI 3.0 schema as JSON Schema 2020-12: `nullable` becomes a null type, and
    apispec's `anyOf: [{type: object, nullable: true}, {$ref}]` (a nested field that may
    be null) becomes `anyOf: [{type: null}, {$ref}]`, so that the nested shape is checked."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if k != "nullable"}
    if "anyOf" in out:
        out["anyOf"] = [{"type": "null"} if n == {"type": "object"} else n for n in out["anyOf"]]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    elif node.get("nullable"):
        out = {"anyOf": [{"type": "null"}, out]}
    return out


class Documented:
    def __init__(self, client):
        self.spec = client.get("/api/v1/openapi.json").json
        self.components = _strict(self.spec["components"])

    def check(self, method: str, path: str, response) -> dict:
        """Validate `response` against the schema `path`'s `method` documents for its
        status; returns the body."""
        operation = self.spec["paths"][path][method]
        documented = operation["responses"].get(str(response.status_code))
        assert documented, (method, path, response.status_code, "not documented")
        schema = documented["content"]["application/json"]["schema"]
        validator = Draft202012Validator(
            {**_strict(schema), "components": self.components}, format_checker=FormatChecker()
        )
        body = response.get_json()
        problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
        assert problems == [], (method, path, problems)
        return body


def test_every_billing_operation_is_documented(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    documented = {
        (method, path)
        for path, operations in paths.items()
        if path.startswith(("/api/v1/billing", "/api/v1/credit-notes"))
        for method in operations
        if method != "parameters"
    }
    assert documented == OPERATIONS


def test_every_money_field_is_documented_as_a_string(client):
    schemas = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    names = ("Line", "Invoice", "Payment", "CreditNote", "CreditNoteLine", "Takings", "DayClose")
    for name in names:
        for field, prop in schemas[name]["properties"].items():
            assert prop.get("type") != "number", (name, field, prop)


def test_the_answers_validate_against_their_schemas(client, reception, doctor, admin):
    clinic_settings.update(admin, {"upi_id": "clinic@okaxis"})
    commit()
    docs = Documented(client)
    desk = Desk(client, reception)
    base, item_url = "/api/v1/billing", "/api/v1/billing/{invoice_id}"
    para = medicine("Paracip", "2.50", 12, hsn_code="30049011")
    _, prescription = completed_visit(doctor, [(para, 10)])
    docs.check("get", base + "/to-bill", desk.get("/to-bill"))
    auto = docs.check("post", base, desk.auto(prescription))
    docs.check("post", base, desk.auto(prescription))  # 409 invoice_exists
    patient = make_patient()
    line = {"kind": "LAB", "description": "CBC", "quantity": "1", "unit_price": "300"}
    body = {"mode": "MANUAL", "patient_id": patient.id, "items": [line]}
    manual = docs.check("post", base, desk.post("", body))
    docs.check("post", base, desk.post("", {**body, "items": []}))  # 422
    docs.check("get", item_url, desk.get(f"/{manual['id']}"))
    docs.check("get", item_url, desk.get("/999999"))  # 404
    patch = {"discount": {"type": "PERCENT", "value": "5"}}
    docs.check("patch", item_url, desk.patch(f"/{manual['id']}", patch))
    pending = docs.check("post", item_url + "/finalize", desk.post(f"/{manual['id']}/finalize"))
    assert pending["upi_link"]
    docs.check("post", item_url + "/finalize", desk.post(f"/{manual['id']}/finalize"))  # 409
    docs.check("post", item_url + "/pay", desk.pay(pending, "CARD"))  # 422
    bill = docs.check("post", item_url + "/pay", desk.pay(pending, "CARD", reference="C-1"))
    for money in ("subtotal", "discount_amount", "taxable", "cgst", "sgst", "total", "refundable"):
        assert MONEY.match(bill[money]), (money, bill[money])
    docs.check("post", item_url + "/pay", desk.pay(pending, "CARD", reference="C-1"))  # 409
    docs.check("post", item_url + "/cancel", desk.post(f"/{auto['id']}/cancel", {"reason": "x"}))
    refund = {"reason": "Returned", "method": "CASH"}
    url = item_url + "/credit-notes"
    note = docs.check("post", url, desk.post(f"/{manual['id']}/credit-notes", refund))
    docs.check("post", url, desk.post(f"/{manual['id']}/credit-notes", refund))  # 409
    docs.check(
        "get",
        "/api/v1/credit-notes/{credit_note_id}",
        client.get(f"/api/v1/credit-notes/{note['id']}", headers=desk.headers),
    )
    docs.check("get", item_url, desk.get(f"/{manual['id']}"))
    docs.check("get", base, desk.get("", status="PAID"))
    docs.check("get", base + "/takings", desk.get("/takings"))
    docs.check("get", base + "/day-close", desk.get("/day-close"))
    closing = {"date": "2030-01-07", "cash_counted": "0"}
    docs.check("post", base + "/day-close", desk.post("/day-close", closing))
    docs.check("post", base + "/day-close", desk.post("/day-close", closing))  # 409
    docs.check("get", base + "/day-close", desk.get("/day-close"))
    docs.check("get", base + "/day-closes", desk.get("/day-closes"))


REQUESTS = [
    (
        "post",
        "/api/v1/billing",
        {
            "mode": "MANUAL",
            "patient_id": 1,
            "items": [
                {"kind": "LAB", "description": "CBC", "quantity": "1", "unit_price": "300.00"},
                {
                    "kind": "MEDICINE",
                    "description": "Paracip",
                    "quantity": "10",
                    "unit_price": "2.50",
                    "gst_rate": 12,
                    "hsn_sac": "30049011",
                    "medicine_id": 4,
                },
            ],
            "discount": {"type": "PERCENT", "value": "10"},
        },
    ),
    ("post", "/api/v1/billing", {"mode": "AUTO", "prescription_id": 3}),
    ("patch", "/api/v1/billing/{invoice_id}", {"items": [], "discount": None}),
    ("post", "/api/v1/billing/{invoice_id}/cancel", {"reason": "Billed twice"}),
    (
        "post",
        "/api/v1/billing/{invoice_id}/pay",
        {"method": "CASH", "amount": "118.00", "tendered": "200"},
    ),
    (
        "post",
        "/api/v1/billing/{invoice_id}/credit-notes",
        {"items": [{"line_id": 7, "quantity": "1"}], "reason": "Returned", "method": "UPI"},
    ),
    ("post", "/api/v1/billing/day-close", {"date": "2030-01-07", "cash_counted": "0.00"}),
]


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
def test_request_bodies_are_documented_with_their_types(client, method, path, body):
    spec = client.get("/api/v1/openapi.json").json
    schema = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    components = _strict(spec["components"])
    validator = Draft202012Validator({**_strict(schema), "components": components})
    assert [e.message for e in validator.iter_errors(body)] == []
    name = schema["$ref"].rsplit("/", 1)[-1]
    untyped = [
        (shape, field)
        for shape in (name, "LineIn", "DiscountIn", "RefundItemIn")
        for field, prop in spec["components"]["schemas"][shape]["properties"].items()
        if not {"type", "$ref", "anyOf"} & set(prop)
    ]
    assert untyped == []
