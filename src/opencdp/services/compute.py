"""Computed traits and audiences, the use cases the API and the CLI share: define (validated:
syntax, types, unknown traits, dependency cycles), compute in batch over every profile (in
dependency order), preview, list an audience's members.

A computation evaluates the definition over every live profile in one SQL statement (the
reference evaluator, profile by profile, for what SQL does not express yet), stores the values
that changed, and records each audience entry and exit on the profile's timeline as an
``Audience Entered`` / ``Audience Exited`` event, in one transaction.
"""

from __future__ import annotations

import re
from typing import Any

from opencdp.compute import presets
from opencdp.compute.engine import Computation
from opencdp.compute.reach import dependency_order
from opencdp.errors import RequestError
from opencdp.privacy.consent import category_of
from opencdp.query.parser import Definition, DefinitionError, DefinitionKind, parse
from opencdp.runtime import Runtime
from opencdp.storage.definitions import DISABLED, DefinitionRow, DefinitionStore
from opencdp.timeutil import isoformat_us

KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
_KIND_WORD = {"trait": "computed trait", "audience": "audience"}


def store(runtime: Runtime) -> DefinitionStore:
    """The runtime's definition store (the compute engine's)."""
    return runtime.compute.definitions


# -- definitions ----------------------------------------------------------------------------------


def put_definition(
    runtime: Runtime,
    workspace_id: str,
    kind: DefinitionKind,
    key: str,
    body: Any,
    *,
    compute_now: bool = True,
) -> dict[str, Any]:
    """Create or replace the definition ``key`` from an API/CLI document
    ``{"name", "definition": {"type", "query"}, "enabled"}``, then compute it (and what
    depends on it); returns the stored definition with its status."""
    if not KEY.fullmatch(key):
        raise RequestError(
            f"{key!r} is not a valid key: letters, digits and underscores, starting with a "
            "letter (e.g. lifetime_value)",
            code="invalid_key",
        )
    if not isinstance(body, dict):
        raise RequestError("send a JSON object", code="invalid_definition")
    unknown = sorted(set(body) - {"name", "definition", "enabled"})
    if unknown:
        raise RequestError(
            f"unknown keys {unknown}: a definition has name, definition and enabled",
            code="invalid_definition",
        )
    spec = body.get("definition")
    if not isinstance(spec, dict) or not isinstance(spec.get("query"), str):
        raise RequestError(
            'the body needs "definition": {"type": "USERS", "query": "…"}',
            code="invalid_definition",
        )
    extra = sorted(set(spec) - {"type", "query"})
    if extra:
        raise RequestError(
            f"unknown keys {extra} in definition: it has type and query",
            code="invalid_definition",
        )
    definition_type = spec.get("type", "USERS")
    if definition_type not in ("USERS", "ACCOUNTS"):
        raise RequestError(
            f'definition.type is "USERS" or "ACCOUNTS", not {definition_type!r}',
            code="invalid_definition",
        )
    name = body.get("name", key)
    enabled = body.get("enabled", True)
    if not isinstance(name, str) or not name.strip() or len(name) > 300:
        raise RequestError(
            "name is a non-empty string of at most 300 characters", code="invalid_definition"
        )
    if not isinstance(enabled, bool):
        raise RequestError("enabled is true or false", code="invalid_definition")
    definition = validate(runtime, workspace_id, kind, key, spec["query"], definition_type)
    definitions = store(runtime)
    now = runtime.now_us()
    try:
        existing = definitions.get(workspace_id, key)
    except RequestError:
        existing = None
    if existing is not None and existing.kind != kind:
        raise RequestError(
            f"{key!r} is already the key of a {_KIND_WORD[existing.kind]}: keys are shared by "
            "computed traits and audiences (both show as traits on the profile)",
            code="key_taken",
        )
    definitions.put(
        {
            "workspace_id": workspace_id,
            "key": key,
            "kind": kind,
            "name": name,
            "type": definition.type,
            "query": definition.query,
            "enabled": enabled,
            "status": "computing" if enabled else DISABLED,
            "error": None,
            "created_us": now,
            "updated_us": now,
        }
    )
    runtime.compute.forget(workspace_id)
    if enabled and compute_now:
        compute_with_dependents(runtime, workspace_id, [key])
    return describe(runtime, definitions.get(workspace_id, key))


def compute_with_dependents(runtime: Runtime, workspace_id: str, keys: list[str]) -> None:
    """Compute the enabled definitions ``keys`` and what reads them, each once, in dependency
    order, in one round."""
    with runtime.compute.shared():
        for affected in runtime.compute.in_dependency_order(workspace_id, keys):
            compute(runtime, workspace_id, affected)


def validate(
    runtime: Runtime,
    workspace_id: str,
    kind: DefinitionKind,
    key: str,
    query: str,
    definition_type: str = "USERS",
) -> Definition:
    """Parse and check a definition against the workspace: its traits must exist (as traits
    of some profile, or as definitions; consent traits ``consent.<category>`` always do), and
    it must not depend on itself."""
    try:
        definition = parse(query, kind, definition_type)  # type: ignore[arg-type]
    except DefinitionError as exc:
        raise RequestError(str(exc), code="invalid_definition") from None
    definitions = {row.key: row for row in store(runtime).of_workspace(workspace_id)}
    for trait in sorted(definition.traits):
        if trait == key:
            raise RequestError(
                f"the definition reads its own value trait({trait!r}): a dependency cycle",
                code="invalid_definition",
            )
        if (
            trait not in definitions
            # a consent category may be read before anyone has a record of it
            and category_of(trait) is None
            and not store(runtime).trait_key_seen(workspace_id, trait)
        ):
            raise RequestError(
                f"trait({trait!r}) is unknown: no profile of workspace {workspace_id!r} has it "
                "and no computed trait or audience is called so",
                code="invalid_definition",
            )
    cycle = _cycle(key, definition.traits, definitions)
    if cycle:
        raise RequestError("a dependency cycle: " + " → ".join(cycle), code="invalid_definition")
    return definition


def _depends_on(row: DefinitionRow) -> frozenset[str]:
    try:
        return parse(row.query, row.kind, row.type).traits  # type: ignore[arg-type]
    except DefinitionError:
        return frozenset()


def _cycle(key: str, reads: frozenset[str], definitions: dict[str, DefinitionRow]) -> list[str]:
    """A path key → … → key through the definitions' trait references, or []."""
    graph = {k: _depends_on(row) & definitions.keys() for k, row in definitions.items()}
    graph[key] = reads & (definitions.keys() | {key})
    path: list[str] = []

    def visit(node: str, seen: set[str]) -> bool:
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == key or (nxt not in seen and visit(nxt, seen | {nxt})):
                if nxt == key:
                    path.append(key)
                return True
        path.pop()
        return False

    return path if visit(key, {key}) else []


def delete_definition(runtime: Runtime, workspace_id: str, key: str, kind: DefinitionKind) -> None:
    """Delete a definition and the values it computed (NotFound when there is none)."""
    store(runtime).get(workspace_id, key, kind)
    store(runtime).delete(workspace_id, key)
    runtime.compute.forget(workspace_id)


def describe(runtime: Runtime, row: DefinitionRow) -> dict[str, Any]:
    """The API shape of a definition; an audience's ``size`` is its members now (kept up to
    date by the worker)."""
    out: dict[str, Any] = {
        "key": row.key,
        "name": row.name,
        "definition": {"type": row.type, "query": row.query},
        "enabled": row.enabled,
        "status": row.status,
        "computed_at": isoformat_us(row.computed_us) if row.computed_us is not None else None,
        "created_at": isoformat_us(row.created_us),
        "updated_at": isoformat_us(row.updated_us),
    }
    if row.error is not None:
        out["error"] = row.error
    if row.kind == "audience":
        out["size"] = store(runtime).count(row.workspace_id, row.key)
    return out


# -- computing ------------------------------------------------------------------------------------


def compute(runtime: Runtime, workspace_id: str, key: str) -> Computation:
    """Evaluate the definition over every live profile now and store what changed."""
    return runtime.compute.compute(workspace_id, key)


def _values(
    runtime: Runtime, workspace_id: str, definition: Definition, now_us: int
) -> dict[str, Any]:
    computed = frozenset(row.key for row in store(runtime).of_workspace(workspace_id))
    with runtime.db.read() as conn:
        return runtime.compute.values(conn, workspace_id, definition, now_us, computed)


# -- reading --------------------------------------------------------------------------------------


def preview(
    runtime: Runtime,
    workspace_id: str,
    body: Any,
    kind: DefinitionKind = "audience",
    sample: int = 10,
) -> dict[str, Any]:
    """A definition computed now and stored nowhere: an audience's size and a sample of its
    members, or how many profiles a computed trait gives a value and a sample of them."""
    spec = body.get("definition") if isinstance(body, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("query"), str):
        raise RequestError(
            'send {"definition": {"type": "USERS", "query": "…"}}', code="invalid_definition"
        )
    definition = validate(
        runtime, workspace_id, kind, "__preview__", spec["query"], spec.get("type", "USERS")
    )
    values = _values(runtime, workspace_id, definition, runtime.now_us())
    if kind == "trait":
        having = sorted(pid for pid, v in values.items() if v is not None)
        return {
            "profiles": len(having),
            "sample": [{"profile_id": pid, "value": values[pid]} for pid in having[:sample]],
        }
    members = sorted(pid for pid, v in values.items() if v)
    page = store(runtime).identifiers_of(workspace_id, members[:sample])
    return {
        "size": len(members),
        "sample": [
            {"profile_id": pid, "external_ids": [{"type": t, "id": v} for t, v in ids]}
            for pid, ids in page
        ],
    }


def apply_file(
    runtime: Runtime, workspace_id: str, kind: DefinitionKind, document: Any
) -> list[dict[str, Any]]:
    """Create or replace every definition of a YAML/JSON document: a list of
    ``{key, name, definition: {type, query}, enabled}``, or a mapping key → the same without
    ``key``, optionally under a top-level ``traits:`` / ``audiences:``. Every query is parsed
    before any is stored; the entries are then stored in dependency order (one refused for
    its name, an unknown trait or a cycle stops the file after those before it), and computed
    once each with what reads them."""
    section = "traits" if kind == "trait" else "audiences"
    if isinstance(document, dict) and section in document:
        document = document[section]
    if isinstance(document, dict):
        items = [{"key": k, **(v if isinstance(v, dict) else {})} for k, v in document.items()]
    elif isinstance(document, list):
        items = document
    else:
        raise RequestError(
            f"the file holds a list of {section} ({{key, name, definition: {{type, query}}}}) "
            "or a mapping of key to definition",
            code="invalid_definition",
        )
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise RequestError(f"entry {i} has no key", code="invalid_definition")
        spec = item.get("definition")
        if not isinstance(spec, dict) or not isinstance(spec.get("query"), str):
            raise RequestError(
                f"{item['key']}: needs definition: {{type: USERS, query: …}}",
                code="invalid_definition",
            )
        try:  # every query parses before anything is stored
            parse(spec["query"], kind, spec.get("type", "USERS"))
        except DefinitionError as exc:
            raise RequestError(f"{item['key']}: {exc}", code="invalid_definition") from None
    ordered = _dependencies_first(items, kind)
    for item in ordered:  # stored first, then computed once each (not again per dependent)
        put_definition(
            runtime,
            workspace_id,
            kind,
            item["key"],
            {k: v for k, v in item.items() if k != "key"},
            compute_now=False,
        )
    keys = [item["key"] for item in ordered]
    compute_with_dependents(runtime, workspace_id, keys)
    return [describe(runtime, store(runtime).get(workspace_id, key)) for key in keys]


def apply_preset(
    runtime: Runtime, workspace_id: str, kind: DefinitionKind, name: str
) -> list[dict[str, Any]]:
    """Apply the traits (or audiences) of a preset that ships with OpenCDP
    (:mod:`opencdp.compute.presets`), like a file."""
    return apply_file(runtime, workspace_id, kind, presets.load(name))


def _dependencies_first(items: list[dict[str, Any]], kind: DefinitionKind) -> list[dict[str, Any]]:
    """File entries (their queries already parsed once) ordered so that each comes after the
    entries whose traits it reads."""
    by_key = {item["key"]: item for item in items}
    reads = {
        key: parse(
            item["definition"]["query"], kind, item["definition"].get("type", "USERS")
        ).traits
        for key, item in by_key.items()
    }
    return [by_key[key] for key in dependency_order(reads)]


def members(
    runtime: Runtime, workspace_id: str, key: str, limit: int, after: str | None
) -> dict[str, Any]:
    """A page of an audience's members with their identifiers, and the cursor to the next."""
    if not 1 <= limit <= 1000:
        raise RequestError("limit is between 1 and 1000", code="invalid_request")
    store(runtime).get(workspace_id, key, "audience")
    page = store(runtime).members(workspace_id, key, limit + 1, after)
    more = len(page) > limit
    page = page[:limit]
    return {
        "data": [
            {"profile_id": pid, "external_ids": [{"type": t, "id": v} for t, v in ids]}
            for pid, ids in page
        ],
        "cursor": {"has_more": more, "next": page[-1][0] if more else None, "limit": limit},
    }
