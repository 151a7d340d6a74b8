#!/usr/bin/env python
"""Qure visit benchmark (issue 4): saving vitals, adding a prescription, and printing the
prescription PDF, against the app under gunicorn.

    python bench/visit_load.py [--clients 16] [--pdf-clients 4] [--seconds 20] [--think-ms 0]

Stores as bench/run.py (BENCH_DATABASE_URL / BENCH_REDIS_URL, else embedded servers under
bench/.data/). Results go to bench/results/visit-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import threading
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run as base  # bench/run.py: stores, gunicorn, CPU meter
from queue_load import (
    Client,
    judge,
    patient_counts,
    patient_ids,
    report,
    save,
    summary,
    together,
)

TARGETS = {"vitals": 50.0, "prescription": 50.0, "pdf_p50": 120.0, "pdf_p95": 250.0}


def register(admin: Client, role: str, name: str, password: str, **extra) -> int:
    """Create a user through the API (as an admin); returns their id."""
    status, body, _ = admin.call(
        "setup",
        "POST",
        "/api/v1/auth/register",
        {
            "username": name,
            "email": f"{name}@bench.local",
            "full_name": name.title(),
            "role": role,
            "password": password,
            **extra,
        },
    )
    if status != 201:
        raise SystemExit(f"could not create {name}: {status} {body[:200]!r}")
    return json.loads(body)["id"]


def login(port: int, name: str, password: str) -> str:
    _, body = base.request(
        "POST", port, "/api/v1/auth/login", {"username": name, "password": password}
    )
    return json.loads(body)["access_token"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--pdf-clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--think-ms", type=float, default=0.0)
    p.add_argument("--reuse", action="store_true")
    args = p.parse_args(argv)
    result: dict = {
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python bench/visit_load.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "git": base.git_commit(),
        "cpus": os.cpu_count(),
        "targets": TARGETS,
        "scenarios": {},
    }
    gunicorn = None
    try:
        fresh = not args.reuse and not os.environ.get("BENCH_DATABASE_URL")
        db_url, redis_url, embedded = base.start_stores(fresh)
        port = base.free_port()
        env = base.app_env(db_url, redis_url, port, {})
        base.flask(env, "db", "upgrade")
        total, unused = patient_counts(db_url)
        base.seed(env, max(20000, total + max(0, 20000 - unused)))  # also the 72 medicines
        password = secrets.token_urlsafe(12)
        run_id = secrets.token_hex(3)
        admin_name = f"vadmin{run_id}"
        base.flask(env, "create-user", admin_name, "--role", "ADMIN", "--password", password)
        gunicorn = base.Gunicorn(env, port)
        gunicorn.start()
        admin = Client(port, login(port, admin_name, password))
        tokens = []
        for i in range(args.clients):
            name = f"vdoc{run_id}{i}"
            register(admin, "DOCTOR", name, password, registration_number=f"VB-{run_id}-{i}")
            tokens.append(login(port, name, password))
        _, body, _ = admin.call("setup", "GET", "/api/v1/inventory/medicines?per_page=200")
        tablets = [
            m["id"] for m in json.loads(body)["items"] if m["dosage_form"] in ("TABLET", "CAPSULE")
        ]
        patients = iter(patient_ids(db_url, 20000))
        roots = (
            gunicorn.proc.pid if gunicorn.proc else None,
            base.postmaster_pid() if embedded else None,
            base.redis_pid(),
        )

        def pause():
            if args.think_ms:
                time.sleep(args.think_ms / 1000 * (0.5 + random.random()))

        lock = threading.Lock()

        def next_patient() -> int:
            with lock:
                return next(patients)

        def open_visit(client: Client) -> int:
            _, body, _ = client.call(
                "setup", "POST", "/api/v1/visits", {"patient_id": next_patient()}
            )
            return json.loads(body)["id"]

        doctors = [Client(port, t) for t in tokens]
        prescription_ids: list[int] = []

        # -- saving vitals, then writing a prescription and completing, visit after visit --
        def consult(client: Client):
            rng = random.Random(id(client))
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                visit = open_visit(client)
                pause()
                vitals = {
                    "bp_systolic": rng.randint(100, 150),
                    "bp_diastolic": rng.randint(60, 95),
                    "temperature": f"{rng.uniform(97, 102):.1f}",
                    "temperature_unit": "F",
                    "pulse": rng.randint(60, 110),
                    "spo2": rng.randint(94, 100),
                    "weight_kg": f"{rng.uniform(40, 95):.1f}",
                    "height_cm": f"{rng.uniform(145, 190):.1f}",
                }
                client.call("vitals", "PATCH", f"/api/v1/visits/{visit}", {"vitals": vitals})
                client.call(
                    "setup", "PATCH", f"/api/v1/visits/{visit}", {"diagnosis": "Viral fever"}
                )
                pause()
                items = [
                    {
                        "medicine_id": m,
                        "dose": rng.choice(["0.5", "1"]),
                        "frequency": rng.choice(["OD", "BD", "TDS", "1-0-1"]),
                        "duration_days": rng.randint(3, 7),
                        "instructions": "after food",
                    }
                    for m in rng.sample(tablets, 3)
                ]
                status, body, _ = client.call(
                    "prescription",
                    "POST",
                    "/api/v1/prescriptions",
                    # Synthetic patients have allergies: an override is part of the work.
                    {"visit_id": visit, "items": items, "override_reason": "bench"},
                )
                if status == 201:
                    with lock:
                        prescription_ids.append(json.loads(body)["id"])
                client.call("setup", "POST", f"/api/v1/visits/{visit}/complete", {})

        base.say(f"\n== vitals and prescriptions: {args.clients} doctors for {args.seconds:g} s")
        meter = base.CpuMeter(*roots)
        meter.start()
        seconds = together(doctors, consult)
        samples = [s for c in doctors for s in c.samples]
        for name, want in (("vitals", {200}), ("prescription", {201})):
            s = summary(samples, {name}, want, seconds)
            judge(s, TARGETS[name])
            s["think_ms"] = args.think_ms
            s["errors_seen"] = [e for c in doctors for e in c.errors][:5]
            result["scenarios"][name] = s
            base.say(f"  {name}:")
            report(s)
        result["scenarios"]["vitals"]["cpu"] = meter.stop(len(samples), seconds)

        # -- the PDF, warm, at 4 clients --
        printers = [Client(port, tokens[i % len(tokens)]) for i in range(args.pdf_clients)]

        def printing(client: Client, record: bool):
            deadline = time.monotonic() + (args.seconds if record else 3)
            while time.monotonic() < deadline:
                rx = random.choice(prescription_ids)
                client.call("pdf" if record else "warm", "GET", f"/api/v1/prescriptions/{rx}/print")

        together(printers, lambda c: printing(c, False))
        base.say(f"\n== prescription PDF: {args.pdf_clients} clients for {args.seconds:g} s (warm)")
        meter = base.CpuMeter(*roots)
        meter.start()
        seconds = together(printers, lambda c: printing(c, True))
        samples = [s for c in printers for s in c.samples if s[0] == "pdf"]
        s = summary(samples, {"pdf"}, {200}, seconds)
        s["cpu"] = meter.stop(len(samples), seconds)
        s["target_p95_ms"] = TARGETS["pdf_p95"]
        s["target_p50_ms"] = TARGETS["pdf_p50"]
        s["status"] = (
            "PASS"
            if not s["errors"]
            and s["p50_ms"] <= TARGETS["pdf_p50"]
            and s["p95_ms"] <= TARGETS["pdf_p95"]
            else "FAIL"
        )
        result["scenarios"]["pdf"] = s
        report(s)
    except KeyboardInterrupt:
        save(result, "visit")
        return 130
    finally:
        if gunicorn is not None:
            gunicorn.stop()
    return save(result, "visit")


if __name__ == "__main__":
    sys.exit(main())
