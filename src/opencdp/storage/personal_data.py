"""The registry of personal data: for every table of the schema, whether it holds personal data,
in which columns, and how the rows of one profile are found.

It is the map that data-subject export and erasure follow, and a contract test keeps it
complete: a table added to :data:`opencdp.storage.schema.metadata` without a declaration here
fails the tests, and so does a declaration that names a column the table does not have.

A declaration is one of three kinds:

* **no personal data** (:func:`no_personal_data`): configuration, credentials, counters. The
  reason says why, so a reviewer can disagree.
* **found by profile** (:func:`found_by_profile`): a row belongs to a profile when one of its
  profile columns holds the profile's id *or the id of a profile merged into it* (its
  *family*, :func:`profile_family`). Merges repoint profiles, identifiers, events, traits and
  links, but inbox and quarantine rows keep the id they were given when they were processed,
  so the family is what finds them after a later merge.
* **not linked to a profile** (:func:`not_linked`): the table holds personal data that no
  column ties to a profile. These are known gaps, listed so that erasure can deal with them
  explicitly instead of missing them silently.

Rows whose profile column is NULL are not found by profile: an inbox row not yet processed,
or one whose message id had been stored before; a quarantine row whose event was never stored
(rejected at collection, failed resolution, or not yet replayed). See ``docs/architecture.md``.

The functions here build SQL and execute nothing; callers run the statements in their own
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Delete, Select, Table, delete, or_, select

from opencdp.storage.schema import metadata, profiles


@dataclass(frozen=True, slots=True)
class Declaration:
    """How one table relates to personal data.

    ``columns`` are the columns that hold personal data (empty: the table holds none);
    ``profile_columns`` are the columns whose value is a profile id, a row being the profile's
    when any of them is in the profile's family (empty: rows cannot be found by profile);
    ``note`` says what the columns hold, or why the table holds nothing personal, or why its
    rows cannot be found by profile.
    """

    table: str
    columns: tuple[str, ...]
    profile_columns: tuple[str, ...]
    note: str

    def __post_init__(self) -> None:
        if self.profile_columns and not self.columns:
            raise ValueError(f"{self.table}: rows found by profile must hold personal data")
        if not self.note.strip():
            raise ValueError(f"{self.table}: a declaration needs a note")

    @property
    def holds_personal_data(self) -> bool:
        """Whether some column of the table holds personal data."""
        return bool(self.columns)

    @property
    def found_by_profile(self) -> bool:
        """Whether one profile's rows can be selected by a profile id column."""
        return bool(self.profile_columns)


def no_personal_data(table: str, reason: str) -> Declaration:
    """A table that holds no personal data, with the reason why."""
    return Declaration(table, (), (), reason)


def found_by_profile(
    table: str, columns: tuple[str, ...], profile_columns: tuple[str, ...], note: str
) -> Declaration:
    """A table whose personal data sits in ``columns`` and whose rows of one profile are those
    with one of ``profile_columns`` in the profile's family."""
    if not columns or not profile_columns:
        raise ValueError(f"{table}: name the personal columns and the profile columns")
    return Declaration(table, columns, profile_columns, note)


def not_linked(table: str, columns: tuple[str, ...], gap: str) -> Declaration:
    """A table holding personal data in ``columns`` that no column links to a profile;
    ``gap`` says what is there and how it has to be handled instead."""
    if not columns:
        raise ValueError(f"{table}: name the columns that hold personal data")
    return Declaration(table, columns, (), gap)


_DECLARATIONS = (
    no_personal_data("workspaces", "tenants: a name and identity rule overrides"),
    no_personal_data("sources", "where data comes from: names and hashed write keys"),
    no_personal_data(
        "access_tokens", "operators' API credentials (hashed), not data about customers"
    ),
    found_by_profile(
        "inbox",
        ("payload",),
        ("profile_id",),
        "the raw message; profile_id is set when the worker stores the event",
    ),
    found_by_profile(
        "quarantine",
        ("payload", "detail", "violations"),
        ("profile_id",),
        "the raw message, and messages and violations that may quote its values; profile_id "
        "is set when a later replay or import stores the message",
    ),
    found_by_profile(
        "profiles",
        ("id",),
        ("id",),
        "the person's pseudonymous record; absorbed profiles point at it with merged_into",
    ),
    found_by_profile(
        "identifiers",
        ("id_value",),
        ("profile_id",),
        "e-mails, phones, user and device ids",
    ),
    found_by_profile(
        "merges",
        ("detail", "from_profile_id", "into_profile_id"),
        ("from_profile_id", "into_profile_id"),
        "the identifiers that bridged two profiles of the person",
    ),
    found_by_profile("traits", ("value",), ("profile_id",), "trait values"),
    found_by_profile(
        "events",
        ("payload", "resolution"),
        ("profile_id",),
        "the message, and the identifiers its resolution added or saw",
    ),
    found_by_profile(
        "links",
        ("user_profile_id", "account_profile_id"),
        ("user_profile_id", "account_profile_id"),
        "which account (group) a user belongs to",
    ),
    no_personal_data("tracking_plans", "event and property rules, no event data"),
    no_personal_data("schema_settings", "enforcement settings per source"),
    no_personal_data("products", "the product catalog"),
    not_linked(
        "import_runs",
        ("report",),
        "the data-quality report quotes up to a few invalid values and bridging identifiers of "
        "a file's rows by row number; erasure has to redact or drop reports, not select rows",
    ),
    no_personal_data("identity_epoch", "one counter of identity changes"),
    no_personal_data(
        "definitions",
        "computed-trait and audience definitions; their values are in computed_values",
    ),
    found_by_profile(
        "computed_values",
        ("value",),
        ("profile_id",),
        "what computed traits and audiences computed for the profile",
    ),
    no_personal_data(
        "clv_models",
        "a workspace's fitted CLV model: seven parameters and counts over all its customers; "
        "the per-profile predictions are computed_values",
    ),
    no_personal_data(
        "destinations",
        "where deliveries go: a type, its settings (URLs, hosts, credentials of the receiving "
        "system, not of a customer) and subscriptions",
    ),
    found_by_profile(
        "deliveries",
        ("payload", "last_request", "last_response"),
        ("profile_id",),
        "the outbox: the event a delivery carries, what was sent and what came back",
    ),
    no_personal_data(
        "journeys",
        "journey definitions: triggers, steps, templates and the destinations they send to",
    ),
    found_by_profile(
        "journey_instances",
        ("identifier", "context", "events"),
        ("profile_id",),
        "a profile's walk through a journey: the events on its path (cart contents, ids)",
    ),
    no_personal_data("journey_steps", "how many instances reached each step of a journey"),
    not_linked(
        "regulations",
        ("subjects",),
        "the identifiers a privacy request names; a deletion replaces them with keyed hashes "
        "when it finishes, so the request is provable without keeping the person",
    ),
    not_linked(
        "suppressions",
        ("subject_id",),
        "a suppressed subject: a keyed hash always, the value itself only for SUPPRESS_ONLY "
        "(nothing was deleted); deletion clears the value",
    ),
    no_personal_data("inventory", "stock per product and location"),
    no_personal_data("inventory_history", "changes of stock per product and location"),
    found_by_profile(
        "stock_requests",
        ("product_id", "location"),
        ("profile_id",),
        "which product a shopper asked to be told about, and when it was answered",
    ),
    no_personal_data(
        "loyalty_programmes", "a workspace's loyalty rules: points, multipliers, tiers, expiry"
    ),
    found_by_profile(
        "loyalty_members",
        ("tier", "balance", "store_id"),
        ("profile_id",),
        "a profile's membership: balance, tier, where it enrolled (unbound for the moments "
        "between enrolment and the worker's batch)",
    ),
    found_by_profile(
        "loyalty_tokens",
        ("token",),
        ("profile_id",),
        "the member's tokens and physical card numbers: identifiers of the person",
    ),
    found_by_profile(
        "loyalty_ledger",
        ("points", "order_id", "reason"),
        ("profile_id",),
        "the member's points: earned per order, redeemed, adjusted, expired, reversed",
    ),
    no_personal_data("qr_codes", "campaign QR codes and the URL each redirects to"),
    no_personal_data(
        "recs_models",
        "trained recommendation model versions: counts and an evaluation over all customers; "
        "the artifact files list profile ids, and serving answers only for live profiles",
    ),
    no_personal_data(
        "recs_settings", "a workspace's recommendation weights, rules and training schedule"
    ),
    no_personal_data(
        "audit_log",
        "who (a token or an operator) did what and when; a pseudonymous profile id at most, "
        "which points at nothing once the profile is erased",
    ),
)

#: Every declaration, by table name.
REGISTRY: Mapping[str, Declaration] = {d.table: d for d in _DECLARATIONS}


def profile_family(workspace_id: str, profile_id: str) -> Select[Any]:
    """``SELECT id FROM profiles``: the profile and every profile merged into it, in the
    workspace. ``profile_id`` should be canonical (merges point absorbed profiles straight at
    the canonical one, so the family of an absorbed id is only itself)."""
    return select(profiles.c.id).where(
        profiles.c.workspace_id == workspace_id,
        or_(profiles.c.id == profile_id, profiles.c.merged_into == profile_id),
    )


def select_rows(table: str, workspace_id: str, profile_id: str) -> Select[Any]:
    """``SELECT *`` of the rows of ``table`` that belong to the profile (or a profile merged
    into it) in the workspace. Raises ``ValueError`` for a table whose rows are not found by
    profile, ``KeyError`` for an undeclared one."""
    target, condition = _rows_of(table, workspace_id, profile_id)
    return select(target).where(condition)


def delete_rows(table: str, workspace_id: str, profile_id: str) -> Delete:
    """``DELETE`` of exactly the rows :func:`select_rows` selects. Run it for ``profiles``
    last: the other tables find the profile's family through it."""
    target, condition = _rows_of(table, workspace_id, profile_id)
    return delete(target).where(condition)


def _rows_of(table: str, workspace_id: str, profile_id: str) -> tuple[Table, Any]:
    declaration = REGISTRY[table]
    if not declaration.found_by_profile:
        raise ValueError(f"rows of {table} are not found by profile: {declaration.note}")
    target = metadata.tables[table]
    family = profile_family(workspace_id, profile_id)
    return target, (target.c.workspace_id == workspace_id) & or_(
        *(target.c[column].in_(family) for column in declaration.profile_columns)
    )
