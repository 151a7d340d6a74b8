#!/usr/bin/env python
"""Qure load benchmark: bulk load, patient search and patient registration under gunicorn.

    python bench/run.py [--patients 1000000] [--duration 20] [--scenario search|register|all]

Uses BENCH_DATABASE_URL / BENCH_REDIS_URL when set; otherwise starts its own embedded
PostgreSQL and Redis under bench/.data/ (never the app's instance/ folder) and stops them
when it exits. See bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = BENCH / ".data"
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT))

from qure.demo import FIRST, LAST  # noqa: E402  (same name lists as the synthetic load)

DB_NAME = "qure_bench"
BENCH_USER = "bench"
TARGETS = {
    "load_seconds": 120.0,  # seed-demo --patients 1000000
    "search": {"clients": 8, "p95_ms": 30.0},
    "register": {"clients": 16, "p95_ms": 50.0},
}
MAX_REQUESTS_PER_SCENARIO = 500_000  # hard bound besides the duration
REQUEST_TIMEOUT = 15.0


def say(message: str = "") -> None:
    print(message, flush=True)


# ---- environment: databases ----------------------------------------------------------


def _plain_pg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def start_stores(fresh: bool) -> tuple[str, str, bool]:
    """(DATABASE_URL, REDIS_URL, embedded?) Embedded servers stop when this process exits."""
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    db_url = os.environ.get("BENCH_DATABASE_URL")
    redis_url = os.environ.get("BENCH_REDIS_URL")
    embedded = not db_url
    from qure import embedded as emb

    if not db_url:
        DATA.mkdir(parents=True, exist_ok=True)
        pgdata = DATA / "pgdata"
        db_url = emb.postgres_url(pgdata, DB_NAME)
        if fresh:
            drop_database(db_url)
            db_url = emb.postgres_url(pgdata, DB_NAME)
    elif fresh:
        raise SystemExit(
            "--fresh drops the database: only for the embedded one (unset "
            "BENCH_DATABASE_URL), or empty your database yourself."
        )
    if not redis_url:
        redis_url = emb.redis_url(DATA / "redis" / "bench.rdb")
    return db_url, redis_url, embedded


def drop_database(db_url: str) -> None:
    import psycopg

    admin = re.sub(r"/" + DB_NAME + r"(\?|$)", r"/postgres\1", _plain_pg_url(db_url), count=1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def pg_facts(db_url: str) -> dict:
    import psycopg

    names = (
        "server_version",
        "shared_buffers",
        "work_mem",
        "max_connections",
        "effective_cache_size",
        "maintenance_work_mem",
        "synchronous_commit",
    )
    with psycopg.connect(_plain_pg_url(db_url)) as conn:
        facts = {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}
        facts["patients"] = conn.execute("SELECT count(*) FROM patients").fetchone()[0]
    return facts


def sample_rows(db_url: str, n: int = 3000) -> tuple[list[str], int]:
    """Real phone numbers (for phone-fragment queries) and the highest MRN number."""
    import psycopg

    with psycopg.connect(_plain_pg_url(db_url)) as conn:
        phones = [
            r[0]
            for r in conn.execute(
                "SELECT phone_digits FROM patients TABLESAMPLE SYSTEM (1) LIMIT %s", (n,)
            )
        ]
        top = conn.execute("SELECT max(id) FROM patients").fetchone()[0] or 1
    return phones, int(top)


# ---- environment: the app ------------------------------------------------------------


def app_env(db_url: str, redis_url: str, port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "MONGO_"))}
    env.update(
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        SECRET_KEY=secrets.token_urlsafe(48),
        QURE_ENV="production",
        XDG_RUNTIME_DIR=env.get("XDG_RUNTIME_DIR", "/tmp"),
        PORT=str(port),
        HOST="127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("GUNICORN_BIND", None)
    env.update(extra)
    return env


def flask_app_arg() -> str:
    # The demo accounts' passwords go to bench/.data, not to the app's instance/ folder.
    accounts = str(DATA / "demo_accounts.json")
    return f"qure:create_app({{'DEMO_ACCOUNTS_FILE': {accounts!r}}})"


def venv_bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: pip install -r bench/requirements.txt")
    return found


def flask(env: dict, *args: str, timeout: float = 900, check: bool = True):
    cmd = [venv_bin("flask"), "--app", flask_app_arg(), *args]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise SystemExit(
            f"flask {' '.join(args)} failed ({done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def seed(env: dict, patients: int) -> dict:
    say(f"$ flask --app qure seed-demo --patients {patients}")
    started = time.monotonic()
    done = flask(env, "seed-demo", "--patients", str(patients), timeout=1800, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        say(f"  FAILED after {wall:.1f} s: " + " | ".join(tail))
        return {
            "command": f"flask --app qure seed-demo --patients {patients}",
            "wall_seconds": round(wall, 2),
            "status": "FAIL",
            "error": "\n".join(tail),
        }
    out = done.stdout
    added = re.search(r"Synthetic patients added: (\d+)", out)
    inner = re.search(r"(\d+) patients in ([\d.]+) s", out)
    result = {
        "command": f"flask --app qure seed-demo --patients {patients}",
        "wall_seconds": round(wall, 2),
        "added": int(added.group(1)) if added else 0,
        "copy_seconds": float(inner.group(2)) if inner else None,
    }
    if result["added"] == 0:
        say(
            f"  nothing to add (the table already holds {patients:,}+ patients); "
            f"{wall:.1f} s. Run without --reuse to time a full load."
        )
        result["status"] = "SKIP"
    else:
        ok = wall <= TARGETS["load_seconds"] or patients < 1_000_000
        result["status"] = ("PASS" if ok else "FAIL") if patients >= 1_000_000 else "n/a"
        say(
            f"  added {result['added']:,} patients: {wall:.1f} s wall "
            f"(COPY + ANALYZE {result['copy_seconds']} s)  target <= "
            f"{TARGETS['load_seconds']:.0f} s for 1,000,000: {result['status']}"
        )
    return result


def ensure_user(env: dict) -> str:
    """Create the bench user (RECEPTION); its password is kept in bench/.data."""
    DATA.mkdir(parents=True, exist_ok=True)
    store = DATA / "bench_password"
    password = store.read_text().strip() if store.exists() else secrets.token_urlsafe(18)
    done = flask(
        env,
        "create-user",
        BENCH_USER,
        "--role",
        "RECEPTION",
        "--password",
        password,
        check=False,
    )
    if done.returncode != 0:
        said = (done.stderr + done.stdout).lower()
        if not ("taken" in said or "already" in said) or not store.exists():
            raise SystemExit(f"create-user failed:\n{done.stdout}\n{done.stderr}")
    store.write_text(password)
    store.chmod(0o600)
    return password


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn -c gunicorn.conf.py wsgi:app in its own process group; stop() kills it."""

    def __init__(
        self,
        env: dict,
        port: int,
        wsgi: str = "wsgi:app",
        root: Path = ROOT,
        cmd: list[str] | None = None,
        log: Path | None = None,
    ):
        """`cmd` serves `root` with another server (bench/journey.py's --server)."""
        self.env, self.port, self.wsgi, self.root, self.cmd = env, port, wsgi, root, cmd
        self.proc: subprocess.Popen | None = None
        self.log = log or DATA / "gunicorn.log"

    def start(self) -> None:
        if not (self.root / "wsgi.py").exists():
            (self.root / "wsgi.py").write_text(
                '"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`."""\n\n'
                "from qure import create_app\n\napp = create_app()\n"
            )
        DATA.mkdir(parents=True, exist_ok=True)
        cmd = self.cmd or [venv_bin("gunicorn"), "-c", "gunicorn.conf.py", self.wsgi]
        shown = " ".join([Path(cmd[0]).name, *cmd[1:]])
        say(f"$ {shown}   (port {self.port}, log {self.log})")
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited ({self.proc.returncode}); see {self.log}")
            try:
                status, body = request("GET", self.port, "/health")
                if status == 200:
                    say(f"  /health: {json.loads(body)['status']}")
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"the server did not answer /health within 60 s; see {self.log}")

    def workers(self) -> int:
        try:
            out = subprocess.run(
                ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, timeout=5
            ).stdout
            return len(out.split())
        except (OSError, subprocess.SubprocessError):
            return -1

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 25), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


# ---- HTTP ----------------------------------------------------------------------------


def request(
    method: str, port: int, path: str, body: dict | None = None, token: str | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def login(port: int, password: str) -> str:
    status, body = request(
        "POST", port, "/api/v1/auth/login", {"username": BENCH_USER, "password": password}
    )
    if status != 200:
        raise SystemExit(f"login failed: {status} {body[:300]!r}")
    return json.loads(body)["access_token"]


# ---- workload ------------------------------------------------------------------------


class SearchMix:
    """Search texts a front desk types: surname fragments (4-7 letters), first name +
    surname, 10-digit phone fragments (mostly of real patients) and MRNs."""

    KINDS = (("surname_fragment", 35), ("first_last", 30), ("phone", 20), ("mrn", 15))

    def __init__(
        self, phones: list[str], max_mrn: int, seed: int, weights: dict[str, int] | None = None
    ):
        self.rng = random.Random(seed)
        self.phones = phones or ["919820011001"]
        self.max_mrn = max_mrn
        weights = weights or dict(self.KINDS)
        self.kinds = [k for k, w in weights.items() for _ in range(w)]

    def next(self) -> tuple[str, str]:
        rng = self.rng
        kind = rng.choice(self.kinds)
        if kind == "surname_fragment":
            name = rng.choice([s for s in LAST if len(s) >= 4])
            size = rng.randint(4, min(7, len(name)))
            start = 0 if rng.random() < 0.7 else rng.randint(0, len(name) - size)
            q = name[start : start + size]
            q = q.lower() if rng.random() < 0.5 else q
        elif kind == "first_last":
            q = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        elif kind == "phone":
            if rng.random() < 0.8:
                q = rng.choice(self.phones)[-10:]  # the local number of a real patient
            else:
                q = str(rng.randint(6_000_000_000, 9_999_999_999))  # nobody's
        else:
            q = f"QC-{rng.randint(1, self.max_mrn):06d}"
        return kind, q


class RegisterMix:
    """Unique synthetic patients (confirm_new true, so no duplicate prompt)."""

    def __init__(self, seed: int, base: int):
        self.rng = random.Random(seed)
        self.base = base
        self.count = 0
        self.today = date.today()

    def next(self) -> tuple[str, dict]:
        rng = self.rng
        self.count += 1
        phone = f"+91{self.base + self.count:010d}"
        body = {
            "full_name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "date_of_birth": (self.today - timedelta(days=rng.randint(0, 90 * 365))).isoformat(),
            "sex": rng.choice("FM"),
            "phone": phone,
            "confirm_new": True,
        }
        if rng.random() < 0.3:
            body["allergies"] = ["Penicillin"]
        return "register", body


@dataclass
class Sample:
    kind: str
    ms: float
    status: int  # 0: transport error


@dataclass
class ClientResult:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def run_client(
    port: int,
    token: str,
    scenario: str,
    mix,
    deadline: float,
    cap: int,
    stop: threading.Event,
    out: ClientResult,
    record: bool,
    per_page: int | None = None,
    think_ms: float = 0.0,
) -> None:
    """One client: a keep-alive connection, one request at a time, until the deadline;
    with think_ms, a pause of 0.5 to 1.5 times that after each answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    auth = {"Authorization": f"Bearer {token}"}
    post_headers = {**auth, "Content-Type": "application/json"}
    want = 200 if scenario == "search" else 201
    page_arg = f"&per_page={per_page}" if per_page else ""  # none: the API's default (50)
    done = 0
    try:
        while done < cap and not stop.is_set() and time.monotonic() < deadline:
            kind, payload = mix.next()
            if scenario == "search":
                method, path, body, headers = (
                    "GET",
                    f"/api/v1/patients?q={quote(payload)}{page_arg}",
                    None,
                    auth,
                )
            else:
                method, path, body, headers = (
                    "POST",
                    "/api/v1/patients",
                    json.dumps(payload),
                    post_headers,
                )
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body, headers)
                response = conn.getresponse()
                data = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()  # reconnects on the next request
                status, data = 0, repr(exc).encode()
            ms = (time.perf_counter() - t0) * 1000
            done += 1
            if record:
                out.samples.append(Sample(kind, ms, status))
                if status != want and len(out.errors) < 5:
                    out.errors.append(f"{status} {payload!r}: {data[:200]!r}")
            if think_ms:
                pause = think_ms / 1000 * (0.5 + mix.rng.random())
                stop.wait(max(0.0, min(pause, deadline - time.monotonic())))
    finally:
        conn.close()


def percentile(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return float("nan")
    rank = max(0, min(len(sorted_ms) - 1, math.ceil(p / 100 * len(sorted_ms)) - 1))
    return sorted_ms[rank]


def summarise(samples: list[Sample], want: int, seconds: float) -> dict:
    ms = sorted(s.ms for s in samples)
    errors = sum(1 for s in samples if s.status != want)
    return {
        "requests": len(samples),
        "errors": errors,
        "throughput_rps": round(len(samples) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(ms[-1], 2) if ms else None,
    }


class CpuMeter:
    """CPU seconds spent by the client (this process), gunicorn and PostgreSQL, and by the
    whole machine, between start() and stop(): where each request's time goes."""

    TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(
        self,
        gunicorn_pid: int | None,
        postmaster_pid: int | None,
        redis_pid: int | None = None,
        backends: Callable[[], list[int]] | None = None,
    ):
        self.roots = {"gunicorn": gunicorn_pid, "postgres": postmaster_pid, "redis": redis_pid}
        # A server of its own is measured whole; a shared one (BENCH_DATABASE_URL), by the
        # backends serving the bench database (when they run on this machine).
        self.backends = backends
        self.before: dict = {}

    @staticmethod
    def _tree(pid: int | None) -> list[int]:
        if not pid:
            return []
        pids, todo = [], [pid]
        while todo:
            p = todo.pop()
            pids.append(p)
            try:
                kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            except OSError:
                kids = []
            todo.extend(int(k) for k in kids)
        return pids

    def _proc_seconds(self, pids: list[int]) -> dict[int, float]:
        out = {}
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                out[pid] = (int(fields[11]) + int(fields[12])) / self.TICK
            except (OSError, IndexError, ValueError):
                pass
        return out

    @staticmethod
    def _machine() -> tuple[float, float]:
        try:
            parts = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        except (OSError, ValueError):
            return 0.0, 0.0
        idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
        return float(sum(parts) - idle), float(sum(parts))

    def _snapshot(self) -> dict:
        snap = {name: self._proc_seconds(self._tree(pid)) for name, pid in self.roots.items()}
        if self.backends and not self.roots["postgres"]:
            snap["postgres"] = self._proc_seconds(self.backends())
        t = os.times()
        snap["client"] = t.user + t.system
        snap["machine"] = self._machine()
        return snap

    def start(self) -> None:
        self.before = self._snapshot()

    def stop(self, requests: int, seconds: float) -> dict:
        after, before = self._snapshot(), self.before
        used = {"client": after["client"] - before["client"]}
        for name in self.roots:
            # processes alive at both ends (a backend that came and went is missed)
            used[name] = sum(v - before[name].get(pid, 0.0) for pid, v in after[name].items())
        busy = after["machine"][0] - before["machine"][0]
        total = after["machine"][1] - before["machine"][1]
        cores = os.cpu_count() or 1
        report = {
            f"{k}_ms_per_request": round(v * 1000 / requests, 2) if requests else None
            for k, v in used.items()
        }
        report["machine_busy_percent"] = round(100 * busy / total, 1) if total else None
        report["cpu_seconds"] = {k: round(v, 2) for k, v in used.items()}
        report["cpu_seconds"]["machine"] = round(busy / self.TICK, 2)
        report["cpu_seconds"]["other"] = round(
            busy / self.TICK - sum(used.values()), 2
        )  # other work on this machine
        report["cores"] = cores
        return report


def wait_quiet(max_seconds: float, stop: threading.Event, busy_limit: float = 20.0) -> float:
    """Wait (at most max_seconds) until the machine is under busy_limit % busy over one
    second: other work on a 2-core box skews the figures. Returns the last busy %."""
    deadline = time.monotonic() + max_seconds
    busy = 100.0
    while not stop.is_set():
        a = CpuMeter._machine()
        time.sleep(1.0)
        b = CpuMeter._machine()
        busy = 100 * (b[0] - a[0]) / (b[1] - a[1]) if b[1] > a[1] else 0.0
        if busy < busy_limit or time.monotonic() >= deadline:
            break
    return round(busy, 1)


def set_priority(niceness: int, embedded: bool) -> None:
    """This process (and so gunicorn, started later) and the embedded servers at `niceness`."""
    pids = [0]
    if embedded:
        pids += CpuMeter._tree(postmaster_pid())
    if redis_pid():
        pids.append(redis_pid())
    try:
        for pid in pids:
            os.setpriority(os.PRIO_PROCESS, pid, niceness)
    except OSError as exc:
        raise SystemExit(f"--nice {niceness}: {exc} (negative values need root)") from None
    say(f"  running at niceness {niceness}")


def redis_pid() -> int | None:
    """The embedded Redis server's pid (None with BENCH_REDIS_URL)."""
    from qure import embedded as emb

    for key, server in emb._servers.items():
        if key.startswith("redis:"):
            return getattr(server, "pid", None)
    return None


def backend_pids(db_url: str) -> Callable[[], list[int]]:
    """A function listing the pids of the server processes connected to the bench database
    (this query's own left out)."""
    import psycopg

    def pids() -> list[int]:
        try:
            with psycopg.connect(_plain_pg_url(db_url)) as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
        except psycopg.Error:
            return []
        return [r[0] for r in rows]

    return pids


def postmaster_pid() -> int | None:
    try:
        return int((DATA / "pgdata" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def drive(
    port: int,
    token: str,
    scenario: str,
    clients: int,
    duration: float,
    warmup: float,
    mixes: list,
    stop: threading.Event,
    meter: CpuMeter,
    quiet: float = 0,
    per_page: int | None = None,
    think_ms: float = 0.0,
) -> dict:
    """Warm up, then run `clients` clients for `duration` seconds (closed loop: each sends
    its next request as soon as it has the answer, unless think_ms)."""
    results = [ClientResult() for _ in range(clients)]
    if quiet:
        busy = wait_quiet(quiet, stop)
        if busy >= 20:
            say(
                f"  note: the machine is {busy}% busy with other work; "
                "figures will be worse than on an idle machine"
            )
    for seconds, record in ((warmup, False), (duration, True)):
        if seconds <= 0:
            continue
        deadline = time.monotonic() + seconds
        cap = MAX_REQUESTS_PER_SCENARIO // clients
        threads = [
            threading.Thread(
                target=run_client,
                args=(
                    port,
                    token,
                    scenario,
                    mixes[i],
                    deadline,
                    cap,
                    stop,
                    results[i],
                    record,
                    per_page,
                    think_ms,
                ),
                daemon=True,
            )
            for i in range(clients)
        ]
        if record:
            meter.start()
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + REQUEST_TIMEOUT + 10)
        elapsed = time.monotonic() - started
        if stop.is_set():
            raise KeyboardInterrupt
    samples = [s for r in results for s in r.samples]
    cpu = meter.stop(len(samples), elapsed)
    want = 200 if scenario == "search" else 201
    summary = summarise(samples, want, elapsed)
    summary["cpu"] = cpu
    kinds = sorted({s.kind for s in samples})
    if len(kinds) > 1:
        summary["by_kind"] = {
            k: summarise([s for s in samples if s.kind == k], want, elapsed) for k in kinds
        }
    summary["error_examples"] = [e for r in results for e in r.errors][:5]
    target = TARGETS[scenario]
    summary["clients"] = clients
    summary["think_ms"] = think_ms
    summary["target_p95_ms"] = target["p95_ms"]
    summary["status"] = (
        "PASS"
        if summary["requests"]
        and summary["errors"] == 0
        and summary["p95_ms"] <= target["p95_ms"]
        and clients >= target["clients"]
        else "FAIL"
    )
    return summary


def print_summary(name: str, s: dict) -> None:
    say(
        f"  {name}: {s['requests']} requests, {s['errors']} errors, "
        f"{s['throughput_rps']} req/s, p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms, "
        f"p99 {s['p99_ms']} ms  (target p95 <= {s['target_p95_ms']:.0f} ms at "
        f"{TARGETS[name]['clients']} clients): {s['status']}"
        + (f"  [with {s['think_ms']:g} ms think time]" if s.get("think_ms") else "")
    )
    cpu = s.get("cpu") or {}
    if cpu.get("client_ms_per_request") is not None:
        say(
            f"      CPU ms/request: gunicorn {cpu['gunicorn_ms_per_request']}, postgres "
            f"{cpu['postgres_ms_per_request']}, client {cpu['client_ms_per_request']}; "
            f"machine {cpu['machine_busy_percent']}% busy of {cpu['cores']} cores "
            f"(redis {cpu['cpu_seconds']['redis']} CPU s; kernel and other programs "
            f"{cpu['cpu_seconds']['other']} CPU s)"
        )
    for kind, k in (s.get("by_kind") or {}).items():
        say(
            f"      {kind:<17} n={k['requests']:<6} p50 {k['p50_ms']:>7} ms  "
            f"p95 {k['p95_ms']:>7} ms  p99 {k['p99_ms']:>7} ms"
        )
    for example in s["error_examples"]:
        say(f"      error: {example}")


# ---- main ----------------------------------------------------------------------------


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "qure", "migrations"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        return out.stdout.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def parse_mix(text: str) -> dict[str, int]:
    known = dict(SearchMix.KINDS)
    try:
        weights = {k.strip(): int(w) for k, w in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError("use kind=weight,kind=weight") from None
    if (
        not weights
        or set(weights) - set(known)
        or min(weights.values()) < 0
        or not sum(weights.values())
    ):
        raise argparse.ArgumentTypeError(f"kinds are {', '.join(known)}; weights >= 0")
    return weights


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--patients",
        type=int,
        default=1_000_000,
        help="patients to load with seed-demo (default 1000000)",
    )
    p.add_argument(
        "--duration", type=float, default=20.0, help="measured seconds per scenario (default 20)"
    )
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (3)")
    p.add_argument("--scenario", choices=("search", "register", "all"), default="all")
    p.add_argument("--search-clients", type=int, default=TARGETS["search"]["clients"])
    p.add_argument("--register-clients", type=int, default=TARGETS["register"]["clients"])
    p.add_argument(
        "--per-page",
        type=int,
        default=None,
        help="per_page sent with each search (default: none, so the API's default page of 50)",
    )
    p.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="pause about this long after each answer (default 0: closed loop, every client "
        "always busy, as the targets are stated)",
    )
    p.add_argument(
        "--mix",
        type=parse_mix,
        default=None,
        help="search mix as kind=weight,... (default surname_fragment=35,"
        "first_last=30,phone=20,mrn=15); e.g. mrn=1 isolates the app's own "
        "per-request cost",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        help="before measuring, wait up to this many seconds for other work on "
        "the machine to stop (default 30; 0: don't wait)",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the client, gunicorn and the embedded PostgreSQL/Redis at this "
        "niceness (e.g. -10 as root) so that other work on a shared machine "
        "disturbs the figures less (default 0)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep the embedded bench database from the last run (the load is "
        "then only topped up, not timed in full)",
    )
    p.add_argument("--workers", type=int, help="override gunicorn workers (WEB_CONCURRENCY)")
    p.add_argument("--threads", type=int, help="override gunicorn threads (GUNICORN_THREADS)")
    p.add_argument(
        "--wsgi",
        default="wsgi:app",
        help="WSGI app for gunicorn (default wsgi:app); another module on "
        "PYTHONPATH lets you measure a candidate change without editing qure/",
    )
    p.add_argument("--label", default="", help="free text stored in the JSON result")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.duration > 3600:
        p.error("--duration must be between 0 and 3600 seconds")
    if args.patients < 0:
        p.error("--patients must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    started_at = datetime.now().astimezone()
    result: dict = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "label": args.label,
        "args": vars(args),
        "command": "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "git": git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "targets": TARGETS,
    }
    if os.environ.get("EXP"):
        result["EXP"] = os.environ["EXP"]  # read by an experimental --wsgi module
    gunicorn: Gunicorn | None = None
    try:
        fresh = not args.reuse and not os.environ.get("BENCH_DATABASE_URL")
        db_url, redis_url, embedded = start_stores(fresh)
        if args.nice:
            set_priority(args.nice, embedded)
        result["stores"] = "embedded (bench/.data)" if embedded else "BENCH_DATABASE_URL"
        port = free_port()
        extra = {}
        if args.workers:
            extra["WEB_CONCURRENCY"] = str(args.workers)
        if args.threads:
            extra["GUNICORN_THREADS"] = str(args.threads)
        env = app_env(db_url, redis_url, port, extra)
        say("$ flask --app qure db upgrade")
        flask(env, "db", "upgrade")
        result["load"] = seed(env, args.patients)
        if result["load"]["status"] == "FAIL" and "error" in result["load"]:
            return 1
        password = ensure_user(env)
        result["postgres"] = pg_facts(db_url)
        say(
            f"  PostgreSQL {result['postgres']['server_version']}, "
            f"{result['postgres']['patients']:,} patients, shared_buffers "
            f"{result['postgres']['shared_buffers']}"
        )
        phones, max_mrn = sample_rows(db_url)

        gunicorn = Gunicorn(env, port, args.wsgi)
        gunicorn.start()
        token = login(port, password)
        result["gunicorn"] = {
            "workers_running": gunicorn.workers(),
            "WEB_CONCURRENCY": extra.get("WEB_CONCURRENCY"),
            "GUNICORN_THREADS": extra.get("GUNICORN_THREADS"),
        }
        say(f"  gunicorn workers running: {result['gunicorn']['workers_running']}")
        result["scenarios"] = {}
        scenarios = ["search", "register"] if args.scenario == "all" else [args.scenario]
        for name in scenarios:
            if name == "search":
                clients = args.search_clients
                mixes = [
                    SearchMix(phones, max_mrn, seed=1000 + i, weights=args.mix)
                    for i in range(clients)
                ]
            else:
                clients = args.register_clients
                # Phones unique per run and client: 6xxxxxxxxx, 50,000 numbers per client.
                salt = 6_000_000_000 + (int(time.time()) % 1000) * 1_000_000
                mixes = [RegisterMix(seed=2000 + i, base=salt + i * 50_000) for i in range(clients)]
            say(
                f"\n== {name}: {clients} clients, {args.warmup:g} s warm-up + "
                f"{args.duration:g} s measured"
            )
            meter = CpuMeter(
                gunicorn.proc.pid if gunicorn.proc else None,
                postmaster_pid() if embedded else None,
                redis_pid(),
                backends=None if embedded else backend_pids(db_url),
            )
            summary = drive(
                port,
                token,
                name,
                clients,
                args.duration,
                args.warmup,
                mixes,
                stop,
                meter,
                args.wait_quiet,
                args.per_page,
                args.think_ms,
            )
            result["scenarios"][name] = summary
            print_summary(name, summary)
    except KeyboardInterrupt:
        say("\ninterrupted: stopping gunicorn and the embedded servers")
        result["interrupted"] = True
        return 130
    finally:
        stop.set()
        if gunicorn is not None:
            gunicorn.stop()
        if result.get("scenarios") or result.get("load"):
            RESULTS.mkdir(parents=True, exist_ok=True)
            path = RESULTS / f"{started_at:%Y%m%d-%H%M%S}.json"
            path.write_text(json.dumps(result, indent=2) + "\n")
            say(f"\nresult: {path.relative_to(ROOT)}")
    failed = [n for n, s in result.get("scenarios", {}).items() if s["status"] == "FAIL"]
    if result.get("load", {}).get("status") == "FAIL":
        failed.append("load")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
