"""The medicine catalogue pages, as staff use them in a browser (CSRF on)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from qure.core.models import OutboxEvent
from qure.extensions import db
from qure.pharmacy import service
from qure.pharmacy.models import Medicine
from tests.helpers import csrf_token, form_post, page_text, sign_in

LIST = "/pharmacy/medicines"
NEW = "/pharmacy/medicines/new"
FORM = {
    "name": "Amoxil",
    "generic_name": "Amoxicillin",
    "drug_class": "Penicillin",
    "dosage_form": "CAPSULE",
    "strength": "500 mg",
    "manufacturer": "GSK",
    "unit_price": "9.80",
    "gst_rate": "12",
    "hsn_code": "3004",
    "reorder_level": "20",
    "is_active": "y",
}
SERVICE_DATA = {
    "name": "Augmentin",
    "generic_name": "Amoxicillin + Clavulanic Acid",
    "drug_class": "Penicillin",
    "dosage_form": "TABLET",
    "strength": "625 mg",
    "manufacturer": "GSK",
    "unit_price": "22.40",
    "gst_rate": 12,
}


def make_medicine(actor=None, **changes) -> Medicine:
    medicine = service.create(actor, {**SERVICE_DATA, **changes})
    db.session.commit()
    return medicine


def field_block(page: str, name: str) -> str:
    """The `<div class="field">` that holds the input named `name`."""
    for block in re.findall(r'<div class="field[^"]*">.*?\n</div>', page, re.S):
        if f'name="{name}"' in block:
            return block
    raise AssertionError(f"no field {name} on the page")


def medicines_in_db() -> list[Medicine]:
    db.session.expire_all()
    return list(db.session.scalars(select(Medicine).order_by(Medicine.id)))


def audit_actions() -> list[str]:
    db.session.expire_all()
    events = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
    return [e.payload["action"] for e in events if e.payload["resource"]["type"] == "medicine"]


def rows(page: str) -> list[str]:
    """The medicine names listed in the table, in order."""
    return re.findall(r"<tr[^>]*>\s*<td><strong>([^<]+)</strong>", page)


@pytest.fixture
def catalogue(pharmacist):
    augmentin = make_medicine(pharmacist)
    azithral = make_medicine(
        pharmacist,
        name="Azithral",
        generic_name="Azithromycin",
        drug_class="Macrolide",
        strength="500 mg",
        unit_price="23.50",
    )
    return augmentin, azithral


# ---- finding -------------------------------------------------------------------------


def test_search_shows_name_generic_name_class_and_price(client, reception, catalogue):
    sign_in(client, reception)
    response = client.get(LIST, query_string={"q": "clavulanic"})
    assert response.status_code == 200
    page = page_text(response)
    assert 'name="q"' in page and 'value="clavulanic"' in page
    assert rows(page) == ["Augmentin"]
    assert "<td>Amoxicillin + Clavulanic Acid</td>" in page
    assert "<td>Penicillin</td>" in page
    assert ">22.40</td>" in page
    # "12 %" broke across lines in a narrow column; a rate is one word.
    assert '<td class="num">12%</td>' in page
    assert "<td>625 mg</td>" in page
    assert "Azithral" not in page and "23.50" not in page


def test_search_by_class_and_accentless_name(client, doctor, catalogue, pharmacist):
    make_medicine(pharmacist, name="Gélusil", generic_name="Magaldrate", drug_class="Antacid")
    sign_in(client, doctor)
    assert rows(page_text(client.get(f"{LIST}?q=MACROLIDE"))) == ["Azithral"]
    assert rows(page_text(client.get(f"{LIST}?q=gelusil"))) == ["Gélusil"]


def test_without_a_query_every_active_medicine_is_listed(client, reception, catalogue):
    sign_in(client, reception)
    page = page_text(client.get(LIST))
    assert rows(page) == ["Augmentin", "Azithral"]
    assert "2 found." in page


def test_no_match_says_so(client, reception, catalogue):
    sign_in(client, reception)
    page = page_text(client.get(f"{LIST}?q=nothing"))
    assert "No medicine matches “nothing”." in page
    assert rows(page) == []


def test_an_empty_catalogue_says_so(client, reception):
    sign_in(client, reception)
    assert "The catalogue is empty." in page_text(client.get(LIST))


def test_pagination_links_keep_the_query_and_all(client, pharmacist):
    for i in range(51):
        service.create(pharmacist, {**SERVICE_DATA, "name": f"Pagetest {i:02d}"})
    db.session.commit()
    sign_in(client, pharmacist)
    first = page_text(client.get(f"{LIST}?q=pagetest&all=1"))
    assert len(rows(first)) == 50
    assert "Page 1 of 2 (51 in all)" in first
    next_link = re.search(r'<a href="([^"]+)" rel="next">', first).group(1)
    assert "page=2" in next_link and "q=pagetest" in next_link and "all=1" in next_link
    second = page_text(client.get(next_link))
    assert rows(second) == ["Pagetest 50"]


@pytest.mark.parametrize(
    "query",
    [
        "page=abc",
        "page=%C2%B2",
        "page=0",
        "page=-1",
        "page=99999",
        "page=99999999999999999999",
        "page=",
        "q=%00",
        "q=%25",
        "q=%C2%B2",
        "all=abc",
        "q=" + "x" * 500,
    ],
)
def test_odd_list_input_never_fails(client, reception, catalogue, query):
    sign_in(client, reception)
    response = client.get(f"{LIST}?{query}")
    assert response.status_code == 200, query


def test_html_in_a_name_is_shown_as_text(client, reception, pharmacist):
    make_medicine(pharmacist, name="<b>Bold</b> Tabs")
    sign_in(client, reception)
    raw = client.get(f"{LIST}?q=bold").get_data(as_text=True)
    assert "&lt;b&gt;Bold&lt;/b&gt; Tabs" in raw
    assert "<b>Bold</b>" not in raw


# ---- adding --------------------------------------------------------------------------


def test_pharmacist_adds_a_medicine(client, pharmacist):
    sign_in(client, pharmacist)
    response = form_post(
        client, NEW, {**FORM, "generic_name": " Amoxicillin +  Clavulanic   Acid "}
    )
    assert response.status_code == 302, page_text(response)[:2000]
    assert response.headers["Location"].startswith(LIST)
    assert "q=Amoxil" in response.headers["Location"]
    (medicine,) = medicines_in_db()
    assert (medicine.name, medicine.strength, medicine.dosage_form) == (
        "Amoxil",
        "500 mg",
        "CAPSULE",
    )
    assert medicine.generic_name == "Amoxicillin + Clavulanic Acid"
    assert medicine.ingredients == ["Amoxicillin", "Clavulanic Acid"]
    assert medicine.unit_price == Decimal("9.80")
    assert (medicine.gst_rate, medicine.hsn_code, medicine.reorder_level) == (12, "3004", 20)
    assert medicine.is_active is True
    assert medicine.schedule == "NONE"  # the form's default
    assert medicine.created_by_id == pharmacist.id
    page = page_text(client.get(response.headers["Location"]))
    assert "Saved Amoxil 500 mg." in page
    assert rows(page) == ["Amoxil"]
    assert audit_actions() == ["MEDICINE_CREATED"]


def test_admin_adds_a_medicine_with_only_the_required_fields(client, admin):
    sign_in(client, admin)
    blank = {"drug_class": "", "manufacturer": "", "hsn_code": "", "reorder_level": ""}
    response = form_post(client, NEW, {**FORM, **blank})
    assert response.status_code == 302, page_text(response)[:2000]
    (medicine,) = medicines_in_db()
    assert (medicine.drug_class, medicine.manufacturer, medicine.hsn_code) == (None, None, None)
    assert medicine.reorder_level == 0


def test_the_add_form_starts_in_use_with_sensible_defaults(client, pharmacist):
    sign_in(client, pharmacist)
    page = page_text(client.get(NEW))
    assert "Add a medicine" in page
    assert "checked" in field_block(page, "is_active")
    assert '<option selected value="TABLET">' in field_block(page, "dosage_form")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"name": "A"}, "name", "Give 2 to 120 characters."),
        ({"name": "Amo\x00xil"}, "name", "Give 2 to 120 characters."),
        ({"generic_name": "+ +"}, "generic_name", "Give the ingredients joined by +"),
        ({"generic_name": "+".join("abcdefghijk")}, "generic_name", "at most 10"),
        ({"dosage_form": "PILL"}, "dosage_form", "Not a valid choice"),
        ({"strength": ""}, "strength", "This field is required."),
        ({"unit_price": ""}, "unit_price", "This field is required."),
        ({"unit_price": "abc"}, "unit_price", "Give an amount such as 120.50."),
        ({"unit_price": "-1"}, "unit_price", "Give an amount from 0 to"),
        ({"unit_price": "1.234"}, "unit_price", "At most two decimal places."),
        ({"unit_price": "10000000000"}, "unit_price", "Give an amount from 0 to"),
        ({"unit_price": "1e30"}, "unit_price", "Give an amount"),
        ({"gst_rate": "7"}, "gst_rate", "Not a valid choice"),
        ({"hsn_code": "12a4"}, "hsn_code", "4 to 8 digits"),
        ({"hsn_code": "123"}, "hsn_code", "4 to 8 digits"),
        ({"reorder_level": "-1"}, "reorder_level", "Number must be between 0 and 1000000."),
        ({"reorder_level": "1.5"}, "reorder_level", "Not a valid integer value."),
    ],
)
def test_an_error_appears_beside_its_field_and_nothing_is_saved(
    client, pharmacist, changes, field, message
):
    sign_in(client, pharmacist)
    response = form_post(client, NEW, {**FORM, **changes})
    assert response.status_code == 422
    page = page_text(response)
    block = field_block(page, field)
    assert "has-error" in block
    assert message in block
    assert medicines_in_db() == []
    assert audit_actions() == []


def test_the_form_keeps_what_was_typed_after_an_error(client, pharmacist):
    sign_in(client, pharmacist)
    page = page_text(form_post(client, NEW, {**FORM, "unit_price": "abc"}))
    assert 'value="Amoxil"' in field_block(page, "name")
    assert 'value="abc"' in field_block(page, "unit_price")
    assert '<option selected value="CAPSULE">' in field_block(page, "dosage_form")


def test_a_duplicate_shows_that_it_is_already_in_the_catalogue(client, pharmacist):
    make_medicine(pharmacist, **{k: FORM[k] for k in ("name", "dosage_form", "strength")})
    sign_in(client, pharmacist)
    response = form_post(
        client, NEW, {**FORM, "name": "AMOXIL", "strength": "500 MG", "unit_price": "11"}
    )
    assert response.status_code == 409
    page = page_text(response)
    block = field_block(page, "name")
    assert "has-error" in block
    assert "Already in the catalogue with this strength and form." in block
    assert len(medicines_in_db()) == 1
    assert audit_actions() == ["MEDICINE_CREATED"]


def test_another_strength_is_not_a_duplicate(client, pharmacist):
    make_medicine(pharmacist, **{k: FORM[k] for k in ("name", "dosage_form", "strength")})
    sign_in(client, pharmacist)
    response = form_post(client, NEW, {**FORM, "strength": "250 mg"})
    assert response.status_code == 302
    assert [m.strength for m in medicines_in_db()] == ["500 mg", "250 mg"]


def test_a_post_without_the_csrf_token_is_refused(client, pharmacist):
    sign_in(client, pharmacist)
    assert client.post(NEW, data=FORM).status_code == 400
    assert medicines_in_db() == []


# ---- editing -------------------------------------------------------------------------


def test_the_edit_form_is_pre_filled_and_saves(client, pharmacist):
    medicine = make_medicine(pharmacist, hsn_code="3004", reorder_level=20)
    url = f"/pharmacy/medicines/{medicine.id}/edit"
    sign_in(client, pharmacist)
    page = page_text(client.get(url))
    assert "Edit Augmentin 625 mg" in page
    assert 'value="Augmentin"' in field_block(page, "name")
    assert 'value="Amoxicillin + Clavulanic Acid"' in field_block(page, "generic_name")
    assert 'value="Penicillin"' in field_block(page, "drug_class")
    assert '<option selected value="TABLET">' in field_block(page, "dosage_form")
    assert 'value="625 mg"' in field_block(page, "strength")
    assert 'value="GSK"' in field_block(page, "manufacturer")
    assert 'value="22.40"' in field_block(page, "unit_price")
    assert '<option selected value="12">' in field_block(page, "gst_rate")
    assert 'value="3004"' in field_block(page, "hsn_code")
    assert 'value="20"' in field_block(page, "reorder_level")
    assert "checked" in field_block(page, "is_active")

    form = {
        **FORM,
        **{k: SERVICE_DATA[k] for k in ("name", "generic_name", "dosage_form", "strength")},
        "unit_price": "24.5",
        "gst_rate": "5",
    }
    response = form_post(client, url, form)
    assert response.status_code == 302, page_text(response)[:2000]
    (saved,) = medicines_in_db()
    assert (saved.unit_price, saved.gst_rate, saved.name) == (Decimal("24.50"), 5, "Augmentin")
    page = page_text(client.get(response.headers["Location"]))
    assert "Saved Augmentin 625 mg." in page
    assert ">24.50</td>" in page
    db.session.expire_all()
    (event,) = [
        e.payload
        for e in db.session.scalars(select(OutboxEvent))
        if e.payload["action"] == "MEDICINE_UPDATED"
    ]
    assert event["changes"] == {
        "old": {"unit_price": "22.40", "gst_rate": 12},
        "new": {"unit_price": "24.50", "gst_rate": 5},
    }


def test_deactivating_hides_it_unless_all_is_asked_for(client, pharmacist, catalogue):
    augmentin, _ = catalogue
    url = f"/pharmacy/medicines/{augmentin.id}/edit"
    sign_in(client, pharmacist)
    form = {
        **FORM,
        **{k: SERVICE_DATA[k] for k in ("name", "generic_name", "dosage_form", "strength")},
        "unit_price": "22.40",
    }
    del form["is_active"]  # an unticked box is not sent
    response = form_post(client, url, form)
    assert response.status_code == 302
    assert medicines_in_db()[0].is_active is False
    page = page_text(client.get(LIST))
    assert rows(page) == ["Azithral"]
    assert "not in use" not in page
    assert "Include medicines no longer in use" in page
    everything = page_text(client.get(f"{LIST}?all=1"))
    assert rows(everything) == ["Augmentin", "Azithral"]
    assert '<strong>Augmentin</strong> <span class="tag">not in use</span>' in everything
    assert everything.count("not in use</span>") == 1
    assert 'type="hidden" name="all" value="1"' in everything
    assert "Hide medicines no longer in use" in everything
    assert rows(page_text(client.get(f"{LIST}?q=augmentin"))) == []
    assert rows(page_text(client.get(f"{LIST}?q=augmentin&all=1"))) == ["Augmentin"]
    # Ticking the box again brings it back.
    response = form_post(client, url, {**form, "is_active": "y"})
    assert response.status_code == 302
    assert rows(page_text(client.get(LIST))) == ["Augmentin", "Azithral"]


def test_an_edit_error_appears_beside_the_field_and_changes_nothing(client, pharmacist):
    medicine = make_medicine(pharmacist)
    url = f"/pharmacy/medicines/{medicine.id}/edit"
    sign_in(client, pharmacist)
    form = {**FORM, "name": "Augmentin XR", "unit_price": "1.234"}
    response = form_post(client, url, form)
    assert response.status_code == 422
    page = page_text(response)
    assert "At most two decimal places." in field_block(page, "unit_price")
    assert "Edit Augmentin 625 mg" in page
    (saved,) = medicines_in_db()
    assert (saved.name, saved.unit_price) == ("Augmentin", Decimal("22.40"))
    assert audit_actions() == ["MEDICINE_CREATED"]


def test_editing_into_a_duplicate_is_refused(client, pharmacist, catalogue):
    _, azithral = catalogue
    url = f"/pharmacy/medicines/{azithral.id}/edit"
    sign_in(client, pharmacist)
    form = {**FORM, "name": "augmentin", "dosage_form": "TABLET", "strength": "625 MG"}
    response = form_post(client, url, form)
    assert response.status_code == 409
    page = page_text(response)
    assert "Already in the catalogue with this strength and form." in field_block(page, "name")
    db.session.expire_all()
    assert db.session.get(Medicine, azithral.id).name == "Azithral"


def test_unknown_medicine_is_404(client, pharmacist):
    sign_in(client, pharmacist)
    assert client.get("/pharmacy/medicines/987654321/edit").status_code == 404
    assert client.get(f"/pharmacy/medicines/{2**31}/edit").status_code == 404
    assert client.get(f"/pharmacy/medicines/{2**64}/edit").status_code == 404


# ---- who may see what ----------------------------------------------------------------


@pytest.mark.parametrize("role", ["reception", "doctor"])
def test_reception_and_doctor_read_but_may_not_add_or_edit(client, request, role, catalogue):
    augmentin, _ = catalogue
    user = request.getfixturevalue(role)
    sign_in(client, user)
    page = page_text(client.get(LIST))
    assert rows(page) == ["Augmentin", "Azithral"]
    assert "Add a medicine" not in page
    assert f'href="{NEW}"' not in page
    assert "/edit" not in page and ">Edit</a>" not in page
    edit = f"/pharmacy/medicines/{augmentin.id}/edit"
    assert client.get(NEW).status_code == 403
    assert client.get(edit).status_code == 403
    token = csrf_token(client, LIST)
    assert client.post(NEW, data={**FORM, "csrf_token": token}).status_code == 403
    changed = {**FORM, "name": "Changed", "csrf_token": token}
    assert client.post(edit, data=changed).status_code == 403
    assert [m.name for m in medicines_in_db()] == ["Augmentin", "Azithral"]


@pytest.mark.parametrize("role", ["pharmacist", "admin"])
def test_pharmacist_and_admin_are_offered_add_and_edit(client, request, role, catalogue):
    augmentin, _ = catalogue
    sign_in(client, request.getfixturevalue(role))
    page = page_text(client.get(LIST))
    assert f'<a class="button primary" href="{NEW}">Add a medicine</a>' in page
    assert f'href="/pharmacy/medicines/{augmentin.id}/edit">Edit</a>' in page
    assert client.get(NEW).status_code == 200


@pytest.mark.parametrize("url", [LIST, NEW, "/pharmacy/medicines/1/edit"])
def test_signed_out_visitors_are_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_the_form_marks_an_h1_medicine_and_shows_it_again(client, pharmacist):
    sign_in(client, pharmacist)
    response = form_post(client, NEW, {**FORM, "schedule": "H1"})
    assert response.status_code == 302, page_text(response)[:2000]
    (medicine,) = medicines_in_db()
    assert medicine.schedule == "H1"
    edit = page_text(client.get(f"/pharmacy/medicines/{medicine.id}/edit"))
    assert '<option selected value="H1">' in field_block(edit, "schedule")
    refused = form_post(client, NEW, {**FORM, "name": "Other", "schedule": "Z"})
    assert refused.status_code == 422
    assert "Not a valid choice" in field_block(page_text(refused), "schedule")
