"""Request plumbing: security headers, error shapes, OpenAPI and docs, /health, settings."""

from __future__ import annotations

import json
import re
import secrets
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.http import parse_set_header

from qure import create_app
from qure.core import outbox
from qure.core.models import OutboxEvent
from qure.extensions import db, mongo, redis_store
from tests.helpers import PASSWORD, bearer, make_patient, sign_in

TEMPLATES = Path(__file__).resolve().parents[2] / "qure" / "templates"


# ---- security headers ----------------------------------------------------------------


def _csp_directives(value: str) -> dict[str, list[str]]:
    out = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def assert_security_headers(response, where: str) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy")
    assert csp, f"{where}: no Content-Security-Policy"
    directives = _csp_directives(csp)
    script_src = directives.get("script-src", directives.get("default-src"))
    assert script_src, f"{where}: CSP has neither script-src nor default-src"
    assert "'unsafe-inline'" not in script_src, where
    assert "'unsafe-eval'" not in script_src, where
    assert directives.get("frame-ancestors") == ["'none'"], where
    assert directives.get("object-src") == ["'none'"], where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy"), where


def test_every_kind_of_response_carries_security_headers(app, client, reception):
    token = bearer(client, reception)
    responses = {
        "login page": client.get("/login"),
        "API JSON": client.get("/api/v1/auth/me", headers=token),
        "API 401": client.get("/api/v1/auth/me"),
        "API 404": client.get("/api/v1/no-such-thing"),
        "HTML 404": client.get("/no-such-page"),
        "static file": client.get("/static/css/qure.css"),
        "health": client.get("/health"),
        "redirect": client.get("/home"),
        "openapi": client.get("/api/v1/openapi.json"),
    }
    assert responses["API JSON"].status_code == 200
    assert responses["static file"].status_code == 200
    for where, response in responses.items():
        assert_security_headers(response, where)
        response.close()


def test_signed_in_page_carries_security_headers(app, client, reception):
    sign_in(client, reception)
    response = client.get("/patients/")
    assert response.status_code == 200
    assert_security_headers(response, "patients page")


def test_api_answers_are_not_cached(app, client, reception):
    response = client.get("/api/v1/auth/me", headers=bearer(client, reception))
    assert "no-store" in parse_set_header(response.headers["Cache-Control"])


def test_no_template_has_inline_script(app):
    offenders = []
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert templates
    for path in templates:
        text = path.read_text()
        for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", text, re.S | re.I):
            attributes, body = match.groups()
            if "src=" not in attributes or body.strip():
                offenders.append(f"{path.relative_to(TEMPLATES)}: {match.group(0)[:60]!r}")
        for match in re.finditer(r"\son[a-z]+\s*=|javascript:", text, re.I):
            offenders.append(f"{path.relative_to(TEMPLATES)}: inline handler {match.group(0)!r}")
    assert offenders == [], "\n".join(offenders)


def test_session_cookie_is_httponly_and_samesite_lax(app, client, reception):
    response = sign_in(client, reception)
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, response.headers.getlist("Set-Cookie")
    attributes = {part.strip().split("=")[0].lower(): part for part in cookies[-1].split(";")}
    assert "httponly" in attributes
    assert attributes["samesite"].strip().lower() == "samesite=lax"


# ---- error shapes --------------------------------------------------------------------


def test_unknown_api_path_is_404_json(app, client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.is_json
    assert response.json["error"]["code"] == "not_found"
    assert response.json["error"]["message"]


def test_wrong_method_on_api_is_405_json(app, client):
    response = client.delete("/api/v1/auth/login")
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_wrong_method_on_a_page_is_405_html(app, client):
    response = client.delete("/login")
    assert response.status_code == 405
    assert response.mimetype == "text/html"
    assert "POST" in response.headers["Allow"]


def test_malformed_json_is_400_json(app, client):
    response = client.post("/api/v1/auth/login", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_request"


def test_invalid_field_is_422_with_fields(app, client, reception):
    response = client.post(
        "/api/v1/patients",
        json={"full_name": "X", "date_of_birth": "not-a-date", "sex": "F", "phone": "1"},
        headers=bearer(client, reception),
    )
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "invalid_input"
    assert "date_of_birth" in error["fields"]


def test_unknown_html_page_is_404_html(app, client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Not found" in response.get_data(as_text=True)


def test_unknown_record_is_404_json(app, client, reception):
    response = client.get("/api/v1/patients/999999", headers=bearer(client, reception))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "patient_not_found"


# ---- OpenAPI and the offline docs ----------------------------------------------------


def test_openapi_document(app, client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = json.loads(response.get_data(as_text=True))
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/patients" in spec["paths"]
    assert "/api/v1/auth/login" in spec["paths"]
    assert "post" in spec["paths"]["/api/v1/auth/login"]
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert {"bearerAuth": []} in spec["security"]


def test_api_docs_page_uses_only_local_files(app, client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "http://" not in page and "https://" not in page
    references = re.findall(r'(?:src|href)="([^"]+)"', page)
    vendor = [ref for ref in references if ref.startswith("/static/vendor/swagger-ui/")]
    assert any(ref.endswith(".js") for ref in vendor), references
    assert any(ref.endswith(".css") for ref in vendor), references
    for ref in references:
        assert ref.startswith("/static/"), ref
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.get_data(), ref
        asset.close()
    assert 'data-spec-url="/api/v1/openapi.json"' in page


# ---- /health -------------------------------------------------------------------------


def test_health_all_ok(app, client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {
        "status": "ok",
        "checks": {
            "postgres": "ok",
            "redis": "ok",
            "mongo": "ok (embedded)",
            "outbox_backlog": 0,
        },
    }


def test_health_reports_the_outbox_backlog(app, client, reception):
    make_patient(reception)
    assert client.get("/health").json["checks"]["outbox_backlog"] == 2
    outbox.relay()
    assert client.get("/health").json["checks"]["outbox_backlog"] == 0


@contextmanager
def other_app(app, **config):
    """A second app built by create_app. The extension objects are shared by every app in
    the process, so the test app's Redis and document-store clients are put back after."""
    saved_redis = redis_store.client
    saved_mongo = (mongo.client, mongo.db, mongo.embedded)
    base = {
        "TESTING": True,
        "QURE_ENV": "testing",
        "DATABASE_URL": app.config["DATABASE_URL"],
        "REDIS_URL": app.config["REDIS_URL"],
        "MONGO_URL": None,
        "SECRET_KEY": "another-test-only-secret-key-0123456789abcdef",
        "DEMO_ACCOUNTS_FILE": app.config["DEMO_ACCOUNTS_FILE"],
    }
    try:
        yield create_app({**base, **config})
    finally:
        redis_store.client = saved_redis
        mongo.client, mongo.db, mongo.embedded = saved_mongo


def test_health_with_redis_down_is_degraded(app):
    with other_app(app, REDIS_URL="redis://127.0.0.1:1/0") as broken:
        response = broken.test_client().get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "degraded"
    checks = response.json["checks"]
    assert checks["redis"].startswith("error: ")
    assert checks["postgres"] == "ok"
    assert isinstance(checks["outbox_backlog"], int)


# Committing mode: the test session is bound to the test app's connection, which would
# answer for the broken app; here every app uses its own engine, as in production.
@pytest.mark.concurrency
def test_health_with_postgres_down_is_503(app):
    with other_app(app, DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/x") as broken:
        response = broken.test_client().get("/health")
    assert response.status_code == 503
    checks = response.json["checks"]
    assert checks["postgres"].startswith("error")
    assert checks["outbox_backlog"] is None
    assert checks["redis"] == "ok"
    assert response.json["status"] == "degraded"


# ---- settings ------------------------------------------------------------------------


@pytest.mark.parametrize("weak", ["dev", "change-me", "short-but-not-weak-1234", ""])
def test_production_refuses_a_weak_secret_key(app, weak):
    with (
        pytest.raises(RuntimeError, match="SECRET_KEY"),
        other_app(app, QURE_ENV="production", SECRET_KEY=weak),
    ):
        pass


def test_production_refuses_a_weak_jwt_secret(app):
    key = secrets.token_urlsafe(36)
    with (
        pytest.raises(RuntimeError, match="JWT_SECRET_KEY"),
        other_app(app, QURE_ENV="production", SECRET_KEY=key, JWT_SECRET_KEY="dev"),
    ):
        pass


def login_addresses() -> list[str]:
    """The address recorded by each successful sign-in's audit record."""
    rows = db.session.scalars(select(OutboxEvent))
    return [row.payload["ip"] for row in rows if row.payload["action"] == "USER_LOGIN"]


def test_behind_a_proxy_the_audit_trail_records_the_client_address(app, reception):
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    with other_app(app, PROXY_HOPS=1) as proxied:
        proxied.test_client_class = app.test_client_class
        body = {"username": reception.username, "password": PASSWORD}
        answer = proxied.test_client().post("/api/v1/auth/login", json=body, headers=forwarded)
    assert answer.status_code == 200
    ips = login_addresses()
    assert ips == ["203.0.113.7"]


def test_without_the_proxy_setting_forwarded_headers_are_ignored(client, reception):
    body = {"username": reception.username, "password": PASSWORD}
    client.post("/api/v1/auth/login", json=body, headers={"X-Forwarded-For": "203.0.113.7"})
    ips = login_addresses()
    assert ips == ["127.0.0.1"]


def test_production_starts_with_a_long_random_key(app):
    key = secrets.token_urlsafe(36)
    assert len(key) == 48
    with other_app(app, QURE_ENV="production", SECRET_KEY=key) as prod:
        assert prod.config["SECRET_KEY"] == key
        assert prod.config["SESSION_COOKIE_SECURE"] is True
        assert prod.config["SESSION_COOKIE_HTTPONLY"] is True
        response = prod.test_client().get("/login")
    assert response.status_code == 200


def test_development_cookie_is_not_secure_and_jwt_key_defaults(app):
    assert app.config["SESSION_COOKIE_SECURE"] is False
    assert app.config["JWT_SECRET_KEY"] == app.config["SECRET_KEY"]
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")


def test_a_value_the_database_cannot_store_is_422_not_500(client, admin):
    """The last net under validation: a NUL character PostgreSQL cannot store."""
    headers = bearer(client, admin)
    response = client.post(
        "/api/v1/auth/register",
        json={
            "username": "nul.user",
            "email": "nul@test.local",
            "full_name": "Nul\x00Name",
            "role": "RECEPTION",
            "password": "long-enough-1",
        },
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_input"
    listed = client.get("/api/v1/users?q=nul", headers=headers)
    assert listed.json["total"] == 0


def test_pages_seen_while_signed_in_are_never_cached(client, reception):
    patient = make_patient(reception, full_name="Cached Person")
    assert "no-store" not in client.get("/static/css/qure.css").headers.get("Cache-Control", "")
    sign_in(client, reception)
    for url in ("/home", "/patients/", f"/patients/{patient.id}"):
        assert client.get(url).headers["Cache-Control"] == "no-store", url


# ---- Server-Timing (QURE_SERVER_TIMING, for benchmarks) --------------------------------

TIMING = re.compile(r"^app;dur=(\d+\.\d\d), cpu;dur=(\d+\.\d\d)$")


def test_server_timing_is_off_by_default(client):
    assert "Server-Timing" not in client.get("/health").headers


def test_server_timing_says_what_a_request_cost(app):
    with other_app(app, SERVER_TIMING=True) as timed:
        web = timed.test_client()
        health = web.get("/health")
        refused = web.post("/api/v1/auth/login", data=b"\xff", content_type="application/json")
    for response in (health, refused):
        found = TIMING.match(response.headers["Server-Timing"])
        assert found, response.headers["Server-Timing"]
        wall, cpu = float(found.group(1)), float(found.group(2))
        assert 0 < wall < 5000
        assert 0 <= cpu <= wall + 1
    assert refused.status_code == 400  # a body the edge refuses is timed too


# ---- pooled connections: checked only when they may be dead -------------------------------


@contextmanager
def one_connection_pool(app):
    """An engine of its own with a pool of one connection, set up as the app's is (the
    app's own pool is shared by the other tests, which a killed connection would break)."""
    from sqlalchemy import create_engine

    from qure.core.db import ping_idle_connections

    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], pool_size=1, max_overflow=0)
    ping_idle_connections(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def _kill_backend(app, pid: int) -> None:
    """pg_terminate_backend, waiting (up to 5 s) until the backend has gone."""
    import psycopg

    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("+psycopg", "")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def _pings(engine, monkeypatch) -> list:
    """The pings the pool sends from now on (SQLAlchemy's own ping, counted)."""
    sent: list = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection):
        sent.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return sent


def test_a_connection_that_died_while_idle_is_replaced_before_use(app, monkeypatch):
    from qure.core import db as core_db

    with one_connection_pool(app) as engine:
        dead = _backend_pid(engine)
        _kill_backend(app, dead)  # a database restart, or a firewall's idle timeout
        monkeypatch.setattr(core_db, "IDLE_PING_SECONDS", 0.0)  # it sat idle long enough
        assert _backend_pid(engine) != dead  # the pool checked it, dropped it, connected anew


def test_a_connection_idle_for_long_is_pinged_though_its_socket_says_nothing(app, monkeypatch):
    """A firewall that dropped an idle connection sends no word: past IDLE_PING_SECONDS a
    connection is pinged all the same."""
    from qure.core import db as core_db

    with one_connection_pool(app) as engine:
        pings = _pings(engine, monkeypatch)
        first = _backend_pid(engine)
        monkeypatch.setattr(core_db, "IDLE_PING_SECONDS", 0.0)
        assert _backend_pid(engine) == first  # alive: kept
        assert len(pings) == 1


def test_a_connection_in_steady_use_is_not_pinged(app, monkeypatch):
    with one_connection_pool(app) as engine:
        pings = _pings(engine, monkeypatch)
        first = _backend_pid(engine)
        assert [_backend_pid(engine) for _ in range(5)] == [first] * 5
        assert pings == []  # back in the pool a moment ago, live: no round trip spent on it


def test_a_connection_the_server_hung_up_on_is_replaced_before_use(app, monkeypatch):
    """A database restart or pg_terminate_backend closes the backend's socket: seen at
    checkout without a round trip, so no statement meets the dead connection."""
    with one_connection_pool(app) as engine:
        pings = _pings(engine, monkeypatch)
        dead = _backend_pid(engine)
        _kill_backend(app, dead)
        assert _backend_pid(engine) != dead  # no error: checked, dropped, connected anew
        assert len(pings) == 1  # the socket showed it: only then a ping, which failed
