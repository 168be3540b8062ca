"""Run bundled neurons the way the engine does: a real job directory and a subprocess per job."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NEURONS = Path(__file__).resolve().parents[2] / "neurons"
ANALYZERS = NEURONS / "analyzers"
RESPONDERS = NEURONS / "responders"

# What Cortex puts in config besides the worker's own items (worker-protocol.md §1 and §2).
ENGINE_CONFIG = {
    "check_tlp": True,
    "max_tlp": 2,
    "check_pap": False,
    "max_pap": 2,
    "auto_extract_artifacts": False,
    "proxy_http": None,
    "proxy_https": None,
    "cacerts": None,
    "jobTimeout": 30,
    "jobCache": 10,
}


class Job:
    def __init__(self, directory: Path, root: Path, command: str):
        self.directory = directory
        self.root = root
        self.command = command
        self.process: subprocess.CompletedProcess | None = None

    @property
    def output_dir(self) -> Path:
        return self.directory / "output"

    def run(self, env: dict | None = None, timeout: float = 60) -> dict:
        """Run the neuron exactly as the process runner does and return output/output.json."""
        self.process = subprocess.run(
            [sys.executable, str(self.root / self.command), str(self.directory)],
            cwd=self.root,
            env=env if env is not None else clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        output = self.output_dir / "output.json"
        assert output.is_file(), f"no output.json; stderr:\n{self.process.stderr}"
        return json.loads(output.read_text(encoding="utf-8"))


def clean_env() -> dict:
    """The test process's environment without proxies, so that results do not depend on the machine."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def definition(root: Path, flavor: str) -> dict:
    matches = [p for p in root.glob("*/*.json") if json.loads(p.read_text())["name"] == flavor]
    assert len(matches) == 1, f"flavor {flavor} not found exactly once"
    return json.loads(matches[0].read_text())


@pytest.fixture
def make_job(tmp_path):
    """make_job(flavor, dataType, data=..., file_bytes=..., filename=..., config={...}) -> Job."""
    counter = iter(range(1_000_000))

    def factory(
        flavor: str,
        data_type: str,
        data=None,
        *,
        file_bytes: bytes | None = None,
        filename: str | None = None,
        content_type: str = "application/octet-stream",
        config: dict | None = None,
        tlp: int = 2,
        pap: int = 2,
        message: str = "",
        parameters: dict | None = None,
        responder: bool = False,
    ) -> Job:
        root = RESPONDERS if responder else ANALYZERS
        worker = definition(root, flavor)
        directory = tmp_path / f"cortex-job-{next(counter)}"
        (directory / "input").mkdir(parents=True)
        (directory / "output").mkdir()
        merged = dict(worker.get("config", {}))
        merged.update(ENGINE_CONFIG)
        for item in worker.get("configurationItems", []):
            merged[item["name"]] = item.get("defaultValue")
        merged.update(config or {})
        document = {
            "dataType": data_type,
            "tlp": tlp,
            "pap": pap,
            "message": message,
            "parameters": parameters or {},
            "config": merged,
        }
        if file_bytes is not None:
            (directory / "input" / "attachment4711").write_bytes(file_bytes)
            document.update({"file": "attachment4711", "filename": filename, "contentType": content_type})
        else:
            document["data"] = data
        (directory / "input" / "input.json").write_text(json.dumps(document), encoding="utf-8")
        return Job(directory, root, worker["command"])

    return factory


def taxonomies(report: dict) -> dict[str, tuple[str, object]]:
    """{predicate: (level, value)} of an analyzer report's summary."""
    return {t["predicate"]: (t["level"], t["value"]) for t in report["summary"]["taxonomies"]}


def artifact_set(report: dict) -> set[tuple[str, str]]:
    return {(a["dataType"], a["data"]) for a in report["artifacts"] if a["dataType"] != "file"}
