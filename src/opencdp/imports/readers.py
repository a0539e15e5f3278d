"""Streaming file readers: CSV, JSON Lines, Parquet and whitespace-separated text, in chunks.

Every reader yields :class:`Chunk` objects of at most ``chunk_size`` rows, each row a dict of
column -> value together with its 1-based row number, so memory stays flat however large the
file is. Row numbers are what a person looking at the file sees:

* CSV and whitespace files: the record number counting the header as row 1 (the line number
  in an editor, unless a quoted value spans lines);
* JSON Lines: the line number;
* Parquet: the row index, from 1.

CSV goes through ``pyarrow.csv.open_csv`` (multi-threaded parsing, all columns read as text so
the import's converter does every type conversion and can name the row of a bad value); rows with
the wrong number of fields are skipped by PyArrow and reported here as :class:`BadRow`. Parquet
goes through ``ParquetFile.iter_batches``. JSON Lines and whitespace files are read line by line:
``pyarrow.json`` fails a whole block on one malformed line and turns nested objects of varying
shape into structs padded with nulls, which would change Segment payloads.
"""

from __future__ import annotations

import csv as csvlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from opencdp.errors import ConfigurationError
from opencdp.imports.mapping import CsvOptions, ImportMapping


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row the reader could not split into columns (wrong field count, not JSON)."""

    row: int
    problem: str
    text: str


@dataclass(slots=True)
class Chunk:
    """Consecutive rows of a file: ``rows[i]`` has row number ``numbers[i]``.

    CSV and Parquet chunks also keep the columns PyArrow read (``batch``), so that a column's
    values can be taken as a set (:meth:`encoded`) instead of row by row.
    """

    rows: list[dict[str, Any]]
    numbers: list[int]
    bad: list[BadRow] = field(default_factory=list)
    bytes_read: int = 0
    batch: pa.RecordBatch | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def encoded(self, column: str, missing: Any) -> tuple[list[Any], list[int]]:
        """Column ``column`` dictionary-encoded: its distinct values and, per row, the index
        of the row's value among them; ``missing`` stands for a row without the column.

        From the PyArrow columns where the chunk has them (``dictionary_encode``, nulls
        included as a value), else by hashing the rows' values (values that cannot be hashed,
        such as nested JSON, each get an entry of their own).
        """
        if self.batch is not None:
            names = self.batch.schema.names
            if column not in names:
                return [missing], [0] * len(self.rows)
            try:
                encoded = pc.dictionary_encode(
                    self.batch.column(names.index(column)), null_encoding="encode"
                )
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                pass  # a nested type: hash the rows' values below
            else:
                return encoded.dictionary.to_pylist(), encoded.indices.to_pylist()
        distinct: list[Any] = []
        seen: dict[tuple[type, Any], int] = {}
        indices: list[int] = []
        for row in self.rows:
            value = row.get(column, missing)
            try:
                key = (type(value), value)
                index = seen.get(key)
                if index is None:
                    index = seen[key] = len(distinct)
                    distinct.append(value)
            except TypeError:  # unhashable: a value of its own
                index = len(distinct)
                distinct.append(value)
            indices.append(index)
        return distinct, indices

    @property
    def last_row(self) -> int:
        """The highest row number this chunk covers (good or bad), 0 when empty."""
        return max(
            self.numbers[-1] if self.numbers else 0, max((b.row for b in self.bad), default=0)
        )


def detect_format(path: Path, mapping: ImportMapping | None) -> str:
    """The file's format: the mapping's ``format``, else from the file extension."""
    if mapping is not None and mapping.format:
        return mapping.format
    name = path.name.lower()
    for suffix, fmt in (
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
        (".csv", "csv"),
        (".tsv", "csv"),
        (".txt", "whitespace"),
    ):
        if name.endswith(suffix):
            return fmt
    raise ConfigurationError(
        f"cannot tell the format of {path.name}: name it .csv, .jsonl or .parquet, "
        "or set format: in the mapping"
    )


def total_size(path: Path, fmt: str) -> tuple[int, str]:
    """What progress is measured against: (rows, "rows") for Parquet, else (bytes, "bytes")."""
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows, "rows"
    return path.stat().st_size, "bytes"


def read_chunks(
    path: Path,
    mapping: ImportMapping | None,
    *,
    chunk_size: int = 10_000,
    skip_through: int = 0,
) -> Iterator[Chunk]:
    """Stream ``path`` in chunks; rows numbered ``<= skip_through`` are skipped (resume).

    Raises :class:`ConfigurationError` for files that cannot be read at all (missing, not the
    format they claim to be); single bad rows are reported in :attr:`Chunk.bad` instead.
    """
    if not path.is_file():
        raise ConfigurationError(f"{path}: no such file")
    fmt = detect_format(path, mapping)
    csv_options = mapping.csv if mapping is not None else CsvOptions()
    columns = mapping.columns if mapping is not None else ()
    if fmt == "csv":
        if path.name.lower().endswith(".tsv") and (mapping is None or mapping.format is None):
            csv_options = CsvOptions(delimiter="\t", header=csv_options.header)
        if mapping is not None and not mapping.passthrough:
            mapping.check_columns(columns or _csv_header(path, csv_options), path.name)
        source: Iterator[Chunk] = _csv(path, csv_options, columns, chunk_size)
    elif fmt == "jsonl":
        source = _jsonl(path, chunk_size)
    elif fmt == "parquet":
        if mapping is not None and not mapping.passthrough:
            mapping.check_columns(_parquet_columns(path), path.name)
        source = _parquet(path, chunk_size)
    else:
        if mapping is not None and not mapping.passthrough:
            mapping.check_columns(columns, path.name)
        source = _whitespace(path, columns, chunk_size)
    # JSON Lines have no header: a key missing from some lines is normal there, so the
    # mapping's column names cannot be checked up front.
    for chunk in source:
        if skip_through and chunk.last_row <= skip_through:
            continue
        if skip_through and chunk.numbers and chunk.numbers[0] <= skip_through:
            keep = [i for i, n in enumerate(chunk.numbers) if n > skip_through]
            chunk.rows = [chunk.rows[i] for i in keep]
            chunk.numbers = [chunk.numbers[i] for i in keep]
            if chunk.batch is not None:
                chunk.batch = chunk.batch.take(pa.array(keep, pa.int64()))
            chunk.bad = [b for b in chunk.bad if b.row > skip_through]
        yield chunk


def _csv(
    path: Path, options: CsvOptions, columns: tuple[str, ...], chunk_size: int
) -> Iterator[Chunk]:
    names = list(columns) if columns else _csv_header(path, options)
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ConfigurationError(f"{path.name}: the header repeats column(s) {', '.join(dupes)}")
    bad: list[BadRow] = []

    def on_invalid(row: Any) -> str:
        # PyArrow reports the record number (header = 1) when parsing single-threaded per block.
        bad.append(
            BadRow(
                int(row.number or 0),
                f"expected {row.expected_columns} fields, found {row.actual_columns}",
                str(row.text)[:2000],
            )
        )
        return "skip"

    read_options = pacsv.ReadOptions(
        block_size=4 << 20,
        use_threads=False,
        column_names=names,
        skip_rows=1 if options.header else 0,
        encoding=options.encoding,
    )
    parse_options = pacsv.ParseOptions(
        delimiter=options.delimiter,
        quote_char=options.quote or False,
        newlines_in_values=True,
        invalid_row_handler=on_invalid,
    )
    convert_options = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    first = 2 if options.header else 1
    handle = path.open("rb")
    try:
        try:
            reader = pacsv.open_csv(
                handle,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        except pa.ArrowInvalid as exc:
            raise ConfigurationError(f"{path.name}: not a readable CSV file: {exc}") from None
        next_number = first
        reported = 0  # bad rows already handed out
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise ConfigurationError(
                    f"{path.name}: CSV parsing stopped near row {next_number}: {exc}"
                ) from None
            rows = batch.to_pylist()
            # The handler has seen every bad row up to the end of this batch (and maybe some of
            # the next block's): number the good rows around the bad ones.
            bad_numbers = {b.row for b in bad}
            numbers = []
            for _ in rows:
                while next_number in bad_numbers:
                    next_number += 1
                numbers.append(next_number)
                next_number += 1
            last = numbers[-1] if numbers else next_number - 1
            mine = [b for b in bad[reported:] if b.row <= last]
            reported += len(mine)
            pos = handle.tell()
            for start in range(0, len(rows), chunk_size):
                part = rows[start : start + chunk_size]
                nums = numbers[start : start + chunk_size]
                bad_here = [b for b in mine if b.row <= nums[-1]] if nums else mine
                mine = [b for b in mine if b not in bad_here]
                yield Chunk(part, nums, bad_here, pos, batch.slice(start, chunk_size))
        leftover = bad[reported:]
        if leftover:
            yield Chunk([], [], leftover, handle.tell())
    finally:
        handle.close()


def _csv_header(path: Path, options: CsvOptions) -> list[str]:
    if not options.header:
        raise ConfigurationError(f"{path.name}: no header row: list the columns in the mapping")
    with path.open(encoding=options.encoding, newline="") as f:
        try:
            header = next(csvlib.reader(f, delimiter=options.delimiter, quotechar=options.quote))
        except StopIteration:
            raise ConfigurationError(f"{path.name}: the file is empty") from None
        except (csvlib.Error, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{path.name}: cannot read the header row: {exc}") from None
    names = [h.strip().lstrip("\ufeff") for h in header]
    if not any(names):
        raise ConfigurationError(f"{path.name}: the header row is empty")
    return [n or f"column_{i + 1}" for i, n in enumerate(names)]


def _jsonl(path: Path, chunk_size: int) -> Iterator[Chunk]:
    with path.open("rb") as f:
        rows: list[dict[str, Any]] = []
        numbers: list[int] = []
        bad: list[BadRow] = []
        for number, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                bad.append(
                    BadRow(number, f"not valid JSON: {exc}", text[:2000].decode(errors="replace"))
                )
            else:
                if isinstance(value, dict):
                    rows.append(value)
                    numbers.append(number)
                else:
                    bad.append(
                        BadRow(
                            number,
                            "each line must be a JSON object",
                            text[:2000].decode(errors="replace"),
                        )
                    )
            if len(rows) >= chunk_size:
                yield Chunk(rows, numbers, bad, f.tell())
                rows, numbers, bad = [], [], []
        if rows or bad:
            yield Chunk(rows, numbers, bad, f.tell())


def _parquet_columns(path: Path) -> list[str]:
    try:
        return list(pq.read_schema(path).names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigurationError(f"{path.name}: not a readable Parquet file: {exc}") from None


def _parquet(path: Path, chunk_size: int) -> Iterator[Chunk]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigurationError(f"{path.name}: not a readable Parquet file: {exc}") from None
    number = 1
    for batch in pf.iter_batches(batch_size=chunk_size):
        rows = batch.to_pylist()
        numbers = list(range(number, number + len(rows)))
        number += len(rows)
        yield Chunk(rows, numbers, [], number - 1, batch)


def _whitespace(path: Path, columns: tuple[str, ...], chunk_size: int) -> Iterator[Chunk]:
    with path.open("rb") as f:
        wrapper = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline=None)
        names = list(columns)
        rows: list[dict[str, Any]] = []
        numbers: list[int] = []
        bad: list[BadRow] = []
        size = 0
        for number, line in enumerate(wrapper, start=1):
            size += len(line) + 1
            fields = line.split()
            if not fields:
                continue
            if number == 1 and not names:
                names = fields
                continue
            if number == 1 and fields == names:
                continue  # a header that repeats the mapping's column names
            if number == 1 and not any(ch.isdigit() for ch in fields[0]):
                continue  # a header with other names (CDNOW's): the mapping's names win
            if len(fields) != len(names):
                bad.append(
                    BadRow(
                        number,
                        f"expected {len(names)} fields, found {len(fields)}",
                        line.strip()[:2000],
                    )
                )
            else:
                rows.append(dict(zip(names, fields, strict=True)))
                numbers.append(number)
            if len(rows) >= chunk_size:
                yield Chunk(rows, numbers, bad, size)
                rows, numbers, bad = [], [], []
        if rows or bad:
            yield Chunk(rows, numbers, bad, size)
