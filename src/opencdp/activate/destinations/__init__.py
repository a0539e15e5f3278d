"""The registry of destination types: OpenCDP's own by name, others by entry point.

A package adds a type by declaring, in its metadata, an entry point in the group
``opencdp.destinations`` whose value is its :class:`~.base.DestinationType` subclass
(``my_crm = "my_package.crm:Crm"``); nothing in OpenCDP changes.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from opencdp.activate.destinations.base import DestinationType
from opencdp.activate.destinations.file import File
from opencdp.activate.destinations.segment import Segment
from opencdp.activate.destinations.smtp import Smtp
from opencdp.activate.destinations.webhook import Webhook

ENTRY_POINT_GROUP = "opencdp.destinations"

#: OpenCDP's own types
BUILTIN: dict[str, type[DestinationType]] = {t.name: t for t in (Webhook, Segment, Smtp, File)}


def registered() -> dict[str, type[DestinationType]]:
    """Every type by name: OpenCDP's own, then those other packages declare (a built-in
    name cannot be taken over)."""
    types = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in types:
            continue
        loaded = ep.load()
        if isinstance(loaded, type) and issubclass(loaded, DestinationType):
            types[ep.name] = loaded
    return types
