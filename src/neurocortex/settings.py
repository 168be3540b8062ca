"""Every setting of neurocortex, its environment variable and its default, in one place.

Settings come from (highest first): command-line flags, `NEUROCORTEX_*` environment variables, the TOML
file named by `NEUROCORTEX_CONFIG`, then the defaults below. List settings accept a comma-separated
string in the environment (`NEUROCORTEX_ANALYZERS=/opt/a,/opt/b`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

BUNDLED_NEURONS = Path(__file__).resolve().parent.parent.parent / "neurons"
"""The `neurons/` directory of a source checkout (the README's install is an editable one)."""

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEUROCORTEX_", extra="ignore")

    # -- the settings of DESIGN.md's table --
    data_dir: Path = Path("./data")
    database_url: str | None = None
    database_pool_size: int = Field(10, ge=1)
    """PostgreSQL connections a node keeps open, and as many more at busy times: every node counts against
    the server's max_connections (100 by default)."""
    host: str = "127.0.0.1"
    port: int = 9001
    analyzers: CommaList = Field(default_factory=lambda: [str(BUNDLED_NEURONS / "analyzers")])
    responders: CommaList = Field(default_factory=lambda: [str(BUNDLED_NEURONS / "responders")])
    broker_url: str | None = None
    runners: CommaList = Field(default_factory=lambda: ["docker", "process"])
    misp_modules: CommaList = Field(default_factory=list)
    secret_key: str | None = None

    # -- distributed mode (NEUROCORTEX_BROKER_URL set) --
    broker_queue: str = "neurocortex.jobs"
    """The broker queue that `serve` nodes send jobs to and `neurocortex worker` nodes consume."""
    attachments_in_database: bool | None = None
    """Keep attachment bytes in the database too, for nodes that share no filesystem; on by default in
    distributed mode. Each node's attachment directory is then a cache of them."""

    # -- jobs --
    job_directory: Path | None = None
    """Where job folders are created; `<data_dir>/jobs` when unset."""
    keep_job_folder: bool = False
    job_timeout: float = 30.0
    """Minutes; the default of the global `jobTimeout` item and the runner timeout of workers without one."""
    job_cache: float = 10.0
    """Minutes a finished report is served from the cache when the worker sets no `jobCache`."""
    job_lease: float = Field(60.0, gt=0)
    """Seconds a running job's claim lasts without renewal: a job whose server died (kill -9, crash) is
    retried once this has passed since the last renewal."""
    analyzer_concurrency: int = 20
    responder_concurrency: int = 20
    """Jobs of each type this node runs at once."""
    max_running_jobs: int | None = Field(None, ge=1)
    """Jobs this node runs at once, all types together; the sum of the two above when unset."""
    process_concurrency: int = Field(0, ge=0)
    """Jobs this node runs at once with the process runner; 0 for no limit beyond the others."""
    worker_concurrency: int = Field(0, ge=0)
    """Jobs of one worker running at once, over all nodes, for workers without a `maxConcurrency` of their
    own; 0 for no limit."""
    sandbox_concurrency: int = Field(0, ge=0)
    """Jobs this node runs at once in the bubblewrap sandbox; 0 for no limit beyond the others."""
    sandbox_network: bool = True
    """Whether sandboxed workers reach the network (off: only their own loopback, for file analyzers)."""
    sandbox_memory_mb: int = Field(2048, ge=0)
    """Address-space limit of a sandboxed worker in MiB; 0 for none."""
    sandbox_cpu_seconds: int = Field(0, ge=0)
    """CPU-time limit of a sandboxed worker; 0 for none (the job timeout still applies)."""
    sandbox_max_processes: int = Field(256, ge=0)
    """Processes and threads a sandboxed worker may have; 0 for no limit."""
    max_queue_time: float = Field(0.0, ge=0)
    """Seconds a job may stay Waiting before it is failed; 0 to wait for ever (as Cortex)."""
    python: str | None = None
    """Interpreter for `.py` workers that have no virtualenv of their own; the server's by default."""

    # -- job events and webhooks --
    event_retention: float = Field(7.0, gt=0)
    """Days a job event (`/api/events`, webhook deliveries and their log) is kept."""
    webhook_timeout: float = Field(10.0, gt=0)
    """Seconds a webhook receiver has to answer one delivery."""
    webhook_max_attempts: int = Field(8, ge=1)
    """Attempts of one delivery before it is marked Failed."""
    webhook_retry_delay: float = Field(10.0, gt=0)
    """Seconds before the first retry; each following one waits twice as long (at most an hour)."""
    webhook_concurrency: int = Field(16, ge=1)
    """Deliveries in flight at once per server node."""

    # -- limits on what comes in and what workers give back --
    max_upload_size: int = 1024**3
    max_output_json: int = 64 * 1024**2
    max_captured_output: int = 64 * 1024
    """Bytes of a worker's stdout/stderr kept for the error message (half from the start, half from the end)."""

    # -- web --
    session_inactivity: int = 3600
    session_warning: int = 300
    attachment_password: str = "malware"
    setup_token: str | None = None
    """One-time token allowing the first superadmin to be created from a non-loopback address."""

    log_level: str = "info"

    _split = field_validator("analyzers", "responders", "runners", "misp_modules", mode="before")(
        _split_commas
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("NEUROCORTEX_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    # -- derived values --
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'neurocortex.db').resolve()}"

    @property
    def distributed(self) -> bool:
        return bool(self.broker_url)

    @property
    def shared_attachments(self) -> bool:
        if self.attachments_in_database is not None:
            return self.attachments_in_database
        return self.distributed

    @property
    def running_jobs_limit(self) -> int:
        if self.max_running_jobs is not None:
            return self.max_running_jobs
        return self.analyzer_concurrency + self.responder_concurrency

    @property
    def runner_limits(self) -> dict[str, int]:
        """Jobs each runner may run at once on this node (0: no limit of its own). A runner added later
        (docker, sandbox) adds its `<name>_concurrency` setting here."""
        return {"process": self.process_concurrency, "sandbox": self.sandbox_concurrency}

    @property
    def resolved_job_directory(self) -> Path:
        return (self.job_directory or self.data_dir / "jobs").resolve()

    @property
    def attachment_directory(self) -> Path:
        return (self.data_dir / "attachments").resolve()
