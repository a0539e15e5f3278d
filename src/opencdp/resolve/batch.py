"""One micro-batch of events through identity resolution and trait resolution, in memory.

The :class:`BatchState` is loaded from the database by :mod:`opencdp.resolve.processor`, then
every event runs through :meth:`BatchState.apply` in order, and the accumulated changes are
written back in one transaction. Nothing in this module does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from opencdp.errors import IdentityError
from opencdp.identity import (
    PREVIOUS_ID,
    Identifier,
    IdentityConfig,
    IdentityGraph,
    IdInfo,
    ProfileNode,
    Resolution,
    extract_group_identifiers,
    extract_user_identifiers,
)
from opencdp.privacy.consent import consent_traits, without_consent
from opencdp.profiles.traits import TraitValue, apply_traits, merge_traits


@dataclass(slots=True)
class Event:
    """An event to process: a normalized message and where it came from."""

    seq: int | None
    workspace_id: str
    source_id: str | None
    message_id: str
    received_us: int
    timestamp_us: int
    message: dict[str, Any]
    raw: str | None = None  # the stored JSON of ``message``, reused instead of re-encoding
    user_identifiers: list[Identifier] | None = None
    group_identifiers: list[Identifier] | None = None


def closes_as(message: dict[str, Any]) -> str:
    """The resolution a stored event gives the open quarantine row of its message id:
    ``imported`` for a message an import made (it names its file, row and run in
    ``context.import``), ``replayed`` for any other (a replay, or the sender sent it again)."""
    context = message.get("context")
    if isinstance(context, dict) and isinstance(context.get("import"), dict):
        return "imported"
    return "replayed"


def lookup_pairs(
    events: list[Event], config: IdentityConfig
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """The (type, value) identifier keys a batch needs loaded: users and accounts.

    Extracts each event's identifiers once and keeps them on the event for ``BatchState.apply``.
    """
    users: set[tuple[str, str]] = set()
    accounts: set[tuple[str, str]] = set()
    for ev in events:
        ev.user_identifiers = extract_user_identifiers(ev.message, config)
        for ident in ev.user_identifiers:
            if ident.type == PREVIOUS_ID:
                users.add(("user_id", ident.value))
                users.add(("anonymous_id", ident.value))
            else:
                users.add((ident.type, ident.value))
        if ev.message.get("type") == "group":
            ev.group_identifiers = extract_group_identifiers(ev.message, config)
            accounts.update((i.type, i.value) for i in ev.group_identifiers)
    return users, accounts


@dataclass(frozen=True)
class BatchChanges:
    """What a stored batch changed in one workspace, for those who keep values derived from
    profiles (computed traits and audiences).

    Besides the batch-wide sets, it says per profile what changed (``events_of``,
    ``traits_of``, ``merged_into``), so that a definition is evaluated only for the profiles
    whose events or traits it reads."""

    workspace_id: str
    #: the live profiles whose events, traits or identifiers the batch changed
    profiles: frozenset[str]
    #: those of them the batch created (nothing was computed for them yet)
    created: frozenset[str]
    #: the names ``event()`` knows the batch's events by
    events: frozenset[str]
    #: the trait keys the batch set
    traits: frozenset[str]
    #: whether profiles were merged (a survivor's values come from both timelines)
    merged: bool
    #: live profile -> the names ``event()`` knows its stored batch events by
    events_of: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: live profile -> the trait keys the batch set on it
    traits_of: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: the live profiles that absorbed others in this batch
    merged_into: frozenset[str] = frozenset()
    #: those of ``created`` that are accounts (group calls), not users
    created_accounts: frozenset[str] = frozenset()
    #: the events the batch stored, in order, on their profiles after the batch's merges
    stored: Sequence[StoredEvent] = ()


class StoredEvent(NamedTuple):
    """An event a batch stored, as activation routes it."""

    message_id: str
    profile_id: str
    #: the event as stored (Segment's spec, JSON text)
    payload: str
    #: the source that sent it (None where the teller does not know it)
    source_id: str | None = None


@dataclass
class BatchState:
    """The slice of the graph and the traits a batch touches, plus everything it changed."""

    workspace_id: str
    users: IdentityGraph
    accounts: IdentityGraph
    traits: dict[str, dict[str, TraitValue]]
    existing: set[str]
    # (collection, type, value) -> (profile, first seen, last seen) as loaded: unchanged rows
    # are not written back.
    stored_identifiers: dict[tuple[str, str, str], tuple[str, int, int]] = field(
        default_factory=dict
    )
    new_profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    touched: dict[str, dict[str, Any]] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)
    merge_rows: list[dict[str, Any]] = field(default_factory=list)
    dirty_traits: dict[str, set[str]] = field(default_factory=dict)
    touched_identifiers: dict[str, set[Identifier]] = field(default_factory=dict)
    event_rows: list[dict[str, Any]] = field(default_factory=list)
    link_rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    failures: list[tuple[Event, str, str]] = field(default_factory=list)
    created: int = 0
    # What the batch was resolved from, for a check before writing that nobody changed it:
    # (collection, type, value) -> the profile holding it (None: nobody) for every identifier
    # looked up, and (merged_into, last message) of every profile loaded.
    lookups: dict[tuple[str, str, str], str | None] = field(default_factory=dict)
    versions: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    # -- loading ---------------------------------------------------------------------------------
    @staticmethod
    def node(row: Any, identifier_rows: list[Any]) -> ProfileNode:
        """A graph node from a stored profile row and its identifier rows."""
        return ProfileNode(
            id=row.id,
            collection=row.collection,
            created_us=row.created_us,
            merge_count=row.merge_count,
            identifiers={
                Identifier(r.id_type, r.id_value): IdInfo(
                    r.created_us, r.last_seen_us, r.message_id, r.source_id, r.rule
                )
                for r in identifier_rows
            },
        )

    # -- processing ------------------------------------------------------------------------------
    def apply(self, ev: Event) -> None:
        """Resolve one event; a failure is recorded (for quarantine) and changes nothing."""
        msg = ev.message
        if ev.user_identifiers is None:
            ev.user_identifiers = extract_user_identifiers(msg, self.users.config)
        try:
            res = self.users.resolve(
                ev.user_identifiers,
                message_id=ev.message_id,
                source_id=ev.source_id,
                at_us=ev.timestamp_us,
            )
        except IdentityError as exc:
            self.failures.append((ev, "missing_identity", exc.message))
            return
        self._record(res, ev, "users")
        profile_id = res.profile_id
        incoming = _user_traits(msg)
        if incoming:
            self._set_traits(profile_id, incoming, ev)
        account_id = None
        if msg.get("type") == "group":
            try:
                acc = self.accounts.resolve_message(
                    msg, at_us=ev.timestamp_us, source_id=ev.source_id
                )
            except IdentityError:
                acc = None
            if acc is not None:
                self._record(acc, ev, "accounts")
                account_id = acc.profile_id
                group_traits = msg.get("traits")
                if isinstance(group_traits, dict) and group_traits:
                    self._set_traits(account_id, without_consent(group_traits), ev)
                self.link_rows[(profile_id, account_id)] = {
                    "workspace_id": self.workspace_id,
                    "user_profile_id": profile_id,
                    "account_profile_id": account_id,
                    "message_id": ev.message_id,
                    "created_us": ev.timestamp_us,
                }
        self.event_rows.append(
            {
                "workspace_id": self.workspace_id,
                "message_id": ev.message_id,
                "profile_id": profile_id,
                "source_id": ev.source_id,
                "type": msg.get("type", "track"),
                "event": (msg.get("event") or msg.get("name") or None),
                "timestamp_us": ev.timestamp_us,
                "received_us": ev.received_us,
                "payload": ev.raw if ev.raw is not None else orjson.dumps(msg).decode(),
                "resolution": orjson.dumps(
                    {**res.to_json(), "account_id": account_id} if account_id else res.to_json()
                ).decode(),
            }
        )

    def _record(self, res: Resolution, ev: Event, collection: str) -> None:
        pid = res.profile_id
        if res.created:
            self.created += 1
            self.new_profiles[pid] = {
                "workspace_id": self.workspace_id,
                "id": pid,
                "collection": collection,
                "merged_into": None,
                "created_us": ev.timestamp_us,
                "updated_us": ev.received_us,
                "first_message_id": ev.message_id,
                "first_source_id": ev.source_id,
                "last_message_id": ev.message_id,
                "last_source_id": ev.source_id,
                "merge_count": 0,
            }
        for merge in res.merged:
            absorbed, into = merge.from_profile_id, merge.into_profile_id
            self.merged_into[absorbed] = into
            for key in self.merged_into:
                if self.merged_into[key] == absorbed:
                    self.merged_into[key] = into
            absorbed_traits = self.traits.pop(absorbed, {})
            if absorbed_traits:
                self.traits[into] = merge_traits(self.traits.get(into, {}), absorbed_traits)
                self.dirty_traits.setdefault(into, set()).update(absorbed_traits)
            self.dirty_traits.pop(absorbed, None)
            moved = self.touched_identifiers.pop(absorbed, set())
            self.touched_identifiers.setdefault(into, set()).update(moved)
            self.touched.pop(absorbed, None)
            self.merge_rows.append(
                {
                    "workspace_id": self.workspace_id,
                    "from_profile_id": absorbed,
                    "into_profile_id": into,
                    "message_id": ev.message_id,
                    "rule": merge.rule,
                    "detail": orjson.dumps(
                        {"identifiers": [str(i) for i in merge.identifiers]}
                    ).decode(),
                    "created_us": ev.received_us,
                }
            )
        ids = self.touched_identifiers.setdefault(pid, set())
        ids.update(a.identifier for a in res.added)
        ids.update(res.seen)
        node = self._node(pid)
        self.touched[pid] = {
            "id": pid,
            "updated_us": max(ev.received_us, self.touched.get(pid, {}).get("updated_us", 0)),
            "last_message_id": ev.message_id,
            "last_source_id": ev.source_id,
            "merge_count": node.merge_count,
        }

    def _set_traits(self, profile_id: str, incoming: dict[str, Any], ev: Event) -> None:
        current = self.traits.setdefault(profile_id, {})
        changed = apply_traits(
            current,
            incoming,
            source_id=ev.source_id,
            message_id=ev.message_id,
            event_us=ev.timestamp_us,
        )
        if changed:
            current.update(changed)
            self.dirty_traits.setdefault(profile_id, set()).update(changed)

    # -- results ---------------------------------------------------------------------------------
    def live_profiles(self) -> list[ProfileNode]:
        """Every profile of the batch that was not merged away, as the batch left it."""
        return [*self.users.profiles(), *self.accounts.profiles()]

    def written_versions(self) -> dict[str, tuple[str | None, str | None]]:
        """(merged_into, last message) of the live profiles once this batch is written."""
        out: dict[str, tuple[str | None, str | None]] = {}
        for node in self.live_profiles():
            touched = self.touched.get(node.id)
            if touched is not None:
                out[node.id] = (None, touched["last_message_id"])
            elif node.id in self.new_profiles:
                out[node.id] = (None, self.new_profiles[node.id]["last_message_id"])
            else:
                out[node.id] = self.versions.get(node.id, (None, None))
        return out

    def changes(self) -> BatchChanges:
        """What this batch changed (see :class:`BatchChanges`)."""
        profiles = {self.final(p) for p in (*self.touched, *self.new_profiles)}
        created = {p for p in self.new_profiles if self.final(p) == p}
        events_of: dict[str, set[str]] = {}
        for row in self.event_rows:
            name = _stream_name(row["type"], row["event"])
            if name is not None:
                events_of.setdefault(self.final(row["profile_id"]), set()).add(name)
        traits_of: dict[str, set[str]] = {}
        for pid, keys in self.dirty_traits.items():
            traits_of.setdefault(self.final(pid), set()).update(keys)
        return BatchChanges(
            self.workspace_id,
            frozenset(profiles),
            frozenset(created),
            frozenset(n for names in events_of.values() for n in names),
            frozenset(k for keys in traits_of.values() for k in keys),
            bool(self.merge_rows),
            {pid: frozenset(names) for pid, names in events_of.items()},
            {pid: frozenset(keys) for pid, keys in traits_of.items()},
            frozenset(self.final(row["into_profile_id"]) for row in self.merge_rows),
            frozenset(p for p in created if self.new_profiles[p]["collection"] == "accounts"),
            [
                StoredEvent(
                    row["message_id"],
                    self.final(row["profile_id"]),
                    row["payload"],
                    row.get("source_id"),
                )
                for row in self.event_rows
            ],
        )

    def final(self, profile_id: str) -> str:
        """The profile an id ended up as after this batch's merges."""
        return self.merged_into.get(profile_id, profile_id)

    def placements(self) -> dict[str, str]:
        """Message id → the profile each event stored by this batch ended up on (after the
        batch's merges)."""
        return {row["message_id"]: self.final(row["profile_id"]) for row in self.event_rows}

    def identifier_rows(self) -> list[dict[str, Any]]:
        rows = []
        for pid, idents in self.touched_identifiers.items():
            node = self._node(pid)
            for ident in idents:
                info = node.identifiers.get(ident)
                if info is None:
                    continue
                stored = self.stored_identifiers.get((node.collection, ident.type, ident.value))
                if stored == (pid, info.first_seen_us, info.last_seen_us):
                    continue
                rows.append(
                    {
                        "workspace_id": self.workspace_id,
                        "collection": node.collection,
                        "id_type": ident.type,
                        "id_value": ident.value,
                        "profile_id": pid,
                        "source_id": info.source_id,
                        "message_id": info.message_id,
                        "rule": info.rule or "co-occurrence",
                        "created_us": info.first_seen_us,
                        "last_seen_us": info.last_seen_us,
                    }
                )
        return rows

    def _node(self, profile_id: str) -> ProfileNode:
        try:
            return self.users.profile(profile_id)
        except KeyError:
            return self.accounts.profile(profile_id)

    def trait_rows(self) -> list[dict[str, Any]]:
        rows = []
        for pid, keys in self.dirty_traits.items():
            values = self.traits.get(pid, {})
            for key in keys:
                tv = values[key]
                rows.append(
                    {
                        "workspace_id": self.workspace_id,
                        "profile_id": pid,
                        "key": key,
                        "value": orjson.dumps(tv.value).decode(),
                        "source_id": tv.source_id,
                        "message_id": tv.message_id,
                        "event_us": tv.event_us,
                    }
                )
        return rows


def _stream_name(kind: str, event: str | None) -> str | None:
    """The name ``event()`` knows a stored event row by (None: it cannot select it)."""
    if kind == "track":
        return event or None
    if kind == "page":
        return "Page Viewed"
    if kind == "screen":
        return "Screen Viewed"
    return None


def _user_traits(msg: dict[str, Any]) -> dict[str, Any]:
    """Traits an event sets on the user: ``context.traits`` always, plus identify's ``traits``,
    without ``consent.*`` keys; then the consent traits of its
    ``context.consent.categoryPreferences`` (consent changes only through those)."""
    context = msg.get("context")
    context_traits = context.get("traits") if isinstance(context, dict) else None
    out: dict[str, Any] = dict(context_traits) if isinstance(context_traits, dict) else {}
    if msg.get("type") == "identify" and isinstance(msg.get("traits"), dict):
        out.update(msg["traits"])
    out = without_consent(out)
    out.update(consent_traits(msg))
    return out
