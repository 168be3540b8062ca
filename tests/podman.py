"""A real Podman API service for the docker runner's tests, and a worker image made without any registry.

The service runs as root with its own storage (overlay driver) and configuration in a temporary directory, so
that tests touch nothing of the machine's containers. This machine kind needs runc and the cgroupfs manager
(crun refuses its hybrid cgroup layout) and no default ulimits (raising RLIMIT_NOFILE above the hard limit
is refused here), as spec/test-servers.md notes.

The image is imported from a root filesystem assembled from the interpreter running the tests: its binary,
the shared libraries `ldd` names, its standard library (without tests and GUI modules), and cortexutils and
pip from the test virtualenv — about 60 MB, imported in seconds, no network needed. The interpreter keeps
its absolute path, so that it finds its standard library by its usual rules.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

import cortexutils
import pip

CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

STDLIB_SKIPPED = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
                  "__pycache__", "pydoc_data"}  # fmt: skip

BASE_IMAGE = "localhost/neurocortex-test-python:1"


class Registry:
    """A private registry (Debian's docker-registry) on 127.0.0.1 over plain HTTP, with a password."""

    USER, PASSWORD = "analyst", "s3cret-registry-password"

    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.location = f"127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        htpasswd = subprocess.run(["htpasswd", "-Bbn", self.USER, self.PASSWORD], capture_output=True,
                                  text=True, check=True).stdout  # fmt: skip
        (self.home / "htpasswd").write_text(htpasswd)
        (self.home / "config.yml").write_text(
            f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {self.home / 'data'}\nhttp:\n  addr: {self.location}\n"
            f"auth:\n  htpasswd:\n    realm: tests\n    path: {self.home / 'htpasswd'}\n"
        )
        log = open(self.home / "registry.log", "ab")  # noqa: SIM115 - kept open for the registry's lifetime
        self.process = subprocess.Popen([shutil.which("docker-registry") or "docker-registry", "serve",
                                         str(self.home / "config.yml")], stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((self.home / "registry.log").read_text()) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


def podman_missing() -> str | None:
    """Why Podman tests cannot run here, or None."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "the Podman tests run podman as root"
    for tool in ("podman", "runc", "ldd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (see .ci/run)"
    return None


class Podman:
    """`podman system service` on a socket of its own, and the podman CLI on the same storage."""

    def __init__(self, home: Path, plain_http_registries: tuple[str, ...] = ()) -> None:
        self.home = home
        # podman refuses a runroot longer than 50 characters, and a socket's path is limited too: both go
        # to a short folder of their own (pytest's, under xdist, are longer)
        self.short = Path(tempfile.mkdtemp(prefix="ncp-", dir="/tmp"))
        self.socket = self.short / "podman.sock"
        self.url = f"unix://{self.socket}"
        (home / "containers.conf").write_text(CONTAINERS_CONF)
        # no registry is searched for short names; test registries speak plain HTTP
        registries = "unqualified-search-registries = []\n" + "".join(
            f'[[registry]]\nlocation = "{location}"\ninsecure = true\n' for location in plain_http_registries
        )
        (home / "registries.conf").write_text(registries)
        self.env = os.environ | {"CONTAINERS_CONF": str(home / "containers.conf"),
                                 "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf")}  # fmt: skip
        self.flags = ["--root", str(home / "storage"), "--runroot", str(self.short / "run"),
                      "--storage-driver", "overlay", "--tmpdir", str(home / "tmp")]  # fmt: skip
        (home / "tmp").mkdir(exist_ok=True)
        self.process: subprocess.Popen | None = None

    def cli(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(["podman", *self.flags, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> None:
        log = open(self.home / "service.log", "ab")  # noqa: SIM115 - kept open for the service's lifetime
        self.process = subprocess.Popen(
            ["podman", *self.flags, "system", "service", "--time=0", self.url],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"podman system service did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return (self.home / "service.log").read_text(errors="replace")

    def containers(self) -> list[str]:
        """Every container of this storage, running or not."""
        return self.cli("ps", "--all", "--format", "{{.Names}}").split()

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.cli("rm", "--all", "--force", timeout=60)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.cli("system", "reset", "--force", timeout=120)
        shutil.rmtree(self.home / "storage", ignore_errors=True)
        shutil.rmtree(self.short, ignore_errors=True)

    def import_python_image(self, name: str = BASE_IMAGE) -> str:
        """The interpreter running the tests, with cortexutils and pip, as an image (no entrypoint)."""
        rootfs = self.home / "rootfs"
        python = python_rootfs(rootfs)
        tarball = self.home / "rootfs.tar"
        with tarfile.open(tarball, "w") as tar:
            tar.add(rootfs, arcname=".")
        shutil.rmtree(rootfs)
        self.cli("import", "--change", f'ENV PATH={Path(python).parent}:/usr/local/bin:/usr/bin:/bin',
                 "--change", 'CMD ["python3"]', str(tarball), name)  # fmt: skip
        tarball.unlink()
        return name

    def worker_image(self, name: str, catalog: Path, command: str, base: str = BASE_IMAGE) -> str:
        """An image of one worker as the community builds them: the catalog under /worker, the program as
        entrypoint (built without RUN steps, so no network and no container are needed)."""
        context = self.home / "contexts" / name.replace("/", "_").replace(":", "_")
        shutil.copytree(catalog, context / "worker")
        (context / "Containerfile").write_text(
            f'FROM {base}\nWORKDIR /worker\nCOPY worker /worker\nENTRYPOINT ["python3", "/worker/{command}"]\n'
        )
        self.cli("build", "--pull=never", "--network=none", "-t", name, str(context))
        return name


def python_rootfs(root: Path) -> str:
    """Lay out the running interpreter under `root`; returns its path inside."""
    executable = os.path.realpath(sys._base_executable)
    stdlib = Path(sysconfig.get_path("stdlib"))
    dynload = stdlib / "lib-dynload"
    _copy(Path(executable), root)
    for name in ("python", "python3"):
        link = root / "usr/local/bin" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(executable)
    shutil.copytree(stdlib, root / stdlib.relative_to("/"), symlinks=True,
                    ignore=lambda _, names: [n for n in names if n in STDLIB_SKIPPED])  # fmt: skip
    site = root / stdlib.relative_to("/") / "site-packages"
    for package in (cortexutils, pip):
        source = Path(package.__file__).parent
        shutil.copytree(source, site / source.name, ignore=shutil.ignore_patterns("__pycache__"))
        # with its metadata, so that pip sees it installed
        metadata = Path(str(importlib.metadata.distribution(package.__name__)._path))
        shutil.copytree(metadata, site / metadata.name)
    for library in _shared_libraries([executable, *map(str, dynload.glob("*.so"))]):
        _copy(Path(library), root)
    (root / "tmp").mkdir(mode=0o1777, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    for directory in ("etc", "proc", "sys", "dev", "job"):
        (root / directory).mkdir(exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534::/:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return executable


def _shared_libraries(binaries: list[str]) -> set[str]:
    libraries = set()
    for binary in binaries:
        done = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
        for line in done.stdout.splitlines():
            parts = line.split()
            path = parts[2] if len(parts) >= 3 and parts[1] == "=>" else parts[0] if parts else ""
            if path.startswith("/"):
                libraries.add(path)
    return libraries


def _copy(path: Path, root: Path) -> None:
    """Copy a file to the same absolute path under root, following links (the name asked for is kept)."""
    target = root / path.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copy2(path, target, follow_symlinks=True)
