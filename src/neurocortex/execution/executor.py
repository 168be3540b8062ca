"""Running one claimed job: prepare its directory, pick a runner, run the worker, collect and store the result.

Whatever the worker does — crash, hang, print gigabytes, write garbage — the job ends as Success or
Failure with a message that says what happened, and its directory is removed (unless kept on purpose).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from neurocortex import metrics
from neurocortex.execution.environments import environment_python
from neurocortex.execution.jobdir import (
    INLINE_OUTPUT_BYTES,
    JobDirectory,
    JobInput,
    build_config,
    group_id,
    network_environment,
)
from neurocortex.execution.runners.base import Runner, RunSpec
from neurocortex.execution.runners.docker import JOB_MOUNT
from neurocortex.execution.runners.process import command_argv
from neurocortex.execution.runners.sandbox import SandboxPolicy, SandboxRunner
from neurocortex.services import attachments, results, workers
from neurocortex.services.base import Services
from neurocortex.services.catalog import WorkerDefinition
from neurocortex.services.config_secrets import redact_input, redacted_names, scrub, secret_values

log = logging.getLogger(__name__)


# runners that start the worker's command on this machine: the plain process runner and the sandbox
LOCAL_RUNNERS = ("sandbox", "process")


class WorkerCannotRun(Exception):
    pass


def worker_environment(cacerts: str | None, config: dict[str, Any] | None = None) -> dict[str, str]:
    # the engine's own settings (secret key, database URL with its password) are no business of a worker
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROCORTEX_")}
    return env | network_environment(config or {}, cacerts)


def container_environment(cacerts: str | None, config: dict[str, Any]) -> dict[str, str]:
    """A container's environment: nothing of the server's, Cortex's JAVA_TOOL_OPTIONS, the proxy and CA."""
    return {"JAVA_TOOL_OPTIONS": "-Dfile.encoding=UTF8"} | network_environment(config, cacerts)


def policy_violation(job: dict[str, Any], config: dict[str, Any]) -> str | None:
    """The TLP/PAP limits of the worker's configuration, enforced before any worker code runs — also for
    workers that do not use cortexutils — with cortexutils' own messages."""
    limits = workers.policy_limits(config)
    for level in ("tlp", "pap"):
        if job[level] > limits[level]:
            return f"{level.upper()} is higher than allowed."
    return None


class Executor:
    def __init__(self, svc: Services, runners: dict[str, Runner]) -> None:
        self.svc = svc
        self.runners = runners
        # resolved once: a group that does not exist stops the server at start, not each job
        self._job_group = group_id(svc.settings.job_directory_group)

    async def execute(self, job: dict[str, Any]) -> None:
        try:
            await self._execute(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a job InProgress because of a bug of ours
            log.exception("job %s failed in the engine", job["id"])
            metrics.runner_error(None, "engine")
            await results.fail(self.svc, job, f"Internal error while running the job: {exc}")

    async def _execute(self, job: dict[str, Any]) -> None:
        svc = self.svc
        worker = await workers.by_id(svc, job["workerId"])
        if worker is None:
            await results.fail(svc, job, f"worker {job['workerId']} not found")
            return
        definition = svc.catalog.get(worker["type"], worker["workerDefinitionId"])
        configuration = workers.decrypt_configuration(svc, worker)
        config = build_config(definition.config if definition else {}, configuration)
        redacted = redacted_names(workers.configuration_items(svc, worker), config)
        hidden = secret_values(config, redacted)

        async def fail(message: str, input_document: dict | str | None = None) -> None:
            # a failed job's input and error message (the worker's own output) must not carry its secrets
            if isinstance(input_document, dict):
                input_document = orjson.dumps(redact_input(input_document, redacted)).decode()
            await results.fail(svc, job, scrub(message, hidden) or "", scrub(input_document, hidden))

        job_input = JobInput(
            job_id=job["id"],
            data_type=job["dataType"],
            tlp=job["tlp"],
            pap=job["pap"],
            message=job["message"],
            parameters=orjson.loads(job["parameters"]),
            config=config,
            data=orjson.loads(job["data"])
            if job["type"] == "responder" and job["data"] is not None
            else job["data"],
        )
        if job["attachment"]:
            path = await attachments.local_path(svc, job["attachment"]["id"])
            if path is None:
                await results.fail(
                    svc, job, f"attachment {job['attachment']['id']} is missing from the datastore"
                )
                return
            job_input.attachment_path = path
            job_input.attachment_name = job["attachment"].get("name")
            job_input.attachment_content_type = job["attachment"].get("contentType")

        violation = policy_violation(job, config)
        if violation:
            await fail(violation, _input_document(job_input))
            return

        # a few small files: written on the loop's thread (cheaper than a thread hop), unless a file is placed
        directory = JobDirectory.create(svc.settings.resolved_job_directory, job["id"], self._job_group)
        try:
            if job_input.attachment_path is None:
                document = directory.write_input(job_input)
            else:
                document = await asyncio.to_thread(directory.write_input, job_input)
            try:
                runner, spec = self._plan(worker, definition, directory, config)
            except WorkerCannotRun as exc:
                metrics.runner_error(None, "cannot_run")
                await fail(str(exc), document)
                return
            if isinstance(runner, SandboxRunner):
                outcome = await runner.run(spec, self._sandbox_policy(worker))
            else:
                outcome = await runner.run(spec)
            if outcome.timed_out:
                metrics.runner_error(runner.name, "timeout")
                minutes = spec.timeout / 60 if spec.timeout else 0
                message = (
                    f"Job timeout: the worker was still running after {minutes:g} minutes and was killed"
                )
                if outcome.output.strip():
                    message += f"\n{outcome.output}"
                await fail(message, document)
                return
            if outcome.error:
                metrics.runner_error(runner.name, "error")
                await fail(outcome.error, document)
                return
            size = directory.output_size()
            if not size:
                directory.write_failure(outcome.output or "no output")
            if size <= INLINE_OUTPUT_BYTES:
                output = directory.read_output(svc.settings.max_output_json)
            else:
                output = await asyncio.to_thread(directory.read_output, svc.settings.max_output_json)
            if not output.success:
                await fail(output.error_message or "", output.input)
                return
            artifacts = []
            for artifact in output.artifacts:
                if artifact["dataType"] == "file":
                    attachment = await results.store_file_artifact(svc, artifact)
                    if attachment is None:
                        continue
                    artifact = {
                        k: v for k, v in artifact.items() if k not in ("path", "filename", "contentType")
                    }
                    artifact["attachment"] = attachment
                artifacts.append(artifact)
            await results.succeed(svc, job, output.full, output.summary, output.operations, artifacts)
        finally:
            if not self._keep(job):
                if directory.is_small():
                    directory.remove()
                else:
                    await asyncio.to_thread(directory.remove)

    def _keep(self, job: dict[str, Any]) -> bool:
        if self.svc.settings.keep_job_folder:
            return True
        try:
            return orjson.loads(job["parameters"]).get("keepJobFolder") is True
        except (orjson.JSONDecodeError, AttributeError):
            return False

    def runner_for(self, worker: dict[str, Any], definition: WorkerDefinition | None) -> str | None:
        """The worker's own runner if it names one, else the first runner, in the configured order, that can
        run it (Cortex's choice, §4.2 step 3). The dispatcher asks before claiming a job, to respect each
        runner's concurrency limit."""
        if definition is not None and definition.runner:  # a definition only one runner can run
            own = self.runners.get(definition.runner)
            return definition.runner if own is not None and own.available() else None
        for name in [worker["runner"]] if worker.get("runner") else self.svc.settings.runners:
            runner = self.runners.get(name)
            if runner is None or not runner.available():
                continue
            if name in LOCAL_RUNNERS and _process_command(worker, definition)[1] is not None:
                return name
            if name == "docker" and _docker_image(worker, definition):
                return name
        return None

    def _plan(
        self,
        worker: dict[str, Any],
        definition: WorkerDefinition | None,
        directory: JobDirectory,
        config: dict[str, Any],
    ) -> tuple[Runner, RunSpec]:
        timeout_minutes = worker["jobTimeout"] if worker["jobTimeout"] else self.svc.settings.job_timeout
        cacerts = directory.cacerts
        name = self.runner_for(worker, definition)
        if name in LOCAL_RUNNERS:
            root, command = _process_command(worker, definition)
            try:
                argv = command_argv(root, command, self._python(definition), directory.path)
            except ValueError as exc:
                raise WorkerCannotRun(f"Worker cannot be run: {exc}") from None
            env = worker_environment(str(cacerts) if cacerts else None, config)
            spec = RunSpec(
                argv=argv, cwd=root, env=env, timeout=timeout_minutes * 60, job_directory=directory.path
            )
            return self.runners[name], spec
        if name == "docker":
            # the job directory is mounted at /job: the CA bundle is seen there
            ca_inside = f"{JOB_MOUNT}/input/cacerts" if cacerts else None
            spec = RunSpec(
                argv=[JOB_MOUNT], cwd=directory.path, env=container_environment(ca_inside, config),
                timeout=timeout_minutes * 60, job_directory=directory.path,
                image=_docker_image(worker, definition),
            )  # fmt: skip
            return self.runners[name], spec
        if name is not None:  # a runner that needs no command, only the job directory (misp-modules)
            spec = RunSpec(argv=[], cwd=directory.path, env={}, timeout=timeout_minutes * 60,
                           job_directory=directory.path)  # fmt: skip
            return self.runners[name], spec
        wanted = worker.get("runner")
        if wanted:
            reason = getattr(self.runners.get(wanted), "unavailable_reason", None) or "not available"
            raise WorkerCannotRun(f"Worker cannot be run: its runner {wanted} is unavailable ({reason})")
        if definition is None:
            raise WorkerCannotRun(
                f"Worker cannot be run: its definition {worker['workerDefinitionId']} is not in the catalog"
            )
        raise WorkerCannotRun(
            f"Worker cannot be run: no runner can run it ({self._needs(worker, definition)})"
        )

    def _needs(self, worker: dict[str, Any], definition: WorkerDefinition | None) -> str:
        """Why no runner fits: what the worker needs and what became of those runners here."""
        image = worker.get("dockerImage") or (definition.docker_image if definition else None)
        if _process_command(worker, definition)[1] is not None:
            needed, what = LOCAL_RUNNERS, "a command"
        elif image:
            # the runners that run images (docker, and kubernetes in Cortex)
            needed, what = ("docker", "kubernetes"), f"only the docker image {image}"
        else:
            return "it has neither a command nor a docker image"
        states = []
        for name in needed:
            runner = self.runners.get(name)
            if name not in self.svc.settings.runners:
                states.append(f"{name} is not in NEUROCORTEX_RUNNERS")
            elif runner is None:
                states.append(f"{name} is not part of this version")
            else:
                states.append(
                    f"{name} is unavailable: {getattr(runner, 'unavailable_reason', None) or 'down'}"
                )
        return f"it has {what}; {'; '.join(states)}"

    def _sandbox_policy(self, worker: dict[str, Any]) -> SandboxPolicy:
        """The server's sandbox policy with the worker's own overrides (a limit of 0 means none)."""
        policy = self.runners["sandbox"].default_policy
        overrides = worker.get("sandbox") or {}
        fields = {"network": "network", "memoryMb": "memory_mb", "cpuSeconds": "cpu_seconds",
                  "maxProcesses": "max_processes"}  # fmt: skip
        changes = {
            fields[key]: (value if key == "network" else value or None) for key, value in overrides.items()
        }
        return dataclasses.replace(policy, **changes)

    def _python(self, definition: WorkerDefinition | None) -> str:
        """The worker's own virtualenv (`neurocortex neurons install`), else the configured interpreter."""
        own = environment_python(self.svc.settings, definition) if definition else None
        return own or self.svc.settings.python or sys.executable


def _process_command(worker: dict[str, Any], definition: WorkerDefinition | None):
    """(catalog root, command relative to it): from the definition, or from the worker's stored absolute
    command when its definition left the catalog (an obsolete worker still runs, as in Cortex)."""
    if definition is not None and definition.command and definition.root:
        return definition.root, definition.command
    if worker["command"]:
        program = Path(worker["command"])
        root = program.parent.parent
        return root, str(program.relative_to(root))
    return None, None


def _docker_image(worker: dict[str, Any], definition: WorkerDefinition | None) -> str | None:
    """The worker's image (Cortex keeps it on the worker, refreshed from the definition on rescan)."""
    return worker.get("dockerImage") or (definition.docker_image if definition else None)


def _input_document(job_input: JobInput) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if job_input.attachment_path is not None:
        document |= {"filename": job_input.attachment_name, "contentType": job_input.attachment_content_type}
    else:
        document["data"] = job_input.data
    return document | {
        "dataType": job_input.data_type,
        "tlp": job_input.tlp,
        "pap": job_input.pap,
        "message": job_input.message,
        "parameters": job_input.parameters,
        "config": job_input.config,
    }
