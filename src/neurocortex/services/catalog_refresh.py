"""Refreshing the catalog: load the sources again, say what changed (added / updated / removed / failed),
let unpinned workers follow the newest version of their definition, and hand the images in use to the
runners that pull images (`ImageUpdater`, e.g. the docker runner).

The same refresh runs at start, on `POST /api/analyzerdefinition/scan`, every
`NEUROCORTEX_CATALOG_REFRESH_INTERVAL` seconds, and (without the workers) in `neurocortex catalog refresh`.
What the last refresh saw is kept in `<data dir>/catalogs/state.json`, so changes are reported against it
across restarts and between the server and the command line.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson

from neurocortex.services import workers
from neurocortex.services.base import Services
from neurocortex.services.catalog import Catalog, Problem, WorkerDefinition, version_key

log = logging.getLogger(__name__)

ADDED, UPDATED, REMOVED, FAILED = "added", "updated", "removed", "failed"
Summary = dict[str, dict[str, dict[str, Any]]]
"""worker type → definition id → {name, version, dockerImage, fingerprint}"""


@runtime_checkable
class ImageUpdater(Protocol):
    """A runner that runs container images implements this to pull updated images after each refresh (so
    that the next job does not wait for the pull). Images of pinned workers are not given: pinning promises
    that nothing changes under the worker."""

    def available(self) -> bool: ...

    async def update_images(self, images: list[str]) -> dict[str, str | None]:
        """image → None when it is up to date (pulled or already there), else why the pull failed."""
        ...


@dataclass(frozen=True)
class CatalogChange:
    change: str  # added | updated | removed | failed
    worker_type: str
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.change} {self.worker_type} {self.name}: {self.detail}"


@dataclass
class RefreshResult:
    changes: list[CatalogChange] = field(default_factory=list)
    moves: list[workers.WorkerMove] = field(default_factory=list)
    images: dict[str, str | None] = field(default_factory=dict)


def _fingerprint(definition: WorkerDefinition) -> str:
    described = {
        "description": definition.description, "author": definition.author, "url": definition.url,
        "license": definition.license, "dataTypeList": list(definition.data_types),
        "baseConfig": definition.base_config, "config": definition.config, "command": definition.command,
        "configurationItems": [item.to_json() for item in definition.items],
    }  # fmt: skip
    return hashlib.sha256(orjson.dumps(described, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:16]


def summary(catalog: Catalog) -> Summary:
    return {
        worker_type: {
            d.id: {
                "name": d.name,
                "version": d.version,
                "dockerImage": d.docker_image,
                "fingerprint": _fingerprint(d),
            }
            for d in catalog.of_type(worker_type).values()
        }
        for worker_type in ("analyzer", "responder")
    }


def diff(previous: Summary, current: Summary, problems: list[Problem]) -> list[CatalogChange]:
    """Changes by worker name: a new version of a name is an update, not an addition and a removal."""
    changes: list[CatalogChange] = []
    for worker_type in ("analyzer", "responder"):
        before, after = _by_name(previous.get(worker_type, {})), _by_name(current.get(worker_type, {}))
        for name in sorted(before.keys() | after.keys()):
            old, new = before.get(name, {}), after.get(name, {})
            if not old:
                changes.append(CatalogChange(ADDED, worker_type, name, _versions(new)))
            elif not new:
                changes.append(CatalogChange(REMOVED, worker_type, name, _versions(old)))
            elif old.keys() != new.keys():
                changes.append(
                    CatalogChange(UPDATED, worker_type, name, f"{_versions(old)} → {_versions(new)}")
                )
            else:
                details = []
                for version in sorted(new, key=version_key):
                    if old[version]["dockerImage"] != new[version]["dockerImage"]:
                        details.append(
                            f"{version}: image {old[version]['dockerImage']} → {new[version]['dockerImage']}"
                        )
                    elif old[version]["fingerprint"] != new[version]["fingerprint"]:
                        details.append(f"{version}: definition changed")
                if details:
                    changes.append(CatalogChange(UPDATED, worker_type, name, "; ".join(details)))
    for problem in problems:
        changes.append(CatalogChange(FAILED, problem.worker_type, problem.entry or problem.source,
                                     problem.reason if problem.entry is None else f"{problem.reason} ({problem.source})"))  # fmt: skip
    return changes


def _by_name(definitions: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for described in definitions.values():
        grouped.setdefault(described["name"], {})[described["version"]] = described
    return grouped


def _versions(versions: dict[str, Any]) -> str:
    return ", ".join(sorted(versions, key=version_key))


def read_state(directory: Path | None) -> Summary | None:
    path = directory / "state.json" if directory else None
    if path is None or not path.is_file():
        return None
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def write_state(directory: Path | None, state: Summary) -> None:
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / "state.json.partial"
    partial.write_bytes(orjson.dumps(state))
    os.replace(partial, directory / "state.json")


def compare_and_keep(
    previous: Summary | None, catalog: Catalog, directory: Path | None
) -> list[CatalogChange]:
    """The changes since `previous` (every definition is new when there is none), and the new state kept."""
    current = summary(catalog)
    write_state(directory, current)
    return diff(previous or {}, current, catalog.problems)


async def refresh(svc: Services, pull_images: bool = True) -> RefreshResult:
    """Load the catalog again and apply it: the changes are logged and returned. `pull_images=False` leaves
    the images to a later call of `update_images` (at start, where a pull must not delay the server)."""
    async with svc.catalog_lock:
        directory = svc.catalog_loader.cache_dir
        previous = (
            summary(svc.catalog) if svc.catalog.loaded else await asyncio.to_thread(read_state, directory)
        )
        catalog = await svc.rescan()
        result = RefreshResult(await asyncio.to_thread(compare_and_keep, previous, catalog, directory))
        result.moves = await workers.follow_catalog(svc)
    if pull_images:  # outside the lock: a slow pull does not hold back the next rescan
        result.images = await update_images(svc)
    for change in result.changes:
        # failures were logged as they happened; on the very first start every definition is new and the
        # counts say it
        if change.change != FAILED and previous is not None:
            log.info("catalog refresh: %s", change)
    for move in result.moves:
        (log.warning if move.error else log.info)("catalog refresh: %s", move)
    counts = {
        kind: sum(c.change == kind for c in result.changes) for kind in (ADDED, UPDATED, REMOVED, FAILED)
    }
    log.info("catalog refresh: %s; %d enabled workers followed their definition",
             ", ".join(f"{n} {kind}" for kind, n in counts.items()), sum(not m.error for m in result.moves))  # fmt: skip
    return result


async def update_images(svc: Services) -> dict[str, str | None]:
    """Give the images of the enabled, unpinned workers to every available runner that pulls images; the
    failures are logged (a job still pulls what it needs when it runs)."""
    updaters = [r for r in svc.runners.values() if isinstance(r, ImageUpdater) and r.available()]
    if not updaters:
        return {}
    images = await workers.images_to_update(svc)
    results: dict[str, str | None] = {}
    for updater in updaters:
        try:
            results |= await updater.update_images(images)
        except Exception as exc:  # an image update never breaks a refresh
            results |= {image: f"{type(exc).__name__}: {exc}" for image in images}
    for image, error in results.items():
        if error:
            log.warning("catalog refresh: image %s not updated: %s", image, error)
    return results


async def refresh_every(svc: Services, interval: float) -> None:
    """The scheduled refresh (`NEUROCORTEX_CATALOG_REFRESH_INTERVAL`), until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            await refresh(svc)
        except asyncio.CancelledError:
            raise
        except Exception:  # the next round may do better; the catalog in memory stays as it was
            log.exception("scheduled catalog refresh failed")
