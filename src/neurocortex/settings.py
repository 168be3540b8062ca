"""Every setting of neurocortex, its environment variable and its default, in one place.

Settings come from (highest first): command-line flags, `NEUROCORTEX_*` environment variables, the TOML
file named by `NEUROCORTEX_CONFIG`, then the defaults below. List settings accept a comma-separated
string in the environment (`NEUROCORTEX_ANALYZERS=/opt/a,/opt/b`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

BUNDLED_NEURONS = Path(__file__).resolve().parent.parent.parent / "neurons"
"""The `neurons/` directory of a source checkout (the README's install is an editable one)."""

UI_ASSETS = Path(__file__).resolve().parent.parent.parent / "node_modules"
"""The front-end packages `make install` puts in the source checkout (npm ci from package-lock.json)."""

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
    previous_secret_keys: CommaList = Field(default_factory=list)
    """Secrets in use before a rotation (`neurocortex secrets rotate`) when NEUROCORTEX_SECRET_KEY is set:
    still read, never written with."""

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
    # -- docker runner (Cortex's docker.* keys) --
    docker_host: str | None = None
    """The Docker or Podman API (unix:///run/podman/podman.sock, tcp://host:2376); DOCKER_HOST when unset,
    then Docker's socket, then rootful Podman's."""
    docker_image_prefix: str = ""
    """Prepended verbatim to every worker's image (Cortex's docker.imageRegistryPrefix)."""
    docker_pull: Literal["always", "missing", "never"] = "always"
    """always: pull before each run, errors ignored while a local copy exists (Cortex's docker.autoUpdate);
    missing: only images not present; never."""
    docker_pull_timeout: float = Field(600.0, gt=0)
    """Seconds a pull may take."""
    docker_registry_url: str | None = None
    docker_registry_user: str | None = None
    docker_registry_password: str | None = None
    docker_registry_email: str | None = None
    """Credentials of a private registry, used for the images it serves (for every image when no URL)."""
    docker_container: dict[str, Any] = Field(default_factory=dict)
    """Container options, Cortex's docker.container.* names (memory, memorySwap, cpuPeriod, cpuQuota,
    networkMode, capDrop, ...; also cpus, pidsLimit, user, readOnly), JSON in the environment."""
    docker_job_directory: Path | None = None
    """The job directory as the Docker daemon sees it (Cortex's job.dockerDirectory); the same by default."""
    docker_concurrency: int = Field(0, ge=0)
    """Jobs this node runs at once in containers; 0 for no limit beyond the others."""
    job_directory_group: str | None = None
    """A group (name or number) given read access to job directories, for helper daemons such as clamd;
    other users get none."""
    max_queue_time: float = Field(0.0, ge=0)
    """Seconds a job may stay Waiting before it is failed; 0 to wait for ever (as Cortex)."""
    python: str | None = None
    """Interpreter for `.py` workers that have no virtualenv of their own; the server's by default."""

    # -- catalogs --
    catalog_proxy: str | None = None
    """Proxy for downloading http(s) catalogs, e.g. http://proxy:3128; the usual *_PROXY variables when unset."""
    catalog_cacerts: Path | None = None
    """PEM bundle of extra CAs trusted (beside the system's) for downloading catalogs."""
    catalog_download_timeout: float = Field(30.0, gt=0)
    """Seconds a catalog download may take."""
    catalog_refresh_interval: float = Field(0.0, ge=0)
    """Seconds between background catalog refreshes (download, rescan, workers follow); 0 for none beyond
    the one at start and the admin's rescans."""

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
    ui_assets: Path = UI_ASSETS
    """Folder of the web UI's npm packages (htmx, Chart.js), as `npm ci` lays them out."""

    # -- authentication (Cortex's auth.*; see the README's "Authentication" section) --
    auth_providers: CommaList = Field(default_factory=lambda: ["local"])
    """Password providers tried in this order at login (local, ldap, ad); `key` is always offered first."""
    auth_basic: bool = False
    """Accept `Authorization: Basic` on every request, checked against the password providers."""
    auth_header: str | None = None
    """Name of a header carrying the login, set by a trusted reverse proxy (off while unset)."""
    trusted_proxies: CommaList = Field(default_factory=list)
    """Addresses or networks of the reverse proxies whose identity headers (auth_header, client
    certificate) are believed; such headers from anywhere else are ignored."""
    x509_header: str | None = None
    """Header in which a trusted reverse proxy passes the client certificate it verified (URL-escaped PEM,
    nginx's `$ssl_client_escaped_cert`); off while unset."""
    x509_verify_header: str = "X-SSL-Client-Verify"
    """Header with the proxy's verification result; only `SUCCESS` is accepted."""
    x509_login_attribute: Literal["cn", "email", "uid"] = "cn"
    """What of the certificate is the login: subject CN, e-mail (SAN, else subject), or subject UID."""
    login_max_failures: int = Field(10, ge=1)
    """Bad passwords one account may get in the failure window; further attempts are refused until the
    oldest falls out of the window."""
    login_max_address_failures: int = Field(50, ge=1)
    """Bad passwords from one source address (any account) in the failure window."""
    login_failure_window: float = Field(60.0, gt=0)
    """Seconds over which failed logins are counted."""
    password_min_length: int = Field(0, ge=0)
    password_min_classes: int = Field(0, ge=0, le=4)
    """Character classes (lower case, upper case, digits, others) a new password must mix."""

    # -- LDAP (Cortex's auth.ldap.*) and Active Directory (auth.ad.*) --
    ldap_server_names: CommaList = Field(default_factory=list)
    """host or host:port, tried in this order (failover)."""
    ldap_use_ssl: bool = False
    ldap_start_tls: bool = False
    ldap_bind_dn: str | None = None
    ldap_bind_pw: SecretStr | None = None
    ldap_base_dn: str = ""
    ldap_filter: str = "(uid={0})"
    ldap_ca_file: str | None = None
    """CA certificates (PEM) trusted for LDAPS/StartTLS; the system's when unset."""
    ldap_timeout: float = Field(5.0, gt=0)
    ad_domain_fqdn: str | None = None
    ad_domain_name: str | None = None
    ad_server_names: CommaList = Field(default_factory=list)
    """host or host:port; the domain FQDN itself when empty."""
    ad_use_ssl: bool = False
    ad_start_tls: bool = False
    ad_ca_file: str | None = None
    directory_autocreate: bool = False
    """Create a neurocortex user at the first LDAP/AD login instead of refusing an unknown one."""
    directory_default_organization: str | None = None
    directory_default_roles: CommaList = Field(default_factory=lambda: ["read"])

    # -- single sign-on: OAuth2 / OpenID Connect (Cortex's auth.oauth2.* and auth.sso.*); on when
    # NEUROCORTEX_AUTH_PROVIDERS names `oauth2` --
    oauth2_issuer: str | None = None
    """OpenID provider whose discovery document (`<issuer>/.well-known/openid-configuration`) gives the
    endpoints and keys; ID tokens are then verified."""
    oauth2_authorization_url: str | None = None
    oauth2_token_url: str | None = None
    oauth2_user_url: str | None = None
    """Plain OAuth2 endpoints (Cortex's settings), for a provider without discovery."""
    oauth2_client_id: str | None = None
    oauth2_client_secret: SecretStr | None = None
    oauth2_redirect_uri: str | None = None
    """This server's `/api/ssoLogin` as the provider knows it, e.g. https://cortex.example/api/ssoLogin."""
    oauth2_scope: CommaList = Field(default_factory=lambda: ["openid", "profile", "email"])
    sso_autocreate: bool = False
    sso_autoupdate: bool = False
    sso_autologin: bool = False
    sso_mapper: str = "simple"
    """simple: roles and organization from claims; group: from the groups claim through the mappings."""
    sso_attribute_login: str = "preferred_username"
    sso_attribute_name: str = "name"
    sso_attribute_roles: str = "roles"
    sso_attribute_groups: str = "groups"
    sso_attribute_organization: str = "organization"
    sso_default_roles: CommaList = Field(default_factory=list)
    sso_default_organization: str | None = None
    sso_group_roles: dict[str, list[str]] = Field(default_factory=dict)
    """group → roles (JSON), for the group mapper: a user gets the roles of all their groups."""
    sso_group_organizations: dict[str, str] = Field(default_factory=dict)
    """group → organization (JSON), for the group mapper: the first of the user's groups that has one."""

    # -- operations --
    metrics_token: str | None = None
    """Bearer token that may scrape `/metrics` from anywhere; unset, only this machine and superadmins may."""
    worker_metrics_port: int = Field(0, ge=0, le=65535)
    """Port on which a `neurocortex worker` node serves its own job metrics (run times, runner errors,
    no credentials, all interfaces: firewall it); 0 for none."""

    log_level: str = "info"

    _split = field_validator(
        "analyzers",
        "responders",
        "runners",
        "misp_modules",
        "auth_providers",
        "trusted_proxies",
        "ldap_server_names",
        "ad_server_names",
        "directory_default_roles",
        "previous_secret_keys",
        "oauth2_scope",
        "sso_default_roles",
        mode="before",
    )(_split_commas)

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
        return {
            "process": self.process_concurrency,
            "sandbox": self.sandbox_concurrency,
            "docker": self.docker_concurrency,
        }

    @property
    def resolved_job_directory(self) -> Path:
        return (self.job_directory or self.data_dir / "jobs").resolve()

    @property
    def catalog_directory(self) -> Path:
        """Last good copies of the downloaded catalogs, and the state the next refresh compares with."""
        return (self.data_dir / "catalogs").resolve()

    @property
    def attachment_directory(self) -> Path:
        return (self.data_dir / "attachments").resolve()
