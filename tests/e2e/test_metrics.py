"""`/metrics` (issue 8 item 1): Prometheus text that parses, figures that move when jobs run, and who may
scrape it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server, Tenant, bearer, enable, new_tenant, run_and_wait
from tests.e2e.servers import dedicated

Samples = dict[tuple[str, frozenset], float]


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and wanted <= lab)


def wait_for(client: httpx.Client, check, timeout: float = 15) -> Samples:
    """Scrape until `check` holds (the job-table gauges are cached for a few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(client)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.5)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, httpx.Client]]:
    with dedicated(tmp_path_factory.mktemp("metrics"), {}) as started:
        yield started


@pytest.fixture(scope="module")
def org(node: tuple[Server, httpx.Client]) -> Tenant:
    return new_tenant(node[1])


def test_metrics_move_when_jobs_run(node: tuple[Server, httpx.Client], org: Tenant) -> None:
    server, _ = node
    anonymous = httpx.Client(base_url=server.url, timeout=30)  # loopback, no token configured
    before = scrape(anonymous)
    noop = enable(org.admin, "analyzer", "NoOp_1_0")
    jobs = [run_and_wait(org.analyst, noop["id"], {"dataType": "other", "data": f"m{n}"}) for n in range(3)]
    assert {job["status"] for job in jobs} == {"Success"}
    again = org.analyst.post(f"/api/analyzer/{noop['id']}/run", json={"dataType": "other", "data": "m0"})
    assert again.status_code == 200 and again.json()["id"]

    after = wait_for(
        anonymous, lambda s: value(s, "neurocortex_jobs", status="Success", organization=org.org) == 3
    )
    assert value(after, "neurocortex_jobs", status="Success", worker="NoOp_1_0", organization=org.org) == 3
    runs = value(after, "neurocortex_job_run_seconds_count", worker="NoOp_1_0", status="Success")
    assert runs - value(before, "neurocortex_job_run_seconds_count", worker="NoOp_1_0") == 3
    assert value(after, "neurocortex_job_wait_seconds_count", worker="NoOp_1_0") >= 3
    assert value(after, "neurocortex_cache_hits_total", worker="NoOp_1_0") == 1
    assert value(after, "neurocortex_cache_misses_total", worker="NoOp_1_0") == 3
    assert value(after, "neurocortex_queue_depth") == 0
    # HTTP latency by route template, never by raw path (one series per job id would never end)
    assert value(after, "neurocortex_http_request_seconds_count", route="/api/job/{job_id}/waitreport") >= 3
    routes = {dict(labels).get("route", "") for (_, labels) in after}
    assert not any(job["id"] in route for job in jobs for route in routes)


def test_rate_limit_rejections_and_runner_errors_are_counted(
    node: tuple[Server, httpx.Client], org: Tenant
) -> None:
    server, _ = node
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    limited = enable(org.admin, "analyzer", "Echo_1_0", rate=1, rateUnit="Day", jobCache=0)
    assert (
        org.analyst.post(
            f"/api/analyzer/{limited['id']}/run", json={"dataType": "ip", "data": "1.2.3.4"}
        ).status_code
        == 200
    )
    refused = org.analyst.post(
        f"/api/analyzer/{limited['id']}/run", json={"dataType": "ip", "data": "1.2.3.5"}
    )
    assert refused.status_code == 429
    hang = enable(org.admin, "analyzer", "Hostile_Hang_1_0", jobTimeout=0.02)
    assert run_and_wait(org.analyst, hang["id"], {"dataType": "other", "data": "x"})["status"] == "Failure"

    samples = wait_for(
        anonymous, lambda s: value(s, "neurocortex_jobs", status="Failure", organization=org.org) == 1
    )
    assert value(samples, "neurocortex_rate_limit_rejections_total", worker="Echo_1_0", scope="worker") == 1
    assert value(samples, "neurocortex_runner_errors_total", runner="process", reason="timeout") == 1
    assert (
        value(samples, "neurocortex_job_run_seconds_count", worker="Hostile_Hang_1_0", status="Failure") == 1
    )


def test_anonymous_scrapes_through_a_proxy_are_refused(
    node: tuple[Server, httpx.Client], org: Tenant
) -> None:
    server, superadmin = node
    proxied = httpx.Client(base_url=server.url, headers={"X-Forwarded-For": "203.0.113.9"})
    refused = proxied.get("/metrics")
    assert refused.status_code == 401 and refused.json()["type"] == "AuthenticationError"
    assert org.admin.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
    assert superadmin.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200


def test_a_metrics_token_closes_the_loopback_door(tmp_path_factory: pytest.TempPathFactory) -> None:
    token = "s3cret-scraper-token-for-tests"
    with dedicated(tmp_path_factory.mktemp("token"), {"NEUROCORTEX_METRICS_TOKEN": token}) as (server, admin):
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        assert bearer(server.url, "wrong").get("/metrics").status_code == 401
        assert "neurocortex_queue_depth" in scrape(bearer(server.url, token)).__repr__()
        assert admin.get("/metrics").status_code == 200


def test_jobs_held_back_by_a_rate_window_are_counted(node: tuple[Server, httpx.Client], org: Tenant) -> None:
    server, _ = node
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    queued = enable(org.admin, "analyzer", "Nap_1_0", name="Nap_queued", rate=1, rateUnit="Hour",
                    rateLimitPolicy="queue", jobCache=0)  # fmt: skip
    for n in range(2):
        sent = org.analyst.post(
            f"/api/analyzer/{queued['id']}/run", json={"dataType": "other", "data": f"q{n}"}
        )
        assert sent.status_code == 200, sent.text
    samples = wait_for(anonymous, lambda s: value(s, "neurocortex_queue_depth") == 1)
    assert value(samples, "neurocortex_rate_limit_delays_total", worker="Nap_queued") >= 1
    assert (
        value(samples, "neurocortex_jobs", status="Waiting", worker="Nap_queued", organization=org.org) == 1
    )
    assert value(samples, "neurocortex_queue_oldest_seconds") > 0
