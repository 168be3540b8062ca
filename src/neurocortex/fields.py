"""Request parameters as Cortex reads them ("Fields"): one flat map whatever the body's content type.

Typed getters follow elastic4play's lenient reads (`force=1` is true, `"3"` is a long, a bare JSON string
is not a list of strings...). api/fields.py fills it from JSON, forms, multipart and the query string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO


@dataclass
class UploadedFile:
    """A file part of a request, spooled to a temporary file until the service stores it."""

    name: str
    content_type: str
    file: BinaryIO


class Fields(dict[str, Any]):
    def get_string(self, key: str) -> str | None:
        value = self.get(key)
        if isinstance(value, str):
            return value
        return None

    def get_strings(self, key: str) -> list[str] | None:
        value = self.get(key)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        if isinstance(value, QueryValue):
            return [value]
        return None

    def get_long(self, key: str) -> int | None:
        value = self.get(key)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                return None
        return None

    def get_number(self, key: str) -> float | None:
        value = self.get(key)
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return value
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                return None
        return None

    def get_boolean(self, key: str) -> bool | None:
        value = self.get(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            try:
                return int(lowered) == 1
            except ValueError:
                return None
        return None

    def get_file(self, key: str) -> UploadedFile | None:
        value = self.get(key)
        return value if isinstance(value, UploadedFile) else None


class QueryValue(str):
    """A string that came from a form or the query string, so `getStrings` accepts it as a one-item list."""
