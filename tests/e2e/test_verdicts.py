"""Verdicts and cache transparency (issue 8 item 5): one normalized verdict per observable over the latest
report of each analyzer, the observable's job history, how old a cached report is, and a configuration
change that stops the cache from serving reports made with the former configuration."""

from __future__ import annotations

import json
import urllib.parse

import httpx
import pytest

from tests.conftest import Server, Tenant, enable, new_tenant, run_and_wait

IP = "203.0.113.5"


def verdict(client: httpx.Client, data_type: str, data: str) -> dict:
    response = client.get(f"/api/observable/{data_type}/{urllib.parse.quote(data, safe='')}")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def org(server: Server, superadmin: httpx.Client) -> Tenant:
    return new_tenant(superadmin)


@pytest.fixture(scope="module")
def workers(org: Tenant) -> dict[str, str]:
    return {
        "bad": enable(
            org.admin, "analyzer", "Echo_1_0", name="Echo_bad", configuration={"level": "malicious"}
        )["id"],
        "good": enable(org.admin, "analyzer", "Echo_1_0", name="Echo_good", configuration={"level": "safe"})[
            "id"
        ],
    }


def test_the_worst_level_wins_with_its_reasons(org: Tenant, workers: dict[str, str]) -> None:
    jobs = {
        name: run_and_wait(org.analyst, wid, {"dataType": "ip", "data": IP}) for name, wid in workers.items()
    }
    found = verdict(org.reader, "ip", IP)
    assert found["verdict"] == "malicious" and found["analyzers"] == 2
    assert [(r["workerName"], r["predicate"], r["value"], r["jobId"]) for r in found["reasons"]] == [
        ("Echo_bad", "Type", "ip", jobs["bad"]["id"])
    ]
    assert sorted(tx["level"] for tx in found["taxonomies"]) == ["malicious", "safe", "safe", "safe"]
    assert {j["id"] for j in found["jobs"]} == {j["id"] for j in jobs.values()} and found["jobCount"] == 2

    many = org.reader.post("/api/observable/_verdict", json={"observables": [
        {"dataType": "ip", "data": "198.51.100.77"}, {"dataType": "ip", "data": IP}]})  # fmt: skip
    assert many.status_code == 200, many.text
    assert [(v["data"], v["verdict"], v["analyzers"]) for v in many.json()] == [
        ("198.51.100.77", "unknown", 0),
        (IP, "malicious", 2),
    ]


def test_another_organization_sees_nothing(superadmin: httpx.Client, org: Tenant, workers: dict) -> None:
    other = new_tenant(superadmin)
    found = verdict(other.reader, "ip", IP)
    assert (found["verdict"], found["jobs"], found["jobCount"]) == ("unknown", [], 0)


def test_cache_hits_say_how_old_they_are_and_configuration_changes_invalidate(
    org: Tenant, workers: dict[str, str]
) -> None:
    url = "https://bad.example/a/b?c=d"
    first = run_and_wait(org.analyst, workers["bad"], {"dataType": "url", "data": url})
    again = org.analyst.post(
        f"/api/analyzer/{workers['bad']}/run", json={"dataType": "url", "data": url}
    ).json()
    assert again["id"] == first["id"] and again["fromCache"] is True
    assert again["cachedAt"] == first["endDate"] and 0 <= again["cacheAge"] < 60
    assert verdict(org.reader, "url", url)["verdict"] == "malicious"  # slashes and ? in the path

    patched = org.admin.patch(f"/api/analyzer/{workers['bad']}", json={"configuration": {"level": "info"}})
    assert patched.status_code == 200, patched.text
    fresh = org.analyst.post(
        f"/api/analyzer/{workers['bad']}/run", json={"dataType": "url", "data": url}
    ).json()
    assert fresh["id"] != first["id"] and "fromCache" not in fresh
    org.reader.get(f"/api/job/{fresh['id']}/waitreport", params={"atMost": "60 seconds"})
    # the newer report supersedes the older one of the same analyzer
    found = verdict(org.reader, "url", url)
    assert found["verdict"] == "safe" and found["analyzers"] == 1 and found["jobCount"] == 2
    assert {r["jobId"] for r in found["reasons"]} == {fresh["id"]}


def test_files_are_observables_by_their_hash(org: Tenant, workers: dict[str, str]) -> None:
    sent = org.analyst.post(f"/api/analyzer/{workers['bad']}/run", files={"data": ("s.bin", b"MZ sample", "application/octet-stream")},
                            data={"_json": json.dumps({"dataType": "file"})})  # fmt: skip
    assert sent.status_code == 200, sent.text
    job = org.reader.get(f"/api/job/{sent.json()['id']}/waitreport", params={"atMost": "60 seconds"}).json()
    found = verdict(org.reader, "file", job["attachment"]["id"].upper())
    assert found["verdict"] == "safe" and found["reasons"][0]["jobId"] == job["id"]  # Echo says Length: safe


def test_bad_requests_are_refused(org: Tenant) -> None:
    for body in ({}, {"observables": "1.2.3.4"}, {"observables": [{"dataType": "ip"}]}):
        response = org.reader.post("/api/observable/_verdict", json=body)
        assert response.status_code == 400 and response.json()["type"] == "AttributeCheckingError", body
    assert org.reader.get("/api/observable/ip/1.2.3.4", params={"days": "-3"}).status_code == 400
