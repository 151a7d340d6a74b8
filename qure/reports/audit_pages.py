"""The audit log pages (ADMIN): the log filtered by user, action, resource and clinic
days, newest first, each entry's changes as a table; the same rows as CSV; and a check of
the hash chain. Thin: the reading is `qure.reports.audit`, the check `outbox.verify`.

A MongoDB that does not answer is a 503 page in the layout saying the analytics are
unavailable (the desks keep working; nothing is lost)."""

from __future__ import annotations

from flask import abort, render_template, request

from qure.core import exports, outbox
from qure.core.documents import AnalyticsUnavailable, reading
from qure.core.errors import InvalidInput
from qure.core.forms import ActionForm, int_arg
from qure.core.roles import ROLE_LABELS, Role, roles_required
from qure.reports import audit
from qure.reports.blueprints import bp

PER_PAGE = 50

LINKS = (
    (
        "Audit log",
        "reports.audit_log",
        "Who changed what and when, with each change; download as CSV; check the hash chain.",
    ),
)


def _unavailable(error: AnalyticsUnavailable):
    return render_template("reports/audit_unavailable.html", message=error.message), 503


def _typed() -> dict[str, str]:
    """What was typed in the filter form, shown back as it was."""
    names = ("user_id", "action", "resource_type", "resource_id", "from", "to")
    return {name: request.args.get(name, "").strip()[:80] for name in names}


@bp.get("/audit")
@roles_required(Role.ADMIN)
def audit_log():
    """The audit log, filtered, newest first, a page at a time."""
    typed = _typed()
    errors: dict[str, str] = {}
    filters = audit.Filters()
    try:
        filters = audit.parse(request.args)
    except InvalidInput as error:
        errors = error.fields
    staff = audit.staff()
    try:
        choices = audit.vocabulary()
        page = None if errors else audit.entries(filters, int_arg("page") or 1, PER_PAGE)
    except AnalyticsUnavailable as error:
        return _unavailable(error)
    except InvalidInput as error:  # a page number out of range
        errors, page = error.fields, None
    page_body = render_template(
        "reports/audit.html",
        typed=typed,
        errors=errors,
        staff=staff,
        role_labels={str(k): v for k, v in ROLE_LABELS.items()},
        choices=choices,
        page=page,
        entries=page.items if page else [],
        filters=filters.args(),
        verify_form=ActionForm(),
    )
    return page_body, 422 if errors else 200


@bp.get("/audit.csv")
@roles_required(Role.ADMIN)
def audit_csv():
    """Every entry the filters match, newest first, as a streamed CSV download."""
    try:
        filters = audit.parse(request.args)
    except InvalidInput as error:
        return render_template("errors/error.html", status=422, error=error), 422
    try:
        rows = audit.csv_rows(filters)
    except AnalyticsUnavailable as error:
        return _unavailable(error)
    return exports.csv_response("audit-log.csv", audit.CSV_HEADER, rows)


@bp.post("/audit/verify")
@roles_required(Role.ADMIN)
def audit_verify():
    """Recompute the audit hash chain and show whether it is intact, or each break."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with reading():
            report = outbox.verify()
    except AnalyticsUnavailable as error:
        return _unavailable(error)
    return render_template(
        "reports/audit_verify.html",
        ok=report.ok,
        checked=report.checked,
        problems=report.problems,
    )
