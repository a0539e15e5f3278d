"""The identity graph: Segment's flat matching, in memory, one event at a time.

The worker loads the profiles that a micro-batch's identifiers point to
(:meth:`IdentityGraph.load_profile`), runs the events through :meth:`IdentityGraph.resolve` in
order, and persists what each returned :class:`Resolution` says: identifiers added, profiles
merged, identifiers seen again. The resolution is also stored with the event as the explanation
of where it went and why (invariant 5: identity is explainable).

Matching (segment-compat.md §2.2):

1. Blocked values are dropped and recorded.
2. Every remaining identifier is looked up. No match: a new profile gets them all. One match:
   the new identifiers are added to it. Several: the profiles are merged into the canonical one
   (earliest ``created_us``, then smallest id).
3. If that would give a profile more values of a type than its :class:`~.rules.Limit` allows
   (counting values seen within the limit's window), the event's lowest-priority identifier is
   demoted (left out) and matching starts again.
4. A merge that would take a profile past ``max_merges`` or ``max_identifiers`` does not happen:
   the event goes to the profile of its highest-priority matched identifier. A profile at
   ``max_identifiers`` takes no new identifiers. Either way the event still resolves.

Everything here is deterministic: the outcome depends only on the loaded state, the config, the
events and their order, and the ids handed out by ``new_profile_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from opencdp.errors import IdentityError
from opencdp.identity.identifiers import EXTRACTORS, Identifier, sort_identifiers
from opencdp.identity.rules import IdentityConfig

RULE_CO_OCCURRENCE: Final = "co-occurrence"
RULE_ALIAS: Final = "alias"
#: The pseudo-type an alias message's ``previousId`` arrives as (see ``resolve``).
PREVIOUS_ID: Final = "previous_id"
REASON_MAX_MERGES: Final = "max_merges"
REASON_MAX_IDENTIFIERS: Final = "max_identifiers"


def limit_reason(type_: str) -> str:
    """The demotion reason recorded when the limit of ``type_`` would be exceeded."""
    return f"limit:{type_}"


@dataclass(slots=True)
class IdInfo:
    """When an identifier was seen on its profile, and which event linked it there."""

    first_seen_us: int
    last_seen_us: int
    message_id: str | None = None
    source_id: str | None = None
    rule: str | None = None

    def touch(self, at_us: int) -> bool:
        """Widen the seen range to include ``at_us``; True when it changed."""
        if self.first_seen_us <= at_us <= self.last_seen_us:
            return False
        # Events arrive out of order, so the range can grow at either end.
        self.first_seen_us = min(self.first_seen_us, at_us)
        self.last_seen_us = max(self.last_seen_us, at_us)
        return True


@dataclass(slots=True)
class ProfileNode:
    """A profile as the graph sees it: its identifiers and merge history size.

    After :meth:`IdentityGraph.load_profile` the graph owns the node; change it only through the
    graph, which keeps its lookup index and the per-type index below in step.
    """

    id: str
    collection: str
    created_us: int
    merge_count: int = 0
    identifiers: dict[Identifier, IdInfo] = field(default_factory=dict)
    # type -> identifiers of that type, so that limit checks don't scan the whole profile.
    _by_type: dict[str, set[Identifier]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._reindex()

    def _reindex(self) -> None:
        self._by_type = {}
        for identifier in self.identifiers:
            self._by_type.setdefault(identifier.type, set()).add(identifier)

    def _add(self, identifier: Identifier, info: IdInfo) -> None:
        self.identifiers[identifier] = info
        self._by_type.setdefault(identifier.type, set()).add(identifier)

    def types(self) -> Iterable[str]:
        """The identifier types present on the profile."""
        return self._by_type.keys()

    def count(self, type_: str, since_us: int | None = None) -> int:
        """How many values of ``type_`` the profile has, counting only those last seen after
        ``since_us`` when it is given."""
        of_type = self._by_type.get(type_)
        if not of_type:
            return 0
        if since_us is None:
            return len(of_type)
        infos = self.identifiers
        return sum(1 for i in of_type if infos[i].last_seen_us > since_us)


class Added(NamedTuple):
    """An identifier newly linked to the resolved profile, and the rule that linked it."""

    identifier: Identifier
    rule: str


class Demotion(NamedTuple):
    """An identifier of the event left out of matching, and why (``limit:<type>``, caps)."""

    identifier: Identifier
    reason: str


@dataclass(frozen=True, slots=True)
class Merge:
    """``from_profile_id`` was absorbed into ``into_profile_id`` because an event carried the
    bridging ``identifiers`` (the ones found on either profile)."""

    from_profile_id: str
    into_profile_id: str
    identifiers: tuple[Identifier, ...]
    rule: str

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "from": self.from_profile_id,
            "into": self.into_profile_id,
            "identifiers": [str(i) for i in self.identifiers],
            "rule": self.rule,
        }


@dataclass(frozen=True, slots=True)
class Resolution:
    """What resolving one event did to the graph, in the order the worker must persist it.

    ``merged`` first (absorbed profiles' identifiers now belong to ``profile_id``), then
    ``added`` (new identifier links), then ``seen`` (identifiers already on a profile whose
    seen range now includes the event time). ``demoted`` and ``blocked`` identifiers were left
    out and changed nothing.
    """

    profile_id: str
    created: bool
    added: tuple[Added, ...] = ()
    merged: tuple[Merge, ...] = ()
    demoted: tuple[Demotion, ...] = ()
    blocked: tuple[Identifier, ...] = ()
    seen: tuple[Identifier, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The explanation stored with the event (JSON-friendly)."""
        return {
            "profile_id": self.profile_id,
            "created": self.created,
            "added": [{"id": str(a.identifier), "rule": a.rule} for a in self.added],
            "merged": [m.to_json() for m in self.merged],
            "demoted": [{"id": str(d.identifier), "reason": d.reason} for d in self.demoted],
            "blocked": [str(i) for i in self.blocked],
            "seen": [str(i) for i in self.seen],
        }


class IdentityGraph:
    """An in-memory slice of one collection's identity graph (see the module docstring)."""

    def __init__(
        self,
        config: IdentityConfig,
        new_profile_id: Callable[[], str],
        collection: str = "users",
    ) -> None:
        if collection not in EXTRACTORS:
            raise ValueError(f"collection must be one of {sorted(EXTRACTORS)}, got {collection!r}")
        self.config = config
        self.collection = collection
        self._new_profile_id = new_profile_id
        self._profiles: dict[str, ProfileNode] = {}
        self._index: dict[Identifier, str] = {}

    # -- state ------------------------------------------------------------------------------------

    def load_profile(self, node: ProfileNode) -> None:
        """Add an existing profile (from the database) to the graph; the graph now owns it.

        Raises ValueError if the node belongs to another collection, is already loaded, or
        shares an identifier with a loaded profile (the store must map each identifier to one
        profile).
        """
        if node.collection != self.collection:
            raise ValueError(
                f"profile {node.id} is in collection {node.collection!r}, "
                f"this graph holds {self.collection!r}"
            )
        if node.id in self._profiles:
            raise ValueError(f"profile {node.id} is already loaded")
        for identifier in node.identifiers:
            owner = self._index.get(identifier)
            if owner is not None:
                raise ValueError(f"identifier {identifier} is on both {owner} and {node.id}")
        node._reindex()  # in case the caller filled ``identifiers`` after construction
        for identifier in node.identifiers:
            self._index[identifier] = node.id
        self._profiles[node.id] = node

    def lookup(self, identifier: Identifier) -> str | None:
        """The id of the loaded profile that holds ``identifier``, or None."""
        return self._index.get(identifier)

    def profile(self, profile_id: str) -> ProfileNode:
        """The loaded profile ``profile_id``; KeyError if absent (or merged away)."""
        try:
            return self._profiles[profile_id]
        except KeyError:
            raise KeyError(f"profile {profile_id} is not in the graph") from None

    def profiles(self) -> Iterator[ProfileNode]:
        """Every profile in the graph (loaded or created, not merged away)."""
        return iter(self._profiles.values())

    def __len__(self) -> int:
        return len(self._profiles)

    # -- resolution -------------------------------------------------------------------------------

    def resolve_message(
        self, message: Mapping[str, Any], *, at_us: int, source_id: str | None = None
    ) -> Resolution:
        """Extract the identifiers of a normalized message for this graph's collection and
        :meth:`resolve` them (IdentityError when it carries none)."""
        identifiers = EXTRACTORS[self.collection](message, self.config)
        message_id = message.get("messageId")
        return self.resolve(
            identifiers,
            message_id=message_id if isinstance(message_id, str) else "",
            source_id=source_id,
            at_us=at_us,
        )

    def resolve(
        self,
        identifiers: Iterable[Identifier],
        *,
        message_id: str,
        source_id: str | None = None,
        at_us: int,
        rule: str = RULE_CO_OCCURRENCE,
    ) -> Resolution:
        """Place an event carrying ``identifiers`` (seen at ``at_us``) on exactly one profile.

        Applies blocked values, limits with priority demotion, and the merge and identifier
        caps, updates the graph, and returns what changed. A ``previous_id`` identifier (alias)
        is the ``user_id`` or ``anonymous_id`` that already holds its value, else a new
        ``anonymous_id``; its event is resolved with the rule ``"alias"``.

        Raises IdentityError when no identifier is left after dropping blocked values; the graph
        is then unchanged.
        """
        config = self.config
        blocked: set[Identifier] = set()
        usable: set[Identifier] = set()
        previous: list[Identifier] = []
        for identifier in identifiers:
            if config.is_blocked(identifier):
                blocked.add(identifier)
            elif identifier.type == PREVIOUS_ID:
                rule = RULE_ALIAS
                previous.append(self._previous_id(identifier.value))
            else:
                usable.add(identifier)
        # The previousId of an alias ranks after the other identifiers of its type: the message's
        # own userId is the current one, so if a limit forces a choice the old id is demoted.
        old = set(previous) - usable
        usable.update(old)
        if not usable:
            detail = (
                "its only identifiers are blocked placeholder values: "
                + ", ".join(map(str, sorted(blocked)))
                if blocked
                else "it carries no identifier"
            )
            raise IdentityError(
                f"message {message_id!r} cannot be placed on a {self.collection} profile: "
                f"{detail}. Send a real userId or anonymousId (or change the blocked values "
                "in the workspace's identity settings) and replay it."
            )

        if old:
            rank = config.rank
            candidates = sorted(usable, key=lambda i: (rank(i.type), i.type, i in old, i.value))
        else:
            candidates = sort_identifiers(usable, config)
        demoted, matched, new = self._match(candidates, at_us)
        index = self._index

        merges: list[Merge] = []
        seen: list[Identifier] = []
        if not matched:
            target = ProfileNode(self._fresh_id(), self.collection, at_us)
            self._profiles[target.id] = target
            created = True
        else:
            created = False
            nodes = sorted(
                (self._profiles[pid] for pid in matched), key=lambda n: (n.created_us, n.id)
            )
            target = nodes[0]
            for absorbed in nodes[1:]:
                bridging = sort_identifiers(matched[absorbed.id] + matched[target.id], config)
                self._absorb(target, absorbed)
                merges.append(Merge(absorbed.id, target.id, tuple(bridging), rule))
            # An identifier demoted on the way that ended up on this very profile (it was
            # already there, or came with a merge) is no conflict: it was simply seen again.
            kept: list[Demotion] = []
            for demotion in demoted:
                if index.get(demotion.identifier) == target.id:
                    seen.append(demotion.identifier)
                else:
                    kept.append(demotion)
            demoted = kept
            for ids in matched.values():
                seen.extend(ids)
            if len(seen) > 1:
                seen = sort_identifiers(seen, config)
            infos = target.identifiers
            for identifier in seen:
                infos[identifier].touch(at_us)

        room = config.max_identifiers - len(target.identifiers)
        added: list[Added] = []
        for identifier in new:
            if len(added) >= room:
                demoted.append(Demotion(identifier, REASON_MAX_IDENTIFIERS))
                continue
            target._add(identifier, IdInfo(at_us, at_us, message_id, source_id, rule))
            index[identifier] = target.id
            added.append(Added(identifier, rule))

        return Resolution(
            profile_id=target.id,
            created=created,
            added=tuple(added),
            merged=tuple(merges),
            demoted=tuple(demoted),
            blocked=tuple(sorted(blocked)),
            seen=tuple(seen),
        )

    def _previous_id(self, value: str) -> Identifier:
        # An alias's previousId is whatever the graph already knows it as; an unknown value is
        # (as in Segment) the anonymous id the user had before they were identified.
        for type_ in ("user_id", "anonymous_id"):
            identifier = Identifier(type_, value)
            if identifier in self._index:
                return identifier
        return Identifier("anonymous_id", value)

    def _match(
        self, candidates: list[Identifier], at_us: int
    ) -> tuple[list[Demotion], dict[str, list[Identifier]], list[Identifier]]:
        """Demote identifiers until the rest can go on one profile without breaking a rule.

        Returns the demotions, the matched profiles (id -> the candidates found on it, in
        priority order, the profile of the highest-priority match first) and the new candidates.
        """
        demoted: list[Demotion] = []
        index = self._index
        while True:
            matched: dict[str, list[Identifier]] = {}
            new: list[Identifier] = []
            for identifier in candidates:
                pid = index.get(identifier)
                if pid is None:
                    new.append(identifier)
                else:
                    matched.setdefault(pid, []).append(identifier)

            if len(matched) > 1:
                refusal = self._merge_refusal(matched)
                if refusal is not None:
                    # Keep the profile of the highest-priority identifier; leave the others be.
                    keep = next(iter(matched))
                    candidates = [i for i in candidates if index.get(i, keep) == keep]
                    demoted.extend(
                        Demotion(i, refusal)
                        for pid, ids in matched.items()
                        if pid != keep
                        for i in ids
                    )
                    continue

            violated = self._limit_violation(matched, new, at_us)
            if violated is not None:
                # Segment's priority rule: drop the lowest-priority identifier and try again.
                # It always ends: a single identifier can never break a limit on its own.
                demoted.append(Demotion(candidates[-1], limit_reason(violated)))
                candidates = candidates[:-1]
                continue
            return demoted, matched, new

    def _limit_violation(
        self, matched: Mapping[str, list[Identifier]], new: list[Identifier], at_us: int
    ) -> str | None:
        """The highest-priority type whose limit putting these together would break, if any.

        A type is only checked when something would be added to it: a new value, or values of
        another profile in a merge. So a profile that is already over a limit (a lowered
        setting, old data) still takes events for the values it has.
        """
        if not new and len(matched) < 2:
            return None  # the hot path: nothing would be added to the profile
        nodes = [self._profiles[pid] for pid in matched]
        new_counts: dict[str, int] = {}
        for identifier in new:
            new_counts[identifier.type] = new_counts.get(identifier.type, 0) + 1
        types = set(new_counts)
        if len(nodes) > 1:
            seen_once: set[str] = set()
            for node in nodes:
                for type_ in node.types():
                    if type_ in seen_once:
                        types.add(type_)
                    seen_once.add(type_)
        if not types:
            return None

        config = self.config
        for type_ in sorted(types, key=config.rank):
            limit = config.limit_for(type_)
            window = limit.window_us
            since = None if window is None else at_us - window
            incoming = new_counts.get(type_, 0)
            total = incoming
            contributing = 0
            for node in nodes:
                n = node.count(type_, since)
                if n:
                    total += n
                    contributing += 1
            if total > limit.max_values and (incoming or contributing > 1):
                return type_
        return None

    def _merge_refusal(self, matched: Mapping[str, list[Identifier]]) -> str | None:
        """Why merging the matched profiles is not allowed (a cap), or None."""
        nodes = [self._profiles[pid] for pid in matched]
        # Each absorbed profile brings its own merges plus the merge that absorbs it.
        if sum(n.merge_count for n in nodes) + len(nodes) - 1 > self.config.max_merges:
            return REASON_MAX_MERGES
        if sum(len(n.identifiers) for n in nodes) > self.config.max_identifiers:
            return REASON_MAX_IDENTIFIERS
        return None

    def _absorb(self, target: ProfileNode, absorbed: ProfileNode) -> None:
        index = self._index
        for identifier, info in absorbed.identifiers.items():
            target._add(identifier, info)
            index[identifier] = target.id
        target.merge_count += absorbed.merge_count + 1
        del self._profiles[absorbed.id]

    def _fresh_id(self) -> str:
        profile_id = self._new_profile_id()
        if profile_id in self._profiles:
            raise ValueError(f"new_profile_id returned {profile_id!r}, which is already in use")
        return profile_id
