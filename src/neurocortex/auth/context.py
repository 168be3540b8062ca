"""Who is calling: the identity every service call carries."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("read", "analyze", "orgadmin", "superadmin")
INIT_USER = "init"


@dataclass(frozen=True)
class AuthContext:
    user_id: str
    organization: str
    roles: frozenset[str]
    method: str  # session | key | init | basic
    request_id: str = ""

    def has_any(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def is_init(self) -> bool:
        return self.method == "init"

    @property
    def is_superadmin(self) -> bool:
        return "superadmin" in self.roles

    @property
    def is_orgadmin(self) -> bool:
        return "orgadmin" in self.roles


def init_context(request_id: str = "") -> AuthContext:
    """The pseudo-user that exists while no user does, so the first superadmin can be created."""
    return AuthContext(INIT_USER, "cortex", frozenset(ROLES), "init", request_id)
