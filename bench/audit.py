#!/usr/bin/env python
"""Qure audit log benchmark (issue 13): the filtered audit log page over a full log.

    python bench/audit.py [--entries 1000000] [--repeat 10] [--max-seconds 120]
                          [--scenarios newest,action,...] [--verify]

Fills the document store's `audit_logs` with `--entries` records in bulk (insert_many of
10,000 at a time), shaped exactly as the outbox relay writes them: `_id` = `seq`, a real
hash chain (`prev_hash`, `hash` by `outbox.chain_hash`, so `--verify` checks it whole),
BSON-date timestamps rising with seq over the last 365 days in clinic hours, a day's mix of
front desk, doctors, pharmacy and billing acts by 40 staff on 50,000 patients and their
appointments, tokens, visits, prescriptions, invoices and dispensings. Then it signs in as
an admin through the Flask test client (in this process: the embedded document store lives
in the process that filled it) and times GET /reports/audit for each scenario:

    newest        no filter, page 1
    page_20       no filter, page 20
    action        action=INVOICE_PAID
    user          user_id=<a receptionist>
    resource      resource_type=patient&resource_id=<a patient with many records>
    week          from/to: the last 7 days
    action_month  action=INVOICE_PAID, the last 30 days
    api_action    GET /api/v1/reports/audit-logs?action=INVOICE_PAID (JSON)

The first request of a scenario is reported apart (`first_ms`: the dropdowns' `distinct`
is read then and kept five minutes); then `--repeat` requests (fewer when `--max-seconds`
runs out, at least 3) give p50/p95 and the app's CPU per request (Server-Timing).

MongoDB cannot run on the build machines: without MONGO_URL the store is mongomock, which
has no indexes (every query reads every document in Python, and a sort sorts all the
matches), and it copies every matching document before it applies a limit; its cursor
also re-slices its results at every document, so reading all of them (`--verify`, a CSV
download) takes time quadratic in their number. The figures are mongomock's, as they are;
they say nothing about MongoDB, where every scenario is an index walk (see
qure/reports/audit.py). With MONGO_URL set, the same
run measures a real MongoDB (its database `qure_bench_audit` is emptied first).

Stores: BENCH_DATABASE_URL / BENCH_REDIS_URL (else the embedded servers of bench/run.py);
the PostgreSQL database is a fresh one of its own, `qure_bench_audit`, the Redis database
number 11. Results go to bench/results/audit-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run as base  # bench/run.py: stores, percentiles

DB_NAME = "qure_bench_audit"
REDIS_DB = 11
ZONE = "Asia/Kolkata"
PATIENTS = 50_000
PASSWORD = "bench-audit-password"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
CPU = re.compile(r"cpu;dur=([\d.]+)")

# (action, resource type, acting role, weight): a clinic day's mix.
MIX = (
    ("PATIENT_CREATED", "patient", "RECEPTION", 6),
    ("PATIENT_UPDATED", "patient", "RECEPTION", 4),
    ("APPOINTMENT_BOOKED", "appointment", "RECEPTION", 8),
    ("APPOINTMENT_CHECKED_IN", "appointment", "RECEPTION", 6),
    ("APPOINTMENT_CANCELLED", "appointment", "RECEPTION", 1),
    ("TOKEN_ISSUED", "token", "RECEPTION", 10),
    ("TOKEN_CALLED", "token", "DOCTOR", 9),
    ("TOKEN_COMPLETED", "token", "DOCTOR", 9),
    ("VISIT_STARTED", "visit", "DOCTOR", 9),
    ("VISIT_UPDATED", "visit", "DOCTOR", 8),
    ("VISIT_COMPLETED", "visit", "DOCTOR", 8),
    ("PRESCRIPTION_CREATED", "prescription", "DOCTOR", 6),
    ("INVOICE_CREATED", "invoice", "RECEPTION", 7),
    ("INVOICE_FINALIZED", "invoice", "RECEPTION", 6),
    ("INVOICE_PAID", "invoice", "RECEPTION", 6),
    ("STOCK_DISPENSED", "dispensing", "PHARMACIST", 5),
    ("STOCK_RECEIVED", "batch", "PHARMACIST", 1),
    ("USER_LOGIN", "user", None, 4),
    ("USER_LOGOUT", "user", None, 3),
)
STAFF = {"ADMIN": 2, "DOCTOR": 12, "RECEPTION": 16, "PHARMACIST": 10}


def say(message: str = "") -> None:
    print(message, flush=True)


def fresh_database(db_url: str) -> str:
    """A fresh PostgreSQL database `qure_bench_audit` beside the bench database."""
    import psycopg

    plain = base._plain_pg_url(db_url)
    admin = re.sub(r"/[^/?]+(\?|$)", r"/postgres\1", plain, count=1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return re.sub(r"/[^/?]+(\?|$)", rf"/{DB_NAME}\1", db_url, count=1)


def redis_db(redis_url: str) -> str:
    import redis

    if redis_url.startswith("unix://"):
        url = f"{redis_url.split('?')[0]}?db={REDIS_DB}"
    else:
        url = re.sub(r"(redis://[^/]+)(/\d+)?$", rf"\1/{REDIS_DB}", redis_url)
    redis.Redis.from_url(url).flushdb()
    return url


def make_app(db_url: str, redis_url: str):
    from qure import create_app

    return create_app(
        {
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "MONGO_URL": os.environ.get("MONGO_URL"),
            "MONGO_DB_NAME": DB_NAME,
            "SECRET_KEY": "bench-audit-secret-key-that-is-long-enough-0123456789",
            "BCRYPT_ROUNDS": 4,
            "SERVER_TIMING": True,
            "CLINIC_TIMEZONE": ZONE,
        }
    )


def make_staff() -> dict[str, list[dict]]:
    """The clinic's staff (PostgreSQL users: the page's user select lists them)."""
    from qure.auth import service as users
    from qure.extensions import db

    staff: dict[str, list[dict]] = {}
    for role, count in STAFF.items():
        for n in range(1, count + 1):
            data = {
                "username": f"{role.lower()}{n}",
                "full_name": f"{role.title()} Bench {n}",
                "email": f"{role.lower()}{n}@bench.local",
                "role": role,
                "password": PASSWORD,
            }
            if role == "DOCTOR":
                data["registration_number"] = f"REG-B{n:04d}"
            user = users.create_user(None, data)
            db.session.flush()
            staff.setdefault(role, []).append(
                {"id": user.id, "name": user.full_name, "role": role, "username": user.username}
            )
    db.session.commit()
    return staff


def _changes(action: str, rng: random.Random, n: int) -> dict:
    if action.endswith("_CREATED") or action in ("TOKEN_ISSUED", "APPOINTMENT_BOOKED"):
        return {
            "old": None,
            "new": {
                "status": "PENDING",
                "number": n,
                "notes": None,
                "amount": f"{rng.randint(100, 5000)}.00",
                "contact": {"phone": f"+9198{rng.randint(0, 99_999_999):08d}"},
            },
        }
    if action in ("USER_LOGIN", "USER_LOGOUT"):
        return {"old": None, "new": None}
    return {"old": {"status": "PENDING"}, "new": {"status": action.rsplit("_", 1)[-1]}}


def fill(coll, entries: int, staff: dict[str, list[dict]], seed: int = 13) -> dict:
    """Insert `entries` audit documents as the relay writes them; returns what was made."""
    from qure.core.outbox import GENESIS_HASH, chain_hash

    rng = random.Random(seed)
    actions, weights = list(range(len(MIX))), [m[3] for m in MIX]
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=365)
    step = (now - start) / max(entries, 1)
    counters: dict[str, int] = {}
    prev, batch, made = GENESIS_HASH, [], {}
    patient_hits: dict[int, int] = {}
    everyone = [u for group in staff.values() for u in group]
    for seq in range(1, entries + 1):
        action, rtype, role, _ = MIX[rng.choices(actions, weights)[0]]
        actor = rng.choice(staff[role] if role else everyone)
        if rtype == "patient":
            rid = rng.randint(1, PATIENTS)
            patient_hits[rid] = patient_hits.get(rid, 0) + 1
        elif rtype == "user":
            rid = actor["id"]
        else:
            counters[rtype] = counters.get(rtype, 0) + 1
            rid = counters[rtype] if rng.random() < 0.6 else rng.randint(1, counters[rtype])
        stamp = start + step * seq
        # Clinic hours: the day's acts between 09:00 and 19:00 in Kolkata (03:30-13:30 UTC).
        day = stamp.replace(hour=0, minute=0, second=0, microsecond=0)
        stamp = day + timedelta(hours=3.5) + (stamp - day) * (10 / 24)
        stamp = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
        body = {
            "timestamp": stamp.isoformat(),
            "user": {"id": actor["id"], "name": actor["name"], "role": actor["role"]},
            "action": action,
            "resource": {"type": rtype, "id": rid},
            "changes": _changes(action, rng, seq),
            "ip": f"10.0.{rng.randint(0, 3)}.{rng.randint(2, 254)}",
            "request_id": f"{rng.getrandbits(128):032x}",
            "seq": seq,
            "prev_hash": prev,
        }
        prev = chain_hash(prev, body)
        batch.append({**body, "hash": prev, "_id": seq, "timestamp": stamp})
        made[action] = made.get(action, 0) + 1
        if len(batch) == 10_000:
            coll.insert_many(batch)
            batch = []
            if seq % 100_000 == 0:
                say(f"[audit]   {seq:,} entries")
    if batch:
        coll.insert_many(batch)
    busiest = max(patient_hits, key=patient_hits.get)
    return {
        "entries": entries,
        "by_action": made,
        "patient": busiest,
        "patient_entries": patient_hits[busiest],
    }


def save(result: dict, started: datetime) -> Path:
    """Write the results so far (after each scenario: a long run stopped early keeps them)."""
    base.RESULTS.mkdir(parents=True, exist_ok=True)
    path = base.RESULTS / f"audit-{started:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return base.percentile(ordered, p)


def timed(client, path: str, repeat: int, max_seconds: float) -> dict:
    """The first request, then up to `repeat` more (at least 3 within `max_seconds`)."""

    def one() -> tuple[float, float | None, int, str]:
        t0 = time.perf_counter()
        response = client.get(path)
        ms = (time.perf_counter() - t0) * 1000
        found = CPU.search(response.headers.get("Server-Timing", ""))
        return ms, float(found.group(1)) if found else None, response.status_code, response.text

    first_ms, _, status, text = one()
    if status != 200:
        raise SystemExit(f"{path}: {status}\n{text[:500]}")
    walls, cpus, began = [], [], time.perf_counter()
    while len(walls) < repeat:
        ms, cpu, status, text = one()
        walls.append(ms)
        if cpu is not None:
            cpus.append(cpu)
        if len(walls) >= 3 and time.perf_counter() - began > max_seconds:
            break
    total = (
        re.search(r"\((\d+) in all\)", text)
        or re.search(r"(\d+) found\.", text)
        or re.search(r'"total":\s*(\d+)', text)
    )
    return {
        "path": path,
        "status": status,
        "matched": int(total.group(1)) if total else None,
        "first_ms": round(first_ms, 1),
        "n": len(walls),
        "p50_ms": round(percentile(walls, 50), 1),
        "p95_ms": round(percentile(walls, 95), 1),
        "cpu_p50_ms": round(percentile(cpus, 50), 1) if cpus else None,
    }


def sign_in(client, username: str) -> None:
    page = client.get("/login").text
    token = CSRF.search(page).group(1)
    answer = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    if answer.status_code != 302:
        raise SystemExit(f"sign-in failed: {answer.status_code}")


def bearer(client, username: str) -> dict:
    answer = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {answer.json['access_token']}"}


class ApiClient:
    """The test client with a bearer token on every GET."""

    def __init__(self, client, headers: dict) -> None:
        self.client, self.headers = client, headers

    def get(self, path: str):
        return self.client.get(path, headers=self.headers)


SCENARIOS = ("newest", "page_20", "action", "user", "resource", "week", "action_month", "api")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--entries", type=int, default=1_000_000, help="audit entries (1,000,000)")
    p.add_argument("--repeat", type=int, default=10, help="timed requests per scenario (10)")
    p.add_argument(
        "--max-seconds", type=float, default=120.0, help="per scenario, then stop (>= 3 runs)"
    )
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="which, comma-separated")
    p.add_argument("--verify", action="store_true", help="also time the chain check (long)")
    args = p.parse_args(argv)
    wanted = [s for s in args.scenarios.split(",") if s]
    started = datetime.now().astimezone()
    db_url, redis_url, embedded = base.start_stores(fresh=False)
    db_url, redis_url = fresh_database(db_url), redis_db(redis_url)
    app = make_app(db_url, redis_url)
    result: dict = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": "python bench/audit.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cpus": os.cpu_count(),
        "document_store": "MongoDB (MONGO_URL)" if os.environ.get("MONGO_URL") else "mongomock",
        "stores": "embedded (bench/.data)" if embedded else "BENCH_DATABASE_URL",
        "scenarios": {},
    }
    with app.app_context():
        from flask_migrate import upgrade
        from sqlalchemy import text

        from qure.core import documents, outbox
        from qure.extensions import db, mongo
        from qure.reports import audit

        db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        db.session.execute(text("DROP TYPE IF EXISTS user_role"))
        db.session.commit()
        upgrade()
        staff = make_staff()
        coll = mongo.db[audit.COLLECTION]
        coll.drop()
        documents.ensure_indexes()
        say(f"[audit] filling {args.entries:,} entries ({result['document_store']})")
        t0 = time.perf_counter()
        result["loaded"] = fill(coll, args.entries, staff)
        result["loaded"]["seconds"] = round(time.perf_counter() - t0, 1)
        say(f"[audit] filled in {result['loaded']['seconds']} s")
        save(result, started)
    today = datetime.now(ZoneInfo(ZONE)).date()
    reception = staff["RECEPTION"][0]
    paths = {
        "newest": "/reports/audit",
        "page_20": "/reports/audit?page=20",
        "action": "/reports/audit?action=INVOICE_PAID",
        "user": f"/reports/audit?user_id={reception['id']}",
        "resource": (
            f"/reports/audit?resource_type=patient&resource_id={result['loaded']['patient']}"
        ),
        "week": f"/reports/audit?from={today - timedelta(days=6)}&to={today}",
        "action_month": f"/reports/audit?action=INVOICE_PAID&from={today - timedelta(days=29)}",
        "api": "/api/v1/reports/audit-logs?action=INVOICE_PAID",
    }
    client = app.test_client()
    admin = staff["ADMIN"][0]["username"]
    sign_in(client, admin)
    api = ApiClient(client, bearer(client, admin))
    for name in wanted:
        say(f"[audit] {name}: {paths[name]}")
        r = timed(api if name == "api" else client, paths[name], args.repeat, args.max_seconds)
        result["scenarios"][name] = r
        save(result, started)
        say(
            f"[audit]   matched {r['matched']}, first {r['first_ms']} ms, "
            f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms over {r['n']} (cpu p50 {r['cpu_p50_ms']})"
        )
    if args.verify:
        with app.app_context():
            t0 = time.perf_counter()
            report = outbox.verify()
            result["verify"] = {
                "ok": report.ok,
                "checked": report.checked,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        say(f"[audit] verify: {result['verify']}")
    say(f"\nresult: {save(result, started).relative_to(base.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
