"""Retail in the pipeline: the loyalty book, ledger and timers, back-in-stock notifications,
and the events OpenCDP derives from them (the pure rules are in :mod:`opencdp.loyalty` and
:mod:`opencdp.catalog`)."""
