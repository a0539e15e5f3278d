"""Segment's audience messages built from a membership change (pure)."""

from __future__ import annotations

from typing import Any

from opencdp.activate.audience_sync import audience_messages, membership_of


def build(identifiers: list[tuple[str, str]], **kw: Any) -> list[tuple[str, dict[str, Any]]]:
    args: dict[str, Any] = {
        "workspace_id": "ws",
        "destination_id": "crm",
        "key": "vip",
        "entered": True,
        "profile_id": "use_1",
        "identifiers": identifiers,
        "message_id": "aud-1",
        "timestamp": "2026-12-04T12:00:00.000Z",
    }
    return audience_messages(**{**args, **kw})


def test_the_profile_is_named_by_user_id_then_anonymous_id_then_its_id() -> None:
    both = build([("anonymous_id", "a1"), ("user_id", "u2"), ("user_id", "u1")])
    assert {m["userId"] for _id, m in both} == {"u1"} and all(
        "anonymousId" not in m for _i, m in both
    )
    anonymous = build([("anonymous_id", "a1"), ("email", "x@y.z")])
    assert {m["anonymousId"] for _id, m in anonymous} == {"a1"}
    assert {m["anonymousId"] for _id, m in build([])} == {"use_1"}


def test_an_exit_is_false_and_each_kind_can_be_left_out() -> None:
    [(mid, identify)] = build([("user_id", "u1")], entered=False, track=False)
    assert mid == "aud-1:identify" and identify["traits"] == {"vip": False}
    [(mid, track)] = build([("user_id", "u1")], entered=False, identify=False)
    assert mid == "aud-1:track" and track["event"] == "Audience Exited"
    assert track["properties"] == {"audience_key": "vip", "vip": False}
    assert "traits" not in track["context"]  # no e-mail known


def test_membership_events_are_recognised_and_nothing_else() -> None:
    entered = {"type": "track", "event": "Audience Entered", "properties": {"audience_key": "vip"}}
    assert membership_of(entered) == ("vip", True)
    assert membership_of({**entered, "event": "Audience Exited"}) == ("vip", False)
    assert membership_of({**entered, "type": "identify"}) is None
    assert membership_of({"type": "track", "event": "Audience Entered", "properties": {}}) is None
    assert membership_of({"type": "track", "event": "Order Completed"}) is None


def test_per_identifier_sends_once_per_email_address_under_ids_of_their_own() -> None:
    ids = [("user_id", "u1"), ("email", "b@x.co"), ("email", "a@x.co")]
    # Without it: one identify and one track, with the first address
    plain = build(ids)
    assert [m["traits"]["email"] for _i, m in plain if m["type"] == "identify"] == ["a@x.co"]
    # With it: each address gets both messages, each under its own stable id
    each = build(ids, per_identifier=True)
    assert len(each) == 4
    assert sorted(m["traits"]["email"] for _i, m in each if m["type"] == "identify") == [
        "a@x.co",
        "b@x.co",
    ]
    assert sorted(m["context"]["traits"]["email"] for _i, m in each if m["type"] == "track") == [
        "a@x.co",
        "b@x.co",
    ]
    assert len({mid for mid, _m in each}) == 4 and all(m["userId"] == "u1" for _i, m in each)
    assert [mid for mid, _m in build(ids, per_identifier=True)] == [mid for mid, _m in each]
    # One address: the same messages as without
    assert build([("email", "a@x.co")], per_identifier=True) == build([("email", "a@x.co")])
