"""Serving recommendations: each process keeps the workspaces' active models (memory-mapped)
and a snapshot of their catalogs and stock for a few seconds, and answers from them — a
profile's top products, a product's similar ones, and the ``recommended_items`` trait."""
