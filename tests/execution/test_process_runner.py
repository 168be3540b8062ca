"""The process runner with real processes: argv resolution, output capture, timeouts and process groups."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from neurocortex.execution.runners import ProcessRunner, RunSpec, command_argv
from neurocortex.execution.runners.process import DRAIN_GRACE

PYTHON = sys.executable
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}

# -- command_argv -----------------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    catalog = tmp_path / "analyzers"
    catalog.mkdir()
    return catalog


def add(root: Path, relative: str, content: str | bytes = "", mode: int = 0o644) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_a_python_script_runs_with_the_given_interpreter_even_without_exec_bit(root: Path, tmp_path: Path):
    script = add(root, "Axur/axur_analyzer.py", "#!/usr/bin/env python3\n", mode=0o644)
    job = tmp_path / "jobs" / "j1"
    assert command_argv(root, "Axur/axur_analyzer.py", "/venv/bin/python", job) == [
        "/venv/bin/python",
        str(script),
        str(job),
    ]
    script.chmod(0o755)
    assert command_argv(root, "Axur/axur_analyzer.py", "/venv/bin/python", job)[0] == "/venv/bin/python"


def test_interpreter_and_script_tokens(root: Path, tmp_path: Path):
    script = add(root, "ClusterHawk/ClusterHawk.py", "print()")
    job = tmp_path / "j"
    for interpreter in ("python", "python3", "python3.11"):
        assert command_argv(root, f"{interpreter} ClusterHawk/ClusterHawk.py", "/venv/py", job) == [
            "/venv/py",
            str(script),
            str(job),
        ]
    assert command_argv(root, "python3 -u ClusterHawk/ClusterHawk.py --fast", "/venv/py", job) == [
        "/venv/py",
        "-u",
        str(script),
        "--fast",
        str(job),
    ]


def test_other_interpreters_are_looked_up_on_the_path(root: Path, tmp_path: Path):
    script = add(root, "Shell/run.sh", "echo hi")
    assert command_argv(root, "sh Shell/run.sh", PYTHON, tmp_path) == [
        shutil.which("sh"),
        str(script),
        str(tmp_path),
    ]
    with pytest.raises(ValueError, match="is not on the PATH"):
        command_argv(root, "no-such-interpreter-x Shell/run.sh", PYTHON, tmp_path)


def test_an_executable_runs_directly(root: Path, tmp_path: Path):
    script = add(root, "Shell/run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    assert command_argv(root, "Shell/run.sh", PYTHON, tmp_path) == [str(script), str(tmp_path)]


def test_a_non_executable_script_runs_with_its_shebang(root: Path, tmp_path: Path):
    script = add(root, "Shell/run", "#!/bin/sh -e\necho hi\n", mode=0o644)
    assert command_argv(root, "Shell/run", PYTHON, tmp_path) == ["/bin/sh", "-e", str(script), str(tmp_path)]
    env_script = add(root, "Shell/env", "#! /usr/bin/env  bash\n", mode=0o600)
    assert command_argv(root, "Shell/env", PYTHON, tmp_path) == [
        "/usr/bin/env",
        "bash",
        str(env_script),
        str(tmp_path),
    ]


def test_a_plain_non_executable_file_is_refused(root: Path, tmp_path: Path):
    add(root, "Data/notes.txt", "hello", mode=0o644)
    with pytest.raises(ValueError, match="is not executable"):
        command_argv(root, "Data/notes.txt", PYTHON, tmp_path)


@pytest.mark.parametrize(
    "command",
    [
        "../outside.py",
        "Dir/../../outside.py",
        "/etc/passwd",
        "python3 ../outside.py",
        "python3 /etc/passwd",
        "python3 Dir/../../outside.py",
        "Link/escape.py",
        "python3 Link/escape.py",
    ],
)
def test_commands_escaping_the_root_are_refused(root: Path, tmp_path: Path, command: str):
    add(tmp_path, "outside.py", "print('escaped')", mode=0o755)
    (root / "Link").mkdir()
    (root / "Link" / "escape.py").symlink_to(tmp_path / "outside.py")
    with pytest.raises(ValueError, match="outside|names no file"):
        command_argv(root, command, PYTHON, tmp_path / "job")


@pytest.mark.parametrize(
    "command", ["", "   ", "Missing/missing.py", "python3 Missing/missing.py", "python3 -V"]
)
def test_missing_or_empty_commands_are_refused(root: Path, tmp_path: Path, command: str):
    with pytest.raises(ValueError):
        command_argv(root, command, PYTHON, tmp_path)


def test_a_compiled_binary_runs_directly(root: Path, tmp_path: Path):
    binary = root / "Native" / "native"
    binary.parent.mkdir()
    if shutil.which("gcc"):
        source = tmp_path / "native.c"
        source.write_text(
            '#include <stdio.h>\nint main(int argc, char **argv) { printf("job=%s\\n", argv[1]); return 7; }\n'
        )
        subprocess.run(["gcc", "-o", str(binary), str(source)], check=True)
    else:
        shutil.copy("/bin/echo", binary)
    assert command_argv(root, "Native/native", PYTHON, tmp_path / "job") == [
        str(binary),
        str(tmp_path / "job"),
    ]


async def test_every_command_form_actually_runs(root: Path, tmp_path: Path):
    job = tmp_path / "job"
    runner = ProcessRunner(4096)
    forms = {
        "Py/noexec.py": add(root, "Py/noexec.py", "import sys; print('py', sys.argv[1:])", mode=0o644),
        "python3 Py/noexec.py": None,
        "Sh/exec.sh": add(root, "Sh/exec.sh", '#!/bin/sh\necho sh "$@"\n', mode=0o755),
        "Sh/shebang": add(root, "Sh/shebang", '#!/bin/sh\necho shebang "$@"\n', mode=0o644),
    }
    expected = {
        "Py/noexec.py": f"py ['{job}']\n",
        "python3 Py/noexec.py": f"py ['{job}']\n",
        "Sh/exec.sh": f"sh {job}\n",
        "Sh/shebang": f"shebang {job}\n",
    }
    for command in forms:
        argv = command_argv(root, command, PYTHON, job)
        outcome = await runner.run(RunSpec(argv, root, ENV, 30))
        assert (outcome.exit_code, outcome.output) == (0, expected[command]), command


# -- running ----------------------------------------------------------------------------------------------


def spec(code: str, cwd: Path, timeout: float | None = 30, env: dict | None = None) -> RunSpec:
    return RunSpec([PYTHON, "-c", code], cwd, ENV if env is None else env, timeout)


async def test_exit_code_and_interleaved_output(tmp_path: Path):
    code = "import sys\nfor s in (sys.stdout, sys.stderr, sys.stdout):\n    s.write(s.name[-4:-1]); s.flush()\nsys.exit(3)"
    outcome = await ProcessRunner(1024).run(spec(code, tmp_path))
    assert outcome.exit_code == 3  # returned, not interpreted
    assert outcome.output == "outerrout"
    assert outcome.timed_out is False and outcome.error is None


async def test_the_environment_is_exactly_the_one_given(tmp_path: Path):
    outcome = await ProcessRunner(1024).run(RunSpec(["/usr/bin/env"], tmp_path, {"ONLY": "this"}, 10))
    assert outcome.output == "ONLY=this\n"


async def test_cwd_and_stdin(tmp_path: Path):
    code = "import os, sys\nprint(os.getcwd(), repr(sys.stdin.read()))"
    outcome = await ProcessRunner(1024).run(spec(code, tmp_path))
    assert outcome.output == f"{tmp_path} ''\n"


async def test_output_is_decoded_leniently(tmp_path: Path):
    code = "import sys\nsys.stdout.buffer.write(b'caf\\xc3\\xa9 \\xff!')"
    outcome = await ProcessRunner(1024).run(spec(code, tmp_path))
    assert outcome.output == "café \ufffd!"


async def test_a_program_that_cannot_start_is_an_error(tmp_path: Path):
    outcome = await ProcessRunner(1024).run(RunSpec([str(tmp_path / "missing")], tmp_path, ENV, 10))
    assert outcome.exit_code is None and outcome.timed_out is False and outcome.output == ""
    assert outcome.error.startswith("Process execution error: ")
    assert "No such file or directory" in outcome.error and "missing" in outcome.error


PARENT = """
import asyncio, sys
from pathlib import Path
from neurocortex.execution.runners import ProcessRunner, RunSpec

pidfile = sys.argv[1]
worker = f"import os, time; open({pidfile!r}, 'w').write(str(os.getpid())); time.sleep(600)"
asyncio.run(ProcessRunner(1024).run(RunSpec([sys.executable, "-c", worker], Path("/"), {}, 600)))
"""


def test_a_worker_dies_with_the_server(tmp_path: Path):
    """The worker gets SIGKILL when the process that started it dies (a server killed with -9)."""
    pidfile = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pidfile)])
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = int(pidfile.read_text())
    assert not is_gone(worker)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while not is_gone(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert is_gone(worker)


def is_gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for a parent that will never reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


async def wait_gone(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if is_gone(pid):
            return True
        await asyncio.sleep(0.05)
    return is_gone(pid)


SPAWN_GRANDCHILD = """
import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "1000"])
with open("grandchild.tmp", "w") as f:
    f.write(str(child.pid))
os.rename("grandchild.tmp", "grandchild.pid")
print("spawned", flush=True)
"""


async def test_a_timeout_kills_the_worker_and_its_grandchildren(tmp_path: Path):
    code = SPAWN_GRANDCHILD + "time.sleep(1000)\n"
    started = time.monotonic()

    outcome = await ProcessRunner(1024).run(spec(code, tmp_path, timeout=1.5))

    assert time.monotonic() - started < 10
    assert outcome.timed_out is True
    assert outcome.exit_code == -signal.SIGKILL
    assert outcome.output == "spawned\n"
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    assert await wait_gone(grandchild)


async def test_a_grandchild_left_behind_after_a_normal_exit_is_killed(tmp_path: Path):
    started = time.monotonic()

    outcome = await ProcessRunner(1024).run(spec(SPAWN_GRANDCHILD, tmp_path))

    # The grandchild holds the pipe open: returning at all shows it was killed or not waited for.
    assert time.monotonic() - started < 10
    assert (outcome.exit_code, outcome.timed_out, outcome.output) == (0, False, "spawned\n")
    assert await wait_gone(int((tmp_path / "grandchild.pid").read_text()))


async def test_a_daemonized_grandchild_holding_the_pipe_does_not_hang_the_job(tmp_path: Path):
    code = """
import os, sys, time
if os.fork() == 0:
    os.setsid()  # leaves the process group: out of reach of killpg
    with open("daemon.tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename("daemon.tmp", "daemon.pid")
    time.sleep(60)
    os._exit(0)
while not os.path.exists("daemon.pid"):
    time.sleep(0.01)
print("parent done", flush=True)
"""
    started = time.monotonic()
    try:
        outcome = await ProcessRunner(1024).run(spec(code, tmp_path))
        elapsed = time.monotonic() - started
    finally:
        daemon = int((tmp_path / "daemon.pid").read_text())
        os.kill(daemon, signal.SIGKILL)

    assert (outcome.exit_code, outcome.output) == (0, "parent done\n")
    assert elapsed < DRAIN_GRACE + 5


async def test_cancelling_the_run_kills_the_process_group(tmp_path: Path):
    runner = ProcessRunner(1024)
    task = asyncio.create_task(runner.run(spec(SPAWN_GRANDCHILD + "time.sleep(1000)\n", tmp_path)))
    pid_file = tmp_path / "grandchild.pid"
    for _ in range(200):
        if pid_file.exists():
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_gone(int(pid_file.read_text()))


async def test_a_hundred_megabytes_of_output_keeps_memory_bounded(tmp_path: Path):
    code = (
        "import sys\nout = sys.stdout.buffer\nout.write(b'BEGIN-')\n"
        "for _ in range(100):\n    out.write(b'x' * (1024 * 1024))\nout.write(b'-END')\n"
    )
    limit = 64 * 1024
    tracemalloc.start()
    try:
        started = time.monotonic()
        outcome = await ProcessRunner(limit).run(spec(code, tmp_path))
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    total = 100 * 1024 * 1024 + len("BEGIN-") + len("-END")
    assert outcome.exit_code == 0
    assert elapsed < 30
    assert peak < 8 * 1024 * 1024, f"peak Python memory {peak} bytes"
    head, marker, tail = outcome.output.split("\n")
    assert head == "BEGIN-" + "x" * (limit // 2 - 6)
    assert tail == "x" * (limit // 2 - 4) + "-END"
    assert marker == f"[... {total - limit} bytes omitted ...]"


@pytest.mark.parametrize(
    ("limit", "chunks", "expected"),
    [
        (10, [b"abc"], "abc"),
        (10, [b"0123456789"], "0123456789"),
        (10, [b"0123456789AB"], "01234\n[... 2 bytes omitted ...]\n789AB"),
        (10, [b"01", b"23", b"45", b"67", b"89", b"AB", b"CD"], "01234\n[... 4 bytes omitted ...]\n9ABCD"),
        (11, [b"x" * 100], "xxxxx\n[... 89 bytes omitted ...]\nxxxxxx"),
        (0, [b"abc"], "\n[... 3 bytes omitted ...]\n"),
    ],
)
async def test_captured_output_keeps_head_and_tail(
    tmp_path: Path, limit: int, chunks: list[bytes], expected: str
):
    code = f"import sys, time\nfor c in {chunks!r}:\n    sys.stdout.buffer.write(c); sys.stdout.flush(); time.sleep(0.01)"
    outcome = await ProcessRunner(limit).run(spec(code, tmp_path))
    assert outcome.output == expected


async def test_many_workers_run_concurrently(tmp_path: Path):
    runner = ProcessRunner(1024)
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(runner.run(spec(f"import time; time.sleep(1); print({i})", tmp_path)) for i in range(20))
    )
    assert [o.output for o in outcomes] == [f"{i}\n" for i in range(20)]
    assert time.monotonic() - started < 10
