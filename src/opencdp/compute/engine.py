"""The compute engine: evaluates definitions and stores what they computed.

* **Batch** (:meth:`ComputeEngine.compute`): one definition over every live profile of its
  workspace, in one SQL statement (an audience's returns only who enters and who leaves; the
  reference evaluator, profile by profile, for the one corner SQL does not express).
* **Real time** (:meth:`ComputeEngine.changed`, the processor's batch listener): inside the
  micro-batch's transaction, each definition is evaluated, in dependency order and set-based,
  for the profiles whose new events, traits or read values it reads (see ``changed``);
  functions over the population are left to the schedule.

Either way the values that changed are stored (``computed_values``) and each audience entry
and exit becomes an ``Audience Entered`` / ``Audience Exited`` event on the profile's
timeline, in the same transaction. A definition that fails is marked ``failed`` with its error
and never stops the batch or the other definitions.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

import orjson

from opencdp.clock import Clock
from opencdp.compute.reach import Reach, dependency_order
from opencdp.metrics import Metrics
from opencdp.query import ast
from opencdp.query.catalog import keys_in
from opencdp.query.evaluate import Evaluator, ProfileData
from opencdp.query.functions import FUNCTIONS, apply, quintiles
from opencdp.query.parser import Definition, DefinitionError, parse
from opencdp.resolve.batch import BatchChanges, StoredEvent
from opencdp.storage.db import Connection, Database
from opencdp.storage.definition_sql import NotCompiled
from opencdp.storage.definitions import FAILED, READY, DefinitionRow, DefinitionStore
from opencdp.storage.product_lookup import products_by_id
from opencdp.storage.profiles import ProfileStore
from opencdp.timeutil import from_us, isoformat_us, to_us
from opencdp.ttl_cache import TtlCache

log = logging.getLogger(__name__)

ENTERED, EXITED = "Audience Entered", "Audience Exited"
_ABSENT = object()


@dataclass(frozen=True)
class Computation:
    """What one computation changed."""

    size: int  # profiles with a value (audiences: members)
    changed: int  # profiles whose value changed
    entered: int = 0
    exited: int = 0


#: What computes a function the engine cannot (``clv``): (connection, workspace, the
#: function's arguments, only these profiles or all, now in µs) → profile id → value.
Provider = Callable[[Connection, str, tuple[Any, ...], Sequence[str] | None, int], dict[str, Any]]


@dataclass(frozen=True)
class Parsed:
    """A stored definition with its parsed query."""

    row: DefinitionRow
    definition: Definition

    @property
    def key(self) -> str:
        return self.row.key


class ComputeEngine:
    """Computes the definitions of every workspace (collaborators given explicitly)."""

    def __init__(
        self,
        db: Database,
        definitions: DefinitionStore,
        profiles: ProfileStore,
        clock: Clock,
        metrics: Metrics | None = None,
        cache_seconds: float = 2.0,
        providers: Mapping[str, Provider] | None = None,
    ) -> None:
        self.db = db
        self.providers = dict(providers or {})
        self.definitions = definitions
        self.profiles = profiles
        self.clock = clock
        self.metrics = metrics
        #: told of the membership events stored, in their transaction (activation routes them)
        self.emitted: Callable[[Connection, str, Sequence[StoredEvent]], Any] | None = None
        self._parsed: TtlCache[str, list[Parsed]] = TtlCache(clock, cache_seconds)
        self._versions: dict[str, tuple[int, int | None]] = {}

    def now_us(self) -> int:
        return to_us(self.clock.now())

    # -- definitions ------------------------------------------------------------------------------
    def enabled(self, workspace_id: str) -> list[Parsed]:
        """The workspace's enabled definitions, parsed, in dependency order (cached briefly)."""
        return self._parsed.get(workspace_id, lambda: self._load(workspace_id))

    def enabled_in(self, conn: Connection, workspace_id: str) -> list[Parsed]:
        """:meth:`enabled`, checked against the definitions as ``conn``'s transaction sees
        them: a definition stored a moment ago (by the API, in another process) is in the
        very next batch, not after the cache expires."""
        version = self.definitions.version(conn, workspace_id)
        if self._versions.get(workspace_id) != version:
            self.forget(workspace_id)
            self._versions[workspace_id] = version
        return self.enabled(workspace_id)

    @contextmanager
    def shared(self) -> Iterator[None]:
        """One round of batch computations: within it, providers may share work between
        definitions (the three ``clv()`` outputs read one summary of the orders)."""
        with ExitStack() as stack:
            for provider in self.providers.values():
                share = getattr(provider, "shared", None)
                if share is not None:
                    stack.enter_context(share())
            yield

    def forget(self, workspace_id: str) -> None:
        """Definitions changed: read them again."""
        self._parsed.forget(workspace_id)

    def _load(self, workspace_id: str) -> list[Parsed]:
        parsed: dict[str, Parsed] = {}
        for row in self.definitions.of_workspace(workspace_id):
            if not row.enabled:
                continue
            try:
                parsed[row.key] = Parsed(row, parse(row.query, row.kind, row.type))  # type: ignore[arg-type]
            except DefinitionError:  # stored before a stricter parser: failed at compute time
                continue
        order = dependency_order({k: p.definition.traits for k, p in parsed.items()})
        return [parsed[k] for k in order]

    # -- batch ------------------------------------------------------------------------------------
    def compute(self, workspace_id: str, key: str) -> Computation:
        """Evaluate definition ``key`` over every live profile and store what changed."""
        row = self.definitions.get(workspace_id, key)
        now = self.now_us()
        partial = False
        try:
            definition = parse(row.query, row.kind, row.type)  # type: ignore[arg-type]
            computed = self._computed_keys(workspace_id)
            with self.db.read() as conn:
                changes = self._membership_changes(conn, row, definition, now, computed)
                if changes is not None:  # only the members that enter or leave
                    values = dict.fromkeys(changes[0], True) | dict.fromkeys(changes[1], False)
                    current = dict.fromkeys(changes[1], True)
                else:
                    found = self._value_changes(conn, row, definition, now, computed)
                    partial = found is not None
                    if found is not None:  # the values the database could not tell unchanged
                        values, current = found
                    else:
                        values = self.values(conn, workspace_id, definition, now, computed)
                        current = self.definitions.current(conn, workspace_id, key)
        except Exception as exc:  # a failing definition never stops the others
            self.definitions.set_status(
                workspace_id, key, status=FAILED, error=str(exc), computed_us=now
            )
            return Computation(0, 0)
        with self.db.write() as conn:
            done = self._store(conn, workspace_id, row, values, current, now)
            if changes is not None or partial:  # the size: what is stored after the change
                size = self.definitions.count_in(conn, workspace_id, key)
                done = Computation(size, done.changed, done.entered, done.exited)
            self.definitions.set_status_in(
                conn,
                workspace_id,
                key,
                status=READY,
                error=None,
                computed_us=now,
            )
        self.forget(workspace_id)
        return done

    def _membership_changes(
        self,
        conn: Connection,
        row: DefinitionRow,
        definition: Definition,
        now_us: int,
        computed: frozenset[str],
    ) -> tuple[list[str], list[str]] | None:
        """An audience SQL expresses: who enters and who leaves, found by the database (the
        members that stay never reach Python); None for the rest."""
        if row.kind != "audience" or isinstance(definition.root, ast.Function):
            return None
        collection = "accounts" if definition.type == "ACCOUNTS" else "users"
        try:
            return self.definitions.membership_changes(
                conn,
                row.workspace_id,
                row.key,
                definition.root,
                now_us,
                collection,
                computed=computed,
            )
        except NotCompiled:
            return None

    def _value_changes(
        self,
        conn: Connection,
        row: DefinitionRow,
        definition: Definition,
        now_us: int,
        computed: frozenset[str],
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A computed trait SQL expresses: its values beside the stored ones, in one
        statement that leaves out what the database can tell is unchanged; None for the
        rest."""
        if isinstance(definition.root, ast.Function):
            return None
        collection = "accounts" if definition.type == "ACCOUNTS" else "users"
        try:
            return self.definitions.evaluate_changes(
                conn,
                row.workspace_id,
                row.key,
                definition.root,
                now_us,
                None,
                collection,
                computed=computed,
            )
        except NotCompiled:
            return None

    def values(
        self,
        conn: Connection,
        workspace_id: str,
        definition: Definition,
        now_us: int,
        computed: frozenset[str],
        only: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Profile id → value for every live profile (``only``: these), by SQL where it can."""
        if isinstance(definition.root, ast.Function):
            return self._function_values(
                conn, workspace_id, definition, definition.root, now_us, computed, only
            )
        collection = "accounts" if definition.type == "ACCOUNTS" else "users"
        try:
            return self.definitions.evaluate(
                conn,
                workspace_id,
                definition.root,
                now_us,
                collection,
                computed=computed,
                only=only,
            )
        except NotCompiled:
            pass
        ids = (
            list(only)
            if only is not None
            else self.definitions.live_profile_ids(workspace_id, collection)
        )
        live = set(self.definitions.live_among(conn, workspace_id, collection, ids))
        names = definition.events
        data = self.definitions.profile_data(conn, workspace_id, sorted(live), names)
        if collection == "accounts":
            data = {
                pid: ProfileData(d.traits, d.events, self._users(conn, workspace_id, pid, names))
                for pid, d in data.items()
            }
        catalog = self._catalog(conn, workspace_id, definition, data.values())
        evaluator = Evaluator(from_us(now_us), catalog)
        return {pid: evaluator.evaluate(definition.root, d) for pid, d in data.items()}

    def _catalog(
        self,
        conn: Connection,
        workspace_id: str,
        definition: Definition,
        data: Iterable[ProfileData],
    ) -> dict[str, dict[str, Any]]:
        """The workspace's products that ``definition``'s product() may read in ``data``
        (the events of profiles, and of an account's users), read at once."""
        if not definition.catalog:
            return {}
        properties = [e.properties for d in data for p in (d, *d.users) for e in p.events]
        keys = keys_in(definition.root, properties)
        return products_by_id(conn, workspace_id, keys) if keys else {}

    def _function_values(
        self,
        conn: Connection,
        workspace_id: str,
        definition: Definition,
        function: ast.Function,
        now_us: int,
        computed: frozenset[str],
        only: Sequence[str] | None,
    ) -> dict[str, Any]:
        """A function of :mod:`opencdp.query.functions`: its arguments evaluated set-based
        (each like a definition of its own), then the function applied — per profile, or
        over the whole population (a rank needs everyone, whatever ``only`` says)."""
        spec = FUNCTIONS[function.name]
        if function.name in self.providers:
            arguments = tuple(a.value for a in function.arguments if isinstance(a, ast.Literal))
            return self.providers[function.name](conn, workspace_id, arguments, only, now_us)
        if spec.population and function.name != "quintile":
            written = ", ".join(
                repr(a.value) for a in function.arguments if isinstance(a, ast.Literal)
            )
            raise ValueError(
                f"{function.name}({written}) needs a fitted model and none is available: fit "
                "one for the workspace (opencdp clv fit), then recompute this trait"
            )
        scope = None if spec.population else only
        columns = [
            self.values(conn, workspace_id, replace(definition, root=a), now_us, computed, scope)
            if not isinstance(a, ast.Literal)
            else None
            for a in function.arguments
        ]
        present = [c for c in columns if c is not None]
        if not present:  # constants only: the same value for every (live) profile in scope
            nothing = replace(definition, root=ast.Literal(None))
            present = [self.values(conn, workspace_id, nothing, now_us, computed, scope)]
        ids = present[0].keys()
        if function.name == "quintile":
            first = function.arguments[0]
            values = columns[0]
            if values is None:  # a constant
                values = dict.fromkeys(ids, first.value if isinstance(first, ast.Literal) else None)
            among = columns[1] if len(columns) > 1 else None
            scores = quintiles(
                {pid: v for pid, v in values.items() if among is None or among.get(pid)}
            )
            wanted = ids if only is None else set(only) & ids
            return {pid: scores.get(pid) for pid in wanted}
        now = from_us(now_us)
        return {
            pid: apply(
                function.name,
                [
                    a.value if column is None and isinstance(a, ast.Literal) else column[pid]  # type: ignore[index]
                    for a, column in zip(function.arguments, columns, strict=True)
                ],
                now,
            )
            for pid in ids
        }

    def _users(
        self, conn: Connection, workspace_id: str, account_id: str, names: frozenset[str]
    ) -> list[ProfileData]:
        users = self.definitions.users_of(conn, workspace_id, account_id)
        return list(self.definitions.profile_data(conn, workspace_id, users, names).values())

    def _computed_keys(self, workspace_id: str) -> frozenset[str]:
        return frozenset(row.key for row in self.definitions.of_workspace(workspace_id))

    def refresh_due(self, refresh_seconds: float) -> int:
        """Re-evaluate in batch the definitions time alone can change (windows, sessions,
        comparisons with now) whose last computation is older than ``refresh_seconds``;
        returns how many. Durable: the time of the last computation is stored, so a restart
        catches up at once."""
        before = self.now_us() - int(refresh_seconds * 1_000_000)
        due: dict[str, set[str]] = {}
        for row in self.definitions.computed_before(before):
            try:
                definition = parse(row.query, row.kind, row.type)  # type: ignore[arg-type]
            except DefinitionError:
                continue
            # the catalog changes without events: what reads it is refreshed, as time is
            if definition.time_dependent or definition.population or definition.catalog:
                due.setdefault(row.workspace_id, set()).add(row.key)
        done = 0
        with self.shared():
            for workspace_id, keys in sorted(due.items()):
                # What reads a refreshed value is refreshed after it (real time does not see
                # a batch run's changes).
                for key in self.in_dependency_order(workspace_id, keys):
                    self.compute(workspace_id, key)
                    done += 1
        return done

    def in_dependency_order(self, workspace_id: str, changed: Iterable[str]) -> list[str]:
        """The enabled definitions among ``changed`` and those that read them, directly or
        not, each after what it reads."""
        enabled = self.enabled(workspace_id)  # parsed, in dependency order
        affected = set(changed)
        for item in enabled:
            if item.definition.traits & affected:
                affected.add(item.key)
        return [item.key for item in enabled if item.key in affected]

    # -- real time --------------------------------------------------------------------------------
    def changed(self, conn: Connection, changes: BatchChanges) -> None:
        """The processor's batch listener: update the definitions the batch can affect, for
        its profiles, inside its transaction.

        Per profile: a definition is evaluated (by SQL) for the profiles that got one of the
        events it reads, a trait it reads, a changed value of a definition it reads, or that
        absorbed another profile in this batch. A profile the batch created and that nothing
        it reads touched has the definition's value over an empty timeline, computed once
        (given the same of its dependencies); profiles the batch did not change in what a
        definition reads keep their value."""
        if not changes.profiles:
            return
        parsed = self.enabled_in(conn, changes.workspace_id)
        if not parsed:
            return
        now = self.now_us()
        computed = frozenset(p.key for p in parsed)
        reach = Reach(changes)
        evaluator = Evaluator(from_us(now))
        empty: dict[str, Any] = {}  # key -> stored form over an empty timeline (absent: none)
        for item in parsed:  # dependency order: what a definition reads is already updated
            definition = item.definition
            if definition.population:  # ranks and models: batch only (the schedule)
                continue
            fresh: set[str] = set()
            if definition.type == "ACCOUNTS":  # the batch's accounts and its users' accounts
                sql_ids = reach.batch_wide(definition)
                sql_ids |= reach.accounts_of(conn, self.definitions, sql_ids)
            else:
                sql_ids = reach.profiles_reading(definition)
                fresh = set(changes.created - changes.created_accounts - sql_ids)
            blank: Any = _ABSENT
            if fresh and isinstance(definition.root, ast.Function):
                sql_ids |= fresh  # a function's arguments are evaluated as definitions
                fresh = set()
            if fresh:
                try:
                    blank = evaluator.evaluate(definition.root, ProfileData(dict(empty)))
                except Exception:  # the SQL below says what is wrong, or gives the value
                    sql_ids |= fresh
                    fresh = set()
            if not sql_ids and not fresh:
                continue
            try:
                # PostgreSQL aborts a transaction at its first error: a savepoint keeps a
                # definition that fails (a number too large for numeric, say) to itself
                with self._contained(conn):
                    values, current = self._evaluate_changes(
                        conn, changes, item, now, computed, sql_ids
                    )
                    self._store(
                        conn,
                        changes.workspace_id,
                        item.row,
                        {**values, **dict.fromkeys(fresh, blank)},
                        current,
                        now,
                    )
            except Exception as exc:
                log.warning("definition %s failed in real time: %s", item.key, exc)
                self.definitions.set_status_in(
                    conn, changes.workspace_id, item.key, status=FAILED, error=str(exc)
                )
                self.forget(changes.workspace_id)
                continue
            form = _stored_form(item.row.kind, blank) if blank is not _ABSENT else _ABSENT
            if form is not _ABSENT:
                empty[item.key] = form
            # What dependents must re-read: values that changed (a new profile's: that
            # differ from the value over an empty timeline, which dependents assume).
            for pid in sql_ids:
                before = form if pid in changes.created else current.get(pid, _ABSENT)
                if _stored_form(item.row.kind, values.get(pid)) != before:
                    reach.moved(item.key, pid)

    def _contained(self, conn: Connection) -> AbstractContextManager[Any]:
        """A savepoint on PostgreSQL (SQLite goes on after a failed statement)."""
        return nullcontext() if self.db.dialect.is_sqlite else conn.begin_nested()

    def _evaluate_changes(
        self,
        conn: Connection,
        changes: BatchChanges,
        item: Parsed,
        now: int,
        computed: frozenset[str],
        profiles: set[str],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The values of ``item`` for ``profiles`` and what is stored for them (in one
        statement where SQL expresses the definition)."""
        if not profiles:
            return {}, {}
        ws, definition = changes.workspace_id, item.definition
        if not isinstance(definition.root, ast.Function):
            collection = "accounts" if definition.type == "ACCOUNTS" else "users"
            try:
                return self.definitions.evaluate_changes(
                    conn,
                    ws,
                    item.key,
                    definition.root,
                    now,
                    sorted(profiles),
                    collection,
                    computed=computed,
                    timeless=not definition.time_dependent,
                )
            except NotCompiled:
                pass
        values = self.values(conn, ws, definition, now, computed, sorted(profiles))
        known = sorted(profiles - changes.created)  # a new profile has nothing stored
        current = self.definitions.current(conn, ws, item.key, known) if known else {}
        return values, current

    # -- storing ----------------------------------------------------------------------------------
    def _store(
        self,
        conn: Connection,
        workspace_id: str,
        row: DefinitionRow,
        values: dict[str, Any],
        current: dict[str, Any],
        now_us: int,
    ) -> Computation:
        """Store the values that changed (audiences: members hold ``true``), and record each
        audience entry and exit on the timeline."""
        audience = row.kind == "audience"
        if audience:
            new = {pid: True for pid, v in values.items() if v}
        else:
            new = {pid: v for pid, v in values.items() if v is not None}
        changed = {pid: v for pid, v in new.items() if current.get(pid, _ABSENT) != v}
        removed = sorted((current.keys() & values.keys()) - new.keys())
        self.definitions.replace_values(conn, workspace_id, row.key, changed, removed, now_us)
        entered = sorted(new.keys() - current.keys()) if audience else []
        exited = removed if audience else []
        if entered or exited:
            rows = [_membership_event(workspace_id, row, pid, ENTERED, now_us) for pid in entered]
            rows += [_membership_event(workspace_id, row, pid, EXITED, now_us) for pid in exited]
            self.profiles.insert_events(conn, rows)
            if self.emitted is not None:  # activation routes them in the same transaction
                self.emitted(
                    conn,
                    workspace_id,
                    [StoredEvent(r["message_id"], r["profile_id"], r["payload"]) for r in rows],
                )
        if self.metrics is not None and (changed or removed):
            self.metrics.add("opencdp_computed_values_changed_total", len(changed) + len(removed))
        return Computation(len(new), len(changed) + len(removed), len(entered), len(exited))


def _stored_form(kind: str, value: Any) -> Any:
    """What ``computed_values`` holds for a value (``_ABSENT``: no row): ``true`` for an
    audience's members, a computed trait's value unless it is null."""
    if kind == "audience":
        return True if value else _ABSENT
    return _ABSENT if value is None else value


def _membership_event(
    workspace_id: str, row: DefinitionRow, profile_id: str, name: str, now_us: int
) -> dict[str, Any]:
    digest = hashlib.sha1(
        "\x1f".join((workspace_id, row.key, profile_id, name, str(now_us))).encode(),
        usedforsecurity=False,
    ).hexdigest()
    message_id = f"aud-{digest}"
    stamp = isoformat_us(now_us)
    payload = {
        "type": "track",
        "event": name,
        "messageId": message_id,
        "timestamp": stamp,
        "receivedAt": stamp,
        "properties": {"audience_key": row.key, "audience_name": row.name},
        "context": {"personas": {"computation_class": "audience", "computation_key": row.key}},
    }
    return {
        "workspace_id": workspace_id,
        "message_id": message_id,
        "profile_id": profile_id,
        "source_id": None,
        "type": "track",
        "event": name,
        "timestamp_us": now_us,
        "received_us": now_us,
        "payload": orjson.dumps(payload).decode(),
        "resolution": None,
    }
