"""The business rules applied to a model's candidates when they are served.

A model scores products; the shop decides what may be shown: never a blocked product, a product
outside the catalog or out of stock where the visitor shops, nor one the customer already bought
(unless its category is a consumable that may be bought again); pinned products first; and no
more than a few per category, so a page of ten is not ten black leggings.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

#: Fields of a rules document.
FIELDS = (
    "exclude_bought",
    "repeatable_categories",
    "max_per_category",
    "pinned",
    "blocked",
    "trait_items",
)
MAX_LIST = 1000


@dataclass(frozen=True)
class Candidate:
    """A product a model proposes, how strongly, and why (shown to the customer service agent
    and returned by the API)."""

    product_id: str
    score: float
    reason: str
    category: str | None = None
    #: The product the reason refers to (``bought together with`` it), to show by its name.
    because: str | None = None


@dataclass(frozen=True)
class Rules:
    exclude_bought: bool = True
    #: Category paths (and their sub-categories) whose bought products may be recommended again.
    repeatable_categories: tuple[str, ...] = ()
    #: Diversity: at most this many products of one category; None turns it off.
    max_per_category: int | None = 3
    #: Always first, in this order, when in the catalog and in stock.
    pinned: tuple[str, ...] = ()
    #: Never recommended.
    blocked: tuple[str, ...] = field(default=())
    #: How many products the ``recommended_items`` trait keeps (Segment keeps up to 5).
    trait_items: int = 5

    @classmethod
    def from_document(cls, document: Mapping[str, Any] | None) -> Rules:
        """From a rules document (each field optional); a ValueError names the wrong field."""
        if document is None:
            return cls()
        if not isinstance(document, Mapping):
            raise ValueError("rules: expected an object")
        unknown = sorted(set(document) - set(FIELDS))
        if unknown:
            raise ValueError(f"rules.{unknown[0]}: unknown field (fields: {', '.join(FIELDS)})")
        values: dict[str, Any] = {}
        if "exclude_bought" in document:
            if not isinstance(document["exclude_bought"], bool):
                raise ValueError("rules.exclude_bought: expected true or false")
            values["exclude_bought"] = document["exclude_bought"]
        for key in ("repeatable_categories", "pinned", "blocked"):
            if key in document:
                values[key] = _strings(key, document[key])
        if "max_per_category" in document:
            cap = document["max_per_category"]
            if cap is not None:
                cap = _whole(cap)
                if cap is None or cap < 1:
                    raise ValueError("rules.max_per_category: expected a whole number ≥ 1, or null")
            values["max_per_category"] = cap
        if "trait_items" in document:
            n = _whole(document["trait_items"])
            if n is None or not 1 <= n <= 50:
                raise ValueError("rules.trait_items: expected a whole number from 1 to 50")
            values["trait_items"] = n
        return cls(**values)

    def to_document(self) -> dict[str, Any]:
        return {
            "exclude_bought": self.exclude_bought,
            "repeatable_categories": list(self.repeatable_categories),
            "max_per_category": self.max_per_category,
            "pinned": list(self.pinned),
            "blocked": list(self.blocked),
            "trait_items": self.trait_items,
        }

    def repeatable(self, category: str | None) -> bool:
        """Whether a bought product of ``category`` may be recommended again."""
        if not category:
            return False
        return any(
            category == prefix
            or category.startswith(prefix + "/")
            or category.startswith(prefix + " > ")
            for prefix in self.repeatable_categories
        )


def _whole(value: Any) -> int | None:
    """A whole number (``3`` or ``3.0``, as JSON allows), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return None


def _strings(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise ValueError(f"rules.{key}: expected a list of at most {MAX_LIST} strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or len(item) > 300:
            raise ValueError(f"rules.{key}[{i}]: expected a non-empty string of ≤ 300 characters")
    return tuple(item.strip() for item in value)


class CatalogView(Protocol):
    """What the rules ask of the catalog."""

    def known(self, product_id: str) -> bool:
        """In the catalog (a workspace without a catalog: every product)."""

    def in_stock(self, product_id: str, location: str) -> bool:
        """In stock at ``location`` (unknown stock counts as in stock)."""

    def category(self, product_id: str) -> str | None: ...


def apply(
    candidates: Sequence[Candidate],
    *,
    limit: int,
    bought: Collection[str],
    catalog: CatalogView,
    location: str,
    rules: Rules,
    pinned_reason: str = "featured",
) -> list[Candidate]:
    """At most ``limit`` of ``candidates`` (best first) that the rules allow, pinned products
    first; a product appears once."""
    blocked = set(rules.blocked)
    chosen: list[Candidate] = []
    seen: set[str] = set()
    per_category: dict[str, int] = {}

    def allowed(product_id: str) -> bool:
        return (
            product_id not in seen
            and product_id not in blocked
            and catalog.known(product_id)
            and catalog.in_stock(product_id, location)
        )

    for product_id in rules.pinned:
        if len(chosen) >= limit:
            return chosen
        if allowed(product_id):
            seen.add(product_id)
            chosen.append(Candidate(product_id, 0.0, pinned_reason, catalog.category(product_id)))
    postponed: list[Candidate] = []
    for candidate in candidates:
        if len(chosen) >= limit:
            break
        product_id = candidate.product_id
        if not allowed(product_id):
            continue
        category = catalog.category(product_id) or candidate.category
        if rules.exclude_bought and product_id in bought and not rules.repeatable(category):
            continue
        cap = rules.max_per_category
        if cap is not None and category:
            if per_category.get(category, 0) >= cap:
                postponed.append(candidate)
                continue
            per_category[category] = per_category.get(category, 0) + 1
        seen.add(product_id)
        chosen.append(_with_category(candidate, category))
    # too few diverse ones: the best of the postponed fill up rather than leaving the page short
    for candidate in postponed:
        if len(chosen) >= limit:
            break
        if candidate.product_id not in seen:
            seen.add(candidate.product_id)
            chosen.append(_with_category(candidate, catalog.category(candidate.product_id)))
    return chosen


def _with_category(candidate: Candidate, category: str | None) -> Candidate:
    if category == candidate.category:
        return candidate
    return replace(candidate, category=category)
