"""The serving rules: what a model proposes, filtered and ordered the way the shop decides."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencdp.recs.rules import Candidate, Rules, apply


@dataclass
class Catalog:
    categories: dict[str, str]
    sold_out: set[tuple[str, str]] = field(default_factory=set)

    def known(self, product_id: str) -> bool:
        return product_id in self.categories

    def in_stock(self, product_id: str, location: str) -> bool:
        return (product_id, location) not in self.sold_out

    def category(self, product_id: str) -> str | None:
        return self.categories.get(product_id)


CATALOG = Catalog(
    {
        "shoe1": "Shoes",
        "shoe2": "Shoes",
        "shoe3": "Shoes",
        "shoe4": "Shoes/Running",
        "gel": "Care/Shower",
        "bar": "Food",
        "bottle": "Gear",
    }
)


def cands(*ids: str) -> list[Candidate]:
    return [Candidate(p, 10.0 - i, "model") for i, p in enumerate(ids)]


def ids(chosen: list[Candidate]) -> list[str]:
    return [c.product_id for c in chosen]


def run(candidates: list[Candidate], rules: Rules, **kw: object) -> list[str]:
    args: dict[str, object] = {
        "limit": 10,
        "bought": set(),
        "catalog": CATALOG,
        "location": "web",
        "rules": rules,
    }
    args.update(kw)
    return ids(apply(candidates, **args))  # type: ignore[arg-type]


def test_bought_products_are_excluded_unless_their_category_repeats() -> None:
    rules = Rules(repeatable_categories=("Care",), max_per_category=None)
    assert run(cands("shoe1", "gel", "bar"), rules, bought={"shoe1", "gel"}) == ["gel", "bar"]
    assert run(cands("shoe1", "gel"), Rules(exclude_bought=False), bought={"shoe1"}) == [
        "shoe1",
        "gel",
    ]


def test_out_of_stock_where_the_visitor_shops_and_unknown_products_are_excluded() -> None:
    catalog = Catalog(CATALOG.categories, sold_out={("bar", "store-7")})
    assert run(cands("bar", "ghost", "gel"), Rules(), catalog=catalog, location="store-7") == [
        "gel"
    ]
    assert run(cands("bar", "gel"), Rules(), catalog=catalog, location="web") == ["bar", "gel"]


def test_pinned_come_first_blocked_never() -> None:
    rules = Rules(pinned=("bottle", "ghost"), blocked=("shoe2",), max_per_category=None)
    chosen = apply(
        cands("shoe1", "shoe2", "bottle", "gel"),
        limit=3,
        bought=set(),
        catalog=CATALOG,
        location="web",
        rules=rules,
    )
    assert ids(chosen) == ["bottle", "shoe1", "gel"]
    assert chosen[0].reason == "featured"


def test_diversity_caps_a_category_and_fills_up_when_nothing_else_is_left() -> None:
    rules = Rules(max_per_category=2)
    assert run(cands("shoe1", "shoe2", "shoe3", "gel", "shoe4"), rules, limit=4) == [
        "shoe1",
        "shoe2",
        "gel",
        "shoe4",
    ]
    # only shoes to offer: the postponed ones fill the page rather than leaving it short
    assert run(cands("shoe1", "shoe2", "shoe3"), rules, limit=3) == ["shoe1", "shoe2", "shoe3"]


def test_rules_documents_round_trip_and_bad_fields_are_named() -> None:
    rules = Rules.from_document(
        {"repeatable_categories": ["Care"], "max_per_category": None, "pinned": ["a"]}
    )
    assert Rules.from_document(rules.to_document()) == rules
    assert rules.repeatable("Care/Shower") and rules.repeatable("Care > Hair")
    assert not rules.repeatable("Careless") and not rules.repeatable(None)
    for document, field_name in (
        ({"nope": 1}, "rules.nope"),
        ({"exclude_bought": "yes"}, "rules.exclude_bought"),
        ({"max_per_category": 0}, "rules.max_per_category"),
        ({"pinned": [""]}, "rules.pinned[0]"),
        ({"blocked": "a"}, "rules.blocked"),
        ({"trait_items": 99}, "rules.trait_items"),
    ):
        with pytest.raises(ValueError, match=field_name.replace("[", r"\[")):
            Rules.from_document(document)


products = st.sampled_from([*sorted(CATALOG.categories), "ghost"])


@given(
    st.lists(products, max_size=12),
    st.sets(products),
    st.lists(products, max_size=3),
    st.sets(products, max_size=3),
    st.integers(1, 8),
    st.one_of(st.none(), st.integers(1, 3)),
)
def test_served_lists_obey_every_rule(
    candidate_ids: list[str],
    bought: set[str],
    pinned: list[str],
    blocked: set[str],
    limit: int,
    cap: int | None,
) -> None:
    rules = Rules(pinned=tuple(pinned), blocked=tuple(blocked), max_per_category=cap)
    chosen = ids(
        apply(
            cands(*candidate_ids),
            limit=limit,
            bought=bought,
            catalog=CATALOG,
            location="web",
            rules=rules,
        )
    )
    assert len(chosen) <= limit and len(chosen) == len(set(chosen))
    assert not set(chosen) & blocked
    assert all(CATALOG.known(p) for p in chosen)
    assert not (set(chosen) - set(pinned)) & bought
    allowed_pins = [p for p in dict.fromkeys(pinned) if CATALOG.known(p) and p not in blocked]
    assert chosen[: len(allowed_pins)] == allowed_pins[:limit]
