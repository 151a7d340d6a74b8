"""Patient pages: find, register, view, edit, archive, restore."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from qure.core.db import commit
from qure.core.errors import Conflict, InvalidInput
from qure.core.forms import ActionForm, attach_errors
from qure.core.roles import Role, roles_required
from qure.extensions import db
from qure.patients import service
from qure.patients.forms import ERROR_ALIASES, PatientForm

bp = Blueprint("patients", __name__, url_prefix="/patients")
PER_PAGE = 20
bp.add_app_template_global(service.age, "patient_age")


def _int_arg(name: str, default: int) -> int:
    try:
        return max(1, int(request.args.get(name, default)))
    except ValueError:
        return default


@bp.get("/")
@roles_required()
def index():
    """One search box: name fragment, phone, MRN or id."""
    q = request.args.get("q", "").strip()[:120]
    include_archived = request.args.get("archived") == "1"
    results = service.search(q, _int_arg("page", 1), PER_PAGE, include_archived, g.actor)
    return render_template(
        "patients/index.html", q=q, results=results, include_archived=include_archived
    )


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*service.EDITORS)
def register():
    form = PatientForm()
    duplicates: list[dict] = []
    status = 200
    if form.validate_on_submit():
        try:
            patient = service.register(
                g.actor, form.patient_data(), confirm_new=form.confirm_new.data
            )
            commit()
            flash(f"Registered {patient.full_name} as {patient.mrn}.", "success")
            return redirect(url_for(".view", patient_id=patient.id))
        except Conflict as exc:
            db.session.rollback()
            duplicates = exc.details.get("candidates", [])
            status = 409
        except InvalidInput as exc:
            db.session.rollback()
            attach_errors(form, exc, ERROR_ALIASES)
            status = 422
    elif request.method == "POST":
        status = 422
    return render_template(
        "patients/form.html", form=form, duplicates=duplicates, patient=None
    ), status


@bp.get("/<int:patient_id>")
@roles_required()
def view(patient_id: int):
    patient = service.get_patient(patient_id)
    from qure.prescriptions import service as prescriptions
    from qure.visits import service as visits
    from qure.visits.forms import StartForm

    clinical = g.actor.role in visits.READERS
    return render_template(
        "patients/view.html",
        patient=patient,
        age=service.age(patient),
        action=ActionForm(),
        visits=visits.patient_visits(patient.id, 20) if clinical else [],
        prescriptions={p.visit_id: p for p in prescriptions.for_patient(patient.id)},
        open_visit=visits.in_progress_for(patient.id),
        start_form=StartForm(patient_id=patient.id),
    )


@bp.route("/<int:patient_id>/edit", methods=["GET", "POST"])
@roles_required(*service.EDITORS)
def edit(patient_id: int):
    patient = service.get_patient(patient_id)
    if patient.archived_at:
        flash("This patient is archived; an admin can restore them.", "error")
        return redirect(url_for(".view", patient_id=patient.id))
    form = PatientForm()
    status = 200
    if request.method == "GET":
        form.fill(patient)
    elif form.validate_on_submit():
        try:
            service.update(g.actor, patient_id, form.patient_data(editing=True))
            commit()
            flash("Saved.", "success")
            return redirect(url_for(".view", patient_id=patient_id))
        except InvalidInput as exc:
            db.session.rollback()
            attach_errors(form, exc, ERROR_ALIASES)
            status = 422
    else:
        status = 422
    patient = service.get_patient(patient_id)
    return render_template("patients/form.html", form=form, duplicates=[], patient=patient), status


def _admin_action(patient_id: int, action, done: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        patient = action(g.actor, patient_id)
        commit()
        flash(done.format(name=patient.full_name), "success")
    except Conflict as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for(".view", patient_id=patient_id))


@bp.post("/<int:patient_id>/archive")
@roles_required(Role.ADMIN)
def archive(patient_id: int):
    return _admin_action(patient_id, service.archive, "{name} is archived.")


@bp.post("/<int:patient_id>/restore")
@roles_required(Role.ADMIN)
def restore(patient_id: int):
    return _admin_action(patient_id, service.restore, "{name} is restored.")
