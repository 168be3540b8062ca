"""Organization administrators: the analyzer and responder catalogs (search, data-type filter), enabling,
editing and disabling workers with forms generated from their definitions, and base configurations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from neurocortex.errors import CortexError, NotFoundError
from neurocortex.services import workers
from neurocortex.services.catalog import WorkerDefinition
from neurocortex.services.scheduling import POLICIES, RATE_UNITS
from neurocortex.ui.config_form import form_fields, read_configuration
from neurocortex.ui.session import Viewer, signed_in
from neurocortex.ui.templating import page

router = APIRouter()
KINDS = {"analyzers": "analyzer", "responders": "responder"}
ADMIN = signed_in("orgadmin")


def _kind(kinds: str) -> str:
    if kinds not in KINDS:
        raise NotFoundError(f"no page /ui/admin/{kinds}")
    return KINDS[kinds]


def _definition(request: Request, kind: str, definition_id: str) -> WorkerDefinition:
    definition = request.app.state.services.catalog.get(kind, definition_id)
    if definition is None:
        raise NotFoundError(f"{kind} {definition_id} is not in the catalog")
    return definition


@router.get("/ui/admin/{kinds}")
async def catalog(kinds: str, request: Request, viewer: Viewer = Depends(ADMIN)) -> Response:
    kind = _kind(kinds)
    svc = request.app.state.services
    q, data_type = request.query_params.get("q", "").strip(), request.query_params.get("dataType", "")
    enabled, _ = await workers.search(svc, viewer.ctx, kind, {}, "all", ["+name"])
    by_definition: dict[str, list[dict[str, Any]]] = {}
    for worker in enabled:
        by_definition.setdefault(worker["workerDefinitionId"], []).append(worker)
    definitions = sorted(svc.catalog.of_type(kind).values(), key=lambda d: d.name.lower())
    all_types = sorted({t for d in definitions for t in d.data_types})
    shown = [
        d for d in definitions
        if (not q or q.lower() in f"{d.name} {d.description}".lower())
        and (not data_type or data_type in d.data_types)
    ]  # fmt: skip
    return page(request, "admin_catalog.html", viewer, kind=kind, kinds=kinds, definitions=shown,
                total=len(definitions), enabled=by_definition, q=q, data_type=data_type,
                data_types=all_types)  # fmt: skip


def _settings_fields(form: FormData, configuration: dict[str, Any], creating: bool) -> dict[str, Any]:
    """The worker's own attributes beside its configuration: name, rate limit, runner; the cache window
    and the timeout are configuration items that the worker's attributes follow."""
    fields: dict[str, Any] = {"configuration": configuration}
    if creating:
        fields["name"] = str(form.get("name", "")).strip()
    rate = str(form.get("rate", "")).strip()
    fields["rate"] = int(rate) if rate.isdigit() else (rate or None)
    fields["rateUnit"] = str(form.get("rateUnit", "")) or None if fields["rate"] is not None else None
    policy = str(form.get("rateLimitPolicy", ""))
    fields["rateLimitPolicy"] = policy if policy in POLICIES else None
    concurrency = str(form.get("maxConcurrency", "")).strip()
    fields["maxConcurrency"] = int(concurrency) if concurrency.isdigit() else (concurrency or None)
    runner = str(form.get("runner", ""))
    fields["runner"] = runner or None
    for key in ("jobCache", "jobTimeout"):
        if configuration.get(key) is not None:
            fields[key] = configuration[key]
    if creating:  # null means "unset" only to an update
        fields = {k: v for k, v in fields.items() if v is not None}
    return fields


async def _defaults(request: Request, viewer: Viewer, definition: WorkerDefinition) -> dict[str, Any]:
    """The organization's base configurations (global, then the definition's) pre-fill a new worker."""
    svc = request.app.state.services
    values = await workers.stored_base_config(svc, viewer.ctx, definition.type, "global")
    values |= await workers.stored_base_config(
        svc, viewer.ctx, definition.type, definition.base_config or definition.name
    )
    return values


def _worker_page(request: Request, viewer: Viewer, definition: WorkerDefinition, values: dict[str, Any],
                 worker: dict[str, Any] | None, problem: str | None = None, status: int = 200) -> Response:  # fmt: skip
    svc = request.app.state.services
    return page(request, "admin_worker.html", viewer, definition=definition, worker=worker, problem=problem,
                fields=form_fields(workers.accepted_items(svc, definition), values), status=status,
                kinds=f"{definition.type}s", rate_units=list(RATE_UNITS), policies=POLICIES,
                runners=sorted(svc.runners))  # fmt: skip


@router.get("/ui/admin/{kinds}/enable/{definition_id}")
async def enable_form(
    kinds: str, definition_id: str, request: Request, viewer: Viewer = Depends(ADMIN)
) -> Response:
    definition = _definition(request, _kind(kinds), definition_id)
    return _worker_page(request, viewer, definition, await _defaults(request, viewer, definition), None)


@router.post("/ui/admin/{kinds}/enable/{definition_id}")
async def enable(
    kinds: str, definition_id: str, request: Request, viewer: Viewer = Depends(ADMIN)
) -> Response:
    svc = request.app.state.services
    definition = _definition(request, _kind(kinds), definition_id)
    form = await request.form()
    items = workers.accepted_items(svc, definition)
    configuration = read_configuration(items, form, await _defaults(request, viewer, definition))
    try:
        await workers.enable(svc, viewer.ctx, definition.type, definition.id,
                             _settings_fields(form, configuration, creating=True))  # fmt: skip
    except CortexError as error:
        return _worker_page(request, viewer, definition, configuration, None, error.message, 400)
    return RedirectResponse(f"/ui/admin/{kinds}?enabled={definition.id}", status_code=303)


async def _worker(
    request: Request, viewer: Viewer, kind: str, worker_id: str
) -> tuple[dict, WorkerDefinition]:
    worker = await workers.get(request.app.state.services, viewer.ctx, worker_id, kind)
    return worker, _definition(request, kind, worker["workerDefinitionId"])


@router.get("/ui/admin/{kinds}/worker/{worker_id}")
async def edit_form(
    kinds: str, worker_id: str, request: Request, viewer: Viewer = Depends(ADMIN)
) -> Response:
    worker, definition = await _worker(request, viewer, _kind(kinds), worker_id)
    values = workers.decrypt_configuration(request.app.state.services, worker)
    return _worker_page(request, viewer, definition, values, worker)


@router.post("/ui/admin/{kinds}/worker/{worker_id}")
async def edit(kinds: str, worker_id: str, request: Request, viewer: Viewer = Depends(ADMIN)) -> Response:
    svc = request.app.state.services
    worker, definition = await _worker(request, viewer, _kind(kinds), worker_id)
    form = await request.form()
    previous = workers.decrypt_configuration(svc, worker)
    configuration = read_configuration(workers.accepted_items(svc, definition), form, previous)
    try:
        await workers.update_worker(svc, viewer.ctx, definition.type, worker_id,
                                    _settings_fields(form, configuration, creating=False))  # fmt: skip
    except CortexError as error:
        return _worker_page(request, viewer, definition, configuration, worker, error.message, 400)
    return RedirectResponse(f"/ui/admin/{kinds}?updated={worker['name']}", status_code=303)


@router.post("/ui/admin/{kinds}/worker/{worker_id}/disable")
async def disable(kinds: str, worker_id: str, request: Request, viewer: Viewer = Depends(ADMIN)) -> Response:
    worker = await workers.get(request.app.state.services, viewer.ctx, worker_id, _kind(kinds))
    await workers.remove(request.app.state.services, viewer.ctx, worker["type"], worker_id)
    return RedirectResponse(f"/ui/admin/{kinds}?disabled={worker['name']}", status_code=303)


@router.get("/ui/admin/{kinds}/configs")
async def base_configs(kinds: str, request: Request, viewer: Viewer = Depends(ADMIN)) -> Response:
    kind = _kind(kinds)
    svc = request.app.state.services
    configs = []
    for name, (names, items) in workers.base_configs(svc, kind).items():
        stored = await workers.stored_base_config(svc, viewer.ctx, kind, name)
        configs.append((name, names, form_fields(items, stored)))
    return page(request, "admin_configs.html", viewer, kind=kind, kinds=kinds, configs=configs,
                saved=request.query_params.get("saved"))  # fmt: skip


@router.post("/ui/admin/{kinds}/configs/{name}")
async def save_base_config(
    kinds: str, name: str, request: Request, viewer: Viewer = Depends(ADMIN)
) -> Response:
    kind = _kind(kinds)
    svc = request.app.state.services
    configs = workers.base_configs(svc, kind)
    if name not in configs:
        raise NotFoundError(f"no base configuration {name}")
    previous = await workers.stored_base_config(svc, viewer.ctx, kind, name)
    configuration = read_configuration(configs[name][1], await request.form(), previous)
    await workers.save_base_config(svc, viewer.ctx, kind, name, configuration)
    return RedirectResponse(f"/ui/admin/{kinds}/configs?saved={name}", status_code=303)
