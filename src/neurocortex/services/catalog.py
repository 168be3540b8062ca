"""Worker definitions (the catalog): what a definition is, how one is parsed and named, and the catalog
they make up. Where definitions come from (directories, catalog files, http(s) URLs, and whatever source
is added later) is in catalog_sources.py.

One bad definition never spoils a catalog: it is skipped and the reason is logged and kept in
`Catalog.problems` for the admin to see.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    runner: str | None = None
    """The one runner that runs this definition (misp-modules); None: the configured order decides."""

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


def name_key(name: str) -> str:
    """What the versions of one worker share: the definition id without its version."""
    return name.replace(".", "_")


def name_key_of(definition_id_: str, version: str) -> str | None:
    """The name key of a definition id, given its version (a worker stores both, not the name)."""
    suffix = "_" + version.replace(".", "_")
    return definition_id_[: -len(suffix)] if definition_id_.endswith(suffix) else None


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Orders versions as people read them: 1.10 after 1.9, 2.0 after 2.0-beta."""
    parts = [p for p in re.split(r"[._\-+ ]", version) if p]
    return tuple((1, int(p), "") if p.isdigit() else (0, 0, p) for p in parts) + ((1, -1, ""),)


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


@dataclass(frozen=True)
class Problem:
    """Why a source or one of its entries was not (freshly) loaded."""

    source: str
    reason: str
    entry: str | None = None
    """The definition (or file) concerned; None when the whole source failed."""
    worker_type: str = ""

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.entry} skipped: {self.reason}"
            if self.entry
            else f"{self.source}: {self.reason}"
        )


@dataclass
class Catalog:
    analyzers: dict[str, WorkerDefinition] = field(default_factory=dict)
    responders: dict[str, WorkerDefinition] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    loaded: bool = False
    """False for the empty catalog a server holds before its first load."""

    def of_type(self, worker_type: str) -> dict[str, WorkerDefinition]:
        return self.analyzers if worker_type == "analyzer" else self.responders

    def get(self, worker_type: str, definition: str) -> WorkerDefinition | None:
        return self.of_type(worker_type).get(definition)

    def newest(self, worker_type: str, key: str) -> WorkerDefinition | None:
        """The highest version of the definitions sharing a name key (what unpinned workers follow)."""
        versions = [d for d in self.of_type(worker_type).values() if name_key(d.name) == key]
        return max(versions, key=lambda d: version_key(d.version), default=None)
