"""Run a worker in a container, through the Docker Engine API (Docker, or Podman's Docker-compatible socket).

Cortex's semantics (spec/cortex-api.md §5.3): the image is the image prefix followed by the worker's
`dockerImage`; it is pulled before each run when the pull policy says so (pull errors ignored while a local
copy exists); the job directory is mounted read-write at /job and the container runs with `/job` as its
argument (the community images' entrypoint is `python <command>`, so cortexutils reads /job); the container
limits come from the settings; on a timeout the container is killed; it is always removed at the end, and its
logs become the error when the worker wrote no output.json.

The Docker SDK is synchronous. Its calls run in two bounded thread pools of this runner — short API calls in
one, the long waits for containers to exit in the other (as many as jobs may run at once on this node) — so
the event loop never blocks and a slow pull cannot starve the other jobs' calls.

Availability: the daemon must answer a ping. The first check happens when the server starts (Cortex decides
then too); while the daemon is unreachable the runner says why (`unavailable_reason`) and checks again in
the background at most every RECHECK_SECONDS, so jobs go to the next runner of the order (or fail with that
reason) instead of failing at random, and the runner comes back once the daemon does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.auth
import docker.errors
import docker.utils
import requests.exceptions

from neurocortex.execution.runners.base import RunOutcome, RunSpec
from neurocortex.execution.runners.process import _OutputCapture

log = logging.getLogger(__name__)

T = TypeVar("T")

JOB_MOUNT = "/job"
"""Where the job directory appears in the container; cortexutils' default job directory."""

PING_TIMEOUT = 5.0
"""Seconds the availability check may take."""

CALL_TIMEOUT = 120.0
"""Seconds any other API call may take (a busy daemon creates containers slowly); pulls, builds and waits
have their own."""

RECHECK_SECONDS = 30.0
"""How often an unreachable daemon is tried again."""

PULL_POLICIES = ("always", "missing", "never")

LABEL = "neurocortex.job"
"""Label of every container this runner starts (value: the job directory's name), for `docker ps -f`."""

ROOT_LABEL = "neurocortex.jobs"
"""Label naming the folder of the job folders of the server that started the container."""

OWNER_LABEL = "neurocortex.owner"
"""Label naming the process that started the container: `<hostname>:<pid>`."""

PODMAN_SOCKETS = ("/run/podman/podman.sock",)
"""Tried, after Docker's default socket, when no host is configured: rootful Podman's API service."""

# Cortex's docker.container.* keys → the Docker SDK's keyword arguments of containers.create.
CONTAINER_OPTIONS = {
    "capAdd": "cap_add",
    "capDrop": "cap_drop",
    "cgroupParent": "cgroup_parent",
    "privileged": "privileged",
    "dns": "dns",
    "dnsSearch": "dns_search",
    "extraHosts": "extra_hosts",
    "networkMode": "network_mode",
    "cpuPeriod": "cpu_period",
    "cpuQuota": "cpu_quota",
    "kernelMemory": "kernel_memory",
    "memoryReservation": "mem_reservation",
    "memory": "mem_limit",
    "memorySwap": "memswap_limit",
    "memorySwappiness": "mem_swappiness",
    # beyond Cortex's keys
    "cpus": "nano_cpus",
    "pidsLimit": "pids_limit",
    "user": "user",
    "readOnly": "read_only",
}


def container_options(settings: dict[str, Any]) -> dict[str, Any]:
    """The SDK's create() arguments for the settings' container options (Cortex's key names); raises
    ValueError naming an unknown key."""
    options = {}
    for key, value in settings.items():
        if key not in CONTAINER_OPTIONS:
            raise ValueError(f"unknown container option {key!r} (known: {', '.join(CONTAINER_OPTIONS)})")
        if key == "cpus":
            value = round(float(value) * 1e9)
        options[CONTAINER_OPTIONS[key]] = value
    return options


def resolve_host(configured: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The daemon's address: the setting, else DOCKER_HOST, else Docker's socket if present, else Podman's;
    None when there is nothing to try (the SDK's default, Docker's socket, is then reported missing)."""
    environ = os.environ if environ is None else environ
    if configured:
        return configured
    if environ.get("DOCKER_HOST"):
        return environ["DOCKER_HOST"]
    for path in ("/var/run/docker.sock", *PODMAN_SOCKETS):
        if os.path.exists(path):
            return f"unix://{path}"
    return None


@dataclass
class RegistryAuth:
    """Credentials for a private registry (Cortex's docker.registry.*); `url` empty: for every image."""

    username: str
    password: str
    email: str | None = None
    url: str | None = None

    def for_image(self, image: str) -> dict[str, str] | None:
        if self.url:
            wanted = re.sub(r"^[a-z]+://", "", self.url).rstrip("/")
            repository, _ = docker.utils.parse_repository_tag(image)
            registry, _ = docker.auth.resolve_repository_name(repository)
            if registry != wanted and not (registry == docker.auth.INDEX_NAME and "docker.io" in wanted):
                return None
        auth = {"username": self.username, "password": self.password}
        if self.email:
            auth["email"] = self.email
        if self.url:
            auth["serveraddress"] = self.url
        return auth


@dataclass
class DockerRunner:
    max_captured_output: int
    host: str | None = None
    """The daemon: unix:///var/run/docker.sock, unix:///run/podman/podman.sock, tcp://host:2376 (TLS from
    DOCKER_TLS_VERIFY / DOCKER_CERT_PATH as the docker CLI)."""
    image_prefix: str = ""
    pull: str = "always"
    pull_timeout: float = 600.0
    registry: RegistryAuth | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of containers.create (limits, network, capabilities): container_options()."""
    job_root: Path | None = None
    daemon_job_root: Path | None = None
    """The job root as the daemon sees it (Cortex's job.dockerDirectory), when it differs from job_root
    (the server itself in a container, a remote daemon sharing a volume)."""
    max_waits: int = 40
    """Containers waited for at once: the node's running-jobs limit."""

    name: str = "docker"

    def __post_init__(self) -> None:
        if self.pull not in PULL_POLICIES:
            raise ValueError(f"pull policy must be one of {', '.join(PULL_POLICIES)}, not {self.pull!r}")
        self.unavailable_reason: str | None = None
        self._client: docker.DockerClient | None = None
        self._checked_at: float | None = None
        self._probe: asyncio.Future[None] | None = None
        self._calls = ThreadPoolExecutor(max_workers=8, thread_name_prefix="docker-call")
        self._waits = ThreadPoolExecutor(max_workers=max(1, self.max_waits), thread_name_prefix="docker-wait")
        self._pulls: dict[str, asyncio.Future[None]] = {}

    # -- availability -------------------------------------------------------------------------------------

    def available(self) -> bool:
        """Whether the daemon answered the last check. The first check is made here, synchronously (at start-
        up); later ones, while the daemon is unreachable, in the background."""
        if self._checked_at is None:
            self._check()
        elif self.unavailable_reason is not None and time.monotonic() - self._checked_at > RECHECK_SECONDS:
            self._check_in_background()
        return self.unavailable_reason is None

    def _check(self) -> None:
        self._checked_at = time.monotonic()
        host = resolve_host(self.host)
        environment = dict(os.environ)
        if host:
            environment["DOCKER_HOST"] = host
        try:
            # version="auto" asks the daemon which API version it speaks (Podman's is older than Docker's).
            client = docker.from_env(environment=environment, version="auto", timeout=PING_TIMEOUT,
                                     max_pool_size=8 + self.max_waits)  # fmt: skip
            client.ping()
            client.api.timeout = CALL_TIMEOUT
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            where = host or "unix:///var/run/docker.sock (the default)"
            self.unavailable_reason = f"the Docker daemon at {where} cannot be reached: {_reason(exc)}"
            self._client = None
            return
        if self._client is not None:
            self._client.close()
        self._client = client
        self.unavailable_reason = None

    def _check_in_background(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._check()
            return
        if self._probe is None or self._probe.done():
            self._probe = loop.run_in_executor(self._calls, self._check)

    def _lost(self, exc: BaseException) -> None:
        """A call failed for want of a daemon: say so until a check finds it again."""
        self.unavailable_reason = f"the Docker daemon stopped answering: {_reason(exc)}"
        self._checked_at = time.monotonic()

    # -- running ------------------------------------------------------------------------------------------

    async def run(self, spec: RunSpec) -> RunOutcome:
        if not self.available() or self._client is None:
            return _error(f"the docker runner is unavailable: {self.unavailable_reason}")
        if not spec.image:
            return _error("the worker has no Docker image")
        if spec.job_directory is None:
            return _error("no job directory to mount at /job")
        image = self.image_prefix + spec.image
        client = self._client
        container = None
        timed_out = False
        exit_code = None
        try:
            problem = await self._ensure_image(client, image)
            if problem:
                return _error(problem)
            container = await self._created(client, image, spec)
            await self._call(container.start)
            exited = asyncio.get_running_loop().run_in_executor(self._waits, _wait, container)
            exited.add_done_callback(_retrieve)
            try:
                exit_code = await asyncio.wait_for(asyncio.shield(exited), spec.timeout)
            except TimeoutError:
                timed_out = True
                await self._call(_kill, container)
            capture = _OutputCapture(self.max_captured_output, asyncio.get_running_loop())
            await self._call(_read_logs, container, capture)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            if _is_connection_problem(exc):
                self._lost(exc)
            return _error(f"Docker execution error: {_reason(exc)}")
        finally:
            if container is not None:
                # Also when the job is cancelled (server stopping): no container outlives its job.
                await asyncio.shield(self._call(_remove, container))
        return RunOutcome(exit_code=exit_code, timed_out=timed_out, output=capture.text())

    async def _created(self, client: docker.DockerClient, image: str, spec: RunSpec):
        creating = asyncio.get_running_loop().run_in_executor(self._calls, self._create, client, image, spec)
        try:
            return await asyncio.shield(creating)
        except asyncio.CancelledError:
            # cancelled while the daemon creates it: remove it once it exists
            creating.add_done_callback(self._remove_when_created)
            raise

    def _remove_when_created(self, creating: asyncio.Future) -> None:
        if not creating.cancelled() and creating.exception() is None:
            self._calls.submit(_remove, creating.result())

    def _create(self, client: docker.DockerClient, image: str, spec: RunSpec):
        assert spec.job_directory is not None
        source = self.daemon_path(spec.job_directory)
        return client.containers.create(
            image,
            command=spec.argv or [JOB_MOUNT],
            name=f"neurocortex-{spec.job_directory.name[-40:]}-{secrets.token_hex(3)}",
            volumes={str(source): {"bind": JOB_MOUNT, "mode": "rw"}},
            environment=spec.env,
            labels={
                LABEL: spec.job_directory.name,
                ROOT_LABEL: str(self.job_root or spec.job_directory.parent),
                OWNER_LABEL: f"{socket.gethostname()}:{os.getpid()}",
            },
            detach=True,
            stdin_open=False,
            **self.options,
        )

    def daemon_path(self, job_directory: Path) -> Path:
        """The job directory as the daemon sees it."""
        if self.daemon_job_root is None or self.job_root is None:
            return job_directory
        return self.daemon_job_root / job_directory.relative_to(self.job_root)

    async def _ensure_image(self, client: docker.DockerClient, image: str) -> str | None:
        """Pull as the policy says; None when the image is there, else why it is not."""
        if self.pull != "never" and (
            self.pull == "always" or not await self._call(_has_image, client, image)
        ):
            try:
                await self._pull_once(client, image)
            except (docker.errors.DockerException, requests.exceptions.RequestException, TimeoutError) as exc:
                if _is_connection_problem(exc):
                    raise
                # Cortex ignores pull errors: a local copy may do (an offline registry, a local image).
                log.info("pulling %s failed: %s", image, _reason(exc))
                pulled_error = _reason(exc)
            else:
                pulled_error = None
        else:
            pulled_error = None
        if await self._call(_has_image, client, image):
            return None
        why = (
            f" (pull: {pulled_error})"
            if pulled_error
            else " (pull policy: never)"
            if self.pull == "never"
            else ""
        )
        return f"Docker image {image} is not available{why}"

    async def update_images(self, images: list[str]) -> dict[str, str | None]:
        """Pull the images of the enabled workers after a catalog refresh (services/catalog_refresh.py's
        ImageUpdater), so that no job waits for it: image → None when it is there, else why not."""
        results: dict[str, str | None] = {}
        client = self._client
        for image in images:
            if client is None:
                results[image] = f"the docker runner is unavailable: {self.unavailable_reason}"
                continue
            try:
                results[image] = await self._ensure_image(client, self.image_prefix + image)
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                self._lost(exc)
                results[image] = _reason(exc)
        return results

    async def _pull_once(self, client: docker.DockerClient, image: str) -> None:
        """Jobs of the same image share one pull in flight."""
        pending = self._pulls.get(image)
        if pending is None:
            loop = asyncio.get_running_loop()
            auth = self.registry.for_image(image) if self.registry else None
            pending = loop.run_in_executor(self._calls, _pull, client, image, auth)
            self._pulls[image] = pending
            pending.add_done_callback(lambda _: self._pulls.pop(image, None))
        await asyncio.wait_for(asyncio.shield(pending), self.pull_timeout)

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._calls, function, *args)

    async def build(self, context: Path, tag: str) -> str:
        """Build an image from a directory holding a Dockerfile; returns the build log. Raises
        docker.errors.BuildError with the log on failure."""
        if not self.available() or self._client is None:
            raise docker.errors.DockerException(
                f"the docker runner is unavailable: {self.unavailable_reason}"
            )
        return await self._call(_build, self._client, context, tag)

    def remove_leftovers(self) -> int:
        """Remove the containers that a server or worker node of this machine, using this job folder, left
        when it died (killed with -9, the machine rebooted): the ones whose owning process is gone. Those of
        live nodes sharing the folder and the daemon, and those of other machines, are theirs. Called at
        start-up; returns how many were removed."""
        if self._client is None or self.job_root is None:
            return 0
        filters = {"label": [f"{ROOT_LABEL}={self.job_root}"]}
        try:
            found = self._client.containers.list(all=True, filters=filters)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            log.warning("cannot list leftover containers: %s", _reason(exc))
            return 0
        leftovers = [c for c in found if _owner_is_gone(c.labels.get(OWNER_LABEL, ""))]
        for container in leftovers:
            _remove(container)
        return len(leftovers)

    def close(self) -> None:
        self._calls.shutdown(wait=False, cancel_futures=True)
        self._waits.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()


# -- the blocking calls, run in the runner's threads ------------------------------------------------------


def _wait(container) -> int | None:
    # No HTTP timeout: the job's own timeout is kept by the event loop, which kills the container.
    result = container.wait(timeout=None)
    return result.get("StatusCode")


def _kill(container) -> None:
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        container.kill()


def _remove(container) -> None:
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        log.warning("container %s could not be removed: %s", container.short_id, _reason(exc))


def _read_logs(container, capture: _OutputCapture) -> None:
    """stdout and stderr as the daemon interleaved them, bounded like a process runner's output."""
    for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=False):
        capture.data_received(chunk)


def _has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _pull(client: docker.DockerClient, image: str, auth: dict[str, str] | None) -> None:
    # bounded by the caller's wait (pull_timeout); the daemon reports progress, so no read times out
    repository, tag = docker.utils.parse_repository_tag(image)
    progress = client.api.pull(repository, tag=tag or "latest", auth_config=auth, stream=True, decode=True)
    for event in progress:
        # a failed pull still answers 200: the error comes in the stream
        if isinstance(event, dict) and event.get("error"):
            raise docker.errors.DockerException(str(event["error"]).strip())


def _build(client: docker.DockerClient, context: Path, tag: str) -> str:
    _, lines = client.images.build(path=str(context), tag=tag, rm=True, forcerm=True, timeout=3600)
    return "".join(line.get("stream", "") for line in lines if isinstance(line, dict))


# -- helpers ----------------------------------------------------------------------------------------------


def _owner_is_gone(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def _retrieve(future: asyncio.Future) -> None:
    # The wait of a killed or removed container ends in an error nobody awaits: mark it seen.
    if not future.cancelled():
        future.exception()


def _error(message: str) -> RunOutcome:
    return RunOutcome(exit_code=None, timed_out=False, output="", error=message)


def _is_connection_problem(exc: BaseException) -> bool:
    return isinstance(exc, requests.exceptions.ConnectionError) or (
        isinstance(exc, docker.errors.DockerException)
        and isinstance(exc.__cause__, requests.exceptions.ConnectionError)
    )


def _reason(exc: BaseException) -> str:
    """A readable reason: the innermost OS error of a connection failure, else the exception's text."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        nested = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        if nested is None and len(cause.args) > 1 and isinstance(cause.args[1], BaseException):
            nested = cause.args[1]
        cause = nested or cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__
