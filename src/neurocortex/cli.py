"""The `neurocortex` command: serve, init, and catalog tools."""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from neurocortex import __version__, operations_cli
from neurocortex.settings import Settings

app = typer.Typer(help="neurocortex: a Cortex-compatible observable-analysis and active-response engine.",
                  no_args_is_help=True, add_completion=False)  # fmt: skip
catalog_app = typer.Typer(help="Inspect the analyzer and responder catalogs.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
neurons_app = typer.Typer(
    help="Per-worker virtualenvs (install, update, list) and container images (image).", no_args_is_help=True
)
app.add_typer(neurons_app, name="neurons")
misp_app = typer.Typer(
    help="MISP integration: the misp-modules servers used as analyzers.", no_args_is_help=True
)
app.add_typer(misp_app, name="misp")
secrets_app = typer.Typer(help="Secrets at rest: rotate the key that encrypts them.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")
console = Console()

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory [env NEUROCORTEX_DATA_DIR]")]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="Database URL [env NEUROCORTEX_DATABASE_URL]")
]
Analyzers = Annotated[
    list[str] | None, typer.Option("--analyzers", help="Analyzer source (dir, catalog file, URL); repeatable")
]
Responders = Annotated[list[str] | None, typer.Option("--responders", help="Responder source; repeatable")]
MispModules = Annotated[
    list[str] | None,
    typer.Option("--misp-modules", help="misp-modules server URL; repeatable [env NEUROCORTEX_MISP_MODULES]"),
]


def load_settings(**overrides: Any) -> Settings:
    """Flags win over NEUROCORTEX_* variables, which win over the TOML file and the defaults."""
    given = {key: value for key, value in overrides.items() if value not in (None, [])}
    for key in ("runners",):
        if isinstance(given.get(key), str):
            given[key] = [part.strip() for part in given[key].split(",") if part.strip()]
    return Settings(**given)


@app.command()
def serve(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    host: Annotated[str | None, typer.Option("--host", help="Listen address [env NEUROCORTEX_HOST]")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Listen port [env NEUROCORTEX_PORT]")] = None,
    analyzers: Analyzers = None,
    responders: Responders = None,
    broker_url: Annotated[
        str | None, typer.Option("--broker-url", help="Broker URL: distributed mode")
    ] = None,
    runners: Annotated[
        str | None, typer.Option("--runners", help="Runner order, e.g. docker,process")
    ] = None,
    misp_modules: MispModules = None,
) -> None:
    """Start the server (API, UI and the embedded dispatcher)."""
    import uvicorn

    from neurocortex.app import create_app, stopping

    settings = load_settings(
        data_dir=data_dir, database_url=database_url, host=host, port=port, analyzers=analyzers,
        responders=responders, broker_url=broker_url, runners=runners, misp_modules=misp_modules,
    )  # fmt: skip
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    application = create_app(settings)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            stopping(application)  # before uvicorn waits for the requests in progress
            await super().shutdown(sockets)

    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        http="httptools",
        loop="uvloop",
    )
    Server(config).run()


@secrets_app.command("rotate")
def secrets_rotate(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Re-encrypt worker configurations and API keys with a new secret; the old one stays readable.

    Safe to run again after an interruption: it finishes with the same new secret. With the secret in
    NEUROCORTEX_SECRET_KEY, give the new one in NEUROCORTEX_NEW_SECRET_KEY. Restart the servers afterwards.
    """
    import os

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    new_secret = os.environ.get("NEUROCORTEX_NEW_SECRET_KEY", "").encode() or None
    if settings.secret_key and not new_secret:
        raise typer.BadParameter(
            "NEUROCORTEX_SECRET_KEY is set: give the new secret in NEUROCORTEX_NEW_SECRET_KEY"
        )
    report = asyncio.run(_rotate(settings, new_secret))
    console.print(
        f"re-encrypted {report.workers} worker configurations, {report.base_configs} base configurations "
        f"and {report.api_keys} API keys"
    )
    if settings.secret_key:
        console.print(
            "now set NEUROCORTEX_SECRET_KEY to the new secret and add the old one to "
            "NEUROCORTEX_PREVIOUS_SECRET_KEYS, then restart the servers"
        )
    else:
        console.print(
            "the new secret is in secret.key, the old one in secret.key.previous: restart the servers"
        )


async def _rotate(settings: Settings, new_secret: bytes | None):
    from neurocortex.services import secrets
    from neurocortex.store.db import Database, ensure_sqlite_directory

    ensure_sqlite_directory(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    try:
        await db.migrate()
        return await secrets.rotate(settings, db, new_secret)
    finally:
        await db.close()


@app.command()
def worker(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    analyzers: Analyzers = None,
    responders: Responders = None,
    broker_url: Annotated[
        str | None, typer.Option("--broker-url", help="Broker URL [env NEUROCORTEX_BROKER_URL]")
    ] = None,
    runners: Annotated[
        str | None, typer.Option("--runners", help="Runner order, e.g. docker,process")
    ] = None,
    misp_modules: Annotated[
        list[str] | None, typer.Option("--misp-modules", help="misp-modules server URL; repeatable")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Jobs run at once [default: NEUROCORTEX_MAX_RUNNING_JOBS]"),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Node name shown by Celery")] = None,
) -> None:
    """Run jobs sent by the `serve` nodes in distributed mode (a Celery worker on RabbitMQ or Redis)."""
    from neurocortex.execution.worker_node import run_worker

    settings = load_settings(
        data_dir=data_dir, database_url=database_url, analyzers=analyzers, responders=responders,
        broker_url=broker_url, runners=runners, misp_modules=misp_modules,
    )  # fmt: skip
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_worker(settings, concurrency or settings.running_jobs_limit, name)


@app.command()
def init(
    login: Annotated[str, typer.Option(help="Login of the first superadmin")] = "admin",
    name: Annotated[str, typer.Option(help="Display name")] = "Administrator",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin")
    ] = False,
    print_key: Annotated[
        bool, typer.Option("--print-key", help="Also create an API key and print it")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create the first superadmin (in organization `cortex`) while no user exists."""
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            raise typer.BadParameter("the passwords differ")
    if not password:
        raise typer.BadParameter("an empty password is not allowed")
    key = asyncio.run(_init(settings, login, name, password, print_key))
    console.print(f"superadmin [bold]{login}[/bold] created")
    if key:
        print(key)


async def _init(settings: Settings, login: str, name: str, password: str, with_key: bool) -> str | None:
    from neurocortex.app import build_services
    from neurocortex.auth.context import AuthContext, init_context
    from neurocortex.services import users

    svc = await build_services(settings)
    try:
        if await users.any_user_exists(svc):
            console.print("[red]users already exist: init is only for the first superadmin[/red]")
            raise typer.Exit(1)
        ctx = init_context()
        await users.create(svc, ctx, {"login": login, "name": name, "roles": ["superadmin"],
                                      "organization": "cortex", "password": password})  # fmt: skip
        if not with_key:
            return None
        admin = AuthContext(login, "cortex", frozenset({"superadmin"}), "cli")
        return await users.renew_key(svc, admin, login)
    finally:
        await svc.db.close()


@catalog_app.command("list")
def catalog_list(
    data_dir: DataDir = None, analyzers: Analyzers = None, responders: Responders = None
) -> None:
    """List the definitions the configured sources provide, and the ones skipped with their reason."""
    from neurocortex.app import catalog_loader

    settings = load_settings(data_dir=data_dir, analyzers=analyzers, responders=responders)
    catalog = catalog_loader(settings).load()
    for kind, definitions in (("analyzers", catalog.analyzers), ("responders", catalog.responders)):
        table = Table(title=f"{kind} ({len(definitions)})")
        for column in ("id", "data types", "runs with"):
            table.add_column(column)
        for definition in sorted(definitions.values(), key=lambda d: d.id):
            runs_with = definition.command or definition.docker_image
            if definition.runner:
                runs_with = f"{definition.runner}: {definition.source}"
            table.add_row(definition.id, ", ".join(definition.data_types), runs_with or "")
        console.print(table)
    _print_problems(catalog.problems)


@catalog_app.command("show")
def catalog_show(
    name: Annotated[str, typer.Argument(help="Definition name (every version) or id")],
    data_dir: DataDir = None,
    analyzers: Analyzers = None,
    responders: Responders = None,
) -> None:
    """Print a definition: what it is, how it runs, its data types and configuration items."""
    from neurocortex.app import catalog_loader
    from neurocortex.services.catalog import MISSING, name_key

    settings = load_settings(data_dir=data_dir, analyzers=analyzers, responders=responders)
    catalog = catalog_loader(settings).load()
    found = [
        d
        for definitions in (catalog.analyzers, catalog.responders)
        for d in definitions.values()
        if name in (d.id, d.name) or name_key(name) == name_key(d.name)
    ]
    if not found:
        console.print(f"[red]no definition named {name}[/red]")
        _print_problems(catalog.problems)
        raise typer.Exit(1)
    for definition in sorted(found, key=lambda d: (d.type, d.id)):
        about = Table.grid(padding=(0, 2))
        about.add_column(style="bold")
        about.add_column(overflow="fold")
        for label, value in (
            ("id", definition.id), ("type", definition.type), ("name", definition.name),
            ("version", definition.version), ("description", definition.description),
            ("author", definition.author), ("url", definition.url), ("license", definition.license),
            ("data types", ", ".join(definition.data_types) or "(none)"),
            ("command", definition.command or "-"), ("docker image", definition.docker_image or "-"),
            ("base config", definition.base_config or definition.name), ("source", definition.source),
        ):  # fmt: skip
            about.add_row(label, value)
        console.print(about)
        items = Table(title=f"configuration items of {definition.id} ({len(definition.items)})")
        for column in ("name", "type", "multi", "required", "default", "description"):
            items.add_column(column, overflow="fold")
        for item in definition.items:
            default = "" if item.default is MISSING else repr(item.default)
            items.add_row(item.name, item.type, "yes" if item.multi else "no",
                          "yes" if item.required else "no", default, item.description)  # fmt: skip
        console.print(items)
        console.print()


@catalog_app.command("refresh")
def catalog_refresh(
    server: Annotated[
        str | None, typer.Option("--server", help="URL of a running server to refresh as well")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="NEUROCORTEX_API_KEY", help="API key of an orgadmin or superadmin"),
    ] = None,
    data_dir: DataDir = None,
    analyzers: Analyzers = None,
    responders: Responders = None,
) -> None:
    """Download the catalogs again, rescan the sources and print what changed since the last refresh
    (added / updated / removed / failed). Exits with 1 when a whole source failed."""
    from neurocortex.app import catalog_loader
    from neurocortex.services import catalog_refresh as refresh

    if server and not api_key:
        raise typer.BadParameter("--server needs --api-key (or NEUROCORTEX_API_KEY)")
    settings = load_settings(data_dir=data_dir, analyzers=analyzers, responders=responders)
    loader = catalog_loader(settings)
    previous = refresh.read_state(loader.cache_dir)
    catalog = loader.load()
    changes = refresh.compare_and_keep(previous, catalog, loader.cache_dir)
    table = Table(title=f"catalog changes ({len(changes)})")
    for column in ("change", "type", "name", "detail"):
        table.add_column(column, overflow="fold")
    colours = {
        refresh.ADDED: "green",
        refresh.UPDATED: "cyan",
        refresh.REMOVED: "yellow",
        refresh.FAILED: "red",
    }
    for change in changes:
        colour = colours[change.change]
        table.add_row(f"[{colour}]{change.change}[/{colour}]", change.worker_type, change.name, change.detail)
    console.print(table)
    console.print(f"catalogs: {len(catalog.analyzers)} analyzers, {len(catalog.responders)} responders; "
                  + ", ".join(f"{sum(c.change == k for c in changes)} {k}" for k in colours))  # fmt: skip
    failed = any(problem.entry is None for problem in catalog.problems)
    if server:
        failed |= not _rescan(server, api_key or "")
    if failed:
        raise typer.Exit(1)


@misp_app.command("modules")
def misp_modules_list(
    misp_modules: MispModules = None, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """What each configured misp-modules server offers, and where its expansion modules are enabled."""
    settings = load_settings(misp_modules=misp_modules, data_dir=data_dir, database_url=database_url)
    if not settings.misp_modules:
        console.print("no misp-modules server configured (--misp-modules URL or NEUROCORTEX_MISP_MODULES)")
        raise typer.Exit(1)
    if not asyncio.run(_misp_modules(settings)):
        raise typer.Exit(1)


async def _misp_modules(settings: Settings) -> bool:
    import httpx

    from neurocortex.app import build_services
    from neurocortex.misp import modules
    from neurocortex.misp.types import data_type
    from neurocortex.services import misp

    svc = await build_services(settings)
    reachable = True
    try:
        for server in settings.misp_modules:
            try:
                offered = await asyncio.to_thread(modules.fetch_modules, server)
            except (httpx.HTTPError, ValueError) as exc:
                console.print(f"[red]{server}: {exc}[/red]")
                reachable = False
                continue
            definitions = {}
            for module in filter(modules.is_expansion, offered):
                try:
                    definitions[module["name"]] = modules.to_definition(module, [server])
                except ValueError:
                    continue
            enabled = await misp.enabled_where(svc, [d.id for d in definitions.values()])
            table = Table(title=f"{server}: {len(offered)} modules, {len(definitions)} usable as analyzers")
            for column in (
                "module",
                "type",
                "analyzer definition",
                "data types",
                "enabled in (organization: name)",
            ):
                table.add_column(column, overflow="fold")
            for module in sorted(offered, key=lambda m: (m.get("type") != "expansion", str(m.get("name")))):
                definition = definitions.get(module.get("name"))
                inputs = (module.get("mispattributes") or {}).get("input") or []
                table.add_row(
                    str(module.get("name")), str(module.get("type")), definition.id if definition else "",
                    ", ".join(definition.data_types if definition else dict.fromkeys(map(data_type, inputs))),
                    ", ".join(f"{org}: {name}" for org, name in enabled.get(definition.id, [])) if definition else "",
                )  # fmt: skip
            console.print(table)
    finally:
        await svc.db.close()
    return reachable


Jobs = Annotated[int | None, typer.Option("--jobs", "-j", help="Installs at a time [default: min(4, CPUs)]")]
Force = Annotated[bool, typer.Option("--force", help="Rebuild even the environments that did not change")]
InstallTimeout = Annotated[float, typer.Option("--timeout", help="Seconds one worker's install may take")]


@neurons_app.command("install")
def neurons_install(
    names: Annotated[
        list[str] | None, typer.Argument(help="Worker directory names, definition names or ids")
    ] = None,
    all_workers: Annotated[
        bool, typer.Option("--all", help="Every local worker directory of the configured sources")
    ] = False,
    jobs: Jobs = None,
    force: Force = False,
    timeout: InstallTimeout = 900.0,
    data_dir: DataDir = None,
    analyzers: Analyzers = None,
    responders: Responders = None,
) -> None:
    """Make or refresh the virtualenv of workers from their requirements file (only what changed)."""
    from neurocortex.execution import environments as envs

    if not names and not all_workers:
        raise typer.BadParameter("name workers to install, or give --all")
    settings = load_settings(data_dir=data_dir, analyzers=analyzers, responders=responders)
    catalog = envs.load_local_catalog(settings)
    _print_problems(catalog.problems)
    available = envs.discover(settings, catalog)
    chosen = available
    if names and not all_workers:
        chosen, unknown = envs.select(available, names)
        if unknown:
            console.print(f"[red]no local worker named {', '.join(unknown)}[/red]")
            raise typer.Exit(1)
    results = _install_with_progress(chosen, jobs=jobs, force=force, timeout=timeout)
    if any(result.status == envs.FAILED for result in results):
        raise typer.Exit(1)


@neurons_app.command("update")
def neurons_update(
    server: Annotated[
        str | None, typer.Option("--server", help="URL of a running server to rescan its catalogs")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="NEUROCORTEX_API_KEY", help="API key of an orgadmin or superadmin"),
    ] = None,
    pull: Annotated[
        bool, typer.Option("--pull", help="`git pull --ff-only` the local sources that are git checkouts")
    ] = False,
    jobs: Jobs = None,
    force: Force = False,
    timeout: InstallTimeout = 900.0,
    data_dir: DataDir = None,
    analyzers: Analyzers = None,
    responders: Responders = None,
) -> None:
    """Refresh the catalogs, reinstall the environments that changed, and rescan a running server."""
    from neurocortex.app import catalog_loader
    from neurocortex.execution import environments as envs

    if server and not api_key:
        raise typer.BadParameter("--server needs --api-key (or NEUROCORTEX_API_KEY)")
    settings = load_settings(data_dir=data_dir, analyzers=analyzers, responders=responders)
    failed = False
    if pull:
        failed |= not _git_pull(envs.local_sources([*settings.analyzers, *settings.responders]))
    # Every source, http catalogs fetched again: what the server will see when it rescans.
    catalog = catalog_loader(settings).load()
    console.print(f"catalogs: {len(catalog.analyzers)} analyzers, {len(catalog.responders)} responders")
    _print_problems(catalog.problems)
    results = _install_with_progress(
        envs.discover(settings, catalog), jobs=jobs, force=force, timeout=timeout
    )
    failed |= any(result.status == envs.FAILED for result in results)
    if server:
        failed |= not _rescan(server, api_key or "")
    else:
        console.print(
            "The server loads the new definitions at its next start, or now with "
            "`neurocortex neurons update --server URL --api-key KEY` (or Refresh analyzers in the UI)."
        )
    if failed:
        raise typer.Exit(1)


@neurons_app.command("list")
def neurons_list(
    data_dir: DataDir = None, analyzers: Analyzers = None, responders: Responders = None
) -> None:
    """Each local worker directory and the state of its virtualenv."""
    from neurocortex.execution import environments as envs

    settings = load_settings(data_dir=data_dir, analyzers=analyzers, responders=responders)
    catalog = envs.load_local_catalog(settings)
    _print_problems(catalog.problems)
    table = Table(title=f"worker environments ({envs.venvs_root(settings)})")
    for column in ("kind", "worker", "state", "python"):
        table.add_column(column, no_wrap=True)
    for column in ("definitions", "last failure"):
        table.add_column(column, overflow="fold")
    colours = {"installed": "green", "outdated": "yellow", "broken": "red"}
    for environment in envs.discover(settings, catalog):
        state = envs.state(environment)
        colour = colours.get(state.state, "dim")
        failure = state.last_failure.splitlines()[-1].strip() if state.last_failure else ""
        table.add_row(
            environment.kind, environment.label, f"[{colour}]{state.state}[/{colour}]",
            str(state.extra.get("python", "")).removeprefix("CPython "),
            ", ".join(sorted(environment.names)), failure,
        )  # fmt: skip
    console.print(table)


@neurons_app.command("image")
def neurons_image(
    name: Annotated[str, typer.Argument(help="Worker directory name, definition name or id")],
    tag: Annotated[
        str | None, typer.Option("--tag", help="Image name [default: neurocortex-local/<dir>:<version>]")
    ] = None,
    base: Annotated[
        str, typer.Option("--base", help="Base image of a Dockerfile written now")
    ] = "python:3-slim",
    analyzers: Analyzers = None,
    responders: Responders = None,
) -> None:
    """Build a container image of a local worker (writing its Dockerfile when it has none), for the docker
    runner, with the Docker or Podman daemon of NEUROCORTEX_DOCKER_HOST / DOCKER_HOST."""
    import docker.errors

    from neurocortex.app import docker_runner
    from neurocortex.execution import environments as envs
    from neurocortex.execution import images

    settings = load_settings(analyzers=analyzers, responders=responders)
    catalog = envs.load_local_catalog(settings)
    try:
        definitions = images.definitions_named(catalog, name)
        if not definitions:
            console.print(f"[red]no local worker named {name}[/red]")
            raise typer.Exit(1)
        plan = images.plan(definitions, tag, base)
    except images.ImageError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    kept = "written" if plan.written else "kept as it is"
    console.print(f"{plan.dockerfile}: {kept}; building {plan.tag} ...")
    runner = docker_runner(settings)
    try:
        if not runner.available():
            console.print(f"[red]cannot build: {runner.unavailable_reason}[/red]")
            raise typer.Exit(1)
        try:
            asyncio.run(runner.build(plan.directory, plan.tag))
        except docker.errors.BuildError as exc:
            log = "".join(line.get("stream", "") for line in exc.build_log if isinstance(line, dict))
            console.print(log[-4000:], markup=False, highlight=False)
            console.print(f"[red]build failed: {exc.msg}[/red]")
            raise typer.Exit(1) from None
        except docker.errors.DockerException as exc:
            console.print(f"[red]build failed: {exc}[/red]")
            raise typer.Exit(1) from None
    finally:
        runner.close()
    ids = ", ".join(d.id for d in definitions)
    console.print(f"[green]built {plan.tag}[/green] for {ids}. Run them with it: enable the worker with "
                  f'"dockerImage": "{plan.tag}" (and "runner": "docker" to require it).')  # fmt: skip


def _install_with_progress(environments: list, *, jobs: int | None, force: bool, timeout: float) -> list:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from neurocortex.execution import environments as envs

    installer = envs.EnvironmentInstaller(jobs=jobs, timeout=timeout)
    running: list[str] = []
    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("installing", total=len(environments))

        def started(environment: envs.WorkerEnvironment) -> None:
            running.append(environment.label)
            progress.update(task, description=", ".join(running))

        def done(result: envs.InstallResult) -> None:
            running.remove(result.environment.label)
            progress.update(task, advance=1, description=", ".join(running) or "done")

        results = asyncio.run(installer.install(environments, force=force, on_start=started, on_done=done))
    table = Table(title=f"worker environments ({len(results)})")
    for column in ("worker", "status", "reason", "time"):
        table.add_column(column, overflow="fold")
    colours = {envs.INSTALLED: "green", envs.UNCHANGED: "dim", envs.FAILED: "red"}
    for result in results:
        colour = colours[result.status]
        table.add_row(f"{result.environment.kind}/{result.environment.label}",
                      f"[{colour}]{result.status}[/{colour}]", result.reason,
                      f"{result.seconds:.1f} s")  # fmt: skip
    console.print(table)
    counts = {status: sum(r.status == status for r in results) for status in colours}
    console.print(", ".join(f"{count} {status}" for status, count in counts.items()))
    return results


def _print_problems(problems: list) -> None:
    for problem in problems:
        console.print(f"[yellow]skipped:[/yellow] {problem}")


def _git_pull(sources: list[str]) -> bool:
    import subprocess

    checkouts: set[str] = set()
    for source in sources:
        path = Path(source.removeprefix("file://")).expanduser()
        directory = path if path.is_dir() else path.parent
        found = subprocess.run(["git", "-C", str(directory), "rev-parse", "--show-toplevel"],
                               capture_output=True, text=True, check=False)  # fmt: skip
        if found.returncode == 0:
            checkouts.add(found.stdout.strip())
    if not checkouts:
        console.print("--pull: no local source is in a git checkout")
    ok = True
    for checkout in sorted(checkouts):
        pulled = subprocess.run(["git", "-C", checkout, "pull", "--ff-only"],
                                capture_output=True, text=True, check=False)  # fmt: skip
        if pulled.returncode == 0:
            lines = pulled.stdout.strip().splitlines()
            console.print(f"{checkout}: {lines[-1] if lines else 'pulled'}")
        else:
            console.print(f"[red]{checkout}: git pull failed:[/red] {pulled.stderr.strip()}")
            ok = False
    return ok


def _rescan(server: str, api_key: str) -> bool:
    import httpx

    url = server.rstrip("/") + "/api/analyzerdefinition/scan"
    try:
        response = httpx.post(url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
    except httpx.HTTPError as exc:
        console.print(f"[red]rescan of {server} failed:[/red] {exc}")
        return False
    if response.status_code >= 400:
        console.print(f"[red]rescan of {server} refused ({response.status_code}):[/red] {response.text}")
        return False
    console.print(f"{server} is rescanning its analyzer and responder catalogs")
    return True


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


app.command()(operations_cli.purge)
app.command()(operations_cli.analyze)


def main() -> None:
    app()
