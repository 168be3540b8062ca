"""Operations commands of `neurocortex`: purge (retention) and analyze (bulk analysis against a server).
cli.py registers them; they live here to keep that module about serving and catalogs."""

from __future__ import annotations

import asyncio
import csv
import sys
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
    """Apply the organizations' retention policies now (e.g. from a daily timer).

    Removes old jobs and reports, releases old attachments and deletes the files nobody needs any more;
    prints the counts as JSON."""
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


# -- analyze ---------------------------------------------------------------------------------------------

SUBMIT_CHUNK = 200
VERDICT_CHUNK = 500
STATUS_CHUNK = 500
FINISHED = ("Success", "Failure", "Deleted", "NotFound")


def read_observables(lines: list[str], data_type: str | None) -> list[dict[str, str]]:
    """One observable a line: `{"dataType": ..., "data": ...}`, `<dataType> <data>`, or with --data-type
    the data alone. Blank lines and lines starting with # are skipped."""
    found = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            item = orjson.loads(line)
            found.append({"dataType": item["dataType"], "data": item["data"]})
        elif data_type:
            found.append({"dataType": data_type, "data": line})
        else:
            parts = line.split(None, 1)
            if len(parts) != 2:
                raise typer.BadParameter(f"line {number}: expected '<dataType> <data>' (or use --data-type)")
            found.append({"dataType": parts[0], "data": parts[1]})
    return found


def analyze(
    server: Annotated[str, typer.Option("--server", envvar="NEUROCORTEX_SERVER", help="Server URL")],
    api_key: Annotated[str, typer.Option("--api-key", envvar="NEUROCORTEX_API_KEY", help="API key")],
    source: Annotated[str, typer.Argument(help="File of observables, or - for stdin")] = "-",
    analyzer: Annotated[
        list[str] | None,
        typer.Option("--analyzer", "-a", help="Analyzer id or name (repeatable; default all)"),
    ] = None,
    data_type: Annotated[
        str | None, typer.Option("--data-type", "-t", help="Data type of every line")
    ] = None,
    output_format: Annotated[str, typer.Option("--format", "-f", help="csv or json")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output file (default stdout)")
    ] = None,
    tlp: Annotated[int, typer.Option("--tlp", min=0, max=3)] = 2,
    pap: Annotated[int, typer.Option("--pap", min=0, max=3)] = 2,
    force: Annotated[bool, typer.Option("--force", help="Do not reuse cached reports")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the jobs")] = 3600,
) -> None:
    """Analyze many observables with many analyzers on a server, wait, and write one verdict each."""
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if output_format not in ("csv", "json"):
        raise typer.BadParameter("--format is csv or json")
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    observables = read_observables(text.splitlines(), data_type)
    client = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {api_key}"}, timeout=120)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    submitted: list[dict] = []
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("submitting", total=len(observables))
        for start in range(0, len(observables), SUBMIT_CHUNK):
            chunk = observables[start : start + SUBMIT_CHUNK]
            body = {"observables": chunk, "tlp": tlp, "pap": pap, "force": force}
            if analyzer:
                body["analyzers"] = analyzer
            submitted += _checked(client.post("/api/job/_bulk", json=body))
            progress.advance(task, len(chunk))
        pending = [e["jobId"] for e in submitted if "jobId" in e]
        statuses = _wait(client, pending, timeout, progress)
    verdicts = []
    for start in range(0, len(observables), VERDICT_CHUNK):
        chunk = observables[start : start + VERDICT_CHUNK]
        verdicts += _checked(client.post("/api/observable/_verdict", json={"observables": chunk}))
    _write(verdicts, submitted, statuses, output_format, output)
    errors = [e for e in submitted if "error" in e]
    failed = sum(1 for s in statuses.values() if s != "Success")
    console.print(
        f"{len(verdicts)} verdicts, {len(pending)} jobs ({failed} not successful), {len(errors)} refused"
    )
    if errors or failed:  # the verdicts are written all the same
        raise typer.Exit(1)


def _checked(response) -> list | dict:
    if response.status_code != 200:
        console.print(f"[red]{response.request.method} {response.request.url.path}: {response.status_code} "
                      f"{response.text}[/red]")  # fmt: skip
        raise typer.Exit(2)
    return response.json()


def _wait(client, job_ids: list[str], timeout: float, progress) -> dict[str, str]:
    """Poll the jobs' statuses until every one has ended (or the time is up)."""
    import time

    statuses: dict[str, str] = {}
    task = progress.add_task("analyzing", total=len(job_ids))
    deadline = time.monotonic() + timeout
    waiting = list(job_ids)
    while waiting and time.monotonic() < deadline:
        still = []
        for start in range(0, len(waiting), STATUS_CHUNK):
            chunk = waiting[start : start + STATUS_CHUNK]
            found = _checked(client.post("/api/job/status", json={"jobIds": chunk}))
            for job_id in chunk:
                if found.get(job_id) in FINISHED:
                    statuses[job_id] = found[job_id]
                else:
                    still.append(job_id)
        progress.update(task, completed=len(job_ids) - len(still))
        waiting = still
        if waiting:
            time.sleep(0.5)
    for job_id in waiting:
        statuses[job_id] = "Timeout"
    return statuses


def _write(
    verdicts: list[dict], submitted: list[dict], statuses: dict[str, str], fmt: str, output: Path | None
):
    jobs: dict[tuple[str, str], list[dict]] = {}
    for entry in submitted:
        job = {"workerName": entry["workerName"], "jobId": entry.get("jobId"),
               "status": statuses.get(entry.get("jobId"), "Refused"), "error": entry.get("error")}  # fmt: skip
        jobs.setdefault((entry["dataType"], entry["data"]), []).append(job)
    rows = [v | {"jobs": jobs.get((v["dataType"], v["data"]), [])} for v in verdicts]
    handle = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115 - stdout stays open
    try:
        if fmt == "json":
            handle.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
            return
        writer = csv.writer(handle)
        writer.writerow(["dataType", "data", "verdict", "analyzers", "failed", "reasons"])
        for row in rows:
            reasons = "; ".join(f"{r['workerName']}: {r['namespace']}:{r['predicate']}={r['value']}"
                                for r in row["reasons"])  # fmt: skip
            failed = sum(1 for j in row["jobs"] if j["status"] != "Success")
            writer.writerow([row["dataType"], row["data"], row["verdict"], row["analyzers"], failed, reasons])
    finally:
        if output:
            handle.close()
