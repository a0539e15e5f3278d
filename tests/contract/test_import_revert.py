"""``import revert`` on both backends: the state after reverting a run equals the state of a
database that never saw it (a hypothesis property over live contacts and an import run)."""

from __future__ import annotations

import csv
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import select

from opencdp.clock import FrozenClock
from opencdp.imports.mapping import parse_mapping
from opencdp.runtime import Runtime
from opencdp.services.import_revert import revert_run
from opencdp.services.import_runs import ImportRequest, import_file
from opencdp.storage.import_runs import REVERTED, ImportRunStore
from opencdp.storage.schema import identifiers, profiles
from tests.conftest import make_settings

MAPPING = parse_mapping(
    "kind: customers\nfields:\n  user_id: id\n  email: email\n  city: tier\n", kind="customers"
)
Contact = tuple[dict[str, str], dict[str, Any]]


def snapshot(runtime: Runtime) -> set[tuple[frozenset[tuple[str, str]], frozenset[Any]]]:
    """Each live profile as (its identifiers, its traits): comparable across databases."""
    with runtime.db.read() as conn:
        live = conn.execute(select(profiles.c.id).where(profiles.c.merged_into.is_(None))).scalars()
        out = set()
        for pid in list(live):
            ids = frozenset(
                (r.id_type, r.id_value)
                for r in conn.execute(
                    select(identifiers.c.id_type, identifiers.c.id_value).where(
                        identifiers.c.profile_id == pid
                    )
                )
            )
            values = runtime.profiles.traits("default", pid)
            out.add((ids, frozenset((k, str(v.value)) for k, v in values.items())))
    return out


def contacts(runtime: Runtime, clock: FrozenClock, items: list[Contact]) -> None:
    for ids, traits in items:
        clock.advance(1)
        runtime.processor.upsert_contact("default", ids, traits)


def import_rows(runtime: Runtime, folder: Path, rows: list[tuple[str, str, str]]) -> str:
    path = folder / "customers.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("id", "email", "tier"), *rows])
    report = import_file(runtime, ImportRequest(path, MAPPING))
    return str(report["run"])


def test_revert_undoes_what_a_run_bridged_and_keeps_the_rest(runtime: Runtime) -> None:
    runtime.processor.upsert_contact("default", {"user_id": "u-1"}, {"plan": "gold"})
    runtime.processor.upsert_contact("default", {"email": "ann@example.com"}, {"name": "Ann"})
    before = snapshot(runtime)
    with tempfile.TemporaryDirectory() as folder:
        run_id = import_rows(runtime, Path(folder), [("u-1", "ann@example.com", "vip")])
    assert len(snapshot(runtime)) == 1  # the run merged them
    result = revert_run(runtime, "default", run_id)
    assert result["events_removed"] == 1 and result["profiles_rebuilt"] >= 1
    assert snapshot(runtime) == before
    run = ImportRunStore(runtime.db).get("default", run_id)
    assert run is not None and run.status == REVERTED and run.reverted_us


POOL_IDS = st.sampled_from(
    [
        {"user_id": "u1"},
        {"user_id": "u2"},
        {"email": "a@x.io"},
        {"email": "b@x.io"},
        {"user_id": "u1", "email": "b@x.io"},
        {"user_id": "u3", "email": "a@x.io"},
    ]
)
CONTACTS = st.lists(
    st.tuples(POOL_IDS, st.fixed_dictionaries({"n": st.integers(0, 3)})), max_size=4
)
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from(["a@x.io", "b@x.io", "c@x.io"]),
        st.sampled_from(["gold", "silver"]),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=CONTACTS, rows=ROWS, after=CONTACTS)
def test_reverting_a_run_equals_never_importing_it(
    before: list[Contact], rows: list[tuple[str, str, str]], after: list[Contact]
) -> None:
    note(f"before={before} rows={rows} after={after}")
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        clock_a, clock_b = FrozenClock(start), FrozenClock(start)
        with_run = Runtime(make_settings(Path(a)), clock=clock_a)
        never = Runtime(make_settings(Path(b)), clock=clock_b)
        try:
            contacts(with_run, clock_a, before)
            clock_a.advance(1)
            run_id = import_rows(with_run, Path(a), rows)
            contacts(with_run, clock_a, after)
            revert_run(with_run, "default", run_id)

            contacts(never, clock_b, before)
            clock_b.advance(1)
            contacts(never, clock_b, after)
            assert snapshot(with_run) == snapshot(never)
        finally:
            with_run.close()
            never.close()
