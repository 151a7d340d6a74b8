"""What is to bill (`service.to_bill`): the API's page written directly
(`billing.schemas.listed`) exactly as ToBillSchema documents and dumps it, and the
statements the API list and the counter's home send, pinned."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from qure.billing import service
from qure.billing.schemas import ToBillSchema, listed
from qure.core import clock
from qure.core.db import commit
from qure.extensions import db
from qure.visits.models import Visit
from tests.billing.helpers import completed_visit
from tests.helpers import NOW, bearer, count_statements, make_patient, sign_in

URL = "/api/v1/billing/to-bill"


def visit_done(doctor, minutes_before: int = 0, **patient):
    """A visit of `doctor` completed `minutes_before` NOW (for a new patient); committed."""
    with clock.fixed(NOW - timedelta(minutes=minutes_before)):
        visit, _ = completed_visit(doctor, patient=make_patient(**patient))
    return visit


def loaded(ids: list[int]) -> list[Visit]:
    """These visits as ORM objects, read afresh with their patient and doctor."""
    query = (
        select(Visit)
        .where(Visit.id.in_(ids))
        .options(joinedload(Visit.patient), joinedload(Visit.doctor))
        .execution_options(populate_existing=True)
    )
    found = {v.id: v for v in db.session.scalars(query)}
    return [found[i] for i in ids]


def assert_same(got: list[dict], want: list[dict]) -> None:
    """Equal field by field (each named when not), in the same order of keys."""
    assert len(got) == len(want)
    for mine, theirs in zip(got, want, strict=True):
        assert list(mine) == list(theirs)
        for field, value in theirs.items():
            assert mine[field] == value, (theirs["visit_id"], field)
    assert json.dumps(got) == json.dumps(want)  # the bytes: order and formats


def test_the_list_is_built_as_its_schema_documents_it(client, doctor, reception):
    """A diagnosis set and None (a visit completed before diagnoses were required), a name
    outside ASCII; the latest completed first (not by id)."""
    earlier = visit_done(doctor, 5, full_name="Zoë D'Souza")
    latest = visit_done(doctor, 0)
    older = visit_done(doctor, 40)
    db.session.execute(update(Visit).where(Visit.id == older.id).values(diagnosis=None))
    commit()

    rows = service.to_bill().items
    assert [v["id"] for v in rows] == [latest.id, earlier.id, older.id]
    shown = ToBillSchema(many=True).dump(loaded([v["id"] for v in rows]))
    assert_same(listed(rows), shown)
    assert_same(listed(rows), ToBillSchema(many=True).dump(rows))  # the rows have its shape
    assert [v["diagnosis"] for v in shown] == ["Viral fever", "Viral fever", None]

    page = client.get(URL, headers=bearer(client, reception)).get_json()
    assert list(page) == ["items", "page", "per_page", "total"]
    assert (page["page"], page["per_page"], page["total"]) == (1, 50, 3)
    assert_same(page["items"], shown)


def test_the_list_sends_the_statements_it_is_pinned_to(app, client, doctor, reception):
    """The API's list: the bearer token's user, then one statement (the page with its
    count, its patients and doctors), for 2 visits as for 25; a page past the last asks
    the count apart. The billing counter's home sends as many for 25 as for 2."""
    headers = bearer(client, reception)
    browser = app.test_client()
    sign_in(browser, reception)

    def sent(send) -> int:
        db.session.expire_all()  # read as a request in production reads: nothing cached
        return count_statements(app, send)

    homes = {}
    for rows in (2, 25):
        while service.to_bill().total < rows:
            visit_done(doctor)
        answers = []
        counts = {
            query: sent(
                lambda q=query, out=answers: out.append(client.get(URL + q, headers=headers))
            )
            for query in ("", "?per_page=1&page=2", "?page=99")
        }
        assert all(a.status_code == 200 for a in answers)
        assert [len(a.get_json()["items"]) for a in answers] == [rows, 1, 0]
        assert [a.get_json()["total"] for a in answers] == [rows] * 3
        assert counts == {"": 2, "?per_page=1&page=2": 2, "?page=99": 3}, rows
        shown = []
        homes[rows] = sent(lambda out=shown: out.append(browser.get("/billing")))
        assert shown[0].status_code == 200
        assert f"To bill ({rows})" in shown[0].get_data(as_text=True)
    assert homes[2] == homes[25], homes
