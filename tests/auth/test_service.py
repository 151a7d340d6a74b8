"""Users and sign-in, through the service functions against real PostgreSQL and Redis."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from qure.auth import service
from qure.auth.models import User
from qure.core.db import add_pending
from qure.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyAttempts,
    Unauthorized,
)
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from tests.helpers import PASSWORD, make_user

WRONG = "not-the-password"


def new_user_data(**fields) -> dict:
    data = {
        "username": "asha.k",
        "full_name": "Asha Kulkarni",
        "email": "asha@clinic.test",
        "role": "RECEPTION",
        "password": "a-long-password",
    }
    data.update(fields)
    return data


def audits(action: str | None = None, user_id: int | None = None) -> list[dict]:
    """Audit outbox payloads, oldest first, optionally of one action on one user."""
    add_pending()  # the rows this transaction writes at commit
    rows = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.topic == "audit_logs").order_by(OutboxEvent.id)
    ).all()
    return [
        r.payload
        for r in rows
        if (action is None or r.payload["action"] == action)
        and (user_id is None or r.payload["resource"]["id"] == user_id)
    ]


def user_count(username: str | None = None) -> int:
    query = select(func.count()).select_from(User)
    if username:
        query = query.where(func.lower(User.username) == username.lower())
    return db.session.scalar(query)


def fail_times(username: str, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Unauthorized):
            service.authenticate(username, WRONG)


# ---- create_user ----------------------------------------------------------------------


def test_create_user_stores_normalised_fields_and_a_bcrypt_hash(admin):
    user = service.create_user(
        admin, new_user_data(username="  Asha.K ", email=" Asha@Clinic.TEST ")
    )
    db.session.flush()
    stored = db.session.get(User, user.id)
    assert stored.username == "asha.k"
    assert stored.email == "asha@clinic.test"
    assert stored.role == Role.RECEPTION
    assert stored.is_active is True
    assert stored.token_version == 1
    assert stored.password_hash.startswith("$2")
    assert "a-long-password" not in stored.password_hash
    assert service.password_matches(stored, "a-long-password")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"username": "ab"}, "username"),
        ({"username": "a" * 41}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "-dash-first"}, "username"),
        ({"username": "semi;colon"}, "username"),
        ({"username": ""}, "username"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "two@@at.test"}, "email"),
        ({"email": ""}, "email"),
        ({"full_name": ""}, "full_name"),
        ({"password": "seven77"}, "password"),
        ({"password": ""}, "password"),
        ({"password": "x" * 73}, "password"),
        ({"role": "NURSE"}, "role"),
        ({"role": ""}, "role"),
        ({"role": "DOCTOR"}, "registration_number"),
        ({"role": "DOCTOR", "registration_number": "   "}, "registration_number"),
    ],
)
def test_create_user_rejects_bad_fields_naming_them(admin, changes, field):
    before, audited = user_count(), len(audits("USER_CREATED"))
    with pytest.raises(InvalidInput) as caught:
        service.create_user(admin, new_user_data(**changes))
    assert field in caught.value.fields
    assert caught.value.status == 422
    assert user_count() == before
    assert len(audits("USER_CREATED")) == audited


def test_create_user_names_every_bad_field_at_once(admin):
    with pytest.raises(InvalidInput) as caught:
        service.create_user(admin, new_user_data(username="x", email="nope", password="short"))
    assert {"username", "email", "password"} <= set(caught.value.fields)


def test_password_of_exactly_eight_characters_is_accepted(admin):
    user = service.create_user(admin, new_user_data(password="eight888"))
    assert service.password_matches(user, "eight888")


def test_doctor_with_registration_number_is_created(admin):
    user = service.create_user(
        admin, new_user_data(role="doctor", registration_number="MMC 2011/04/1234")
    )
    assert user.role == Role.DOCTOR
    assert user.registration_number == "MMC 2011/04/1234"


@pytest.mark.parametrize("taken", ["asha.k", "ASHA.K", "Asha.K"])
def test_duplicate_username_is_a_conflict_whatever_the_case(admin, taken):
    service.create_user(admin, new_user_data())
    audited = len(audits("USER_CREATED"))
    with pytest.raises(Conflict) as caught:
        service.create_user(admin, new_user_data(username=taken, email="other@clinic.test"))
    assert caught.value.code == "username_taken"
    assert "username" in caught.value.fields
    assert user_count("asha.k") == 1
    assert len(audits("USER_CREATED")) == audited


def test_duplicate_email_is_a_conflict_whatever_the_case(admin):
    service.create_user(admin, new_user_data())
    with pytest.raises(Conflict) as caught:
        service.create_user(admin, new_user_data(username="asha2", email="ASHA@clinic.Test"))
    assert caught.value.code == "email_taken"
    assert "email" in caught.value.fields
    assert user_count("asha2") == 0


def test_create_user_is_audited_without_the_password(admin):
    user = service.create_user(admin, new_user_data())
    (record,) = audits("USER_CREATED", user.id)
    assert record["resource"] == {"type": "user", "id": user.id}
    assert record["user"]["id"] == admin.id
    assert record["changes"]["old"] is None
    assert record["changes"]["new"]["username"] == "asha.k"
    assert record["changes"]["new"]["role"] == "RECEPTION"
    text = json.dumps(record)
    assert "a-long-password" not in text
    assert "password" not in text
    assert user.password_hash not in text


# ---- update_user -----------------------------------------------------------------------


def test_role_change_is_saved_and_audited_with_old_and_new(admin, reception):
    service.update_user(admin, reception.id, {"role": "PHARMACIST"})
    db.session.expire_all()
    assert db.session.get(User, reception.id).role == Role.PHARMACIST
    (record,) = audits("USER_ROLE_CHANGED")
    assert record["changes"] == {"old": {"role": "RECEPTION"}, "new": {"role": "PHARMACIST"}}
    assert record["resource"] == {"type": "user", "id": reception.id}
    assert record["user"]["id"] == admin.id


def test_changing_a_role_to_doctor_needs_a_registration_number(admin, reception):
    with pytest.raises(InvalidInput) as caught:
        service.update_user(admin, reception.id, {"role": "DOCTOR"})
    assert "registration_number" in caught.value.fields
    service.update_user(admin, reception.id, {"role": "DOCTOR", "registration_number": "R-1"})
    assert db.session.get(User, reception.id).role == Role.DOCTOR


def test_deactivation_ends_tokens_and_is_audited(admin, reception):
    service.update_user(admin, reception.id, {"is_active": False})
    db.session.expire_all()
    stored = db.session.get(User, reception.id)
    assert stored.is_active is False
    assert stored.token_version == 2
    (record,) = audits("USER_DEACTIVATED")
    assert record["changes"] == {"old": {"is_active": True}, "new": {"is_active": False}}
    assert service.user_for_session(f"{reception.id}:1") is None


def test_details_change_is_audited_as_update(admin, reception):
    service.update_user(admin, reception.id, {"full_name": "Renamed Person"})
    (record,) = audits("USER_UPDATED")
    assert record["changes"]["new"] == {"full_name": "Renamed Person"}
    assert record["changes"]["old"]["full_name"] != "Renamed Person"


def test_admin_cannot_deactivate_self(admin):
    make_user(Role.ADMIN)  # not the last admin: the rule is about oneself
    with pytest.raises(Forbidden) as caught:
        service.update_user(admin, admin.id, {"is_active": False})
    assert caught.value.code == "cannot_deactivate_self"
    db.session.expire_all()
    assert db.session.get(User, admin.id).is_active is True
    assert audits("USER_DEACTIVATED") == []


def test_last_active_admin_cannot_be_demoted(admin):
    with pytest.raises(Conflict) as caught:
        service.update_user(admin, admin.id, {"role": "RECEPTION"})
    assert caught.value.code == "last_admin"
    db.session.expire_all()
    assert db.session.get(User, admin.id).role == Role.ADMIN


def test_admin_may_be_demoted_while_another_admin_is_active(admin):
    other = make_user(Role.ADMIN)
    service.update_user(admin, other.id, {"role": "RECEPTION"})
    db.session.expire_all()
    assert db.session.get(User, other.id).role == Role.RECEPTION
    # now `admin` is the only one left
    with pytest.raises(Conflict) as caught:
        service.update_user(admin, admin.id, {"role": "PHARMACIST"})
    assert caught.value.code == "last_admin"


def test_last_active_admin_cannot_be_deactivated(admin):
    other = make_user(Role.ADMIN)
    service.update_user(admin, other.id, {"is_active": False})
    # `other`'s request was already in flight when they were deactivated
    with pytest.raises(Conflict) as caught:
        service.update_user(other, admin.id, {"is_active": False})
    assert caught.value.code == "last_admin"
    db.session.expire_all()
    assert db.session.get(User, admin.id).is_active is True


def test_a_deactivated_admin_does_not_count_as_the_last_one(admin):
    other = make_user(Role.ADMIN)
    service.update_user(admin, other.id, {"is_active": False})
    with pytest.raises(Conflict):
        service.update_user(admin, admin.id, {"role": "DOCTOR", "registration_number": "R"})


def test_password_reset_bumps_token_version_and_changes_the_password(admin, reception):
    service.update_user(admin, reception.id, {"password": "brand-new-secret"})
    db.session.expire_all()
    stored = db.session.get(User, reception.id)
    assert stored.token_version == 2
    assert service.authenticate(reception.username, "brand-new-secret").id == reception.id
    with pytest.raises(Unauthorized):
        service.authenticate(reception.username, PASSWORD)
    (record,) = audits("USER_PASSWORD_RESET")
    assert record["resource"] == {"type": "user", "id": reception.id}
    text = json.dumps(audits())
    assert "brand-new-secret" not in text
    assert PASSWORD not in text
    assert stored.password_hash not in text


def test_password_reset_needs_eight_characters(admin, reception):
    with pytest.raises(InvalidInput) as caught:
        service.update_user(admin, reception.id, {"password": "short"})
    assert "password" in caught.value.fields
    db.session.expire_all()
    assert db.session.get(User, reception.id).token_version == 1


def test_update_rejects_unknown_or_fixed_fields(admin, reception):
    for data in ({"username": "renamed"}, {"token_version": 9}, {"password_hash": "x"}):
        with pytest.raises(InvalidInput) as caught:
            service.update_user(admin, reception.id, data)
        assert set(data) <= set(caught.value.fields)
    db.session.expire_all()
    assert db.session.get(User, reception.id).username == reception.username


def test_update_of_unknown_user_is_not_found(admin):
    with pytest.raises(NotFound):
        service.update_user(admin, 999_999, {"full_name": "Nobody Here"})


def test_update_to_a_taken_email_is_a_conflict(admin, reception, doctor):
    with pytest.raises(Conflict) as caught:
        service.update_user(admin, reception.id, {"email": doctor.email.upper()})
    assert caught.value.code == "email_taken"
    # the caller's transaction is still usable, as after a taken username on create
    db.session.expire_all()
    assert db.session.get(User, reception.id).email == reception.email


def test_get_and_list_users(admin, reception, doctor):
    assert service.get_user(doctor.id).id == doctor.id
    with pytest.raises(NotFound):
        service.get_user(123_456)
    page = service.list_users(role=Role.DOCTOR)
    assert [u.id for u in page.items] == [doctor.id]
    assert service.list_users(q=reception.username.upper()).items == [reception]
    assert service.list_users().total == 3
    with pytest.raises(InvalidInput) as caught:
        service.list_users(per_page=500)
    assert "per_page" in caught.value.fields


# ---- authenticate ----------------------------------------------------------------------


def test_right_password_signs_in_and_is_audited(reception):
    user = service.authenticate(reception.username, PASSWORD)
    assert user.id == reception.id
    (record,) = audits("USER_LOGIN")
    assert record["user"]["id"] == reception.id
    assert record["resource"] == {"type": "user", "id": reception.id}


def test_username_is_matched_without_regard_to_case_or_spaces(reception):
    assert service.authenticate(f"  {reception.username.upper()} ", PASSWORD).id == reception.id


def _login_error(username: str, password: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        service.authenticate(username, password)
    return caught.value


def test_wrong_password_unknown_user_and_deactivated_user_look_the_same(admin, reception):
    gone = make_user(Role.PHARMACIST)
    service.update_user(admin, gone.id, {"is_active": False})
    errors = [
        _login_error(reception.username, WRONG),
        _login_error("no-such-person", PASSWORD),
        _login_error(gone.username, PASSWORD),
        _login_error(gone.username, WRONG),
        _login_error(reception.username, ""),
    ]
    assert {(e.code, e.message, e.status) for e in errors} == {
        ("invalid_credentials", "Wrong username or password.", 401)
    }
    failures = audits("USER_LOGIN_FAILED")
    assert [f["user"]["name"] for f in failures] == [
        reception.username,
        "no-such-person",
        gone.username,
        gone.username,
        reception.username,
    ]
    assert all(f["user"]["id"] is None for f in failures)
    assert failures[0]["resource"] == {"type": "user", "id": reception.id}
    assert failures[1]["resource"] == {"type": "user", "id": None}
    assert audits("USER_LOGIN") == []


def test_audit_never_holds_a_password_or_hash(admin, reception):
    service.authenticate(reception.username, PASSWORD)
    _login_error(reception.username, "typed-secret-guess")
    service.update_user(admin, reception.id, {"password": "another-secret-1"})
    service.create_user(admin, new_user_data(password="creation-secret"))
    actions = {a["action"] for a in audits()}
    assert {"USER_LOGIN", "USER_LOGIN_FAILED", "USER_PASSWORD_RESET", "USER_CREATED"} <= actions
    text = json.dumps(audits())
    for secret in (PASSWORD, "typed-secret-guess", "another-secret-1", "creation-secret"):
        assert secret not in text
    assert "$2b$" not in text
    assert "password_hash" not in text


def test_unknown_username_costs_as_much_as_a_real_one(app):
    """The answer must not reveal whether the username exists, not even by its timing:
    an unknown name is checked against a hash of the same cost as a real user's."""
    rounds = app.config["BCRYPT_ROUNDS"]
    app.config["BCRYPT_ROUNDS"] = 10  # about 50 ms a check: far above the noise
    try:
        real = make_user(Role.RECEPTION)

        def cost(*usernames: str) -> float:
            samples = []
            for username in usernames:
                start = time.perf_counter()
                with pytest.raises(Unauthorized):
                    service.authenticate(username, WRONG)
                samples.append(time.perf_counter() - start)
            return min(samples)  # the least disturbed by other work on the machine

        cost("nobody-0")  # the first call may build what it compares against
        known = cost(real.username, real.username, real.username)
        unknown = cost("nobody-1", "nobody-2", "nobody-3")
    finally:
        app.config["BCRYPT_ROUNDS"] = rounds
    # a cheaper check for unknown names would be some 60 times faster
    assert unknown > known * 0.3, (known, unknown)


# ---- throttling --------------------------------------------------------------------------


def test_five_failures_lock_the_username_even_for_the_right_password(reception):
    fail_times(reception.username, 5)
    with pytest.raises(TooManyAttempts) as caught:
        service.authenticate(reception.username, PASSWORD)
    error = caught.value
    assert error.code == "too_many_attempts"
    assert error.status == 429
    assert error.retry_after == 2
    assert "Too many failed sign-ins" in error.message
    locked = [a for a in audits("USER_LOGIN_FAILED") if a["changes"]["new"]["reason"] == "locked"]
    assert len(locked) == 1
    assert audits("USER_LOGIN") == []


def test_four_failures_do_not_lock(reception):
    fail_times(reception.username, 4)
    assert service.authenticate(reception.username, PASSWORD).id == reception.id


def test_lock_is_per_username(reception, doctor):
    fail_times(reception.username, 5)
    with pytest.raises(TooManyAttempts):
        service.authenticate(reception.username.upper(), PASSWORD)
    assert service.authenticate(doctor.username, PASSWORD).id == doctor.id


def test_unknown_username_is_locked_like_a_real_one():
    fail_times("ghost-user", 5)
    with pytest.raises(TooManyAttempts):
        service.authenticate("ghost-user", WRONG)


def test_success_before_the_fifth_failure_clears_the_count(reception):
    fail_times(reception.username, 4)
    service.authenticate(reception.username, PASSWORD)
    fail_times(reception.username, 4)  # eight failures in all, but never five in a row
    assert service.authenticate(reception.username, PASSWORD).id == reception.id


def test_the_hold_after_five_failures_is_a_short_delay_not_a_long_lock(reception):
    fail_times(reception.username, 5)
    with pytest.raises(TooManyAttempts) as caught:
        service.authenticate(reception.username, PASSWORD)
    assert caught.value.retry_after == 2  # the first delay: 2 seconds, not 15 minutes
    time.sleep(2.1)
    assert service.authenticate(reception.username, PASSWORD).id == reception.id


def test_each_failure_past_five_doubles_the_delay_up_to_the_cap(app, reception):
    assert [service.login_delay(n) for n in (4, 5, 6, 9, 10, 11, 50)] == [0, 2, 4, 32, 60, 60, 60]
    app.config["LOGIN_DELAY_MAX_SECONDS"], cap = 4, app.config["LOGIN_DELAY_MAX_SECONDS"]
    try:
        fail_times(reception.username, 5)
        time.sleep(2.1)
        fail_times(reception.username, 1)  # the sixth failure: the next waits 4 seconds
        with pytest.raises(TooManyAttempts) as caught:
            service.authenticate(reception.username, PASSWORD)
        assert 3 <= caught.value.retry_after <= 4
        time.sleep(4.1)
        fail_times(reception.username, 1)  # the seventh: 8 seconds, but capped at 4
        with pytest.raises(TooManyAttempts) as caught:
            service.authenticate(reception.username, PASSWORD)
        assert 3 <= caught.value.retry_after <= 4
    finally:
        app.config["LOGIN_DELAY_MAX_SECONDS"] = cap


def test_a_known_device_is_not_held_by_a_guesser_elsewhere(reception):
    """The real user on the browser they signed in from before gets in at once, however
    many wrong passwords someone else sends for their username."""
    fail_times(reception.username, 5)
    with pytest.raises(TooManyAttempts):
        service.authenticate(reception.username, PASSWORD)
    user = service.authenticate(reception.username, PASSWORD, known_device=True)
    assert user.id == reception.id
    # and the success clears the count for everyone
    assert service.authenticate(reception.username, PASSWORD).id == reception.id


def test_a_known_devices_wrong_passwords_still_count(reception):
    for _ in range(5):
        with pytest.raises(Unauthorized):
            service.authenticate(reception.username, WRONG, known_device=True)
    with pytest.raises(TooManyAttempts):
        service.authenticate(reception.username, PASSWORD)
