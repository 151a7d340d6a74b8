"""The edge refuses what it cannot read, before any handler runs: a body that is not
UTF-8 or not JSON, a lone surrogate, nesting beyond a sane depth, a body over the limit.
Each is sent to every route that changes state, signed in and not; none may answer 5xx."""

from __future__ import annotations

import re

import pytest

from qure.core.http import MAX_JSON_DEPTH
from tests.helpers import bearer, sign_in

WRITES = {"POST", "PATCH", "PUT", "DELETE"}
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

BAD_JSON = {
    "a lone surrogate escape": (b'{"username":"\\ud800","password":"x"}', 400, "not a character"),
    "a surrogate escape in a key": (b'{"\\udfff":"x"}', 400, "not a character"),
    "a surrogate as raw bytes": (b'{"username":"\xed\xa0\x80","password":"x"}', 400, "UTF-8"),
    "bytes that are not UTF-8": (b'{"username":"\xff","password":"x"}', 400, "UTF-8"),
    "arrays a thousand deep": (b"[" * 1000 + b"]" * 1000, 400, "nested deeper"),
    "objects a thousand deep": (b'{"a":' * 1000 + b"1" + b"}" * 1000, 400, "nested deeper"),
    "one level too deep": (
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
        400,
        "nested deeper",
    ),
    "text that is not JSON": (b'{"username": "x", ', 400, "not valid JSON"),
}
CODES = {400: "bad_request", 413: "too_large"}


def _writing_routes(app) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & WRITES):
            routes.append((method, re.sub(r"<(?:[^:<>]+:)?[^<>]+>", "1", rule.rule)))
    return sorted(set(routes))


@pytest.fixture
def callers(app, client, admin):
    """(name, client, headers for /api routes): nobody, and an admin signed in both ways."""
    signed_in = app.test_client()
    sign_in(signed_in, admin)
    return [("anonymous", client, {}), ("admin", signed_in, bearer(client, admin))]


def _send(caller, method: str, path: str, body: bytes, headers: dict):
    _, http, api_headers = caller
    extra = api_headers if path.startswith("/api/") else {}
    return http.open(path, method=method, data=body, headers={**headers, **extra})


def _assert_refused(response, path: str, status: int, words: str, where: str) -> None:
    assert response.status_code == status, f"{where}: {response.status_code}"
    if path.startswith("/api/"):
        error = response.json["error"]
        assert error["code"] == CODES[status], where
        assert words in error["message"], where
    else:
        assert response.mimetype == "text/html", where
        assert words in response.get_data(as_text=True), where


def test_writing_routes_are_found(app):
    routes = _writing_routes(app)
    assert ("POST", "/api/v1/auth/login") in routes
    assert ("POST", "/login") in routes
    assert ("DELETE", "/api/v1/patients/1") in routes
    assert len(routes) > 40


@pytest.mark.parametrize("kind", list(BAD_JSON))
def test_every_writing_route_refuses_unreadable_json(app, callers, kind):
    body, status, words = BAD_JSON[kind]
    for method, path in _writing_routes(app):
        for caller in callers:
            response = _send(caller, method, path, body, JSON)
            _assert_refused(response, path, status, words, f"{caller[0]} {method} {path}")


def test_every_writing_route_refuses_a_body_over_the_limit(app, callers):
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 2 * 1024 * 1024
    too_big = b'{"q":"' + b"x" * limit + b'"}'
    form = b"q=" + b"x" * limit
    # The import uploads take more (IMPORT_MAX_BYTES, core.http.body_limit): their own
    # tests send a file over that limit (tests/imports).
    larger = {"/imports", "/api/v1/imports/patients", "/api/v1/imports/medicines"}
    for method, path in _writing_routes(app):
        if path in larger:
            continue
        for caller in callers:
            where = f"{caller[0]} {method} {path}"
            response = _send(caller, method, path, too_big, JSON)
            _assert_refused(response, path, 413, "too large", where)
            response = _send(caller, method, path, form, FORM)
            _assert_refused(response, path, 413, "too large", where)


def test_a_surrogate_in_a_form_or_query_string_is_never_a_server_error(app, callers):
    # Werkzeug leaves percent-escapes that are not UTF-8 as typed, so they reach the
    # handler as plain text; it must still never answer 5xx.
    for method, path in _writing_routes(app):
        for caller in callers:
            response = _send(caller, method, path + "?q=%ED%A0%80", b"q=%ED%A0%80", FORM)
            assert response.status_code < 500, f"{caller[0]} {method} {path}"


def test_raw_bytes_that_are_not_utf8_in_the_query_string_are_refused(app, client):
    for path in ("/api/v1/auth/login", "/login"):
        response = client.post(
            path, data=b"{}", headers=JSON, environ_overrides={"QUERY_STRING": "q=\xed\xa0\x80"}
        )
        _assert_refused(response, path, 400, "not UTF-8", path)


def test_a_sane_body_still_reaches_the_handler(client, admin):
    nested = {"username": admin.username, "password": "wrong", "extra": [[["ok"]]]}
    response = client.post("/api/v1/auth/login", json=nested)
    assert response.status_code == 422  # the schema's own answer: unknown field
    assert "extra" in response.json["error"]["fields"]
