"""Recommendations' storage: the interactions a training learns from, read set-based from the
events; the catalog's categories; the trained versions; and each workspace's settings.

The interactions come back already grouped by (profile, product, kind, day) with a count, in one
statement: every line item of an ``Order Completed`` (``properties.products[]``: its
``product_id``, else ``id``, else ``sku``; its ``quantity`` when a positive number, at most
100, else 1), and the ``properties.product_id`` (else ``id``, else ``sku``) of ``Product Added``
and ``Product Viewed``. Only live profiles count: a merge moves the merged profile's events to
the survivor, so they count for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, func, select, text, update

from opencdp.recs.interactions import CART, DAY_US, KIND_OF_EVENT, PURCHASE, VIEW, Interactions
from opencdp.storage.db import Database
from opencdp.storage.hot_reads import HotReads
from opencdp.storage.rows import plain
from opencdp.storage.schema import (
    events,
    identifiers,
    inventory,
    products,
    profiles,
    recs_models,
    recs_settings,
)

_SQLITE = """
WITH live AS (
  SELECT e.profile_id, e.event, e.timestamp_us, e.payload
  FROM events e JOIN profiles p ON p.workspace_id = e.workspace_id AND p.id = e.profile_id
  WHERE e.workspace_id = :ws AND e.type = 'track' AND e.timestamp_us >= :since
    AND e.event IN ('Order Completed', 'Product Added', 'Product Viewed')
    AND p.collection = 'users' AND p.merged_into IS NULL
), lines AS (
  SELECT l.profile_id, CAST(COALESCE(json_extract(j.value, '$.product_id'),
           json_extract(j.value, '$.id'), json_extract(j.value, '$.sku')) AS TEXT) AS item,
         :purchase AS kind, l.timestamp_us / :day AS day,
         CASE WHEN json_type(j.value, '$.quantity') IN ('integer', 'real')
                   AND json_extract(j.value, '$.quantity') > 0
              THEN MIN(json_extract(j.value, '$.quantity'), 100) ELSE 1 END AS n
  FROM live l, json_each(l.payload, '$.properties.products') j
  WHERE l.event = 'Order Completed' AND json_type(l.payload, '$.properties.products') = 'array'
    AND j.type = 'object'
), singles AS (
  SELECT l.profile_id, CAST(COALESCE(json_extract(l.payload, '$.properties.product_id'),
           json_extract(l.payload, '$.properties.id'),
           json_extract(l.payload, '$.properties.sku')) AS TEXT) AS item,
         CASE l.event WHEN 'Product Added' THEN :cart ELSE :view END AS kind,
         l.timestamp_us / :day AS day, 1 AS n
  FROM live l WHERE l.event IN ('Product Added', 'Product Viewed')
)
SELECT profile_id, item, kind, day, SUM(n) FROM (
  SELECT * FROM lines UNION ALL SELECT * FROM singles
) WHERE item IS NOT NULL AND item <> '' AND LENGTH(item) <= 200
GROUP BY profile_id, item, kind, day
"""

_POSTGRESQL = """
WITH live AS (
  SELECT e.profile_id, e.event, e.timestamp_us, e.payload::jsonb AS doc
  FROM events e JOIN profiles p ON p.workspace_id = e.workspace_id AND p.id = e.profile_id
  WHERE e.workspace_id = :ws AND e.type = 'track' AND e.timestamp_us >= :since
    AND e.event IN ('Order Completed', 'Product Added', 'Product Viewed')
    AND p.collection = 'users' AND p.merged_into IS NULL
), lines AS (
  SELECT l.profile_id, COALESCE(j.value ->> 'product_id', j.value ->> 'id', j.value ->> 'sku')
           AS item,
         :purchase AS kind, l.timestamp_us / :day AS day,
         CASE WHEN jsonb_typeof(j.value -> 'quantity') = 'number'
                   AND (j.value ->> 'quantity')::float8 > 0
              THEN LEAST((j.value ->> 'quantity')::float8, 100) ELSE 1 END AS n
  FROM live l CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(l.doc #> '{properties,products}') = 'array'
         THEN l.doc #> '{properties,products}' ELSE '[]'::jsonb END) AS j(value)
  WHERE l.event = 'Order Completed' AND jsonb_typeof(j.value) = 'object'
), singles AS (
  SELECT l.profile_id, COALESCE(l.doc #>> '{properties,product_id}',
           l.doc #>> '{properties,id}', l.doc #>> '{properties,sku}') AS item,
         CASE l.event WHEN 'Product Added' THEN :cart ELSE :view END AS kind,
         l.timestamp_us / :day AS day, 1::float8 AS n
  FROM live l WHERE l.event IN ('Product Added', 'Product Viewed')
)
SELECT profile_id, item, kind, day, SUM(n) FROM (
  SELECT * FROM lines UNION ALL SELECT * FROM singles
) u WHERE item IS NOT NULL AND item <> '' AND LENGTH(item) <= 200
GROUP BY profile_id, item, kind, day
"""


#: ids bound per ``IN`` list (below SQLite's and psycopg's limits on bound parameters)
_ID_CHUNK = 5000


@dataclass(frozen=True)
class ModelVersion:
    workspace_id: str
    version: str
    status: str
    kind: str | None
    trained_us: int
    seconds: float | None
    interactions: int
    users: int
    items: int
    evaluation: dict[str, Any] | None
    path: str | None
    active: bool
    source: str
    error: str | None


class RecsStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._settings_upsert = db.dialect.upsert(
            recs_settings, keys=("workspace_id",), update=("document", "updated_us")
        )

    # -- what trainings read -----------------------------------------------------------------

    def interactions(self, workspace_id: str, since_us: int = 0) -> Interactions:
        """The workspace's product interactions since ``since_us``, grouped by profile,
        product, kind and day (one statement)."""
        statement = text(_SQLITE if self.db.dialect.is_sqlite else _POSTGRESQL)
        params = {
            "ws": workspace_id,
            "since": since_us,
            "day": DAY_US,
            "purchase": PURCHASE,
            "cart": CART,
            "view": VIEW,
        }
        with self.db.read() as conn:
            rows = conn.execute(statement, params).all()
        return Interactions.from_rows(
            (pid, item, int(kind), int(day) * DAY_US, float(n)) for pid, item, kind, day, n in rows
        )

    def categories(self, workspace_id: str) -> dict[str, str]:
        """Product id → category path, for the products that have one."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(products.c.id, products.c.category).where(
                    products.c.workspace_id == workspace_id, products.c.category.is_not(None)
                )
            )
            return {pid: category for pid, category in rows}

    def catalog_snapshot(
        self, workspace_id: str, since_us: int | None = None
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str, int]]]:
        """What serving shows and checks: the products (id, name, category, brand, price,
        currency, url, image_url) and stock levels (product, location, quantity) stamped at or
        after ``since_us`` (every one without it), in two statements."""
        product_filter = [products.c.workspace_id == workspace_id]
        stock_filter = [inventory.c.workspace_id == workspace_id]
        if since_us is not None:
            product_filter.append(products.c.updated_us >= since_us)
            stock_filter.append(inventory.c.updated_us >= since_us)
        with self.db.read() as conn:
            rows = conn.execute(
                select(
                    products.c.id,
                    products.c.name,
                    products.c.category,
                    products.c.brand,
                    products.c.price,
                    products.c.currency,
                    products.c.url,
                    products.c.image_url,
                ).where(*product_filter)
            ).all()
            stock = conn.execute(
                select(inventory.c.product_id, inventory.c.location, inventory.c.quantity).where(
                    *stock_filter
                )
            ).all()
        return [plain(r) for r in rows], [(p, loc, int(q)) for p, loc, q in stock]

    # -- versions ----------------------------------------------------------------------------

    def next_version(self, workspace_id: str) -> str:
        with self.db.read() as conn:
            last = conn.execute(
                select(func.max(recs_models.c.version)).where(
                    recs_models.c.workspace_id == workspace_id
                )
            ).scalar_one_or_none()
        number = int(last[1:]) + 1 if last else 1
        return f"v{number:04d}"

    def record(self, row: dict[str, Any], *, activate: bool) -> None:
        """Store a trained (or failed) version; ``activate`` makes it the active one in the
        same transaction."""
        values = {**row, "active": False}
        if values.get("evaluation") is not None:
            values["evaluation"] = orjson.dumps(values["evaluation"]).decode()
        with self.db.write() as conn:
            conn.execute(recs_models.insert().values(**values))
            if activate:
                self._activate(conn, row["workspace_id"], row["version"])

    def activate(self, workspace_id: str, version: str) -> None:
        with self.db.write() as conn:
            self._activate(conn, workspace_id, version)

    @staticmethod
    def _activate(conn: Any, workspace_id: str, version: str) -> None:
        ws = recs_models.c.workspace_id == workspace_id
        conn.execute(update(recs_models).where(ws, recs_models.c.active).values(active=False))
        conn.execute(
            update(recs_models).where(ws, recs_models.c.version == version).values(active=True)
        )

    def versions(self, workspace_id: str) -> list[ModelVersion]:
        """Newest first."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(recs_models)
                .where(recs_models.c.workspace_id == workspace_id)
                .order_by(recs_models.c.version.desc())
            )
            return [_version(r) for r in rows]

    def active(self, workspace_id: str) -> ModelVersion | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(recs_models).where(
                    recs_models.c.workspace_id == workspace_id, recs_models.c.active
                )
            ).first()
            return None if row is None else _version(row)

    def forget_files(self, workspace_id: str, versions: list[str]) -> None:
        """These versions' artifacts were deleted: their rows keep the history, without a path."""
        if not versions:
            return
        with self.db.write() as conn:
            conn.execute(
                update(recs_models)
                .where(
                    recs_models.c.workspace_id == workspace_id,
                    recs_models.c.version.in_(versions),
                )
                .values(path=None)
            )

    def move_files(
        self, workspace_id: str, version: str, old_path: str, new_path: str, users: int
    ) -> bool:
        """The version's artifact was rewritten to ``new_path`` (with ``users`` customers):
        record it, unless the path is no longer ``old_path`` (pruned or rewritten by another
        process meanwhile). Returns whether it was recorded."""
        with self.db.write() as conn:
            moved = conn.execute(
                update(recs_models)
                .where(
                    recs_models.c.workspace_id == workspace_id,
                    recs_models.c.version == version,
                    recs_models.c.path == old_path,
                )
                .values(path=new_path, users=users)
            )
            return bool(moved.rowcount)

    def existing_profiles(self, workspace_id: str, profile_ids: list[str]) -> set[str]:
        """Which of ``profile_ids`` still have a profile row (live or merged) in the
        workspace: the others were erased."""
        found: set[str] = set()
        query = select(profiles.c.id).where(
            profiles.c.workspace_id == workspace_id,
            profiles.c.id.in_(bindparam("ids", expanding=True)),
        )
        with self.db.read() as conn:
            for start in range(0, len(profile_ids), _ID_CHUNK):
                chunk = profile_ids[start : start + _ID_CHUNK]
                found.update(conn.execute(query, {"ids": chunk}).scalars())
        return found

    # -- settings and the training claim -----------------------------------------------------

    def settings(self, workspace_id: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            document = conn.execute(
                select(recs_settings.c.document).where(recs_settings.c.workspace_id == workspace_id)
            ).scalar_one_or_none()
        return None if document is None else dict(orjson.loads(document))

    def put_settings(self, workspace_id: str, document: dict[str, Any], now_us: int) -> None:
        with self.db.write() as conn:
            conn.execute(
                self._settings_upsert,
                {
                    "workspace_id": workspace_id,
                    "document": orjson.dumps(document).decode(),
                    "updated_us": now_us,
                },
            )

    def claim(self, workspace_id: str, now_us: int, stale_us: int) -> bool:
        """Claim the workspace's training (a conditional update: two processes never both
        win); a claim older than ``stale_us`` (a process that died) can be taken over."""
        with self.db.write() as conn:
            conn.execute(
                self.db.dialect.insert_ignore(recs_settings),
                {"workspace_id": workspace_id, "document": "{}", "updated_us": now_us},
            )
            won = conn.execute(
                update(recs_settings)
                .where(
                    recs_settings.c.workspace_id == workspace_id,
                    (recs_settings.c.running_us.is_(None))
                    | (recs_settings.c.running_us < now_us - stale_us),
                )
                .values(running_us=now_us)
            )
            return (won.rowcount or 0) == 1

    def release(self, workspace_id: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(recs_settings)
                .where(recs_settings.c.workspace_id == workspace_id)
                .values(running_us=None)
            )

    def last_trained_us(self, workspace_id: str) -> int | None:
        """When the workspace's newest version (ready or failed) was trained."""
        with self.db.read() as conn:
            value = conn.execute(
                select(func.max(recs_models.c.trained_us)).where(
                    recs_models.c.workspace_id == workspace_id
                )
            ).scalar_one_or_none()
            return None if value is None else int(value)

    def has_interactions(self, workspace_id: str) -> bool:
        """Whether the workspace has any product event (a training would learn something)."""
        with self.db.read() as conn:
            found = conn.execute(
                select(events.c.message_id)
                .where(
                    events.c.workspace_id == workspace_id,
                    events.c.type == "track",
                    events.c.event.in_(tuple(KIND_OF_EVENT)),
                )
                .limit(1)
            ).first()
            return found is not None


def _product_id(document: Any) -> str | None:
    """A line item's or event's product id, as the training reads it (product_id, id, sku)."""
    if not isinstance(document, dict):
        return None
    for key in ("product_id", "id", "sku"):
        value = document.get(key)
        if value is not None and not isinstance(value, dict | list | bool):
            text_value = str(value)
            return text_value if 0 < len(text_value) <= 200 else None
    return None


def _version(row: Any) -> ModelVersion:
    data = plain(row)
    evaluation = data.get("evaluation")
    data["evaluation"] = orjson.loads(evaluation) if evaluation else None
    data["active"] = bool(data["active"])
    return ModelVersion(**data)


_RECENT_SQLITE = """
SELECT event, json_extract(payload, '$.properties.products'),
       CAST(COALESCE(json_extract(payload, '$.properties.product_id'),
                     json_extract(payload, '$.properties.id'),
                     json_extract(payload, '$.properties.sku')) AS TEXT)
FROM events
WHERE workspace_id = :workspace_id AND profile_id = :profile_id AND timestamp_us >= :since_us
  AND type = 'track' AND event IN ('Order Completed', 'Product Added', 'Product Viewed')
ORDER BY timestamp_us DESC LIMIT :limit
"""

_RECENT_POSTGRESQL = """
SELECT event, payload::jsonb #>> '{properties,products}',
       COALESCE(payload::jsonb #>> '{properties,product_id}', payload::jsonb #>> '{properties,id}',
                payload::jsonb #>> '{properties,sku}')
FROM events
WHERE workspace_id = :workspace_id AND profile_id = :profile_id AND timestamp_us >= :since_us
  AND type = 'track' AND event IN ('Order Completed', 'Product Added', 'Product Viewed')
ORDER BY timestamp_us DESC LIMIT :limit
"""


class RecsReads:
    """The recommendations' hot reads (:mod:`opencdp.storage.hot_reads`): the live profile an
    identifier names, and a profile's latest product interactions with only the product ids
    read out of the payloads (in SQL)."""

    def __init__(self, db: Database, hot: HotReads) -> None:
        self.hot = hot
        holder = identifiers.join(
            profiles,
            (profiles.c.workspace_id == identifiers.c.workspace_id)
            & (profiles.c.id == identifiers.c.profile_id),
        )
        located = (
            select(profiles.c.id, profiles.c.merged_into)
            .select_from(holder)
            .where(
                identifiers.c.workspace_id == bindparam("workspace_id"),
                identifiers.c.collection == bindparam("collection"),
                identifiers.c.id_type == bindparam("id_type"),
                identifiers.c.id_value == bindparam("id_value"),
            )
        )
        self._profile = hot.prepare(located, ("workspace_id", "collection", "id_type", "id_value"))
        by_id = select(profiles.c.id, profiles.c.merged_into).where(
            profiles.c.workspace_id == bindparam("workspace_id"),
            profiles.c.id == bindparam("profile_id"),
            profiles.c.collection == "users",
        )
        self._by_id = hot.prepare(by_id, ("workspace_id", "profile_id"))
        recent = text(_RECENT_SQLITE if db.dialect.is_sqlite else _RECENT_POSTGRESQL)
        self._recent = hot.prepare(recent, ("workspace_id", "profile_id", "since_us", "limit"))

    def profile_of(
        self, workspace_id: str, collection: str, id_type: str, id_value: str
    ) -> tuple[str, str | None] | None:
        """(profile id, merged into) of the profile holding the identifier, or None."""
        rows = self.hot.rows(
            self._profile,
            {
                "workspace_id": workspace_id,
                "collection": collection,
                "id_type": id_type,
                "id_value": id_value,
            },
        )
        return None if not rows else (rows[0][0], rows[0][1])

    def profile_by_id(self, workspace_id: str, profile_id: str) -> tuple[str, str | None] | None:
        """(profile id, merged into) of the profile with this id, or None."""
        rows = self.hot.rows(self._by_id, {"workspace_id": workspace_id, "profile_id": profile_id})
        return None if not rows else (rows[0][0], rows[0][1])

    def recent_products(
        self, workspace_id: str, profile_id: str, since_us: int, limit: int = 50
    ) -> list[tuple[str, int]]:
        """The profile's latest product interactions since ``since_us`` (newest first) as
        (product id, kind), from at most ``limit`` events."""
        rows = self.hot.rows(
            self._recent,
            {
                "workspace_id": workspace_id,
                "profile_id": profile_id,
                "since_us": since_us,
                "limit": limit,
            },
        )
        out: list[tuple[str, int]] = []
        for event, lines, single in rows:
            kind = KIND_OF_EVENT[event]
            if kind != PURCHASE:
                if single is not None and 0 < len(single) <= 200:
                    out.append((single, kind))
                continue
            try:
                parsed = orjson.loads(lines) if lines else None
            except orjson.JSONDecodeError:
                continue
            for line in parsed if isinstance(parsed, list) else []:
                item = _product_id(line)
                if item is not None:
                    out.append((item, kind))
        return out
