"""MISP's `GET /modules` with a big catalog: MISP gives the answer one second, on every event page.

    python bench/misp_modules_list.py [--workers 400] [--rounds 40]

A real neurocortex server; one organization with N enabled analyzers (the bundled and test definitions,
each enabled under many names). Measured side by side, in one run, over one keep-alive connection:
`GET /api/status` (the HTTP floor), `GET /api/analyzer?range=all` (the same workers as Cortex lists them to
TheHive), `GET /modules` answered from its per-organization cache, and `GET /modules` right after a worker
change (cache cleared: one query and the rendering). Prints p50/p95 in ms and the ratios to the listing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import bootstrap_superadmin, make_server, new_tenant  # noqa: E402


def timed(rounds: int, call: Callable[[], httpx.Response], before: Callable[[], object] | None = None):
    samples = []
    size = 0
    for _ in range(rounds):
        if before:
            before()
        start = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text
        size = len(response.content)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = make_server(Path(tmp), extra_env={"NEUROCORTEX_LOG_LEVEL": "error"})
        server.start()
        try:
            tenant = new_tenant(bootstrap_superadmin(server))
            definitions = [d["id"] for d in tenant.admin.get("/api/analyzerdefinition").json()]
            workers = []
            for index in range(args.workers):
                definition = definitions[index % len(definitions)]
                response = tenant.admin.post(
                    f"/api/organization/analyzer/{definition}", json={"name": f"{definition}-{index}"}
                )
                assert response.status_code == 201, response.text
                workers.append(response.json()["id"])
            client = tenant.analyst
            flip = iter(range(10**9))

            def change() -> None:
                tenant.admin.patch(f"/api/analyzer/{workers[0]}", json={"jobCache": next(flip) % 50})

            figures = {
                "GET /api/status": timed(args.rounds, lambda: client.get("/api/status")),
                "GET /api/analyzer?range=all": timed(
                    args.rounds, lambda: client.get("/api/analyzer", params={"range": "all"})
                ),
                "GET /modules (cached)": timed(args.rounds, lambda: client.get("/modules")),
                "GET /modules (after a change)": timed(args.rounds, lambda: client.get("/modules"), change),
            }
        finally:
            server.stop()
    listing = figures["GET /api/analyzer?range=all"][0]
    print(f"{args.workers} analyzers enabled in one organization, {args.rounds} rounds each")
    for name, (p50, p95, size) in figures.items():
        print(f"  {name:32} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  {size / 1024:8.1f} KiB  "
              f"÷ listing {p50 / listing:5.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
