"""The harness itself (tests/conftest.py): a test's work is rolled back after it, what
its requests commit included, and each request's session works on the test's connection.

The two tests run in this order; the second fails if the first one's commits survived.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from qure.core.models import OutboxEvent
from qure.extensions import db
from qure.patients.models import Patient
from tests.helpers import bearer, make_patient

NAME = "Harness Rolled Back"


def test_a_tests_commits_and_its_requests_share_its_connection(client, reception):
    make_patient(None, full_name=NAME)  # commits
    assert isinstance(db.session.get_bind(), Connection)
    headers = bearer(client, reception)  # the request reads the user the test committed
    found = client.get("/api/v1/patients", query_string={"q": NAME}, headers=headers)
    assert found.status_code == 200
    assert [p["full_name"] for p in found.get_json()["items"]] == [NAME]
    # The sign-in request committed its audit row: the test sees it at once.
    actions = db.session.scalars(select(OutboxEvent.payload["action"].astext))
    assert "USER_LOGIN" in list(actions)


def test_nothing_committed_by_the_test_before_is_left():
    assert db.session.scalar(select(func.count()).where(Patient.full_name == NAME)) == 0
    assert db.session.scalar(select(func.count()).select_from(Patient)) == 0
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 0
