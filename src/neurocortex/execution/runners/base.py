"""What every runner takes and gives back; the Cortex-specific job directory handling is in jobdir.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass
class RunSpec:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    """The whole environment of the worker; nothing is inherited."""
    timeout: float | None
    """Seconds; None for no limit."""
    job_directory: Path | None = None
    """The job directory (the last argument of a local worker): the one place an isolating runner lets the
    worker write. None: the sandbox runner takes the last argument when it names a directory holding input/
    and output/."""
    image: str | None = None
    """The container image (docker runner); argv is then the container's command."""


@dataclass
class RunOutcome:
    exit_code: int | None
    """Returned for the record only: like Cortex, the engine judges a job by output.json, not this."""
    timed_out: bool
    output: str
    """The worker's stdout and stderr, interleaved, bounded (head and tail kept)."""
    error: str | None = None
    """Set when the worker could not be started: "Process execution error: ..."."""


class Runner(Protocol):
    name: str

    def available(self) -> bool: ...

    async def run(self, spec: RunSpec) -> RunOutcome: ...
