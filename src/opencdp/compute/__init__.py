"""Compute: computed traits and audiences written in Segment's query language — parsed into a
typed AST here, evaluated in batch and in real time."""
