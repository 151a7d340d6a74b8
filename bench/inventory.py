#!/usr/bin/env python
"""Qure inventory benchmark (issue 12): the pharmacy's medicine list over a full store.

    python bench/inventory.py [--medicines 2000] [--batches 20000] [--clients 16]
                              [--seconds 20] [--pauses 0,250]

Loads, in bulk (SQLAlchemy Core inserts into the app's tables, not through HTTP), 2,000
medicines and 20,000 batches on top of the demo's catalogue: a tenth of the batches expired,
a tenth expiring within 30 days, about one in seven empty, and some medicines with no batch
at all or only a little stock (below their reorder level). Then `--clients` readers (16,
signed in as an admin) ask GET /api/v1/inventory/medicines with a mix of

    list      no filter, pages 1..N of the whole catalogue (50 a page, the API's default)  30 %
    q         a name fragment (3-5 letters, mostly a prefix) or an ingredient word         25 %
    low       stock=low (at or below the reorder level), pages 1-3                         15 %
    out       stock=out (no usable stock), pages 1-3                                       15 %
    expiring  stock=expiring (usable stock expiring within 30 days), pages 1-3             15 %

once for each pause in `--pauses` (ms each client waits before a request: 0 is the closed
loop, 250 the paced figure), and prints per query kind p50/p95/p99 and the app's CPU per
request (Server-Timing). Target: p95 <= 80 ms for every kind.

Stores as bench/run.py (BENCH_DATABASE_URL / BENCH_REDIS_URL, else embedded servers under
bench/.data/); the database is a fresh one of its own (`qure_journey_inventory`). Results go
to bench/results/inventory-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import journey  # bench/journey.py: the checkout, its server, the readers
import run as base  # bench/run.py: stores, CPU meter

TARGET_P95_MS = 80.0
ZONE = "Asia/Kolkata"
KINDS = (("list", 30), ("q", 25), ("low", 15), ("out", 15), ("expiring", 15))
FORMS = ("TABLET", "CAPSULE", "SYRUP", "SUSPENSION", "INJECTION", "OINTMENT", "CREAM", "DROPS")
STRENGTHS = ("5 mg", "10 mg", "20 mg", "50 mg", "100 mg", "250 mg", "500 mg", "650 mg", "1 g")
HEADS = [
    "Amlo",
    "Ator",
    "Azi",
    "Bena",
    "Cefo",
    "Cipro",
    "Clo",
    "Dexa",
    "Diclo",
    "Dolo",
    "Esom",
    "Feno",
    "Fluco",
    "Gaba",
    "Glime",
    "Ibu",
    "Itra",
    "Keto",
    "Levo",
    "Lina",
    "Losa",
    "Metfo",
    "Metro",
    "Monte",
    "Napro",
    "Olme",
    "Panto",
    "Para",
    "Rabe",
    "Rosu",
    "Serta",
    "Telmi",
    "Trama",
    "Vilda",
    "Zoli",
]
TAILS = [
    "bax",
    "cin",
    "dex",
    "fen",
    "gard",
    "kind",
    "lin",
    "max",
    "mox",
    "nac",
    "pril",
    "quin",
    "rex",
    "sar",
    "tab",
    "vin",
    "zole",
    "zon",
]
MARKS = ("", " Forte", " Plus", " DS", " SR", " MR", " XR", " LS", " CV", " D")


def say(message: str = "") -> None:
    print(message, flush=True)


# ---- the bulk load -----------------------------------------------------------------------


def bulk_load(db_url: str, medicines: int, batches: int, seed: int = 12) -> dict:
    """Insert `medicines` medicines and `batches` batches with SQLAlchemy Core (a few
    multi-row INSERTs), then VACUUM ANALYZE; returns what was loaded."""
    from sqlalchemy import create_engine, insert, select, text

    from qure.auth.models import User
    from qure.pharmacy.catalogue import COMMON_MEDICINES
    from qure.pharmacy.models import Batch, Medicine
    from qure.pharmacy.service import ingredients_of, search_form

    rng = random.Random(seed)
    today = datetime.now(ZoneInfo(ZONE)).date()
    engine = create_engine(db_url)
    rows, seen = [], set()
    while len(rows) < medicines:
        _, generic, drug_class, _, _, maker, price, gst = rng.choice(COMMON_MEDICINES)
        name = f"{rng.choice(HEADS)}{rng.choice(TAILS)}{rng.choice(MARKS)}"
        form, strength = rng.choice(FORMS), rng.choice(STRENGTHS)
        key = (name.lower(), strength.lower(), form)
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                "name": name,
                "generic_name": generic,
                "ingredients": ingredients_of(generic),
                "drug_class": drug_class,
                "dosage_form": form,
                "strength": strength,
                "manufacturer": maker,
                "unit_price": Decimal(price),
                "gst_rate": gst,
                "hsn_code": "3004",
                "reorder_level": rng.choice((10, 20, 50, 100, 200)),
                "schedule": "NONE",
                "is_active": rng.random() > 0.03,
                "search_text": search_form(name, generic, drug_class)[:700],
            }
        )
    counts = {"expired": 0, "expiring_30": 0, "empty": 0}
    with engine.begin() as conn:
        user = conn.scalar(select(User.id).order_by(User.id).limit(1))
        ids = list(conn.scalars(insert(Medicine).returning(Medicine.id), rows))
        # A twentieth of the medicines get no batch at all; the rest share the batches,
        # some a lot of them, some one or two.
        stocked = ids[len(ids) // 20 :]
        weights = [rng.choice((1, 2, 5, 10, 20)) for _ in stocked]
        owners = rng.choices(stocked, weights, k=batches)
        numbers: dict[int, int] = {}
        now = datetime.now(ZoneInfo(ZONE))
        stock = []
        for medicine in owners:
            numbers[medicine] = numbers.get(medicine, 0) + 1
            roll = rng.random()
            if roll < 0.1:
                expiry = today - timedelta(days=rng.randint(0, 400))
                counts["expired"] += 1
            elif roll < 0.2:
                expiry = today + timedelta(days=rng.randint(1, 30))
                counts["expiring_30"] += 1
            else:
                expiry = today + timedelta(days=rng.randint(31, 1000))
            quantity = 0 if rng.random() < 0.15 else rng.choice((2, 5, 20, 60, 200, 1000))
            counts["empty"] += quantity == 0
            stock.append(
                {
                    "medicine_id": medicine,
                    "batch_number": f"BK{medicine}-{numbers[medicine]:03d}",
                    "quantity": quantity,
                    "expiry_date": expiry,
                    "mfg_date": expiry - timedelta(days=720),
                    "supplier": rng.choice(("Apollo Distributors", "MedPlus Wholesale", None)),
                    "purchase_price": Decimal(f"{rng.uniform(0.5, 90):.2f}"),
                    "received_by_id": user,
                    "received_at": now,
                }
            )
        for start in range(0, len(stock), 5000):
            conn.execute(insert(Batch), stock[start : start + 5000])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) medicines, batches"))
    engine.dispose()
    return {"medicines": len(rows), "batches": len(stock), "no_batch": len(ids) // 20, **counts}


def fragments(names: list[str], generics: list[str], rng: random.Random, n: int) -> list[str]:
    """Search texts as a pharmacist types them: name prefixes of 3-5 letters (60 %), a
    fragment from inside a name (15 %), an ingredient word (25 %)."""
    words = sorted({w for g in generics for w in g.replace("+", " ").split() if len(w) > 3})
    out = []
    for _ in range(n):
        roll = rng.random()
        name = rng.choice(names).replace(" ", "")
        size = rng.randint(3, 5)
        if roll < 0.6:
            out.append(name[:size].lower())
        elif roll < 0.75 and len(name) > size + 1:
            at = rng.randint(1, len(name) - size)
            out.append(name[at : at + size].lower())
        else:
            out.append(rng.choice(words))
    return out


# ---- the run -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--medicines", type=int, default=2000, help="medicines to load (2000)")
    p.add_argument("--batches", type=int, default=20000, help="batches to load (20000)")
    p.add_argument("--clients", type=int, default=16, help="readers (16)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per pause")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    p.add_argument(
        "--pauses",
        type=lambda s: [float(v) for v in s.split(",")],
        default=[0.0, 250.0],
        help="ms each reader waits before a request, one run each (0,250)",
    )
    p.add_argument("--per-page", type=int, help="per_page sent (default none: the API's 50)")
    p.add_argument("--patients", type=int, default=1000, help="demo patients (1000)")
    p.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py)")
    args = p.parse_args(argv)
    args.server, args.threads = "sync", None
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    base.DATA.mkdir(parents=True, exist_ok=True)
    started = datetime.now().astimezone()
    stop = threading.Event()
    db_url, redis_url, embedded = base.start_stores(fresh=False)
    app = journey.Checkout(base.ROOT, "inventory", args)
    result: dict = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": "python bench/inventory.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cpus": os.cpu_count(),
        "git": journey.commit_of(base.ROOT),
        "target_p95_ms": TARGET_P95_MS,
        "runs": {},
    }
    failed = False
    try:
        say(f"[inventory] fresh database, seed-demo --patients {args.patients}")
        app.prepare(
            journey.checkout_database(db_url, "inventory", embedded),
            journey.checkout_redis(redis_url, 3),
            ZONE,
        )
        t0 = time.perf_counter()
        loaded = bulk_load(app.db_url, args.medicines, args.batches)
        loaded["seconds"] = round(time.perf_counter() - t0, 1)
        result["loaded"] = loaded
        say(f"[inventory] loaded {loaded}")
        app.start()
        admin = journey.Client(app.port, app.login(app.admin))
        _, body, _ = admin.call("setup", "GET", "/api/v1/inventory/medicines?per_page=1")
        total = json.loads(body)["total"]
        per_page = args.per_page or 50
        pages = max(1, -(-total // per_page))
        import psycopg

        with psycopg.connect(base._plain_pg_url(app.db_url)) as conn:
            names, generics = zip(
                *conn.execute("SELECT name, generic_name FROM medicines WHERE is_active"),
                strict=True,
            )
        texts = fragments(list(names), list(generics), random.Random(5), 4000)
        kinds, weights = zip(*KINDS, strict=True)
        suffix = f"&per_page={args.per_page}" if args.per_page else ""

        def mix(rng: random.Random) -> tuple[str, str]:
            kind = rng.choices(kinds, weights)[0]
            path = "/api/v1/inventory/medicines?"
            if kind == "list":
                path += f"page={rng.randint(1, pages)}"
            elif kind == "q":
                path += f"q={quote(rng.choice(texts))}"
            else:
                page = 1 if rng.random() < 0.7 else rng.randint(2, 3)
                path += f"stock={kind}&page={page}"
            return kind, path + suffix

        say(f"[inventory] {total} active medicines, {pages} pages of {per_page}")
        for pause in args.pauses:
            journey.Timed.pause = pause / 1000
            name = f"inventory list, {'closed loop' if not pause else f'pause {pause:g} ms'}"
            r = journey.read_level(app, name, args.clients, embedded, mix, stop)
            r["pause_ms"] = pause
            r["pass"] = {k: s["p95_ms"] <= TARGET_P95_MS for k, s in r["by_kind"].items() if s["n"]}
            result["runs"][f"pause_{pause:g}"] = r
            verdict = "PASS" if all(r["pass"].values()) and not r["errors"] else "FAIL"
            failed |= verdict == "FAIL"
            say(f"[inventory]   every kind p95 <= {TARGET_P95_MS:g} ms: {verdict}")
    except KeyboardInterrupt:
        say("\ninterrupted")
        return 130
    finally:
        app.stop()
        base.RESULTS.mkdir(parents=True, exist_ok=True)
        path = base.RESULTS / f"inventory-{started:%Y%m%d-%H%M%S}.json"
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        say(f"\nresult: {Path(path).relative_to(base.ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
