"""Sign-in pages in a browser's shoes: CSRF on, session cookie, each role's home."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from qure.auth import service
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from tests.helpers import PASSWORD, csrf_token, form_post, make_user, sign_in

WRONG_MESSAGE = "Wrong username or password."


def new_browser(app):
    """A second browser, with its own cookies."""
    return app.test_client()


def try_sign_in(client, username: str, password: str = PASSWORD, url: str = "/login"):
    return form_post(client, url, {"username": username, "password": password}, page="/login")


def signed_in(client) -> bool:
    """Whether the browser's session still opens a signed-in page."""
    response = client.get("/home")
    return not (response.status_code == 302 and "/login" in response.headers["Location"])


def nav_labels(html: str) -> list[str]:
    match = re.search(r'<nav aria-label="Main">(.*?)</nav>', html, re.S)
    assert match, "no main navigation on the page"
    return re.findall(r"<a [^>]*>([^<]+)</a>", match.group(1))


def heading(html: str) -> str:
    match = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert match
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


# ---- the sign-in page --------------------------------------------------------------------


def test_login_page_shows_the_form(client):
    response = client.get("/login")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>Sign in</h1>" in html
    assert 'name="username"' in html
    assert re.search(r'<input[^>]*name="password"[^>]*type="password"', html)
    assert 'name="csrf_token"' in html
    assert response.headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" in response.headers


def test_root_sends_a_stranger_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login")


def test_signed_out_visitor_is_sent_to_login(client):
    for url in ("/home", "/admin/", "/admin/users"):
        response = client.get(url)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


def test_wrong_password_shows_the_message_with_401(client, reception):
    response = try_sign_in(client, reception.username, "not-the-password")
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert WRONG_MESSAGE in html
    assert "not-the-password" not in html
    assert not signed_in(client)


def test_unknown_user_gets_the_same_answer(client):
    response = try_sign_in(client, "nobody-here")
    assert response.status_code == 401
    assert WRONG_MESSAGE in response.get_data(as_text=True)


def test_deactivated_user_cannot_sign_in(client, admin, reception):
    service.update_user(admin, reception.id, {"is_active": False})
    db.session.commit()
    response = try_sign_in(client, reception.username)
    assert response.status_code == 401
    assert WRONG_MESSAGE in response.get_data(as_text=True)
    assert not signed_in(client)


def test_empty_form_is_refused_with_422(client):
    response = try_sign_in(client, "", "")
    assert response.status_code == 422
    assert "This field is required." in response.get_data(as_text=True)
    assert not signed_in(client)


def test_five_failures_lock_the_username(client, reception):
    for _ in range(5):
        assert try_sign_in(client, reception.username, "not-the-password").status_code == 401
    response = try_sign_in(client, reception.username)  # right password
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.get_data(as_text=True)
    assert 0 < int(response.headers["Retry-After"]) <= 900
    assert not signed_in(client)


def test_login_without_csrf_token_is_400(client, reception):
    client.get("/login")
    response = client.post("/login", data={"username": reception.username, "password": PASSWORD})
    assert response.status_code == 400
    assert not signed_in(client)


def test_login_with_a_forged_csrf_token_is_400(client, reception):
    client.get("/login")
    response = client.post(
        "/login",
        data={"username": reception.username, "password": PASSWORD, "csrf_token": "forged"},
    )
    assert response.status_code == 400
    assert not signed_in(client)


def test_session_cookie_is_httponly_and_lax(client, reception):
    response = sign_in(client, reception)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


# ---- each role's home --------------------------------------------------------------------


def test_admin_lands_on_the_admin_home(client, admin):
    response = sign_in(client, admin)
    assert response.headers["Location"] == "/home"
    home = client.get("/home")
    assert home.status_code == 302
    assert home.headers["Location"] == "/admin/"
    page = client.get("/admin/")
    assert page.status_code == 200
    assert heading(page.get_data(as_text=True)) == "Administration"


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.RECEPTION, "Front desk"),
        (Role.DOCTOR, "Good day, {name}"),
        (Role.PHARMACIST, "Pharmacy"),
    ],
)
def test_each_role_lands_on_its_own_home(client, role, expected):
    user = make_user(role)
    response = sign_in(client, user)
    assert response.headers["Location"] == "/home"
    page = client.get("/home")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert heading(html) == expected.format(name=user.full_name)
    assert user.full_name in html  # the header names who is signed in


def test_the_three_homes_differ(client):
    headings = set()
    for role in (Role.RECEPTION, Role.DOCTOR, Role.PHARMACIST):
        browser = new_browser(client.application)
        sign_in(browser, make_user(role, full_name="Same Name"))
        headings.add(heading(browser.get("/home").get_data(as_text=True)))
    assert len(headings) == 3


def test_navigation_shows_only_what_the_role_may_use(app, admin, reception, doctor, pharmacist):
    seen = {}
    for user in (admin, reception, doctor, pharmacist):
        browser = new_browser(app)
        sign_in(browser, user)
        seen[user.role] = nav_labels(browser.get("/patients/").get_data(as_text=True))
    assert "Register patient" in seen[Role.RECEPTION]
    assert "Users" not in seen[Role.RECEPTION]
    for role in (Role.DOCTOR, Role.PHARMACIST):
        assert "Register patient" not in seen[role]
        assert "Users" not in seen[role]
        assert "Patients" in seen[role]
    assert {"Register patient", "Users"} <= set(seen[Role.ADMIN])


def test_reception_cannot_open_admin_pages(client, reception):
    sign_in(client, reception)
    for url in ("/admin/", "/admin/users", "/admin/users/new"):
        response = client.get(url)
        assert response.status_code == 403
        assert "Not for your role" in response.get_data(as_text=True)


# ---- signing out -------------------------------------------------------------------------


def test_sign_out_needs_post_with_csrf_and_ends_the_session(client, reception):
    sign_in(client, reception)
    assert client.get("/logout").status_code == 405
    assert signed_in(client)
    assert client.post("/logout").status_code == 400  # no CSRF token
    assert signed_in(client)
    response = form_post(client, "/logout", {}, page="/home")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert "You are signed out." in client.get("/login").get_data(as_text=True)
    assert not signed_in(client)


def test_a_copied_session_cookie_stops_working_after_sign_out(client, app, reception):
    sign_in(client, reception)
    copied = client.get_cookie("session").value
    thief = new_browser(app)
    thief.set_cookie("session", copied)
    assert signed_in(thief)

    form_post(client, "/logout", {}, page="/home")

    assert not signed_in(thief)


def test_sign_out_is_audited(client, reception):
    sign_in(client, reception)
    form_post(client, "/logout", {}, page="/home")
    db.session.expire_all()
    actions = [r.payload["action"] for r in db.session.scalars(select(OutboxEvent))]
    assert actions.count("USER_LOGOUT") == 1


# ---- where sign-in leads -----------------------------------------------------------------


def test_login_returns_to_the_page_asked_for(client, reception):
    first = client.get("/patients/?q=ravi")
    assert first.status_code == 302
    target = first.headers["Location"]
    response = form_post(
        client, target, {"username": reception.username, "password": PASSWORD}, page=target
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/patients/?q=ravi"


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/phish",
        "//evil.example/phish",
        "/\\evil.example/phish",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "evil.example",
    ],
)
def test_login_refuses_to_redirect_off_site(client, reception, next_url):
    token = csrf_token(client, "/login")
    response = client.post(
        "/login",
        query_string={"next": next_url},
        data={"username": reception.username, "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    # what a browser would make of it: a path on this site, nothing that reads as a host
    assert location.startswith("/")
    assert not location.startswith("//")
    assert "\\" not in location and "\t" not in location
    assert urlsplit(location).netloc == ""
    if next_url.startswith(("https://", "//", "javascript:", "http:", "evil")):
        assert location == "/home"


# ---- sessions that must end --------------------------------------------------------------


def test_deactivated_users_open_session_stops_working(app, client, admin, reception):
    sign_in(client, reception)
    assert signed_in(client)
    service.update_user(admin, reception.id, {"is_active": False})
    db.session.commit()
    response = client.get("/patients/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_password_reset_by_admin_ends_the_users_session(app, admin, reception):
    staff = new_browser(app)
    sign_in(staff, reception)
    assert signed_in(staff)
    boss = new_browser(app)
    sign_in(boss, admin)
    response = form_post(
        boss,
        f"/admin/users/{reception.id}/password",
        {"password": "fresh-password-1", "confirm": "fresh-password-1"},
        page=f"/admin/users/{reception.id}",
    )
    assert response.status_code == 302
    assert not signed_in(staff)
    # the admin's own session goes on
    assert boss.get("/admin/users").status_code == 200
    sign_in(staff, reception, "fresh-password-1")
    assert signed_in(staff)


# ---- throttling that cannot lock staff out -------------------------------------------------


def from_address(app, address: str):
    """A browser at another address (the request's remote address, as ProxyFix gives it)."""
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def test_one_address_trying_many_usernames_is_stopped(app, reception):
    guesser = from_address(app, "203.0.113.9")
    limit = app.config["LOGIN_ADDRESS_MAX_FAILURES"]
    for n in range(limit):
        assert try_sign_in(guesser, f"guess-{n}", "not-the-password").status_code == 401
    response = try_sign_in(guesser, reception.username)  # even a right password, from there
    assert response.status_code == 429
    assert "Too many failed sign-ins from this address" in response.get_data(as_text=True)
    assert 500 < int(response.headers["Retry-After"]) <= 600
    assert not signed_in(guesser)
    # the staff at the clinic's own address are not held by it
    assert try_sign_in(from_address(app, "198.51.100.20"), reception.username).status_code == 302


def test_a_guesser_cannot_keep_the_user_out_of_their_own_browser(app, reception):
    desk = from_address(app, "198.51.100.20")
    sign_in(desk, reception)  # the front-desk browser is now known for this username
    assert desk.get_cookie("qure_device") is not None
    form_post(desk, "/logout", {}, page="/home")
    guesser = from_address(app, "203.0.113.9")
    for _ in range(8):
        try_sign_in(guesser, reception.username, "not-the-password")
    assert try_sign_in(guesser, reception.username).status_code == 429
    assert try_sign_in(from_address(app, "198.51.100.21"), reception.username).status_code == 429
    # the real user, at their own browser, gets in at once
    assert try_sign_in(desk, reception.username).status_code == 302
    assert signed_in(desk)


def test_a_forged_or_foreign_device_cookie_does_not_lift_the_delay(app, reception, doctor):
    other = from_address(app, "198.51.100.22")
    sign_in(other, doctor)  # known for the doctor, not for the reception user
    other.set_cookie("qure_device", other.get_cookie("qure_device").value)
    for _ in range(5):
        try_sign_in(other, reception.username, "not-the-password")
    assert try_sign_in(other, reception.username).status_code == 429
    other.set_cookie("qure_device", "forged." + "x" * 40)
    assert try_sign_in(other, reception.username).status_code == 429


def test_refused_attempts_are_audited(app, reception):
    guesser = from_address(app, "203.0.113.9")
    for n in range(app.config["LOGIN_ADDRESS_MAX_FAILURES"] + 1):
        try_sign_in(guesser, f"guess-{n}", "not-the-password")
    db.session.expire_all()
    reasons = [
        row.payload["changes"]["new"]["reason"]
        for row in db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        if row.payload["action"] == "USER_LOGIN_FAILED"
    ]
    assert reasons[-2:] == ["invalid", "address_limited"]
    last = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id.desc())).first()
    assert last.payload["ip"] == "203.0.113.9"


# ---- a new session at sign-in --------------------------------------------------------------


def test_nothing_set_before_sign_in_survives_it(client, reception):
    """Session fixation: whoever handed this browser its session cookie (with values they
    chose) must not share the session that signing in opens."""
    client.get("/login")
    with client.session_transaction() as planted:
        planted["planted"] = "by-someone-else"
        planted["display_key"] = "0" * 64
        csrf_before = planted["csrf_token"]
    before = client.get_cookie("session").value
    sign_in(client, reception)
    after = client.get_cookie("session").value
    assert after != before
    with client.session_transaction() as session:
        assert "planted" not in session
        assert "display_key" not in session
        assert session.get("csrf_token") != csrf_before
        assert session["_user_id"].startswith(f"{reception.id}:")
    # the cookie planted before sign-in opens nothing
    stranger = client.application.test_client()
    stranger.set_cookie("session", before)
    assert not signed_in(stranger)
    assert signed_in(client)
