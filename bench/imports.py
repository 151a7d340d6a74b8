#!/usr/bin/env python
"""Qure import benchmark (issue 13): a CSV of 10,000 generated patients imported through the
real job (upload check, then `run_import` on an RQ worker in this process: each row through
patients.register in its own savepoint, committed every 200 rows).

    python bench/imports.py [--patients 10000] [--profile]

Stores as bench/run.py (BENCH_DATABASE_URL / BENCH_REDIS_URL, else embedded servers under
bench/.data/); the database is a fresh one of its own (`qure_bench_imports`), the Redis
database emptied first. Prints the upload check's and the job's seconds; target: the job
under 30 s. With --profile, the job's top functions by cumulative time (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import pstats
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run as base  # bench/run.py: stores

TARGET_SECONDS = 30.0
DB_NAME = "qure_bench_imports"


def fresh_database(db_url: str) -> str:
    import psycopg

    plain = base._plain_pg_url(db_url)
    admin = re.sub(r"/[^/?]+(\?|$)", r"/postgres\1", plain, count=1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return re.sub(r"/[^/?]+(\?|$)", rf"/{DB_NAME}\1", db_url, count=1)


def patients_csv(n: int) -> bytes:
    from qure.demo import FIRST, LAST

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["full_name", "date_of_birth", "sex", "phone", "allergies"])
    for i in range(n):
        name = f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]} {i}"
        born = f"{1940 + i % 70}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        writer.writerow([name, born, "FMO"[i % 3], f"9{i:09d}", "Penicillin" if i % 9 else ""])
    return out.getvalue().encode()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--patients", type=int, default=10_000)
    p.add_argument("--profile", action="store_true", help="print the job's cProfile top 25")
    args = p.parse_args(argv)
    db_url, redis_url, _embedded = base.start_stores(fresh=False)
    db_url = fresh_database(db_url)
    import redis as redis_client

    redis_client.Redis.from_url(redis_url).flushdb()

    from flask_migrate import upgrade

    from qure import create_app
    from qure.auth import service as users
    from qure.core import jobs
    from qure.extensions import db, redis_store
    from qure.imports import service, tasks
    from qure.imports.models import Import

    app = create_app(
        {"DATABASE_URL": db_url, "REDIS_URL": redis_url, "MONGO_URL": None, "QURE_ENV": "bench"}
    )
    with app.app_context():
        upgrade()
        admin = users.create_user(
            None,
            {
                "username": "bench-admin",
                "full_name": "Bench Admin",
                "email": "bench@bench.local",
                "role": "ADMIN",
                "password": "bench-password-1",
            },
        )
        db.session.commit()
        content = patients_csv(args.patients)
        t0 = time.perf_counter()
        upload, _new = service.receive(
            admin, "patients", "bench.csv", content, app.config["IMPORT_MAX_BYTES"]
        )
        db.session.commit()
        checked = time.perf_counter() - t0
        tasks.submit(upload)
        import_id = upload.id
        worker = jobs.ThreadWorker([jobs.queue()], connection=redis_store.client)
        profile = cProfile.Profile() if args.profile else None
        t1 = time.perf_counter()
        if profile:
            profile.enable()
        worker.work(burst=True, logging_level="WARNING")
        if profile:
            profile.disable()
        seconds = time.perf_counter() - t1
        db.session.expire_all()
        done = db.session.get(Import, import_id)
        print(f"file: {len(content) / 1e6:.2f} MB, {done.total_rows} rows")
        print(f"upload check: {checked:.2f} s")
        print(
            f"import job: {seconds:.1f} s ({done.total_rows / seconds:.0f} rows/s); imported "
            f"{done.imported}, duplicates {done.duplicates}, refused {done.rejected}"
        )
        verdict = "PASS" if seconds < TARGET_SECONDS and done.imported == args.patients else "FAIL"
        print(f"target under {TARGET_SECONDS:g} s: {verdict}")
        if profile:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
