"""The doctor's visit workspace: banner, one form for vitals, findings, a new note and the
advice (Save, or Complete which saves first), the prescription builder, print. Thin: every
change goes through the visits or prescriptions service.

The prescription builder keeps its own forms (search, choose, add, remove): it adds rows
one at a time. Without JavaScript they do not carry what is typed in the workspace form,
and the page says so beside them; with JavaScript the typed work is kept as a draft in the
browser and restored when the builder brings the doctor back."""

from __future__ import annotations

from io import BytesIO

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from qure.core.errors import DomainError, InvalidInput
from qure.core.forms import ActionForm, attach_errors, small_int
from qure.core.http import transaction
from qure.core.roles import Role, roles_required
from qure.pharmacy import service as pharmacy
from qure.pharmacy import stock
from qure.prescriptions import service as prescriptions
from qure.prescriptions.allergy import allergy_matches, warning
from qure.visits import icd10, service, vitals
from qure.visits.forms import ItemForm, NoteForm, StartForm, WorkspaceForm
from qure.visits.models import VisitStatus

bp = Blueprint("visits", __name__)
# Templates compare with the members (`visit.status == VisitStatus.COMPLETED`).
bp.add_app_template_global(VisitStatus, "VisitStatus")


@bp.post("/visits/start")
@roles_required(Role.DOCTOR)
def start():
    """Start a visit from a patient's page (or open the one already in progress)."""
    form = StartForm()
    patient_id = small_int(form.patient_id.data) if form.validate_on_submit() else None
    if patient_id is None:
        abort(400)
    with transaction() as outcome:
        visit = service.start_or_open(g.actor, {"patient_id": patient_id})
    if outcome.failed:
        return redirect(url_for("patients.view", patient_id=patient_id))
    return redirect(url_for(".workspace", visit_id=visit.id))


def _workspace(visit, status: int = 200, **forms):
    patient = visit.patient
    history = [v for v in service.patient_visits(patient.id, 4) if v.id != visit.id][:3]
    prescription = prescriptions.for_visit(visit.id)
    mq = request.args.get("mq", "").strip()[:80]
    found = pharmacy.search(mq, True, 1, 10).items if mq else []
    chosen = forms.get("chosen")
    # Usable stock (not expired on the clinic's date) beside every medicine on the page,
    # so the doctor sees a stock-out before saving: one query for all of them.
    shown = [m.id for m in found] + ([chosen.id] if chosen else [])
    if prescription:
        shown += [item.medicine_id for item in prescription.items]
    in_stock = stock.levels(shown) if shown else {}
    workspace = forms.get("workspace")
    if workspace is None:
        workspace = WorkspaceForm(formdata=None)
        workspace.fill(visit, current_app.config["TEMPERATURE_UNIT"].upper(), prescription)
    return render_template(
        "visits/workspace.html",
        visit=visit,
        patient=patient,
        history=history,
        prescription=prescription,
        rx=prescriptions.plain(prescription) if prescription else None,
        bmi=vitals.bmi(visit),
        fahrenheit=vitals.fahrenheit(visit.temperature_c),
        form=workspace,
        unsaved="workspace" in forms,
        saved_version=f"{visit.updated_at.isoformat()}/{len(visit.notes)}",
        icd10_hints=_icd10_hints(visit, workspace),
        note=forms.get("note") or NoteForm(formdata=None),
        item=forms.get("item") or ItemForm(formdata=None),
        allergy=forms.get("allergy"),
        chosen=chosen,
        chosen_badge=_allergy_badge(patient, chosen) if chosen else None,
        in_stock={mid: {"usable": n, "next_expiry": e} for mid, (n, e) in in_stock.items()},
        mq=mq,
        found=[(m, _allergy_badge(patient, m)) for m in found],
        editable=visit.status == VisitStatus.IN_PROGRESS and visit.doctor_id == g.actor.id,
        action=ActionForm(),
    ), status


def _icd10_hints(visit, form) -> list:
    """Codes for a diagnosis written in words without a code (offered beside the code
    field, so that the page helps without JavaScript too)."""
    if visit.status != VisitStatus.IN_PROGRESS or form.icd10_code.data or form.icd10_code.errors:
        return []
    return icd10.search(form.diagnosis.data, 5)


def _allergy_badge(patient, medicine) -> str | None:
    """ "Penicillin" when the medicine matches the patient's allergies (the prescriptions
    rule), for the search results; None otherwise."""
    matches = allergy_matches(
        list(patient.allergies or []), medicine.name, medicine.ingredients, medicine.drug_class
    )
    return ", ".join(dict.fromkeys(m.allergy for m in matches)) or None


@bp.get("/visits/<int:visit_id>")
@roles_required(*service.READERS)
def workspace(visit_id: int):
    return _workspace(service.get_visit(visit_id, g.actor))


@bp.post("/visits/<int:visit_id>")
@roles_required(Role.DOCTOR)
def save(visit_id: int):
    """The workspace form: Save writes every section; Complete saves, then completes.
    On any error nothing is written and the page comes back with what was typed."""
    visit = service.get_visit(visit_id, g.actor)
    form = WorkspaceForm()
    completing = "complete" in request.form
    if not form.validate_on_submit():
        return _workspace(visit, 422, workspace=form)
    has_rx = prescriptions.for_visit(visit.id) is not None
    with transaction(lambda error: _workspace_errors(form, error)) as outcome:
        service.save_workspace(g.actor, visit_id, form.values(has_rx), completing)
    if isinstance(outcome.error, InvalidInput):
        return _workspace(service.get_visit(visit_id), 422, workspace=form)
    if outcome.failed:
        return redirect(url_for(".workspace", visit_id=visit_id))
    flash("Visit completed. The next patient can be called." if completing else "Saved.", "success")
    # "Add note" comes first in the form, so Enter in any box presses it: only a note
    # actually written brings the doctor back to the notes.
    noted = request.form.get("save") == "note" and (form.note_text.data or "").strip()
    anchor = "#notes" if noted else ""
    return redirect(url_for(".workspace", visit_id=visit_id) + anchor)


def _workspace_errors(form: WorkspaceForm, error: DomainError) -> None:
    """Field errors beside the workspace's fields; any other refusal is flashed."""
    _form_or_flash(form, error, WorkspaceForm.ALIASES)
    if isinstance(error, InvalidInput):
        form.form_errors.insert(0, "Nothing is saved yet: correct the fields marked below.")


@bp.get("/visits/icd10")
@roles_required(*service.READERS)
def icd10_search():
    """ICD-10 codes for the diagnosis field: `q` is words of a diagnosis or a code's
    beginning; answers {items: [{code, description}]}, best first, at most ten."""
    found = icd10.search(request.args.get("q", "")[:100])
    return jsonify(items=[{"code": c.code, "description": c.description} for c in found])


@bp.post("/visits/<int:visit_id>/notes")
@roles_required(Role.DOCTOR)
def add_note(visit_id: int):
    """An addendum to a completed visit (notes in progress go with the workspace form)."""
    form = NoteForm()
    visit = service.get_visit(visit_id, g.actor)
    if not form.validate_on_submit():
        return _workspace(visit, 422, note=form)
    with transaction(lambda error: _form_or_flash(form, error)) as outcome:
        note = service.add_note(
            g.actor, visit_id, {"category": form.category.data, "text": form.text.data}
        )
    if isinstance(outcome.error, InvalidInput):
        return _workspace(visit, 422, note=form)
    if not outcome.failed:
        flash("Addendum added." if note.is_addendum else "Note added.", "success")
    return redirect(url_for(".workspace", visit_id=visit_id) + "#notes")


def _form_or_flash(form, error: DomainError, aliases: dict[str, str] | None = None) -> None:
    """An InvalidInput beside the form's fields; any other refusal flashed."""
    if isinstance(error, InvalidInput):
        attach_errors(form, error, aliases)
    else:
        flash(error.message, "error")


@bp.post("/visits/<int:visit_id>/prescription/items")
@roles_required(Role.DOCTOR)
def add_item(visit_id: int):
    """Add a medicine; an allergy match comes back as a warning that needs a reason."""
    form = ItemForm()
    visit = service.get_visit(visit_id, g.actor)
    chosen = _chosen(form)
    if not form.validate_on_submit():
        return _workspace(visit, 422, item=form, chosen=chosen)
    with transaction(None) as outcome:
        prescriptions.add_item(g.actor, visit_id, form.item(), form.override_reason.data or None)
    error = outcome.error
    if error is None:
        flash(f"Added {chosen.name if chosen else 'the medicine'}.", "success")
    elif error.code == "allergy_conflict":
        lines = _allergy_lines(error.details.get("matches", []), chosen)
        return _workspace(visit, 409, item=form, chosen=chosen, allergy=lines)
    elif isinstance(error, InvalidInput):
        renamed = {k.split(".")[-1]: v for k, v in error.fields.items()}
        attach_errors(form, InvalidInput(error.message, fields=renamed))
        return _workspace(visit, 422, item=form, chosen=chosen)
    else:
        flash(error.message, "error")
    return redirect(url_for(".workspace", visit_id=visit_id) + "#prescription")


def _allergy_lines(matches: list[dict], chosen) -> list[str]:
    """One warning per medicine and allergy, however many ways they match."""
    lines: dict[tuple, str] = {}
    for match in matches:
        key = (match["medicine_id"], match["allergy"].casefold())
        if key not in lines:
            medicine = chosen if chosen and chosen.id == key[0] else _medicine(key[0])
            made_of = (medicine.ingredients, medicine.drug_class) if medicine else ([], None)
            lines[key] = warning(match["allergy"], match["medicine"], *made_of)
    return list(lines.values())


def _medicine(medicine_id: int):
    try:
        return pharmacy.get_medicine(medicine_id)
    except DomainError:
        return None


def _chosen(form: ItemForm):
    medicine_id = small_int(form.medicine_id.data)
    return _medicine(medicine_id) if medicine_id else None


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
    with transaction() as outcome:
        prescriptions.remove_item(g.actor, prescription.id, position)
    if not outcome.failed:
        flash("Removed.", "success")
    return redirect(url_for(".workspace", visit_id=visit_id) + "#prescription")


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
