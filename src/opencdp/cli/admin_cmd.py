"""Source credentials: ``opencdp source disable|enable|rotate-key`` (registered on the
``source`` group in main.py; tokens are in ``access_cmd``). Each is recorded in the audit log."""

from __future__ import annotations

from typing import Annotated

import typer

from opencdp.cli.common import (
    DataDir,
    DbUrl,
    Workspace,
    audited,
    console,
    runtime_for,
    settings_from,
)

SourceRef = Annotated[str, typer.Argument(help="The source's name or id.")]

CACHE_NOTE = "running servers notice within 10 seconds"


def source_disable(
    source: SourceRef,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Disable a source: its write key gets 401 source_disabled (nothing is deleted)."""
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "source.disable", source),
    ):
        src = rt.admin.set_source_enabled(workspace, source, enabled=False)
        console.print(f"source [bold]{src.name}[/bold] ({src.id}) disabled ({CACHE_NOTE})")


def source_enable(
    source: SourceRef,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Enable a disabled source again."""
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "source.enable", source),
    ):
        src = rt.admin.set_source_enabled(workspace, source, enabled=True)
        console.print(f"source [bold]{src.name}[/bold] ({src.id}) enabled ({CACHE_NOTE})")


def source_rotate_key(
    source: SourceRef,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Give a source a new write key; the old key stops working."""
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "source.rotate_key", source),
    ):
        src, key = rt.admin.rotate_write_key(workspace, source)
        console.print(f"source [bold]{src.name}[/bold] ({src.id}): new write key")
        console.print(
            f"write key: [bold green]{key}[/bold green]  (store it now: it is not shown again; "
            f"the old key stops working, {CACHE_NOTE})"
        )
