"""Secret configuration items: write-only through the API, and kept out of failed jobs and error messages.

Items of type `password` (beyond Cortex's types) are write-only: on read their value is replaced by MASK,
and an update that sends MASK back (the UI returns the whole configuration) keeps the stored value. Other
items keep Cortex's behaviour (an orgadmin reads them back), but those whose name contains `key`,
`password` or `secret` — how the community analyzers declare their API keys, and what cortexutils redacts —
are, with the password items, removed from failed jobs' input and from the worker output kept as their
error message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MASK = "********"
SECRET_PHRASES = ("key", "password", "secret")
REMOVED = "REMOVED"
SHORTEST_SCRUBBED = 4  # shorter values (a flag, "1") would blank out random text of an error message


def looks_secret(name: str) -> bool:
    return any(phrase in name.lower() for phrase in SECRET_PHRASES)


def write_only_names(items: Iterable[Any]) -> set[str]:
    """Names of the `password` items among `items` (ConfigurationItem)."""
    return {item.name for item in items if item.type == "password"}


def redacted_names(items: Iterable[Any], configuration: dict[str, Any]) -> set[str]:
    """Names of the values never to show in a failed job or an error message."""
    return write_only_names(items) | {key for key in configuration if looks_secret(key)}


def mask(configuration: dict[str, Any], secrets: set[str]) -> dict[str, Any]:
    masked = dict(configuration)
    for name in secrets & masked.keys():
        value = masked[name]
        if isinstance(value, list):
            masked[name] = [MASK if v not in (None, "") else v for v in value]
        elif value not in (None, ""):
            masked[name] = MASK
    return masked


def keep_masked(given: Any, stored: dict[str, Any], secrets: set[str]) -> Any:
    """`given` with every MASK of a secret item replaced by the stored value it stands for."""
    if not isinstance(given, dict):
        return given
    kept = dict(given)
    for name in secrets & kept.keys():
        value, previous = kept[name], stored.get(name)
        if value == MASK:
            kept[name] = previous
        elif isinstance(value, list) and MASK in value:
            old = previous if isinstance(previous, list) else []
            kept[name] = [old[i] if v == MASK and i < len(old) else v for i, v in enumerate(value)]
    return kept


def secret_values(configuration: dict[str, Any], secrets: set[str]) -> list[str]:
    values: list[str] = []
    for name in secrets & configuration.keys():
        value = configuration[name]
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and len(v) >= SHORTEST_SCRUBBED:
                values.append(v)
    return sorted(set(values), key=len, reverse=True)  # longest first: one secret may contain another


def scrub(text: str | None, values: list[str]) -> str | None:
    """The text with every secret value replaced, for what a worker printed or echoed."""
    if not text:
        return text
    for value in values:
        text = text.replace(value, REMOVED)
    return text


def redact_input(document: dict[str, Any], secrets: set[str]) -> dict[str, Any]:
    """A copy of an input.json document with the secret config values replaced."""
    config = document.get("config")
    if not isinstance(config, dict):
        return document
    names = secrets | {key for key in config if looks_secret(key)}
    return document | {"config": {k: (REMOVED if k in names else v) for k, v in config.items()}}
