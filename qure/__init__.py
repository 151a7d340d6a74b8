"""Qure: clinic management. `create_app()` builds the Flask application."""

from __future__ import annotations

import importlib.util
import logging
from datetime import timedelta
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from qure import cli, embedded
from qure import config as settings
from qure.admin.api import blp as settings_blp
from qure.admin.views import bp as admin_bp
from qure.auth import service as auth_service
from qure.auth.api import auth_blp, users_blp
from qure.auth.models import User
from qure.auth.views import bp as auth_bp
from qure.billing.api import blp as billing_blp
from qure.billing.api import notes_blp as credit_notes_blp
from qure.billing.views import bp as billing_bp
from qure.core import http, jobs, logs, templating
from qure.core.db import install_session_hooks, ping_idle_connections, with_connect_timeout
from qure.core.http import QureApi, error_response
from qure.core.views import bp as core_bp
from qure.extensions import csrf, db, jwt, login_manager, migrate, mongo, redis_store
from qure.imports.api import blp as imports_blp
from qure.imports.api import jobs_blp
from qure.imports.views import bp as imports_bp
from qure.patients.api import blp as patients_blp
from qure.patients.views import bp as patients_bp
from qure.pharmacy.api import blp as medicines_blp
from qure.pharmacy.api import dispensing_blp, inventory_blp, register_blp
from qure.pharmacy.counter import bp as dispensing_bp
from qure.pharmacy.views import bp as pharmacy_bp
from qure.prescriptions.api import blp as prescriptions_blp
from qure.queue.api import blp as queue_blp
from qure.queue.views import bp as queue_bp
from qure.reports.api import blp as reports_blp
from qure.reports.views import bp as reports_bp
from qure.scheduling.api import appointments_blp, slots_blp
from qure.scheduling.views import bp as scheduling_bp
from qure.visits.api import blp as visits_blp
from qure.visits.views import bp as visits_bp

ROOT = Path(__file__).resolve().parent.parent


def _database_uri(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _configure(app: Flask, overrides: dict | None) -> None:
    app.config.from_object(settings.Defaults)
    app.config.update({k: v for k, v in settings.from_environment().items() if v is not None})
    app.config.from_pyfile("config.py", silent=True)
    app.config.update(overrides or {})
    cfg = app.config
    production = cfg["QURE_ENV"] == "production"
    secret = cfg.get("SECRET_KEY")
    if production and (not secret or secret in settings.KNOWN_WEAK_SECRETS or len(secret) < 32):
        raise RuntimeError(
            "SECRET_KEY must be set to a long random value in production (QURE_ENV=production)."
        )
    jwt_secret = cfg.get("JWT_SECRET_KEY")
    if (
        production
        and jwt_secret
        and (jwt_secret in settings.KNOWN_WEAK_SECRETS or len(jwt_secret) < 32)
    ):
        raise RuntimeError("JWT_SECRET_KEY, when set, must be a long random value in production.")
    if not secret:
        cfg["SECRET_KEY"] = settings.instance_secret(Path(app.instance_path))
    cfg["JWT_SECRET_KEY"] = jwt_secret or cfg["SECRET_KEY"]
    jobs.retry_waits(cfg.get("JOB_RETRY_SECONDS"))  # a bad value stops the start, not a job
    cfg["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=int(cfg["ACCESS_TOKEN_EXPIRE_MINUTES"]))
    cfg["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(days=int(cfg["REFRESH_TOKEN_EXPIRE_DAYS"]))
    secure = cfg.get("COOKIE_SECURE_SETTING")
    cfg["SESSION_COOKIE_SECURE"] = production if secure is None else bool(secure)
    instance = Path(app.instance_path)
    cfg["EMBEDDED_POSTGRES"] = not cfg.get("DATABASE_URL")
    cfg["EMBEDDED_REDIS"] = not cfg.get("REDIS_URL")
    if cfg["EMBEDDED_POSTGRES"]:
        cfg["DATABASE_URL"] = embedded.postgres_url(instance / "pgdata")
    if cfg["EMBEDDED_REDIS"]:
        cfg["REDIS_URL"] = embedded.redis_url(instance / "redis" / "qure.rdb")
    cfg["SQLALCHEMY_DATABASE_URI"] = with_connect_timeout(_database_uri(cfg["DATABASE_URL"]))


def _init_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.session_protection = "strong"
    login_manager.user_loader(auth_service.user_for_session)


def _init_jwt(app: Flask) -> None:
    jwt.init_app(app)

    @jwt.additional_claims_loader
    def _claims(user: User) -> dict:
        return {"role": user.role.value, "ver": user.token_version}

    @jwt.user_identity_loader
    def _identity(user: User) -> str:
        return str(user.id)

    @jwt.user_lookup_loader
    def _lookup(_header, payload):
        return auth_service.user_for_token(payload["sub"], payload.get("ver"))

    def unauthorized(message: str):
        return error_response(401, "unauthorized", message)

    jwt.unauthorized_loader(lambda reason: unauthorized("Send Authorization: Bearer <token>."))
    jwt.invalid_token_loader(lambda reason: unauthorized("The token is not valid."))
    jwt.expired_token_loader(lambda h, p: unauthorized("The token has expired."))
    jwt.user_lookup_error_loader(
        lambda h, p: unauthorized("The token no longer grants access; sign in again.")
    )


def _register_blueprints(app: Flask) -> None:
    for bp in (
        core_bp,
        auth_bp,
        admin_bp,
        patients_bp,
        scheduling_bp,
        queue_bp,
        pharmacy_bp,
        dispensing_bp,
        visits_bp,
        billing_bp,
        reports_bp,
        imports_bp,
    ):
        app.register_blueprint(bp)
    api = QureApi(
        app,
        spec_kwargs={
            "components": {
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "bearerFormat": "JWT",
                    },
                    "displayKey": {"type": "apiKey", "in": "header", "name": "X-Display-Key"},
                }
            },
            "security": [{"bearerAuth": []}],
            "info": {
                "description": (
                    "Qure clinic API. Lists answer {items, page, per_page, total} and take "
                    "?page= and ?per_page=; errors answer {error: {code, message, fields?, "
                    "details?}} with a stable code; authenticate with a bearer token from "
                    "/api/v1/auth/login."
                )
            },
        },
    )
    for blp in (
        auth_blp,
        users_blp,
        patients_blp,
        slots_blp,
        appointments_blp,
        queue_blp,
        medicines_blp,
        inventory_blp,
        dispensing_blp,
        register_blp,
        visits_blp,
        prescriptions_blp,
        settings_blp,
        billing_blp,
        credit_notes_blp,
        reports_blp,
        imports_blp,
        jobs_blp,
    ):
        # The API reads only the Authorization header, never the cookie: no CSRF there.
        csrf.exempt(blp)
        api.register_blueprint(blp)
    app.extensions["qure_api"] = api


def _import_tasks(app: Flask) -> None:
    """Each blueprint's package declares its background jobs in its own `tasks` module,
    when it has one: importing them fills the job registry that `flask worker` and
    `flask serve` read. A new room's jobs need only its `tasks.py`."""
    packages = {bp.import_name.rpartition(".")[0] for bp in app.blueprints.values()}
    for package in sorted(packages):
        if importlib.util.find_spec(f"{package}.tasks") is not None:
            importlib.import_module(f"{package}.tasks")


def create_app(config: dict | None = None) -> Flask:
    """Build the app: settings, extensions, blueprints, error handlers and CLI commands."""
    app = Flask(__name__, instance_path=str(ROOT / "instance"), instance_relative_config=True)
    _configure(app, config)
    app.json.sort_keys = False
    if app.config["PROXY_HOPS"]:
        # Behind nginx: take the client's address and scheme from X-Forwarded-* (the audit
        # trail records the address), trusting only that many proxies.
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logs.install()  # request logs without query strings (a search's `q` is a name)

    db.init_app(app)
    with app.app_context():
        ping_idle_connections(db.engine)  # creates no connection
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    redis_store.init_app(app)
    mongo.init_app(app)
    install_session_hooks()
    _init_login(app)
    _init_jwt(app)
    http.init_app(app)
    templating.init_app(app)
    _register_blueprints(app)
    _import_tasks(app)
    cli.init_app(app)
    return app


# A bare `rq worker` imports a job's module, and with it this package: its jobs then run
# in an app built here (`flask worker` and `flask serve` register their own app instead).
jobs.set_app_factory(create_app)
