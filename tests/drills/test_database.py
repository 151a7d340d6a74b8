"""Fault drill: a database that refuses changes (read-only, disk full), is lost or cannot
be reached answers a clear 503 `database_unavailable`, in the API's error shape and on the
error page, never a traceback or a 500; nothing is half-saved, and the next request works.

Every error here is a real PostgreSQL error through the real driver: connections made
read-only (`SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY`, SQLSTATE 25006), a
trigger the test installs that raises disk_full (53100) on a patient's INSERT or at
COMMIT, a backend killed with pg_terminate_backend, a port where no server listens.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time

import psycopg
import pytest
from sqlalchemy import event, func, select

from qure.core.errors import DatabaseUnavailable
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from qure.patients.models import Patient
from tests.drills.apps import drill_app, libpq, tagged, terminate_backends
from tests.helpers import (
    PASSWORD,
    bearer,
    form_post,
    make_patient,
    make_user,
    page_text,
    sign_in,
)

pytestmark = pytest.mark.concurrency  # the drill apps' connections must see committed rows

API = "/api/v1/patients"
PAGE = "/patients/new"
PERSON = {
    "full_name": "Kavita Raghunathan",
    "date_of_birth": "1979-03-02",
    "sex": "F",
    "phone": "+91 98860 43217",
    "confirm_new": True,
}
FORM = {
    "full_name": "Suresh Venkataraman",
    "date_of_birth": "1966-11-23",
    "age_years": "",
    "sex": "M",
    "phone": "+91 99001 27364",
    "email": "",
    "address": "",
    "blood_group": "",
    "allergies": "",
    "chronic_conditions": "",
    "ec_name": "",
    "ec_phone": "",
    "ec_relation": "",
}
# What would identify them, were it to reach the log.
PRIVATE = ("Kavita", "Raghunathan", "Suresh", "Venkataraman", "98860", "43217", "27364")
LOG_LINE = re.compile(
    r"database unavailable \((refuses changes|unreachable)\): (\w+)/(\w+) SQLSTATE ([0-9A-Z-]+)"
    r" on (\w+) (\S+) \(request \w+\)$"
)


def registered() -> list[str]:
    """The names of the patients on file, read on the suite's own connection."""
    names = list(db.session.scalars(select(Patient.full_name).order_by(Patient.id)))
    db.session.commit()
    return names


def outbox_rows() -> int:
    count = db.session.scalar(select(func.count(OutboxEvent.id)))
    db.session.commit()
    return count


def refused(response, message: str, retry_after: int) -> None:
    """The API's 503: the error shape of every other error, the plain message, Retry-After."""
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.json == {
        "error": {
            "code": "database_unavailable",
            "message": message,
            "details": {"retry_after": retry_after},
        }
    }
    assert response.headers["Retry-After"] == str(retry_after)
    assert response.headers["Cache-Control"] == "no-store"


def refused_page(response, message: str) -> str:
    """The error page's 503 with the plain message: no traceback, no "went wrong"."""
    assert response.status_code == 503, response.get_data(as_text=True)[:500]
    page = page_text(response)
    assert "Not available just now" in page
    assert message in page
    assert "Traceback" not in page and "Something went wrong" not in page
    assert response.headers["Retry-After"]
    return page


def logged(caplog) -> list[tuple[str, ...]]:
    """The 503 lines the app logged, as (kind, class, driver class, SQLSTATE, method, rule);
    and no patient's name or phone anywhere in the log."""
    for private in PRIVATE:
        assert private not in caplog.text
    lines = [r.getMessage() for r in caplog.records if r.name == "qure.core.http"]
    found = [LOG_LINE.match(line) for line in lines]
    assert all(found), lines
    return [match.groups() for match in found]


# ---- read-only -------------------------------------------------------------------------


@pytest.fixture
def read_only_app(app):
    """A drill app on the suite's database, and a switch that makes its connections
    read-only (or read-write again): the pool is emptied, and each new connection is
    opened with that characteristic, as a standby's or a read-only database's are."""
    url = tagged(app.config["SQLALCHEMY_DATABASE_URI"], "qure-drill-read-only")
    with drill_app(app, url) as drill:
        with drill.app_context():
            engine = db.engine
        state = {"read_only": False}

        @event.listens_for(engine, "connect")
        def _characteristics(dbapi_connection, _record) -> None:
            if state["read_only"]:
                with dbapi_connection.cursor() as cursor:
                    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                dbapi_connection.commit()

        def switch(read_only: bool) -> None:
            state["read_only"] = read_only
            engine.dispose()

        yield drill, switch


def test_a_read_only_database_refuses_changes_with_a_503_and_still_reads(read_only_app, caplog):
    drill, read_only = read_only_app
    reception = make_user(Role.RECEPTION)
    on_file = make_patient(reception, full_name="Meera Nair", phone="+919845012345")
    api = drill.test_client()
    headers = bearer(api, reception)
    browser = drill.test_client()
    sign_in(browser, reception)
    before = outbox_rows()

    read_only(True)
    with caplog.at_level(logging.INFO):
        answer = api.post(API, json=PERSON, headers=headers)
        page = form_post(browser, PAGE, FORM)  # the form itself (a GET) still opens

    refused(answer, DatabaseUnavailable.REFUSING, 30)
    shown = refused_page(page, DatabaseUnavailable.REFUSING)
    assert reception.full_name in shown  # still signed in: the database still reads
    assert registered() == ["Meera Nair"]
    assert outbox_rows() == before
    assert logged(caplog) == [
        ("refuses changes", "InternalError", "ReadOnlySqlTransaction", "25006", "POST", API),
        ("refuses changes", "InternalError", "ReadOnlySqlTransaction", "25006", "POST", PAGE),
    ]
    # What only reads goes on working: the API, the search page, the patient's page.
    found = api.get(f"{API}/{on_file.id}", headers=headers)
    assert found.status_code == 200 and found.json["full_name"] == "Meera Nair"
    listing = browser.get("/patients/?q=Nair")
    assert listing.status_code == 200 and "Meera Nair" in page_text(listing)
    assert browser.get(f"/patients/{on_file.id}").status_code == 200
    # Signing in writes its audit record: refused too, while those signed in read on.
    signing_in = {"username": reception.username, "password": PASSWORD}
    refused(api.post("/api/v1/auth/login", json=signing_in), DatabaseUnavailable.REFUSING, 30)
    refused_page(form_post(drill.test_client(), "/login", signing_in), DatabaseUnavailable.REFUSING)

    read_only(False)
    assert api.post(API, json=PERSON, headers=headers).status_code == 201
    saved = form_post(browser, PAGE, FORM)
    assert saved.status_code == 302, page_text(saved)[:500]
    assert registered() == ["Meera Nair", PERSON["full_name"], FORM["full_name"]]


# ---- disk full, and a genuine bug --------------------------------------------------------

RAISES = """
CREATE FUNCTION drill_raise() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'could not extend file "base/16384/2619": No space left on device'
    USING ERRCODE = '{sqlstate}';
END $$;
"""
TRIGGERS = {
    # On the INSERT itself (the flush), and at COMMIT: a deferred constraint trigger runs
    # then, as a WAL write that fails for want of space would.
    "insert": "CREATE TRIGGER drill_raise BEFORE INSERT ON patients"
    " FOR EACH ROW EXECUTE FUNCTION drill_raise()",
    "commit": "CREATE CONSTRAINT TRIGGER drill_raise AFTER INSERT ON patients"
    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION drill_raise()",
}


@pytest.fixture
def patients_raise(app):
    """Install a trigger making every patient INSERT fail with a SQLSTATE, at the insert
    or at the commit; dropped after (and by the test, to see the next request work)."""
    url = libpq(app.config["SQLALCHEMY_DATABASE_URI"])

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER IF EXISTS drill_raise ON patients")
            conn.execute("DROP FUNCTION IF EXISTS drill_raise()")

    def install(sqlstate: str, when: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(RAISES.format(sqlstate=sqlstate))
            conn.execute(TRIGGERS[when])

    try:
        yield install, drop
    finally:
        drop()


@pytest.mark.parametrize("when", ["insert", "commit"])
def test_a_full_disk_is_a_503_and_nothing_is_saved(client, patients_raise, when, caplog):
    install, drop = patients_raise
    reception = make_user(Role.RECEPTION)
    headers = bearer(client, reception)
    browser = client.application.test_client()
    sign_in(browser, reception)
    before = outbox_rows()
    install("53100", when)

    with caplog.at_level(logging.INFO):
        answer = client.post(API, json=PERSON, headers=headers)
        page = form_post(browser, PAGE, FORM)

    refused(answer, DatabaseUnavailable.REFUSING, 30)
    refused_page(page, DatabaseUnavailable.REFUSING)
    assert registered() == []
    assert outbox_rows() == before
    assert [line[:4] for line in logged(caplog)] == [
        ("refuses changes", "OperationalError", "DiskFull", "53100")
    ] * 2
    drop()
    assert client.post(API, json=PERSON, headers=headers).status_code == 201
    assert form_post(browser, PAGE, FORM).status_code == 302
    assert registered() == [PERSON["full_name"], FORM["full_name"]]


@pytest.mark.parametrize("sqlstate", ["XX000", "42703"])  # internal_error, undefined_column
def test_any_other_database_error_is_still_a_500(client, patients_raise, sqlstate):
    install, _drop = patients_raise
    reception = make_user(Role.RECEPTION)
    headers = bearer(client, reception)
    browser = client.application.test_client()
    sign_in(browser, reception)
    install(sqlstate, "insert")

    answer = client.post(API, json=PERSON, headers=headers)
    page = form_post(browser, PAGE, FORM)

    assert answer.status_code == 500
    assert answer.json["error"]["code"] == "server_error"
    assert page.status_code == 500 and "Something went wrong" in page_text(page)
    assert registered() == []


# ---- a lost connection, a server that does not answer ---------------------------------------

LOST = "qure-drill-lost"


@pytest.fixture
def tagged_app(app):
    """A drill app on the suite's database whose connections are named LOST."""
    with drill_app(app, tagged(app.config["SQLALCHEMY_DATABASE_URI"], LOST)) as drill:
        yield drill


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_use(app, tagged_app):
    """The server hangs up on pooled connections (a restart, pg_terminate_backend) a
    moment after they were used: the next requests get a live connection, not an error."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    reception = make_user(Role.RECEPTION)
    patient = make_patient(reception, full_name="Meera Nair", phone="+919845012345")
    api = tagged_app.test_client()
    headers = bearer(api, reception)
    assert api.get(f"{API}/{patient.id}", headers=headers).status_code == 200

    assert terminate_backends(url, LOST) >= 1
    assert api.get(f"{API}/{patient.id}", headers=headers).status_code == 200
    assert terminate_backends(url, LOST) >= 1
    assert api.post(API, json=PERSON, headers=headers).status_code == 201
    assert registered() == ["Meera Nair", PERSON["full_name"]]


def _waiting_on_a_lock(url: str, application_name: str) -> bool:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = %s AND wait_event_type = 'Lock'",
            (application_name,),
        ).fetchone()
    return row[0] > 0


def test_a_connection_lost_in_the_middle_of_a_request_is_a_503_then_all_is_well(
    app, tagged_app, caplog
):
    """The request's backend is killed while it waits for a row lock: that request gets
    the 503, its change is not saved, and the next request works."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    reception = make_user(Role.RECEPTION)
    patient = make_patient(reception, full_name="Meera Nair", phone="+919845012345")
    api = tagged_app.test_client()
    headers = bearer(api, reception)
    answers = []
    change = {"address": "14 FC Road, Pune"}

    with psycopg.connect(libpq(url)) as holder:  # holds the patient's row locked
        holder.execute("SELECT 1 FROM patients WHERE id = %s FOR UPDATE", (patient.id,))
        worker = threading.Thread(
            target=lambda: answers.append(
                api.patch(f"{API}/{patient.id}", json=change, headers=headers)
            )
        )
        with caplog.at_level(logging.INFO):
            worker.start()
            deadline = time.monotonic() + 10
            while not _waiting_on_a_lock(url, LOST):
                assert time.monotonic() < deadline, "the request never waited on the lock"
                time.sleep(0.02)
            assert terminate_backends(url, LOST) == 1
            worker.join(10)
        holder.rollback()

    assert not worker.is_alive()
    refused(answers[0], DatabaseUnavailable.AWAY, 5)
    assert [line[:4] for line in logged(caplog)] == [
        ("unreachable", "OperationalError", "AdminShutdown", "57P01")
    ]
    db.session.expire_all()
    assert db.session.get(Patient, patient.id).address is None
    db.session.commit()
    again = api.patch(f"{API}/{patient.id}", json=change, headers=headers)
    assert again.status_code == 200 and again.json["address"] == change["address"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_database_that_cannot_be_reached_is_a_503_on_the_api_and_the_pages(app, client, caplog):
    reception = make_user(Role.RECEPTION)
    headers = bearer(client, reception)
    sign_in(client, reception)
    session_cookie = client.get_cookie("session").value
    nowhere = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/qure?connect_timeout=2"

    with drill_app(app, nowhere) as away, caplog.at_level(logging.INFO):
        api = away.test_client()
        answer = api.get(f"{API}?q=Nair", headers=headers)
        browser = away.test_client()
        browser.set_cookie("session", session_cookie)
        page = browser.get("/patients/?q=Nair")
        health = browser.get("/health")  # a page that reads no user (but the cookie names one)

    refused(answer, DatabaseUnavailable.AWAY, 5)
    shown = refused_page(page, DatabaseUnavailable.AWAY)
    assert "Sign out" not in shown  # drawn as for nobody: the user's row cannot be read
    assert health.status_code == 503 and health.json["checks"]["postgres"] != "ok"
    assert health.headers["Cache-Control"] == "no-store"  # a signed-in browser, as far as we know
    kinds = {line[:4] for line in logged(caplog)}
    assert kinds == {("unreachable", "OperationalError", "OperationalError", "-")}


def test_a_server_that_accepts_and_never_answers_is_a_503_after_the_connect_timeout(
    app, client, monkeypatch
):
    """A hung server, or a proxy with nothing behind it: the TCP connection opens and
    nothing comes back. libpq would wait for ever; the connect timeout makes it a 503."""
    from qure.core import db as core_db

    monkeypatch.setattr(core_db, "CONNECT_TIMEOUT_SECONDS", 2)  # psycopg's least
    headers = bearer(client, make_user(Role.RECEPTION))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/qure"
        with drill_app(app, url) as hung:
            began = time.monotonic()
            answer = hung.test_client().get(f"{API}?q=Nair", headers=headers)
            took = time.monotonic() - began

    refused(answer, DatabaseUnavailable.AWAY, 5)
    assert 1.9 < took < 6


def test_the_connect_timeout_is_the_urls_own_or_the_environments_when_they_give_one(
    monkeypatch,
):
    from qure.core.db import CONNECT_TIMEOUT_SECONDS, with_connect_timeout

    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    plain = "postgresql+psycopg://qure:p%40ss@db:5432/qure"
    assert with_connect_timeout(plain) == f"{plain}?connect_timeout={CONNECT_TIMEOUT_SECONDS}"
    own = "postgresql+psycopg://qure@db/qure?connect_timeout=30&sslmode=require"
    assert with_connect_timeout(own) == own
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "20")
    assert with_connect_timeout(plain) == plain
