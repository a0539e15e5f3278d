"""Recommendations' use cases: train (on demand and on the schedule), evaluate, list and roll
back versions, the workspace's settings, and serving a profile's or a product's
recommendations (see docs/recommendations.md)."""

from __future__ import annotations

import logging
import math
import shutil
import threading
from typing import Any

from opencdp.errors import Conflict, NotFound, RequestError, loggable
from opencdp.recommend.models import relative_path
from opencdp.recs.evaluation import Report, parse_holdout
from opencdp.recs.evaluation import evaluate as evaluate_holdout
from opencdp.recs.interactions import Weights
from opencdp.recs.rules import Candidate, Rules
from opencdp.recs.training import TrainConfig
from opencdp.recs.training import train as train_model
from opencdp.runtime import Runtime
from opencdp.services.profile_lookup import locate_profile, parse_ref
from opencdp.services.query_params import whole_number
from opencdp.services.recs_erasure import scrub_models
from opencdp.storage.definitions import DefinitionStore
from opencdp.storage.recs import ModelVersion
from opencdp.timeutil import isoformat_us

log = logging.getLogger(__name__)

TRAIT = "recommended_items"
#: Versions whose files are kept (older ones keep their row, not their arrays).
KEEP_FILES = 5
MAX_LIMIT = 100
#: A claimed training older than this belongs to a process that died.
STALE_CLAIM_US = 3_600_000_000
SETTINGS_FIELDS = ("weights", "rules", "train_every_hours", "holdout")


# -- settings -------------------------------------------------------------------------------------


def settings(rt: Runtime, workspace_id: str) -> dict[str, Any]:
    """The workspace's settings with every default filled in."""
    stored = rt.recs.settings(workspace_id) or {}
    return {
        "weights": Weights.from_document(stored.get("weights")).to_document(),
        "rules": Rules.from_document(stored.get("rules")).to_document(),
        "train_every_hours": stored.get("train_every_hours", rt.settings.recs_train_every_hours),
        "holdout": stored.get("holdout", "last-basket"),
    }


def apply_settings(rt: Runtime, workspace_id: str, document: Any) -> dict[str, Any]:
    """Validate and store the settings (each field optional; a missing one keeps its
    default); returns them with defaults."""
    if not isinstance(document, dict):
        raise RequestError("settings: expected a JSON object", code="invalid_settings")
    unknown = sorted(set(document) - set(SETTINGS_FIELDS))
    if unknown:
        raise RequestError(
            f"settings.{unknown[0]}: unknown field (fields: {', '.join(SETTINGS_FIELDS)})",
            code="invalid_settings",
        )
    for key in ("weights", "rules"):
        if key in document and not isinstance(document[key], dict):
            raise RequestError(f"settings.{key}: expected an object", code="invalid_settings")
    try:
        Weights.from_document(document.get("weights"))
        Rules.from_document(document.get("rules"))
        if "holdout" in document:
            parse_holdout(document["holdout"])
    except ValueError as error:
        raise RequestError(str(error), code="invalid_settings") from None
    every = document.get("train_every_hours")
    if "train_every_hours" in document and (
        isinstance(every, bool)
        or not isinstance(every, int | float)
        or not math.isfinite(every)
        or not 0 <= every <= 8760
    ):
        raise RequestError(
            "settings.train_every_hours: expected hours from 0 (off) to 8760",
            code="invalid_settings",
        )
    rt.recs.put_settings(workspace_id, document, rt.now_us())
    rt.recommender.forget(workspace_id)
    return settings(rt, workspace_id)


def _config(rt: Runtime, workspace_id: str, holdout: str | None = None) -> TrainConfig:
    current = settings(rt, workspace_id)
    return TrainConfig(
        weights=Weights.from_document(current["weights"]),
        holdout=holdout or current["holdout"],
    )


# -- training -------------------------------------------------------------------------------------


def train(rt: Runtime, workspace_id: str, *, source: str = "cli") -> dict[str, Any]:
    """Train the workspace's model from its events, save it as the next version and make it
    active; then refresh ``recommended_items``. Conflict when a training is running."""
    if not rt.recs.claim(workspace_id, rt.now_us(), STALE_CLAIM_US):
        raise Conflict(
            f"a training of workspace {workspace_id!r} is running; try again when it is done",
            code="training_running",
        )
    try:
        version = _train_claimed(rt, workspace_id, source)
    finally:
        rt.recs.release(workspace_id)
    _activated(rt, workspace_id, version.version)
    return version_document(version)


def _activated(rt: Runtime, workspace_id: str, version: str) -> None:
    """After a version became active: refresh ``recommended_items``, then call
    ``rt.recs_trained_hooks`` (a failing hook is logged; the version stays active)."""
    refresh_trait(rt, workspace_id)
    for hook in list(rt.recs_trained_hooks):
        try:
            hook(workspace_id, version)
        except Exception as error:
            log.error("recs_trained hook %r for %s: %s", hook, workspace_id, loggable(error))


def _train_claimed(rt: Runtime, workspace_id: str, source: str) -> ModelVersion:
    started = rt.clock.monotonic()
    now_us = rt.now_us()
    interactions = rt.recs.interactions(workspace_id)
    if not len(interactions):
        raise Conflict(
            f"workspace {workspace_id!r} has no product events to learn from yet: send "
            "Order Completed (with products), Product Added or Product Viewed events",
            code="no_interactions",
        )
    version = rt.recs.next_version(workspace_id)
    row: dict[str, Any] = {
        "workspace_id": workspace_id,
        "version": version,
        "trained_us": now_us,
        "source": source,
        "interactions": len(interactions),
    }
    try:
        model = train_model(
            interactions, rt.recs.categories(workspace_id), now_us, _config(rt, workspace_id)
        )
        path = relative_path(workspace_id, version)
        target = rt.settings.data_dir / path
        if target.exists():  # a crashed run's leftovers under a version never recorded
            shutil.rmtree(target)
        from opencdp.recs import artifact

        artifact.save(model, target)
    except Exception as error:
        log.exception("recommendation training of %s failed", workspace_id)
        rt.recs.record(
            {
                **row,
                "status": "failed",
                "error": loggable(error),
                "seconds": rt.clock.monotonic() - started,
            },
            activate=False,
        )
        raise
    rt.recs.record(
        {
            **row,
            "status": "ready",
            "kind": model.kind,
            "users": len(model.user_ids),
            "items": len(model.item_ids),
            "evaluation": model.evaluation,
            "path": path,
            "seconds": round(rt.clock.monotonic() - started, 3),
        },
        activate=True,
    )
    rt.recommender.forget(workspace_id)
    # a profile erased while this training ran is in its files: rewritten without it
    scrub_models(rt, workspace_id, [version])
    _prune(rt, workspace_id)
    active = rt.recs.active(workspace_id)
    assert active is not None
    return active


def _prune(rt: Runtime, workspace_id: str) -> None:
    """Delete the arrays of all but the newest :data:`KEEP_FILES` versions (never the
    active one)."""
    with_files = [v for v in rt.recs.versions(workspace_id) if v.path is not None]
    old = [v for v in with_files[KEEP_FILES:] if not v.active]
    for version in old:
        shutil.rmtree(rt.settings.data_dir / version.path, ignore_errors=True)  # type: ignore[operator]
    rt.recs.forget_files(workspace_id, [v.version for v in old])


def refresh_trait(rt: Runtime, workspace_id: str) -> dict[str, Any] | None:
    """Create the ``recommended_items`` computed trait when missing, and compute it with the
    active model; None when another definition already has that key."""
    definitions = DefinitionStore(rt.db)
    try:
        existing: Any = definitions.get(workspace_id, TRAIT)
    except NotFound:
        existing = None
    query = "recommended_items()"
    if existing is None:
        definitions.put_system_trait(workspace_id, TRAIT, "Recommended items", query, rt.now_us())
    elif existing.kind != "trait" or existing.query.strip() != query or not existing.enabled:
        log.warning(
            "%s: %r is another definition (%s); recommended_items not refreshed",
            workspace_id,
            TRAIT,
            existing.query,
        )
        return None
    rt.compute.forget(workspace_id)
    computation = rt.compute.compute(workspace_id, TRAIT)
    return {"profiles": computation.size, "changed": computation.changed}


def install(rt: Runtime) -> None:
    """Let the runtime's worker train each workspace on its schedule (what a process that
    runs a worker calls once). The tick only looks (at most once a minute); a due training
    runs on a thread of its own so the worker keeps processing events."""
    if any(getattr(h, "__wrapped__", None) is _scheduled for h in rt.timer_hooks):
        return
    state = {"last": -1e18}
    attempted: dict[str, int] = {}

    def hook() -> int:
        if rt.clock.monotonic() - state["last"] < SCHEDULE_EVERY_SECONDS:
            return 0
        state["last"] = rt.clock.monotonic()
        return _scheduled(rt, attempted)

    hook.__wrapped__ = _scheduled  # type: ignore[attr-defined]
    rt.timer_hooks.append(hook)


SCHEDULE_EVERY_SECONDS = 60.0


def _scheduled(rt: Runtime, attempted: dict[str, int] | None = None) -> int:
    """Start the trainings that are due; returns how many were started. ``attempted`` (the
    hook's memory) keeps a workspace whose training could not run (events without product
    ids, a failure) from being tried again before its next period."""
    started = 0
    now_us = rt.now_us()
    for workspace_id in [w.id for w in rt.admin.list_workspaces()]:
        every = settings(rt, workspace_id)["train_every_hours"]
        if not every:
            continue
        period_us = every * 3_600_000_000
        last = rt.recs.last_trained_us(workspace_id)
        if last is not None and now_us - last < period_us:
            continue
        if attempted is not None:
            if now_us - attempted.get(workspace_id, -(2**62)) < period_us:
                continue
            attempted[workspace_id] = now_us
        if not rt.recs.has_interactions(workspace_id):
            continue
        thread = threading.Thread(
            target=_train_when_due,
            args=(rt, workspace_id, int(every * 3_600_000_000)),
            name=f"recs-{workspace_id}",
            daemon=True,
        )
        thread.start()
        started += 1
    return started


def _train_when_due(rt: Runtime, workspace_id: str, every_us: int) -> str | None:
    """A scheduled training: claims the workspace, then looks again whether it is still due
    (another process may have trained it between this one's look and its claim), so a due
    training runs once across processes. Returns the new version, or None."""
    try:
        if not rt.recs.claim(workspace_id, rt.now_us(), STALE_CLAIM_US):
            return None  # another process is training it
        try:
            last = rt.recs.last_trained_us(workspace_id)
            if last is not None and rt.now_us() - last < every_us:
                return None
            version = _train_claimed(rt, workspace_id, "schedule")
        finally:
            rt.recs.release(workspace_id)
        _activated(rt, workspace_id, version.version)
        return version.version
    except Conflict as error:
        log.info("scheduled training of %s: %s", workspace_id, error)
    except Exception as error:  # the failure is recorded with the version
        log.error("scheduled training of %s: %s", workspace_id, loggable(error))
    return None


# -- evaluation and versions ----------------------------------------------------------------------


def evaluate(rt: Runtime, workspace_id: str, holdout_days: int | None = None) -> Report:
    """Each model against popularity on the workspace's events: the last ``holdout_days``
    held out, or (None) each customer's last basket."""
    holdout = "last-basket" if holdout_days is None else f"days:{holdout_days}"
    try:
        parse_holdout(holdout)
    except ValueError as error:
        raise RequestError(str(error), code="invalid_holdout") from None
    interactions = rt.recs.interactions(workspace_id)
    if not len(interactions):
        raise Conflict(
            f"workspace {workspace_id!r} has no product events to evaluate on",
            code="no_interactions",
        )
    config = _config(rt, workspace_id, holdout)
    return evaluate_holdout(interactions, rt.recs.categories(workspace_id), rt.now_us(), config)


def models(rt: Runtime, workspace_id: str) -> list[dict[str, Any]]:
    return [version_document(v) for v in rt.recs.versions(workspace_id)]


def rollback(rt: Runtime, workspace_id: str, version: str | None = None) -> dict[str, Any]:
    """Make ``version`` (default: the ready version before the active one) active again."""
    versions = rt.recs.versions(workspace_id)
    if not versions:
        raise NotFound(
            f"workspace {workspace_id!r} has no trained model yet: run opencdp recs train"
        )
    if version is None:
        at = next((i for i, v in enumerate(versions) if v.active), None)
        older = versions[(at + 1) if at is not None else 0 :]
        target = next((v for v in older if v.status == "ready" and v.path), None)
        if target is None:
            raise RequestError(
                "there is no earlier ready version with its files to roll back to",
                code="nothing_to_roll_back_to",
            )
    else:
        target = next((v for v in versions if v.version == version), None)
        if target is None:
            known = ", ".join(v.version for v in versions[:10])
            raise NotFound(
                f"no version {version!r} in workspace {workspace_id!r} (versions: {known})"
            )
        if target.status != "ready" or target.path is None:
            raise RequestError(
                f"version {version} cannot serve: "
                + ("its training failed" if target.status != "ready" else "its files were pruned"),
                code="version_not_ready",
            )
    rt.recs.activate(workspace_id, target.version)
    rt.recommender.forget(workspace_id)
    _activated(rt, workspace_id, target.version)
    active = rt.recs.active(workspace_id)
    assert active is not None
    return version_document(active)


def version_document(v: ModelVersion) -> dict[str, Any]:
    return {
        "version": v.version,
        "status": v.status,
        "active": v.active,
        "kind": v.kind,
        "trained_at": isoformat_us(v.trained_us),
        "seconds": v.seconds,
        "interactions": v.interactions,
        "users": v.users,
        "items": v.items,
        "source": v.source,
        "evaluation": v.evaluation,
        "error": v.error,
    }


# -- serving --------------------------------------------------------------------------------------


def check_limit(limit: Any, default: int = 10) -> int:
    """``limit`` as a whole number from 1 to :data:`MAX_LIMIT` (query strings allowed)."""
    return whole_number(limit, "limit", default=default, high=MAX_LIMIT, code="invalid_limit")


def for_profile(
    rt: Runtime,
    workspace_id: str,
    ref: str,
    *,
    limit: Any = None,
    location: str | None = None,
    category: str | None = None,
) -> dict[str, Any]:
    """``GET /api/profiles/{id}/recommendations``: the profile (any identifier) and its top
    products with scores and reasons."""
    limit = check_limit(limit)
    profile_id = _profile_id(rt, workspace_id, ref)
    served = rt.recommender.for_profile(
        workspace_id,
        profile_id,
        limit=limit,
        now_us=rt.now_us(),
        location=location,
        category=category,
    )
    if served is None:
        raise _no_model(workspace_id)
    return {
        "profile_id": profile_id,
        "data": [_item(c, served.catalog) for c in served.items],
        "model": _model(served.loaded.version),
    }


def _profile_id(rt: Runtime, workspace_id: str, ref: str) -> str:
    """The live profile ``ref`` names: an identifier by one hot read; a profile id, or an
    identifier still on a merged profile, the Profile API's way. ``404 profile_not_found``
    when there is none."""
    reads = rt.recommender.reads
    identifier = parse_ref(rt, ref)
    if identifier is not None:
        found = reads.profile_of(workspace_id, "users", *identifier)
    else:
        found = reads.profile_by_id(workspace_id, ref)
    if found is not None and found[1] is None:
        return found[0]
    try:
        located: str = locate_profile(rt, workspace_id, ref).id
    except NotFound:
        raise NotFound(
            f"no profile {ref!r} in workspace {workspace_id!r}: name it by its id or by "
            "type:value (user_id:u1, anonymous_id:a1, email:ann@example.com)",
            code="profile_not_found",
        ) from None
    return located


def similar(
    rt: Runtime,
    workspace_id: str,
    product_id: str,
    *,
    limit: Any = None,
    location: str | None = None,
) -> dict[str, Any]:
    """``GET /api/products/{id}/similar``."""
    limit = check_limit(limit)
    catalog = rt.recommender.catalogs.get(workspace_id)
    served = rt.recommender.similar(workspace_id, product_id, limit=limit, location=location)
    if served is None:
        raise _no_model(workspace_id)
    known_to_model = served.loaded.model.item_index(product_id) is not None
    if not known_to_model and product_id not in catalog.products:
        raise NotFound(
            f"no product {product_id!r} in workspace {workspace_id!r}", code="product_not_found"
        )
    return {
        "product_id": product_id,
        "data": [_item(c, served.catalog) for c in served.items],
        "model": _model(served.loaded.version),
    }


def _no_model(workspace_id: str) -> NotFound:
    return NotFound(
        f"workspace {workspace_id!r} has no recommendation model yet: run `opencdp recs train` "
        "(or POST /api/recs/train)",
        code="no_model",
    )


def _item(candidate: Candidate, catalog: Any) -> dict[str, Any]:
    return {
        "product_id": candidate.product_id,
        "score": round(candidate.score, 6),
        "reason": candidate.reason,
        **catalog.details(candidate.product_id),
    }


def _model(version: ModelVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "kind": version.kind,
        "trained_at": isoformat_us(version.trained_us),
    }
