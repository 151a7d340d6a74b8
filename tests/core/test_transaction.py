"""One transaction per request: `core.http.transaction` commits once, rolls back on any
exception (running the on-rollback work), and shows a DomainError; no view or API handler
commits or rolls back by itself."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

import pytest
from flask import get_flashed_messages
from sqlalchemy import event, select

from qure.core.db import after_commit, on_rollback
from qure.core.errors import Conflict, InvalidInput
from qure.core.http import transaction, transactional
from qure.extensions import db
from qure.patients import service as patients
from qure.patients.models import Patient
from qure.pharmacy.models import Medicine
from tests.helpers import bearer, form_post, page_text, sign_in
from tests.pharmacy.test_views import FORM as MEDICINE_FORM
from tests.pharmacy.test_views import NEW as NEW_MEDICINE

QURE = Path(__file__).resolve().parents[2] / "qure"


def _register(name: str) -> Patient:
    data = {"full_name": name, "date_of_birth": date(1990, 1, 2), "sex": "F"}
    return patients.register(None, {**data, "phone": "+919812345678"}, confirm_new=True)


def _names() -> list[str]:
    return list(db.session.scalars(select(Patient.full_name)))


class Commits:
    """Counts the commits of the test's session."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self):
        self.session = db.session()
        event.listen(self.session, "after_commit", self._seen)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.session, "after_commit", self._seen)

    def _seen(self, _session) -> None:
        self.count += 1


def test_the_work_is_committed_once_and_the_after_commit_work_runs_after_it(app):
    published = []
    with Commits() as commits, app.test_request_context("/"):
        with transaction() as outcome:
            _register("Asha Rao")
            after_commit(lambda: published.append("published"))
            assert published == []  # not before the commit
        assert get_flashed_messages() == []
    assert commits.count == 1
    assert published == ["published"]
    assert not outcome.failed and outcome.status == 200
    assert _names() == ["Asha Rao"]


def test_a_domain_error_rolls_back_runs_the_undo_work_and_is_flashed(app):
    undone, published = [], []
    with Commits() as commits, app.test_request_context("/"):
        with transaction() as outcome:
            _register("Asha Rao")
            on_rollback(lambda: undone.append("redis change undone"))
            after_commit(lambda: published.append("published"))
            raise Conflict("That slot was just taken.", "slot_taken")
        assert get_flashed_messages(with_categories=True) == [
            ("error", "That slot was just taken.")
        ]
    assert commits.count == 0
    assert outcome.error.code == "slot_taken" and outcome.status == 409
    assert undone == ["redis change undone"]
    assert published == []
    assert _names() == []


def test_an_unexpected_error_rolls_back_runs_the_undo_work_and_propagates(app):
    undone = []
    failing = pytest.raises(ZeroDivisionError)
    with Commits() as commits, app.test_request_context("/"), failing, transaction():
        _register("Asha Rao")
        on_rollback(lambda: undone.append("undone"))
        _ = 1 / 0
    assert commits.count == 0
    assert undone == ["undone"]
    assert _names() == []


def test_a_domain_error_it_does_not_catch_propagates_after_the_rollback(app):
    undone = []

    @transactional
    def handler():
        _register("Asha Rao")
        on_rollback(lambda: undone.append("undone"))
        raise InvalidInput.naming({"phone": "Give a phone number."})

    with app.test_request_context("/"), pytest.raises(InvalidInput):
        handler()
    assert undone == ["undone"]
    assert _names() == []


def test_commit_on_keeps_the_work_of_an_error_that_must_be_recorded(app):
    recorded = transaction(catch=(), commit_on=(Conflict,))
    with app.test_request_context("/"), pytest.raises(Conflict), recorded:
        _register("Asha Rao")
        raise Conflict("Recorded, then refused.")
    assert _names() == ["Asha Rao"]


def test_a_form_view_shows_the_service_refusal_beside_the_field_with_422(client, pharmacist):
    sign_in(client, pharmacist)
    response = form_post(client, NEW_MEDICINE, {**MEDICINE_FORM, "unit_price": "1.234"})
    assert response.status_code == 422
    page = page_text(response)
    assert "At most two decimal places." in page
    html = response.get_data(as_text=True)
    assert f'value="{MEDICINE_FORM["name"]}"' in html  # what was typed is kept
    assert db.session.scalars(select(Medicine)).all() == []


def test_an_api_refusal_answers_in_the_error_shape_and_saves_nothing(client, reception):
    headers = bearer(client, reception)
    body = {"full_name": "Asha Rao", "date_of_birth": "1990-01-02", "sex": "F"}
    body["phone"] = "+919812345678"
    assert client.post("/api/v1/patients", json=body, headers=headers).status_code == 201
    response = client.post("/api/v1/patients", json=body, headers=headers)
    assert response.status_code == 409
    error = response.json["error"]
    assert error["code"] == "possible_duplicate"
    assert error["message"]
    assert error["details"]["candidates"]
    assert _names() == ["Asha Rao"]


def _commits_and_rollbacks(path: Path) -> list[str]:
    """`commit(...)`, `x.commit(...)`, `rollback(...)` calls and imports of `commit`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("commit", "rollback"):
                found.append(f"{path.relative_to(QURE.parent)}:{node.lineno} {name}()")
        elif isinstance(node, ast.ImportFrom) and node.module == "qure.core.db":
            names = {alias.name for alias in node.names}
            if names & {"commit", "rollback"}:
                found.append(f"{path.relative_to(QURE.parent)}:{node.lineno} imports commit")
    return found


def test_no_view_or_api_handler_commits_or_rolls_back_by_itself():
    edges = sorted(QURE.glob("*/views.py")) + sorted(QURE.glob("*/api.py"))
    edges = [path for path in edges if path.parent.name != "core"]
    assert len(edges) > 10
    offenders = [line for path in edges for line in _commits_and_rollbacks(path)]
    assert offenders == [], "use qure.core.http.transaction instead:\n" + "\n".join(offenders)
