"""Roles are declared once per route: the url_map test, and what anonymous callers get."""

from __future__ import annotations

from urllib.parse import urlsplit

from qure.core.roles import ALL_ROLES, PUBLIC_ENDPOINTS, Role, declared_roles
from tests.helpers import bearer, sign_in

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _path(rule) -> str:
    """The rule's URL with every variable filled with 1."""
    path = rule.rule
    for name in rule.arguments:
        for converter in ("int:", "string:", "path:", ""):
            path = path.replace(f"<{converter}{name}>", "1")
    assert "<" not in path, f"cannot fill {rule.rule}"
    return path


def _rules(app):
    return sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))


def test_every_route_declares_its_roles_or_is_public(app):
    offenders = []
    for rule in _rules(app):
        view = app.view_functions[rule.endpoint]
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        if declared_roles(view) is None:
            offenders.append(f"{rule.rule} ({rule.endpoint})")
    assert offenders == [], "routes declaring no roles:\n  " + "\n  ".join(offenders)


def test_declared_roles_are_real_roles(app):
    for rule in _rules(app):
        roles = declared_roles(app.view_functions[rule.endpoint])
        if roles is not None:
            assert roles, f"{rule.endpoint} allows nobody"
            assert set(roles) <= ALL_ROLES, f"{rule.endpoint}: {roles}"


def test_every_public_endpoint_exists(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    missing = sorted(PUBLIC_ENDPOINTS - endpoints)
    assert missing == [], f"PUBLIC_ENDPOINTS names endpoints that do not exist: {missing}"


def test_public_endpoints_declare_no_roles(app):
    # A public endpoint that also declared roles would be a contradiction in the list.
    for endpoint in PUBLIC_ENDPOINTS:
        assert declared_roles(app.view_functions[endpoint]) is None, endpoint


def test_admin_pages_and_user_management_are_admin_only(app):
    for rule in _rules(app):
        if rule.rule.startswith(("/admin", "/api/v1/users")) or rule.endpoint == (
            "api_auth.register"
        ):
            roles = declared_roles(app.view_functions[rule.endpoint])
            assert roles == frozenset({Role.ADMIN}), f"{rule.rule}: {roles}"


def test_every_api_route_needs_a_token(app, client):
    checked = []
    for rule in _rules(app):
        if not rule.rule.startswith("/api/v1") or rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        for method in sorted(rule.methods - IGNORED_METHODS):
            response = client.open(_path(rule), method=method, json={})
            where = f"{method} {rule.rule}"
            assert response.status_code == 401, f"{where}: {response.status_code}"
            assert response.is_json, where
            error = response.json["error"]
            assert error["code"] == "unauthorized", where
            assert error["message"], where
            checked.append(where)
    assert len(checked) >= 10  # the walk really found the API


def test_api_rejects_a_session_cookie(app, client, reception):
    sign_in(client, reception)
    assert client.get("/patients/").status_code == 200
    response = client.get("/api/v1/patients")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_api_rejects_a_forged_token(app, client):
    response = client.get("/api/v1/auth/me", headers={"Authorization": "Bearer not.a.real-token"})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_html_routes_send_anonymous_users_to_login(app, client):
    checked = []
    for rule in _rules(app):
        view = app.view_functions[rule.endpoint]
        if rule.rule.startswith("/api/") or declared_roles(view) is None:
            continue
        if "GET" not in rule.methods:
            continue
        path = _path(rule)
        response = client.get(path)
        assert response.status_code == 302, f"GET {path}: {response.status_code}"
        target = urlsplit(response.headers["Location"])
        assert target.path == "/login", f"GET {path} -> {response.headers['Location']}"
        checked.append(path)
    assert "/home" in checked and "/patients/1" in checked
    assert "/admin/users/1" in checked


def test_login_page_is_reachable_anonymously(app, client):
    response = client.get("/login")
    assert response.status_code == 200
    assert 'name="csrf_token"' in response.get_data(as_text=True)


def test_wrong_role_gets_403_on_html_and_api(app, client, reception):
    sign_in(client, reception)
    assert client.get("/admin/users").status_code == 403
    response = client.get("/api/v1/users", headers=bearer(client, reception))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
