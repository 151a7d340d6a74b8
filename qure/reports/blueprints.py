"""The reports' two blueprints, on their own so that the modules adding routes to them
(the page modules, the API modules) import them from here, not from `views` or `api`,
which import those modules in turn: no import circle (tests/core/test_imports.py)."""

from __future__ import annotations

from flask import Blueprint
from flask_smorest import Blueprint as ApiBlueprint

bp = Blueprint("reports", __name__, url_prefix="/reports")
blp = ApiBlueprint("api_reports", __name__, url_prefix="/api/v1/reports", description="Reports")
