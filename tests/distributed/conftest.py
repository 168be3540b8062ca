"""A distributed cluster for the tests: `serve` nodes and `neurocortex worker` nodes that share only a
PostgreSQL database and a broker (RabbitMQ or Redis), each node with a data directory of its own."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ROOT,
    TEST_WORKERS,
    Server,
    bootstrap_superadmin,
    drop_database,
    make_server,
    read_log,
    stop_process,
)

POSTGRES_ADMIN = os.environ.get(
    "NEUROCORTEX_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BROKERS = {
    "rabbitmq": os.environ.get("NEUROCORTEX_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//"),
    "redis": os.environ.get("NEUROCORTEX_TEST_REDIS", "redis://127.0.0.1:6379/0"),
}


@dataclass
class Worker:
    """A running `neurocortex worker` process."""

    data_dir: Path
    env: dict[str, str]
    concurrency: int
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "worker.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "neurocortex", "worker", "--concurrency", str(self.concurrency)],
            env=self.env | {"NEUROCORTEX_DATA_DIR": str(self.data_dir)},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return read_log(self.log_path)


@dataclass
class Cluster:
    servers: list[Server]
    workers: list[Worker]
    env: dict[str, str]
    admin: httpx.Client | None = None
    extra: dict = field(default_factory=dict)

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        """Until `count` worker nodes are recorded as live (their capacity is what jobs are sent to)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.admin.get("/api/node").json()) >= count:
                return
            for worker in self.workers:
                if worker.process is not None and worker.process.poll() is not None:
                    raise RuntimeError(f"worker exited:\n{worker.log()}")
            time.sleep(0.2)
        raise RuntimeError("workers did not register:\n" + "\n".join(w.log() for w in self.workers))


def postgres_available() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], check=False).returncode == 0


@pytest.fixture(scope="module", params=sorted(BROKERS))
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two `serve` nodes and two workers on one PostgreSQL database and one broker queue of their own."""
    if not postgres_available():
        pytest.skip("distributed mode needs PostgreSQL on 127.0.0.1:5432")
    name = f"nc_test_{secrets.token_hex(6)}"
    subprocess.run(["psql", POSTGRES_ADMIN, "-qc", f"CREATE DATABASE {name}"], check=True)
    database_url = (
        POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROCORTEX_")}
    env |= {
        "NEUROCORTEX_DATABASE_URL": database_url,
        "NEUROCORTEX_BROKER_URL": BROKERS[request.param],
        "NEUROCORTEX_SECRET_KEY": secrets.token_urlsafe(48),
        # a queue of this cluster's own: test runs side by side share the brokers
        "NEUROCORTEX_BROKER_QUEUE": f"nc-test-{secrets.token_hex(6)}",
        "NEUROCORTEX_ANALYZERS": f"{ROOT / 'neurons' / 'analyzers'},{TEST_WORKERS / 'analyzers'}",
        "NEUROCORTEX_RESPONDERS": f"{ROOT / 'neurons' / 'responders'},{TEST_WORKERS / 'responders'}",
        "NEUROCORTEX_RUNNERS": "process",
        "NEUROCORTEX_LOG_LEVEL": "warning",
        # short leases: a dead worker's job is noticed in seconds
        "NEUROCORTEX_JOB_LEASE": "3",
    }
    tmp = tmp_path_factory.mktemp(f"cluster-{request.param}")
    servers = [make_server(tmp / f"serve{i}", extra_env=env) for i in (1, 2)]
    workers = [Worker(tmp / f"worker{i}", env, concurrency=4) for i in (1, 2)]
    started: list = []
    try:
        for node in servers:
            node.start()
            started.append(node)
        for node in workers:
            node.start()
            started.append(node)
        cluster = Cluster(servers, workers, env, extra={"broker": request.param})
        cluster.admin = bootstrap_superadmin(servers[0])
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        for node in reversed(started):
            node.stop()
        drop_database(name)
