"""Health probes for load balancers (issue 8 item 7) and the deployment files that use them: the compose
file, the systemd units and the Helm chart name real commands and real endpoints."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, Server, make_server
from tests.e2e.servers import POSTGRES_ADMIN

DEPLOY = ROOT / "deploy"


def test_probes_answer_without_credentials(server: Server) -> None:
    assert httpx.get(f"{server.url}/api/health/live").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/api/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ok", "database": "ok"}


def test_readiness_fails_when_the_database_goes(tmp_path: Path) -> None:
    name = f"nc_test_health_{os.getpid()}"
    if subprocess.run(
        ["psql", POSTGRES_ADMIN, "-qc", f"CREATE DATABASE {name}"], capture_output=True
    ).returncode:
        pytest.skip("no PostgreSQL server reachable")
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    server = make_server(tmp_path, {"NEUROCORTEX_DATABASE_URL": f"{base}/{name}"})
    try:
        server.start()
        assert httpx.get(f"{server.url}/api/health/ready").status_code == 200
        subprocess.run(["psql", POSTGRES_ADMIN, "-qc", f"DROP DATABASE {name} WITH (FORCE)"], check=True)
        deadline = time.monotonic() + 30
        while (ready := httpx.get(f"{server.url}/api/health/ready", timeout=10)).status_code == 200:
            assert time.monotonic() < deadline, "readiness never noticed the database was gone"
            time.sleep(0.5)
        assert ready.status_code == 503 and ready.json() == {
            "status": "unavailable",
            "database": "unreachable",
        }
        assert httpx.get(f"{server.url}/api/health/live").status_code == 200  # alive, just not ready
    finally:
        server.stop()
        subprocess.run(
            ["psql", POSTGRES_ADMIN, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False
        )


def _cli_commands() -> set[str]:
    from neurocortex.cli import app

    return {c.name or c.callback.__name__ for c in app.registered_commands}


def _check_command(argv: list[str]) -> None:
    assert Path(argv[0]).name == "neurocortex", argv
    if argv[1] == "worker" and "worker" not in _cli_commands():
        pytest.skip("`neurocortex worker` comes with the distributed mode")
    assert argv[1] in _cli_commands(), argv


def test_compose_file(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "server", "worker"}
    for name in ("server", "worker"):
        environment = services[name]["environment"]
        assert environment["NEUROCORTEX_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert environment["NEUROCORTEX_BROKER_URL"].startswith("redis://redis:")
        assert set(services[name]["depends_on"]) == {"postgres", "redis"}
    assert "/api/health/ready" in (DEPLOY / "Dockerfile").read_text()
    _check_command(services["server"]["command"])
    _check_command(services["worker"]["command"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_units(tmp_path: Path) -> None:
    neurocortex = Path(shutil.which("neurocortex") or ROOT / ".venv" / "bin" / "neurocortex")
    units, commands = [], []
    for unit in sorted((DEPLOY / "systemd").glob("neurocortex*.[st]*")):
        text = unit.read_text().replace("/opt/neurocortex/venv/bin/neurocortex", str(neurocortex))
        target = tmp_path / unit.name.replace("@.", "@1.")
        target.write_text(text)
        units.append(str(target))
        parsed = configparser.ConfigParser(strict=False, interpolation=None)
        parsed.read_string(text)
        if parsed.has_option("Service", "ExecStart"):
            commands.append(["neurocortex", *parsed.get("Service", "ExecStart").split()[1:]])
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True
    )
    # the neurocortex user exists on the target machine, not here
    problems = [line for line in verified.stderr.splitlines() if not re.search(r"user|group", line, re.I)]
    assert not problems, verified.stderr
    assert len(units) == 4 and len(commands) == 3
    for argv in sorted(commands, key=lambda argv: argv[1] == "worker"):
        _check_command(argv)


def test_helm_chart_values_and_probes() -> None:
    chart = DEPLOY / "helm" / "neurocortex"
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["apiVersion"] == "v2"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    assert {"server", "worker", "secrets", "image"} <= set(values)
    server = (chart / "templates" / "server.yaml").read_text()
    assert "path: /api/health/live" in server and "path: /api/health/ready" in server
    assert '"neurocortex", "serve"' in server
    assert '"neurocortex", "worker"' in (chart / "templates" / "worker.yaml").read_text()
    assert '"neurocortex", "purge"' in (chart / "templates" / "purge.yaml").read_text()
