"""Every exception OpenCDP raises on purpose.

::

    OpenCDPError                      base; ``retryable`` says whether trying again can help
    ├── ConfigurationError            a setting is missing or wrong (permanent)
    ├── StorageError                  the database failed (retryable unless said otherwise)
    │   └── StorageUnavailable        the database cannot be reached (retryable)
    ├── RequestError                  a client sent something we cannot accept (permanent)
    │   ├── AuthenticationError       missing or unknown write key / access token      → 401
    │   ├── PayloadTooLarge           body or event over the configured limit         → 400/413
    │   ├── InvalidPayload            not JSON, not an object, corrupt compression     → 400
    │   ├── Forbidden                 the token may not do this (scope, workspace)      → 403
    │   ├── NotFound                  no such profile, source, token                    → 404
    │   ├── Conflict                  the id is taken (a workspace that exists)         → 409
    │   ├── RateLimited               per-source rate or inbox backlog limit reached    → 429
    │   ├── ConditionError            an FQL condition that does not parse (activate.fql) → 400
    │   └── MappingError              an Actions mapping that does not validate          → 400
    │       └── MappingEvaluationError   one event a mapping cannot shape (dead letter)
    └── IdentityError                 identity resolution could not place an event (permanent)

Unknown exceptions are treated as retryable by the worker (see ``is_retryable``).
"""

from __future__ import annotations


class OpenCDPError(Exception):
    """Base class. ``code`` is a stable snake_case identifier used in HTTP error bodies."""

    code = "internal_error"
    retryable = False
    status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigurationError(OpenCDPError):
    code = "configuration_error"


class StorageError(OpenCDPError):
    code = "storage_error"
    retryable = True
    status = 503


class StorageUnavailable(StorageError):
    code = "storage_unavailable"


class RequestError(OpenCDPError):
    code = "invalid_request"
    status = 400


class AuthenticationError(RequestError):
    code = "invalid_write_key"
    status = 401


class PayloadTooLarge(RequestError):
    code = "payload_too_large"
    status = 400


class InvalidPayload(RequestError):
    code = "invalid_json"
    status = 400


class Forbidden(RequestError):
    code = "forbidden"
    status = 403


class NotFound(RequestError):
    code = "not_found"
    status = 404


class Conflict(RequestError):
    code = "conflict"
    status = 409


class RateLimited(RequestError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after))


class IdentityError(OpenCDPError):
    code = "identity_error"


def is_retryable(exc: BaseException) -> bool:
    """True when trying the same work again may succeed; unknown errors default to retry."""
    if isinstance(exc, OpenCDPError):
        return exc.retryable
    return True


def loggable(exc: BaseException) -> str:
    """An exception as one line fit for a log: its type and the first line of its message.

    Database errors carry the failing row's values on later lines (PostgreSQL's ``DETAIL: Key
    (email)=(…)``) and, unless the engine hides them, the SQL parameters: personal data that
    must not reach a log (erasure could not reach it there). The first line names the problem.
    """
    text = str(exc).strip().splitlines()
    first = text[0][:300] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
