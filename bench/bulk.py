"""Bulk analysis: N observables submitted one request each vs in one `POST /api/job/_bulk`, in one run.

    python bench/bulk.py [--observables 500] [--parallelism 16]

Against one real `neurocortex serve` (SQLite, the shell analyzer Judge so that workers cost little), each
phase with its own observables (no cache hits):

1. per request: N `POST /api/analyzer/:id/run` sent by `--parallelism` concurrent clients, then waited for;
2. bulk: the same N in `POST /api/job/_bulk` calls of 500, then waited for;
3. command: `neurocortex analyze` end to end (submit, wait, fetch the verdicts, write the CSV).

Prints the submission times and their ratio (per request ÷ bulk), and the end-to-end times.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import bootstrap_superadmin, enable, make_server, new_tenant
from tests.e2e.servers import submit_many, wait_until_done

CHUNK = 500


def observables(phase: str, n: int) -> list[dict[str, str]]:
    return [{"dataType": "other", "data": f"{phase}-{'bad' if i % 7 == 0 else 'ok'}-{i}"} for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observables", type=int, default=500)
    parser.add_argument("--parallelism", type=int, default=16)
    args = parser.parse_args()
    n = args.observables
    with tempfile.TemporaryDirectory() as scratch:
        server = make_server(
            Path(scratch), {"NEUROCORTEX_ANALYZER_CONCURRENCY": "16", "NEUROCORTEX_JOB_CACHE": "0"}
        )
        server.start()
        try:
            org = new_tenant(bootstrap_superadmin(server))
            judge = enable(org.admin, "analyzer", "Judge_1_0")["id"]

            started = time.perf_counter()
            requests = [(server.url, org.analyst_key, judge, o) for o in observables("single", n)]
            submitted = asyncio.run(submit_many(requests, concurrency=args.parallelism))
            single_submit = time.perf_counter() - started
            wait_until_done(org.analyst, [s.job["id"] for s in submitted], timeout=600)
            single_total = time.perf_counter() - started

            started = time.perf_counter()
            ids: list[str] = []
            items = observables("bulk", n)
            for start in range(0, n, CHUNK):
                body = {"observables": items[start : start + CHUNK], "analyzers": [judge]}
                response = org.analyst.post("/api/job/_bulk", json=body)
                response.raise_for_status()
                ids += [entry["jobId"] for entry in response.json()]
            bulk_submit = time.perf_counter() - started
            wait_until_done(org.analyst, ids, timeout=600)
            bulk_total = time.perf_counter() - started

            source = Path(scratch) / "observables.txt"
            source.write_text("".join(f"{o['dataType']} {o['data']}\n" for o in observables("command", n)))
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "neurocortex", "analyze", "--server", server.url, "--api-key",
                 org.analyst_key, "-a", judge, "-o", str(Path(scratch) / "out.csv"), str(source)],
                check=True, env=server.env, capture_output=True,
            )  # fmt: skip
            command_total = time.perf_counter() - started
        finally:
            server.stop()
    print(f"{n} observables, Judge analyzer, {args.parallelism} concurrent clients for the per-request phase")
    print(f"submission: per request {single_submit:.2f} s, bulk {bulk_submit:.2f} s, "
          f"ratio {single_submit / bulk_submit:.1f}")  # fmt: skip
    print(f"end to end: per request {single_total:.2f} s, bulk {bulk_total:.2f} s, "
          f"ratio {single_total / bulk_total:.2f}; neurocortex analyze {command_total:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
