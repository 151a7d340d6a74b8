"""What billing tests start from: a completed visit with a prescription, and the billing
API as one signed-in desk uses it."""

from __future__ import annotations

from qure.core.db import commit
from qure.pharmacy import service as pharmacy
from qure.prescriptions import service as prescriptions
from tests.helpers import bearer, make_patient
from tests.prescriptions.test_service import complete_visit, item, start_visit

URL = "/api/v1/billing"


def medicine(name: str, price: str, rate: int, form: str = "TABLET", **extra):
    """A catalogue medicine at `price` with GST `rate`."""
    return pharmacy.create(
        None,
        {
            "name": name,
            "generic_name": extra.pop("generic_name", name),
            "dosage_form": form,
            "strength": extra.pop("strength", "500 mg"),
            "unit_price": price,
            "gst_rate": rate,
            **extra,
        },
    )


def completed_visit(doctor, medicines=(), patient=None, prescribe=True):
    """A COMPLETED visit of `doctor`; with `medicines` ((medicine, quantity) pairs, in
    order) it has a prescription of them. Returns (visit, prescription or None)."""
    patient = patient or make_patient(full_name="Asha Devi Sharma")
    visit = start_visit(doctor, patient)
    prescription = None
    if prescribe and medicines:
        items = [
            item(med, dose=1, frequency="OD", duration_days=quantity, quantity=quantity)
            for med, quantity in medicines
        ]
        prescription = prescriptions.create(doctor, {"visit_id": visit.id, "items": items})
        commit()
    complete_visit(doctor, visit)
    return visit, prescription


class Desk:
    """The billing API as one signed-in user uses it."""

    def __init__(self, client, user):
        self.client = client
        self.headers = bearer(client, user)

    def post(self, path: str = "", body: dict | None = None, **headers):
        return self.client.post(URL + path, json=body or {}, headers={**self.headers, **headers})

    def get(self, path: str = "", **query):
        return self.client.get(URL + path, query_string=query, headers=self.headers)

    def patch(self, path: str, body: dict):
        return self.client.patch(URL + path, json=body, headers=self.headers)

    def auto(self, prescription, **extra):
        return self.post("", {"mode": "AUTO", "prescription_id": prescription.id, **extra})

    def pay(self, invoice: dict, method: str = "CASH", **extra):
        body = {"method": method, "amount": invoice["total"], **extra}
        return self.post(f"/{invoice['id']}/pay", body)
