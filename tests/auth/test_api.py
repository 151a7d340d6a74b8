"""`/api/v1/auth` and `/api/v1/users`: every status code, in Qure's error shape."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token
from sqlalchemy import func, select

from qure.auth import service
from qure.auth.models import User
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from tests.helpers import PASSWORD, bearer, form_post, make_user, sign_in

LOGIN = "/api/v1/auth/login"


def login(client, username: str, password: str = PASSWORD):
    return client.post(LOGIN, json={"username": username, "password": password})


def assert_error(response, status: int, code: str) -> dict:
    """The response is `{"error": {"code", "message", ...}}` with this status and code."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"code", "message"} <= set(error)
    assert set(error) <= {"code", "message", "fields", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def user_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def new_user(**fields) -> dict:
    data = {
        "username": "new.nurse",
        "email": "new.nurse@clinic.test",
        "full_name": "New Front Desk",
        "role": "RECEPTION",
        "password": "a-good-password",
    }
    data.update(fields)
    return data


# ---- /auth/login -------------------------------------------------------------------------


def test_login_returns_tokens_and_the_user(client, doctor):
    response = login(client, doctor.username)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    assert body["access_token"] and body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]
    assert body["user"] == {
        "id": doctor.id,
        "username": doctor.username,
        "full_name": doctor.full_name,
        "role": "DOCTOR",
    }
    assert response.headers["Cache-Control"] == "no-store"


def test_login_with_a_wrong_password_is_401(client, reception):
    error = assert_error(
        login(client, reception.username, "wrong-password"), 401, "invalid_credentials"
    )
    assert error["message"] == "Wrong username or password."


def test_unknown_and_deactivated_users_get_the_same_401(client, admin, reception):
    service.update_user(admin, reception.id, {"is_active": False})
    db.session.commit()
    answers = [
        login(client, "nobody-at-all"),
        login(client, reception.username),
        login(client, reception.username, "wrong-password"),
    ]
    bodies = {str(assert_error(r, 401, "invalid_credentials")) for r in answers}
    assert len(bodies) == 1


def test_login_missing_a_field_is_422_naming_it(client, reception):
    error = assert_error(
        client.post(LOGIN, json={"username": reception.username}), 422, "invalid_input"
    )
    assert "password" in error["fields"]
    error = assert_error(client.post(LOGIN, json={}), 422, "invalid_input")
    assert {"username", "password"} <= set(error["fields"])
    error = assert_error(
        client.post(LOGIN, json={"username": "", "password": PASSWORD}), 422, "invalid_input"
    )
    assert "username" in error["fields"]


def test_login_with_malformed_json_is_400(client):
    response = client.post(LOGIN, data='{"username": "x", ', content_type="application/json")
    assert_error(response, 400, "bad_request")


def test_login_with_wrong_types_is_422(client):
    response = client.post(LOGIN, json={"username": 12, "password": ["x"]})
    error = assert_error(response, 422, "invalid_input")
    assert {"username", "password"} <= set(error["fields"])


def test_login_with_nul_bytes_is_refused_not_a_500(client, reception):
    for body in (
        {"username": "recep\x00tion", "password": PASSWORD},
        {"username": reception.username, "password": "pass\x00word-long"},
    ):
        assert_error(client.post(LOGIN, json=body), 401, "invalid_credentials")
    assert login(client, reception.username).status_code == 200


def test_a_long_password_is_refused_not_a_500(client, reception):
    assert_error(login(client, reception.username, "é" * 200), 401, "invalid_credentials")


def test_login_is_throttled_after_five_failures(client, reception, doctor):
    for _ in range(5):
        assert_error(
            login(client, reception.username, "wrong-password"), 401, "invalid_credentials"
        )
    response = login(client, reception.username)  # the right password, too late
    error = assert_error(response, 429, "too_many_attempts")
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit()
    assert int(retry_after) == 2  # a short delay, not a long lock
    assert error["details"]["retry_after"] == int(retry_after)
    assert "Too many failed sign-ins" in error["message"]
    # another username is not locked
    assert login(client, doctor.username).status_code == 200


def test_login_hold_ends_after_a_short_delay(client, reception):
    for _ in range(5):
        login(client, reception.username, "wrong-password")
    response = login(client, reception.username)
    assert_error(response, 429, "too_many_attempts")
    assert response.headers["Retry-After"] == "2"
    time.sleep(2.1)
    assert login(client, reception.username).status_code == 200


def test_login_attempts_are_audited_even_when_refused(client, reception):
    login(client, reception.username, "wrong-password")
    login(client, reception.username)
    db.session.expire_all()
    actions = [
        row.payload["action"]
        for row in db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        if row.payload["resource"]["id"] == reception.id
    ]
    assert actions[-2:] == ["USER_LOGIN_FAILED", "USER_LOGIN"]


# ---- /auth/refresh and /auth/me ----------------------------------------------------------


def test_refresh_token_gives_a_new_access_token(client, pharmacist):
    tokens = login(client, pharmacist.username).get_json()
    response = client.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "bearer"
    assert body["user"]["id"] == pharmacist.id
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.get_json()["username"] == pharmacist.username


def test_refresh_with_an_access_token_is_401(client, pharmacist):
    response = client.post("/api/v1/auth/refresh", headers=bearer(client, pharmacist))
    assert_error(response, 401, "unauthorized")


def test_a_refresh_token_is_not_an_access_token(client, pharmacist):
    tokens = login(client, pharmacist.username).get_json()
    response = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert_error(response, 401, "unauthorized")


def test_me_returns_the_signed_in_user(client, doctor):
    response = client.get("/api/v1/auth/me", headers=bearer(client, doctor))
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == doctor.id
    assert body["role"] == "DOCTOR"
    assert body["registration_number"] == doctor.registration_number
    assert "password" not in body and "password_hash" not in body


def test_me_without_a_token_is_401(client):
    assert_error(client.get("/api/v1/auth/me"), 401, "unauthorized")
    assert_error(client.post("/api/v1/auth/refresh"), 401, "unauthorized")


def test_me_with_a_garbage_token_is_401(client):
    for header in ("Bearer not-a-jwt", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer"):
        response = client.get("/api/v1/auth/me", headers={"Authorization": header})
        assert_error(response, 401, "unauthorized")


def test_a_token_signed_with_another_key_is_401(app, client, doctor):
    forged = pyjwt.encode(
        {"sub": str(doctor.id), "type": "access", "role": "ADMIN", "ver": 1},
        "some-other-secret-key-that-is-long-enough-0123",
        algorithm="HS256",
    )
    response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert_error(response, 401, "unauthorized")


def test_a_token_accepted_once_is_refused_once_it_expires(app, client, doctor):
    # The app remembers tokens it has verified; expiry must still end them on time.
    with app.test_request_context():
        token = create_access_token(identity=doctor, expires_delta=timedelta(seconds=1))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    time.sleep(1.1)
    error = assert_error(client.get("/api/v1/auth/me", headers=headers), 401, "unauthorized")
    assert error["message"] == "The token has expired."


def test_a_correctly_signed_token_without_an_expiry_is_refused(app, client, doctor):
    """A token that never expires (no `exp`) would grant access for ever, whoever holds it."""
    with app.test_request_context():
        endless = create_access_token(identity=doctor, expires_delta=False)
    assert "exp" not in pyjwt.decode(endless, options={"verify_signature": False})
    headers = {"Authorization": f"Bearer {endless}"}
    error = assert_error(client.get("/api/v1/auth/me", headers=headers), 401, "unauthorized")
    assert error["message"] == "The token is not valid."
    assert_error(client.get("/api/v1/auth/me", headers=headers), 401, "unauthorized")


def test_a_remembered_token_is_not_valid_under_another_signing_key(
    app, client, doctor, monkeypatch
):
    headers = bearer(client, doctor)
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    monkeypatch.setitem(
        app.config, "JWT_SECRET_KEY", "another-signing-key-that-is-long-enough-0123456789"
    )
    assert_error(client.get("/api/v1/auth/me", headers=headers), 401, "unauthorized")


def test_a_browser_session_does_not_authenticate_the_api(client, admin):
    sign_in(client, admin)
    assert client.get("/admin/users").status_code == 200  # the cookie works for pages
    assert_error(client.get("/api/v1/auth/me"), 401, "unauthorized")
    assert_error(client.get("/api/v1/users"), 401, "unauthorized")


def test_token_of_a_user_deactivated_after_issue_is_401(client, admin, reception):
    headers = bearer(client, reception)
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    service.update_user(admin, reception.id, {"is_active": False})
    db.session.commit()
    assert_error(client.get("/api/v1/auth/me", headers=headers), 401, "unauthorized")


def test_tokens_issued_before_a_password_reset_are_401(client, admin, reception):
    tokens = login(client, reception.username).get_json()
    access = {"Authorization": f"Bearer {tokens['access_token']}"}
    refresh = {"Authorization": f"Bearer {tokens['refresh_token']}"}
    service.update_user(admin, reception.id, {"password": "a-new-password-1"})
    db.session.commit()
    assert_error(client.get("/api/v1/auth/me", headers=access), 401, "unauthorized")
    assert_error(client.post("/api/v1/auth/refresh", headers=refresh), 401, "unauthorized")
    # the new password gives a token that works
    assert (
        client.get(
            "/api/v1/auth/me", headers=bearer(client, reception, "a-new-password-1")
        ).status_code
        == 200
    )


# ---- /auth/register ----------------------------------------------------------------------


def test_admin_registers_a_user(client, admin):
    response = client.post("/api/v1/auth/register", json=new_user(), headers=bearer(client, admin))
    assert response.status_code == 201
    body = response.get_json()
    assert body["username"] == "new.nurse"
    assert body["role"] == "RECEPTION"
    assert body["is_active"] is True
    assert "password" not in body and "password_hash" not in body
    stored = db.session.get(User, body["id"])
    assert stored.email == "new.nurse@clinic.test"
    assert login(client, "new.nurse", "a-good-password").status_code == 200


def test_admin_registers_a_doctor_with_registration_number(client, admin):
    data = new_user(username="dr.rao", email="rao@clinic.test", role="DOCTOR")
    headers = bearer(client, admin)
    error = assert_error(
        client.post("/api/v1/auth/register", json=data, headers=headers), 422, "invalid_input"
    )
    assert "registration_number" in error["fields"]
    data["registration_number"] = "KMC-1234"
    response = client.post("/api/v1/auth/register", json=data, headers=headers)
    assert response.status_code == 201
    assert response.get_json()["registration_number"] == "KMC-1234"


def test_register_by_a_non_admin_is_403(client, reception, doctor):
    before = user_count()
    for user in (reception, doctor):
        response = client.post(
            "/api/v1/auth/register", json=new_user(), headers=bearer(client, user)
        )
        assert_error(response, 403, "forbidden")
    assert user_count() == before


def test_register_without_a_token_is_401(client):
    assert_error(client.post("/api/v1/auth/register", json=new_user()), 401, "unauthorized")


def test_register_duplicate_username_or_email_is_409(client, admin, reception):
    headers = bearer(client, admin)
    response = client.post(
        "/api/v1/auth/register",
        json=new_user(username=reception.username.upper()),
        headers=headers,
    )
    error = assert_error(response, 409, "username_taken")
    assert "username" in error["fields"]
    response = client.post(
        "/api/v1/auth/register", json=new_user(email=reception.email), headers=headers
    )
    assert_error(response, 409, "email_taken")


def test_register_with_bad_fields_is_422_naming_them(client, admin):
    headers = bearer(client, admin)
    before = user_count()
    cases = [
        (new_user(username="x!"), "username"),
        (new_user(email="not-an-email"), "email"),
        (new_user(password="short"), "password"),
        (new_user(role="NURSE"), "role"),
        ({k: v for k, v in new_user().items() if k != "full_name"}, "full_name"),
        (new_user(is_superuser=True), "is_superuser"),
    ]
    for data, field in cases:
        response = client.post("/api/v1/auth/register", json=data, headers=headers)
        error = assert_error(response, 422, "invalid_input")
        assert field in error["fields"], (field, error)
    assert user_count() == before


def test_register_with_nul_bytes_is_refused_not_a_500(client, admin):
    headers = bearer(client, admin)
    for data, field in (
        (new_user(full_name="Bad\x00Name"), "full_name"),
        (new_user(email="bad\x00@clinic.test"), "email"),
        (new_user(qualification="MB\x00BS"), "qualification"),
    ):
        response = client.post("/api/v1/auth/register", json=data, headers=headers)
        error = assert_error(response, 422, "invalid_input")
        assert field in error["fields"]


# ---- /users ------------------------------------------------------------------------------


def test_users_list_is_paginated(client, admin):
    for _ in range(4):
        make_user(Role.RECEPTION)
    headers = bearer(client, admin)
    first = client.get("/api/v1/users?per_page=2", headers=headers)
    assert first.status_code == 200
    body = first.get_json()
    assert set(body) == {"items", "page", "per_page", "total"}
    assert (body["page"], body["per_page"], body["total"]) == (1, 2, 5)
    assert len(body["items"]) == 2
    item = body["items"][0]
    assert {"id", "username", "email", "full_name", "role", "is_active"} <= set(item)
    assert "password_hash" not in item
    seen = [u["id"] for u in body["items"]]
    for page in (2, 3):
        body = client.get(f"/api/v1/users?per_page=2&page={page}", headers=headers).get_json()
        seen += [u["id"] for u in body["items"]]
    assert len(seen) == len(set(seen)) == 5
    last = client.get("/api/v1/users?per_page=2&page=4", headers=headers).get_json()
    assert last["items"] == [] and last["total"] == 5


def test_users_list_rejects_out_of_range_paging(client, admin):
    headers = bearer(client, admin)
    error = assert_error(
        client.get("/api/v1/users?per_page=500", headers=headers), 422, "invalid_input"
    )
    assert "per_page" in error["fields"]
    error = assert_error(client.get("/api/v1/users?page=0", headers=headers), 422, "invalid_input")
    assert "page" in error["fields"]
    error = assert_error(
        client.get("/api/v1/users?role=NURSE", headers=headers), 422, "invalid_input"
    )
    assert "role" in error["fields"]


def test_users_list_filters_by_role_and_active(client, admin, reception, doctor, pharmacist):
    other_doctor = make_user(Role.DOCTOR)
    service.update_user(admin, other_doctor.id, {"is_active": False})
    db.session.commit()
    headers = bearer(client, admin)
    body = client.get("/api/v1/users?role=DOCTOR", headers=headers).get_json()
    assert sorted(u["id"] for u in body["items"]) == sorted([doctor.id, other_doctor.id])
    assert {u["role"] for u in body["items"]} == {"DOCTOR"}
    body = client.get("/api/v1/users?role=DOCTOR&is_active=false", headers=headers).get_json()
    assert [u["id"] for u in body["items"]] == [other_doctor.id]
    body = client.get(f"/api/v1/users?q={pharmacist.username}", headers=headers).get_json()
    assert [u["id"] for u in body["items"]] == [pharmacist.id]


def test_users_list_is_for_admins_only(client, reception):
    assert_error(client.get("/api/v1/users", headers=bearer(client, reception)), 403, "forbidden")
    assert_error(client.get("/api/v1/users"), 401, "unauthorized")


def test_get_one_user(client, admin, doctor):
    headers = bearer(client, admin)
    response = client.get(f"/api/v1/users/{doctor.id}", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["username"] == doctor.username
    assert_error(client.get("/api/v1/users/999999", headers=headers), 404, "user_not_found")
    # beyond what the id column can hold: still nobody, not a server error
    huge = "/api/v1/users/9999999999"
    assert_error(client.get(huge, headers=headers), 404, "user_not_found")
    response = client.patch(huge, json={"full_name": "No One"}, headers=headers)
    assert_error(response, 404, "user_not_found")
    assert client.get("/api/v1/users/99999999999999999999", headers=headers).status_code == 404


def test_users_search_with_a_nul_byte_is_not_a_500(client, admin, doctor):
    headers = bearer(client, admin)
    response = client.get("/api/v1/users?q=%00", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["total"] == 2


def test_users_search_takes_percent_and_underscore_as_themselves(client, admin):
    make_user(Role.RECEPTION, username="desk_1", full_name="Front 100% Desk")
    make_user(Role.RECEPTION, username="desk21", full_name="Front Desk Two")
    headers = bearer(client, admin)

    def found(q: str) -> list[str]:
        response = client.get("/api/v1/users", query_string={"q": q}, headers=headers)
        assert response.status_code == 200
        return [u["username"] for u in response.get_json()["items"]]

    assert found("%") == ["desk_1"]  # not every user
    assert found("_") == ["desk_1"]  # not every user with a name of one character or more
    assert found("desk_") == ["desk_1"]  # "_" is not any one character: desk21 is not found
    assert found("100%") == ["desk_1"]
    assert found("\\") == []


def test_patch_changes_the_role(client, admin, reception):
    response = client.patch(
        f"/api/v1/users/{reception.id}", json={"role": "PHARMACIST"}, headers=bearer(client, admin)
    )
    assert response.status_code == 200
    assert response.get_json()["role"] == "PHARMACIST"
    db.session.expire_all()
    assert db.session.get(User, reception.id).role == Role.PHARMACIST


def test_patch_deactivates_another_user(client, admin, reception):
    response = client.patch(
        f"/api/v1/users/{reception.id}", json={"is_active": False}, headers=bearer(client, admin)
    )
    assert response.status_code == 200
    assert response.get_json()["is_active"] is False
    assert_error(login(client, reception.username), 401, "invalid_credentials")


@pytest.mark.parametrize("flag", ["perhaps", 2, None, [True]])
def test_patch_refuses_an_active_flag_that_is_not_true_or_false(client, admin, reception, flag):
    response = client.patch(
        f"/api/v1/users/{reception.id}", json={"is_active": flag}, headers=bearer(client, admin)
    )
    assert_error(response, 422, "invalid_input")
    assert "is_active" in response.get_json()["error"]["fields"]
    assert db.session.get(User, reception.id).is_active is True


def test_patch_cannot_deactivate_oneself(client, admin):
    make_user(Role.ADMIN)
    response = client.patch(
        f"/api/v1/users/{admin.id}", json={"is_active": False}, headers=bearer(client, admin)
    )
    assert_error(response, 403, "cannot_deactivate_self")
    db.session.expire_all()
    assert db.session.get(User, admin.id).is_active is True


def test_patch_cannot_demote_the_last_admin(client, admin):
    response = client.patch(
        f"/api/v1/users/{admin.id}", json={"role": "RECEPTION"}, headers=bearer(client, admin)
    )
    assert_error(response, 409, "last_admin")
    db.session.expire_all()
    assert db.session.get(User, admin.id).role == Role.ADMIN


def test_patch_with_unknown_or_bad_fields_is_422(client, admin, reception):
    headers = bearer(client, admin)
    url = f"/api/v1/users/{reception.id}"
    for data, field in (
        ({"username": "renamed"}, "username"),
        ({"token_version": 5}, "token_version"),
        ({"role": "NURSE"}, "role"),
        ({"email": "nope"}, "email"),
        ({"password": "short"}, "password"),
        ({"is_active": "maybe"}, "is_active"),
        ({"role": "DOCTOR"}, "registration_number"),
    ):
        error = assert_error(client.patch(url, json=data, headers=headers), 422, "invalid_input")
        assert field in error["fields"], (field, error)
    db.session.expire_all()
    stored = db.session.get(User, reception.id)
    assert (stored.username, stored.role) == (reception.username, Role.RECEPTION)


def test_patch_to_a_taken_email_is_409(client, admin, reception, doctor):
    response = client.patch(
        f"/api/v1/users/{reception.id}", json={"email": doctor.email}, headers=bearer(client, admin)
    )
    assert_error(response, 409, "email_taken")


def test_patch_unknown_user_is_404(client, admin):
    response = client.patch(
        "/api/v1/users/999999", json={"full_name": "No One"}, headers=bearer(client, admin)
    )
    assert_error(response, 404, "user_not_found")


def test_patch_by_a_non_admin_is_403(client, reception, doctor):
    response = client.patch(
        f"/api/v1/users/{doctor.id}", json={"is_active": False}, headers=bearer(client, reception)
    )
    assert_error(response, 403, "forbidden")
    db.session.expire_all()
    assert db.session.get(User, doctor.id).is_active is True


def test_patch_password_reset_ends_old_tokens(client, admin, reception):
    old = bearer(client, reception)
    response = client.patch(
        f"/api/v1/users/{reception.id}",
        json={"password": "reset-by-admin-1"},
        headers=bearer(client, admin),
    )
    assert response.status_code == 200
    assert_error(client.get("/api/v1/auth/me", headers=old), 401, "unauthorized")
    assert_error(login(client, reception.username), 401, "invalid_credentials")
    assert login(client, reception.username, "reset-by-admin-1").status_code == 200


# ---- throttling that cannot lock staff out -------------------------------------------------


def login_from(client, address: str, username: str, password: str = PASSWORD):
    return client.post(
        LOGIN,
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def test_one_address_trying_many_usernames_gets_429(app, client, reception):
    limit = app.config["LOGIN_ADDRESS_MAX_FAILURES"]
    for n in range(limit):
        response = login_from(client, "203.0.113.9", f"guess-{n}", "wrong-password")
        assert_error(response, 401, "invalid_credentials")
    response = login_from(client, "203.0.113.9", reception.username)
    error = assert_error(response, 429, "too_many_attempts")
    assert "from this address" in error["message"]
    assert 500 < int(response.headers["Retry-After"]) <= 600
    assert error["details"]["retry_after"] == int(response.headers["Retry-After"])
    assert login_from(app.test_client(), "198.51.100.20", reception.username).status_code == 200


def test_successes_do_not_count_against_the_address(app, client, reception):
    for _ in range(app.config["LOGIN_ADDRESS_MAX_FAILURES"] + 5):
        assert login_from(client, "198.51.100.20", reception.username).status_code == 200


def test_an_api_client_that_signed_in_before_is_not_held(app, reception):
    known = app.test_client()
    assert login_from(known, "198.51.100.20", reception.username).status_code == 200
    guesser = app.test_client()
    for _ in range(6):
        login_from(guesser, "203.0.113.9", reception.username, "wrong-password")
    assert_error(login_from(guesser, "203.0.113.9", reception.username), 429, "too_many_attempts")
    assert login_from(known, "198.51.100.20", reception.username).status_code == 200


# ---- sessions and tokens that must end -----------------------------------------------------


def test_signing_out_in_the_browser_ends_the_users_tokens_too(app, reception):
    api = app.test_client()
    tokens = login(api, reception.username).get_json()
    access = {"Authorization": f"Bearer {tokens['access_token']}"}
    refresh = {"Authorization": f"Bearer {tokens['refresh_token']}"}
    browser = app.test_client()
    sign_in(browser, reception)
    response = form_post(browser, "/logout", {}, page="/home")
    assert response.status_code == 302
    assert_error(api.get("/api/v1/auth/me", headers=access), 401, "unauthorized")
    assert_error(api.post("/api/v1/auth/refresh", headers=refresh), 401, "unauthorized")


def test_deactivation_ends_refresh_tokens_and_sessions(app, admin, reception):
    api = app.test_client()
    tokens = login(api, reception.username).get_json()
    refresh = {"Authorization": f"Bearer {tokens['refresh_token']}"}
    browser = app.test_client()
    sign_in(browser, reception)
    boss = bearer(app.test_client(), admin)
    patched = api.patch(f"/api/v1/users/{reception.id}", json={"is_active": False}, headers=boss)
    assert patched.status_code == 200
    assert_error(api.post("/api/v1/auth/refresh", headers=refresh), 401, "unauthorized")
    page = browser.get("/home")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
