"""Finding and removing a person's values in text that no column ties to them (import reports
in the database and on disk, unlinked inbox or quarantine rows)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

#: what stands where an erased value was quoted
ERASED = "[erased]"

#: values shorter than this are not searched for (a one-letter id would match half of the
#: inbox)
MIN_SEARCHED_LENGTH = 3


def needles(values: Iterable[str]) -> list[str]:
    """The strings to search for: each value as written and as JSON escapes it."""
    out: set[str] = set()
    for value in values:
        if len(value) < MIN_SEARCHED_LENGTH:
            continue
        out.add(value)
        out.add(orjson.dumps(value).decode()[1:-1])
    return sorted(out)


def redact(text: str, found: Sequence[str]) -> str:
    """``text`` with every occurrence of each of ``found`` (in any letter case) replaced by
    :data:`ERASED`; the longest first, so that a value inside another goes with it."""
    for needle in sorted(found, key=len, reverse=True):
        target = needle.lower()
        start = text.lower().find(target)
        while start >= 0:
            text = text[:start] + ERASED + text[start + len(needle) :]
            start = text.lower().find(target, start + len(ERASED))
    return text
