"""Privacy requests in the shape of Segment's regulations (engage-compat.md §5): their types,
subjects and statuses, what each type does, and the checks of a request.

=============================== ========= ========= ==================== ====================
type                            suppress  delete    forward to           notes
                                                    destinations
=============================== ========= ========= ==================== ====================
``SUPPRESS_ONLY``               yes       no        no
``UNSUPPRESS``                  lifts     no        no
``DELETE_INTERNAL``             no        yes       no
``SUPPRESS_WITH_DELETE_INTERNAL`` yes     yes       no
``DELETE_ONLY``                 no        yes       yes
``SUPPRESS_WITH_DELETE``        yes       yes       yes
``DELETE_ARCHIVE_ONLY``         refused: OpenCDP keeps no archive apart from its stores
=============================== ========= ========= ==================== ====================

Subjects are ``USER_ID`` (Segment's), plus ``EMAIL``, ``PHONE``, ``ANONYMOUS_ID`` and
``PROFILE_ID``; ``OBJECT_ID`` (cloud-source objects) is refused. A suppression is kept as a
keyed hash of the subject type and its normalized value (:func:`subject_hash`), so that a
suppressed and deleted person leaves no identifier behind.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from opencdp.identity.identifiers import normalize_email, normalize_phone


@dataclass(frozen=True)
class RegulationType:
    name: str
    suppress: bool = False
    unsuppress: bool = False
    delete: bool = False
    forward: bool = False


TYPES: dict[str, RegulationType] = {
    t.name: t
    for t in (
        RegulationType("SUPPRESS_ONLY", suppress=True),
        RegulationType("UNSUPPRESS", unsuppress=True),
        RegulationType("DELETE_INTERNAL", delete=True),
        RegulationType("SUPPRESS_WITH_DELETE_INTERNAL", suppress=True, delete=True),
        RegulationType("DELETE_ONLY", delete=True, forward=True),
        RegulationType("SUPPRESS_WITH_DELETE", suppress=True, delete=True, forward=True),
    )
}
#: Segment's types that OpenCDP refuses, with the reason
NOT_SUPPORTED_TYPES = {
    "DELETE_ARCHIVE_ONLY": "OpenCDP keeps no archive apart from its stores; use DELETE_ONLY",
}

#: subject type -> the identifier type it names (None: a profile id)
SUBJECT_TYPES: dict[str, str | None] = {
    "USER_ID": "user_id",
    "EMAIL": "email",
    "PHONE": "phone",
    "ANONYMOUS_ID": "anonymous_id",
    "PROFILE_ID": None,
}
NOT_SUPPORTED_SUBJECTS = {
    "OBJECT_ID": "cloud-source objects are not kept by OpenCDP; name a person instead",
}

# Statuses (overall, per destination): Segment's names.
INITIALIZED = "INITIALIZED"
RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"
PARTIAL_SUCCESS = "PARTIAL_SUCCESS"
INVALID = "INVALID"
NOT_SUPPORTED = "NOT_SUPPORTED"
STATUSES = (INITIALIZED, INVALID, NOT_SUPPORTED, RUNNING, PARTIAL_SUCCESS, FAILED, FINISHED)
UNFINISHED = (INITIALIZED, RUNNING)

#: at most this many subjects in one request (Segment's limit)
MAX_SUBJECTS = 5000
MAX_SUBJECT_LENGTH = 500


class InvalidRegulation(ValueError):
    """A request that cannot be accepted; ``code`` says which part is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RegulationRequest:
    """A checked request: its type, subject type and normalized, de-duplicated subjects."""

    regulation_type: RegulationType
    subject_type: str
    subjects: tuple[str, ...]


def check_request(body: object) -> RegulationRequest:
    """The request in ``body`` (``{"regulationType", "subjectType", "subjectIds"}``), checked
    and normalized; raises :class:`InvalidRegulation` naming the field and what it accepts."""
    if not isinstance(body, dict):
        raise InvalidRegulation("invalid_regulation", "send a JSON object")
    unknown = sorted(set(body) - {"regulationType", "subjectType", "subjectIds"})
    if unknown:
        raise InvalidRegulation(
            "invalid_regulation",
            f"unknown field {unknown[0]!r}; send regulationType, subjectType and subjectIds",
        )
    kind = body.get("regulationType")
    if not isinstance(kind, str):
        kind = repr(kind)
    if kind in NOT_SUPPORTED_TYPES:
        raise InvalidRegulation("not_supported", f"{kind}: {NOT_SUPPORTED_TYPES[kind]}")
    if kind not in TYPES:
        raise InvalidRegulation(
            "invalid_regulation_type",
            f"regulationType must be one of {', '.join(TYPES)}, not {kind!r}",
        )
    subject_type = body.get("subjectType")
    if not isinstance(subject_type, str):
        subject_type = repr(subject_type)
    if subject_type in NOT_SUPPORTED_SUBJECTS:
        raise InvalidRegulation(
            "not_supported", f"{subject_type}: {NOT_SUPPORTED_SUBJECTS[subject_type]}"
        )
    if subject_type not in SUBJECT_TYPES:
        raise InvalidRegulation(
            "invalid_subject_type",
            f"subjectType must be one of {', '.join(SUBJECT_TYPES)}, not {subject_type!r}",
        )
    ids = body.get("subjectIds")
    if not isinstance(ids, list) or not ids:
        raise InvalidRegulation("invalid_subject_ids", "subjectIds must be a non-empty list")
    if len(ids) > MAX_SUBJECTS:
        raise InvalidRegulation(
            "too_many_subjects", f"at most {MAX_SUBJECTS} subjectIds per request, got {len(ids)}"
        )
    subjects: list[str] = []
    for i, value in enumerate(ids):
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_SUBJECT_LENGTH:
            raise InvalidRegulation(
                "invalid_subject_ids",
                f"subjectIds[{i}] must be a non-empty string of at most "
                f"{MAX_SUBJECT_LENGTH} characters",
            )
        subjects.append(normalize_subject(subject_type, value))
    return RegulationRequest(TYPES[kind], subject_type, tuple(dict.fromkeys(subjects)))


def normalize_subject(subject_type: str, value: str, phone_region: str = "US") -> str:
    """The subject as identity resolution stores it (e-mails lower-cased, phones E.164); a
    value that is no valid e-mail or phone is kept as given (trimmed): it names nobody's
    identifier, but is still suppressed and searched for in unlinked rows."""
    value = value.strip()
    if subject_type == "EMAIL":
        return normalize_email(value) or value
    if subject_type == "PHONE":
        return normalize_phone(value, phone_region) or value
    return value


def subject_hash(key: bytes, subject_type: str, value: str) -> str:
    """The stored form of a suppressed subject: HMAC-SHA256 under a key derived from the
    server's key (:func:`suppression_key`), over the type and the normalized value."""
    return hash_with(suppression_key(key), subject_type, value)


def suppression_key(key: bytes) -> bytes:
    """The key suppressions are hashed under, derived from the server's key (so that a hash
    of a subject is no hash of a token or a write key)."""
    return hmac.new(key, b"opencdp-suppression", hashlib.sha256).digest()


def hash_with(derived: bytes, subject_type: str, value: str) -> str:
    """:func:`subject_hash` with the key already derived (the collector's hot path)."""
    return hmac.digest(derived, f"{subject_type}\x00{value}".encode(), "sha256").hex()


def overall_status(internal_done: bool, destinations: dict[str, str]) -> str:
    """Segment's overall status: FAILED when any destination failed (even if the internal
    deletion succeeded — the per-store report shows it did), RUNNING while anything is
    pending, else FINISHED."""
    if not internal_done or any(s in UNFINISHED for s in destinations.values()):
        return RUNNING
    if any(s == FAILED for s in destinations.values()):
        return FAILED
    return FINISHED
