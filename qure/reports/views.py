"""Report pages under /reports: the index of the reports a role may open. Each report's
pages live in their own module beside this one, adding their routes to
`blueprints.bp` (imported at the bottom, so that the routes exist when the app registers
the blueprint); each module lists its pages in `LINKS`."""

from __future__ import annotations

from flask import render_template

from qure.core.roles import Role, roles_required
from qure.core.templating import can
from qure.reports.blueprints import bp

__all__ = ["bp"]

# The roles that have at least one report (SPEC: admin all; doctor own patients' visit
# history; pharmacist stock movements).
REPORT_ROLES = (Role.ADMIN, Role.DOCTOR, Role.PHARMACIST)


@bp.get("")
@roles_required(*REPORT_ROLES)
def index():
    links = [
        {"label": label, "endpoint": endpoint, "about": about}
        for module in PAGES
        for label, endpoint, about in getattr(module, "LINKS", ())
        if can(endpoint)
    ]
    return render_template("reports/index.html", links=links)


from qure.reports import (  # noqa: E402 - the page modules add their routes to bp
    audit_pages,
    dashboard_pages,
    listing_pages,
)

PAGES = (dashboard_pages, audit_pages, listing_pages)
