"""Request plumbing shared by every blueprint: request ids, security headers, errors."""

from __future__ import annotations

import logging
import re
import traceback
import uuid

from flask import Flask, g, jsonify, render_template, request
from flask_login import current_user
from flask_smorest import Api
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from qure.core import audit
from qure.core.errors import DomainError, InvalidInput
from qure.core.schemas import ErrorSchema
from qure.extensions import db

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

# A client's X-Request-ID is kept only when it looks like an id (it goes into audit records).
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_attempts",
    500: "server_error",
    503: "unavailable",
}


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, code: str, message: str, fields=None, details=None, headers=None):
    body: dict = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    if details:
        body["details"] = details
    response = jsonify({"error": body})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _flatten_messages(messages) -> dict[str, str]:
    """webargs/marshmallow messages ({location: {field: [msg]}}) as {field: "msg"}."""
    out: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            out[prefix or "_schema"] = " ".join(value)
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(f"{prefix}.{i}", inner)
        else:
            out[prefix or "_schema"] = str(value)

    if isinstance(messages, dict) and set(messages) <= {
        "json",
        "query",
        "form",
        "headers",
    }:
        for inner in messages.values():
            walk("", inner)
    else:
        walk("", messages)
    return out


class QureApi(Api):
    """flask-smorest's Api answering every HTTP error in Qure's error shape."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):
        if not is_api_request():
            return html_http_error(error)
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        messages = data.get("messages")
        if messages and status in (400, 422):
            fields = _flatten_messages(messages)
            first = next(iter(fields.items()), ("", "invalid"))
            message = f"{first[0]}: {first[1]}" if first[0] else "The request is invalid."
            if status == 400:
                return error_response(400, "bad_request", "The request body is not valid JSON.")
            return error_response(422, "invalid_input", message, fields=fields)
        code = HTTP_CODES.get(status, "error")
        if status >= 500:
            message = "Something went wrong on our side; it has been logged."
        else:
            message = error.description or code
        headers = {**_exception_headers(error), **(data.get("headers") or {})}
        return error_response(status, code, message, headers=headers)


def _exception_headers(error: HTTPException) -> dict[str, str]:
    """Headers the exception itself carries (`Allow` on a 405), without its Content-Type."""
    return {k: v for k, v in error.get_headers() if k.lower() != "content-type"}


def html_http_error(error: HTTPException):
    status = error.code or 500
    page = render_template("errors/error.html", status=status, error=error)
    return page, status, _exception_headers(error)


def handle_domain_error(error: DomainError):
    if is_api_request():
        headers = {}
        if error.status == 429 and "retry_after" in error.details:
            headers["Retry-After"] = str(error.details["retry_after"])
        return error_response(
            error.status,
            error.code,
            error.message,
            error.fields,
            error.details,
            headers,
        )
    return render_template("errors/error.html", status=error.status, error=error), error.status


def handle_unexpected(error: Exception):
    # The exception's message is never logged: a database error's DETAIL carries the
    # values of the row (a patient's phone, say). The type and the frames are enough.
    frames = "".join(traceback.format_list(traceback.extract_tb(error.__traceback__)))
    log.error(
        "unhandled %s on %s %s (request %s)\n%s",
        type(error).__name__,
        request.method,
        request.url_rule.rule if request.url_rule else "?",
        g.get("request_id"),
        frames,
    )
    if is_api_request():
        return error_response(500, "server_error", "Something went wrong on our side.")
    return render_template("errors/error.html", status=500, error=None), 500


class BoundedInt(IntegerConverter):
    """The default `<int:...>` converter, at most 18 digits (a BIGINT holds fewer than 19):
    a longer number names nothing, so no route matches and the answer is 404. Bounding the
    pattern (not `max=`) keeps it a 404 for every method, not a 405."""

    regex = r"\d{1,18}"


def handle_data_error(error: DataError):
    """The last net under validation: a value the database cannot store (a NUL character,
    a number out of range) is the client's mistake, never a 500."""
    db.session.rollback()
    message = "A value is out of range or contains a character that is not allowed."
    if is_api_request():
        return error_response(422, "invalid_input", message)
    page = render_template("errors/error.html", status=422, error=InvalidInput(message))
    return page, 422


def init_app(app: Flask) -> None:
    app.url_map.converters["int"] = BoundedInt

    @app.before_request
    def _request_context() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID_RE.match(given) else uuid.uuid4().hex
        audit.set_context(request.remote_addr, g.request_id)

    @app.teardown_request
    def _forget_request_context(_exc=None) -> None:
        audit.clear_context()

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Request-ID"] = g.get("request_id", "")
        # Patient records must not stay in a shared front-desk browser's cache.
        if (
            request.path.startswith("/api/")
            or request.endpoint == "auth.login"
            or current_user.is_authenticated
        ):
            response.headers["Cache-Control"] = "no-store"
        return response

    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(DataError, handle_data_error)
    app.register_error_handler(Exception, handle_unexpected)
