"""Forms generated from a worker definition's configuration items, and their answers read back into the
configuration object the services validate (string, text, number, boolean, multi-valued, required)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from neurocortex.services.catalog import MISSING, ConfigurationItem

PREFIX = "config."
# definitions have no "secret" flag; these names hold credentials in the community catalog
SECRET_NAME = re.compile(r"key|secret|password|passwd|token|credential", re.IGNORECASE)


@dataclass(frozen=True)
class FormField:
    item: ConfigurationItem
    value: Any  # the current value (a list for multi items), None when unset
    secret: bool

    @property
    def input_name(self) -> str:
        return PREFIX + self.item.name

    @property
    def shown(self) -> str:
        """The text put in the input: multi values one per line; never a secret's value."""
        if self.secret or self.value is None:
            return ""
        if self.item.multi:
            return "\n".join(str(v) for v in self.value or [])
        return str(self.value)


def is_secret(item: ConfigurationItem) -> bool:
    return item.type in ("string", "text") and bool(SECRET_NAME.search(item.name))


def form_fields(items: tuple[ConfigurationItem, ...], values: dict[str, Any]) -> list[FormField]:
    fields = []
    for item in items:
        value = values.get(item.name, MISSING)
        if value is MISSING:
            value = None if item.default is MISSING else item.default
        fields.append(FormField(item, value, is_secret(item)))
    return fields


def _number(text: str) -> int | float | str:
    try:
        number = float(text)
    except ValueError:
        return text  # refused by the service's validation, with its message
    return int(number) if number.is_integer() else number


def _one(item: ConfigurationItem, text: str) -> Any:
    return _number(text) if item.type == "number" else text


def read_configuration(
    items: tuple[ConfigurationItem, ...], form: FormData, previous: dict[str, Any]
) -> dict[str, Any]:
    """The configuration the form describes; a secret left empty keeps its previous value."""
    configuration: dict[str, Any] = {}
    for item in items:
        name = PREFIX + item.name
        if item.type == "boolean":
            configuration[item.name] = form.get(name) == "true"
            continue
        text = str(form.get(name, ""))
        if item.multi:
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            configuration[item.name] = [_one(item, line) for line in lines]
        elif text.strip() == "":
            if is_secret(item) and previous.get(item.name) is not None:
                configuration[item.name] = previous[item.name]
            else:
                configuration[item.name] = None
        else:
            configuration[item.name] = _one(item, text.strip() if item.type != "text" else text)
    return configuration
