"""Per-worker virtualenvs: one per worker directory (and alternative requirements file), made with uv.

The community analyzers pin conflicting versions of their dependencies, so they cannot share one Python
(seeds/000). Each worker directory gets its own virtualenv, built from its `requirements.txt` (or the file
a definition names in `requirements`, as OpenCTI's v6 flavors do) plus cortexutils, with the server's
Python version.

Layout, under `<data_dir>/venvs/<analyzers|responders>/<DirName>-<hash of the directory path>[-<file>]/`:

    current -> g-<time>-<random>     the installed generation (a symlink, replaced atomically)
    g-<time>-<random>/               a virtualenv; `neurocortex-stamp.json` in it marks a complete build
    last-failure.json                why the last install failed, while it is newer than `current`
    .lock                            one installer at a time per environment (flock)

A rebuild goes into a new generation and only then is `current` switched, so a failed rebuild keeps the
old environment, and a running job keeps the generation it started with: `environment_python` hands out
the resolved generation path, never the `current` link. Replaced generations are deleted by a later
install once `RETIRED_GRACE` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurocortex.services.catalog import Catalog, WorkerDefinition
from neurocortex.services.catalog_sources import CatalogLoader
from neurocortex.settings import Settings

DEFAULT_REQUIREMENTS = "requirements.txt"
BASELINE = ("cortexutils",)
"""Installed in every environment: every community worker imports it, some without listing it."""
STAMP = "neurocortex-stamp.json"
STAMP_FORMAT = 1
CURRENT = "current"
FAILURE = "last-failure.json"
RETIRED_MARK = "neurocortex-retired"
RETIRED_GRACE = 24 * 3600.0
"""Seconds a replaced generation is kept for the jobs that may still be running on it."""
DEFAULT_TIMEOUT = 900.0
REASON_LINES = 6

INSTALLED, UNCHANGED, FAILED = "installed", "unchanged", "failed"


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class WorkerEnvironment:
    """One virtualenv: a worker directory with one requirements file, shared by the flavors using it."""

    kind: str  # analyzer | responder
    directory: Path
    requirements: str  # file name relative to `directory`
    home: Path
    definitions: tuple[str, ...] = ()  # ids of the definitions running in it
    names: tuple[str, ...] = ()  # their names

    @property
    def label(self) -> str:
        if self.requirements == DEFAULT_REQUIREMENTS:
            return self.directory.name
        return f"{self.directory.name} ({self.requirements})"

    @property
    def requirements_path(self) -> Path:
        return self.directory / self.requirements

    def matches(self, name: str) -> bool:
        wanted = name.casefold()
        return wanted == self.directory.name.casefold() or any(
            wanted == other.casefold() for other in (*self.definitions, *self.names)
        )


@dataclass
class InstallResult:
    environment: WorkerEnvironment
    status: str  # installed | unchanged | failed
    reason: str = ""
    seconds: float = 0.0


@dataclass
class EnvironmentState:
    environment: WorkerEnvironment
    state: str  # installed | outdated | not installed | broken
    python: str | None = None
    installed_at: float | None = None
    last_failure: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class InstallError(Exception):
    pass


# -- where environments live ------------------------------------------------------------------------


def venvs_root(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "venvs"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def environment_home(root: Path, kind: str, directory: Path, requirements: str) -> Path:
    """`<root>/<kind>s/<DirName>-<hash>`: two catalogs with a same-named directory do not collide."""
    name = f"{directory.name}-{_short_hash(str(directory))}"
    if requirements != DEFAULT_REQUIREMENTS:
        name += "-" + re.sub(r"[^A-Za-z0-9._-]", "_", Path(requirements).stem)
    return root / f"{kind}s" / name


def worker_directory(definition: WorkerDefinition) -> Path | None:
    """The directory of a local definition's program (the first level under its catalog root)."""
    program, root = definition.command_path, definition.root
    if program is None or root is None:
        return None
    parts = program.relative_to(root.resolve()).parts
    if len(parts) < 2:
        return None
    return root.resolve() / parts[0]


def requirements_name(definition: WorkerDefinition, directory: Path) -> str:
    """The definition's `requirements` field when it names a file inside its directory, else the default.

    WorkerDefinition does not keep that field, so it is read again from the definition's JSON file.
    """
    source = Path(definition.source)
    try:
        mtime = source.stat().st_mtime_ns
    except OSError:
        return DEFAULT_REQUIREMENTS
    value = _requirements_field(str(source), mtime, definition.name)
    if not value:
        return DEFAULT_REQUIREMENTS
    candidate = (directory / value).resolve()
    if not candidate.is_relative_to(directory) or candidate == directory:
        return DEFAULT_REQUIREMENTS
    return str(candidate.relative_to(directory))


@functools.lru_cache(maxsize=1024)
def _requirements_field(source: str, _mtime: int, name: str) -> str | None:
    try:
        document = json.loads(Path(source).read_bytes())
    except (OSError, ValueError):
        return None
    entries = document if isinstance(document, list) else [document]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get("requirements")
            return value if isinstance(value, str) and value.strip() else None
    return None


def environment_for(settings: Settings, definition: WorkerDefinition) -> WorkerEnvironment | None:
    directory = worker_directory(definition)
    if directory is None:
        return None
    requirements = requirements_name(definition, directory)
    home = environment_home(venvs_root(settings), definition.type, directory, requirements)
    return WorkerEnvironment(
        definition.type, directory, requirements, home, (definition.id,), (definition.name,)
    )


def environment_python(settings: Settings, definition: WorkerDefinition) -> str | None:
    """The interpreter of the definition's virtualenv when one is installed and healthy, else None.

    The path is the resolved generation's, so a job keeps its environment while a rebuild swaps in another.
    """
    environment = _environment_of(settings, definition)
    return None if environment is None else installed_python(environment.home)


# Where each definition's environment lives, asked before every job: working it out resolves paths and
# reads the definition's file (about a millisecond), and it changes only with the definition object (a
# catalog rescan makes new ones) — whether one is installed there is looked at every time.
_ENVIRONMENTS: dict[tuple[int, int], tuple[Settings, WorkerDefinition, WorkerEnvironment | None]] = {}
_ENVIRONMENTS_KEPT = 4096


def _environment_of(settings: Settings, definition: WorkerDefinition) -> WorkerEnvironment | None:
    key = (id(settings), id(definition))
    cached = _ENVIRONMENTS.get(key)
    # the objects are kept with the answer, so their ids cannot be reused while it is cached
    if cached is None or cached[0] is not settings or cached[1] is not definition:
        if len(_ENVIRONMENTS) >= _ENVIRONMENTS_KEPT:
            _ENVIRONMENTS.clear()
        cached = _ENVIRONMENTS[key] = (settings, definition, environment_for(settings, definition))
    return cached[2]


def installed_python(home: Path) -> str | None:
    generation = _current(home)
    if generation is None or not _healthy(generation):
        return None
    return str(generation / "bin" / "python")


def _current(home: Path) -> Path | None:
    try:
        return (home / CURRENT).resolve(strict=True)
    except (OSError, RuntimeError):
        return None


def _healthy(generation: Path) -> bool:
    python = generation / "bin" / "python"
    # os.access follows the link to the base interpreter: a removed Python makes the venv unhealthy.
    return (
        (generation / STAMP).is_file()
        and (generation / "pyvenv.cfg").is_file()
        and os.access(python, os.X_OK)
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


# -- which environments the catalogs need ------------------------------------------------------------


def local_sources(sources: Iterable[str]) -> list[str]:
    return [source for source in sources if not source.startswith(("http://", "https://"))]


def load_local_catalog(settings: Settings) -> Catalog:
    """The definitions of the local sources only: remote catalogs run in containers, never in a venv."""
    return CatalogLoader(local_sources(settings.analyzers), local_sources(settings.responders)).load()


def discover(settings: Settings, catalog: Catalog | None = None) -> list[WorkerEnvironment]:
    """Every environment the catalog's local definitions need, one per (directory, requirements file)."""
    catalog = catalog if catalog is not None else load_local_catalog(settings)
    grouped: dict[Path, WorkerEnvironment] = {}
    for definitions in (catalog.analyzers, catalog.responders):
        for definition in definitions.values():
            environment = environment_for(settings, definition)
            if environment is None:
                continue
            known = grouped.get(environment.home)
            if known is not None:
                environment = WorkerEnvironment(
                    known.kind, known.directory, known.requirements, known.home,
                    (*known.definitions, *environment.definitions), (*known.names, *environment.names),
                )  # fmt: skip
            grouped[environment.home] = environment
    return sorted(grouped.values(), key=lambda e: (e.kind, e.directory.name.casefold(), e.requirements))


def select(
    environments: Sequence[WorkerEnvironment], names: Sequence[str]
) -> tuple[list[WorkerEnvironment], list[str]]:
    """(the environments matching any of `names`, the names that matched nothing)."""
    chosen = [environment for environment in environments if any(environment.matches(n) for n in names)]
    unknown = [name for name in names if not any(environment.matches(name) for environment in environments)]
    return chosen, unknown


# -- what an environment is built from ------------------------------------------------------------


def python_version() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def fingerprint(environment: WorkerEnvironment) -> str:
    """Changes when the requirements file, the Python version or what every venv gets changes."""
    digest = hashlib.sha256()
    digest.update(
        f"{STAMP_FORMAT}\0{python_version()}\0{' '.join(BASELINE)}\0{environment.requirements}\0".encode()
    )
    path = environment.requirements_path
    if path.is_file():
        digest.update(path.read_bytes())
    elif environment.requirements != DEFAULT_REQUIREMENTS:
        raise InstallError(f"requirements file {path} does not exist")
    else:
        digest.update(b"\0no requirements file")
    return digest.hexdigest()


def state(environment: WorkerEnvironment) -> EnvironmentState:
    home = environment.home
    generation = _current(home)
    failure = _read_json(home / FAILURE)
    failure_reason = failure.get("reason") if failure else None
    if generation is None:
        return EnvironmentState(environment, "not installed", last_failure=failure_reason)
    stamp = _read_json(generation / STAMP)
    if not _healthy(generation):
        return EnvironmentState(environment, "broken", last_failure=failure_reason)
    try:
        current = fingerprint(environment)
    except InstallError:
        current = None
    status = "installed" if stamp.get("fingerprint") == current else "outdated"
    installed_at = stamp.get("installed_at")
    if failure and isinstance(installed_at, int | float) and failure.get("time", 0) < installed_at:
        failure_reason = None
    return EnvironmentState(
        environment, status, str(generation / "bin" / "python"), installed_at, failure_reason, stamp
    )


# -- installing ------------------------------------------------------------------------------------


def uv_binary() -> str:
    try:
        import uv
    except ImportError as exc:  # pragma: no cover - uv is a dependency of neurocortex
        raise InstallError("the uv package is not installed (pip install uv)") from exc
    return uv.find_uv_bin()


class EnvironmentInstaller:
    """Builds environments, `jobs` at a time, each within `timeout` seconds; one failure stops no other."""

    def __init__(
        self,
        *,
        jobs: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        python: str | None = None,
        uv: str | None = None,
        retired_grace: float = RETIRED_GRACE,
    ) -> None:
        self.jobs = max(1, jobs or default_jobs())
        self.timeout = timeout
        # The server's interpreter, so that the workers run on the Python version neurocortex was tested on.
        self.python = python or sys.executable
        self.uv = uv
        self.retired_grace = retired_grace

    async def install(
        self,
        environments: Sequence[WorkerEnvironment],
        *,
        force: bool = False,
        on_start: Callable[[WorkerEnvironment], None] | None = None,
        on_done: Callable[[InstallResult], None] | None = None,
    ) -> list[InstallResult]:
        """Install or refresh each environment; results in the order given."""
        semaphore = asyncio.Semaphore(self.jobs)

        async def one(environment: WorkerEnvironment) -> InstallResult:
            async with semaphore:
                if on_start:
                    on_start(environment)
                result = await self.install_one(environment, force=force)
                if on_done:
                    on_done(result)
                return result

        return list(await asyncio.gather(*(one(environment) for environment in environments)))

    async def install_one(self, environment: WorkerEnvironment, *, force: bool = False) -> InstallResult:
        started = time.monotonic()
        try:
            status = await self._install(environment, force)
            reason = ""
        except InstallError as exc:
            status, reason = FAILED, str(exc)
            _record_failure(environment.home, reason)
        except OSError as exc:
            status, reason = FAILED, f"{type(exc).__name__}: {exc}"
            _record_failure(environment.home, reason)
        return InstallResult(environment, status, reason, time.monotonic() - started)

    async def _install(self, environment: WorkerEnvironment, force: bool) -> str:
        home = environment.home
        home.mkdir(parents=True, exist_ok=True)
        async with _locked(home / ".lock"):
            self._collect_garbage(home)
            wanted = fingerprint(environment)
            current = _current(home)
            if (
                not force
                and current is not None
                and _healthy(current)
                and _read_json(current / STAMP).get("fingerprint") == wanted
            ):
                return UNCHANGED
            generation = home / f"g-{time.time_ns()}-{secrets.token_hex(3)}"
            try:
                await self._build(environment, generation, wanted)
            except BaseException:
                shutil.rmtree(generation, ignore_errors=True)
                raise
            _switch(home, generation)
            if current is not None and current != generation:
                _retire(current)
            with contextlib.suppress(FileNotFoundError):
                (home / FAILURE).unlink()
            return INSTALLED

    async def _build(self, environment: WorkerEnvironment, generation: Path, wanted: str) -> None:
        uv = self.uv or uv_binary()
        deadline = time.monotonic() + self.timeout
        await _run(
            [uv, "--color", "never", "--no-progress", "venv", "--no-project", "--python", self.python,
             str(generation)],
            environment.directory, deadline, self.timeout, "uv venv",
        )  # fmt: skip
        argv = [uv, "--color", "never", "--no-progress", "pip", "install",
                "--python", str(generation / "bin" / "python")]  # fmt: skip
        requirements = environment.requirements_path
        if requirements.is_file():
            argv += ["-r", str(requirements)]
        # The worker's directory is the working directory, as in the community's Docker build: relative
        # paths in its requirements file resolve there.
        await _run([*argv, *BASELINE], environment.directory, deadline, self.timeout, "uv pip install")
        if requirements.is_file():
            shutil.copyfile(requirements, generation / "neurocortex-requirements.txt")
        stamp = {
            "format": STAMP_FORMAT,
            "fingerprint": wanted,
            "python": python_version(),
            "directory": str(environment.directory),
            "requirements": environment.requirements,
            "installed_at": time.time(),
        }
        _write_atomic(generation / STAMP, json.dumps(stamp, indent=2).encode())

    def _collect_garbage(self, home: Path) -> None:
        """Under the lock: builds left by a killed installer, and generations retired long enough ago."""
        current = _current(home)
        now = time.time()
        for path in home.glob("g-*"):
            if not path.is_dir() or path == current:
                continue
            if not (path / STAMP).is_file():
                shutil.rmtree(path, ignore_errors=True)
                continue
            mark = path / RETIRED_MARK
            if not mark.exists():
                _retire(path)
            elif now - mark.stat().st_mtime >= self.retired_grace:
                shutil.rmtree(path, ignore_errors=True)
        for link in home.glob(".current-*"):
            with contextlib.suppress(OSError):
                link.unlink()


def _switch(home: Path, generation: Path) -> None:
    link = home / f".current-{secrets.token_hex(4)}"
    os.symlink(generation.name, link)
    os.replace(link, home / CURRENT)  # rename(2) over the old link: atomic


def _retire(generation: Path) -> None:
    with contextlib.suppress(OSError):
        (generation / RETIRED_MARK).touch()


def _record_failure(home: Path, reason: str) -> None:
    with contextlib.suppress(OSError):
        home.mkdir(parents=True, exist_ok=True)
        _write_atomic(home / FAILURE, json.dumps({"reason": reason, "time": time.time()}).encode())


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@contextlib.asynccontextmanager
async def _locked(path: Path):
    """An exclusive flock, polled so that waiting for another installer stays cancellable."""
    with open(path, "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _uv_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env["UV_PYTHON_DOWNLOADS"] = "never"  # the server's interpreter, never one fetched from the internet
    env["GIT_TERMINAL_PROMPT"] = "0"  # a git+https requirement must fail, not wait for a password
    env.setdefault("NO_COLOR", "1")
    return env


async def _run(argv: list[str], cwd: Path, deadline: float, limit: float, what: str) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise InstallError(f"{what}: timed out (limit {limit:.0f} s for the whole install)")
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=_uv_environment(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # a timeout kills uv and the builds and git processes it started
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), remaining)
    except TimeoutError:
        await _kill(process)
        raise InstallError(f"{what}: timed out (limit {limit:.0f} s for the whole install)") from None
    except BaseException:  # cancelled: leave no uv behind
        await _kill(process)
        raise
    if process.returncode != 0:
        raise InstallError(f"{what} exited with {process.returncode}: {_last_lines(output)}")


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


def _last_lines(output: bytes) -> str:
    """uv's error (from its first `error:` line) or else the end of its output, a few lines at most."""
    lines = [line.rstrip() for line in output.decode("utf-8", errors="replace").splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.lstrip().startswith(("error:", "×")):
            lines = lines[index:]
            break
    return "\n".join(lines[-REASON_LINES:]) or "(no output)"
