"""Patient data never reaches the application logs, and client-supplied ids are bounded."""

from __future__ import annotations

import logging
import runpy
import socket
import threading
import urllib.request
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import request
from gunicorn.config import Config
from gunicorn.glogging import Logger
from sqlalchemy import select
from werkzeug.serving import make_server

from qure import create_app
from qure.core import jobs, logs
from qure.core.models import OutboxEvent
from qure.extensions import db, mongo, redis_store
from tests.helpers import bearer

ROOT = Path(__file__).resolve().parent.parent.parent

PATIENT = {
    "full_name": "Rukmini Ramaswamy",
    "date_of_birth": "1971-02-03",
    "sex": "F",
    "phone": "+919845012345",
    "allergies": ["Penicillin"],
}


def test_registering_and_finding_a_patient_logs_nothing_about_them(client, reception, caplog):
    headers = bearer(client, reception)
    with caplog.at_level(logging.DEBUG):
        created = client.post("/api/v1/patients", json=PATIENT, headers=headers)
        found = client.get("/api/v1/patients?q=rukmini", headers=headers)
        bad = client.post("/api/v1/patients", json={**PATIENT, "phone": "98450"}, headers=headers)

    assert created.status_code == 201
    assert found.json["total"] == 1
    assert bad.status_code == 422
    logged = caplog.text
    for secret in ("Rukmini", "Ramaswamy", "9845012345", "98450", "Penicillin", "1971-02-03"):
        assert secret not in logged


def test_an_unexpected_error_is_logged_without_its_message(app, caplog):
    """A database error's message carries the row's values; only type and frames are logged."""
    clients = (redis_store.client, mongo.client, mongo.db)
    other = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": app.config["DATABASE_URL"],
            "REDIS_URL": app.config["REDIS_URL"],
            "MONGO_URL": None,
            "SECRET_KEY": app.config["SECRET_KEY"],
        }
    )

    def explode():
        phone = request.args["phone"]  # data arrives in variables, as from a database row
        raise RuntimeError(f"Key (phone)=({phone}) already exists")

    other.add_url_rule("/api/v1/explode", "explode", explode)
    try:
        with caplog.at_level(logging.ERROR):
            response = other.test_client().get("/api/v1/explode?phone=%2B919845012345")
    finally:
        redis_store.client, mongo.client, mongo.db = clients

    assert response.status_code == 500
    assert response.json["error"]["code"] == "server_error"
    assert "9845012345" not in response.get_data(as_text=True)
    assert "unhandled RuntimeError on GET /api/v1/explode" in caplog.text
    assert "explode" in caplog.text  # the frame names where it happened
    assert "9845012345" not in caplog.text


def test_a_client_request_id_is_kept_only_when_it_looks_like_an_id(client, reception):
    headers = bearer(client, reception)
    client.post(
        "/api/v1/patients",
        json=PATIENT,
        headers={**headers, "X-Request-ID": "desk-7:42"},
    )
    client.post(
        "/api/v1/patients",
        json={**PATIENT, "phone": "+919845099999"},
        headers={**headers, "X-Request-ID": "<script>" + "x" * 300},
    )

    rows = db.session.scalars(
        select(OutboxEvent)
        .where(OutboxEvent.payload["action"].astext == "PATIENT_CREATED")
        .order_by(OutboxEvent.id)
    ).all()
    assert rows[0].payload["request_id"] == "desk-7:42"
    assert len(rows[1].payload["request_id"]) == 32  # a fresh id replaced the junk
    assert "script" not in rows[1].payload["request_id"]


@pytest.fixture
def served(app):
    """The app on a real port, served by werkzeug as `flask serve` serves it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(5)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _raw_request(port: int, line: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(line.encode() + b"\r\nHost: localhost\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_the_servers_request_lines_leave_the_query_string_out(served, caplog):
    """Request lines are off by default (werkzeug at WARNING); an operator who turns them
    on sees each request's path, never what a search sent. A request line the server
    cannot parse is logged at ERROR, always: without the line."""
    opener = urllib.request.build_opener(_NoRedirects)
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        try:
            opener.open(f"http://127.0.0.1:{served}/patients/?q=Rukmini+Ramaswamy&page=2")
        except urllib.error.HTTPError as answer:
            assert answer.code == 302  # to the sign-in, the page asked for in its query
        malformed = _raw_request(served, "GET /patients/?q=Rukmini Ramaswamy HTTP/1.1")
        unversioned = _raw_request(served, "GET /patients/?q=Rukmini Ramaswamy")

    assert malformed.startswith(b"HTTP/1.1 400") or malformed.startswith(b"HTTP/1.0 400")
    assert b" 400 " in unversioned.split(b"\r\n")[0]
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    # (a 302's line is styled for a terminal: green)
    assert any("GET /patients/?[redacted] HTTP/1.1" in line and " 302 " in line for line in lines)
    assert any(r.levelno == logging.ERROR for r in caplog.records if r.name == "werkzeug")
    assert "Rukmini" not in caplog.text and "Ramaswamy" not in caplog.text


@pytest.mark.parametrize(
    ("message", "logged"),
    [
        (
            '127.0.0.1 - - [x] "GET /patients/?q=Ravi+Kumar&page=2 HTTP/1.1" 200 -',
            '127.0.0.1 - - [x] "GET /patients/?[redacted] HTTP/1.1" 200 -',
        ),
        (  # styled for a terminal, a quote in the query
            '"\x1b[33mGET /visits/icd10?q=O"Brien HTTP/1.1\x1b[0m" 404 -',
            '"\x1b[33mGET /visits/icd10?[redacted] HTTP/1.1\x1b[0m" 404 -',
        ),
        (  # a line with no version, as the server quotes it
            '127.0.0.1 - - [x] "GET /patients/?q=Rukmini Ramaswamy" 400 -',
            '127.0.0.1 - - [x] "GET /patients/?[redacted]" 400 -',
        ),
        (
            "code 400, message Bad request version ('Ramaswamy')",
            "code 400, message Bad request version ([redacted])",
        ),
        (
            "Invalid request from ip=10.0.0.9: Invalid HTTP Version: 'Ramaswamy HTTP/1.1'",
            "Invalid request from ip=10.0.0.9: Invalid HTTP Version: [redacted]",
        ),
        (
            "Error handling request GET /patients/?q=9845012345",
            "Error handling request GET /patients/?[redacted]",
        ),
        (  # gunicorn's %(r)s and the referer %(f)s
            '10.0.0.9 "GET /a?q=x HTTP/1.1" 200 "https://c.example/p/?q=y" "UA"',
            '10.0.0.9 "GET /a?[redacted] HTTP/1.1" 200 "https://c.example/p/?[redacted]" "UA"',
        ),
        ('"GET /static/css/qure.css HTTP/1.1" 200 -', '"GET /static/css/qure.css HTTP/1.1" 200 -'),
        ("Is the worker running? It's been a while.", "Is the worker running? It's been a while."),
    ],
)
def test_the_request_log_filter_redacts_queries_and_unparsed_request_lines(message, logged):
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, "%s", (message,), None)
    assert logs.RequestLogFilter().filter(record) is True  # redacted, never dropped
    assert record.getMessage() == logged


def test_the_app_puts_the_filter_on_each_servers_logger_once(app):
    def filters() -> list[int]:
        return [
            sum(isinstance(f, logs.RequestLogFilter) for f in logging.getLogger(name).filters)
            for name in logs.REQUEST_LOGGERS
        ]

    assert filters() == [1, 1, 1]  # by create_app
    logs.install()  # as the next create_app does
    assert filters() == [1, 1, 1]


@pytest.fixture
def gunicorn_log(tmp_path):
    """gunicorn's logger as gunicorn.conf.py sets it up, its access log on (to a file)."""
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    cfg = Config()
    cfg.set("access_log_format", settings["access_log_format"])
    cfg.set("accesslog", str(tmp_path / "access.log"))
    cfg.set("errorlog", str(tmp_path / "error.log"))
    logger = Logger(cfg)
    yield logger, tmp_path / "access.log"
    for log in (logger.error_log, logger.access_log):
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()


def _gunicorn_request(logger: Logger) -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/patients/?q=Rukmini+Ramaswamy",
        "PATH_INFO": "/patients/",
        "QUERY_STRING": "q=Rukmini+Ramaswamy",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.9",
        "HTTP_REFERER": "https://clinic.example/patients/?q=9845012345",
    }
    response = SimpleNamespace(status="200 OK", sent=1834, headers=[])
    logger.access(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=12))


def test_gunicorns_access_log_as_configured_writes_the_path_alone(app, gunicorn_log):
    logger, written = gunicorn_log
    _gunicorn_request(logger)
    line = written.read_text()
    assert '"GET /patients/" 200 1834 12ms' in line
    assert "Rukmini" not in line and "9845012345" not in line and "?" not in line


def test_gunicorns_access_log_with_the_request_line_and_referer_leaves_queries_out(
    app, gunicorn_log
):
    """An operator may change the format to the combined one (%(r)s, %(f)s): the filter
    the app puts on gunicorn's access logger still leaves the queries out."""
    logger, written = gunicorn_log
    logger.cfg.set("access_log_format", '%(h)s "%(r)s" %(s)s "%(f)s"')
    _gunicorn_request(logger)
    line = written.read_text()
    assert '"GET /patients/?[redacted] HTTP/1.1" 200' in line
    assert '"https://clinic.example/patients/?[redacted]"' in line
    assert "Rukmini" not in line and "9845012345" not in line


@jobs.job
def failing_with_a_phone(phone: str) -> None:
    """A job whose exception's message holds a patient's value (as a constraint's DETAIL)."""
    raise ValueError(f"Key (phone)=({phone}) already exists")


def test_a_failed_job_is_logged_without_its_message(app, caplog):
    """The worker's log names the failed job, the exception's type and its frames; the
    message, which can hold a patient's value, is kept only with the job in Redis."""
    job_id = jobs.queue().enqueue(failing_with_a_phone, "+919845012345").id  # no retries
    worker = jobs.ThreadWorker([jobs.queue()], connection=redis_store.client)
    with caplog.at_level(logging.DEBUG):
        worker.work(burst=True, logging_level="DEBUG")

    failed = jobs.status(job_id)
    assert failed is not None and failed.status == "failed"
    assert "9845012345" in failed.error  # its status still tells whoever started it
    assert f"job {job_id} (tests.core.test_privacy.failing_with_a_phone) failed" in caplog.text
    assert "ValueError" in caplog.text and "in failing_with_a_phone" in caplog.text
    assert "9845012345" not in caplog.text
