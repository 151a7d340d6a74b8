"""The deployment files, checked without a Docker engine: the compose file against the
Compose schema and against what the issue asks of the stack, and the Dockerfile. And the
two commands on a bare machine: the system-package step of `make run` / `make test`, run
against a fake dpkg-query, apt-get, sudo and id (nothing is installed or removed here)."""

from __future__ import annotations

import json
import subprocess
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
    for package in ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz0b"):
        assert package in dockerfile
    # The PDFs' fonts come with the app's static files, not from font packages.
    assert "COPY qure ./qure" in dockerfile
    assert "fonts-lohit-deva" not in dockerfile and "fonts-noto-core" not in dockerfile
    assert "qure" not in (ROOT / ".dockerignore").read_text().split()
    for font in ("NotoSans-Regular", "NotoSans-Bold", "NotoSansDevanagari-Regular"):
        assert (ROOT / "qure/static/fonts" / f"{font}.ttf").stat().st_size > 100_000
    assert "SIL OPEN FONT LICENSE Version 1.1" in (ROOT / "qure/static/fonts/OFL.txt").read_text()
    assert "USER qure" in dockerfile
    assert "HOST=0.0.0.0" in dockerfile  # gunicorn.conf.py binds loopback unless told
    assert '"gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"' in dockerfile
    assert (ROOT / "gunicorn.conf.py").exists()


# ---- the system packages of `make run` and `make test` -----------------------------------------

SCRIPT = ROOT / "scripts/system-packages.sh"
LIBRARIES = ["libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz0b"]


class Machine:
    """A fake Debian machine: dpkg-query knows `installed`, apt-get and sudo log their calls,
    `id -u` answers `uid`, and PYTHON has a venv module or not."""

    def __init__(self, tmp_path: Path, installed, uid=1000, sudo_works=False, venv=True):
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.log = tmp_path / "calls.log"
        self.log.touch()
        self.os_release = tmp_path / "os-release"
        self.os_release.write_text("ID=debian\n")
        known = " ".join(installed)
        self.tool(
            "dpkg-query",
            f'for last; do :; done\ncase " {known} " in *" $last "*) '
            "printf 'install ok installed';; *) exit 1;; esac",
        )
        self.tool("apt-get", f'echo "apt-get $*" >> {self.log}')
        self.tool("id", f"echo {uid}")
        sudo = f'[ "$1" = -n ] && shift\necho "sudo $*" >> {self.log}\nexec "$@"'
        self.tool("sudo", sudo if sudo_works else "exit 1")
        self.tool("python", "exit 0" if venv else "exit 1")
        self.env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "PYTHON": str(self.bin / "python"),
            "OS_RELEASE": str(self.os_release),
        }

    def tool(self, name: str, body: str) -> Path:
        path = self.bin / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
        return path

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(SCRIPT), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()


def test_nothing_is_installed_when_nothing_is_missing(tmp_path):
    machine = Machine(tmp_path, [*LIBRARIES, "chromium", "libatomic1"], uid=0)
    done = machine.run("test")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert machine.calls() == []


def test_as_root_the_missing_packages_are_installed(tmp_path):
    machine = Machine(tmp_path, ["libpango-1.0-0", "libpangoft2-1.0-0"], uid=0)
    done = machine.run("test")
    assert done.returncode == 0, done.stderr
    assert "Installing system packages: libharfbuzz0b chromium libatomic1" in done.stdout
    assert machine.calls() == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends libharfbuzz0b chromium libatomic1",
    ]


def test_with_passwordless_sudo_the_missing_packages_are_installed(tmp_path):
    machine = Machine(tmp_path, LIBRARIES, sudo_works=True, venv=False)
    done = machine.run("test")
    assert done.returncode == 0, done.stderr
    install = "install -y -qq --no-install-recommends python3-venv chromium libatomic1"
    assert f"sudo env DEBIAN_FRONTEND=noninteractive apt-get {install}" in machine.calls()
    assert f"apt-get {install}" in machine.calls()


def test_without_root_or_sudo_it_stops_with_the_one_command_to_run(tmp_path):
    machine = Machine(tmp_path, ["libpangoft2-1.0-0"], venv=False)
    done = machine.run("test")
    assert done.returncode == 1
    command = (
        "sudo apt-get install -y --no-install-recommends "
        "libpango-1.0-0 libharfbuzz0b python3-venv chromium libatomic1"
    )
    assert command in done.stderr
    assert machine.calls() == []


def test_make_run_needs_no_browser(tmp_path):
    machine = Machine(tmp_path, LIBRARIES)
    assert machine.run("run").returncode == 0
    # Playwright's own Node.js needs libatomic, which a minimal Debian lacks.
    expected = "Missing system packages: chromium libatomic1\n"
    assert machine.run("--check", "test").stdout == expected
    assert machine.calls() == []


def test_a_browser_named_by_chromium_path_or_ubuntus_package_will_do(tmp_path):
    machine = Machine(tmp_path, [*LIBRARIES, "libatomic1"])
    browser = machine.tool("my-chrome", "exit 0")
    assert machine.run("--check", "test", CHROMIUM_PATH=str(browser)).returncode == 0
    machine.os_release.write_text('NAME="Ubuntu"\nID=ubuntu\n')
    done = machine.run("--check", "test")
    assert (done.returncode, done.stdout) == (1, "Missing system packages: chromium-browser\n")
    (tmp_path / "ubuntu").mkdir()
    ubuntu = Machine(tmp_path / "ubuntu", [*LIBRARIES, "chromium-browser", "libatomic1"])
    assert ubuntu.run("test").returncode == 0


def test_check_mode_installs_nothing_even_as_root(tmp_path):
    machine = Machine(tmp_path, [], uid=0)
    done = machine.run("--check", "run")
    assert done.returncode == 1
    assert done.stdout == "Missing system packages: " + " ".join(LIBRARIES) + "\n"
    assert machine.calls() == []


def make_plan(target: str) -> list[str]:
    done = subprocess.run(
        ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def test_make_run_and_make_test_check_the_system_packages_first():
    plan = make_plan("test")
    checks = [n for n, line in enumerate(plan) if "scripts/system-packages.sh test" in line]
    tests = [n for n, line in enumerate(plan) if "pytest" in line]
    assert checks and tests and checks[0] < tests[0], plan
    plan = make_plan("run")
    checks = [n for n, line in enumerate(plan) if "scripts/system-packages.sh run" in line]
    serve = [n for n, line in enumerate(plan) if "flask --app qure serve" in line]
    assert checks and serve and checks[0] < serve[0], plan


def test_ci_runs_make_test_and_nothing_else():
    lines = (ROOT / ".ci/run").read_text().splitlines()
    commands = [line for line in lines if line and not line.startswith("#")]
    assert commands == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "make test"]
