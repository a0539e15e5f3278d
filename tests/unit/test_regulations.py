"""The pure core of privacy requests: the types table, request checks, subject normalization,
the keyed hash of a suppressed subject and Segment's overall status."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencdp.privacy.regulations import (
    FAILED,
    FINISHED,
    INITIALIZED,
    MAX_SUBJECT_LENGTH,
    MAX_SUBJECTS,
    RUNNING,
    SUBJECT_TYPES,
    TYPES,
    InvalidRegulation,
    check_request,
    normalize_subject,
    overall_status,
    subject_hash,
)

KEY = b"k" * 32


def body(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "regulationType": "DELETE_ONLY",
        "subjectType": "USER_ID",
        "subjectIds": ["u1"],
    }
    request.update(changes)
    return request


@pytest.mark.parametrize(
    ("name", "suppress", "unsuppress", "delete", "forward"),
    [
        # engage-compat.md §5.1: what each of Segment's types does
        ("SUPPRESS_ONLY", True, False, False, False),
        ("UNSUPPRESS", False, True, False, False),
        ("DELETE_INTERNAL", False, False, True, False),
        ("SUPPRESS_WITH_DELETE_INTERNAL", True, False, True, False),
        ("DELETE_ONLY", False, False, True, True),
        ("SUPPRESS_WITH_DELETE", True, False, True, True),
    ],
)
def test_each_type_suppresses_deletes_and_forwards_as_segment_s_does(
    name: str, suppress: bool, unsuppress: bool, delete: bool, forward: bool
) -> None:
    kind = TYPES[name]
    assert (kind.suppress, kind.unsuppress, kind.delete, kind.forward) == (
        suppress,
        unsuppress,
        delete,
        forward,
    )


def test_the_types_table_has_exactly_the_supported_types() -> None:
    assert set(TYPES) == {
        "SUPPRESS_ONLY",
        "UNSUPPRESS",
        "DELETE_INTERNAL",
        "SUPPRESS_WITH_DELETE_INTERNAL",
        "DELETE_ONLY",
        "SUPPRESS_WITH_DELETE",
    }
    assert set(SUBJECT_TYPES) == {"USER_ID", "EMAIL", "PHONE", "ANONYMOUS_ID", "PROFILE_ID"}


def test_a_good_request_is_checked_normalized_and_de_duplicated() -> None:
    checked = check_request(
        body(
            regulationType="SUPPRESS_WITH_DELETE",
            subjectType="EMAIL",
            subjectIds=["  Ada@Example.COM ", "ada@example.com", "bob@example.com"],
        )
    )
    assert checked.regulation_type is TYPES["SUPPRESS_WITH_DELETE"]
    assert checked.subject_type == "EMAIL"
    assert checked.subjects == ("ada@example.com", "bob@example.com")


@pytest.mark.parametrize(
    ("request_body", "code", "names"),
    [
        ([], "invalid_regulation", "JSON object"),
        ("DELETE_ONLY", "invalid_regulation", "JSON object"),
        (body(extra=1), "invalid_regulation", "'extra'"),
        (body(regulationType="DELETE_EVERYTHING"), "invalid_regulation_type", "regulationType"),
        (body(regulationType=None), "invalid_regulation_type", "regulationType"),
        (body(regulationType="delete_only"), "invalid_regulation_type", "regulationType"),
        (body(regulationType="DELETE_ARCHIVE_ONLY"), "not_supported", "DELETE_ARCHIVE_ONLY"),
        (body(subjectType="OBJECT_ID"), "not_supported", "OBJECT_ID"),
        (body(subjectType="COOKIE"), "invalid_subject_type", "subjectType"),
        (body(subjectType=3), "invalid_subject_type", "subjectType"),
        (body(subjectIds=[]), "invalid_subject_ids", "non-empty list"),
        (body(subjectIds="u1"), "invalid_subject_ids", "non-empty list"),
        (body(subjectIds=None), "invalid_subject_ids", "non-empty list"),
        (body(subjectIds=["u1", ""]), "invalid_subject_ids", "subjectIds[1]"),
        (body(subjectIds=["   "]), "invalid_subject_ids", "subjectIds[0]"),
        (body(subjectIds=["u1", 7]), "invalid_subject_ids", "subjectIds[1]"),
        (body(subjectIds=[None]), "invalid_subject_ids", "subjectIds[0]"),
        (
            body(subjectIds=["x" * (MAX_SUBJECT_LENGTH + 1)]),
            "invalid_subject_ids",
            str(MAX_SUBJECT_LENGTH),
        ),
        (
            body(subjectIds=[f"u{i}" for i in range(MAX_SUBJECTS + 1)]),
            "too_many_subjects",
            str(MAX_SUBJECTS),
        ),
    ],
)
def test_a_bad_request_is_refused_naming_what_to_fix(
    request_body: object, code: str, names: str
) -> None:
    with pytest.raises(InvalidRegulation) as refused:
        check_request(request_body)
    assert refused.value.code == code
    assert names in refused.value.message


def test_the_limits_themselves_are_accepted() -> None:
    ids = [f"u{i}" for i in range(MAX_SUBJECTS)]
    assert len(check_request(body(subjectIds=ids)).subjects) == MAX_SUBJECTS
    longest = "x" * MAX_SUBJECT_LENGTH
    assert check_request(body(subjectIds=[longest])).subjects == (longest,)


@pytest.mark.parametrize(
    ("subject_type", "given_value", "stored"),
    [
        ("EMAIL", " Ada@Example.com", "ada@example.com"),
        ("PHONE", "(415) 555-0100", "+14155550100"),
        ("PHONE", "+44 20 7946 0958", "+442079460958"),
        # not an e-mail or phone: kept as given, trimmed (it names nobody's identifier)
        ("EMAIL", " not-an-email ", "not-an-email"),
        ("PHONE", "12", "12"),
        # other identifiers are case-sensitive, as identity keeps them
        ("USER_ID", " User-1 ", "User-1"),
        ("ANONYMOUS_ID", "Anon", "Anon"),
        ("PROFILE_ID", "p_1", "p_1"),
    ],
)
def test_subjects_are_normalized_the_way_identity_stores_them(
    subject_type: str, given_value: str, stored: str
) -> None:
    assert normalize_subject(subject_type, given_value) == stored


def test_the_hash_of_a_subject_depends_on_its_type_its_value_and_the_key() -> None:
    first = subject_hash(KEY, "USER_ID", "ada")
    assert first == subject_hash(KEY, "USER_ID", "ada")
    assert len(first) == 64 and int(first, 16) >= 0
    assert first != subject_hash(KEY, "ANONYMOUS_ID", "ada")
    assert first != subject_hash(KEY, "USER_ID", "ada2")
    assert first != subject_hash(b"another key", "USER_ID", "ada")
    assert "ada" not in first


@given(
    st.sampled_from(sorted(SUBJECT_TYPES)),
    st.text(min_size=1, max_size=40),
    st.sampled_from(sorted(SUBJECT_TYPES)),
    st.text(min_size=1, max_size=40),
)
def test_distinct_subjects_never_share_a_hash(
    type_a: str, value_a: str, type_b: str, value_b: str
) -> None:
    # The separator between type and value cannot be forged by a value that holds the type's
    # tail: (USER_ID, "x") and (USER_I, "D\0x") stay apart.
    same = (type_a, value_a) == (type_b, value_b)
    assert (subject_hash(KEY, type_a, value_a) == subject_hash(KEY, type_b, value_b)) == same


@pytest.mark.parametrize(
    ("internal_done", "destinations", "status"),
    [
        (False, {}, RUNNING),
        (False, {"d1": FINISHED}, RUNNING),
        (True, {}, FINISHED),
        (True, {"d1": FINISHED, "d2": FINISHED}, FINISHED),
        (True, {"d1": FINISHED, "d2": INITIALIZED}, RUNNING),
        (True, {"d1": RUNNING, "d2": FAILED}, RUNNING),
        # Segment's rule: one failed destination fails the whole regulation
        (True, {"d1": FINISHED, "d2": FAILED}, FAILED),
    ],
)
def test_the_overall_status_follows_segment(
    internal_done: bool, destinations: dict[str, str], status: str
) -> None:
    assert overall_status(internal_done, destinations) == status
