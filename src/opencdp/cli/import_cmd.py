"""``opencdp import customers|orders|products|events FILE…``: a thin shell over
:mod:`opencdp.services.import_runs`, with a Rich progress bar and the data-quality report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from opencdp.cli.common import DataDir, DbUrl, audited, console, err, runtime_for, settings_from
from opencdp.errors import ConfigurationError, OpenCDPError
from opencdp.imports.presets import PRESETS, resolve_file, resolve_mapping
from opencdp.imports.report import print_report, write_html, write_json
from opencdp.services.import_revert import find_run, replaceable_runs, revert_run
from opencdp.services.import_runs import (
    REPORTS_DIR,
    ImportRequest,
    check_file,
    import_file,
    read_known_customers,
)
from opencdp.storage.import_runs import ImportRunStore

import_app = typer.Typer(
    help="Historical import of customers, orders, products and events (CSV, JSON Lines, "
    "Parquet), with a data-quality report.",
    no_args_is_help=True,
)

Files = Annotated[
    list[str],
    typer.Argument(help="Files to import (CSV, JSON Lines, Parquet; 'cdnow' = the CDNOW file)."),
]
MappingOpt = Annotated[
    str | None,
    typer.Option("--mapping", "-m", help=f"YAML mapping file, or a preset: {', '.join(PRESETS)}."),
]
SourceOpt = Annotated[
    str | None,
    typer.Option(help="Source name or id the rows come from (default: 'import', created)."),
]
WorkspaceOpt = Annotated[str, typer.Option("--workspace", "-w", help="Workspace id.")]
CheckOpt = Annotated[
    bool, typer.Option("--check", help="Only profile the file(s): write nothing to the database.")
]
ReportOpt = Annotated[
    Path | None,
    typer.Option(
        "--report-dir",
        "--report",
        help="Directory for report.json and report.html (default DATA_DIR/reports/<run>).",
    ),
]
KnownOpt = Annotated[
    Path | None,
    typer.Option(
        "--known-customers",
        help="With --check: customer keys (one per line, or a CSV's first column) that orders "
        "may point to; default: the customers in the database plus those of the same file.",
    ),
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Run again a file that was already imported (idempotent).")
]
ReplaceOpt = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="First revert earlier imports of a file of this name and kind (see `import revert`).",
    ),
]
ChunkOpt = Annotated[int, typer.Option("--chunk-size", min=1, help="Rows per transaction.")]


class RowsPerSecond(ProgressColumn):
    """Rows so far and rows per second."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        started = task.fields.get("since") or time.monotonic()
        rate = rows / max(time.monotonic() - started, 1e-6)
        return Text(f"{rows:,} rows  {rate:,.0f} rows/s", style="cyan")


class RichProgress:
    """The runner's progress, drawn as a Rich bar with rows/s and ETA."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def start(self, file_name: str, total: int, unit: str, done: int) -> None:
        self.task = self.progress.add_task(
            file_name, total=total, rows=0, since=time.monotonic(), unit=unit
        )

    def advance(self, rows: int, position: int) -> None:
        task = self.progress.tasks[self.task]
        self.progress.update(
            self.task, completed=position, rows=int(task.fields.get("rows", 0)) + rows
        )

    def note(self, text: str) -> None:
        self.progress.console.print(text)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        RowsPerSecond(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def _run(
    kind: str,
    files: list[str],
    mapping_ref: str | None,
    source: str | None,
    workspace: str,
    check: bool,
    report_dir: Path | None,
    known: Path | None,
    force: bool,
    chunk_size: int,
    data_dir: str | None,
    database_url: str | None,
    replace: bool = False,
) -> None:
    try:
        mapping = resolve_mapping(mapping_ref, kind)
        paths = [resolve_file(f) for f in files]
        for p in paths:
            if not p.is_file():
                raise ConfigurationError(f"{p}: no such file")
    except OpenCDPError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    settings = settings_from(data_dir, database_url)
    with runtime_for(settings) as rt:
        for path in paths:
            request = ImportRequest(
                path, mapping, workspace_id=workspace, source=source, chunk_size=chunk_size
            )
            if not rt.admin.workspace_exists(workspace):
                raise ConfigurationError(f"workspace {workspace!r} does not exist")
            with _progress() as bar:
                progress = RichProgress(bar)
                if check:
                    known_keys: Any
                    if known is not None:
                        known_keys = read_known_customers(known, mapping)
                    else:
                        runs = ImportRunStore(rt.db)

                        def known_keys(refs: list[str], runs: ImportRunStore = runs) -> set[str]:
                            return runs.known_customers(workspace, refs)

                    report = check_file(
                        request,
                        rt.identity_config(workspace),
                        known_customers=known_keys,
                        progress=progress,
                    )
                    name = f"check-{path.stem}"
                else:
                    if replace:
                        for run_id in replaceable_runs(rt, workspace, kind, path.name):
                            with audited(rt, workspace, "import.revert", run_id):
                                undone = revert_run(rt, workspace, run_id)
                            err.print(
                                f"replaced run {run_id}: {undone['events_removed']} events "
                                f"removed, {undone['profiles_rebuilt']} profiles rebuilt"
                            )
                    request = ImportRequest(
                        path,
                        mapping,
                        workspace_id=workspace,
                        source=source,
                        chunk_size=chunk_size,
                        force=force,
                    )
                    with audited(rt, workspace, f"import.{kind}") as note:
                        report = import_file(rt, request, progress=progress)
                        note.target = str(report.get("run"))
                    name = str(report.get("run"))
            if report.get("status") == "already_imported":
                err.print(
                    f"{path.name} was already imported (run {report['run']}); "
                    "use --force to run it again (it changes nothing)"
                )
                continue
            print_report(report, console)
            target = (
                report_dir if report_dir is not None else settings.data_dir / REPORTS_DIR / name
            )
            if len(paths) > 1 and report_dir is not None:
                target = report_dir / name
            j = write_json(report, target / "report.json")
            h = write_html(report, target / "report.html")
            err.print(f"report: {j} and {h}")


def _command(kind: str, doc: str) -> Any:
    def command(
        files: Files,
        mapping: MappingOpt = None,
        source: SourceOpt = None,
        workspace: WorkspaceOpt = "default",
        check: CheckOpt = False,
        report: ReportOpt = None,
        known_customers: KnownOpt = None,
        force: ForceOpt = False,
        replace: ReplaceOpt = False,
        chunk_size: ChunkOpt = 10_000,
        data_dir: DataDir = None,
        database_url: DbUrl = None,
    ) -> None:
        _run(
            kind,
            files,
            mapping,
            source,
            workspace,
            check,
            report,
            known_customers,
            force,
            chunk_size,
            data_dir,
            database_url,
            replace,
        )

    command.__doc__ = doc
    command.__name__ = kind
    return command


import_app.command("customers")(
    _command("customers", "Import customers: each row becomes an identify event (a profile).")
)
import_app.command("orders")(
    _command(
        "orders",
        "Import orders: each order becomes an 'Order Completed' event with its line items, "
        "at its historical time.",
    )
)
import_app.command("products")(
    _command("products", "Import products into the catalog (upserted by product id).")
)
import_app.command("events")(
    _command(
        "events",
        "Import events: Segment-shaped JSON Lines pass through; other files need a mapping.",
    )
)


@import_app.command("runs")
def runs_command(
    workspace: WorkspaceOpt = "default",
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 50,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """List import runs: id, kind, file, status, rows, when (newest first)."""
    from rich.table import Table

    from opencdp.timeutil import isoformat_us

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        runs = ImportRunStore(rt.db).list(workspace, limit=limit)
    table = Table("run", "kind", "file", "status", "rows", "started", "reverted")
    for r in runs:
        table.add_row(
            r.id,
            r.kind,
            r.file_name,
            r.status,
            str(r.rows_done),
            isoformat_us(r.started_us),
            isoformat_us(r.reverted_us) if r.reverted_us else "",
        )
    console.print(table)


@import_app.command("revert")
def revert_command(
    run: Annotated[str, typer.Argument(help="Run id (or a unique prefix): see `import runs`.")],
    workspace: WorkspaceOpt = "default",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Undo an import run: remove its events and rebuild the profiles it touched from their
    other events (profiles, identifiers and traits only it brought disappear)."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        found = find_run(ImportRunStore(rt.db), workspace, run)
        if not yes and not typer.confirm(
            f"Revert run {found.id} ({found.kind} from {found.file_name}, {found.rows_done} rows)?"
        ):
            raise typer.Exit(1)
        with audited(rt, workspace, "import.revert", found.id):
            result = revert_run(rt, workspace, found.id)
    console.print(
        f"reverted run {result['run']} ({result['file']}): {result['events_removed']} events "
        f"removed, {result['profiles_rebuilt']} profiles rebuilt from "
        f"{result['events_processed_again']} remaining events"
    )
