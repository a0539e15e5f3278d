"""Who may call which route: every authenticated route's permission and audit action, in one
table, enforced in one place (:func:`opencdp.web.auth.authenticate`).

A route of ``/api`` or of the Profile API that is missing here answers 500 to every token — a
test walks the app's routes and fails first. Workspaces come from the route's path
(``/v1/spaces/{space}``, ``/api/workspaces/{workspace_id}/…``) or from the token; an instance
administrator picks another one with the ``OpenCDP-Workspace`` header.
"""

from __future__ import annotations

from dataclasses import dataclass

from opencdp.privacy.roles import Permission

R_PROFILES = Permission.READ_PROFILES
R_CONFIG = Permission.READ_CONFIG
WRITE = Permission.WRITE
ADMIN = Permission.ADMIN
INSTANCE = Permission.INSTANCE

#: the header with which an instance administrator names the workspace of a request
WORKSPACE_HEADER = "opencdp-workspace"


@dataclass(frozen=True)
class Rule:
    """A route's permission; ``action`` names it in the audit log; ``writes``: every call is
    audited (a read is audited only for roles whose reads are, such as support)."""

    permission: Permission
    action: str
    writes: bool = False


def _read(permission: Permission, action: str) -> Rule:
    return Rule(permission, action)


def _write(permission: Permission, action: str) -> Rule:
    return Rule(permission, action, writes=True)


_PROFILE = "/v1/spaces/{space}/collections/{collection}/profiles/{external_id}"

RULES: dict[tuple[str, str], Rule] = {
    # The Profile API
    **{
        ("GET", f"{_PROFILE}/{resource}"): _read(R_PROFILES, f"profile.read.{resource}")
        for resource in ("traits", "external_ids", "events", "metadata", "links")
    },
    # Contacts, profiles, identity
    ("POST", "/api/contacts"): _write(WRITE, "contact.upsert"),
    ("GET", "/api/profiles/{profile_id}/identity"): _read(R_PROFILES, "profile.read.identity"),
    ("GET", "/api/profiles/{profile_id}/consent"): _read(R_PROFILES, "consent.get"),
    ("PUT", "/api/profiles/{profile_id}/consent"): _write(WRITE, "consent.put"),
    ("GET", "/api/workspaces/{workspace_id}/identity-rules"): _read(R_CONFIG, "identity_rules.get"),
    ("PUT", "/api/workspaces/{workspace_id}/identity-rules"): _write(ADMIN, "identity_rules.put"),
    # Governance
    ("GET", "/api/tracking-plans"): _read(R_CONFIG, "tracking_plan.list"),
    ("GET", "/api/tracking-plans/{plan_id}"): _read(R_CONFIG, "tracking_plan.get"),
    ("PUT", "/api/tracking-plans/{plan_id}"): _write(WRITE, "tracking_plan.put"),
    ("DELETE", "/api/tracking-plans/{plan_id}"): _write(WRITE, "tracking_plan.delete"),
    ("POST", "/api/tracking-plans/{plan_id}/dry-run"): _read(R_CONFIG, "tracking_plan.dry_run"),
    ("GET", "/api/sources/{source}/schema-settings"): _read(R_CONFIG, "schema_settings.get"),
    ("PUT", "/api/sources/{source}/schema-settings"): _write(WRITE, "schema_settings.put"),
    ("GET", "/api/workspaces/{workspace_id}/schema-settings"): _read(
        R_CONFIG, "schema_settings.get"
    ),
    ("PUT", "/api/workspaces/{workspace_id}/schema-settings"): _write(WRITE, "schema_settings.put"),
    ("GET", "/api/quarantine"): _read(R_CONFIG, "quarantine.list"),
    ("GET", "/api/quarantine/stats"): _read(R_CONFIG, "quarantine.stats"),
    ("GET", "/api/quarantine/{row_id}"): _read(R_CONFIG, "quarantine.get"),
    ("POST", "/api/quarantine/replay"): _write(WRITE, "quarantine.replay"),
    ("POST", "/api/quarantine/dismiss"): _write(WRITE, "quarantine.dismiss"),
    # Compute
    **{
        rule_key: rule
        for kind, name in (("computed-traits", "computed_trait"), ("audiences", "audience"))
        for rule_key, rule in (
            (("GET", f"/api/{kind}"), _read(R_CONFIG, f"{name}.list")),
            (("GET", f"/api/{kind}/{{key}}"), _read(R_CONFIG, f"{name}.get")),
            (("PUT", f"/api/{kind}/{{key}}"), _write(WRITE, f"{name}.put")),
            (("DELETE", f"/api/{kind}/{{key}}"), _write(WRITE, f"{name}.delete")),
        )
    },
    ("POST", "/api/audiences/preview"): _read(R_CONFIG, "audience.preview"),
    ("POST", "/api/audiences/{key}/recompute"): _write(WRITE, "audience.recompute"),
    ("GET", "/api/audiences/{key}/members"): _read(R_CONFIG, "audience.members"),
    ("GET", "/api/clv/model"): _read(R_CONFIG, "clv.model"),
    ("POST", "/api/clv/fit"): _write(WRITE, "clv.fit"),
    ("POST", "/api/clv/score"): _write(WRITE, "clv.score"),
    # Activation
    ("GET", "/api/destinations"): _read(R_CONFIG, "destination.list"),
    ("GET", "/api/destinations/{destination_id}"): _read(R_CONFIG, "destination.get"),
    ("PUT", "/api/destinations/{destination_id}"): _write(WRITE, "destination.put"),
    ("DELETE", "/api/destinations/{destination_id}"): _write(WRITE, "destination.delete"),
    ("POST", "/api/destinations/{destination_id}/test"): _write(WRITE, "destination.test"),
    ("GET", "/api/deliveries"): _read(R_CONFIG, "delivery.list"),
    ("GET", "/api/deliveries/{delivery_id}"): _read(R_CONFIG, "delivery.get"),
    ("POST", "/api/deliveries/replay"): _write(WRITE, "delivery.replay"),
    # Loyalty
    ("GET", "/api/loyalty/programme"): _read(R_CONFIG, "loyalty.programme.get"),
    ("PUT", "/api/loyalty/programme"): _write(ADMIN, "loyalty.programme.put"),
    ("POST", "/api/loyalty/members"): _write(WRITE, "loyalty.member.enrol"),
    ("GET", "/api/loyalty/members/{member_id}"): _read(R_PROFILES, "loyalty.member.get"),
    ("GET", "/api/loyalty/members/{member_id}/card.svg"): _read(R_PROFILES, "loyalty.card"),
    ("GET", "/api/loyalty/members/{member_id}/card.png"): _read(R_PROFILES, "loyalty.card"),
    ("POST", "/api/loyalty/members/{member_id}/rotate-token"): _write(
        WRITE, "loyalty.token.rotate"
    ),
    ("POST", "/api/loyalty/members/{member_id}/cards"): _write(WRITE, "loyalty.card.add"),
    ("DELETE", "/api/loyalty/members/{member_id}/cards/{card_number}"): _write(
        WRITE, "loyalty.card.revoke"
    ),
    ("POST", "/api/loyalty/members/{member_id}/redemptions"): _write(WRITE, "loyalty.redeem"),
    ("POST", "/api/loyalty/members/{member_id}/adjustments"): _write(ADMIN, "loyalty.adjust"),
    ("GET", "/api/loyalty/members/{member_id}/ledger"): _read(R_PROFILES, "loyalty.ledger"),
    ("GET", "/api/loyalty/tokens/{token}"): _read(R_PROFILES, "loyalty.token.lookup"),
    # Campaign QR codes (a scan, GET /q/{code}, is public: it is outside /api)
    ("GET", "/api/qr"): _read(R_CONFIG, "qr.list"),
    ("POST", "/api/qr"): _write(ADMIN, "qr.add"),
    ("GET", "/api/qr/{code}.svg"): _read(R_CONFIG, "qr.image"),
    ("GET", "/api/qr/{code}.png"): _read(R_CONFIG, "qr.image"),
    # The catalog: the shop, the app and customer service read it; the shop's systems write
    ("PUT", "/api/products/{product_id}"): _write(WRITE, "product.put"),
    ("POST", "/api/products:batch"): _write(WRITE, "product.batch"),
    ("GET", "/api/products/{product_id}"): _read(R_PROFILES, "product.get"),
    ("GET", "/api/products"): _read(R_PROFILES, "product.list"),
    ("PUT", "/api/inventory/{product_id}"): _write(WRITE, "inventory.put"),
    ("POST", "/api/inventory:batch"): _write(WRITE, "inventory.batch"),
    ("GET", "/api/inventory/{product_id}/history"): _read(R_PROFILES, "inventory.history"),
    # Recommendations: the shop and the app read them; training and settings are configuration
    ("GET", "/api/profiles/{profile_id}/recommendations"): _read(R_PROFILES, "recs.profile"),
    ("GET", "/api/products/{product_id}/similar"): _read(R_PROFILES, "recs.similar"),
    ("POST", "/api/recs/train"): _write(WRITE, "recs.train"),
    ("GET", "/api/recs/models"): _read(R_CONFIG, "recs.models"),
    ("POST", "/api/recs/rollback"): _write(ADMIN, "recs.rollback"),
    ("GET", "/api/recs/settings"): _read(R_CONFIG, "recs.settings.get"),
    ("PUT", "/api/recs/settings"): _write(ADMIN, "recs.settings.put"),
    ("GET", "/api/journeys"): _read(R_CONFIG, "journey.list"),
    ("GET", "/api/journeys/{key}"): _read(R_CONFIG, "journey.get"),
    ("PUT", "/api/journeys/{key}"): _write(WRITE, "journey.put"),
    ("DELETE", "/api/journeys/{key}"): _write(WRITE, "journey.delete"),
    ("POST", "/api/journeys/{key}/pause"): _write(WRITE, "journey.pause"),
    ("POST", "/api/journeys/{key}/resume"): _write(WRITE, "journey.resume"),
    ("GET", "/api/journeys/{key}/instances"): _read(R_CONFIG, "journey.instances"),
    # Workspaces, sources and tokens
    ("POST", "/api/workspaces"): _write(INSTANCE, "workspace.add"),
    ("GET", "/api/workspaces"): _read(R_CONFIG, "workspace.list"),
    ("GET", "/api/workspaces/{workspace_id}"): _read(R_CONFIG, "workspace.get"),
    ("PUT", "/api/workspaces/{workspace_id}/settings"): _write(ADMIN, "workspace.settings"),
    ("GET", "/api/sources"): _read(R_CONFIG, "source.list"),
    ("POST", "/api/sources"): _write(ADMIN, "source.add"),
    ("GET", "/api/tokens"): _read(ADMIN, "token.list"),
    ("POST", "/api/tokens"): _write(ADMIN, "token.add"),
    ("POST", "/api/tokens/{token_id}/rotate"): _write(ADMIN, "token.rotate"),
    ("DELETE", "/api/tokens/{token_id}"): _write(ADMIN, "token.revoke"),
    # Privacy requests (Segment's regulations) and suppressions
    ("POST", "/api/regulations"): _write(ADMIN, "regulation.create"),
    ("GET", "/api/regulations"): _read(ADMIN, "regulation.list"),
    ("GET", "/api/regulations/{regulation_id}"): _read(ADMIN, "regulation.get"),
    ("GET", "/api/suppressions"): _read(ADMIN, "suppression.list"),
    # a data-subject export is always audited, whoever asks
    ("GET", "/api/profiles/{profile_id}/export"): Rule(ADMIN, "profile.export", writes=True),
    ("POST", "/api/profiles/{profile_id}/self-service-link"): _write(WRITE, "self_service.link"),
    # The audit log
    ("GET", "/api/audit"): _read(ADMIN, "audit.read"),
}


def rule_for(method: str, path_format: str) -> Rule | None:
    """The rule of a route (HEAD is GET), or None when the route has none."""
    return RULES.get(("GET" if method == "HEAD" else method, path_format))
