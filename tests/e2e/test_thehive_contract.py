"""TheHive 3 and 4 talk to the server: every worker, job and report JSON it emits passes both clients'
parse rules (tests/thehive_rules.py, from spec/clients.md §2.1–§2.2)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests import thehive_rules as rules
from tests.conftest import Server, Tenant, enable, new_tenant

TEST_WORKERS = {
    "Echo",
    "NoOp",
    "Sleeper",
    "ShellEcho",
    "Hostile_Crash",
    "Hostile_Flood",
    "Hostile_Grandchild",
    "Hostile_Hang",
    "Hostile_InvalidJson",
    "Hostile_NotObject",
    "Hostile_Traversal",
    "Hostile_UnknownKeys",
}
# data a bundled analyzer can chew on, by the first data type of its list that we know
SAMPLE_DATA = {
    "hash": "d41d8cd98f00b204e9800998ecf8427e",
    "ip": "198.51.100.7",
    "domain": "example.org",
    "fqdn": "www.example.org",
    "url": "https://bad.example/path?q=1",
    "mail": "someone@example.org",
    "other": "contact evil@bad.example or visit hxxp://bad[.]example/x from 203.0.113.9",
    "filename": "invoice.pdf.exe",
}
CASE = {
    "_id": "~4096",
    "_type": "case",
    "id": "~4096",
    "caseId": 42,
    "title": "Phishing wave",
    "description": "d",
    "severity": 2,
    "tlp": 2,
    "pap": 2,
    "status": "Open",
    "tags": ["phishing"],
    "owner": "analyst",
    "createdAt": 1700000000000,
    "createdBy": "analyst",
    "customFields": {},
}


def ok(response: httpx.Response, status: int = 200):
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    return response.json()


def listed(response: httpx.Response) -> list:
    body = ok(response)
    assert isinstance(body, list) and response.headers["X-Total"].isdigit()
    return body


@pytest.fixture(scope="module")
def org(superadmin: httpx.Client) -> Tenant:
    return new_tenant(superadmin)


@pytest.fixture(scope="module")
def workers(org: Tenant) -> dict[str, dict]:
    """The analyzers and the responder TheHive uses in these tests, enabled by the orgadmin."""
    created = {
        "Echo": enable(org.admin, "analyzer", "Echo_1_0", configuration={"auto_extract_artifacts": True}),
        "ShellEcho": enable(org.admin, "analyzer", "ShellEcho_1_0"),
        "Crash": enable(org.admin, "analyzer", "Hostile_Crash_1_0"),
        "Sleeper": enable(org.admin, "analyzer", "Sleeper_1_0"),
        "Tagger": enable(
            org.admin,
            "responder",
            "Tagger_1_0",
            configuration={"tag": "contained", "max_tlp": 2, "max_pap": 3},
        ),
    }
    for worker in created.values():
        rules.check_worker(worker)
    return created


def wait_th4(client: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    """TheHive 4's CortexActor: `waitreport?atMost=1 second` until the job is finished."""
    deadline = time.monotonic() + timeout
    while True:
        job = ok(client.get(f"/api/job/{job_id}/waitreport?atMost=1%20second"))
        rules.check_job(job)
        if job["status"] in ("Success", "Failure") or time.monotonic() > deadline:
            return job


def check_everywhere(client: httpx.Client, job_id: str) -> dict:
    """Every way TheHive (and the Cortex UI) reads a finished job passes both validators."""
    job = wait_th4(client, job_id)
    assert job["status"] in ("Success", "Failure"), job
    rules.check_job(ok(client.get(f"/api/job/{job_id}")))
    rules.check_job(ok(client.get(f"/api/job/{job_id}/report")))
    th3 = ok(client.get(f"/api/job/{job_id}/waitreport?atMost=1%20minute"))
    rules.check_job(th3)
    assert isinstance(th3["report"], dict) and th3["report"]["success"] is (job["status"] == "Success")
    rules.check_job(
        ok(client.get(f"/api/job/{job_id}/waitreport", params={"atMost": "60000000000 nanoseconds"}))
    )
    return job


def test_health_checks(server: Server, org: Tenant) -> None:
    anonymous = httpx.get(f"{server.url}/api/status")
    rules.check_status(ok(anonymous))
    assert rules.version_tuple(anonymous.json()["versions"]["Cortex"]) >= (3, 1, 6)
    current = ok(org.admin.get("/api/user/current"))
    rules.check_current_user(current)
    assert current["id"] == f"{org.org}-admin"
    # TheHive's AUTH_ERROR state: status answers, the user check does not
    assert httpx.get(f"{server.url}/api/user/current").status_code == 401
    bad = httpx.get(f"{server.url}/api/user/current", headers={"Authorization": "Bearer " + "x" * 32})
    assert bad.status_code == 401 and bad.json() == {
        "type": "AuthenticationError",
        "message": "Authentication failure",
    }


def test_worker_lists_and_lookups(org: Tenant, workers: dict[str, dict]) -> None:
    echo, tagger = workers["Echo"], workers["Tagger"]
    # the responder-create response carries the TLP/PAP limits TheHive 4 filters on
    assert tagger["maxTlp"] == 2 and tagger["maxPap"] == 3
    for key in ("version", "description", "author", "url", "license", "baseConfig"):
        assert isinstance(tagger[key], str), key
    assert "configuration" not in tagger and "configuration" not in echo

    for client in (org.admin, org.analyst, org.reader):
        analyzers = listed(client.get("/api/analyzer", params={"range": "all"}))  # listAnalyser(range=all)
        rules.check_workers(analyzers)
        assert {a["id"] for a in analyzers} >= {w["id"] for n, w in workers.items() if n != "Tagger"}
        rules.check_workers(listed(client.get("/api/analyzer")))  # no range at all
        rules.check_workers(listed(client.get("/api/responder", params={"range": "all"})))
        by_type = listed(client.get("/api/analyzer/type/domain"))
        rules.check_workers(by_type)
        assert echo["id"] in {a["id"] for a in by_type}
        assert all("domain" in a["dataTypeList"] for a in by_type)
        rules.check_worker(ok(client.get(f"/api/analyzer/{echo['id']}")))
        rules.check_worker(ok(client.get(f"/api/responder/{tagger['id']}")))

        # getAnalyzerByName / getResponderByName: range in the body
        named = listed(
            client.post(
                "/api/analyzer/_search",
                json={"query": {"_field": "name", "_value": "Echo_1_0"}, "range": "0-1"},
            )
        )
        rules.check_workers(named)
        assert [a["id"] for a in named] == [echo["id"]]
        named = listed(
            client.post(
                "/api/responder/_search",
                json={"query": {"_field": "name", "_value": "Tagger_1_0"}, "range": "0-1"},
            )
        )
        assert [r["id"] for r in named] == [tagger["id"]]
        rules.check_workers(named)
        assert (
            listed(
                client.post(
                    "/api/analyzer/_search",
                    json={"query": {"_field": "name", "_value": "NoSuch"}, "range": "0-1"},
                )
            )
            == []
        )

        # getRespondersByType (TheHive 4): equality against the dataTypeList array
        th4 = listed(
            client.post(
                "/api/responder/_search",
                json={"query": {"_field": "dataTypeList", "_value": "thehive:case"}, "range": "all"},
            )
        )
        rules.check_workers(th4)
        assert tagger["id"] in {r["id"] for r in th4}
        assert all(r["maxTlp"] >= 2 for r in th4 if "maxTlp" in r)
        # findResponders (TheHive 3): shorthand field query, range in the query string
        th3 = listed(
            client.post(
                "/api/responder/_search",
                params={"range": "all"},
                json={"query": {"dataTypeList": "thehive:case"}},
            )
        )
        rules.check_workers(th3)
        assert {r["id"] for r in th3} == {r["id"] for r in th4}
        none = listed(
            client.post(
                "/api/responder/_search",
                json={"query": {"_field": "dataTypeList", "_value": "thehive:case_task_log"}, "range": "all"},
            )
        )
        assert tagger["id"] not in {r["id"] for r in none}
        by_type = listed(client.get("/api/responder/type/thehive:case"))
        rules.check_workers(by_type)
        assert tagger["id"] in {r["id"] for r in by_type}
        # searchResponders: the UI's raw query + range all
        rules.check_workers(listed(client.post("/api/responder/_search", json={"query": {}, "range": "all"})))


def test_analyzer_jobs(org: Tenant, workers: dict[str, dict], tmp_path) -> None:
    echo = workers["Echo"]
    client = org.analyst
    # TheHive 4: current format, parameters carry organisation/user, message is the case number
    body = {
        "tlp": 2,
        "pap": 2,
        "dataType": "domain",
        "message": "#12",
        "data": "th4.example",
        "parameters": {"organisation": "soc", "user": "analyst"},
    }
    th4_job = ok(client.post(f"/api/analyzer/{echo['id']}/run", json=body))
    rules.check_job(th4_job)
    assert th4_job["status"] in ("Waiting", "InProgress", "Success") and th4_job["type"] == "analyzer"
    done = check_everywhere(client, th4_job["id"])
    assert done["status"] == "Success", done
    report = ok(client.get(f"/api/job/{th4_job['id']}/report"))["report"]
    assert report["full"]["message"] == "#12" and report["full"]["parameters"]["organisation"] == "soc"
    assert {(a["dataType"], a["data"]) for a in report["artifacts"]} >= {("mail", "evil@bad.example")}
    assert report["operations"] == [{"type": "AddTagToArtifact", "tag": "echoed"}]

    # a cache hit is the same job, marked fromCache, and still parses
    cached = ok(client.post(f"/api/analyzer/{echo['id']}/run", json=body))
    rules.check_job(cached)
    assert cached["id"] == th4_job["id"] and cached["fromCache"] is True and cached["status"] == "Success"

    # TheHive 3: the Cortex 1 legacy body
    legacy = ok(
        client.post(
            f"/api/analyzer/{echo['id']}/run",
            json={
                "data": "198.51.100.1",
                "attributes": {"tlp": 1, "pap": 2, "dataType": "ip", "message": "AXcase"},
            },
        )
    )
    rules.check_job(legacy)
    assert legacy["dataType"] == "ip" and legacy["data"] == "198.51.100.1" and legacy["tlp"] == 1
    assert check_everywhere(client, legacy["id"])["status"] == "Success"

    # TheHive 4 file: part `data` first, then `_json` with "data": null
    content = b"invoice from 203.0.113.50, reply to billing@bad.example\n"
    meta = {
        "tlp": 2,
        "pap": 2,
        "dataType": "file",
        "message": "#13",
        "data": None,
        "parameters": {"organisation": "soc", "user": "analyst"},
    }
    file_job = ok(
        client.post(
            f"/api/analyzer/{echo['id']}/run",
            files=[("data", ("invoice.txt", content, "text/plain")), ("_json", (None, json.dumps(meta)))],
        )
    )
    rules.check_job(file_job)
    assert file_job["attachment"]["name"] == "invoice.txt" and "data" not in file_job
    done = check_everywhere(client, file_job["id"])
    assert done["status"] == "Success", done
    file_artifacts = [a for a in done["report"]["artifacts"] if a["dataType"] == "file"]
    assert len(file_artifacts) == 1
    # TheHive downloads file artifacts from the datastore by their attachment id
    download = client.get(f"/api/datastore/{file_artifacts[0]['attachment']['id']}")
    assert download.status_code == 200 and download.content == content

    # TheHive 3 file: part `data`, then `_json` holding an `attachment` object that is not the upload
    th3_meta = {
        "tlp": 1,
        "pap": 2,
        "dataType": "file",
        "message": "AXcase",
        "attachment": {
            "name": "old.bin",
            "hashes": ["0" * 64],
            "size": 1,
            "contentType": "x/y",
            "id": "0" * 64,
        },
    }
    th3_file = ok(
        client.post(
            f"/api/analyzer/{echo['id']}/run",
            files=[("data", ("sample.bin", b"th3 bytes")), ("_json", (None, json.dumps(th3_meta)))],
        )
    )
    rules.check_job(th3_file)
    assert th3_file["attachment"]["name"] == "sample.bin" and th3_file["attachment"]["size"] == 9
    assert check_everywhere(client, th3_file["id"])["status"] == "Success"

    # a worker written in shell
    shell = ok(
        client.post(
            f"/api/analyzer/{workers['ShellEcho']['id']}/run",
            json={"dataType": "other", "data": "from the shell"},
        )
    )
    rules.check_job(shell)
    shell_done = check_everywhere(client, shell["id"])
    assert shell_done["status"] == "Success", shell_done
    assert shell_done["report"]["full"]["input"]["data"] == "from the shell"

    # a crashing analyzer ends as a Failure whose report TheHive reads as an error
    crash = ok(
        client.post(
            f"/api/analyzer/{workers['Crash']['id']}/run", json={"dataType": "ip", "data": "192.0.2.1"}
        )
    )
    rules.check_job(crash)
    failed = check_everywhere(client, crash["id"])
    assert failed["status"] == "Failure"
    assert failed["report"]["success"] is False and "boom" in failed["report"]["errorMessage"]

    # every list and search TheHive or the UI uses carries only parseable jobs
    rules.check_jobs(listed(client.get("/api/job", params={"range": "all"})), deleted_ok=True)
    searched = listed(
        client.post(
            "/api/job/_search",
            json={
                "query": {"_and": [{"_field": "workerId", "_value": echo["id"]}]},
                "range": "0-50",
                "sort": ["-createdAt"],
            },
        )
    )
    rules.check_jobs(searched)
    assert {th4_job["id"], legacy["id"], file_job["id"], th3_file["id"]} <= {j["id"] for j in searched}


def test_waitreport_returns_unfinished_jobs_in_time(org: Tenant, workers: dict[str, dict]) -> None:
    client = org.analyst
    job = ok(
        client.post(
            f"/api/analyzer/{workers['Sleeper']['id']}/run",
            json={"dataType": "other", "data": "zzz", "parameters": {"seconds": 4}},
        )
    )
    rules.check_job(job)
    started = time.monotonic()
    waiting = ok(client.get(f"/api/job/{job['id']}/waitreport?atMost=1%20second"))
    assert time.monotonic() - started < 3.5
    assert waiting["status"] in ("Waiting", "InProgress")
    assert waiting["report"] in ("Waiting", "Running")
    rules.check_job(waiting)  # TheHive polls again
    rules.check_job(ok(client.get(f"/api/job/{job['id']}/report")))
    # TheHive 3: refreshDelay = 1 minute
    finished = ok(client.get(f"/api/job/{job['id']}/waitreport?atMost=1%20minute"))
    rules.check_job(finished)
    assert finished["status"] == "Success" and finished["report"]["full"] == {"slept": 4.0}


def test_responder_actions(org: Tenant, workers: dict[str, dict]) -> None:
    tagger = workers["Tagger"]
    client = org.analyst
    # TheHive 4: label, the case object as data, no message
    th4_run = {
        "label": "#42 Phishing wave",
        "data": CASE,
        "dataType": "thehive:case",
        "tlp": 2,
        "pap": 2,
        "parameters": {"organisation": "soc", "user": "analyst"},
    }
    th4 = ok(
        client.post(
            f"/api/responder/{tagger['id']}/run",
            json=th4_run,
        )
    )
    rules.check_job(th4)
    assert th4["type"] == "responder" and th4["data"] == CASE and th4["label"] == "#42 Phishing wave"
    done = check_everywhere(client, th4["id"])
    assert done["status"] == "Success", done
    assert done["report"]["full"]["received"] == CASE
    assert done["report"]["operations"] == [
        {"type": "AddTagToCase", "tag": "contained"},
        {"type": "AddCustomFields", "name": "f", "tpe": "string", "value": "v"},
    ]
    # responders are never served from the cache
    again = ok(
        client.post(
            f"/api/responder/{tagger['id']}/run",
            json=th4_run,
        )
    )
    assert again["id"] != th4["id"] and "fromCache" not in again
    # TheHive 3.5: with a message
    th3 = ok(
        client.post(
            f"/api/responder/{tagger['id']}/run",
            json={
                "label": "alert",
                "data": {"_type": "alert", "title": "a"},
                "dataType": "thehive:alert",
                "tlp": 1,
                "pap": 1,
                "message": "AXalert",
                "parameters": {"user": "analyst"},
            },
        )
    )
    rules.check_job(th3)
    assert check_everywhere(client, th3["id"])["status"] == "Success"
    assert check_everywhere(client, again["id"])["status"] == "Success"


def test_bundled_neurons(org: Tenant, tmp_path) -> None:
    """Each analyzer shipped in neurons/ runs on data it accepts and its report parses in TheHive 3 and 4."""
    definitions = listed(org.admin.get("/api/analyzerdefinition"))
    bundled = [d for d in definitions if d["name"] not in TEST_WORKERS]
    assert bundled, "no bundled analyzer in the catalog"
    for definition in bundled:
        worker = enable(org.admin, "analyzer", definition["id"])
        rules.check_worker(worker)
        rules.check_worker(ok(org.analyst.get(f"/api/analyzer/{worker['id']}")))
        data_type = next((t for t in definition["dataTypeList"] if t in SAMPLE_DATA or t == "file"), None)
        assert data_type, f"no sample data for {definition['id']} ({definition['dataTypeList']})"
        if data_type == "file":
            content = b"MZ header? no: plain text mentioning http://bad.example/dl and 203.0.113.77\n"
            job = ok(
                org.analyst.post(
                    f"/api/analyzer/{worker['id']}/run",
                    files=[
                        ("data", ("sample.txt", content, "text/plain")),
                        ("_json", (None, json.dumps({"dataType": "file", "tlp": 2, "data": None}))),
                    ],
                )
            )
        else:
            job = ok(
                org.analyst.post(
                    f"/api/analyzer/{worker['id']}/run",
                    json={"dataType": data_type, "data": SAMPLE_DATA[data_type], "tlp": 2},
                )
            )
        rules.check_job(job)
        done = check_everywhere(org.analyst, job["id"])
        assert done["status"] == "Success", (definition["id"], done["report"])


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (rules.check_worker, {"id": "x", "name": "n", "version": "1", "dataTypeList": []}),  # no description
        (
            rules.thehive3_worker,
            {"id": "x", "name": "n", "version": "1", "description": "d"},
        ),  # no dataTypeList
        (
            rules.check_worker,
            {"id": "x", "name": "n", "version": "1", "description": "d", "dataTypeList": [], "maxTlp": "2"},
        ),
        (
            rules.check_job,
            {
                "id": "j",
                "workerId": "w",
                "date": 1700000000,
                "status": "Success",
                "organization": "o",
                "dataType": "ip",
                "type": "analyzer",
            },
        ),  # seconds, not ms
        (
            rules.check_job,
            {
                "id": "j",
                "workerId": "w",
                "date": 1700000000000,
                "status": "Done",
                "organization": "o",
                "dataType": "ip",
                "type": "analyzer",
            },
        ),
        (rules.thehive3_job, {"id": "j", "analyzerId": "w", "date": 1700000000000, "status": "Deleted"}),
        (
            rules.thehive4_job,
            {
                "id": "j",
                "workerId": "w",
                "date": 1700000000000,
                "status": "Success",
                "dataType": "ip",
                "type": "analyzer",
            },
        ),  # no organization
        (
            lambda r: rules.thehive4_report(r, "Success"),
            {
                "success": True,
                "summary": {"taxonomies": [{"level": "bad", "namespace": "n", "predicate": "p", "value": 1}]},
                "full": {},
                "artifacts": [],
                "operations": [],
            },
        ),
        (
            lambda r: rules.thehive4_report(r, "Success"),
            {"success": True, "summary": {}, "full": [], "artifacts": [], "operations": []},
        ),
        (
            lambda r: rules.thehive4_report(r, "Success"),
            {
                "success": True,
                "summary": {},
                "full": {},
                "artifacts": [{"dataType": "ip", "data": "1", "tags": []}],
                "operations": [],
            },
        ),
        (
            lambda r: rules.thehive4_report(r, "Success"),
            {
                "success": True,
                "summary": {},
                "full": {},
                "artifacts": [],
                "operations": [{"type": "Explode"}],
            },
        ),
        (
            lambda r: rules.thehive4_report(r, "Success"),
            {
                "success": True,
                "summary": {},
                "full": {},
                "artifacts": [],
                "operations": [{"type": "CreateTask"}],
            },
        ),
        (lambda r: rules.thehive3_report(r, "Success"), "Running"),
    ],
)
def test_validators_reject_what_thehive_rejects(check, value) -> None:
    with pytest.raises(rules.ContractError):
        check(value)
