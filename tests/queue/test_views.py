"""The front desk, queue, doctor's queue and waiting-room board pages, as staff (and the
waiting-room screen) use them in a browser (CSRF on).

The clock is pinned to Monday 2030-01-07 10:00 clinic time (`clinic_now`); a queue change
reaches Redis once the request commits, as in production.
"""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import select

from qure.core import clock
from qure.core.roles import Role
from qure.extensions import db, redis_store
from qure.patients.models import Patient
from qure.queue import service as queue
from qure.queue.models import QueueEntry
from qure.scheduling.models import Appointment
from qure.visits import service as visits
from qure.visits.models import Visit
from tests.helpers import (
    TODAY,
    count_statements,
    csrf_token,
    flashes,
    form_post,
    later,
    make_appointment,
    make_patient,
    make_slots,
    make_user,
    page_text,
    sign_in,
)

TODAY_URL = "/queue/today"
KEY = "waiting-room-screen-1"


def field_block(page: str, name: str) -> str:
    """The `<div class="field">` that holds the input named `name`."""
    for block in re.findall(r'<div class="field[^"]*">.*?</div>', page, re.S):
        if f'name="{name}"' in block:
            return block
    raise AssertionError(f"no field {name} on the page")


ROW_RE = re.compile(
    r'<tr(?: class="urgent")?>\s*<td>(\d+)</td>\s*<td class="mono strong">(\d+)</td>\s*'
    r"<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(\d+) min</td>",
    re.S,
)


def waiting_rows(page: str) -> list[tuple[str, str, str, str, str]]:
    """The queue page's waiting rows: (position, token, name cell, kind, minutes)."""
    return [
        (pos, token, re.sub(r"<.*", "", name, flags=re.S).strip(), kind, minutes)
        for pos, token, name, kind, minutes in ROW_RE.findall(page)
    ]


def section(page: str, section_id: str) -> str:
    """The `<section id=...>` of a page."""
    return re.search(rf'<section class="card" id="{section_id}">.*?</section>', page, re.S).group(0)


def table_rows(html: str) -> list[list[str]]:
    """The body rows of the tables in `html`, each cell's text with its spaces collapsed."""
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        if cells:
            rows.append([" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells])
    return rows


def entries() -> list[QueueEntry]:
    db.session.expire_all()
    return list(db.session.scalars(select(QueueEntry).order_by(QueueEntry.token_number)))


def entry(token: int) -> QueueEntry:
    db.session.expire_all()
    return db.session.scalars(select(QueueEntry).where(QueueEntry.token_number == token)).one()


def appointment_status(appointment_id: int) -> str:
    db.session.expire_all()
    return db.session.get(Appointment, appointment_id).status


def booked_day(doctor, *names: str) -> list[Appointment]:
    """Slots from 10:15 for `doctor`, one booked for each patient named, in that order."""
    slots = make_slots(doctor, start="10:00", end="12:00")  # 10:00 has started: 10:15 ...
    return [
        make_appointment(make_patient(None, full_name=name, phone=f"+9198450{i:05d}"), slot)
        for i, (name, slot) in enumerate(zip(names, slots, strict=False))
    ]


def checked_in(actor, *appointments: Appointment) -> list[QueueEntry]:
    """Check the appointments in through the service and commit, as the view does."""
    tokens = [queue.check_in(actor, a.id) for a in appointments]
    db.session.commit()
    return tokens


def client_for(app, user):
    browser = app.test_client()
    sign_in(browser, user)
    return browser


# ---- front desk: the home page ----------------------------------------------------------------


def test_the_front_desk_home_puts_the_cursor_in_the_search_box(client, reception):
    sign_in(client, reception)
    page = page_text(client.get("/home"))
    (search,) = re.findall(r'<input id="q"[^>]*>', page)
    assert search.endswith(" autofocus>")
    assert 'href="/queue/today"' in page and 'href="/appointments/book"' in page


# ---- front desk: check-in --------------------------------------------------------------------


def test_today_lists_appointments_per_doctor_with_check_in(client, clinic_now, reception):
    first = make_user(Role.DOCTOR, full_name="Anil Kumar")
    second = make_user(Role.DOCTOR, full_name="Bina Rao")
    (meera,) = booked_day(first, "Meera Nair")
    (priya,) = booked_day(second, "Priya Sharma")
    tomorrow = make_slots(first, day=TODAY + timedelta(days=1), start="09:00", end="09:15")
    make_appointment(make_patient(None, full_name="Later Person"), tomorrow[0])
    sign_in(client, reception)
    response = client.get(TODAY_URL)
    assert response.status_code == 200
    page = page_text(response)
    assert "Today · Mon 07 Jan" in page
    assert "<h3>Anil Kumar</h3>" in page and "<h3>Bina Rao</h3>" in page
    assert page.index("<h3>Anil Kumar</h3>") < page.index("Meera Nair") < page.index("Bina Rao")
    assert "Priya Sharma" in page and "Later Person" not in page
    for appointment in (meera, priya):
        assert f'action="/queue/checkin/{appointment.id}"' in page
    assert page.count(">Check in</button>") == 2
    assert '<td class="mono">10:15</td>' in page


def test_today_shows_each_appointments_token_phone_and_reason_and_the_walk_ins(
    client, clinic_now, reception
):
    anil = make_user(Role.DOCTOR, full_name="Anil Kumar")
    bina = make_user(Role.DOCTOR, full_name="Bina Rao")
    slots = make_slots(anil, start="10:00", end="11:00")
    sharma = make_patient(None, full_name="Priya Sharma", phone="+919845011111")
    menon = make_patient(None, full_name="Priya Menon", phone="+919845022222")
    first = make_appointment(sharma, slots[0], reason="Fever for three days")
    make_appointment(menon, slots[1], reason="Follow-up")
    checked_in(reception, first)
    walker = make_patient(None, full_name="Ravi Walker", phone="+919845099999")
    make_slots(bina, start="11:00", end="12:00")
    queue.walk_in(reception, {"patient_id": walker.id, "doctor_id": bina.id, "complaint": "Cough"})
    db.session.commit()
    sign_in(client, reception)
    page = page_text(client.get(TODAY_URL))

    appointments = section(page, "appointments")
    assert [row[:5] for row in table_rows(appointments)] == [
        ["10:15", "001", "Priya Sharma +91 98450 11111", "Fever for three days", "Checked In"],
        ["10:30", "", "Priya Menon +91 98450 22222", "Follow-up", "Scheduled"],
    ]
    assert 'href="/queue/token/1">001</a>' in appointments
    assert appointments.count(">Check in</button>") == 1
    assert table_rows(section(page, "walk-ins")) == [
        ["002", "Ravi Walker +91 98450 99999", "Cough", "Bina Rao", "Waiting"]
    ]


def test_today_with_nobody_yet_says_so(client, clinic_now, reception):
    sign_in(client, reception)
    page = page_text(client.get(TODAY_URL))
    assert "No appointments today." in page and "No walk-ins yet." in page


def test_check_in_gives_a_token_shown_in_large_type(client, clinic_now, reception, doctor):
    meera, priya = booked_day(doctor, "Meera Nair", "Priya Sharma")
    sign_in(client, reception)
    response = form_post(client, f"/queue/checkin/{meera.id}", {}, page=TODAY_URL)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/queue/token/1")
    page = page_text(client.get(response.headers["Location"]))
    assert '<p class="token-number" aria-label="Token number">001</p>' in page
    assert "Token for Meera Nair" in page
    assert "position 1 in the queue" in page
    assert "appointment · checked in 10:00" in page
    (token,) = entries()
    assert (token.token_number, token.patient_id, token.status) == (1, meera.patient_id, "WAITING")
    assert token.kind == "APPOINTMENT" and token.appointment_id == meera.id
    assert appointment_status(meera.id) == "CHECKED_IN"

    response = form_post(client, f"/queue/checkin/{priya.id}", {}, page=TODAY_URL)
    assert response.headers["Location"].endswith("/queue/token/2")
    page = page_text(client.get("/queue/token/2"))
    assert '<p class="token-number" aria-label="Token number">002</p>' in page
    assert "position 2 in the queue" in page

    page = page_text(client.get(TODAY_URL))
    assert page.count(">Check in</button>") == 0
    assert page.count('<span class="tag">Checked In</span>') == 2


def test_checking_in_twice_shows_the_already_checked_in_flash(
    client, clinic_now, reception, doctor
):
    (meera,) = booked_day(doctor, "Meera Nair")
    sign_in(client, reception)
    token = csrf_token(client, TODAY_URL)
    assert client.post(f"/queue/checkin/{meera.id}", data={"csrf_token": token}).status_code == 302
    response = client.post(f"/queue/checkin/{meera.id}", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(TODAY_URL)
    page = page_text(client.get(response.headers["Location"]))
    assert "This appointment is already checked in." in flashes(page)
    assert len(entries()) == 1


def test_check_in_without_the_csrf_token_is_refused(client, clinic_now, reception, doctor):
    (meera,) = booked_day(doctor, "Meera Nair")
    sign_in(client, reception)
    assert client.post(f"/queue/checkin/{meera.id}").status_code == 400
    assert entries() == []
    assert appointment_status(meera.id) == "SCHEDULED"


def test_only_todays_appointments_can_be_checked_in(client, clinic_now, reception, doctor):
    (slot,) = make_slots(doctor, day=TODAY + timedelta(days=1), start="09:00", end="09:15")
    tomorrow = make_appointment(make_patient(None), slot)
    sign_in(client, reception)
    response = form_post(
        client, f"/queue/checkin/{tomorrow.id}", {}, page=TODAY_URL, follow_redirects=True
    )
    assert "Only today's appointments can be checked in." in flashes(page_text(response))
    assert entries() == []
    assert appointment_status(tomorrow.id) == "SCHEDULED"


def test_a_cancelled_appointment_cannot_be_checked_in(client, clinic_now, reception, doctor):
    from qure.scheduling import service as scheduling

    (meera,) = booked_day(doctor, "Meera Nair")
    scheduling.cancel(reception, meera.id)
    db.session.commit()
    sign_in(client, reception)
    page = page_text(client.get(TODAY_URL))
    assert "Meera Nair" not in page and "No appointments today." in page
    response = form_post(
        client, f"/queue/checkin/{meera.id}", {}, page=TODAY_URL, follow_redirects=True
    )
    assert "This appointment is cancelled." in flashes(page_text(response))
    assert entries() == []


def test_unknown_token_page_is_404(client, clinic_now, reception):
    sign_in(client, reception)
    assert client.get("/queue/token/42").status_code == 404


@pytest.mark.parametrize("role", ["doctor", "pharmacist"])
def test_doctor_and_pharmacist_cannot_use_the_front_desk(client, clinic_now, request, role):
    user = request.getfixturevalue(role)
    doctor = make_user(Role.DOCTOR)
    (meera,) = booked_day(doctor, "Meera Nair")
    sign_in(client, user)
    assert client.get(TODAY_URL).status_code == 403
    token = csrf_token(client, "/queue/")
    assert client.post(f"/queue/checkin/{meera.id}", data={"csrf_token": token}).status_code == 403
    response = client.post(
        "/queue/walk-in", data={"patient_id": meera.patient_id, "csrf_token": token}
    )
    assert response.status_code == 403
    assert entries() == []


# ---- front desk: walk-in ---------------------------------------------------------------------


def test_walk_in_finds_the_patient_and_gives_a_token(client, clinic_now, reception):
    busy = make_user(Role.DOCTOR, full_name="Anil Kumar")
    free = make_user(Role.DOCTOR, full_name="Bina Rao")
    make_user(Role.DOCTOR, full_name="Chitra Off Duty")  # no slots today
    (meera,) = booked_day(busy, "Meera Nair")
    make_slots(free, start="11:00", end="12:00")
    checked_in(reception, meera)
    walker = make_patient(None, full_name="Ravi Walker", phone="+919845099999")
    sign_in(client, reception)

    page = page_text(client.get(f"{TODAY_URL}?q=walker"))
    assert "Ravi Walker" in page and walker.mrn in page
    raw = client.get(f"{TODAY_URL}?q=walker").get_data(as_text=True)
    assert f'href="/queue/today?patient_id={walker.id}#walk-in"' in raw

    url = f"{TODAY_URL}?patient_id={walker.id}"
    page = page_text(client.get(url))
    assert "Patient: <strong>Ravi Walker</strong>" in page
    doctor_field = field_block(page, "doctor_id")
    assert '<select id="doctor_id" name="doctor_id"><option value="">First available</option>' in (
        doctor_field
    )
    assert f'<option value="{free.id}">Bina Rao</option>' in doctor_field

    response = form_post(
        client,
        "/queue/walk-in",
        {"patient_id": str(walker.id), "doctor_id": "", "complaint": "Headache"},
        page=url,
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/queue/token/2")
    page = page_text(client.get(response.headers["Location"]))
    assert '<p class="token-number" aria-label="Token number">002</p>' in page
    assert "Token for Ravi Walker" in page
    assert "Bina Rao · position 1 in the queue" in page
    assert "walk-in · checked in 10:00" in page
    token = entry(2)
    assert (token.kind, token.doctor_id, token.patient_id) == ("WALK_IN", free.id, walker.id)
    assert (token.complaint, token.urgent, token.status) == ("Headache", False, "WAITING")


def test_walk_in_offers_to_register_the_name_typed_and_comes_back(client, clinic_now, reception):
    sign_in(client, reception)
    page = page_text(client.get(f"{TODAY_URL}?q=Asha+Rao"))
    assert "No patient matches “Asha Rao”." in page
    href = re.search(r'href="([^"]+)">Register a new patient</a>', page).group(1)
    parts = urlsplit(href)
    assert parts.path == "/patients/new"
    assert dict(parse_qsl(parts.query)) == {"name": "Asha Rao", "next": "/queue/today"}
    # The register page sends the new patient back as ?patient_id=: they are chosen.
    asha = make_patient(None, full_name="Asha Rao", phone="+919845033333")
    page = page_text(client.get(f"{TODAY_URL}?patient_id={asha.id}"))
    assert "Patient: <strong>Asha Rao</strong>" in page and "+91 98450 33333" in page
    assert f'<input type="hidden" name="patient_id" value="{asha.id}">' in page


def test_walk_in_to_a_chosen_doctor_marked_urgent(client, clinic_now, reception, doctor):
    make_slots(doctor, start="11:00", end="12:00")
    walker = make_patient(None, full_name="Ravi Walker")
    sign_in(client, reception)
    response = form_post(
        client,
        "/queue/walk-in",
        {
            "patient_id": str(walker.id),
            "doctor_id": str(doctor.id),
            "urgent": "y",
            "urgent_reason": "Chest pain",
        },
        page=f"{TODAY_URL}?patient_id={walker.id}",
        follow_redirects=True,
    )
    page = page_text(response)
    assert '<p class="token-number" aria-label="Token number">001</p>' in page
    assert '<span class="tag danger">urgent</span>' in page
    token = entry(1)
    assert (token.urgent, token.urgent_reason, token.doctor_id) == (True, "Chest pain", doctor.id)


def test_urgent_without_a_reason_is_shown_beside_the_field(client, clinic_now, reception, doctor):
    make_slots(doctor, start="11:00", end="12:00")
    walker = make_patient(None, full_name="Ravi Walker")
    sign_in(client, reception)
    response = form_post(
        client,
        "/queue/walk-in",
        {"patient_id": str(walker.id), "doctor_id": "", "urgent": "y", "urgent_reason": " "},
        page=f"{TODAY_URL}?patient_id={walker.id}",
    )
    assert response.status_code == 422
    page = page_text(response)
    block = field_block(page, "urgent_reason")
    assert "has-error" in block and "Say why the patient is urgent." in block
    assert "Patient: <strong>Ravi Walker</strong>" in page
    assert "checked" in field_block(page, "urgent")
    assert entries() == []


def test_a_second_walk_in_for_the_same_patient_is_refused(client, clinic_now, reception, doctor):
    make_slots(doctor, start="11:00", end="12:00")
    walker = make_patient(None, full_name="Ravi Walker")
    url = f"{TODAY_URL}?patient_id={walker.id}"
    data = {"patient_id": str(walker.id), "doctor_id": ""}
    sign_in(client, reception)
    assert form_post(client, "/queue/walk-in", data, page=url).status_code == 302
    response = form_post(client, "/queue/walk-in", data, page=url)
    assert response.status_code == 409
    page = page_text(response)
    assert '<div class="flash flash-error" role="alert">' in page
    assert "The patient already holds token 001 today." in page
    assert len(entries()) == 1


def test_walk_in_with_nobody_on_duty_says_so(client, clinic_now, reception, doctor):
    walker = make_patient(None, full_name="Ravi Walker")
    sign_in(client, reception)
    response = form_post(
        client,
        "/queue/walk-in",
        {"patient_id": str(walker.id), "doctor_id": ""},
        page=f"{TODAY_URL}?patient_id={walker.id}",
    )
    assert response.status_code == 409
    assert "No doctor has slots today; choose a doctor." in page_text(response)
    assert entries() == []


def test_walk_in_without_a_patient_asks_for_one(client, clinic_now, reception, doctor):
    make_slots(doctor, start="11:00", end="12:00")
    sign_in(client, reception)
    response = form_post(client, "/queue/walk-in", {"doctor_id": ""}, page=TODAY_URL)
    assert response.status_code == 422
    assert '<p class="error">Choose the patient.</p>' in page_text(response)
    assert entries() == []


# ---- the queue -------------------------------------------------------------------------------


def test_queue_lists_waiting_tokens_with_full_names(client, clinic_now, reception):
    doctor = make_user(Role.DOCTOR, full_name="Anil Kumar")
    first, second = booked_day(doctor, "Priya Sharma", "Priya Menon")
    walker = make_patient(None, full_name="Ravi Walker")
    checked_in(reception, first, second)
    with clock.fixed(later(5)):
        queue.walk_in(reception, {"patient_id": walker.id, "doctor_id": doctor.id})
        db.session.commit()
    sign_in(client, reception)
    with clock.fixed(later(12)):
        response = client.get("/queue/")
    assert response.status_code == 200
    page = page_text(response)
    assert "<h2>Anil Kumar</h2>" in page
    assert "3 waiting · 0 seen · 0 no-show" in page
    # Two Priyas in one queue: the desk tells them apart by their full names.
    assert waiting_rows(page) == [
        ("1", "001", "Priya Sharma", "Appointment", "12"),
        ("2", "002", "Priya Menon", "Appointment", "12"),
        ("3", "003", "Ravi Walker", "Walk-in", "7"),
    ]
    assert 'action="/queue/next"' not in page  # Call next is for admins and doctors
    assert page.count(">Skip</button>") == 3
    assert page.count(">No-show…</a>") == 3
    assert page.count(">Urgent</button>") == 3


def test_the_queue_names_the_patient_with_the_doctor_in_full(client, clinic_now, reception):
    doctor = make_user(Role.DOCTOR, full_name="Anil Kumar")
    first, second = booked_day(doctor, "Priya Sharma", "Priya Menon")
    checked_in(reception, first, second)
    queue.call_next(doctor)
    queue.set_status(reception, 2, "SKIPPED")
    db.session.commit()
    sign_in(client, reception)
    page = page_text(client.get("/queue/"))
    assert re.search(r'Now with the doctor:\s*<strong class="mono">001</strong> Priya Sharma', page)
    skipped = re.search(r"<h4>Skipped</h4>.*?</ul>", page, re.S).group(0)
    assert "002</span> Priya Menon" in skipped


def test_reception_skips_recalls_and_marks_no_show(client, clinic_now, reception, doctor):
    meera, priya = booked_day(doctor, "Meera Nair", "Priya Sharma")
    checked_in(reception, meera, priya)
    sign_in(client, reception)

    back = {"back": "queue.index"}
    response = form_post(client, "/queue/1/status", {"status": "SKIPPED", **back}, page="/queue/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/queue/")
    page = page_text(client.get("/queue/"))
    assert "Token 001: skipped." in flashes(page)
    assert [row[1] for row in waiting_rows(page)] == ["002"]
    skipped = re.search(r"<h4>Skipped</h4>.*?</ul>", page, re.S).group(0)
    assert "001" in skipped and "Meera Nair" in skipped and ">Recall</button>" in skipped
    assert 'href="/queue/1/no-show?back=queue.index">No-show…</a>' in skipped
    assert entry(1).status == "SKIPPED"
    assert appointment_status(meera.id) == "CHECKED_IN"

    response = form_post(
        client,
        "/queue/1/status",
        {"status": "WAITING", **back},
        page="/queue/",
        follow_redirects=True,
    )
    page = page_text(response)
    assert "Token 001: waiting." in flashes(page)
    rows = waiting_rows(page)
    assert [row[1] for row in rows] == ["001", "002"]  # a recalled token goes to the head
    assert '<span class="tag">recalled</span>' in page
    assert "<h4>Skipped</h4>" not in page
    assert entry(1).status == "WAITING"

    # No-show asks for confirmation and a reason on its own page.
    page = page_text(client.get("/queue/"))
    assert 'href="/queue/2/no-show?back=queue.index">No-show…</a>' in page
    confirm = client.get("/queue/2/no-show?back=queue.index")
    assert confirm.status_code == 200
    page = page_text(confirm)
    assert "Token 002: no-show?" in page and "Priya Sharma" in page
    assert 'href="/queue/">Keep in the queue</a>' in page
    assert entry(2).status == "WAITING"

    confirm_url = "/queue/2/no-show"
    response = form_post(client, confirm_url, {"reason": " ", **back}, page=confirm_url)
    assert response.status_code == 422
    assert "Say why the patient is a no-show." in field_block(page_text(response), "reason")
    assert entry(2).status == "WAITING"

    response = form_post(
        client,
        confirm_url,
        {"reason": "Called twice, not in the waiting room", **back},
        page=confirm_url,
        follow_redirects=True,
    )
    page = page_text(response)
    assert "Token 002: no show." in flashes(page)
    assert [row[1] for row in waiting_rows(page)] == ["001"]
    assert "1 waiting · 0 seen · 1 no-show" in page
    token = entry(2)
    assert (token.status, token.no_show_reason) == (
        "NO_SHOW",
        "Called twice, not in the waiting room",
    )
    assert appointment_status(priya.id) == "NO_SHOW"


def test_a_no_show_without_confirmation_goes_to_the_confirm_page(
    client, clinic_now, reception, doctor
):
    (meera,) = booked_day(doctor, "Meera Nair")
    checked_in(reception, meera)
    sign_in(client, reception)
    response = form_post(
        client, "/queue/1/status", {"status": "NO_SHOW", "back": "queue.index"}, page="/queue/"
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/queue/1/no-show?back=queue.index")
    assert entry(1).status == "WAITING"


def test_the_no_show_page_of_a_token_that_moved_on_says_so(client, clinic_now, reception, doctor):
    (meera,) = booked_day(doctor, "Meera Nair")
    checked_in(reception, meera)
    queue.call_next(doctor)
    db.session.commit()
    sign_in(client, reception)
    page = page_text(client.get("/queue/1/no-show"))
    assert "This token is with doctor; it cannot become a no-show." in page
    assert "Mark no-show</button>" not in page
    assert client.get("/queue/9/no-show").status_code == 404


def test_reception_marks_a_token_urgent(client, clinic_now, reception, doctor):
    meera, priya = booked_day(doctor, "Meera Nair", "Priya Sharma")
    checked_in(reception, meera, priya)
    sign_in(client, reception)
    response = form_post(
        client, "/queue/2/urgent", {"reason": "", "back": "queue.index"}, page="/queue/"
    )
    assert response.status_code == 302
    page = page_text(client.get("/queue/"))
    assert "Say why the patient is urgent." in flashes(page)
    assert entry(2).urgent is False

    response = form_post(
        client,
        "/queue/2/urgent",
        {"reason": "Breathless", "back": "queue.index"},
        page="/queue/",
        follow_redirects=True,
    )
    page = page_text(response)
    assert "Token 002 is urgent: it goes ahead." in flashes(page)
    assert [row[1] for row in waiting_rows(page)] == ["002", "001"]
    assert '<tr class="urgent">' in page
    assert '<span class="tag danger" title="Breathless">urgent</span>' in page
    assert page.count(">Urgent</button>") == 1  # only the token not yet urgent
    token = entry(2)
    assert (token.urgent, token.urgent_reason) == (True, "Breathless")

    response = form_post(
        client,
        "/queue/2/urgent",
        {"reason": "Again", "back": "queue.index"},
        page="/queue/",
        follow_redirects=True,
    )
    assert "This token is already urgent." in flashes(page_text(response))


def test_reception_cannot_complete_a_token(client, clinic_now, reception, doctor):
    (meera,) = booked_day(doctor, "Meera Nair")
    checked_in(reception, meera)
    sign_in(client, reception)
    response = form_post(
        client,
        "/queue/1/status",
        {"status": "COMPLETED", "back": "queue.index"},
        page="/queue/",
        follow_redirects=True,
    )
    assert response.status_code == 200
    page = page_text(response)
    assert "Reception may skip, mark no-show or recall." in flashes(page)
    assert [row[1] for row in waiting_rows(page)] == ["001"]
    assert entry(1).status == "WAITING"
    assert appointment_status(meera.id) == "CHECKED_IN"


def test_an_unknown_token_or_status_is_flashed(client, clinic_now, reception, doctor):
    (meera,) = booked_day(doctor, "Meera Nair")
    checked_in(reception, meera)
    sign_in(client, reception)
    response = form_post(
        client, "/queue/9/status", {"status": "SKIPPED"}, page="/queue/", follow_redirects=True
    )
    assert "There is no token 9 today." in flashes(page_text(response))
    response = form_post(
        client, "/queue/1/status", {"status": "GONE"}, page="/queue/", follow_redirects=True
    )
    assert '<p class="flash flash-error" role="alert">' in page_text(response)
    assert entry(1).status == "WAITING"


def test_a_foreign_back_target_falls_back_to_the_queue(client, clinic_now, reception, doctor):
    (meera,) = booked_day(doctor, "Meera Nair")
    checked_in(reception, meera)
    sign_in(client, reception)
    response = form_post(
        client,
        "/queue/1/status",
        {"status": "SKIPPED", "back": "https://evil.example/"},
        page="/queue/",
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/queue/"


def test_pharmacist_sees_the_queue_without_action_buttons(client, clinic_now, pharmacist, doctor):
    reception = make_user(Role.RECEPTION)
    meera, priya = booked_day(doctor, "Meera Nair", "Priya Sharma")
    checked_in(reception, meera, priya)
    queue.set_status(reception, 2, "SKIPPED")
    db.session.commit()
    sign_in(client, pharmacist)
    response = client.get("/queue/")
    assert response.status_code == 200
    page = page_text(response)
    assert [row[:4] for row in waiting_rows(page)] == [("1", "001", "Meera Nair", "Appointment")]
    assert page.count("<button") == 1  # only Sign out, in the header
    for absent in (
        "/queue/1/status",
        "/queue/1/urgent",
        "/queue/1/no-show",
        "/queue/next",
        "<h4>Skipped</h4>",
    ):
        assert absent not in page, absent
    assert "Check in / walk-in" not in page
    token = csrf_token(client, "/queue/")
    response = client.post("/queue/1/status", data={"status": "SKIPPED", "csrf_token": token})
    assert response.status_code == 403
    assert entry(1).status == "WAITING"


# ---- the doctor's queue ----------------------------------------------------------------------


def test_doctor_calls_next_and_sees_who_follows(client, clinic_now, doctor):
    reception = make_user(Role.RECEPTION)
    meera, priya = booked_day(doctor, "Meera Nair", "Priya Sharma")
    checked_in(reception, meera, priya)
    sign_in(client, doctor)
    response = client.get("/queue/mine")
    assert response.status_code == 200
    page = page_text(response)
    assert "Nobody is with you." in page
    assert "<h2>Waiting (2)</h2>" in page
    waiting = re.search(r'<ol class="waiting">.*?</ol>', page, re.S).group(0)
    assert waiting.index("001</span> Meera Nair") < waiting.index("002</span> Priya Sharma")
    assert "appointment" in waiting and "0 min" in waiting

    response = form_post(client, "/queue/next", {}, page="/queue/mine")
    assert response.status_code == 302
    # Call next opens the visit workspace for the called patient.
    visit = db.session.scalars(select(Visit).where(Visit.patient_id == meera.patient_id)).one()
    assert response.headers["Location"].endswith(f"/visits/{visit.id}")
    page = page_text(client.get(response.headers["Location"]))
    assert "Token 001 called: Meera Nair. Next: 002 Priya Sharma." in flashes(page)
    assert "<h1>Meera Nair</h1>" in page
    assert entry(1).status == "WITH_DOCTOR"
    assert appointment_status(meera.id) == "IN_CONSULTATION"

    page = page_text(client.get("/queue/mine"))
    current = re.search(r'<section class="card current"[^>]*>.*?</section>', page, re.S).group(0)
    assert "001" in current
    # The name and the button open the visit: the token completes only through it.
    assert f'<a href="/visits/{visit.id}"><strong>Meera Nair</strong></a>' in current
    assert f'href="/visits/{visit.id}">Open visit to complete</a>' in current
    assert ">Complete</button>" not in current
    assert "<h2>Waiting (1)</h2>" in page

    response = form_post(client, "/queue/next", {}, page="/queue/mine")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/queue/mine")
    page = page_text(client.get("/queue/mine"))
    assert "Token 001 is still with the doctor; complete or skip it first." in flashes(page)
    assert entry(2).status == "WAITING"

    # A stale page's Complete (or a crafted post) is refused while the visit is open.
    response = form_post(
        client,
        "/queue/1/status",
        {"status": "COMPLETED", "back": "queue.doctor_queue"},
        page="/queue/mine",
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/queue/mine")
    page = page_text(client.get("/queue/mine"))
    assert (
        "Token 001's visit is still open: complete the visit (it needs a diagnosis) and the "
        "token completes with it." in flashes(page)
    )
    assert entry(1).status == "WITH_DOCTOR"
    assert appointment_status(meera.id) == "IN_CONSULTATION"

    visits.update(doctor, visit.id, {"diagnosis": "Viral fever"})
    visits.complete(doctor, visit.id)
    db.session.commit()
    page = page_text(client.get("/queue/mine"))
    assert "Nobody is with you." in page
    assert entry(1).status == "COMPLETED" and entry(1).completed_at is not None
    assert appointment_status(meera.id) == "COMPLETED"

    response = form_post(client, "/queue/next", {}, page="/queue/mine", follow_redirects=True)
    page = page_text(response)
    assert "Token 002 called: Priya Sharma. Nobody else is waiting." in flashes(page)
    assert entry(2).status == "WITH_DOCTOR"


def test_call_next_with_nobody_waiting_says_so(client, clinic_now, doctor):
    make_slots(doctor, start="11:00", end="12:00")
    sign_in(client, doctor)
    page = page_text(client.get("/queue/mine"))
    assert "Nobody waiting." in page
    response = form_post(client, "/queue/next", {}, page="/queue/mine", follow_redirects=True)
    assert "Nobody is waiting for this doctor." in flashes(page_text(response))


def test_a_patient_archived_after_check_in_is_still_called_and_gets_no_visit(
    client, clinic_now, doctor
):
    reception = make_user(Role.RECEPTION)
    (appointment,) = booked_day(doctor, "Meera Nair")
    checked_in(reception, appointment)
    # Archived after check-in: no visit opens on an archived record, but the patient is
    # here, so the call stands (refusing it would jam the queue on this token).
    db.session.execute(
        Patient.__table__.update()
        .where(Patient.id == appointment.patient_id)
        .values(archived_at=clock.now())
    )
    db.session.commit()
    sign_in(client, doctor)
    response = form_post(client, "/queue/next", {}, page="/queue/mine")
    assert response.headers["Location"].endswith(f"/patients/{appointment.patient_id}")
    assert entry(1).status == "WITH_DOCTOR"
    assert db.session.scalars(select(Visit)).all() == []
    assert redis_store.client.get(f"q:{TODAY}:cur:{doctor.id}") == b"000001"


def test_a_doctor_calls_only_their_own_queue(client, clinic_now, doctor):
    reception = make_user(Role.RECEPTION)
    other = make_user(Role.DOCTOR)
    (mine,) = booked_day(doctor, "Meera Nair")
    (theirs,) = booked_day(other, "Priya Sharma")
    checked_in(reception, theirs, mine)  # the other doctor's patient holds token 001
    sign_in(client, doctor)
    page = page_text(client.get("/queue/mine"))
    assert "Priya Sharma" not in page
    response = form_post(client, "/queue/next", {"doctor_id": str(other.id)}, page="/queue/mine")
    visit = db.session.scalars(select(Visit).where(Visit.patient_id == mine.patient_id)).one()
    assert response.headers["Location"].endswith(f"/visits/{visit.id}")
    assert entry(1).status == "WAITING" and entry(2).status == "WITH_DOCTOR"
    response = form_post(
        client,
        "/queue/1/status",
        {"status": "SKIPPED", "back": "queue.doctor_queue"},
        page="/queue/mine",
        follow_redirects=True,
    )
    assert "A doctor moves only their own queue's tokens." in flashes(page_text(response))
    assert entry(1).status == "WAITING"


def test_reception_cannot_call_next(client, clinic_now, reception, doctor):
    (meera,) = booked_day(doctor, "Meera Nair")
    checked_in(reception, meera)
    sign_in(client, reception)
    assert client.get("/queue/mine").status_code == 403
    response = form_post(client, "/queue/next", {"doctor_id": str(doctor.id)}, page="/queue/")
    assert response.status_code == 403
    assert entry(1).status == "WAITING"


def test_admin_calls_next_for_a_doctor_from_the_queue_page(client, clinic_now, admin, doctor):
    reception = make_user(Role.RECEPTION)
    meera, priya = booked_day(doctor, "Meera Nair", "Priya Sharma")
    checked_in(reception, meera, priya)
    sign_in(client, admin)
    page = page_text(client.get("/queue/"))
    assert f'<input type="hidden" name="doctor_id" value="{doctor.id}">' in page
    response = form_post(client, "/queue/next", {"doctor_id": str(doctor.id)}, page="/queue/")
    assert response.headers["Location"].endswith(f"/patients/{meera.patient_id}")
    page = page_text(client.get("/queue/"))
    assert re.search(r'Now with the doctor:\s*<strong class="mono">001</strong> Meera', page)
    assert ">Complete 001</button>" in page  # no visit was opened: the token completes here


def test_admin_sees_an_open_visit_instead_of_complete(client, clinic_now, admin, doctor):
    (meera,) = booked_day(doctor, "Meera Nair")
    checked_in(make_user(Role.RECEPTION), meera)
    queue.call_next(doctor)
    visit = visits.open_for_token(doctor, 1)
    db.session.commit()
    sign_in(client, admin)
    page = page_text(client.get("/queue/"))
    assert '<span class="tag">visit in progress</span>' in page
    assert f'href="/visits/{visit.id}">Open visit 001</a>' in page
    assert ">Complete 001</button>" not in page and ">Skip 001</button>" in page


def test_the_pages_survive_redis_losing_the_day(client, clinic_now, doctor):
    reception = make_user(Role.RECEPTION)
    meera, priya = booked_day(doctor, "Meera Nair", "Priya Sharma")
    checked_in(reception, meera, priya)
    redis_store.client.flushdb()
    sign_in(client, doctor)
    page = page_text(client.get("/queue/mine"))
    assert "<h2>Waiting (2)</h2>" in page
    response = form_post(client, "/queue/next", {}, page="/queue/mine", follow_redirects=True)
    page = page_text(response)
    assert "Token 001 called: Meera Nair. Next: 002 Priya Sharma." in flashes(page)
    data = client.get("/queue/board/data").get_json()
    assert data["doctors"][0]["now_serving"]["display"] == "001"


@pytest.mark.parametrize(
    "url", ["/queue/today?patient_id=%C2%B2", "/queue/today?q=%C2%B2", "/queue/today?q=%25"]
)
def test_odd_query_values_are_ignored(client, clinic_now, reception, url):
    """`²` passes str.isdigit() but not int(): it must be ignored, not a server error."""
    sign_in(client, reception)
    assert client.get(url).status_code == 200


def test_an_odd_doctor_id_on_call_next_is_not_a_server_error(client, clinic_now, admin, doctor):
    reception = make_user(Role.RECEPTION)
    (meera,) = booked_day(doctor, "Meera Nair")
    checked_in(reception, meera)
    sign_in(client, admin)
    response = form_post(client, "/queue/next", {"doctor_id": "\u00b2"}, page="/queue/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/queue/")
    page = page_text(client.get("/queue/"))
    assert '<p class="flash flash-error" role="alert">' in page  # the service's refusal
    assert entry(1).status == "WAITING"


# ---- pages that stay current -----------------------------------------------------------------


def live_tag(page: str) -> str:
    """The version a live page shows (the fragment's ETag when it was rendered)."""
    return html.unescape(re.search(r'data-live-etag="([^"]+)"', page).group(1))


def poll(client, url: str, tag: str):
    return client.get(url, headers={"If-None-Match": f'"{tag}"'})


def test_the_queue_fragment_is_304_until_a_check_in(client, clinic_now, reception, doctor):
    meera, priya = booked_day(doctor, "Meera Nair", "Priya Sharma")
    checked_in(reception, meera)
    sign_in(client, reception)
    page = page_text(client.get("/queue/"))
    assert 'data-live-url="/queue/live"' in page and 'href="/queue/">Refresh</a>' in page
    tag = live_tag(page)
    unchanged = poll(client, "/queue/live", tag)
    assert unchanged.status_code == 304 and unchanged.get_data() == b""

    checked_in(make_user(Role.RECEPTION), priya)  # at another desk
    changed = poll(client, "/queue/live", tag)
    assert changed.status_code == 200
    assert changed.mimetype == "text/html"
    body = page_text(changed)
    assert body.lstrip().startswith('<div id="queue-doctors" data-live-region>')
    assert [row[1:3] for row in waiting_rows(body)] == [
        ("001", "Meera Nair"),
        ("002", "Priya Sharma"),
    ]
    assert "<html" not in body and "csrf_token" in body  # the region's forms still post
    new_tag = changed.headers["ETag"].strip('"')
    assert new_tag != tag
    assert poll(client, "/queue/live", new_tag).status_code == 304


def test_the_waiting_minutes_move_on_once_a_minute(client, clinic_now, reception, doctor):
    (meera,) = booked_day(doctor, "Meera Nair")
    checked_in(reception, meera)
    sign_in(client, reception)
    tag = live_tag(page_text(client.get("/queue/")))
    with clock.fixed(clinic_now + timedelta(seconds=30)):
        assert poll(client, "/queue/live", tag).status_code == 304
    with clock.fixed(later(3)):
        changed = poll(client, "/queue/live", tag)
    assert changed.status_code == 200
    assert waiting_rows(page_text(changed))[0][4] == "3"


def test_the_today_fragment_follows_bookings_and_the_queue(client, clinic_now, reception, doctor):
    slots = make_slots(doctor, start="10:00", end="11:00")
    make_appointment(make_patient(None, full_name="Priya Sharma"), slots[0])
    sign_in(client, reception)
    page = page_text(client.get(TODAY_URL))
    assert 'data-live-url="/queue/today/live"' in page
    tag = live_tag(page)
    assert poll(client, "/queue/today/live", tag).status_code == 304

    # A booking made elsewhere changes no token, and still shows.
    make_appointment(make_patient(None, full_name="Priya Menon"), slots[1])
    changed = poll(client, "/queue/today/live", tag)
    assert changed.status_code == 200
    body = page_text(changed)
    assert "Priya Menon" in body and 'id="walk-in"' not in body  # the form is left alone
    tag = changed.headers["ETag"].strip('"')
    assert poll(client, "/queue/today/live", tag).status_code == 304

    walker = make_patient(None, full_name="Ravi Walker")
    queue.walk_in(reception, {"patient_id": walker.id, "doctor_id": doctor.id})
    db.session.commit()
    changed = poll(client, "/queue/today/live", tag)
    assert changed.status_code == 200
    assert "Ravi Walker" in section(page_text(changed), "walk-ins")


def test_my_queue_fragment_follows_the_doctors_queue(client, clinic_now, doctor):
    reception = make_user(Role.RECEPTION)
    sign_in(client, doctor)
    page = page_text(client.get("/queue/mine"))
    assert 'data-live-url="/queue/mine/live"' in page
    tag = live_tag(page)
    assert poll(client, "/queue/mine/live", tag).status_code == 304
    (meera,) = booked_day(doctor, "Meera Nair")
    checked_in(reception, meera)
    changed = poll(client, "/queue/mine/live", tag)
    assert changed.status_code == 200
    waiting = section(page_text(changed), "mine-waiting")
    assert "<h2>Waiting (1)</h2>" in waiting and "001</span> Meera Nair" in waiting


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("/queue/live", {"reception", "doctor", "pharmacist", "admin"}),
        ("/queue/today/live", {"reception", "admin"}),
        ("/queue/mine/live", {"doctor"}),
    ],
)
def test_each_fragment_is_for_the_roles_of_its_page(app, clinic_now, url, allowed):
    for role in ("reception", "doctor", "pharmacist", "admin"):
        browser = client_for(app, make_user(Role(role.upper())))
        assert browser.get(url).status_code == (200 if role in allowed else 403), role
    assert app.test_client().get(url).status_code == 302  # signed out: to the sign-in page


@pytest.mark.parametrize("url", ["/queue/", "/queue/live", TODAY_URL, "/queue/today/live"])
def test_desk_pages_cost_the_same_statements_for_two_patients_or_eight(
    app, client, clinic_now, reception, url
):
    doctor = make_user(Role.DOCTOR)
    slots = make_slots(doctor, start="10:00", end="13:00")
    sign_in(client, reception)

    def add(count: int) -> None:
        for _ in range(count):
            slot = slots.pop(0)
            checked_in(reception, make_appointment(make_patient(None), slot, reception))
            queue.walk_in(reception, {"patient_id": make_patient(None).id, "doctor_id": doctor.id})
            db.session.commit()

    add(1)
    few = count_statements(app, lambda: client.get(url))
    add(3)
    many = count_statements(app, lambda: client.get(url))
    assert many == few, (few, many)
    assert few <= 6, few  # one of them the header's clinic name (the admin's settings)


@pytest.mark.parametrize(
    ("page", "url"), [("/queue/", "/queue/live"), (TODAY_URL, "/queue/today/live")]
)
def test_a_poll_that_finds_nothing_new_is_cheap(app, client, clinic_now, reception, page, url):
    (meera,) = booked_day(make_user(Role.DOCTOR), "Meera Nair")
    checked_in(reception, meera)
    sign_in(client, reception)
    tag = live_tag(page_text(client.get(page)))
    answers = []
    # The signed-in user, and for Today the appointments' fingerprint: nothing else.
    statements = count_statements(app, lambda: answers.append(poll(client, url, tag)))
    assert answers[0].status_code == 304
    assert statements <= (2 if url == "/queue/today/live" else 1), statements


def test_my_queue_costs_the_same_statements_for_two_patients_or_eight(app, client, clinic_now):
    doctor = make_user(Role.DOCTOR)
    reception = make_user(Role.RECEPTION)
    sign_in(client, doctor)
    for _ in range(2):
        queue.walk_in(reception, {"patient_id": make_patient(None).id, "doctor_id": doctor.id})
    db.session.commit()
    few = count_statements(app, lambda: client.get("/queue/mine"))
    for _ in range(6):
        queue.walk_in(reception, {"patient_id": make_patient(None).id, "doctor_id": doctor.id})
    db.session.commit()
    assert count_statements(app, lambda: client.get("/queue/mine")) == few


# ---- the waiting-room board ------------------------------------------------------------------


def set_key(admin_client, key: str):
    return form_post(admin_client, "/admin/display", {"display_key": key})


def open_board(screen, key: str):
    return form_post(screen, "/queue/board/key", {"display_key": key}, page="/queue/board")


def test_board_asks_a_signed_out_screen_for_the_display_key(client, clinic_now):
    response = client.get("/queue/board")
    assert response.status_code == 200
    page = page_text(response)
    assert "Waiting-room board" in page
    assert 'name="display_key"' in field_block(page, "display_key")
    assert "board.js" not in page
    assert client.get("/queue/board/data").status_code == 401


def test_the_wrong_key_is_refused(app, client, clinic_now, admin):
    set_key(client_for(app, admin), KEY)
    response = open_board(client, "not-the-right-key")
    assert response.status_code == 401
    block = field_block(page_text(response), "display_key")
    assert "has-error" in block and "That is not the display key." in block
    assert client.get("/queue/board/data").status_code == 401
    assert "board.js" not in page_text(client.get("/queue/board"))


def test_with_no_key_set_no_screen_can_open_the_board(client, clinic_now):
    response = open_board(client, KEY)
    assert response.status_code == 401
    assert "That is not the display key." in page_text(response)


def test_the_key_opens_the_board_and_data_follows_the_queue(app, client, clinic_now, admin):
    doctor = make_user(Role.DOCTOR, full_name="Anil Kumar")
    reception = make_user(Role.RECEPTION)
    meera, priya = booked_day(doctor, "Meera Devi Nair", "Priya Sharma")
    checked_in(reception, meera, priya)
    queue.call_next(admin, doctor.id)
    db.session.commit()

    staff = client_for(app, admin)
    response = set_key(staff, KEY)
    assert response.status_code == 200
    page = page_text(response)
    assert f'The new display key is <strong class="mono">{KEY}</strong>' in page
    page = page_text(staff.get("/admin/display"))
    assert KEY not in page  # shown once
    assert "A display key is set (since " in page

    response = open_board(client, f"  {KEY} ")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/queue/board")
    page = page_text(client.get("/queue/board"))
    assert "board.js" in page
    assert 'data-url="/queue/board/data"' in page

    response = client.get("/queue/board/data")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-cache"
    etag = response.headers["ETag"]
    assert etag
    data = response.get_json()
    assert data["date"] == "2030-01-07"
    (column,) = data["doctors"]
    assert column["doctor"] == {"id": doctor.id, "name": "Anil Kumar"}
    assert column["now_serving"]["display"] == "001"
    assert column["now_serving"]["initials"] == "M.N."
    assert [t["display"] for t in column["next"]] == ["002"]
    assert column["next"][0]["initials"] == "P.S."

    body = response.get_data(as_text=True)
    for patient in (db.session.get(Patient, a.patient_id) for a in (meera, priya)):
        assert patient.full_name not in body
        assert patient.phone not in body
        assert patient.mrn not in body
    for word in ("Meera", "Devi", "Nair", "Priya", "Sharma"):
        assert word not in body

    response = client.get("/queue/board/data", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.get_data() == b""

    queue.set_status(admin, 1, "COMPLETED")
    db.session.commit()
    response = client.get("/queue/board/data", headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response.headers["ETag"] != etag
    (column,) = response.get_json()["doctors"]
    assert column["now_serving"] is None
    assert [t["display"] for t in column["next"]] == ["002"]


def test_a_new_key_locks_out_screens_opened_with_the_old_one(app, client, clinic_now, admin):
    staff = client_for(app, admin)
    set_key(staff, KEY)
    assert open_board(client, KEY).status_code == 302
    assert client.get("/queue/board/data").status_code == 200

    assert set_key(staff, "a-brand-new-screen-key").status_code == 200
    response = client.get("/queue/board/data")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert "board.js" not in page_text(client.get("/queue/board"))
    assert open_board(client, KEY).status_code == 401
    assert open_board(client, "a-brand-new-screen-key").status_code == 302
    assert client.get("/queue/board/data").status_code == 200


def test_signed_in_staff_open_the_board_without_a_key(client, clinic_now, pharmacist):
    sign_in(client, pharmacist)
    assert "board.js" in page_text(client.get("/queue/board"))
    assert client.get("/queue/board/data").status_code == 200


def test_an_empty_key_makes_a_random_one(app, client, clinic_now, admin):
    staff = client_for(app, admin)
    page = page_text(staff.get("/admin/display"))
    assert "No display key is set: only signed-in staff can open the board." in page
    response = set_key(staff, "")
    assert response.status_code == 200
    match = re.search(
        r'The new display key is <strong class="mono">([^<]+)</strong>', page_text(response)
    )
    assert match
    key = match.group(1)
    assert len(key) >= 12
    assert open_board(client, key).status_code == 302
    assert client.get("/queue/board/data").status_code == 200

    again = re.search(
        r'The new display key is <strong class="mono">([^<]+)</strong>',
        page_text(set_key(staff, "")),
    ).group(1)
    assert again != key


def test_a_too_short_key_is_shown_beside_the_field(app, client, clinic_now, admin):
    staff = client_for(app, admin)
    set_key(staff, KEY)
    response = set_key(staff, "short")
    assert response.status_code == 422
    page = page_text(response)
    block = field_block(page, "display_key")
    assert "has-error" in block and "Use 12 to 200 characters." in block
    assert "The new display key is" not in page
    # The old key still opens the board.
    assert open_board(client, KEY).status_code == 302


@pytest.mark.parametrize("role", ["reception", "doctor", "pharmacist"])
def test_only_an_admin_sets_the_display_key(app, client, clinic_now, request, role):
    user = request.getfixturevalue(role)
    sign_in(client, user)
    assert client.get("/admin/display").status_code == 403
    token = csrf_token(client, "/queue/")
    response = client.post("/admin/display", data={"display_key": KEY, "csrf_token": token})
    assert response.status_code == 403
    screen = app.test_client()
    assert open_board(screen, KEY).status_code == 401


def test_board_data_is_json_for_a_screen_with_no_queue(app, client, clinic_now, admin):
    set_key(client_for(app, admin), KEY)
    open_board(client, KEY)
    response = client.get("/queue/board/data")
    assert response.status_code == 200
    assert json.loads(response.get_data(as_text=True)) == {
        "date": "2030-01-07",
        "version": response.get_json()["version"],
        "doctors": [],
    }


def test_wrong_keys_at_the_board_are_throttled_per_address(app, clinic_now, admin):
    set_key(client_for(app, admin), KEY)
    screen = app.test_client()
    screen.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    limit = app.config["DISPLAY_KEY_MAX_FAILURES"]
    for n in range(limit):
        assert open_board(screen, f"guess-number-{n}").status_code == 401
    response = open_board(screen, KEY)  # the right key, too late from there
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 60
    block = field_block(page_text(response), "display_key")
    assert "has-error" in block and "Too many wrong display keys" in block
    assert screen.get("/queue/board/data").status_code == 401
    # the waiting room's own screen is not held by someone else's guesses
    tv = app.test_client()
    tv.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    assert open_board(tv, KEY).status_code == 302
