"""The schedule and appointment pages, as staff use them in a browser (CSRF on).

The clock is pinned to Monday 2030-01-07 10:00 clinic time (`clinic_now`), so a slot at
10:00 has already started and the week shown by default is the week of 07 Jan 2030.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import func, select

from qure.core import clock
from qure.core.roles import Role
from qure.extensions import db
from qure.queue import service as queue
from qure.scheduling import service as scheduling
from qure.scheduling.models import Appointment, Slot
from tests.helpers import (
    TODAY,
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

TOMORROW = TODAY + timedelta(days=1)
NEW = "/schedule/new"
BLOCK = "/schedule/block"
BOOK = "/appointments/book"


def field_block(page: str, name: str) -> str:
    """The `<div class="field">` that holds the input named `name`."""
    for block in re.findall(r'<div class="field[^"]*">.*?</div>', page, re.S):
        if f'name="{name}"' in block:
            return block
    raise AssertionError(f"no field {name} on the page")


def slot_link(slot: Slot) -> str:
    return f'href="/schedule/slots/{slot.id}"'


def slot_class(page: str, slot: Slot) -> str:
    """The status class the week view gives a slot (`OPEN`, `BOOKED`, `BLOCKED`)."""
    match = re.search(rf'<a class="slot (\w+)" {slot_link(slot)}', page)
    assert match, f"slot {slot.id} is not on the page"
    return match.group(1)


def slot_item(page: str, slot: Slot) -> str:
    """The week view's `<li>` for one slot."""
    match = re.search(rf"<li><a class=\"slot \w+\" {slot_link(slot)}.*?</li>", page, re.S)
    assert match, f"slot {slot.id} is not on the page"
    return match.group(0)


def slots_in_db(doctor=None) -> list[Slot]:
    db.session.expire_all()
    query = select(Slot).order_by(Slot.start_at)
    if doctor is not None:
        query = query.where(Slot.doctor_id == doctor.id)
    return list(db.session.scalars(query))


def slot_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Slot))


def fresh(model, key):
    db.session.expire_all()
    return db.session.get(model, key)


def appointments_in_db() -> list[Appointment]:
    db.session.expire_all()
    return list(db.session.scalars(select(Appointment).order_by(Appointment.id)))


def slot_form(**changes) -> dict:
    data = {
        "start_date": TOMORROW.isoformat(),
        "end_date": TOMORROW.isoformat(),
        "weekdays": ["1", "2", "3", "4", "5"],
        "start_time": "09:00",
        "end_time": "10:00",
        "duration_minutes": "15",
        "breaks": "",
    }
    data.update(changes)
    return data


def book_url(doctor, patient=None, day=TODAY) -> str:
    url = f"{BOOK}?doctor_id={doctor.id}&date={day.isoformat()}"
    return url + (f"&patient_id={patient.id}" if patient else "")


# ---- the week ------------------------------------------------------------------------------


def test_doctor_sees_own_week_with_slots_coloured_by_status(client, clinic_now, doctor):
    slots = make_slots(doctor, start="10:30", end="11:30")
    tomorrow = make_slots(doctor, day=TOMORROW, start="09:00", end="09:30")
    patient = make_patient(None, full_name="Meera Nair")
    make_appointment(patient, slots[1])
    scheduling.set_blocked(doctor, slots[2].id, True, "Ward round")
    db.session.commit()
    other = make_user(Role.DOCTOR, full_name="Other Doctor")
    others = make_slots(other, start="10:30", end="11:00")

    sign_in(client, doctor)
    response = client.get("/schedule/")
    assert response.status_code == 200
    page = page_text(response)
    assert "My schedule" in page
    assert "Week of 07 Jan 2030" in page
    assert slot_class(page, slots[0]) == "OPEN"
    assert slot_class(page, slots[1]) == "BOOKED"
    assert slot_class(page, slots[2]) == "BLOCKED"
    assert slot_class(page, slots[3]) == "OPEN"
    assert [slot_class(page, s) for s in tomorrow] == ["OPEN", "OPEN"]
    assert "Meera Nair" in slot_item(page, slots[1])
    assert "10:45" in slot_item(page, slots[1])
    assert "Ward round" in slot_item(page, slots[2])
    assert "Meera Nair" not in slot_item(page, slots[0])
    assert slot_link(others[0]) not in page
    # A doctor cannot look at another doctor's week through the query string.
    page = page_text(client.get(f"/schedule/?doctor_id={other.id}"))
    assert slot_link(others[0]) not in page and slot_link(slots[0]) in page
    # Nor pick a doctor: the picker is for admins.
    assert '<select id="doctor_id" name="doctor_id">' not in page


def test_the_week_pages_back_and_forth(client, clinic_now, doctor):
    next_week = make_slots(doctor, day=TODAY + timedelta(days=7), start="09:00", end="09:15")
    sign_in(client, doctor)
    page = page_text(client.get("/schedule/"))
    assert slot_link(next_week[0]) not in page
    assert f"week={(TODAY + timedelta(days=7)).isoformat()}" in page
    page = page_text(client.get(f"/schedule/?week={(TODAY + timedelta(days=9)).isoformat()}"))
    assert "Week of 14 Jan 2030" in page
    assert slot_class(page, next_week[0]) == "OPEN"


def test_admin_picks_the_doctor(client, clinic_now, admin):
    first = make_user(Role.DOCTOR, full_name="Aarav Doctor")
    second = make_user(Role.DOCTOR, full_name="Zara Doctor")
    first_slots = make_slots(first, start="11:00", end="11:15")
    second_slots = make_slots(second, start="12:00", end="12:15")
    sign_in(client, admin)
    page = page_text(client.get("/schedule/"))
    assert "<h1>Schedule</h1>" in page
    assert '<select id="doctor_id" name="doctor_id">' in page
    assert slot_link(first_slots[0]) in page and slot_link(second_slots[0]) not in page
    page = page_text(client.get(f"/schedule/?doctor_id={second.id}"))
    assert slot_link(second_slots[0]) in page and slot_link(first_slots[0]) not in page
    assert f'<option value="{second.id}" selected>Zara Doctor</option>' in page
    assert slot_class(page, second_slots[0]) == "OPEN"


@pytest.mark.parametrize("role", ["reception", "pharmacist"])
def test_reception_and_pharmacist_cannot_open_schedule_pages(client, clinic_now, request, role):
    user = request.getfixturevalue(role)
    doctor = make_user(Role.DOCTOR)
    (slot,) = make_slots(doctor, start="11:00", end="11:15")
    sign_in(client, user)
    for url in ("/schedule/", NEW, BLOCK, f"/schedule/slots/{slot.id}"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "Not for your role" in page_text(response)
    response = form_post(
        client, f"/schedule/slots/{slot.id}/block", {"reason": "x"}, page="/patients/"
    )
    assert response.status_code == 403
    assert fresh(Slot, slot.id).status == "OPEN"


def test_signed_out_visitor_is_sent_to_sign_in(client):
    for url in ("/schedule/", NEW, BOOK, "/appointments/1"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/login")


# ---- creating slots ------------------------------------------------------------------------


def test_preview_counts_and_creates_nothing_then_create_makes_them(client, clinic_now, doctor):
    sign_in(client, doctor)
    page = page_text(client.get(NEW))
    assert 'name="preview"' in page and 'name="create"' in page
    assert 'name="doctor_id"' not in page  # a doctor creates only their own

    # Today 09:00-11:00: 09:00 to 10:00 have started (10:00 is now), 10:15 to 10:45 are left.
    data = slot_form(start_date=TODAY.isoformat(), end_date=TODAY.isoformat(), end_time="11:00")
    response = form_post(client, NEW, {**data, "preview": "Preview"})
    assert response.status_code == 200
    page = page_text(response)
    assert "<strong>3</strong> slots will be made" in page
    assert "from 07 Jan 2030, 10:15 to 07 Jan 2030, 10:45" in page
    assert "<strong>0</strong> that overlap existing slots" in page
    assert "<strong>5</strong> already in the past" in page
    assert 'value="11:00"' in field_block(page, "end_time")
    assert slot_count() == 0

    response = form_post(client, NEW, {**data, "create": "Create slots"})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/schedule/?")
    assert f"doctor_id={doctor.id}" in location and f"week={TODAY.isoformat()}" in location
    made = slots_in_db(doctor)
    assert [clock.clinic_day(s.start_at) for s in made] == [TODAY] * 3
    assert [s.start_at for s in made] == [later(15), later(30), later(45)]
    assert {s.status for s in made} == {"OPEN"}
    assert {s.duration_minutes for s in made} == {15}
    page = page_text(client.get(location))
    assert "Created 3 slots; skipped 5." in flashes(page)
    assert [slot_class(page, s) for s in made] == ["OPEN", "OPEN", "OPEN"]


def test_preview_counts_overlaps_and_a_second_create_skips_them(client, clinic_now, doctor):
    make_slots(doctor, day=TOMORROW, start="09:00", end="09:30")
    sign_in(client, doctor)
    data = slot_form(duration_minutes="30", breaks="09:30-10:00")
    page = page_text(form_post(client, NEW, {**data, "preview": "Preview"}))
    # 09:00-10:00 in 30 minutes, less the break: one period, overlapping the existing slots.
    assert "<strong>0</strong> slots will be made" in page
    assert "<strong>1</strong> that overlap existing slots" in page
    assert slot_count() == 2

    response = form_post(client, NEW, {**data, "create": "Create slots"}, follow_redirects=True)
    assert response.status_code == 200
    assert "Created 0 slots; skipped 1." in flashes(page_text(response))
    assert slot_count() == 2


def test_admin_creates_slots_for_the_doctor_chosen(client, clinic_now, admin, doctor):
    other = make_user(Role.DOCTOR)
    sign_in(client, admin)
    page = page_text(client.get(f"{NEW}?doctor_id={doctor.id}"))
    assert f'<option selected value="{doctor.id}">' in field_block(page, "doctor_id")
    response = form_post(
        client,
        NEW,
        {**slot_form(weekdays=["2"]), "doctor_id": str(doctor.id), "create": "Create slots"},
    )
    assert response.status_code == 302
    made = slots_in_db()
    assert len(made) == 4
    assert {s.doctor_id for s in made} == {doctor.id}
    assert slots_in_db(other) == []
    assert {s.created_by_id for s in made} == {admin.id}


def test_a_doctor_cannot_create_slots_for_another_doctor(client, clinic_now, doctor):
    other = make_user(Role.DOCTOR)
    sign_in(client, doctor)
    response = form_post(
        client, NEW, {**slot_form(), "doctor_id": str(other.id), "create": "Create slots"}
    )
    assert response.status_code == 302
    made = slots_in_db()
    assert len(made) == 4
    assert {s.doctor_id for s in made} == {doctor.id}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"start_date": "2030-01-10", "end_date": "2030-01-09"},
            "end_date",
            "The end date must not be before the start date.",
        ),
        ({"end_date": "2030-05-01"}, "end_date", "At most 92 days in one request."),
        ({"start_time": "10:00", "end_time": "09:00"}, "end_time", "The day must end after"),
        ({"start_date": ""}, "start_date", "This field is required."),
        ({"breaks": "lunch"}, "breaks", "such as 13:00-14:00"),
        ({"breaks": "13:00-12:00"}, "breaks", "A break must end after it starts."),
        ({"duration_minutes": "20"}, "duration_minutes", "Not a valid choice"),
    ],
)
def test_a_field_error_appears_beside_its_field_and_nothing_is_saved(
    client, clinic_now, doctor, changes, field, message
):
    sign_in(client, doctor)
    for button in ({"preview": "Preview"}, {"create": "Create slots"}):
        response = form_post(client, NEW, {**slot_form(**changes), **button})
        assert response.status_code == 422
        page = page_text(response)
        block = field_block(page, field)
        assert "has-error" in block
        assert message in block
        assert "slots will be made" not in page
        assert slot_count() == 0


def test_no_weekday_checked_is_shown_beside_the_weekdays(client, clinic_now, doctor):
    sign_in(client, doctor)
    data = slot_form()
    del data["weekdays"]
    for button in ({"preview": "Preview"}, {"create": "Create slots"}):
        response = form_post(client, NEW, {**data, **button})
        assert response.status_code == 422
        page = page_text(response)
        fieldset = re.search(r'<fieldset class="weekdays[^"]*">.*?</fieldset>', page, re.S)
        assert fieldset and "has-error" in fieldset.group(0)
        assert "Choose at least one weekday." in fieldset.group(0)
        assert slot_count() == 0


def test_create_without_the_csrf_token_is_refused(client, clinic_now, doctor):
    sign_in(client, doctor)
    response = client.post(NEW, data={**slot_form(), "create": "Create slots"})
    assert response.status_code == 400
    assert slot_count() == 0


# ---- blocking --------------------------------------------------------------------------------


def test_block_range_blocks_open_slots_and_lists_booked_ones(client, clinic_now, doctor):
    slots = make_slots(doctor, start="10:30", end="12:00")  # 10:30 ... 11:45
    make_appointment(make_patient(None, full_name="Meera Nair"), slots[1])  # 10:45
    sign_in(client, doctor)
    page = page_text(client.get(BLOCK))
    assert 'name="doctor_id"' not in page
    response = form_post(
        client,
        BLOCK,
        {"start": "2030-01-07T10:30", "end": "2030-01-07T11:30", "reason": "Staff meeting"},
    )
    assert response.status_code == 200
    page = page_text(response)
    assert "Blocked 3 slots." in flashes(page)
    assert "<h2>Blocked 3 slots</h2>" in page
    assert "1 booked slots in the range were left as they are:" in page
    assert f'<a href="/schedule/slots/{slots[1].id}">07 Jan 2030, 10:45</a>' in page
    db_slots = slots_in_db(doctor)
    assert [s.status for s in db_slots] == [
        "BLOCKED",
        "BOOKED",
        "BLOCKED",
        "BLOCKED",
        "OPEN",
        "OPEN",
    ]
    assert db_slots[0].block_reason == "Staff meeting"
    assert db_slots[1].block_reason is None

    week = page_text(client.get("/schedule/"))
    assert slot_class(week, slots[0]) == "BLOCKED"
    assert "Staff meeting" in slot_item(week, slots[0])
    assert slot_class(week, slots[1]) == "BOOKED"


def test_block_range_with_nothing_booked_says_so(client, clinic_now, admin, doctor):
    make_slots(doctor, start="10:30", end="11:00")
    sign_in(client, admin)
    response = form_post(
        client,
        BLOCK,
        {
            "doctor_id": str(doctor.id),
            # Typed the clinic's way, not in the browser's locale.
            "start": "07 Jan 2030 00:00",
            "end": "08/01/2030 12:00 am",
            "reason": "Leave",
        },
    )
    assert response.status_code == 200
    page = page_text(response)
    assert "Blocked 2 slots." in flashes(page)
    assert "No booked slots in the range." in page
    assert [s.status for s in slots_in_db(doctor)] == ["BLOCKED", "BLOCKED"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"end": "2030-01-07T10:00"}, "end", "The end must be after the start."),
        ({"reason": ""}, "reason", "This field is required."),
        ({"reason": "   "}, "reason", "This field is required."),
        ({"start": "yesterday"}, "start", "Enter the date and time like 02 Dec 2026 13:00."),
    ],
)
def test_block_range_errors_appear_beside_the_field(
    client, clinic_now, doctor, changes, field, message
):
    make_slots(doctor, start="10:30", end="11:00")
    sign_in(client, doctor)
    data = {"start": "2030-01-07T11:00", "end": "2030-01-07T12:00", "reason": "Leave", **changes}
    response = form_post(client, BLOCK, data)
    assert response.status_code == 422
    block = field_block(page_text(response), field)
    assert "has-error" in block and message in block
    assert {s.status for s in slots_in_db(doctor)} == {"OPEN"}


def test_single_slot_block_needs_a_reason_then_blocks_and_unblocks(client, clinic_now, doctor):
    (slot,) = make_slots(doctor, start="11:00", end="11:15")
    url = f"/schedule/slots/{slot.id}"
    sign_in(client, doctor)
    page = page_text(client.get(url))
    assert "07 Jan 2030, 11:00 · 15 minutes" in page
    assert f'action="{url}/block"' in page
    assert 'name="reason"' in field_block(page, "reason")

    response = form_post(client, f"{url}/block", {"reason": ""}, page=url)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(url)
    assert "Give a reason to block the slot." in flashes(page_text(client.get(url)))
    assert fresh(Slot, slot.id).status == "OPEN"

    response = form_post(client, f"{url}/block", {"reason": "Conference"}, page=url)
    assert response.status_code == 302
    assert f"week={TODAY.isoformat()}" in response.headers["Location"]
    week = page_text(client.get(response.headers["Location"]))
    assert "Slot blocked." in flashes(week)
    assert slot_class(week, slot) == "BLOCKED"
    saved = fresh(Slot, slot.id)
    assert (saved.status, saved.block_reason) == ("BLOCKED", "Conference")

    page = page_text(client.get(url))
    assert f'action="{url}/unblock"' in page and f'action="{url}/block"' not in page
    assert "(Conference)" in page
    response = form_post(client, f"{url}/unblock", {}, page=url, follow_redirects=True)
    assert "Slot open again." in flashes(page_text(response))
    saved = fresh(Slot, slot.id)
    assert (saved.status, saved.block_reason) == ("OPEN", None)

    response = form_post(client, f"{url}/unblock", {}, page=url, follow_redirects=True)
    assert "This slot is not blocked." in flashes(page_text(response))


def test_a_booked_slot_cannot_be_blocked(client, clinic_now, doctor):
    (slot,) = make_slots(doctor, start="11:00", end="11:15")
    make_appointment(make_patient(None, full_name="Meera Nair"), slot)
    url = f"/schedule/slots/{slot.id}"
    sign_in(client, doctor)
    page = page_text(client.get(url))
    assert "Meera Nair" in page
    assert "A booked slot is freed by cancelling or moving its appointment." in page
    assert f'action="{url}/block"' not in page
    response = form_post(client, f"{url}/block", {"reason": "Leave"}, page=url)
    assert response.status_code == 302
    page = page_text(client.get(response.headers["Location"]))
    assert "This slot is booked; cancel or move the appointment first." in flashes(page)
    assert fresh(Slot, slot.id).status == "BOOKED"


def test_a_doctor_cannot_open_or_change_another_doctors_slot(client, clinic_now, doctor):
    other = make_user(Role.DOCTOR)
    (slot,) = make_slots(other, start="11:00", end="11:15")
    url = f"/schedule/slots/{slot.id}"
    sign_in(client, doctor)
    response = client.get(url)
    assert response.status_code == 403
    assert "Not for your role" in page_text(response)
    response = form_post(client, f"{url}/block", {"reason": "Mine now"}, page="/schedule/")
    assert response.status_code == 403
    saved = fresh(Slot, slot.id)
    assert (saved.status, saved.block_reason) == ("OPEN", None)


def test_unknown_slot_is_404(client, doctor):
    sign_in(client, doctor)
    assert client.get("/schedule/slots/987654321").status_code == 404


# ---- booking ---------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["08 Jan 2030", "08/01/2030", "2030-01-08"])
def test_the_day_picker_reads_and_shows_the_clinics_date_format(
    client, clinic_now, reception, typed
):
    doctor = make_user(Role.DOCTOR, full_name="Anil Kumar")
    sign_in(client, reception)
    page = page_text(client.get(BOOK, query_string={"doctor_id": doctor.id, "date": typed}))
    assert "2. Time with Anil Kumar · Tue 08 Jan 2030" in page
    picker = re.search(r'<input id="date"[^>]*>', page).group(0)
    assert 'type="text"' in picker and 'value="08 Jan 2030"' in picker


def test_reception_books_through_the_three_steps(client, clinic_now, reception):
    doctor = make_user(Role.DOCTOR, full_name="Anil Kumar")
    slots = make_slots(doctor, start="10:00", end="11:00")  # 10:00 has started: 10:15 ... 10:45
    patient = make_patient(None, full_name="Meera Nair", phone="+919845012345")
    make_patient(None, full_name="Priya Sharma")
    sign_in(client, reception)

    page = page_text(client.get(f"{BOOK}?doctor_id={doctor.id}&date={TODAY.isoformat()}"))
    assert f'<option value="{doctor.id}" selected>Anil Kumar</option>' in page
    # The free times show before a patient is chosen ("is 10:30 free?").
    assert "2. Time with Anil Kumar · Mon 07 Jan 2030" in page
    assert "3 open slots. Pick a time now or later; then find the patient." in page
    assert re.findall(r'class="slot OPEN"[^>]*>(\d\d:\d\d)</a>', page) == [
        "10:15",
        "10:30",
        "10:45",
    ]
    assert 'name="slot_id"' not in page

    page = page_text(client.get(f"{book_url(doctor)}&q=meera"))
    assert "Meera Nair" in page and patient.mrn in page and "Priya Sharma" not in page
    choose = f"/appointments/book?doctor_id={doctor.id}&amp;date={TODAY.isoformat()}"
    raw = client.get(f"{book_url(doctor)}&q=meera").get_data(as_text=True)
    assert f'href="{choose}&amp;patient_id={patient.id}"' in raw
    page = page_text(client.get(f"{book_url(doctor)}&q=nobody"))
    assert "No patient matches “nobody”." in page

    url = book_url(doctor, patient)
    page = page_text(client.get(url))
    assert "Booking for <strong>Meera Nair</strong>" in page
    offered = re.findall(r'name="slot_id" value="(\d+)"', page)
    assert offered == [str(s.id) for s in slots]  # the 10:00 slot was not made

    response = form_post(
        client,
        url,
        {"patient_id": str(patient.id), "slot_id": str(slots[1].id), "reason": "Fever"},
    )
    assert response.status_code == 302
    (appointment,) = appointments_in_db()
    assert response.headers["Location"].endswith(f"/appointments/{appointment.id}")
    assert (appointment.patient_id, appointment.slot_id) == (patient.id, slots[1].id)
    assert (appointment.status, appointment.reason) == ("SCHEDULED", "Fever")
    assert appointment.created_by_id == reception.id
    assert fresh(Slot, slots[1].id).status == "BOOKED"

    page = page_text(client.get(response.headers["Location"]))
    assert "Booked." in flashes(page)
    assert "Appointment · 07 Jan 2030, 10:30" in page
    assert "Meera Nair" in page and "Anil Kumar" in page and "Fever" in page
    assert '<span class="tag">Scheduled</span>' in page

    # The booked slot is no longer offered.
    page = page_text(client.get(url))
    assert str(slots[1].id) not in re.findall(r'name="slot_id" value="(\d+)"', page)


def test_a_time_picked_before_the_patient_stays_picked(client, clinic_now, reception, doctor):
    slots = make_slots(doctor, start="10:30", end="11:30")
    patient = make_patient(None, full_name="Meera Nair")
    sign_in(client, reception)
    raw = client.get(f"{book_url(doctor)}&slot_id={slots[2].id}").get_data(as_text=True)
    assert f'slot_id={slots[2].id}#patient" aria-current="true">11:00</a>' in raw
    assert f'<input type="hidden" name="slot_id" value="{slots[2].id}">' in raw  # in the search

    raw = client.get(f"{book_url(doctor)}&slot_id={slots[2].id}&q=meera").get_data(as_text=True)
    assert f"slot_id={slots[2].id}&amp;patient_id={patient.id}" in raw

    url = f"{book_url(doctor)}&slot_id={slots[2].id}&patient_id={patient.id}"
    page = page_text(client.get(url))
    assert "Booking for <strong>Meera Nair</strong>" in page
    checked = re.findall(r'name="slot_id" value="(\d+)" checked', page)
    assert checked == [str(slots[2].id)]
    response = form_post(
        client, url, {"patient_id": str(patient.id), "slot_id": str(slots[2].id)}, page=url
    )
    assert response.status_code == 302
    (appointment,) = appointments_in_db()
    assert appointment.slot_id == slots[2].id


def test_book_shows_taken_times_as_taken_before_a_patient_is_chosen(
    client, clinic_now, reception, doctor, admin
):
    slots = make_slots(doctor, start="10:30", end="11:30")
    make_appointment(make_patient(None), slots[1])
    scheduling.set_blocked(admin, slots[3].id, True, "Meeting")
    db.session.commit()
    sign_in(client, reception)
    page = page_text(client.get(book_url(doctor)))
    times = re.findall(r'class="slot (OPEN|BOOKED|BLOCKED)[^"]*"[^>]*>(\d\d:\d\d)', page)
    assert times == [
        ("OPEN", "10:30"),
        ("BOOKED", "10:45"),
        ("OPEN", "11:00"),
        ("BLOCKED", "11:15"),
    ]
    assert "2 open slots." in page
    assert f"slot_id={slots[1].id}" not in page  # a taken time cannot be picked


def register_link(page: str) -> tuple[str, dict[str, str]]:
    """The page's "Register a new patient" link: its path and its query values."""
    href = re.search(r'href="([^"]+)">Register a new patient</a>', page).group(1)
    parts = urlsplit(href)
    return parts.path, dict(parse_qsl(parts.query))


def test_book_offers_to_register_someone_not_found(client, clinic_now, reception, doctor):
    (slot,) = make_slots(doctor, start="10:30", end="10:45")
    sign_in(client, reception)
    page = page_text(client.get(f"{book_url(doctor)}&slot_id={slot.id}&q=Asha+Rao"))
    assert register_link(page) == (
        "/patients/new",
        {
            "name": "Asha Rao",
            "next": f"/appointments/book?doctor_id={doctor.id}&date={TODAY}&slot_id={slot.id}",
        },
    )
    # A phone number typed is not a name: only the way back comes along.
    page = page_text(client.get(f"{book_url(doctor)}&q=98450"))
    assert register_link(page) == (
        "/patients/new",
        {"next": f"/appointments/book?doctor_id={doctor.id}&date={TODAY}"},
    )


def test_a_slot_taken_meanwhile_is_a_plain_message(client, clinic_now, reception, doctor):
    slots = make_slots(doctor, start="10:30", end="11:00")
    patient = make_patient(None, full_name="Meera Nair")
    url = book_url(doctor, patient)
    sign_in(client, reception)
    token = csrf_token(client, url)
    make_appointment(make_patient(None, full_name="Early Bird"), slots[0])
    response = client.post(
        url, data={"patient_id": patient.id, "slot_id": slots[0].id, "csrf_token": token}
    )
    assert response.status_code == 409
    page = page_text(response)
    assert '<div class="flash flash-error" role="alert">' in page
    assert "This slot was just taken; choose another." in page
    assert "Booking for <strong>Meera Nair</strong>" in page
    assert re.findall(r'name="slot_id" value="(\d+)"', page) == [str(slots[1].id)]
    (kept,) = appointments_in_db()
    assert kept.patient_id != patient.id


def test_a_blocked_slot_cannot_be_booked(client, clinic_now, reception, doctor, admin):
    (slot,) = make_slots(doctor, start="10:30", end="10:45")
    patient = make_patient(None)
    scheduling.set_blocked(admin, slot.id, True, "Leave")
    db.session.commit()
    sign_in(client, reception)
    response = form_post(
        client,
        book_url(doctor, patient),
        {"patient_id": str(patient.id), "slot_id": str(slot.id)},
    )
    assert response.status_code == 409
    assert "This slot is blocked (Leave)." in page_text(response)
    assert appointments_in_db() == []


def test_a_patient_cannot_be_in_two_places_at_once(client, clinic_now, reception):
    first = make_user(Role.DOCTOR)
    second = make_user(Role.DOCTOR)
    (mine,) = make_slots(first, start="10:30", end="10:45")
    (theirs,) = make_slots(second, start="10:30", end="10:45")
    patient = make_patient(None, full_name="Meera Nair")
    make_appointment(patient, mine)
    sign_in(client, reception)
    response = form_post(
        client,
        book_url(second, patient),
        {"patient_id": str(patient.id), "slot_id": str(theirs.id)},
    )
    assert response.status_code == 409
    page = page_text(response)
    assert "The patient already has an appointment at that time (07 Jan 10:30)." in page
    assert len(appointments_in_db()) == 1
    assert fresh(Slot, theirs.id).status == "OPEN"


def test_a_slot_that_has_started_cannot_be_booked(client, clinic_now, reception, doctor):
    slots = make_slots(doctor, start="10:30", end="11:30")
    patient = make_patient(None)
    url = book_url(doctor, patient)
    sign_in(client, reception)
    token = csrf_token(client, url)
    with clock.fixed(later(40)):  # 10:40: the 10:30 slot has started
        response = client.post(
            url, data={"patient_id": patient.id, "slot_id": slots[0].id, "csrf_token": token}
        )
        assert response.status_code == 422
        page = page_text(response)
        assert "This slot has already started; choose a later one." in page
        offered = re.findall(r'name="slot_id" value="(\d+)"', page)
        assert offered == [str(s.id) for s in slots[1:]]
    assert appointments_in_db() == []
    assert fresh(Slot, slots[0].id).status == "OPEN"


def test_missing_slot_choice_is_shown_beside_the_times(client, clinic_now, reception, doctor):
    make_slots(doctor, start="10:30", end="11:00")
    patient = make_patient(None)
    url = book_url(doctor, patient)
    sign_in(client, reception)
    response = form_post(client, url, {"patient_id": str(patient.id), "reason": "Cough"})
    assert response.status_code == 422
    page = page_text(response)
    fieldset = re.search(r'<fieldset class="slot-choices[^"]*">.*?</fieldset>', page, re.S)
    assert fieldset and "has-error" in fieldset.group(0)
    assert '<p class="error">Choose a time.</p>' in fieldset.group(0)
    assert 'value="Cough"' in page
    assert appointments_in_db() == []


def test_no_open_slots_says_so(client, clinic_now, reception, doctor):
    patient = make_patient(None)
    sign_in(client, reception)
    page = page_text(client.get(book_url(doctor, patient, TOMORROW)))
    assert "No open slots for this doctor on 08 Jan 2030." in page
    assert 'name="slot_id"' not in page


@pytest.mark.parametrize("role", ["pharmacist", "doctor"])
def test_pharmacist_and_doctor_cannot_book(client, clinic_now, request, role):
    user = request.getfixturevalue(role)
    doctor = make_user(Role.DOCTOR)
    (slot,) = make_slots(doctor, start="10:30", end="10:45")
    patient = make_patient(None)
    sign_in(client, user)
    assert client.get(BOOK).status_code == 403
    token = csrf_token(client, "/patients/")
    response = client.post(
        book_url(doctor, patient),
        data={"patient_id": patient.id, "slot_id": slot.id, "csrf_token": token},
    )
    assert response.status_code == 403
    assert appointments_in_db() == []


# ---- the appointment page: reschedule and cancel ---------------------------------------------


def test_reschedule_moves_the_appointment_and_frees_the_old_slot(client, clinic_now, reception):
    doctor = make_user(Role.DOCTOR)
    slots = make_slots(doctor, start="10:30", end="11:30")
    later_slots = make_slots(doctor, day=TOMORROW, start="09:00", end="09:30")
    appointment = make_appointment(make_patient(None, full_name="Meera Nair"), slots[0])
    url = f"/appointments/{appointment.id}"
    sign_in(client, reception)
    page = page_text(client.get(url))
    offered = re.findall(r'name="slot_id" value="(\d+)"', page)
    assert offered == [str(s.id) for s in slots[1:]]
    page = page_text(client.get(f"{url}?date={TOMORROW.isoformat()}"))
    assert re.findall(r'name="slot_id" value="(\d+)"', page) == [str(s.id) for s in later_slots]

    response = form_post(client, f"{url}/reschedule", {"slot_id": str(later_slots[1].id)}, page=url)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(url)
    page = page_text(client.get(url))
    assert "Moved to the new time." in flashes(page)
    assert "Appointment · 08 Jan 2030, 09:15" in page
    moved = fresh(Appointment, appointment.id)
    assert moved.slot_id == later_slots[1].id and moved.status == "SCHEDULED"
    assert fresh(Slot, slots[0].id).status == "OPEN"
    assert fresh(Slot, later_slots[1].id).status == "BOOKED"


def test_reschedule_without_a_choice_or_to_a_taken_slot_changes_nothing(
    client, clinic_now, reception, doctor
):
    slots = make_slots(doctor, start="10:30", end="11:15")
    appointment = make_appointment(make_patient(None), slots[0])
    make_appointment(make_patient(None), slots[1])
    url = f"/appointments/{appointment.id}"
    sign_in(client, reception)
    response = form_post(client, f"{url}/reschedule", {}, page=url, follow_redirects=True)
    assert "Choose a new time." in flashes(page_text(response))
    response = form_post(
        client, f"{url}/reschedule", {"slot_id": str(slots[1].id)}, page=url, follow_redirects=True
    )
    assert "This slot was just taken; choose another." in flashes(page_text(response))
    assert fresh(Appointment, appointment.id).slot_id == slots[0].id
    assert [s.status for s in slots_in_db(doctor)] == ["BOOKED", "BOOKED", "OPEN"]


def test_cancel_asks_for_a_reason_then_frees_the_slot(client, clinic_now, reception, doctor):
    (slot,) = make_slots(doctor, start="10:30", end="10:45")
    appointment = make_appointment(make_patient(None, full_name="Meera Nair"), slot)
    url = f"/appointments/{appointment.id}"
    sign_in(client, reception)
    page = page_text(client.get(url))
    assert f'href="{url}/cancel">Cancel the appointment…</a>' in page
    confirm = client.get(f"{url}/cancel")
    assert confirm.status_code == 200
    page = page_text(confirm)
    assert "Cancel this appointment?" in page and "Meera Nair" in page
    assert f'action="{url}/cancel"' in page and f'href="{url}">Keep it</a>' in page
    assert fresh(Appointment, appointment.id).status == "SCHEDULED"

    response = form_post(client, f"{url}/cancel", {"reason": ""}, page=f"{url}/cancel")
    assert response.status_code == 422
    assert "Say why the appointment is cancelled." in field_block(page_text(response), "reason")
    assert fresh(Appointment, appointment.id).status == "SCHEDULED"

    response = form_post(
        client, f"{url}/cancel", {"reason": "Patient called: travelling"}, page=f"{url}/cancel"
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(url)
    page = page_text(client.get(url))
    assert "Cancelled; the slot is open again." in flashes(page)
    assert '<span class="tag">Cancelled</span>' in page
    assert "Patient called: travelling" in page
    assert f'href="{url}/cancel"' not in page and "<h2>Reschedule</h2>" not in page
    saved = fresh(Appointment, appointment.id)
    assert saved.status == "CANCELLED" and saved.cancelled_at is not None
    assert saved.cancel_reason == "Patient called: travelling"
    assert fresh(Slot, slot.id).status == "OPEN"

    page = page_text(client.get(f"{url}/cancel"))
    assert "it can no longer be cancelled" in page and "Cancel the appointment</button>" not in page
    token = csrf_token(client, "/queue/today")
    response = client.post(
        f"{url}/cancel", data={"csrf_token": token, "reason": "again"}, follow_redirects=True
    )
    assert "This appointment is cancelled." in flashes(page_text(response))


def test_cancel_from_today_returns_to_today(client, clinic_now, reception, doctor):
    (slot,) = make_slots(doctor, start="10:30", end="10:45")
    appointment = make_appointment(make_patient(None, full_name="Meera Nair"), slot)
    url = f"/appointments/{appointment.id}/cancel"
    sign_in(client, reception)
    page = page_text(client.get("/queue/today"))
    assert f'href="{url}?back=today">Cancel…</a>' in page
    page = page_text(client.get(f"{url}?back=today"))
    assert 'href="/queue/today">Keep it</a>' in page
    response = form_post(
        client, url, {"reason": "Feeling better", "back": "today"}, page=f"{url}?back=today"
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/queue/today")
    assert fresh(Appointment, appointment.id).status == "CANCELLED"


def test_cancelling_after_check_in_is_refused(client, clinic_now, reception, doctor):
    (slot,) = make_slots(doctor, start="10:30", end="10:45")
    appointment = make_appointment(make_patient(None), slot)
    queue.check_in(reception, appointment.id)
    db.session.commit()
    url = f"/appointments/{appointment.id}"
    sign_in(client, reception)
    page = page_text(client.get(url))
    assert '<span class="tag">Checked In</span>' in page
    assert f'href="{url}/cancel"' not in page
    token = csrf_token(client, "/queue/today")
    response = client.post(
        f"{url}/cancel", data={"csrf_token": token, "reason": "Changed mind"}, follow_redirects=True
    )
    page = page_text(response)
    assert "The patient has already checked in; it can no longer be cancelled." in flashes(page)
    assert fresh(Appointment, appointment.id).status == "CHECKED_IN"
    assert fresh(Slot, slot.id).status == "BOOKED"


def test_cancel_without_the_csrf_token_is_refused(client, clinic_now, reception, doctor):
    (slot,) = make_slots(doctor, start="10:30", end="10:45")
    appointment = make_appointment(make_patient(None), slot)
    sign_in(client, reception)
    response = client.post(f"/appointments/{appointment.id}/cancel", data={"reason": "x"})
    assert response.status_code == 400
    assert fresh(Appointment, appointment.id).status == "SCHEDULED"


def test_a_doctor_sees_own_appointment_but_not_another_doctors(client, clinic_now, doctor):
    other = make_user(Role.DOCTOR)
    (mine,) = make_slots(doctor, start="10:30", end="10:45")
    (theirs,) = make_slots(other, start="10:30", end="10:45")
    own = make_appointment(make_patient(None, full_name="Meera Nair"), mine)
    foreign = make_appointment(make_patient(None, full_name="Priya Sharma"), theirs)
    sign_in(client, doctor)
    response = client.get(f"/appointments/{own.id}")
    assert response.status_code == 200
    page = page_text(response)
    assert "Meera Nair" in page
    assert "/cancel" not in page and "<h2>Reschedule</h2>" not in page
    response = client.get(f"/appointments/{foreign.id}")
    assert response.status_code == 403
    assert "Priya Sharma" not in page_text(response)
    token = csrf_token(client, f"/appointments/{own.id}")
    response = client.post(f"/appointments/{own.id}/cancel", data={"csrf_token": token})
    assert response.status_code == 403
    assert fresh(Appointment, own.id).status == "SCHEDULED"


def test_the_day_list_shows_a_doctor_only_their_own(client, clinic_now, doctor):
    other = make_user(Role.DOCTOR)
    (mine,) = make_slots(doctor, start="10:30", end="10:45")
    (theirs,) = make_slots(other, start="10:30", end="10:45")
    make_appointment(make_patient(None, full_name="Meera Nair"), mine)
    make_appointment(make_patient(None, full_name="Priya Sharma"), theirs)
    sign_in(client, doctor)
    page = page_text(client.get("/appointments/"))
    assert "Meera Nair" in page and "Priya Sharma" not in page


def test_admin_must_choose_a_doctor_to_create_slots(client, clinic_now, admin, doctor):
    sign_in(client, admin)
    response = form_post(client, NEW, {**slot_form(), "preview": "Preview"})
    assert response.status_code == 422
    block = field_block(page_text(response), "doctor_id")
    assert "has-error" in block and "Choose a doctor." in block
    assert slot_count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "/schedule/?doctor_id=%C2%B2",
        "/schedule/new?doctor_id=%C2%B2",
        "/schedule/block?doctor_id=%C2%B2",
        "/appointments/book?doctor_id=%C2%B2",
        "/appointments/book?patient_id=%C2%B2",
        "/appointments/?doctor_id=%C2%B2",
        "/schedule/?doctor_id=99999999999&week=not-a-date",
        "/appointments/book?doctor_id=-1&date=2030-02-30&q=%25",
    ],
)
def test_odd_query_values_are_ignored(client, clinic_now, admin, doctor, url):
    """A query value that is not a plain number (here `²`, which str.isdigit() accepts but
    int() refuses) is ignored like any other bad value, not a server error."""
    make_slots(doctor, start="10:30", end="11:00")
    sign_in(client, admin)
    response = client.get(url)
    assert response.status_code == 200, url


def test_unknown_appointment_is_404(client, reception):
    sign_in(client, reception)
    assert client.get("/appointments/987654321").status_code == 404
