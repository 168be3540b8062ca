"""Long-polling change streams (spec/cortex-api.md §3.7, §3.11)."""

from __future__ import annotations

import re
import threading
import time

import httpx
import pytest

from tests.conftest import Server, Tenant, enable, new_tenant, run_and_wait, xsrf_header


def ok(response: httpx.Response, status: int = 200):
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    return response.json()


@pytest.fixture(scope="module")
def a(superadmin: httpx.Client) -> Tenant:
    return new_tenant(superadmin)


@pytest.fixture(scope="module")
def b(superadmin: httpx.Client) -> Tenant:
    return new_tenant(superadmin)


@pytest.fixture(scope="module")
def echo(a: Tenant) -> dict:
    return enable(a.admin, "analyzer", "Echo_1_0", configuration={"api_key": "STREAM-SECRET-KEY"})


def new_stream(client: httpx.Client) -> str:
    response = client.post("/api/stream")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert re.fullmatch(r"[a-zA-Z0-9]{10}", response.text), response.text
    return response.text


def collect(
    client: httpx.Client, stream_id: str, until, timeout: float = 30, already: list[dict] | None = None
) -> list[dict]:
    """Poll until `until(events)` holds (counting those `already` received); each poll returns as soon as
    events are there."""
    events: list[dict] = list(already or [])
    deadline = time.monotonic() + timeout
    while not until(events):
        assert time.monotonic() < deadline, events
        events += ok(client.get(f"/api/stream/{stream_id}", timeout=90))
    return events


def job_events(events: list[dict], job_id: str) -> list[tuple[str, str | None]]:
    return [
        (e["base"]["operation"], e["base"]["object"].get("status"))
        for e in events
        if e["base"]["objectType"] == "job" and e["base"]["objectId"] == job_id
    ]


def test_create_stream(a: Tenant, superadmin: httpx.Client) -> None:
    first, second = new_stream(a.analyst), new_stream(a.reader)
    assert first != second
    # creating a stream needs `read`: a superadmin has none
    assert superadmin.post("/api/stream").status_code == 403


def test_job_events_arrive_by_long_poll(a: Tenant, echo: dict) -> None:
    stream_id = new_stream(a.analyst)
    polled: list = []
    started = time.monotonic()
    poller = threading.Thread(
        target=lambda: polled.append(a.analyst.get(f"/api/stream/{stream_id}", timeout=90))
    )
    poller.start()
    time.sleep(0.5)
    assert poller.is_alive(), "the poll must wait for an event"
    job = ok(
        a.analyst.post(f"/api/analyzer/{echo['id']}/run", json={"dataType": "domain", "data": "poll.example"})
    )
    poller.join(30)
    assert not poller.is_alive() and time.monotonic() - started < 10
    events = ok(polled[0])
    assert isinstance(events, list) and events
    events = collect(
        a.analyst, stream_id, lambda ev: ("Update", "Success") in job_events(ev, job["id"]), 60, events
    )

    seen = job_events(events, job["id"])
    assert ("Creation", "Waiting") in seen and ("Update", "Success") in seen
    for event in events:
        base = event["base"]
        assert set(base) >= {
            "objectId",
            "objectType",
            "operation",
            "startDate",
            "rootId",
            "user",
            "createdBy",
            "createdAt",
            "requestId",
            "object",
            "details",
        }
        assert base["operation"] in ("Creation", "Update", "Delete")
        assert isinstance(base["startDate"], int) and base["startDate"] > 1_000_000_000_000
        assert isinstance(event["summary"], dict)
        assert base["object"].get("organization", a.org) == a.org
    creation = next(
        e for e in events if e["base"]["objectId"] == job["id"] and e["base"]["operation"] == "Creation"
    )
    assert creation["base"]["user"] == f"{a.org}-analyst"
    assert creation["summary"] == {"job": {"Creation": 1}}
    assert creation["base"]["object"]["data"] == "poll.example"
    updates = [
        e["base"]["details"]["status"]
        for e in events
        if e["base"]["objectId"] == job["id"] and e["base"]["operation"] == "Update"
    ]
    assert updates == ["InProgress", "Success"]


def test_admin_events_without_secrets(a: Tenant) -> None:
    stream_id = new_stream(a.admin)
    worker = enable(
        a.admin, "analyzer", "ShellEcho_1_0", configuration={"proxy_http": "http://STREAM-PROXY:3128"}
    )
    ok(a.admin.patch(f"/api/analyzer/{worker['id']}", json={"rate": 5, "rateUnit": "Minute"}))
    ok(a.admin.patch(f"/api/user/{a.org}-reader", json={"name": "renamed reader"}))
    key = a.admin.post(f"/api/user/{a.org}-reader/key/renew").text
    assert a.admin.delete(f"/api/analyzer/{worker['id']}").status_code == 204

    def has_all(events: list[dict]) -> bool:
        seen = {(e["base"]["objectType"], e["base"]["operation"], e["base"]["objectId"]) for e in events}
        return {
            ("worker", "Creation", worker["id"]),
            ("worker", "Update", worker["id"]),
            ("worker", "Delete", worker["id"]),
            ("user", "Update", f"{a.org}-reader"),
        } <= seen

    events = collect(a.admin, stream_id, has_all)
    text = str(events)
    for secret in ("STREAM-PROXY", key, "STREAM-SECRET-KEY"):
        assert secret not in text
    for event in events:
        assert "configuration" not in event["base"]["object"]
        assert not {"password", "key", "key_hash", "key_encrypted"} & set(event["base"]["object"])


def test_only_the_streams_organization(a: Tenant, b: Tenant, echo: dict) -> None:
    a_stream, b_stream = new_stream(a.analyst), new_stream(b.analyst)
    a_job = run_and_wait(a.analyst, echo["id"], {"dataType": "domain", "data": "only-a.example"})
    b_worker = enable(b.admin, "analyzer", "ShellEcho_1_0")
    b_job = run_and_wait(b.analyst, b_worker["id"], {"dataType": "other", "data": "only b"})

    b_events = collect(b.analyst, b_stream, lambda ev: ("Update", "Success") in job_events(ev, b_job["id"]))
    assert job_events(b_events, a_job["id"]) == []
    assert "only-a.example" not in str(b_events) and echo["id"] not in str(b_events)
    assert all(e["base"]["object"].get("organization", b.org) == b.org for e in b_events)
    assert all(not e["base"]["user"].startswith(a.org) for e in b_events)

    a_events = collect(a.analyst, a_stream, lambda ev: ("Update", "Success") in job_events(ev, a_job["id"]))
    assert job_events(a_events, b_job["id"]) == [] and "only b" not in str(a_events)
    # another organization's stream id is unknown to them
    assert b.analyst.get(f"/api/stream/{a_stream}").status_code == 404


def test_stream_ids(server: Server, a: Tenant) -> None:
    for bad in ("abc", "abcdefghijk", "abcde-ghij", "abcdefghi%21"):
        response = a.analyst.get(f"/api/stream/{bad}")
        assert response.status_code == 400, (bad, response.text)
        assert response.json() == {"type": "BadRequest", "message": "Invalid stream id"}
    unknown = a.analyst.get("/api/stream/ABCDEFGHIJ")
    assert unknown.status_code == 404 and unknown.json()["type"] == "NotFoundError"
    # a stream is polled by an authenticated caller only
    stream_id = new_stream(a.analyst)
    assert httpx.get(f"{server.url}/api/stream/{stream_id}").status_code == 401


def test_stream_status(server: Server, superadmin: httpx.Client) -> None:
    anonymous = httpx.get(f"{server.url}/api/stream/status")
    assert anonymous.status_code == 200 and anonymous.json() == {"remaining": 0, "warning": True}
    assert superadmin.get("/api/stream/status").json() == {
        "remaining": 0,
        "warning": True,
    }  # keys have no session

    login = f"streamer{int(time.time() * 1000)}"
    ok(
        superadmin.post(
            "/api/user",
            json={
                "login": login,
                "name": "s",
                "roles": ["superadmin"],
                "organization": "cortex",
                "password": "pw-stream",
            },
        ),
        201,
    )
    session = httpx.Client(base_url=server.url)
    ok(session.post("/api/login", json={"user": login, "password": "pw-stream"}))
    status = ok(session.get("/api/stream/status"))
    assert set(status) == {"remaining", "warning"}
    assert isinstance(status["remaining"], int) and 3500 < status["remaining"] <= 3600
    assert status["warning"] is False
    assert session.post("/api/stream", headers=xsrf_header(session)).status_code == 403  # superadmin: no read
