"""Credential operations: ``opencdp token revoke|rotate`` and ``opencdp source
disable|enable|rotate-key`` (registered on the ``token`` and ``source`` groups in main.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from opencdp.cli.common import DataDir, DbUrl, Workspace, console, runtime_for, settings_from

TokenRef = Annotated[str, typer.Argument(help="The token's id or name (see `opencdp token list`).")]
SourceRef = Annotated[str, typer.Argument(help="The source's name or id.")]

CACHE_NOTE = "running servers notice within 10 seconds"


def token_revoke(
    token: TokenRef,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Revoke an access token: requests with it get 401."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        tok = rt.admin.revoke_token(workspace, token)
        console.print(f"token [bold]{tok.name}[/bold] ({tok.id}) revoked ({CACHE_NOTE})")


def token_rotate(
    token: TokenRef,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Give a token a new secret (same name and scope); the old secret stops working."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        tok, secret = rt.admin.rotate_token(workspace, token)
        console.print(f"token [bold]{tok.name}[/bold] ({tok.id}, {tok.scope}) rotated")
        console.print(
            f"secret: [bold green]{secret}[/bold green]  (store it now: it is not shown again; "
            f"the old secret stops working, {CACHE_NOTE})"
        )


def source_disable(
    source: SourceRef,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Disable a source: its write key gets 401 source_disabled (nothing is deleted)."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        src = rt.admin.set_source_enabled(workspace, source, enabled=False)
        console.print(f"source [bold]{src.name}[/bold] ({src.id}) disabled ({CACHE_NOTE})")


def source_enable(
    source: SourceRef,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Enable a disabled source again."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        src = rt.admin.set_source_enabled(workspace, source, enabled=True)
        console.print(f"source [bold]{src.name}[/bold] ({src.id}) enabled ({CACHE_NOTE})")


def source_rotate_key(
    source: SourceRef,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Give a source a new write key; the old key stops working."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        src, key = rt.admin.rotate_write_key(workspace, source)
        console.print(f"source [bold]{src.name}[/bold] ({src.id}): new write key")
        console.print(
            f"write key: [bold green]{key}[/bold green]  (store it now: it is not shown again; "
            f"the old key stops working, {CACHE_NOTE})"
        )
