"""A job from submission to deletion (cortex-api.md §3.6, §3.10, §4): cache, rate limit, waitreport, report
shapes, listing and search, artifacts, downloads, TLP/PAP enforcement, the worker's config and job folder."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_WORKERS, Server, Tenant, enable, new_tenant

# -- helpers ----------------------------------------------------------------------------------------------


def submit(
    client: httpx.Client, worker_id: str, body: dict, kind: str = "analyzer", **params
) -> httpx.Response:
    return client.post(f"/api/{kind}/{worker_id}/run", json=body, params=params)


def new_job(client: httpx.Client, worker_id: str, body: dict, kind: str = "analyzer", **params) -> dict:
    response = submit(client, worker_id, body, kind, **params)
    assert response.status_code == 200, response.text
    job = response.json()
    assert "fromCache" not in job, job
    return job


def wait(client: httpx.Client, job_id: str, at_most: str = "60 seconds") -> dict:
    response = client.get(f"/api/job/{job_id}/waitreport", params={"atMost": at_most})
    assert response.status_code == 200, response.text
    return response.json()


def run(client: httpx.Client, worker_id: str, body: dict, kind: str = "analyzer", **params) -> dict:
    return wait(client, new_job(client, worker_id, body, kind, **params)["id"])


def poll(condition, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def multipart_file(content: bytes, filename: str, meta: dict) -> dict:
    return {"files": {"data": (filename, content, "text/plain")}, "data": {"_json": json.dumps(meta)}}


def expected_tag(worker_id: str, data_type: str, tlp: int, data: str, parameters: dict) -> str:
    compact = json.dumps(parameters, separators=(",", ":"), ensure_ascii=False)
    return hashlib.md5(f"{worker_id}|{data_type}|{tlp}|{data}|{compact}".encode()).hexdigest()


def job_folders(server: Server, job_id: str) -> list[Path]:
    root = server.data_dir / "jobs"
    return sorted(root.glob(f"cortex-job-{job_id}-*")) if root.exists() else []


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo(tenant: Tenant) -> str:
    return enable(tenant.admin, "analyzer", "Echo_1_0")["id"]


@pytest.fixture(scope="module")
def sleeper(tenant: Tenant) -> str:
    return enable(tenant.admin, "analyzer", "Sleeper_1_0", jobCache=0)["id"]


SECRET = "s3cr3t-API-key-do-not-leak"


@pytest.fixture(scope="module")
def strict_echo(tenant: Tenant) -> str:
    configuration = {"check_tlp": True, "max_tlp": 1, "check_pap": True, "max_pap": 1, "api_key": SECRET}
    return enable(tenant.admin, "analyzer", "Echo_1_0", name="Echo_strict", configuration=configuration)["id"]


# -- cache ------------------------------------------------------------------------------------------------


def test_cache(tenant: Tenant, echo: str) -> None:
    body = {"dataType": "domain", "data": "cache.example", "tlp": 1, "pap": 1, "message": "first",
            "parameters": {"b": 1, "a": [True, None]}}  # fmt: skip
    first = run(tenant.analyst, echo, body)
    assert first["status"] == "Success", first["report"]
    assert first["cacheTag"] == expected_tag(echo, "domain", 1, "cache.example", {"b": 1, "a": [True, None]})

    again = submit(tenant.analyst, echo, body)
    assert again.status_code == 200 and again.json()["fromCache"] is True
    assert again.json()["id"] == first["id"] and again.json()["status"] == "Success"
    # PAP and message are not part of the tag
    other_pap = submit(tenant.analyst, echo, body | {"pap": 3, "message": "another message"}).json()
    assert other_pap.get("fromCache") is True and other_pap["id"] == first["id"]
    # a cached job is not a new one: the job list did not grow
    listed = tenant.analyst.post(
        "/api/job/_search", json={"query": {"cacheTag": first["cacheTag"]}, "range": "all"}
    )
    assert [j["id"] for j in listed.json()] == [first["id"]]

    # anything in the tag makes a new job
    for changed in ({"tlp": 2}, {"parameters": {"a": [True, None], "b": 1}}, {"parameters": {}},
                    {"data": "other.example"}, {"dataType": "fqdn"}):  # fmt: skip
        job = new_job(tenant.analyst, echo, body | changed)
        assert job["id"] != first["id"] and job["cacheTag"] != first["cacheTag"]
        merged = body | changed
        assert job["cacheTag"] == expected_tag(
            echo, merged["dataType"], merged["tlp"], merged["data"], merged["parameters"]
        )
        wait(tenant.analyst, job["id"])

    # force bypasses the cache, as a query parameter (cortex4py, n8n) or a body field
    forced = [
        new_job(tenant.analyst, echo, body, force="1"),
        new_job(tenant.analyst, echo, body, force="true"),
        new_job(tenant.analyst, echo, body | {"force": True}),
    ]
    assert len({j["id"] for j in forced} | {first["id"]}) == 4
    assert {j["cacheTag"] for j in forced} == {first["cacheTag"]}
    for job in forced:
        wait(tenant.analyst, job["id"])
    # force=false and force=0 do not
    for value in ("false", "0"):
        assert submit(tenant.analyst, echo, body, force=value).json()["fromCache"] is True


def test_cache_of_a_file_uses_its_hash(tenant: Tenant, echo: str) -> None:
    content = b"cached file content"
    meta = {"dataType": "file", "tlp": 2}
    first = tenant.analyst.post(f"/api/analyzer/{echo}/run", **multipart_file(content, "a.txt", meta)).json()
    sha256 = hashlib.sha256(content).hexdigest()
    assert first["cacheTag"] == expected_tag(echo, "file", 2, sha256, {})
    assert wait(tenant.analyst, first["id"])["status"] == "Success"
    # the same content under another name is the same observable
    second = tenant.analyst.post(f"/api/analyzer/{echo}/run", **multipart_file(content, "b.txt", meta)).json()
    assert second.get("fromCache") is True and second["id"] == first["id"]


def test_cache_disabled_by_job_cache_zero(tenant: Tenant) -> None:
    worker = enable(tenant.admin, "analyzer", "Echo_1_0", name="Echo_nocache", jobCache=0)["id"]
    body = {"dataType": "ip", "data": "192.0.2.50"}
    first = run(tenant.analyst, worker, body)
    second = run(tenant.analyst, worker, body)
    assert first["status"] == second["status"] == "Success"
    assert first["id"] != second["id"] and first["cacheTag"] == second["cacheTag"]


def test_responders_are_never_cached(tenant: Tenant) -> None:
    tagger = enable(tenant.admin, "responder", "Tagger_1_0", configuration={"tag": "t"}, jobCache=10)["id"]
    body = {"dataType": "thehive:case", "data": {"title": "same case"}, "tlp": 2, "pap": 2}
    first = run(tenant.analyst, tagger, body, kind="responder")
    assert first["status"] == "Success", first["report"]
    second = new_job(tenant.analyst, tagger, body, kind="responder")
    assert second["id"] != first["id"] and second["cacheTag"] == first["cacheTag"]
    assert wait(tenant.analyst, second["id"])["status"] == "Success"


def test_failed_jobs_are_not_served_from_cache(tenant: Tenant, strict_echo: str) -> None:
    body = {"dataType": "ip", "data": "192.0.2.51", "tlp": 3}
    first = run(tenant.analyst, strict_echo, body)
    assert first["status"] == "Failure"
    second = new_job(tenant.analyst, strict_echo, body)
    assert second["id"] != first["id"]
    assert wait(tenant.analyst, second["id"])["status"] == "Failure"


def test_deleted_jobs_are_not_served_from_cache(tenant: Tenant, echo: str) -> None:
    body = {"dataType": "ip", "data": "192.0.2.52"}
    first = run(tenant.analyst, echo, body)
    assert tenant.analyst.delete(f"/api/job/{first['id']}").status_code == 204
    second = new_job(tenant.analyst, echo, body)
    assert second["id"] != first["id"]


# -- rate limit -------------------------------------------------------------------------------------------


def test_rate_limit(tenant: Tenant) -> None:
    worker = enable(tenant.admin, "analyzer", "Echo_1_0", name="Echo_rated", rate=2, rateUnit="Minute")["id"]
    first = run(tenant.analyst, worker, {"dataType": "ip", "data": "192.0.2.60"})
    # a cache hit consumes nothing
    for _ in range(3):
        hit = submit(tenant.analyst, worker, {"dataType": "ip", "data": "192.0.2.60"})
        assert hit.status_code == 200 and hit.json()["id"] == first["id"] and hit.json()["fromCache"] is True
    second = new_job(tenant.analyst, worker, {"dataType": "ip", "data": "192.0.2.61"})
    third = submit(tenant.analyst, worker, {"dataType": "ip", "data": "192.0.2.62"})
    assert third.status_code == 429, third.text
    assert third.json() == {
        "type": "RateLimitExceeded",
        "message": "Rate limit of 2 per Minute reached for the analyzer Echo_rated. Job cannot be started",
    }
    # deleting a job does not give its slot back; the cache still answers
    assert tenant.analyst.delete(f"/api/job/{second['id']}").status_code == 204
    assert submit(tenant.analyst, worker, {"dataType": "ip", "data": "192.0.2.63"}).status_code == 429
    assert (
        submit(tenant.analyst, worker, {"dataType": "ip", "data": "192.0.2.60"}).json()["fromCache"] is True
    )
    # another worker of the same definition has its own budget
    unrated = enable(tenant.admin, "analyzer", "Echo_1_0", name="Echo_unrated")["id"]
    assert submit(tenant.analyst, unrated, {"dataType": "ip", "data": "192.0.2.62"}).status_code == 200


# -- waitreport -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tenant: Tenant, echo: str) -> dict:
    return run(tenant.analyst, echo, {"dataType": "ip", "data": "192.0.2.70"})


@pytest.mark.parametrize(
    "query",
    ["atMost=1minute", "atMost=1%20second", "atMost=1+second", "atMost=60000000000%20nanoseconds", "atMost=5s",
     "atMost=Inf", "atMost=2%20minutes", "atMost=0.5s", ""],
)  # fmt: skip
def test_waitreport_durations_on_a_finished_job(tenant: Tenant, finished: dict, query: str) -> None:
    job = finished
    response = tenant.analyst.get(f"/api/job/{job['id']}/waitreport?{query}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "Success" and response.json()["report"]["success"] is True


@pytest.mark.parametrize("value", ["abc", "1%20fortnight", "-1s", "5"])
def test_waitreport_invalid_duration(tenant: Tenant, finished: dict, value: str) -> None:
    job = finished
    response = tenant.analyst.get(f"/api/job/{job['id']}/waitreport?atMost={value}")
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "BadRequest"


def test_waitreport_waits_at_most_and_until_done(tenant: Tenant, sleeper: str) -> None:
    job = new_job(
        tenant.analyst, sleeper, {"dataType": "other", "data": "wait", "parameters": {"seconds": 4}}
    )
    for at_most in ("1%20second", "1+second"):
        started = time.monotonic()
        response = tenant.analyst.get(f"/api/job/{job['id']}/waitreport?atMost={at_most}")
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert 0.9 <= elapsed < 3.0, elapsed
        assert response.json()["status"] in ("Waiting", "InProgress")
        assert response.json()["report"] in ("Waiting", "Running")
    started = time.monotonic()
    done = wait(tenant.analyst, job["id"], at_most="Inf")
    assert done["status"] == "Success" and done["report"]["full"] == {"slept": 4}
    assert time.monotonic() - started < 10
    assert done["endDate"] - done["startDate"] >= 4000


def test_waitreport_of_unknown_or_foreign_job(superadmin: httpx.Client, tenant: Tenant, echo: str) -> None:
    job = run(tenant.analyst, echo, {"dataType": "ip", "data": "192.0.2.71"})
    other = new_tenant(superadmin)
    for client, job_id in ((tenant.analyst, "nope"), (other.analyst, job["id"])):
        for path in ("waitreport?atMost=1s", "report", ""):
            response = client.get(f"/api/job/{job_id}/{path}".rstrip("/"))
            assert response.status_code == 404, response.text
            assert response.json() == {"type": "NotFoundError", "message": f"job {job_id} not found"}


# -- report shapes ----------------------------------------------------------------------------------------


def test_success_report_shape(tenant: Tenant, echo: str) -> None:
    job = run(tenant.analyst, echo, {"dataType": "domain", "data": "shape.example", "tlp": 1})
    report = job["report"]
    assert set(report) == {"summary", "full", "success", "artifacts", "operations"}
    assert report["success"] is True
    assert report["summary"]["taxonomies"][0] == {"level": "info", "namespace": "Echo", "predicate": "Type",
                                                  "value": "domain"}  # fmt: skip
    assert report["operations"] == [{"type": "AddTagToArtifact", "tag": "echoed"}]
    assert report["full"]["data"] == "shape.example"
    assert isinstance(report["artifacts"], list)
    for artifact in report["artifacts"]:
        assert set(artifact) == {"data", "dataType", "message", "tags", "tlp"}
    assert job["startDate"] >= job["createdAt"] and job["endDate"] >= job["startDate"]
    assert job["date"] == job["createdAt"]
    for key in ("id", "workerId", "workerName", "workerDefinitionId", "analyzerId", "analyzerName",
                "analyzerDefinitionId", "organization", "dataType", "type", "cacheTag"):  # fmt: skip
        assert job[key], key
    # /report is the same document as a finished /waitreport
    assert tenant.analyst.get(f"/api/job/{job['id']}/report").json() == job


def test_failure_report_shape(tenant: Tenant, strict_echo: str) -> None:
    job = run(tenant.analyst, strict_echo, {"dataType": "ip", "data": "192.0.2.80", "tlp": 2, "pap": 0})
    assert job["status"] == "Failure"
    report = job["report"]
    assert set(report) == {"errorMessage", "input", "success"}
    assert report["success"] is False and report["errorMessage"] == "TLP is higher than allowed."
    assert isinstance(report["input"], str) and json.loads(report["input"])["data"] == "192.0.2.80"
    assert job["errorMessage"] == "TLP is higher than allowed."


def test_running_waiting_and_deleted_reports(tenant: Tenant, sleeper: str) -> None:
    job = new_job(
        tenant.analyst, sleeper, {"dataType": "other", "data": "states", "parameters": {"seconds": 2}}
    )
    seen = set()

    def running() -> bool:
        current = tenant.analyst.get(f"/api/job/{job['id']}/report").json()
        assert (current["status"], current["report"]) in (("Waiting", "Waiting"), ("InProgress", "Running"))
        seen.add(current["report"])
        return current["report"] == "Running"

    assert poll(running, timeout=10)
    assert tenant.analyst.delete(f"/api/job/{job['id']}").status_code == 204
    deleted = tenant.analyst.get(f"/api/job/{job['id']}/report").json()
    assert (deleted["status"], deleted["report"]) == ("Deleted", "Deleted")
    # a deleted job counts as finished for waitreport
    started = time.monotonic()
    assert wait(tenant.analyst, job["id"])["report"] == "Deleted"
    assert time.monotonic() - started < 1


# -- listing, search, status ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listed(superadmin: httpx.Client) -> dict:
    """An organization of its own, so that totals are exact: 4 jobs, one of them deleted."""
    org = new_tenant(superadmin)
    echo = enable(org.admin, "analyzer", "Echo_1_0")["id"]
    noop = enable(org.admin, "analyzer", "NoOp_1_0")["id"]
    jobs = {
        "ip": run(org.analyst, echo, {"dataType": "ip", "data": "10.1.1.1"}),
        "domain": run(org.analyst, echo, {"dataType": "domain", "data": "filter.example"}),
        "noop": run(org.analyst, noop, {"dataType": "ip", "data": "10.2.2.2"}),
        "deleted": run(org.analyst, echo, {"dataType": "other", "data": "to delete"}),
    }
    assert org.analyst.delete(f"/api/job/{jobs['deleted']['id']}").status_code == 204
    return {"tenant": org, "jobs": jobs, "echo": echo, "noop": noop}


def ids(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {j["id"] for j in response.json()}


def test_list_with_filters_includes_deleted(listed: dict) -> None:
    client, jobs = listed["tenant"].reader, listed["jobs"]
    every = client.get("/api/job", params={"range": "all"})
    assert ids(every) == {j["id"] for j in jobs.values()} and every.headers["X-Total"] == "4"
    assert {j["status"] for j in every.json()} == {"Success", "Deleted"}
    assert ids(client.get("/api/job", params={"dataTypeFilter": "domain"})) == {jobs["domain"]["id"]}
    assert ids(client.get("/api/job", params={"dataFilter": "10.1"})) == {jobs["ip"]["id"]}
    assert ids(client.get("/api/job", params={"dataFilter": "delete"})) == {jobs["deleted"]["id"]}
    assert ids(client.get("/api/job", params={"analyzerFilter": "NoOp"})) == {jobs["noop"]["id"]}
    assert ids(client.get("/api/job", params={"analyzerFilter": listed["echo"]})) == {
        jobs["ip"]["id"], jobs["domain"]["id"], jobs["deleted"]["id"]}  # fmt: skip
    both = client.get("/api/job", params={"dataTypeFilter": "ip", "analyzerFilter": "Echo"})
    assert ids(both) == {jobs["ip"]["id"]}
    assert ids(client.get("/api/job", params={"dataFilter": "%"})) == set()
    paged = client.get("/api/job", params={"range": "0-2"})
    assert len(paged.json()) == 2 and paged.headers["X-Total"] == "4"


def test_search_excludes_deleted(listed: dict) -> None:
    client, jobs = listed["tenant"].reader, listed["jobs"]
    found = client.post("/api/job/_search", json={"query": {}, "range": "all"})
    assert ids(found) == {jobs["ip"]["id"], jobs["domain"]["id"], jobs["noop"]["id"]}
    assert found.headers["X-Total"] == "3"
    explicit = client.post("/api/job/_search", json={"query": {"status": "Deleted"}, "range": "all"})
    assert ids(explicit) == set() and explicit.headers["X-Total"] == "0"


def test_search_range_sort_and_total(listed: dict) -> None:
    client, jobs = listed["tenant"].reader, listed["jobs"]
    order = [jobs["ip"]["id"], jobs["domain"]["id"], jobs["noop"]["id"]]  # created in this order
    ascending = client.post("/api/job/_search", json={"query": {}, "range": "all", "sort": ["+createdAt"]})
    assert [j["id"] for j in ascending.json()] == order
    descending = client.post("/api/job/_search", json={"query": {}, "range": "all", "sort": ["-createdAt"]})
    assert [j["id"] for j in descending.json()] == order[::-1]
    # no sort: newest first
    assert [j["id"] for j in client.post("/api/job/_search", json={"query": {}}).json()] == order[::-1]
    # range and sort in the query string, as cortex4py sends them
    page = client.post("/api/job/_search?sort=-createdAt&range=1-2", json={"query": {}})
    assert [j["id"] for j in page.json()] == [order[1]] and page.headers["X-Total"] == "3"
    page = client.post("/api/job/_search", json={"query": {}, "range": "0-2", "sort": ["+createdAt"]})
    assert [j["id"] for j in page.json()] == order[:2] and page.headers["X-Total"] == "3"
    by_type = client.post(
        "/api/job/_search", json={"query": {"_field": "dataType", "_value": "ip"}, "range": "all"}
    )
    assert ids(by_type) == {jobs["ip"]["id"], jobs["noop"]["id"]} and by_type.headers["X-Total"] == "2"
    since = jobs["domain"]["createdAt"]
    later = client.post("/api/job/_search", json={"query": {"_gte": {"createdAt": since}}, "range": "all"})
    assert ids(later) == {jobs["domain"]["id"], jobs["noop"]["id"]}
    by_worker = client.post("/api/job/_search", json={"query": {"workerId": listed["noop"]}, "range": "all"})
    assert ids(by_worker) == {jobs["noop"]["id"]}


def test_job_status(listed: dict) -> None:
    client, jobs = listed["tenant"].reader, listed["jobs"]
    asked = [jobs["ip"]["id"], jobs["deleted"]["id"], "unknown-id"]
    response = client.post("/api/job/status", json={"jobIds": asked})
    assert response.status_code == 200, response.text
    assert response.json() == {
        jobs["ip"]["id"]: "Success",
        jobs["deleted"]["id"]: "Deleted",
        "unknown-id": "NotFound",
    }
    assert client.post("/api/job/status", json={"jobIds": []}).json() == {}
    bad = client.post("/api/job/status", json={"jobIds": [1, 2]})
    assert bad.status_code == 400 and bad.json()["type"] == "AttributeCheckingError"


def test_jobs_are_private_to_their_organization(listed: dict, tenant: Tenant) -> None:
    job_id = listed["jobs"]["ip"]["id"]
    assert tenant.analyst.get(f"/api/job/{job_id}").status_code == 404
    assert tenant.analyst.delete(f"/api/job/{job_id}").status_code == 404
    assert tenant.analyst.post("/api/job/status", json={"jobIds": [job_id]}).json() == {job_id: "NotFound"}
    assert job_id not in ids(tenant.analyst.get("/api/job", params={"range": "all"}))
    assert listed["tenant"].reader.get(f"/api/job/{job_id}").json()["status"] == "Success"


# -- artifacts --------------------------------------------------------------------------------------------


def test_artifacts_range(tenant: Tenant) -> None:
    extracting = enable(tenant.admin, "analyzer", "Echo_1_0", name="Echo_extract",
                        configuration={"auto_extract_artifacts": True})["id"]  # fmt: skip
    addresses = [f"203.0.113.{n}" for n in range(100, 115)]
    job = run(
        tenant.analyst, extracting, {"dataType": "other", "data": "many", "parameters": {"ips": addresses}}
    )
    assert job["status"] == "Success", job["report"]
    in_report = {(a["dataType"], a["data"]) for a in job["report"]["artifacts"]}
    assert {("ip", a) for a in addresses} <= in_report
    total = len(job["report"]["artifacts"])
    assert total > 10

    default = tenant.reader.get(f"/api/job/{job['id']}/artifacts")
    assert default.status_code == 200 and len(default.json()) == 10
    assert default.headers["X-Total"] == str(total)
    every = tenant.reader.get(f"/api/job/{job['id']}/artifacts", params={"range": "all"})
    assert len(every.json()) == total and every.headers["X-Total"] == str(total)
    assert {(a["dataType"], a["data"]) for a in every.json()} == in_report
    for artifact in every.json():
        assert artifact["id"] == artifact["_id"] and artifact["_type"] == "artifact"
        assert artifact["tlp"] == 2 and artifact["tags"] == [] and "createdAt" in artifact
    page = tenant.reader.get(f"/api/job/{job['id']}/artifacts", params={"range": "10-100"})
    assert len(page.json()) == total - 10


def test_artifacts_of_unknown_or_foreign_job(superadmin: httpx.Client, tenant: Tenant, echo: str) -> None:
    job = run(tenant.analyst, echo, {"dataType": "other", "data": "a@b.example and more"})
    other = new_tenant(superadmin)
    for client, job_id in ((other.reader, job["id"]), (tenant.reader, "unknown-job")):
        response = client.get(f"/api/job/{job_id}/artifacts", params={"range": "all"})
        assert response.status_code == 200 and response.json() == [] and response.headers["X-Total"] == "0"


# -- downloads --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def file_job(tenant: Tenant, echo: str) -> dict:
    content = b"\x00binary\xffsample for downloads\n" * 100
    meta = {"dataType": "file", "tlp": 2}
    job = tenant.analyst.post(
        f"/api/analyzer/{echo}/run", **multipart_file(content, "sample.bin", meta)
    ).json()
    done = wait(tenant.analyst, job["id"])
    assert done["status"] == "Success", done["report"]
    return {"job": done, "content": content}


def test_download_input_file_and_file_artifact(tenant: Tenant, file_job: dict) -> None:
    content, job = file_job["content"], file_job["job"]
    attachment = job["attachment"]
    response = tenant.reader.get(f"/api/datastore/{attachment['id']}")
    assert response.status_code == 200 and response.content == content
    assert f'filename="{attachment["id"]}"' in response.headers["Content-Disposition"]
    named = tenant.reader.get(f"/api/datastore/{attachment['id']}", params={"name": "my sample.bin"})
    assert named.content == content
    assert named.headers["Content-Disposition"].startswith('attachment; filename="my%20sample.bin"')

    artifact = next(a for a in job["report"]["artifacts"] if a["dataType"] == "file")
    assert set(artifact) == {"attachment", "dataType", "message", "tags", "tlp"}
    assert artifact["attachment"]["size"] == len(content) and artifact["attachment"]["contentType"]
    downloaded = tenant.reader.get(f"/api/datastore/{artifact['attachment']['id']}",
                                   params={"name": artifact["attachment"]["name"]})  # fmt: skip
    assert downloaded.status_code == 200 and downloaded.content == content
    assert hashlib.sha256(downloaded.content).hexdigest() == artifact["attachment"]["id"]


def test_waitreport_of_a_running_job_is_the_stored_report(
    tenant: Tenant, file_job: dict, strict_echo: str
) -> None:
    """A waitreport sent while the job runs is answered with what the job's end committed (handed over by the
    process that ran it, not read back): the same document as /report reads from the database."""
    extracting = enable(tenant.admin, "analyzer", "Echo_1_0", name="Echo_extract_wait",
                        configuration={"auto_extract_artifacts": True})["id"]  # fmt: skip
    body = {
        "dataType": "other",
        "data": "handed over",
        "parameters": {"ips": ["203.0.113.201", "203.0.113.202"]},
    }
    data_job = run(tenant.analyst, extracting, body)
    failed = run(tenant.analyst, strict_echo, {"dataType": "ip", "data": "192.0.2.90", "tlp": 3})
    assert data_job["status"] == "Success" and len(data_job["report"]["artifacts"]) >= 2
    assert failed["status"] == "Failure" and failed["report"]["errorMessage"] == "TLP is higher than allowed."
    for job in (file_job["job"], data_job, failed):
        assert tenant.analyst.get(f"/api/job/{job['id']}/report").json() == job
        assert wait(tenant.analyst, job["id"]) == job  # finished: read from the database


@pytest.mark.parametrize(
    "name", ["a/b", "a\\b", "a:b", 'a"b', "a;b", "a|b", "a*b", "a?b", "a<b", "a`b", "a\tb"]
)
def test_download_with_forbidden_name(tenant: Tenant, file_job: dict, name: str) -> None:
    attachment_id = file_job["job"]["attachment"]["id"]
    for route in ("datastore", "datastorezip"):
        response = tenant.reader.get(f"/api/{route}/{attachment_id}", params={"name": name})
        assert response.status_code == 400, response.text
        assert response.json() == {"type": "BadRequest", "message": "File name is invalid"}


def test_download_placeholder_and_unknown(tenant: Tenant) -> None:
    for route in ("datastore", "datastorezip"):
        placeholder = tenant.reader.get(f"/api/{route}/{{{{hash}}}}")
        assert placeholder.status_code == 204 and placeholder.content == b""
        for unknown in ("0" * 64, "not-a-hash", "../../etc/passwd"):
            response = tenant.reader.get(f"/api/{route}/{unknown}")
            assert response.status_code == 404, (route, unknown, response.text)


def test_download_needs_authentication(server: Server, file_job: dict) -> None:
    anonymous = httpx.get(f"{server.url}/api/datastore/{file_job['job']['attachment']['id']}")
    assert anonymous.status_code == 401


def test_download_zip(tenant: Tenant, file_job: dict) -> None:
    content, attachment_id = file_job["content"], file_job["job"]["attachment"]["id"]
    response = tenant.reader.get(f"/api/datastorezip/{attachment_id}", params={"name": "sample.bin"})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    assert 'filename="sample.bin.zip"' in response.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == ["sample.bin"]
    assert archive.infolist()[0].flag_bits & 0x1  # encrypted
    with pytest.raises(RuntimeError, match="password required"):
        archive.read("sample.bin")
    with pytest.raises(RuntimeError, match="Bad password"):
        archive.read("sample.bin", pwd=b"wrong")
    assert archive.read("sample.bin", pwd=b"malware") == content
    # without a name, the entry is named by the hash
    unnamed = zipfile.ZipFile(io.BytesIO(tenant.reader.get(f"/api/datastorezip/{attachment_id}").content))
    assert unnamed.namelist() == [attachment_id]
    assert unnamed.read(attachment_id, pwd=b"malware") == content


# -- TLP/PAP enforced by the engine ---------------------------------------------------------------------


def assert_no_secret(client: httpx.Client, job_id: str) -> None:
    for path in ("", "/report", "/waitreport?atMost=1s", "/artifacts?range=all"):
        assert SECRET not in client.get(f"/api/job/{job_id}{path}").text, path
    assert SECRET not in client.post("/api/job/_search", json={"query": {"_id": job_id}}).text


@pytest.mark.parametrize(
    ("tlp", "pap", "message"), [(2, 0, "TLP is higher than allowed."), (0, 2, "PAP is higher than allowed."),
                                (3, 3, "TLP is higher than allowed.")],
)  # fmt: skip
def test_tlp_pap_enforced(tenant: Tenant, strict_echo: str, tlp: int, pap: int, message: str) -> None:
    started = time.monotonic()
    job = run(tenant.analyst, strict_echo, {"dataType": "ip", "data": "192.0.2.90", "tlp": tlp, "pap": pap})
    assert time.monotonic() - started < 5
    assert job["status"] == "Failure" and job["report"]["errorMessage"] == message
    echoed = json.loads(job["report"]["input"])
    assert (echoed["data"], echoed["tlp"], echoed["pap"]) == ("192.0.2.90", tlp, pap)
    assert echoed["config"]["api_key"] == "REMOVED" and echoed["config"]["max_tlp"] == 1
    assert job["input"]["config"]["api_key"] == "REMOVED"
    assert_no_secret(tenant.analyst, job["id"])


def test_tlp_pap_within_limits(tenant: Tenant, strict_echo: str) -> None:
    job = run(tenant.analyst, strict_echo, {"dataType": "ip", "data": "192.0.2.91", "tlp": 1, "pap": 1})
    assert job["status"] == "Success", job["report"]
    assert job["report"]["full"]["has_api_key"] is True
    assert_no_secret(tenant.analyst, job["id"])


def test_tlp_enforced_for_a_worker_without_cortexutils(tenant: Tenant) -> None:
    shell = enable(tenant.admin, "analyzer", "ShellEcho_1_0", name="ShellEcho_strict",
                   configuration={"check_tlp": True, "max_tlp": 1, "check_pap": True, "max_pap": 2})["id"]  # fmt: skip
    refused = run(tenant.analyst, shell, {"dataType": "other", "data": "x", "tlp": 2, "pap": 2})
    assert (
        refused["status"] == "Failure" and refused["report"]["errorMessage"] == "TLP is higher than allowed."
    )
    assert json.loads(refused["report"]["input"])["data"] == "x"
    refused = run(tenant.analyst, shell, {"dataType": "other", "data": "x", "tlp": 0, "pap": 3})
    assert refused["report"]["errorMessage"] == "PAP is higher than allowed."
    allowed = run(tenant.analyst, shell, {"dataType": "other", "data": "x", "tlp": 1, "pap": 2})
    assert allowed["status"] == "Success", allowed["report"]


def test_failure_written_by_cortexutils_is_redacted(tenant: Tenant) -> None:
    worker = enable(tenant.admin, "analyzer", "Echo_1_0", name="Echo_no_file",
                    configuration={"api_key": SECRET})["id"]  # fmt: skip
    # a "file" job without a file: cortexutils's get_data() fails the job, echoing its redacted input
    job = run(tenant.analyst, worker, {"dataType": "file", "data": "not a file"})
    assert job["status"] == "Failure" and job["report"]["errorMessage"] == "Missing filename."
    echoed = json.loads(job["report"]["input"])
    assert echoed["data"] == "not a file" and echoed["config"]["api_key"] == "REMOVED"
    assert_no_secret(tenant.analyst, job["id"])


# -- what the worker receives -----------------------------------------------------------------------------


def test_config_given_to_the_worker(tenant: Tenant) -> None:
    configuration = {"level": "suspicious", "tags": ["a", "b"], "limit": 7, "api_key": "k",
                     "proxy_https": "http://proxy.invalid:3128", "jobTimeout": 2}  # fmt: skip
    worker = enable(tenant.admin, "analyzer", "Echo_1_0", name="Echo_config", configuration=configuration)[
        "id"
    ]
    job = run(tenant.analyst, worker, {"dataType": "ip", "data": "192.0.2.100"})
    assert job["status"] == "Success", job["report"]
    full = job["report"]["full"]
    assert full["config"] == {
        # the definition's static config
        "service": "echo", "static": {"a": 1, "b": 2},
        # the definition's items, then the global ones: every item, null when unset
        "level": "suspicious", "tags": ["a", "b"], "limit": 7, "verbose": None,
        "auto_extract_artifacts": False, "jobCache": 10, "proxy_http": None,
        "proxy_https": "http://proxy.invalid:3128", "cacerts": None, "jobTimeout": 2,
        "check_tlp": None, "max_tlp": None, "check_pap": None, "max_pap": None,
        # the proxy object cortexutils reads
        "proxy": {"https": "http://proxy.invalid:3128"},
    }  # fmt: skip
    assert full["has_api_key"] is True
    assert full["https_proxy"] == "http://proxy.invalid:3128"
    assert full["env_has_secret"] is False
    # without cacerts, the worker keeps whatever CA bundle the host environment names
    assert full["ca_bundle"] == os.environ.get("REQUESTS_CA_BUNDLE")
    assert full["cwd"] == str(TEST_WORKERS / "analyzers")
    assert job["report"]["summary"]["taxonomies"][0]["level"] == "suspicious"
    assert job["report"]["artifacts"] == []  # auto_extract_artifacts is false unless enabled


CA = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"


def test_cacerts_and_kept_job_folder(server: Server, tenant: Tenant) -> None:
    worker = enable(tenant.admin, "analyzer", "Echo_1_0", name="Echo_ca", configuration={"cacerts": CA})["id"]
    job = run(
        tenant.analyst,
        worker,
        {"dataType": "ip", "data": "192.0.2.101", "parameters": {"keepJobFolder": True}},
    )
    assert job["status"] == "Success", job["report"]
    folders = job_folders(server, job["id"])
    assert len(folders) == 1
    folder = folders[0]
    assert job["report"]["full"]["ca_bundle"] == str(folder / "input" / "cacerts")
    assert (folder / "input" / "cacerts").read_text() == CA
    written = json.loads((folder / "input" / "input.json").read_text())
    assert written["data"] == "192.0.2.101" and written["config"]["cacerts"] == CA
    assert written["parameters"] == {"keepJobFolder": True}
    output = json.loads((folder / "output" / "output.json").read_text())
    assert output["success"] is True and output["full"]["data"] == "192.0.2.101"
    assert os.stat(folder).st_mode & 0o077 == 0  # private to the engine's user


def test_job_folder_is_removed(server: Server, tenant: Tenant, echo: str) -> None:
    jobs = [
        run(tenant.analyst, echo, {"dataType": "ip", "data": "192.0.2.102"}),
        run(
            tenant.analyst,
            echo,
            {"dataType": "ip", "data": "192.0.2.103", "parameters": {"keepJobFolder": False}},
        ),
        run(
            tenant.analyst,
            echo,
            {"dataType": "ip", "data": "192.0.2.104", "parameters": {"keepJobFolder": "yes"}},
        ),
    ]
    for job in jobs:
        assert job["status"] == "Success"
        assert poll(lambda job=job: not job_folders(server, job["id"]), timeout=5), job["parameters"]


def test_job_deletion(tenant: Tenant, echo: str) -> None:
    job = run(tenant.analyst, echo, {"dataType": "ip", "data": "192.0.2.110"})
    assert tenant.reader.delete(f"/api/job/{job['id']}").status_code == 403
    response = tenant.analyst.delete(f"/api/job/{job['id']}")
    assert response.status_code == 204 and response.content == b""
    again = tenant.analyst.get(f"/api/job/{job['id']}")
    assert again.status_code == 200 and again.json()["status"] == "Deleted"
    assert again.json()["data"] == "192.0.2.110"
    assert tenant.analyst.get(f"/api/job/{job['id']}/report").json()["report"] == "Deleted"
    assert tenant.analyst.post("/api/job/status", json={"jobIds": [job["id"]]}).json() == {
        job["id"]: "Deleted"
    }
    found = tenant.analyst.post("/api/job/_search", json={"query": {"_id": job["id"]}})
    assert found.json() == []
    assert tenant.analyst.delete("/api/job/unknown-job").status_code == 404


def test_shell_worker(tenant: Tenant) -> None:
    shell = enable(tenant.admin, "analyzer", "ShellEcho_1_0")["id"]
    job = run(tenant.analyst, shell, {"dataType": "other", "data": "from the shell", "message": "m",
                                      "parameters": {"p": 1}})  # fmt: skip
    assert job["status"] == "Success", job["report"]
    full = job["report"]["full"]
    assert full["argv1_is_jobdir"] is True
    received = full["input"]
    assert (received["data"], received["dataType"], received["message"], received["parameters"]) == (
        "from the shell", "other", "m", {"p": 1})  # fmt: skip
    assert received["config"]["jobTimeout"] == 30
    assert job["report"]["summary"]["taxonomies"] == [
        {"level": "info", "namespace": "Shell", "predicate": "Ran", "value": "yes"}]  # fmt: skip


def test_python_worker_without_exec_bit(tenant: Tenant) -> None:
    script = TEST_WORKERS / "analyzers" / "Hostile" / "hostile.py"
    assert not os.access(script, os.X_OK)
    worker = enable(tenant.admin, "analyzer", "Hostile_UnknownKeys_1_0")["id"]
    job = run(tenant.analyst, worker, {"dataType": "ip", "data": "192.0.2.120"})
    assert job["status"] == "Success", job["report"]
    assert job["report"]["full"] == {"ok": 1}
