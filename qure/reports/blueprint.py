"""The /reports blueprint, on its own so that the page modules can add their routes to it
without importing views.py, which imports them (no import circle)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("reports", __name__, url_prefix="/reports")
