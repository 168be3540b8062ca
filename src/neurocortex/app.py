"""The ASGI application: wiring at start-up (database, migrations, catalog, dispatcher) and the routers."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from neurocortex import __version__
from neurocortex.api import errors
from neurocortex.api.middleware import CortexMiddleware
from neurocortex.api.routes import (
    api_keys,
    dblists,
    events,
    jobs,
    misp,
    organizations,
    quotas,
    sso,
    status,
    stream,
    users,
    webhooks,
    workers,
)
from neurocortex.api.routes import operations as operations_routes
from neurocortex.auth.oidc import SsoLogin
from neurocortex.auth.providers import PasswordLogin
from neurocortex.crypto import SecretBox, load_or_create_secret, previous_secrets
from neurocortex.execution.dispatcher import EmbeddedDispatcher
from neurocortex.execution.executor import Executor
from neurocortex.execution.runners.docker import DockerRunner, RegistryAuth, container_options
from neurocortex.execution.runners.misp_modules import MispModulesRunner
from neurocortex.execution.runners.process import ProcessRunner
from neurocortex.execution.runners.sandbox import SandboxPolicy, SandboxRunner
from neurocortex.execution.webhook_sender import WebhookSender
from neurocortex.misp import modules as misp_modules
from neurocortex.services import catalog_refresh, cluster
from neurocortex.services import organizations as organization_service
from neurocortex.services import users as user_service
from neurocortex.services.base import Services
from neurocortex.services.catalog_sources import CatalogLoader
from neurocortex.settings import Settings
from neurocortex.store.datastore import Datastore
from neurocortex.store.db import Database, ensure_sqlite_directory
from neurocortex.ui import pages

log = logging.getLogger("neurocortex")


async def build_services(settings: Settings) -> Services:
    if settings.distributed and settings.resolved_database_url.startswith("sqlite"):
        raise RuntimeError(
            "distributed mode needs a database all nodes share: set a postgresql+asyncpg:// URL"
        )
    if settings.distributed and not settings.secret_key:
        # each node would otherwise make a key of its own, and none could read the others' secrets or keys
        raise RuntimeError("distributed mode: give every node the same NEUROCORTEX_SECRET_KEY")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    ensure_sqlite_directory(url)
    db = Database(url, pool_size=settings.database_pool_size)
    await db.migrate()
    runners = {
        "process": ProcessRunner(settings.max_captured_output),
        "sandbox": _sandbox(settings),
        "docker": docker_runner(settings),
    }
    if settings.misp_modules:
        runners[misp_modules.RUNNER] = MispModulesRunner(settings.max_output_json)
    available = {name for name, runner in runners.items() if runner.available()}
    if "docker" in available and (removed := runners["docker"].remove_leftovers()):
        log.warning("removed %d containers left by a node of this machine that died", removed)
    for name in set(settings.runners) - available - {misp_modules.RUNNER}:
        reason = getattr(runners.get(name), "unavailable_reason", None) or "not part of this version"
        log.warning("runner %s is unavailable: %s", name, reason)
    svc = Services(
        runners=runners,
        settings=settings,
        db=db,
        box=SecretBox(
            load_or_create_secret(settings.secret_key, settings.data_dir),
            previous_secrets(settings.previous_secret_keys, settings.data_dir),
        ),
        datastore=Datastore(settings.attachment_directory),
        catalog_loader=catalog_loader(settings),
    )
    await organization_service.ensure_cortex_org(svc)
    await catalog_refresh.refresh(svc, pull_images=False)
    return svc


def _dispatcher(svc: Services) -> EmbeddedDispatcher:
    """Jobs run in this process, or, with a broker, on the `neurocortex worker` nodes."""
    executor = Executor(svc, svc.runners)
    if not svc.settings.distributed:
        return EmbeddedDispatcher(svc, executor)
    from neurocortex.execution.broker import Broker
    from neurocortex.execution.distributed import DistributedDispatcher

    log.info("distributed mode: jobs go to the workers listening on %s", svc.settings.broker_queue)
    return DistributedDispatcher(svc, executor, Broker(svc.settings))


def catalog_loader(settings: Settings) -> CatalogLoader:
    """The configured analyzer and responder sources, and the expansion modules of the misp-modules servers."""
    extra = []
    if settings.misp_modules:
        extra.append(
            misp_modules.ModulesSource(settings.misp_modules, settings.data_dir / "misp-modules.json")
        )
    return CatalogLoader.from_settings(settings, extra)


def _sandbox(settings: Settings) -> SandboxRunner:
    """The bubblewrap runner; the worker sees nothing of the data directory, the jobs or the config file."""
    hidden = [settings.data_dir.resolve(), settings.resolved_job_directory]
    if os.environ.get("NEUROCORTEX_CONFIG"):
        hidden.append(Path(os.environ["NEUROCORTEX_CONFIG"]).resolve())
    policy = SandboxPolicy(
        network=settings.sandbox_network,
        memory_mb=settings.sandbox_memory_mb or None,
        cpu_seconds=settings.sandbox_cpu_seconds or None,
        max_processes=settings.sandbox_max_processes or None,
    )
    return SandboxRunner(settings.max_captured_output, hidden=hidden, default_policy=policy)


def docker_runner(settings: Settings) -> DockerRunner:
    """The docker runner as the settings describe it (Cortex's docker.* keys)."""
    registry = None
    if settings.docker_registry_user:
        registry = RegistryAuth(
            settings.docker_registry_user,
            settings.docker_registry_password or "",
            settings.docker_registry_email,
            settings.docker_registry_url,
        )
    try:
        options = container_options(settings.docker_container)
    except ValueError as exc:
        raise ValueError(f"NEUROCORTEX_DOCKER_CONTAINER: {exc}") from None
    return DockerRunner(
        settings.max_captured_output,
        host=settings.docker_host,
        image_prefix=settings.docker_image_prefix,
        pull=settings.docker_pull,
        pull_timeout=settings.docker_pull_timeout,
        registry=registry,
        options=options,
        job_root=settings.resolved_job_directory,
        daemon_job_root=settings.docker_job_directory,
        max_waits=settings.running_jobs_limit,
    )


def stopping(app: FastAPI) -> None:
    """Called as the server starts to stop, before it waits for the requests in progress to end: the
    event streams, which never end by themselves, end now."""
    svc = getattr(app.state, "services", None)
    if svc is not None:
        svc.events.close_event_streams()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    password_login = PasswordLogin.from_settings(settings)  # a misconfigured provider stops the start
    sso_login = SsoLogin(settings) if "oauth2" in settings.auth_providers else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = await build_services(settings)
        app.state.services = svc
        app.state.password_login = password_login
        app.state.sso = sso_login
        app.state.users_exist = await user_service.any_user_exists(svc)
        app.state.setup_token = settings.setup_token or secrets.token_urlsafe(24)
        if not app.state.users_exist:
            log.warning(
                "No user yet: create the first superadmin from this machine, or from elsewhere with the header "
                "X-Neurocortex-Setup-Token: %s (or run `neurocortex init`)",
                app.state.setup_token,
            )
        pending: set[asyncio.Task[Any]] = set()

        def background(coro: Coroutine[Any, Any, Any]) -> None:
            task = asyncio.create_task(coro)
            pending.add(task)
            task.add_done_callback(pending.discard)

        app.state.background = background
        listener = await cluster.connect(svc)
        dispatcher = _dispatcher(svc)
        svc.job_created = dispatcher.wake
        app.state.dispatcher = dispatcher
        await dispatcher.start()
        background(catalog_refresh.update_images(svc))
        if settings.catalog_refresh_interval:
            background(catalog_refresh.refresh_every(svc, settings.catalog_refresh_interval))
        sender = WebhookSender(svc, dispatcher.node)
        sender.start()
        log.info("neurocortex %s ready on http://%s:%s", __version__, settings.host, settings.port)
        try:
            yield
        finally:
            await sender.stop()
            await dispatcher.stop()
            for task in pending:
                task.cancel()
            if listener is not None:
                await listener.stop()
            for runner in svc.runners.values():
                if hasattr(runner, "close"):
                    runner.close()
            await svc.db.close()

    app = FastAPI(
        title="neurocortex",
        version=__version__,
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    errors.install(app)
    for router in operations_routes.ROUTERS:  # before the UI's catch-all pages
        app.include_router(router)
    # order matters: literal paths such as /api/organization/analyzer before /api/organization/{id}
    for router in (status.router, sso.router, stream.router, jobs.router, workers.analyzers, workers.responders,
                   users.router, api_keys.router, organizations.router, dblists.router, quotas.router,
                   misp.router, events.router, webhooks.router):  # fmt: skip
        app.include_router(router)
    pages.install(app)
    app.add_middleware(CortexMiddleware, max_body=settings.max_upload_size)
    return app
