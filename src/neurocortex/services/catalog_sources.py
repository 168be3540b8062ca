"""Where definitions come from: a definition source is anything that yields definitions for a worker type.

The locations of `NEUROCORTEX_ANALYZERS` / `NEUROCORTEX_RESPONDERS` become sources as Cortex reads
`analyzer.urls` / `responder.urls` (§5.1): a directory in the community layout, a JSON catalog file (or
`file://` URL), or an http(s) catalog URL. Other kinds of source (misp-modules servers, ...) implement
`DefinitionSource` and are given to `CatalogLoader` beside the locations.

Catalogs downloaded from URLs are kept in `<data dir>/catalogs/`: a failed download (network, TLS, HTTP
error, garbage) is reported and the last good copy is used, so a refresh never wipes a catalog.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson

from neurocortex.services.catalog import (
    Catalog,
    InvalidDefinition,
    Problem,
    WorkerDefinition,
    parse_definition,
)
from neurocortex.settings import Settings

log = logging.getLogger(__name__)


def without_credentials(url: str) -> str:
    """A URL fit for logs and messages: the user and password of `https://user:pass@host/` removed."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1", url, flags=re.IGNORECASE)


class DefinitionSource(Protocol):
    location: str
    """Shown in problems and as each definition's `source`."""

    def load(self, worker_type: str, problems: list[Problem]) -> list[WorkerDefinition]:
        """The definitions of this source; what is skipped is reported in `problems`. An exception means
        the whole source failed (reported by the loader; the other sources still load)."""
        ...


def report(problems: list[Problem], problem: Problem) -> None:
    log.warning("catalog: %s", problem)
    problems.append(problem)


def parse_document(
    document: Any, worker_type: str, root: Path | None, source: str, problems: list[Problem]
) -> list[WorkerDefinition]:
    """One definition object or an array of them. `root` is the catalog directory of a local document;
    None for a downloaded one, whose definitions may only describe container images (as in Cortex)."""
    entries = document if isinstance(document, list) else [document]
    found = []
    for index, raw in enumerate(entries):
        label = str(raw.get("name", f"entry {index}")) if isinstance(raw, dict) else f"entry {index}"
        try:
            if root is None and isinstance(raw, dict) and "command" in raw:
                raise InvalidDefinition("a remote catalog may not give a command (only a dockerImage)")
            definition = parse_definition(raw, worker_type, root, source, allow_command=root is not None)
            if not definition.command and not definition.docker_image:
                raise InvalidDefinition("it has neither a command nor a dockerImage: nothing could run it")
        except InvalidDefinition as exc:
            report(problems, Problem(source, str(exc), label))
            continue
        found.append(definition)
    return found


def _parse_file(path: Path, worker_type: str, root: Path, problems: list[Problem]) -> list[WorkerDefinition]:
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        report(problems, Problem(str(path), f"unreadable JSON ({exc})"))
        return []
    return parse_document(document, worker_type, root, str(path), problems)


@dataclass(frozen=True)
class DirectorySource:
    """`<root>/<Worker>/<Flavor>.json`, commands relative to `<root>`."""

    path: Path

    @property
    def location(self) -> str:
        return str(self.path)

    def load(self, worker_type: str, problems: list[Problem]) -> list[WorkerDefinition]:
        if not self.path.is_dir():
            raise FileNotFoundError(f"{self.path} does not exist")
        found: list[WorkerDefinition] = []
        for json_file in sorted(self.path.glob("*/*.json")):
            found += _parse_file(json_file, worker_type, self.path, problems)
        return found


@dataclass(frozen=True)
class FileSource:
    """A JSON catalog file; commands relative to its grandparent directory (Cortex's basePath)."""

    path: Path

    @property
    def location(self) -> str:
        return str(self.path)

    def load(self, worker_type: str, problems: list[Problem]) -> list[WorkerDefinition]:
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} does not exist")
        return _parse_file(self.path, worker_type, self.path.parent.parent, problems)


class DownloadError(Exception):
    """A catalog could not be downloaded; the message says why in words an admin can act on."""


@dataclass(frozen=True)
class CatalogDownloader:
    """Downloads catalogs, through `proxy` when given (else the usual *_PROXY variables), trusting the
    system's CAs plus the `cacerts` bundle (for catalogs served with a private CA)."""

    proxy: str | None = None
    cacerts: Path | None = None
    timeout: float = 30.0

    def fetch(self, url: str) -> bytes:
        try:
            with httpx.Client(
                proxy=self.proxy, verify=self._tls(), timeout=self.timeout, follow_redirects=True
            ) as client:
                response = client.get(url)
                response.raise_for_status()
                return response.content
        except httpx.HTTPStatusError as exc:
            raise DownloadError(f"HTTP {exc.response.status_code} from {without_credentials(url)}") from None
        except httpx.ProxyError as exc:
            proxy = without_credentials(self.proxy) if self.proxy else "(from the environment)"
            raise DownloadError(f"the proxy {proxy} failed: {exc}") from None
        except httpx.TimeoutException:
            raise DownloadError(
                f"no answer from {without_credentials(url)} within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                hint = (
                    f"not signed by the CA bundle {self.cacerts} nor a system CA"
                    if self.cacerts
                    else "not signed by a system CA; give its CA bundle in NEUROCORTEX_CATALOG_CACERTS"
                )
                raise DownloadError(
                    f"TLS certificate of {without_credentials(url)} not trusted ({hint}): {exc}"
                ) from None
            raise DownloadError(f"{type(exc).__name__}: {exc or 'connection failed'}") from None

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.cacerts:
            try:
                context.load_verify_locations(cafile=str(self.cacerts))
            except (OSError, ssl.SSLError) as exc:
                raise DownloadError(f"the CA bundle {self.cacerts} is unusable: {exc}") from None
        return context


@dataclass(frozen=True)
class UrlSource:
    url: str
    downloader: CatalogDownloader
    cache_dir: Path | None

    @property
    def location(self) -> str:
        return without_credentials(self.url)

    @property
    def cache_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", self.url.rstrip("/").rsplit("/", 1)[-1])[:60]
        return self.cache_dir / f"{stem}-{hashlib.sha256(self.url.encode()).hexdigest()[:12]}"

    def load(self, worker_type: str, problems: list[Problem]) -> list[WorkerDefinition]:
        try:
            content = self.downloader.fetch(self.url)
            document = self._decode(content)
        except DownloadError as exc:
            cached = self._cached()
            if cached is None:
                report(problems, Problem(self.location, f"download failed: {exc}"))
                return []
            content, when = cached
            report(
                problems, Problem(self.location, f"download failed: {exc}; using the copy downloaded {when}")
            )
            document = orjson.loads(content)
        else:
            self._keep(content)
        return parse_document(document, worker_type, None, self.location, problems)

    @staticmethod
    def _decode(content: bytes) -> Any:
        try:
            document = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise DownloadError(f"not a JSON catalog ({exc})") from None
        if not isinstance(document, list | dict):
            raise DownloadError("not a definition nor an array of definitions")
        return document

    def _keep(self, content: bytes) -> None:
        path = self.cache_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(content)
        os.replace(partial, path)  # readers never see half a catalog

    def _cached(self) -> tuple[bytes, str] | None:
        path = self.cache_path
        if path is None or not path.is_file():
            return None
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(path.stat().st_mtime))
        return path.read_bytes(), when


def source_for(location: str, downloader: CatalogDownloader, cache_dir: Path | None) -> DefinitionSource:
    if location.startswith(("http://", "https://")):
        return UrlSource(location, downloader, cache_dir)
    path = Path(location.removeprefix("file://")).expanduser().resolve()
    return DirectorySource(path) if path.is_dir() else FileSource(path)


class CatalogLoader:
    """Reads the sources of each worker type into a Catalog. Sources are given as locations (strings) or as
    `DefinitionSource` objects."""

    def __init__(
        self,
        analyzer_sources: Iterable[str | DefinitionSource],
        responder_sources: Iterable[str | DefinitionSource],
        downloader: CatalogDownloader | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.downloader = downloader or CatalogDownloader()
        self.cache_dir = cache_dir
        self.sources = {
            "analyzer": [self._source(s) for s in analyzer_sources],
            "responder": [self._source(s) for s in responder_sources],
        }

    @classmethod
    def from_settings(
        cls, settings: Settings, extra_analyzer_sources: Iterable[DefinitionSource] = ()
    ) -> CatalogLoader:
        downloader = CatalogDownloader(
            settings.catalog_proxy, settings.catalog_cacerts, settings.catalog_download_timeout
        )
        return cls([*settings.analyzers, *extra_analyzer_sources], settings.responders, downloader,
                   settings.catalog_directory)  # fmt: skip

    def _source(self, source: str | DefinitionSource) -> DefinitionSource:
        return source_for(source, self.downloader, self.cache_dir) if isinstance(source, str) else source

    def load(self) -> Catalog:
        catalog = Catalog(loaded=True)
        for worker_type, sources in self.sources.items():
            target = catalog.of_type(worker_type)
            for source in sources:
                problems: list[Problem] = []
                try:
                    for definition in source.load(worker_type, problems):
                        target[definition.id] = definition  # later duplicates win, as in Cortex
                except Exception as exc:  # an unreachable source must not stop the others
                    report(problems, Problem(f"{worker_type} source {source.location}", str(exc)))
                catalog.problems += [dataclasses.replace(p, worker_type=worker_type) for p in problems]
        return catalog
