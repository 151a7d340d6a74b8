"""Request plumbing shared by every blueprint: request ids, security headers, errors, and
the one place a request's transaction is committed or rolled back (`transaction`)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps

from flask import Flask, current_app, flash, g, jsonify, render_template, request
from flask_jwt_extended import get_current_user, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from flask_login import current_user
from flask_smorest import Api
from flask_wtf import FlaskForm
from jwt.exceptions import PyJWTError
from sqlalchemy.exc import DataError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import IntegerConverter

from qure.core import audit, logs
from qure.core import db as database
from qure.core.db import commit
from qure.core.errors import DatabaseUnavailable, DomainError, InvalidInput
from qure.core.forms import attach_errors
from qure.core.roles import declared_roles
from qure.core.schemas import ErrorSchema
from qure.extensions import db

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

# Deeper than any body Qure reads (its deepest is three levels); far below the depth at
# which parsing or validating would exhaust Python's recursion limit.
MAX_JSON_DEPTH = 64
SURROGATE = re.compile("[\ud800-\udfff]")

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
        "files",
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
    log.error(
        "unhandled %s on %s %s (request %s)\n%s",
        type(error).__name__,
        request.method,
        request.url_rule.rule if request.url_rule else "?",
        g.get("request_id"),
        logs.frames(error.__traceback__),
    )
    if is_api_request():
        return error_response(500, "server_error", "Something went wrong on our side.")
    return render_template("errors/error.html", status=500, error=None), 500


def handle_database_error(error: SQLAlchemyError):
    """A database that cannot be reached or refuses changes (`core.db.unavailable`: lost
    or refused connections, a shutdown or restart, read-only, disk full) is a 503
    `database_unavailable` with a plain message and Retry-After, in the API's error shape
    or on the error page; any other database error is a bug, a 500 as any other. The
    request's transaction is rolled back here (the app context's end then removes the
    session), so the next request starts clean. One log line: the exception's class and
    SQLSTATE, never its message (it holds the statement and its values)."""
    kind = database.unavailable(error)
    if kind is None:
        return handle_unexpected(error)
    _roll_back_quietly()
    log.warning(
        "database unavailable (%s): %s/%s SQLSTATE %s on %s %s (request %s)",
        kind.replace("_", " "),
        type(error).__name__,
        type(getattr(error, "orig", None)).__name__,
        database.sqlstate_of(error) or "-",
        request.method,
        request.url_rule.rule if request.url_rule else "?",
        g.get("request_id"),
    )
    refusal = DatabaseUnavailable(refusing_changes=kind == database.REFUSES_CHANGES)
    headers = {"Retry-After": str(refusal.retry_after), "Cache-Control": "no-store"}
    if is_api_request():
        return error_response(
            503, refusal.code, refusal.message, details=refusal.details, headers=headers
        )
    return _unavailable_page(refusal, reachable=kind == database.REFUSES_CHANGES), 503, headers


def _roll_back_quietly() -> None:
    # A connection already gone cannot roll back: the session's removal then closes it.
    with contextlib.suppress(SQLAlchemyError):
        db.session.rollback()


def _unavailable_page(refusal: DatabaseUnavailable, reachable: bool) -> str:
    """The error page with the refusal's message. Its header names the signed-in user,
    whose row the rollback expired: read again when the database still reads, else (or
    when that read fails) the page is drawn as for nobody signed in, without a query."""
    if reachable:
        try:
            return render_template("errors/error.html", status=503, error=refusal)
        except SQLAlchemyError:
            _roll_back_quietly()
    g._login_user = current_app.login_manager.anonymous_user()  # flask-login's slot
    return render_template("errors/error.html", status=503, error=refusal)


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


class Unreadable(ValueError):
    """A request body or query string no handler can read (the message says why)."""


def _check_json_value(value) -> None:
    """Walk a parsed JSON value without recursion: refuse nesting beyond MAX_JSON_DEPTH
    and strings (keys too) holding a lone surrogate, which no text column can store."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                raise Unreadable("The JSON holds a \\u escape that is not a character.")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise Unreadable(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.")
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((inner, depth + 1) for inner in item.values())
        else:
            stack.extend((inner, depth + 1) for inner in item)


def _check_json_body() -> None:
    """Parse a JSON body once, strictly: UTF-8 only, valid JSON, sane depth, no lone
    surrogates. Reading it raises 413 when it is over MAX_CONTENT_LENGTH."""
    raw = request.get_data(cache=True)
    if not raw:
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("The request body is not UTF-8 text.") from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise Unreadable(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.") from None
    except ValueError:
        raise Unreadable("The request body is not valid JSON.") from None
    _check_json_value(value)


def body_limit(setting: str) -> Callable:
    """A route that takes bodies up to the `setting`'s bytes instead of MAX_CONTENT_LENGTH
    (a CSV import's upload); `refuse_unreadable` applies it before the body is read."""

    def decorate(fn: Callable) -> Callable:
        fn.qure_body_limit = setting
        return fn

    return decorate


def _route_body_limit() -> int | None:
    """The body limit the matched route declares with `body_limit` (looking through the
    decorators that wrap it), set on the request when the caller may use the route; None
    when it declares none, or for anyone else (who gets MAX_CONTENT_LENGTH)."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    route = view
    while view is not None:
        setting = getattr(view, "qure_body_limit", None)
        if setting:
            if not _caller_holds(declared_roles(route) or frozenset()):
                return None
            request.max_content_length = int(current_app.config[setting])
            return request.max_content_length
        view = getattr(view, "__wrapped__", None)
    return None


def _caller_holds(roles: frozenset[str]) -> bool:
    """Whether the caller is signed in with one of `roles`, found as cheaply as the route
    itself would find them (a bearer token on the API, the session's user on pages), so
    that nobody else's large body is read before the route refuses it."""
    if is_api_request():
        try:
            verify_jwt_in_request(optional=True)
            user = get_current_user()
        except (JWTExtendedException, PyJWTError):  # the route itself says what is wrong
            return False
    else:
        user = current_user if current_user.is_authenticated else None
    return user is not None and getattr(user, "role", None) in roles


def refuse_unreadable():
    """before_request, first of all: a body or query string no handler could read is
    refused here, in the error shape (400 `bad_request`, 413 `too_large`), so that no
    handler meets text it cannot store or nesting it cannot walk."""
    limit = _route_body_limit()
    try:
        request.args  # noqa: B018 - raw non-UTF-8 bytes in the query fail to decode here
        if request.is_json:
            _check_json_body()
        elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            request.form  # noqa: B018 - parsed now, so its size limits answer 413 here
    except RequestEntityTooLarge:
        if limit:
            megabytes = f"{limit / (1024 * 1024):g}"
            return _refusal(413, "too_large", f"The file is too large: at most {megabytes} MB.")
        return _refusal(413, "too_large", "The request is too large to read.")
    except UnicodeDecodeError:
        return _refusal(400, "bad_request", "The address is not UTF-8 text.")
    except Unreadable as error:
        return _refusal(400, "bad_request", str(error))
    return None


def _refusal(status: int, code: str, message: str):
    if is_api_request():
        return error_response(status, code, message)
    page = render_template("errors/error.html", status=status, error=InvalidInput(message))
    return page, status


@dataclass
class Outcome:
    """How a `transaction` block ended: `error` is the DomainError it caught (rolled back
    and already shown), None when the work was committed."""

    error: DomainError | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def status(self) -> int:
        """The answer's status for a page re-rendered after the error (422, 409, ...)."""
        return self.error.status if self.error else 200


Show = Callable[[DomainError], object]


def _shower(show: str | FlaskForm | Show | None) -> Show | None:
    """`show` as a callable: "flash" flashes the message, a form gets the field errors."""
    if show == "flash":
        return lambda error: flash(error.message, "error")
    if show is None or callable(show):
        return show
    return lambda error: attach_errors(show, error)


@contextmanager
def transaction(
    show: str | FlaskForm | Show | None = "flash",
    *,
    catch: tuple[type[DomainError], ...] = (DomainError,),
    commit_on: tuple[type[DomainError], ...] = (),
) -> Iterator[Outcome]:
    """One user action, one transaction: the block's work is committed once when it ends
    (after-commit hooks then publish and enqueue); any exception rolls it back (on-rollback
    hooks then undo what went to Redis ahead of the commit).

    A DomainError of `catch` ends the block quietly, kept in `Outcome.error` and shown by
    `show`: "flash" (the message, for a redirect), a form (the fields beside its inputs,
    for a 422 re-render), a callable, or None (the view shows it). Any other exception
    propagates after the rollback: a DomainError becomes the error page or the API's
    error shape (`handle_domain_error`). `commit_on` errors are committed all the same
    (a failed sign-in is audited) before they are caught or propagate."""
    outcome = Outcome()
    try:
        yield outcome
    except DomainError as error:
        if isinstance(error, commit_on):
            _commit()
        else:
            db.session.rollback()
        if not isinstance(error, catch):
            raise
        outcome.error = error
        shower = _shower(show)
        if shower is not None:
            shower(error)
    except BaseException:
        db.session.rollback()
        raise
    else:
        _commit()


def _commit() -> None:
    """Commit; a COMMIT that fails (a lost connection, say) is rolled back, so the
    on-rollback work still runs."""
    try:
        commit()
    except BaseException:
        db.session.rollback()
        raise


def transactional(view=None, *, commit_on: tuple[type[DomainError], ...] = ()):
    """The view or API handler as one `transaction`; a DomainError propagates, so the API
    answers in its error shape and a page shows the error page."""

    def decorate(fn):
        @wraps(fn)
        def run(*args, **kwargs):
            with transaction(catch=(), commit_on=commit_on):
                return fn(*args, **kwargs)

        return run

    return decorate(view) if view is not None else decorate


def _time_requests(app: Flask) -> None:
    """Server-Timing on every response: the request's wall time and the CPU time of the
    thread that served it, from the first before_request hook to the last after_request
    hook (what the WSGI server itself spends is not in it)."""

    def start() -> None:
        g.timing_started = (time.perf_counter(), time.thread_time())

    def finish(response):
        started = g.get("timing_started")
        if started is not None:
            wall = (time.perf_counter() - started[0]) * 1000
            cpu = (time.thread_time() - started[1]) * 1000
            response.headers["Server-Timing"] = f"app;dur={wall:.2f}, cpu;dur={cpu:.2f}"
        return response

    app.before_request_funcs.setdefault(None, []).insert(0, start)
    # after_request hooks run last-registered first: this one goes in first, so runs last.
    app.after_request_funcs.setdefault(None, []).insert(0, finish)


def init_app(app: Flask) -> None:
    app.url_map.converters["int"] = BoundedInt
    # First of the before_request hooks (CSRF's included): nothing reads a bad body.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_unreadable)
    if app.config.get("SERVER_TIMING"):
        _time_requests(app)  # before even that, to time the whole request

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
        if request.path.startswith("/api/") or request.endpoint == "auth.login" or _signed_in():
            response.headers["Cache-Control"] = "no-store"
        return response

    def _signed_in() -> bool:
        try:
            return current_user.is_authenticated
        except SQLAlchemyError:  # the database is away: the user cannot be read; assume so
            return True

    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(DataError, handle_data_error)
    app.register_error_handler(SQLAlchemyError, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)
