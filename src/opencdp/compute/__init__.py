"""Compute: the pipeline stage that keeps computed traits and audiences up to date — in batch
over every profile, and in real time for the profiles each micro-batch changed."""
