"""Collect: the Segment-compatible Tracking API's pure request handling, and the ingest service."""
