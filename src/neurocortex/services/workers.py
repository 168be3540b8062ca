"""Workers: analyzers and responders enabled in an organization, with their validated configuration,
and the organization-level base configurations (§2.3, §2.5, §5.2)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from neurocortex.auth.context import AuthContext
from neurocortex.errors import (
    AttributeError_,
    BadRequestError,
    ConflictError,
    CortexError,
    NotFoundError,
    invalid_format,
    missing_attribute,
    raise_attribute_errors,
    read_only_attribute,
    unknown_attribute,
)
from neurocortex.execution.jobdir import build_config
from neurocortex.ids import new_id, now_ms
from neurocortex.services import audit
from neurocortex.services.base import Services, as_dict
from neurocortex.services.cache import MISSING as NOT_CACHED
from neurocortex.services.catalog import (
    MISSING,
    ConfigurationItem,
    WorkerDefinition,
    name_key_of,
    version_key,
)
from neurocortex.services.config_secrets import MASK, keep_masked, mask, write_only_names
from neurocortex.services.scheduling import POLICIES, RATE_UNITS
from neurocortex.store import tables as t
from neurocortex.store.search import search as store_search
from neurocortex.store.search_models import WORKER

log = logging.getLogger(__name__)

WRITABLE = (
    "name",
    "configuration",
    "rate",
    "rateUnit",
    "jobCache",
    "jobTimeout",
    "dataTypeList",
    "dockerImage",
    # beyond Cortex (services/scheduling.py)
    "maxConcurrency",
    "rateLimitPolicy",
    "rateLimits",
    # beyond Cortex (execution/executor.py)
    "runner",
    "sandbox",
    # beyond Cortex: a pinned worker keeps its definition version when the catalog brings a new one
    "pinned",
)
RUNNER_NAMES = ("process", "sandbox", "docker")
SANDBOX_KEYS = {"network": bool, "memoryMb": int, "cpuSeconds": int, "maxProcesses": int}
READ_ONLY = (
    "version", "workerDefinitionId", "analyzerDefinitionId", "description", "author", "url", "license",
    "command", "baseConfig", "type", "organization", "id", "_id", "createdAt", "createdBy", "updatedAt", "updatedBy",
)  # fmt: skip

TLP_PAP_ITEMS = (
    ConfigurationItem("check_tlp", "Check TLP of the observable", "boolean"),
    ConfigurationItem("max_tlp", "Maximum TLP allowed", "number"),
    ConfigurationItem("check_pap", "Check PAP of the observable", "boolean"),
    ConfigurationItem("max_pap", "Maximum PAP allowed", "number"),
)


def global_items(svc: Services, worker_type: str) -> tuple[ConfigurationItem, ...]:
    proxies_and_ca = (
        ConfigurationItem("proxy_http", "url of http proxy", "string"),
        ConfigurationItem("proxy_https", "url of https proxy", "string"),
        ConfigurationItem("cacerts", "certificate authorities", "text"),
        ConfigurationItem("jobTimeout", "maximum allowed job execution time (in minutes)", "number",
                          default=_plain_number(svc.settings.job_timeout)),
    )  # fmt: skip
    if worker_type == "responder":
        return proxies_and_ca
    return (
        ConfigurationItem("auto_extract_artifacts", "extract artifacts from full report automatically", "boolean",
                          default=False),
        ConfigurationItem("jobCache", "maximum time, in minutes, previous result is used if similar job is requested",
                          "number", default=_plain_number(svc.settings.job_cache)),
        *proxies_and_ca,
    )  # fmt: skip


def _plain_number(value: float) -> int | float:
    """10 rather than 10.0 in the configuration workers and the UI see."""
    return int(value) if float(value).is_integer() else value


def worker_id(organization: str, name: str, worker_type: str) -> str:
    return hashlib.md5(f"{organization}_{name}_{worker_type}".encode()).hexdigest()


def _type_ok(item: ConfigurationItem, value: Any) -> bool:
    if item.type in ("string", "text", "password"):
        return isinstance(value, str)
    if item.type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, bool)


def validate_configuration(
    items: tuple[ConfigurationItem, ...], configuration: Any, worker_name: str
) -> dict[str, Any]:
    """Every accepted item gets a value (given, default, [] for multi, or null); unknown keys are refused."""
    if not isinstance(configuration, dict):
        raise_attribute_errors("worker", [invalid_format("configuration", configuration, "object")])
    accepted = {item.name: item for item in items}
    errors: list[AttributeError_] = [
        unknown_attribute(f"worker.config.{key}", value)
        for key, value in configuration.items()
        if key not in accepted
    ]
    validated: dict[str, Any] = {}
    for item in accepted.values():
        value = configuration.get(item.name, MISSING)
        if value is MISSING or (value is None and not item.required):
            if value is None:
                validated[item.name] = None
            elif item.default is not MISSING:
                validated[item.name] = item.default
            elif item.multi:
                validated[item.name] = []
            elif item.required:
                errors.append(missing_attribute(f"configuration.{item.name}"))
            else:
                validated[item.name] = None
            continue
        if item.multi:
            ok = isinstance(value, list) and all(_type_ok(item, v) for v in value)
        else:
            ok = _type_ok(item, value)
        if not ok:
            expected = f"{'array of ' if item.multi else ''}{item.type}"
            errors.append(invalid_format(f"configuration.{item.name}", value, expected))
            continue
        validated[item.name] = value
    raise_attribute_errors(f"worker({worker_name}).configuration", errors)
    return validated


def accepted_items(svc: Services, definition: WorkerDefinition) -> tuple[ConfigurationItem, ...]:
    return definition.items + global_items(svc, definition.type) + TLP_PAP_ITEMS


def check_rate_limits(name: str, value: Any, errors: list[AttributeError_]) -> list[dict[str, Any]] | None:
    """A list of `{"rate": n, "rateUnit": u}` (n a whole number ≥ 0, u one of Cortex's units)."""
    if isinstance(value, list) and all(
        isinstance(item, dict)
        and set(item) == {"rate", "rateUnit"}
        and isinstance(item["rate"], int)
        and not isinstance(item["rate"], bool)
        and item["rate"] >= 0
        and item["rateUnit"] in RATE_UNITS
        for item in value
    ):
        return [{"rate": item["rate"], "rateUnit": item["rateUnit"]} for item in value]
    errors.append(invalid_format(name, value, f"array of {{rate: number, rateUnit: {'|'.join(RATE_UNITS)}}}"))
    return None


def _check_limits(fields: dict[str, Any], errors: list[AttributeError_]) -> dict[str, Any]:
    """rate, rateUnit, jobCache, jobTimeout, dataTypeList and dockerImage, and our maxConcurrency,
    rateLimitPolicy and rateLimits; null clears an optional one."""
    values: dict[str, Any] = {}
    for key in ("rate", "jobCache", "jobTimeout"):
        if key in fields:
            value = fields[key]
            if isinstance(value, str):
                with contextlib.suppress(ValueError):  # a non-numeric string is refused below
                    value = float(value) if key != "rate" else int(value)
            if value is None or (
                isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            ):
                values[key] = value
            else:
                errors.append(invalid_format(key, fields[key], "positive number"))
    if "rateUnit" in fields:
        if fields["rateUnit"] is None or fields["rateUnit"] in RATE_UNITS:
            values["rateUnit"] = fields["rateUnit"]
        else:
            errors.append(invalid_format("rateUnit", fields["rateUnit"], "|".join(RATE_UNITS)))
    if "dataTypeList" in fields:
        value = fields["dataTypeList"]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            values["dataTypeList"] = value
        else:
            errors.append(invalid_format("dataTypeList", value, "array of strings"))
    if "dockerImage" in fields:
        if fields["dockerImage"] is None or isinstance(fields["dockerImage"], str):
            values["dockerImage"] = fields["dockerImage"]
        else:
            errors.append(invalid_format("dockerImage", fields["dockerImage"], "string"))
    if "maxConcurrency" in fields:
        value = fields["maxConcurrency"]
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            values["maxConcurrency"] = value
        else:
            errors.append(invalid_format("maxConcurrency", value, "number ≥ 1"))
    if "rateLimitPolicy" in fields:
        if fields["rateLimitPolicy"] is None or fields["rateLimitPolicy"] in POLICIES:
            values["rateLimitPolicy"] = fields["rateLimitPolicy"]
        else:
            errors.append(invalid_format("rateLimitPolicy", fields["rateLimitPolicy"], "|".join(POLICIES)))
    if "rateLimits" in fields:
        if fields["rateLimits"] is None:
            values["rateLimits"] = None
        else:
            limits = check_rate_limits("rateLimits", fields["rateLimits"], errors)
            if limits is not None:
                values["rateLimits"] = limits or None  # [] clears them
    if "runner" in fields:
        if fields["runner"] is None or fields["runner"] in RUNNER_NAMES:
            values["runner"] = fields["runner"]
        else:
            errors.append(invalid_format("runner", fields["runner"], "|".join(RUNNER_NAMES)))
    if "sandbox" in fields:
        values["sandbox"] = _sandbox_policy(fields["sandbox"], errors)
    if "pinned" in fields:
        if fields["pinned"] in (True, False, None):
            values["pinned"] = fields["pinned"] or None  # stored as true or null, shown only when true
        else:
            errors.append(invalid_format("pinned", fields["pinned"], "boolean"))
    return values


def _sandbox_policy(value: Any, errors: list[AttributeError_]) -> dict[str, Any] | None:
    """Per-worker overrides of the sandbox policy; limits of 0 mean none."""
    if value is None:
        return None
    valid = isinstance(value, dict) and all(
        key in SANDBOX_KEYS
        and isinstance(item, SANDBOX_KEYS[key])
        and (SANDBOX_KEYS[key] is bool or not isinstance(item, bool) and item >= 0)
        for key, item in value.items()
    )
    if not valid:
        errors.append(invalid_format("sandbox", value, "object of network (boolean), memoryMb, cpuSeconds, "
                                     "maxProcesses (numbers ≥ 0)"))  # fmt: skip
        return None
    return value or None


def policy_limits(config: dict[str, Any]) -> dict[str, int | float]:
    """The highest TLP and PAP a worker accepts, given its merged config: `max_x` when `check_x` is on
    (cortexutils' default maximum is 2), else 3, i.e. no limit."""
    limits: dict[str, int | float] = {}
    for level in ("tlp", "pap"):
        maximum = config.get(f"max_{level}")
        if config.get(f"check_{level}") is True:
            limits[level] = (
                maximum if isinstance(maximum, int | float) and not isinstance(maximum, bool) else 2
            )
        else:
            limits[level] = 3
    return limits


def advertised_limits(svc: Services, worker: dict[str, Any]) -> dict[str, int | float]:
    """`maxTlp`/`maxPap` of a responder as Cortex reports them: the configured `max_tlp`/`max_pap` (definition
    config ⊕ configuration), else 3, TheHive's own default."""
    definition = svc.catalog.get(worker["type"], worker["workerDefinitionId"])
    config = build_config(definition.config if definition else {}, decrypt_configuration(svc, worker))
    limits: dict[str, int | float] = {}
    for level in ("tlp", "pap"):
        value = config.get(f"max_{level}")
        limits[level] = value if isinstance(value, int | float) and not isinstance(value, bool) else 3
    return limits


def decrypt_configuration(svc: Services, worker: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(svc.box.decrypt(worker["configuration"]))


def configuration_items(svc: Services, worker: dict[str, Any]) -> tuple[ConfigurationItem, ...]:
    definition = svc.catalog.get(worker["type"], worker["workerDefinitionId"])
    return accepted_items(svc, definition) if definition is not None else ()


def masked_configuration(svc: Services, worker: dict[str, Any]) -> dict[str, Any]:
    """The configuration as the API shows it: secrets write-only."""
    return mask(decrypt_configuration(svc, worker), write_only_names(configuration_items(svc, worker)))


async def enable(
    svc: Services, ctx: AuthContext, worker_type: str, definition_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    definition = svc.catalog.get(worker_type, definition_id)
    if definition is None:
        raise NotFoundError(f"Worker {definition_id} not found")
    errors = [unknown_attribute(k, v) for k, v in fields.items() if k not in WRITABLE]
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(missing_attribute("name") if name is None else invalid_format("name", name, "string"))
    limits = _check_limits(fields, errors)
    raise_attribute_errors("worker", errors)
    items = accepted_items(svc, definition)
    given = fields.get("configuration", {})
    if isinstance(given, dict) and MASK in str(given):
        # the UI pre-fills a new worker from the base configuration, whose secrets it saw masked
        base = await stored_base_config(svc, ctx, worker_type, definition.base_config or definition.name)
        given = keep_masked(given, base, write_only_names(items))
    configuration = validate_configuration(items, given, name)
    command_path = definition.command_path
    row = {
        "id": worker_id(ctx.organization, name, worker_type),
        "organization": ctx.organization,
        "name": name,
        "type": worker_type,
        "version": definition.version,
        "workerDefinitionId": definition.id,
        "description": definition.description,
        "author": definition.author,
        "url": definition.url,
        "license": definition.license,
        "command": str(command_path) if command_path else None,
        "dockerImage": definition.docker_image,
        "dataTypeList": list(definition.data_types),
        "baseConfig": definition.base_config or definition.name,
        "configuration": svc.box.encrypt(orjson.dumps(configuration).decode()),
        "configuredAt": now_ms(),
        "createdBy": ctx.user_id,
        "createdAt": now_ms(),
    } | limits
    given = fields.get("configuration")
    about = {"name": name, "type": worker_type, "workerDefinitionId": definition.id,
             "configurationItems": sorted(given) if isinstance(given, dict) else [], "limits": limits}  # fmt: skip
    try:
        async with svc.db.write() as conn:
            await conn.execute(insert(t.worker).values(row))
            await audit.write(
                conn, audit.by(ctx, ctx.organization, "worker.enable", "worker", row["id"], about)
            )
    except IntegrityError:
        raise ConflictError(
            f"{worker_type} {name} already exists in organization {ctx.organization}"
        ) from None
    svc.workers_cache.clear()  # lists cached per organization (MISP's /modules) include it at once
    svc.publish(ctx.user_id, ctx.request_id, "worker", row["id"], "Creation", ctx.organization, public(row))
    return row


async def get(
    svc: Services, ctx: AuthContext, worker_id_: str, worker_type: str | None = None
) -> dict[str, Any]:
    """A worker of the caller's organization; another organization's id is 'not found'."""
    worker = await by_id(svc, worker_id_)
    if (
        worker is None
        or worker["organization"] != ctx.organization
        or worker_type not in (None, worker["type"])
    ):
        raise NotFoundError(f"worker {worker_id_} not found")
    return worker


async def by_id(svc: Services, worker_id_: str) -> dict[str, Any] | None:
    worker = svc.workers_cache.get(worker_id_)
    if worker is NOT_CACHED:
        async with svc.db.read() as conn:
            worker = as_dict(
                (await conn.execute(select(t.worker).where(t.worker.c.id == worker_id_))).first()
            )
        if worker is None:
            return None
        svc.workers_cache.put(worker_id_, worker)
    return dict(worker)  # callers may add to it


async def search(
    svc: Services, ctx: AuthContext, worker_type: str, query: Any, range_: str | None, sort: list[str] | None
) -> tuple[list[dict[str, Any]], int]:
    scope = (t.worker.c.organization == ctx.organization) & (t.worker.c.type == worker_type)
    async with svc.db.read() as conn:
        return await store_search(conn, WORKER, query, range_, sort, scope)


async def by_data_type(
    svc: Services, ctx: AuthContext, worker_type: str, data_type: str
) -> list[dict[str, Any]]:
    rows, _ = await search(
        svc, ctx, worker_type, {"_field": "dataTypeList", "_value": data_type}, "all", None
    )
    return rows


async def update_worker(
    svc: Services, ctx: AuthContext, worker_type: str, worker_id_: str, fields: dict[str, Any]
) -> dict[str, Any]:
    worker = await get(svc, ctx, worker_id_, worker_type)
    errors = [read_only_attribute(k) for k in fields if k in READ_ONLY]
    errors += [unknown_attribute(k, v) for k, v in fields.items() if k not in WRITABLE and k not in READ_ONLY]
    changes = _check_limits(fields, errors)
    if "name" in fields:
        if isinstance(fields["name"], str) and fields["name"].strip():
            changes["name"] = fields["name"]
        else:
            errors.append(invalid_format("name", fields["name"], "string"))
    raise_attribute_errors("worker", errors)
    if "configuration" in fields:
        definition = svc.catalog.get(worker_type, worker["workerDefinitionId"])
        configuration = keep_masked(
            fields["configuration"],
            decrypt_configuration(svc, worker),
            write_only_names(configuration_items(svc, worker)),
        )
        if definition is not None:
            configuration = validate_configuration(
                accepted_items(svc, definition), configuration, worker["name"]
            )
        elif not isinstance(configuration, dict):
            raise_attribute_errors("worker", [invalid_format("configuration", configuration, "object")])
        changes["configuration"] = svc.box.encrypt(orjson.dumps(configuration).decode())
        # reports made with the former configuration are not served from the cache any more
        changes["configuredAt"] = now_ms()
    if changes:
        about = {"changes": {k: v for k, v in changes.items() if k not in ("configuration", "configuredAt")}}
        if "configuration" in fields:
            # the names of the items whose value changed; values may be secrets
            before = decrypt_configuration(svc, worker)
            about["configurationItems"] = sorted(
                k for k in before.keys() | configuration.keys() if before.get(k) != configuration.get(k)
            )
        changes |= {"updatedBy": ctx.user_id, "updatedAt": now_ms()}
        async with svc.db.write() as conn:
            await conn.execute(update(t.worker).where(t.worker.c.id == worker_id_).values(changes))
            await audit.write(
                conn, audit.by(ctx, ctx.organization, "worker.update", "worker", worker_id_, about)
            )
        svc.workers_cache.clear()
        if svc.job_created is not None:
            svc.job_created(None)  # a raised cap or another policy may let Waiting jobs start
        worker |= changes
        if "pinned" in changes and not changes["pinned"]:
            # unpinned: it follows the catalog's newest version now, not at the next refresh
            for move in await follow_catalog(svc, {worker_id_}):
                worker = await by_id(svc, worker_id_) or worker
                if move.error:
                    log.warning("catalog: %s", move)
        audited = {k: v for k, v in changes.items() if k != "configuration"}
        svc.publish(ctx.user_id, ctx.request_id, "worker", worker_id_, "Update", ctx.organization, public(worker),
                    audited)  # fmt: skip
    return worker


async def remove(svc: Services, ctx: AuthContext, worker_type: str, worker_id_: str) -> None:
    worker = await get(svc, ctx, worker_id_, worker_type)
    async with svc.db.write() as conn:
        await conn.execute(delete(t.worker).where(t.worker.c.id == worker_id_))
        about = {
            "name": worker["name"],
            "type": worker["type"],
            "workerDefinitionId": worker["workerDefinitionId"],
        }
        await audit.write(
            conn, audit.by(ctx, ctx.organization, "worker.disable", "worker", worker_id_, about)
        )
    svc.workers_cache.clear()
    svc.publish(ctx.user_id, ctx.request_id, "worker", worker_id_, "Delete", ctx.organization, public(worker))


def public(worker: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in worker.items() if k != "configuration"}


async def obsolete_types(svc: Services, ctx: AuthContext) -> list[str]:
    """`/api/alert`: whether this organization runs workers whose definition left the catalog."""
    async with svc.db.read() as conn:
        rows = await conn.execute(
            select(t.worker.c.type, t.worker.c.workerDefinitionId).where(
                t.worker.c.organization == ctx.organization
            )
        )
        alerts = []
        for worker_type, definition_id in rows:
            if svc.catalog.get(worker_type, definition_id) is None:
                label = "ObsoleteAnalyzers" if worker_type == "analyzer" else "ObsoleteResponders"
                if label not in alerts:
                    alerts.append(label)
    return sorted(alerts)


@dataclass(frozen=True)
class WorkerMove:
    """What a catalog refresh did to one enabled worker (or could not do: `error`)."""

    organization: str
    worker: str
    worker_type: str
    change: str
    error: str | None = None

    def __str__(self) -> str:
        where = f"{self.worker_type} {self.worker} of {self.organization}"
        return f"{where} not moved ({self.change}): {self.error}" if self.error else f"{where}: {self.change}"


async def follow_catalog(svc: Services, worker_ids: set[str] | None = None) -> list[WorkerMove]:
    """After a catalog load, unpinned workers follow their definition: to the newest version of its name
    when that is newer than theirs, else to the definition's current docker image (Cortex's
    `worker.updateDockerImage`). Pinned workers keep their version, image and command; when their
    definition has left the catalog they are obsolete (`/api/alert`) and still run, as in Cortex."""
    async with svc.db.read() as conn:
        rows = [dict(row._mapping) for row in await conn.execute(select(t.worker))]
    moves: list[WorkerMove] = []
    updates: list[tuple[str, dict[str, Any]]] = []
    for row in rows:
        if row["pinned"] or (worker_ids is not None and row["id"] not in worker_ids):
            continue
        definition = svc.catalog.get(row["type"], row["workerDefinitionId"])
        key = name_key_of(row["workerDefinitionId"], row["version"])
        newest = svc.catalog.newest(row["type"], key) if key else None
        where = (row["organization"], row["name"], row["type"])
        # only up: when a version leaves the catalog, an older one left behind is no replacement
        if newest is not None and version_key(newest.version) > version_key(row["version"]):
            change = f"{row['workerDefinitionId']} → {newest.id}"
            try:
                updates.append((row["id"], _moved_to(svc, row, definition, newest)))
                moves.append(WorkerMove(*where, change))
            except CortexError as exc:
                moves.append(WorkerMove(*where, change, f"its configuration does not fit: {exc}"))
        elif definition and definition.docker_image and definition.docker_image != row["dockerImage"]:
            updates.append((row["id"], {"dockerImage": definition.docker_image}))
            moves.append(WorkerMove(*where, f"image {row['dockerImage']} → {definition.docker_image}"))
    if updates:
        async with svc.db.write() as conn:
            for worker_id_, values in updates:
                values |= {"updatedBy": "catalog", "updatedAt": now_ms()}
                await conn.execute(update(t.worker).where(t.worker.c.id == worker_id_).values(values))
        svc.workers_cache.clear()
    return moves


def _moved_to(
    svc: Services, row: dict[str, Any], previous: WorkerDefinition | None, newest: WorkerDefinition
) -> dict[str, Any]:
    """The worker's new columns. Its configuration keeps the values the new version still accepts and takes
    the new items' defaults; a new required item without a default refuses the move (CortexError)."""
    items = accepted_items(svc, newest)
    names = {item.name for item in items}
    configuration = {k: v for k, v in decrypt_configuration(svc, row).items() if k in names}
    configuration = validate_configuration(items, configuration, row["name"])
    command_path = newest.command_path
    values = {
        "version": newest.version, "workerDefinitionId": newest.id, "description": newest.description,
        "author": newest.author, "url": newest.url, "license": newest.license,
        "command": str(command_path) if command_path else None, "dockerImage": newest.docker_image,
        "baseConfig": newest.base_config or newest.name,
        "configuration": svc.box.encrypt(orjson.dumps(configuration).decode()),
    }  # fmt: skip
    # data types the admin chose on enabling are theirs; the definition's own list follows the definition
    if previous is None or list(row["dataTypeList"]) == list(previous.data_types):
        values["dataTypeList"] = list(newest.data_types)
    return values


async def images_to_update(svc: Services) -> list[str]:
    """The images of the enabled workers that are not pinned (what an image refresh may pull)."""
    statement = (
        select(t.worker.c.dockerImage)
        .where(t.worker.c.dockerImage.is_not(None), t.worker.c.pinned.is_(None))
        .distinct()
    )
    async with svc.db.read() as conn:
        return sorted(image for (image,) in await conn.execute(statement))


# -- base configurations (organization-level defaults the UI uses to pre-fill a worker's configuration) --


def base_configs(
    svc: Services, worker_type: str
) -> dict[str, tuple[list[str], tuple[ConfigurationItem, ...]]]:
    """name → (definitions sharing it, merged items), `global` first then by name."""
    grouped: dict[str, tuple[list[str], dict[str, ConfigurationItem]]] = {}
    for definition in svc.catalog.of_type(worker_type).values():
        name = definition.base_config or definition.name
        workers, items = grouped.setdefault(name, ([], {}))
        workers.append(definition.name)
        for item in definition.items:
            items.setdefault(item.name, ConfigurationItem(**{**item.__dict__, "required": False}))
    result = {"global": ([], global_items(svc, worker_type))}
    for name in sorted(grouped):
        workers, items = grouped[name]
        if items and name != "global":
            result[name] = (sorted(workers), tuple(items.values()))
    return result


async def stored_base_config(svc: Services, ctx: AuthContext, worker_type: str, name: str) -> dict[str, Any]:
    statement = select(t.worker_config.c.config).where(
        t.worker_config.c.organization == ctx.organization,
        t.worker_config.c.type == worker_type,
        t.worker_config.c.name == name,
    )
    async with svc.db.read() as conn:
        stored = (await conn.execute(statement)).scalar()
    return orjson.loads(svc.box.decrypt(stored)) if stored else {}


async def save_base_config(
    svc: Services, ctx: AuthContext, worker_type: str, name: str, config: Any
) -> dict[str, Any]:
    configs = base_configs(svc, worker_type)
    if name not in configs:
        raise NotFoundError(f"config {name} not found")
    if not isinstance(config, dict):
        raise BadRequestError("attribute config has invalid format")
    items = {item.name: item for item in configs[name][1]}
    config = keep_masked(
        config, await stored_base_config(svc, ctx, worker_type, name), write_only_names(items.values())
    )
    cleaned = {}
    for key, value in config.items():
        item = items.get(key)
        if item is None or value is None:
            continue  # Cortex drops unknown keys and nulls silently
        ok = (
            (isinstance(value, list) and all(_type_ok(item, v) for v in value))
            if item.multi
            else _type_ok(item, value)
        )
        if not ok:
            raise_attribute_errors("workerConfig", [invalid_format(f"config.{key}", value, item.type)])
        cleaned[key] = value
    encrypted = svc.box.encrypt(orjson.dumps(cleaned).decode())
    about = {"type": worker_type, "name": name, "configurationItems": sorted(cleaned)}
    async with svc.db.write() as conn:
        await audit.write(
            conn,
            audit.by(
                ctx, ctx.organization, "workerConfig.update", "workerConfig", f"{worker_type}/{name}", about
            ),
        )
        changed = await conn.execute(
            update(t.worker_config)
            .where(
                t.worker_config.c.organization == ctx.organization,
                t.worker_config.c.type == worker_type,
                t.worker_config.c.name == name,
            )
            .values(config=encrypted, updatedBy=ctx.user_id, updatedAt=now_ms())
        )
        if changed.rowcount == 0:
            await conn.execute(
                insert(t.worker_config).values(
                    id=new_id(),
                    organization=ctx.organization,
                    name=name,
                    type=worker_type,
                    config=encrypted,
                    createdBy=ctx.user_id,
                    createdAt=now_ms(),
                )  # fmt: skip
            )
    return cleaned
