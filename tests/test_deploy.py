"""The deployment files, checked without a Docker engine: the compose file against the
Compose schema and against what the issue asks of the stack, and the Dockerfile."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_is_valid_against_the_compose_schema():
    document = compose()
    schema = json.loads((ROOT / "tests/data/compose_spec.json").read_text())
    # The schema of that release predates the top-level `name`, which Compose v2 reads.
    validator = jsonschema.Draft201909Validator(schema)  # the draft the schema names
    validator.validate({k: v for k, v in document.items() if k != "name"})


def test_stack_runs_the_real_servers_with_health_checks_and_named_volumes():
    services = compose()["services"]
    images = {name: s.get("image") for name, s in services.items()}
    assert images["postgres"] == "postgres:16"
    assert images["mongo"] == "mongo:7"
    assert images["redis"] == "redis:7"
    for name in ("postgres", "mongo", "redis", "web"):
        assert "test" in services[name]["healthcheck"], name
    volumes = set(compose()["volumes"])
    assert {"pgdata", "mongodata", "redisdata"} <= volumes
    for name, service in services.items():
        for mount in service.get("volumes", []):
            assert mount.split(":")[0] in volumes, (name, mount)
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)


def test_web_and_worker_build_the_app_and_wait_for_migrations():
    services = compose()["services"]
    assert "gunicorn" not in json.dumps(services["web"].get("command", ""))  # image default
    assert services["worker"]["command"] == ["flask", "--app", "qure", "worker"]
    for name in ("migrate", "web", "worker"):
        assert services[name]["build"] == "."
        assert services[name]["image"] == "qure:latest"
        env = services[name]["environment"]
        for key in ("DATABASE_URL", "REDIS_URL", "MONGO_URL", "SECRET_KEY"):
            assert key in env, (name, key)
        assert env["QURE_ENV"] == "production"
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), "the secret must come from .env"
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_dockerfile_installs_weasyprint_libraries_and_runs_gunicorn_unprivileged():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz0b", "fonts-dejavu-core"):
        assert package in dockerfile
    assert "USER qure" in dockerfile
    assert "HOST=0.0.0.0" in dockerfile  # gunicorn.conf.py binds loopback unless told
    assert '"gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"' in dockerfile
    assert (ROOT / "gunicorn.conf.py").exists()
