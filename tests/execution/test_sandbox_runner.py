"""The bubblewrap sandbox runner with real bwrap and real workers: isolation, limits and cleanup."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from neurocortex.execution.jobdir import JobDirectory
from neurocortex.execution.runners import RunSpec, command_argv
from neurocortex.execution.runners.sandbox import SANDBOX_GID, SANDBOX_UID, SandboxPolicy, SandboxRunner
from tests.execution.conftest import job_input

PYTHON = sys.executable
"""The test virtualenv's interpreter (cortexutils installed); it lives under a 0700 /root on the dev box."""
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
ROOT = os.geteuid() == 0

_probe = SandboxRunner(1024, [])
if not _probe.available():
    pytest.skip(f"bubblewrap sandbox unavailable: {_probe.unavailable_reason}", allow_module_level=True)


class World:
    """A server's layout: a data directory outside /tmp holding the job folders and a secret, a config file,
    a catalog, and the sandbox runner hiding the first two."""

    def __init__(self, host: Path, tmp_path: Path) -> None:
        self.host = host
        self.data = host / "data"
        self.jobs = self.data / "jobs"
        self.jobs.mkdir(parents=True)
        # World-readable on purpose: only the sandbox's mounts stand between the worker and these.
        self.data.chmod(0o755)
        self.jobs.chmod(0o755)
        self.secret = self.data / "secret.key"
        self.secret.write_text("s3cr3t")
        self.secret.chmod(0o644)
        self.config = host / "neurocortex.toml"
        self.config.write_text('secret_key = "s3cr3t"\n')
        self.config.chmod(0o644)
        self.other = JobDirectory.create(self.jobs, "other")
        self.other.write_input(job_input(data="other-job-observable"))
        os.chmod(self.other.path, 0o755)
        os.chmod(self.other.input_dir / "input.json", 0o644)
        self.catalog = tmp_path / "analyzers"
        self.catalog.mkdir()
        self.runner = SandboxRunner(64 * 1024, [self.data, self.config])

    def job(self, **overrides) -> JobDirectory:
        job = JobDirectory.create(self.jobs, "job1")
        job.write_input(job_input(**overrides))
        return job

    def add(self, name: str, source: str) -> str:
        relative = f"{name}/{name.lower()}.py"
        path = self.catalog / relative
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
        return relative

    def spec(self, job: JobDirectory, command: str, timeout: float = 30, env: dict | None = None) -> RunSpec:
        argv = command_argv(self.catalog, command, PYTHON, job.path)
        return RunSpec(argv, self.catalog, ENV if env is None else env, timeout, job_directory=job.path)

    async def probe(self, source: str, policy: SandboxPolicy | None = None, timeout: float = 30):
        """Run a plain Python worker that prints one JSON document; returns (document, outcome)."""
        job = self.job()
        command = self.add("Probe", "import json, os, sys\n" + textwrap.dedent(source))
        outcome = await self.runner.run(self.spec(job, command, timeout), policy)
        assert outcome.error is None, outcome.error
        lines = outcome.output.strip().splitlines()
        assert lines, outcome
        return json.loads(lines[-1]), outcome


@pytest.fixture
def world(tmp_path: Path):
    # Outside /tmp, which the sandbox replaces wholesale: the hiding of `hidden` itself is under test here.
    host = Path(tempfile.mkdtemp(prefix="neurocortex-sandbox-test-", dir="/var/tmp"))
    host.chmod(0o755)
    try:
        yield World(host, tmp_path)
    finally:
        shutil.rmtree(host, ignore_errors=True)


def sleeping(marker: str) -> bool:
    """A `sleep <marker>` process is running on the host."""
    return any(cmdline(pid) == f"sleep\0{marker}\0".encode() for pid in processes_with(marker))


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read()
    except OSError:
        return b""


def processes_with(marker: str) -> list[int]:
    """Host PIDs of live processes whose command line contains `marker` (sandboxed PIDs differ)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                cmdline = file.read()
            with open(f"/proc/{entry}/stat") as file:
                state = file.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(entry))
    return found


async def wait_until(predicate, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


# -- a normal job ------------------------------------------------------------------------------------------

ANALYZER = """
#!/usr/bin/env python3
import os
from cortexutils.analyzer import Analyzer

class Sample(Analyzer):
    def run(self):
        with open(self.get_param("file"), "rb") as sample:
            content = sample.read().decode()
        with open("/tmp/extracted.txt", "w") as extracted:
            extracted.write("extracted from " + self.get_data())
        self.report({
            "content": content,
            "uid": os.getuid(),
            "cwd": os.getcwd(),
            "marker": os.environ.get("MARKER"),
        })

    def artifacts(self, raw):
        return [
            self.build_artifact("file", "/tmp/extracted.txt"),
            self.build_artifact("domain", "evil.example"),
        ]

if __name__ == "__main__":
    Sample().run()
"""


async def test_a_cortexutils_analyzer_runs_in_the_sandbox_with_file_artifacts(world: World):
    store = world.host / "datastore"
    store.mkdir()
    sample = store / "blob"
    sample.write_text("MZ sample bytes")
    sample.chmod(0o444)  # as the datastore keeps its files; the job's attachment is a hard link to it
    job = world.job(data_type="file", data=None, attachment_path=sample, attachment_name="sample.exe")
    command = world.add("Sample", ANALYZER)
    spec = world.spec(job, command, env={**ENV, "MARKER": "from-the-engine"})
    spec.job_directory = None  # taken from the last argument, as command_argv puts it

    outcome = await world.runner.run(spec)

    assert (outcome.exit_code, outcome.error) == (0, None), outcome.output
    result = job.read_output(1024 * 1024)
    assert result.success, result.error_message
    assert result.full["content"] == "MZ sample bytes"
    assert result.full["marker"] == "from-the-engine"
    assert result.full["cwd"] == str(world.catalog)
    assert result.full["uid"] == (SANDBOX_UID if ROOT else os.getuid())
    file_artifact, data_artifact = result.artifacts
    assert file_artifact["path"].read_text() == "extracted from sample.exe"
    assert data_artifact == {"dataType": "domain", "data": "evil.example"}
    # The job directory was lent to the sandbox user and given back; the datastore's file never was.
    owners = {(info.st_uid, info.st_gid) for info in map(os.lstat, [job.path, *job.path.rglob("*")])}
    assert owners == {(os.getuid(), os.getgid())}
    assert (sample.stat().st_uid, stat.S_IMODE(sample.stat().st_mode)) == (os.getuid(), 0o444)


async def test_a_program_that_cannot_start_is_an_execution_error(world: World):
    job = world.job()
    spec = RunSpec([str(world.catalog / "missing"), str(job.path)], world.catalog, ENV, 10, job.path)
    outcome = await world.runner.run(spec)
    assert outcome.exit_code is None and outcome.output == ""
    assert outcome.error.startswith("Process execution error: ")
    assert "missing" in outcome.error and "No such file or directory" in outcome.error


async def test_a_job_directory_holding_the_catalog_is_refused(world: World, tmp_path: Path):
    job = world.job()
    spec = world.spec(job, world.add("Noop", "pass\n"))
    spec.job_directory = tmp_path  # the catalog's parent: lending it would hand the catalog to the worker
    outcome = await world.runner.run(spec)
    assert (
        outcome.error
        == f"Process execution error: {tmp_path} cannot be the job directory: it holds the catalog"
    )
    assert os.stat(tmp_path).st_uid == os.getuid()


# -- isolation ---------------------------------------------------------------------------------------------

WRITE_EVERYWHERE = """
results = {}
for target in sys.argv[1:-1] + [sys.argv[-1] + "/output/mine"]:
    try:
        with open(target, "w") as file:
            file.write("x")
        results[target] = "written"
    except OSError as exc:
        results[target] = type(exc).__name__ + ": " + exc.strerror
print(json.dumps(results))
"""


async def test_the_worker_cannot_write_outside_its_job_directory(world: World):
    targets = [
        "/etc/neurocortex-sandbox-probe",
        "/usr/neurocortex-sandbox-probe",
        str(world.catalog / "neurocortex-sandbox-probe"),
        str(world.other.input_dir / "input.json"),
        str(world.other.output_dir / "output.json"),
        str(world.data / "neurocortex-sandbox-probe"),
        str(world.host / "neurocortex-sandbox-probe"),
        str(world.jobs / "cortex-job-forged"),
    ]
    job = world.job()
    command = world.add("Writer", "import json, sys\n" + WRITE_EVERYWHERE)
    argv = command_argv(world.catalog, command, PYTHON, job.path)
    spec = RunSpec([*argv[:-1], *targets, argv[-1]], world.catalog, ENV, 30, job.path)

    outcome = await world.runner.run(spec)

    results = json.loads(outcome.output.strip().splitlines()[-1])
    assert results.pop(str(job.output_dir / "mine")) == "written"
    assert all(result != "written" for result in results.values()), results
    for target in targets:
        assert not Path(target).exists() or Path(target).read_text() != "x", target
    assert json.loads((world.other.input_dir / "input.json").read_text())["data"] == "other-job-observable"


async def test_hidden_paths_and_other_jobs_are_not_visible(world: World):
    document, _ = await world.probe(
        f"""
        def read(path):
            try:
                with open(path) as file:
                    return "read: " + file.read()
            except OSError as exc:
                return type(exc).__name__
        job = sys.argv[1]
        print(json.dumps({{
            "secret": read({str(world.secret)!r}),
            "other_input": read({str(world.other.input_dir / "input.json")!r}),
            "config": read({str(world.config)!r}),
            "data_dir": sorted(os.listdir({str(world.data)!r})),
            "jobs_dir": sorted(os.listdir({str(world.jobs)!r})),
            "own_input": "8.8.8.8" in read(job + "/input/input.json"),
        }}))
        """
    )
    assert document["secret"] == "FileNotFoundError"
    assert document["other_input"] == "FileNotFoundError"
    assert document["config"] == "PermissionError"  # a device node on a nodev mount: cannot be opened
    assert document["data_dir"] == ["jobs"]
    assert document["jobs_dir"] == [Path(document_job_dir(world)).name]
    assert document["own_input"] is True


def document_job_dir(world: World) -> str:
    (job,) = [path for path in world.jobs.iterdir() if path != world.other.path]
    return str(job)


async def test_tmp_is_private(world: World):
    marker = f"neurocortex-sandbox-{uuid.uuid4().hex}"
    host_file = Path("/tmp") / f"{marker}-host"
    host_file.write_text("host")
    try:
        document, _ = await world.probe(
            f"""
            import multiprocessing
            multiprocessing.Lock()  # a POSIX semaphore: needs a writable /dev/shm
            with open("/tmp/{marker}-worker", "w") as file:
                file.write("worker")
            print(json.dumps(sorted(os.listdir("/tmp"))))
            """
        )
    finally:
        host_file.unlink()
    assert f"{marker}-worker" in document
    assert f"{marker}-host" not in document
    assert not (Path("/tmp") / f"{marker}-worker").exists()


CONNECT = """
import socket
try:
    with socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=5) as connection:
        connection.sendall(b"hello from the sandbox")
    print(json.dumps("connected"))
except OSError as exc:
    print(json.dumps(type(exc).__name__))
"""


@pytest.mark.parametrize("network", [False, True])
async def test_network_off_cannot_reach_the_host(world: World, network: bool):
    received = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read())
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        job = world.job()
        command = world.add("Connect", "import json, os\n" + CONNECT)
        outcome = await world.runner.run(
            world.spec(job, command, env={**ENV, "PORT": str(port)}), SandboxPolicy(network=network)
        )
        await wait_until(lambda: bool(received), 2 if network else 0.2)
    finally:
        server.close()
    result = json.loads(outcome.output.strip().splitlines()[-1])
    if network:
        assert (result, received) == ("connected", [b"hello from the sandbox"])
    else:
        assert (result, received) == ("ConnectionRefusedError", [])


# -- limits ------------------------------------------------------------------------------------------------


async def test_the_memory_limit_stops_a_worker_allocating_4_gb(world: World):
    job = world.job()
    command = world.add("Hog", "chunk = bytearray(4 * 1024**3)\nprint('allocated')\n")
    outcome = await world.runner.run(world.spec(job, command), SandboxPolicy(memory_mb=256))
    assert outcome.exit_code == 1 and not outcome.timed_out
    assert "MemoryError" in outcome.output and "allocated" not in outcome.output
    assert outcome.output.endswith("[sandbox] memory limit of 256 MB (address space) reached")


async def test_the_cpu_limit_stops_a_busy_loop(world: World):
    job = world.job()
    command = world.add("Spin", "while True:\n    pass\n")
    started = time.monotonic()
    outcome = await world.runner.run(world.spec(job, command, timeout=20), SandboxPolicy(cpu_seconds=1))
    assert time.monotonic() - started < 10
    assert not outcome.timed_out
    assert outcome.exit_code == 128 + signal.SIGXCPU
    assert outcome.output.endswith("[sandbox] killed by SIGXCPU: CPU time limit of 1 s")
    # As for any worker that leaves no output, the engine reports the captured text.
    assert not job.has_output()


async def test_the_process_limit_stops_a_fork_bomb(world: World):
    marker = f"bomb-{uuid.uuid4().hex}"
    job = world.job()
    command = world.add(
        "Bomb",
        f"""
        import os, sys, time
        # {marker}
        started = 0
        try:
            while True:
                if os.fork() == 0:
                    # Every child forks on too: a real fork bomb, held by the limit and the timeout.
                    while True:
                        try:
                            os.fork()
                        except OSError:
                            time.sleep(0.05)
                started += 1
        except OSError:
            print("started", started, flush=True)
            raise
        """,
    )
    started = time.monotonic()
    outcome = await world.runner.run(world.spec(job, command, timeout=3), SandboxPolicy(max_processes=16))
    assert time.monotonic() - started < 10
    count = int(outcome.output.split("started ", 1)[1].split()[0])
    assert 0 < count < 16
    assert "BlockingIOError" in outcome.output
    assert outcome.output.endswith("[sandbox] process limit of 16 processes and threads reached")
    # The sandbox went down with its leader: no bomb left behind.
    assert await wait_until(lambda: not processes_with(marker))


# -- lifecycle ---------------------------------------------------------------------------------------------

ESCAPE_AND_WAIT = """
import os, subprocess, sys, time
subprocess.Popen(["sleep", sys.argv[1]], start_new_session=True)  # out of the worker's process group
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # a double-forked daemon
        os.execvp("sleep", ["sleep", sys.argv[1]])
    os._exit(0)
print("spawned", flush=True)
time.sleep(1000)
"""


async def test_the_wall_timeout_kills_the_whole_sandbox_including_grandchildren(world: World):
    marker = f"1000.{uuid.uuid4().int % 10**9}"  # a unique `sleep` argument to find the grandchildren
    job = world.job()
    command = world.add("Escape", ESCAPE_AND_WAIT)
    argv = command_argv(world.catalog, command, PYTHON, job.path)
    spec = RunSpec([*argv[:-1], marker, argv[-1]], world.catalog, ENV, 1.5, job.path)
    started = time.monotonic()

    outcome = await world.runner.run(spec)

    assert time.monotonic() - started < 10
    assert outcome.timed_out is True
    assert outcome.output == "spawned\n"
    assert await wait_until(lambda: not processes_with(marker))


PARENT = """
import asyncio, sys
from pathlib import Path
from neurocortex.execution.runners import RunSpec
from neurocortex.execution.runners.sandbox import SandboxRunner

catalog, marker = sys.argv[1], sys.argv[2]
spec = RunSpec(["/bin/sh", "-c", f"sleep {marker}; true"], Path(catalog), {"PATH": "/usr/bin:/bin"}, 600)
asyncio.run(SandboxRunner(1024, []).run(spec))
"""


async def test_the_sandbox_dies_with_the_server(world: World):
    marker = f"1000.{uuid.uuid4().int % 10**9}"
    parent = subprocess.Popen([PYTHON, "-c", PARENT, str(world.catalog), marker])
    try:
        assert await wait_until(lambda: sleeping(marker), 10)
    finally:
        parent.kill()
        parent.wait()
    assert await wait_until(lambda: not processes_with(marker))


async def test_cancelling_the_run_kills_the_sandbox_and_gives_the_job_directory_back(world: World):
    marker = f"1000.{uuid.uuid4().int % 10**9}"
    job = world.job()
    command = world.add("Sleeper", "import os, sys\nos.execvp('sleep', ['sleep', sys.argv[1]])\n")
    argv = command_argv(world.catalog, command, PYTHON, job.path)
    spec = RunSpec([*argv[:-1], marker, argv[-1]], world.catalog, ENV, 600, job.path)
    task = asyncio.create_task(world.runner.run(spec))
    assert await wait_until(lambda: sleeping(marker), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_until(lambda: not processes_with(marker))
    assert await wait_until(lambda: os.stat(job.path).st_uid == os.getuid())


async def test_sandboxes_run_concurrently_each_with_its_own_process_count(world: World):
    """Six sandboxes of 7 processes each under a limit of 8: the limit counts one sandbox's processes."""
    command = world.add(
        "Children",
        """
        import subprocess, sys, time
        children = [subprocess.Popen(["sleep", "1"]) for _ in range(6)]
        time.sleep(0.5)
        print(sys.argv[1].rsplit("/", 1)[1], flush=True)
        """,
    )
    jobs = [world.job() for _ in range(6)]
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(world.runner.run(world.spec(job, command), SandboxPolicy(max_processes=8)) for job in jobs)
    )
    assert [outcome.output for outcome in outcomes] == [f"{job.path.name}\n" for job in jobs]
    assert time.monotonic() - started < 10


@pytest.mark.skipif(not ROOT, reason="the job directory is lent to another uid only when the server is root")
async def test_giving_the_job_directory_back_never_follows_links(world: World):
    victim = world.host / "victim"
    victim.write_text("not the worker's")
    os.chown(victim, SANDBOX_UID, SANDBOX_GID)
    job = world.job()
    command = world.add(
        "Linker",
        f"""
        import os, sys
        output = sys.argv[1] + "/output"
        os.symlink({str(victim)!r}, output + "/link")
        os.makedirs(output + "/a/b/c")
        open(output + "/a/b/c/file", "w").close()
        """,
    )
    outcome = await world.runner.run(world.spec(job, command))
    assert outcome.exit_code == 0, outcome.output
    assert os.lstat(job.output_dir / "link").st_uid == os.getuid()
    assert os.stat(job.output_dir / "a/b/c/file").st_uid == os.getuid()
    assert os.stat(victim).st_uid == SANDBOX_UID  # the link's target was left alone


# -- availability and command line -------------------------------------------------------------------------


async def test_the_runner_is_unavailable_without_bwrap(tmp_path: Path):
    runner = SandboxRunner(1024, [], bwrap="/nonexistent")
    assert runner.available() is False
    assert "/nonexistent" in runner.unavailable_reason and "bubblewrap" in runner.unavailable_reason
    outcome = await runner.run(RunSpec(["/bin/true"], tmp_path, ENV, 10))
    assert outcome.error.startswith("Process execution error: the sandbox runner is unavailable")


def test_the_command_line_hides_before_it_mounts_the_job_back(world: World):
    job = world.job()
    spec = world.spec(job, world.add("Noop", "pass\n"))
    argv = world.runner.command_line(spec, SandboxPolicy(network=False, cpu_seconds=5), job.path)
    sandbox = argv[: argv.index("--")]
    tmpfs = [sandbox[i + 1] for i, arg in enumerate(sandbox) if arg == "--tmpfs"]
    binds = [sandbox[i + 1] for i, arg in enumerate(sandbox) if arg == "--bind"]
    assert "/tmp" in tmpfs and str(world.data) in tmpfs
    assert binds == [str(job.path)]
    assert sandbox.index(str(world.data)) < sandbox.index(str(job.path))
    assert ["--ro-bind", "/dev/null", str(world.config)] == sandbox[
        sandbox.index(str(world.config)) - 2 : sandbox.index(str(world.config)) + 1
    ]
    assert "--unshare-net" in sandbox and "--die-with-parent" in sandbox
    assert any(arg.startswith("--cpu=5:") for arg in argv)
    # An "interpreter" pointing into the jobs folder (a hostile definition) is not mounted back.
    spec.argv[0] = str(world.other.input_dir / "input.json")
    argv = world.runner.command_line(spec, SandboxPolicy(), job.path)
    assert str(world.other.input_dir) not in argv
