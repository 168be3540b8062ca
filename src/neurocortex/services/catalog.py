"""Worker definitions (the catalog): loaded from directories in the community layout, JSON catalog files
and http(s) catalog URLs, exactly as Cortex reads `analyzer.urls` / `responder.urls`.

One bad definition never spoils a catalog: it is skipped and the reason is logged and kept in
`Catalog.problems` for the admin to see.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

log = logging.getLogger(__name__)

MISSING: Any = object()
ITEM_TYPES = ("string", "text", "number", "boolean", "password")  # password: write-only, beyond Cortex
REQUIRED_TEXT = ("name", "version", "description", "author", "url", "license")


@dataclass(frozen=True)
class ConfigurationItem:
    name: str
    description: str
    type: str
    multi: bool = False
    required: bool = False
    default: Any = MISSING

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "type": self.type,
            "multi": self.multi,
            "required": self.required,
        }
        if self.default is not MISSING:
            out["defaultValue"] = self.default
        return out


@dataclass(frozen=True)
class WorkerDefinition:
    id: str
    type: str  # analyzer | responder
    name: str
    version: str
    description: str
    author: str
    url: str
    license: str
    data_types: tuple[str, ...]
    base_config: str | None
    items: tuple[ConfigurationItem, ...]
    config: dict[str, Any]
    docker_image: str | None = None
    command: str | None = None  # as written in the definition, relative to `root`
    root: Path | None = None  # the catalog directory the command is relative to
    source: str = ""

    @property
    def command_path(self) -> Path | None:
        """Absolute path of the program (the first token that names a file under root)."""
        if not self.command or not self.root:
            return None
        for token in self.command.split():
            candidate = (self.root / token).resolve()
            if candidate.is_relative_to(self.root) and candidate.is_file():
                return candidate
        return None


def definition_id(name: str, version: str) -> str:
    return f"{name}_{version}".replace(".", "_")


class InvalidDefinition(ValueError):
    pass


def _item(raw: Any) -> ConfigurationItem:
    if not isinstance(raw, dict):
        raise InvalidDefinition("a configuration item is not an object")
    name, item_type = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or not name:
        raise InvalidDefinition("a configuration item has no name")
    if item_type not in ITEM_TYPES:
        raise InvalidDefinition(f"configuration item {name!r} has an invalid type {item_type!r}")
    return ConfigurationItem(
        name=name,
        description=str(raw.get("description", "")),
        type=item_type,
        multi=raw.get("multi") is True,
        required=raw.get("required") is True,
        default=raw.get("defaultValue", MISSING),
    )


def parse_definition(
    raw: Any, worker_type: str, root: Path | None, source: str, allow_command: bool
) -> WorkerDefinition:
    if not isinstance(raw, dict):
        raise InvalidDefinition("not a JSON object")
    for key in REQUIRED_TEXT:
        if not isinstance(raw.get(key), str):
            raise InvalidDefinition(f"missing or non-string {key!r}")
    data_types = raw.get("dataTypeList", [])
    if not isinstance(data_types, list) or not all(isinstance(d, str) for d in data_types):
        raise InvalidDefinition("dataTypeList must be an array of strings")
    items = raw.get("configurationItems", [])
    if not isinstance(items, list):
        raise InvalidDefinition("configurationItems must be an array")
    config = raw.get("config", {})
    if not isinstance(config, dict):
        raise InvalidDefinition("config must be an object")
    command = raw.get("command") if allow_command else None
    if command is not None:
        if not isinstance(command, str) or not command.strip():
            raise InvalidDefinition("command must be a non-empty string")
        _check_command(command, root)
    docker_image = raw.get("dockerImage")
    base_config = raw.get("baseConfig")
    return WorkerDefinition(
        id=definition_id(raw["name"], raw["version"]),
        type=worker_type,
        name=raw["name"],
        version=raw["version"],
        description=raw["description"],
        author=raw["author"],
        url=raw["url"],
        license=raw["license"],
        data_types=tuple(data_types),
        base_config=base_config if isinstance(base_config, str) else None,
        items=tuple(_item(i) for i in items),
        config=config,
        docker_image=docker_image if isinstance(docker_image, str) and docker_image else None,
        command=command,
        root=root,
        source=source,
    )


def _check_command(command: str, root: Path | None) -> None:
    if root is None:
        raise InvalidDefinition("command given but the definition has no catalog directory")
    program = None
    for token in command.split():
        candidate = (root / token).resolve()
        if not candidate.is_relative_to(root):
            if "/" in token:
                raise InvalidDefinition(f"command {command!r} leaves the catalog directory {root}")
            continue  # an interpreter name such as python3
        if program is None and candidate.is_file():
            program = candidate
    if program is None:
        raise InvalidDefinition(f"command {command!r} names no program under {root}")


@dataclass
class Catalog:
    analyzers: dict[str, WorkerDefinition] = field(default_factory=dict)
    responders: dict[str, WorkerDefinition] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def of_type(self, worker_type: str) -> dict[str, WorkerDefinition]:
        return self.analyzers if worker_type == "analyzer" else self.responders

    def get(self, worker_type: str, definition: str) -> WorkerDefinition | None:
        return self.of_type(worker_type).get(definition)


class CatalogLoader:
    """Reads the configured sources; `runnable` tells whether some enabled runner can run a definition."""

    def __init__(self, analyzer_sources: list[str], responder_sources: list[str], runners: set[str]) -> None:
        self.sources = {"analyzer": analyzer_sources, "responder": responder_sources}
        self.runners = runners

    def load(self) -> Catalog:
        catalog = Catalog()
        for worker_type, sources in self.sources.items():
            target = catalog.of_type(worker_type)
            for source in sources:
                try:
                    for definition in self._load_source(source, worker_type, catalog.problems):
                        target[definition.id] = definition  # later duplicates win, as in Cortex
                except Exception as exc:  # an unreachable catalog must not stop the others
                    self._problem(catalog.problems, f"{worker_type} source {source}: {exc}")
        return catalog

    def _problem(self, problems: list[str], message: str) -> None:
        log.warning("catalog: %s", message)
        problems.append(message)

    def _load_source(self, source: str, worker_type: str, problems: list[str]) -> list[WorkerDefinition]:
        if source.startswith(("http://", "https://")):
            response = httpx.get(source, timeout=30, follow_redirects=True)
            response.raise_for_status()
            # remote catalogs may only describe container images: a command there is ignored
            return self._parse_many(
                orjson.loads(response.content), worker_type, None, source, problems, False
            )
        path = Path(source.removeprefix("file://")).expanduser().resolve()
        if path.is_dir():
            found: list[WorkerDefinition] = []
            for json_file in sorted(path.glob("*/*.json")):
                found += self._parse_file(json_file, worker_type, path, problems)
            return found
        if path.is_file():
            return self._parse_file(path, worker_type, path.parent.parent, problems)
        raise FileNotFoundError(f"{path} does not exist")

    def _parse_file(
        self, path: Path, worker_type: str, root: Path, problems: list[str]
    ) -> list[WorkerDefinition]:
        try:
            document = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            self._problem(problems, f"{path}: unreadable JSON ({exc})")
            return []
        return self._parse_many(document, worker_type, root, str(path), problems, True)

    def _parse_many(
        self,
        document: Any,
        worker_type: str,
        root: Path | None,
        source: str,
        problems: list[str],
        local: bool,
    ) -> list[WorkerDefinition]:
        entries = document if isinstance(document, list) else [document]
        found = []
        for index, raw in enumerate(entries):
            label = raw.get("name", f"entry {index}") if isinstance(raw, dict) else f"entry {index}"
            try:
                definition = parse_definition(raw, worker_type, root, source, allow_command=local)
            except InvalidDefinition as exc:
                self._problem(problems, f"{source}: {label} skipped: {exc}")
                continue
            if not self._runnable(definition):
                self._problem(problems, f"{source}: {label} skipped: no enabled runner can run it")
                continue
            found.append(definition)
        return found

    def _runnable(self, definition: WorkerDefinition) -> bool:
        if definition.command and self.runners & {"process", "sandbox"}:
            return True
        return bool(definition.docker_image) and bool(self.runners & {"docker", "kubernetes"})
