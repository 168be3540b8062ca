"""Runner and environment costs: sandbox and docker vs process runner per job, `neurons install` vs plain pip,
in one run.

    python bench/runners.py [--jobs N] [--warmup W] [--skip-sandbox] [--skip-docker]
                            [--docker-host URL --docker-image IMAGE] [--skip-install] [--output FILE]

1. Per-job overhead of the sandbox runner (bubblewrap) against the process runner: N runs of the NoOp
   analyzer with each runner, called directly through the runner classes as the executor calls them — a
   fresh JobDirectory per run with input.json written by JobInput, RunSpec(argv from command_argv, cwd =
   the analyzers root, the worker environment, a timeout, job_directory), then read_output must report
   success — one job at a time. The runners take turns job by job (process, sandbox, sandbox without
   network), so that whatever else the machine does weighs on each alike; a runner's jobs/s is N ÷ the sum
   of its jobs' times. Skipped (and said so) when bwrap is unavailable.
   The docker runner takes its turn too, on the same NoOp program in an image (RunSpec with the image and
   `/job` as the argument, as the executor plans it; pull policy "missing"): by default through a private
   Podman API service started for the run (tests/podman.py: root, runc, overlay storage, an image of this
   interpreter made offline), or a daemon named by --docker-host with --docker-image.
2. `neurons install` against a plain pip: a temporary catalog of ten workers (NoOp's program and JSON,
   renamed), each with a requirements.txt of cortexutils and one or two small pure-Python packages, is
   installed (a) with EnvironmentInstaller(jobs=4) — what `neurocortex neurons install --all` runs — into a
   temporary data directory with a cold uv cache (a temporary UV_CACHE_DIR), then again with force=True
   (warm cache), and (b) one worker after the other with `python -m venv` + `pip install -r
   requirements.txt` (pip with its own temporary cache, cold at the start). Both need the network (PyPI).

The figures are printed and written to bench/results/runners-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from neurocortex.execution import environments as envs
from neurocortex.execution.jobdir import JobDirectory, JobInput
from neurocortex.execution.runners.base import RunSpec
from neurocortex.execution.runners.docker import DockerRunner
from neurocortex.execution.runners.process import ProcessRunner, command_argv
from neurocortex.execution.runners.sandbox import SandboxPolicy, SandboxRunner
from neurocortex.settings import Settings
from overhead import INPUT_TEMPLATE  # bench/ is the script's directory, hence on sys.path

ROOT = Path(__file__).resolve().parent.parent
ANALYZERS = ROOT / "tests" / "workers" / "analyzers"
NOOP_DIR = ANALYZERS / "NoOp"
RESULTS = ROOT / "bench" / "results"
MAX_OUTPUT = 1024 * 1024
JOB_TIMEOUT = 60.0
INSTALL_JOBS = 4

# The config the engine writes for NoOp enabled without configuration, as overhead.py checks it.
CONFIG: dict[str, Any] = INPUT_TEMPLATE["config"]

# One or two small pure-Python packages per worker, all different, pinned to released versions.
REQUIREMENTS: list[list[str]] = [
    ["six==1.16.0"],
    ["idna==3.7"],
    ["attrs==23.2.0"],
    ["python-dateutil==2.9.0.post0"],
    ["pytz==2024.1"],
    ["toml==0.10.2", "tomli==2.0.1"],
    ["packaging==24.0"],
    ["pyparsing==3.1.2"],
    ["certifi==2024.2.2"],
    ["tomli==2.0.1", "six==1.16.0"],
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(seconds: list[float]) -> dict[str, float]:
    return {
        "jobs": len(seconds),
        "seconds": round(sum(seconds), 4),
        "jobs_per_second": round(len(seconds) / sum(seconds), 3),
        "p50_ms": round(percentile(seconds, 50) * 1000, 3),
        "p90_ms": round(percentile(seconds, 90) * 1000, 3),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 3),
        "max_ms": round(max(seconds) * 1000, 3),
    }


# -- 1. runners ----------------------------------------------------------------------------------------


def worker_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("NEUROCORTEX_")}


def local_spec(directory: JobDirectory, env: dict[str, str]) -> RunSpec:
    argv = command_argv(ANALYZERS, "NoOp/noop.py", sys.executable, directory.path)
    return RunSpec(argv=argv, cwd=ANALYZERS, env=env, timeout=JOB_TIMEOUT, job_directory=directory.path)


def container_spec(directory: JobDirectory, image: str) -> RunSpec:
    # as the executor plans a docker job: `/job` as the argument, the job directory mounted there
    return RunSpec(["/job"], directory.path, {"JAVA_TOOL_OPTIONS": "-Dfile.encoding=UTF8"}, JOB_TIMEOUT,
                   job_directory=directory.path, image=image)  # fmt: skip


async def one_job(run, jobs_root: Path, index: int, env: dict[str, str]) -> float:
    """One NoOp job as the executor runs it: prepare, run, collect, clean up; returns its seconds."""
    started = time.perf_counter()
    directory = JobDirectory.create(jobs_root, f"bench-{index}")
    try:
        data = f"10.0.{index // 250}.{index % 250 + 1}"
        directory.write_input(JobInput(f"bench-{index}", "ip", 2, 2, "", {}, dict(CONFIG), data=data))
        outcome = await run(directory, env)
        output = directory.read_output(MAX_OUTPUT)
        if not output.success:
            raise RuntimeError(
                f"NoOp failed: exit {outcome.exit_code} error {outcome.error} {output.error_message!r}\n"
                f"{outcome.output[-2000:]}"
            )
    finally:
        directory.remove()
    return time.perf_counter() - started


async def runners_phase(
    n: int, warmup: int, scratch: Path, skip_sandbox: bool, docker: tuple[str, str] | None
) -> dict[str, Any]:
    jobs_root = scratch / "jobs"
    data_dir = scratch / "data"
    data_dir.mkdir(parents=True)
    env = worker_environment()
    process = ProcessRunner(MAX_OUTPUT)
    variants: dict[str, Any] = {"process": lambda d, env: process.run(local_spec(d, env))}
    result: dict[str, Any] = {"sandbox_available": None, "sandbox_unavailable_reason": None}
    if docker is not None:
        host, image = docker
        container_runner = DockerRunner(MAX_OUTPUT, host=host, pull="missing")
        result["docker_available"] = container_runner.available()
        result["docker_unavailable_reason"] = container_runner.unavailable_reason
        result["docker_host"], result["docker_image"] = host, image
        if container_runner.available():
            variants["docker"] = lambda d, env: container_runner.run(container_spec(d, image))
    if not skip_sandbox:
        # hidden as app._sandbox does it: the data directory and the jobs folder
        sandbox = SandboxRunner(MAX_OUTPUT, hidden=[data_dir, jobs_root.resolve()])
        result["sandbox_available"] = sandbox.available()
        result["sandbox_unavailable_reason"] = sandbox.unavailable_reason
        result["sandbox_privileged"] = sandbox.privileged
        if sandbox.available():
            variants["sandbox"] = lambda d, env: sandbox.run(local_spec(d, env), SandboxPolicy(network=True))
            variants["sandbox_no_network"] = lambda d, env: sandbox.run(
                local_spec(d, env), SandboxPolicy(network=False)
            )
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(warmup):
        for run in variants.values():
            await one_job(run, jobs_root, -1 - i, env)
    for i in range(n):
        for name, run in variants.items():  # in turns, job by job
            times[name].append(await one_job(run, jobs_root, i, env))
    result["results"] = {name: summary(seconds) for name, seconds in times.items()}
    base = result["results"]["process"]
    for name in ("sandbox", "sandbox_no_network", "docker"):
        if name in result["results"]:
            figures = result["results"][name]
            # sandbox ÷ process in time per job: how much longer a job takes (>1 = slower)
            figures["ratio_time_vs_process"] = round(base["jobs_per_second"] / figures["jobs_per_second"], 3)
            figures["ratio_p50_vs_process"] = round(figures["p50_ms"] / base["p50_ms"], 3)
            figures["added_p50_ms"] = round(figures["p50_ms"] - base["p50_ms"], 3)
    return result


# -- 2. installs ---------------------------------------------------------------------------------------


def make_catalog(root: Path) -> list[Path]:
    definition = json.loads((NOOP_DIR / "NoOp.json").read_text())
    directories = []
    for i, requirements in enumerate(REQUIREMENTS):
        name = f"NoOp{i}"
        directory = root / name
        directory.mkdir(parents=True)
        shutil.copy2(NOOP_DIR / "noop.py", directory / "noop.py")
        own = definition | {"name": name, "command": f"{name}/noop.py", "baseConfig": name}
        (directory / f"{name}.json").write_text(json.dumps(own, indent=2) + "\n")
        (directory / "requirements.txt").write_text("\n".join(["cortexutils", *requirements]) + "\n")
        directories.append(directory)
    return directories


@contextlib.contextmanager
def environ(**values: str):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def neurons_install(scratch: Path, catalog: Path) -> dict[str, Any]:
    responders = scratch / "responders"
    responders.mkdir()
    settings = Settings(
        data_dir=scratch / "neurons-data", analyzers=[str(catalog)], responders=[str(responders)]
    )
    environments = envs.discover(settings)
    if len(environments) != len(REQUIREMENTS):
        raise RuntimeError(f"expected {len(REQUIREMENTS)} environments, discovered {len(environments)}")
    installer = envs.EnvironmentInstaller(jobs=INSTALL_JOBS)
    out: dict[str, Any] = {"environments": len(environments), "jobs": INSTALL_JOBS}
    with environ(UV_CACHE_DIR=str(scratch / "uv-cache")):
        for label, force in (("cold", False), ("warm_force", True)):
            started = time.perf_counter()
            results = asyncio.run(installer.install(environments, force=force))
            elapsed = time.perf_counter() - started
            failed = [f"{r.environment.label}: {r.reason}" for r in results if r.status != envs.INSTALLED]
            if failed:
                raise RuntimeError(f"neurons install ({label}) failed:\n" + "\n".join(failed))
            out[label] = {
                "seconds": round(elapsed, 3),
                "per_environment_seconds": {r.environment.label: round(r.seconds, 3) for r in results},
            }
    # the environments work: each imports cortexutils and its own packages
    for environment in environments:
        python = envs.installed_python(environment.home)
        subprocess.run([python, "-c", "import cortexutils.analyzer"], check=True, capture_output=True)
    return out


def pip_sequential(scratch: Path, directories: list[Path]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PIP_CACHE_DIR")}
    env |= {"PIP_CACHE_DIR": str(scratch / "pip-cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1"}  # fmt: skip
    venvs = scratch / "pip-venvs"
    per_worker: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for directory in directories:
        target = venvs / directory.name
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", str(target)], check=True, env=env, capture_output=True)
        t1 = time.perf_counter()
        done = subprocess.run(
            [str(target / "bin" / "python"), "-m", "pip", "install", "-q", "-r", "requirements.txt"],
            cwd=directory, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"pip install in {directory.name} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        t2 = time.perf_counter()
        per_worker[directory.name] = {"venv": round(t1 - t0, 3), "pip_install": round(t2 - t1, 3)}
    elapsed = time.perf_counter() - started
    pip_version = subprocess.run(
        [str(venvs / directories[0].name / "bin" / "python"), "-m", "pip", "--version"],
        capture_output=True, text=True,
    ).stdout.split(" from ")[0]  # fmt: skip
    return {
        "seconds": round(elapsed, 3),
        "venv_seconds": round(sum(w["venv"] for w in per_worker.values()), 3),
        "pip_install_seconds": round(sum(w["pip_install"] for w in per_worker.values()), 3),
        "pip": pip_version,
        "per_worker": per_worker,
    }


def install_phase(scratch: Path) -> dict[str, Any]:
    catalog = scratch / "catalog"
    directories = make_catalog(catalog)
    print("install: neurons install (uv, cold then warm) ...", flush=True)
    neurons = neurons_install(scratch, catalog)
    print("install: python -m venv + pip install, sequentially ...", flush=True)
    pip = pip_sequential(scratch, directories)
    return {
        "workers": len(directories),
        "requirements": {d.name: (d / "requirements.txt").read_text().split() for d in directories},
        "neurons_install": neurons,
        "pip_sequential": pip,
        "ratio_pip_vs_neurons_cold": round(pip["seconds"] / neurons["cold"]["seconds"], 2),
        "ratio_pip_vs_neurons_warm": round(pip["seconds"] / neurons["warm_force"]["seconds"], 2),
    }


# -- report --------------------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    bwrap = shutil.which("bwrap")
    bwrap_version = (
        subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip() if bwrap else None
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "euid": os.geteuid(),
        "bwrap": bwrap_version,
        "uv": subprocess.run([envs.uv_binary(), "--version"], capture_output=True, text=True).stdout.strip(),
        # pip's configuration (find-links, extra indexes) weighs on the pip figures
        "pip_config": subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
        ).stdout.split(),  # fmt: skip
        "pip_env": {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "UV_"))},
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": commit,
    }


def print_report(report: dict[str, Any]) -> None:
    facts = report["machine"]
    print()
    if facts["loadavg_at_start"][0] > facts["nproc"] * 0.5:
        print(f"warning: load average {facts['loadavg_at_start'][0]} on {facts['nproc']} CPUs at the start: other "
              "work is running, the figures are noisy")  # fmt: skip
    print(f"machine: nproc={facts['nproc']}, Python {facts['python']}, {facts['platform']}, euid {facts['euid']}, "
          f"{facts['bwrap']}, {facts['uv']}, commit {facts['git_commit']}")  # fmt: skip
    runners = report.get("runners")
    if runners is not None:
        print()
        print(
            f"1. NoOp per job, runner classes directly, parallelism 1, {report['jobs']} jobs each (in turns)"
        )
        if runners.get("docker_available") is False:
            print(f"   docker runner unavailable, skipped: {runners['docker_unavailable_reason']}")
        if runners["sandbox_available"] is False:
            print(f"   sandbox runner unavailable, skipped: {runners['sandbox_unavailable_reason']}")
        elif runners["sandbox_available"] is None:
            print("   sandbox runner skipped (--skip-sandbox)")
        print(f"   {'':24}{'jobs/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'time ÷ process':>16}{'p50 ÷ process':>15}")
        for name, x in runners["results"].items():
            ratio = f"{x['ratio_time_vs_process']:.3f}" if "ratio_time_vs_process" in x else "-"
            p50_ratio = f"{x['ratio_p50_vs_process']:.3f}" if "ratio_p50_vs_process" in x else "-"
            print(f"   {name:24}{x['jobs_per_second']:>9.1f}{x['p50_ms']:>9.1f}{x['p90_ms']:>9.1f}"
                  f"{ratio:>16}{p50_ratio:>15}")  # fmt: skip
    install = report.get("install")
    if install is not None:
        n, p = install["neurons_install"], install["pip_sequential"]
        print()
        print(f"2. installing {install['workers']} workers (cortexutils + 1-2 small packages each)")
        print(f"   neurons install (uv, jobs={n['jobs']}), cold uv cache   {n['cold']['seconds']:8.1f} s")
        print(f"   neurons install --force, warm uv cache          {n['warm_force']['seconds']:8.1f} s")
        print(f"   venv + {p['pip']}, sequential, cold cache      {p['seconds']:8.1f} s"
              f"  (venv {p['venv_seconds']:.1f} s, pip install {p['pip_install_seconds']:.1f} s)")  # fmt: skip
        print(f"   ratio pip ÷ neurons install: cold {install['ratio_pip_vs_neurons_cold']:.1f}×, "
              f"warm {install['ratio_pip_vs_neurons_warm']:.1f}×")  # fmt: skip


@contextlib.contextmanager
def docker_daemon(args: argparse.Namespace, scratch: Path):
    """(host, NoOp image) for the docker runner, or None to skip it."""
    if args.skip_docker:
        yield None
        return
    if args.docker_host:
        if not args.docker_image:
            raise SystemExit("--docker-host needs --docker-image")
        yield args.docker_host, args.docker_image
        return
    sys.path.insert(0, str(ROOT))
    from tests.podman import Podman, podman_missing

    missing = podman_missing()
    if missing:
        print(f"docker runner skipped: {missing}", flush=True)
        yield None
        return
    home = scratch / "podman"
    home.mkdir()
    podman = Podman(home)
    podman.start()
    try:
        print("docker: importing a Python image and building NoOp's ...", flush=True)
        podman.import_python_image()
        yield podman.url, podman.worker_image("localhost/bench-noop:1", ANALYZERS, "NoOp/noop.py")
    finally:
        podman.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100, help="NoOp runs per runner (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per runner first (default 5)")
    parser.add_argument("--skip-sandbox", action="store_true", help="process runner only")
    parser.add_argument("--skip-docker", action="store_true", help="no docker runner in part 1")
    parser.add_argument(
        "--docker-host",
        default=None,
        help="a Docker or Podman API to use, with --docker-image; by default a private Podman "
        "service is started, with a NoOp image made offline (tests/podman.py)",
    )
    parser.add_argument("--docker-image", default=None, help="an image running NoOp (with --docker-host)")
    parser.add_argument("--skip-runners", action="store_true", help="no part 1")
    parser.add_argument("--skip-install", action="store_true", help="no part 2")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default bench/results/...)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be ≥ 1")
    started = time.perf_counter()
    report: dict[str, Any] = {
        "benchmark": "runners",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_facts(),
        "jobs": args.jobs,
        "warmup": args.warmup,
    }
    with tempfile.TemporaryDirectory(prefix="nc-bench-runners-") as tmp:
        scratch = Path(tmp)
        if not args.skip_runners:
            with docker_daemon(args, scratch) as docker:
                print("runners: process / sandbox / sandbox without network / docker ...", flush=True)
                report["runners"] = asyncio.run(
                    runners_phase(args.jobs, args.warmup, scratch / "runners", args.skip_sandbox, docker)
                )
        if not args.skip_install:
            (scratch / "install").mkdir()
            report["install"] = install_phase(scratch / "install")
    report["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    print_report(report)
    output = args.output or RESULTS / f"runners-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    shown = output.relative_to(ROOT) if output.is_relative_to(ROOT) else output
    print(f"\n{report['wall_seconds']} s; written to {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
