"""The database schema (SQLAlchemy Core).

Columns carry Cortex's field names (`createdAt`, `dataType`, `workerId`...) so that the search DSL, the
sort keys and the JSON rendering address them directly. Internal columns that never reach the wire are
snake_case. Dates are epoch milliseconds. JSON values that Cortex stores as raw text (`parameters`,
`full`, `summary`...) stay text; lists that the DSL searches (`roles`, `dataTypeList`, `tags`) are JSON.
Secrets (`configuration`, `config`, API keys) are stored encrypted (see crypto.py).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _system_columns() -> list[Column]:
    return [
        Column("createdBy", String(255), nullable=False),
        Column("createdAt", BigInteger, nullable=False),
        Column("updatedBy", String(255)),
        Column("updatedAt", BigInteger),
    ]


organization = Table(
    "organization",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("description", Text, nullable=False),
    Column("status", String(16), nullable=False),
    # how long this organization keeps its jobs, reports and attachments (see services/retention.py)
    Column("retention", JSON),
    *_system_columns(),
)

user = Table(
    "user",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("organization", String(255), ForeignKey("organization.id"), nullable=False, index=True),
    Column("avatar", Text),
    Column("preferences", Text, nullable=False),
    # argon2 hash, or Cortex's "seed,sha256hex" for users migrated from Cortex (rehashed at next login)
    Column("password", Text),
    # HMAC of the API key for lookup, and the key itself encrypted so that GET /key can return it
    Column("key_hash", String(64), unique=True),
    Column("key_encrypted", Text),
    *_system_columns(),
)

api_key = Table(
    # beyond Cortex: a user's named API keys, each expiring and revocable on its own. Only a SHA-256 digest
    # is kept (the key is shown once, at creation): a random 256-bit key needs no salt nor slow hash, and an
    # unkeyed digest survives a rotation of the server's secret.
    "apiKey",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user", String(255), ForeignKey("user.id"), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),  # the key's first characters, to recognise it in a list
    Column("expiresAt", BigInteger),
    Column("revokedAt", BigInteger),
    *_system_columns(),
)

worker = Table(
    "worker",
    metadata,
    Column("id", String(32), primary_key=True),  # md5("<org>_<name>_<type>")
    Column("organization", String(255), ForeignKey("organization.id"), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("type", String(16), nullable=False),
    Column("version", String(64), nullable=False),
    Column("workerDefinitionId", String(255), nullable=False),
    Column("description", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("license", Text, nullable=False),
    Column("command", Text),
    Column("dockerImage", Text),
    Column("dataTypeList", JSON, nullable=False),
    Column("baseConfig", String(255)),
    Column("configuration", Text, nullable=False),  # encrypted JSON object
    Column("rate", BigInteger),
    Column("rateUnit", String(16)),
    Column("jobCache", Float),
    Column("jobTimeout", Float),
    # scheduling, beyond Cortex (see services/scheduling.py); null means Cortex's behaviour
    Column("maxConcurrency", Integer),
    Column("rateLimitPolicy", String(16)),  # "reject" (Cortex, the default) or "queue"
    Column("rateLimits", JSON),  # [{"rate": n, "rateUnit": u}], in addition to rate/rateUnit
    # isolation, beyond Cortex: the runner this worker must use (null: NEUROCORTEX_RUNNERS' order) and its
    # sandbox policy overrides ({"network", "memoryMb", "cpuSeconds", "maxProcesses"})
    Column("runner", String(16)),
    Column("sandbox", JSON),
    # beyond Cortex: true keeps the worker on its definition version across catalog refreshes; null (the
    # default) lets it follow the newest version (services/workers.follow_catalog)
    Column("pinned", Boolean),
    # when the worker's configuration last changed: reports from before are not served from the cache
    Column("configuredAt", BigInteger),
    *_system_columns(),
)

worker_config = Table(
    "workerConfig",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("organization", String(255), ForeignKey("organization.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("type", String(16), nullable=False),
    Column("config", Text, nullable=False),  # encrypted JSON object
    *_system_columns(),
    Index("ix_workerConfig_org_type_name", "organization", "type", "name", unique=True),
)

job = Table(
    "job",
    metadata,
    # ids are time-ordered (see ids.py), so ordering by id is insertion order
    Column("id", String(32), primary_key=True),
    Column("organization", String(255), nullable=False),
    Column("workerId", String(32), nullable=False),
    Column("workerName", String(255), nullable=False),
    Column("workerDefinitionId", String(255), nullable=False),
    Column("type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("dataType", String(255), nullable=False),
    Column("data", Text),
    Column("attachment", JSON),
    Column("tlp", Integer, nullable=False),
    Column("pap", Integer, nullable=False),
    Column("message", Text, nullable=False),
    Column("parameters", Text, nullable=False),
    Column("label", Text),
    Column("cacheTag", String(32), nullable=False),
    Column("startDate", BigInteger),
    Column("endDate", BigInteger),
    Column("errorMessage", Text),
    Column("input", Text),
    # execution bookkeeping, never rendered
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_owner", String(64)),
    Column("lease_until", BigInteger),
    *_system_columns(),
    Index("ix_job_org_created", "organization", "createdAt"),
    Index("ix_job_cache", "cacheTag", "startDate"),
    Index("ix_job_worker_created", "workerId", "createdAt"),
    # the dispatcher's reads: Waiting/InProgress jobs by worker, oldest first; starts in a rate window
    Index("ix_job_status_worker", "status", "workerId", "id"),
    Index("ix_job_worker_started", "workerId", "startDate"),
    # the dashboard's counts per day, status, data type and analyzer read this index alone
    Index("ix_job_org_created_stats", "organization", "createdAt", "status", "dataType", "workerName"),
)

# jobs answered from the cache (no job of their own), per organization and UTC day: the dashboard's ratio
cache_hit = Table(
    "cache_hit",
    metadata,
    Column("organization", String(255), primary_key=True),
    Column("day", BigInteger, primary_key=True),
    Column("hits", Integer, nullable=False),
)

report = Table(
    "report",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("job", String(32), ForeignKey("job.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("full", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("operations", Text, nullable=False),
    *_system_columns(),
)

artifact = Table(
    "artifact",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("report", String(32), ForeignKey("report.id", ondelete="CASCADE"), nullable=False),
    Column("job", String(32), nullable=False, index=True),
    Column("dataType", String(255), nullable=False),
    Column("data", Text),
    Column("attachment", JSON),
    Column("tlp", Integer, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("message", Text),
    *_system_columns(),
)

attachment = Table(
    "attachment",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 hex; the bytes live in the datastore directory
    Column("sha1", String(40), nullable=False),
    Column("md5", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("createdAt", BigInteger, nullable=False),
)

quota = Table(
    "quota",
    metadata,
    # a budget shared by the workers of some definitions across organizations (one provider key, one quota)
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text),
    Column("workerDefinitionIds", JSON, nullable=False),
    Column("baseConfigs", JSON, nullable=False),
    Column("limits", JSON, nullable=False),  # [{"rate": n, "rateUnit": u}] over every organization
    Column("organizationLimits", JSON, nullable=False),  # {"<org>": [{"rate": n, "rateUnit": u}]}
    *_system_columns(),
)

dblist = Table(
    "dblist",
    metadata,
    # generic key/value lists of Cortex (§3.9); no client of ours relies on them but the routes exist
    Column("id", String(32), primary_key=True),
    Column("dblist", String(255), nullable=False, index=True),
    Column("value", Text, nullable=False),  # JSON text
    *_system_columns(),
)

attachment_chunk = Table(
    "attachment_chunk",
    metadata,
    # the bytes of an attachment in the database, for nodes that share no filesystem (distributed mode):
    # every node keeps the datastore directory as a cache and fetches what it lacks from here
    Column("attachment", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

node = Table(
    "node",
    metadata,
    # the `neurocortex worker` processes alive, with the number of jobs each can run at once: the
    # dispatcher sends no more jobs to the broker than they can start
    Column("id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("running", Integer, nullable=False),
    Column("startedAt", BigInteger, nullable=False),
    Column("seenAt", BigInteger, nullable=False, index=True),
)

audit = Table(
    "audit",
    metadata,
    # who did what and when (services/audit.py); never a secret, only what was changed and by whom
    Column("id", String(32), primary_key=True),
    Column("createdAt", BigInteger, nullable=False),
    Column("createdBy", String(255), nullable=False),  # the actor (a login, or what was typed at login)
    Column("organization", String(255)),  # the organization concerned; null: superadmins only
    Column("action", String(64), nullable=False),
    Column("objectType", String(32), nullable=False),
    Column("objectId", String(255)),
    Column("outcome", String(16), nullable=False),  # success | failure
    Column("address", String(64)),
    Column("details", JSON, nullable=False),
    Index("ix_audit_org_created", "organization", "createdAt"),
    Index("ix_audit_created", "createdAt"),
)

job_event = Table(
    "job_event",
    metadata,
    # a job's state changes, for `/api/events` (resumed by number) and the webhooks; `seq` is the number
    # clients see, given after the commit in an order readers can rely on (services/job_events.py)
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("seq", BigInteger, unique=True),
    Column("organization", String(255), nullable=False),
    Column("type", String(32), nullable=False),  # job.created, job.started, job.succeeded...
    Column("job", String(32), nullable=False),
    Column("data", Text, nullable=False),  # JSON: the job's public fields
    Column("createdAt", BigInteger, nullable=False, index=True),
    Index("ix_job_event_org_seq", "organization", "seq"),
)

job_event_counter = Table(
    "job_event_counter",
    metadata,
    # one row: the last number given to an event; its row lock serializes the numbering
    Column("id", Integer, primary_key=True),
    Column("last", BigInteger, nullable=False),
)

webhook = Table(
    "webhook",
    metadata,
    # where an organization's job events are POSTed (services/webhooks.py)
    Column("id", String(32), primary_key=True),
    Column("organization", String(255), ForeignKey("organization.id"), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("description", Text),
    Column("secret", Text, nullable=False),  # encrypted; signs the deliveries, never returned
    Column("events", JSON, nullable=False),  # event types sent; empty: all
    Column("enabled", Boolean, nullable=False),
    *_system_columns(),
)

webhook_delivery = Table(
    "webhook_delivery",
    metadata,
    # one event to send to one webhook, and the log of its attempts; claimed by one node at a time
    Column("id", String(32), primary_key=True),
    Column("webhook", String(32), ForeignKey("webhook.id", ondelete="CASCADE"), nullable=False),
    Column("event", BigInteger, nullable=False),  # the event's number (job_event.seq)
    Column("eventType", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # Pending, Delivered, Failed
    Column("attempts", Integer, nullable=False),
    Column("nextAttemptAt", BigInteger),
    Column("lastStatusCode", Integer),
    Column("lastError", Text),
    Column("lastAttemptAt", BigInteger),
    Column("deliveredAt", BigInteger),
    Column("createdAt", BigInteger, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", BigInteger),
    Index("ix_webhook_delivery_due", "status", "nextAttemptAt"),
    Index("ix_webhook_delivery_webhook", "webhook", "createdAt"),
    Index("ix_webhook_delivery_event", "event"),
)
