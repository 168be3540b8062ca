"""The docker runner against a real Podman API service (Docker-compatible socket), with images made offline:
success, failure with the container's logs, timeout kill, container limits, cleanup, and an unreachable
daemon reported as an unavailable runner."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from neurocortex.execution.jobdir import JobDirectory
from neurocortex.execution.runners.base import RunSpec
from neurocortex.execution.runners.docker import (
    OWNER_LABEL,
    ROOT_LABEL,
    DockerRunner,
    RegistryAuth,
    container_options,
)
from neurocortex.execution.runners.process import ProcessRunner
from tests.conftest import TEST_WORKERS, free_port
from tests.execution.conftest import job_input
from tests.podman import Podman, Registry, podman_missing

pytestmark = pytest.mark.skipif(podman_missing() is not None, reason=podman_missing() or "")

ANALYZERS = TEST_WORKERS / "analyzers"


REGISTRY_PORT = free_port()


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory):
    service = Podman(tmp_path_factory.mktemp("podman"), plain_http_registries=(f"127.0.0.1:{REGISTRY_PORT}",))
    service.start()
    try:
        service.import_python_image()
        for name, command in (("echo", "Echo/echo.py"), ("hostile", "Hostile/hostile.py"),
                              ("sleeper", "Sleeper/sleeper.py"), ("facts", "Facts/facts.py")):  # fmt: skip
            service.worker_image(f"localhost/test-{name}:1", ANALYZERS, command)
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, podman: Podman):
    """A private registry holding the Echo image as 127.0.0.1:<port>/private/echo:1."""
    if shutil.which("docker-registry") is None or shutil.which("htpasswd") is None:
        pytest.skip("docker-registry and apache2-utils are not installed (see .ci/run)")
    registry = Registry(tmp_path_factory.mktemp("registry"), REGISTRY_PORT)
    registry.start()
    try:
        podman.cli("push", "--tls-verify=false", "--creds", f"{registry.USER}:{registry.PASSWORD}",
                   "localhost/test-echo:1", f"{registry.location}/private/echo:1")  # fmt: skip
        yield registry
    finally:
        registry.stop()


def runner(podman: Podman, **options) -> DockerRunner:
    return DockerRunner(64 * 1024, host=podman.url, pull="missing", **options)


def prepared(jobs_root: Path, **overrides) -> JobDirectory:
    job = JobDirectory.create(jobs_root, "job1")
    job.write_input(job_input(**overrides))
    return job


def spec_for(job: JobDirectory, image: str, timeout: float = 120, env: dict | None = None) -> RunSpec:
    return RunSpec(["/job"], job.path, env or {}, timeout, job_directory=job.path, image=image)


async def test_a_worker_runs_in_a_container(podman: Podman, jobs_root: Path) -> None:
    docker = runner(podman)
    assert docker.available(), docker.unavailable_reason
    job = prepared(jobs_root, data="203.0.113.9", parameters={"a": 1})
    outcome = await docker.run(spec_for(job, "localhost/test-echo:1", env={"LANG": "C.UTF-8"}))
    assert outcome.error is None and not outcome.timed_out and outcome.exit_code == 0, outcome
    output = job.read_output(1024 * 1024)
    assert output.success, output.error_message
    assert output.full["data"] == "203.0.113.9" and output.full["parameters"] == {"a": 1}
    assert output.full["cwd"] == "/worker"  # the image's WORKDIR: the worker ran in the container
    assert output.operations == [{"type": "AddTagToArtifact", "tag": "echoed"}]
    assert podman.containers() == []  # removed once done


async def test_the_container_gets_job_as_its_argument_and_the_settings_limits(
    podman: Podman, jobs_root: Path
) -> None:
    docker = runner(podman, options=container_options({"memory": "96m", "pidsLimit": 32}))
    job = prepared(jobs_root)
    outcome = await docker.run(spec_for(job, "localhost/test-facts:1"))
    output = job.read_output(1024 * 1024)
    assert output.success, (output.error_message, outcome)
    assert output.full["argv"] == ["/job"] and output.full["job_directory"] == "/job"
    assert output.full["memory_limit"] in (str(96 * 1024 * 1024), "96M")


async def test_a_failing_worker_leaves_its_logs_as_the_error(podman: Podman, jobs_root: Path) -> None:
    docker = runner(podman)
    job = prepared(jobs_root, config={"service": "crash"})
    outcome = await docker.run(spec_for(job, "localhost/test-hostile:1"))
    assert outcome.error is None and outcome.exit_code == 1
    assert "RuntimeError: boom: the analyzer crashed" in outcome.output  # its stderr, from the logs
    assert not job.has_output()


async def test_logs_are_bounded(podman: Podman, jobs_root: Path) -> None:
    docker = DockerRunner(4096, host=podman.url, pull="missing")
    job = prepared(jobs_root, config={"service": "flood"})
    outcome = await docker.run(spec_for(job, "localhost/test-hostile:1"))
    assert len(outcome.output) < 4096 + 100 and "bytes omitted" in outcome.output
    assert outcome.output.endswith("the end of the flood\n")


async def test_a_timeout_kills_and_removes_the_container(podman: Podman, jobs_root: Path) -> None:
    docker = runner(podman)
    job = prepared(jobs_root, parameters={"seconds": 600})
    started = time.monotonic()
    outcome = await docker.run(spec_for(job, "localhost/test-sleeper:1", timeout=3))
    assert outcome.timed_out and outcome.error is None
    assert time.monotonic() - started < 30
    assert podman.containers() == []


async def test_a_cancelled_job_leaves_no_container(podman: Podman, jobs_root: Path) -> None:
    docker = runner(podman)
    job = prepared(jobs_root, parameters={"seconds": 600})
    task = asyncio.create_task(docker.run(spec_for(job, "localhost/test-sleeper:1")))
    deadline = time.monotonic() + 60
    while not podman.containers():
        assert time.monotonic() < deadline, "the container never appeared"
        await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert podman.containers() == []


async def test_jobs_run_side_by_side(podman: Podman, jobs_root: Path) -> None:
    """Waiting for a container holds neither the event loop nor the other jobs: three run at once."""
    docker = runner(podman)
    jobs = [prepared(jobs_root, parameters={"seconds": 8}) for _ in range(3)]
    running = asyncio.gather(*(docker.run(spec_for(j, "localhost/test-sleeper:1")) for j in jobs))
    most = 0
    while not running.done():
        most = max(most, len(await asyncio.to_thread(podman.containers)))
        await asyncio.sleep(0.2)
    outcomes = await running
    assert all(o.exit_code == 0 for o in outcomes) and all(j.read_output(10**6).success for j in jobs)
    assert most == 3


async def test_a_missing_image_fails_the_job_with_the_reason(podman: Podman, jobs_root: Path) -> None:
    docker = DockerRunner(1024, host=podman.url, pull="never")
    job = prepared(jobs_root)
    outcome = await docker.run(spec_for(job, "localhost/no-such-image:1"))
    assert outcome.error == "Docker image localhost/no-such-image:1 is not available (pull policy: never)"
    # with the image prefix setting, the image is the prefix followed by the worker's image
    prefixed = DockerRunner(1024, host=podman.url, pull="missing", image_prefix="localhost/test-")
    outcome = await prefixed.run(spec_for(job, "echo:1"))
    assert outcome.exit_code == 0 and job.read_output(10**6).success


async def test_an_unreachable_daemon_makes_the_runner_unavailable(tmp_path: Path, jobs_root: Path) -> None:
    socket = tmp_path / "nothing-listens-here.sock"
    docker = DockerRunner(1024, host=f"unix://{socket}")
    assert docker.available() is False
    assert docker.unavailable_reason == (
        f"the Docker daemon at unix://{socket} cannot be reached: No such file or directory"
    )
    job = prepared(jobs_root)
    outcome = await docker.run(spec_for(job, "localhost/test-echo:1"))
    assert outcome.error == f"the docker runner is unavailable: {docker.unavailable_reason}"
    # the process runner stays available: the executor falls back to it (tests/e2e/test_docker_jobs.py)
    assert ProcessRunner(1024).available()


async def test_a_private_registry_with_credentials(
    podman: Podman, registry: Registry, jobs_root: Path
) -> None:
    image = f"{registry.location}/private/echo:1"
    job = prepared(jobs_root, data="private.example")
    anonymous = DockerRunner(1024, host=podman.url, pull="missing")
    outcome = await anonymous.run(spec_for(job, image))
    assert outcome.error is not None and outcome.error.startswith(
        f"Docker image {image} is not available (pull:"
    )
    assert "unauthorized" in outcome.error.lower() or "authentication" in outcome.error.lower()
    # with Cortex's docker.registry.* settings the image is pulled, then run
    credentials = RegistryAuth(registry.USER, registry.PASSWORD, url=f"http://{registry.location}")
    assert credentials.for_image("docker.io/library/python:3") is None  # not sent to other registries
    authenticated = DockerRunner(1024, host=podman.url, pull="always", registry=credentials)
    outcome = await authenticated.run(spec_for(job, image))
    assert outcome.error is None and outcome.exit_code == 0, outcome
    assert job.read_output(10**6).full["data"] == "private.example"
    podman.cli("rmi", image)
    # after a catalog refresh the images of the workers are pulled ahead of their jobs (ImageUpdater)
    refused = await anonymous.update_images([image])
    assert refused[image] is not None and refused[image].startswith(f"Docker image {image} is not available")
    assert await authenticated.update_images([image]) == {image: None}
    assert image in podman.cli("images", "--format", "{{.Repository}}:{{.Tag}}")
    podman.cli("rmi", image)


async def test_containers_left_by_a_dead_server_are_removed_at_start(podman: Podman, jobs_root: Path) -> None:
    """A node killed with -9 leaves its containers running; the next start of a node on that job folder
    removes them, and only them: not those of a live node sharing the folder, nor of another folder."""
    docker = runner(podman, job_root=jobs_root)
    assert docker.available()
    job = prepared(jobs_root, parameters={"seconds": 600})
    spec = spec_for(job, "localhost/test-sleeper:1")
    gone = subprocess.Popen(["true"])
    gone.wait()
    labels = {ROOT_LABEL: str(jobs_root), OWNER_LABEL: f"{socket.gethostname()}:{gone.pid}"}
    orphan = docker._client.containers.create("localhost/test-sleeper:1", ["/job"], labels=labels)
    orphan.start()
    live = docker._create(docker._client, "localhost/test-sleeper:1", spec)  # this process: alive
    elsewhere = runner(podman, job_root=jobs_root.parent / "elsewhere")
    other = elsewhere._create(docker._client, "localhost/test-echo:1", spec)
    restarted = runner(podman, job_root=jobs_root)
    assert restarted.available()
    assert restarted.remove_leftovers() == 1
    assert sorted(podman.containers()) == sorted([live.name, other.name])
    live.remove(force=True)
    other.remove(force=True)
