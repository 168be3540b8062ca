"""Which runner and which interpreter a job gets: the sandbox as the default runner, and a worker's own
virtualenv (`neurocortex neurons install`) used when it has one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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
