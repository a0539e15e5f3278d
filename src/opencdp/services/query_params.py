"""Whole numbers read from a query string or a JSON body (``?limit=``, ``?before=``), checked
the same way by every read API: digits only, within bounds, or a 4xx that says what to send."""

from __future__ import annotations

from typing import Any

from opencdp.errors import RequestError


def whole_number(
    value: Any,
    name: str,
    *,
    default: int,
    high: int,
    low: int = 1,
    code: str = "invalid_request",
) -> int:
    """``value`` as an int from ``low`` to ``high``; ``default`` when absent or empty.

    Accepts an int or its decimal digits (``"12"``, ``" 12 "``). Refuses with
    :class:`~opencdp.errors.RequestError` (``code``) a fraction (``"2.5"``), a sign
    (``"+3"``), a boolean, anything else, and a number out of bounds.
    """
    if value is None or value == "":
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not low <= number <= high:
        raise RequestError(
            f"{name}: expected a whole number from {low} to {high}, not {value!r}", code=code
        )
    return number
