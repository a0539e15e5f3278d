"""Historical import: files of customers, orders, products and events into the pipeline.

Pure core: :mod:`.mapping` (the YAML mapping model), :mod:`.convert` (row → Segment message or a
row error), :mod:`.quality` (the data-quality profile). Adapters: :mod:`.readers` (streaming
CSV / JSON Lines / Parquet / text), :mod:`.report` (Rich, JSON, HTML), :mod:`.runner` (read →
convert → ingest → process → checkpoint). See ``docs/import.md``.
"""
