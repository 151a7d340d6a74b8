"""What the API sends is what the OpenAPI document says it sends: the places where the
document once lied (a dose documented as a number and sent as a string; the board's
tokens carrying a `status` that `additionalProperties: false` forbade)."""

from __future__ import annotations

from qure.core.db import commit
from qure.queue import service as queue
from tests.billing.helpers import completed_visit, medicine
from tests.billing.test_openapi import Documented
from tests.helpers import bearer, make_patient


def test_a_prescription_answers_as_documented_its_dose_a_string(client, doctor):
    _, prescription = completed_visit(doctor, [(medicine("Paracetamol 500", "2.50", 12), 3)])
    docs = Documented(client)
    item = docs.spec["components"]["schemas"]["Item"]["properties"]["dose"]
    assert item["type"] == "string"
    path = "/api/v1/prescriptions/{prescription_id}"
    answer = client.get(f"/api/v1/prescriptions/{prescription.id}", headers=bearer(client, doctor))
    body = docs.check("get", path, answer)
    assert body["items"][0]["dose"] == "1.00"


def test_the_board_answers_as_documented_with_each_tokens_status(client, doctor, reception):
    first = make_patient(full_name="Asha Menon")
    second = make_patient(full_name="Ravi Kumar")
    for patient in (first, second):
        queue.walk_in(reception, {"patient_id": patient.id, "doctor_id": doctor.id})
        commit()
    queue.call_next(doctor)
    commit()
    answer = client.get("/api/v1/queue/display", headers=bearer(client, reception))
    body = Documented(client).check("get", "/api/v1/queue/display", answer)
    (column,) = body["doctors"]
    assert column["now_serving"]["status"] == "WITH_DOCTOR"
    assert [t["status"] for t in column["next"]] == ["WAITING"]
