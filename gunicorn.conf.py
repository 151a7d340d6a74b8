"""Gunicorn settings for Qure: `gunicorn -c gunicorn.conf.py wsgi:app`.

Tuned for the small clinic server the load targets are stated for (2 cores), measured
with `python bench/run.py` (see bench/README.md for the figures behind each choice).
Every choice can be overridden from the environment without editing this file.
"""

from __future__ import annotations

import os


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


CORES = _cores()

# Listen address. PORT as on most hosts (default 8000); HOST defaults to loopback like
# gunicorn itself: put nginx (TLS, static files, slow clients) in front, or set HOST=0.0.0.0.
bind = os.environ.get("GUNICORN_BIND") or (
    f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
)

# Workers: synchronous, cores + 1 (3 on 2 cores). Qure's requests are short and mostly
# CPU in Python (routing, JWT, SQLAlchemy, marshmallow) plus sub-millisecond round trips to
# PostgreSQL on the same machine, which needs the same CPUs. Measured on 2 cores with
# bench/run.py, 1,000,000 patients, quiet machine (bench/README.md), p95:
#   register as is, 16 clients:    sync 3: 57, 62 ms     sync 5: 59, 59, 60, 66 ms
#                                  gthread 2x4: 97, 100  3x4: 73, 105  4x2: 78, 125 ms
#   register with the fixes in bench/README.md:  sync 3: 40  sync 4: 42  sync 5: 44, 47
#                                  gthread 2x4: 68  3x4: 80 ms
#   bounded search, 8 clients:     sync 3: 64  sync 4: 71  sync 5: 75 ms
# Threads add no CPU under the GIL and give an unfair tail (a thread back from the
# database queues again for the GIL); workers beyond cores + 1 only queue on the same
# CPUs: the classic 2 * cores + 1 was no better here. A sync worker serves one
# request at a time, so it holds one PostgreSQL connection: 3 workers stay far below the
# pool (10 + 10 overflow per process) and max_connections.
# The clinic's journey (bench/journey.py, 16 clients, two runs each, issue 10):
#   sync 3:          14.9, 13.6 journeys/s   step p95 176, 178 ms
#   granian 3 x 1:   15.6, 13.9 journeys/s   step p95 212, 268 ms   (keep-alive, Rust I/O)
#   gthread 3 x 4:   11.0, 11.2 journeys/s   step p95 350, 368 ms   (keep-alive)
# Sync workers need a buffering proxy (nginx, the TLS proxy) in front for clients on slow
# networks, and they close the connection after each response (no keep-alive); threads
# (GUNICORN_THREADS) avoid that at a quarter of the throughput. Override the count with
# WEB_CONCURRENCY.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
workers = int(os.environ.get("WEB_CONCURRENCY", CORES + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 1))
if threads > 1 and worker_class == "sync":
    worker_class = "gthread"  # gunicorn does the same; say it explicitly

# Load the app once in the master and fork: faster start and shared memory pages.
# Safe here because create_app() opens no database or Redis connection (SQLAlchemy and
# redis-py connect lazily, in each worker after the fork). Set DATABASE_URL, REDIS_URL and
# MONGO_URL: embedded mode is for `flask serve`, one process (SPEC section 12).
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") == "1"

# Heartbeat files on tmpfs: a worker touching a file on a slow disk can be killed as hung.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 20
keepalive = 5  # seconds; used by gthread workers (sync workers close after each response)

# Recycle workers now and then (jitter so they don't all restart at once): bounds the
# memory any slow leak in a dependency can take.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 20000))
max_requests_jitter = max_requests // 10

# Logs: errors to stderr; per-request access logs off by default (one more write per
# request, and the proxy logs requests anyway). GUNICORN_ACCESS_LOG=- turns them on.
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# Path without the query string: a search's `q` is a patient's name or phone number (and a
# sign-in redirect's `next` carries the page's query). The app also puts a filter on
# gunicorn's loggers (qure/core/logs.py) that takes the query out of any request line or
# URL in them: gunicorn's "Error handling request /path?query", a format changed to the
# request line %(r)s or the referer %(f)s. A bare %(q)s is past its reach: leave it out.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'

# Behind a reverse proxy on the same machine, trust its X-Forwarded-* headers only.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
