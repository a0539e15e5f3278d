"""What every ``opencdp`` command shares: consoles, common options, the runtime context."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from rich.console import Console

from opencdp.errors import OpenCDPError, loggable
from opencdp.settings import Settings, load_settings

# Piped or redirected output is read by scripts: no width limit, so tables never cut an id.
console = Console(width=None if sys.stdout.isatty() else 100_000)
err = Console(stderr=True)

DataDir = Annotated[
    str | None, typer.Option("--data-dir", help="Data directory (OPENCDP_DATA_DIR).")
]
DbUrl = Annotated[
    str | None, typer.Option("--database-url", help="Database URL (OPENCDP_DATABASE_URL).")
]
Workspace = Annotated[str, typer.Option("--workspace", "-w", help="Workspace id.")]


def print_json(body: Any) -> None:
    """``body`` as indented JSON on standard output (the commands' ``--json``)."""
    sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")


def settings_from(data_dir: str | None, database_url: str | None, **extra: Any) -> Settings:
    return load_settings(data_dir=data_dir, database_url=database_url, **extra)


@contextmanager
def errors_reported() -> Iterator[None]:
    """OpenCDP errors inside become a message on stderr and exit code 1."""
    try:
        yield
    except OpenCDPError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


@contextmanager
def runtime_for(settings: Settings) -> Iterator[Any]:
    """A runtime for one command; OpenCDP errors become a message and exit code 1."""
    from opencdp.runtime import Runtime

    rt = None
    try:
        with errors_reported():
            rt = Runtime(settings)
            yield rt
    finally:
        if rt is not None:
            rt.close()


def read_document(path: Path) -> Any:
    """A YAML or JSON file, or a clear error naming the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot read {path}: {exc.strerror}")
        raise typer.Exit(1) from None
    try:
        if path.suffix.lower() == ".json":
            return orjson.loads(text)
        return yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        err.print(
            f"[red]error:[/red] {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        )
        raise typer.Exit(1) from None


class AuditNote:
    """What :func:`audited` will record; a block that creates an object sets ``target``, one
    that changes a profile sets ``profile_id``."""

    def __init__(self, target: str | None) -> None:
        self.target = target
        self.profile_id: str | None = None


@contextmanager
def audited(
    rt: Any, workspace: str, action: str, target: str | None = None, *, record: bool = True
) -> Iterator[AuditNote]:
    """Record the write that the block makes in the audit log (channel ``cli``, actor
    ``cli:<os user>``), with its exit status: 0 when it succeeded, else the status the command
    exits with. ``action`` is the name ``web/access.py`` gives the same write through the API;
    ``target`` names the object (an id or key), never a customer's value — a block that
    creates an object names it by setting ``note.target``. ``record=False`` (a dry run that
    changes nothing) records nothing."""
    from opencdp.services.audit import record_cli

    note = AuditNote(target)
    if not record:
        yield note
        return
    status = 1
    try:
        yield note
        status = 0
    except typer.Exit as exc:
        status = exc.exit_code
        raise
    finally:
        try:
            record_cli(
                rt, workspace, action, note.target, status=status, profile_id=note.profile_id
            )
        except Exception as exc:  # the write is done (or failed) already: say so, go on
            err.print(
                f"[yellow]warning:[/yellow] the audit log entry was not written: {loggable(exc)}"
            )
