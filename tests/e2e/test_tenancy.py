"""Multi-tenancy (spec/cortex-api.md §6.4): another organization's ids are 'not found' on every route,
never leak data and change nothing; searches stay inside the caller's organization; role rules for jobs."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.conftest import Server, Tenant, bearer, enable, new_tenant, run_and_wait


def ok(response: httpx.Response, status: int = 200):
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    return response.json() if response.content else None


def not_found(response: httpx.Response) -> dict:
    """Cortex's error JSON for a foreign id: 404 NotFoundError, never 403 (which would confirm existence)."""
    assert response.status_code == 404, f"{response.request.method} {response.request.url}: {response.text}"
    body = response.json()
    assert body["type"] == "NotFoundError" and isinstance(body["message"], str), body
    return body


def forbidden(response: httpx.Response) -> dict:
    assert response.status_code == 403, f"{response.request.method} {response.request.url}: {response.text}"
    body = response.json()
    assert body["type"] == "AuthorizationError", body
    return body


def empty_list(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == [] and response.headers["X-Total"] == "0"


def no_leak(response: httpx.Response, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in response.text, f"{secret!r} leaked in {response.request.url}: {response.text}"


@pytest.fixture(scope="module")
def a(superadmin: httpx.Client) -> Tenant:
    return new_tenant(superadmin)


@pytest.fixture(scope="module")
def b(superadmin: httpx.Client) -> Tenant:
    return new_tenant(superadmin)


@pytest.fixture(scope="module")
def a_objects(a: Tenant) -> dict:
    """What tenant A owns: an analyzer with a secret, a responder, a finished job with artifacts, a config."""
    analyzer = enable(
        a.admin,
        "analyzer",
        "Echo_1_0",
        rate=100,
        rateUnit="Day",
        configuration={"api_key": "A-SECRET-api-key", "auto_extract_artifacts": True},
    )
    responder = enable(a.admin, "responder", "Tagger_1_0", configuration={"tag": "A-tag"})
    job = run_and_wait(a.analyst, analyzer["id"], {"dataType": "domain", "data": "a-private.example"})
    assert job["status"] == "Success", job
    artifacts = ok(a.analyst.get(f"/api/job/{job['id']}/artifacts", params={"range": "all"}))
    assert artifacts
    saved = ok(
        a.admin.patch("/api/analyzerconfig/Echo", json={"config": {"api_key": "A-BASE-SECRET", "limit": 7}})
    )
    assert saved["config"] == {"api_key": "A-BASE-SECRET", "limit": 7}
    return {"analyzer": analyzer, "responder": responder, "job": job, "artifacts": artifacts}


def snapshot(a: Tenant, objects: dict) -> dict:
    """Everything of A that B's attempts must leave untouched, as A itself sees it."""
    job_id = objects["job"]["id"]
    return {
        "analyzer": ok(a.admin.get(f"/api/analyzer/{objects['analyzer']['id']}")),
        "responder": ok(a.admin.get(f"/api/responder/{objects['responder']['id']}")),
        "job": ok(a.analyst.get(f"/api/job/{job_id}/report")),
        "artifacts": ok(a.analyst.get(f"/api/job/{job_id}/artifacts", params={"range": "all"})),
        "jobs": ok(a.analyst.get("/api/job", params={"range": "all"})),
        "config": ok(a.admin.get("/api/analyzerconfig/Echo")),
        "org": ok(a.admin.get(f"/api/organization/{a.org}")),
        "users": ok(
            a.admin.get(f"/api/organization/{a.org}/user", params={"range": "all", "sort": "+login"})
        ),
        "analyst_key": a.admin.get(f"/api/user/{a.org}-analyst/key").text,
    }


def test_job_routes_with_a_foreign_id(a: Tenant, b: Tenant, a_objects: dict) -> None:
    before = snapshot(a, a_objects)
    job_id = a_objects["job"]["id"]
    for client in (b.admin, b.analyst, b.reader):
        for path in (f"/api/job/{job_id}", f"/api/job/{job_id}/report", f"/api/job/{job_id}/waitreport"):
            response = client.get(path, params={"atMost": "1second"} if "wait" in path else None)
            not_found(response)
            no_leak(response, "a-private.example")
        # artifacts: Cortex's documented empty list, not a 404
        empty_list(client.get(f"/api/job/{job_id}/artifacts", params={"range": "all"}))
        assert ok(client.post("/api/job/status", json={"jobIds": [job_id]})) == {job_id: "NotFound"}
    for client in (b.admin, b.analyst):
        not_found(client.delete(f"/api/job/{job_id}"))
    assert snapshot(a, a_objects) == before
    assert ok(a.analyst.post("/api/job/status", json={"jobIds": [job_id]})) == {job_id: "Success"}


@pytest.mark.parametrize("kind", ["analyzer", "responder"])
def test_worker_routes_with_a_foreign_id(a: Tenant, b: Tenant, a_objects: dict, kind: str) -> None:
    before = snapshot(a, a_objects)
    worker_id = a_objects[kind]["id"]
    for client in (b.admin, b.analyst, b.reader):
        response = client.get(f"/api/{kind}/{worker_id}")
        not_found(response)
        no_leak(response, "A-SECRET-api-key", "A-tag")
    not_found(
        b.admin.patch(f"/api/{kind}/{worker_id}", json={"rate": 1, "rateUnit": "Second", "name": "hijacked"})
    )
    not_found(b.admin.patch(f"/api/{kind}/{worker_id}", json={"configuration": {"api_key": "B"}}))
    not_found(b.admin.delete(f"/api/{kind}/{worker_id}"))
    body = (
        {"dataType": "thehive:case", "data": {"title": "x"}}
        if kind == "responder"
        else {"dataType": "domain", "data": "b-run.example"}
    )
    not_found(b.analyst.post(f"/api/{kind}/{worker_id}/run", json=body))
    # the other run route, too (Cortex does not check the worker type on run)
    other = "analyzer" if kind == "responder" else "responder"
    not_found(b.analyst.post(f"/api/{other}/{worker_id}/run", json=body))
    assert snapshot(a, a_objects) == before
    empty_list(b.analyst.get("/api/job", params={"range": "all"}))


def test_organization_and_users_of_another_org(a: Tenant, b: Tenant, a_objects: dict) -> None:
    before = snapshot(a, a_objects)
    not_found(b.admin.get(f"/api/organization/{a.org}"))
    not_found(b.admin.get(f"/api/organization/{a.org}", params={"nstats": "true"}))
    assert ok(b.admin.get(f"/api/organization/{b.org}"))["id"] == b.org
    # an orgadmin listing another organization's users gets an empty list
    empty_list(b.admin.get(f"/api/organization/{a.org}/user"))
    empty_list(b.admin.post(f"/api/organization/{a.org}/user/_search", json={"query": {}, "range": "all"}))
    # ...and a query naming the other organization inside their own list finds nothing
    empty_list(
        b.admin.post(
            f"/api/organization/{b.org}/user/_search",
            json={"query": {"_field": "organization", "_value": a.org}, "range": "all"},
        )
    )

    victim = f"{a.org}-analyst"
    for client in (b.admin, b.analyst, b.reader):
        response = client.get(f"/api/user/{victim}")
        not_found(response)
        assert a.org not in response.json()["message"].replace(victim, "")
    not_found(b.admin.patch(f"/api/user/{victim}", json={"name": "hacked"}))
    not_found(b.admin.patch(f"/api/user/{victim}", json={"roles": ["read"]}))
    not_found(b.admin.patch(f"/api/user/{victim}", json={"status": "Locked"}))
    not_found(b.admin.delete(f"/api/user/{victim}"))
    not_found(b.admin.post(f"/api/user/{victim}/password/set", json={"password": "taken-over"}))
    not_found(b.admin.get(f"/api/user/{victim}/key"))
    not_found(b.admin.post(f"/api/user/{victim}/key/renew"))
    not_found(b.admin.post(f"/api/user/{victim}/key/set", json={"key": "B" * 40}))
    not_found(b.admin.delete(f"/api/user/{victim}/key"))
    # a non-admin gets the same answer whether the user exists or not: no existence oracle
    assert (
        b.analyst.patch(f"/api/user/{victim}", json={"name": "x"}).json()
        == b.analyst.patch("/api/user/no-such-user-anywhere", json={"name": "x"}).json()
    )
    not_found(b.analyst.get(f"/api/user/{victim}/key"))
    not_found(b.analyst.post(f"/api/user/{victim}/key/renew"))
    forbidden(
        b.analyst.post(f"/api/user/{victim}/password/change", json={"currentPassword": "x", "password": "y"})
    )
    # an orgadmin cannot create a user in (or move one to) another organization
    forbidden(
        b.admin.post(
            "/api/user",
            json={"login": f"{b.org}-intruder", "name": "i", "roles": ["read"], "organization": a.org},
        )
    )
    forbidden(b.admin.patch(f"/api/user/{b.org}-reader", json={"organization": a.org}))

    after = snapshot(a, a_objects)
    assert after == before
    victim_user = next(u for u in after["users"] if u["id"] == victim)
    assert victim_user["name"] == victim and victim_user["status"] == "Ok" and victim_user["hasKey"] is True
    assert ok(a.analyst.get("/api/user/current"))["id"] == victim  # its key still works


def test_base_configurations_are_per_organization(a: Tenant, b: Tenant, a_objects: dict) -> None:
    before = snapshot(a, a_objects)
    response = b.admin.get("/api/analyzerconfig/Echo")
    assert ok(response)["config"] == {}
    no_leak(response, "A-BASE-SECRET")
    listing = b.admin.get("/api/analyzerconfig")
    no_leak(listing, "A-BASE-SECRET")
    assert next(c for c in ok(listing) if c["name"] == "Echo")["config"] == {}
    assert ok(b.admin.patch("/api/analyzerconfig/Echo", json={"config": {"api_key": "B-BASE"}}))[
        "config"
    ] == {"api_key": "B-BASE"}
    assert snapshot(a, a_objects) == before
    assert ok(a.admin.get("/api/analyzerconfig/Echo"))["config"] == {"api_key": "A-BASE-SECRET", "limit": 7}
    # B's own worker of the same definition is a different worker with its own id and configuration
    mine = enable(b.admin, "analyzer", "Echo_1_0", configuration={"api_key": "B-KEY"})
    assert mine["id"] != a_objects["analyzer"]["id"]
    assert ok(b.admin.get(f"/api/analyzer/{mine['id']}"))["configuration"]["api_key"] == "B-KEY"
    assert ok(a.admin.get(f"/api/analyzer/{a_objects['analyzer']['id']}"))["configuration"]["api_key"] == (
        "A-SECRET-api-key"
    )


def test_stream_of_another_org(server: Server, a: Tenant, b: Tenant, a_objects: dict) -> None:
    stream = a.analyst.post("/api/stream")
    assert stream.status_code == 200
    stream_id = stream.text
    for client in (b.admin, b.analyst, b.reader):
        not_found(client.get(f"/api/stream/{stream_id}"))
    # B's attempts did not consume or break A's stream: A still receives its own events
    events: list = []
    poller = threading.Thread(target=lambda: events.extend(ok(a.analyst.get(f"/api/stream/{stream_id}"))))
    poller.start()
    time.sleep(0.3)
    job = ok(
        a.analyst.post(
            f"/api/analyzer/{a_objects['analyzer']['id']}/run",
            json={"dataType": "domain", "data": "stream-a.example", "force": True},
        )
    )
    poller.join(30)
    assert not poller.is_alive()
    assert job["id"] in {e["base"]["objectId"] for e in events}


def test_searches_stay_in_the_organization(a: Tenant, b: Tenant, a_objects: dict) -> None:
    b_analyzer = enable(b.admin, "analyzer", "ShellEcho_1_0")
    b_job = run_and_wait(b.analyst, b_analyzer["id"], {"dataType": "other", "data": "b data"})
    a_job, a_worker = a_objects["job"]["id"], a_objects["analyzer"]["id"]

    def job_ids(client: httpx.Client, query: dict) -> set[str]:
        return {j["id"] for j in ok(client.post("/api/job/_search", json={"query": query, "range": "all"}))}

    for query in (
        {},
        {"_id": a_job},
        {"_field": "organization", "_value": a.org},
        {"_field": "workerId", "_value": a_worker},
        {"_string": "dataType:domain"},
        {"_or": [{"_id": a_job}, {"_id": b_job["id"]}]},
        {"_child": {"_type": "report", "_query": {}}},
    ):
        found = job_ids(b.analyst, query)
        assert a_job not in found, query
        assert found <= {b_job["id"]}, query
    assert job_ids(a.analyst, {"_id": a_job}) == {a_job}
    assert a_job not in {j["id"] for j in ok(b.reader.get("/api/job", params={"range": "all"}))}
    assert {
        j["id"] for j in ok(b.reader.get("/api/job", params={"range": "all", "dataFilter": "a-private"}))
    } == set()

    for kind in ("analyzer", "responder"):
        for path, method in (
            (f"/api/{kind}", "GET"),
            (f"/api/{kind}/_search", "POST"),
            (f"/api/organization/{kind}", "GET"),
        ):
            response = b.admin.request(
                method, path, params={"range": "all"}, json={} if method == "POST" else None
            )
            ids = {w["id"] for w in ok(response)}
            assert a_objects[kind]["id"] not in ids and all(w["organization"] == b.org for w in ok(response))
        for query in (
            {"_field": "organization", "_value": a.org},
            {"_parent": {"_type": "organization", "_id": a.org}},
            {"_parent": {"_type": "organization", "_query": {"_field": "name", "_value": a.org}}},
            {"_string": f"organization:{a.org}"},
            {"_id": a_objects[kind]["id"]},
        ):
            assert ok(b.admin.post(f"/api/{kind}/_search", json={"query": query, "range": "all"})) == [], (
                query
            )
    assert a_worker not in {w["id"] for w in ok(b.analyst.get("/api/analyzer/type/domain"))}
    assert a_objects["responder"]["id"] not in {
        w["id"] for w in ok(b.analyst.get("/api/responder/type/thehive:case"))
    }

    # users: an orgadmin cannot use the global user search at all
    forbidden(b.admin.post("/api/user/_search", json={"query": {}}))
    forbidden(b.admin.get("/api/user"))
    forbidden(b.admin.post("/api/organization/_search", json={"query": {}}))
    for query in (
        {},
        {"_or": [{"_field": "organization", "_value": a.org}, {"_id": f"{a.org}-analyst"}, {}]},
        {"_string": f"organization:{a.org}"},
        {"_id": f"{a.org}-admin"},
    ):
        members = ok(
            b.admin.post(f"/api/organization/{b.org}/user/_search", json={"query": query, "range": "all"})
        )
        assert {u["organization"] for u in members} <= {b.org}, query
    assert ok(a.analyst.get("/api/alert")) == [] and ok(b.analyst.get("/api/alert")) == []


def test_read_and_analyze_roles(server: Server, superadmin: httpx.Client, a: Tenant, a_objects: dict) -> None:
    """§6.4: job endpoints need `read` (even with `analyze`); running needs `analyze`."""
    login = f"{a.org}-runner"
    ok(
        superadmin.post(
            "/api/user", json={"login": login, "name": "runner", "roles": ["analyze"], "organization": a.org}
        ),
        201,
    )
    runner = bearer(server.url, superadmin.post(f"/api/user/{login}/key/renew").text)
    job_id, analyzer_id = a_objects["job"]["id"], a_objects["analyzer"]["id"]
    started = ok(
        runner.post(f"/api/analyzer/{analyzer_id}/run", json={"dataType": "domain", "data": "runner.example"})
    )
    assert started["status"] in ("Waiting", "InProgress", "Success")
    for response in (
        runner.get("/api/job"),
        runner.post("/api/job/_search", json={"query": {}}),
        runner.get(f"/api/job/{job_id}"),
        runner.get(f"/api/job/{job_id}/report"),
        runner.get(f"/api/job/{job_id}/waitreport", params={"atMost": "1second"}),
        runner.get(f"/api/job/{job_id}/artifacts"),
        runner.post("/api/job/status", json={"jobIds": [job_id]}),
        runner.get(f"/api/job/{started['id']}"),
        runner.get("/api/analyzer"),
    ):
        forbidden(response)
    # a reader reads but neither runs nor deletes
    assert ok(a.reader.get(f"/api/job/{job_id}"))["id"] == job_id
    forbidden(
        a.reader.post(f"/api/analyzer/{analyzer_id}/run", json={"dataType": "domain", "data": "r.example"})
    )
    forbidden(
        a.reader.post(
            f"/api/responder/{a_objects['responder']['id']}/run",
            json={"dataType": "thehive:case", "data": {}},
        )
    )
    forbidden(a.reader.delete(f"/api/job/{job_id}"))
    assert ok(a.reader.get(f"/api/job/{job_id}"))["status"] == "Success"


def test_superadmin_cannot_see_or_run_jobs(superadmin: httpx.Client, a: Tenant, a_objects: dict) -> None:
    job_id, analyzer_id = a_objects["job"]["id"], a_objects["analyzer"]["id"]
    for response in (
        superadmin.get("/api/job", params={"range": "all"}),
        superadmin.post("/api/job/_search", json={"query": {}, "range": "all"}),
        superadmin.get(f"/api/job/{job_id}"),
        superadmin.get(f"/api/job/{job_id}/report"),
        superadmin.delete(f"/api/job/{job_id}"),
        superadmin.post(
            f"/api/analyzer/{analyzer_id}/run", json={"dataType": "domain", "data": "sa.example"}
        ),
        superadmin.post(
            f"/api/responder/{a_objects['responder']['id']}/run",
            json={"dataType": "thehive:case", "data": {}},
        ),
    ):
        forbidden(response)
    # the superadmin's organization is `cortex`: even with admin routes, A's workers are not theirs
    not_found(superadmin.delete(f"/api/analyzer/{analyzer_id}"))
    assert ok(a.analyst.get(f"/api/job/{job_id}"))["status"] == "Success"
    assert ok(a.admin.get(f"/api/analyzer/{analyzer_id}"))["id"] == analyzer_id
