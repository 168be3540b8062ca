"""Engine overhead: the NoOp analyzer run directly vs through a real neurocortex server, in one run.

    python bench/overhead.py [--jobs N] [--parallelism 1,4] [--cache-requests M]
                             [--profile DIR] [--server-launcher SCRIPT] [--strict]

For each parallelism P it measures, side by side:

1. direct: N NoOp runs exactly as the engine runs them (a fresh job directory holding input/input.json as
   Cortex writes it — checked against a job folder the server kept — and an empty output/, argv
   `[python, <root>/NoOp/noop.py, <jobdir>]`, cwd = the analyzers root, own session, output on a pipe),
   P subprocesses at a time;
2. engine, one by one: a real `neurocortex serve` (NEUROCORTEX_ANALYZER_CONCURRENCY=P) fed over HTTP by
   P client tasks, each submitting a job then waiting for it with `GET /api/job/{id}/waitreport`
   (the end-to-end time a client sees), with where that time goes (submit, dispatch, run, report);
3. engine, all at once: N jobs submitted, then all N waited for;

and prints the ratio direct jobs/s ÷ engine jobs/s (target ≤ 1.10). Then, with the cache on, the latency
of M sequential cache-hit `POST /api/analyzer/:id/run` (target p50 < 5 ms), with `GET /api/job/:id` and
`GET /api/status` (no auth, no database: the HTTP floor) for comparison.

CPU time per job is split between the analyzer processes, the harness/client (this process) and the
server, read from /proc: the server's own CPU per job is the engine's cost. The CPU ratio (all processes,
engine ÷ direct) is what the jobs/s ratio tends to once the CPUs are saturated (P > nproc), and it is
much less disturbed than jobs/s by other work running on the machine.

The figures and the machine facts are printed and written to bench/results/overhead-<timestamp>.json.
`--profile DIR` also samples the server with py-spy (if installed) during each engine phase, as
collapsed stacks in DIR (the figures of such a run are then lowered by the sampling). `--server-launcher`
runs a script instead of `python -m neurocortex`, e.g. one that monkeypatches a change before calling
neurocortex.cli.main(), to compare it with the current code in the same conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
ANALYZERS = ROOT / "tests" / "workers" / "analyzers"
RESPONDERS = ROOT / "tests" / "workers" / "responders"
NOOP = ANALYZERS / "NoOp" / "noop.py"
DEFINITION = "NoOp_1_0"
RESULTS = ROOT / "bench" / "results"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
RATIO_TARGET = 1.10
CACHE_P50_TARGET_MS = 5.0
STAGES = ("submitted→created", "created→claimed", "claimed→ended", "ended→report received")
"""Where a job's end-to-end time goes, from the job's createdAt/startDate/endDate and the client's clock:
HTTP + auth + insert; dispatch; prepare + spawn + analyzer + collect + result write; wake-up + report read."""
CLIENT_WINDOW = 16
"""Requests in flight at once in the all-at-once variant (submissions, then long polls)."""

# input.json as the engine writes it for NoOp enabled without configuration: `data`, then the job's
# fields, then `config` = the definition's config merged with every accepted item's default (global
# items, then the TLP/PAP checks). Checked against a job folder the server keeps (see input_json_check).
INPUT_TEMPLATE: dict[str, Any] = {
    "data": None,
    "dataType": "ip",
    "tlp": 2,
    "pap": 2,
    "message": "",
    "parameters": {},
    "config": {
        "auto_extract_artifacts": False,
        "jobCache": 10.0,
        "proxy_http": None,
        "proxy_https": None,
        "cacerts": None,
        "jobTimeout": 30.0,
        "check_tlp": None,
        "max_tlp": None,
        "check_pap": None,
        "max_pap": None,
    },
}


def observable(p: int, phase: int, i: int) -> str:
    return f"10.{p}{phase}.{i // 250}.{i % 250 + 1}"


# -- measurements --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3) if ms else float("nan"),
        "max_ms": round(max(ms), 3) if ms else float("nan"),
    }


@dataclass
class CpuSnapshot:
    """CPU seconds so far: this process, its reaped children, and optionally a server and its children."""

    own: float
    own_children: float
    server: float = 0.0
    server_children: float = 0.0

    @classmethod
    def take(cls, server_pid: int | None = None) -> CpuSnapshot:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        snapshot = cls(own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime)
        if server_pid is not None:
            with open(f"/proc/{server_pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            # after the command: state=3, utime=14, stime=15, cutime=16, cstime=17 (1-based, man proc)
            snapshot.server = (int(fields[11]) + int(fields[12])) / CLOCK_TICK
            snapshot.server_children = (int(fields[13]) + int(fields[14])) / CLOCK_TICK
        return snapshot


@dataclass
class Phase:
    name: str
    jobs: int
    parallelism: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "parallelism": self.parallelism,
            "seconds": round(self.seconds, 4),
            "jobs_per_second": round(self.jobs_per_second, 3),
            "latency": latency_summary(self.latencies) if self.latencies else None,
            "cpu_ms_per_job": {k: round(v * 1000 / self.jobs, 3) for k, v in self.cpu.items()},
        } | self.extra


async def in_lanes(lanes: int, n: int, one: Callable[[int], Awaitable[None]]) -> None:
    """one(i) for i in range(n) in order, `lanes` at a time."""
    indexes = iter(range(n))

    async def lane() -> None:
        for i in indexes:
            await one(i)

    await asyncio.gather(*(lane() for _ in range(min(lanes, n))))


async def timed_pool(
    name: str, n: int, p: int, one: Callable[[int], Awaitable[None]], server_pid: int | None, engine: bool
) -> Phase:
    """Run one(i) for i in range(n), P at a time; latencies per call, CPU split per side."""
    latencies: list[float] = []
    next_index = iter(range(n))

    async def lane() -> None:
        for i in next_index:
            started = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - started)

    before = CpuSnapshot.take(server_pid)
    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(p)))
    elapsed = time.perf_counter() - started
    after = CpuSnapshot.take(server_pid)
    return Phase(name, n, p, elapsed, latencies, cpu_split(before, after, engine))


def cpu_split(before: CpuSnapshot, after: CpuSnapshot, engine: bool) -> dict[str, float]:
    if engine:
        return {
            "analyzers": after.server_children - before.server_children,
            "server": after.server - before.server,
            "client": after.own - before.own,
        }
    return {"analyzers": after.own_children - before.own_children, "harness": after.own - before.own}


# -- direct execution ----------------------------------------------------------------------------------


def worker_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("NEUROCORTEX_")}


async def run_direct(jobs_root: Path, env: dict[str, str], data: str) -> None:
    """One NoOp run the way the engine does it, minus the engine: prepare, spawn, wait, read, clean up."""
    path = Path(tempfile.mkdtemp(dir=jobs_root, prefix="cortex-job-"))
    try:
        (path / "input").mkdir()
        (path / "output").mkdir()
        document = INPUT_TEMPLATE | {"data": data}
        (path / "input" / "input.json").write_bytes(
            json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(NOOP),
            str(path),
            cwd=ANALYZERS,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        printed, _ = await process.communicate()
        output = json.loads((path / "output" / "output.json").read_bytes())
        if process.returncode != 0 or output.get("success") is not True:
            raise RuntimeError(f"NoOp failed (exit {process.returncode}): {printed[-2000:]!r} {output}")
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def direct_phase(n: int, p: int, warmup: int, scratch: Path) -> Phase:
    jobs_root = scratch / f"direct-P{p}"
    jobs_root.mkdir(parents=True, exist_ok=True)
    env = worker_environment()
    for i in range(warmup):
        await run_direct(jobs_root, env, observable(p, 0, i))
    return await timed_pool(
        "direct", n, p, lambda i: run_direct(jobs_root, env, observable(p, 1, i)), None, engine=False
    )


# -- the server ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m neurocortex serve` in a temporary data directory (as tests/conftest.py starts it)."""

    def __init__(self, data_dir: Path, concurrency: int, launcher: Path | None = None) -> None:
        self.data_dir = data_dir
        self.command = [sys.executable, str(launcher)] if launcher else [sys.executable, "-m", "neurocortex"]
        self.port = free_port()
        self.env = worker_environment() | {
            "NEUROCORTEX_DATA_DIR": str(data_dir),
            "NEUROCORTEX_ANALYZERS": str(ANALYZERS),
            "NEUROCORTEX_RESPONDERS": str(RESPONDERS),
            "NEUROCORTEX_RUNNERS": "process",
            "NEUROCORTEX_LOG_LEVEL": "warning",
            "NEUROCORTEX_ANALYZER_CONCURRENCY": str(concurrency),
        }
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.command, "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/status", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def expect(response: httpx.Response, status: int = 200) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} → {response.status_code}: {response.text[:500]}"
        )
    return response


async def bootstrap(url: str) -> str:
    """First superadmin (init pseudo-user, loopback), an organization, an analyst-orgadmin and its API key."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as anonymous:
        expect(
            await anonymous.post(
                "/api/user",
                json={
                    "login": "admin",
                    "name": "Admin",
                    "roles": ["superadmin"],
                    "organization": "cortex",
                    "password": "pw",
                },  # fmt: skip
            ),
            201,
        )
        expect(await anonymous.post("/api/login", json={"user": "admin", "password": "pw"}))
        xsrf = {"X-CORTEX-XSRF-TOKEN": anonymous.cookies.get("CORTEX-XSRF-TOKEN", "")}
        admin_key = expect(await anonymous.post("/api/user/admin/key/renew", headers=xsrf)).text
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60
    ) as admin:
        expect(await admin.post("/api/organization", json={"name": "bench", "description": "bench"}), 201)
        expect(
            await admin.post(
                "/api/user",
                json={
                    "login": "bench-analyst",
                    "name": "Bench",
                    "roles": ["read", "analyze", "orgadmin"],
                    "organization": "bench",
                },  # fmt: skip
            ),
            201,
        )
        return expect(await admin.post("/api/user/bench-analyst/key/renew")).text


async def enable(client: httpx.AsyncClient, name: str, job_cache: float) -> str:
    response = await client.post(
        f"/api/organization/analyzer/{DEFINITION}", json={"name": name, "jobCache": job_cache}
    )
    return expect(response, 201).json()["id"]


async def run_and_wait(client: httpx.AsyncClient, worker: str, data: str, **extra: Any) -> dict[str, Any]:
    body = {"data": data, "dataType": "ip", "tlp": 2, "pap": 2} | extra
    job = expect(await client.post(f"/api/analyzer/{worker}/run", json=body)).json()
    return await wait_report(client, job["id"])


async def wait_report(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    report = expect(await client.get(f"/api/job/{job_id}/waitreport", params={"atMost": "1minute"})).json()
    if report.get("status") != "Success" or report.get("report", {}).get("full") != {"ok": True}:
        raise RuntimeError(f"job {job_id} did not succeed: {json.dumps(report)[:1000]}")
    return report


def input_json_check(server: Server, job_id: str) -> dict[str, Any]:
    """Compare the input.json the server wrote (kept job folder) with the one the direct runs use."""
    kept = sorted((server.data_dir / "jobs").glob(f"cortex-job-{job_id}-*/input/input.json"))
    if not kept:
        return {"checked": False, "reason": "no kept job folder found"}
    written = json.loads(kept[0].read_bytes())
    ignored = ("data", "parameters")
    ours = {k: v for k, v in INPUT_TEMPLATE.items() if k not in ignored}
    theirs = {k: v for k, v in written.items() if k not in ignored}
    return {"checked": True, "identical": ours == theirs and list(written) == list(INPUT_TEMPLATE),
            "engine": written}  # fmt: skip


class Profiler:
    """py-spy sampling the server during a phase, as collapsed stacks (no-op without --profile)."""

    def __init__(self, directory: Path | None, options: str) -> None:
        self.directory = directory
        self.options = options.split()
        self.executable = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if directory is not None and not Path(self.executable).exists():
            print("warning: py-spy not found, --profile ignored", file=sys.stderr)
            self.directory = None

    @contextlib.asynccontextmanager
    async def sampling(self, pid: int, name: str):
        if self.directory is None:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        output = self.directory / f"{name}.txt"
        with open(self.directory / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                [
                    self.executable,
                    "record",
                    "--pid",
                    str(pid),
                    *self.options,
                    "--format",
                    "raw",
                    "--output",
                    str(output),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await asyncio.sleep(1.0)  # py-spy attaches
        try:
            yield
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def engine_phases(
    n: int,
    p: int,
    warmup: int,
    scratch: Path,
    cache_requests: int,
    profiler: Profiler,
    launcher: Path | None,
) -> dict[str, Any]:
    server = Server(scratch / f"server-P{p}", p, launcher)
    out: dict[str, Any] = {}
    try:
        server.start()
        key = await bootstrap(server.url)
        lanes = max(CLIENT_WINDOW, p) + 4
        limits = httpx.Limits(max_connections=lanes, max_keepalive_connections=lanes)
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120, limits=limits
        ) as client:
            worker = await enable(client, DEFINITION, job_cache=0)

            kept = await run_and_wait(client, worker, "192.0.2.1", parameters={"keepJobFolder": True})
            out["input_json"] = input_json_check(server, kept["id"])
            await asyncio.gather(*(run_and_wait(client, worker, observable(p, 2, i)) for i in range(warmup)))

            stages: list[tuple[float, ...]] = []

            async def per_job(i: int) -> None:
                submitted = time.time() * 1000
                job = await run_and_wait(client, worker, observable(p, 3, i))
                received = time.time() * 1000
                marks = (submitted, job["createdAt"], job["startDate"], job["endDate"], received)
                stages.append(tuple(b - a for a, b in zip(marks, marks[1:], strict=False)))

            async with profiler.sampling(server.pid, f"P{p}-engine-one-by-one"):
                out["one_by_one"] = await timed_pool("engine one by one", n, p, per_job, server.pid, True)
            # the server's clock (ms) and ours are the same machine's
            out["one_by_one"].extra["stages_p50_ms"] = {
                name: round(statistics.median(column), 1)
                for name, column in zip(STAGES, zip(*stages, strict=True), strict=True)
            }

            async def all_at_once() -> Phase:
                submitted: dict[int, float] = {}
                ids: dict[int, str] = {}
                latencies: list[float] = []

                async def submit(i: int) -> None:
                    submitted[i] = time.perf_counter()
                    body = {"data": observable(p, 4, i), "dataType": "ip", "tlp": 2, "pap": 2}
                    response = await client.post(f"/api/analyzer/{worker}/run", json=body)
                    ids[i] = expect(response).json()["id"]

                async def wait(i: int) -> None:
                    await wait_report(client, ids[i])
                    latencies.append(time.perf_counter() - submitted[i])

                before = CpuSnapshot.take(server.pid)
                started = time.perf_counter()
                await in_lanes(CLIENT_WINDOW, n, submit)
                submitted_after = time.perf_counter() - started
                # waits in submission order, a window at a time: jobs end in about that order, and httpx's
                # pool costs O(connections) per request, which N open long polls would turn into the
                # bottleneck of the figure (client CPU, not the engine's)
                await in_lanes(CLIENT_WINDOW, n, wait)
                elapsed = time.perf_counter() - started
                phase = Phase("engine all at once", n, p, elapsed, latencies,
                              cpu_split(before, CpuSnapshot.take(server.pid), True))  # fmt: skip
                phase.extra["submission_seconds"] = round(submitted_after, 4)
                return phase

            async with profiler.sampling(server.pid, f"P{p}-engine-all-at-once"):
                out["all_at_once"] = await all_at_once()

            if cache_requests:
                async with profiler.sampling(server.pid, f"P{p}-cache-hits"):
                    out["latency"] = await latency_phases(client, cache_requests, server.pid)
    except Exception:
        print(server.log()[-5000:], file=sys.stderr)
        raise
    finally:
        server.stop()
    return out


async def latency_phases(client: httpx.AsyncClient, m: int, server_pid: int) -> dict[str, Any]:
    """Sequential request latencies: cache-hit runs, a job read, and the status page as the HTTP floor."""
    worker = await enable(client, "NoOp_cached", job_cache=10)
    body = {"data": "198.51.100.7", "dataType": "ip", "tlp": 2, "pap": 2}
    first = await run_and_wait(client, worker, body["data"])
    job_id = first["id"]
    warmup = max(50, m // 20)

    async def cache_hit() -> None:
        job = expect(await client.post(f"/api/analyzer/{worker}/run", json=body)).json()
        if not job.get("fromCache") or job["id"] != job_id:
            raise RuntimeError(f"expected a cache hit on {job_id}, got {job}")

    async def get_job() -> None:
        expect(await client.get(f"/api/job/{job_id}"))

    async def status() -> None:
        expect(await client.get("/api/status"))

    results: dict[str, Any] = {}
    for name, request in (("cache_hit_run", cache_hit), ("get_job", get_job), ("get_status", status)):
        for _ in range(warmup):
            await request()
        seconds = []
        before = CpuSnapshot.take(server_pid)
        for _ in range(m):
            started = time.perf_counter()
            await request()
            seconds.append(time.perf_counter() - started)
        after = CpuSnapshot.take(server_pid)
        results[name] = latency_summary(seconds) | {
            "server_cpu_ms_per_request": round((after.server - before.server) * 1000 / m, 3),
            "client_cpu_ms_per_request": round((after.own - before.own) * 1000 / m, 3),
        }
    return results


# -- report --------------------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True,
                                text=True).stdout.strip())  # fmt: skip
    try:
        from neurocortex import __version__ as version
    except ImportError:
        version = "?"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "neurocortex": version,
        "git_commit": commit + ("+dirty src" if dirty else ""),
    }


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def print_report(report: dict[str, Any]) -> None:
    facts = report["machine"]
    ps = report["parallelism"]
    print()
    print(f"neurocortex engine overhead — NoOp analyzer, {report['jobs']} jobs per figure")
    print(f"machine: nproc={facts['nproc']} ({facts['cpu_model']}), Python {facts['python']}, "
          f"{facts['platform']}, neurocortex {facts['neurocortex']} @ {facts['git_commit']}")  # fmt: skip
    check = report.get("input_json", {})
    same = "yes" if check.get("identical") else f"NO ({check.get('reason', 'differs, see the JSON')})"
    print(f"input.json of the direct runs identical to the engine's (data, parameters aside): {same}")
    if report.get("server_launcher"):
        print(f"server started by {report['server_launcher']}")
    if report.get("profiled"):
        print("profiled run: py-spy sampling slows the server, the figures are not representative")
    width = 12
    header = f"{'':44}" + "".join(f"{'P=' + str(p):>{width}}" for p in ps)
    print(header)
    print("-" * len(header))

    def row(label: str, values: list[str]) -> None:
        print(f"{label:44}" + "".join(f"{v:>{width}}" for v in values))

    by_p = {p: report["results"][str(p)] for p in ps}
    row("direct                         jobs/s", [fmt(by_p[p]["direct"]["jobs_per_second"]) for p in ps])
    row("  latency per run          p50 ms", [fmt(by_p[p]["direct"]["latency"]["p50_ms"]) for p in ps])
    for key, label in (("one_by_one", "engine, submit+waitreport"), ("all_at_once", "engine, all N at once")):
        row(f"{label:31}jobs/s", [fmt(by_p[p][key]["jobs_per_second"]) for p in ps])
        row("  end-to-end latency       p50 ms", [fmt(by_p[p][key]["latency"]["p50_ms"]) for p in ps])
        row("  ratio direct ÷ engine", [fmt(by_p[p][key]["ratio"], 3) for p in ps])
        row("  CPU ratio engine ÷ direct (all processes)", [fmt(by_p[p][key]["cpu_ratio"], 3) for p in ps])
        if key == "one_by_one":  # all at once, the latency is mostly queueing
            row("  latency added per job    p50 ms",
                [fmt(by_p[p][key]["latency"]["p50_ms"] - by_p[p]["direct"]["latency"]["p50_ms"]) for p in ps])  # fmt: skip
    print("where a job's time goes (engine, submit+waitreport), p50 ms:")
    for stage in STAGES:
        row(f"  {stage}", [fmt(by_p[p]["one_by_one"]["stages_p50_ms"][stage]) for p in ps])
    print()
    print("CPU ms per job (analyzer processes / harness or client / server itself)")
    for p in ps:
        d = by_p[p]["direct"]["cpu_ms_per_job"]
        e = by_p[p]["one_by_one"]["cpu_ms_per_job"]
        a = by_p[p]["all_at_once"]["cpu_ms_per_job"]
        print(f"  P={p}: direct {fmt(d['analyzers'])} / {fmt(d['harness'])} / -   "
              f"engine one by one {fmt(e['analyzers'])} / {fmt(e['client'])} / {fmt(e['server'])}   "
              f"all at once {fmt(a['analyzers'])} / {fmt(a['client'])} / {fmt(a['server'])}")  # fmt: skip
    latency = report.get("latency")
    if latency:
        print()
        print(f"sequential request latency ({latency['cache_hit_run']['count']} requests each, P={latency['on']})"
              "          p50 ms   p99 ms   server CPU ms/req")  # fmt: skip
        for key, label in (("cache_hit_run", "POST /api/analyzer/:id/run (cache hit)"),
                           ("get_job", "GET /api/job/:id"), ("get_status", "GET /api/status (HTTP floor)")):  # fmt: skip
            x = latency[key]
            print(f"  {label:62}{fmt(x['p50_ms'], 2):>7}  {fmt(x['p99_ms'], 2):>7}"
                  f"  {fmt(x['server_cpu_ms_per_request'], 2):>10}")  # fmt: skip
    print()
    # the load before we started: what else this machine was doing (ours shows in the load at the end)
    busy = report["machine"]["loadavg_at_start"][0]
    if busy > report["machine"]["nproc"] * 0.5:
        print(f"warning: load average {busy} on {report['machine']['nproc']} CPUs before the run — other work is "
              "running, the jobs/s figures are unreliable; the CPU figures and CPU ratios much less so")  # fmt: skip
    for verdict in report["verdicts"]:
        print(verdict)


def verdicts(report: dict[str, Any]) -> list[str]:
    lines = []
    for p in report["parallelism"]:
        for key in ("one_by_one", "all_at_once"):
            ratio = report["results"][str(p)][key]["ratio"]
            ok = "PASS" if ratio <= RATIO_TARGET else "FAIL"
            lines.append(f"{ok}  P={p} {key.replace('_', ' ')}: ratio {ratio:.3f} (target ≤ {RATIO_TARGET})")
    latency = report.get("latency")
    if latency:
        p50 = latency["cache_hit_run"]["p50_ms"]
        ok = "PASS" if p50 < CACHE_P50_TARGET_MS else "FAIL"
        lines.append(f"{ok}  cache-hit run p50 {p50:.2f} ms (target < {CACHE_P50_TARGET_MS} ms)")
    return lines


# -- main ----------------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "overhead",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_facts(),
        "jobs": args.jobs,
        "warmup": args.warmup,
        "parallelism": args.parallelism,
        "cache_requests": args.cache_requests,
        "profiled": args.profile is not None,
        "server_launcher": str(args.server_launcher) if args.server_launcher else None,
        "results": {},
    }
    profiler = Profiler(args.profile, args.profile_options)
    with tempfile.TemporaryDirectory(prefix="nc-bench-") as tmp:
        scratch = Path(tmp)
        for index, p in enumerate(args.parallelism):
            print(f"P={p}: direct ...", flush=True)
            direct = await direct_phase(args.jobs, p, args.warmup, scratch)
            print(f"P={p}: engine ...", flush=True)
            last = index == len(args.parallelism) - 1
            engine = await engine_phases(
                args.jobs,
                p,
                args.warmup,
                scratch,
                args.cache_requests if last else 0,
                profiler,
                args.server_launcher,
            )
            figures: dict[str, Any] = {"direct": direct.as_json()}
            direct_cpu = sum(direct.cpu.values())
            for key in ("one_by_one", "all_at_once"):
                phase: Phase = engine[key]
                figures[key] = phase.as_json() | {
                    "ratio": direct.jobs_per_second / phase.jobs_per_second,
                    # what the throughput ratio tends to once the CPUs are saturated, whatever else runs
                    "cpu_ratio": sum(phase.cpu.values()) / direct_cpu,
                }
            report["results"][str(p)] = figures
            report.setdefault("input_json", engine["input_json"])
            if "latency" in engine:
                report["latency"] = engine["latency"] | {"on": p}
    report["verdicts"] = verdicts(report)
    report["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs per figure (default 200)")
    parser.add_argument("--parallelism", default="1,4", help="comma-separated P values (default 1,4)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs before each figure")
    parser.add_argument(
        "--cache-requests", type=int, default=2000, help="sequential requests per latency figure"
    )
    parser.add_argument("--profile", type=Path, default=None, help="sample the server with py-spy into DIR")
    parser.add_argument(
        "--profile-options",
        default="--rate 250 --nonblocking",
        help="py-spy record options (e.g. '--native')",
    )
    parser.add_argument(
        "--server-launcher",
        type=Path,
        default=None,
        help="a Python script run as `python SCRIPT serve --port N` instead of `python -m neurocortex` "
        "(A/B runs of a patched server)",
    )
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default bench/results/...)")
    parser.add_argument("--strict", action="store_true", help="exit with 1 when a target is missed")
    args = parser.parse_args(argv)
    args.parallelism = [int(x) for x in args.parallelism.split(",") if x.strip()]
    if not args.parallelism or min(args.parallelism) < 1 or args.jobs < 1:
        parser.error("--jobs and every --parallelism value must be ≥ 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report = asyncio.run(bench(args))
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    print_report(report)
    output = args.output or RESULTS / f"overhead-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(
        f"\n{report['wall_seconds']} s; written to {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}"
    )
    missed = any(not v.startswith("PASS") for v in report["verdicts"])
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
