"""The misp-modules runner: a job of a `MISP_<module>` analyzer is a `POST /query` to a misp-modules server.

Like every runner it takes a prepared job directory and leaves `output/output.json` behind, in the format
cortexutils writes, so that the executor collects it as any other worker's: the module's answer is the
report's `full`, its attributes become artifacts (files written into output/), and a module error, a
timeout or an unreachable server becomes a Failure with the module's (or the connection's) message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx

from neurocortex import zipcrypto
from neurocortex.execution.runners.base import RunOutcome, RunSpec
from neurocortex.misp import modules

log = logging.getLogger(__name__)

MAX_FILE_ARTIFACT = 256 * 1024**2
# a module reports its own timeout (`{"error": "Timeout."}`) when it is given the job's: wait a bit longer
GRACE_SECONDS = 15.0


class MispModulesRunner:
    name = modules.RUNNER

    def __init__(self, max_answer: int = 64 * 1024**2) -> None:
        self.max_answer = max_answer

    def available(self) -> bool:
        return True

    async def run(self, spec: RunSpec) -> RunOutcome:
        directory = Path(spec.job_directory or spec.cwd)
        document = json.loads((directory / "input" / "input.json").read_bytes())
        settings = document["config"][modules.CONFIG_KEY]
        attachment = None
        if document.get("file"):
            attachment = await asyncio.to_thread((directory / "input" / document["file"]).read_bytes)
        try:
            body = await asyncio.to_thread(modules.build_query, settings, document, attachment, spec.timeout)
        except (modules.CannotQuery, zipcrypto.ZipError, RuntimeError) as exc:
            _write(directory, {"success": False, "errorMessage": str(exc)})
            return RunOutcome(exit_code=None, timed_out=False, output="")
        wait = None if spec.timeout is None else spec.timeout + GRACE_SECONDS
        unreachable = []
        for server in settings["servers"]:
            try:
                answer = await self._query(server, body, wait)
            except httpx.TimeoutException:
                message = f"misp-modules server {server} did not answer within {wait:g} seconds"
                _write(directory, {"success": False, "errorMessage": message})
                return RunOutcome(exit_code=None, timed_out=False, output="")
            except httpx.TransportError as exc:  # down: the next server offering the module, if any
                unreachable.append(f"{server} ({type(exc).__name__}: {exc})")
                continue
            except ValueError as exc:
                answer = {"error": f"misp-modules server {server} gave an unreadable answer: {exc}"}
            await asyncio.to_thread(_write_answer, directory, settings["module"], answer)
            return RunOutcome(exit_code=0, timed_out=False, output="")
        message = f"misp-modules server unreachable: {', '.join(unreachable)}"
        _write(directory, {"success": False, "errorMessage": message})
        return RunOutcome(exit_code=None, timed_out=False, output="")

    async def _query(self, server: str, body: dict[str, Any], wait: float | None) -> dict[str, Any]:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(wait, connect=10.0)) as client,
            client.stream("POST", server.rstrip("/") + "/query", json=body) as response,
        ):
            content = bytearray()
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) > self.max_answer:
                    raise ValueError(f"larger than {self.max_answer} bytes")
        if response.status_code >= 400:
            raise ValueError(f"HTTP {response.status_code}: {bytes(content[:300]).decode(errors='replace')}")
        try:
            answer = json.loads(content)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(answer, dict):
            raise ValueError("not a JSON object")
        return answer


def _write_answer(directory: Path, module: str, answer: dict[str, Any]) -> None:
    error = answer.get("error") or answer.get("errors")
    if error or "results" not in answer:
        message = error if isinstance(error, str) else json.dumps(error or answer)
        _write(directory, {"success": False, "errorMessage": f"{module}: {message}"})
        return
    summary, artifacts = modules.report(module, answer)
    for index, artifact in enumerate(artifacts):
        if "content" in artifact:
            artifacts[index] = _file_artifact(directory, index, artifact)
    output = {"success": True, "full": answer, "summary": summary, "artifacts": artifacts, "operations": []}
    _write(directory, output)


def _file_artifact(directory: Path, index: int, artifact: dict[str, Any]) -> dict[str, Any]:
    """A returned attachment or malware sample, written into output/ (a sample unzipped first); what cannot
    be decoded stays a data artifact holding its file name."""
    content_b64 = artifact.pop("content")
    try:
        content = base64.b64decode(content_b64, validate=True)
        if modules.TYPE_TAG + "malware-sample" in artifact["tags"]:
            _, content = zipcrypto.first_file(content, modules.SAMPLE_PASSWORD, MAX_FILE_ARTIFACT)
    except (binascii.Error, ValueError) as exc:
        log.warning("file artifact %s kept as a file name: %s", artifact["filename"], exc)
        return {**artifact, "dataType": "filename", "data": artifact.pop("filename")}
    name = f"artifact-{index}-" + re.sub(r"[^A-Za-z0-9_.-]", "_", artifact["filename"])[:100]
    (directory / "output" / name).write_bytes(content)
    return {**artifact, "file": name}


def _write(directory: Path, output: dict[str, Any]) -> None:
    text = json.dumps(output, ensure_ascii=False, default=str)
    (directory / "output" / "output.json").write_text(text, encoding="utf-8")
