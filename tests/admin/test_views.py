"""The admin's user pages, driven like a browser (CSRF on)."""

from __future__ import annotations

import html as htmllib
import re

import pytest
from sqlalchemy import func, select

from qure.auth import service
from qure.auth.models import User
from qure.core.roles import Role
from qure.extensions import db
from tests.auth.test_views import new_browser
from tests.helpers import PASSWORD, form_post, make_user, sign_in


@pytest.fixture
def as_admin(client, admin):
    sign_in(client, admin)
    return client


def user_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def fresh(user_id: int) -> User:
    db.session.expire_all()
    return db.session.get(User, user_id)


def text_of(response) -> str:
    return htmllib.unescape(response.get_data(as_text=True))


def field_error(response, field: str) -> str | None:
    """The error shown beside one form field, if any."""
    match = re.search(rf'<div id="{field}-error"><p class="error">([^<]*)</p>', text_of(response))
    return match.group(1) if match else None


def table_rows(response) -> list[str]:
    body = re.search(r"<tbody>(.*?)</tbody>", response.get_data(as_text=True), re.S).group(1)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in body.split("</tr>")[:-1]]


def details(user: User, **changes) -> dict:
    """The edit form as the browser would send it for `user` (active box ticked)."""
    data = {
        "full_name": user.full_name,
        "email": user.email,
        "role": user.role.value,
        "registration_number": user.registration_number or "",
        "qualification": user.qualification or "",
        "is_active": "y",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def new_user_form(**changes) -> dict:
    data = {
        "username": "meera.n",
        "full_name": "Meera Nair",
        "email": "meera@clinic.test",
        "role": "RECEPTION",
        "registration_number": "",
        "qualification": "",
        "password": "a-strong-password",
    }
    data.update(changes)
    return data


# ---- the list --------------------------------------------------------------------------


def test_admin_home_counts_active_staff(as_admin, reception, doctor):
    page = as_admin.get("/admin/")
    assert page.status_code == 200
    html = text_of(page)
    assert "Administrator: <strong>1</strong>" in html
    assert "Doctor: <strong>1</strong>" in html
    assert "Reception: <strong>1</strong>" in html
    assert "Pharmacist: <strong>0</strong>" in html


def test_list_shows_every_user_with_role_and_status(as_admin, admin):
    doctor = make_user(Role.DOCTOR, full_name="Dr Kavya Iyer")
    gone = make_user(Role.PHARMACIST, full_name="Old Pharmacist")
    service.update_user(admin, gone.id, {"is_active": False})
    db.session.commit()
    page = as_admin.get("/admin/users")
    assert page.status_code == 200
    rows = table_rows(page)
    assert len(rows) == 3
    assert f"Dr Kavya Iyer {doctor.username} Doctor Active" in rows
    assert f"Old Pharmacist {gone.username} Pharmacist Deactivated" in rows
    assert f'href="/admin/users/{doctor.id}"' in page.get_data(as_text=True)


def test_list_filters_by_role_and_name(as_admin, reception, doctor, pharmacist):
    page = as_admin.get("/admin/users?role=DOCTOR")
    rows = table_rows(page)
    assert len(rows) == 1 and doctor.username in rows[0]
    assert '<option value="DOCTOR" selected>' in page.get_data(as_text=True)
    rows = table_rows(as_admin.get(f"/admin/users?q={pharmacist.username}"))
    assert len(rows) == 1 and pharmacist.username in rows[0]
    rows = table_rows(as_admin.get("/admin/users?q=zzz-nobody"))
    assert rows == ["No users match."]


def test_list_ignores_a_bad_role_page_or_search(as_admin, reception):
    for query in ("?role=NURSE", "?page=abc", "?page=-3", "?q=%00"):
        page = as_admin.get(f"/admin/users{query}")
        assert page.status_code == 200
        assert len(table_rows(page)) == 2


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.DOCTOR, Role.PHARMACIST])
def test_non_admins_get_403_on_user_pages(client, role):
    user = make_user(role)
    sign_in(client, user)
    before = user_count()
    for url in ("/admin/", "/admin/users", "/admin/users/new", f"/admin/users/{user.id}"):
        response = client.get(url)
        assert response.status_code == 403
        assert "Not for your role" in text_of(response)
    response = form_post(client, "/admin/users/new", new_user_form(), page="/home")
    assert response.status_code == 403
    response = form_post(
        client, f"/admin/users/{user.id}", details(user, role="ADMIN"), page="/home"
    )
    assert response.status_code == 403
    assert user_count() == before
    assert fresh(user.id).role == role


# ---- creating users ----------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_admin_creates_a_user_of_each_role(app, as_admin, role):
    extra = {"registration_number": "TNMC-5555"} if role == Role.DOCTOR else {}
    data = new_user_form(username=f"new.{role.value.lower()}", role=role.value, **extra)
    response = form_post(as_admin, "/admin/users/new", data)
    assert response.status_code == 302
    created = db.session.scalar(select(User).where(User.username == data["username"]))
    assert created is not None
    assert created.role == role
    assert response.headers["Location"] == f"/admin/users/{created.id}"
    page = as_admin.get(response.headers["Location"])
    assert f"Created {data['username']} ({role.value})." in text_of(page)
    # the new account can sign in
    browser = new_browser(app)
    assert sign_in(browser, created, "a-strong-password").status_code == 302


def test_create_form_errors_are_shown_beside_the_field(as_admin):
    before = user_count()
    response = form_post(as_admin, "/admin/users/new", new_user_form(password="short"))
    assert response.status_code == 422
    assert field_error(response, "password") == "Use at least 8 characters."
    response = form_post(as_admin, "/admin/users/new", new_user_form(username="no spaces"))
    assert response.status_code == 422
    assert field_error(response, "username").startswith("3 to 40 characters")
    response = form_post(as_admin, "/admin/users/new", new_user_form(role="DOCTOR"))
    assert response.status_code == 422
    assert field_error(response, "registration_number") == (
        "A doctor's registration number is required."
    )
    response = form_post(as_admin, "/admin/users/new", new_user_form(full_name=""))
    assert response.status_code == 422
    assert field_error(response, "full_name") == "This field is required."
    # what was typed is kept, except the password
    assert 'value="meera.n"' in response.get_data(as_text=True)
    assert "a-strong-password" not in response.get_data(as_text=True)
    assert user_count() == before


def test_taken_username_or_email_is_shown_beside_the_field(as_admin, reception):
    before = user_count()
    response = form_post(
        as_admin, "/admin/users/new", new_user_form(username=reception.username.upper())
    )
    assert response.status_code == 409
    assert field_error(response, "username") == "Already taken."
    response = form_post(as_admin, "/admin/users/new", new_user_form(email=reception.email))
    assert response.status_code == 409
    assert field_error(response, "email") == "Already in use."
    assert user_count() == before


def test_create_without_csrf_token_is_refused(as_admin):
    before = user_count()
    response = as_admin.post("/admin/users/new", data=new_user_form())
    assert response.status_code == 400
    assert user_count() == before


# ---- editing users -----------------------------------------------------------------------


def test_edit_page_shows_the_users_details(as_admin, doctor):
    page = as_admin.get(f"/admin/users/{doctor.id}")
    assert page.status_code == 200
    html = text_of(page)
    assert f'value="{doctor.email}"' in html
    assert f'value="{doctor.registration_number}"' in html
    assert '<option selected value="DOCTOR">' in html
    assert re.search(r'<input[^>]*id="is_active"[^>]*type="checkbox"', html)


def test_edit_of_an_unknown_user_is_404(as_admin):
    assert as_admin.get("/admin/users/999999").status_code == 404
    assert as_admin.get("/admin/users/9999999999").status_code == 404
    assert as_admin.get("/admin/users/99999999999999999999").status_code == 404


def test_admin_changes_a_role(as_admin, reception):
    response = form_post(
        as_admin, f"/admin/users/{reception.id}", details(reception, role="PHARMACIST")
    )
    assert response.status_code == 302
    assert fresh(reception.id).role == Role.PHARMACIST
    page = as_admin.get(response.headers["Location"])
    assert "Saved." in text_of(page)
    assert '<option selected value="PHARMACIST">' in text_of(page)


def test_role_change_to_doctor_needs_a_registration_number(as_admin, reception):
    url = f"/admin/users/{reception.id}"
    response = form_post(as_admin, url, details(reception, role="DOCTOR"))
    assert response.status_code == 422
    assert field_error(response, "registration_number")
    assert fresh(reception.id).role == Role.RECEPTION


def test_admin_deactivates_another_user(app, as_admin, reception):
    staff = new_browser(app)
    sign_in(staff, reception)
    response = form_post(
        as_admin, f"/admin/users/{reception.id}", details(reception, is_active=None)
    )
    assert response.status_code == 302
    assert fresh(reception.id).is_active is False
    rows = table_rows(as_admin.get("/admin/users?role=RECEPTION"))
    assert rows == [f"{reception.full_name} {reception.username} Reception Deactivated"]
    # their open session ends and they cannot sign in again
    assert staff.get("/home").status_code == 302
    response = form_post(staff, "/login", {"username": reception.username, "password": PASSWORD})
    assert response.status_code == 401


def test_admin_reactivates_a_user(as_admin, admin, reception):
    service.update_user(admin, reception.id, {"is_active": False})
    db.session.commit()
    response = form_post(as_admin, f"/admin/users/{reception.id}", details(reception))
    assert response.status_code == 302
    assert fresh(reception.id).is_active is True


def test_own_page_has_no_deactivate_box(as_admin, admin):
    page = text_of(as_admin.get(f"/admin/users/{admin.id}"))
    assert "You cannot deactivate your own account." in page
    assert 'type="checkbox"' not in page
    assert not re.search(r'id="is_active"', page)


def test_posting_inactive_for_oneself_is_refused(as_admin, admin):
    make_user(Role.ADMIN)  # not the last admin: the rule is about oneself
    response = form_post(as_admin, f"/admin/users/{admin.id}", details(admin, is_active=None))
    assert response.status_code == 403
    assert "You cannot deactivate your own account." in text_of(response)
    assert fresh(admin.id).is_active is True
    assert as_admin.get("/admin/users").status_code == 200  # still signed in


def test_last_admin_cannot_demote_themself(as_admin, admin):
    response = form_post(as_admin, f"/admin/users/{admin.id}", details(admin, role="RECEPTION"))
    assert response.status_code == 409
    assert "The clinic must keep at least one active admin." in text_of(response)
    assert fresh(admin.id).role == Role.ADMIN


def test_edit_to_a_taken_email_shows_the_error(as_admin, reception, doctor):
    response = form_post(
        as_admin, f"/admin/users/{reception.id}", details(reception, email=doctor.email)
    )
    assert response.status_code == 409
    assert field_error(response, "email") == "Already in use."
    assert fresh(reception.id).email == reception.email


# ---- password reset ----------------------------------------------------------------------


def reset(client, user: User, password: str, confirm: str):
    return form_post(
        client,
        f"/admin/users/{user.id}/password",
        {"password": password, "confirm": confirm},
        page=f"/admin/users/{user.id}",
    )


def test_admin_resets_a_password(app, as_admin, reception):
    response = reset(as_admin, reception, "brand-new-pass", "brand-new-pass")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/users/{reception.id}"
    page = text_of(as_admin.get(response.headers["Location"]))
    assert f"Password reset for {reception.username}; their sessions have ended." in page
    assert fresh(reception.id).token_version == 2
    browser = new_browser(app)
    response = form_post(browser, "/login", {"username": reception.username, "password": PASSWORD})
    assert response.status_code == 401
    assert sign_in(browser, reception, "brand-new-pass").status_code == 302


def test_mismatched_confirmation_is_shown_and_nothing_changes(as_admin, reception):
    response = reset(as_admin, reception, "brand-new-pass", "brand-new-pasS")
    assert response.status_code == 422
    assert field_error(response, "confirm") == "The two passwords differ."
    assert "brand-new-pass" not in response.get_data(as_text=True)
    stored = fresh(reception.id)
    assert stored.token_version == 1
    assert service.password_matches(stored, PASSWORD)


def test_short_reset_password_is_shown_beside_the_field(as_admin, reception):
    response = reset(as_admin, reception, "short", "short")
    assert response.status_code == 422
    assert field_error(response, "password") == "Use at least 8 characters."
    assert fresh(reception.id).token_version == 1


def test_admin_resets_their_own_password_and_signs_in_again(app, as_admin, admin):
    response = reset(as_admin, admin, "admin-new-pass", "admin-new-pass")
    assert response.status_code == 302
    # their own sessions end too, including this one
    assert as_admin.get("/admin/users").status_code == 302
    assert sign_in(as_admin, admin, "admin-new-pass").status_code == 302


def test_the_admin_home_links_to_the_api_documentation(client, admin):
    sign_in(client, admin)
    page = client.get("/admin/").get_data(as_text=True)
    assert 'href="/api/docs"' in page
