"""A loyalty programme: how orders turn into points, which tier a member is in, when points
expire. Kept per workspace as a file (``opencdp loyalty programme apply FILE``) or through
``PUT /api/loyalty/programme``::

    name: Glow Rewards
    currency: EUR                 # orders in another currency earn nothing
    points_per_unit: 1            # points per currency unit spent
    rounding: floor               # floor | round | ceil (per order)
    multipliers:
      categories: {"Skincare": 2} # a category path prefix: "Skincare" covers "Skincare > Serums"
      products: {"SKU-42": 3}     # a product id; a product's factor wins over its category's
    bonuses:
      first_order: 100            # extra points on a member's first order
      birthday_month: 2           # the points of an order in the member's birthday month x 2
    tiers:                        # qualifying points earned within the qualification period
      - {name: Member, threshold: 0}
      - {name: Silver, threshold: 500}
      - {name: Gold, threshold: 2000}
    qualification_period: 365 days
    expiry: 365 days              # earned points expire this long after the order; null: never

Everything here is pure: the worker gives it an order's properties and the catalog's
categories of its products, and writes what it computes into the ledger.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opencdp.errors import RequestError
from opencdp.timeutil import parse_duration

#: the category path separator the catalog writes ("Women > Shoes")
PATH_SEPARATOR = " > "
MAX_TIERS = 20
MAX_MULTIPLIERS = 10_000
#: the most points one order earns: larger amounts are a data error, not a purchase
MAX_ORDER_POINTS = 10_000_000


class ProgrammeError(RequestError):
    """A programme that cannot be used (400, ``invalid_programme``), naming the field."""

    code = "invalid_programme"
    status = 400


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierSpec(_Strict):
    name: str = Field(min_length=1, max_length=64)
    threshold: int = Field(ge=0, description="qualifying points needed")


class Multipliers(_Strict):
    categories: dict[str, float] = Field(default_factory=dict)
    products: dict[str, float] = Field(default_factory=dict)

    @field_validator("categories", "products")
    @classmethod
    def _factors(cls, value: dict[str, float]) -> dict[str, float]:
        if len(value) > MAX_MULTIPLIERS:
            raise ValueError(f"at most {MAX_MULTIPLIERS} multipliers")
        for key, factor in value.items():
            if not key.strip():
                raise ValueError("a multiplier needs a non-empty key")
            if not math.isfinite(factor) or factor < 0 or factor > 100:
                raise ValueError(f"{key!r}: a factor between 0 and 100")
        return value


class Bonuses(_Strict):
    first_order: int = Field(default=0, ge=0, le=1_000_000)
    birthday_month: float = Field(default=1.0, ge=1.0, le=100.0)


class ProgrammeSpec(_Strict):
    """The programme as written."""

    name: str = Field(min_length=1, max_length=200)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    points_per_unit: float = Field(default=1.0, gt=0, le=10_000)
    rounding: Literal["floor", "round", "ceil"] = "floor"
    multipliers: Multipliers = Field(default_factory=Multipliers)
    bonuses: Bonuses = Field(default_factory=Bonuses)
    tiers: list[TierSpec] = Field(default_factory=list, max_length=MAX_TIERS)
    qualification_period: str = "365 days"
    expiry: str | None = "365 days"

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, tiers: list[TierSpec]) -> list[TierSpec]:
        if not tiers:
            return tiers
        thresholds = [t.threshold for t in tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("thresholds rising strictly, the lowest first")
        if thresholds[0] != 0:
            raise ValueError("the first tier's threshold is 0 (every member has a tier)")
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ValueError("each name once")
        return tiers

    @field_validator("qualification_period", "expiry")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = parse_duration(value)  # ValueError says how to write one
            if parsed <= timedelta(0):
                raise ValueError("a positive duration")
        return value


@dataclass(frozen=True)
class Earning:
    """The points an order earns, split as the ledger records them."""

    base: int
    bonus: int
    #: the reasons, for the ledger and the ``Points Earned`` event
    reason: str

    @property
    def total(self) -> int:
        return self.base + self.bonus


@dataclass(frozen=True)
class Programme:
    """A checked programme (see the module docstring)."""

    spec: ProgrammeSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def qualification_period(self) -> timedelta:
        return parse_duration(self.spec.qualification_period)

    @property
    def expiry(self) -> timedelta | None:
        return parse_duration(self.spec.expiry) if self.spec.expiry is not None else None

    def as_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json")

    # -- orders ---------------------------------------------------------------------------------
    def earning(
        self,
        order: Mapping[str, Any],
        categories: Mapping[str, str],
        *,
        first_order: bool,
        birthday_month: bool,
    ) -> Earning | None:
        """What an ``Order Completed``'s properties earn, or None when the order earns nothing
        (another currency, no amount, an amount beyond :data:`MAX_ORDER_POINTS`). ``categories`` gives the catalog's category of product
        ids whose line item names none."""
        currency = order.get("currency")
        if (
            self.spec.currency is not None
            and isinstance(currency, str)
            and currency.strip()
            and currency.strip().upper() != self.spec.currency
        ):
            return None
        spent = self._weighted_spend(order, categories)
        if spent is None:
            return None
        reasons = []
        raw = spent * self.spec.points_per_unit
        if birthday_month and self.spec.bonuses.birthday_month > 1:
            raw *= self.spec.bonuses.birthday_month
            reasons.append(f"birthday month x{_number(self.spec.bonuses.birthday_month)}")
        if not math.isfinite(raw) or raw > MAX_ORDER_POINTS:
            return None  # an amount no till rings up: earn nothing rather than fail the batch
        base = max(0, _rounded(raw, self.spec.rounding))
        bonus = self.spec.bonuses.first_order if first_order else 0
        if bonus:
            reasons.append(f"first order +{bonus}")
        reason = "order" + (f" ({', '.join(reasons)})" if reasons else "")
        return Earning(base, bonus, reason)

    def _weighted_spend(
        self, order: Mapping[str, Any], categories: Mapping[str, str]
    ) -> float | None:
        """The order's amount with each line item's multiplier applied; without line items
        with prices, the order's ``total`` (else ``revenue``) at factor 1."""
        items = order.get("products")
        weighted = 0.0
        priced = False
        if isinstance(items, list):
            for item in items:
                if not isinstance(item, Mapping):
                    continue
                price = _amount(item.get("price"))
                if price is None:
                    continue
                quantity = _amount(item.get("quantity"))
                quantity = 1.0 if quantity is None else quantity
                weighted += price * quantity * self.factor_of(item, categories)
                priced = True
        if priced:
            discount = _amount(order.get("discount"))
            if discount and weighted > 0:
                weighted = max(0.0, weighted - discount)
            return weighted
        for key in ("total", "revenue", "value"):
            amount = _amount(order.get(key))
            if amount is not None:
                return max(0.0, amount)
        return None

    def factor_of(self, item: Mapping[str, Any], categories: Mapping[str, str]) -> float:
        """A line item's multiplier: its product's, else the most specific matching category
        prefix's, else 1."""
        mult = self.spec.multipliers
        product_id = product_id_of(item)
        if product_id is not None and product_id in mult.products:
            return mult.products[product_id]
        category = item.get("category")
        if not isinstance(category, str) or not category.strip():
            category = categories.get(product_id) if product_id is not None else None
        if isinstance(category, str) and mult.categories:
            best: tuple[int, float] | None = None
            for prefix, factor in mult.categories.items():
                covers = category == prefix or category.startswith(prefix + PATH_SEPARATOR)
                if covers and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), factor)
            if best is not None:
                return best[1]
        return 1.0

    # -- tiers ----------------------------------------------------------------------------------
    def tier_for(self, qualifying_points: int) -> str | None:
        """The highest tier whose threshold the qualifying points reach (None: no tiers)."""
        tier = None
        for spec in self.spec.tiers:
            if qualifying_points >= spec.threshold:
                tier = spec.name
        return tier


def product_id_of(item: Mapping[str, Any]) -> str | None:
    """A line item's product id: ``product_id``, else ``sku``, else ``id``."""
    for key in ("product_id", "sku", "id"):
        value = item.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def parse_programme(document: Any) -> Programme:
    """A programme from its document (parsed YAML or JSON); raises :class:`ProgrammeError`
    naming the field to fix."""
    if not isinstance(document, Mapping):
        raise ProgrammeError("a loyalty programme is a mapping with at least a name")
    try:
        return Programme(ProgrammeSpec.model_validate(dict(document)))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "programme"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ProgrammeError(f"{where}: {message}") from None


def _amount(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _rounded(value: float, how: str) -> int:
    if how == "round":
        return math.floor(value + 0.5)
    if how == "ceil":
        return math.ceil(value - 1e-9)
    return math.floor(value + 1e-9)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
