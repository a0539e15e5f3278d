"""Workspaces, sources and access tokens: the use cases the ``/api`` routes and the CLI share.

Who may do what is decided twice, on purpose: the route's rule (``web/access.py``) says which
role a call needs, and the functions here refuse what no rule can express — a token creating a
token with more power than itself (an instance administrator), or an administrator of one
workspace rotating or revoking an instance administrator's token that happens to live there
(rotating would hand it a secret that acts in every workspace). ``caller`` is the token of the
request; ``None`` is an operator at the command line, who holds the database anyway.

Secrets (write keys, tokens) are answered once, when created or rotated; the store keeps only
their keyed hash and a hint (the first characters) by which a person recognises them.
"""

from __future__ import annotations

from typing import Any

from opencdp.errors import Conflict, Forbidden, NotFound, RequestError
from opencdp.privacy.roles import ROLES
from opencdp.privacy.workspace_settings import parse_settings
from opencdp.runtime import Runtime
from opencdp.storage.admin import INTERNAL_SOURCE, WORKSPACE_ID, AccessToken, Source, Workspace
from opencdp.timeutil import isoformat_us

_NAME_MAX = 200


# -- views ----------------------------------------------------------------------------------------


def workspace_view(workspace: Workspace) -> dict[str, Any]:
    return {
        "id": workspace.id,
        "name": workspace.name,
        "created_at": isoformat_us(workspace.created_us),
        "settings": workspace.settings.to_dict(),
    }


def source_view(source: Source) -> dict[str, Any]:
    return {
        "id": source.id,
        "workspace_id": source.workspace_id,
        "name": source.name,
        "enabled": source.enabled,
        "write_key_hint": source.write_key_hint,
        "created_at": isoformat_us(source.created_us),
        "catalog": source.catalog,
    }


def token_view(token: AccessToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "workspace_id": token.workspace_id,
        "name": token.name,
        "role": token.role,
        "instance_admin": token.instance_admin,
        "token_hint": token.token_hint,
        "created_at": isoformat_us(token.created_us),
    }


# -- workspaces -----------------------------------------------------------------------------------


def add_workspace(runtime: Runtime, workspace_id: Any, name: Any) -> dict[str, Any]:
    """Create a workspace; 400 naming a bad id or name, 409 when the id is taken."""
    if not isinstance(workspace_id, str) or not WORKSPACE_ID.fullmatch(workspace_id):
        raise RequestError(
            f"id {workspace_id!r} is not a workspace id: 1-64 lowercase letters, digits, '-' or "
            "'_', starting with a letter or digit (it appears in URLs), e.g. 'b2c-shop'",
            code="invalid_workspace_id",
        )
    name = _name(name, "name", "a workspace needs a name, e.g. 'B2C shop'")
    if runtime.admin.workspace_exists(workspace_id):
        raise Conflict(f"workspace {workspace_id!r} already exists; choose another id")
    try:
        created = runtime.admin.add_workspace(workspace_id, name, runtime.now_us())
    except Exception:
        if runtime.admin.workspace_exists(workspace_id):  # created meanwhile by someone else
            raise Conflict(
                f"workspace {workspace_id!r} already exists; choose another id"
            ) from None
        raise
    return workspace_view(created)


def list_workspaces(runtime: Runtime, caller: AccessToken | None) -> list[dict[str, Any]]:
    """Every workspace for an instance administrator (or the CLI); only its own for a token."""
    found = runtime.admin.list_workspaces()
    if caller is not None and not caller.instance_admin:
        found = [w for w in found if w.id == caller.workspace_id]
    return [workspace_view(w) for w in found]


def get_workspace(runtime: Runtime, workspace_id: str) -> dict[str, Any]:
    """A workspace with its settings, sources and tokens (hints only, never a secret)."""
    view = workspace_view(runtime.admin.get_workspace(workspace_id))
    view["sources"] = list_sources(runtime, workspace_id)
    view["tokens"] = list_tokens(runtime, workspace_id)
    return view


def set_workspace_settings(runtime: Runtime, workspace_id: str, body: Any) -> dict[str, Any]:
    """Change some of a workspace's privacy settings (fields not sent keep their value);
    400 naming the field that is wrong, and then nothing is changed."""
    current = runtime.admin.get_workspace(workspace_id).settings
    if not isinstance(body, dict):
        raise RequestError(
            'send a JSON object of the settings to change, e.g. {"consent_default": "opt-out"}',
            code="invalid_settings",
        )
    ttl = body.get("self_service_link_ttl")
    if isinstance(ttl, float) and ttl.is_integer():  # JSON's 3600.0 is a whole number
        body = {**body, "self_service_link_ttl": int(ttl)}
    try:
        settings = parse_settings(body, base=current)
    except ValueError as exc:
        raise RequestError(str(exc), code="invalid_settings") from None
    runtime.admin.set_workspace_settings(workspace_id, settings)
    return workspace_view(runtime.admin.get_workspace(workspace_id))


# -- sources --------------------------------------------------------------------------------------


def list_sources(runtime: Runtime, workspace_id: str) -> list[dict[str, Any]]:
    return [source_view(s) for s in runtime.admin.list_sources(workspace_id)]


def add_source(
    runtime: Runtime, workspace_id: str, name: Any, *, catalog: Any = False
) -> dict[str, Any]:
    """Create a source; the answer holds its write key, which is never shown again.
    ``catalog``: its ``Product Updated`` events write the product catalog."""
    name = _name(name, "name", "a source needs a name, e.g. 'web-shop'")
    if name == INTERNAL_SOURCE:
        raise RequestError(
            f"name: {INTERNAL_SOURCE!r} is reserved for OpenCDP's own changes; choose another",
            code="invalid_name",
        )
    if not isinstance(catalog, bool):
        raise RequestError("catalog: true or false", code="invalid_source")
    source, key = runtime.admin.add_source(workspace_id, name, runtime.now_us(), catalog=catalog)
    return {**source_view(source), "write_key": key}


# -- tokens ---------------------------------------------------------------------------------------


def list_tokens(runtime: Runtime, workspace_id: str) -> list[dict[str, Any]]:
    return [token_view(t) for t in runtime.admin.list_tokens(workspace_id)]


def add_token(
    runtime: Runtime,
    caller: AccessToken | None,
    workspace_id: str,
    name: Any,
    role: Any = "admin",
    *,
    instance_admin: Any = False,
) -> dict[str, Any]:
    """Create a token with ``role`` in the workspace; the answer holds its secret, which is
    never shown again. Only an instance administrator (or the CLI) creates another one."""
    name = _name(name, "name", "a token needs a name saying what it is for, e.g. 'crm-sync'")
    if role not in ROLES:
        raise RequestError(
            f"role must be one of {', '.join(ROLES)}, not {role!r}", code="invalid_role"
        )
    if not isinstance(instance_admin, bool):
        raise RequestError("instance_admin must be true or false", code="invalid_request")
    if instance_admin:
        if role != "admin":
            raise RequestError(
                "an instance administrator has the admin role; send role 'admin'",
                code="invalid_role",
            )
        if caller is not None and not caller.instance_admin:
            raise Forbidden(
                "only an instance administrator can create an instance administrator's token"
            )
    token, secret = runtime.admin.add_token(
        workspace_id, name, runtime.now_us(), role, instance_admin=instance_admin
    )
    return {**token_view(token), "token": secret}


def rotate_token(
    runtime: Runtime, caller: AccessToken | None, workspace_id: str, ref: str
) -> dict[str, Any]:
    """A new secret for the token (same id, name and role); the old one stops working at once
    in this process and within 10 seconds in the others."""
    token = _own_token(runtime, caller, workspace_id, ref)
    rotated, secret = runtime.admin.rotate_token(workspace_id, token.id)
    runtime.tokens.forget_all()
    return {**token_view(rotated), "token": secret}


def revoke_token(
    runtime: Runtime, caller: AccessToken | None, workspace_id: str, ref: str
) -> dict[str, Any]:
    """Delete the token: requests with it get 401 (at once here, within 10 s elsewhere)."""
    token = _own_token(runtime, caller, workspace_id, ref)
    runtime.admin.revoke_token(workspace_id, token.id)
    runtime.tokens.forget_all()
    return {"revoked": token.id, "name": token.name}


def _own_token(
    runtime: Runtime, caller: AccessToken | None, workspace_id: str, ref: str
) -> AccessToken:
    """The workspace's token ``ref`` (its id; the CLI may also give a unique name)."""
    tokens = runtime.admin.list_tokens(workspace_id)
    found = [t for t in tokens if t.id == ref]
    if not found and caller is None:
        found = [t for t in tokens if t.name == ref]
        if len(found) > 1:
            raise RequestError(
                f"{len(found)} tokens are named {ref!r}; give the id instead "
                "(`opencdp token list` shows them)",
                code="ambiguous_token",
            )
    if not found:
        raise NotFound(
            f"no token {ref!r} in workspace {workspace_id!r}; GET /api/tokens lists them"
        )
    token = found[0]
    if token.instance_admin and caller is not None and not caller.instance_admin:
        raise Forbidden(
            "only an instance administrator can rotate or revoke an instance administrator's token"
        )
    return token


def _name(value: Any, field: str, hint: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"{field}: {hint}", code="invalid_name")
    if len(value) > _NAME_MAX:
        raise RequestError(f"{field}: at most {_NAME_MAX} characters", code="invalid_name")
    return value.strip()
