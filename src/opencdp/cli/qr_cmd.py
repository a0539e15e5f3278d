"""``opencdp qr …``: campaign QR codes (``add``, ``list``, ``disable``). Thin: every command
calls :mod:`opencdp.services.qr_codes`. Short URLs start with the ``public_url`` setting
(``OPENCDP_PUBLIC_URL``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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

qr_app = typer.Typer(help="Campaign QR codes: short links from print to profile.")

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@qr_app.command("add")
def add(
    campaign: Annotated[str, typer.Argument(help="The campaign, e.g. spring-posters.")],
    target: Annotated[
        str,
        typer.Option(
            "--target", help="Where a scan goes: an absolute http(s) URL (no credentials)."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the QR code to print: FILE.svg or FILE.png."),
    ] = None,
    as_json: AsJson = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Make a QR code for CAMPAIGN: prints its code and short URL (/q/CODE)."""
    from opencdp.services.qr_codes import add_qr, get_qr, qr_image, view

    extension = None
    if out is not None:
        extension = out.suffix.lower().lstrip(".")
        if extension not in ("svg", "png"):
            err.print("[red]error:[/red] --out must end in .svg or .png")
            raise typer.Exit(2)
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        base = rt.settings.public_url
        with audited(rt, workspace, "qr.add") as note:
            code = add_qr(rt, workspace, campaign, target)
            note.target = code
        shown = view(get_qr(rt, workspace, code), base)
        image = qr_image(rt, workspace, code, base, extension) if extension else None
    if out is not None and image is not None:
        try:
            out.write_bytes(image)
        except OSError as exc:
            err.print(f"[red]error:[/red] cannot write {out}: {exc.strerror}")
            raise typer.Exit(1) from None
    if as_json:
        print_json(shown)
        return
    console.print(f"{code} {shown['short_url']}", highlight=False, soft_wrap=True)
    if out is not None:
        err.print(f"wrote {out}")


@qr_app.command("list")
def list_codes(
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Only this campaign's codes.")
    ] = None,
    as_json: AsJson = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """The workspace's QR codes, newest first."""
    from opencdp.services.qr_codes import list_qr, view

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        shown = [view(qr, rt.settings.public_url) for qr in list_qr(rt, workspace, campaign)]
    if as_json:
        print_json(shown)
        return
    table = Table()
    for column in ("code", "campaign", "short URL", "target", "created", "status"):
        table.add_column(column, overflow="fold")
    for row in shown:
        table.add_row(
            row["code"],
            row["campaign"],
            row["short_url"],
            row["target"],
            row["created_at"],
            "disabled" if row["disabled_at"] else "active",
        )
    console.print(table)


@qr_app.command("disable")
def disable(
    code: Annotated[str, typer.Argument(help="The code (the part after /q/).")],
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Stop a code: scans answer 404 from now on (the code is never reused)."""
    from opencdp.services.qr_codes import disable_qr

    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "qr.disable", code),
    ):
        changed = disable_qr(rt, workspace, code)
    console.print(f"disabled {code}" if changed else f"{code} was disabled already")
