"""Jobs of a real server run in containers of a real Podman service; an image built with `neurocortex neurons
image`; the proxy and CA bundle of the worker configuration reach the worker under every runner; an
unreachable daemon leaves the docker runner unavailable with its reason, and jobs go to the next runner."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_WORKERS, Tenant, bootstrap_superadmin, enable, make_server, new_tenant
from tests.conftest import run_and_wait as run
from tests.podman import BASE_IMAGE, Podman, podman_missing

pytestmark = pytest.mark.skipif(podman_missing() is not None, reason=podman_missing() or "")

CA = "-----BEGIN CERTIFICATE-----\nMIIBprivateCAfortests\n-----END CERTIFICATE-----\n"
NETWORK = {
    "proxy_http": "http://proxy.internal:3128",
    "proxy_https": "http://proxy.internal:3129",
    "cacerts": CA,
}


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory):
    service = Podman(tmp_path_factory.mktemp("podman"))
    service.start()
    try:
        service.import_python_image()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private analyzer directory, with requirements, and no Dockerfile."""
    root = tmp_path_factory.mktemp("private") / "analyzers"
    shutil.copytree(TEST_WORKERS / "analyzers" / "Facts", root / "Facts")
    (root / "Facts" / "requirements.txt").write_text("cortexutils\n")
    return root


@pytest.fixture(scope="module")
def image(podman: Podman, catalog: Path) -> str:
    built = subprocess.run(
        [sys.executable, "-m", "neurocortex", "neurons", "image", "Facts", "--base", BASE_IMAGE,
         "--analyzers", str(catalog)],
        env={"PATH": "/usr/bin:/bin", "NEUROCORTEX_DOCKER_HOST": podman.url}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    assert "built neurocortex-local/facts:1.0" in built.stdout
    return "neurocortex-local/facts:1.0"


def test_neurons_image_writes_a_dockerfile_and_builds_it(podman: Podman, catalog: Path, image: str) -> None:
    dockerfile = (catalog / "Facts" / "Dockerfile").read_text()
    assert dockerfile.splitlines()[1:] == [
        f"FROM {BASE_IMAGE}",
        "WORKDIR /worker",
        "COPY requirements.txt Facts/requirements.txt",
        'RUN ["python", "-m", "pip", "install", "--no-cache-dir", "--root-user-action=ignore", "-r", '
        '"Facts/requirements.txt"]',
        "COPY . Facts/",
        'ENTRYPOINT ["python", "Facts/facts.py"]',
    ]
    assert image in podman.cli("images", "--format", "{{.Repository}}:{{.Tag}}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, podman: Podman, catalog: Path, image: str):
    runners = "docker,sandbox,process" if shutil.which("bwrap") else "docker,process"
    server = make_server(
        tmp_path_factory.mktemp("docker-node"),
        extra_env={
            "NEUROCORTEX_ANALYZERS": str(catalog),
            "NEUROCORTEX_RUNNERS": runners,
            "NEUROCORTEX_DOCKER_HOST": podman.url,
            "NEUROCORTEX_DOCKER_PULL": "missing",
            "NEUROCORTEX_DOCKER_CONTAINER": '{"memory": "128m"}',
        },  # fmt: skip
    )
    server.start()
    yield server
    server.stop()


def test_a_job_runs_in_a_container_and_sees_the_proxy_and_ca(
    tenant: Tenant, podman: Podman, image: str
) -> None:
    worker = enable(tenant.admin, "analyzer", "Facts_1_0", name="Facts docker", dockerImage=image,
                    configuration=NETWORK)  # fmt: skip
    done = run(tenant.analyst, worker["id"], {"dataType": "ip", "data": "192.0.2.7"})
    assert done["status"] == "Success", done["report"]
    full = done["report"]["full"]
    assert full["in_container"] is True and full["argv"] == ["/job"]
    assert full["memory_limit"] in (str(128 * 1024 * 1024), "128M")  # NEUROCORTEX_DOCKER_CONTAINER
    assert full["environment"] == {
        "http_proxy": NETWORK["proxy_http"], "HTTP_PROXY": NETWORK["proxy_http"],
        "https_proxy": NETWORK["proxy_https"], "HTTPS_PROXY": NETWORK["proxy_https"],
        "REQUESTS_CA_BUNDLE": "/job/input/cacerts", "SSL_CERT_FILE": "/job/input/cacerts",
    }  # fmt: skip
    assert full["ca"] == CA
    assert full["proxy"] == {"http": NETWORK["proxy_http"], "https": NETWORK["proxy_https"]}
    assert podman.containers() == []


def test_the_process_runner_gives_the_proxy_and_ca(tenant: Tenant) -> None:
    check_local_runner(tenant, "process")


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_the_sandbox_gives_the_proxy_and_ca(tenant: Tenant) -> None:
    check_local_runner(tenant, "sandbox")


def check_local_runner(tenant: Tenant, runner: str) -> None:
    worker = enable(tenant.admin, "analyzer", "Facts_1_0", name=f"Facts {runner}", runner=runner,
                    configuration=NETWORK)  # fmt: skip
    done = run(tenant.analyst, worker["id"], {"dataType": "ip", "data": "192.0.2.8"})
    assert done["status"] == "Success", done["report"]
    full = done["report"]["full"]
    assert full["in_container"] is False
    bundle = str(Path(full["job_directory"]) / "input" / "cacerts")
    environment = full["environment"]
    assert environment["REQUESTS_CA_BUNDLE"] == environment["SSL_CERT_FILE"] == bundle
    assert environment["https_proxy"] == environment["HTTPS_PROXY"] == NETWORK["proxy_https"]
    assert environment["http_proxy"] == environment["HTTP_PROXY"] == NETWORK["proxy_http"]
    assert full["ca"] == CA  # readable where it runs, the sandbox included


def test_an_unreachable_daemon_is_reported_and_jobs_go_to_the_next_runner(
    tmp_path: Path, catalog: Path, image: str
) -> None:
    socket = tmp_path / "no-daemon.sock"
    server = make_server(
        tmp_path / "node",
        extra_env={
            "NEUROCORTEX_ANALYZERS": str(catalog),
            "NEUROCORTEX_RUNNERS": "docker,process",
            "NEUROCORTEX_DOCKER_HOST": f"unix://{socket}",
        },  # fmt: skip
    )
    server.start()
    try:
        reason = f"the Docker daemon at unix://{socket} cannot be reached: No such file or directory"
        assert f"runner docker is unavailable: {reason}" in server.log()
        tenant = new_tenant(bootstrap_superadmin(server))
        # a worker with an image and a command: the process runner, next in the order, runs it
        either = enable(tenant.admin, "analyzer", "Facts_1_0", name="Facts either", dockerImage=image)
        done = run(tenant.analyst, either["id"], {"dataType": "ip", "data": "192.0.2.9"})
        assert done["status"] == "Success" and done["report"]["full"]["in_container"] is False
        # a worker that requires the docker runner fails with the reason, at once
        docker_only = enable(tenant.admin, "analyzer", "Facts_1_0", name="Facts docker only",
                             dockerImage=image, runner="docker")  # fmt: skip
        done = run(tenant.analyst, docker_only["id"], {"dataType": "ip", "data": "192.0.2.10"})
        assert done["status"] == "Failure"
        assert done["report"]["errorMessage"] == (
            f"Worker cannot be run: its runner docker is unavailable ({reason})"
        )
    finally:
        server.stop()
