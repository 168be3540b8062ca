"""Runners start a worker on a prepared job directory and return once it has exited."""

from neurocortex.execution.runners.base import Runner, RunOutcome, RunSpec
from neurocortex.execution.runners.process import ProcessRunner, command_argv

__all__ = ["ProcessRunner", "RunOutcome", "RunSpec", "Runner", "command_argv"]
