"""Bulk analysis (issue 8 item 6): one API call for many observables × many analyzers, the `neurocortex
analyze` command writing a verdict for each of 500 observables, and full-text search over reports."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server, Tenant, enable, new_tenant
from tests.e2e.servers import dedicated

COUNT = 500


def observable(n: int) -> tuple[str, str]:
    # every seventh is "bad" (the Judge test analyzer calls those malicious)
    return ("other", f"bad-{n}") if n % 7 == 0 else ("ip", f"10.0.{n // 256}.{n % 256}")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, httpx.Client]]:
    with dedicated(tmp_path_factory.mktemp("bulk"), {"NEUROCORTEX_ANALYZER_CONCURRENCY": "16"}) as started:
        yield started


@pytest.fixture(scope="module")
def org(node: tuple[Server, httpx.Client]) -> Tenant:
    org = new_tenant(node[1])
    enable(org.admin, "analyzer", "Judge_1_0")
    enable(org.admin, "analyzer", "Nap_1_0")
    return org


def analyze(
    server: Server, key: str, args: list[str], stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neurocortex", "analyze", "--server", server.url, "--api-key", key, *args],
        input=stdin, capture_output=True, text=True, timeout=600, env=server.env, cwd=server.data_dir,
    )  # fmt: skip


def test_500_observables_through_the_command(
    node: tuple[Server, httpx.Client], org: Tenant, tmp_path
) -> None:
    server, _ = node
    source = tmp_path / "observables.txt"
    source.write_text("# dataType data\n" + "".join(f"{t} {d}\n" for t, d in map(observable, range(COUNT))))
    out = tmp_path / "verdicts.csv"
    done = analyze(server, org.analyst_key, ["-a", "Judge_1_0", "-a", "Nap_1_0", "-o", str(out), str(source)])
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert [(r["dataType"], r["data"]) for r in rows] == [observable(n) for n in range(COUNT)]
    for row in rows:
        expected = "malicious" if row["data"].startswith("bad-") else "safe"
        assert (row["verdict"], row["analyzers"], row["failed"]) == (expected, "2", "0"), row
        assert row["reasons"] == f"Judge_1_0: Judge:Verdict={expected}"
    assert f"{COUNT} verdicts, {2 * COUNT} jobs (0 not successful), 0 refused" in done.stderr
    waiting = org.reader.get("/api/analyzer/_status").json()
    assert all(w["waiting"] == 0 and w["inProgress"] == 0 for w in waiting.values())


def test_json_output_from_stdin(node: tuple[Server, httpx.Client], org: Tenant) -> None:
    server, _ = node
    lines = "bad-json-1\ngood-json-2\n"
    done = analyze(
        server, org.analyst_key, ["--data-type", "other", "-a", "Judge_1_0", "--format", "json", "-"], lines
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert [(v["data"], v["verdict"], [j["status"] for j in v["jobs"]]) for v in found] == [
        ("bad-json-1", "malicious", ["Success"]),
        ("good-json-2", "safe", ["Success"]),
    ]


def test_one_call_many_analyzers_and_errors_per_job(node: tuple[Server, httpx.Client], org: Tenant) -> None:
    body = {
        "observables": [{"dataType": "ip", "data": "10.9.9.9"}, {"dataType": "mail", "data": "a@b.example"}]
    }
    entries = org.analyst.post("/api/job/_bulk", json=body)
    assert entries.status_code == 200, entries.text
    # every analyzer of the organization accepting the data type; nobody takes "mail"
    assert sorted((e["workerName"], e["data"]) for e in entries.json()) == [
        ("Judge_1_0", "10.9.9.9"), ("Nap_1_0", "10.9.9.9")]  # fmt: skip
    limited = enable(
        org.admin, "analyzer", "Judge_1_0", name="Judge_limited", rate=1, rateUnit="Day", jobCache=0
    )
    body = {
        "analyzers": ["Judge_limited"],
        "observables": [{"dataType": "ip", "data": f"10.8.0.{n}"} for n in (1, 2)],
    }
    entries = org.analyst.post("/api/job/_bulk", json=body).json()
    assert "jobId" in entries[0] and entries[1]["error"]["type"] == "RateLimitExceeded"
    assert limited["id"] == entries[0]["workerId"]
    assert org.analyst.post("/api/job/_bulk", json=body | {"analyzers": ["Nope"]}).status_code == 404
    assert org.reader.post("/api/job/_bulk", json=body).status_code == 403
    bad = org.analyst.post("/api/job/_bulk", json={"observables": [{"data": 1}]})
    assert bad.status_code == 400 and bad.json()["type"] == "AttributeCheckingError"


def test_full_text_search_over_reports(node: tuple[Server, httpx.Client], org: Tenant) -> None:
    def search(client: httpx.Client, body: dict) -> tuple[int, list[dict]]:
        response = client.post("/api/job/_fulltext", json=body | {"range": "all"})
        assert response.status_code == 200, response.text
        return int(response.headers["X-Total"]), response.json()

    judged_bad = {"_and": [{"workerName": "Judge_1_0"}, {"_like": {"_field": "data", "_value": "bad"}}]}
    listed = org.reader.post("/api/job/_search", json={"query": judged_bad, "range": "all"})
    malicious = int(listed.headers["X-Total"])
    assert malicious >= COUNT // 7
    total, jobs = search(org.reader, {"text": "malicious"})
    assert total == malicious and {j["workerName"] for j in jobs} == {"Judge_1_0"}
    total, jobs = search(org.reader, {"text": "level safe", "query": {"dataType": "ip"}})
    assert total > 0 and {j["dataType"] for j in jobs} == {"ip"}
    assert search(org.reader, {"text": 'napped "unbalanced'})[0] == 0  # quotes are no syntax
    assert search(org.reader, {"text": "napped"})[0] >= COUNT  # Nap's report: {"napped": 0.1}
    stranger = new_tenant(node[1])
    assert search(stranger.reader, {"text": "malicious"}) == (0, [])
