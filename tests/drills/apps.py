"""A second app of the drills' own: its own engine and connection pool on a database of
the test's choosing (the suite's database with its connections made read-only, or a
PostgreSQL server the test starts and restarts), beside the suite's app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

from qure import create_app
from qure.extensions import db, mongo, redis_store
from tests.conftest import Browser

# The settings of the suite's app (tests/conftest.py) a drill's app keeps.
KEPT = ("SECRET_KEY", "REDIS_URL", "BCRYPT_ROUNDS", "DEMO_ACCOUNTS_FILE")


def libpq(url: str) -> str:
    """A SQLAlchemy URL as libpq (psycopg) takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def tagged(url: str, application_name: str) -> str:
    """`url` with connections named `application_name` (pg_stat_activity shows it)."""
    parsed = make_url(url).update_query_dict({"application_name": application_name})
    return parsed.render_as_string(hide_password=False)


@contextmanager
def drill_app(suite_app, database_url: str, **config) -> Iterator:
    """An app built as the suite's is, on `database_url`. Redis and the document store are
    held by module-level extensions, which a new app rebinds: they are put back after."""
    saved = (redis_store.client, mongo.client, mongo.db, mongo.embedded)
    app = create_app(
        {
            "TESTING": True,
            "QURE_ENV": "testing",
            "MONGO_URL": None,
            "SERVER_NAME": None,
            **{key: suite_app.config[key] for key in KEPT},
            "DATABASE_URL": database_url,
            **config,
        }
    )
    app.test_client_class = Browser
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        redis_store.client, mongo.client, mongo.db, mongo.embedded = saved


def terminate_backends(database_url: str, application_name: str) -> int:
    """pg_terminate_backend every connection named `application_name`, from a connection
    of our own, and wait until they are gone. Returns how many there were."""
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application_name,),
            )
        ]
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    return len(pids)
