"""The ``file`` destination type in a temporary directory: files read back with csv, json
and pyarrow; names the same for the same batch on every attempt; nothing partial ever under
a final name; a failure to write retried and cleaned up."""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from opencdp.activate.destinations import file as file_type
from opencdp.activate.destinations.base import Message
from opencdp.activate.destinations.file import File, FileSettings, flatten

AT = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
NAME = re.compile(r"erp-20261204T101500Z-msg_1-[0-9a-f]{8}\.(csv|jsonl|parquet)")


def order(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "messageId": f"ev-{n}",
        "userId": f"user-{n}",
        "properties": {"order_id": f"o-{n}", "total": 10 * n + 0.5, "paid": n % 2 == 0},
        **extra,
    }


def message(n: int, data: Any = None, at: datetime = AT) -> Message:
    stored = {"type": "track", "receivedAt": "2026-12-04T10:15:00.123Z", **order(n)}
    return Message(f"msg_{n}", order(n) if data is None else data, stored, "orders", 1, at)


def drop(directory: Path, **settings: Any) -> File:
    return File("erp", FileSettings.model_validate({"directory": str(directory), **settings}))


def files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_csv_flattens_the_data_in_the_order_the_rows_show_their_keys(tmp_path: Path) -> None:
    dest = drop(tmp_path, format="csv")
    attempts = dest.send([message(1), message(2, order(2, coupon="XMAS")), message(3)])
    [name] = files(tmp_path)
    assert NAME.fullmatch(name) and name.endswith(".csv")
    with open(tmp_path / name, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == [
        "messageId",
        "userId",
        "properties.order_id",
        "properties.total",
        "properties.paid",
        "coupon",  # first seen in the second row: after the first row's keys
    ]
    assert rows[1] == ["ev-1", "user-1", "o-1", "10.5", "false", ""]
    assert rows[2] == ["ev-2", "user-2", "o-2", "20.5", "true", "XMAS"]
    assert len(rows) == 4
    assert [(a.status, dest.classify(a).outcome) for a in attempts] == [(200, "delivered")] * 3
    assert attempts[0].response == {
        "path": str(tmp_path / name),
        "bytes": (tmp_path / name).stat().st_size,
    }


def test_csv_columns_choose_and_order_what_is_written(tmp_path: Path) -> None:
    dest = drop(
        tmp_path,
        format="csv",
        delimiter=";",
        columns=["properties.order_id", "userId", "properties.missing"],
    )
    dest.send([message(1), message(2, order(2, userId='Ann; "the" first\nline'))])
    [name] = files(tmp_path)
    with open(tmp_path / name, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter=";"))
    assert rows == [
        ["properties.order_id", "userId", "properties.missing"],
        ["o-1", "user-1", ""],
        ["o-2", 'Ann; "the" first\nline', ""],  # quoted, and read back whole
    ]


def test_csv_values_lists_and_data_that_is_not_an_object(tmp_path: Path) -> None:
    data = [
        {"tags": ["a", "b"], "empty": {}, "none": None, "n": 3, "big": 10**20},
        {"tags": [], "n": 1.25},
    ]
    dest = drop(tmp_path, format="csv")
    dest.send([message(1, data[0]), message(2, data[1]), message(3, "just text")])
    [name] = files(tmp_path)
    with open(tmp_path / name, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows[0] == {
        "tags": '["a","b"]',
        "empty": "{}",
        "none": "",
        "n": "3",
        "big": "100000000000000000000",
        "value": "",
    }
    assert (rows[1]["tags"], rows[1]["n"]) == ("[]", "1.25")
    assert rows[2]["value"] == "just text"


def test_jsonl_keeps_each_messages_data_as_it_is(tmp_path: Path) -> None:
    dest = drop(tmp_path, format="jsonl")
    data = [order(1), {"nested": {"deep": [1, {"x": None}]}}, ["a", "list"]]
    dest.send([message(n + 1, d) for n, d in enumerate(data)])
    [name] = files(tmp_path)
    assert name.endswith(".jsonl")
    lines = (tmp_path / name).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == data


def test_parquet_keeps_types_and_writes_a_mixed_column_as_text(tmp_path: Path) -> None:
    dest = drop(tmp_path, format="parquet")
    rows = [
        {"id": 1, "total": 10.5, "paid": True, "code": "A", "tags": ["x"], "odd": 1},
        {"id": 2, "total": None, "paid": False, "code": "B", "tags": [], "odd": "one"},
    ]
    dest.send([message(1, rows[0]), message(2, rows[1])])
    [name] = files(tmp_path)
    table = pq.read_table(tmp_path / name)
    types = {f.name: str(f.type) for f in table.schema}
    assert types == {
        "id": "int64",
        "total": "double",
        "paid": "bool",
        "code": "string",
        "tags": "string",
        "odd": "string",
    }
    assert table.to_pylist() == [
        {"id": 1, "total": 10.5, "paid": True, "code": "A", "tags": '["x"]', "odd": "1"},
        {"id": 2, "total": None, "paid": False, "code": "B", "tags": "[]", "odd": "one"},
    ]


def test_parquet_columns_and_nested_keys(tmp_path: Path) -> None:
    dest = drop(tmp_path, format="parquet", columns=["properties.total", "userId"])
    dest.send([message(1), message(2)])
    [name] = files(tmp_path)
    assert pq.read_table(tmp_path / name).to_pydict() == {
        "properties.total": [10.5, 20.5],
        "userId": ["user-1", "user-2"],
    }


def test_a_retry_of_the_same_batch_replaces_its_file(tmp_path: Path) -> None:
    dest = drop(tmp_path, format="jsonl")
    dest.send([message(1), message(2)])
    # a later attempt of the same batch (another attempt time, a fixed mapping)
    fixed = [message(1, {"v": 2}, AT + timedelta(hours=6)), message(2, {"v": 2})]
    dest.send(fixed)
    [name] = files(tmp_path)
    assert (tmp_path / name).read_text().splitlines() == ['{"v":2}', '{"v":2}']


def test_another_batch_starting_with_the_same_message_never_replaces_a_file(
    tmp_path: Path,
) -> None:
    dest = drop(tmp_path, format="jsonl")
    dest.send([message(1), message(2)])
    dest.send([message(1)])  # a replay of message 1 alone
    assert len(files(tmp_path)) == 2
    assert all(NAME.fullmatch(n) for n in files(tmp_path))


def test_the_name_uses_the_prefix_or_the_destination_id(tmp_path: Path) -> None:
    drop(tmp_path, prefix="orders.daily").send([message(1)])
    [name] = files(tmp_path)
    assert name.startswith("orders.daily-20261204T101500Z-msg_1-")
    assert File("my erp/2", FileSettings(directory=str(tmp_path))).prefix == "my_erp_2"


def test_without_a_received_time_the_name_uses_the_events_time_then_the_attempts(
    tmp_path: Path,
) -> None:
    dest = drop(tmp_path)
    timed = Message("msg_a", {}, {"timestamp": "2026-01-02T03:04:05Z"}, "s", 1, AT)
    untimed = Message("msg_b", {}, {}, "s", 1, AT)
    dest.send([timed])
    dest.send([untimed])
    names = files(tmp_path)
    assert names[0].startswith("erp-20260102T030405Z-msg_a-")
    assert names[1].startswith("erp-20261204T230000Z-msg_b-")


def test_no_partial_file_is_ever_visible_under_its_final_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a file already dropped for this batch (an earlier attempt)
    dest = drop(tmp_path, format="jsonl")
    dest.send([message(n) for n in range(1, 4)])
    [final] = files(tmp_path)
    before = (tmp_path / final).read_bytes()
    seen: list[tuple[list[str], bytes]] = []
    real = file_type.WRITERS["jsonl"]

    def watched(out: IO[bytes], rows: Any, s: FileSettings) -> None:
        real(out, rows[:1], s)
        out.flush()
        # When the new file is half written: only the old one is under the final name
        seen.append((files(tmp_path), (tmp_path / final).read_bytes()))
        real(out, rows[1:], s)

    monkeypatch.setitem(file_type.WRITERS, "jsonl", watched)
    dest.send([message(n, {"n": n}) for n in range(1, 4)])
    [(listing, content)] = seen
    assert content == before
    [part] = [n for n in listing if n != final]
    assert part.startswith(f".{final}.") and part.endswith(".part")
    # Then the complete new one replaced it, and nothing else is left
    assert files(tmp_path) == [final]
    assert (tmp_path / final).read_text().splitlines() == ['{"n":1}', '{"n":2}', '{"n":3}']


def test_a_reader_polling_the_directory_sees_only_complete_files(tmp_path: Path) -> None:
    dest = drop(tmp_path, format="csv")
    stop = threading.Event()
    incomplete: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            for name in os.listdir(tmp_path):
                if name.startswith("."):
                    continue
                with open(tmp_path / name, newline="") as f:
                    if len(list(csv.reader(f))) != 2001:  # the header and every row
                        incomplete.append(name)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for batch in range(5):
            dest.send([message(batch * 10_000 + n) for n in range(2000)])
    finally:
        stop.set()
        thread.join()
    assert incomplete == []
    assert len(files(tmp_path)) == 5


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EIO])
def test_a_failure_to_write_is_retried_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    dest = drop(tmp_path, format="parquet")

    def failing(_fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(file_type.os, "fsync", failing)
    attempts = dest.send([message(1), message(2)])
    monkeypatch.undo()
    assert files(tmp_path) == []  # no final file, no .part left behind
    for a in attempts:
        assert a.status is None and a.error == f"io: {errno.errorcode[code]} {os.strerror(code)}"
        assert dest.classify(a).outcome == "retry"
    # and the retry, once the disk is back, writes it
    assert [a.status for a in dest.send([message(1), message(2)])] == [200, 200]


def test_a_missing_directory_is_retried_not_created(tmp_path: Path) -> None:
    dest = drop(tmp_path / "not-mounted")
    [attempt] = dest.send([message(1)])
    assert attempt.error is not None and "create it (or mount it)" in attempt.error
    assert dest.classify(attempt).outcome == "retry"
    assert not (tmp_path / "not-mounted").exists()


def test_a_directory_that_is_read_only_is_retried(tmp_path: Path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    dest = drop(target)
    (target).chmod(0o500)
    try:
        if os.access(target, os.W_OK):  # root writes anyway
            pytest.skip("running as a user that can write to a read-only directory")
        [attempt] = dest.send([message(1)])
    finally:
        target.chmod(0o700)
    assert attempt.error is not None and attempt.error.startswith("io: EACCES")
    assert dest.classify(attempt).outcome == "retry"


def test_nothing_to_send_writes_nothing(tmp_path: Path) -> None:
    assert drop(tmp_path).send([]) == []
    assert files(tmp_path) == []


def test_flatten() -> None:
    assert flatten({"a": {"b": {"c": 1}, "d": []}, "e": {}}) == {"a.b.c": 1, "a.d": [], "e": {}}
    assert flatten([1, 2]) == {"value": [1, 2]}


@pytest.mark.parametrize(
    "settings, problem",
    [
        ({"directory": "relative/dir"}, "absolute path"),
        ({"format": "xlsx"}, "format"),
        ({"prefix": "../escape"}, "prefix"),
        ({"prefix": ".hidden"}, "prefix"),
        ({"columns": []}, "at least one column"),
        ({"columns": ["a", "a"]}, "named twice"),
        ({"format": "jsonl", "columns": ["a"]}, "columns are for csv, parquet"),
        ({"format": "csv", "delimiter": ";;"}, "delimiter"),
        ({"batch_size": 0}, "batch_size"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_settings_refuse_what_cannot_work(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        FileSettings.model_validate({"directory": "/srv/drop", **settings})
