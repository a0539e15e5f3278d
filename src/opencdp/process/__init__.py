"""Process: the worker that turns inbox events into identity links, profiles and timelines."""
