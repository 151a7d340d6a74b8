#!/usr/bin/env python
"""Qure queue benchmark (issue 3): check-in and walk-in, Call next, the board's update
request, and bulk slot creation, against the app under gunicorn.

    python bench/queue_load.py [--doctors 16] [--clients 16] [--board-think-ms 0]

Stores as bench/run.py: BENCH_DATABASE_URL / BENCH_REDIS_URL, else embedded servers under
bench/.data/. The clinic time zone is set to one where it is mid-morning, so that the day
has slots ahead whenever the benchmark runs. Results go to bench/results/queue-*.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run as base  # bench/run.py: stores, gunicorn, CPU meter

TARGETS = {
    "check_in_walk_in": 20.0,
    "call_next": 20.0,
    "board": 10.0,
    "bulk_3000_slots_seconds": 2.0,
}
DISPLAY_KEY = "bench-display-key-" + secrets.token_hex(4)


def morning_zone() -> str:
    """A fixed-offset zone where it is between 08:00 and 10:00 now."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        name = f"Etc/GMT{'-' if offset >= 0 else '+'}{abs(offset)}"
        if 8 <= now.astimezone(ZoneInfo(name)).hour < 10:
            return name
    return "Asia/Kolkata"


class Client:
    """A keep-alive JSON client that records (kind, ms, status) samples."""

    def __init__(self, port: int, token: str | None = None, headers: dict | None = None):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=base.REQUEST_TIMEOUT)
        self.headers = dict(headers or {})
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.samples: list[tuple[str, float, int]] = []
        self.errors: list[str] = []
        self.timing: str | None = None

    def call(self, kind: str, method: str, path: str, body=None, want=(200, 201), extra=None):
        """Send one request; (status, body, ETag). The answer's Server-Timing header is
        kept in `self.timing`. A keep-alive connection the server closed while it sat idle
        is opened again once and the request sent anew, as browsers do (it never reached
        the app)."""
        headers = {**self.headers, **(extra or {})}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        t0 = time.perf_counter()
        self.timing = etag = None
        for attempt in (1, 2):
            reused = self.conn.sock is not None
            try:
                self.conn.request(method, path, data, headers)
                response = self.conn.getresponse()
                payload = response.read()
                status = response.status
                etag = response.getheader("ETag")
                self.timing = response.getheader("Server-Timing")
                break
            except (OSError, http.client.HTTPException) as exc:
                self.conn.close()
                status, payload = 0, repr(exc).encode()
                stale = isinstance(
                    exc, BrokenPipeError | ConnectionResetError | http.client.RemoteDisconnected
                )
                if not (reused and stale and attempt == 1):
                    break
        ms = (time.perf_counter() - t0) * 1000
        self.samples.append((kind, ms, status))
        if status not in want and len(self.errors) < 5:
            self.errors.append(f"{kind} {status}: {payload[:200]!r}")
        return status, payload, etag


def summary(samples: list[tuple[str, float, int]], kinds: set[str], ok: set[int], seconds: float):
    chosen = sorted(ms for kind, ms, _ in samples if kind in kinds)
    errors = sum(1 for kind, _, status in samples if kind in kinds and status not in ok)
    return {
        "requests": len(chosen),
        "errors": errors,
        "throughput_rps": round(len(chosen) / seconds, 1) if seconds else 0,
        "p50_ms": round(base.percentile(chosen, 50), 2),
        "p95_ms": round(base.percentile(chosen, 95), 2),
        "p99_ms": round(base.percentile(chosen, 99), 2),
    }


def judge(s: dict, target_ms: float) -> dict:
    """Mark a scenario PASS when it had no errors and its p95 met the target."""
    s["target_p95_ms"] = target_ms
    s["status"] = "PASS" if not s["errors"] and s["p95_ms"] <= target_ms else "FAIL"
    return s


def save(result: dict, prefix: str) -> int:
    """Write the result under bench/results/; the exit status: 1 if a scenario failed."""
    base.RESULTS.mkdir(parents=True, exist_ok=True)
    path = base.RESULTS / f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    base.say(f"\nresult: {path.relative_to(base.ROOT)}")
    failed = [n for n, s in result["scenarios"].items() if s.get("status") == "FAIL"]
    return 1 if failed else 0


def report(s: dict, more: tuple[str, ...] = ()) -> None:
    keys = ("requests", "errors", "throughput_rps", "p50_ms", "p95_ms", "p99_ms", *more)
    base.say(
        f"  {json.dumps({k: s[k] for k in keys})} target p95 {s['target_p95_ms']} ms: {s['status']}"
    )
    for error in s.get("errors_seen", []):
        base.say(f"    error: {error}")


def together(workers: list, target) -> float:
    threads = [threading.Thread(target=target, args=(w,), daemon=True) for w in workers]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return time.monotonic() - started


def setup(port: int, admin_token: str, doctors: int, slots_per_doctor: int, zone: str):
    """Doctors with today's slots, each slot booked; returns tokens and appointment ids."""
    admin = Client(port, admin_token)
    password = secrets.token_urlsafe(12)
    run_id = secrets.token_hex(3)
    doctor_ids, doctor_tokens = [], []
    for i in range(doctors):
        name = f"bdoc{run_id}{i}"
        status, body, _ = admin.call(
            "setup",
            "POST",
            "/api/v1/auth/register",
            {
                "username": name,
                "email": f"{name}@bench.local",
                "full_name": f"Doctor Bench {i}",
                "role": "DOCTOR",
                "password": password,
                "registration_number": f"BR-{run_id}-{i}",
            },
        )
        if status != 201:
            raise SystemExit(f"could not create a doctor: {status} {body[:300]!r}")
        doctor_ids.append(json.loads(body)["id"])
        status, body, _ = admin.call(
            "setup", "POST", "/api/v1/auth/login", {"username": name, "password": password}
        )
        doctor_tokens.append(json.loads(body)["access_token"])
    local = datetime.now(ZoneInfo(zone))
    start = (local + timedelta(minutes=20)).replace(second=0, microsecond=0)
    start = start.replace(minute=(start.minute // 15) * 15)
    end = start + timedelta(minutes=15 * slots_per_doctor)
    slots = []
    for doctor_id in doctor_ids:
        status, body, _ = admin.call(
            "setup",
            "POST",
            "/api/v1/slots/bulk",
            {
                "doctor_id": doctor_id,
                "start_date": local.date().isoformat(),
                "end_date": local.date().isoformat(),
                "start_time": start.strftime("%H:%M"),
                "end_time": end.strftime("%H:%M") if end.date() == start.date() else "23:45",
                "duration_minutes": 15,
            },
        )
        if status != 201:
            raise SystemExit(f"bulk slots failed: {status} {body[:300]!r}")
        slots.extend(s["id"] for s in json.loads(body)["slots"])
    return doctor_ids, doctor_tokens, slots


def patient_counts(db_url: str) -> tuple[int, int]:
    """(patients on file, patients no earlier run used); (0, 0) before the first migration."""
    import psycopg

    with psycopg.connect(base._plain_pg_url(db_url)) as conn:
        exists = conn.execute("SELECT to_regclass('queue_entries')").fetchone()[0]
        if not exists:
            return 0, 0
        total = conn.execute("SELECT count(*) FROM patients").fetchone()[0]
    return total, len(patient_ids(db_url, 10**7))


def patient_ids(db_url: str, count: int) -> list[int]:
    import psycopg

    with psycopg.connect(base._plain_pg_url(db_url)) as conn:
        # Patients no earlier run booked or queued (a patient holds one token a day).
        rows = conn.execute(
            "SELECT p.id FROM patients p WHERE p.archived_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.patient_id = p.id)"
            " AND NOT EXISTS (SELECT 1 FROM queue_entries q WHERE q.patient_id = p.id)"
            " ORDER BY p.id LIMIT %s",
            (count,),
        ).fetchall()
    return [r[0] for r in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--doctors", type=int, default=16)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--slots-per-doctor", type=int, default=32)
    p.add_argument("--walk-ins-per-doctor", type=int, default=32)
    p.add_argument("--board-seconds", type=float, default=15.0)
    p.add_argument(
        "--board-think-ms",
        type=float,
        default=0.0,
        help="pause between a screen's polls (the board itself polls every 2000 ms)",
    )
    p.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="pause after each answer at the desks and doctors (0: closed loop, each client "
        "sends its next request at once)",
    )
    p.add_argument("--reuse", action="store_true", help="keep bench/.data's database")
    args = p.parse_args(argv)

    zone = morning_zone()
    result: dict = {
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python bench/queue_load.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "git": base.git_commit(),
        "cpus": os.cpu_count(),
        "clinic_timezone": zone,
        "targets": TARGETS,
        "scenarios": {},
    }
    gunicorn = None
    try:
        fresh = not args.reuse and not os.environ.get("BENCH_DATABASE_URL")
        db_url, redis_url, embedded = base.start_stores(fresh)
        port = base.free_port()
        env = base.app_env(db_url, redis_url, port, {"CLINIC_TIMEZONE": zone})
        base.say("$ flask --app qure db upgrade")
        base.flask(env, "db", "upgrade")
        needed = args.doctors * (args.slots_per_doctor + args.walk_ins_per_doctor) + 600
        total, unused = patient_counts(db_url)
        base.seed(env, max(5000, total + max(0, needed - unused)))
        password = secrets.token_urlsafe(12)
        admin_name = "badmin" + secrets.token_hex(3)
        base.flask(env, "create-user", admin_name, "--role", "ADMIN", "--password", password)
        gunicorn = base.Gunicorn(env, port)
        gunicorn.start()
        status, body = base.request(
            "POST", port, "/api/v1/auth/login", {"username": admin_name, "password": password}
        )
        admin_token = json.loads(body)["access_token"]
        reception_name = "brecep" + secrets.token_hex(3)
        admin = Client(port, admin_token)
        admin.call(
            "setup",
            "POST",
            "/api/v1/auth/register",
            {
                "username": reception_name,
                "email": f"{reception_name}@bench.local",
                "full_name": "Bench Reception",
                "role": "RECEPTION",
                "password": password,
            },
        )
        _, body, _ = admin.call(
            "setup",
            "POST",
            "/api/v1/auth/login",
            {"username": reception_name, "password": password},
        )
        reception_token = json.loads(body)["access_token"]
        meter_roots = (
            gunicorn.proc.pid if gunicorn.proc else None,
            base.postmaster_pid() if embedded else None,
            base.redis_pid(),
        )

        # -- bulk creation of ~3,000 slots in one request (92 days x 32 slots) --
        base.say("\n== bulk slot creation: 92 days x 32 fifteen-minute slots per request")
        bulk_times = []
        doctors_bulk, _, _ = setup(port, admin_token, 3, 1, zone)
        tomorrow = (datetime.now(ZoneInfo(zone)) + timedelta(days=1)).date()
        for doctor_id in doctors_bulk:
            t0 = time.perf_counter()
            status, body, _ = admin.call(
                "bulk",
                "POST",
                "/api/v1/slots/bulk",
                {
                    "doctor_id": doctor_id,
                    "start_date": tomorrow.isoformat(),
                    "end_date": (tomorrow + timedelta(days=91)).isoformat(),
                    "start_time": "09:00",
                    "end_time": "17:00",
                    "duration_minutes": 15,
                },
            )
            seconds = time.perf_counter() - t0
            created = json.loads(body).get("created") if status == 201 else None
            bulk_times.append({"seconds": round(seconds, 3), "created": created, "status": status})
        worst = max(b["seconds"] for b in bulk_times)
        result["scenarios"]["bulk_slots"] = {
            "runs": bulk_times,
            "worst_seconds": worst,
            "target_seconds": TARGETS["bulk_3000_slots_seconds"],
            "status": "PASS"
            if worst <= TARGETS["bulk_3000_slots_seconds"]
            and all(b["status"] == 201 for b in bulk_times)
            else "FAIL",
        }
        base.say(
            f"  {bulk_times} -> worst {worst:.3f} s: {result['scenarios']['bulk_slots']['status']}"
        )

        # -- setup: doctors with booked slots today --
        base.say(f"\n== setup: {args.doctors} doctors, {args.slots_per_doctor} booked slots each")
        doctor_ids, doctor_tokens, slots = setup(
            port, admin_token, args.doctors, args.slots_per_doctor, zone
        )
        patients = patient_ids(db_url, len(slots) + args.doctors * args.walk_ins_per_doctor)
        booker = Client(port, reception_token)
        appointments = []
        for slot_id, patient_id in zip(slots, patients, strict=False):
            status, body, _ = booker.call(
                "setup",
                "POST",
                "/api/v1/appointments",
                {"patient_id": patient_id, "slot_id": slot_id},
            )
            if status == 201:
                appointments.append(json.loads(body)["id"])
        walkers = patients[len(slots) :]
        base.say(f"  {len(appointments)} appointments booked; {len(walkers)} walk-in patients")

        # -- check-in and walk-in: each client works through its share --
        work = [("checkin", a) for a in appointments] + [
            ("walkin", (p, doctor_ids[i % len(doctor_ids)])) for i, p in enumerate(walkers)
        ]
        random.Random(7).shuffle(work)
        shares = [work[i :: args.clients] for i in range(args.clients)]
        clients = [Client(port, reception_token) for _ in range(args.clients)]
        for c, share in zip(clients, shares, strict=True):
            c.share = share

        def pause():
            if args.think_ms:
                time.sleep(args.think_ms / 1000 * (0.5 + random.random()))

        def desk(client):
            for kind, item in client.share:
                pause()
                if kind == "checkin":
                    client.call(
                        "checkin", "POST", "/api/v1/queue/checkin", {"appointment_id": item}
                    )
                else:
                    client.call(
                        "walkin",
                        "POST",
                        "/api/v1/queue/walk-in",
                        {"patient_id": item[0], "doctor_id": item[1]},
                    )

        base.say(f"\n== check-in and walk-in: {len(work)} requests from {args.clients} clients")
        meter = base.CpuMeter(*meter_roots)
        meter.start()
        seconds = together(clients, desk)
        samples = [s for c in clients for s in c.samples]
        s = summary(samples, {"checkin", "walkin"}, {201}, seconds)
        s["by_kind"] = {k: summary(samples, {k}, {201}, seconds) for k in ("checkin", "walkin")}
        s["cpu"] = meter.stop(len(samples), seconds)
        s["errors_seen"] = [e for c in clients for e in c.errors][:5]
        s["think_ms"] = args.think_ms
        judge(s, TARGETS["check_in_walk_in"])
        result["scenarios"]["check_in_walk_in"] = s
        report(s)

        # -- call next: each doctor calls, then completes, until the queue is empty --
        callers = [Client(port, t) for t in doctor_tokens[: args.clients]]

        # The call alone (`open_visit: false`), as measured since issue 3: a doctor's call
        # that opens the visit cannot be completed from the queue, only through the visit.
        def doctor(client):
            while True:
                pause()
                status, body, _ = client.call(
                    "next", "POST", "/api/v1/queue/next", {"open_visit": False}, want=(200, 404)
                )
                if status != 200:
                    return
                token = json.loads(body)["token_number"]
                pause()
                client.call(
                    "complete", "PATCH", f"/api/v1/queue/{token}/status", {"status": "COMPLETED"}
                )

        base.say(f"\n== call next: {len(callers)} doctors call and complete until empty")
        meter = base.CpuMeter(*meter_roots)
        meter.start()
        seconds = together(callers, doctor)
        samples = [s for c in callers for s in c.samples]
        calls = [x for x in samples if x[0] == "next" and x[2] == 200]
        s = summary(calls, {"next"}, {200}, seconds)
        s["complete"] = summary(samples, {"complete"}, {200}, seconds)
        s["cpu"] = meter.stop(len(samples), seconds)
        s["errors_seen"] = [e for c in callers for e in c.errors][:5]
        s["think_ms"] = args.think_ms
        judge(s, TARGETS["call_next"])
        result["scenarios"]["call_next"] = s
        report(s)

        # -- the board: screens poll with If-None-Match while the front desk works --
        base.flask(env, "set-display-key", "--key", DISPLAY_KEY)
        screens = [
            Client(port, headers={"X-Display-Key": DISPLAY_KEY}) for _ in range(args.clients)
        ]
        stop = threading.Event()
        deadline = time.monotonic() + args.board_seconds

        def screen(client):
            etag = None
            while time.monotonic() < deadline:
                extra = {"If-None-Match": etag} if etag else {}
                _, _, new = client.call(
                    "board", "GET", "/api/v1/queue/display", want=(200, 304), extra=extra
                )
                etag = new or etag
                if args.board_think_ms:
                    time.sleep(args.board_think_ms / 1000 * (0.5 + random.random()))

        def changes():
            doctor_client = Client(port, doctor_tokens[0])
            front = Client(port, reception_token)
            spare = iter(patient_ids(db_url, 500))
            while not stop.is_set():
                front.call(
                    "walkin",
                    "POST",
                    "/api/v1/queue/walk-in",
                    {"patient_id": next(spare), "doctor_id": doctor_ids[0]},
                )
                status, body, _ = doctor_client.call(
                    "next", "POST", "/api/v1/queue/next", {"open_visit": False}
                )
                if status == 200:
                    n = json.loads(body)["token_number"]
                    doctor_client.call(
                        "complete", "PATCH", f"/api/v1/queue/{n}/status", {"status": "COMPLETED"}
                    )
                stop.wait(0.5)

        base.say(f"\n== board: {len(screens)} screens polling for {args.board_seconds:g} s")
        writer = threading.Thread(target=changes, daemon=True)
        writer.start()
        meter = base.CpuMeter(*meter_roots)
        meter.start()
        seconds = together(screens, screen)
        stop.set()
        writer.join(10)
        samples = [s for c in screens for s in c.samples]
        s = summary(samples, {"board"}, {200, 304}, seconds)
        s["answers_200"] = sum(1 for x in samples if x[2] == 200)
        s["answers_304"] = sum(1 for x in samples if x[2] == 304)
        s["think_ms"] = args.board_think_ms
        s["cpu"] = meter.stop(len(samples), seconds)
        s["errors_seen"] = [e for c in screens for e in c.errors][:5]
        judge(s, TARGETS["board"])
        result["scenarios"]["board"] = s
        report(s, ("answers_200", "answers_304"))
    except KeyboardInterrupt:
        save(result, "queue")
        return 130
    finally:
        if gunicorn is not None:
            gunicorn.stop()
    return save(result, "queue")


if __name__ == "__main__":
    sys.exit(main())
