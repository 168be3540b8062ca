"""Run a worker as a local process: `<program> <job directory>`, working directory = the catalog root."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

from neurocortex.execution.runners.base import RunOutcome, RunSpec

_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")

# Workers die with the server: a server killed with -9 must not leave analyzers running unattended.
_SETPRIV = shutil.which("setpriv")

DRAIN_GRACE = 2.0
"""Seconds to wait, once the worker is gone, for the end of its output. A grandchild that escaped the
process group (setsid) may hold the pipe open forever; the job must not wait for it."""


def command_argv(root: Path, command: str, python: str, job_path: Path) -> list[str]:
    """The argv that runs a definition's `command` (relative to the catalog root) on a job directory.

    `.py` scripts run with `python` (the worker's virtualenv or the server's interpreter), so that the 15
    community scripts lacking their exec bit run, and so does a script whose shebang names an interpreter
    without cortexutils. Raises ValueError when the command cannot be run or leaves the root.
    """
    tokens = shlex.split(command)
    if not tokens:
        raise ValueError("The worker has an empty command")
    root = Path(root).resolve()
    job = str(Path(job_path).absolute())
    if len(tokens) == 1:
        script = _file_inside(root, tokens[0], command)
        return [*_script_argv(script, python, command), job]

    # "python3 ClusterHawk/ClusterHawk.py": an interpreter followed by arguments, some naming files.
    interpreter, *arguments = tokens
    argv = [_interpreter(root, interpreter, python, command)]
    names_a_file = False
    for argument in arguments:
        candidate = (root / argument).resolve()
        inside = candidate.is_relative_to(root)
        if not argument.startswith("-") and inside and candidate.is_file():
            argv.append(str(candidate))
            names_a_file = True
        elif ("/" in argument or argument == "..") and not inside:
            raise ValueError(f"Command {command!r} points outside {root}")
        else:
            argv.append(argument)
    if not names_a_file:
        raise ValueError(f"Command {command!r} names no file inside {root}")
    return [*argv, job]


def _file_inside(root: Path, relative: str, command: str) -> Path:
    # resolve() also follows symlinks, so a link inside the root pointing elsewhere is refused too.
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"Command {command!r} points outside {root}")
    if not path.is_file():
        raise ValueError(f"Command {command!r}: {path} does not exist")
    return path


def _script_argv(script: Path, python: str, command: str) -> list[str]:
    if script.suffix == ".py":
        return [python, str(script)]
    if os.access(script, os.X_OK):
        return [str(script)]
    with open(script, "rb") as file:
        first_line = file.readline(512)
    if first_line.startswith(b"#!"):
        # As the kernel reads it: the interpreter, then at most one argument (the rest of the line).
        shebang = first_line[2:].decode("utf-8", errors="replace").strip().split(None, 1)
        if shebang:
            return [*shebang, str(script)]
    raise ValueError(f"Command {command!r}: {script} is not executable")


def _interpreter(root: Path, name: str, python: str, command: str) -> str:
    if _PYTHON.fullmatch(name):
        return python
    if os.path.isabs(name):
        return name
    if "/" in name:
        return str(_file_inside(root, name, command))
    found = shutil.which(name)
    if found is None:
        raise ValueError(f"Command {command!r}: {name} is not on the PATH")
    return found


class ProcessRunner:
    name = "process"

    def __init__(self, max_captured_output: int) -> None:
        self.max_captured_output = max_captured_output

    def available(self) -> bool:
        return True

    async def run(self, spec: RunSpec) -> RunOutcome:
        return await run_process(spec.argv, spec.cwd, spec.env, spec.timeout, self.max_captured_output)


async def run_process(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float | None, max_captured_output: int
) -> RunOutcome:
    """Start `argv` and return once it has exited, capturing its output; the machinery every local runner
    shares (the sandbox runner passes a bwrap command line): vfork spawn, own process group, death with the
    server, exit watch without a thread, bounded capture, group kill on timeout or cancellation."""
    loop = asyncio.get_running_loop()
    capture = _OutputCapture(max_captured_output, loop)
    # One pipe for stdout and stderr: the output interleaves as the worker wrote it.
    read_fd, write_fd = os.pipe()
    try:
        try:
            # subprocess.Popen starts the worker with vfork(): unlike uvloop's spawn, it does not copy
            # the server's memory (~10 ms per job for a large server). It runs on the event loop's
            # thread on purpose: --pdeathsig fires when the thread that started the child ends.
            process = subprocess.Popen(
                _with_parent_death_signal(argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                # Its own process group, so that the worker and everything it spawned die together.
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        os.close(read_fd)
        return RunOutcome(exit_code=None, timed_out=False, output="", error=f"Process execution error: {exc}")

    exit_watch = _ExitWatch(process, loop)
    timed_out = False
    # The pipe is read with add_reader on a descriptor we own and close once. uvloop's connect_read_pipe
    # closes the descriptor in libuv and then again through the file object (MagicStack/uvloop#763): under
    # load the number is reused in between, and another job's files or pipes get closed.
    os.set_blocking(read_fd, False)
    loop.add_reader(read_fd, capture.read_from, read_fd, loop)
    try:
        try:
            await asyncio.wait_for(asyncio.shield(exit_watch.exited), timeout)
        except TimeoutError:
            timed_out = True
    finally:
        # On a timeout, on cancellation, and after a normal exit too: a grandchild left running
        # would outlive the job, keep the pipe open and go on using the job directory.
        _kill_group(process.pid)
        await exit_watch.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(capture.closed), DRAIN_GRACE)
        loop.remove_reader(read_fd)
        os.close(read_fd)
    output = capture.text()
    if process.returncode == 127 and output.startswith("setpriv: failed to execute"):
        error = f"Process execution error: {output.removeprefix('setpriv: ').strip()}"
        return RunOutcome(exit_code=None, timed_out=False, output="", error=error)
    return RunOutcome(exit_code=process.returncode, timed_out=timed_out, output=output)


class _ExitWatch:
    """Resolves `exited` when the process ends, without a thread: the event loop watches a pidfd."""

    POLL_SECONDS = 0.05  # only where pidfd_open is missing (Linux < 5.3)

    def __init__(self, process: subprocess.Popen, loop: asyncio.AbstractEventLoop) -> None:
        self.process = process
        self.loop = loop
        self.exited: asyncio.Future[None] = loop.create_future()
        try:
            self.pidfd: int | None = os.pidfd_open(process.pid)
        except (AttributeError, OSError):
            self.pidfd = None
            self._poller = loop.create_task(self._poll())
        else:
            loop.add_reader(self.pidfd, self._mark)

    def _mark(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    async def _poll(self) -> None:
        while self.process.poll() is None:
            await asyncio.sleep(self.POLL_SECONDS)
        self._mark()

    async def close(self) -> None:
        """Wait for the end (the caller has killed the group), then reap the process — also when cancelled."""
        try:
            await asyncio.shield(self.exited)
        finally:
            if self.pidfd is not None:
                self.loop.remove_reader(self.pidfd)
                os.close(self.pidfd)
            self.process.wait()  # killed already: returns at once


def _with_parent_death_signal(argv: list[str]) -> list[str]:
    if _SETPRIV is None:
        return argv
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]


def _kill_group(pgid: int) -> None:
    # The group outlives its leader while members remain, and Linux does not reuse the number meanwhile.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class _OutputCapture(asyncio.Protocol):
    """Keeps the first and the last bytes of a stream of any length in bounded memory."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.head_limit = max(limit, 0) // 2
        self.tail_limit = max(limit, 0) - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.closed: asyncio.Future[None] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data or self.tail_limit == 0:
            return
        if len(data) >= self.tail_limit:
            self.tail = bytearray(data[-self.tail_limit :])
        else:
            self.tail += data
            # Trim lazily, so that small writes do not each move the whole tail.
            if len(self.tail) > 2 * self.tail_limit:
                del self.tail[: -self.tail_limit]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def read_from(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        """The add_reader callback: what the pipe holds now; at its end, stop watching it."""
        try:
            data = os.read(fd, 256 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self.data_received(data)
        else:
            loop.remove_reader(fd)
            self.connection_lost(None)

    def text(self) -> str:
        tail = self.tail[-self.tail_limit :] if self.tail_limit else b""
        omitted = self.total - len(self.head) - len(tail)
        head_text = self.head.decode("utf-8", errors="replace")
        tail_text = bytes(tail).decode("utf-8", errors="replace")
        if omitted > 0:
            return f"{head_text}\n[... {omitted} bytes omitted ...]\n{tail_text}"
        return head_text + tail_text
