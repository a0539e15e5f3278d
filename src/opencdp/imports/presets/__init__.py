"""Packaged import mappings, usable by name: ``--mapping cdnow``."""
