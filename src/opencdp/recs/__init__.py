"""Recommendations: models trained on a workspace's own purchases, cart adds and views, their
offline evaluation against a popularity baseline, and the business rules applied when serving.

Pure: no database and no clock. numpy, scipy and ``implicit`` are imported inside functions
where a module is imported by every process, so that a process that never recommends does not
pay for them at start.
"""
