"""The processor: claims micro-batches from the inbox and persists what identity resolution and
trait resolution make of them, in one transaction per batch (so a crash redoes the batch, and
idempotency by message id makes the redo harmless)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from opencdp.collect.rejection import PROCESS, Rejection, quarantine_row
from opencdp.errors import RequestError, StorageUnavailable, loggable
from opencdp.identity import IdentityGraph
from opencdp.ids import new_id
from opencdp.resolve.batch import (
    BatchChanges,
    BatchState,
    Event,
    StoredEvent,
    closes_as,
    lookup_pairs,
)
from opencdp.resolve.identity_cache import IdentityCache
from opencdp.storage.db import Connection
from opencdp.storage.identity_epoch import IdentityEpoch
from opencdp.storage.inbox import InboxRow
from opencdp.storage.statistics import refresh_stale
from opencdp.timeutil import isoformat, parse_timestamp, to_us

if TYPE_CHECKING:
    from opencdp.clock import Clock
    from opencdp.collect.collector import Collector
    from opencdp.identity import IdentityConfig
    from opencdp.metrics import Metrics
    from opencdp.storage.db import Database
    from opencdp.storage.inbox import InboxStore
    from opencdp.storage.profiles import ProfileStore
    from opencdp.storage.quarantine import QuarantineStore

log = logging.getLogger(__name__)

#: The advisory lock identity writers take on PostgreSQL (workers shared, others alone).
IDENTITY_LOCK_KEY = 7447002
#: How often the processor looks for stale planner statistics (PostgreSQL).
STATISTICS_EVERY_SECONDS = 5.0
#: The most advisory locks a worker's batch takes on new identifiers. Each takes a slot of
#: PostgreSQL's shared lock table (``max_locks_per_transaction`` x ``max_connections``, 6,400
#: by default); a batch with more new identifiers takes the identity lock alone instead.
MAX_IDENTIFIER_LOCKS = 1024
#: How often a worker resolves a batch again because other workers changed its profiles
#: between its reads and its locks, before it gives up and retries the batch later.
MAX_RESOLVE_ATTEMPTS = 5

_INBOX_FIELDS = ("workspace_id", "source_id", "message_id", "received_us", "payload")


@dataclass
class PreparedBatch:
    """A batch read and resolved in memory, not yet written."""

    #: per workspace: the resolved state and the events that were new
    parts: list[tuple[BatchState, list[Event]]] = field(default_factory=list)
    #: rows whose stored payload could not even be read
    failures: list[tuple[Event | InboxRow, str, str]] = field(default_factory=list)
    duplicates: int = 0

    def lock_keys(self) -> list[int]:
        """Advisory lock keys of the identifiers the batch found on no profile (64-bit
        digests; a rare collision only serializes more). Identifiers already on a profile need
        none: whoever moves one must lock the row of the profile that holds it."""
        keys: set[int] = set()
        for state, _fresh in self.parts:
            ws = state.workspace_id
            keys.update(
                _digest(ws, "identifier", *key)
                for key, owner in state.lookups.items()
                if owner is None
            )
        return sorted(keys)


def _digest(*parts: str) -> int:
    data = "\x1f".join(parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


@dataclass
class ProcessSummary:
    """What a directly processed batch did."""

    submitted: int = 0
    processed: int = 0
    duplicates: int = 0  # message ids processed before: nothing changed
    quarantined: int = 0
    profiles_created: int = 0
    merges: int = 0
    fell_back: bool = False  # the batch took the inbox path (counts are approximate)


class BatchListener(Protocol):
    """Told, inside the batch's transaction, what each stored batch changed (computed traits
    and audiences follow their profiles this way)."""

    def changed(self, conn: Connection, changes: BatchChanges) -> None:
        """Update what derives from the changed profiles, in ``conn``'s transaction."""
        ...


class BatchListeners:
    """Several listeners told in turn (computed values first, then activation, which routes
    what the batch stored)."""

    def __init__(self, *listeners: BatchListener) -> None:
        self.listeners = listeners

    def changed(self, conn: Connection, changes: BatchChanges) -> None:
        for listener in self.listeners:
            listener.changed(conn, changes)


class IdentityRules(Protocol):
    """Where the processor finds a workspace's identity rules (cached by the composition root)."""

    def identity_config(self, workspace_id: str, collection: str = "users") -> IdentityConfig:
        """The rules of ``workspace_id`` for ``collection`` (``users`` or ``accounts``)."""
        ...


class Processor:
    """Runs inbox events (and Contact API calls) through identity and profile resolution."""

    def __init__(
        self,
        *,
        db: Database,
        profiles: ProfileStore,
        inbox: InboxStore,
        quarantine: QuarantineStore,
        collector: Collector,
        rules: IdentityRules,
        metrics: Metrics,
        clock: Clock,
        batch_size: int,
        cache_profiles: int,
    ) -> None:
        self.db = db
        self.store = profiles
        self.inbox = inbox
        self.quarantine = quarantine
        #: commits events to the inbox when a direct batch must take the inbox path instead
        self.collector = collector
        self.rules = rules
        self.metrics = metrics
        self.clock = clock
        self.batch_size = batch_size
        self.epoch = IdentityEpoch()
        #: the inbox partitions this processor claims from (a worker slot's), or None: all
        self.partitions: list[int] | None = None
        self.cache = IdentityCache(cache_profiles)
        #: told what each stored batch changed (computed traits and audiences), or None
        self.listener: BatchListener | None = None
        self._statistics_checked = -1e18

    def now_us(self) -> int:
        return to_us(self.clock.now())

    def _refresh_statistics(self) -> None:
        """Now and then, have PostgreSQL analyze the tables whose statistics lag behind a
        fast-growing store (see :mod:`opencdp.storage.statistics`)."""
        now = self.clock.monotonic()
        if now - self._statistics_checked < STATISTICS_EVERY_SECONDS:
            return
        self._statistics_checked = now
        try:
            analyzed = refresh_stale(self.db)
        except Exception as exc:  # statistics are an optimisation: never stop the worker
            log.warning("could not refresh planner statistics: %s", loggable(exc))
            return
        if analyzed:
            log.info("analyzed %s (their statistics lagged behind)", ", ".join(analyzed))

    # -- the worker's unit of work ----------------------------------------------------------------
    def run_once(self, limit: int | None = None) -> int:
        """Claim up to ``limit`` events, process them and commit; returns how many were claimed.

        If the database refuses the batch's writes (a row it cannot store), the batch is redone
        one event at a time so that only the offending event goes to quarantine and the rest
        carry on. An unreachable database raises :class:`StorageUnavailable` (retry later).
        """
        limit = limit or self.batch_size
        self._refresh_statistics()
        try:
            return self._run_batch(limit)
        except StorageUnavailable:
            self.cache.clear()  # the batch may have changed remembered profiles, then failed
            raise
        except Exception as exc:
            self.cache.clear()
            log.warning("batch failed (%s); isolating the event at fault", loggable(exc))
            return self._run_isolated(limit)

    def _run_batch(self, limit: int) -> int:
        """Claim, resolve and store one batch; returns how many events it claimed.

        A batch is resolved before the worker takes any identity lock, then written only if
        what it was resolved from is still what the database holds, else resolved again:

        * SQLite (one worker): the reading and resolving run in a read transaction, outside
          the write lock, so the collector's commits wait at most for the writes. The check is
          the identity epoch, which every identity writer advances.
        * PostgreSQL (several workers, one transaction each): the claim's row locks
          (``SKIP LOCKED``) keep other workers off these rows. Workers hold the identity lock
          shared (contacts and imports take it alone), lock the rows of the profiles the batch
          read (in id order) and the identifiers it found on no profile (advisory locks, in
          one sorted pass), and check that the identifiers still belong to the same profiles
          and those profiles are unchanged. Workers whose batches share no identifier or
          profile write at the same time.
        """
        if self.db.dialect.is_sqlite:
            return self._run_batch_single_writer(limit)
        return self._run_batch_concurrent(limit)

    def _run_batch_single_writer(self, limit: int) -> int:
        cache = self.cache
        with self.db.read() as conn:
            rows = self.inbox.claim(conn, limit, self.partitions)
            if not rows:
                return 0
            seen = self.epoch.read(conn)
            batch = self._prepare(conn, rows, cache.at(seen))
        # Not fsynced on SQLite: everything here is derived from inbox rows that were, and a
        # lost commit only means those rows are processed again (idempotently).
        with self.db.write(durable=False) as conn:
            current = self.epoch.advance_from(conn, seen)
            if not current:
                self._redone()
                rows = self.inbox.claim(conn, limit, self.partitions)
                if not rows:
                    return 0
                self.epoch.advance(conn)
                batch = self._prepare(conn, rows)
            self._finish(conn, rows, batch)
        if current:
            cache.epoch = seen + 1
            self._remember(batch)
        else:
            cache.clear()
        return len(rows)

    def _run_batch_concurrent(self, limit: int) -> int:
        cache = self.cache
        with self.db.write(durable=False) as conn:
            rows = self.inbox.claim(conn, limit, self.partitions)
            if not rows:
                return 0
            batch = self._prepare(conn, rows, cache)
            # Many new identifiers (a burst of new people): the identity lock alone, as imports
            # take it, instead of more advisory locks than the lock table may hold.
            alone = len(batch.lock_keys()) > MAX_IDENTIFIER_LOCKS
            self._lock_identity(conn, advance=False, shared=not alone)
            for _attempt in range(MAX_RESOLVE_ATTEMPTS):
                if not alone:
                    keys = batch.lock_keys()
                    if len(keys) > MAX_IDENTIFIER_LOCKS:
                        raise StorageUnavailable(
                            "the batch grew past the identifier locks a shared worker may "
                            "hold; retrying it alone"
                        )
                    self.store.lock_keys(conn, keys)
                if self._still_current(conn, batch):  # locks the profile rows it checks
                    break
                self._redone()
                batch = self._prepare(conn, rows)
            else:
                raise StorageUnavailable(
                    "other workers kept changing the profiles of this batch; retrying it"
                )
            self._finish(conn, rows, batch)
        self._remember(batch)
        return len(rows)

    def _redone(self) -> None:
        self.cache.clear()  # its objects may be stale, and the first resolve changed them
        self.metrics.add("opencdp_worker_batches_redone_total")

    def _still_current(self, conn: Connection, batch: PreparedBatch) -> bool:
        """Whether every identifier the batch looked up still belongs to the profile it found
        (or still to nobody), and every profile it loaded is unchanged; on PostgreSQL the
        profile rows stay locked until the transaction ends."""
        for state, _fresh in batch.parts:
            ws = state.workspace_id
            for collection in ("users", "accounts"):
                pairs = [(t, v) for (c, t, v) in state.lookups if c == collection]
                if not pairs:
                    continue
                owners = self.store.identifier_owners(conn, ws, collection, pairs)
                for id_type, value in pairs:
                    if owners.get((id_type, value)) != state.lookups[(collection, id_type, value)]:
                        return False
            if self.store.profile_versions(conn, ws, state.versions) != state.versions:
                return False
        return True

    def _remember(self, batch: PreparedBatch) -> None:
        """After a commit: keep the batch's profiles, as written, for the next batch."""
        for state, _fresh in batch.parts:
            self.cache.remember(
                state.workspace_id,
                state.live_profiles(),
                state.traits,
                list(state.merged_into),
                state.written_versions(),
            )

    def _finish(self, conn: Connection, rows: list[InboxRow], batch: PreparedBatch) -> None:
        self._store(conn, batch)
        # Inbox rows name the profile their event was stored on (the registry of personal data
        # finds them by it); duplicates and failures keep NULL.
        placed = {
            (state.workspace_id, message_id): profile_id
            for state, _ in batch.parts
            for message_id, profile_id in state.placements().items()
        }
        profile_ids = {
            r.seq: placed[(r.workspace_id, r.message_id)]
            for r in rows
            if (r.workspace_id, r.message_id) in placed
        }
        self.inbox.mark_processed(conn, [r.seq for r in rows], self.now_us(), profile_ids)

    def _run_isolated(self, limit: int) -> int:
        done = 0
        while done < limit:
            try:
                n = self._run_batch(1)
            except StorageUnavailable:
                raise
            except Exception as exc:
                n = self._quarantine_head(f"{type(exc).__name__}: {exc}")
            if n == 0:
                break
            done += n
        return done

    def _quarantine_head(self, detail: str) -> int:
        """Move the oldest pending event to quarantine (``processing_error``) and mark it done."""
        with self.db.write() as conn:
            self._lock_identity(conn)
            rows = self.inbox.claim(conn, 1)
            if not rows:
                return 0
            log.error("event %s cannot be stored, quarantined", rows[0].message_id)
            self._quarantine(conn, [(rows[0], "processing_error", detail[:2000])])
            self.inbox.mark_processed(conn, [rows[0].seq], self.now_us())
        return 1

    def run_until_idle(self, max_batches: int = 1_000_000) -> int:
        """Process until the inbox is empty (tests and bulk loads wait on this, not on sleep)."""
        total = 0
        for _ in range(max_batches):
            n = self.run_once()
            if n == 0:
                break
            total += n
        return total

    def _lock_identity(
        self, conn: Connection, *, advance: bool = True, shared: bool = False
    ) -> None:
        # PostgreSQL: identity writers take turns across processes; workers hold the lock
        # shared with each other (they lock what their batch touches instead). SQLite's BEGIN
        # IMMEDIATE already makes writers take turns. Advancing the epoch tells a SQLite worker
        # that resolved a batch before this transaction to resolve it again.
        lock = self.db.dialect.transaction_lock(IDENTITY_LOCK_KEY, shared=shared)
        if lock is not None:
            conn.execute(lock)
        if advance:
            self.epoch.advance(conn)

    def lock_identity(self, conn: Connection) -> None:
        """Hold the identity lock for the rest of ``conn``'s transaction (workers wait, and
        workers that resolved a batch before it resolve it again)."""
        self._lock_identity(conn)

    def process_again(self, conn: Connection, rows: list[InboxRow]) -> int:
        """Process stored events again inside ``conn``'s transaction (rebuilding profiles whose
        derived state was removed, e.g. by ``import revert``); returns how many failed."""
        self._lock_identity(conn)
        failed = 0
        for start in range(0, len(rows), 1000):
            failed += self._process_rows(conn, rows[start : start + 1000], closing="replayed")
        return failed

    def _process_rows(
        self,
        conn: Connection,
        rows: list[InboxRow],
        summary: ProcessSummary | None = None,
        closing: str | None = None,
    ) -> int:
        """Process inbox rows inside ``conn``'s transaction; returns how many were quarantined."""
        return self._store(conn, self._prepare(conn, rows), summary, closing)

    def _prepare(
        self, conn: Connection, rows: list[InboxRow], cache: IdentityCache | None = None
    ) -> PreparedBatch:
        """Read what the rows need (from ``cache`` where it can) and resolve them in memory;
        nothing is written."""
        by_workspace: dict[str, list[Event]] = defaultdict(list)
        batch = PreparedBatch()
        for row in rows:
            try:
                message = orjson.loads(row.payload)
                ts = to_us(parse_timestamp(message.get("timestamp")))
            except (orjson.JSONDecodeError, ValueError, AttributeError) as exc:
                batch.failures.append(
                    (row, "processing_error", f"stored payload is unreadable: {exc}")
                )
                continue
            by_workspace[row.workspace_id].append(
                Event(
                    row.seq,
                    row.workspace_id,
                    row.source_id,
                    row.message_id,
                    row.received_us,
                    ts,
                    message,
                    raw=row.payload,
                )
            )
        for workspace_id, events in by_workspace.items():
            known = self.store.known_message_ids(conn, workspace_id, [e.message_id for e in events])
            fresh: list[Event] = []
            seen_ids: set[str] = set()
            for ev in events:
                if ev.message_id in known or ev.message_id in seen_ids:
                    continue  # processed before: idempotent
                seen_ids.add(ev.message_id)
                fresh.append(ev)
            batch.duplicates += len(events) - len(fresh)
            if fresh:
                batch.parts.append((self._resolve(conn, workspace_id, fresh, cache), fresh))
        return batch

    def _resolve(
        self,
        conn: Connection,
        workspace_id: str,
        events: list[Event],
        cache: IdentityCache | None = None,
    ) -> BatchState:
        state = self._load(conn, workspace_id, events, cache)
        for ev in events:
            try:
                state.apply(ev)
            except Exception as exc:  # one bad event must not stop the others
                # No traceback: its frames' text can hold the event's values (personal data).
                log.error("processing %s failed: %s", ev.message_id, loggable(exc))
                state.failures.append((ev, "processing_error", f"{type(exc).__name__}: {exc}"))
        return state

    def _store(
        self,
        conn: Connection,
        batch: PreparedBatch,
        summary: ProcessSummary | None = None,
        closing: str | None = None,
    ) -> int:
        """Write a resolved batch inside ``conn``'s transaction; returns how many events went
        to quarantine. Quarantine rows still open under the message id of an event stored
        here are closed (``closing``, or :func:`closes_as` of the event)."""
        failures = list(batch.failures)
        if summary is not None:
            summary.duplicates += batch.duplicates
        for state, fresh in batch.parts:
            self._persist(conn, state)
            self._close_quarantined(conn, state.workspace_id, fresh, state, closing)
            if self.listener is not None and state.event_rows:
                self.listener.changed(conn, state.changes())
            failures.extend(state.failures)
            if summary is not None:
                summary.processed += len(state.event_rows)
                summary.profiles_created += state.created
                summary.merges += len(state.merge_rows)
            self.metrics.add("opencdp_events_processed_total", len(state.event_rows))
            self.metrics.add("opencdp_profiles_created_total", state.created)
            self.metrics.add("opencdp_profiles_merged_total", len(state.merge_rows))
        self._quarantine(conn, failures)
        return len(failures)

    def ingest_and_process(
        self,
        events: list[dict[str, Any]],
        rejected: list[dict[str, Any]],
        *,
        closing: str | None = None,
    ) -> ProcessSummary:
        """Process inbox-shaped rows directly, in one durable transaction (bulk imports).

        The rows skip the inbox round trip (insert, claim, mark) but go through the same
        identity resolution, trait merging, idempotency by message id and quarantine. If the
        database refuses the batch, the rows take the inbox path instead, where the event at
        fault is isolated. ``closing`` is the resolution that stored events give the open
        quarantine rows of their message ids (default: :func:`closes_as` of each event).
        """
        summary = ProcessSummary()
        self._refresh_statistics()
        single_writer = self.db.dialect.is_sqlite
        try:
            with self.db.write() as conn:
                self._lock_identity(conn, advance=False)
                seen = self.epoch.read(conn)
                self.epoch.advance(conn)
                self.inbox.append(conn, [], rejected)
                # seq 0: these rows never were in the inbox, so there is nothing to mark.
                rows = [InboxRow(0, *(r[k] for k in _INBOX_FIELDS)) for r in events]
                # The memory of the last chunks' profiles: on SQLite valid if the epoch shows
                # nobody else wrote since; on PostgreSQL (workers do not advance the epoch)
                # checked against the database, here under the identity lock.
                batch = self._prepare(
                    conn, rows, self.cache.at(seen) if single_writer else self.cache
                )
                if not single_writer and not self._still_current(conn, batch):
                    self._redone()
                    batch = self._prepare(conn, rows)
                failed = self._store(conn, batch, summary, closing)
                summary.quarantined += len(rejected) + failed
            if single_writer:
                self.cache.epoch = seen + 1
            self._remember(batch)
        except StorageUnavailable:
            self.cache.clear()
            raise
        except Exception as exc:
            self.cache.clear()
            log.warning("bulk batch failed (%s); taking the inbox path", loggable(exc))
            self.collector.commit(events, rejected)
            before = self.quarantine.counts_total()
            self.run_until_idle()
            return ProcessSummary(
                submitted=len(events),
                quarantined=len(rejected) + self.quarantine.counts_total() - before,
                fell_back=True,
            )
        summary.submitted = len(events)
        return summary

    # -- loading ----------------------------------------------------------------------------------
    def _load(
        self,
        conn: Connection,
        workspace_id: str,
        events: list[Event],
        cache: IdentityCache | None = None,
    ) -> BatchState:
        """The profiles the events' identifiers point to, with all their identifiers and
        traits: from ``cache`` where it has them, from the database otherwise."""
        config = self.rules.identity_config(workspace_id)
        user_pairs, account_pairs = lookup_pairs(events, config)
        graphs = {
            "users": IdentityGraph(config, lambda: new_id("use"), "users"),
            "accounts": IdentityGraph(
                self.rules.identity_config(workspace_id, "accounts"),
                lambda: new_id("acc"),
                "accounts",
            ),
        }
        remembered: set[str] = set()
        lookups: dict[tuple[str, str, str], str | None] = {}
        for collection, pairs in (("users", user_pairs), ("accounts", account_pairs)):
            missing = []
            for pair in pairs:
                found = cache.lookup(workspace_id, collection, *pair) if cache else None
                lookups[(collection, *pair)] = found
                if found is None:
                    missing.append(pair)
                else:
                    remembered.add(found)
            if missing:
                owners = self.store.identifier_owners(
                    conn, workspace_id, collection, sorted(missing)
                )
                for pair, pid in owners.items():
                    lookups[(collection, *pair)] = pid
        pids = {pid for pid in lookups.values() if pid is not None} - remembered
        profile_rows, identifier_rows = self.store.load_profiles(conn, workspace_id, pids)
        by_profile: dict[str, list[Any]] = defaultdict(list)
        for r in identifier_rows:
            by_profile[r.profile_id].append(r)
        for row in profile_rows:
            graphs[row.collection].load_profile(BatchState.node(row, by_profile[row.id]))
        stored = {
            (r.collection, r.id_type, r.id_value): (r.profile_id, r.created_us, r.last_seen_us)
            for r in identifier_rows
        }
        versions = {r.id: (r.merged_into, r.last_message_id) for r in profile_rows}
        traits = self.store.load_traits(conn, workspace_id, pids)
        for pid in remembered:
            taken = cache.take(workspace_id, pid) if cache else None
            assert taken is not None  # the index only names remembered profiles
            node, values, versions[pid] = taken
            graphs[node.collection].load_profile(node)
            traits[pid] = values
            for ident, info in node.identifiers.items():
                stored[(node.collection, ident.type, ident.value)] = (
                    pid,
                    info.first_seen_us,
                    info.last_seen_us,
                )
        return BatchState(
            workspace_id=workspace_id,
            users=graphs["users"],
            accounts=graphs["accounts"],
            traits=traits,
            existing={r.id for r in profile_rows} | remembered,
            stored_identifiers=stored,
            lookups=lookups,
            versions=versions,
        )

    # -- persisting -------------------------------------------------------------------------------
    def _persist(self, conn: Connection, state: BatchState) -> None:
        ws = state.workspace_id
        store = self.store
        new_rows = []
        for pid, row in state.new_profiles.items():
            final = state.final(pid)
            row = dict(row)
            if final != pid:
                row["merged_into"] = final
            elif pid in state.touched:
                row.update({k: v for k, v in state.touched[pid].items() if k != "id"})
            new_rows.append(row)
        store.insert_profiles(conn, new_rows)
        existing_absorbed = {a: i for a, i in state.merged_into.items() if a in state.existing}
        store.apply_merges(conn, ws, existing_absorbed, state.merge_rows)
        store.touch_profiles(
            conn,
            ws,
            [
                t
                for pid, t in state.touched.items()
                if pid in state.existing and state.final(pid) == pid
            ],
        )
        store.write_identifiers(conn, state.identifier_rows())
        store.write_traits(conn, state.trait_rows())
        events = state.event_rows
        for row in events:
            row["profile_id"] = state.final(row["profile_id"])
        store.insert_events(conn, events)
        store.insert_links(
            conn,
            [
                {**row, "user_profile_id": state.final(u), "account_profile_id": state.final(a)}
                for (u, a), row in state.link_rows.items()
            ],
        )

    def _close_quarantined(
        self,
        conn: Connection,
        workspace_id: str,
        fresh: list[Event],
        state: BatchState,
        closing: str | None,
    ) -> None:
        """One UPDATE per resolution: the events just stored close their open quarantine rows;
        every quarantine row of their message ids records the profile the event was stored on."""
        stored = state.placements()
        by_resolution: dict[str, list[str]] = defaultdict(list)
        for ev in fresh:
            if ev.message_id in stored:
                by_resolution[closing or closes_as(ev.message)].append(ev.message_id)
        now_us = self.now_us()
        for resolution, ids in by_resolution.items():
            self.quarantine.close_stored(conn, workspace_id, ids, resolution, now_us)
        self.quarantine.record_profiles(conn, workspace_id, stored)

    def _quarantine(
        self, conn: Connection, failures: list[tuple[Event | InboxRow, str, str]]
    ) -> None:
        if not failures:
            return
        now_us = self.now_us()
        rows = []
        for item, reason, detail in failures:
            if isinstance(item, Event):
                raw: Any = item.message
                typ, name = item.message.get("type"), item.message.get("event")
            else:
                try:  # keep the stored JSON as JSON, not as a string of it
                    raw = orjson.loads(item.payload)
                except orjson.JSONDecodeError:
                    raw = item.payload
                typ = raw.get("type") if isinstance(raw, dict) else None
                name = raw.get("event") if isinstance(raw, dict) else None
            rejection = Rejection(
                reason, detail, raw, message_id=item.message_id, type=typ, event=name
            )
            rows.append(
                quarantine_row(
                    rejection,
                    PROCESS,
                    now_us,
                    workspace_id=item.workspace_id,
                    source_id=item.source_id,
                )
            )
        self.quarantine.add(conn, rows)
        reasons: dict[str, int] = {}
        for row in rows:
            reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
        self.metrics.quarantined(reasons)

    # -- Contact API -------------------------------------------------------------------------------
    def upsert_contact(
        self, workspace_id: str, identifiers: Mapping[str, str], traits: Mapping[str, Any]
    ) -> tuple[str, bool]:
        """Look up the profile of these identifiers or create it; returns (profile id, created).

        Runs through the same identity rules as events, serialized with the workers, so two
        concurrent calls for the same customer create one profile.
        """
        message = contact_message(identifiers, traits)
        now = self.clock.now()
        ev = Event(None, workspace_id, None, message["messageId"], to_us(now), to_us(now), message)
        message["timestamp"] = message["receivedAt"] = message["originalTimestamp"] = isoformat(now)
        with self.db.write() as conn:
            self._lock_identity(conn)
            state = self._load(conn, workspace_id, [ev])
            state.apply(ev)
            if state.failures:
                raise RequestError(state.failures[0][2], code="invalid_contact")
            self._persist(conn, state)
            resolution = orjson.loads(state.event_rows[0]["resolution"])
            profile_id = state.final(resolution["profile_id"])
            created = bool(resolution["created"])
            if self.listener is not None:
                changes = state.changes()
                if created:  # destinations subscribed to new customers hear of this one
                    announced = contact_created(message, profile_id, identifiers)
                    changes = replace(changes, stored=[*changes.stored, announced])
                self.listener.changed(conn, changes)
        return profile_id, created


def contact_created(
    message: Mapping[str, Any], profile_id: str, identifiers: Mapping[str, str]
) -> StoredEvent:
    """The ``Contact Created`` message a Contact API call that created a customer sends to the
    destinations subscribed to it (``event = "Contact Created"``): the profile id, the
    identifiers and the traits given. Routed, not stored on the timeline."""
    payload: dict[str, Any] = {
        "type": "track",
        "event": "Contact Created",
        "messageId": f"{message['messageId']}-created",
        "timestamp": message["timestamp"],
        "properties": {
            "profile_id": profile_id,
            "identifiers": [{"type": k, "id": v} for k, v in identifiers.items()],
            "traits": message.get("traits") or {},
        },
        "context": {"library": {"name": "opencdp-contact-api"}},
    }
    for key in ("userId", "anonymousId"):
        if key in message:
            payload[key] = message[key]
    return StoredEvent(payload["messageId"], profile_id, orjson.dumps(payload).decode())


def contact_message(identifiers: Mapping[str, str], traits: Mapping[str, Any]) -> dict[str, Any]:
    """The identify message that stands for a Contact API call."""
    if not identifiers:
        raise RequestError("identifiers must name at least one identifier", code="invalid_contact")
    msg: dict[str, Any] = {
        "type": "identify",
        "messageId": f"contact-{uuid.uuid4()}",
        "traits": dict(traits),
        "context": {"library": {"name": "opencdp-contact-api"}},
    }
    external: list[dict[str, str]] = []
    for key, value in identifiers.items():
        if not isinstance(value, str) or not value.strip():
            raise RequestError(
                f"identifier {key!r} needs a non-empty string value", code="invalid_contact"
            )
        kind = key.strip().lower()
        if kind in ("user_id", "userid"):
            msg["userId"] = value
        elif kind in ("anonymous_id", "anonymousid"):
            msg["anonymousId"] = value
        elif kind in ("email", "phone"):
            msg["traits"][kind] = value
        else:
            external.append({"id": value, "type": kind, "collection": "users", "encoding": "none"})
    if external:
        msg["context"]["externalIds"] = external
    return msg
