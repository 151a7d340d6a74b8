#!/usr/bin/env python
"""What `GET /api/v1/queue/today` costs on a busy day, under gunicorn (issue 10).

    python bench/today_probe.py --seed             # seed the day, then measure
    python bench/today_probe.py --zone Etc/GMT-5   # measure the day seeded before

`--seed` issues `--tokens` tokens (default 400) across `--doctors` doctors (default 10):
each doctor's booked slots checked in, walk-ins for the rest, then per doctor three
tokens completed, one skipped and one with the doctor. Without `--seed` the day already
in the database is measured, so that two versions of the code can be compared on the
same rows: run it once with `--seed`, note the clinic time zone it prints, and pass it
as `--zone` to later runs (from this checkout or another one).

Then, after a warm-up, closed-loop scenarios: one client, `--clients` clients (default
16; the target is p95 <= 20 ms), as many asking for one doctor's queue (`?doctor_id=`),
as many again while the queue moves `--moves` times a second (a token skipped and
recalled, over and over: every move is a new queue version), and, for the floor under
those figures, as many reading one token (`GET /api/v1/queue/{n}`). Printed per
scenario: p50/p95/p99, bytes per answer and the CPU each request cost in gunicorn (and
PostgreSQL and Redis when embedded). Stores as bench/run.py (BENCH_DATABASE_URL /
BENCH_REDIS_URL, else embedded ones under bench/.data/); results go to
bench/results/today-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import queue_load as ql  # bench/queue_load.py: Client, doctors with slots, patients
import run as base  # bench/run.py: stores, gunicorn, CPU meter

TARGET_P95_MS = 20.0
URL = "/api/v1/queue/today"


def tokens_on(db_url: str, day) -> int:
    import psycopg

    with psycopg.connect(base._plain_pg_url(db_url)) as conn:
        if not conn.execute("SELECT to_regclass('queue_entries')").fetchone()[0]:
            return 0
        return conn.execute("SELECT count(*) FROM queue_entries WHERE day = %s", (day,)).fetchone()[
            0
        ]


def seed_day(port, admin_token, reception_token, db_url, zone, doctors, tokens) -> None:
    """`tokens` tokens across `doctors` doctors, a quarter of them booked appointments."""
    per_doctor = tokens // doctors
    doctor_ids, doctor_tokens, slots = ql.setup(
        port, admin_token, doctors, max(1, per_doctor // 4), zone
    )
    patients = iter(ql.patient_ids(db_url, tokens))
    desk = ql.Client(port, reception_token)
    issued = 0
    for slot_id in slots:
        status, body, _ = desk.call(
            "seed",
            "POST",
            "/api/v1/appointments",
            {"patient_id": next(patients), "slot_id": slot_id},
        )
        if status == 201:
            appointment = json.loads(body)["id"]
            status, _, _ = desk.call(
                "seed", "POST", "/api/v1/queue/checkin", {"appointment_id": appointment}
            )
            issued += status == 201
    for i in range(tokens - issued):
        desk.call(
            "seed",
            "POST",
            "/api/v1/queue/walk-in",
            {"patient_id": next(patients), "doctor_id": doctor_ids[i % doctors]},
        )
    for token in doctor_tokens:
        doctor = ql.Client(port, token)
        for then in ("COMPLETED", "COMPLETED", "COMPLETED", "SKIPPED", None):
            _, body, _ = doctor.call("seed", "POST", "/api/v1/queue/next", {"open_visit": False})
            if then:
                number = json.loads(body)["token_number"]
                doctor.call("seed", "PATCH", f"/api/v1/queue/{number}/status", {"status": then})
    errors = [e for c in (desk,) for e in c.errors]
    if errors:
        raise SystemExit(f"seeding failed: {errors}")


class Mover(threading.Thread):
    """Moves the queue `per_second` times a second while it runs: skips a waiting token,
    then recalls it (so the day keeps its tokens, and every move is a new queue version)."""

    def __init__(self, port: int, token: str, number: int, per_second: float):
        super().__init__(daemon=True)
        self.client = ql.Client(port, token)
        self.number, self.pause, self.moves = number, 1 / per_second, 0
        self.stop = threading.Event()

    def run(self) -> None:
        path = f"/api/v1/queue/{self.number}/status"
        while not self.stop.wait(self.pause) or self.moves % 2:  # ends with it waiting
            status = "SKIPPED" if self.moves % 2 == 0 else "WAITING"
            self.client.call("move", "PATCH", path, {"status": status})
            self.moves += 1


def scenario(port, token, clients: int, seconds: float, path: str, meter_roots) -> dict:
    """`clients` clients asking `path` in a closed loop for `seconds` (after 2 s warm-up)."""
    workers = [ql.Client(port, token) for _ in range(clients)]
    sizes: list[int] = []
    phase = {"until": time.monotonic() + 2.0}

    def loop(client):
        while time.monotonic() < phase["until"]:
            _, payload, _ = client.call("today", "GET", path)
            if len(sizes) < 50:
                sizes.append(len(payload))

    ql.together(workers, loop)  # warm-up
    for w in workers:
        w.samples.clear()
    phase["until"] = time.monotonic() + seconds
    meter = base.CpuMeter(*meter_roots)
    meter.start()
    took = ql.together(workers, loop)
    samples = [s for w in workers for s in w.samples]
    result = ql.summary(samples, {"today"}, {200}, took)
    result["clients"] = clients
    result["bytes_per_answer"] = max(sizes) if sizes else None
    result["cpu"] = meter.stop(len(samples), took)
    result["errors_seen"] = [e for w in workers for e in w.errors][:5]
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", action="store_true", help="issue today's tokens first")
    p.add_argument("--zone", help="clinic time zone (default: one where it is morning now)")
    p.add_argument("--doctors", type=int, default=10)
    p.add_argument("--tokens", type=int, default=400)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--moves", type=float, default=4.0, help="queue moves a second, last scenario")
    args = p.parse_args(argv)

    zone = args.zone or ql.morning_zone()
    day = datetime.now(ZoneInfo(zone)).date()
    result: dict = {
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python bench/today_probe.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "git": base.git_commit(),
        "clinic_timezone": zone,
        "day": day.isoformat(),
        "scenarios": {},
    }
    base.say(f"clinic time zone {zone} (pass --zone {zone} to measure this day again)")
    gunicorn = None
    try:
        db_url, redis_url, embedded = base.start_stores(False)
        port = base.free_port()
        env = base.app_env(db_url, redis_url, port, {"CLINIC_TIMEZONE": zone})
        base.flask(env, "db", "upgrade")
        held = tokens_on(db_url, day)
        if args.seed and held:
            raise SystemExit(f"{day} already holds {held} tokens: seed into an empty day")
        if not args.seed and not held:
            raise SystemExit(f"{day} holds no tokens: run with --seed first")
        if args.seed:
            total, unused = ql.patient_counts(db_url)
            if unused < args.tokens:
                # The demo data the first seeding adds books some patients itself.
                base.seed(env, total + args.tokens - unused + 100)
        password = secrets.token_urlsafe(12)
        names = {}
        for role in ("ADMIN", "RECEPTION"):
            names[role] = f"probe{role.lower()}{secrets.token_hex(3)}"
            base.flask(env, "create-user", names[role], "--role", role, "--password", password)
        gunicorn = base.Gunicorn(env, port)
        gunicorn.start()
        login = {}
        for role, name in names.items():
            _, body = base.request(
                "POST", port, "/api/v1/auth/login", {"username": name, "password": password}
            )
            login[role] = json.loads(body)["access_token"]
        if args.seed:
            base.say(f"\n== seeding {args.tokens} tokens across {args.doctors} doctors for {day}")
            seed_day(
                port, login["ADMIN"], login["RECEPTION"], db_url, zone, args.doctors, args.tokens
            )
        _, body = base.request("GET", port, URL, token=login["RECEPTION"])
        doctors = json.loads(body)["doctors"]
        result["tokens"] = tokens_on(db_url, day)
        result["doctors"] = len(doctors)
        base.say(f"\n{result['tokens']} tokens today across {len(doctors)} doctors")
        busiest = max(doctors, key=lambda d: len(d["waiting"]))["doctor"]["id"]
        roots = (
            gunicorn.proc.pid,
            base.postmaster_pid() if embedded else None,
            base.redis_pid(),
        )
        moved = max(doctors, key=lambda d: len(d["waiting"]))["waiting"][-1]["token_number"]
        plans = {
            "one_client": (1, URL, 0),
            f"{args.clients}_clients": (args.clients, URL, 0),
            f"{args.clients}_clients_one_doctor": (args.clients, f"{URL}?doctor_id={busiest}", 0),
            f"{args.clients}_clients_while_the_queue_moves": (args.clients, URL, args.moves),
            # What any signed-in read costs here: the floor under the figures above.
            f"{args.clients}_clients_one_token": (args.clients, f"/api/v1/queue/{moved}", 0),
        }
        for name, (clients, path, moves) in plans.items():
            extra = f", the queue moving {moves:g} times a second" if moves else ""
            base.say(f"\n== {name}: GET {path} for {args.seconds:g} s{extra}")
            mover = Mover(port, login["RECEPTION"], moved, moves) if moves else None
            if mover:
                mover.start()
            s = scenario(port, login["RECEPTION"], clients, args.seconds, path, roots)
            if mover:
                mover.stop.set()
                mover.join(10)
                s["moves"] = mover.moves
                s["errors_seen"] += mover.client.errors
            if name == f"{args.clients}_clients":
                ql.judge(s, TARGET_P95_MS)
            result["scenarios"][name] = s
            keys = ("requests", "errors", "throughput_rps", "p50_ms", "p95_ms", "p99_ms")
            shown = {k: s[k] for k in keys}
            cpu = {k: v for k, v in s["cpu"].items() if k.endswith("_per_request") and v}
            base.say(f"  {json.dumps(shown)} {s.get('status', '')}")
            base.say(f"  {s['bytes_per_answer']} bytes per answer; CPU ms/request {cpu}")
            for error in s["errors_seen"]:
                base.say(f"    error: {error}")
    finally:
        if gunicorn is not None:
            gunicorn.stop()
    return ql.save(result, "today")


if __name__ == "__main__":
    sys.exit(main())
