"""Which inbox partition an event belongs to.

Workers on PostgreSQL split the inbox by partition (worker ``slot`` of ``slots`` takes the
partitions ``p`` with ``p % slots == slot``), and each partition is processed in arrival order
by one worker. An event's partition is a hash of its first identifier: the ``anonymousId``
(which stays the same on a device before and after a login), else the ``userId``, else the
message id. Events of one person can still land in different partitions (two devices, a
server-side call with the userId only); the workers stay correct when they do.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, Final

#: Partitions of the inbox; the most worker slots that can each have partitions of their own.
PARTITIONS: Final = 64


def partition_of(message: Mapping[str, Any]) -> int:
    """The partition (0..PARTITIONS-1) of a normalized message; the same in every process."""
    for key in ("anonymousId", "userId", "messageId"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return zlib.crc32(value.encode("utf-8")) % PARTITIONS
    return 0


def slot_partitions(slot: int, slots: int) -> list[int]:
    """The partitions worker ``slot`` (0-based) of ``slots`` processes."""
    if not 0 <= slot < slots:
        raise ValueError(f"slot must be between 0 and {slots - 1}, not {slot}")
    return [p for p in range(PARTITIONS) if p % slots == slot]
