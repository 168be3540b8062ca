"""The exporter of `neurocortex worker` nodes: this process's job metrics on their own port, without the
job-table gauges that the API servers serve for the whole cluster."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from neurocortex import metrics
from tests.conftest import free_port


def test_a_worker_node_serves_its_own_counters_only() -> None:
    port = free_port()
    metrics.start_worker_exporter(port, host="127.0.0.1")
    started = int(time.time() * 1000)
    metrics.job_ended({"workerName": "Exporter_test", "startDate": started - 1500}, "Success", started)
    metrics.runner_error("process", "timeout")
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert (
        samples[("neurocortex_job_run_seconds_count", (("status", "Success"), ("worker", "Exporter_test")))]
        == 1
    )
    assert (
        samples[("neurocortex_job_run_seconds_sum", (("status", "Success"), ("worker", "Exporter_test")))]
        == 1.5
    )
    assert samples[("neurocortex_runner_errors_total", (("reason", "timeout"), ("runner", "process")))] >= 1
    assert not any(name in ("neurocortex_queue_depth", "neurocortex_jobs") for name, _ in samples)
