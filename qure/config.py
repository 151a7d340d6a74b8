"""Settings read from the environment, with embedded defaults for a newcomer's machine.

Every setting can come from an environment variable of the same name or from
`instance/config.py`. Without DATABASE_URL / REDIS_URL / MONGO_URL the app runs on the
embedded servers started by `qure.embedded` (see the README).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

# Values that must never be used as a secret in production.
KNOWN_WEAK_SECRETS = {"", "dev", "change-me", "changeme", "secret", "development"}


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def instance_secret(instance_path: Path) -> str:
    """A random secret kept in instance/ so that development sessions survive a restart."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value)
    path.chmod(0o600)
    return value


def from_environment() -> dict:
    """Collect every setting from the environment (strings converted to their types)."""
    env = os.environ
    return {
        "QURE_ENV": env.get("QURE_ENV", "development"),
        "SECRET_KEY": env.get("SECRET_KEY"),
        "JWT_SECRET_KEY": env.get("JWT_SECRET_KEY"),
        "DATABASE_URL": env.get("DATABASE_URL"),
        "REDIS_URL": env.get("REDIS_URL"),
        "MONGO_URL": env.get("MONGO_URL"),
        "MONGO_DB_NAME": env.get("MONGO_DB_NAME", "qure"),
        "MONGO_TIMEOUT_MS": _int("MONGO_TIMEOUT_MS", 2000),
        "ACCESS_TOKEN_EXPIRE_MINUTES": _int("ACCESS_TOKEN_EXPIRE_MINUTES", 30),
        "REFRESH_TOKEN_EXPIRE_DAYS": _int("REFRESH_TOKEN_EXPIRE_DAYS", 7),
        "CLINIC_TIMEZONE": env.get("CLINIC_TIMEZONE", "Asia/Kolkata"),
        "CLINIC_NAME": env.get("CLINIC_NAME", "Qure Clinic"),
        # Printed on prescriptions and receipts.
        "CLINIC_ADDRESS": env.get("CLINIC_ADDRESS", "12 MG Road, Pune 411001"),
        "CLINIC_PHONE": env.get("CLINIC_PHONE", "+91 20 4000 1234"),
        "CLINIC_REGISTRATION": env.get("CLINIC_REGISTRATION", "Clinic reg. MH/PMC/2024/0001"),
        "CLINIC_GSTIN": env.get("CLINIC_GSTIN", ""),
        # Defaults of the clinic's settings page (admin): the saved values win.
        "CLINIC_UPI_ID": env.get("CLINIC_UPI_ID", ""),
        "CONSULTATION_FEE": env.get("CONSULTATION_FEE", "500.00"),
        "CONSULTATION_GST_RATE": _int("CONSULTATION_GST_RATE", 0),
        "DEFAULT_GST_RATE": _int("DEFAULT_GST_RATE", 18),
        "TEMPERATURE_UNIT": env.get("TEMPERATURE_UNIT", "C"),
        # Sign-in throttling (qure.auth.service.authenticate): per username, after
        # LOGIN_MAX_FAILURES failures in a row each attempt waits 2, 4, 8 ... seconds, up to
        # LOGIN_DELAY_MAX_SECONDS (none from a browser the user signed in from before);
        # failures are forgotten LOGIN_FAILURE_WINDOW_SECONDS after the last. Per address:
        # LOGIN_ADDRESS_MAX_FAILURES failures within LOGIN_ADDRESS_WINDOW_SECONDS.
        "LOGIN_MAX_FAILURES": _int("LOGIN_MAX_FAILURES", 5),
        "LOGIN_DELAY_MAX_SECONDS": _int("LOGIN_DELAY_MAX_SECONDS", 60),
        "LOGIN_FAILURE_WINDOW_SECONDS": _int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60),
        "LOGIN_ADDRESS_MAX_FAILURES": _int("LOGIN_ADDRESS_MAX_FAILURES", 20),
        "LOGIN_ADDRESS_WINDOW_SECONDS": _int("LOGIN_ADDRESS_WINDOW_SECONDS", 10 * 60),
        # Wrong display keys one address may send per window before it must wait.
        "DISPLAY_KEY_MAX_FAILURES": _int("DISPLAY_KEY_MAX_FAILURES", 20),
        "DISPLAY_KEY_WINDOW_SECONDS": _int("DISPLAY_KEY_WINDOW_SECONDS", 60),
        "OUTBOX_SWEEP_SECONDS": _int("OUTBOX_SWEEP_SECONDS", 60),
        # Background jobs (qure.core.jobs): the waits before a failed job's three retries
        # (the last one repeats when fewer are given), and how often a worker says it is
        # alive while it runs a job; a job whose worker has been silent for three of these
        # is taken as abandoned (the worker died) and retried.
        "JOB_RETRY_SECONDS": env.get("JOB_RETRY_SECONDS", "10,30,60"),
        "WORKER_HEARTBEAT_SECONDS": _int("WORKER_HEARTBEAT_SECONDS", 30),
        "PROXY_HOPS": _int("PROXY_HOPS", 0),
        # The queue: how late an appointment patient may arrive and keep
        # their slot's place, and when the day's queue closes (clinic-local HH:MM).
        "GRACE_MINUTES": _int("GRACE_MINUTES", 15),
        "CLINIC_OPENING_TIME": env.get("CLINIC_OPENING_TIME", "09:00"),
        "CLINIC_CLOSING_TIME": env.get("CLINIC_CLOSING_TIME", "21:00"),
        "CLOSE_DAY_CHECK_SECONDS": _int("CLOSE_DAY_CHECK_SECONDS", 300),
        # Background jobs: the day-before appointment reminders (sent once the clinic-local
        # hour REMINDER_HOUR has passed, checked every REMINDER_CHECK_SECONDS) and the
        # morning's stock alerts (raised once STOCK_ALERT_HOUR has passed).
        "REMINDER_CHECK_SECONDS": _int("REMINDER_CHECK_SECONDS", 600),
        "REMINDER_HOUR": _int("REMINDER_HOUR", 18),
        "STOCK_ALERT_HOUR": _int("STOCK_ALERT_HOUR", 8),
        # How reminders and alerts are sent: "log" (one line in the log, the default) or
        # "smtp" (email, through the SMTP_* settings).
        "REMINDER_SENDER": env.get("REMINDER_SENDER", "log"),
        "SMTP_HOST": env.get("SMTP_HOST", "localhost"),
        "SMTP_PORT": _int("SMTP_PORT", 25),
        "SMTP_USER": env.get("SMTP_USER"),
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD"),
        "SMTP_FROM": env.get("SMTP_FROM", "clinic@localhost"),
        "SMTP_STARTTLS": _bool(env.get("SMTP_STARTTLS")),
        "SMTP_TIMEOUT_SECONDS": _int("SMTP_TIMEOUT_SECONDS", 10),
        # Used by the waiting-room board until an admin sets one on the settings page.
        "DISPLAY_KEY": env.get("DISPLAY_KEY"),
        "BOARD_POLL_SECONDS": _int("BOARD_POLL_SECONDS", 2),
        # A CSV import's upload may be this large (other requests: MAX_CONTENT_LENGTH).
        "IMPORT_MAX_BYTES": _int("IMPORT_MAX_BYTES", 10 * 1024 * 1024),
        # Each response says what it cost the app (Server-Timing: app;dur=ms, cpu;dur=ms):
        # for load benchmarks and profiling; off by default.
        "SERVER_TIMING": _bool(env.get("QURE_SERVER_TIMING")),
        # None when unset: production then defaults to Secure cookies.
        "COOKIE_SECURE_SETTING": (
            None
            if env.get("SESSION_COOKIE_SECURE") is None
            else _bool(env["SESSION_COOKIE_SECURE"])
        ),
    }


class Defaults:
    """Fixed settings that are not meant to vary between installations."""

    SQLALCHEMY_ECHO = False
    SQLALCHEMY_ENGINE_OPTIONS = {
        # No pre-ping on every checkout (a round trip per request): core.db checks only
        # the connections that sat idle (ping_idle_connections).
        "pool_pre_ping": False,
        "pool_size": 10,
        "max_overflow": 10,
    }
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Flask's signed session cookie is refused after this long, even if someone copied it.
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
    WTF_CSRF_TIME_LIMIT = 8 * 3600
    JWT_TOKEN_LOCATION = ["headers"]
    JWT_HEADER_TYPE = "Bearer"
    API_TITLE = "Qure API"
    API_VERSION = "1.0"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
    MAX_CONTENT_LENGTH = 2 * 1024 * 1024
