"""misp-modules expansion modules as analyzers: their definitions, the query a job sends, the report it gives.

Each expansion module of each configured misp-modules server (`NEUROCORTEX_MISP_MODULES`) becomes the
analyzer definition `MISP_<module>` (id `MISP_<module>_<version>`, Cortex's name_version rule, so it stays
the same from one start to the next and from one server to another). A module offered by several servers
is one definition; its jobs go to the first server that answers. The definition carries what the runner
needs in its `config` (under `misp-modules`), so a job directory is enough to run it on any node.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx

from neurocortex import zipcrypto
from neurocortex.misp.types import data_type, pick_misp_type
from neurocortex.services import catalog_sources
from neurocortex.services.catalog import ConfigurationItem, Problem, WorkerDefinition, definition_id

log = logging.getLogger(__name__)

RUNNER = "misp-modules"
CONFIG_KEY = "misp-modules"
"""Where a definition's `config` (and so input.json's) holds the module's name, servers and formats."""
SAMPLE_PASSWORD = "infected"
"""The password of the ZIP of a `malware-sample`, by MISP convention."""
PREFIX = "MISP_"
# tags of the artifacts made from a module's attributes, so that MISP gets back the exact type (services/misp.py)
TYPE_TAG, OBJECT_TAG, RELATION_TAG = "misp:type=", "misp:object=", "misp:relation="
EXPANSION_TYPES = ("expansion", "hover")
LISTING_TIMEOUT = 10.0


def fetch_modules(server: str, timeout: float = LISTING_TIMEOUT) -> list[dict[str, Any]]:
    """The `GET /modules` list of a server (misp-modules answers JSON as text/html: the body is parsed)."""
    response = httpx.get(server.rstrip("/") + "/modules", timeout=timeout)
    response.raise_for_status()
    modules = response.json()
    if not isinstance(modules, list):
        raise ValueError("GET /modules did not answer a JSON array")
    return [module for module in modules if isinstance(module, dict)]


def is_expansion(module: dict[str, Any]) -> bool:
    meta = module.get("meta") if isinstance(module.get("meta"), dict) else {}
    kinds = meta.get("module-type") or [module.get("type")]
    return isinstance(kinds, list) and any(kind in EXPANSION_TYPES for kind in kinds)


def definition_name(module_name: str) -> str:
    return f"{PREFIX}{module_name}"


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def to_definition(module: dict[str, Any], servers: list[str]) -> WorkerDefinition:
    name = module.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("a module without a name")
    meta = module.get("meta") if isinstance(module.get("meta"), dict) else {}
    attributes = module.get("mispattributes") if isinstance(module.get("mispattributes"), dict) else {}
    inputs = _strings(attributes.get("input"))
    if not inputs:
        raise ValueError(f"module {name} takes no attribute type")
    options = _strings(meta.get("config"))
    version = str(meta.get("version") or "1.0")
    return WorkerDefinition(
        id=definition_id(definition_name(name), version),
        type="analyzer",
        name=definition_name(name),
        version=version,
        description=str(meta.get("description") or f"misp-modules expansion module {name}"),
        author=str(meta.get("author") or "MISP project"),
        url="https://github.com/MISP/misp-modules",
        license="AGPL-3.0",
        data_types=tuple(dict.fromkeys(data_type(misp_type) for misp_type in inputs)),
        base_config=definition_name(name),
        items=tuple(
            ConfigurationItem(option, f"Option {option} of the misp-modules module {name}", "string")
            for option in options
        ),
        config={
            CONFIG_KEY: {
                "module": name,
                "servers": servers,
                "input": inputs,
                "format": attributes.get("format") if isinstance(attributes.get("format"), str) else None,
                "options": options,
            }
        },
        runner=RUNNER,
        source=", ".join(servers),
    )


class ModulesSource:
    """The catalog's source of misp-modules analyzers (services/catalog_sources.DefinitionSource)."""

    location = "misp-modules"

    def __init__(self, servers: list[str], known: Path | None = None) -> None:
        self.servers = servers
        self.known = known

    def load(self, worker_type: str, problems: list[Problem]) -> list[WorkerDefinition]:
        if worker_type != "analyzer":
            return []
        messages: list[str] = []
        found = definitions(self.servers, messages, self.known)
        for message in messages:
            catalog_sources.report(problems, Problem(self.location, message))
        return found


def definitions(servers: list[str], problems: list[str], known: Path | None = None) -> list[WorkerDefinition]:
    """The analyzer definitions of every expansion module of the servers; what cannot be read is noted in
    `problems` and skipped. This is the catalog's misp-modules source.

    `known` keeps each server's last module list: a server down when the catalog is read keeps its
    definitions, so that its analyzers stay enabled and their jobs fail with "unreachable" until it is back,
    instead of turning obsolete."""
    remembered = _read_known(known)
    offered: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for server in servers:
        try:
            modules = fetch_modules(server)
            remembered[server] = modules
        except (httpx.HTTPError, ValueError) as exc:
            modules = remembered.get(server, [])
            kept = f"; its last known {len(modules)} modules are kept" if modules else ""
            problems.append(f"misp-modules server {server}: {_describe(exc)}{kept}")
        for module in filter(is_expansion, modules):
            name = module.get("name")
            if isinstance(name, str):
                offered.setdefault(name, (module, []))[1].append(server)
    if known:
        _write_known(known, {server: remembered[server] for server in servers if server in remembered})
    found = []
    for name, (module, where) in offered.items():
        try:
            found.append(to_definition(module, where))
        except ValueError as exc:
            problems.append(f"misp-modules server {where[0]}: module {name} skipped: {exc}")
    return found


def _read_known(path: Path | None) -> dict[str, list[dict[str, Any]]]:
    try:
        known = json.loads(path.read_bytes()) if path else {}
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _write_known(path: Path, modules: dict[str, list[dict[str, Any]]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(modules), encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:  # a read-only data directory loses only this memory
        log.warning("cannot keep the misp-modules lists in %s: %s", path, exc)


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    if isinstance(exc, httpx.TransportError):
        return f"unreachable ({type(exc).__name__}: {exc})"
    return str(exc)


# -- a job ------------------------------------------------------------------------------------------------


class CannotQuery(ValueError):
    """The job's observable cannot be sent to this module."""


def build_query(
    settings: dict[str, Any],
    document: dict[str, Any],
    attachment: bytes | None,
    timeout: float | None,
) -> dict[str, Any]:
    """The `/query` body for a job: the module's simplified format (`{"<type>": value}`) or its
    `misp_standard` one (`{"attribute": {...}}`), with the worker's values of the module's options."""
    module, inputs = settings["module"], settings["input"]
    job_type = document.get("dataType")
    data = document.get("data")
    misp_type = pick_misp_type(job_type, data, inputs)
    if misp_type is None:
        raise CannotQuery(f"The module {module} takes no {job_type} (it takes {', '.join(inputs)})")
    extra: dict[str, Any] = {}
    if attachment is not None:
        filename = document.get("filename") or "noname"
        if misp_type == "malware-sample":
            packed = _zip(filename, attachment)
            value = f"{filename}|{hashlib.md5(attachment).hexdigest()}"
            extra["data"] = base64.b64encode(packed).decode()
        else:
            value = filename
            extra["data"] = base64.b64encode(attachment).decode()
    else:
        value = data
    config = document.get("config") or {}
    options = {name: config[name] for name in settings["options"] if config.get(name) not in (None, "")}
    body: dict[str, Any] = {"module": module}
    if settings.get("format") == "misp_standard":
        body["attribute"] = {"type": misp_type, "value": value, "uuid": str(uuid.uuid4()), **extra}
    else:
        body[misp_type] = value
        body |= extra
    body["config"] = options
    if timeout:
        body["timeout"] = max(1, int(timeout))
    return body


def _zip(filename: str, content: bytes) -> bytes:
    out = io.BytesIO()
    name = filename.replace("\\", "/").rsplit("/", 1)[-1] or "sample"
    zipcrypto.write(out, name, len(content), [content], SAMPLE_PASSWORD, 1024 * 1024)
    return out.getvalue()


def returned_attributes(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every attribute of a module's answer as `{"type", "value", "comment", "tags", "object", "relation",
    "data"}`: the simplified format (`results: [{types|type, values|value, ...}]`, one attribute per value)
    and the MISP standard one (`results: {Attribute: [...], Object: [{name, Attribute: [...]}]}`)."""
    results = result.get("results")
    found: list[dict[str, Any]] = []
    if isinstance(results, list):
        for entry in results:
            if not isinstance(entry, dict):
                continue
            types = entry.get("types", entry.get("type"))
            types = [types] if isinstance(types, str) else _strings(types)
            values = entry.get("values", entry.get("value"))
            values = values if isinstance(values, list) else [values]
            for value in values:
                if types and isinstance(value, str | int | float) and not isinstance(value, bool):
                    found.append(_attribute(entry, types[0], str(value)))
    elif isinstance(results, dict):
        for attribute in results.get("Attribute") or []:
            if isinstance(attribute, dict) and isinstance(attribute.get("type"), str):
                found.append(_attribute(attribute, attribute["type"], str(attribute.get("value", ""))))
        for misp_object in results.get("Object") or []:
            if not isinstance(misp_object, dict):
                continue
            for attribute in misp_object.get("Attribute") or []:
                if isinstance(attribute, dict) and isinstance(attribute.get("type"), str):
                    found.append(
                        _attribute(attribute, attribute["type"], str(attribute.get("value", "")))
                        | {"object": misp_object.get("name"), "relation": attribute.get("object_relation")}
                    )
    return found


def _attribute(raw: dict[str, Any], misp_type: str, value: str) -> dict[str, Any]:
    tags = raw.get("tags", raw.get("Tag", []))
    names = [t if isinstance(t, str) else t.get("name") for t in tags if isinstance(t, str | dict)]
    return {
        "type": misp_type,
        "value": value,
        "comment": raw.get("comment") if isinstance(raw.get("comment"), str) else None,
        "tags": [name for name in names if isinstance(name, str)],
        "data": raw.get("data") if isinstance(raw.get("data"), str) else None,
    }


def report(module: str, result: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary, artifacts) of a successful answer: one taxonomy (the value when the module answered one
    short value, else how many attributes it returned) and one artifact per returned attribute, its MISP
    type mapped to a data type and kept as a `misp:type=` tag."""
    attributes = returned_attributes(result)
    if len(attributes) == 1 and len(attributes[0]["value"]) <= 64:
        value = attributes[0]["value"]
    else:
        value = f"{len(attributes)} attribute{'s' if len(attributes) != 1 else ''}"
    level = "info" if attributes else "safe"
    summary = {"taxonomies": [{"level": level, "namespace": "MISP", "predicate": module, "value": value}]}
    artifacts = []
    for attribute in attributes:
        tags = [TYPE_TAG + attribute["type"], *attribute["tags"]]
        if attribute.get("object"):
            tags.append(OBJECT_TAG + str(attribute["object"]))
        if attribute.get("relation"):
            tags.append(RELATION_TAG + str(attribute["relation"]))
        artifact: dict[str, Any] = {"dataType": data_type(attribute["type"]), "tags": tags}
        if attribute["comment"]:
            artifact["message"] = attribute["comment"]
        if artifact["dataType"] == "file" and attribute["data"]:
            artifact |= {"content": attribute["data"], "filename": attribute["value"].split("|")[0]}
        else:
            artifact["data"] = attribute["value"]
        artifacts.append(artifact)
    return summary, artifacts
