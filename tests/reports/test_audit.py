"""The audit log viewer: records made by the real services and shipped by the relay,
filtered by user, action, resource and clinic days, newest first, in pages; each entry's
changes as rows; the CSV is exactly the filtered rows; the chain check finds a tampered
record; only ADMIN may look; a MongoDB that does not answer is a clear 503."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pymongo
import pytest

from qure.core import clock, documents, outbox
from qure.core.db import commit
from qure.core.errors import InvalidInput
from qure.core.roles import Role
from qure.extensions import mongo
from qure.patients import service as patients
from qure.reports import audit
from tests.helpers import (
    NOW,
    TODAY,
    bearer,
    count_statements,
    error,
    form_post,
    make_patient,
    page_text,
    sign_in,
)

API = "/api/v1/reports/audit-logs"
PAGE = "/reports/audit"


@contextmanager
def dead_mongodb():
    dead = pymongo.MongoClient(
        "mongodb://127.0.0.1:1/", serverSelectionTimeoutMS=200, connectTimeoutMS=200
    )
    saved = (mongo.client, mongo.db, mongo.embedded)
    mongo.use_client(dead, "qure_dead", embedded=False)
    try:
        yield
    finally:
        mongo.client, mongo.db, mongo.embedded = saved
        dead.close()


@pytest.fixture
def story(admin, reception):
    """Four records over two clinic days, made by the services and shipped by the relay:
    yesterday the admin registers Asha; today reception registers Ravi, changes Asha's
    phone, and the admin archives Ravi."""
    outbox.relay()  # the users' own USER_CREATED records
    with clock.fixed(NOW - timedelta(days=1)):
        asha = make_patient(admin, full_name="Asha Rao")
    with clock.fixed(NOW):
        ravi = make_patient(reception, full_name="Ravi Kumar")
        patients.update(reception, asha.id, {"phone": "+919812300000"})
        commit()
        patients.archive(admin, ravi.id)
        commit()
    assert outbox.relay().error is None
    return {"asha": asha, "ravi": ravi, "admin": admin, "reception": reception}


def seqs(page_or_items) -> list[int]:
    items = page_or_items.items if hasattr(page_or_items, "items") else page_or_items
    return [item["seq"] for item in items]


def patient_records(filters=None) -> list[dict]:
    base = filters or audit.Filters()
    found = audit.entries(audit.Filters(**{**base.__dict__, "resource_type": "patient"}))
    return found.items


# ---- the service ------------------------------------------------------------------------


def test_every_filter_is_an_exact_match_newest_first(story):
    asha, ravi = story["asha"].id, story["ravi"].id
    everything = audit.entries(audit.Filters())
    assert seqs(everything) == sorted(seqs(everything), reverse=True)
    assert [(e["action"], e["resource"]["id"]) for e in patient_records()] == [
        ("PATIENT_ARCHIVED", ravi),
        ("PATIENT_UPDATED", asha),
        ("PATIENT_CREATED", ravi),
        ("PATIENT_CREATED", asha),
    ]
    by_reception = audit.entries(audit.Filters(user_id=story["reception"].id)).items
    assert [e["action"] for e in by_reception] == ["PATIENT_UPDATED", "PATIENT_CREATED"]
    assert by_reception[0]["user"] == {
        "id": story["reception"].id,
        "name": story["reception"].full_name,
        "role": "RECEPTION",
    }
    created = audit.entries(audit.Filters(action="PATIENT_CREATED")).items
    assert [e["resource"]["id"] for e in created] == [ravi, asha]
    one = audit.entries(audit.Filters(resource_type="patient", resource_id=str(asha))).items
    assert [e["action"] for e in one] == ["PATIENT_UPDATED", "PATIENT_CREATED"]
    yesterday = patient_records(
        audit.Filters(start=TODAY - timedelta(days=1), end=TODAY - timedelta(days=1))
    )
    assert [e["resource"]["id"] for e in yesterday] == [asha]
    today = patient_records(audit.Filters(start=TODAY))
    assert len(today) == 3
    assert patient_records(audit.Filters(end=TODAY - timedelta(days=2))) == []
    both = audit.entries(audit.Filters(user_id=story["admin"].id, action="PATIENT_ARCHIVED"))
    assert [e["resource"]["id"] for e in both.items] == [ravi]


def test_a_day_is_the_clinic_day_not_utc(admin):
    # 00:30 in Kolkata on 7 Jan is 19:00 UTC on 6 Jan: it belongs to 7 Jan.
    with clock.fixed(datetime(2030, 1, 6, 19, 0, tzinfo=UTC)):
        make_patient(admin)
    outbox.relay()
    assert audit.entries(audit.Filters(action="PATIENT_CREATED", start=TODAY, end=TODAY)).total == 1
    day_before = TODAY - timedelta(days=1)
    assert audit.entries(audit.Filters(action="PATIENT_CREATED", end=day_before)).total == 0


def test_pages_of_the_log(admin):
    for _ in range(5):
        make_patient(admin)
    outbox.relay()
    first = audit.entries(audit.Filters(action="PATIENT_CREATED"), page=1, per_page=2)
    third = audit.entries(audit.Filters(action="PATIENT_CREATED"), page=3, per_page=2)
    assert first.total == 5 and first.pages == 3 and len(first.items) == 2
    assert len(third.items) == 1 and seqs(third)[0] < seqs(first)[-1]
    assert audit.entries(audit.Filters(action="PATIENT_CREATED"), page=4, per_page=2).items == []
    with pytest.raises(InvalidInput) as caught:
        audit.entries(audit.Filters(), page=1, per_page=201)
    assert "per_page" in caught.value.fields


def test_filters_are_checked_naming_the_parameter():
    for args, name in [
        ({"from": "31 Feb 2030"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"user_id": "x1"}, "user_id"),
        ({"resource_id": "7"}, "resource_id"),
        ({"from": "2030-01-08", "to": "2030-01-07"}, "from"),
        ({"action": "A" * 65}, "action"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            audit.parse(args)
        assert name in caught.value.fields, args
    parsed = audit.parse({"from": "02 Jan 2030", "to": "2030-01-07", "user_id": "3"})
    assert (parsed.start.day, parsed.end.day, parsed.user_id) == (2, 7, 3)


def test_every_filter_combination_is_served_by_an_index():
    """For each combination the viewer offers, the query's equality fields, then its sort,
    then its range field, are the first keys of a declared index (MongoDB's
    Equality-Sort-Range rule): the index gives the order, so no query sorts in memory or
    scans the collection. Derived from the code's own query builder."""
    declared = [i.keys for i in documents.declared_indexes() if i.collection == audit.COLLECTION]
    values = {
        "user_id": [None, 4],
        "action": [None, "INVOICE_PAID"],
        "resource_type": [None, "patient"],
        "resource_id": [None, "17"],
        "start": [None, TODAY],
        "end": [None, TODAY],
    }
    tried = 0
    for combo in itertools.product(*values.values()):
        filters = audit.Filters(**dict(zip(values, combo, strict=True)))
        try:
            audit.check(filters)
        except InvalidInput:
            continue  # not offered (a resource id without its type)
        query = audit.query(filters)
        # `$in` (an id as a number or as text) is equality on a few points: MongoDB merges
        # the points' runs of the index in sort order.
        equal = {k for k, v in query.items() if not isinstance(v, dict) or "$in" in v}
        ranges = [k for k, v in query.items() if k not in equal]
        wanted = [(field, direction) for field, direction in audit.SORT]
        assert any(
            {field for field, _ in keys[: len(equal)]} == equal
            and list(keys[len(equal) : len(equal) + len(wanted)]) == wanted
            and [f for f, _ in keys[len(equal) + len(wanted) :][: len(ranges)]] == ranges
            for keys in declared
        ), (query, declared)
        tried += 1
    assert tried == 12 * 4  # 12 equality combinations, each with none/from/to/both days


def test_a_change_reads_as_rows_of_fields():
    update = {
        "old": {"phone": "+91981", "contact": {"name": "A", "phone": "1"}},
        "new": {"phone": "+91982", "contact": {"name": "A", "phone": "2"}, "tags": ["x", 1]},
    }
    assert audit.diff_rows(update) == [
        {"field": "contact.phone", "before": "1", "after": "2", "kind": "changed"},
        {"field": "phone", "before": "+91981", "after": "+91982", "kind": "changed"},
        {"field": "tags", "before": None, "after": '["x",1]', "kind": "added"},
    ]
    created = audit.diff_rows({"old": None, "new": {"full_name": "Asha", "age": 30}})
    assert [(r["field"], r["before"], r["after"], r["kind"]) for r in created] == [
        ("age", None, "30", "added"),
        ("full_name", None, "Asha", "added"),
    ]
    deleted = audit.diff_rows({"old": {"reason": "typo"}, "new": None})
    assert deleted == [{"field": "reason", "before": "typo", "after": None, "kind": "removed"}]
    assert audit.diff_rows({"old": None, "new": None}) == []


def test_the_dropdowns_offer_what_the_log_holds(story):
    choices = audit.vocabulary()
    assert {"PATIENT_CREATED", "PATIENT_UPDATED", "PATIENT_ARCHIVED", "USER_CREATED"} <= set(
        choices["actions"]
    )
    assert choices["resource_types"] == ["patient", "user"]


# ---- the pages --------------------------------------------------------------------------


def rows_of(page: str) -> list[str]:
    body = page.split('<table id="audit-log">', 1)[1].split("</table></div>", 1)[0]
    return re.findall(r'<td class="mono action">([A-Z_]+)</td>', body)


def test_the_page_shows_entries_with_their_changes_and_keeps_filters(client, story):
    sign_in(client, story["admin"])
    asha = story["asha"]
    response = client.get(PAGE, query_string={"resource_type": "patient", "resource_id": asha.id})
    assert response.status_code == 200
    text = page_text(response)
    assert rows_of(text) == ["PATIENT_UPDATED", "PATIENT_CREATED"]
    assert "phone" in text and "+919812300000" in text and "changed" in text
    assert story["reception"].full_name in text and "Reception" in text
    assert "07 Jan 2030, 10:00" in text and "06 Jan 2030, 10:00" in text
    assert f"/reports/audit.csv?resource_type=patient&amp;resource_id={asha.id}" in (
        response.get_data(as_text=True)
    )
    assert f'<option value="{story["reception"].id}">' in text


def test_the_page_loads_in_a_few_statements(app, client, story):
    sign_in(client, story["admin"])
    assert count_statements(app, lambda: client.get(PAGE, query_string={"action": "X"})) <= 3


def test_pagination_links_keep_the_filters(client, admin, clinic_now):
    for _ in range(52):
        make_patient(admin)
    outbox.relay()
    sign_in(client, admin)
    first = client.get(PAGE, query_string={"action": "PATIENT_CREATED", "from": "07 Jan 2030"})
    html = first.get_data(as_text=True)
    assert "Page 1 of 2" in html
    link = re.search(r'href="([^"]*page=2[^"]*)" rel="next"', html).group(1).replace("&amp;", "&")
    assert "action=PATIENT_CREATED" in link and "from=" in link
    second = client.get(link)
    assert len(rows_of(page_text(second))) == 2


def test_a_date_that_cannot_be_read_is_shown_on_its_field(client, admin):
    sign_in(client, admin)
    response = client.get(PAGE, query_string={"from": "31 Feb 2030", "resource_id": "3"})
    assert response.status_code == 422
    text = page_text(response)
    assert 'id="f-from-error"' in text and "like 02 Dec 2026" in text
    assert 'id="f-resource_id-error"' in text and "resource type too" in text
    assert 'value="31 Feb 2030"' in text


def test_the_csv_is_exactly_the_filtered_rows(client, story):
    sign_in(client, story["admin"])
    response = client.get(
        PAGE + ".csv", query_string={"user_id": story["reception"].id}, buffered=True
    )
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == list(audit.CSV_HEADER)
    wanted = audit.entries(audit.Filters(user_id=story["reception"].id)).items
    assert [int(r[0]) for r in rows[1:]] == seqs(wanted)
    updated = rows[1]
    assert updated[5] == "PATIENT_UPDATED" and updated[6] == "patient"
    assert updated[1].endswith("+00:00") and updated[4] == "RECEPTION"
    assert json.loads(updated[8])["new"] == {"phone": "+919812300000"}


def test_a_csv_cell_that_looks_like_a_formula_is_neutralised(client, admin):
    make_patient(admin)
    outbox.relay()
    # A name and an address as a hostile client could have them recorded.
    mongo.db[audit.COLLECTION].update_many(
        {"action": "PATIENT_CREATED"}, {"$set": {"ip": "=1+1", "user.name": "@SUM(A1)"}}
    )
    sign_in(client, admin)
    text = client.get(
        PAGE + ".csv", query_string={"action": "PATIENT_CREATED"}, buffered=True
    ).get_data(as_text=True)
    row = list(csv.reader(io.StringIO(text)))[1]
    assert (row[3], row[9]) == ("'@SUM(A1)", "'=1+1")


def test_verify_says_the_chain_is_intact_then_finds_a_tampered_record(client, story):
    sign_in(client, story["admin"])
    total = mongo.db[audit.COLLECTION].count_documents({})
    intact = form_post(client, PAGE + "/verify", {}, page=PAGE)
    assert intact.status_code == 200
    assert f"Chain intact: {total} records checked" in page_text(intact)
    changed = audit.entries(audit.Filters(action="PATIENT_UPDATED")).items[0]
    mongo.db[audit.COLLECTION].update_one(
        {"_id": changed["seq"]}, {"$set": {"changes.new.phone": "+910000000000"}}
    )
    broken = page_text(form_post(client, PAGE + "/verify", {}, page=PAGE))
    assert f"seq {changed['seq']}: contents do not match its hash" in broken
    assert "Chain intact" not in broken


def test_verify_needs_its_csrf_token(client, admin):
    sign_in(client, admin)
    assert client.post(PAGE + "/verify").status_code == 400


@pytest.mark.parametrize("role", [Role.DOCTOR, Role.RECEPTION, Role.PHARMACIST])
def test_only_admin_opens_the_audit_log(client, role, request):
    user = request.getfixturevalue(role.value.lower())
    sign_in(client, user)
    assert client.get(PAGE).status_code == 403
    assert client.get(PAGE + ".csv").status_code == 403
    assert client.post(PAGE + "/verify").status_code in (400, 403)
    headers = bearer(client, user)
    error(client.get(API, headers=headers), 403, "forbidden")
    error(client.post(API + "/verify", headers=headers), 403, "forbidden")


def test_the_reports_index_links_the_audit_log(client, admin):
    sign_in(client, admin)
    assert 'href="/reports/audit"' in client.get("/reports").get_data(as_text=True)


def test_a_dead_mongodb_is_a_quick_clear_503_page(client, admin):
    sign_in(client, admin)
    with dead_mongodb():
        started = datetime.now(UTC)
        response = client.get(PAGE)
        took = datetime.now(UTC) - started
        csv_answer = client.get(PAGE + ".csv")
        verify = form_post(client, PAGE + "/verify", {}, page="/reports")
    assert response.status_code == 503 and took < timedelta(seconds=3)
    text = page_text(response)
    assert "Analytics unavailable" in text and "Traceback" not in text
    assert 'class="topbar"' in text
    assert csv_answer.status_code == 503 and csv_answer.mimetype == "text/html"
    assert verify.status_code == 503 and "Analytics unavailable" in page_text(verify)


# ---- the API ----------------------------------------------------------------------------


def test_the_api_answers_pages_of_documented_items(client, story):
    headers = bearer(client, story["admin"])
    asha = story["asha"]
    response = client.get(
        API,
        query_string={"resource_type": "patient", "resource_id": asha.id, "per_page": 1},
        headers=headers,
    )
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["page"], body["per_page"], body["total"]) == (1, 1, 2)
    (item,) = body["items"]
    assert item["action"] == "PATIENT_UPDATED"
    assert item["resource"] == {"type": "patient", "id": asha.id}
    assert item["user"]["id"] == story["reception"].id and item["user"]["role"] == "RECEPTION"
    assert item["changes"]["new"] == {"phone": "+919812300000"}
    assert datetime.fromisoformat(item["timestamp"]) == NOW
    assert re.fullmatch(r"[0-9a-f]{64}", item["hash"]) and len(item["prev_hash"]) == 64
    assert set(item) == {
        "seq",
        "timestamp",
        "user",
        "action",
        "resource",
        "changes",
        "ip",
        "request_id",
        "hash",
        "prev_hash",
    }
    second = client.get(
        API,
        query_string={"resource_type": "patient", "resource_id": asha.id, "per_page": 1, "page": 2},
        headers=headers,
    ).json["items"]
    assert second[0]["action"] == "PATIENT_CREATED"
    created_user = client.get(API, query_string={"action": "USER_CREATED"}, headers=headers)
    assert all(i["user"] is None for i in created_user.json["items"])
    assert created_user.json["total"] == 2


def test_each_api_filter(client, story):
    headers = bearer(client, story["admin"])

    def actions(**args):
        args.setdefault("resource_type", "patient")
        found = client.get(API, query_string=args, headers=headers)
        assert found.status_code == 200, found.json
        return [i["action"] for i in found.json["items"]]

    assert actions(user_id=story["admin"].id) == ["PATIENT_ARCHIVED", "PATIENT_CREATED"]
    assert actions(action="PATIENT_CREATED") == ["PATIENT_CREATED"] * 2
    assert actions(resource_id=story["ravi"].id) == ["PATIENT_ARCHIVED", "PATIENT_CREATED"]
    assert actions(**{"from": "2030-01-06", "to": "06 Jan 2030"}) == ["PATIENT_CREATED"]
    assert actions(to="2030-01-05") == []


def test_the_api_csv_equals_the_filtered_rows(client, story):
    headers = bearer(client, story["admin"])
    args = {"action": "PATIENT_CREATED"}
    as_json = client.get(API, query_string={**args, "per_page": 200}, headers=headers).json
    by_format = client.get(
        API, query_string={**args, "format": "csv"}, headers=headers, buffered=True
    )
    by_accept = client.get(
        API, query_string=args, headers={**headers, "Accept": "text/csv"}, buffered=True
    )
    assert by_format.mimetype == "text/csv" and by_format.data == by_accept.data
    rows = list(csv.reader(io.StringIO(by_format.get_data(as_text=True))))
    assert [int(r[0]) for r in rows[1:]] == [i["seq"] for i in as_json["items"]]
    assert [r[1] for r in rows[1:]] == [i["timestamp"] for i in as_json["items"]]


def test_api_filters_that_cannot_be_read_are_422_naming_them(client, admin):
    headers = bearer(client, admin)
    for args, name in [
        ({"from": "31 Feb 2030"}, "from"),
        ({"user_id": "abc"}, "user_id"),
        ({"resource_id": "3"}, "resource_id"),
        ({"from": "2030-01-08", "to": "2030-01-07"}, "from"),
        ({"per_page": 500}, "per_page"),
        ({"format": "xml"}, "format"),
    ]:
        body = error(client.get(API, query_string=args, headers=headers), 422, "invalid_input")
        assert name in body["fields"], (args, body)


def test_the_api_verify(client, story):
    headers = bearer(client, story["admin"])
    intact = client.post(API + "/verify", headers=headers).json
    assert intact["ok"] is True and intact["problems"] == [] and intact["checked"] >= 6
    mongo.db[audit.COLLECTION].update_one({"_id": 2}, {"$set": {"action": "USER_DELETED"}})
    broken = client.post(API + "/verify", headers=headers).json
    assert broken["ok"] is False and "seq 2: contents do not match its hash" in broken["problems"]


def test_the_api_with_a_dead_mongodb_is_503(client, admin):
    headers = bearer(client, admin)
    with dead_mongodb():
        error(client.get(API, headers=headers), 503, "analytics_unavailable")
        error(
            client.get(API, query_string={"format": "csv"}, headers=headers),
            503,
            "analytics_unavailable",
        )
        error(client.post(API + "/verify", headers=headers), 503, "analytics_unavailable")


def test_the_api_answers_validate_against_their_documented_schemas(client, story):
    from tests.billing.test_openapi import Documented

    docs = Documented(client)
    headers = bearer(client, story["admin"])
    csv_type = docs.spec["paths"][API]["get"]["responses"]["200"]["content"]
    assert set(csv_type) == {"application/json", "text/csv"}
    docs.check("get", API, client.get(API, headers=headers))
    docs.check("get", API, client.get(API, query_string={"from": "x"}, headers=headers))
    docs.check("post", API + "/verify", client.post(API + "/verify", headers=headers))
    with dead_mongodb():
        docs.check("get", API, client.get(API, headers=headers))
        docs.check("post", API + "/verify", client.post(API + "/verify", headers=headers))
