"""OpenCDP: an open-source, Segment-compatible customer data platform.

The curated public API: build a runtime from settings, serve it over HTTP, process its inbox.
"""

from __future__ import annotations

from opencdp.version import __version__

__all__ = ["Runtime", "Settings", "__version__", "build_runtime", "create_app", "load_settings"]


def __getattr__(name: str) -> object:
    # Lazy, so that `import opencdp` stays cheap for the CLI's --help.
    if name in ("Runtime", "build_runtime"):
        from opencdp import runtime

        return getattr(runtime, name)
    if name in ("Settings", "load_settings"):
        from opencdp import settings

        return getattr(settings, name)
    if name == "create_app":
        from opencdp.web.app import create_app

        return create_app
    raise AttributeError(name)
