"""Patient pages: find, register, view, edit, archive, restore."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

from qure.core.errors import Conflict, InvalidInput
from qure.core.forms import ActionForm, attach_errors
from qure.core.http import transaction
from qure.core.roles import Role, roles_required
from qure.patients import service
from qure.patients.forms import ERROR_ALIASES, PatientForm
from qure.prescriptions import service as prescriptions
from qure.visits import service as visits
from qure.visits.forms import StartForm

bp = Blueprint("patients", __name__, url_prefix="/patients")
PER_PAGE = 20
MAX_NEXT = 2000  # longer is no path of ours
bp.add_app_template_filter(service.age_label, "age")


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


def _safe_next(value: str | None) -> str | None:
    """`value` when it is a path on this site ("/appointments/book?doctor_id=3"), else
    None: never another host ("//evil.example", "https://...", "/\\evil.example"), and no
    control characters or spaces, which browsers drop before reading the address."""
    if not value or len(value) > MAX_NEXT or not value.startswith("/"):
        return None
    if value.startswith("//") or "\\" in value or " " in value or not value.isprintable():
        return None
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else None


def _with_patient(path: str, patient_id: int) -> str:
    """A local path with `patient_id` set in its query (replacing any given)."""
    parts = urlsplit(path)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "patient_id"]
    query.append(("patient_id", str(patient_id)))
    return urlunsplit(("", "", parts.path, urlencode(query), parts.fragment))


def _field_errors(form: PatientForm, exc: InvalidInput) -> None:
    """Attach the service's errors to the fields the form's own checks left unfaulted (an
    unreadable date, say, already has its message)."""
    fresh = {
        name: message
        for name, message in exc.fields.items()
        if not getattr(getattr(form, ERROR_ALIASES.get(name, name), None), "errors", None)
    }
    if fresh or not exc.fields:
        attach_errors(form, InvalidInput(exc.message, fields=fresh), ERROR_ALIASES)


def _form_page(form: PatientForm, status: int, patient=None, duplicates=(), next_url=None):
    return render_template(
        "patients/form.html",
        form=form,
        faulted=form.label_errors(),
        duplicates=duplicates,
        patient=patient,
        next_url=next_url,
    ), status


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*service.EDITORS)
def register():
    """Register a patient. Every bad field is reported in one round: the form's own checks
    and the service's rules together. `?name=` prefills the name; `?next=` (a local path)
    is where to go once registered, with `patient_id` added."""
    form = PatientForm()
    if request.method == "GET":
        form.full_name.data = " ".join(request.args.get("name", "").split())[:120] or None
        form.next.data = _safe_next(request.args.get("next"))
        return _form_page(form, 200, next_url=form.next.data)
    next_url = _safe_next(form.next.data)  # posted back: checked again
    checked = form.validate_on_submit()
    with transaction(None, catch=(Conflict, InvalidInput)) as outcome:
        if not checked:
            service.clean(form.patient_data())  # only to report its errors as well
        else:
            patient = service.register(
                g.actor, form.patient_data(), confirm_new=form.confirm_new.data
            )
    if isinstance(outcome.error, Conflict):
        # With somewhere to go, an existing record can be taken there instead.
        duplicates = [
            {
                **c,
                "use": _with_patient(next_url, c["id"]) if next_url and not c["archived"] else None,
            }
            for c in outcome.error.details.get("candidates", [])
        ]
        return _form_page(form, 409, duplicates=duplicates, next_url=next_url)
    if outcome.failed:
        _field_errors(form, outcome.error)
    if not checked or outcome.failed:
        return _form_page(form, 422, next_url=next_url)
    flash(f"Registered {patient.full_name} as {patient.mrn}.", "success")
    if next_url:
        return redirect(_with_patient(next_url, patient.id))
    return redirect(url_for(".view", patient_id=patient.id))


@bp.get("/<int:patient_id>")
@roles_required()
def view(patient_id: int):
    patient = service.get_patient(patient_id)
    clinical = g.actor.role in visits.READERS
    return render_template(
        "patients/view.html",
        patient=patient,
        action=ActionForm(),
        visits=visits.patient_visits(patient.id, 20) if clinical else [],
        prescriptions={p.visit_id: p for p in prescriptions.for_patient(patient.id)},
        open_visit=visits.in_progress_for(patient.id),
        start_form=StartForm(patient_id=patient.id),
    )


@bp.route("/<int:patient_id>/edit", methods=["GET", "POST"])
@roles_required(*service.EDITORS)
def edit(patient_id: int):
    """Edit a patient; like registering, every bad field is reported in one round."""
    patient = service.get_patient(patient_id)
    if patient.archived_at:
        flash("This patient is archived; an admin can restore them.", "error")
        return redirect(url_for(".view", patient_id=patient.id))
    form = PatientForm()
    if request.method == "GET":
        form.fill(patient)
        return _form_page(form, 200, patient)
    checked = form.validate_on_submit()
    data = form.patient_data(editing=True)
    with transaction(lambda error: _field_errors(form, error), catch=(InvalidInput,)) as outcome:
        if not checked:
            service.clean(data, partial=True)  # only to report its errors as well
        else:
            service.update(g.actor, patient_id, data)
    if checked and not outcome.failed:
        flash("Saved.", "success")
        return redirect(url_for(".view", patient_id=patient_id))
    return _form_page(form, 422, service.get_patient(patient_id))


def _admin_action(patient_id: int, action, done: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    with transaction(catch=(Conflict,)) as outcome:
        patient = action(g.actor, patient_id)
    if not outcome.failed:
        flash(done.format(name=patient.full_name), "success")
    return redirect(url_for(".view", patient_id=patient_id))


@bp.post("/<int:patient_id>/archive")
@roles_required(Role.ADMIN)
def archive(patient_id: int):
    return _admin_action(patient_id, service.archive, "{name} is archived.")


@bp.post("/<int:patient_id>/restore")
@roles_required(Role.ADMIN)
def restore(patient_id: int):
    return _admin_action(patient_id, service.restore, "{name} is restored.")
