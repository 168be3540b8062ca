"""Helpers for running real workers (cortexutils scripts written into a temporary catalog) end to end."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from neurocortex.execution.jobdir import JobDirectory, JobInput, WorkerOutput
from neurocortex.execution.runners.base import RunOutcome, RunSpec
from neurocortex.execution.runners.process import ProcessRunner, command_argv

PYTHON = sys.executable
"""The test virtualenv's interpreter, which has cortexutils."""


class Catalog:
    """A catalog root with one directory per worker, as in Cortex-Analyzers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def add(self, relative: str, source: str, mode: int = 0o644) -> str:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
        path.chmod(mode)
        return relative


def job_input(**overrides) -> JobInput:
    """A JobInput as the engine builds it for an ip observable; keyword arguments override fields."""
    values = dict(
        job_id="job1",
        data_type="ip",
        tlp=2,
        pap=2,
        message="case 42",
        parameters={},
        config={"check_tlp": True, "max_tlp": 2, "auto_extract_artifacts": False},
        data="8.8.8.8",
    )
    values.update(overrides)
    return JobInput(**values)


async def _execute(
    job: JobDirectory,
    catalog: Catalog,
    command: str,
    *,
    timeout: float = 60,
    max_captured_output: int = 64 * 1024,
    max_output: int = 1024 * 1024,
) -> tuple[RunOutcome, WorkerOutput]:
    """What the dispatcher does with a prepared job directory: run, write the synthetic failure, collect."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    if job.cacerts:
        env["REQUESTS_CA_BUNDLE"] = str(job.cacerts)
    spec = RunSpec(command_argv(catalog.root, command, PYTHON, job.path), catalog.root, env, timeout)
    outcome = await ProcessRunner(max_captured_output).run(spec)
    if not job.has_output():
        job.write_failure(outcome.error or outcome.output)
    return outcome, job.read_output(max_output)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "analyzers")


@pytest.fixture
def jobs_root(tmp_path: Path) -> Path:
    return tmp_path / "jobs"


@pytest.fixture
def make_input():
    """JobInput for an ip analyzer job, with any field overridden."""
    return job_input


@pytest.fixture
def execute():
    """Run a worker of the catalog on a prepared job directory; returns (RunOutcome, WorkerOutput)."""
    return _execute
