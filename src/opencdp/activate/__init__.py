"""Activation: what OpenCDP sends back out.

Subscriptions choose events with Segment's filter language (:mod:`.fql`) and shape them with
the Actions mapping directives (:mod:`.mapping`); deliveries wait in an outbox written in the
same transaction as the profile changes that caused them, and a dispatcher sends them to
destination types (webhook, Segment-compatible, SMTP, file drops) with retries and dead letters.
"""
