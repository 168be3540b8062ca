"""Domain errors raised by services; api/errors.py maps each to Cortex's HTTP status and JSON body."""

from __future__ import annotations

from typing import Any


class CortexError(Exception):
    status = 500
    type = "InternalError"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message}


class AuthenticationError(CortexError):
    status = 401
    type = "AuthenticationError"

    def __init__(self, message: str = "Authentication failure") -> None:
        super().__init__(message)


class AuthorizationError(CortexError):
    status = 403
    type = "AuthorizationError"

    def __init__(self, message: str = "Insufficient rights to perform this action") -> None:
        super().__init__(message)


class NotFoundError(CortexError):
    status = 404
    type = "NotFoundError"


class BadRequestError(CortexError):
    status = 400
    type = "BadRequest"


class SearchError(CortexError):
    status = 400
    type = "SearchError"


class ConflictError(CortexError):
    status = 400
    type = "ConflictError"

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "object": {}}


class PayloadTooLarge(CortexError):
    status = 413
    type = "PayloadTooLarge"


class RateLimitExceeded(CortexError):
    status = 429
    type = "RateLimitExceeded"


class AttributeError_(CortexError):
    """One attribute problem; several are grouped in an AttributeCheckingError."""

    status = 400

    def __init__(self, kind: str, name: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.type = kind
        self.name = name
        self.extra = extra

    def item(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "message": self.message, **self.extra}

    def body(self) -> dict[str, Any]:
        return self.item()


def missing_attribute(name: str) -> AttributeError_:
    return AttributeError_("MissingAttributeError", name, f"Attribute {name} is missing")


def invalid_format(name: str, value: Any, fmt: str) -> AttributeError_:
    return AttributeError_(
        "InvalidFormatAttributeError",
        name,
        f"Attribute {name} has invalid format: {fmt} expected",
        format=fmt,
        value=value,
    )


def unknown_attribute(name: str, value: Any = None) -> AttributeError_:
    return AttributeError_("UnknownAttributeError", name, f"Unknown attribute {name}", value=value)


def read_only_attribute(name: str) -> AttributeError_:
    return AttributeError_("UpdateReadOnlyAttributeError", name, f"Attribute {name} is read-only")


class AttributeCheckingError(CortexError):
    status = 400
    type = "AttributeCheckingError"

    def __init__(self, table: str, errors: list[AttributeError_]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.table = table
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return {
            "tableName": self.table,
            "type": self.type,
            "message": self.message,
            "errors": [e.item() for e in self.errors],
        }


def raise_attribute_errors(table: str, errors: list[AttributeError_]) -> None:
    if errors:
        raise AttributeCheckingError(table, errors)
