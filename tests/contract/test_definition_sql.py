"""Batch = the reference: a definition compiled to SQL gives, for every profile, what the
reference evaluator gives over that profile's stored traits and events (both backends;
random event streams and random definitions from the compiled part of the language)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencdp.query.evaluate import Evaluator, EventRecord, ProfileData, event_name
from opencdp.query.parser import parse
from opencdp.runtime import Runtime
from opencdp.storage.definition_sql import DefinitionCompiler, convert
from opencdp.storage.products import ProductStore
from opencdp.timeutil import from_us

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
_workspaces = itertools.count()

VALUES = st.sampled_from(
    [
        *(1, 2, 2.5, -3, 0, "3", " 4 ", "x", "B", "b", "", True, False, None, "true"),
        # times: ISO 8601 as the reference reads it, and strings PostgreSQL would read otherwise
        *("2024-05-31T12:00:00Z", "2024-05-25", "2024-05-20 08:30:00.5+05:30", "2024-06-02T00:00"),
        *("2024-02-30", "2024-05-25T24:00", "May 25 2024", "2024-05-25T10:00:00+16:00"),
    ]
)
NAMES = st.sampled_from(["Order Completed", "Product Viewed"])
#: The ids of a generated catalog, and what events name products by: ids of the catalog as
#: strings and whole numbers (7.0 reads as '7'), ids it lacks, and values that are no key.
CATALOG_IDS = ("P1", "P2", "7")
PRODUCT_KEYS = st.sampled_from(["P1", "P1", "P2", "7", 7, 7.0, "P9", "p1", True, 2.5, None])


@st.composite
def catalogs(draw: Any) -> dict[str, dict[str, Any]]:
    """A small catalog: some of :data:`CATALOG_IDS`, with brands, categories, prices and
    attributes (an attribute ``total`` that product('total') reads)."""
    words = st.sampled_from(["b", None, "B", None, "x", "3", "Women > Shoes"])
    out: dict[str, dict[str, Any]] = {}
    for product_id in CATALOG_IDS:
        if draw(st.integers(0, 3)) == 3:  # (the simplest catalog has every product)
            continue
        attributes = draw(st.dictionaries(st.sampled_from(["total", "colour"]), VALUES))
        out[product_id] = {
            "id": product_id,
            "sku": None,
            "name": draw(words),
            "brand": draw(words),
            "category": draw(words),
            "price": draw(st.sampled_from([None, 1.0, 2.5, -3.0, 0.0, 19.99])),
            "currency": None,
            "url": None,
            "image_url": None,
            "parent_id": None,
            "attributes": attributes,
        }
    return out


def store_catalog(rt: Runtime, ws: str, catalog: dict[str, dict[str, Any]]) -> None:
    """The catalog in workspace ``ws``, and a decoy catalog with the same ids (and other
    values) in another workspace, which no definition of ``ws`` may read."""
    decoy = {
        "brand": "decoy",
        "category": "decoy",
        "price": 1000.0,
        "attributes": {"total": 1000, "colour": "decoy"},
    }
    rows = [{**row, "workspace_id": ws} for row in catalog.values()] + [
        {**_BLANK, "id": product_id, **decoy, "workspace_id": f"{ws}-decoy"}
        for product_id in (*CATALOG_IDS, "P9", "p1")
    ]
    ProductStore(rt.db).upsert(
        [
            {
                **r,
                "attributes": orjson.dumps(r["attributes"]).decode(),
                "quantity": None,
                "source_id": None,
            }
            for r in rows
        ],
        rt.now_us(),
    )


_BLANK: dict[str, Any] = dict.fromkeys(
    ("sku", "name", "brand", "category", "price", "currency", "url", "image_url", "parent_id")
)


@st.composite
def timelines(draw: Any) -> list[list[dict[str, Any]]]:
    """Messages of up to three people: identifies with traits, tracks and pages."""
    people = []
    for person in range(draw(st.integers(1, 3))):
        messages: list[dict[str, Any]] = []
        for n in range(draw(st.integers(0, 7))):
            when = NOW - timedelta(hours=draw(st.integers(-5, 24 * 50)))
            base = {
                "userId": f"u{person}",
                "messageId": f"p{person}-{n}",
                "timestamp": when.isoformat(),
            }
            kind = draw(st.sampled_from(["track", "track", "track", "page", "identify"]))
            props = {
                k: v
                for k in ("total", "category", "brand")
                if (v := draw(st.one_of(st.just("__missing__"), VALUES))) != "__missing__"
            }
            if draw(st.booleans()):  # the product it is about, by id or by SKU
                props[draw(st.sampled_from(["product_id", "sku"]))] = draw(PRODUCT_KEYS)
            if kind == "track" and draw(st.booleans()):  # line items, or something else
                item = st.dictionaries(
                    st.sampled_from(
                        ["total", "category", "brand", "product_id", "product_id", "sku"]
                    ),
                    st.one_of(VALUES, PRODUCT_KEYS),
                    max_size=3,
                )
                props["products"] = draw(
                    st.one_of(st.lists(st.one_of(item, item, VALUES), max_size=3), item, VALUES)
                )
            if kind == "identify":
                messages.append({**base, "type": "identify", "traits": {"plan": draw(VALUES)}})
            elif kind == "page":
                messages.append({**base, "type": "page", "name": "Home", "properties": props})
            else:
                messages.append(
                    {**base, "type": "track", "event": draw(NAMES), "properties": props}
                )
        people.append(messages)
    return people


OPERANDS = ["1", "2.5", "'3'", "'b'", "'x'", "true", "0"]
COMPARATORS = [
    " = {v}",
    " != {v}",
    " > {v}",
    " >= {v}",
    " < {v}",
    " <= {v}",
    ".exists()",
    ".absent()",
    ".one_of({v}, 'B')",
    ".none_of({v})",
    ".contains('b')",
    ".omits('x')",
    ".starts_with('B')",
    ".ends_with('3')",
    ".within_last(3 days)",
    ".before_last(30 days)",
    ".within_next(2 days)",
    ".after_date('2024-05-20')",
    ".before_date(2024-05-30T10:00:00+02:00)",
    " > 2024-05-25",
    ".one_of(2024-05-25T00:00:00Z, 'b')",
]
FIELDS = [
    "property('total')",
    "property('category')",
    "product('category')",
    "product('total')",
    "product('price')",
]
REDUCERS = [
    "count()",
    "sum(property('total'))",
    "sum(product('price'))",
    "mode(product('brand'), 1)",
    "max(product('total'))",
    "last(product('category'))",
    "unique(product('id')).count()",
    "avg(property('total'))",
    "min(property('total'))",
    "max(property('total'))",
    "max(property('category') as string)",
    "first(property('category'))",
    "last(property('total'))",
    "mode(property('category'), 1)",
    "unique(property('category'))",
    "unique(property('category')).count()",
    "first(timestamp())",
    "last(timestamp())",
]


#: Reducers that pick one value of the stream (compared as the value they picked).
PICKERS = [
    "last(property('category'))",
    "first(property('total'))",
    "first(product('brand'))",
    "mode(product('category'), 1)",
    "max(property('total'))",
    "min(property('category') as string)",
    "mode(property('category'), 1)",
]


@st.composite
def definitions(draw: Any) -> tuple[str, str]:
    """A computed trait (a stream and a reducer) or an audience (conditions on streams and
    traits, joined and maybe negated)."""

    def compare(subject: str) -> str:
        return subject + draw(st.sampled_from(COMPARATORS)).format(
            v=draw(st.sampled_from(OPERANDS))
        )

    def stream(name: str) -> str:
        filters = draw(
            st.lists(
                st.sampled_from(["within", "between", "sources", "where", "session"]),
                max_size=2,
                unique=True,
            )
        )
        text = f"event({name!r})"
        for f in filters:
            text += {
                "within": ".within(30 days)",
                "between": ".between(2 days, 20 days)",
                "sources": ".sources({exclude: ['nope']})",
                "session": f".expires_after({draw(st.sampled_from(['2 hours', '1 days']))})",
                "where": f".where({compare(draw(st.sampled_from(FIELDS)))})",
            }[f]
        if draw(st.integers(0, 3)) == 0:  # a funnel: what followed (or not) each event
            other = draw(NAMES)
            window = draw(
                st.sampled_from(["within(parent: 72 hours)", "between(parent: 1 hours, 9 days)"])
            )
            nested = f"event({other!r}).{window}"
            if draw(st.booleans()):
                field = draw(st.sampled_from(["property", "product"]))
                nested += f".where({field}('category') = {field}(parent: 'category'))"
            text += f".where({nested}.count() {draw(st.sampled_from(['= 0', '>= 1']))})"
        if draw(st.integers(0, 3)) == 0:  # an order's line items (an OpenCDP extension)
            text += ".items('products')"
            if draw(st.booleans()):
                text += f".where({compare(draw(st.sampled_from(FIELDS)))})"
        return text

    if draw(st.booleans()):
        return f"{stream(draw(NAMES))}.{draw(st.sampled_from(REDUCERS))}", "trait"

    def condition() -> str:
        if draw(st.booleans()):
            return compare("trait('plan')")
        name = draw(st.sampled_from(["Order Completed", "Page Viewed", "Product Viewed"]))
        picked = draw(st.integers(0, 4))
        if picked == 0:  # a value the stream picked, compared like a trait
            return compare(f"{stream(name)}.{draw(st.sampled_from(PICKERS))}")
        if picked == 1:  # an event's time
            when = draw(st.sampled_from(["first", "last"]))
            test = draw(st.sampled_from(COMPARATORS[-7:-1]))  # the time comparisons
            return f"{stream(name)}.{when}(timestamp()){test}"
        reducer = draw(st.sampled_from(["count()", "sum(property('total'))"]))
        op = draw(st.sampled_from([">=", "=", "<", "!="]))
        return f"{stream(name)}.{reducer} {op} {draw(st.sampled_from(['0', '1', '2.5']))}"

    junction = draw(st.sampled_from([" AND ", " OR "]))
    query = junction.join(condition() for _ in range(draw(st.integers(1, 3))))
    if draw(st.booleans()):
        query = f"NOT ({query})"
    return query, "audience"


#: Fields of a product: columns, an attribute (``total``; ``colour``) and, in the catalog's
#: absence, the event's property of the same name.
PRODUCT_FIELDS = [
    "product('brand')",
    "product('category')",
    "product('price')",
    "product('total')",
    "product('id')",
    "product('colour')",
]


@st.composite
def product_timelines(draw: Any) -> list[list[dict[str, Any]]]:
    """Messages of up to two people about products: each event and line item names one (by
    id or SKU, in the catalog or not) and may carry fields of its own."""

    def about() -> dict[str, Any]:
        props = {draw(st.sampled_from(["product_id", "sku", "product_id"])): draw(PRODUCT_KEYS)}
        for name in draw(st.sets(st.sampled_from(["brand", "category", "total", "price", "id"]))):
            props[name] = draw(VALUES)
        return props

    people = []
    for person in range(draw(st.integers(1, 2))):
        messages = []
        for n in range(draw(st.integers(1, 5))):
            props = about()
            if draw(st.booleans()):
                props["products"] = [about() for _ in range(draw(st.integers(0, 3)))]
            when = NOW - timedelta(hours=draw(st.integers(0, 24 * 10)))
            messages.append(
                {
                    "type": "track",
                    "event": draw(NAMES),
                    "userId": f"u{person}",
                    "messageId": f"q{person}-{n}",
                    "timestamp": when.isoformat(),
                    "properties": props,
                }
            )
        people.append(messages)
    return people


@st.composite
def product_definitions(draw: Any) -> tuple[str, str]:
    """Definitions that read the catalog: streams of events or line items, filtered and
    reduced by product fields (traits), or compared (audiences)."""

    def field() -> str:
        return draw(st.sampled_from(PRODUCT_FIELDS))

    text = f"event({draw(NAMES)!r})"
    if draw(st.booleans()):
        text += ".items('products')"
    if draw(st.booleans()):
        test = draw(st.sampled_from(COMPARATORS[:14])).format(v=draw(st.sampled_from(OPERANDS)))
        text += f".where({field()}{test})"
    reducer = draw(
        st.sampled_from(
            [
                "mode({f}, 1)",
                "first({f})",
                "last({f})",
                "sum({f})",
                "avg({f})",
                "max({f})",
                "min({f} as string)",
                "unique({f})",
                "unique({f}).count()",
                "count()",
            ]
        )
    ).format(f=field())
    listed = reducer.startswith("unique(") and not reducer.endswith(".count()")
    if listed or draw(st.booleans()):  # a list is compared by contains() only
        return f"{text}.{reducer}", "trait"
    test = draw(st.sampled_from([" = {v}", " != {v}", " >= {v}", ".exists()", ".one_of({v}, 'B')"]))
    return f"{text}.{reducer}{test.format(v=draw(st.sampled_from(OPERANDS)))}", "audience"


def reference(rt: Runtime, ws: str, profile_id: str) -> ProfileData:
    stored = rt.profiles.events(ws, profile_id, limit=1000, descending=False)
    records = [
        EventRecord(
            name,
            from_us(e.timestamp_us),
            e.payload.get("properties") or {},
            e.payload.get("context") or {},
            e.source_id,
            from_us(e.received_us),
            e.message_id,
        )
        for e in stored
        if (name := event_name(e.payload)) is not None
    ]
    values = {k: v.value for k, v in rt.profiles.traits(ws, profile_id).items()}
    return ProfileData(values, records)


def batch_and_reference(
    rt: Runtime,
    people: list[list[dict[str, Any]]],
    query: str,
    kind: str,
    catalog: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Store the people's messages (and the catalog) in a fresh workspace, evaluate ``query``
    in batch, check it against the reference for every profile; returns the batch values by
    user id."""
    parsed = parse(query, kind)  # type: ignore[arg-type]
    ws = f"w{next(_workspaces)}"
    rt.admin.ensure_workspace(ws, ws, rt.now_us())
    store_catalog(rt, ws, catalog or {})
    source, _key = rt.admin.add_source(ws, "s", rt.now_us())
    messages = [m for person in people for m in person]
    if messages:
        result = rt.collector.ingest_messages(source, messages)
        assert result.quarantined == 0
        rt.processor.run_until_idle()
    statement = DefinitionCompiler(rt.db.dialect.name).profile_values(
        parsed.root, workspace_id=ws, now=NOW
    )
    with rt.db.read() as conn:
        batch = {pid: convert(parsed.root, raw) for pid, raw in conn.execute(statement)}
    evaluator = Evaluator(NOW, catalog or {})
    expected = {pid: evaluator.evaluate(parsed.root, reference(rt, ws, pid)) for pid in batch}
    assert batch == expected, query
    return {
        row.id_value: batch[pid]
        for pid in batch
        for row in rt.profiles.identifiers(ws, pid)
        if row.id_type == "user_id"
    }


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(people=timelines(), definition=definitions(), catalog=catalogs())
def test_batch_sql_equals_the_reference(
    runtime: Runtime,
    people: list[list[dict[str, Any]]],
    definition: tuple[str, str],
    catalog: dict[str, dict[str, Any]],
) -> None:
    batch_and_reference(runtime, people, *definition, catalog=catalog)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(people=product_timelines(), definition=product_definitions(), catalog=catalogs())
def test_product_reads_equal_the_reference(
    runtime: Runtime,
    people: list[list[dict[str, Any]]],
    definition: tuple[str, str],
    catalog: dict[str, dict[str, Any]],
) -> None:
    """product() in batch SQL (one join of the catalog) = the reference over the catalog."""
    batch_and_reference(runtime, people, *definition, catalog=catalog)


def person(
    user: str, *events: tuple[str, float, dict[str, Any]], plan: Any = None
) -> list[dict[str, Any]]:
    """``user``'s messages: (event name, hours ago, properties) each, and a plan trait."""
    out: list[dict[str, Any]] = []
    if plan is not None:
        out.append(
            {
                "type": "identify",
                "userId": user,
                "messageId": f"{user}-id",
                "traits": {"plan": plan},
                "timestamp": NOW.isoformat(),
            }
        )
    for n, (name, hours, props) in enumerate(events):
        out.append(
            {
                "type": "track",
                "event": name,
                "userId": user,
                "messageId": f"{user}-{n}",
                "properties": props,
                "timestamp": (NOW - timedelta(hours=hours)).isoformat(),
            }
        )
    return out


@pytest.mark.parametrize(
    ("query", "kind", "expected"),
    [
        # case-sensitive equality, numeric strings as numbers, booleans as words
        ("event('O').where(property('c') = 'b').count()", "trait", {"u1": 1, "u2": 0}),
        ("event('O').where(property('t') = 3).count()", "trait", {"u1": 2, "u2": 0}),
        ("trait('plan') = true", "audience", {"u1": True, "u2": False}),
        # windows include their bounds
        ("event('O').between(2 days, 20 days).count()", "trait", {"u1": 2, "u2": 1}),
        ("event('O').within(480 hours).count()", "trait", {"u1": 3, "u2": 1}),
        # exact sums and means; mode's tie goes to the first value alphabetically
        ("event('O').sum(property('t'))", "trait", {"u1": 6.3, "u2": 0}),
        ("event('O').avg(property('t'))", "trait", {"u1": 2.1, "u2": None}),
        ("event('O').mode(property('c'), 1)", "trait", {"u1": "B", "u2": "a"}),
        ("event('O').unique(property('c'))", "trait", {"u1": ["B", "b"], "u2": ["a"]}),
        ("event('O').max(property('c') as string)", "trait", {"u1": "b", "u2": "a"}),
        ("event('O').first(property('t'))", "trait", {"u1": 0.3, "u2": "x"}),
        ("event('O').last(property('t'))", "trait", {"u1": 3, "u2": "x"}),
        ("trait('plan').differs('gold')", "audience", {"u1": True, "u2": False}),
        # sessions: from the last event not preceded by another within N, while it is recent
        ("event('O').expires_after(2 hours).count()", "trait", {"u1": 1, "u2": 0}),
        ("event('O').expires_after(3 days).count()", "trait", {"u1": 2, "u2": 0}),
        ("event('O').expires_after(3 days).sum(property('t'))", "trait", {"u1": 6, "u2": 0}),
        (
            "event('O').where(property('c') = 'B').expires_after(30 days).first(property('t'))",
            "trait",
            {"u1": 0.3, "u2": None},
        ),
    ],
)
def test_edges_agree_and_are_as_documented(
    runtime: Runtime, query: str, kind: str, expected: dict[str, Any]
) -> None:
    people = [
        person(
            "u1",
            ("O", 480, {"c": "B", "t": 0.3}),  # exactly 20 days ago
            ("O", 48, {"c": "b", "t": "3"}),  # exactly 2 days ago
            ("O", 1, {"c": "B", "t": 3}),
            plan="TRUE",
        ),
        person("u2", ("O", 100, {"c": "a", "t": "x"}), plan=None),
    ]
    assert batch_and_reference(runtime, people, query, kind) == expected


@pytest.mark.parametrize(
    "query",
    [
        "event('A').last(timestamp()).one_of(2024-05-25, 'b')",
    ],
)
def test_what_is_not_compiled_says_so(query: str) -> None:
    from opencdp.storage.definition_sql import NotCompiled

    with pytest.raises(NotCompiled):
        DefinitionCompiler("sqlite").profile_values(parse(query).root, workspace_id="w", now=NOW)
