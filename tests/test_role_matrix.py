"""The role matrix: who may call every route, written from SPEC section 0's table (not from
the routes' decorators), and checked against the running app.

Every rule in `app.url_map` must have a row here; a route added later without one fails
`test_every_route_has_a_row` naming it. Each API route is called as each role with a
bearer token and anonymously: anonymous gets 401, a role the table leaves out gets 403 with
the error shape, an allowed role gets past the gate (any status but 401/403/5xx: 404 for a
made-up id, 422 for an empty body). The HTML pages likewise, signed in through the form:
anonymous is sent to the sign-in page, a role left out gets the 403 page, never a 200.

Path ids are made up (999999), so an allowed role mostly meets 404 or 422: the point is the
gate, which every route passes before it looks anything up. HTML POSTs carry the session's
real CSRF token (CSRF stays on), so the gate is tested on POSTs too.

Where the table and the code once disagreed, the table follows SPEC (and the issues where
they decided: imports are ADMIN only; a doctor reads the visit history of their own
patients, scoped inside the route, so the gate lets every doctor in).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from qure.core.db import commit
from qure.core.roles import Role
from qure.queue import board
from tests.helpers import PASSWORD, bearer, csrf_token, make_user, sign_in

A, D, P, R = Role.ADMIN, Role.DOCTOR, Role.PHARMACIST, Role.RECEPTION
STAFF = frozenset(Role)
# Anyone, signed in or not (sign-in, the documents, health, static files).
PUBLIC = "public"
# The waiting-room board: staff, or a screen opened with the display key; nobody else.
KEYED = "keyed"

IGNORED_METHODS = {"HEAD", "OPTIONS"}
MADE_UP_ID = "999999"
# Values for path variables that are not ids.
PATH_VALUES = {
    "day": "2030-01-07",
    "job_id": "no-such-job",
    "kind": "patients",
    "filename": "css/qure.css",
}
DISPLAY_KEY = "the-waiting-room-key"

# ---- the table: SPEC section 0, one row per endpoint ----------------------------------------

API: dict[str, set[Role] | frozenset[Role] | str] = {
    # sign-in: anyone signs in; any staff reads themself and refreshes their token
    "api_auth.login": PUBLIC,
    "api-docs.openapi_json": PUBLIC,
    "api_auth.me": STAFF,
    "api_auth.refresh": STAFF,
    # users, settings: ADMIN
    "api_auth.register": {A},
    "api_users.list_users": {A},
    "api_users.get_user": {A},
    "api_users.update_user": {A},
    "api_settings.get_settings": {A},
    "api_settings.update_settings": {A},
    # imports (issue 13): ADMIN only
    "api_imports.import_medicines": {A},
    "api_imports.import_patients": {A},
    # a job's progress: whoever started one (a receipts bundle at the desk, an import)
    "api_jobs.job_status": STAFF,
    # read patients: all; register / edit: ADMIN, RECEPTION; archive (and restore): ADMIN
    "api_patients.search": STAFF,
    "api_patients.get_patient": STAFF,
    "api_patients.register": {A, R},
    "api_patients.update_patient": {A, R},
    "api_patients.archive_patient": {A},
    "api_patients.restore_patient": {A},
    # create / block slots: ADMIN (any doctor), DOCTOR (own); reading slots is how the desk
    # books, so every role reads them
    "api_slots.list_slots": STAFF,
    "api_slots.get_slot": STAFF,
    "api_slots.bulk_create": {A, D},
    "api_slots.block_slot": {A, D},
    "api_slots.block_range": {A, D},
    # appointments: ADMIN, RECEPTION book / reschedule / cancel; DOCTOR reads own
    "api_appointments.book": {A, R},
    "api_appointments.reschedule": {A, R},
    "api_appointments.cancel": {A, R},
    "api_appointments.list_appointments": {A, D, R},
    "api_appointments.get_appointment": {A, D, R},
    # check-in, walk-in (and the desk's urgent flag): ADMIN, RECEPTION
    "api_queue.check_in": {A, R},
    "api_queue.walk_in": {A, R},
    "api_queue.mark_urgent": {A, R},
    # call next: ADMIN, DOCTOR (own queue); token status: ADMIN, DOCTOR (own), RECEPTION
    # (skip / no-show / recall); reading the day's queue: any staff
    "api_queue.call_next": {A, D},
    "api_queue.set_status": {A, D, R},
    "api_queue.get_token": STAFF,
    "api_queue.today": STAFF,
    "api_queue.summary": STAFF,
    "api_queue.display": KEYED,
    # visits, vitals, notes, diagnosis: ADMIN reads, DOCTOR writes (own visits)
    "api_visits.start_visit": {D},
    "api_visits.update_visit": {D},
    "api_visits.complete_visit": {D},
    "api_visits.add_note": {D},
    "api_visits.get_visit": {A, D},
    "api_visits.list_notes": {A, D},
    "api_visits.patient_visits": {A, D},
    # create prescriptions: DOCTOR; read / print: all
    "api_prescriptions.create": {D},
    "api_prescriptions.update": {D},
    "api_prescriptions.list_prescriptions": STAFF,
    "api_prescriptions.get_prescription": STAFF,
    "api_prescriptions.print_prescription": STAFF,
    # medicines, batches, adjustments: ADMIN, PHARMACIST write; DOCTOR, RECEPTION read
    "api_medicines.list_medicines": STAFF,
    "api_medicines.get_medicine": STAFF,
    "api_medicines.create_medicine": {A, P},
    "api_medicines.update_medicine": {A, P},
    "api_inventory.list_batches": STAFF,
    "api_inventory.expired": STAFF,
    "api_inventory.expiring": STAFF,
    "api_inventory.low_stock": STAFF,
    "api_inventory.stock_in": {A, P},
    "api_inventory.adjust_batch": {A, P},
    # dispense: PHARMACIST; a dispensing record is read like the prescription it fills;
    # the H1 register goes with the stock movements (ADMIN, PHARMACIST)
    "api_dispensing.dispense": {P},
    "api_dispensing.return_items": {P},
    "api_dispensing.get_dispensing": STAFF,
    "api_pharmacy.h1_register": {A, P},
    # invoices create, edit, pay, cancel (and the cashier's day close): ADMIN, RECEPTION;
    # read invoices, print receipts: ADMIN, PHARMACIST, RECEPTION
    "api_billing.create": {A, R},
    "api_billing.update": {A, R},
    "api_billing.finalize": {A, R},
    "api_billing.pay": {A, R},
    "api_billing.cancel": {A, R},
    "api_billing.credit_note": {A, R},
    "api_billing.to_bill": {A, R},
    "api_billing.takings": {A, R},
    "api_billing.close_day": {A, R},
    "api_billing.day_report": {A, R},
    "api_billing.past_closes": {A, R},
    "api_billing.list_invoices": {A, P, R},
    "api_billing.get_invoice": {A, P, R},
    "api_billing.receipt": {A, P, R},
    "api_credit_notes.get_credit_note": {A, P, R},
    "api_credit_notes.credit_note_pdf": {A, P, R},
    # reports: daily summary, audit log (and the invoices report): ADMIN; visit history:
    # ADMIN, DOCTOR (own patients'); stock movements: ADMIN, PHARMACIST
    "api_reports.daily_summary": {A},
    "api_reports.audit_logs": {A},
    "api_reports.verify_audit_logs": {A},
    "api_reports.invoices": {A},
    "api_reports.visit_history": {A, D},
    "api_reports.stock_movements": {A, P},
}

HTML: dict[str, set[Role] | frozenset[Role] | str] = {
    "static": PUBLIC,
    "core.health": PUBLIC,
    "core.api_docs": PUBLIC,
    # sign-in and home
    "auth.index": PUBLIC,
    "auth.login": PUBLIC,
    "auth.home": STAFF,
    "auth.logout": STAFF,
    # users, settings (the admin pages, the display key, failed jobs): ADMIN
    "admin.index": {A},
    "admin.user_list": {A},
    "admin.user_new": {A},
    "admin.user_edit": {A},
    "admin.user_password": {A},
    "admin.clinic_settings": {A},
    "admin.display_key": {A},
    "imports.failed_jobs": {A},
    "imports.retry_job": {A},
    # imports (issue 13): ADMIN only
    "imports.index": {A},
    "imports.view": {A},
    "imports.progress": {A},
    "imports.template": {A},
    # patients
    "patients.index": STAFF,
    "patients.view": STAFF,
    "patients.register": {A, R},
    "patients.edit": {A, R},
    "patients.archive": {A},
    "patients.restore": {A},
    # create / block slots: ADMIN, DOCTOR (the schedule pages are for that)
    "scheduling.week": {A, D},
    "scheduling.slot": {A, D},
    "scheduling.create_slots": {A, D},
    "scheduling.block_range": {A, D},
    "scheduling.block_slot": {A, D},
    "scheduling.unblock_slot": {A, D},
    # appointments: ADMIN, RECEPTION book / reschedule / cancel; DOCTOR reads own
    "scheduling.appointments": {A, D, R},
    "scheduling.appointment": {A, D, R},
    "scheduling.book": {A, R},
    "scheduling.reschedule": {A, R},
    "scheduling.cancel": {A, R},
    # the queue: see the API rows; the desk's day page is the desk's, "my queue" the doctor's
    "queue.index": STAFF,
    "queue.index_fragment": STAFF,
    "queue.token": STAFF,
    "queue.check_in": {A, R},
    "queue.walk_in": {A, R},
    "queue.mark_urgent": {A, R},
    "queue.today": {A, R},
    "queue.today_fragment": {A, R},
    "queue.call_next": {A, D},
    "queue.set_status": {A, D, R},
    "queue.no_show": {A, D, R},
    "queue.doctor_queue": {D},
    "queue.doctor_queue_fragment": {D},
    "queue.board": PUBLIC,  # without the key it shows only the key form
    "queue.board_key": PUBLIC,
    "queue.board_data": KEYED,
    # visits: ADMIN reads, DOCTOR writes; prescriptions: DOCTOR writes, all read / print
    "visits.workspace": {A, D},
    "visits.icd10_search": {A, D},
    "visits.start": {D},
    "visits.save": {D},
    "visits.add_note": {D},
    "visits.choose_medicine": {D},
    "visits.add_item": {D},
    "visits.remove_item": {D},
    "visits.prescription": STAFF,
    "visits.print_prescription": STAFF,
    # medicines, batches, adjustments: ADMIN, PHARMACIST write; DOCTOR, RECEPTION read
    "pharmacy.medicines": STAFF,
    "pharmacy.medicine": STAFF,
    "pharmacy.inventory": STAFF,
    "pharmacy.alerts": STAFF,
    "pharmacy.new_medicine": {A, P},
    "pharmacy.edit_medicine": {A, P},
    "pharmacy.stock_in": {A, P},
    "pharmacy.adjust": {A, P},
    # dispense: PHARMACIST (ADMIN sees the work list); records read like prescriptions
    "dispensing.queue": {A, P},
    "dispensing.prescription": {A, P},
    "dispensing.dispense": {P},
    "dispensing.returns": {P},
    "dispensing.record": STAFF,
    "dispensing.slip": STAFF,
    "dispensing.register": {A, P},
    "dispensing.register_csv": {A, P},
    "dispensing.register_pdf": {A, P},
    # invoices: ADMIN, RECEPTION do; ADMIN, PHARMACIST, RECEPTION read and print
    "billing.index": {A, R},
    "billing.new_invoice": {A, R},
    "billing.create_invoice": {A, R},
    "billing.make_invoice": {A, R},
    "billing.edit": {A, R},
    "billing.finalize": {A, R},
    "billing.pay": {A, R},
    "billing.cancel": {A, R},
    "billing.refund": {A, R},
    "billing.day_close": {A, R},
    "billing.close_day": {A, R},
    "billing.day_closes": {A, R},
    # the day's receipts bundle belongs to the day close (the desk's)
    "billing.receipts": {A, R},
    "billing.make_receipts": {A, R},
    "billing.receipts_progress": {A, R},
    "billing.receipts_pdf": {A, R},
    "billing.invoices": {A, P, R},
    "billing.invoice": {A, P, R},
    "billing.receipt": {A, P, R},
    "billing.credit_note": {A, P, R},
    "billing.credit_note_pdf": {A, P, R},
    # reports: the index lists what a role may open (RECEPTION has none)
    "reports.index": {A, D, P},
    "reports.dashboard": {A},
    "reports.daily_summary": {A},
    "reports.audit_log": {A},
    "reports.audit_csv": {A},
    "reports.audit_verify": {A},
    "reports.invoices": {A},
    "reports.visits": {A, D},
    "reports.stock_movements": {A, P},
}


# ---- walking the url_map ----------------------------------------------------------------------


def _rules(app) -> list:
    return sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))


def _is_api(rule) -> bool:
    return rule.rule.startswith("/api/v1")


def _path(rule) -> str:
    """The rule's URL with each variable filled: a made-up id, or a plausible value."""
    values = {name: PATH_VALUES.get(name, MADE_UP_ID) for name in rule.arguments}
    path = rule.rule
    for part in path.split("<")[1:]:
        variable = part.split(">")[0]
        path = path.replace(f"<{variable}>", values[variable.split(":")[-1]])
    return path


def _calls(app, api: bool) -> Iterator[tuple[str, str, str]]:
    """(endpoint, method, path) of every API route or every page; signing out last."""
    calls = [
        (rule.endpoint, method, _path(rule))
        for rule in _rules(app)
        if _is_api(rule) == api
        for method in sorted(rule.methods - IGNORED_METHODS)
    ]
    return iter(sorted(calls, key=lambda call: call[0] == "auth.logout"))


def _allowed(table: dict, endpoint: str, role: Role | None) -> str | bool | None:
    """PUBLIC, KEYED, whether `role` may (False for anonymous), or None: no row."""
    row = table.get(endpoint)
    if row is None:
        return None
    if isinstance(row, str):
        return row
    return role is not None and role in row


# ---- the table covers the app ----------------------------------------------------------------


def test_every_route_has_a_row(app):
    missing = [
        f"{rule.rule} ({rule.endpoint})"
        for rule in _rules(app)
        if rule.endpoint not in (API if _is_api(rule) else HTML)
    ]
    assert missing == [], (
        "routes with no row in tests/test_role_matrix.py (add one from SPEC section 0):\n  "
        + "\n  ".join(missing)
    )


def test_every_row_names_a_route(app):
    api = {rule.endpoint for rule in _rules(app) if _is_api(rule)}
    pages = {rule.endpoint for rule in _rules(app) if not _is_api(rule)}
    stale = sorted(set(API) - api) + sorted(set(HTML) - pages)
    assert stale == [], f"rows naming no route (or on the wrong side of /api/v1): {stale}"


# ---- the API ------------------------------------------------------------------------------


def _api_verdict(response, allowed: str | bool, anonymous: bool) -> str | None:
    """What is wrong with `response` (None when the gate did its job)."""
    status = response.status_code
    if status >= 500:
        return f"answered {status}"
    if allowed is True or allowed == PUBLIC:
        return f"refused an allowed caller with {status}" if status in (401, 403) else None
    expected, code = (401, "unauthorized") if anonymous else (403, "forbidden")
    if status != expected:
        return f"answered {status}, not {expected}"
    body = response.get_json(silent=True) or {}
    shape = body.get("error") or {}
    if shape.get("code") != code or not shape.get("message"):
        return f"{status} without the error shape: {response.get_data(as_text=True)[:200]}"
    return None


def _api_walk(app, client, headers: dict, role: Role | None, refresh: dict) -> list[str]:
    failures = []
    for endpoint, method, path in _calls(app, api=True):
        allowed = _allowed(API, endpoint, role)
        if allowed is None:
            failures.append(f"{method} {path} ({endpoint}): no row in the table")
            continue
        if allowed == KEYED:  # staff tokens open it; anonymous callers need the key
            allowed = role is not None
        sent = refresh if endpoint == "api_auth.refresh" and role else headers
        body = None if method == "GET" else {}
        try:
            response = client.open(path, method=method, headers=sent, json=body)
        except Exception as exc:  # a traceback (TESTING propagates it) is a failure to report
            failures.append(f"{method} {path} ({endpoint}) as {role}: raised {exc!r}")
            continue
        verdict = _api_verdict(response, allowed, anonymous=role is None)
        if verdict:
            failures.append(f"{method} {path} ({endpoint}) as {role}: {verdict}")
    return failures


@pytest.mark.parametrize("role", list(Role))
def test_the_api_lets_in_exactly_the_roles_spec_names(app, client, clinic_now, role):
    user = make_user(role)
    headers = bearer(client, user)
    credentials = {"username": user.username, "password": PASSWORD}
    login = client.post("/api/v1/auth/login", json=credentials)
    refresh = {"Authorization": f"Bearer {login.json['refresh_token']}"}
    failures = _api_walk(app, client, headers, role, refresh)
    assert failures == [], f"as {role}:\n  " + "\n  ".join(failures)


def test_the_api_sends_anonymous_callers_away(app, client, clinic_now):
    failures = _api_walk(app, client, {}, None, {})
    assert failures == [], "anonymously:\n  " + "\n  ".join(failures)


def test_the_board_api_opens_with_the_display_key_only(app, client, clinic_now):
    board.set_display_key(None, DISPLAY_KEY)
    commit()
    assert client.get("/api/v1/queue/display").status_code == 401
    wrong = client.get("/api/v1/queue/display", headers={"X-Display-Key": "not-the-key-at-all"})
    assert wrong.status_code == 401
    right = client.get("/api/v1/queue/display", headers={"X-Display-Key": DISPLAY_KEY})
    assert right.status_code == 200 and "doctors" in right.json
    # The key opens the board and nothing else.
    assert (
        client.get("/api/v1/queue/today", headers={"X-Display-Key": DISPLAY_KEY}).status_code == 401
    )


# ---- the pages ------------------------------------------------------------------------------


def _page_verdict(response, allowed: str | bool, anonymous: bool) -> str | None:
    status = response.status_code
    if status >= 500:
        return f"answered {status}"
    location = urlsplit(response.headers.get("Location", "")).path
    sent_to_sign_in = status in (301, 302, 303) and location == "/login"
    if allowed == KEYED:  # the board's data, polled by a script: 401, not a redirect
        if not anonymous:
            return None if status == 200 else f"answered {status}, not the board"
        return None if status == 401 else f"answered {status}, not 401"
    if allowed == PUBLIC:
        return f"refused with {status}" if status == 403 else None
    if allowed is True:
        if status in (401, 403) or sent_to_sign_in:
            return f"refused an allowed role with {status} {location}"
        return None
    if anonymous:
        return None if sent_to_sign_in else f"answered {status} {location}, not the sign-in"
    return None if status == 403 else f"answered {status} {location}, not 403"


def _page_walk(app, client, role: Role | None) -> list[str]:
    # The session's CSRF token: the gate is tried on real form posts, CSRF left on.
    token = csrf_token(client, "/patients/" if role else "/login")
    failures = []
    for endpoint, method, path in _calls(app, api=False):
        allowed = _allowed(HTML, endpoint, role)
        if allowed is None:
            failures.append(f"{method} {path} ({endpoint}): no row in the table")
            continue
        try:
            if method == "GET":
                response = client.get(path)
            else:
                response = client.open(path, method=method, data={"csrf_token": token})
        except Exception as exc:  # a traceback (TESTING propagates it) is a failure to report
            failures.append(f"{method} {path} ({endpoint}) as {role}: raised {exc!r}")
            continue
        if endpoint == "auth.logout" and role:
            # Signing out answers with the sign-in page; then the session is gone.
            signed_out = client.get("/patients/").headers.get("Location", "")
            verdict = None if urlsplit(signed_out).path == "/login" else "did not sign out"
        else:
            verdict = _page_verdict(response, allowed, anonymous=role is None)
        if verdict:
            failures.append(f"{method} {path} ({endpoint}) as {role}: {verdict}")
    return failures


@pytest.mark.parametrize("role", list(Role))
def test_the_pages_let_in_exactly_the_roles_spec_names(app, client, clinic_now, role):
    sign_in(client, make_user(role))
    failures = _page_walk(app, client, role)
    assert failures == [], f"as {role}:\n  " + "\n  ".join(failures)


def test_the_pages_send_anonymous_visitors_to_sign_in(app, client, clinic_now):
    failures = _page_walk(app, client, None)
    assert failures == [], "anonymously:\n  " + "\n  ".join(failures)


def test_the_board_page_opens_with_the_display_key_only(app, client, clinic_now):
    board.set_display_key(None, DISPLAY_KEY)
    commit()
    assert client.get("/queue/board/data").status_code == 401
    form = client.get("/queue/board")
    assert form.status_code == 200 and 'name="display_key"' in form.get_data(as_text=True)
    token = csrf_token(client, "/queue/board")
    wrong = client.post("/queue/board/key", data={"csrf_token": token, "display_key": "x" * 20})
    assert wrong.status_code == 401
    assert client.get("/queue/board/data").status_code == 401
    right = client.post("/queue/board/key", data={"csrf_token": token, "display_key": DISPLAY_KEY})
    assert right.status_code == 302
    assert client.get("/queue/board/data").status_code == 200
    # The key opens the board and no staff page.
    assert urlsplit(client.get("/queue/").headers["Location"]).path == "/login"
