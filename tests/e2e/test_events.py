"""Job events: `/api/events` (server-sent events, resumable) and webhooks (signed, retried, logged)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.conftest import (
    Server,
    Tenant,
    bootstrap_superadmin,
    drop_database,
    enable,
    free_port,
    make_server,
    new_tenant,
    run_and_wait,
)

ON_POSTGRESQL = os.environ.get("NEUROCORTEX_TEST_DATABASE") == "postgresql"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "NEUROCORTEX_WEBHOOK_RETRY_DELAY": "1",
        "NEUROCORTEX_WEBHOOK_MAX_ATTEMPTS": "4",
        "NEUROCORTEX_WEBHOOK_TIMEOUT": "15",  # test_a_slow_receiver... holds one answer for a while
        # a second node in test_two_nodes must read the same secrets
        "NEUROCORTEX_SECRET_KEY": secrets.token_urlsafe(48),
    }
    srv = make_server(tmp_path_factory.mktemp("server"), env)
    srv.start()
    yield srv
    srv.stop()
    db_url = srv.env.get("NEUROCORTEX_DATABASE_URL", "")
    if "nc_test_" in db_url:
        drop_database(db_url.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def a(superadmin: httpx.Client) -> Tenant:
    return new_tenant(superadmin)


@pytest.fixture(scope="module")
def b(superadmin: httpx.Client) -> Tenant:
    return new_tenant(superadmin)


@pytest.fixture(scope="module")
def echo_a(a: Tenant) -> dict:
    return enable(a.admin, "analyzer", "Echo_1_0", configuration={"api_key": "EVENTS-WORKER-SECRET"})


@pytest.fixture(scope="module")
def echo_b(b: Tenant) -> dict:
    return enable(b.admin, "analyzer", "Echo_1_0")


# -- a server-sent events client ---------------------------------------------------------------------------


@dataclass
class Event:
    id: int
    type: str
    data: dict

    @property
    def job(self) -> str:
        return self.data["job"]["id"]


class EventStream:
    """`GET /api/events` read line by line as the W3C EventSource does; closing it is a disconnect."""

    def __init__(self, client: httpx.Client, last_event_id: int | None = None, query: bool = False) -> None:
        headers = {"Accept": "text/event-stream"}
        params = {}
        if last_event_id is not None:
            if query:
                params["lastEventId"] = str(last_event_id)
            else:
                headers["Last-Event-ID"] = str(last_event_id)
        self._context = client.stream("GET", "/api/events", headers=headers, params=params, timeout=30)
        self.response = self._context.__enter__()
        assert self.response.status_code == 200, self.response.read()
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self._lines = self.response.iter_lines()

    def next(self) -> Event:
        fields: dict[str, str] = {}
        for line in self._lines:
            if line == "":
                if "data" in fields:
                    assert fields["event"] == json.loads(fields["data"])["type"]
                    return Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                continue
            if line.startswith(":"):
                continue  # a comment: keep-alive
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        raise AssertionError("the event stream ended")

    def take(self, count: int) -> list[Event]:
        return [self.next() for _ in range(count)]

    def close(self) -> None:
        self._context.__exit__(None, None, None)


def transitions(events: list[Event], job_id: str) -> list[str]:
    return [e.type for e in events if e.job == job_id]


def test_a_job_transitions_arrive_in_order_with_public_fields_only(a: Tenant, echo_a: dict) -> None:
    stream = EventStream(a.reader)
    try:
        report = run_and_wait(a.analyst, echo_a["id"], {"data": "198.51.100.1", "dataType": "ip"})
        events = stream.take(3)
    finally:
        stream.close()
    assert [e.type for e in events] == ["job.created", "job.started", "job.succeeded"]
    assert {e.job for e in events} == {report["id"]}
    assert [e.id for e in events] == sorted(e.id for e in events) and len({e.id for e in events}) == 3
    for event in events:
        assert event.data["id"] == event.id and event.data["organization"] == a.org
        assert "input" not in event.data["job"] and "parameters" not in event.data["job"]
        assert "EVENTS-WORKER-SECRET" not in json.dumps(event.data)
    job = events[-1].data["job"]
    assert job["status"] == "Success" and job["data"] == "198.51.100.1" and job["workerId"] == echo_a["id"]
    assert job["endDate"] >= job["startDate"] >= job["createdAt"]


def test_a_failing_job_ends_with_job_failed_and_its_error(a: Tenant) -> None:
    crash = enable(a.admin, "analyzer", "Hostile_Crash_1_0")
    stream = EventStream(a.reader)
    try:
        report = run_and_wait(a.analyst, crash["id"], {"data": "192.0.2.66", "dataType": "ip"})
        events = stream.take(3)
    finally:
        stream.close()
    assert report["status"] == "Failure"
    assert [(e.type, e.job) for e in events] == [
        ("job.created", report["id"]), ("job.started", report["id"]), ("job.failed", report["id"])
    ]  # fmt: skip
    failed = events[-1].data["job"]
    assert failed["status"] == "Failure" and failed["errorMessage"] == report["errorMessage"]
    assert "input" not in failed


def test_a_client_resumes_after_a_disconnect_with_exactly_the_missed_events(a: Tenant, echo_a: dict) -> None:
    stream = EventStream(a.reader)
    try:
        job = a.analyst.post(
            f"/api/analyzer/{echo_a['id']}/run", json={"data": "a.example", "dataType": "domain"}
        )
        created = stream.next()
    finally:
        stream.close()  # disconnected: what follows happens while nobody listens
    assert created.type == "job.created" and created.job == job.json()["id"]
    job_id = created.job
    assert a.analyst.get(f"/api/job/{job_id}/waitreport", params={"atMost": "60 seconds"}).status_code == 200
    assert a.analyst.delete(f"/api/job/{job_id}").status_code == 204

    resumed = EventStream(a.reader, last_event_id=created.id)
    try:
        missed = resumed.take(3)
        assert [(e.type, e.job) for e in missed] == [
            ("job.started", job_id), ("job.succeeded", job_id), ("job.deleted", job_id)
        ]  # fmt: skip
        assert created.id < missed[0].id < missed[1].id < missed[2].id
        # then live
        live = a.analyst.post(
            f"/api/analyzer/{echo_a['id']}/run", json={"data": "b.example", "dataType": "domain"}
        )
        following = resumed.next()
        assert (following.type, following.job) == ("job.created", live.json()["id"])
    finally:
        resumed.close()
    # the same with the query parameter (for clients that cannot set headers)
    by_query = EventStream(a.reader, last_event_id=created.id, query=True)
    try:
        assert [e.id for e in by_query.take(4)] == [e.id for e in [*missed, following]]
    finally:
        by_query.close()
    a.analyst.get(f"/api/job/{live.json()['id']}/waitreport", params={"atMost": "60 seconds"})


def test_an_organization_never_sees_another_ones_events(
    a: Tenant, b: Tenant, echo_a: dict, echo_b: dict
) -> None:
    stream_b = EventStream(b.reader)
    try:
        job_a = run_and_wait(a.analyst, echo_a["id"], {"data": "203.0.113.9", "dataType": "ip"})
        job_b = run_and_wait(b.analyst, echo_b["id"], {"data": "203.0.113.10", "dataType": "ip"})
        live = stream_b.take(3)  # A's events came first, yet B's stream starts with B's job
    finally:
        stream_b.close()
    assert [(e.type, e.job) for e in live] == [
        ("job.created", job_b["id"]), ("job.started", job_b["id"]), ("job.succeeded", job_b["id"])
    ]  # fmt: skip
    # a replay from the start: B's events only, although ids are shared between organizations
    replay = EventStream(b.reader, last_event_id=0)
    try:
        everything = replay.take(3)
    finally:
        replay.close()
    assert [e.id for e in everything] == [e.id for e in live]
    assert all(e.data["organization"] == b.org and e.job != job_a["id"] for e in everything)


def test_events_need_read_and_a_valid_last_event_id(
    a: Tenant, superadmin: httpx.Client, server: Server
) -> None:
    assert httpx.get(f"{server.url}/api/events").status_code == 401
    assert superadmin.get("/api/events").status_code == 403  # a superadmin belongs to no tenant: no `read`
    bad = a.reader.get("/api/events", headers={"Last-Event-ID": "12; DROP"})
    assert bad.status_code == 400 and bad.json()["type"] == "BadRequest"


# -- webhooks ----------------------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on loopback, answering `failing` with 500 until it is told otherwise."""

    failing: bool = False
    fail_first: int = 0
    gate: threading.Event | None = None  # when set up: each answer waits for it
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                if receiver.gate is not None:
                    receiver.gate.wait(30)
                failed = receiver.failing or len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failed else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, [r.payload["type"] for r in self.requests]
            time.sleep(0.05)
        return self.requests

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def verify(secret: str, request: Received) -> None:
    """What a receiver does (README): HMAC-SHA256 of "<timestamp>.<body>", and a recent timestamp."""
    timestamp = request.headers["x-neurocortex-timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-neurocortex-signature"], f"sha256={expected}")
    assert abs(time.time() - int(timestamp)) < 300


def deliveries(client: httpx.Client, hook_id: str, until: Callable[[list[dict]], bool], timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/webhook/{hook_id}/delivery", params={"range": "all"})
        assert response.status_code == 200, response.text
        if until(response.json()):
            return response.json()
        assert time.monotonic() < deadline, response.json()
        time.sleep(0.1)


def new_hook(client: httpx.Client, url: str, secret: str, **body) -> dict:
    response = client.post("/api/webhook", json={"url": url, "secret": secret, **body})
    assert response.status_code == 201, response.text
    assert secret not in response.text
    return response.json()


def test_signed_deliveries_retried_after_a_500_and_logged(
    a: Tenant, echo_a: dict, receiver: Receiver
) -> None:
    secret = secrets.token_hex(16)
    receiver.fail_first = 1
    hook = new_hook(a.admin, receiver.url, secret, events=["job.succeeded"], description="SOAR")
    assert hook["enabled"] is True and hook["events"] == ["job.succeeded"] and "secret" not in hook
    try:
        job = run_and_wait(a.analyst, echo_a["id"], {"data": "192.0.2.44", "dataType": "ip"})
        first, second = receiver.wait_for(2)
        for request in (first, second):
            verify(secret, request)
            assert request.headers["content-type"] == "application/json"
            assert request.headers["x-neurocortex-event"] == "job.succeeded"
            assert request.payload["type"] == "job.succeeded" and request.payload["job"]["id"] == job["id"]
            assert request.payload["organization"] == a.org and "input" not in request.payload["job"]
        # the retry is the same delivery of the same event
        assert first.body == second.body
        assert first.headers["x-neurocortex-event-id"] == second.headers["x-neurocortex-event-id"]
        assert first.headers["x-neurocortex-delivery"] == second.headers["x-neurocortex-delivery"]
        # a forged body does not pass
        with pytest.raises(AssertionError):
            verify(secret, Received(second.headers, second.body.replace(b"Success", b"Failure")))

        [logged] = deliveries(a.admin, hook["id"], lambda rows: rows and rows[0]["status"] == "Delivered")
        assert logged["attempts"] == 2 and logged["lastStatusCode"] == 200 and "lastError" not in logged
        assert (
            logged["eventType"] == "job.succeeded"
            and str(logged["eventId"]) == first.headers["x-neurocortex-event-id"]
        )
        assert logged["deliveredAt"] >= logged["lastAttemptAt"] >= logged["createdAt"]
        time.sleep(0.5)
        assert len(receiver.requests) == 2  # created and started were filtered out, nothing sent twice
    finally:
        assert a.admin.delete(f"/api/webhook/{hook['id']}").status_code == 204


def test_a_delivery_that_keeps_failing_stops_after_the_last_attempt(
    a: Tenant, echo_a: dict, receiver: Receiver
) -> None:
    receiver.failing = True
    hook = new_hook(a.admin, receiver.url, secrets.token_hex(16), events=["job.created"])
    try:
        a.analyst.post(f"/api/analyzer/{echo_a['id']}/run", json={"data": "198.51.100.99", "dataType": "ip"})
        [logged] = deliveries(a.admin, hook["id"], lambda r: r and r[0]["status"] == "Failed", timeout=40)
        assert (
            logged["attempts"] == 4 and logged["lastStatusCode"] == 500 and logged["lastError"] == "HTTP 500"
        )
        assert len(receiver.requests) == 4
    finally:
        a.admin.delete(f"/api/webhook/{hook['id']}")


def test_a_slow_receiver_holds_back_no_other(a: Tenant, echo_a: dict, receiver: Receiver) -> None:
    slow = Receiver(gate=threading.Event())
    hooks = [
        new_hook(a.admin, r.url, secrets.token_hex(16), events=["job.succeeded"]) for r in (slow, receiver)
    ]
    try:
        run_and_wait(a.analyst, echo_a["id"], {"data": "192.0.2.80", "dataType": "ip"})
        slow.wait_for(1)
        receiver.wait_for(1)
        # the slow receiver has not answered yet, and its attempt is still in flight (not recorded)
        [in_flight] = a.admin.get(f"/api/webhook/{hooks[0]['id']}/delivery").json()
        assert in_flight["status"] == "Pending" and "lastAttemptAt" not in in_flight
        slow.gate.set()
        [done] = deliveries(a.admin, hooks[0]["id"], lambda r: r and r[0]["status"] == "Delivered")
        assert done["attempts"] == 1
    finally:
        slow.gate.set()
        slow.close()
        for hook in hooks:
            a.admin.delete(f"/api/webhook/{hook['id']}")


def test_webhooks_are_the_orgadmins_of_their_organization_only(
    a: Tenant, b: Tenant, receiver: Receiver
) -> None:
    secret = "s3cr3t-" + secrets.token_hex(12)
    hook = new_hook(a.admin, receiver.url, secret)
    path = f"/api/webhook/{hook['id']}"
    try:
        answers = [
            a.admin.get(path), a.admin.get("/api/webhook"),
            a.admin.patch(path, json={"enabled": False, "secret": secret + "-new"}), a.admin.get(f"{path}/delivery"),
        ]  # fmt: skip
        for answer in answers:
            assert answer.status_code == 200, answer.text
            assert secret not in answer.text and "secret" not in answer.text
        assert answers[2].json()["enabled"] is False
        assert [h["id"] for h in answers[1].json()] == [hook["id"]]
        # another organization's orgadmin: as if it did not exist
        for method, url in (("GET", path), ("PATCH", path), ("DELETE", path), ("GET", f"{path}/delivery")):
            response = b.admin.request(method, url, json={"enabled": True} if method == "PATCH" else None)
            assert response.status_code == 404, (method, url, response.text)
        assert b.admin.get("/api/webhook").json() == []
        # not an orgadmin
        assert a.analyst.get("/api/webhook").status_code == 403
        assert a.analyst.post("/api/webhook", json={"url": receiver.url, "secret": secret}).status_code == 403
    finally:
        assert a.admin.delete(path).status_code == 204
    assert a.admin.get(path).status_code == 404


def test_bad_webhooks_are_refused_without_echoing_the_secret(a: Tenant) -> None:
    cases = [
        {"url": "ftp://example.invalid/x", "secret": "x" * 20},
        {"url": "http://example.invalid/x", "secret": "short-secret"},
        {"url": "http://example.invalid/x", "secret": "x" * 20, "events": ["job.exploded"]},
        {"url": "http://example.invalid/x", "secret": "x" * 20, "enabled": "yes"},
        {"url": "http://example.invalid/x"},
        {"url": "http://example.invalid/x", "secret": "x" * 20, "id": "mine"},
    ]
    for body in cases:
        response = a.admin.post("/api/webhook", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["type"] == "AttributeCheckingError", response.text
        assert "short-secret" not in response.text
    assert a.admin.get("/api/webhook").json() == []


def test_two_nodes_send_each_delivery_once_and_resume_streams_of_each_other(
    server: Server, a: Tenant, echo_a: dict, receiver: Receiver, tmp_path
) -> None:
    if not ON_POSTGRESQL:
        pytest.skip("several nodes share a PostgreSQL database (NEUROCORTEX_TEST_DATABASE=postgresql)")
    second = Server(
        data_dir=tmp_path, port=free_port(), env=server.env | {"NEUROCORTEX_DATA_DIR": str(tmp_path)}
    )
    second.start()
    try:
        on_second = httpx.Client(base_url=second.url, headers=a.reader.headers, timeout=60)
        noop = enable(a.admin, "analyzer", "NoOp_1_0")
        secret = secrets.token_hex(16)
        hook = new_hook(a.admin, receiver.url, secret, events=["job.succeeded"])
        first_stream = EventStream(a.reader)
        try:
            job_ids = [
                a.analyst.post(f"/api/analyzer/{noop['id']}/run", json={"data": f"10.0.0.{i}", "dataType": "ip"})
                .json()["id"]
                for i in range(12)
            ]  # fmt: skip
            seen_first = first_stream.next()
        finally:
            first_stream.close()
        received = receiver.wait_for(len(job_ids))
        time.sleep(1.0)  # a second sending of anything would arrive by now
        event_ids = [r.headers["x-neurocortex-event-id"] for r in receiver.requests]
        assert sorted({r.payload["job"]["id"] for r in received}) == sorted(job_ids)
        assert len(event_ids) == len(set(event_ids)) == len(job_ids)
        for request in received:
            verify(secret, request)
        # the stream left on the first node resumes on the second, from the same ids
        resumed = EventStream(on_second, last_event_id=seen_first.id)
        try:
            rest = resumed.take(3 * len(job_ids) - 1)
        finally:
            resumed.close()
        assert [e.id for e in rest] == sorted(e.id for e in rest) and rest[0].id > seen_first.id
        for job_id in job_ids:
            expected = ["job.created", "job.started", "job.succeeded"]
            assert transitions([seen_first, *rest], job_id) == expected
        a.admin.delete(f"/api/webhook/{hook['id']}")
    finally:
        second.stop()


def test_pending_deliveries_survive_a_restart(
    server: Server, a: Tenant, echo_a: dict, receiver: Receiver
) -> None:
    """Last: it restarts the module's server. One delivery failed once and waits for its retry; another
    is in flight (its receiver does not answer) when the server stops."""
    receiver.failing = True
    hanging = Receiver(gate=threading.Event())
    secret = secrets.token_hex(16)
    hook = new_hook(a.admin, receiver.url, secret, events=["job.succeeded"])
    in_flight = new_hook(a.admin, hanging.url, secret, events=["job.succeeded"])
    try:
        job = run_and_wait(a.analyst, echo_a["id"], {"data": "192.0.2.200", "dataType": "ip"})
        receiver.wait_for(1)
        hanging.wait_for(1)
        stream = EventStream(a.reader)  # an open event stream does not hold the server back
        server.stop()  # retries come 1 s, then 2 s after the first attempt: the delivery is still Pending
        # it stopped by itself (uvicorn ends by raising SIGTERM again), it was not killed after 20 s
        assert server.process.returncode in (0, -signal.SIGTERM)
        with pytest.raises((AssertionError, httpx.HTTPError), match="ended|closed|incomplete|peer"):
            stream.next()
        stream.close()
        receiver.failing = False
        hanging.gate.set()
        server.start()
        for got in (receiver.wait_for(2), hanging.wait_for(2)):
            assert got[-1].payload["job"]["id"] == job["id"]
            verify(secret, got[-1])
        [logged] = deliveries(a.admin, hook["id"], lambda r: r and r[0]["status"] == "Delivered")
        assert logged["attempts"] == len(receiver.requests) and logged["lastStatusCode"] == 200
        # the attempt cut short by the stop was given back, not counted
        [logged] = deliveries(a.admin, in_flight["id"], lambda r: r and r[0]["status"] == "Delivered")
        assert logged["attempts"] == 1 and len(hanging.requests) == 2
    finally:
        hanging.gate.set()
        hanging.close()


def test_events_and_deliveries_are_deleted_after_their_retention(tmp_path, receiver: Receiver) -> None:
    # about 2 seconds
    node = make_server(tmp_path, {"NEUROCORTEX_EVENT_RETENTION": f"{2 / 86_400}"})
    node.start()
    try:
        tenant = new_tenant(bootstrap_superadmin(node))
        hook = new_hook(tenant.admin, receiver.url, secrets.token_hex(16))
        echo = enable(tenant.admin, "analyzer", "Echo_1_0")
        job = run_and_wait(tenant.analyst, echo["id"], {"data": "192.0.2.7", "dataType": "ip"})
        receiver.wait_for(3)
        replay = EventStream(tenant.reader, last_event_id=0)
        try:
            assert [e.type for e in replay.take(3)] == ["job.created", "job.started", "job.succeeded"]
        finally:
            replay.close()
        deadline = time.monotonic() + 30
        while tenant.admin.get(f"/api/webhook/{hook['id']}/delivery").json():
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # nothing left to replay: the next event is the first one seen
        replay = EventStream(tenant.reader, last_event_id=0)
        try:
            assert tenant.analyst.delete(f"/api/job/{job['id']}").status_code == 204
            assert replay.next().type == "job.deleted"
        finally:
            replay.close()
    finally:
        node.stop()
        db_url = node.env.get("NEUROCORTEX_DATABASE_URL", "")
        if "nc_test_" in db_url:
            drop_database(db_url.rsplit("/", 1)[1])
