"""Durable execution at scale (issue 3), in one run:

    python bench/distributed.py [--jobs N] [--parallelism P] [--broker URL] [--sleepers M] [--pollers C]
                                [--skip-celery] [--skip-sleepers]

1. No-op throughput: N jobs of the NoOp analyzer, all submitted at once, then all waited for, through
   (a) the embedded server (SQLite, P jobs at once), (b) a `serve` node + one `neurocortex worker`
   (PostgreSQL + the broker, P jobs at once per worker) and (c) the same with two workers; against (d)
   the same N NoOp runs started directly, P at a time (bench/overhead.py's run_direct). Jobs/s of each.
2. Many slow jobs: M jobs of the Doze analyzer (a shell script that sleeps 2 s, a stand-in for a
   network-bound analyzer at a shell's memory cost) on the embedded server with M jobs allowed at once:
   the wall time from the first submission to the last end against the ideal 2 s, the server's peak
   memory (VmHWM) and that of the server with all its analyzer processes (RSS, sampled), how long jobs
   waited and ran (p50/p99). Meanwhile C clients poll `GET /api/job/{id}` without pause: p50/p99 of their latency. Twice: submitted one request
   per job (64 in flight), then all in one `POST /api/job/_bulk`.

Figures are printed and written to bench/results/distributed-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from overhead import (  # bench/ is the script's directory, hence on sys.path
    Server,
    bootstrap,
    expect,
    machine_facts,
    percentile,
    run_direct,
    worker_environment,
)

RESULTS = Path(__file__).resolve().parent / "results"
POSTGRES_ADMIN = os.environ.get(
    "NEUROCORTEX_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SLEEP_SECONDS = 2.0
WINDOW = 64
"""Requests in flight at once from the submitting client."""


async def enable(client: httpx.AsyncClient, definition: str) -> str:
    response = await client.post(
        f"/api/organization/analyzer/{definition}", json={"name": definition, "jobCache": 0}
    )
    return expect(response, 201).json()["id"]


async def submit_all(client: httpx.AsyncClient, worker: str, n: int, tag: str) -> list[str]:
    ids: list[str] = [""] * n
    gate = asyncio.Semaphore(WINDOW)

    async def one(i: int) -> None:
        async with gate:
            body = {"data": f"{tag}-{i}-{secrets.token_hex(4)}", "dataType": "other", "tlp": 2, "pap": 2}
            ids[i] = expect(await client.post(f"/api/analyzer/{worker}/run", json=body)).json()["id"]

    await asyncio.gather(*(one(i) for i in range(n)))
    return ids


async def wait_all(client: httpx.AsyncClient, ids: list[str]) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(WINDOW)

    async def one(job_id: str) -> dict[str, Any]:
        async with gate:
            job = expect(
                await client.get(f"/api/job/{job_id}/waitreport", params={"atMost": "5minutes"})
            ).json()
            if job["status"] != "Success":
                raise RuntimeError(f"job {job_id}: {json.dumps(job)[:500]}")
            return job

    return await asyncio.gather(*(one(job_id) for job_id in ids))


async def throughput(url: str, key: str, definition: str, n: int, tag: str) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600
    ) as client:
        worker = await enable(client, definition)
        await wait_all(client, await submit_all(client, worker, 8, f"{tag}-warm"))
        started = time.perf_counter()
        await wait_all(client, await submit_all(client, worker, n, tag))
        seconds = time.perf_counter() - started
    return {"jobs": n, "seconds": round(seconds, 3), "jobs_per_s": round(n / seconds, 1)}


async def direct(n: int, p: int, scratch: Path) -> dict[str, Any]:
    jobs_root = scratch / "direct"
    jobs_root.mkdir()
    env = worker_environment()
    gate = asyncio.Semaphore(p)

    async def one(i: int) -> None:
        async with gate:
            await run_direct(jobs_root, env, f"direct-{i}")

    await asyncio.gather(*(one(i) for i in range(4)))
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    seconds = time.perf_counter() - started
    return {"jobs": n, "seconds": round(seconds, 3), "jobs_per_s": round(n / seconds, 1)}


class Cluster:
    """A distributed setup for the bench: a fresh PostgreSQL database, one `serve` node, W workers."""

    def __init__(self, scratch: Path, broker: str, workers: int, p: int) -> None:
        self.database = f"nc_bench_{secrets.token_hex(5)}"
        base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        self.env = {
            "NEUROCORTEX_DATABASE_URL": f"{base}/{self.database}",
            "NEUROCORTEX_BROKER_URL": broker,
            "NEUROCORTEX_BROKER_QUEUE": f"nc-bench-{secrets.token_hex(4)}",
            "NEUROCORTEX_SECRET_KEY": secrets.token_urlsafe(32),
        }
        self.server = Server(scratch / "serve", p)
        self.server.env |= self.env
        self.workers = [(scratch / f"worker{i}", p) for i in range(workers)]
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> Cluster:
        subprocess.run(["psql", POSTGRES_ADMIN, "-qc", f"CREATE DATABASE {self.database}"], check=True)
        self.server.start()
        for data_dir, p in self.workers:
            data_dir.mkdir(parents=True)
            env = self.server.env | {"NEUROCORTEX_DATA_DIR": str(data_dir)}
            with open(data_dir / "worker.log", "ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "neurocortex", "worker", "--concurrency", str(p)],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=data_dir,
                    )  # fmt: skip
                )
        return self

    async def wait_for_workers(self, admin_key: str) -> None:
        async with httpx.AsyncClient(
            base_url=self.server.url, headers={"Authorization": f"Bearer {admin_key}"}
        ) as c:
            for _ in range(600):
                if len((await c.get("/api/node")).json()) >= len(self.workers):
                    return
                await asyncio.sleep(0.1)
        raise RuntimeError("the workers did not register")

    def __exit__(self, *_exc: object) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(30)
        self.server.stop()
        subprocess.run(["psql", POSTGRES_ADMIN, "-qc", f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"],
                       check=False)  # fmt: skip


async def superadmin_key(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=60) as anonymous:
        expect(await anonymous.post("/api/login", json={"user": "admin", "password": "pw"}))
        xsrf = {"X-CORTEX-XSRF-TOKEN": anonymous.cookies.get("CORTEX-XSRF-TOKEN", "")}
        return expect(await anonymous.post("/api/user/admin/key/renew", headers=xsrf)).text


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants (the server and the analyzers it runs)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
    return total


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def submit_bulk(client: httpx.AsyncClient, worker: str, n: int, tag: str) -> list[str]:
    """All the jobs in one `POST /api/job/_bulk` (issue 8's bulk analysis)."""
    body = {
        "observables": [{"dataType": "other", "data": f"{tag}-{i}-{secrets.token_hex(4)}"} for i in range(n)],
        "analyzers": [worker],
    }
    entries = expect(await client.post("/api/job/_bulk", json=body)).json()
    missing = [entry for entry in entries if "jobId" not in entry]
    if missing:
        raise RuntimeError(f"{len(missing)} jobs not created: {missing[0]}")
    return [entry["jobId"] for entry in entries]


async def sleepers(scratch: Path, m: int, pollers: int, bulk: bool) -> dict[str, Any]:
    server = Server(scratch / f"sleepers-{'bulk' if bulk else 'single'}", m)
    server.env |= {"NEUROCORTEX_MAX_RUNNING_JOBS": str(m)}
    server.start()
    try:
        key = await bootstrap(server.url)
        limits = httpx.Limits(max_connections=WINDOW + pollers + 8)
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600, limits=limits
        ) as client:
            worker = await enable(client, "Doze_1_0")
            peak_tree = 0
            ids: list[str] = []
            latencies: list[float] = []
            done = asyncio.Event()

            async def poll() -> None:
                while not ids and not done.is_set():
                    await asyncio.sleep(0.01)
                while not done.is_set():
                    started = time.perf_counter()
                    expect(await client.get(f"/api/job/{random.choice(ids)}"))
                    latencies.append(time.perf_counter() - started)

            async def sample_memory() -> None:
                nonlocal peak_tree
                while not done.is_set():
                    peak_tree = max(peak_tree, await asyncio.to_thread(tree_rss, server.pid))
                    await asyncio.sleep(0.1)

            background = [asyncio.create_task(poll()) for _ in range(pollers)]
            background.append(asyncio.create_task(sample_memory()))
            started = time.perf_counter()
            ids.extend(await (submit_bulk if bulk else submit_all)(client, worker, m, "doze"))
            submitted = time.perf_counter() - started
            jobs = await wait_all(client, ids)
            wall = time.perf_counter() - started
            done.set()
            await asyncio.gather(*background)
        queued = [(job["startDate"] - job["createdAt"]) / 1000 for job in jobs]
        running = [(job["endDate"] - job["startDate"]) / 1000 for job in jobs]
        first_start = min(job["startDate"] for job in jobs)
        last_end = max(job["endDate"] for job in jobs)
        return {
            "jobs": m,
            "submitted": "one bulk request" if bulk else f"one request per job, {WINDOW} at a time",
            "submission_s": round(submitted, 3),
            "wall_s": round(wall, 3),
            "ideal_s": SLEEP_SECONDS,
            "wall_over_ideal": round(wall / SLEEP_SECONDS, 2),
            "first_start_to_last_end_s": round((last_end - first_start) / 1000, 3),
            "created_to_started_p50_p99_s": [round(percentile(queued, q), 3) for q in (50, 99)],
            "started_to_ended_p50_p99_s": [round(percentile(running, q), 3) for q in (50, 99)],
            "server_peak_rss_mb": round(peak_rss(server.pid) / 2**20, 1),
            "server_and_analyzers_peak_rss_mb": round(peak_tree / 2**20, 1),
            "pollers": pollers,
            "poll_requests": len(latencies),
            "poll_p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "poll_p99_ms": round(percentile(latencies, 99) * 1000, 2),
        }
    finally:
        server.stop()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine_facts(), "parameters": vars(args)}
    with tempfile.TemporaryDirectory(prefix="nc-bench-") as tmp:
        scratch = Path(tmp)
        runs: dict[str, Any] = {"direct": await direct(args.jobs, args.parallelism, scratch)}
        embedded = Server(scratch / "embedded", args.parallelism)
        embedded.start()
        try:
            key = await bootstrap(embedded.url)
            runs["embedded"] = await throughput(embedded.url, key, "NoOp_1_0", args.jobs, "embedded")
        finally:
            embedded.stop()
        if not args.skip_celery:
            for count in (1, 2):
                with Cluster(scratch / f"celery{count}", args.broker, count, args.parallelism) as cluster:
                    key = await bootstrap(cluster.server.url)
                    await cluster.wait_for_workers(await superadmin_key(cluster.server.url))
                    runs[f"celery-{count}-worker"] = await throughput(
                        cluster.server.url, key, "NoOp_1_0", args.jobs, f"celery{count}"
                    )
        for run in runs.values():
            run["vs_direct"] = round(run["jobs_per_s"] / runs["direct"]["jobs_per_s"], 3)
        report["throughput"] = runs
        if not args.skip_sleepers:
            report["sleepers"] = [
                await sleepers(scratch, args.sleepers, args.pollers, bulk) for bulk in (False, True)
            ]
    return report


def print_report(report: dict[str, Any]) -> None:
    print(
        f"No-op throughput, {report['parameters']['jobs']} jobs, {report['parameters']['parallelism']} at once:"
    )
    for name, run in report["throughput"].items():
        print(f"  {name:18} {run['jobs_per_s']:8.1f} jobs/s   ({run['vs_direct']:.2f}× direct)")
    for s in report.get("sleepers", []):
        print(f"{s['jobs']} jobs sleeping {s['ideal_s']:g} s, all at once, submitted as {s['submitted']}:")
        print(
            f"  wall {s['wall_s']} s = {s['wall_over_ideal']}× ideal (target ≤ 1.5×); submission {s['submission_s']} s"
        )
        print(
            f"  server peak RSS {s['server_peak_rss_mb']} MB; with its analyzers {s['server_and_analyzers_peak_rss_mb']} MB"
        )
        print(f"  {s['pollers']} pollers, {s['poll_requests']} requests: p50 {s['poll_p50_ms']} ms, "
              f"p99 {s['poll_p99_ms']} ms (target p99 < 100 ms)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--sleepers", type=int, default=1000)
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument("--skip-sleepers", action="store_true")
    args = parser.parse_args(argv)
    report = asyncio.run(bench(args))
    print_report(report)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"distributed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
