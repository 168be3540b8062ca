"""Per-worker virtualenvs built for real with uv from PyPI: isolation, incremental rebuilds, failures, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurocortex.execution import environments as envs
from neurocortex.services.catalog import Catalog
from neurocortex.settings import Settings

SCRIPT = """\
import sys

import cortexutils
import six

print(six.__version__)
"""
MISSING_PACKAGE = "neurocortex-no-such-package-4a7c==1.0"


@pytest.fixture(scope="module", autouse=True)
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One uv cache for the module: the first install downloads, the others link from it."""
    cache = tmp_path_factory.mktemp("uv-cache")
    previous = os.environ.get("UV_CACHE_DIR")
    os.environ["UV_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("UV_CACHE_DIR", None)
    else:
        os.environ["UV_CACHE_DIR"] = previous


def add_worker(
    root: Path, directory: str, requirements: str | None, flavors: dict[str, dict] | None = None
) -> Path:
    """A worker directory in the community layout: flavor JSONs, the program, requirements.txt."""
    folder = root / directory
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "worker.py").write_text(SCRIPT)
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    for name, extra in (flavors or {directory: {}}).items():
        definition = {
            "name": name, "version": "1.0", "author": "test", "url": "https://example.org",
            "license": "AGPL-V3", "description": "test worker", "dataTypeList": ["ip"],
            "command": f"{directory}/worker.py", "baseConfig": directory, **extra,
        }  # fmt: skip
        (folder / f"{name}.json").write_text(json.dumps(definition))
    return folder


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.analyzers = tmp / "analyzers"
        self.responders = tmp / "responders"
        self.data = tmp / "data"
        add_worker(self.analyzers, "Plain", "cortexutils\n")
        add_worker(self.analyzers, "SixOld", "cortexutils\nsix==1.15.0\n")
        add_worker(
            self.analyzers, "SixNew", "six==1.16.0\n",
            {"SixNew": {}, "SixNew_Legacy": {"requirements": "requirements_legacy.txt"}},
        )  # fmt: skip
        (self.analyzers / "SixNew" / "requirements_legacy.txt").write_text("six==1.15.0\n")
        add_worker(self.analyzers, "Broken", f"cortexutils\n{MISSING_PACKAGE}\n")
        add_worker(self.responders, "Bare", None)  # no requirements.txt: cortexutils only
        self.settings = Settings(
            data_dir=self.data, analyzers=[str(self.analyzers)], responders=[str(self.responders)]
        )

    def catalog(self) -> Catalog:
        return envs.load_local_catalog(self.settings)

    def environments(self) -> list[envs.WorkerEnvironment]:
        return envs.discover(self.settings, self.catalog())

    def definition(self, definition_id: str):
        catalog = self.catalog()
        return catalog.analyzers.get(definition_id) or catalog.responders[definition_id]

    def python(self, definition_id: str) -> str | None:
        return envs.environment_python(self.settings, self.definition(definition_id))

    def install(self, **options) -> dict[str, envs.InstallResult]:
        force = options.pop("force", False)
        installer = envs.EnvironmentInstaller(**options)
        results = asyncio.run(installer.install(self.environments(), force=force))
        return {result.environment.label: result for result in results}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("NEUROCORTEX_")}
        env |= {"NEUROCORTEX_DATA_DIR": str(self.data), "COLUMNS": "250", "NO_COLOR": "1"}
        return subprocess.run(
            [sys.executable, "-m", "neurocortex", "neurons", *args,
             "--analyzers", str(self.analyzers), "--responders", str(self.responders)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip


def run_worker(python: str, worker_dir: Path) -> str:
    """Runs the worker's program with `python`: it imports cortexutils and prints six's version."""
    done = subprocess.run(
        [python, str(worker_dir / "worker.py")], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


LABELS = {"Plain", "SixOld", "SixNew", "SixNew (requirements_legacy.txt)", "Broken", "Bare"}


def test_discover_one_environment_per_directory_and_requirements_file(setup: Setup) -> None:
    environments = {environment.label: environment for environment in setup.environments()}
    assert set(environments) == LABELS
    assert environments["Bare"].kind == "responder"
    assert environments["SixNew"].definitions == ("SixNew_1_0",)
    assert environments["SixNew (requirements_legacy.txt)"].names == ("SixNew_Legacy",)
    home = environments["Plain"].home
    assert home.parent == setup.data.resolve() / "venvs" / "analyzers"
    assert home.name.startswith("Plain-")
    # Two catalogs with a directory of the same name get two environments.
    other = Setup(setup.data.parent / "other")
    assert {e.home for e in other.environments()}.isdisjoint({e.home for e in environments.values()})
    assert setup.python("Plain_1_0") is None  # nothing installed yet


def test_install_isolates_conflicting_pins_and_reports_the_broken_one(setup: Setup) -> None:
    running, most = 0, 0

    def started(_environment: envs.WorkerEnvironment) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)

    def finished(_result: envs.InstallResult) -> None:
        nonlocal running
        running -= 1

    installer = envs.EnvironmentInstaller(jobs=2)
    results = asyncio.run(installer.install(setup.environments(), on_start=started, on_done=finished))
    by_label = {result.environment.label: result for result in results}
    assert most == 2  # several at a time, never more than asked

    broken = by_label.pop("Broken")
    assert broken.status == envs.FAILED
    assert "uv pip install exited with 1" in broken.reason
    assert MISSING_PACKAGE.split("==")[0] in broken.reason
    assert {label: result.status for label, result in by_label.items()} == dict.fromkeys(
        by_label, envs.INSTALLED
    )
    assert setup.python("Broken_1_0") is None

    # Each environment has its own six, and cortexutils; the server's interpreter is left alone.
    versions = {
        name: run_worker(setup.python(f"{name}_1_0"), setup.analyzers / directory)
        for name, directory in (("SixOld", "SixOld"), ("SixNew", "SixNew"), ("SixNew_Legacy", "SixNew"))
    }
    assert versions == {"SixOld": "1.15.0", "SixNew": "1.16.0", "SixNew_Legacy": "1.15.0"}
    for name in ("Plain_1_0", "Bare_1_0"):
        python = setup.python(name)
        assert python is not None and python.startswith(str(setup.data.resolve() / "venvs"))
        imported = subprocess.run(
            [python, "-c", "import cortexutils.analyzer, sys; print(sys.prefix)"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert imported.stdout.strip() == str(Path(python).parent.parent)
        # The same Python version as the server.
        version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                                 capture_output=True, text=True, check=True)  # fmt: skip
        assert version.stdout.strip() == envs.platform.python_version()

    states = {environment.label: envs.state(environment) for environment in setup.environments()}
    assert states["Broken"].state == "not installed"
    assert MISSING_PACKAGE.split("==")[0] in (states["Broken"].last_failure or "")
    assert states["SixOld"].state == "installed" and states["SixOld"].last_failure is None


def test_rerun_skips_what_did_not_change_and_rebuilds_what_did(setup: Setup) -> None:
    first = setup.install()
    old_python = setup.python("SixOld_1_0")
    assert first["SixOld"].status == envs.INSTALLED

    started = time.monotonic()
    again = setup.install()
    assert time.monotonic() - started < 10  # only Broken is attempted again
    assert {label: r.status for label, r in again.items() if label != "Broken"} == dict.fromkeys(
        LABELS - {"Broken"}, envs.UNCHANGED
    )
    assert all(r.seconds < 1 for label, r in again.items() if label != "Broken")
    assert again["Broken"].status == envs.FAILED

    (setup.analyzers / "SixOld" / "requirements.txt").write_text("cortexutils\nsix==1.16.0\n")
    edited = setup.install()
    assert edited["SixOld"].status == envs.INSTALLED
    assert {label: r.status for label, r in edited.items() if label not in ("SixOld", "Broken")} == (
        dict.fromkeys(LABELS - {"SixOld", "Broken"}, envs.UNCHANGED)
    )
    new_python = setup.python("SixOld_1_0")
    assert new_python != old_python
    assert run_worker(new_python, setup.analyzers / "SixOld") == "1.16.0"
    # A job started before the swap still has its whole environment.
    assert run_worker(old_python, setup.analyzers / "SixOld") == "1.15.0"

    forced = setup.install(force=True)
    assert forced["Plain"].status == envs.INSTALLED

    # Retired generations are removed by a later install once their grace has passed.
    old_generation = Path(old_python).parent.parent
    assert old_generation.exists()
    setup.install(retired_grace=0)
    assert not old_generation.exists()
    assert run_worker(setup.python("SixOld_1_0"), setup.analyzers / "SixOld") == "1.16.0"


def test_failed_rebuild_keeps_the_old_environment(setup: Setup) -> None:
    setup.install()
    python = setup.python("SixOld_1_0")
    requirements = setup.analyzers / "SixOld" / "requirements.txt"
    requirements.write_text(f"six==1.15.0\n{MISSING_PACKAGE}\n")
    results = setup.install()
    assert results["SixOld"].status == envs.FAILED
    assert setup.python("SixOld_1_0") == python
    assert run_worker(python, setup.analyzers / "SixOld") == "1.15.0"
    state = envs.state(next(e for e in setup.environments() if e.label == "SixOld"))
    assert state.state == "outdated" and MISSING_PACKAGE.split("==")[0] in (state.last_failure or "")
    # No half-built generation is left behind.
    home = Path(python).parent.parent.parent
    assert len(list(home.glob("g-*"))) == 1


def test_unreachable_git_requirement_and_missing_requirements_file_fail_with_the_reason(
    setup: Setup,
) -> None:
    (setup.analyzers / "Plain" / "requirements.txt").write_text(
        "cortexutils\ngit+https://127.0.0.1:9/nothing/here.git\n"
    )
    (setup.analyzers / "SixNew" / "requirements_legacy.txt").unlink()
    chosen, unknown = envs.select(setup.environments(), ["Plain", "SixNew_Legacy", "nope"])
    assert unknown == ["nope"]
    results = asyncio.run(envs.EnvironmentInstaller().install(chosen))
    by_label = {result.environment.label: result for result in results}
    assert by_label["Plain"].status == envs.FAILED
    assert "git" in by_label["Plain"].reason.lower()
    legacy = by_label["SixNew (requirements_legacy.txt)"]
    assert legacy.status == envs.FAILED and "does not exist" in legacy.reason


def test_timeout_fails_the_install(setup: Setup) -> None:
    chosen, _ = envs.select(setup.environments(), ["SixOld"])
    result = asyncio.run(envs.EnvironmentInstaller(timeout=0.001).install_one(chosen[0]))
    assert result.status == envs.FAILED and "timed out" in result.reason
    assert setup.python("SixOld_1_0") is None


def test_concurrent_installers_of_one_environment_build_it_once(setup: Setup) -> None:
    chosen, _ = envs.select(setup.environments(), ["Plain"])

    async def both() -> list[envs.InstallResult]:
        return list(
            await asyncio.gather(
                envs.EnvironmentInstaller().install_one(chosen[0]),
                envs.EnvironmentInstaller().install_one(chosen[0]),
            )
        )

    assert sorted(result.status for result in asyncio.run(both())) == [envs.INSTALLED, envs.UNCHANGED]


def test_an_unhealthy_environment_is_not_used(setup: Setup) -> None:
    setup.install()
    python = Path(setup.python("Plain_1_0"))
    python.unlink()
    assert setup.python("Plain_1_0") is None
    state = envs.state(next(e for e in setup.environments() if e.label == "Plain"))
    assert state.state == "broken"
    assert setup.install()["Plain"].status == envs.INSTALLED  # and the next install repairs it
    assert setup.python("Plain_1_0") is not None


def test_cli_install_list_and_update(setup: Setup) -> None:
    listed = setup.cli("list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("not installed") == len(LABELS)

    installed = setup.cli("install", "--all", "--jobs", "3")
    assert installed.returncode == 1, installed.stderr
    rows = {line.split("│")[1].strip(): line for line in installed.stdout.splitlines() if "│" in line}
    assert "failed" in rows["analyzer/Broken"]
    assert f"{MISSING_PACKAGE.split('==')[0]} was not found in the package registry" in installed.stdout
    for worker in ("analyzer/Plain", "analyzer/SixOld", "analyzer/SixNew", "responder/Bare"):
        assert "installed" in rows[worker], installed.stdout
    assert "5 installed, 0 unchanged, 1 failed" in installed.stdout

    by_name = setup.cli("install", "SixOld", "SixNew_Legacy_1_0")
    assert by_name.returncode == 0, by_name.stdout
    assert "0 installed, 2 unchanged, 0 failed" in by_name.stdout

    unknown = setup.cli("install", "NoSuchWorker")
    assert unknown.returncode == 1 and "no local worker named NoSuchWorker" in unknown.stdout
    assert setup.cli("install").returncode == 2  # neither names nor --all

    listed = setup.cli("list")
    rows = {line.split("│")[2].strip(): line for line in listed.stdout.splitlines() if "│" in line}
    assert "not installed" in rows["Broken"]
    assert f"{MISSING_PACKAGE.split('==')[0]} was not found in the package registry" in listed.stdout
    assert "installed" in rows["SixOld"] and "not" not in rows["SixOld"]

    (setup.analyzers / "SixOld" / "requirements.txt").write_text("cortexutils\nsix==1.16.0\n")
    updated = setup.cli("update")
    assert updated.returncode == 1  # Broken still fails
    assert "catalogs: 5 analyzers, 1 responders" in updated.stdout
    assert "1 installed, 4 unchanged, 1 failed" in updated.stdout
    assert "next start" in updated.stdout


def test_cli_update_asks_a_running_server_to_rescan(setup: Setup, superadmin) -> None:
    import shutil

    shutil.rmtree(setup.analyzers / "Broken")
    key = superadmin.headers["Authorization"].removeprefix("Bearer ")
    url = str(superadmin.base_url).rstrip("/")
    updated = setup.cli("update", "--server", url, "--api-key", key)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "5 installed, 0 unchanged, 0 failed" in updated.stdout
    assert f"{url} is rescanning" in updated.stdout

    refused = setup.cli("update", "--server", url, "--api-key", "wrong")
    assert refused.returncode == 1 and "refused (401)" in refused.stdout
