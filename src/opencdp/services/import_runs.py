"""Running an import (an adapter): read → convert → ingest → process → checkpoint, per chunk.

Rows go through the same pipeline as live events: :meth:`Collector.build_rows` normalizes them
and applies the source's tracking plan, the processor resolves identities and traits; rows the
converter refuses (a date or amount that does not parse, an empty key) are quarantined with the
reason ``invalid_row`` and a detail naming file, row and column. Each chunk is committed and then
checkpointed in the ``import_runs`` table, so an interrupted import resumes after the last
checkpoint; deterministic message ids make a redone chunk change nothing.

:func:`check_file` runs the same conversion without writing anything and returns the
data-quality report; :func:`import_file` returns that report plus what the import did.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from opencdp.collect.envelope import Envelope
from opencdp.collect.rejection import IMPORT, Rejection, quarantine_row
from opencdp.errors import ConfigurationError
from opencdp.identity import IdentityConfig
from opencdp.imports.convert import INVALID_ROW, Converter, ImportContext, RowError
from opencdp.imports.mapping import ImportMapping
from opencdp.imports.quality import QualityProfile
from opencdp.imports.readers import detect_format, read_chunks, total_size
from opencdp.imports.values import convert_value
from opencdp.runtime import Runtime
from opencdp.storage.admin import Source
from opencdp.storage.import_runs import COMPLETED, RUNNING, ImportRunStore
from opencdp.storage.products import ProductStore
from opencdp.timeutil import isoformat_us
from opencdp.version import __version__

log = logging.getLogger(__name__)

DEFAULT_SOURCE = "import"
_TYPES = {"customers": "identify", "orders": "track", "events": None, "products": None}

#: where ``opencdp import`` keeps its data-quality reports, under the data directory
REPORTS_DIR = "reports"


class Progress(Protocol):
    """What the runner reports while it works (the CLI draws a Rich progress bar)."""

    def start(self, file_name: str, total: int, unit: str, done: int) -> None: ...
    def advance(self, rows: int, position: int) -> None: ...
    def note(self, text: str) -> None: ...


class SilentProgress:
    """A :class:`Progress` that reports nothing (tests, library use)."""

    def start(self, file_name: str, total: int, unit: str, done: int) -> None:
        pass

    def advance(self, rows: int, position: int) -> None:
        pass

    def note(self, text: str) -> None:
        log.info("%s", text)


@dataclass(frozen=True)
class ImportRequest:
    """One file to import (or check) with one mapping."""

    path: Path
    mapping: ImportMapping
    workspace_id: str = "default"
    source: str | None = None  # a source name or id; None: the "import" source
    chunk_size: int = 10_000
    force: bool = False


#: Where committed rows go: (runtime, events rows, quarantine rows). Tests wrap it to simulate
#: an interruption.
Sink = Callable[[Runtime, list[dict[str, Any]], list[dict[str, Any]]], None]


def write_events(
    runtime: Runtime, events: list[dict[str, Any]], rejected: list[dict[str, Any]]
) -> None:
    """The one place imported rows enter the pipeline: the processor's direct path (one
    transaction, no inbox round trip; the inbox path when the database refuses the chunk)."""
    runtime.processor.ingest_and_process(events, rejected)


def run_id_for(workspace_id: str, source_id: str, mapping: ImportMapping, path: Path) -> str:
    """The id of an import run: same workspace, source, kind, mapping and file → same run.

    The file is recognized by name, size and the SHA-256 of its first MiB (hashing a file
    larger than RAM whole would cost a full extra read).
    """
    digest = hashlib.sha256()
    for part in (workspace_id, source_id, mapping.kind, mapping.digest, path.name):
        digest.update(part.encode() + b"\x1f")
    digest.update(str(path.stat().st_size).encode() + b"\x1f")
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
    return "imp_" + digest.hexdigest()[:40]


def mapping_json(mapping: ImportMapping) -> str:
    """The mapping document as JSON, as a run stores it (YAML dates become ISO strings)."""
    return orjson.dumps(dict(mapping.document), default=str).decode()


def resolve_source(runtime: Runtime, workspace_id: str, ref: str | None) -> Source:
    """The source named or with id ``ref`` in the workspace; ``None`` means the source named
    ``import``, created on first use."""
    if not runtime.admin.workspace_exists(workspace_id):
        raise ConfigurationError(f"workspace {workspace_id!r} does not exist")
    wanted = ref or DEFAULT_SOURCE
    for source in runtime.admin.list_sources(workspace_id):
        if wanted in (source.id, source.name):
            return source
    if ref is not None:
        raise ConfigurationError(
            f"no source {ref!r} in workspace {workspace_id!r}: see `opencdp source list`"
        )
    return runtime.admin.add_source(workspace_id, DEFAULT_SOURCE, runtime.now_us())[0]


def read_known_customers(path: Path, mapping: ImportMapping) -> set[str]:
    """Customer keys from a file (one per line; for .csv files the first column after the
    header), normalized like the mapping's customer reference (e-mails lower-cased)."""
    if not path.is_file():
        raise ConfigurationError(f"--known-customers {path}: no such file")
    ref = mapping.customer_ref()
    keys: set[str] = set()
    with path.open(encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f):
            text = line.strip()
            if path.suffix.lower() == ".csv":
                if i == 0:
                    continue
                text = text.split(",", 1)[0].strip().strip('"')
            if not text or text.startswith("#"):
                continue
            try:
                value = convert_value(ref, text) if ref is not None else text
            except ValueError:
                value = text
            keys.add(str(value))
    return keys


# -- the check -------------------------------------------------------------------------------------


def check_file(
    request: ImportRequest,
    identity: IdentityConfig,
    *,
    known_customers: Callable[[list[str]], set[str]] | set[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Profile a file without writing anything: the data-quality report as JSON-ready data.

    ``known_customers`` is a set of customer keys, or a function that says which of a list of
    references exist (the database); references to identify rows of the same file count as
    known too.
    """
    progress = progress or SilentProgress()
    path, mapping = request.path, request.mapping
    fmt = detect_format(path, mapping)
    ctx = ImportContext(request.workspace_id, "check", path.name, "check", __version__)
    converter = Converter(mapping, ctx)
    quality = QualityProfile(mapping, identity)
    total, unit = total_size(path, fmt)
    progress.start(path.name, total, unit, 0)
    for chunk in read_chunks(path, mapping, chunk_size=request.chunk_size):
        for bad in chunk.bad:
            quality.bad_row(bad.row, bad.problem, bad.text)
        for rv in converter.values_of(chunk):
            quality.observe(rv)
            for n, outcome in converter.feed(rv):
                quality.outcome(n, outcome)
        progress.advance(len(chunk.rows) + len(chunk.bad), _position(chunk, unit))
    for n, outcome in converter.flush():
        quality.outcome(n, outcome)
    known: set[str] | None
    if callable(known_customers):
        refs = list(quality.customer_refs())
        known = known_customers(refs) | quality.customer_keys
    elif known_customers is not None:
        known = set(known_customers) | quality.customer_keys
    else:
        known = None
    report = quality.result(known)
    report.update(file=path.name, format=fmt, mode="check")
    return report


# -- the import ------------------------------------------------------------------------------------


#: what an import fills: the planner's statistics of these are refreshed when it ends
IMPORTED_TABLES = ("events", "profiles", "identifiers", "traits")


def import_file(
    runtime: Runtime,
    request: ImportRequest,
    *,
    progress: Progress | None = None,
    sink: Sink = write_events,
) -> dict[str, Any]:
    """Import one file; returns the data-quality report plus what was imported.

    A run that was interrupted resumes after its last checkpoint; a completed run is not
    repeated unless ``request.force`` (and then changes nothing, by the message ids). The
    returned report has ``status`` ``completed`` or ``already_imported``.
    """
    progress = progress or SilentProgress()
    path, mapping, ws = request.path, request.mapping, request.workspace_id
    if not path.is_file():
        raise ConfigurationError(f"{path}: no such file")
    fmt = detect_format(path, mapping)
    source = resolve_source(runtime, ws, request.source)
    runs = ImportRunStore(runtime.db)
    run_id = run_id_for(ws, source.id, mapping, path)
    run = runs.get(ws, run_id)
    if run is not None and run.status == COMPLETED and not request.force:
        progress.note(
            f"{path.name} was already imported (run {run_id}); nothing to do (--force re-runs it)"
        )
        return {**run.report, "status": "already_imported", "run": run_id}
    resume_after = 0
    counters: dict[str, Any]
    if run is not None and run.status == RUNNING:
        resume_after = run.rows_done
        counters = dict(run.report.get("progress", {}))
        baseline = run.report.get("baseline") or runs.counts(ws, source.id)
        if resume_after:
            progress.note(f"resuming {path.name} at row {resume_after + 1} (run {run_id})")
    else:
        baseline = runs.counts(ws, source.id)
        counters = {}
        runs.start(
            ws,
            run_id,
            source_id=source.id,
            kind=mapping.kind,
            file_name=path.name,
            now_us=runtime.now_us(),
            report={"baseline": baseline, "progress": {}},
            mapping=mapping_json(mapping),
        )
    for name in (
        "rows",
        "messages",
        "accepted",
        "rejected_by_converter",
        "rejected_by_pipeline",
        "suppressed",
        "products",
    ):
        counters.setdefault(name, 0)

    ctx = ImportContext(
        ws,
        source.id,
        path.name,
        run_id,
        __version__,
        default_timestamp=isoformat_us(int(path.stat().st_mtime * 1_000_000)),
    )
    converter = Converter(mapping, ctx)
    # The real import reports the real merges: no simulation (it would cost time and memory).
    quality = QualityProfile(mapping, runtime.identity_config(ws), simulate_identity=False)
    products = ProductStore(runtime.db)
    seen_refs: set[str] = set()
    known_refs: set[str] = set()
    total, unit = total_size(path, fmt)
    progress.start(path.name, total, unit, resume_after)

    def commit(outcomes: list[tuple[int, dict[str, Any] | RowError]], checkpoint: int) -> None:
        messages: list[Any] = []
        product_rows: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        now_us = runtime.now_us()
        for _, outcome in outcomes:
            if isinstance(outcome, RowError):
                rejected.append(_quarantine(source, outcome, mapping, ctx, now_us))
            elif mapping.kind == "products":
                product_rows.append(outcome)
            else:
                messages.append(outcome)
        counters["rejected_by_converter"] += len(rejected)
        counters["messages"] += len(messages)
        # Orders may only point to customers that existed before this import: look up each
        # reference once, before the chunk that first names it creates its profile.
        fresh = [r for r in quality.customer_refs() if r not in seen_refs]
        if fresh:
            seen_refs.update(fresh)
            known_refs.update(runs.known_customers(ws, fresh))
        events: list[dict[str, Any]] = []
        step = runtime.settings.max_batch_events  # the collector's per-envelope limit
        for start in range(0, len(messages), step):
            rows, refused, result = runtime.collector.build_rows(
                source, Envelope(messages=messages[start : start + step], implied_type=None)
            )
            events.extend(rows)
            rejected.extend(refused)
            counters["accepted"] += result.accepted
            counters["rejected_by_pipeline"] += result.quarantined
            counters["suppressed"] += result.suppressed  # suppressed persons: kept nowhere
        if events or rejected:
            sink(runtime, events, rejected)
        if events:
            # Before the checkpoint: a resumed run tags what an interruption left untagged.
            runs.tag_events(ws, run_id, [e["message_id"] for e in events])
        if product_rows:
            counters["products"] += products.upsert(product_rows, now_us)
        runs.checkpoint(
            ws,
            run_id,
            checkpoint,
            {"baseline": baseline, "progress": counters},
            runtime.now_us(),
        )

    done = resume_after
    for chunk in read_chunks(
        path, mapping, chunk_size=request.chunk_size, skip_through=resume_after
    ):
        outcomes: list[tuple[int, dict[str, Any] | RowError]] = []
        for bad in chunk.bad:
            quality.bad_row(bad.row, bad.problem, bad.text)
            error = RowError(
                bad.row, None, bad.problem, {"text": bad.text}, converter.message_id(None, bad.row)
            )
            outcomes.append((bad.row, error))
            quality.outcome(bad.row, error)
        for rv in converter.values_of(chunk):
            quality.observe(rv)
            for n, outcome in converter.feed(rv):
                quality.outcome(n, outcome)
                outcomes.append((n, outcome))
        counters["rows"] += len(chunk.rows) + len(chunk.bad)
        # With line items the last order may continue in the next chunk: the checkpoint stops
        # before it, so a resumed run reads that order again whole.
        open_from = converter.open_from
        done = open_from - 1 if open_from is not None else max(done, chunk.last_row)
        commit(outcomes, done)
        progress.advance(len(chunk.rows) + len(chunk.bad), _position(chunk, unit))
    tail = converter.flush()
    for n, outcome in tail:
        quality.outcome(n, outcome)
    last = max([done, *(n for n, _ in tail)])
    commit(tail, last)

    after = runs.counts(ws, source.id)
    report = quality.result(known_refs | quality.customer_keys)
    report.update(
        file=path.name,
        format=fmt,
        mode="import",
        status="completed",
        run=run_id,
        source={"id": source.id, "name": source.name},
        resumed_at=resume_after + 1 if resume_after else None,
        imported=_imported(counters, baseline, after, quality.rejected),
    )
    runs.complete(
        ws, run_id, last, {**report, "baseline": baseline, "progress": counters}, runtime.now_us()
    )
    runtime.db.refresh_statistics(IMPORTED_TABLES)
    return report


def _imported(
    counters: dict[str, Any], before: dict[str, Any], after: dict[str, Any], rejected: int
) -> dict[str, Any]:
    quarantine_delta = {
        reason: n - before["quarantine"].get(reason, 0)
        for reason, n in after["quarantine"].items()
        if n - before["quarantine"].get(reason, 0)
    }
    return {
        "rows": counters["rows"],
        "messages": counters["messages"],
        "accepted": counters["accepted"],
        "suppressed": counters["suppressed"],
        "products": counters["products"],
        "quarantined": counters["rejected_by_converter"] + counters["rejected_by_pipeline"],
        "new_events": after["events"] - before["events"],
        "profiles_created": after["profiles"] - before["profiles"],
        "merges_created": after["merges"] - before["merges"],
        "new_quarantine_by_reason": quarantine_delta,
        "quarantine_by_reason": after["quarantine"],
    }


def _quarantine(
    source: Source, error: RowError, mapping: ImportMapping, ctx: ImportContext, now_us: int
) -> dict[str, Any]:
    """The quarantine row of a record the converter refused: its original rows, where they
    were, and the run that read them (a replay converts them again with the run's mapping)."""
    rejection = Rejection(
        INVALID_ROW,
        error.detail(ctx.file_name),
        error.payload(ctx.file_name, ctx.run_id),
        message_id=error.message_id,
        type=_TYPES.get(mapping.kind),
        event=mapping.event if mapping.kind == "orders" else None,
    )
    return quarantine_row(
        rejection,
        IMPORT,
        now_us,
        workspace_id=source.workspace_id,
        source_id=source.id,
        import_run_id=ctx.run_id,
    )


def _position(chunk: Any, unit: str) -> int:
    return int(chunk.last_row if unit == "rows" else chunk.bytes_read)
