"""Workspaces, tokens and the audit log at the command line: ``opencdp workspace
add|list|show|settings``, ``opencdp token add|rotate|revoke`` and ``opencdp audit``.

An operator at the command line holds the database: every command here may act in any
workspace (``--workspace``). Writes are recorded in the audit log (channel ``cli``).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from opencdp.cli.common import (
    DataDir,
    DbUrl,
    Workspace,
    audited,
    console,
    err,
    print_json,
    runtime_for,
    settings_from,
)
from opencdp.privacy.roles import ROLES

workspace_app = typer.Typer(
    help="Workspaces: one per brand or business line, kept apart.", no_args_is_help=True
)

CACHE_NOTE = "running servers notice within 10 seconds"
WorkspaceId = Annotated[str, typer.Argument(help="The workspace id, e.g. b2c-shop.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


# -- workspaces -----------------------------------------------------------------------------------


@workspace_app.command("add")
def workspace_add(
    workspace_id: WorkspaceId,
    name: Annotated[str, typer.Option("--name", help="A name, e.g. 'B2C shop'.")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Create a workspace (then `opencdp source add NAME --workspace ID` and `opencdp token
    add NAME --workspace ID --role ROLE`)."""
    from opencdp.services import access

    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace_id, "workspace.add", f"/api/workspaces/{workspace_id}"),
    ):
        view = access.add_workspace(rt, workspace_id, name)
        console.print(f"workspace [bold]{view['id']}[/bold] ({view['name']}) created")


@workspace_app.command("list")
def workspace_list(
    as_json: AsJson = False, data_dir: DataDir = None, database_url: DbUrl = None
) -> None:
    """Every workspace."""
    from opencdp.services import access

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        rows = access.list_workspaces(rt, None)
        if as_json:
            print_json({"data": rows})
            return
        table = Table("id", "name", "created", "consent default")
        for w in rows:
            table.add_row(w["id"], w["name"], w["created_at"], w["settings"]["consent_default"])
        console.print(table)


@workspace_app.command("show")
def workspace_show(
    workspace_id: WorkspaceId,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """A workspace with its settings, sources and tokens (hints only, never a secret)."""
    from opencdp.services import access

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        view = access.get_workspace(rt, workspace_id)
        if as_json:
            print_json(view)
            return
        console.print(f"[bold]{view['id']}[/bold] ({view['name']}), created {view['created_at']}")
        settings = Table("setting", "value", title="settings")
        for key, value in view["settings"].items():
            settings.add_row(key, orjson.dumps(value).decode())
        console.print(settings)
        sources = Table("id", "name", "write key", "enabled", title="sources")
        for s in view["sources"]:
            sources.add_row(
                s["id"], s["name"], s["write_key_hint"], "yes" if s["enabled"] else "no"
            )
        console.print(sources)
        tokens = Table("id", "name", "role", "token", title="tokens")
        for t in view["tokens"]:
            role = "admin (instance administrator)" if t["instance_admin"] else t["role"]
            tokens.add_row(t["id"], t["name"], role, t["token_hint"])
        console.print(tokens)


@workspace_app.command("settings")
def workspace_settings(
    workspace_id: WorkspaceId,
    consent_default: Annotated[
        str | None,
        typer.Option(
            "--consent-default",
            help="What a profile without a consent record counts as: opt-in (no consent "
            "until given) or opt-out (consent until withdrawn).",
        ),
    ] = None,
    self_service_trait: Annotated[
        list[str] | None,
        typer.Option(
            "--self-service-trait",
            help="A trait customers may edit on the self-service profile (repeat; replaces "
            "the list).",
        ),
    ] = None,
    self_service_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--self-service-origin",
            help="A browser origin allowed to call /api/self, e.g. https://shop.example "
            "(repeat; replaces the list).",
        ),
    ] = None,
    link_ttl: Annotated[
        int | None,
        typer.Option("--link-ttl", help="Seconds a self-service link stays valid."),
    ] = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Show a workspace's privacy settings, or change those given (the others keep their
    value)."""
    from opencdp.services import access

    changes: dict[str, Any] = {}
    if consent_default is not None:
        changes["consent_default"] = consent_default
    if self_service_trait:
        changes["self_service_traits"] = self_service_trait
    if self_service_origin:
        changes["self_service_origins"] = self_service_origin
    if link_ttl is not None:
        changes["self_service_link_ttl"] = link_ttl
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        if changes:
            with audited(
                rt, workspace_id, "workspace.settings", f"/api/workspaces/{workspace_id}/settings"
            ):
                view = access.set_workspace_settings(rt, workspace_id, changes)
        else:
            view = access.get_workspace(rt, workspace_id)
        if as_json:
            print_json(view["settings"])
            return
        table = Table("setting", "value", title=f"settings of {workspace_id}")
        for key, value in view["settings"].items():
            table.add_row(key, orjson.dumps(value).decode())
        console.print(table)


# -- sources and tokens ---------------------------------------------------------------------------


def source_add(
    name: Annotated[str, typer.Argument(help="A name, e.g. web-shop.")],
    catalog: Annotated[
        bool,
        typer.Option(
            "--catalog",
            help="A catalog source: its Product Updated events write the product catalog.",
        ),
    ] = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Create a source and print its write key (shown only this once)."""
    from opencdp.services import access

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        with audited(rt, workspace, "source.add") as note:
            view = access.add_source(rt, workspace, name, catalog=catalog)
            note.target = f"/api/sources/{view['id']}"
        kind = "catalog source" if view["catalog"] else "source"
        console.print(f"{kind} [bold]{view['name']}[/bold] ({view['id']}) in workspace {workspace}")
        console.print(
            f"write key: [bold green]{view['write_key']}[/bold green]  "
            "(store it now: it is not shown again)"
        )


def token_add(
    name: Annotated[str, typer.Argument(help="What the token is for.")],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            "--scope",
            help=f"The token's role: {', '.join(ROLES)} (--scope is the old name).",
        ),
    ] = "admin",
    instance_admin: Annotated[
        bool,
        typer.Option(
            "--instance-admin",
            help="An administrator of every workspace (picks one with the OpenCDP-Workspace "
            "header) who may also create workspaces.",
        ),
    ] = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Create an access token and print it (shown only this once)."""
    from opencdp.services import access

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        with audited(rt, workspace, "token.add") as note:
            view = access.add_token(rt, None, workspace, name, role, instance_admin=instance_admin)
            note.target = f"/api/tokens/{view['id']}"
        what = "admin, instance administrator" if view["instance_admin"] else view["role"]
        console.print(
            f"token [bold]{view['name']}[/bold] ({view['id']}, {what}) in workspace {workspace}"
        )
        console.print(
            f"secret: [bold green]{view['token']}[/bold green]  "
            "(store it now: it is not shown again)"
        )


TokenRef = Annotated[str, typer.Argument(help="The token's id or name (see `opencdp token list`).")]


def _token_in(rt: Any, workspace: str, ref: str) -> str:
    """The id of token ``ref`` of the workspace, or an error that names the workspace it is
    in when it is in another one."""
    from opencdp.errors import NotFound

    mine = [t for t in rt.admin.list_tokens(workspace) if ref in (t.id, t.name)]
    if len(mine) == 1:
        return str(mine[0].id)
    if mine:
        return ref  # several of that name: the service asks for the id
    elsewhere = sorted({t.workspace_id for t in rt.admin.list_tokens() if ref in (t.id, t.name)})
    if elsewhere:
        raise NotFound(
            f"no token {ref!r} in workspace {workspace!r}; it is in workspace "
            f"{elsewhere[0]!r}: add --workspace {elsewhere[0]}"
        )
    raise NotFound(f"no token {ref!r} in workspace {workspace!r}; `opencdp token list` shows them")


def token_revoke(
    token: TokenRef,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Revoke an access token of the workspace: requests with it get 401."""
    from opencdp.services import access

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        ref = _token_in(rt, workspace, token)
        with audited(rt, workspace, "token.revoke", f"/api/tokens/{ref}"):
            done = access.revoke_token(rt, None, workspace, ref)
        console.print(
            f"token [bold]{done['name']}[/bold] ({done['revoked']}) of workspace {workspace} "
            f"revoked ({CACHE_NOTE})"
        )


def token_rotate(
    token: TokenRef,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Give a token of the workspace a new secret (same name and role); the old secret stops
    working."""
    from opencdp.services import access

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        ref = _token_in(rt, workspace, token)
        with audited(rt, workspace, "token.rotate", f"/api/tokens/{ref}"):
            view = access.rotate_token(rt, None, workspace, ref)
        console.print(
            f"token [bold]{view['name']}[/bold] ({view['id']}, {view['role']}) of workspace "
            f"{workspace} rotated"
        )
        console.print(
            f"secret: [bold green]{view['token']}[/bold green]  (store it now: it is not shown "
            f"again; the old secret stops working, {CACHE_NOTE})"
        )


# -- the audit log --------------------------------------------------------------------------------


def audit(
    since: Annotated[
        str | None, typer.Option(help="From this time (ISO-8601 or epoch milliseconds).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this time.")] = None,
    action: Annotated[
        str | None,
        typer.Option(help="An action (destination.put) or a prefix of one (destination)."),
    ] = None,
    actor: Annotated[
        str | None, typer.Option(help="Who: a token's 'id (name)' or cli:<os user>.")
    ] = None,
    profile_id: Annotated[
        str | None, typer.Option("--profile-id", help="Entries about this profile.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries.")] = 100,
    as_json: AsJson = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """The audit log of a workspace, oldest first: writes through the API and the CLI,
    privacy requests and the profile reads of support tokens."""
    from opencdp.services import audit as service

    params = {
        k: v
        for k, v in {
            "since": since,
            "until": until,
            "action": action,
            "actor": actor,
            "profile_id": profile_id,
        }.items()
        if v
    }
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        entries: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(entries) < limit:  # page through the store, up to --limit entries
            page_size = str(min(service.MAX_LIMIT, limit - len(entries)))
            page = service.query(
                rt,
                workspace,
                {**params, "limit": page_size, **({"next": cursor} if cursor else {})},
            )
            entries.extend(page["data"])
            cursor = page["next"]
            if cursor is None:
                break
        if as_json:
            print_json({"data": entries, "next": cursor})
            return
        table = Table("at", "actor", "role", "channel", "action", "target", "profile", "status")
        for e in entries:
            table.add_row(
                e["at"],
                e["actor"],
                e["role"],
                e["channel"],
                e["action"],
                e["target"] or "",
                e["profile_id"] or "",
                "" if e["status"] is None else str(e["status"]),
            )
        console.print(table)
        if cursor is not None:
            err.print(f"more entries follow; raise --limit (now {limit}) to see them")
