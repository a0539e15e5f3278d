"""Roles of access tokens and the permissions each one holds.

A token belongs to one workspace and has one role there:

======== ===================================================================================
admin    everything in the workspace: tokens, sources, identity rules, privacy requests, audit
write    definitions, destinations, journeys, tracking plans, contacts — and what read has
read     profiles and configuration
support  profile look-ups and their history only; every read is audited
======== ===================================================================================

An *instance administrator* is an admin of every workspace, and the only one who can create
workspaces. Routes declare the permission they need (``web/access.py``); this module says which
roles hold it.
"""

from __future__ import annotations

from enum import Enum

ROLES = ("admin", "write", "read", "support")


class Permission(Enum):
    """What a route needs."""

    #: look a profile up and read its traits, events, identifiers and links
    READ_PROFILES = "read_profiles"
    #: read configuration: definitions, destinations, journeys, plans, deliveries, quarantine
    READ_CONFIG = "read_config"
    #: change definitions, destinations, journeys, plans; create contacts; replay
    WRITE = "write"
    #: tokens, sources, identity rules, workspace settings, privacy requests, the audit log
    ADMIN = "admin"
    #: create and list workspaces
    INSTANCE = "instance"


_GRANTS: dict[str, frozenset[Permission]] = {
    "support": frozenset({Permission.READ_PROFILES}),
    "read": frozenset({Permission.READ_PROFILES, Permission.READ_CONFIG}),
    "write": frozenset({Permission.READ_PROFILES, Permission.READ_CONFIG, Permission.WRITE}),
    "admin": frozenset(
        {Permission.READ_PROFILES, Permission.READ_CONFIG, Permission.WRITE, Permission.ADMIN}
    ),
}


def allows(role: str, permission: Permission, *, instance_admin: bool = False) -> bool:
    """Whether a token with ``role`` (and the instance-administrator flag) holds ``permission``."""
    if instance_admin:
        return True
    return permission in _GRANTS.get(role, frozenset())


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`; raises ``ValueError`` naming them otherwise."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def audited_reads(role: str) -> bool:
    """Whether every read by this role is written to the audit log (support: yes)."""
    return role == "support"
