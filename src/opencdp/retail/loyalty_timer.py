"""Time moves loyalty too: earned points expire, points come within 30 days of expiring, and
points older than the qualification period stop counting towards a tier. The worker's timer
tick (:meth:`LoyaltyTimer.tick`) finds, per workspace with a programme, the members whose
entries crossed one of those lines since the last tick (a watermark kept with the programme,
so a restart or a long stop misses nothing) and brings them up to date through the book.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from opencdp.errors import loggable
from opencdp.loyalty.programme import ProgrammeError, parse_programme
from opencdp.retail.loyalty_book import EXPIRING_HORIZON
from opencdp.timeutil import to_us

if TYPE_CHECKING:
    from opencdp.retail.loyalty_book import LoyaltyBook
    from opencdp.storage.db import Database

log = logging.getLogger(__name__)

#: how often the timer looks (time-driven changes are day-grained; a minute is plenty)
EVERY_SECONDS = 60.0


class LoyaltyTimer:
    def __init__(self, db: Database, book: LoyaltyBook, every: float = EVERY_SECONDS) -> None:
        self.db = db
        self.book = book
        self.every = every
        self._last = -1e18

    def tick(self, *, force: bool = False) -> int:
        """Bring time-driven changes up to date (at most every ``every`` seconds unless
        ``force``); returns how many members were refreshed."""
        clock = self.book.clock
        if not force and clock.monotonic() - self._last < self.every:
            return 0
        self._last = clock.monotonic()
        now_us = to_us(clock.now())
        done = 0
        for ws, document, checked_us in self.book.store.programmes_to_check():
            if checked_us >= now_us:
                continue
            try:
                programme = parse_programme(document)
            except ProgrammeError as exc:
                log.error("loyalty programme of %s: %s", ws, loggable(exc))
                continue
            windows = [
                int(EXPIRING_HORIZON.total_seconds() * 1_000_000),
                int(programme.qualification_period.total_seconds() * 1_000_000),
            ]
            with self.db.write() as conn:
                members = self.book.store.members_touched_by_time(
                    conn, ws, checked_us, now_us, windows
                )
                if members:
                    self.book.expire_due(conn, ws, members)
                self.book.store.set_time_checked(conn, ws, now_us)
            done += len(members)
        return done
