"""``file``: CSV, JSON Lines or Parquet files dropped into a directory — the nightly hand-off
to an ERP or a BI tool that picks up whatever appears there.

Each :meth:`File.send` call writes one file of its messages' data, one row each. A reader
never sees half a file: it is written under a dot-name ending in ``.part`` in the same
directory, flushed to disk, then renamed (atomically) to

    ``{prefix}-{time}-{first message id}-{digest}.{csv|jsonl|parquet}``

where ``time`` is when OpenCDP received the batch's first event (UTC, ``20261204T113141Z``)
and ``digest`` is 8 hex digits of SHA-256 over all the batch's message ids. Nothing in the
name depends on the attempt, so sending the same batch again — after a failure between the
rename and the dispatcher recording it, such as a crash — replaces the file rather than
adding a second copy; the digest keeps a different batch that starts with the same message
(a replay of that message alone) from replacing a file holding other rows. Rows can still
arrive twice in two different files when a batch is formed again differently; the data's
``messageId`` (kept by default) lets the reader drop them.

JSON Lines writes each message's data as it is. CSV and Parquet flatten it: nested objects'
keys joined with ``.`` (``properties.total``), lists and empty objects as JSON text, data that
is not an object as a ``value`` column. Their columns are ``columns`` when set (missing ones
empty, others left out), otherwise every key in the order the batch's rows first show it —
stable for the same data, but free to differ between files: set ``columns`` for a reader
that expects a fixed layout. A Parquet column whose values do not share one type is written
as text.

The directory must exist (a missing mount is not quietly replaced by a local directory); a
file that cannot be written (a missing directory, permissions, a full disk) is retried.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import os
import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import IO, Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator, model_validator

from opencdp.activate.destinations.base import (
    Attempt,
    DestinationSettings,
    DestinationType,
    Message,
)
from opencdp.timeutil import parse_timestamp

Format = Literal["csv", "jsonl", "parquet"]
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
#: a directory's fsync is refused by some file systems (it is then not needed or not possible)
_NO_DIRECTORY_SYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF})


class FileSettings(DestinationSettings):
    directory: str = Field(description="the absolute path of an existing directory to drop into")
    format: Format = Field("jsonl", description="csv, jsonl (JSON Lines) or parquet")
    prefix: str | None = Field(
        None, description="the start of every file's name (default: the destination's id)"
    )
    columns: list[str] | None = Field(
        None,
        description="csv and parquet: the columns in order, flattened keys such as "
        "properties.total (default: every key, in the order the rows show them)",
    )
    delimiter: str = Field(",", description="csv: the character between fields")
    batch_size: int = Field(10_000, ge=1, le=1_000_000, description="the most rows in one file")

    @field_validator("directory")
    @classmethod
    def _directory(cls, value: str) -> str:
        if "\x00" in value or not os.path.isabs(value):
            raise ValueError(f"directory {value!r}: write an absolute path")
        return os.path.normpath(value)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not _PREFIX.fullmatch(value):
            raise ValueError(
                "prefix: letters, digits, '.', '_' and '-', starting with a letter or digit"
            )
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value or any(not c.strip() for c in value):
                raise ValueError("columns: name at least one column, none of them empty")
            if len(set(value)) != len(value):
                raise ValueError("columns: a column is named twice")
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        if len(value) != 1 or value in '"\r\n':
            raise ValueError("delimiter: one character, not a quote or a line break")
        return value

    @model_validator(mode="after")
    def _format(self) -> FileSettings:
        if self.columns is not None and self.format == "jsonl":
            raise ValueError("columns: jsonl keeps the data as it is; columns are for csv, parquet")
        return self


class File(DestinationType):
    name = "file"
    summary = "CSV, JSON Lines or Parquet files dropped into a directory, renamed when complete"
    Settings: ClassVar[type[DestinationSettings]] = FileSettings
    example: ClassVar[dict[str, Any]] = {"directory": "/srv/handoff/erp", "format": "csv"}

    def __init__(self, destination_id: str, settings: DestinationSettings) -> None:
        super().__init__(destination_id, settings)
        assert isinstance(settings, FileSettings)
        self.file = settings
        self.prefix = settings.prefix or _UNSAFE.sub("_", destination_id)

    @property
    def batch_size(self) -> int:
        return self.file.batch_size

    def send(self, messages: Sequence[Message]) -> list[Attempt]:
        if not messages:
            return []
        s = self.file
        final = file_name(self.prefix, messages, s.format)
        path = os.path.join(s.directory, final)
        # Unique per writer: two dispatchers sending the same batch never share a .part file.
        part = os.path.join(s.directory, f".{final}.{os.getpid()}-{secrets.token_hex(4)}.part")
        record: dict[str, Any] = {"path": path, "format": s.format, "rows": len(messages)}
        if not os.path.isdir(s.directory):
            error = f"io: {s.directory} is no directory; create it (or mount it)"
            return [Attempt(None, error, request=record)] * len(messages)
        try:
            with open(part, "xb") as out:
                WRITERS[s.format](out, [m.data for m in messages], s)
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
            os.replace(part, path)
            _sync_directory(s.directory)
        except Exception as exc:  # a disk, a permission, a bug: retried, the .part removed
            _remove(part)
            kind = "io" if isinstance(exc, OSError) else "write_failed"
            return [Attempt(None, f"{kind}: {_describe(exc)}", request=record)] * len(messages)
        attempt = Attempt(200, request=record, response={"path": path, "bytes": size})
        return [attempt] * len(messages)


def file_name(prefix: str, messages: Sequence[Message], fmt: Format) -> str:
    """The final name of the file holding ``messages``: the same for the same batch on
    every attempt (see the module's docstring)."""
    first = messages[0]
    when = _received(first)
    digest = hashlib.sha256("\n".join(m.id for m in messages).encode()).hexdigest()[:8]
    first_id = _UNSAFE.sub("_", first.id)[:64]
    return f"{prefix}-{when:%Y%m%dT%H%M%SZ}-{first_id}-{digest}.{fmt}"


def _received(m: Message) -> datetime:
    """When OpenCDP received ``m``'s event (else its time, else this attempt's)."""
    for key in ("receivedAt", "timestamp"):
        try:
            return parse_timestamp(m.event[key])
        except (KeyError, ValueError):
            continue
    return m.at


def flatten(data: Any) -> dict[str, Any]:
    """``data`` as one row: nested objects' keys joined with ``.``, in their order; data
    that is not an object under ``value``."""
    if not isinstance(data, dict):
        return {"value": data}
    row: dict[str, Any] = {}

    def walk(obj: dict[str, Any], path: str) -> None:
        for key, value in obj.items():
            name = f"{path}.{key}" if path else str(key)
            if isinstance(value, dict) and value:
                walk(value, name)
            else:
                row[name] = value

    walk(data, "")
    return row


def table(
    rows: Sequence[Any], columns: Sequence[str] | None
) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and the flattened rows of a CSV or Parquet file."""
    flat = [flatten(r) for r in rows]
    if columns is None:
        # dict keys keep their first appearance's order: the batch's own column order
        columns = list(dict.fromkeys(k for row in flat for k in row))
    return list(columns), flat


def text(value: Any) -> str:
    """A value as a CSV field: empty for null, ``true``/``false``, JSON for lists."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def write_csv(out: IO[bytes], rows: Sequence[Any], s: FileSettings) -> None:
    columns, flat = table(rows, s.columns)
    stream = io.TextIOWrapper(out, encoding="utf-8", newline="")
    writer = csv.writer(stream, delimiter=s.delimiter)
    writer.writerow(columns)
    for row in flat:
        writer.writerow([text(row.get(c)) for c in columns])
    stream.flush()
    stream.detach()  # the file is closed by its owner, after fsync


def write_jsonl(out: IO[bytes], rows: Sequence[Any], _s: FileSettings) -> None:
    for row in rows:
        out.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS))


def write_parquet(out: IO[bytes], rows: Sequence[Any], s: FileSettings) -> None:
    # imported here: pyarrow costs every process that starts a tenth of a second
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, flat = table(rows, s.columns)
    arrays = [_column([row.get(c) for row in flat]) for c in columns]
    pq.write_table(pa.table(arrays, names=columns), out)


def _column(values: list[Any]) -> Any:
    """A Parquet column of ``values``: their own type when they share one, else text."""
    import pyarrow as pa

    if not any(isinstance(v, list | dict) for v in values):
        try:
            return pa.array(values)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
    return pa.array([None if v is None else text(v) for v in values], type=pa.string())


WRITERS = {"csv": write_csv, "jsonl": write_jsonl, "parquet": write_parquet}


def _sync_directory(directory: str) -> None:
    """Make the rename durable (POSIX: the directory's entry is data of its own)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError as exc:
        if exc.errno in _NO_DIRECTORY_SYNC:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_DIRECTORY_SYNC:
            raise
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        name = errno.errorcode.get(exc.errno or 0, "")
        return (
            f"{name} {exc.strerror}: {exc.filename}" if exc.filename else f"{name} {exc.strerror}"
        )
    return f"{type(exc).__name__}: {exc}"
