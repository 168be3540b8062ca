"""What every service needs, wired once at start: settings, database, secrets, datastore, catalog, events."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Row

from neurocortex.crypto import SecretBox
from neurocortex.services.cache import TTLCache
from neurocortex.services.catalog import Catalog
from neurocortex.services.catalog_sources import CatalogLoader
from neurocortex.services.events import AuditEvent, EventBus
from neurocortex.settings import Settings
from neurocortex.store.datastore import Datastore
from neurocortex.store.db import Database

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    box: SecretBox
    datastore: Datastore
    catalog_loader: CatalogLoader
    events: EventBus = field(default_factory=EventBus)
    catalog: Catalog = field(default_factory=Catalog)
    runners: dict[str, Any] = field(default_factory=dict)
    # callers (by key hash or login) and workers (by id), read by nearly every request
    users_cache: TTLCache = field(default_factory=TTLCache)
    workers_cache: TTLCache = field(default_factory=TTLCache)
    quotas_cache: TTLCache = field(default_factory=TTLCache)
    # set by the dispatcher so that services can wake it when a job is created
    job_created: Any = None
    # one catalog refresh at a time (start, scans, the scheduled refresh)
    catalog_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # numbers the job events after their commit (services/job_events.py), created at the first one
    event_numbering: Any = None

    async def rescan(self) -> Catalog:
        self.catalog = await asyncio.to_thread(self.catalog_loader.load)
        log.info(
            "catalog: %d analyzers, %d responders, %d problems",
            len(self.catalog.analyzers),
            len(self.catalog.responders),
            len(self.catalog.problems),
        )
        return self.catalog

    def publish(
        self,
        ctx_user: str,
        request_id: str,
        object_type: str,
        object_id: str,
        operation: str,
        organization: str | None,
        obj: dict[str, Any],
        details: dict[str, Any] | None = None,
        root_id: str | None = None,
    ) -> None:
        self.events.publish(
            AuditEvent(
                object_type=object_type,
                object_id=object_id,
                operation=operation,
                organization=organization,
                user=ctx_user,
                request_id=request_id,
                root_id=root_id or object_id,
                # rows from the database have SQLAlchemy `quoted_name` keys, which orjson refuses to encode
                object={str(k): v for k, v in obj.items()},
                details={str(k): v for k, v in (details or {}).items()},
            )
        )


def as_dict(row: Row | None) -> dict[str, Any] | None:
    return None if row is None else dict(row._mapping)
