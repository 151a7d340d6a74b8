"""The reports' two blueprints, apart from the modules that fill them: `bp`, the pages
under /reports, and `blp`, the API under /api/v1/reports. Each report's page and API
modules add their routes to these; views.py and api.py import those modules so that the
routes exist when the app registers the blueprints. Kept here, not in views.py / api.py,
so that no module imports the module that imports it (tests/core/test_imports.py)."""

from __future__ import annotations

from flask import Blueprint
from flask_smorest import Blueprint as ApiBlueprint

bp = Blueprint("reports", __name__, url_prefix="/reports")
blp = ApiBlueprint("api_reports", __name__, url_prefix="/api/v1/reports", description="Reports")
