#!/usr/bin/env python
"""Qure journey benchmark (issue 10): one patient's way through the clinic, closed loop.

    python bench/journey.py [--clients 4,16,32] [--seconds 20] [--server sync|gthread|granian]
                            [--scenario journey,readmix,today] [--baseline REF [--rounds 2]]

The journey, per client, over and over: register → one 15-minute slot → book → check in →
call next → start visit → vitals + diagnosis → note → prescription of two medicines →
complete → AUTO invoice of the visit → pay it → the pharmacist dispenses it (13 requests;
reception, the client's own doctors and a pharmacist, each signed in once). Before each
client count is measured, the medicines the journeys prescribe are stocked through the API
(POST /api/v1/inventory/batches: several batches per medicine with different expiries, so
dispensing walks across batches earliest expiry first). `--no-dispense` stops at pay,
`--no-billing` at complete (to compare with commits before the billing counter or the
pharmacy); `--pause MS` makes each client wait between its requests, as desks do (the
paced figure), instead of none (closed loop).

Reported per client count: journeys/s, per-step p50/p95/p99, errors by step and status, and
the CPU each journey cost in the app server, PostgreSQL and this client (from /proc); with
the app's Server-Timing header (QURE_SERVER_TIMING=1, set here), each step's median CPU in
the app. `--scenario readmix` (patient search, GET /api/v1/queue/today, the billing desk's
visits to bill, the pharmacy's prescriptions to dispense and the inventory list, over
10,000 patients, 100 tokens and 60 rows waiting at each counter, 16 clients) and
`--scenario today` (GET /api/v1/queue/today with 400 tokens across 10 doctors, 16 clients)
measure reads.

`--baseline REF` runs the same benchmark on REF (checked out in a temporary worktree, the
same venv and servers, its own database) and on this checkout, one after the other
(`--rounds N` alternates them N times), and prints each figure's ratio: absolute figures
drift between runs on a shared machine, the ratio less.

Stores as bench/run.py: BENCH_DATABASE_URL / BENCH_REDIS_URL, else embedded servers under
bench/.data/. Each checkout gets a fresh database of its own. Results go to
bench/results/journey-*.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run as base  # bench/run.py: stores, CPU meter, search mix
from queue_load import Client, together
from visit_load import register

STEPS = (
    "register",
    "slot",
    "book",
    "checkin",
    "next",
    "start",
    "vitals",
    "note",
    "prescription",
    "complete",
    "invoice",
    "pay",
    "dispense",
)
TARGETS = {
    "journey_ratio_16": 2.5,  # journeys/s at 16 clients against the commit before issue 10
    "step_p95_ms": 60.0,
    "dispense_p95_ms": 60.0,  # issue 12, at 16 clients pausing 250 ms
    "cpu_ms_per_request": 2.0,  # median over the journey's steps
    "today_p95_ms": 20.0,
    "search_p95_ms": 30.0,
}
SLOT_MINUTES = 15
PASSWORD = "journey-" + secrets.token_hex(8)


def say(message: str = "") -> None:
    print(message, flush=True)


def night_zone() -> str:
    """A fixed-offset zone where the day has just begun (00:00 to 01:00 now): the most
    15-minute slots still ahead today for the journeys to book."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        name = f"Etc/GMT{'-' if offset >= 0 else '+'}{abs(offset)}"
        if now.astimezone(ZoneInfo(name)).hour == 0:
            return name
    return "Asia/Kolkata"


# ---- one checkout of the app: database, server ------------------------------------------


class Checkout:
    """A checkout of the project (this one, or a baseline worktree) with its own database
    and Redis database, served by the chosen server from that checkout's directory."""

    def __init__(self, root: Path, label: str, args: argparse.Namespace):
        self.root, self.label, self.args = root, label, args
        self.server: base.Gunicorn | None = None
        self.port = base.free_port()
        self.log = base.DATA / f"journey-{label}.log"

    def prepare(self, db_url: str, redis_url: str, zone: str) -> None:
        self.db_url, self.redis_url = db_url, redis_url
        extra = {
            "CLINIC_TIMEZONE": zone,
            "QURE_SERVER_TIMING": "1",
        }
        if self.args.workers:
            extra["WEB_CONCURRENCY"] = str(self.args.workers)
        if self.args.server == "gthread":
            extra["GUNICORN_THREADS"] = str(self.args.threads or 4)
        self.env = base.app_env(db_url, redis_url, self.port, extra)
        self.flask("db", "upgrade")
        self.flask("seed-demo", "--patients", str(self.args.patients), timeout=1800)
        self.admin = f"jadmin{secrets.token_hex(3)}"
        self.flask("create-user", self.admin, "--role", "ADMIN", "--password", PASSWORD)

    def flask(self, *args: str, timeout: float = 900) -> str:
        accounts = str(base.DATA / f"journey-{self.label}-accounts.json")
        app = f"qure:create_app({{'DEMO_ACCOUNTS_FILE': {accounts!r}}})"
        cmd = [base.venv_bin("flask"), "--app", app, *args]
        done = subprocess.run(
            cmd, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise SystemExit(
                f"[{self.label}] flask {' '.join(args)} failed:\n{done.stdout[-2000:]}"
                f"\n{done.stderr[-2000:]}"
            )
        return done.stdout

    def command(self) -> list[str]:
        if self.args.server == "granian":
            workers = self.args.workers or (os.cpu_count() or 1) + 1
            return [
                base.venv_bin("granian"),
                "--interface",
                "wsgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--blocking-threads",
                str(self.args.threads or 1),
                "--no-ws",
                "--log-level",
                "warning",
                "wsgi:app",
            ]
        return [base.venv_bin("gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]

    def start(self) -> None:
        self.server = base.Gunicorn(
            self.env, self.port, root=self.root, cmd=self.command(), log=self.log
        )
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def meter(self, embedded: bool) -> base.CpuMeter:
        proc = self.server.proc if self.server else None
        return base.CpuMeter(
            proc.pid if proc else None,
            base.postmaster_pid() if embedded else None,
            base.redis_pid(),
            backends=None if embedded else base.backend_pids(self.db_url),
        )

    def login(self, username: str) -> str:
        status, body = base.request(
            "POST", self.port, "/api/v1/auth/login", {"username": username, "password": PASSWORD}
        )
        if status != 200:
            raise SystemExit(f"[{self.label}] login {username}: {status} {body[:200]!r}")
        return json.loads(body)["access_token"]

    def user(self, admin: Client, role: str, name: str, **extra) -> int:
        return register(admin, role, name, PASSWORD, **extra)


def checkout_database(db_url: str, label: str, embedded: bool) -> str:
    """A fresh database for this checkout beside the bench database."""
    import psycopg

    name = f"qure_journey_{label}"
    plain = base._plain_pg_url(db_url)
    admin = re.sub(r"/[^/?]+(\?|$)", r"/postgres\1", plain, count=1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return re.sub(r"/[^/?]+(\?|$)", rf"/{name}\1", db_url, count=1)


def checkout_redis(redis_url: str, number: int) -> str:
    """The Redis database of one checkout, emptied: database `number` of the embedded
    server, or BENCH_REDIS_URL's own (shared servers hold other databases; the checkouts
    are measured one after the other, each emptying it first)."""
    import redis

    if os.environ.get("BENCH_REDIS_URL"):
        url = redis_url
    elif redis_url.startswith("unix://"):
        url = f"{redis_url.split('?')[0]}?db={number}"
    else:
        url = re.sub(r"(redis://[^/]+)(/\d+)?$", rf"\1/{number}", redis_url)
    redis.Redis.from_url(url).flushdb()
    return url


# ---- the journey -------------------------------------------------------------------------


class Timed(Client):
    """A Client that also keeps the app's own CPU per request (Server-Timing: cpu)."""

    CPU = re.compile(r"cpu;dur=([\d.]+)")
    pause = 0.0  # seconds each client waits before a request (--pause)

    def __init__(self, port: int, token: str | None = None):
        super().__init__(port, token)
        self.cpu: list[tuple[str, float]] = []

    def call(self, kind, method, path, body=None, want=(200, 201), extra=None):
        if self.pause:
            time.sleep(self.pause)
        answer = super().call(kind, method, path, body, want, extra)
        if self.timing and (found := self.CPU.search(self.timing)):
            self.cpu.append((kind, float(found.group(1))))
        return answer


class Desk:
    """One closed-loop client: a reception login and its own doctors (each serves only this
    client's patients, so Call next always calls the patient just checked in)."""

    def __init__(
        self,
        port: int,
        reception: str,
        doctors: list[str],
        medicines,
        zone,
        seed,
        billing=True,
        pharmacist: str | None = None,
    ):
        self.billing = billing
        self.reception = Timed(port, reception)
        self.doctors = [Timed(port, t) for t in doctors]
        self.pharmacist = Timed(port, pharmacist) if billing and pharmacist else None
        self.medicines = medicines
        self.rng = random.Random(seed)
        self.seed = seed
        local = datetime.now(ZoneInfo(zone))
        start = (local + timedelta(minutes=5)).replace(second=0, microsecond=0)
        start += timedelta(minutes=-start.minute % SLOT_MINUTES)
        self.next_slot = [start for _ in doctors]
        self.day = local.date()
        self.journeys = 0
        self.failed: dict[str, int] = {}
        self.out_of_slots = False
        self.count = 0

    def clients(self) -> list[Timed]:
        return [self.reception, *self.doctors, *([self.pharmacist] if self.pharmacist else [])]

    def run(self, deadline: float, stop: threading.Event) -> None:
        turn = 0
        while time.monotonic() < deadline and not stop.is_set():
            which = turn % len(self.doctors)
            turn += 1
            start = self.next_slot[which]
            end = start + timedelta(minutes=SLOT_MINUTES)
            if end.date() != self.day:
                self.out_of_slots = True
                return
            self.next_slot[which] = end
            failed = self.journey(self.doctors[which], start, end)
            if failed:
                self.failed[failed] = self.failed.get(failed, 0) + 1
            else:
                self.journeys += 1

    def journey(self, doctor: Timed, start: datetime, end: datetime) -> str | None:
        """One patient's journey; the step that failed, or None."""
        rng, desk = self.rng, self.reception
        self.count += 1
        status, body, _ = desk.call(
            "register",
            "POST",
            "/api/v1/patients",
            {
                "full_name": f"{rng.choice(base.FIRST)} {rng.choice(base.LAST)}",
                "date_of_birth": str(date(1945, 1, 1) + timedelta(days=rng.randint(0, 27000))),
                "sex": rng.choice("FM"),
                "phone": f"+91{7_000_000_000 + self.seed * 100_000 + self.count:010d}",
                "confirm_new": True,
            },
        )
        if status != 201:
            return "register"
        patient = json.loads(body)["id"]
        status, body, _ = doctor.call(
            "slot",
            "POST",
            "/api/v1/slots/bulk",
            {
                "start_date": self.day.isoformat(),
                "end_date": self.day.isoformat(),
                "start_time": start.strftime("%H:%M"),
                "end_time": end.strftime("%H:%M"),
                "duration_minutes": SLOT_MINUTES,
            },
        )
        if status != 201 or not json.loads(body)["slots"]:
            return "slot"
        slot = json.loads(body)["slots"][0]["id"]
        status, body, _ = desk.call(
            "book", "POST", "/api/v1/appointments", {"patient_id": patient, "slot_id": slot}
        )
        if status != 201:
            return "book"
        appointment = json.loads(body)["id"]
        status, body, _ = desk.call(
            "checkin", "POST", "/api/v1/queue/checkin", {"appointment_id": appointment}
        )
        if status != 201:
            return "checkin"
        status, body, _ = doctor.call("next", "POST", "/api/v1/queue/next", {"open_visit": False})
        if status != 200:
            return "next"
        token = json.loads(body)["token_number"]
        status, body, _ = doctor.call("start", "POST", "/api/v1/visits", {"token_number": token})
        if status != 201:
            return "start"
        visit = json.loads(body)["id"]
        vitals = {
            "bp_systolic": rng.randint(100, 150),
            "bp_diastolic": rng.randint(60, 95),
            "temperature": f"{rng.uniform(36.5, 38.5):.1f}",
            "pulse": rng.randint(60, 110),
            "spo2": rng.randint(94, 100),
            "weight_kg": f"{rng.uniform(40, 95):.1f}",
        }
        status, _, _ = doctor.call(
            "vitals",
            "PATCH",
            f"/api/v1/visits/{visit}",
            {"vitals": vitals, "diagnosis": "Viral fever"},
        )
        if status != 200:
            return "vitals"
        status, _, _ = doctor.call(
            "note",
            "POST",
            f"/api/v1/visits/{visit}/notes",
            {"category": "SYMPTOM", "text": "Fever for two days, no cough."},
        )
        if status != 201:
            return "note"
        items = [
            {
                "medicine_id": m,
                "dose": "1",
                "frequency": rng.choice(["OD", "BD", "TDS", "1-0-1"]),
                "duration_days": rng.randint(3, 7),
                "instructions": "after food",
            }
            for m in rng.sample(self.medicines, 2)
        ]
        status, body, _ = doctor.call(
            "prescription",
            "POST",
            "/api/v1/prescriptions",
            {"visit_id": visit, "items": items},
        )
        if status != 201:
            return "prescription"
        prescription = json.loads(body)["id"]
        status, _, _ = doctor.call("complete", "POST", f"/api/v1/visits/{visit}/complete", {})
        if status != 200:
            return "complete"
        if not self.billing:
            return None
        status, body, _ = desk.call(
            "invoice",
            "POST",
            "/api/v1/billing",
            {"mode": "AUTO", "prescription_id": prescription},
        )
        if status != 201:
            return "invoice"
        invoice = json.loads(body)
        status, _, _ = desk.call(
            "pay",
            "POST",
            f"/api/v1/billing/{invoice['id']}/pay",
            {"method": "UPI", "amount": invoice["total"], "reference": f"J{self.count}"},
        )
        if status != 200:
            return "pay"
        if self.pharmacist is None:
            return None
        status, _, _ = self.pharmacist.call(
            "dispense", "POST", "/api/v1/dispensing", {"prescription_id": prescription}
        )
        if status != 201:
            return "dispense"
        return None


STOCK_BATCHES = 5  # per medicine and client count, expiring 1.5 to 2.5 years ahead
MOST_PER_JOURNEY = 21  # units of one item: dose 1, TDS, 7 days


def stock_medicines(app: Checkout, admin: Client, medicines: list[int], zone: str) -> int:
    """Stock every medicine the journeys may prescribe, through the API, with enough for
    `--max-rate` journeys/s over the warm-up and the measured seconds (twice over). Each
    medicine gets STOCK_BATCHES batches of different expiries, each a fraction of the whole,
    so that earliest-expiry-first dispensing walks across batches. Returns the units added
    per medicine."""
    args = app.args
    journeys = args.max_rate * (args.seconds + args.warmup)
    per_medicine = math.ceil(2 * journeys * 2 * MOST_PER_JOURNEY / max(1, len(medicines)))
    per_batch = max(1, math.ceil(per_medicine / STOCK_BATCHES))
    today = datetime.now(ZoneInfo(zone)).date()
    run_id = secrets.token_hex(3).upper()
    for medicine in medicines:
        batches = [
            {
                "batch_number": f"JB{run_id}-{n}",
                "quantity": per_batch,
                "expiry_date": (today + timedelta(days=540 + 60 * n)).isoformat(),
                "mfg_date": (today - timedelta(days=30)).isoformat(),
                "supplier": "Bench Pharma Distributors",
                "purchase_price": "1.50",
            }
            for n in range(STOCK_BATCHES)
        ]
        status, body, _ = admin.call(
            "setup",
            "POST",
            "/api/v1/inventory/batches",
            {"medicine_id": medicine, "batches": batches},
        )
        if status != 201:
            raise SystemExit(f"[{app.label}] stock-in failed: {status} {body[:200]!r}")
    return per_batch * STOCK_BATCHES


def percentiles(values: list[float]) -> dict:
    ms = sorted(values)
    return {
        "n": len(ms),
        "p50_ms": round(base.percentile(ms, 50), 2),
        "p95_ms": round(base.percentile(ms, 95), 2),
        "p99_ms": round(base.percentile(ms, 99), 2),
    }


def cpu_by_step(clients: list[Timed], steps) -> dict[str, float]:
    cpu = [c for client in clients for c in client.cpu]
    return {
        step: round(statistics.median(v), 2)
        for step in steps
        if (v := [ms for kind, ms in cpu if kind == step])
    }


def journey_level(app: Checkout, clients: int, embedded: bool, medicines, zone, stop) -> dict:
    """Closed loop with `clients` desks for the measured seconds (after a warm-up)."""
    args = app.args
    admin = Client(app.port, app.login(app.admin))
    run_id = secrets.token_hex(2)
    reception_name = f"jrec{run_id}"
    app.user(admin, "RECEPTION", reception_name)
    dispense = not args.no_billing and not args.no_dispense
    pharmacist_name = f"jpha{run_id}"
    if dispense:
        app.user(admin, "PHARMACIST", pharmacist_name)
        units = stock_medicines(app, admin, medicines, zone)
        say(
            f"[{app.label}]    stocked {len(medicines)} medicines, {units} units each in "
            f"{STOCK_BATCHES} batches"
        )
    # Enough doctors that no desk runs out of today's slots at `--max-rate` journeys/s.
    slots_left = max(1, int((24 * 60 - datetime.now(ZoneInfo(zone)).hour * 60 - 60) / 15))
    wanted = args.max_rate * (args.seconds + args.warmup) / clients
    per_desk = max(1, math.ceil(wanted / slots_left))
    desks = []
    for i in range(clients):
        doctors = []
        for j in range(per_desk):
            name = f"jdoc{run_id}x{i}x{j}"
            app.user(admin, "DOCTOR", name, registration_number=f"JB-{run_id}-{i}-{j}")
            doctors.append(app.login(name))
        desks.append(
            Desk(
                app.port,
                app.login(reception_name),
                doctors,
                medicines,
                zone,
                10 * clients + i,
                billing=not args.no_billing,
                pharmacist=app.login(pharmacist_name) if dispense else None,
            )
        )
    say(f"[{app.label}] == journey: {clients} clients ({per_desk} doctors each)")
    warm = time.monotonic() + args.warmup
    together(desks, lambda d: d.run(warm, stop))
    for d in desks:
        for c in d.clients():
            c.samples.clear()
            c.cpu.clear()
        d.journeys, d.failed = 0, {}
    meter = app.meter(embedded)
    meter.start()
    deadline = time.monotonic() + args.seconds
    elapsed = together(desks, lambda d: d.run(deadline, stop))
    everyone = [c for d in desks for c in d.clients()]
    samples = [s for c in everyone for s in c.samples]
    journeys = sum(d.journeys for d in desks)
    cpu = meter.stop(max(1, journeys), elapsed)
    errors: dict[str, int] = {}
    for kind, _, status in samples:
        if status not in (200, 201):
            errors[f"{kind} {status}"] = errors.get(f"{kind} {status}", 0) + 1
    steps = {k: percentiles([ms for kind, ms, _ in samples if kind == k]) for k in STEPS}
    step_cpu = cpu_by_step(everyone, STEPS)
    result = {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "journeys": journeys,
        "journeys_per_s": round(journeys / elapsed, 2),
        "requests": len(samples),
        "errors": errors,
        "error_examples": [e for c in everyone for e in c.errors][:5],
        "out_of_slots": sum(d.out_of_slots for d in desks),
        "steps": steps,
        "step_p95_max_ms": max((s["p95_ms"] for s in steps.values() if s["n"]), default=None),
        "cpu_ms_per_journey": {
            "app": cpu["gunicorn_ms_per_request"],
            "postgres": cpu["postgres_ms_per_request"],
            "client": cpu["client_ms_per_request"],
            "redis": round(cpu["cpu_seconds"]["redis"] * 1000 / max(1, journeys), 2),
        },
        "app_cpu_ms_per_request": round(
            cpu["cpu_seconds"]["gunicorn"] * 1000 / max(1, len(samples)), 2
        ),
        "step_cpu_median_ms": step_cpu,
        "step_cpu_median_of_medians_ms": (
            round(statistics.median(step_cpu.values()), 2) if step_cpu else None
        ),
        "machine_busy_percent": cpu["machine_busy_percent"],
    }
    print_level(app.label, result)
    return result


def print_level(label: str, r: dict) -> None:
    c = r["cpu_ms_per_journey"]
    say(
        f"[{label}]   {r['journeys_per_s']} journeys/s ({r['journeys']} in {r['seconds']} s), "
        f"{sum(r['errors'].values())} errors; worst step p95 {r['step_p95_max_ms']} ms; CPU per "
        f"journey: app {c['app']} ms, PostgreSQL {c['postgres']} ms, client {c['client']} ms, "
        f"Redis {c['redis']} ms; app CPU per request {r['app_cpu_ms_per_request']} ms"
        + (
            f" (median of the steps' medians {r['step_cpu_median_of_medians_ms']} ms)"
            if r["step_cpu_median_of_medians_ms"] is not None
            else ""
        )
    )
    for step, s in r["steps"].items():
        if not s["n"]:
            continue
        cpu = r["step_cpu_median_ms"].get(step)
        say(
            f"[{label}]     {step:<13} p50 {s['p50_ms']:>7} p95 {s['p95_ms']:>7} "
            f"p99 {s['p99_ms']:>7} ms" + (f"   app CPU {cpu} ms" if cpu is not None else "")
        )
    for kind, n in r["errors"].items():
        say(f"[{label}]     errors {kind}: {n}")
    for example in r["error_examples"]:
        say(f"[{label}]     e.g. {example}")
    if r["out_of_slots"]:
        say(f"[{label}]     {r['out_of_slots']} desks ran out of today's slots: raise --max-rate")


# ---- reads: the read mix and the desk's queue --------------------------------------------


def fill_queue(app: Checkout, doctors: int, tokens: int) -> list[str]:
    """`tokens` walk-ins today spread over `doctors` new doctors; returns an admin token."""
    import psycopg

    admin_token = app.login(app.admin)
    admin = Client(app.port, admin_token)
    run_id = secrets.token_hex(2)
    ids = [
        app.user(admin, "DOCTOR", f"qdoc{run_id}x{i}", registration_number=f"QB-{run_id}-{i}")
        for i in range(doctors)
    ]
    with psycopg.connect(base._plain_pg_url(app.db_url)) as conn:
        patients = [
            r[0]
            for r in conn.execute(
                "SELECT p.id FROM patients p WHERE NOT EXISTS"
                " (SELECT 1 FROM queue_entries q WHERE q.patient_id = p.id) ORDER BY p.id LIMIT %s",
                (tokens,),
            )
        ]
    for n, patient in enumerate(patients):
        status, body, _ = admin.call(
            "setup",
            "POST",
            "/api/v1/queue/walk-in",
            {"patient_id": patient, "doctor_id": ids[n % doctors], "complaint": "Fever"},
        )
        if status != 201:
            raise SystemExit(f"[{app.label}] walk-in failed: {status} {body[:200]!r}")
    return [admin_token]


# The read mix: what the desks look at between their writes. Each list page shows the
# API's default page (50 rows) over READMIX_WAITING rows waiting at each counter.
READMIX = (
    (0.50, "search"),
    (0.15, "queue_today"),
    (0.10, "to_bill"),
    (0.10, "to_dispense"),
    (0.15, "inventory"),
)
READMIX_NAME = "read mix (50% search, 15% queue/today, 10% to bill, 10% to dispense, 15% inventory)"
READMIX_WAITING = 60
INVENTORY_PAGES = 2  # the demo catalogue's medicines, 50 a page


def read_mix(rng: random.Random, searches) -> tuple[str, str]:
    pick, kind = rng.random(), READMIX[-1][1]
    for share, name in READMIX:
        if pick < share:
            kind = name
            break
        pick -= share
    if kind == "search":
        _, q = searches.next()
        return kind, f"/api/v1/patients?q={quote(q)}"
    return kind, {
        "queue_today": "/api/v1/queue/today",
        "to_bill": "/api/v1/billing/to-bill",
        "to_dispense": "/api/v1/prescriptions?status=awaiting_dispense",
        "inventory": f"/api/v1/inventory/medicines?page={rng.randint(1, INVENTORY_PAGES)}",
    }[kind]


def fill_counters(app: Checkout, medicines: list[int], zone: str, waiting: int) -> None:
    """`waiting` completed visits not yet billed (the billing desk's list) and `waiting`
    paid prescriptions not yet dispensed (the pharmacy's), by whole journeys that stop at
    complete and at pay."""
    admin = Client(app.port, app.login(app.admin))
    run_id = secrets.token_hex(2)
    reception = f"frec{run_id}"
    app.user(admin, "RECEPTION", reception)
    for n, billing in enumerate((False, True)):
        doctors = []
        for j in range(2):
            name = f"fdoc{run_id}x{n}x{j}"
            app.user(admin, "DOCTOR", name, registration_number=f"FB-{run_id}-{n}-{j}")
            doctors.append(app.login(name))
        desk = Desk(
            app.port, app.login(reception), doctors, medicines, zone, 9000 + n, billing=billing
        )
        for client in desk.clients():
            client.pause = 0.0  # setting up, not measured
        for i in range(waiting):
            which = i % len(doctors)
            start = desk.next_slot[which]
            desk.next_slot[which] = start + timedelta(minutes=SLOT_MINUTES)
            failed = desk.journey(desk.doctors[which], start, desk.next_slot[which])
            if failed:
                errors = [e for c in desk.clients() for e in c.errors]
                raise SystemExit(f"[{app.label}] filling the counters failed at {failed}: {errors}")
    say(f"[{app.label}]    {waiting} visits waiting to be billed, {waiting} to be dispensed")


def read_level(app: Checkout, name: str, clients: int, embedded: bool, mix, stop) -> dict:
    """`clients` closed-loop readers for the measured seconds; mix(rng) gives (kind, path)."""
    token = app.login(app.admin)
    readers = [Timed(app.port, token) for _ in range(clients)]

    def read(client: Timed, deadline: float, rng: random.Random) -> None:
        while time.monotonic() < deadline and not stop.is_set():
            kind, path = mix(rng)
            client.call(kind, "GET", path)

    def phase(seconds: float):
        deadline = time.monotonic() + seconds
        rngs = {id(c): random.Random(i) for i, c in enumerate(readers)}
        return together(readers, lambda c: read(c, deadline, rngs[id(c)]))

    phase(app.args.warmup)
    for c in readers:
        c.samples.clear()
        c.cpu.clear()
    meter = app.meter(embedded)
    meter.start()
    elapsed = phase(app.args.seconds)
    samples = [s for c in readers for s in c.samples]
    cpu = meter.stop(max(1, len(samples)), elapsed)
    kinds = sorted({k for k, _, _ in samples})
    result = {
        "clients": clients,
        "requests": len(samples),
        "requests_per_s": round(len(samples) / elapsed, 1),
        "errors": sum(1 for _, _, status in samples if status != 200),
        "error_examples": [e for c in readers for e in c.errors][:5],
        "all": percentiles([ms for _, ms, _ in samples]),
        "by_kind": {k: percentiles([ms for kind, ms, _ in samples if kind == k]) for k in kinds},
        "app_cpu_ms_per_request": cpu["gunicorn_ms_per_request"],
        "postgres_cpu_ms_per_request": cpu["postgres_ms_per_request"],
        "step_cpu_median_ms": cpu_by_step(readers, kinds),
        "machine_busy_percent": cpu["machine_busy_percent"],
    }
    say(
        f"[{app.label}] == {name}: {clients} clients: {result['requests_per_s']} requests/s, "
        f"{result['errors']} errors, p95 {result['all']['p95_ms']} ms; app CPU "
        f"{result['app_cpu_ms_per_request']} ms/request, PostgreSQL "
        f"{result['postgres_cpu_ms_per_request']} ms/request"
    )
    for kind, s in result["by_kind"].items():
        say(
            f"[{app.label}]     {kind:<17} n={s['n']:<6} p50 {s['p50_ms']:>7} "
            f"p95 {s['p95_ms']:>7} p99 {s['p99_ms']:>7} ms"
            f"   app CPU {result['step_cpu_median_ms'].get(kind)} ms"
        )
    for example in result["error_examples"]:
        say(f"[{app.label}]     e.g. {example}")
    return result


# ---- one checkout, start to end ------------------------------------------------------------


def measure(root: Path, label: str, args: argparse.Namespace, redis_db: int) -> dict:
    stop = threading.Event()
    zone = night_zone()
    db_url, redis_url, embedded = base.start_stores(fresh=False)
    app = Checkout(root, label, args)
    result: dict = {
        "label": label,
        "root": str(root),
        "git": commit_of(root),
        "server": args.server,
        "clinic_timezone": zone,
        "scenarios": {},
    }
    try:
        say(f"[{label}] preparing {root} (fresh database, seed-demo --patients {args.patients})")
        app.prepare(
            checkout_database(db_url, label, embedded), checkout_redis(redis_url, redis_db), zone
        )
        app.start()
        admin = Client(app.port, app.login(app.admin))
        _, body, _ = admin.call("setup", "GET", "/api/v1/inventory/medicines?per_page=100")
        medicines = [
            m["id"] for m in json.loads(body)["items"] if m["dosage_form"] in ("TABLET", "CAPSULE")
        ]
        if "journey" in args.scenario:
            result["scenarios"]["journey"] = {
                str(n): journey_level(app, n, embedded, medicines, zone, stop) for n in args.clients
            }
        if "today" in args.scenario:
            fill_queue(app, 10, 400)
            result["scenarios"]["today"] = read_level(
                app,
                "queue/today, 400 tokens, 10 doctors",
                16,
                embedded,
                lambda rng: ("queue_today", "/api/v1/queue/today"),
                stop,
            )
        if "readmix" in args.scenario:
            phones, max_mrn = base.sample_rows(app.db_url)
            searches = base.SearchMix(phones, max_mrn, seed=7)
            if "today" not in args.scenario:
                fill_queue(app, 10, 100)
            fill_counters(app, medicines, zone, READMIX_WAITING)
            result["scenarios"]["readmix"] = read_level(
                app, READMIX_NAME, 16, embedded, lambda rng: read_mix(rng, searches), stop
            )
    finally:
        app.stop()
    return result


def commit_of(root: Path) -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    )
    return done.stdout.strip() or None


def ratio(head, base_):
    return round(head / base_, 2) if head and base_ else None


def compare(runs: list[dict]) -> dict:
    """Mean of each checkout's rounds, and head / baseline."""
    out: dict = {}
    by_label: dict[str, list[dict]] = {}
    for r in runs:
        by_label.setdefault(r["label"], []).append(r)
    head, baseline = by_label.get("head", []), by_label.get("baseline", [])
    for n in sorted({n for r in runs for n in r["scenarios"].get("journey", {})}, key=int):

        def mean(rs, key, n=n):
            values = [
                r["scenarios"]["journey"][n][key]
                for r in rs
                if n in r["scenarios"].get("journey", {})
            ]
            return round(statistics.mean(values), 2) if values else None

        h, b = mean(head, "journeys_per_s"), mean(baseline, "journeys_per_s")
        out[f"journey_{n}"] = {"head": h, "baseline": b, "ratio": ratio(h, b)}
        h, b = mean(head, "app_cpu_ms_per_request"), mean(baseline, "app_cpu_ms_per_request")
        out[f"app_cpu_per_request_{n}"] = {"head": h, "baseline": b, "ratio": ratio(h, b)}
    for name in ("today", "readmix"):
        for key in ("requests_per_s", "app_cpu_ms_per_request"):
            h = [r["scenarios"][name][key] for r in head if name in r["scenarios"]]
            b = [r["scenarios"][name][key] for r in baseline if name in r["scenarios"]]
            if h and b:
                hm, bm = statistics.mean(h), statistics.mean(b)
                out[f"{name}_{key}"] = {
                    "head": round(hm, 2),
                    "baseline": round(bm, 2),
                    "ratio": ratio(hm, bm),
                }
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--clients",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[4, 16, 32],
        help="client counts for the journey (default 4,16,32)",
    )
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per level")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    p.add_argument(
        "--scenario",
        type=lambda s: set(s.split(",")),
        default={"journey"},
        help="journey, today, readmix, or several joined by commas (default journey)",
    )
    p.add_argument("--server", choices=("sync", "gthread", "granian"), default="sync")
    p.add_argument("--workers", type=int, help="server worker processes (default: its own)")
    p.add_argument("--threads", type=int, help="threads per worker (gthread, granian)")
    p.add_argument("--patients", type=int, default=10_000, help="patients on file (10000)")
    p.add_argument(
        "--max-rate",
        type=float,
        default=120.0,
        help="journeys/s the slots must last for: sets the doctors per client (120)",
    )
    p.add_argument(
        "--pause", type=float, default=0.0, help="ms each client waits before a request (0)"
    )
    p.add_argument("--no-billing", action="store_true", help="end the journey at complete")
    p.add_argument(
        "--no-dispense",
        action="store_true",
        help="end the journey at pay (no stocking; for baselines before the pharmacy)",
    )
    p.add_argument("--baseline", help="also measure this commit, in a temporary worktree")
    p.add_argument("--rounds", type=int, default=1, help="with --baseline: alternate N times")
    args = p.parse_args(argv)
    unknown = args.scenario - {"journey", "today", "readmix"}
    if unknown:
        p.error(f"unknown scenario {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Timed.pause = args.pause / 1000
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    base.DATA.mkdir(parents=True, exist_ok=True)
    started = datetime.now().astimezone()
    result: dict = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": "python bench/journey.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cpus": os.cpu_count(),
        "targets": TARGETS,
        "runs": [],
    }
    worktree = None
    try:
        order = [("head", base.ROOT, 2)]
        if args.baseline:
            worktree = Path(tempfile.mkdtemp(prefix="qure-baseline-"))
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(worktree), args.baseline],
                cwd=base.ROOT,
                check=True,
                capture_output=True,
            )
            order = [("baseline", worktree, 1), ("head", base.ROOT, 2)] * max(1, args.rounds)
        for label, root, redis_db in order:
            result["runs"].append(measure(root, label, args, redis_db))
        if args.baseline:
            result["comparison"] = compare(result["runs"])
            say("\n== head / baseline")
            for key, v in result["comparison"].items():
                say(
                    f"  {key:<36} baseline {v['baseline']:>9}  head {v['head']:>9}"
                    f"  ratio {v['ratio']}"
                )
    except KeyboardInterrupt:
        say("\ninterrupted")
        return 130
    finally:
        if worktree is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)],
                cwd=base.ROOT,
                capture_output=True,
            )
            shutil.rmtree(worktree, ignore_errors=True)
        if result["runs"]:
            base.RESULTS.mkdir(parents=True, exist_ok=True)
            path = base.RESULTS / f"journey-{started:%Y%m%d-%H%M%S}.json"
            path.write_text(json.dumps(result, indent=2) + "\n")
            say(f"\nresult: {path.relative_to(base.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
