#!/usr/bin/env python
"""Qure reports benchmark (issue 13): the daily summary job and the dashboard over a year.

    python bench/reports.py [--days 365] [--visits 200] [--runs 30] [--keep]

Loads, in bulk (COPY into the app's own tables, not through HTTP), a year of a busy
clinic: `--days` past days of `--visits` walk-ins a day (plus half a day today) with
their queue entries (check-in 09:00-19:00, waits of 2-60 minutes, consultations of 4-20),
patients (20,000 on file before the year, 40 new a day), ICD-10 codes on nine visits in
ten, prescriptions of 1-3 medicines on seven in ten, a PAID invoice and its payment for
every visit (cash, card or UPI), and dispensings of nine prescriptions in ten. Then:

  store   the daily summary job's own function (reports.tasks.store_summary) for every
          past day into `daily_summaries` (each timed), then `--runs` more times for one
          day: p50 / p95, target under 1 s.
  explain EXPLAIN (ANALYZE, BUFFERS) of the summary's statements for one day.
  pages   GET /reports/dashboard?from=&to= over the last 90 days (Flask test client,
          signed in as an admin) and GET /api/v1/reports/daily-summary?from=&to= (JWT),
          `--runs` times each: p50 / p95, target under 500 ms.

The app runs in this process (create_app) on BENCH_DATABASE_URL / BENCH_REDIS_URL (else
the embedded servers bench/run.py starts), and on BENCH_MONGO_URL when set, else the
embedded document store (mongomock, as `flask serve` without MONGO_URL). The database's
schema is dropped and migrated afresh: give it a database of its own. Results go to
bench/results/reports-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run as base  # bench/run.py: stores, paths

ZONE = "Asia/Kolkata"
TARGET_STORE_S = 1.0
TARGET_PAGE_MS = 500.0
PASSWORD = "bench-password-123"
# Common outpatient diagnoses, most frequent first (weights fall off along the list).
CODE_TEXT = (
    "J06.9 J02.9 A09 J20.9 N39.0 K30 I10 E11.9 M54.5 R50.9 J03.9 B34.9 K29.7 L30.9 H10.9 "
    "J45.9 R51 M79.1 K59.0 R10.4 J30.4 L50.9 B35.4 J01.9 H66.9 A90 A01.0 E86 R11 K21.9 "
    "M17.9 G43.9 F41.1 E78.5 D64.9 N76.0 L08.9 T78.4 R05 J18.9"
)
CODES = tuple(CODE_TEXT.split())
METHODS = ("CASH", "CASH", "UPI", "UPI", "UPI", "CARD")


def say(message: str = "") -> None:
    print(message, flush=True)


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    at = lambda p: ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]  # noqa: E731
    return {
        "n": len(ordered),
        "p50": round(at(50), 1),
        "p95": round(at(95), 1),
        "max": round(ordered[-1], 1),
        "mean": round(statistics.fmean(ordered), 1),
    }


# ---- the database and the app ----------------------------------------------------------


def normalise_name(name: str) -> str:
    from qure.patients.service import normalise_name as normalise

    return normalise(name)


def fresh_app(db_url: str, redis_url: str):
    """The app on the bench stores, its schema dropped and migrated afresh."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from qure import create_app
    from qure.extensions import db

    app = create_app(
        {
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "MONGO_URL": os.environ.get("BENCH_MONGO_URL"),
            "MONGO_DB_NAME": "qure_bench_reports",
            "SECRET_KEY": "bench-only-secret-key-that-is-long-enough-0123456789",
            "CLINIC_TIMEZONE": ZONE,
            "BCRYPT_ROUNDS": 4,
            "SERVER_NAME": None,
        }
    )
    with app.app_context():
        db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        db.session.execute(text("DROP TYPE IF EXISTS user_role"))
        db.session.commit()
        upgrade(directory=str(base.ROOT / "migrations"))
    return app


def copy(conn, table: str, rows: list[dict]) -> int:
    """COPY `rows` (dicts with the same keys: the columns) into `table`, the fastest bulk
    load PostgreSQL has. Returns how many."""
    if not rows:
        return 0
    columns = list(rows[0])
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row([row[c] for c in columns])
    return len(rows)


def staff(app) -> dict[str, list[int]]:
    """An owner, eight doctors and a pharmacist, made by the auth service: role -> ids."""
    from qure.auth import service as users
    from qure.extensions import db

    made: dict[str, list[int]] = {}
    with app.app_context():
        for role, name, n in (
            ("ADMIN", "Owner", 1),
            ("DOCTOR", "Doctor", 8),
            ("PHARMACIST", "Pharmacist", 1),
        ):
            for i in range(n):
                data = {
                    "username": f"{role.lower()}{i}",
                    "full_name": f"{name} {i + 1}",
                    "email": f"{role.lower()}{i}@bench.local",
                    "role": role,
                    "password": PASSWORD,
                }
                if role == "DOCTOR":
                    data["registration_number"] = f"REG-{i:05d}"
                made.setdefault(role, []).append(users.create_user(None, data).id)
        db.session.commit()
    return made


class Year:
    """The rows of a year of the clinic, made in memory with their ids, then COPYed."""

    def __init__(self, days: int, per_day: int, made: dict[str, list[int]], seed: int = 13):
        self.rng = random.Random(seed)
        self.zone = ZoneInfo(ZONE)
        self.today = datetime.now(self.zone).date()
        self.first = self.today - timedelta(days=days)
        self.days = [self.first + timedelta(days=d) for d in range(days + 1)]  # ends today
        self.per_day = per_day
        self.admin, self.doctors = made["ADMIN"][0], made["DOCTOR"]
        self.pharmacist = made["PHARMACIST"][0]
        self.tables: dict[str, list[dict]] = {}
        self.weights = [1 / (1 + n) for n in range(len(CODES))]

    def add(self, table: str, **row) -> int:
        rows = self.tables.setdefault(table, [])
        rows.append({"id": len(rows) + 1, **row})
        return len(rows)

    def catalogue(self) -> None:
        received = datetime.combine(self.first, clock_time(8), self.zone)
        for n in range(1, 41):
            name = f"Benchmed {n:02d}"
            price = Decimal(f"{self.rng.uniform(1, 40):.2f}")
            self.add(
                "medicines", name=name, generic_name=f"Generic {n}", ingredients=[f"generic {n}"],
                dosage_form="TABLET", strength="500 mg", unit_price=price, gst_rate=12,
                search_text=name.lower(),
            )  # fmt: skip
            self.add(
                "batches", medicine_id=n, batch_number=f"B{n}", quantity=10_000_000,
                expiry_date=self.today + timedelta(days=700), received_by_id=self.pharmacist,
                received_at=received,
            )  # fmt: skip

    def patient(self, created: datetime) -> int:
        n = len(self.tables.get("patients", ())) + 1
        name = f"Bench Patient {n}"
        return self.add(
            "patients", full_name=name, name_search=normalise_name(name),
            date_of_birth=date(1960 + n % 50, 1 + n % 12, 1 + n % 28), sex="FMO"[n % 3],
            phone=f"+9190{n:08d}", phone_digits=f"9190{n:08d}", created_at=created,
            updated_at=created,
        )  # fmt: skip

    def day(self, day: date, pool: int) -> None:
        """One clinic day: its new patients and walk-ins, each seen, billed, paid, and
        most prescribed and dispensed."""
        rng, zone = self.rng, self.zone
        visits = self.per_day if day < self.today else self.per_day // 2
        new = [
            self.patient(datetime.combine(day, clock_time(rng.randint(9, 18)), zone))
            for _ in range(visits // 5)
        ]
        for token, patient in enumerate(new + rng.sample(range(1, pool + 1), visits - len(new)), 1):
            doctor = self.doctors[token % len(self.doctors)]
            arrive = datetime.combine(day, clock_time(9), zone) + timedelta(
                minutes=rng.randint(0, 600)
            )
            called = arrive + timedelta(minutes=rng.randint(2, 60), seconds=rng.randint(0, 59))
            done = called + timedelta(minutes=rng.randint(4, 20), seconds=rng.randint(0, 59))
            entry = self.add(
                "queue_entries", day=day, token_number=token, doctor_id=doctor,
                patient_id=patient, kind="WALK_IN", status="COMPLETED", tier=3, sort_at=arrive,
                checked_in_at=arrive, called_at=called, completed_at=done, status_changed_at=done,
            )  # fmt: skip
            code = rng.choices(CODES, self.weights)[0] if rng.random() < 0.9 else None
            visit = self.add(
                "visits", patient_id=patient, doctor_id=doctor, queue_entry_id=entry,
                status="COMPLETED", started_at=called, completed_at=done,
                diagnosis="As coded" if code else "Fever", icd10_code=code, updated_at=done,
            )  # fmt: skip
            total = Decimal("500.00")  # the consultation
            prescription = None
            if rng.random() < 0.7:
                prescription, cost = self.prescribe(visit, patient, doctor, done)
                total += cost
            paid = done + timedelta(minutes=5)
            invoice = self.add(
                "invoices", number=f"INV/{visit:07d}", mode="AUTO", status="PAID",
                patient_id=patient, visit_id=visit, prescription_id=prescription, invoice_date=day,
                subtotal=total, discount=Decimal("0.00"), taxable=total, cgst=Decimal("0.00"),
                sgst=Decimal("0.00"), total=total, created_by_id=self.admin, created_at=done,
                finalized_at=done, paid_at=paid, updated_at=paid,
            )  # fmt: skip
            method = rng.choice(METHODS)
            self.add(
                "payments", invoice_id=invoice, method=method, amount=total,
                reference=None if method == "CASH" else f"R{visit}", paid_on=day,
                received_by_id=self.admin, received_at=paid,
            )  # fmt: skip

    def prescribe(
        self, visit: int, patient: int, doctor: int, done: datetime
    ) -> tuple[int, Decimal]:
        """A prescription of 1-3 medicines for `visit`, dispensed nine times in ten.
        Returns its id and what its medicines cost."""
        rng = self.rng
        prescription = self.add(
            "prescriptions", visit_id=visit, patient_id=patient, doctor_id=doctor,
            created_at=done, dispense_status="DISPENSED", updated_at=done,
        )  # fmt: skip
        lines, cost = [], Decimal("0.00")
        chosen = rng.sample(self.tables["medicines"], rng.randint(1, 3))
        for position, medicine in enumerate(chosen, 1):
            quantity = rng.choice((5, 6, 10, 10, 15, 20, 30))
            item = self.add(
                "prescription_items", prescription_id=prescription, medicine_id=medicine["id"],
                position=position, dose=Decimal("1"), frequency="BD", duration_days=5,
                quantity=quantity,
            )  # fmt: skip
            lines.append((item, medicine["id"], quantity))
            cost += medicine["unit_price"] * quantity
        if rng.random() < 0.9:
            handed = self.add(
                "dispensings", prescription_id=prescription, dispensed_by_id=self.pharmacist,
                dispensed_at=done + timedelta(minutes=10),
            )  # fmt: skip
            for item, batch, quantity in lines:  # batch n holds medicine n
                self.add(
                    "dispensed_items", dispensing_id=handed, prescription_item_id=item,
                    batch_id=batch, quantity=quantity,
                )  # fmt: skip
        return prescription, cost


# The order the foreign keys need.
TABLES = (
    "medicines batches patients queue_entries visits prescriptions prescription_items "
    "invoices payments dispensings dispensed_items"
)


def bulk_load(app, days: int, per_day: int) -> dict:
    """A year of the clinic, COPYed in with the ids made here; the sequences are then
    moved past them. Returns the rows loaded per table."""
    import psycopg

    year = Year(days, per_day, staff(app))
    year.catalogue()
    on_file = datetime.combine(year.first, clock_time(8), year.zone)
    for _ in range(20_000):
        year.patient(on_file - timedelta(days=year.rng.randint(1, 2000)))
    for day in year.days:
        year.day(day, 20_000)
    url = base._plain_pg_url(app.config["DATABASE_URL"])
    counts = {}
    with psycopg.connect(url) as conn:
        for table in TABLES.split():
            counts[table] = copy(conn, table, year.tables[table])
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.execute("SELECT setval('patient_mrn_seq', (SELECT max(id) FROM patients))")
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return counts


# ---- the measurements ------------------------------------------------------------------


def store_all(app, days: list[date]) -> dict:
    """Every past day's summary stored by the job's own function, each timed."""
    from qure.reports.tasks import store_summary

    samples = []
    with app.app_context():
        for day in days:
            t0 = time.perf_counter()
            store_summary(day.isoformat())
            samples.append((time.perf_counter() - t0) * 1000)
    return percentiles(samples)


def store_one(app, day: date, runs: int) -> dict:
    from qure.reports.tasks import store_summary

    samples = []
    with app.app_context():
        for _ in range(runs):
            t0 = time.perf_counter()
            result = store_summary(day.isoformat())
            samples.append((time.perf_counter() - t0) * 1000)
    return {**percentiles(samples), "visits": result["visits"]}


def explain(app, day: date) -> list[dict]:
    """EXPLAIN ANALYZE of each statement `summary.live(day)` sends."""
    from sqlalchemy import event

    from qure.extensions import db
    from qure.reports import summary

    sent: list[tuple[str, object]] = []
    with app.app_context():
        engine = db.engine

        def grab(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith(("SELECT", "WITH")):
                sent.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", grab)
        try:
            summary.live(day)
        finally:
            event.remove(engine, "before_cursor_execute", grab)
        plans = []
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            for statement, parameters in sent:
                rows = raw.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).fetchall()
                lines = [r[0] for r in rows]
                took = next((ln for ln in lines if ln.startswith("Execution Time")), "")
                found = (SCAN_RE.search(line) for line in lines)
                scans = sorted({m.group(0) for m in found if m})
                plans.append(
                    {"sql": " ".join(statement.split())[:160], "execution": took, "scans": scans}
                )
    return plans


SCAN_RE = re.compile(
    r"(Seq Scan|Index Only Scan|Index Scan|Bitmap Index Scan|Bitmap Heap Scan)( using| on) \w+"
)
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def pages(app, start: date, end: date, runs: int) -> dict:
    """The dashboard page and the API's range, `runs` times each (after one warm-up)."""
    client = app.test_client()
    token = CSRF_RE.search(client.get("/login").get_data(as_text=True)).group(1)
    signed = client.post(
        "/login", data={"username": "admin0", "password": PASSWORD, "csrf_token": token}
    )
    assert signed.status_code == 302, signed.status_code
    api = app.test_client()
    jwt = api.post(
        "/api/v1/auth/login", json={"username": "admin0", "password": PASSWORD}
    ).get_json()
    headers = {"Authorization": f"Bearer {jwt['access_token']}"}
    query = {"from": start.isoformat(), "to": end.isoformat()}
    out = {}
    for name, call in (
        ("dashboard_90_days", lambda: client.get("/reports/dashboard", query_string=query)),
        (
            "api_daily_summary_90_days",
            lambda: api.get("/api/v1/reports/daily-summary", query_string=query, headers=headers),
        ),
        ("dashboard_7_days", lambda: client.get("/reports/dashboard", query_string={"days": 7})),
    ):
        first = call()
        assert first.status_code == 200, (
            name,
            first.status_code,
            first.get_data(as_text=True)[:500],
        )
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            response = call()
            samples.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200
        out[name] = {**percentiles(samples), "bytes": len(first.get_data())}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--days", type=int, default=365, help="past days to generate (365)")
    p.add_argument("--visits", type=int, default=200, help="visits a day (200)")
    p.add_argument("--runs", type=int, default=30, help="timed runs of each measure (30)")
    args = p.parse_args(argv)
    started = datetime.now().astimezone()
    db_url, redis_url, _ = base.start_stores(fresh=False)
    result: dict = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": "python bench/reports.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cpus": os.cpu_count(),
        "targets": {"store_one_day_s": TARGET_STORE_S, "pages_p95_ms": TARGET_PAGE_MS},
        "mongo": "real" if os.environ.get("BENCH_MONGO_URL") else "embedded (mongomock)",
    }
    say(f"[reports] fresh schema on {re.sub(r'//[^@]*@', '//', db_url)}")
    app = fresh_app(db_url, redis_url)
    t0 = time.perf_counter()
    result["loaded"] = bulk_load(app, args.days, args.visits)
    result["load_seconds"] = round(time.perf_counter() - t0, 1)
    say(f"[reports] loaded in {result['load_seconds']} s: {result['loaded']}")
    with app.app_context():
        from qure.core import clock

        today = clock.today()
    past = [today - timedelta(days=n) for n in range(args.days, 0, -1)]
    t0 = time.perf_counter()
    result["store_every_day_ms"] = store_all(app, past)
    say(
        f"[reports] stored {len(past)} daily summaries in {time.perf_counter() - t0:.1f} s; "
        f"each (ms): {result['store_every_day_ms']}"
    )
    one = today - timedelta(days=1)
    result["store_one_day_ms"] = store_one(app, one, args.runs)
    verdict = "PASS" if result["store_one_day_ms"]["p95"] < TARGET_STORE_S * 1000 else "FAIL"
    say(
        f"[reports] (a) summary.store({one}) x{args.runs} (ms): "
        f"{result['store_one_day_ms']}  {verdict}"
    )
    result["explain"] = explain(app, one)
    for plan in result["explain"]:
        say(
            f"[reports]   {plan['execution']:<28} {', '.join(plan['scans'])}  <- {plan['sql'][:90]}"
        )
    result["pages_ms"] = pages(app, today - timedelta(days=89), today, args.runs)
    failed = verdict == "FAIL"
    for name, figures in result["pages_ms"].items():
        ok = figures["p95"] < TARGET_PAGE_MS
        failed |= not ok
        say(f"[reports] (b) {name} x{args.runs} (ms): {figures}  {'PASS' if ok else 'FAIL'}")
    base.RESULTS.mkdir(parents=True, exist_ok=True)
    path = base.RESULTS / f"reports-{started:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    say(f"\nresult: {Path(path).relative_to(base.ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
