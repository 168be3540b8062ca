"""Users, passwords and API keys, with Cortex's rules on who may do what to whom (§3.2)."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import orjson
from sqlalchemy import and_, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from neurocortex.auth.context import ROLES, AuthContext
from neurocortex.auth.passwords import hash_password, needs_rehash, verify_password
from neurocortex.auth.policy import check_password
from neurocortex.errors import (
    AuthorizationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    invalid_format,
    missing_attribute,
    raise_attribute_errors,
    read_only_attribute,
    unknown_attribute,
)
from neurocortex.ids import now_ms
from neurocortex.services import audit, organizations
from neurocortex.services.base import Services, as_dict
from neurocortex.services.cache import MISSING
from neurocortex.store import tables as t
from neurocortex.store.search import search as store_search
from neurocortex.store.search_models import USER

CREATE_FIELDS = ("login", "name", "roles", "organization", "password", "status", "avatar", "preferences")
UPDATE_FIELDS = ("name", "roles", "status", "organization", "avatar", "preferences")
READ_ONLY = (
    "login",
    "id",
    "_id",
    "createdAt",
    "createdBy",
    "updatedAt",
    "updatedBy",
    "hasKey",
    "hasPassword",
)
STATUSES = ("Ok", "Locked")
MIN_KEY_LENGTH = 32


def new_api_key() -> str:
    return base64.b64encode(secrets.token_bytes(24)).decode()


def _roles(value: Any, errors: list) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(r, str) and r.lower() in ROLES for r in value):
        errors.append(invalid_format("roles", value, "array of read|analyze|orgadmin|superadmin"))
        return None
    return list(dict.fromkeys(r.lower() for r in value))


def _preferences(value: Any, errors: list) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    errors.append(invalid_format("preferences", value, "JSON object"))
    return None


async def get(svc: Services, user_id: str) -> dict[str, Any] | None:
    async with svc.db.read() as conn:
        return as_dict((await conn.execute(select(t.user).where(t.user.c.id == user_id))).first())


async def any_user_exists(svc: Services) -> bool:
    async with svc.db.read() as conn:
        return bool((await conn.execute(select(exists().select_from(t.user)))).scalar())


async def active_user(svc: Services, user_id: str, cached: bool = True) -> dict[str, Any] | None:
    """The user if it may act: status Ok in an Active organization."""
    return await _active(svc, t.user.c.id == user_id, ("login", user_id) if cached else None)


async def user_for_key(svc: Services, api_key: str) -> dict[str, Any] | None:
    key_hash = svc.box.lookup_hash(api_key)
    user = await _active(svc, t.user.c.key_hash == key_hash, ("key", key_hash))
    if user is None and svc.box.has_previous:
        # a key stored with the previous secret, while a rotation is not finished everywhere
        hashes = svc.box.previous_lookup_hashes(api_key)
        user = await _active(svc, t.user.c.key_hash.in_(hashes), None)
    return user


async def _active(svc: Services, condition: Any, cache_key: tuple[str, str] | None) -> dict[str, Any] | None:
    if cache_key is not None:
        user = svc.users_cache.get(cache_key)
        if user is not MISSING:
            return user
    statement = (
        select(t.user)
        .join(t.organization, t.organization.c.id == t.user.c.organization)
        .where(condition, t.user.c.status == "Ok", t.organization.c.status == "Active")
    )
    async with svc.db.read() as conn:
        user = as_dict((await conn.execute(statement)).first())
    if user is not None and cache_key is not None:
        svc.users_cache.put(cache_key, user)  # misses are not kept: a wrong key must not fill memory
    return user


async def user_for_password(svc: Services, login: str, password: str) -> dict[str, Any] | None:
    user = await active_user(svc, login, cached=False)
    if user is None or not verify_password(user["password"], password):
        return None
    if needs_rehash(user["password"]):
        async with svc.db.write() as conn:
            await conn.execute(
                update(t.user).where(t.user.c.id == login).values(password=hash_password(password))
            )
    return user


async def record_login(
    svc: Services, login: str, user: dict[str, Any] | None, address: str | None, method: str = "local"
) -> None:
    """A login into the audit log, accepted (`user`) or refused; a refused one for an existing account
    belongs to its organization, one for an unknown name to the superadmins only."""
    known = user or await get(svc, login)
    await audit.record(
        svc,
        audit.entry(
            login,
            known["organization"] if known else None,
            "login",
            "user",
            login if known else None,
            {"method": method},
            "success" if user else "failure",
            address,
        ),  # fmt: skip
    )


async def get_visible(svc: Services, ctx: AuthContext, user_id: str) -> dict[str, Any]:
    user = await get(svc, user_id)
    if user is None or not (ctx.is_superadmin or user["organization"] == ctx.organization):
        raise NotFoundError(f"user {user_id} not found")
    return user


async def create(svc: Services, ctx: AuthContext, fields: dict[str, Any]) -> dict[str, Any]:
    errors = [unknown_attribute(k, v) for k, v in fields.items() if k not in CREATE_FIELDS]
    login, name = fields.get("login"), fields.get("name")
    if not isinstance(login, str) or not login.strip():
        errors.append(
            missing_attribute("login") if login is None else invalid_format("login", login, "string")
        )
    if not isinstance(name, str):
        errors.append(missing_attribute("name") if name is None else invalid_format("name", name, "string"))
    roles = _roles(fields.get("roles", []), errors)
    status = fields.get("status", "Ok")
    if status not in STATUSES:
        errors.append(invalid_format("status", status, "Ok|Locked"))
    password = fields.get("password")
    if password is not None and not isinstance(password, str):
        errors.append(invalid_format("password", password, "string"))
    preferences = _preferences(fields.get("preferences", "{}"), errors)
    avatar = fields.get("avatar")
    if avatar is not None and not isinstance(avatar, str):
        errors.append(invalid_format("avatar", avatar, "string"))
    target_org = fields.get("organization", ctx.organization)
    if not isinstance(target_org, str):
        errors.append(invalid_format("organization", target_org, "string"))
    raise_attribute_errors("user", errors)
    if password:
        check_password(svc.settings, password)

    org = await organizations.get(svc, target_org)
    allowed = ctx.is_superadmin or (target_org == ctx.organization and "superadmin" not in roles)
    if org is None or org["status"] != "Active" or not allowed:
        raise AuthorizationError("You are not authorized to perform this action")
    _check_cortex_roles(target_org, roles)
    row = {
        "id": login,
        "name": name,
        "roles": roles,
        "status": status,
        "organization": target_org,
        "avatar": avatar,
        "preferences": preferences,
        "password": hash_password(password) if password else None,
        "createdBy": ctx.user_id,
        "createdAt": now_ms(),
    }
    about = {"name": name, "roles": roles, "status": status, "hasPassword": bool(password)}
    try:
        async with svc.db.write() as conn:
            await conn.execute(insert(t.user).values(row))
            await audit.write(conn, audit.by(ctx, target_org, "user.create", "user", login, about))
    except IntegrityError:
        raise ConflictError(f"user {login} already exists") from None
    svc.publish(ctx.user_id, ctx.request_id, "user", login, "Creation", target_org, public(row))
    return row


async def provision(
    svc: Services, login: str, name: str, organization: str, roles: list[str], created_by: str
) -> dict[str, Any] | None:
    """Create a user vouched for by a directory or an identity provider (auto-creation), without a local
    password; None if the organization cannot take them. A concurrent creation of the same login wins."""
    org = await organizations.get(svc, organization)
    valid_roles = [r for r in dict.fromkeys(r.lower() for r in roles) if r in ROLES]
    if org is None or org["status"] != "Active":
        return None
    try:
        _check_cortex_roles(organization, valid_roles)
    except BadRequestError:
        return None
    row = {
        "id": login,
        "name": name,
        "roles": valid_roles,
        "status": "Ok",
        "organization": organization,
        "avatar": None,
        "preferences": "{}",
        "password": None,
        "createdBy": created_by,
        "createdAt": now_ms(),
    }
    try:
        async with svc.db.write() as conn:
            await conn.execute(insert(t.user).values(row))
    except IntegrityError:
        return await get(svc, login)
    svc.publish(created_by, "", "user", login, "Creation", organization, public(row))
    return row


async def apply_identity(
    svc: Services, login: str, name: str, organization: str | None, roles: list[str], updated_by: str
) -> None:
    """Bring a user in line with what an identity provider says (auto-update); what the rules refuse (an
    organization that is not Active, superadmin outside `cortex`) is left as it was."""
    changes: dict[str, Any] = {"name": name}
    valid_roles = [r for r in dict.fromkeys(r.lower() for r in roles) if r in ROLES]
    target = await get(svc, login)
    if target is None:
        return
    org_id = organization or target["organization"]
    org = await organizations.get(svc, org_id)
    if org is not None and org["status"] == "Active":
        try:
            _check_cortex_roles(org_id, valid_roles or target["roles"])
        except BadRequestError:
            pass
        else:
            changes["organization"] = org_id
            if valid_roles:
                changes["roles"] = valid_roles
    if all(target.get(k) == v for k, v in changes.items()):
        return
    async with svc.db.write() as conn:
        await conn.execute(
            update(t.user)
            .where(t.user.c.id == login)
            .values(changes | {"updatedBy": updated_by, "updatedAt": now_ms()})
        )
    svc.users_cache.clear()
    svc.publish(updated_by, "", "user", login, "Update", org_id, public(target | changes), changes)


def _check_cortex_roles(org: str, roles: list[str] | None) -> None:
    if roles is None:
        return
    if org == organizations.CORTEX_ORG and roles != ["superadmin"]:
        raise BadRequestError('The organization "cortex" can contain only superadmin users')
    if org != organizations.CORTEX_ORG and "superadmin" in roles:
        raise BadRequestError('The organization "cortex" alone can contain superadmin users')


async def update_user(
    svc: Services, ctx: AuthContext, user_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    if "password" in fields:
        raise AuthorizationError(
            "You must use dedicated API (setPassword, changePassword) to update password"
        )
    if "key" in fields:
        raise AuthorizationError("You must use dedicated API (renewKey, removeKey) to update key")
    if user_id == ctx.user_id:
        for attribute, label in (("organization", "organization"), ("roles", "role"), ("status", "status")):
            if attribute in fields:
                raise AuthorizationError(f"You can't change your {label}")
    target = await get(svc, user_id)
    if ctx.user_id != user_id:
        if ctx.is_superadmin:
            if target is None:
                raise NotFoundError(f"user {user_id} not found")
        elif ctx.is_orgadmin:
            if target is None or target["organization"] != ctx.organization:
                raise NotFoundError(f"user {user_id} not found")
            if "superadmin" in [str(r).lower() for r in fields.get("roles") or []]:
                raise AuthorizationError("You can't grant superadmin role")
            if fields.get("organization", ctx.organization) != ctx.organization:
                raise AuthorizationError("You can't move a user to another organization")
        else:
            raise AuthorizationError("You are not permitted to change user settings")
    if target is None:
        raise NotFoundError(f"user {user_id} not found")

    errors = [read_only_attribute(k) for k in fields if k in READ_ONLY]
    errors += [
        unknown_attribute(k, v) for k, v in fields.items() if k not in UPDATE_FIELDS and k not in READ_ONLY
    ]
    changes: dict[str, Any] = {}
    if "name" in fields:
        if isinstance(fields["name"], str):
            changes["name"] = fields["name"]
        else:
            errors.append(invalid_format("name", fields["name"], "string"))
    if "roles" in fields:
        changes["roles"] = _roles(fields["roles"], errors)
    if "status" in fields:
        if fields["status"] in STATUSES:
            changes["status"] = fields["status"]
        else:
            errors.append(invalid_format("status", fields["status"], "Ok|Locked"))
    if "avatar" in fields:
        changes["avatar"] = fields["avatar"] if isinstance(fields["avatar"], str) else None
    if "preferences" in fields:
        changes["preferences"] = _preferences(fields["preferences"], errors)
    if "organization" in fields:
        if isinstance(fields["organization"], str):
            changes["organization"] = fields["organization"]
        else:
            errors.append(invalid_format("organization", fields["organization"], "string"))
    raise_attribute_errors("user", errors)

    if ctx.is_superadmin and ctx.user_id != user_id:
        org_id = changes.get("organization", target["organization"])
        org = await organizations.get(svc, org_id)
        if org is None or org["status"] != "Active":
            raise BadRequestError(f"Organization {org_id} is not active")
        if "roles" in changes or "organization" in changes:
            _check_cortex_roles(org_id, changes.get("roles", target["roles"]))
    return await _apply(svc, ctx, user_id, changes, "user.update")


async def _apply(
    svc: Services, ctx: AuthContext, user_id: str, changes: dict[str, Any], action: str
) -> dict[str, Any]:
    """The change, and its audit entry (`action`; for user.update, what changed, secrets left out)."""
    async with svc.db.write() as conn:
        if changes:
            details = {"changes": changes} if action == "user.update" else {}
            changes = changes | {"updatedBy": ctx.user_id, "updatedAt": now_ms()}
            await conn.execute(update(t.user).where(t.user.c.id == user_id).values(changes))
        user = as_dict((await conn.execute(select(t.user).where(t.user.c.id == user_id))).first())
        if changes and user is not None:
            await audit.write(conn, audit.by(ctx, user["organization"], action, "user", user_id, details))
    svc.users_cache.clear()
    if user is None:
        raise NotFoundError(f"user {user_id} not found")
    audited = {k: v for k, v in changes.items() if k not in ("password", "key_hash", "key_encrypted")}
    svc.publish(
        ctx.user_id, ctx.request_id, "user", user_id, "Update", user["organization"], public(user), audited
    )
    return user


async def lock(svc: Services, ctx: AuthContext, user_id: str) -> None:
    """Cortex cannot delete users (its DELETE answers 500); we lock them, which is what was meant."""
    await _admin_target(svc, ctx, user_id)
    if user_id == ctx.user_id:
        raise BadRequestError("You cannot disable your own account")
    await _apply(svc, ctx, user_id, {"status": "Locked"}, "user.lock")


async def _admin_target(svc: Services, ctx: AuthContext, user_id: str) -> dict[str, Any]:
    """A user an orgadmin (same organization) or superadmin (any) may administer."""
    user = await get(svc, user_id)
    if user is None or not (
        ctx.is_superadmin or (ctx.is_orgadmin and user["organization"] == ctx.organization)
    ):
        raise NotFoundError(f"user {user_id} not found")
    return user


async def self_or_admin(svc: Services, ctx: AuthContext, user_id: str) -> dict[str, Any]:
    user = await get(svc, user_id)
    if user is None or not (ctx.is_superadmin or user["organization"] == ctx.organization):
        raise NotFoundError(f"user {user_id} not found")
    if user_id != ctx.user_id and not ctx.is_superadmin and not ctx.is_orgadmin:
        raise AuthorizationError("Insufficient rights to perform this action")
    return user


async def set_password(svc: Services, ctx: AuthContext, user_id: str, password: Any) -> None:
    if not isinstance(password, str) or not password:
        raise_attribute_errors("user", [missing_attribute("password")])
    await _admin_target(svc, ctx, user_id)
    check_password(svc.settings, password)
    await _apply(svc, ctx, user_id, {"password": hash_password(password)}, "password.set")


async def change_password(svc: Services, ctx: AuthContext, user_id: str, current: Any, password: Any) -> None:
    if user_id != ctx.user_id:
        raise AuthorizationError("You can't change password of another user")
    errors = []
    if not isinstance(current, str):
        errors.append(missing_attribute("currentPassword"))
    if not isinstance(password, str) or not password:
        errors.append(missing_attribute("password"))
    raise_attribute_errors("user", errors)
    user = await get(svc, user_id)
    if user is None or not verify_password(user["password"], current):
        raise AuthorizationError("Authentication failure")
    check_password(svc.settings, password)
    await _apply(svc, ctx, user_id, {"password": hash_password(password)}, "password.change")


async def get_key(svc: Services, ctx: AuthContext, user_id: str) -> str:
    user = await self_or_admin(svc, ctx, user_id)
    if not user["key_encrypted"]:
        raise BadRequestError(f"User {user_id} hasn't key")
    if user_id != ctx.user_id:  # an administrator reading someone else's key may act as them
        await audit.record(svc, audit.by(ctx, user["organization"], "key.read", "user", user_id))
    return svc.box.decrypt(user["key_encrypted"])


async def renew_key(svc: Services, ctx: AuthContext, user_id: str) -> str:
    await self_or_admin(svc, ctx, user_id)
    return await _store_key(svc, ctx, user_id, new_api_key(), "key.renew")


async def set_key(svc: Services, ctx: AuthContext, user_id: str, key: Any) -> str:
    await _admin_target(svc, ctx, user_id)
    if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
        raise BadRequestError("A safe key must be at least 32 chars")
    return await _store_key(svc, ctx, user_id, key, "key.set")


async def remove_key(svc: Services, ctx: AuthContext, user_id: str) -> None:
    await _admin_target(svc, ctx, user_id)
    await _apply(svc, ctx, user_id, {"key_hash": None, "key_encrypted": None}, "key.remove")


async def _store_key(svc: Services, ctx: AuthContext, user_id: str, key: str, action: str) -> str:
    try:
        await _apply(
            svc,
            ctx,
            user_id,
            {"key_hash": svc.box.lookup_hash(key), "key_encrypted": svc.box.encrypt(key)},
            action,
        )
    except IntegrityError:
        raise ConflictError("This key is already in use") from None
    return key


async def search(
    svc: Services, query: Any, range_: str | None, sort: list[str] | None, organization: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    scope = None if organization is None else and_(t.user.c.organization == organization)
    async with svc.db.read() as conn:
        return await store_search(conn, USER, query, range_, sort, scope)


def public(user: dict[str, Any]) -> dict[str, Any]:
    """The user without its secrets, for events."""
    return {
        k: v for k, v in user.items() if k not in ("password", "key_hash", "key_encrypted", "preferences")
    }
