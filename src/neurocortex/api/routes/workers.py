"""Analyzers and responders: enabled workers, definitions, base configurations (§3.4, §3.5).

The two kinds share every route shape, so one function builds both routers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from neurocortex.api import render
from neurocortex.api.auth import requires, services
from neurocortex.api.render import json_response, list_response, no_content
from neurocortex.api.routes.common import fields_of
from neurocortex.auth.context import AuthContext
from neurocortex.errors import NotFoundError, missing_attribute, raise_attribute_errors
from neurocortex.services import catalog_refresh, scheduling, workers
from neurocortex.services.base import Services
from neurocortex.services.config_secrets import mask, write_only_names

ADMINS = ("orgadmin", "superadmin")


def _render(svc: Services, ctx: AuthContext, row: dict, with_configuration: bool = True) -> dict:
    configuration = workers.masked_configuration(svc, row) if with_configuration and ctx.is_orgadmin else None
    return render.worker(row, configuration)


def build(kind: str) -> APIRouter:
    router = APIRouter()

    @router.get(f"/api/{kind}")
    @router.get(f"/api/{kind}/_search")
    @router.post(f"/api/{kind}/_search")
    @router.get(f"/api/organization/{kind}")
    @router.get(f"/api/organization/{kind}/_search")
    @router.post(f"/api/organization/{kind}/_search")
    async def search(request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
        svc = services(request)
        fields = await fields_of(request)
        rows, total = await workers.search(
            svc, ctx, kind, fields.get("query", {}), fields.get_string("range"), fields.get_strings("sort")
        )
        return list_response([_render(svc, ctx, r) for r in rows], total)

    @router.get(f"/api/{kind}/type/{{data_type}}")
    async def by_type(
        data_type: str, request: Request, ctx: AuthContext = Depends(requires("read"))
    ) -> Response:
        svc = services(request)
        rows = await workers.by_data_type(svc, ctx, kind, data_type)
        return list_response([_render(svc, ctx, r, with_configuration=False) for r in rows], len(rows))

    @router.get(f"/api/{kind}definition")
    async def definitions(request: Request, _ctx: AuthContext = Depends(requires(*ADMINS))) -> Response:
        found = sorted(services(request).catalog.of_type(kind).values(), key=lambda d: d.id)
        return list_response([render.definition(d) for d in found], len(found))

    @router.post(f"/api/{kind}definition/scan")
    async def scan(request: Request, _ctx: AuthContext = Depends(requires(*ADMINS))) -> Response:
        request.app.state.background(catalog_refresh.refresh(services(request)))
        return no_content()

    @router.get(f"/api/{kind}config")
    async def base_configs(request: Request, ctx: AuthContext = Depends(requires("orgadmin"))) -> Response:
        svc = services(request)
        out = []
        for name, (names, items) in workers.base_configs(svc, kind).items():
            stored = await workers.stored_base_config(svc, ctx, kind, name)
            out.append(render.base_config(name, names, items, mask(stored, write_only_names(items))))
        return json_response(out)

    @router.get(f"/api/{kind}config/{{name}}")
    async def base_config(
        name: str, request: Request, ctx: AuthContext = Depends(requires("orgadmin"))
    ) -> Response:
        svc = services(request)
        configs = workers.base_configs(svc, kind)
        if name not in configs:
            raise NotFoundError(f"config {name} not found")
        stored = await workers.stored_base_config(svc, ctx, kind, name)
        names, items = configs[name]
        return json_response(render.base_config(name, names, items, mask(stored, write_only_names(items))))

    @router.patch(f"/api/{kind}config/{{name}}")
    async def save_base_config(
        name: str, request: Request, ctx: AuthContext = Depends(requires("orgadmin"))
    ) -> Response:
        svc = services(request)
        fields = await fields_of(request)
        if "config" not in fields:
            raise_attribute_errors("workerConfig", [missing_attribute("config")])
        saved = await workers.save_base_config(svc, ctx, kind, name, fields["config"])
        names, items = workers.base_configs(svc, kind)[name]
        return json_response(render.base_config(name, names, items, mask(saved, write_only_names(items))))

    @router.post(f"/api/organization/{kind}/{{definition_id}}")
    async def enable(
        definition_id: str, request: Request, ctx: AuthContext = Depends(requires("orgadmin"))
    ) -> Response:
        svc = services(request)
        row = await workers.enable(svc, ctx, kind, definition_id, dict(await fields_of(request)))
        if kind == "responder":
            definition = svc.catalog.get(kind, definition_id)
            return json_response(
                render.created_responder(row, workers.advertised_limits(svc, row), definition), 201
            )
        return json_response(render.worker(row), 201)

    @router.get(f"/api/{kind}/_status")
    async def queue_status(request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
        """Beyond Cortex: per worker of the caller's organization, the jobs Waiting and InProgress, and what
        is left of each rate limit and quota (services/scheduling.py)."""
        return json_response(await scheduling.queue_status(services(request), ctx.organization, kind))

    @router.get(f"/api/{kind}/{{worker_id}}")
    async def get(worker_id: str, request: Request, ctx: AuthContext = Depends(requires("read"))) -> Response:
        svc = services(request)
        return json_response(_render(svc, ctx, await workers.get(svc, ctx, worker_id, kind)))

    @router.patch(f"/api/{kind}/{{worker_id}}")
    async def update(
        worker_id: str, request: Request, ctx: AuthContext = Depends(requires("orgadmin"))
    ) -> Response:
        svc = services(request)
        row = await workers.update_worker(svc, ctx, kind, worker_id, dict(await fields_of(request)))
        return json_response(render.worker(row, workers.masked_configuration(svc, row)))

    @router.delete(f"/api/{kind}/{{worker_id}}")
    async def remove(
        worker_id: str, request: Request, ctx: AuthContext = Depends(requires(*ADMINS))
    ) -> Response:
        await workers.remove(services(request), ctx, kind, worker_id)
        return no_content()

    return router


analyzers = build("analyzer")
responders = build("responder")
