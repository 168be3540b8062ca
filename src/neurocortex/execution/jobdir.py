"""The job directory: everything Cortex-specific about what a worker reads and writes, shared by all runners.

    <job>/input/input.json       written here: the observable (or responder object) and the merged config
    <job>/input/attachment<n>    the file of a file job
    <job>/input/cacerts          the org's CA bundle, when set
    <job>/output/output.json     written by the worker (cortexutils), read back by read_output()
    <job>/output/<files>         file artifacts

Workers are untrusted: nothing they leave in output/ may make the engine raise, hang, read outside the job
directory, or load an unbounded amount of data into memory.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import logging
import os
import re
import secrets
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SECRET_PHRASES = ("key", "password", "secret")
DEFAULT_CONTENT_TYPE = "application/octet-stream"
JOB_FOLDER_PREFIX = "cortex-job-"
# What is small enough to read, parse or remove on the event loop's thread: a few system calls cost less
# than handing them to a thread and back. Bigger (worker-made) output goes to a thread.
INLINE_OUTPUT_BYTES = 256 * 1024
INLINE_REMOVAL_ENTRIES = 64


# -- input ------------------------------------------------------------------------------------------------


def build_config(definition_config: dict | None, worker_configuration: dict) -> dict:
    """The `config` object of input.json, built exactly as Cortex does (spec/cortex-api.md §4.2)."""
    config = _deep_merge(definition_config or {}, worker_configuration)
    for scheme in ("http", "https"):
        proxy = worker_configuration.get(f"proxy_{scheme}")
        if isinstance(proxy, str):
            config = _deep_merge(config, {"proxy": {scheme: proxy}})
    return config


def network_environment(config: dict, cacerts: str | None) -> dict[str, str]:
    """The variables that give a worker its proxy and CA bundle, whatever it is written with: cortexutils
    exports config.proxy itself, but not before the worker's imports, nor for programs it starts or
    workers written without it. `cacerts` is the bundle's path as the worker sees it (inside its job
    directory, so that a sandbox or a container sees it too)."""
    env = {}
    proxy = config.get("proxy")
    if isinstance(proxy, dict):
        for scheme in ("http", "https"):
            url = proxy.get(scheme)
            if isinstance(url, str) and url:
                env[f"{scheme}_proxy"] = env[f"{scheme.upper()}_PROXY"] = url
    if cacerts:
        # requests reads the first, OpenSSL (urllib, httpx, curl) the second
        env["REQUESTS_CA_BUNDLE"] = env["SSL_CERT_FILE"] = cacerts
    return env


def _deep_merge(left: dict, right: dict) -> dict:
    """play-json's deepMerge: the right side wins, objects on both sides merge, an explicit null wins."""
    merged = copy.deepcopy(left)
    for key, value in right.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def redact(input_document: dict) -> dict:
    """A copy with secret-looking config values replaced, as cortexutils does before echoing its input."""
    redacted = copy.deepcopy(input_document)
    config = redacted.get("config")
    if isinstance(config, dict):
        for key in config:
            if any(phrase in str(key).lower() for phrase in SECRET_PHRASES):
                config[key] = "REMOVED"
    return redacted


@dataclass
class JobInput:
    job_id: str
    data_type: str
    tlp: int
    pap: int
    message: str
    parameters: dict
    config: dict
    data: Any = None
    """Analyzer: the observable string. Responder: the parsed JSON value (the TheHive object)."""
    attachment_path: Path | None = None
    attachment_name: str | None = None
    attachment_content_type: str | None = None


# -- output -----------------------------------------------------------------------------------------------


@dataclass
class WorkerOutput:
    success: bool
    error_message: str | None
    input: str | None
    """JSON text of the output's `input` (failures only), with secret config values redacted."""
    full: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    operations: list[dict] = field(default_factory=list)
    artifacts: list[dict] = field(default_factory=list)
    """Data artifacts: {"dataType", "data", ["tlp"], ["tags"], ["message"]}.
    File artifacts: {"dataType": "file", "path": Path inside output/, "filename", "contentType", ...}."""

    @classmethod
    def failure(cls, message: str | None, input: str | None = None) -> WorkerOutput:
        return cls(success=False, error_message=message, input=input)


def group_id(group: str | int | None) -> int | None:
    """The gid of a group given by name or number (NEUROCORTEX_JOB_DIRECTORY_GROUP); raises KeyError."""
    if group is None or group == "":
        return None
    if isinstance(group, int) or str(group).isdigit():
        return int(group)
    import grp

    return grp.getgrnam(str(group)).gr_gid


class JobDirectory:
    def __init__(self, path: Path, group: int | None = None) -> None:
        self.path = Path(path)
        self.group = group
        """A group with read access (helper daemons such as clamd), or None: the engine's user only."""
        self.input_dir = self.path / "input"
        self.output_dir = self.path / "output"
        self.output_file = self.output_dir / "output.json"

    @classmethod
    def create(cls, root: Path, job_id: str, group: int | None = None) -> JobDirectory:
        """A new job folder, private to the engine's user (mode 0700), or with `group`, readable by that group
        too (mode 2750: what is made inside inherits the group) — never by other users."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        if group is not None:
            _let_group_traverse(root, group)
        safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", job_id)
        # mkdtemp: unpredictable name, mode 0700.
        job = cls(Path(tempfile.mkdtemp(dir=root, prefix=f"{JOB_FOLDER_PREFIX}{safe_id}-")), group)
        job.input_dir.mkdir()
        job.output_dir.mkdir()
        if group is not None:
            for directory in (job.path, job.input_dir, job.output_dir):
                os.chown(directory, -1, group)
                os.chmod(directory, 0o2750)
        return job

    # -- preparing ----------------------------------------------------------------------------------------

    def write_input(self, job: JobInput) -> dict:
        """Write input/input.json (and the attachment and cacerts); return the document written."""
        document: dict[str, Any] = {}
        if job.attachment_path is not None:
            document["file"] = self._place_attachment(Path(job.attachment_path)).name
            document["filename"] = job.attachment_name
            document["contentType"] = job.attachment_content_type
        else:
            document["data"] = job.data
        document.update(
            dataType=job.data_type,
            tlp=job.tlp,
            pap=job.pap,
            message=job.message,
            parameters=job.parameters,
            config=job.config,
        )
        cacerts = job.config.get("cacerts")
        if isinstance(cacerts, str) and cacerts.strip():
            (self.input_dir / "cacerts").write_text(cacerts, encoding="utf-8")
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        (self.input_dir / "input.json").write_bytes(text.encode("utf-8"))
        if self.group is not None:
            # whatever the umask: the group reads what the engine wrote (a hard-linked attachment is the
            # datastore's file, readable by all already, and keeps its mode)
            for path in self.input_dir.iterdir():
                if path.is_file() and os.stat(path).st_nlink == 1:
                    os.chmod(path, 0o640)
        return document

    def _place_attachment(self, source: Path) -> Path:
        while True:
            # Cortex's name shape (a temp file "attachment<digits>" in input/).
            target = self.input_dir / f"attachment{secrets.randbelow(10**18)}"
            try:
                # A hard link costs nothing for a sample of hundreds of MB; the datastore keeps its files
                # read-only so that a worker cannot write through the link by accident.
                os.link(source, target)
                return target
            except FileExistsError:
                continue
            except OSError:
                pass  # another filesystem, or links not allowed there
            try:
                with open(source, "rb") as src, open(target, "xb") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
                return target
            except FileExistsError:
                continue

    @property
    def cacerts(self) -> Path | None:
        path = self.input_dir / "cacerts"
        return path if path.is_file() else None

    # -- collecting ---------------------------------------------------------------------------------------

    def has_output(self) -> bool:
        """output/output.json exists, is a regular file (not a link) and is not empty."""
        return self.output_size() > 0

    def output_size(self) -> int:
        """The size of output/output.json when it is a regular file (not a link), else 0."""
        try:
            with _open_in_output(self.output_dir, "output.json", os.O_RDONLY) as fd:
                info = os.fstat(fd)
        except OSError:
            return 0
        return info.st_size if stat.S_ISREG(info.st_mode) else 0

    def write_failure(self, message: str) -> None:
        """Write the synthetic failure Cortex's runners write when a worker left no usable output."""
        self._clear_output_file()
        body = json.dumps({"success": False, "errorMessage": message}, ensure_ascii=False).encode("utf-8")
        with _open_in_output(self.output_dir, "output.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL) as fd:
            os.write(fd, body)

    def _clear_output_file(self) -> None:
        # The worker may have left output/ or output.json as a symlink, a FIFO, a directory or a hard link
        # to a file elsewhere: remove whatever is there (never following or truncating it).
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISDIR(os.lstat(self.output_dir).st_mode):
                self.output_dir.unlink()
        self.output_dir.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(self.output_file).st_mode):
                _remove_tree(self.output_file)
            else:
                self.output_file.unlink()

    def read_output(self, max_bytes: int) -> WorkerOutput:
        """Read output/output.json. Never raises for bad worker output: every problem is a failure."""
        try:
            with _open_in_output(self.output_dir, "output.json", os.O_RDONLY) as fd:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
                    return WorkerOutput.failure("no output")
                if info.st_size > max_bytes:
                    return WorkerOutput.failure(
                        f"Invalid output: output.json is {info.st_size} bytes, more than the limit of "
                        f"{max_bytes} bytes"
                    )
                # Read one byte past the limit: a worker's leftover process may still be writing.
                raw = _read_at_most(fd, max_bytes + 1)
        except OSError:
            return WorkerOutput.failure("no output")
        if len(raw) > max_bytes:
            return WorkerOutput.failure(
                f"Invalid output: output.json is more than the limit of {max_bytes} bytes"
            )
        try:
            # NaN/Infinity (Python's json.dump writes them) become null so that reports stay valid JSON.
            output = json.loads(raw.decode("utf-8-sig", errors="replace"), parse_constant=lambda _: None)
        except (ValueError, RecursionError) as exc:
            return WorkerOutput.failure(f"Invalid output: {exc}")
        if not isinstance(output, dict):
            return WorkerOutput.failure(f"Invalid output: expected a JSON object, got {_json_type(output)}")
        if output.get("success") is not True:
            return self._failure_from(output)
        full = output.get("full")
        if not isinstance(full, dict):
            return WorkerOutput.failure(
                f"Invalid output: a successful report needs a JSON object in 'full', got {_json_type(full)}"
            )
        summary = output.get("summary")
        return WorkerOutput(
            success=True,
            error_message=None,
            input=None,
            full=full,
            summary=summary if isinstance(summary, dict) else {},
            operations=_objects(output.get("operations")),
            artifacts=[
                artifact
                for raw_artifact in _objects(output.get("artifacts"))
                if (artifact := self._artifact(raw_artifact)) is not None
            ],
        )

    @staticmethod
    def _failure_from(output: dict) -> WorkerOutput:
        message = output.get("errorMessage")
        if message is not None and not isinstance(message, str):
            message = str(message)
        echoed = output.get("input")
        if isinstance(echoed, dict):
            # cortexutils already redacts; workers written without it may not.
            echoed = redact(echoed)
        text = None if echoed is None else json.dumps(echoed, ensure_ascii=False)
        return WorkerOutput.failure(message, text)

    def _artifact(self, raw: dict) -> dict | None:
        data_type = raw.get("dataType")
        if not isinstance(data_type, str) or not data_type:
            log.warning("%s: artifact without dataType skipped", self.path.name)
            return None
        artifact: dict[str, Any] = {"dataType": data_type}
        if data_type == "file":
            name = raw.get("file")
            reason = self._unsafe_output_file(name)
            if reason:
                log.warning("%s: file artifact %r skipped: %s", self.path.name, name, reason)
                return None
            filename = raw.get("filename")
            # Only a base name: it becomes the attachment name offered for download.
            filename = re.split(r"[/\\]", filename)[-1] if isinstance(filename, str) else ""
            if filename in ("", ".", ".."):
                filename = name
            content_type = raw.get("contentType")
            artifact.update(
                path=self.output_dir / name,
                filename=filename,
                contentType=content_type
                if isinstance(content_type, str) and content_type
                else DEFAULT_CONTENT_TYPE,
            )
        else:
            data = raw.get("data")
            if isinstance(data, (int, float, bool)):
                data = json.dumps(data)
            if not isinstance(data, str):
                log.warning("%s: %s artifact without string data skipped", self.path.name, data_type)
                return None
            artifact["data"] = data
        tlp = raw.get("tlp")
        if isinstance(tlp, int) and not isinstance(tlp, bool) and 0 <= tlp <= 3:
            artifact["tlp"] = tlp
        tags = raw.get("tags")
        if isinstance(tags, list):
            artifact["tags"] = [tag for tag in tags if isinstance(tag, str)]
        message = raw.get("message")
        if isinstance(message, str):
            artifact["message"] = message
        # Any other key (e.g. "ioc") is dropped: Cortex would fail the whole job on it.
        return artifact

    def _unsafe_output_file(self, name: Any) -> str | None:
        """Why output/<name> cannot be taken as a file artifact, or None when it can."""
        if not isinstance(name, str) or not name:
            return "no file name"
        if "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
            return "the name is not a plain file name inside output/"
        try:
            info = os.lstat(self.output_dir / name)
        except OSError:
            return "the file does not exist"
        if stat.S_ISLNK(info.st_mode):
            return "the file is a symbolic link"
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        return None

    # -- cleanup ------------------------------------------------------------------------------------------

    def remove(self) -> None:
        _remove_tree(self.path)

    def is_small(self) -> bool:
        """At most INLINE_REMOVAL_ENTRIES entries, all of them readable: removed in a few system calls."""
        budget = INLINE_REMOVAL_ENTRIES
        pending = [self.path]
        try:
            while pending:
                with os.scandir(pending.pop()) as entries:
                    for entry in entries:
                        budget -= 1
                        if budget < 0:
                            return False
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(Path(entry.path))
        except OSError:  # made unreadable by the worker: the careful removal, in a thread
            return False
        return True


def _let_group_traverse(root: Path, group: int) -> None:
    """The folder of the job folders: the group may pass through it (not list it), others not even that."""
    info = os.stat(root)
    if info.st_uid != os.geteuid() or info.st_mode & stat.S_ISVTX:
        return  # not ours to close (a shared /tmp): the admin opened it
    if info.st_gid != group or stat.S_IMODE(info.st_mode) & 0o077 != 0o010:
        os.chown(root, -1, group)
        os.chmod(root, stat.S_IMODE(info.st_mode) & 0o700 | 0o010)


def remove_folder(path: Path) -> None:
    """Remove a job folder found on disk, with the same care as JobDirectory.remove."""
    _remove_tree(path)


# -- helpers ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _open_in_output(output_dir: Path, name: str, flags: int, mode: int = 0o644):
    """Open output/<name> without following a symlink at either level (the worker controls both)."""
    dir_fd = os.open(output_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        # O_NONBLOCK: opening a FIFO left by the worker must not block.
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _objects(value: Any) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _remove_tree(path: Path) -> None:
    """rmtree that also copes with directories the worker made unreadable or non-writable.

    Files are never chmod-ed: deleting only needs rights on the directory, and an input attachment is a
    hard link to the datastore's file, whose mode must not change.
    """
    try:
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    _open_up_directories(path)
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("Could not remove job folder %s: %s", path, exc)


def _open_up_directories(top: Path) -> None:
    # Walk by hand: os.walk cannot list a directory before it has been made readable.
    pending = [top]
    while pending:
        directory = pending.pop()
        try:
            info = os.lstat(directory)
            if not stat.S_ISDIR(info.st_mode):  # never chmod through a symlink
                continue
            os.chmod(directory, stat.S_IMODE(info.st_mode) | stat.S_IRWXU)
            with os.scandir(directory) as entries:
                pending.extend(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.debug("Cannot open up %s: %s", directory, exc)
