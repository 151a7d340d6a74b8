"""The worker drill's worker process: `python -m tests.drills.worker_main`.

What `flask worker` runs (`jobs.run_worker`: the ticker and the RQ worker with its
scheduler), in an app built from the environment (DATABASE_URL, REDIS_URL,
WORKER_HEARTBEAT_SECONDS, JOB_RETRY_SECONDS ...) with the in-process document store:
`flask worker` refuses that store (its copy would be private to the worker), which does
not matter to a drill that reads PostgreSQL only.
"""

from __future__ import annotations

from qure import create_app
from qure.core import jobs


def main() -> None:
    app = create_app({"MONGO_URL": None})
    jobs.run_worker(app)


if __name__ == "__main__":
    main()
