"""Test harness: real PostgreSQL and Redis (TEST_DATABASE_URL / TEST_REDIS_URL, otherwise
embedded servers in a temporary folder), mongomock for the document store.

Each test runs inside a transaction that is rolled back; Redis is flushed and the
document store is new for every test. Tests marked `concurrency` or `e2e` commit for real
(several connections must see each other's work); the tables are emptied after them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import mongomock
import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from qure import create_app
from qure.core import clock
from qure.core.roles import Role
from qure.extensions import db, mongo, redis_store
from tests.helpers import NOW, make_user

# SQLAlchemy's default, which the app's sessions use outside the rolled-back tests.
SESSION_JOIN_DEFAULT = "conditional_savepoint"
TABLES = (
    "imports",
    "receipt_bundles",
    "stock_alert_days",
    "h1_register",
    "dispensed_items",
    "dispensings",
    "batches",
    "day_closes",
    "credit_note_lines",
    "credit_notes",
    "payments",
    "invoice_lines",
    "invoices",
    "document_counters",
    "outbox",
    "prescription_items",
    "prescriptions",
    "visit_notes",
    "visits",
    "medicines",
    "queue_entries",
    "appointments",
    "slots",
    "clinic_settings",
    "patients",
    "users",
)


@pytest.fixture(scope="session")
def urls():
    """The test servers: TEST_DATABASE_URL / TEST_REDIS_URL, else embedded ones in a
    folder of this run's own. Not under pytest's basetemp: pytest deletes all but the last
    three of those, and a second pytest run started meanwhile would delete the folder of
    this run's live PostgreSQL (which then stops: "could not open pg_control")."""
    database = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not database or not redis_url:
        from qure import embedded

        folder = Path(tempfile.mkdtemp(prefix="qure-tests-"))
        # Registered before the servers start, so it runs after they stop (atexit is LIFO).
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        if not database:
            database = embedded.postgres_url(folder / "pg" / "data", "qure_test")
        if not redis_url:
            redis_url = embedded.redis_url(folder / "redis" / "test.rdb")
    return database, redis_url


@pytest.fixture(scope="session")
def app(urls, tmp_path_factory):
    database, redis_url = urls
    app = create_app(
        {
            "TESTING": True,
            "QURE_ENV": "testing",
            "DATABASE_URL": database,
            "REDIS_URL": redis_url,
            "MONGO_URL": None,
            "SECRET_KEY": "test-only-secret-key-that-is-long-enough-0123456789",
            "BCRYPT_ROUNDS": 4,
            "SERVER_NAME": None,
            "DEMO_ACCOUNTS_FILE": str(tmp_path_factory.mktemp("demo") / "demo_accounts.json"),
        }
    )
    app.test_client_class = Browser
    with app.app_context():
        from flask_migrate import upgrade

        db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        db.session.execute(text("DROP TYPE IF EXISTS user_role"))
        db.session.commit()
        upgrade()
    return app


def _fresh_stores() -> None:
    redis_store.client.flushdb()
    mongo.use_client(mongomock.MongoClient(tz_aware=True), "qure_test", embedded=True)


def _truncate() -> None:
    db.session.remove()
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        conn.execute(text("ALTER SEQUENCE patient_mrn_seq RESTART"))


@pytest.fixture(autouse=True)
def _isolation(request, app):
    """Roll back after each test; or, for tests that must commit, empty the tables."""
    commits = request.node.get_closest_marker("concurrency") or request.node.get_closest_marker(
        "e2e"
    )
    with app.app_context():
        _fresh_stores()
        if commits:
            _truncate()
            try:
                yield
            finally:
                _truncate()
            return
        connection = db.engine.connect()
        outer = connection.begin()
        # Every session made while the test runs (the test's own, and each request's in its
        # app context) is bound to this connection, and its commits release savepoints
        # inside `outer`. QureSession honours `bind`: Flask-SQLAlchemy's own session would
        # pick the engine and commit for real.
        db.session.remove()
        db.session.configure(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield
        finally:
            db.session.remove()
            db.session.configure(bind=None, join_transaction_mode=SESSION_JOIN_DEFAULT)
            outer.rollback()
            connection.close()


class Browser(FlaskClient):
    """A test client whose every request runs in its own application context, as in
    production. Otherwise each request would reuse the test's app context and with it `g`
    (the signed-in user, the CSRF token) and the test's session, hiding a missing commit.
    The request's session is bound to the test's connection, so the test sees what the
    request committed, and everything is still rolled back."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def clinic_now(app):
    """Pin the clock to a Monday 10:00 clinic time (tests/helpers.NOW) for the test."""
    with clock.fixed(NOW):
        yield NOW


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin(app):
    return make_user(Role.ADMIN)


@pytest.fixture
def reception(app):
    return make_user(Role.RECEPTION)


@pytest.fixture
def doctor(app):
    return make_user(Role.DOCTOR)


@pytest.fixture
def pharmacist(app):
    return make_user(Role.PHARMACIST)
