"""``opencdp profile export``: everything kept about a person, as JSON or a ZIP of CSVs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from opencdp.cli.common import DataDir, DbUrl, Workspace, audited, err, runtime_for, settings_from
from opencdp.services.export import export_profile, export_zip


def export(
    ref: Annotated[
        str, typer.Argument(help="A profile id or any identifier as type:value (email:a@b.com).")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON here (default: stdout).")
    ] = None,
    zip_file: Annotated[
        Path | None,
        typer.Option("--zip", help="Write a ZIP (profile.json and one CSV per store) here."),
    ] = None,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Export everything OpenCDP keeps about a person (docs/export.md); recorded in the
    audit log."""
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "profile.export") as note,
    ):
        document = export_profile(rt, workspace, ref)
        note.profile_id = document["profile_id"]
        note.target = document["profile_id"]
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2)
    if zip_file is not None:
        zip_file.write_bytes(export_zip(document))
        err.print(f"wrote {zip_file}")
    if output is not None:
        output.write_bytes(text)
        err.print(f"wrote {output}")
    if output is None and zip_file is None:
        sys.stdout.buffer.write(text + b"\n")
