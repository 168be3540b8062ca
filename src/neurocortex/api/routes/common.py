"""Small helpers every router uses."""

from __future__ import annotations

from fastapi import Request

from neurocortex.api.auth import services
from neurocortex.api.fields import parse_fields
from neurocortex.fields import Fields


async def fields_of(request: Request) -> Fields:
    return await parse_fields(request, services(request).settings.max_upload_size)
