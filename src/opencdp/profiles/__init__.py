"""Profiles: traits resolved last-write-wins by event time, with provenance (pure core)."""
