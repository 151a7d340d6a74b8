"""The clinic's settings: defaults from the environment until an admin saves a value,
every field checked (a GSTIN's checksum, a UPI ID's shape, money, GST rates), audited."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from qure.admin import settings
from qure.admin.models import ClinicSetting
from qure.core.db import add_pending
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from tests.billing.test_openapi import Documented
from tests.helpers import bearer, error, flashes, form_post, make_user, page_text, sign_in

URL = "/api/v1/settings"


def audits() -> list[dict]:
    add_pending()  # the rows this transaction writes at commit
    rows = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
    return [r.payload for r in rows if r.payload["action"] == "SETTINGS_UPDATED"]


def saved() -> dict[str, str]:
    return {
        row.key: row.value
        for row in db.session.scalars(
            select(ClinicSetting).where(ClinicSetting.key.like(settings.KEY_PREFIX + "%"))
        )
    }


def test_without_saved_values_the_environment_gives_the_defaults(app):
    values = settings.get_settings()
    assert values["clinic_name"] == app.config["CLINIC_NAME"]
    assert values["address"] == app.config["CLINIC_ADDRESS"]
    assert values["consultation_fee"] == Decimal("500.00")
    assert (values["consultation_gst_rate"], values["default_gst_rate"]) == (0, 18)
    assert values["upi_id"] == ""


@pytest.mark.parametrize("gstin", ["27AAPFU0939F1ZV", "29AAGCB7383J1Z4"])
def test_published_gstins_pass_the_checksum(gstin):
    assert settings.check_gstin(gstin) is None


def test_only_an_admin_reads_or_changes_them(client):
    for role in (Role.RECEPTION, Role.DOCTOR, Role.PHARMACIST):
        headers = bearer(client, make_user(role))
        error(client.get(URL, headers=headers), 403, "forbidden")
        error(client.patch(URL, json={"phone": "1"}, headers=headers), 403, "forbidden")


def test_an_admin_saves_some_and_the_change_is_audited(client, admin):
    headers = bearer(client, admin)
    response = client.patch(
        URL,
        json={
            "clinic_name": "Shanti Clinic",
            "gstin": "27aapfu0939f1zv",
            "upi_id": "shanti.clinic@okaxis",
            "consultation_fee": "650.50",
            "default_gst_rate": 12,
        },
        headers=headers,
    )
    assert response.status_code == 200, response.json
    body = client.get(URL, headers=headers).json
    assert body["clinic_name"] == "Shanti Clinic"
    assert body["gstin"] == "27AAPFU0939F1ZV"  # as printed: upper case
    assert (body["upi_id"], body["consultation_fee"]) == ("shanti.clinic@okaxis", "650.50")
    assert (body["default_gst_rate"], body["consultation_gst_rate"]) == (12, 0)
    (record,) = audits()
    assert record["user"]["id"] == admin.id
    assert record["changes"]["new"] == {
        "clinic_name": "Shanti Clinic",
        "gstin": "27AAPFU0939F1ZV",
        "upi_id": "shanti.clinic@okaxis",
        "consultation_fee": "650.50",
        "default_gst_rate": 12,
    }
    assert record["changes"]["old"]["default_gst_rate"] == 18
    # Saving the same values again changes nothing and records nothing.
    client.patch(URL, json={"clinic_name": "Shanti Clinic"}, headers=headers)
    assert len(audits()) == 1


def test_the_settings_answer_as_documented_their_fee_a_string(client, admin):
    # The fee was documented as a number and sent as "500.00" (found by tests/test_fuzz_api).
    docs = Documented(client)
    fee = docs.spec["components"]["schemas"]["Settings"]["properties"]["consultation_fee"]
    assert fee["type"] == "string"
    headers = bearer(client, admin)
    assert docs.check("get", URL, client.get(URL, headers=headers))["consultation_fee"] == "500.00"
    answer = client.patch(URL, json={"consultation_fee": "650.5"}, headers=headers)
    assert docs.check("patch", URL, answer)["consultation_fee"] == "650.50"


def test_a_saved_value_can_be_cleared(client, admin):
    headers = bearer(client, admin)
    client.patch(URL, json={"gstin": "27AAPFU0939F1ZV"}, headers=headers)
    assert client.patch(URL, json={"gstin": ""}, headers=headers).json["gstin"] == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gstin", "27AAPFU0939F1ZW"),  # the check character is wrong
        ("gstin", "27AAPFU0939F1Z"),  # 14 characters
        ("gstin", "99AAPFU0939F1ZV"),  # no such state
        ("gstin", "27AAPFU0939F1XV"),  # the 14th is always Z
        ("upi_id", "shanti clinic"),
        ("upi_id", "@okaxis"),
        ("consultation_fee", "-1"),
        ("consultation_fee", "abc"),
        ("consultation_fee", True),
        ("consultation_fee", "10.005"),
        ("default_gst_rate", 7),
        ("default_gst_rate", "12%"),
        ("consultation_gst_rate", True),
        ("clinic_name", ""),
        ("clinic_name", "x" * 121),
        ("address", "a\x00b"),
        ("colour", "teal"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field_and_nothing_is_saved(client, admin, field, value):
    response = client.patch(
        URL, json={"phone": "+91 20 1234 5678", field: value}, headers=bearer(client, admin)
    )
    body = error(response, 422, "invalid_input")
    assert field in body["fields"], body
    assert saved() == {}
    assert audits() == []


# ---- the admin's settings page ---------------------------------------------------------

PAGE = "/admin/settings"
FORM = {
    "clinic_name": "Shanti Clinic",
    "address": "4 FC Road, Pune 411004",
    "phone": "+91 20 2553 0000",
    "registration": "MH/PMC/2026/0042",
    "gstin": "27AAPFU0939F1ZV",
    "upi_id": "shanti@okaxis",
    "consultation_fee": "600.00",
    "consultation_gst_rate": "0",
    "default_gst_rate": "18",
}


def test_the_page_shows_the_settings_and_saves_them(client, admin):
    sign_in(client, admin)
    page = page_text(client.get(PAGE))
    assert "Clinic settings" in page and "GSTIN" in page
    response = form_post(client, PAGE, FORM)
    assert response.status_code == 302
    followed = client.get(response.headers["Location"])
    assert "The settings are saved." in flashes(followed.get_data(as_text=True))
    assert 'value="Shanti Clinic"' in followed.get_data(as_text=True)
    assert settings.get_settings()["consultation_fee"] == Decimal("600.00")
    assert len(audits()) == 1


def test_a_wrong_gstin_is_shown_beside_its_field_and_nothing_is_saved(client, admin):
    sign_in(client, admin)
    response = form_post(client, PAGE, {**FORM, "gstin": "27AAPFU0939F1ZW"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="gstin-error"' in html
    assert "does not match" in html
    assert saved() == {}


def test_the_page_is_the_admins_alone(client):
    sign_in(client, make_user(Role.RECEPTION))
    assert client.get(PAGE).status_code == 403


def test_every_page_and_the_board_carry_the_saved_clinic_name(client, admin, app):
    sign_in(client, admin)
    assert "Qure Clinic" in page_text(client.get("/", follow_redirects=True))  # the default
    form_post(client, PAGE, FORM)
    receptionist = make_user(Role.RECEPTION)
    other = app.test_client()
    sign_in(other, receptionist)
    home = other.get("/", follow_redirects=True).get_data(as_text=True)
    assert "<title>" in home and "· Shanti Clinic</title>" in home
    assert "<span>Shanti Clinic</span>" in home
    assert "Qure Clinic" not in home
    board = other.get("/queue/board").get_data(as_text=True)
    assert "<h1>Shanti Clinic · Now serving</h1>" in board
