"""Run a worker as a local process inside a bubblewrap sandbox (Debian's `bwrap`).

What the worker sees:

* the host's filesystem read-only, minus the `hidden` paths (the data directory, the secret key, ...), the
  folder holding the job directories, and a private /tmp (a size-limited tmpfs);
* its own job directory, read-write, at the same path, and the catalog root and its interpreter (a
  virtualenv anywhere) read-only, even when they live under one of the hidden or private places;
* private /dev, /proc, PID, IPC and UTS namespaces; a private network namespace with only a loopback
  interface when the policy turns the network off;
* no capabilities, no new privileges, no further user namespaces; memory (address space), CPU time and
  process-count limits (`prlimit`), and the wall time of RunSpec.timeout.

Who the worker runs as. As root, RLIMIT_NPROC is never enforced and "no capabilities" still leaves root the
owner of most of the system's files, so a server running as root starts the sandbox as root (to mount
whatever it needs, which an unprivileged bwrap cannot reach through directories like a 0700 /root) and
drops to uid/gid 65534 ("nobody") inside it. A second, unprivileged bwrap then gives the worker a user
namespace of its own: the process limit counts the processes of this sandbox only (not those of every
sandbox running as 65534 at the same time) and `--disable-userns` forbids nesting more. The job directory is
lent to that uid for the run (chown) and given back afterwards; files hard-linked from the datastore keep
their owner (they are world-readable and must stay read-only). A server running as another user runs a
single unprivileged bwrap: the worker keeps the server's uid inside its own user namespace.

Directories the worker's uid cannot traverse (e.g. /root) on the way to the catalog, the interpreter or the
job directory are replaced by an empty tmpfs in which only the needed path is mounted back.

What it does not do:

* The rest of the system stays readable with the worker uid's rights: world-readable files anywhere (/etc,
  /home, logs) are visible. Every place holding secrets must be in `hidden`; a hidden file is replaced by a
  device node that cannot be opened (its name stays visible), a hidden directory by an empty one.
* With the network on, the worker shares the host's network namespace: services listening on 127.0.0.1
  (the API, a local PostgreSQL or Redis) and abstract Unix sockets are reachable; Unix sockets under /run
  (e.g. clamd's) are too, subject to their file permissions.
* The job directory is on the host's disk, without a quota; /tmp is bounded by the policy, /dev/shm by
  SHM_BYTES.
* The memory limit bounds address space, not resident memory: workers reserving large virtual ranges (JVM,
  some Go programs) need a higher limit or none. The process limit counts threads too.
* Only the catalog root and argv[0]'s installation are mounted back from hidden or private places; a
  shebang interpreter living there is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from neurocortex.execution.runners.base import RunOutcome, RunSpec
from neurocortex.execution.runners.process import run_process

SANDBOX_UID = 65534
SANDBOX_GID = 65534

TRIAL_TIMEOUT = 10.0
"""Seconds given to the trial sandbox that tells whether the runner is available."""

SHM_BYTES = 64 * 1024 * 1024
"""Size of the private /dev/shm (Docker's default)."""

_MAX_DEPTH = 64
"""How deep the job directory is walked when it is given back; deeper trees made by a worker stay its own."""

_EXEC_FAILURE = re.compile(r"(?:prlimit|setpriv|bwrap): (?:failed to execute |execvp )(.*)")


@dataclass(frozen=True)
class SandboxPolicy:
    network: bool = True
    """False: a private network namespace with only loopback (file analyzers on malware)."""
    memory_mb: int | None = 2048
    """Address-space limit (RLIMIT_AS) in MiB; a Python worker over it gets MemoryError."""
    cpu_seconds: int | None = None
    """CPU-time limit (RLIMIT_CPU): SIGXCPU when reached, SIGKILL one second later."""
    max_processes: int | None = 256
    """Process limit (RLIMIT_NPROC) of the sandbox; threads count too."""
    tmp_mb: int | None = 1024
    """Size of the private /tmp (a tmpfs, i.e. memory not counted in memory_mb)."""
    # Wall time comes from RunSpec.timeout, as for the process runner.


class SandboxRunner:
    name = "sandbox"

    def __init__(
        self,
        max_captured_output: int,
        hidden: list[Path],
        bwrap: str | None = None,
        *,
        default_policy: SandboxPolicy | None = None,
    ) -> None:
        self.max_captured_output = max_captured_output
        self.hidden = [Path(path) for path in hidden]
        self.bwrap = bwrap if bwrap is not None else shutil.which("bwrap")
        self.default_policy = default_policy or SandboxPolicy()
        self.privileged = os.geteuid() == 0
        """Root: bwrap mounts as root and the worker drops to SANDBOX_UID inside."""
        self.uid = SANDBOX_UID if self.privileged else os.getuid()
        self.gid = SANDBOX_GID if self.privileged else os.getgid()
        self._prlimit = shutil.which("prlimit")
        self._setpriv = shutil.which("setpriv")
        self.unavailable_reason: str | None = None
        self._available: bool | None = None

    # -- availability -------------------------------------------------------------------------------------

    def available(self) -> bool:
        """bwrap is there and a trial sandbox actually starts (checked once)."""
        if self._available is None:
            self.unavailable_reason = self._unavailability()
            self._available = self.unavailable_reason is None
        return self._available

    def _unavailability(self) -> str | None:
        if not self.bwrap:
            return "bwrap is not on the PATH (install Debian's bubblewrap package)"
        if not os.path.isfile(self.bwrap) or not os.access(self.bwrap, os.X_OK):
            return f"{self.bwrap} is not an executable file (install Debian's bubblewrap package)"
        if self._prlimit is None:
            return "prlimit (util-linux) is not on the PATH"
        if self.privileged and self._setpriv is None:
            return "setpriv (util-linux) is not on the PATH"
        true = shutil.which("true") or "/bin/true"
        trial = RunSpec([true], Path("/"), {}, TRIAL_TIMEOUT)
        argv = self.command_line(trial, SandboxPolicy(network=False), None)
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={},
                timeout=TRIAL_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"a trial sandbox did not start: {exc}"
        if result.returncode != 0:
            output = result.stdout.decode("utf-8", errors="replace").strip()[:500]
            return f"a trial sandbox did not start (exit code {result.returncode}): {output}"
        return None

    # -- running ------------------------------------------------------------------------------------------

    async def run(self, spec: RunSpec, policy: SandboxPolicy | None = None) -> RunOutcome:
        policy = policy or self.default_policy
        if not self.available():
            return _execution_error(f"the sandbox runner is unavailable: {self.unavailable_reason}")
        job = job_directory_of(spec)
        if job is not None and (job == Path("/") or _inside(Path(os.path.realpath(spec.cwd)), job)):
            # It would be lent to the worker, writable, with all it holds.
            return _execution_error(f"{job} cannot be the job directory: it holds the catalog")
        argv = self.command_line(spec, policy, job)
        owner = None
        if job is not None and self.privileged:
            try:
                # In line, not in a thread: a handful of files the engine just wrote, and no cancellation
                # can fall between lending and giving back.
                # The group stays: a job directory readable by a helper daemon's group stays so.
                owner = _lend(job, self.uid, -1)
            except OSError as exc:
                return _execution_error(f"cannot lend the job directory to the sandbox user: {exc}")
        try:
            outcome = await run_process(argv, spec.cwd, spec.env, spec.timeout, self.max_captured_output)
        finally:
            if owner is not None:
                # The sandbox is gone (its PID namespace died with it); the walk never follows a link, and it
                # runs in a thread because the worker decided how many files there are.
                await asyncio.shield(asyncio.to_thread(_give_back, job, self.uid, owner))
        return self._explain(outcome, policy)

    def command_line(self, spec: RunSpec, policy: SandboxPolicy, job: Path | None) -> list[str]:
        """The bwrap command line that runs spec.argv in the sandbox (job: the writable job directory)."""
        assert self.bwrap is not None
        cwd = os.path.realpath(spec.cwd)
        argv = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc"]
        argv += ["--unshare-uts", "--unshare-cgroup-try"]
        if not policy.network:
            argv.append("--unshare-net")
        argv += self._mounts(spec, policy, job)
        argv += ["--chdir", cwd]
        if self.privileged:
            # Only what setpriv needs to drop to the sandbox user; it loses them with the uid change, and the
            # inner bwrap empties the bounding set.
            argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]
            argv += [self._setpriv or "setpriv", "--reuid", str(self.uid), "--regid", str(self.gid)]
            argv += ["--clear-groups", "--"]
            argv += [self.bwrap, "--unshare-user", "--disable-userns", "--bind", "/", "/"]
            argv += ["--dev-bind", "/dev", "/dev", "--chdir", cwd, "--"]
        else:
            argv += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL", "--"]
        argv += self._limits(policy)
        return argv + list(spec.argv)

    def _limits(self, policy: SandboxPolicy) -> list[str]:
        limits = []
        if policy.memory_mb is not None:
            limits.append(f"--as={policy.memory_mb * 1024 * 1024}")
        if policy.cpu_seconds is not None:
            # A soft limit below the hard one: SIGXCPU first, which tells the CPU limit from other kills.
            limits.append(f"--cpu={policy.cpu_seconds}:{policy.cpu_seconds + 1}")
        if policy.max_processes is not None:
            limits.append(f"--nproc={policy.max_processes}")
        if not limits:
            return []
        return [self._prlimit or "prlimit", *limits, "--"]

    # -- mounts -------------------------------------------------------------------------------------------

    def _mounts(self, spec: RunSpec, policy: SandboxPolicy, job: Path | None) -> list[str]:
        masks: set[Path] = {Path("/tmp")}
        for path in self.hidden:
            real = Path(os.path.realpath(path))
            if _lstat(real) is not None:
                masks.add(real)
        if job is not None:
            masks.add(job.parent)  # the other jobs' folders

        hidden_or_jobs = set(masks) - {Path("/tmp")}
        exposed: set[Path] = set()
        for path in self._needed(spec):
            # Never mount back a hidden path itself, nor anything of another job (e.g. an "interpreter"
            # that a hostile definition points into the jobs folder).
            if path in hidden_or_jobs or (job is not None and _inside(path, job.parent)):
                continue
            exposed.add(path)
        for path in [*exposed, *([job] if job is not None else [])]:
            closed = self._first_closed_ancestor(path)
            if closed is not None:
                masks.add(closed)
        masks.discard(Path("/"))
        if job is not None:
            masks.discard(job)

        # Each mount is laid over what its ancestors left: an outer path before an inner one.
        planned = {path: "mask" for path in masks} | {path: "expose" for path in exposed if path not in masks}
        if job is not None:
            planned[job] = "job"
        argv = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        # bwrap's /dev/shm is closed to the sandbox user; POSIX semaphores (multiprocessing locks) need it.
        argv += ["--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
        emitted: dict[Path, str] = {}
        made: set[Path] = set()
        remount: list[Path] = []
        for path in sorted(planned, key=lambda p: (len(p.parts), str(p))):
            kind = planned[path]
            enclosing = _nearest(path, emitted)
            under_mask = enclosing is not None and emitted[enclosing] == "mask"
            if kind == "mask":
                if under_mask:
                    continue  # inside an empty tmpfs already
                emitted[path] = kind
                if path == Path("/tmp"):
                    argv += ["--perms", "1777"]
                    if policy.tmp_mb is not None:
                        argv += ["--size", str(policy.tmp_mb * 1024 * 1024)]
                    argv += ["--tmpfs", "/tmp"]
                    continue
                info = _lstat(path)
                if info is not None and not stat.S_ISDIR(info.st_mode):
                    # A file: a device node on a nodev mount, which cannot be opened.
                    argv += ["--ro-bind", "/dev/null", str(path)]
                    continue
                argv += ["--perms", "0755", "--tmpfs", str(path)]
                remount.append(path)
                continue
            if kind == "expose" and not under_mask:
                continue  # visible as it is
            emitted[path] = kind
            if under_mask:
                # bwrap would make the missing parents 0700, closed to the sandbox user.
                assert enclosing is not None
                for parent in reversed(path.parents):
                    if _inside(parent, enclosing) and parent != enclosing and parent not in made:
                        argv += ["--perms", "0755", "--dir", str(parent)]
                        made.add(parent)
            argv += ["--bind" if kind == "job" else "--ro-bind", str(path), str(path)]
        for path in remount:
            argv += ["--remount-ro", str(path)]
        return argv

    def _needed(self, spec: RunSpec) -> set[Path]:
        """What must stay readable: the catalog root, and where the interpreter lives (a venv and its base)."""
        needed = {Path(os.path.realpath(spec.cwd))}
        program = spec.argv[0] if spec.argv else ""
        if not os.path.isabs(program) or not os.path.isfile(program):
            return needed
        for path in (Path(os.path.abspath(program)), Path(os.path.realpath(program))):
            installation = _installation(path)
            needed.add(Path(os.path.realpath(installation)))
            home = _venv_home(installation)
            if home is not None:
                needed.add(Path(os.path.realpath(_installation(home / "python"))))
        return needed

    def _first_closed_ancestor(self, path: Path) -> Path | None:
        """The outermost directory above `path` that the sandbox user cannot traverse, if any."""
        current = Path("/")
        for part in path.parts[1:-1]:
            current = current / part
            info = _lstat(current)
            if info is None or stat.S_ISLNK(info.st_mode):
                return None
            if not self._can_traverse(current, info):
                return current
        return None

    def _can_traverse(self, path: Path, info: os.stat_result) -> bool:
        if not self.privileged:
            return os.access(path, os.X_OK)
        if info.st_uid == self.uid:
            return bool(info.st_mode & stat.S_IXUSR)
        if info.st_gid == self.gid:
            return bool(info.st_mode & stat.S_IXGRP)
        return bool(info.st_mode & stat.S_IXOTH)

    # -- outcome ------------------------------------------------------------------------------------------

    def _explain(self, outcome: RunOutcome, policy: SandboxPolicy) -> RunOutcome:
        if outcome.error is not None or outcome.timed_out or outcome.exit_code in (0, None):
            return outcome
        output = outcome.output
        code = outcome.exit_code
        failure = _EXEC_FAILURE.match(output.strip())
        if failure and code in (1, 126, 127) and "\n" not in output.strip():
            message = f"Process execution error: {failure.group(1)}"
            if "Permission denied" in message and self.privileged:
                message += f" (the sandbox runs the worker as uid {self.uid}: it must be able to read it)"
            return RunOutcome(exit_code=None, timed_out=False, output="", error=message)
        if code == 1 and output.startswith("bwrap: "):
            return RunOutcome(
                exit_code=None, timed_out=False, output="", error=f"Process execution error: {output.strip()}"
            )
        notes = _limit_notes(code, output, policy)
        if not notes:
            return outcome
        text = "\n".join(f"[sandbox] {note}" for note in notes)
        joined = f"{output}\n{text}" if output and not output.endswith("\n") else output + text
        return RunOutcome(exit_code=code, timed_out=False, output=joined)


def job_directory_of(spec: RunSpec) -> Path | None:
    """spec.job_directory, else the last argument when it names a job directory (command_argv puts it there:
    a directory holding input/ and output/)."""
    if spec.job_directory is not None:
        job = Path(os.path.realpath(spec.job_directory))
    elif len(spec.argv) > 1 and os.path.isabs(spec.argv[-1]):
        job = Path(os.path.realpath(spec.argv[-1]))
        if not (job / "input").is_dir() or not (job / "output").is_dir():
            return None
    else:
        return None
    return job


def _limit_notes(code: int, output: str, policy: SandboxPolicy) -> list[str]:
    notes = []
    if 128 < code <= 128 + 64:
        number = code - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if number == signal.SIGXCPU and policy.cpu_seconds is not None:
            notes.append(f"killed by SIGXCPU: CPU time limit of {policy.cpu_seconds} s")
        elif number == signal.SIGKILL and policy.cpu_seconds is not None:
            notes.append(f"killed by SIGKILL (past its CPU time limit of {policy.cpu_seconds} s, or killed)")
        else:
            notes.append(f"killed by {name}")
    lowered = output.lower()
    if policy.memory_mb is not None and any(
        marker in lowered
        for marker in ("memoryerror", "cannot allocate memory", "bad_alloc", "out of memory")
    ):
        notes.append(f"memory limit of {policy.memory_mb} MB (address space) reached")
    if policy.max_processes is not None and any(
        marker in lowered
        for marker in ("resource temporarily unavailable", "cannot fork", "can't start new thread")
    ):
        notes.append(f"process limit of {policy.max_processes} processes and threads reached")
    return notes


def _execution_error(message: str) -> RunOutcome:
    return RunOutcome(exit_code=None, timed_out=False, output="", error=f"Process execution error: {message}")


# -- paths ------------------------------------------------------------------------------------------------


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _inside(path: Path, ancestor: Path) -> bool:
    return path == ancestor or ancestor in path.parents


def _nearest(path: Path, mounts: dict[Path, str]) -> Path | None:
    """The deepest of `mounts` strictly above `path`."""
    for parent in path.parents:
        if parent in mounts:
            return parent
    return None


def _installation(program: Path) -> Path:
    """Where a program's installation starts: the prefix of `<prefix>/bin/<program>`, else its folder."""
    folder = program.parent
    return folder.parent if folder.name == "bin" and folder.parent != folder else folder


def _venv_home(prefix: Path) -> Path | None:
    """The `home` (base interpreter's folder) of a virtualenv's pyvenv.cfg."""
    try:
        with open(prefix / "pyvenv.cfg", encoding="utf-8", errors="replace") as config:
            for line in config:
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    return Path(value.strip())
    except OSError:
        pass
    return None


# -- lending the job directory ----------------------------------------------------------------------------


def _lend(job: Path, uid: int, gid: int) -> tuple[int, int]:
    """Give the job directory to the sandbox user; returns its owner, for _give_back."""
    info = os.lstat(job)
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(job))
    # A file linked from elsewhere (an attachment hard-linked from the datastore) keeps its owner: owning it
    # would let the worker make it writable and change the datastore's copy.
    _chown_tree(job, uid, gid, lambda entry: stat.S_ISDIR(entry.st_mode) or entry.st_nlink == 1)
    return info.st_uid, info.st_gid


def _give_back(job: Path, sandbox_uid: int, owner: tuple[int, int]) -> None:
    """Return what the sandbox user owns in the job directory to its owner, never following a link."""
    with contextlib.suppress(OSError):
        _chown_tree(job, owner[0], owner[1], lambda entry: entry.st_uid == sandbox_uid)


def _chown_tree(top: Path, uid: int, gid: int, eligible) -> None:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(top, flags)
    try:
        if eligible(os.fstat(fd)):
            os.fchown(fd, uid, gid)
        _chown_entries(fd, uid, gid, eligible, flags, 1)
    finally:
        os.close(fd)


def _chown_entries(dir_fd: int, uid: int, gid: int, eligible, flags: int, depth: int) -> None:
    with os.scandir(dir_fd) as entries:
        names = [(entry.name, entry.stat(follow_symlinks=False)) for entry in entries]
    for name, info in names:
        if stat.S_ISDIR(info.st_mode) and depth < _MAX_DEPTH:
            with contextlib.suppress(OSError):
                child = os.open(name, flags, dir_fd=dir_fd)
                try:
                    _chown_entries(child, uid, gid, eligible, flags, depth + 1)
                finally:
                    os.close(child)
        if eligible(info):
            with contextlib.suppress(OSError):
                os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
