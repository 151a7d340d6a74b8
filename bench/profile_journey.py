#!/usr/bin/env python
"""Where a journey's CPU goes, in process: bench/journey.py's journey through the Flask test
client (no HTTP server, no other client), on a fresh database of its own.

    python bench/profile_journey.py [--journeys 60] [--warm 20] [--top 40] [--step dispense]

Prints, for `--journeys` journeys after `--warm` unmeasured ones: the CPU each journey and
each step cost without a profiler (the step's own Server-Timing CPU, median), the SQL
statements each step sent, then a cProfile (CPU time) of the same journeys again: the share
of each package, and the top entries by cumulative time. `--step NAME` (one or more)
profiles only those steps (the rest of each journey runs unprofiled), as for billing and
dispensing. Stores as bench/journey.py (BENCH_DATABASE_URL / BENCH_REDIS_URL, else embedded).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import journey as bench  # bench/journey.py: the journey itself, the stocking
import run as base  # bench/run.py: the stores

ROOT = Path(__file__).resolve().parent.parent


class InProcess:
    """bench/journey.py's client, answered by the app in this process (the test client):
    the same (status, body, etag) for the same call."""

    CPU = re.compile(r"cpu;dur=([\d.]+)")

    def __init__(self, flask_app, token: str | None = None, hooks=None):
        self.client = flask_app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.hooks = hooks
        self.cpu: list[tuple[str, float]] = []
        self.samples: list[tuple[str, float, int]] = []
        self.errors: list[str] = []

    def call(self, kind, method, path, body=None, want=(200, 201), extra=None):
        if self.hooks:
            self.hooks.before(kind)
        response = self.client.open(
            path, method=method, json=body, headers={**self.headers, **(extra or {})}
        )
        if self.hooks:
            self.hooks.after(kind)
        timing = response.headers.get("Server-Timing") or ""
        if found := self.CPU.search(timing):
            self.cpu.append((kind, float(found.group(1))))
        self.samples.append((kind, 0.0, response.status_code))
        if response.status_code not in want:
            self.errors.append(f"{kind} {response.status_code}: {response.data[:300]!r}")
        return response.status_code, response.data, response.headers.get("ETag")


class Hooks:
    """Counts each step's statements; with `profiler`, profiles the chosen steps only."""

    def __init__(self, steps: set[str] | None = None):
        self.kind: str | None = None
        self.statements: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.profiler: cProfile.Profile | None = None
        self.steps = steps
        self.sql: dict[str, list[str]] = defaultdict(list)
        self.keep_sql = False

    def before(self, kind):
        self.kind = kind
        self.calls[kind] += 1
        if self.profiler and (not self.steps or kind in self.steps):
            self.profiler.enable()

    def after(self, kind):
        if self.profiler:
            self.profiler.disable()
        self.kind = None

    def on_statement(self, _conn, _cursor, statement, *_args, **_kw):
        if self.kind:
            self.statements[self.kind] += 1
            if self.keep_sql:
                self.sql[self.kind].append(" ".join(statement.split())[:150])


def prepare(args) -> tuple[object, dict, str]:
    """A fresh database (migrated, seeded with --patients), the app in this process."""
    zone = bench.night_zone()
    db_url, redis_url, embedded = base.start_stores(fresh=False)
    args.server, args.workers, args.threads, args.no_billing, args.no_dispense = (
        "sync",
        None,
        None,
        False,
        False,
    )
    args.max_rate = (args.journeys + args.warm) * 2
    args.seconds, args.warmup = 1, 0
    checkout = bench.Checkout(ROOT, "profile", args)
    checkout.prepare(
        bench.checkout_database(db_url, "profile", embedded),
        bench.checkout_redis(redis_url, 14),
        zone,
    )
    for key, value in checkout.env.items():
        os.environ[key] = value
    from sqlalchemy import event

    from qure import create_app
    from qure.extensions import db

    flask_app = create_app()
    hooks = Hooks(set(args.step) if args.step else None)
    with flask_app.app_context():
        event.listen(db.engine, "before_cursor_execute", hooks.on_statement)
    return flask_app, {"checkout": checkout, "hooks": hooks}, zone


def login(flask_app, username: str) -> str:
    answer = flask_app.test_client().post(
        "/api/v1/auth/login", json={"username": username, "password": bench.PASSWORD}
    )
    assert answer.status_code == 200, answer.data
    return answer.get_json()["access_token"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journeys", type=int, default=60)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--step", action="append", choices=bench.STEPS)
    parser.add_argument("--dump", metavar="FILE", help="also write the profile (pstats) here")
    parser.add_argument("--sql", action="store_true", help="print one journey's statements")
    args = parser.parse_args()
    flask_app, extra, zone = prepare(args)
    hooks: Hooks = extra["hooks"]
    checkout = extra["checkout"]

    admin = InProcess(flask_app, login(flask_app, checkout.admin))
    _, body, _ = admin.call("setup", "GET", "/api/v1/inventory/medicines?per_page=100")
    medicines = [
        m["id"] for m in json.loads(body)["items"] if m["dosage_form"] in ("TABLET", "CAPSULE")
    ]
    suffix = os.urandom(2).hex()
    names = {"RECEPTION": f"prec{suffix}", "PHARMACIST": f"ppha{suffix}"}
    for role, name in names.items():
        bench.register(admin, role, name, bench.PASSWORD)
    # Enough doctors that today's 15-minute slots hold every journey.
    doctors = [f"pdoc{suffix}x{i}" for i in range(1 + (2 * args.journeys + args.warm) // 80)]
    for i, name in enumerate(doctors):
        bench.register(admin, "DOCTOR", name, bench.PASSWORD, registration_number=f"PB{suffix}{i}")
    bench.stock_medicines(checkout, admin, medicines, zone)

    desk = bench.Desk(None, None, doctors, medicines, zone, 7, pharmacist="x")
    desk.reception = InProcess(flask_app, login(flask_app, names["RECEPTION"]), hooks)
    desk.doctors = [InProcess(flask_app, login(flask_app, d), hooks) for d in doctors]
    desk.pharmacist = InProcess(flask_app, login(flask_app, names["PHARMACIST"]), hooks)

    def run(n: int) -> float:
        started = time.process_time()
        for i in range(n):
            which = i % len(doctors)
            start = desk.next_slot[which]
            end = start + bench.timedelta(minutes=bench.SLOT_MINUTES)
            desk.next_slot[which] = end
            failed = desk.journey(desk.doctors[which], start, end)
            if failed:
                errors = [e for c in desk.clients() for e in c.errors]
                raise SystemExit(f"journey failed at {failed}: {errors[-3:]}")
        return time.process_time() - started

    run(args.warm)
    for c in desk.clients():
        c.cpu.clear()
    hooks.statements.clear()
    hooks.calls.clear()
    plain = run(args.journeys)
    cpu = defaultdict(list)
    for c in desk.clients():
        for kind, ms in c.cpu:
            cpu[kind].append(ms)
    print(
        f"{args.journeys} journeys in process, no profiler: {plain * 1000 / args.journeys:.1f} ms"
        f" of CPU a journey ({plain * 1000 / args.journeys / len(bench.STEPS):.2f} ms a request)"
    )
    print(f"{'step':<14}{'in-app CPU median':>18}{'statements':>12}")
    for step in bench.STEPS:
        n = hooks.calls[step] or 1
        median = statistics.median(cpu[step]) if cpu[step] else float("nan")
        print(f"{step:<14}{median:>15.2f} ms{hooks.statements[step] / n:>12.1f}")
    medians = [statistics.median(v) for v in cpu.values() if v]
    print(f"median of the steps' medians: {statistics.median(medians):.2f} ms")
    if args.sql:
        hooks.keep_sql = True
        run(1)
        hooks.keep_sql = False
        for step in bench.STEPS:
            print(f"\n{step}:")
            for statement in hooks.sql[step]:
                print(f"  {statement}")

    profiler = cProfile.Profile(time.process_time)
    hooks.profiler = profiler
    run(args.journeys)
    hooks.profiler = None
    stats = pstats.Stats(profiler)
    if args.dump:
        stats.dump_stats(args.dump)
    by_package: Counter[str] = Counter()
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():
        found = re.search(r"site-packages/([^/]+)", filename)
        if found:
            package = found.group(1)
        elif "/qure/" in filename:
            package = "qure"
        elif filename.startswith("~"):
            package = "C built-ins"
        else:
            package = "standard library"
        by_package[package] += own
    total = sum(by_package.values())
    which = ", ".join(args.step) if args.step else "every step"
    print(f"\nprofiled ({which}): {total:.2f} s of CPU; own time by package")
    for package, own in by_package.most_common(12):
        print(f"  {own / total * 100:5.1f} %  {own:6.2f} s  {package}")
    print(f"\ntop {args.top} by cumulative time")
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
