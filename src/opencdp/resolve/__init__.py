"""Resolve: the worker stage that turns inbox events into identity links, profiles and timelines."""
