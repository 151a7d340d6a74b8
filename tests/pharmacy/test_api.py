"""`/api/v1/inventory/medicines`: every status code a client can meet."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from qure.core.models import OutboxEvent
from qure.extensions import db
from qure.pharmacy import service
from qure.pharmacy.models import Medicine
from tests.helpers import bearer, error

URL = "/api/v1/inventory/medicines"
BODY = {
    "name": "Augmentin",
    "generic_name": "Amoxicillin + Clavulanic Acid",
    "drug_class": "Penicillin",
    "dosage_form": "TABLET",
    "strength": "625 mg",
    "manufacturer": "GSK",
    "unit_price": "22.40",
    "gst_rate": 12,
    "hsn_code": "3004",
    "reorder_level": 20,
}
REQUIRED = ("name", "generic_name", "dosage_form", "strength", "unit_price", "gst_rate")


def make_medicine(actor=None, **changes) -> Medicine:
    medicine = service.create(actor, {**BODY, **changes})
    db.session.commit()
    return medicine


def medicines_in_db() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Medicine))


def stored(medicine_id: int) -> Medicine:
    db.session.expire_all()
    return db.session.get(Medicine, medicine_id)


def actions(medicine_id: int) -> list[str]:
    db.session.expire_all()
    rows = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    return [
        r.payload["action"]
        for r in rows
        if r.payload["resource"] == {"type": "medicine", "id": medicine_id}
    ]


def names(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [m["name"] for m in response.json["items"]]


# ---- reading -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "reception", "doctor", "pharmacist"])
def test_every_role_may_list_and_read(client, request, role):
    user = request.getfixturevalue(role)
    medicine = make_medicine(None)
    make_medicine(None, name="Azithral", generic_name="Azithromycin", drug_class="Macrolide")
    headers = bearer(client, user)
    response = client.get(f"{URL}?q=clavulanic", headers=headers)
    assert response.status_code == 200
    assert response.json["total"] == 1
    assert names(response) == ["Augmentin"]
    one = client.get(f"{URL}/{medicine.id}", headers=headers)
    assert one.status_code == 200
    assert one.json["name"] == "Augmentin"


def test_the_json_shape(client, doctor):
    medicine = make_medicine(None, unit_price="12.5")
    response = client.get(f"{URL}/{medicine.id}", headers=bearer(client, doctor))
    assert response.status_code == 200
    body = response.json
    created, updated = body.pop("created_at"), body.pop("updated_at")
    assert created and updated
    assert body == {
        "id": medicine.id,
        "name": "Augmentin",
        "generic_name": "Amoxicillin + Clavulanic Acid",
        "ingredients": ["Amoxicillin", "Clavulanic Acid"],
        "drug_class": "Penicillin",
        "dosage_form": "TABLET",
        "strength": "625 mg",
        "manufacturer": "GSK",
        "unit_price": "12.50",
        "gst_rate": 12,
        "hsn_code": "3004",
        "reorder_level": 20,
        "is_active": True,
        "schedule": "NONE",
        "usable_stock": 0,  # no batch received: out of stock, at its reorder level
        "next_expiry": None,
        "low_stock": True,
    }


def test_list_pagination_shape(client, reception):
    for i in range(5):
        make_medicine(None, name=f"Pagetest {i}")
    headers = bearer(client, reception)
    seen = []
    for page, size in ((1, 2), (2, 2), (3, 1), (4, 0)):
        response = client.get(f"{URL}?q=pagetest&page={page}&per_page=2", headers=headers)
        assert response.status_code == 200
        assert set(response.json) == {"items", "page", "per_page", "total"}
        assert (response.json["page"], response.json["per_page"]) == (page, 2)
        assert response.json["total"] == 5
        assert len(response.json["items"]) == size
        seen += names(response)
    assert seen == [f"Pagetest {i}" for i in range(5)]
    default = client.get(URL, headers=headers).json
    assert (default["page"], default["per_page"], default["total"]) == (1, 50, 5)


def test_search_by_name_ingredient_and_class(client, reception):
    make_medicine(None)
    make_medicine(None, name="Amoxil", generic_name="Amoxicillin", strength="500 mg")
    make_medicine(None, name="Azithral", generic_name="Azithromycin", drug_class="Macrolide")
    headers = bearer(client, reception)
    cases = {
        "zith": ["Azithral"],
        "CLAVULANIC": ["Augmentin"],
        "penicillin": ["Amoxil", "Augmentin"],
        "amoxicillin clavulanic": ["Augmentin"],
        "amóxil": ["Amoxil"],
        "macrolide penicillin": [],
    }
    for q, expected in cases.items():
        assert names(client.get(URL, query_string={"q": q}, headers=headers)) == expected, q


def test_inactive_medicines_are_listed_only_when_asked_for(client, pharmacist):
    kept = make_medicine(None)
    gone = make_medicine(None, name="Amoxil", generic_name="Amoxicillin", strength="500 mg")
    headers = bearer(client, pharmacist)
    response = client.patch(f"{URL}/{gone.id}", json={"is_active": False}, headers=headers)
    assert response.status_code == 200
    assert response.json["is_active"] is False
    assert [m["id"] for m in client.get(URL, headers=headers).json["items"]] == [kept.id]
    everything = client.get(f"{URL}?include_inactive=true", headers=headers).json
    assert [m["id"] for m in everything["items"]] == [gone.id, kept.id]
    # Still readable by id.
    assert client.get(f"{URL}/{gone.id}", headers=headers).json["is_active"] is False


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("per_page=201", "per_page"),
        ("per_page=0", "per_page"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("include_inactive=maybe", "include_inactive"),
    ],
)
def test_bad_list_arguments_are_422(client, reception, query, field):
    response = client.get(f"{URL}?{query}", headers=bearer(client, reception))
    assert field in error(response, 422, "invalid_input")["fields"]


def test_per_page_of_200_is_allowed(client, reception):
    response = client.get(f"{URL}?per_page=200", headers=bearer(client, reception))
    assert response.status_code == 200
    assert response.json["per_page"] == 200


def test_a_query_longer_than_120_is_422(client, reception):
    response = client.get(URL, query_string={"q": "x" * 121}, headers=bearer(client, reception))
    assert "q" in error(response, 422, "invalid_input")["fields"]


@pytest.mark.parametrize("q", ["²", "%", "_", "\\", "'", "x" * 120, "pla\x00in"])
def test_odd_queries_answer_200(client, reception, q):
    make_medicine(None)
    response = client.get(URL, query_string={"q": q}, headers=bearer(client, reception))
    assert response.status_code == 200
    assert response.json["total"] == 0


@pytest.mark.parametrize("page", ["9223372036854775807", "99999999999999999999"])
def test_a_page_far_past_the_end_is_empty(client, reception, page):
    make_medicine(None)
    response = client.get(f"{URL}?page={page}", headers=bearer(client, reception))
    assert response.status_code == 200
    assert response.json["items"] == []
    assert response.json["total"] == 1


def test_get_unknown_medicine_is_404(client, doctor):
    headers = bearer(client, doctor)
    error(client.get(f"{URL}/987654321", headers=headers), 404, "medicine_not_found")
    error(client.get(f"{URL}/{2**31}", headers=headers), 404, "medicine_not_found")
    error(client.get(f"{URL}/0", headers=headers), 404, "medicine_not_found")


def test_an_id_over_18_digits_is_404(client, admin):
    # No BIGINT id can be that large: the URL names nothing (the route does not match).
    headers = bearer(client, admin)
    for huge in ("1" * 19, str(2**64), "9" * 40):
        error(client.get(f"{URL}/{huge}", headers=headers), 404, "not_found")
        patch = client.patch(f"{URL}/{huge}", json={"unit_price": "1"}, headers=headers)
        error(patch, 404, "not_found")


# ---- who may change the catalogue -----------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post", "patch"])
def test_without_a_token_is_401(client, method):
    medicine = make_medicine(None)
    url = URL if method == "post" else f"{URL}/{medicine.id}"
    kwargs = {} if method == "get" else {"json": {**BODY, "name": "Clavam"}}
    error(getattr(client, method)(url, **kwargs), 401, "unauthorized")
    error(client.get(URL), 401, "unauthorized")
    assert medicines_in_db() == 1
    assert stored(medicine.id).name == "Augmentin"


def test_a_bad_token_is_401(client):
    response = client.get(URL, headers={"Authorization": "Bearer not.a.token"})
    error(response, 401, "unauthorized")


@pytest.mark.parametrize("role", ["reception", "doctor"])
def test_reception_and_doctor_may_not_add_or_edit(client, request, role):
    user = request.getfixturevalue(role)
    medicine = make_medicine(None)
    headers = bearer(client, user)
    error(client.post(URL, json={**BODY, "name": "Clavam"}, headers=headers), 403, "forbidden")
    patch = client.patch(f"{URL}/{medicine.id}", json={"unit_price": "1.00"}, headers=headers)
    error(patch, 403, "forbidden")
    assert medicines_in_db() == 1
    assert stored(medicine.id).unit_price == Decimal("22.40")
    assert actions(medicine.id) == ["MEDICINE_CREATED"]


@pytest.mark.parametrize("role", ["pharmacist", "admin"])
def test_pharmacist_and_admin_add_and_edit(client, request, role):
    user = request.getfixturevalue(role)
    headers = bearer(client, user)
    response = client.post(URL, json=BODY, headers=headers)
    assert response.status_code == 201, response.json
    medicine_id = response.json["id"]
    assert response.headers["Location"].endswith(f"{URL}/{medicine_id}")
    again = client.get(response.headers["Location"], headers=headers)
    assert again.status_code == 200
    # What was made, and its stock: none received yet.
    assert again.json == response.json | {"usable_stock": 0, "next_expiry": None, "low_stock": True}
    patch = client.patch(
        f"{URL}/{medicine_id}", json={"unit_price": "24", "gst_rate": "5"}, headers=headers
    )
    assert patch.status_code == 200, patch.json
    assert (patch.json["unit_price"], patch.json["gst_rate"]) == ("24.00", 5)
    assert patch.json["name"] == "Augmentin"
    saved = stored(medicine_id)
    assert (saved.unit_price, saved.gst_rate) == (Decimal("24.00"), 5)
    assert saved.created_by_id == user.id
    assert actions(medicine_id) == ["MEDICINE_CREATED", "MEDICINE_UPDATED"]


# ---- adding --------------------------------------------------------------------------


def test_create_answers_201_with_the_full_record(client, pharmacist):
    body = {
        **BODY,
        "name": " Augmentin  Duo ",
        "generic_name": "Amoxicillin+ Clavulanic  Acid",
        "dosage_form": "tablet",
        "unit_price": "12.5",
        "gst_rate": "18",
    }
    response = client.post(URL, json=body, headers=bearer(client, pharmacist))
    assert response.status_code == 201, response.json
    medicine = response.json
    assert medicine["name"] == "Augmentin Duo"
    assert medicine["generic_name"] == "Amoxicillin + Clavulanic Acid"
    assert medicine["ingredients"] == ["Amoxicillin", "Clavulanic Acid"]
    assert medicine["dosage_form"] == "TABLET"
    assert medicine["unit_price"] == "12.50"
    assert medicine["gst_rate"] == 18
    assert medicine["is_active"] is True
    assert medicine["created_at"] and medicine["updated_at"]
    assert stored(medicine["id"]).unit_price == Decimal("12.50")


@pytest.mark.parametrize(("price", "shown"), [(12, "12.00"), (9.8, "9.80"), ("0", "0.00")])
def test_a_price_as_a_number_is_answered_as_text_with_two_places(client, admin, price, shown):
    response = client.post(URL, json={**BODY, "unit_price": price}, headers=bearer(client, admin))
    assert response.status_code == 201, response.json
    assert response.json["unit_price"] == shown


def test_only_the_required_fields(client, pharmacist):
    body = {k: BODY[k] for k in REQUIRED}
    response = client.post(URL, json=body, headers=bearer(client, pharmacist))
    assert response.status_code == 201, response.json
    medicine = response.json
    assert (medicine["drug_class"], medicine["manufacturer"], medicine["hsn_code"]) == (
        None,
        None,
        None,
    )
    assert medicine["reorder_level"] == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "A"}, "name"),
        ({"name": "x" * 121}, "name"),
        ({"name": "Amo\x00xil"}, "name"),
        ({"generic_name": ""}, "generic_name"),
        ({"generic_name": " + ".join(f"I{i}" for i in range(11))}, "generic_name"),
        ({"dosage_form": "PILL"}, "dosage_form"),
        ({"strength": ""}, "strength"),
        ({"unit_price": "abc"}, "unit_price"),
        ({"unit_price": "-1"}, "unit_price"),
        ({"unit_price": "1.234"}, "unit_price"),
        ({"unit_price": "10000000000"}, "unit_price"),
        ({"unit_price": "1e30"}, "unit_price"),
        ({"unit_price": True}, "unit_price"),
        ({"unit_price": None}, "unit_price"),
        ({"gst_rate": 7}, "gst_rate"),
        ({"gst_rate": "12.5"}, "gst_rate"),
        ({"gst_rate": True}, "gst_rate"),
        ({"gst_rate": False}, "gst_rate"),
        ({"gst_rate": ""}, "gst_rate"),
        ({"gst_rate": 12.5}, "gst_rate"),
        ({"gst_rate": None}, "gst_rate"),
        ({"hsn_code": "12a4"}, "hsn_code"),
        ({"hsn_code": "123"}, "hsn_code"),
        ({"reorder_level": -1}, "reorder_level"),
        ({"reorder_level": 1.5}, "reorder_level"),
        ({"reorder_level": True}, "reorder_level"),
        ({"reorder_level": "ten"}, "reorder_level"),
        ({"is_active": "maybe"}, "is_active"),
        ({"colour": "pink"}, "colour"),
        ({"manufacturer": "G\x00SK"}, "manufacturer"),
    ],
)
def test_a_bad_field_is_422_naming_it(client, pharmacist, changes, field):
    response = client.post(URL, json={**BODY, **changes}, headers=bearer(client, pharmacist))
    body = error(response, 422, "invalid_input")
    assert field in body["fields"], body
    assert medicines_in_db() == 0


@pytest.mark.parametrize("missing", REQUIRED)
def test_a_missing_required_field_is_422(client, pharmacist, missing):
    body = {k: v for k, v in BODY.items() if k != missing}
    response = client.post(URL, json=body, headers=bearer(client, pharmacist))
    assert missing in error(response, 422, "invalid_input")["fields"]
    assert medicines_in_db() == 0


def test_several_bad_fields_are_all_reported(client, pharmacist):
    response = client.post(
        URL,
        json={**BODY, "name": "A", "unit_price": "abc", "gst_rate": 7, "hsn_code": "12a4"},
        headers=bearer(client, pharmacist),
    )
    body = error(response, 422, "invalid_input")
    assert set(body["fields"]) >= {"name", "unit_price", "gst_rate", "hsn_code"}


def test_the_same_medicine_twice_is_409(client, pharmacist):
    make_medicine(None)
    body = {**BODY, "name": "AUGMENTIN", "strength": "625 MG", "dosage_form": "tablet"}
    response = client.post(URL, json=body, headers=bearer(client, pharmacist))
    body = error(response, 409, "medicine_exists")
    assert "name" in body["fields"]
    assert medicines_in_db() == 1


def test_another_strength_or_form_is_201(client, pharmacist):
    make_medicine(None)
    headers = bearer(client, pharmacist)
    assert client.post(URL, json={**BODY, "strength": "1 g"}, headers=headers).status_code == 201
    syrup = client.post(URL, json={**BODY, "dosage_form": "SYRUP"}, headers=headers)
    assert syrup.status_code == 201
    assert medicines_in_db() == 3


@pytest.mark.parametrize("method", ["post", "patch"])
def test_malformed_json_is_400(client, pharmacist, method):
    medicine = make_medicine(None)
    url = URL if method == "post" else f"{URL}/{medicine.id}"
    headers = {**bearer(client, pharmacist), "Content-Type": "application/json"}
    response = getattr(client, method)(url, data='{"name": "Augm', headers=headers)
    error(response, 400, "bad_request")
    assert medicines_in_db() == 1
    assert stored(medicine.id).name == "Augmentin"


# ---- editing -------------------------------------------------------------------------


def test_patch_changes_only_the_fields_sent(client, pharmacist):
    medicine = make_medicine(None)
    response = client.patch(
        f"{URL}/{medicine.id}",
        json={"generic_name": "Amoxicillin", "drug_class": None, "reorder_level": 5},
        headers=bearer(client, pharmacist),
    )
    assert response.status_code == 200, response.json
    assert response.json["ingredients"] == ["Amoxicillin"]
    assert response.json["drug_class"] is None
    assert response.json["reorder_level"] == 5
    assert response.json["unit_price"] == "22.40"
    assert response.json["manufacturer"] == "GSK"
    saved = stored(medicine.id)
    assert (saved.generic_name, saved.drug_class, saved.reorder_level) == ("Amoxicillin", None, 5)
    assert actions(medicine.id) == ["MEDICINE_CREATED", "MEDICINE_UPDATED"]


def test_patch_with_a_bad_field_is_422_and_changes_nothing(client, pharmacist):
    medicine = make_medicine(None)
    response = client.patch(
        f"{URL}/{medicine.id}",
        json={"name": "Augmentin XR", "unit_price": "1.234"},
        headers=bearer(client, pharmacist),
    )
    assert set(error(response, 422, "invalid_input")["fields"]) == {"unit_price"}
    assert stored(medicine.id).name == "Augmentin"
    assert actions(medicine.id) == ["MEDICINE_CREATED"]


def test_patch_to_a_duplicate_is_409_and_changes_nothing(client, pharmacist):
    make_medicine(None)
    other = make_medicine(None, name="Clavam", unit_price="18.00")
    response = client.patch(
        f"{URL}/{other.id}",
        json={"name": "augmentin", "unit_price": "20"},
        headers=bearer(client, pharmacist),
    )
    assert "name" in error(response, 409, "medicine_exists")["fields"]
    saved = stored(other.id)
    assert (saved.name, saved.unit_price) == ("Clavam", Decimal("18.00"))
    assert actions(other.id) == ["MEDICINE_CREATED"]


def test_patch_unknown_medicine_is_404(client, pharmacist):
    headers = bearer(client, pharmacist)
    for medicine_id in (987654321, 2**31):
        response = client.patch(f"{URL}/{medicine_id}", json={"unit_price": "1"}, headers=headers)
        error(response, 404, "medicine_not_found")


@pytest.mark.parametrize("price", ["1e999999999", "-1E+999999999"])
def test_a_price_with_an_absurd_exponent_is_a_field_error(client, pharmacist, price):
    body = {
        "name": "Exponol",
        "generic_name": "Paracetamol",
        "dosage_form": "TABLET",
        "strength": "500 mg",
        "unit_price": price,
        "gst_rate": 12,
    }
    response = client.post(
        "/api/v1/inventory/medicines", json=body, headers=bearer(client, pharmacist)
    )
    assert response.status_code == 422
    assert "unit_price" in response.json["error"]["fields"]
