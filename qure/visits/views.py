"""The doctor's visit workspace: banner, vitals, findings, notes, the prescription builder,
complete, print. Thin: every change goes through the visits or prescriptions service."""

from __future__ import annotations

from io import BytesIO

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from qure.core.db import commit
from qure.core.errors import Conflict, DomainError, InvalidInput
from qure.core.forms import ActionForm, attach_errors, small_int
from qure.core.roles import Role, roles_required
from qure.extensions import db
from qure.patients import service as patients
from qure.pharmacy import service as pharmacy
from qure.prescriptions import service as prescriptions
from qure.visits import service
from qure.visits.forms import AdviceForm, FindingsForm, ItemForm, NoteForm, StartForm, VitalsForm

bp = Blueprint("visits", __name__)


@bp.post("/visits/start")
@roles_required(Role.DOCTOR)
def start():
    """Start a visit from a patient's page (or open the one already in progress)."""
    form = StartForm()
    patient_id = small_int(form.patient_id.data) if form.validate_on_submit() else None
    if patient_id is None:
        abort(400)
    try:
        visit = service.start_or_open(g.actor, {"patient_id": patient_id})
        commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("patients.view", patient_id=patient_id))
    return redirect(url_for(".workspace", visit_id=visit.id))


def _workspace(visit, status: int = 200, **forms):
    patient = visit.patient
    history = [v for v in service.patient_visits(patient.id, 4) if v.id != visit.id][:3]
    prescription = prescriptions.for_visit(visit.id)
    mq = request.args.get("mq", "").strip()[:80]
    found = pharmacy.search(mq, True, 1, 10).items if mq else []
    vitals = forms.get("vitals") or VitalsForm(formdata=None)
    findings = forms.get("findings") or FindingsForm(formdata=None)
    if "vitals" not in forms:
        vitals.fill(visit, current_app.config["TEMPERATURE_UNIT"].upper())
    if "findings" not in forms:
        findings.fill(visit)
    return render_template(
        "visits/workspace.html",
        visit=visit,
        patient=patient,
        age=patients.age(patient),
        history=history,
        prescription=prescription,
        rx=prescriptions.plain(prescription) if prescription else None,
        bmi=service.bmi(visit),
        fahrenheit=service.fahrenheit(visit.temperature_c),
        vitals=vitals,
        findings=findings,
        note=forms.get("note") or NoteForm(formdata=None),
        item=forms.get("item") or ItemForm(formdata=None),
        advice=AdviceForm(formdata=None, notes=prescription.notes if prescription else None),
        allergy=forms.get("allergy"),
        chosen=forms.get("chosen"),
        mq=mq,
        found=found,
        editable=visit.status == "IN_PROGRESS" and visit.doctor_id == g.actor.id,
        action=ActionForm(),
    ), status


@bp.get("/visits/<int:visit_id>")
@roles_required(*service.READERS)
def workspace(visit_id: int):
    return _workspace(service.get_visit(visit_id, g.actor))


def _change(visit_id: int, form_name: str, form, data_of):
    visit = service.get_visit(visit_id, g.actor)
    if not form.validate_on_submit():
        return _workspace(visit, 422, **{form_name: form})
    try:
        service.update(g.actor, visit_id, data_of(form))
        commit()
        flash("Saved.", "success")
    except InvalidInput as exc:
        db.session.rollback()
        prefix = "vitals." if form_name == "vitals" else ""
        renamed = {k.removeprefix(prefix): v for k, v in exc.fields.items()}
        attach_errors(form, InvalidInput(exc.message, fields=renamed))
        return _workspace(service.get_visit(visit_id), 422, **{form_name: form})
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for(".workspace", visit_id=visit_id))


@bp.post("/visits/<int:visit_id>/vitals")
@roles_required(Role.DOCTOR)
def save_vitals(visit_id: int):
    return _change(visit_id, "vitals", VitalsForm(), lambda f: {"vitals": f.vitals()})


@bp.post("/visits/<int:visit_id>/findings")
@roles_required(Role.DOCTOR)
def save_findings(visit_id: int):
    return _change(visit_id, "findings", FindingsForm(), lambda f: f.findings())


@bp.post("/visits/<int:visit_id>/notes")
@roles_required(Role.DOCTOR)
def add_note(visit_id: int):
    form = NoteForm()
    visit = service.get_visit(visit_id, g.actor)
    if not form.validate_on_submit():
        return _workspace(visit, 422, note=form)
    try:
        note = service.add_note(
            g.actor, visit_id, {"category": form.category.data, "text": form.text.data}
        )
        commit()
        flash("Addendum added." if note.is_addendum else "Note added.", "success")
    except InvalidInput as exc:
        db.session.rollback()
        attach_errors(form, exc)
        return _workspace(visit, 422, note=form)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for(".workspace", visit_id=visit_id) + "#notes")


@bp.post("/visits/<int:visit_id>/prescription/items")
@roles_required(Role.DOCTOR)
def add_item(visit_id: int):
    """Add a medicine; an allergy match comes back as a warning that needs a reason."""
    form = ItemForm()
    visit = service.get_visit(visit_id, g.actor)
    chosen = _chosen(form)
    if not form.validate_on_submit():
        return _workspace(visit, 422, item=form, chosen=chosen)
    try:
        prescriptions.add_item(g.actor, visit_id, form.item(), form.override_reason.data or None)
        commit()
        flash(f"Added {chosen.name if chosen else 'the medicine'}.", "success")
    except Conflict as exc:
        db.session.rollback()
        if exc.code == "allergy_conflict":
            return _workspace(visit, 409, item=form, chosen=chosen, allergy=exc)
        flash(exc.message, "error")
    except InvalidInput as exc:
        db.session.rollback()
        renamed = {k.split(".")[-1]: v for k, v in exc.fields.items()}
        attach_errors(form, InvalidInput(exc.message, fields=renamed))
        return _workspace(visit, 422, item=form, chosen=chosen)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for(".workspace", visit_id=visit_id) + "#prescription")


def _chosen(form: ItemForm):
    medicine_id = small_int(form.medicine_id.data)
    try:
        return pharmacy.get_medicine(medicine_id) if medicine_id else None
    except DomainError:
        return None


@bp.get("/visits/<int:visit_id>/prescription/choose")
@roles_required(Role.DOCTOR)
def choose_medicine(visit_id: int):
    """The item form for one medicine picked from the search."""
    visit = service.get_visit(visit_id, g.actor)
    form = ItemForm(formdata=None)
    form.medicine_id.data = request.args.get("medicine_id", "")
    chosen = _chosen(form)
    if chosen is None:
        flash("Choose a medicine from the search.", "error")
        return redirect(url_for(".workspace", visit_id=visit_id) + "#prescription")
    if chosen.dosage_form not in ("TABLET", "CAPSULE"):
        form.quantity.description = "Packs to dispense (needed for this form)."
    return _workspace(visit, item=form, chosen=chosen)


@bp.post("/visits/<int:visit_id>/prescription/items/<int:position>/remove")
@roles_required(Role.DOCTOR)
def remove_item(visit_id: int, position: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    prescription = prescriptions.for_visit(service.get_visit(visit_id, g.actor).id)
    if prescription is None:
        abort(404)
    try:
        prescriptions.remove_item(g.actor, prescription.id, position)
        commit()
        flash("Removed.", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for(".workspace", visit_id=visit_id) + "#prescription")


@bp.post("/visits/<int:visit_id>/prescription/advice")
@roles_required(Role.DOCTOR)
def save_advice(visit_id: int):
    form = AdviceForm()
    prescription = prescriptions.for_visit(service.get_visit(visit_id, g.actor).id)
    if prescription is None or not form.validate_on_submit():
        flash("Add a medicine first.", "error")
        return redirect(url_for(".workspace", visit_id=visit_id) + "#prescription")
    try:
        prescriptions.update(g.actor, prescription.id, {"notes": form.notes.data})
        commit()
        flash("Saved.", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for(".workspace", visit_id=visit_id) + "#prescription")


@bp.post("/visits/<int:visit_id>/complete")
@roles_required(Role.DOCTOR)
def complete(visit_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        service.complete(g.actor, visit_id)
        commit()
        flash("Visit completed. The next patient can be called.", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for(".workspace", visit_id=visit_id))


# ---- prescriptions: preview and print (every role) ----------------------------------------


@bp.get("/prescriptions/<int:prescription_id>")
@roles_required()
def prescription(prescription_id: int):
    """The HTML preview of the printed prescription."""
    found = prescriptions.get_prescription(prescription_id)
    return render_template(
        "visits/prescription.html",
        values=prescriptions.print_values(found),
        prescription=found,
    )


@bp.get("/prescriptions/<int:prescription_id>/print")
@roles_required()
def print_prescription(prescription_id: int):
    pdf, name = prescriptions.print_pdf(prescription_id)
    return send_file(
        BytesIO(pdf), mimetype="application/pdf", download_name=name, as_attachment=True
    )
