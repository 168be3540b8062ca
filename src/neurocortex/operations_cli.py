"""Operations commands of `neurocortex`: purge (retention) and analyze (bulk analysis against a server).
cli.py registers them; they live here to keep that module about serving and catalogs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from neurocortex.settings import Settings

console = Console(stderr=True)


def purge(
    organization: Annotated[
        str | None, typer.Option("--organization", "-o", help="Only this organization (default: every one)")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="Database URL")] = None,
) -> None:
    """Apply the organizations' retention policies now (e.g. from a daily timer): remove old jobs and
    reports, release old attachments and delete the files nobody needs any more."""
    given = {k: v for k, v in {"data_dir": data_dir, "database_url": database_url}.items() if v is not None}
    result = asyncio.run(_purge(Settings(**given), organization))
    print(orjson.dumps(result).decode())


async def _purge(settings: Settings, organization: str | None) -> dict:
    from neurocortex.app import build_services
    from neurocortex.auth.context import AuthContext
    from neurocortex.services import retention

    svc = await build_services(settings)
    try:
        ctx = AuthContext("cli", "cortex", frozenset({"superadmin"}), "cli")
        return (await retention.purge(svc, ctx, organization)).to_json()
    finally:
        await svc.db.close()
