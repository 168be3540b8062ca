"""How the docker runner reads its settings: the daemon's address, container options with Cortex's names,
registry credentials per registry."""

from __future__ import annotations

import pytest

from neurocortex.app import docker_runner
from neurocortex.execution.runners.docker import RegistryAuth, container_options, resolve_host
from neurocortex.settings import Settings


def test_the_host_setting_wins_over_docker_host() -> None:
    environ = {"DOCKER_HOST": "tcp://docker.example:2376"}
    assert resolve_host("unix:///run/podman/podman.sock", environ) == "unix:///run/podman/podman.sock"
    assert resolve_host(None, environ) == "tcp://docker.example:2376"


def test_container_options_use_cortex_names() -> None:
    assert container_options({"memory": "512m", "memorySwap": "1g", "cpus": 1.5, "networkMode": "none",
                              "capDrop": ["ALL"], "pidsLimit": 64}) == {
        "mem_limit": "512m", "memswap_limit": "1g", "nano_cpus": 1_500_000_000, "network_mode": "none",
        "cap_drop": ["ALL"], "pids_limit": 64,
    }  # fmt: skip
    with pytest.raises(ValueError, match="unknown container option 'memroy'"):
        container_options({"memroy": "1g"})


def test_settings_make_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROCORTEX_DOCKER_CONTAINER", '{"memory": "1g", "capDrop": ["ALL"]}')
    monkeypatch.setenv("NEUROCORTEX_DOCKER_IMAGE_PREFIX", "registry.internal/")
    monkeypatch.setenv("NEUROCORTEX_DOCKER_PULL", "missing")
    monkeypatch.setenv("NEUROCORTEX_DOCKER_REGISTRY_USER", "robot")
    monkeypatch.setenv("NEUROCORTEX_DOCKER_REGISTRY_PASSWORD", "pw")
    monkeypatch.setenv("NEUROCORTEX_DOCKER_REGISTRY_URL", "https://registry.internal")
    runner = docker_runner(Settings())
    assert runner.options == {"mem_limit": "1g", "cap_drop": ["ALL"]}
    assert runner.image_prefix == "registry.internal/" and runner.pull == "missing"
    assert runner.registry == RegistryAuth("robot", "pw", None, "https://registry.internal")
    monkeypatch.setenv("NEUROCORTEX_DOCKER_CONTAINER", '{"memroy": "1g"}')
    with pytest.raises(ValueError, match="NEUROCORTEX_DOCKER_CONTAINER: unknown container option"):
        docker_runner(Settings())


def test_registry_credentials_go_to_their_registry_only() -> None:
    private = RegistryAuth("robot", "pw", url="https://registry.internal:5000")
    assert private.for_image("registry.internal:5000/team/analyzer:1") == {
        "username": "robot", "password": "pw", "serveraddress": "https://registry.internal:5000"
    }  # fmt: skip
    assert private.for_image("ghcr.io/thehive-project/fileinfo:8") is None
    hub = RegistryAuth("robot", "pw", url="https://index.docker.io/v1/")
    assert hub.for_image("cortexneurons/fileinfo:8") is not None
    everywhere = RegistryAuth("robot", "pw")
    assert everywhere.for_image("ghcr.io/thehive-project/fileinfo:8") == {
        "username": "robot",
        "password": "pw",
    }
