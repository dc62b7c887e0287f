"""Install, pins and the docker-compose stack description."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[a-z,]+\])?==([0-9][^\s#]*)")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = PIN.match(line)
        assert m, f"{path.name}: not an exact pin: {line!r}"
        pins[m.group(1).lower().replace("_", "-")] = m.group(3)
    return pins


def test_requirements_are_exact_pins_within_the_lock() -> None:
    runtime = _pins(ROOT / "requirements.txt")
    dev = _pins(ROOT / "requirements-dev.txt")
    lock = _pins(ROOT / "constraints.txt")
    assert runtime["apache-airflow"] == "3.3.2"
    assert runtime["great-expectations"] == "1.24.1"
    assert runtime["pandas"] == "3.1.1"
    assert runtime["sqlalchemy"] == "2.1.9"
    for name in ("apache-airflow-providers-http", "apache-airflow-providers-postgres",
                 "apache-airflow-providers-smtp", "apache-airflow-providers-standard", "alembic"):
        assert name in runtime
    assert "pytest" in dev
    assert "pytest" not in runtime
    for name, version in {**runtime, **dev}.items():
        assert lock.get(name) == version, f"{name}=={version} is not what constraints.txt resolves ({lock.get(name)})"


def test_installed_versions_match_the_lock() -> None:
    from importlib.metadata import PackageNotFoundError, version

    lock = _pins(ROOT / "constraints.txt")
    wrong = []
    for name, want in lock.items():
        try:
            have = version(name)
        except PackageNotFoundError:
            continue  # platform-specific or optional packages of the tree
        if have != want:
            wrong.append(f"{name}: installed {have}, locked {want}")
    assert wrong == []


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_compose_has_the_production_services() -> None:
    services = _compose()["services"]
    for name in ("postgres", "redis", "airflow-init", "airflow-apiserver", "airflow-scheduler",
                 "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        assert name in services, name
    assert services["crm-sim"]["profiles"] == ["sandbox"]
    assert services["oa-sim"]["profiles"] == ["sandbox"]
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "bridge_hub" in env["AIRFLOW_CONN_BRIDGE_HUB"]
    # only the API is published, and only on loopback
    published = {n: s.get("ports") for n, s in services.items() if s.get("ports")}
    assert list(published) == ["airflow-apiserver", "events-receiver"]
    assert all(str(p).startswith("127.0.0.1:") for ports in published.values() for p in ports)


def test_compose_mounts_and_files_exist() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: mounted path {source} does not exist"
        build = service.get("build")
        if build:
            context = build if isinstance(build, str) else build.get("context", ".")
            assert (ROOT / context / "Dockerfile").exists()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    for copied in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", dockerfile, flags=re.M):
        for src in copied.split():
            assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed (make system-deps)")
def test_docker_compose_config_validates(tmp_path: Path) -> None:
    out = subprocess.run(["docker-compose", "--env-file", ".env_example", "config", "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # without the required secrets the stack refuses to start
    empty = tmp_path / "empty.env"
    empty.write_text("")
    bad = subprocess.run(["docker-compose", "--env-file", str(empty), "config", "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert "POSTGRES_PASSWORD" in bad.stderr
