"""Replay of quarantined import rows (``invalid_row``; an adapter).

An import row is no Segment message: replaying it through normalization could only say that it
has no ``type``. It is converted again instead, from the original rows the quarantine keeps,
with the mapping its run used (``import_runs.mapping``) or a mapping given for the replay.

* Still refused: the row stays open with the converter's diagnostic, naming file, row and
  column (the same as on import when the mapping is the same).
* Converted: the message goes through the same processing as the import (the source's tracking
  plan, identity and traits) and the row is closed as ``replayed`` (``duplicate`` when the
  message was stored already). Products are written to the product table.
* Not convertible (no run or mapping recorded, a line that never was a row): the row stays
  open, unchanged but for its replay count; re-import the fixed file, or dismiss it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from opencdp.collect.envelope import Envelope
from opencdp.collect.rejection import IMPORT, Rejection, rejection_fields
from opencdp.errors import ConfigurationError
from opencdp.imports.convert import (
    INVALID_ROW,
    Converter,
    ImportContext,
    RowError,
    convert_record,
    record_rows,
)
from opencdp.imports.mapping import ImportMapping, compile_mapping
from opencdp.services.quarantine_replay import ReplayResult
from opencdp.storage.admin import Source
from opencdp.storage.import_runs import ImportRun, ImportRunStore
from opencdp.storage.products import ProductStore
from opencdp.storage.quarantine import QuarantineFilter, QuarantineRow
from opencdp.timeutil import isoformat_us
from opencdp.version import __version__

if TYPE_CHECKING:
    from opencdp.runtime import Runtime


@dataclass
class _Chunk:
    """What converting one page of rows gave."""

    messages: dict[str, list[tuple[QuarantineRow, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )  # source id -> (row, message)
    products: list[tuple[QuarantineRow, dict[str, Any]]] = field(default_factory=list)
    refused: list[tuple[QuarantineRow, str]] = field(default_factory=list)  # (row, new detail)
    kept: list[QuarantineRow] = field(default_factory=list)  # not convertible: left as they are
    sources: dict[str, Source] = field(default_factory=dict)


def replay_import_rows(
    runtime: Runtime,
    where: QuarantineFilter,
    result: ReplayResult,
    *,
    limit: int = 100_000,
    dry_run: bool = False,
    mapping: ImportMapping | None = None,
    chunk: int = 500,
) -> None:
    """Convert open ``invalid_row`` rows matching ``where`` again; adds to ``result``."""
    where = replace(where, reason=INVALID_ROW, status="open")
    runs: dict[str, ImportRun | None] = {}
    store = ImportRunStore(runtime.db)
    last_id = 0
    start = result.selected
    while result.selected - start < limit:
        rows = runtime.quarantine.for_replay(
            where, min(chunk, limit - (result.selected - start)), after_id=last_id
        )
        if not rows:
            break
        last_id = rows[-1].id
        result.selected += len(rows)
        for run_id in {r.import_run_id for r in rows if r.import_run_id} - set(runs):
            runs[run_id] = store.get(where.workspace_id, run_id)
        converted = _convert(runtime, rows, runs, mapping)
        if dry_run:
            result.replayed += len(converted.products) + sum(
                len(v) for v in converted.messages.values()
            )
            result.still_failing[INVALID_ROW] += len(converted.refused) + len(converted.kept)
            continue
        _apply(runtime, converted, result)


def _convert(
    runtime: Runtime,
    rows: list[QuarantineRow],
    runs: dict[str, ImportRun | None],
    override: ImportMapping | None,
) -> _Chunk:
    out = _Chunk()
    mappings: dict[str, ImportMapping | None] = {}
    for row in rows:
        run = runs.get(row.import_run_id) if row.import_run_id else None
        try:
            payload = orjson.loads(row.payload)
        except orjson.JSONDecodeError:
            payload = None
        record = record_rows(payload)
        mapping = _mapping(run, override, mappings) if run is not None else None
        source = _source(runtime, run, out.sources) if run is not None else None
        if run is None or record is None or mapping is None or source is None:
            out.kept.append(row)
            continue
        ctx = ImportContext(
            row.workspace_id,
            source.id,
            run.file_name,
            run.id,
            __version__,
            # The file's date stamps identify rows without a date on import; the run's start
            # is the closest date a replay still knows.
            default_timestamp=isoformat_us(run.started_us),
        )
        outcomes = convert_record(Converter(mapping, ctx), record)
        error = next((o for o in outcomes if isinstance(o, RowError)), None)
        if error is not None or not outcomes:
            detail = error.detail(run.file_name) if error is not None else row.detail
            out.refused.append((row, detail))
        elif mapping.kind == "products":
            out.products.extend((row, o) for o in outcomes if isinstance(o, dict))
        else:
            out.messages[source.id].extend((row, o) for o in outcomes if isinstance(o, dict))
    return out


def _mapping(
    run: ImportRun, override: ImportMapping | None, cache: dict[str, ImportMapping | None]
) -> ImportMapping | None:
    """The mapping to convert a run's rows with: the one given (if of the run's kind), else
    the one the run stored; None when neither can be had."""
    if override is not None:
        return override if override.kind == run.kind else None
    if run.id not in cache:
        try:
            doc = orjson.loads(run.mapping) if run.mapping else None
            cache[run.id] = (
                compile_mapping(doc, kind=run.kind, name=f"the mapping of run {run.id}")
                if isinstance(doc, dict)
                else None
            )
        except (orjson.JSONDecodeError, ConfigurationError):
            cache[run.id] = None
    return cache[run.id]


def _source(runtime: Runtime, run: ImportRun, cache: dict[str, Source]) -> Source | None:
    if run.source_id not in cache:
        found = runtime.admin.source_by_id(run.source_id)
        if found is None or found.workspace_id != run.workspace_id:
            return None
        cache[run.source_id] = found
    return cache[run.source_id]


def _apply(runtime: Runtime, converted: _Chunk, result: ReplayResult) -> None:
    now_us = runtime.now_us()
    quarantine = runtime.quarantine
    passing = [r for pairs in converted.messages.values() for r, _ in pairs]
    passing += [r for r, _ in converted.products]
    with runtime.db.write() as conn:
        claimed = quarantine.claim_open(
            conn,
            [r.id for r in passing]
            + [r.id for r, _ in converted.refused]
            + [r.id for r in converted.kept],
        )
        unchanged = [r.id for r in converted.kept if r.id in claimed]
        result.still_failing[INVALID_ROW] += len(unchanged)
        for row, detail in converted.refused:
            if row.id not in claimed:
                continue
            result.still_failing[INVALID_ROW] += 1
            if detail == row.detail:
                unchanged.append(row.id)
            else:  # a replay mapping found another problem: say that one
                fields = rejection_fields(Rejection(INVALID_ROW, detail, None), IMPORT)
                quarantine.still_failing(conn, row.id, fields, now_us)
        quarantine.count_replay(conn, unchanged, now_us)
    products = [(r, p) for r, p in converted.products if r.id in claimed]
    if products:
        ProductStore(runtime.db).upsert([p for _, p in products], now_us)
        with runtime.db.write() as conn:
            quarantine.resolve(conn, sorted({r.id for r, _ in products}), "replayed", now_us)
        result.replayed += len({r.id for r, _ in products})
    for source_id, pairs in converted.messages.items():
        pairs = [(r, m) for r, m in pairs if r.id in claimed]
        if pairs:
            _ingest(runtime, converted.sources[source_id], pairs, result)


def _ingest(
    runtime: Runtime,
    source: Source,
    pairs: list[tuple[QuarantineRow, dict[str, Any]]],
    result: ReplayResult,
) -> None:
    """The import's processing for converted messages; then close what it did not close."""
    ws = source.workspace_id
    ids = [m["messageId"] for _, m in pairs]
    with runtime.db.read() as conn:
        stored_before = runtime.profiles.known_message_ids(conn, ws, ids)
    events, rejected, _ = runtime.collector.build_rows(
        source, Envelope(messages=[m for _, m in pairs], implied_type=None)
    )
    refused_ids = {r["message_id"] for r in rejected}
    for r in rejected:
        result.still_failing[r["reason"]] += 1
    summary = runtime.processor.ingest_and_process(events, rejected, closing="replayed")
    result.processed += summary.processed
    now_us = runtime.now_us()
    with runtime.db.write() as conn:
        stored = runtime.profiles.known_message_ids(conn, ws, ids)
        open_now = runtime.quarantine.claim_open(conn, [r.id for r, _ in pairs])
        replayed: list[int] = []
        duplicates: list[int] = []
        for row, message in pairs:
            mid = message["messageId"]
            if mid in refused_ids:
                continue  # quarantined again by the pipeline, with that reason
            if mid in stored_before:
                duplicates.append(row.id)
            elif mid in stored:
                replayed.append(row.id)
        # Rows the processor closed by message id are done; these were stored under
        # another id (the replay's mapping changed the key) or were stored already.
        runtime.quarantine.resolve(conn, [i for i in replayed if i in open_now], "replayed", now_us)
        runtime.quarantine.resolve(
            conn, [i for i in duplicates if i in open_now], "duplicate", now_us
        )
    result.replayed += len(replayed)
    result.duplicates += len(duplicates)
