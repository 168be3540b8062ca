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

from neurocortex import __version__
from neurocortex.settings import Settings

app = typer.Typer(help="neurocortex: a Cortex-compatible observable-analysis and active-response engine.",
                  no_args_is_help=True, add_completion=False)  # fmt: skip
catalog_app = typer.Typer(help="Inspect the analyzer and responder catalogs.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
console = Console()

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory [env NEUROCORTEX_DATA_DIR]")]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="Database URL [env NEUROCORTEX_DATABASE_URL]")
]
Analyzers = Annotated[
    list[str] | None, typer.Option("--analyzers", help="Analyzer source (dir, catalog file, URL); repeatable")
]
Responders = Annotated[list[str] | None, typer.Option("--responders", help="Responder source; repeatable")]


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
    misp_modules: Annotated[
        list[str] | None, typer.Option("--misp-modules", help="misp-modules server URL; repeatable")
    ] = None,
) -> None:
    """Start the server (API, UI and the embedded dispatcher)."""
    import uvicorn

    from neurocortex.app import create_app

    settings = load_settings(
        data_dir=data_dir, database_url=database_url, host=host, port=port, analyzers=analyzers,
        responders=responders, broker_url=broker_url, runners=runners, misp_modules=misp_modules,
    )  # fmt: skip
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


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
def catalog_list(analyzers: Analyzers = None, responders: Responders = None) -> None:
    """List the definitions the configured sources provide, and the ones skipped with their reason."""
    from neurocortex.services.catalog import CatalogLoader

    settings = load_settings(analyzers=analyzers, responders=responders)
    catalog = CatalogLoader(
        settings.analyzers, settings.responders, set(settings.runners) | {"process"}
    ).load()
    for kind, definitions in (("analyzers", catalog.analyzers), ("responders", catalog.responders)):
        table = Table(title=f"{kind} ({len(definitions)})")
        for column in ("id", "data types", "runs with"):
            table.add_column(column)
        for definition in sorted(definitions.values(), key=lambda d: d.id):
            table.add_row(definition.id, ", ".join(definition.data_types),
                          definition.command or definition.docker_image or "")  # fmt: skip
        console.print(table)
    for problem in catalog.problems:
        console.print(f"[yellow]skipped:[/yellow] {problem}")


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    app()
