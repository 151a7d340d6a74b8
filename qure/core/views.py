"""Health check and the offline API documentation page."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from sqlalchemy import text

from qure.core import outbox
from qure.extensions import db, mongo, redis_store

bp = Blueprint("core", __name__)


def _check(fn) -> str:
    try:
        fn()
        return "ok"
    except Exception as exc:  # any failure of a dependency is reported, not raised
        return f"error: {type(exc).__name__}"


@bp.get("/health")
def health():
    """`{status, checks}`: 503 when PostgreSQL is unreachable, `degraded` when another
    store is down or the outbox is behind."""
    checks = {
        "postgres": _check(lambda: db.session.execute(text("SELECT 1"))),
        "redis": _check(redis_store.client.ping),
        "mongo": _check(lambda: mongo.client.admin.command("ping")),
    }
    backlog: int | None = None
    if checks["postgres"] == "ok":
        backlog = outbox.backlog()
    db.session.rollback()
    checks["outbox_backlog"] = backlog
    if mongo.embedded and checks["mongo"] == "ok":
        checks["mongo"] = "ok (embedded)"
    healthy = all(str(v).startswith("ok") for k, v in checks.items() if k != "outbox_backlog")
    status = "ok" if healthy and (backlog or 0) < 10_000 else "degraded"
    code = 503 if checks["postgres"] != "ok" else 200
    return jsonify({"status": status, "checks": checks}), code


@bp.get("/api/docs")
def api_docs():
    """Swagger UI, served from the app's own static files (no CDN)."""
    return render_template("api_docs.html")
