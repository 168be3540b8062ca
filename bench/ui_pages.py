"""Web UI page renders with 100,000 jobs in the database, in server time.

    python bench/ui_pages.py [--jobs 100000] [--rounds 30]

A real `neurocortex serve` (SQLite) gets an organization with three analyzers; its database is then filled
with N jobs (90 % Success with a report, 9 % Failure, 1 % Deleted) spread over 90 days, several data types
and the three analyzers. Each page of the UI is then requested `rounds` times with a signed-in session,
and the server's own time (`Request-Time` header) is summarized. For comparison, each jobs-history page is
put beside the API call that reads the same rows (`POST /api/job/_search`, same query, range and sort):
the ratio page ÷ API is the cost of rendering HTML on top of the query (the page counts at most 10,000
matches, the API all of them); the text search goes through the trigram index (store/job_text.py). The
dashboard's first render (its figures computed) is one request, then the figures are kept 30 s. The
budget is 200 ms per page.
Figures are written to bench/results/ui-pages-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine, insert, select

from neurocortex.ids import new_id
from neurocortex.store import tables as t
from neurocortex.ui.jobs import MAX_PAGE
from overhead import Server, expect  # bench/ is the script's directory, hence on sys.path

BUDGET_MS = 200
PASSWORD = "bench password"
DATA_TYPES = ("ip", "domain", "hash", "url", "other")
DAY_MS = 86_400_000


def prepare(url: str) -> dict[str, Any]:
    """Superadmin (init pseudo-user, loopback), an organization, its admin with a password and a key,
    three analyzers enabled."""
    anonymous = httpx.Client(base_url=url, timeout=60)
    expect(anonymous.post("/api/user", json={"login": "admin", "name": "Admin", "roles": ["superadmin"],
                                               "organization": "cortex", "password": "pw"}), 201)  # fmt: skip
    expect(anonymous.post("/api/login", json={"user": "admin", "password": "pw"}))
    token = {"X-CORTEX-XSRF-TOKEN": anonymous.cookies.get("CORTEX-XSRF-TOKEN", "")}
    expect(
        anonymous.post("/api/organization", json={"name": "bench", "description": "bench"}, headers=token),
        201,
    )
    expect(anonymous.post("/api/user", headers=token, json={"login": "analyst", "name": "Analyst",
           "roles": ["read", "analyze", "orgadmin"], "organization": "bench", "password": PASSWORD}), 201)  # fmt: skip
    key = expect(anonymous.post("/api/user/analyst/key/renew", headers=token)).text
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    workers = [
        expect(api.post(f"/api/organization/analyzer/{d}", json={"name": d}), 201).json()
        for d in ("Echo_1_0", "NoOp_1_0", "Nap_1_0")
    ]
    return {"key": key, "workers": workers}


def fill(database: Path, workers: list[dict[str, Any]], n: int) -> None:
    """N jobs written straight into the database, in batches, as the engine would have left them."""
    engine = create_engine(f"sqlite:///{database}")
    rng = random.Random(7)
    now = int(time.time() * 1000)
    batch = 5000
    with engine.begin() as conn:
        for start in range(0, n, batch):
            jobs, reports = [], []
            for i in range(start, min(n, start + batch)):
                worker = workers[i % len(workers)]
                roll = rng.random()
                status = "Success" if roll < 0.90 else "Failure" if roll < 0.99 else "Deleted"
                data_type = DATA_TYPES[i % len(DATA_TYPES)]
                created = now - int((n - i) / n * 90 * DAY_MS)
                job_id = new_id()
                jobs.append({
                    "id": job_id, "organization": "bench", "workerId": worker["id"],
                    "workerName": worker["name"], "workerDefinitionId": worker["workerDefinitionId"],
                    "type": "analyzer", "status": status, "dataType": data_type,
                    "data": f"observable-{i}.example" if data_type != "ip" else f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                    "attachment": None, "tlp": 2, "pap": 2, "message": "", "parameters": "{}", "label": None,
                    "cacheTag": f"{i:032x}", "startDate": created + 100, "endDate": created + 900,
                    "errorMessage": "the analyzer failed" if status == "Failure" else None,
                    "input": None, "attempts": 1, "createdBy": "analyst", "createdAt": created,
                })  # fmt: skip
                if status == "Success":
                    summary = {"taxonomies": [{"level": "safe", "namespace": worker["name"], "predicate": "n",
                                               "value": i}]}  # fmt: skip
                    reports.append({
                        "id": new_id(), "job": job_id, "full": orjson.dumps({"i": i, "ok": True}).decode(),
                        "summary": orjson.dumps(summary).decode(), "operations": "[]",
                        "createdBy": "analyst", "createdAt": created + 900,
                    })  # fmt: skip
            conn.execute(insert(t.job), jobs)
            if reports:
                conn.execute(insert(t.report), reports)
        sample = conn.execute(select(t.job.c.id).where(t.job.c.status == "Success").limit(1)).scalar_one()
    engine.dispose()
    return sample


def timed(client: httpx.Client, method: str, path: str, rounds: int, **kwargs: Any) -> dict[str, float]:
    server_ms = []
    for _ in range(rounds):
        answer = expect(client.request(method, path, **kwargs))
        server_ms.append(float(answer.headers["Request-Time"]))
    server_ms.sort()
    return {
        "median_ms": statistics.median(server_ms),
        "p95_ms": server_ms[min(len(server_ms) - 1, int(len(server_ms) * 0.95))],
        "max_ms": server_ms[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nc-ui-bench-") as scratch:
        data_dir = Path(scratch) / "data"
        server = Server(data_dir, concurrency=4)
        server.start()
        try:
            setup = prepare(server.url)
        finally:
            server.stop()
        began = time.perf_counter()
        sample = fill(data_dir / "neurocortex.db", setup["workers"], args.jobs)
        print(f"{args.jobs} jobs written in {time.perf_counter() - began:.1f} s")
        server.start()
        try:
            browser = httpx.Client(base_url=server.url, timeout=60)
            expect(browser.post("/ui/login", data={"login": "analyst", "password": PASSWORD}), 303)
            api = httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {setup['key']}"}, timeout=60
            )
            echo = setup["workers"][0]["id"]
            last_page = MAX_PAGE
            histories = {
                "jobs, page 1": ("", {}),
                f"jobs, page {last_page}": (f"page={last_page}", {}),
                "jobs, status Failure": ("status=Failure", {"status": "Failure"}),
                "jobs, data type ip": ("dataType=ip", {"dataType": "ip"}),
                "jobs, one analyzer": (f"analyzer={echo}", {"workerId": echo}),
                "jobs, text search": ("q=observable-4242", None),
            }
            results: dict[str, Any] = {}
            for name, (query, api_query) in histories.items():
                page = timed(browser, "GET", f"/ui/jobs?{query}", args.rounds)
                entry: dict[str, Any] = {"page": page}
                if api_query is not None:
                    offset = (last_page - 1) * 25 if "page=" in query else 0
                    body = {"query": {"_and": [{k: v} for k, v in api_query.items()]},
                            "range": f"{offset}-{offset + 25}", "sort": ["-createdAt"]}  # fmt: skip
                    entry["api"] = timed(api, "POST", "/api/job/_search", args.rounds, json=body)
                    entry["ratio"] = page["median_ms"] / max(entry["api"]["median_ms"], 1)
                results[name] = entry
            results["job page (Success, report)"] = {
                "page": timed(browser, "GET", f"/ui/jobs/{sample}", args.rounds)
            }
            # the dashboard keeps its figures 30 s: its first render computes them, the others reuse them
            first = expect(browser.get("/ui/dashboard"))
            results["dashboard, first render"] = {"page": dict.fromkeys(
                ("median_ms", "p95_ms", "max_ms"), float(first.headers["Request-Time"]))}  # fmt: skip
            for name, path in (
                ("new analysis", "/ui/analyze?data=10.0.0.1"),
                ("dashboard (30 days), figures kept", "/ui/dashboard"),
                ("analyzer catalog", "/ui/admin/analyzers"),
                ("users", "/ui/admin/users"),
            ):
                results[name] = {"page": timed(browser, "GET", path, args.rounds)}
        finally:
            server.stop()

    print(f"\nserver time per page, {args.jobs} jobs, {args.rounds} requests each (budget {BUDGET_MS} ms)")
    print(f"{'page':32} {'median':>8} {'p95':>8} {'max':>8} {'API median':>11} {'page/API':>9}")
    worst = 0.0
    for name, entry in results.items():
        page = entry["page"]
        worst = max(worst, page["p95_ms"])
        api = entry.get("api")
        print(f"{name:32} {page['median_ms']:8.0f} {page['p95_ms']:8.0f} {page['max_ms']:8.0f} "
              f"{api['median_ms'] if api else float('nan'):11.0f} {entry.get('ratio', float('nan')):9.2f}")  # fmt: skip
    print(
        f"worst p95: {worst:.0f} ms ({'within' if worst <= BUDGET_MS else 'OVER'} the {BUDGET_MS} ms budget)"
    )
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"ui-pages-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"jobs": args.jobs, "rounds": args.rounds, "results": results}, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
