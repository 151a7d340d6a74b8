"""Schemathesis against the API's own OpenAPI document: every operation, as each role, with
generated valid and invalid requests. No answer is a 5xx, and every answer conforms to the
schema documented for its status.

A short run is part of the suite (QURE_FUZZ_EXAMPLES cases per operation and role, valid
and invalid mixed, 2 by default: 680 in all, derandomised so the suite does not flake);
`make fuzz` raises the count and draws new cases each run (QURE_FUZZ_RANDOM=1). Each role's
run is one test, inside the usual rolled-back transaction: what the fuzzing creates (the API
commits) only releases savepoints of the test's connection, so nothing leaks into other
tests (checked from another connection).

Then the classes of bad input the house fixed at the edge, which a generator rarely draws
(lone surrogates, 1,000 nested lists, invalid UTF-8, 10**40, 0000-00-00 / 9999-12-31 /
2030-02-30), are sent to every operation in each place it reads: path, query, headers, body.
"""

from __future__ import annotations

import io
import os
import re
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import text

from qure.core.roles import Role
from qure.extensions import db
from tests.conftest import TABLES
from tests.helpers import bearer, make_patient, make_user

EXAMPLES = int(os.environ.get("QURE_FUZZ_EXAMPLES", "2"))
# The suite's short run is derandomised; `make fuzz` (QURE_FUZZ_RANDOM=1) draws anew.
RANDOM = os.environ.get("QURE_FUZZ_RANDOM") == "1"
CHECKS = [not_a_server_error, response_schema_conformance]
_schema = {}
CASES: list[int] = []  # one entry per request sent, for the count printed at the end


def api_schema(app):
    """The app's OpenAPI document as Schemathesis sees it, loaded once per run."""
    if "schema" not in _schema:
        _schema["schema"] = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return _schema["schema"]


def fuzz(operation, headers: dict) -> str | None:
    """Run the generated cases of one operation; the failure found, or None."""
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        derandomize=not RANDOM,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(strategy)
    def run(case):
        response = case.call(headers=headers)
        CASES.append(1)
        case.validate_response(response, checks=CHECKS, headers=headers)

    started = time.perf_counter()
    try:
        run()
    # Schemathesis reports its findings as a BaseExceptionGroup; list each, then fail.
    except (Exception, BaseExceptionGroup) as exc:
        return f"{operation.label}: {exc}"
    finally:
        if os.environ.get("QURE_FUZZ_TIMES"):
            print(f"{time.perf_counter() - started:7.2f}s {operation.label}")
    return None


def _committed() -> dict[str, int]:
    """The rows of every table as another connection sees them: what was really committed."""
    with db.engine.connect() as other:
        return {t: other.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in TABLES}


@pytest.mark.parametrize("role", list(Role))
def test_every_operation_answers_as_documented_and_never_5xx(app, client, clinic_now, role):
    before = _committed()
    user = make_user(role)
    # Something for the generated ids to find now and then.
    make_patient(user)
    headers = bearer(client, user)
    failures = [
        failure
        for result in api_schema(app).get_all_operations()
        if (failure := fuzz(result.ok(), headers))
    ]
    print(f"{role}: {len(CASES)} generated cases so far")
    assert not failures, "\n\n".join(failures)
    # The API commits, but only savepoints inside the test's transaction: no other
    # connection sees a row of the fuzzing, and the rollback takes it all away.
    assert _committed() == before


# ---- the classes of bad input fixed at the edge, sent to every operation ----------------

DEPTH = 1000
# Each class: what goes in a JSON body (JSON text), in a query string or a path (already
# percent-encoded, or raw latin-1 as a server hands undecodable bytes on), in a header
# (the WSGI environ's latin-1 text).
EDGES = {
    "lone_surrogate": {"json": '"\\ud800"', "url": "%ED%A0%80", "header": "\xed\xa0\x80"},
    "deep_nesting": {
        "json": "[" * DEPTH + "]" * DEPTH,
        "url": "%5B" * DEPTH,
        "header": "[" * DEPTH,
    },
    "invalid_utf8": {"json": None, "url": "%FF%FE%C3", "header": "\xff\xfe\xc3"},
    "huge_number": {"json": str(10**40), "url": str(10**40), "header": str(10**40)},
    "huge_negative": {"json": f"-{10**40}.5e3", "url": f"-{10**40}", "header": f"-{10**40}"},
    "date_0000_00_00": {"json": '"0000-00-00"', "url": "0000-00-00", "header": "0000-00-00"},
    "date_9999_12_31": {"json": '"9999-12-31"', "url": "9999-12-31", "header": "9999-12-31"},
    "date_2030_02_30": {"json": '"2030-02-30"', "url": "2030-02-30", "header": "2030-02-30"},
}
INVALID_UTF8 = b'"\xff\xfe\xed\xa0\x80\xc3"'
# Headers are read before any route: the classes that matter there, to every operation.
IN_HEADERS = ("lone_surrogate", "deep_nesting", "invalid_utf8")
HEADERS = ("X-Request-ID", "Accept", "Idempotency-Key", "X-Display-Key")
_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _operations(app) -> list[dict]:
    """Every API operation: method, OpenAPI path, roles allowed (from the route), query and
    path parameters and the JSON body's property names."""
    spec = app.test_client().get("/api/v1/openapi.json").json
    schemas = spec["components"]["schemas"]
    roles = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            allowed = getattr(app.view_functions[rule.endpoint], "qure_roles", None)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                roles[(method.lower(), _PARAM.sub(r"{\1}", rule.rule))] = allowed
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            params = operation.get("parameters", []) + operations.get("parameters", [])
            content = operation.get("requestBody", {}).get("content", {})
            media = next(iter(content), None)
            schema = content.get(media, {}).get("schema", {})
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            allowed = roles.get((method, path))
            found.append(
                {
                    "method": method,
                    "path": path,
                    "role": Role.ADMIN if not allowed else sorted(allowed)[0],
                    "query": [p["name"] for p in params if p["in"] == "query"],
                    "path_params": [p["name"] for p in params if p["in"] == "path"],
                    "media": media,
                    "properties": list(schema.get("properties", {})),
                }
            )
    return found


def _requests(operation: dict, kind: str):
    """The requests that put the edge `kind` in each place of `operation`: (path, kwargs)."""
    edge = EDGES[kind]

    def url(**replace) -> str:
        path = operation["path"]
        for name in operation["path_params"]:
            path = path.replace("{" + name + "}", replace.get(name, "1"))
        return path

    for name in operation["path_params"]:
        yield url(**{name: edge["url"]}), {}
    for name in operation["query"]:
        yield f"{url()}?{name}={edge['url']}", {}
        # Undecodable bytes as a server passes them on: latin-1 text in QUERY_STRING.
        raw = edge["header"] if edge["json"] else "\xff\xfe"
        yield url(), {"environ_overrides": {"QUERY_STRING": f"{name}={raw}"}}
    if kind in IN_HEADERS:
        # The token (refused: 401), then the other headers the app reads, all at once.
        yield url(), {"environ_overrides": {"HTTP_AUTHORIZATION": f"Bearer {edge['header']}"}}
        environ = {"HTTP_" + n.upper().replace("-", "_"): edge["header"] for n in HEADERS}
        yield url(), {"environ_overrides": environ}
    if operation["media"] == "application/json":
        names = operation["properties"] or ["x"]
        bodies = [
            (
                b"{" + b",".join(b'"%s": %s' % (n.encode(), INVALID_UTF8) for n in chosen) + b"}"
                if edge["json"] is None
                else ("{" + ",".join(f'"{n}": {edge["json"]}' for n in chosen) + "}").encode()
            )
            for chosen in [[n] for n in names] + [names]
        ]
        bodies.append(INVALID_UTF8 if edge["json"] is None else edge["json"].encode())
        for body in bodies:
            yield url(), {"data": body, "content_type": "application/json"}
    elif operation["media"]:
        payload = INVALID_UTF8 if edge["json"] is None else edge["json"].encode()
        for name in operation["properties"] or ["file"]:
            yield url(), {"data": {name: (io.BytesIO(payload), "bad.csv")}}


@pytest.mark.parametrize("kind", list(EDGES))
def test_no_operation_answers_5xx_to_bad_input_in_any_place(app, client, clinic_now, kind):
    tokens = {role: bearer(client, make_user(role))["Authorization"] for role in Role}
    make_patient()
    failures, sent = [], 0
    for operation in _operations(app):
        for path, kwargs in _requests(operation, kind):
            placed = kwargs.pop("environ_overrides", {})
            environ = {"HTTP_AUTHORIZATION": tokens[operation["role"]], **placed}
            answer = client.open(
                path, method=operation["method"].upper(), environ_overrides=environ, **kwargs
            )
            sent += 1
            if answer.status_code >= 500 and answer.status_code != 503:
                where = f"{operation['method'].upper()} {path} {placed} {kwargs}"
                failures.append(f"{where}: {answer.status_code} {answer.get_data()[:200]!r}")
    print(f"{kind}: {sent} requests")
    assert sent > 300  # every operation was reached
    assert not failures, "\n".join(failures[:40])
