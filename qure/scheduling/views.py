"""Schedule pages (a doctor's week, bulk slots, blocking) and appointment pages (book,
view, reschedule, cancel). Thin: every change goes through the scheduling service."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from wtforms.fields.choices import SelectChoice

from qure.core import clock
from qure.core.errors import Conflict, InvalidInput
from qure.core.forms import ActionForm, attach_errors, confirmation_status, int_arg
from qure.core.http import transaction
from qure.core.roles import Role, roles_required
from qure.patients import service as patients
from qure.scheduling import service
from qure.scheduling.forms import (
    BlockRangeForm,
    BlockSlotForm,
    BookForm,
    CancelForm,
    RescheduleForm,
    SlotsForm,
)
from qure.scheduling.models import AppointmentStatus, SlotStatus

bp = Blueprint("scheduling", __name__)
# Templates compare statuses with the members (`slot.status == SlotStatus.OPEN`).
bp.add_app_template_global(AppointmentStatus, "AppointmentStatus")
bp.add_app_template_global(SlotStatus, "SlotStatus")


@bp.app_template_global()
def register_url(typed: str, back: str) -> str:
    """The patients' register page for someone the front desk searched for and did not
    find: the typed name (not a phone number or MRN) comes along, and after saving the
    register page returns to `back` with the new `patient_id`."""
    name = typed if typed and not any(ch.isdigit() for ch in typed) else None
    return url_for("patients.register", name=name, next=back)


def _date_arg(name: str, default: date) -> date:
    try:
        chosen = clock.parse_day(request.args.get(name, ""))
    except ValueError:
        return default
    return chosen if service.in_calendar(chosen) else default


def _doctor_choices(form_field) -> list:
    """Fill a doctor select; returns the doctors."""
    doctors = service.doctors()
    form_field.choices = [SelectChoice(d.id, d.full_name) for d in doctors]
    return doctors


def _owner_id(doctor_id: int | None, doctors: list) -> int | None:
    """The doctor whose schedule the page shows: a doctor's own; an admin's choice (the
    first doctor when none is chosen)."""
    if g.actor.role == Role.DOCTOR:
        return g.actor.id
    if doctor_id is None:
        return doctors[0].id if doctors else None
    return doctor_id


# ---- schedule ------------------------------------------------------------------------------


@bp.get("/schedule/")
@roles_required(*service.SCHEDULERS)
def week():
    """A doctor's week of slots, coloured by status."""
    doctors = service.doctors()
    doctor_id = _owner_id(int_arg("doctor_id"), doctors)
    day = _date_arg("week", clock.today())
    monday = day - timedelta(days=day.weekday())
    days = service.week_slots(doctor_id, monday) if doctor_id else {}
    booked = service.week_appointments(doctor_id, monday) if doctor_id else {}
    return render_template(
        "scheduling/week.html",
        doctors=doctors,
        doctor_id=doctor_id,
        monday=monday,
        days=days,
        booked=booked,
        today=clock.today(),
        timedelta=timedelta,
    )


@bp.route("/schedule/new", methods=["GET", "POST"])
@roles_required(*service.SCHEDULERS)
def create_slots():
    """Bulk-create slots, with a preview of how many will be made and skipped."""
    form = SlotsForm()
    doctors = _doctor_choices(form.doctor_id)
    status, preview = 200, None
    if request.method == "GET":
        form.doctor_id.data = _owner_id(int_arg("doctor_id"), doctors)
    elif form.validate_on_submit():
        data = form.slot_data()
        if g.actor.role == Role.DOCTOR:
            data["doctor_id"] = g.actor.id
        with transaction(form, catch=(InvalidInput,)) as outcome:
            if form.create.data:
                result = service.bulk_create(g.actor, data)
            else:
                preview = _preview(service.plan_slots(g.actor, data))
        if outcome.failed:
            status = 422
        elif form.create.data:
            flash(f"Created {result['created']} slots; skipped {result['skipped']}.", "success")
            return redirect(url_for(".week", doctor_id=data["doctor_id"], week=data["start_date"]))
    else:
        status = 422
    return render_template("scheduling/create.html", form=form, preview=preview), status


def _preview(plan) -> dict:
    """What a slot plan would make: new slots, overlapping ones, past ones, the range."""
    overlapping = service.overlapping_count(plan)
    return {
        "make": len(plan.periods) - overlapping,
        "overlapping": overlapping,
        "past": plan.skipped_past,
        "first": plan.periods[0][0] if plan.periods else None,
        "last": plan.periods[-1][0] if plan.periods else None,
    }


@bp.route("/schedule/block", methods=["GET", "POST"])
@roles_required(*service.SCHEDULERS)
def block_range():
    """Block every open slot in a range; booked slots are listed, not changed."""
    form = BlockRangeForm()
    doctors = _doctor_choices(form.doctor_id)
    status, result = 200, None
    if request.method == "GET":
        form.doctor_id.data = _owner_id(int_arg("doctor_id"), doctors)
    elif form.validate_on_submit():
        data = form.range_data(g.actor.id if g.actor.role == Role.DOCTOR else form.doctor_id.data)
        with transaction(form, catch=(InvalidInput,)) as outcome:
            result = service.block_range(g.actor, data)
        if outcome.failed:
            result, status = None, 422
        else:
            flash(f"Blocked {len(result['blocked'])} slots.", "success")
    else:
        status = 422
    return render_template("scheduling/block.html", form=form, result=result), status


@bp.get("/schedule/slots/<int:slot_id>")
@roles_required(*service.SCHEDULERS)
def slot(slot_id: int):
    found = service.get_slot(slot_id)
    service.schedule_owner(g.actor, found.doctor_id)
    return render_template(
        "scheduling/slot.html",
        slot=found,
        appointment=service.slot_appointment(found.id),
        form=BlockSlotForm(),
        action=ActionForm(),
    )


@bp.post("/schedule/slots/<int:slot_id>/block")
@roles_required(*service.SCHEDULERS)
def block_slot(slot_id: int):
    form = BlockSlotForm()
    if not form.validate_on_submit():
        flash("Give a reason to block the slot.", "error")
        return redirect(url_for(".slot", slot_id=slot_id))
    return _slot_change(slot_id, True, form.reason.data)


@bp.post("/schedule/slots/<int:slot_id>/unblock")
@roles_required(*service.SCHEDULERS)
def unblock_slot(slot_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    return _slot_change(slot_id, False, None)


def _slot_change(slot_id: int, blocked: bool, reason: str | None):
    with transaction(catch=(Conflict, InvalidInput)) as outcome:
        found = service.set_blocked(g.actor, slot_id, blocked, reason)
    if outcome.failed:
        found = service.get_slot(slot_id)
    else:
        flash("Slot blocked." if blocked else "Slot open again.", "success")
    when = clock.clinic_day(found.start_at)
    return redirect(url_for(".week", doctor_id=found.doctor_id, week=when.isoformat()))


# ---- appointments --------------------------------------------------------------------------


@bp.route("/appointments/book", methods=["GET", "POST"])
@roles_required(*service.BOOKERS)
def book():
    """Choose a doctor and a date and see the open slots (a time may be picked before the
    patient), find the patient (`patient_id` in the query string chooses one), book."""
    doctors = service.doctors()
    doctor_id = int_arg("doctor_id") or (doctors[0].id if doctors else None)
    day = _date_arg("date", clock.today())
    q = request.args.get("q", "").strip()[:120]
    form = BookForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            details = {
                "patient_id": form.patient_id.data,
                "slot_id": form.slot_id.data,
                "reason": form.reason.data,
            }
            with transaction(lambda error: form.form_errors.append(error.message)) as outcome:
                appointment = service.book(g.actor, details)
            if not outcome.failed:
                flash("Booked.", "success")
                return redirect(url_for(".appointment", appointment_id=appointment.id))
            status = outcome.status
        else:
            status = 422
    patient_id = form.patient_id.data or int_arg("patient_id")
    chosen = patients.on_file(patient_id)
    found = patients.search(q, 1, 10, False, g.actor).items if q else []
    slots = service.coming_slots(doctor_id, day) if doctor_id else []
    return render_template(
        "scheduling/book.html",
        form=form,
        doctors=doctors,
        doctor_id=doctor_id,
        doctor=next((d for d in doctors if d.id == doctor_id), None),
        day=day,
        q=q,
        found=found,
        chosen=chosen,
        slots=slots,
        open_slots=[s for s in slots if s.status == SlotStatus.OPEN],
        slot_id=form.slot_id.data or int_arg("slot_id"),
    ), status


@bp.get("/appointments/")
@roles_required(*service.READERS)
def appointments():
    """A day's appointments (a doctor sees their own)."""
    day = _date_arg("date", clock.today())
    doctor_id = int_arg("doctor_id")
    page = service.list_appointments(g.actor, day, doctor_id, None, None, 1, 200)
    return render_template(
        "scheduling/appointments.html",
        day=day,
        doctor_id=doctor_id,
        doctors=service.doctors(),
        items=page.items,
        timedelta=timedelta,
    )


@bp.get("/appointments/<int:appointment_id>")
@roles_required(*service.READERS)
def appointment(appointment_id: int):
    found = service.get_appointment(appointment_id, g.actor)
    day = _date_arg("date", clock.clinic_day(found.start_at))
    scheduled = found.status == AppointmentStatus.SCHEDULED
    choices = service.open_slots(found.doctor_id, day) if scheduled else []
    return render_template(
        "scheduling/appointment.html",
        appointment=found,
        day=day,
        choices=choices,
        form=RescheduleForm(),
    )


@bp.post("/appointments/<int:appointment_id>/reschedule")
@roles_required(*service.BOOKERS)
def reschedule(appointment_id: int):
    form = RescheduleForm()
    if not form.validate_on_submit():
        flash("Choose a new time.", "error")
        return redirect(url_for(".appointment", appointment_id=appointment_id))
    with transaction() as outcome:
        service.reschedule(g.actor, appointment_id, {"slot_id": form.slot_id.data})
    if not outcome.failed:
        flash("Moved to the new time.", "success")
    return redirect(url_for(".appointment", appointment_id=appointment_id))


def _after_cancel(appointment_id: int, back: str | None) -> str:
    """Where the cancel page leads: back to Today when it was opened from there."""
    if back == "today":
        return url_for("queue.today")
    return url_for(".appointment", appointment_id=appointment_id)


@bp.route("/appointments/<int:appointment_id>/cancel", methods=["GET", "POST"])
@roles_required(*service.BOOKERS)
def cancel(appointment_id: int):
    """Confirm a cancellation, with the reason (kept on the appointment and audited)."""
    form = CancelForm()
    status = confirmation_status(form)
    if status is None:
        with transaction(None, catch=(Conflict, InvalidInput)) as outcome:
            service.cancel(g.actor, appointment_id, form.reason.data)
        if not outcome.failed:
            flash("Cancelled; the slot is open again.", "success")
            return redirect(_after_cancel(appointment_id, form.back.data))
        if isinstance(outcome.error, Conflict):
            flash(outcome.error.message, "error")
            return redirect(url_for(".appointment", appointment_id=appointment_id))
        attach_errors(form, outcome.error)
        status = outcome.status
    return render_template(
        "scheduling/cancel.html",
        appointment=service.get_appointment(appointment_id, g.actor),
        form=form,
        back_url=_after_cancel(appointment_id, form.back.data),
    ), status
