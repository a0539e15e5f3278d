"""Catalog use cases the HTTP API and the CLI share: products (one, in bulk), the headless
reads (one product with its stock and ETag; filtered list pages), stock levels (one, in bulk,
from a file) and their history.

Every inventory write runs in one transaction with the restock hooks
(:meth:`opencdp.runtime.Runtime.restocked`): a back-in-stock answer is written with the stock
that caused it, or not at all.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from opencdp.catalog.etag import decode_cursor, encode_cursor, list_etag, product_etag
from opencdp.catalog.inventory import StockLevel, stock_level
from opencdp.catalog.products import CatalogError, Product, category_path, product_from
from opencdp.catalog.view import product_view, stock_view
from opencdp.errors import NotFound, RequestError
from opencdp.runtime import Runtime
from opencdp.services.query_params import whole_number
from opencdp.storage.catalog import MAX_PAGE, ProductFilter
from opencdp.timeutil import isoformat_us

#: the most products or stock levels one batch call takes
MAX_BATCH = 1000
DEFAULT_PAGE = 50
MAX_HISTORY = 1000
#: at most this many row errors are kept in an import's report (all are counted)
MAX_REPORTED_ERRORS = 1000


def _not_found(product_id: str) -> NotFound:
    return NotFound(
        f"no product {product_id!r} in this workspace's catalog: write it first with "
        "PUT /api/products/{id}, POST /api/products:batch or `opencdp import products`",
        code="not_found",
    )


# -- products ---------------------------------------------------------------------------------
def put_product(rt: Runtime, workspace_id: str, product_id: str, body: Any) -> dict[str, Any]:
    """Create or replace a product (its stock stays); answers it as ``get_product`` does."""
    product = product_from(body, product_id)
    with rt.db.write() as conn:
        rt.catalog.upsert_products(conn, workspace_id, [product], rt.now_us())
    return get_product(rt, workspace_id, product.id)[0]


def put_products_batch(rt: Runtime, workspace_id: str, body: Any) -> dict[str, Any]:
    """``{"products": [...]}``: up to 1,000 products, all written or none (every invalid one
    is named by its index in the error)."""
    items = _batch(body, "products")
    products: list[Product] = []
    errors: list[str] = []
    for i, item in enumerate(items):
        try:
            products.append(product_from(item))
        except CatalogError as exc:
            errors.append(f"products[{i}].{exc.field}: {exc.reason}")
    _refuse(errors, "invalid_product")
    with rt.db.write() as conn:
        written = rt.catalog.upsert_products(conn, workspace_id, products, rt.now_us())
    return {"written": written}


def get_product(rt: Runtime, workspace_id: str, product_id: str) -> tuple[dict[str, Any], str]:
    """The product with its stock per location and its variants, and its ETag (the hot path:
    one statement)."""
    found = rt.catalog_reads.product(workspace_id, product_id)
    if found is None:
        raise _not_found(product_id)
    etag = product_etag(found.product, found.stock, found.variants)
    return product_view(found.product, found.stock, found.variants), etag


def list_products(
    rt: Runtime,
    workspace_id: str,
    *,
    category: str | None = None,
    brand: str | None = None,
    q: str | None = None,
    in_stock: str | bool | None = None,
    limit: str | int | None = None,
    next_cursor: str | None = None,
) -> tuple[dict[str, Any], str]:
    """A page of products in id order, ``{"data": [...], "next": cursor | null}``, and its
    ETag. Filters: ``category`` a path prefix (``Women`` finds ``Women > Shoes``), ``brand``
    exactly, ``q`` a case-insensitive part of the name, brand or id, ``in_stock``."""
    where = ProductFilter(
        category=category_path(category) if category else None,
        brand=_filter_text(brand, "brand"),
        q=_filter_text(q, "q"),
        in_stock=_flag(in_stock, "in_stock"),
    )
    page = whole_number(limit, "limit", default=DEFAULT_PAGE, high=MAX_PAGE)
    after = decode_cursor(next_cursor) if next_cursor else None
    found = rt.catalog.list_page(workspace_id, where, limit=page, after=after)
    data = [
        product_view(r, found.stock.get(r["id"], []), found.variants.get(r["id"], []))
        for r in found.rows
    ]
    cursor = encode_cursor(found.after) if found.after is not None else None
    return {"data": data, "next": cursor}, list_etag(data, cursor)


# -- inventory --------------------------------------------------------------------------------
def set_inventory(
    rt: Runtime, workspace_id: str, product_id: str, body: Any, reference: str | None = None
) -> dict[str, Any]:
    """Set one product's stock at one location; answers the level. A product the catalog
    does not have is refused (404)."""
    level = stock_level(body, product_id)
    write_levels(rt, workspace_id, [level], "api", reference)
    for row in rt.inventory.levels(workspace_id, level.product_id):
        if row.location == level.location:
            return {"product_id": level.product_id, **stock_view(row)}
    raise _not_found(level.product_id)  # pragma: no cover - written just above


def set_inventory_batch(
    rt: Runtime, workspace_id: str, body: Any, reference: str | None = None
) -> dict[str, Any]:
    """``{"levels": [{"product_id", "location", "quantity"}]}``: up to 1,000 levels, all
    written or none (every invalid one, or one of a product not in the catalog, named by its
    index)."""
    items = _batch(body, "levels")
    levels: list[StockLevel] = []
    errors: list[str] = []
    for i, item in enumerate(items):
        try:
            levels.append(stock_level(item))
        except CatalogError as exc:
            errors.append(f"levels[{i}].{exc.field}: {exc.reason}")
    _refuse(errors, "invalid_stock")
    changed, restocked = write_levels(rt, workspace_id, levels, "api", reference, indexed=True)
    return {"written": len(levels), "changed": changed, "restocked": restocked}


def write_levels(
    rt: Runtime,
    workspace_id: str,
    levels: Sequence[StockLevel],
    channel: str,
    reference: str | None,
    *,
    indexed: bool = False,
) -> tuple[int, int]:
    """Write stock levels of products the catalog has, in one transaction with the restock
    hooks; returns (levels changed, restocks). A level of an unknown product refuses all."""
    with rt.db.write() as conn:
        known = rt.catalog.existing_ids(conn, workspace_id, {lv.product_id for lv in levels})
        unknown = [(i, lv.product_id) for i, lv in enumerate(levels) if lv.product_id not in known]
        if unknown:
            if not indexed:
                raise _not_found(unknown[0][1])
            _refuse(
                [
                    f"levels[{i}].product_id: no product {pid!r} in the catalog"
                    for i, pid in unknown
                ],
                "unknown_product",
            )
        done = rt.inventory.write_levels(
            conn, workspace_id, levels, channel, reference, rt.now_us()
        )
        rt.restocked(conn, workspace_id, done.restocks)
    return done.changed, len(done.restocks)


def inventory_history(
    rt: Runtime, workspace_id: str, product_id: str, limit: str | int | None = None
) -> dict[str, Any]:
    """A product's stock changes, newest first."""
    size = whole_number(limit, "limit", default=100, high=MAX_HISTORY)
    rows = rt.inventory.history(workspace_id, product_id, size)
    if not rows and rt.catalog.get(workspace_id, product_id) is None:
        raise _not_found(product_id)
    return {
        "product_id": product_id,
        "data": [
            {
                "location": r["location"],
                "quantity": r["quantity"],
                "delta": r["delta"],
                "channel": r["channel"],
                "reference": r["reference"],
                "at": isoformat_us(r["at_us"]),
            }
            for r in rows
        ],
    }


# -- inventory files --------------------------------------------------------------------------
@dataclass
class InventoryImport:
    """What an inventory file import did: rows read, levels written (of those, changed),
    restocks, and the rows refused with what to fix, by their line in the file (a CSV's
    header is line 1)."""

    file: str
    rows: int = 0
    written: int = 0
    changed: int = 0
    restocked: int = 0
    rejected: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    def refuse(self, row: int, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append((row, message))


#: told (bytes read so far, rows read so far) after each chunk
Progress = Callable[[int, int], None]


def import_inventory(
    rt: Runtime,
    workspace_id: str,
    path: Path,
    *,
    chunk_size: int = 1000,
    progress: Progress | None = None,
) -> InventoryImport:
    """Set the stock levels of a CSV or JSON Lines file with ``product_id``, ``location`` and
    ``quantity`` per row, in chunks (one transaction each, with the restock hooks). Rows that
    do not validate, or name a product the catalog does not have, are refused and reported;
    the others are written."""
    report = InventoryImport(path.name)
    reference = f"import:{path.name}"[:200]
    chunk: list[tuple[int, StockLevel]] = []

    def flush() -> None:
        if not chunk:
            return
        with rt.db.write() as conn:
            known = rt.catalog.existing_ids(conn, workspace_id, {lv.product_id for _n, lv in chunk})
            good = []
            for number, level in chunk:
                if level.product_id in known:
                    good.append(level)
                else:
                    report.refuse(
                        number, f"product_id: no product {level.product_id!r} in the catalog"
                    )
            done = rt.inventory.write_levels(
                conn, workspace_id, good, "import", reference, rt.now_us()
            )
            rt.restocked(conn, workspace_id, done.restocks)
        report.written += len(good)
        report.changed += done.changed
        report.restocked += len(done.restocks)
        chunk.clear()

    with path.open("rb") as raw:
        for number, row in _rows(raw, path):
            report.rows += 1
            try:
                if isinstance(row, CatalogError):
                    raise row
                chunk.append((number, stock_level(_stock_fields(row), from_file=True)))
            except CatalogError as exc:
                report.refuse(number, exc.message)
            if len(chunk) >= chunk_size:
                flush()
                if progress is not None:
                    progress(raw.tell(), report.rows)
        flush()
        if progress is not None:
            progress(raw.tell(), report.rows)
    return report


def _rows(raw: io.BufferedReader, path: Path) -> Iterator[tuple[int, Any]]:
    """(row number, row) of a CSV (by its header) or JSON Lines file; a line that is no JSON
    object is a CatalogError for its row."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text)
        missing = [
            c for c in ("product_id", "location", "quantity") if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise RequestError(
                f"{path.name}: the CSV header needs product_id, location and quantity "
                f"(missing: {', '.join(missing)})",
                code="invalid_file",
            )
        for row in reader:
            yield reader.line_num, row
        text.detach()
    elif suffix in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate(raw, start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, CatalogError("line", f"not JSON ({exc})", code="invalid_stock")
                continue
            yield number, value
    else:
        raise RequestError(
            f"{path.name}: an inventory file is CSV (.csv) or JSON Lines (.jsonl, .ndjson)",
            code="invalid_file",
        )


def _stock_fields(row: Any) -> Any:
    """A file row's level fields (other columns, and a CSV's empty extra cells, ignored)."""
    if not isinstance(row, Mapping):
        raise CatalogError("line", "a JSON object per line", code="invalid_stock")
    return {k: row[k] for k in ("product_id", "location", "quantity") if k in row}


# -- shared -----------------------------------------------------------------------------------
def _batch(body: Any, key: str) -> list[Any]:
    if not isinstance(body, Mapping) or set(body) != {key}:
        raise RequestError(f'send {{"{key}": [...]}}', code=f"invalid_{key}")
    items = body[key]
    if not isinstance(items, list):
        raise RequestError(f"{key}: a list", code=f"invalid_{key}")
    if len(items) > MAX_BATCH:
        raise RequestError(
            f"{key}: at most {MAX_BATCH:,} per call, got {len(items):,}", code="batch_too_large"
        )
    return items


def _refuse(errors: list[str], code: str) -> None:
    if errors:
        shown = "; ".join(errors[:20])
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        raise RequestError(f"nothing was written: {shown}{more}", code=code)


def _flag(value: str | bool | None, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise RequestError(f"{name}: true or false, not {value!r}", code="invalid_request")


def _filter_text(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if "\x00" in value:
        raise RequestError(f"{name}: a NUL character matches nothing", code="invalid_request")
    return value.strip() or None
