"""Which runner and which interpreter a job gets: the sandbox as the default runner, and a worker's own
virtualenv (`neurocortex neurons install`) used when it has one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Server, bootstrap_superadmin, enable, make_server, new_tenant, run_and_wait

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory):
    server = make_server(
        tmp_path_factory.mktemp("sandboxed"),
        extra_env={"NEUROCORTEX_RUNNERS": "sandbox,process", "NEUROCORTEX_SANDBOX_NETWORK": "false"},
    )
    server.start()
    yield server
    server.stop()


def test_jobs_run_in_the_sandbox_by_default(sandboxed: Server) -> None:
    tenant = new_tenant(bootstrap_superadmin(sandboxed))
    echo = enable(tenant.admin, "analyzer", "Echo_1_0", configuration={"api_key": "top-secret"})
    done = run_and_wait(tenant.analyst, echo["id"], {"dataType": "domain", "data": "sandboxed.example"})
    assert done["status"] == "Success", done["report"]
    full = done["report"]["full"]
    assert full["data"] == "sandboxed.example" and full["has_api_key"] is True
    assert full["uid"] == 65534  # not the server's uid: the worker runs unprivileged
    # (what the sandbox hides and forbids is proven in tests/execution/test_sandbox_runner.py)
    shell = enable(tenant.admin, "analyzer", "ShellEcho_1_0")
    done = run_and_wait(tenant.analyst, shell["id"], {"dataType": "other", "data": "x"})
    assert done["status"] == "Success", done["report"]


def test_a_worker_uses_its_own_virtualenv(tmp_path: Path) -> None:
    """After `neurocortex neurons install`, the worker runs with its virtualenv's interpreter."""
    catalog = tmp_path / "analyzers"
    shutil.copytree(ROOT / "tests" / "workers" / "analyzers" / "Echo", catalog / "Echo")
    (catalog / "Echo" / "requirements.txt").write_text("cortexutils\n")
    server = make_server(tmp_path / "node", extra_env={"NEUROCORTEX_ANALYZERS": str(catalog)})
    installed = subprocess.run(
        [sys.executable, "-m", "neurocortex", "neurons", "install", "--all"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    server.start()
    try:
        tenant = new_tenant(bootstrap_superadmin(server))
        echo = enable(tenant.admin, "analyzer", "Echo_1_0")
        done = run_and_wait(tenant.analyst, echo["id"], {"dataType": "domain", "data": "venv.example"})
        assert done["status"] == "Success", done["report"]
        python = Path(done["report"]["full"]["python"])
        assert python != Path(sys.executable)
        assert (server.data_dir / "venvs").resolve() in python.parents
    finally:
        server.stop()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory):
    """A server whose default runner is the plain process runner, and its superadmin."""
    server = make_server(
        tmp_path_factory.mktemp("plain"), extra_env={"NEUROCORTEX_RUNNERS": "process,sandbox"}
    )
    server.start()
    yield bootstrap_superadmin(server)
    server.stop()


def test_a_worker_can_require_the_sandbox(plain: httpx.Client) -> None:
    tenant = new_tenant(plain)
    free = enable(tenant.admin, "analyzer", "Echo_1_0")
    boxed = enable(
        tenant.admin, "analyzer", "Echo_1_0", name="Echo_boxed", runner="sandbox",
        sandbox={"network": False, "memoryMb": 1024},
    )  # fmt: skip
    assert boxed["runner"] == "sandbox" and boxed["sandbox"] == {"network": False, "memoryMb": 1024}
    assert "runner" not in free  # absent unless set, as every attribute beyond Cortex

    observable = {"dataType": "domain", "data": "choice.example"}
    assert run_and_wait(tenant.analyst, free["id"], observable)["report"]["full"]["uid"] == os.getuid()
    assert run_and_wait(tenant.analyst, boxed["id"], observable)["report"]["full"]["uid"] == 65534

    # back to the configured order once the worker's runner is cleared
    cleared = tenant.admin.patch(f"/api/analyzer/{boxed['id']}", json={"runner": None})
    assert cleared.status_code == 200 and "runner" not in cleared.json()
    done = run_and_wait(tenant.analyst, boxed["id"], {"dataType": "domain", "data": "cleared.example"})
    assert done["report"]["full"]["uid"] == os.getuid()


def test_runner_and_sandbox_attributes_are_validated(plain: httpx.Client) -> None:
    tenant = new_tenant(plain)
    worker = enable(tenant.admin, "analyzer", "Echo_1_0")
    for body in ({"runner": "bogus"}, {"sandbox": {"network": "no"}}, {"sandbox": {"memoryMb": -1}},
                 {"sandbox": {"unknown": 1}}, {"sandbox": []}):  # fmt: skip
        response = tenant.admin.patch(f"/api/analyzer/{worker['id']}", json=body)
        assert response.status_code == 400, body
        assert response.json()["type"] == "AttributeCheckingError"
    assert "runner" not in tenant.admin.get(f"/api/analyzer/{worker['id']}").json()
