"""How a journey instance moves (pure, no database): :func:`start`, :func:`on_event` and
:func:`on_timer` over an :class:`Instance` and a clock in microseconds, and the
:class:`Progress` each returns (the sends to enqueue, the steps reached). The contract tests
drive the same moves through the runner and a database; these pin each rule on its own."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencdp.activate.journey import (
    END,
    MAX_PATH_EVENTS,
    MAX_RESTARTS,
    Journey,
    parse_journey,
)
from opencdp.activate.journey_engine import (
    ACTIVE,
    COMPLETED,
    EXITED,
    Instance,
    Progress,
    Send,
    event_name,
    identifier_matches,
    identifier_of,
    on_event,
    on_timer,
    start,
    value_at,
)

S = 1_000_000
MINUTE = 60 * S
HOUR = 60 * MINUTE
DAY = 24 * HOUR
T0 = 1_780_000_000 * S
ENTRY = {"event": 'type = "track"'}


def journey(steps: list[dict[str, Any]], **fields: Any) -> Journey:
    return parse_journey("j", {"entry": fields.pop("entry", ENTRY), "steps": steps, **fields})


def instance(j: Journey, identifier: str = "", at: int = T0) -> Instance:
    lifetime = int(j.lifetime.total_seconds()) * S
    return Instance("ws", j.key, "ji_1", "p1", identifier, "m0", at, at + lifetime)


def nobody(profile_id: str) -> Mapping[str, Any]:
    return {"traits": {}, "audiences": {}}


def track(name: str, seq: int = 1, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "messageId": f"m{seq}",
        "timestamp": f"2026-06-01T00:00:{seq % 60:02d}Z",
        "properties": properties,
    }


def send_step(key: str, **fields: Any) -> dict[str, Any]:
    return {"key": key, "send": {"destination": "mail"}, **fields}


def wait_until(key: str, timeout: str, *branches: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"key": key, "wait_until": {"timeout": timeout, "branches": list(branches), **fields}}


def sent(progress: Progress | None) -> list[str]:
    assert progress is not None
    return [s.step.key for s in progress.sends]


# -- wait and timers -------------------------------------------------------------------------------


def test_start_parks_in_a_wait_and_its_timer_moves_on() -> None:
    j = journey([{"key": "pause", "wait": "1 hour"}, send_step("hello")])
    inst = instance(j)
    progress = start(j, inst, track("Signed Up"), T0, nobody)
    assert progress.reached == ["pause"] and progress.sends == []
    assert (inst.status, inst.step, inst.step_since_us, inst.wake_us) == (
        ACTIVE,
        "pause",
        T0,
        T0 + HOUR,
    )
    progress = on_timer(j, inst, T0 + HOUR, nobody)
    assert progress.reached == ["hello"] and sent(progress) == ["hello"]
    (hello,) = progress.sends
    assert hello.instance is inst and hello.event is None  # a timer caused it
    assert (inst.status, inst.wake_us, inst.ended_us, inst.exit_reason) == (
        COMPLETED,
        None,
        T0 + HOUR,
        None,
    )


def test_a_timer_before_it_is_due_does_nothing() -> None:
    j = journey([{"key": "pause", "wait": "1 hour"}, send_step("hello")])
    inst = instance(j)
    start(j, inst, track("Signed Up"), T0, nobody)
    before = copy.deepcopy(inst)
    progress = on_timer(j, inst, T0 + HOUR - 1, nobody)
    assert progress == Progress() and inst == before


def test_a_finished_instance_ignores_timers_and_events() -> None:
    j = journey([send_step("hello")], exit={"rules": [{"event": "all"}]})
    inst = instance(j)
    assert sent(start(j, inst, track("Signed Up"), T0, nobody)) == ["hello"]
    assert inst.status == COMPLETED and inst.ended_us == T0
    before = copy.deepcopy(inst)
    assert on_timer(j, inst, T0 + DAY, nobody) == Progress()
    assert on_event(j, inst, track("Anything"), T0 + DAY, nobody) is None
    assert inst == before


def test_steps_that_do_not_wait_happen_at_once_and_end_is_reached() -> None:
    j = journey(
        [
            send_step("one"),
            send_step("two", next="stop"),
            send_step("skipped"),
            {"key": "stop", "end": True},
            send_step("after_end"),
        ]
    )
    inst = instance(j)
    progress = start(j, inst, track("Go"), T0, nobody)
    assert progress.reached == ["one", "two", "stop"]
    assert sent(progress) == ["one", "two"]
    assert (inst.status, inst.step, inst.wake_us, inst.ended_us) == (COMPLETED, "stop", None, T0)


def test_a_next_of_end_completes() -> None:
    j = journey([{"key": "pause", "wait": "1 hour", "next": END}, send_step("never")])
    inst = instance(j)
    start(j, inst, track("Go"), T0, nobody)
    progress = on_timer(j, inst, T0 + HOUR, nobody)
    assert progress.reached == [] and inst.status == COMPLETED


def test_after_downtime_a_drip_catches_up_from_the_due_times() -> None:
    # Given three one-day waits, each followed by a mail
    j = journey(
        [
            {"key": "d1", "wait": "1 day"},
            send_step("m1"),
            {"key": "d2", "wait": "1 day"},
            send_step("m2"),
            {"key": "d3", "wait": "1 day"},
            send_step("m3"),
        ]
    )
    inst = instance(j)
    start(j, inst, track("Signed Up"), T0, nobody)
    # When the scheduler next runs two and a half days later
    now = T0 + 2 * DAY + 12 * HOUR
    first = on_timer(j, inst, now, nobody)
    # Then the first wait ended when it was due, and the second counts from then
    assert sent(first) == ["m1"] and first.reached == ["m1", "d2"]
    assert (inst.step, inst.step_since_us, inst.wake_us) == ("d2", T0 + DAY, T0 + 2 * DAY)
    second = on_timer(j, inst, now, nobody)  # still due: it catches up
    assert sent(second) == ["m2"]
    assert (inst.step, inst.wake_us) == ("d3", T0 + 3 * DAY)
    assert on_timer(j, inst, now, nobody) == Progress()  # the third is not due yet
    assert sent(on_timer(j, inst, T0 + 3 * DAY, nobody)) == ["m3"]
    assert (inst.status, inst.ended_us) == (COMPLETED, T0 + 3 * DAY)


# -- expiry ----------------------------------------------------------------------------------------


def test_a_wait_longer_than_the_lifetime_wakes_at_the_expiry_and_expires() -> None:
    j = journey([{"key": "pause", "wait": "7 days"}, send_step("never")], exit={"after": "2 days"})
    inst = instance(j)
    start(j, inst, track("Go"), T0, nobody)
    assert inst.expires_us == T0 + 2 * DAY
    assert inst.wake_us == inst.expires_us  # never later than the expiry
    progress = on_timer(j, inst, T0 + 2 * DAY, nobody)
    assert progress == Progress()
    assert (inst.status, inst.exit_reason, inst.wake_us, inst.ended_us) == (
        EXITED,
        "expired",
        None,
        T0 + 2 * DAY,
    )


def test_a_restart_near_the_expiry_wakes_no_later_than_it() -> None:
    again = {"name": "again", "event": 'event = "Product Added"', "restart": True}
    j = journey([wait_until("hold", "1 hour", again), send_step("never")], exit={"after": "1 day"})
    inst = instance(j)
    start(j, inst, track("Product Added"), T0, nobody)
    assert inst.wake_us == T0 + HOUR
    on_event(j, inst, track("Product Added", 2), T0 + DAY - MINUTE, nobody)
    assert inst.restarts == 1 and inst.wake_us == inst.expires_us == T0 + DAY
    on_timer(j, inst, T0 + DAY, nobody)
    assert (inst.status, inst.exit_reason) == (EXITED, "expired")


def test_a_wait_that_ended_before_the_expiry_moves_on_however_late_its_timer_runs() -> None:
    # Given a day's wait, a mail, another day's wait, a mail, and a lifetime of 36 hours
    j = journey(
        [
            {"key": "d1", "wait": "1 day"},
            send_step("m1"),
            {"key": "d2", "wait": "1 day"},
            send_step("m2"),
        ],
        exit={"after": "36 hours"},
    )
    inst = instance(j)
    start(j, inst, track("Signed Up"), T0, nobody)
    # When the scheduler first looks three days later (downtime), past the expiry
    now = T0 + 3 * DAY
    first = on_timer(j, inst, now, nobody)
    # Then the first wait, due within the lifetime, moves on as if on time
    assert sent(first) == ["m1"] and inst.status == ACTIVE
    assert inst.wake_us == inst.expires_us == T0 + 36 * HOUR  # the second wait is cut short
    # And the second, due only at the expiry, expires: as a punctual scheduler would have had it
    assert on_timer(j, inst, now, nobody) == Progress()
    assert (inst.status, inst.exit_reason, inst.ended_us) == (EXITED, "expired", now)


# -- wait_until ------------------------------------------------------------------------------------

FIRST = {"name": "first", "event": 'event = "A"', "next": "x"}
SECOND = {"name": "second", "event": 'type = "track"', "next": "y"}
BRANCHY = [
    wait_until("hold", "1 hour", FIRST, SECOND),
    send_step("x", next=END),
    send_step("y", next=END),
    send_step("z"),
]


@pytest.mark.parametrize(("name", "goes_to"), [("A", "x"), ("B", "y")])
def test_the_first_matching_branch_wins(name: str, goes_to: str) -> None:
    j = journey(BRANCHY)
    inst = instance(j)
    start(j, inst, track("Go"), T0, nobody)
    event = track(name, 2, n=2)
    progress = on_event(j, inst, event, T0 + MINUTE, nobody)
    assert progress is not None and progress.reached == [goes_to]
    assert sent(progress) == [goes_to] and progress.sends[0].event == event
    assert (inst.status, inst.ended_us) == (COMPLETED, T0 + MINUTE)


def test_an_event_no_branch_takes_changes_nothing() -> None:
    j = journey(BRANCHY)
    inst = instance(j)
    start(j, inst, track("Go"), T0, nobody)
    before = copy.deepcopy(inst)
    identify = {"type": "identify", "traits": {"plan": "pro"}}
    assert on_event(j, inst, identify, T0 + MINUTE, nobody) is None
    assert inst == before  # not even remembered


def test_an_event_during_a_plain_wait_changes_nothing() -> None:
    j = journey([{"key": "pause", "wait": "1 hour"}, send_step("hello")])
    inst = instance(j)
    start(j, inst, track("Go"), T0, nobody)
    before = copy.deepcopy(inst)
    assert on_event(j, inst, track("Product Added", 2), T0 + MINUTE, nobody) is None
    assert inst == before


def test_a_branch_without_next_goes_to_the_following_step() -> None:
    j = journey(
        [
            wait_until("hold", "1 hour", {"name": "b", "event": "all"}),
            send_step("following"),
        ]
    )
    inst = instance(j)
    start(j, inst, track("Go"), T0, nobody)
    assert sent(on_event(j, inst, track("Any", 2), T0 + 1, nobody)) == ["following"]
    assert inst.status == COMPLETED


def test_a_branch_on_the_last_step_without_next_completes() -> None:
    j = journey([wait_until("hold", "1 hour", {"name": "b", "event": "all"})])
    inst = instance(j)
    start(j, inst, track("Go"), T0, nobody)
    progress = on_event(j, inst, track("Any", 2), T0 + 1, nobody)
    assert progress == Progress() and inst.status == COMPLETED


@pytest.mark.parametrize(
    ("fields", "reached"),
    [
        ({"on_timeout": "late"}, ["late"]),  # on_timeout wins over next and the list
        ({}, ["soon", "late"]),  # else the step after it
    ],
)
def test_the_timeout_goes_to_on_timeout_or_the_next_step(
    fields: dict[str, Any], reached: list[str]
) -> None:
    j = journey(
        [
            wait_until("hold", "30 minutes", FIRST | {"next": END}, **fields),
            send_step("soon"),
            send_step("late"),
        ]
    )
    inst = instance(j)
    start(j, inst, track("Go"), T0, nobody)
    assert inst.wake_us == T0 + 30 * MINUTE
    progress = on_timer(j, inst, T0 + 30 * MINUTE, nobody)
    assert progress.reached == reached and sent(progress) == reached
    assert all(s.event is None for s in progress.sends)


def test_without_on_timeout_the_steps_next_is_taken() -> None:
    j = journey(
        [
            wait_until("hold", "30 minutes", FIRST | {"next": END}) | {"next": "late"},
            send_step("soon"),
            send_step("late"),
        ]
    )
    inst = instance(j)
    start(j, inst, track("Go"), T0, nobody)
    assert on_timer(j, inst, T0 + 30 * MINUTE, nobody).reached == ["late"]


def test_a_restart_starts_the_wait_again_and_refreshes_the_context() -> None:
    again = {"name": "again", "event": 'event = "Product Added"', "restart": True}
    j = journey([wait_until("hold", "1 hour", again), send_step("reminder")])
    inst = instance(j)
    start(j, inst, track("Product Added", 1, sku="a"), T0, nobody)
    progress = on_event(j, inst, track("Product Added", 2, sku="b"), T0 + 40 * MINUTE, nobody)
    assert progress == Progress()  # nothing reached, nothing sent
    assert (inst.step, inst.restarts, inst.wake_us) == ("hold", 1, T0 + 100 * MINUTE)
    assert inst.context == {"Product Added": {"sku": "b"}}
    assert [e["properties"] for e in inst.events] == [{"sku": "a"}, {"sku": "b"}]
    # the old timer is no longer due; the new one is
    assert on_timer(j, inst, T0 + HOUR, nobody) == Progress()
    assert sent(on_timer(j, inst, T0 + 100 * MINUTE, nobody)) == ["reminder"]


def test_restarts_stop_at_max_restarts() -> None:
    again = {"name": "again", "event": 'event = "Product Added"', "restart": True}
    j = journey([wait_until("hold", "1 hour", again), send_step("reminder")])
    inst = instance(j)
    start(j, inst, track("Product Added"), T0, nobody)
    now = T0
    for n in range(MAX_RESTARTS):
        now += MINUTE
        assert on_event(j, inst, track("Product Added", n + 2), now, nobody) == Progress()
        assert inst.wake_us == now + HOUR
    assert inst.restarts == MAX_RESTARTS
    # One more changes nothing: the wait runs out as it is (no e-mail while still shopping)
    now += MINUTE
    assert on_event(j, inst, track("Product Added", 999), now, nobody) is None
    assert inst.restarts == MAX_RESTARTS and inst.wake_us == now - MINUTE + HOUR
    assert inst.status == ACTIVE
    assert sent(on_timer(j, inst, now - MINUTE + HOUR, nobody)) == ["reminder"]


# -- identifiers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mine", "value", "matches"),
    [
        ("c1", None, True),  # an event without an identifier: every instance
        ("", "c2", True),  # an instance without one: every event
        ("", None, True),
        ("c1", "c1", True),
        ("c1", "c2", False),
    ],
)
def test_identifier_matches(mine: str, value: str | None, matches: bool) -> None:
    j = journey([{"key": "a", "wait": "1 hour"}])
    assert identifier_matches(instance(j, mine), value) is matches


def test_identifier_of_reads_the_first_trigger_path_with_a_value() -> None:
    j = parse_journey(
        "j",
        {
            "entry": [
                {"event": "all"},
                {"event": "all", "unique_identifier": "properties.cart_id"},
                {"event": "all", "unique_identifier": "properties.order.id"},
            ],
            "steps": [{"key": "a", "end": True}],
        },
    )
    assert identifier_of(j, track("X", cart_id="c1", order={"id": 7})) == "c1"
    assert identifier_of(j, track("X", order={"id": 7})) == "7"
    assert identifier_of(j, track("X", cart_id=None, order={"id": True})) == "true"
    assert identifier_of(j, track("X", cart_id={"nested": 1})) is None
    assert identifier_of(j, track("X")) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [("c", "c"), (5, "5"), (2.5, "2.5"), (False, "false"), (None, None), ([1], None), ({}, None)],
)
def test_value_at_gives_scalars_as_text(value: Any, text: str | None) -> None:
    assert value_at({"properties": {"v": value}}, ("properties", "v")) == text
    assert value_at({"properties": "flat"}, ("properties", "v")) is None


CART = {"event": 'event = "Product Added"', "unique_identifier": "properties.cart_id"}
ORDERED = {"name": "ordered", "event": 'event = "Order Completed"', "match_identifier": True}


@pytest.mark.parametrize(
    ("cart", "moves"),
    [({"cart_id": "c2"}, False), ({"cart_id": "c1"}, True), ({}, True)],
)
def test_a_branch_with_match_identifier_takes_its_own_cart_or_none(
    cart: dict[str, Any], moves: bool
) -> None:
    j = journey(
        [wait_until("hold", "1 hour", ORDERED | {"next": END}), send_step("reminder")],
        entry=CART,
    )
    inst = instance(j, "c1")
    start(j, inst, track("Product Added", cart_id="c1"), T0, nobody)
    progress = on_event(j, inst, track("Order Completed", 2, **cart), T0 + 1, nobody)
    if moves:
        assert progress == Progress() and inst.status == COMPLETED
    else:
        assert progress is None and inst.status == ACTIVE


def test_a_branch_without_match_identifier_takes_any_cart() -> None:
    j = journey(
        [
            wait_until("hold", "1 hour", ORDERED | {"match_identifier": False, "next": END}),
            send_step("reminder"),
        ],
        entry=CART,
    )
    inst = instance(j, "c1")
    start(j, inst, track("Product Added", cart_id="c1"), T0, nobody)
    assert on_event(j, inst, track("Order Completed", 2, cart_id="c2"), T0 + 1, nobody) is not None
    assert inst.status == COMPLETED


# -- exit rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cart", "exits"),
    [({"cart_id": "c2"}, False), ({"cart_id": "c1"}, True), ({}, True)],
)
def test_an_exit_rule_ends_an_instance_mid_wait(cart: dict[str, Any], exits: bool) -> None:
    j = journey(
        [{"key": "pause", "wait": "1 day"}, send_step("never")],
        entry=CART,
        exit={"rules": [ORDERED, {"event": 'event = "Unsubscribed"'}]},
    )
    inst = instance(j, "c1")
    start(j, inst, track("Product Added", cart_id="c1"), T0, nobody)
    progress = on_event(j, inst, track("Order Completed", 2, **cart), T0 + HOUR, nobody)
    if exits:
        assert progress == Progress()
        assert (inst.status, inst.exit_reason, inst.wake_us, inst.ended_us) == (
            EXITED,
            "exit: ordered",
            None,
            T0 + HOUR,
        )
        assert on_timer(j, inst, T0 + DAY, nobody) == Progress()  # its timer is gone
    else:
        assert progress is None and inst.status == ACTIVE and inst.wake_us == T0 + DAY


def test_an_exit_rule_wins_over_a_branch_and_unnamed_rules_are_numbered() -> None:
    j = journey(
        [wait_until("hold", "1 hour", {"name": "b", "event": "all"}), send_step("never")],
        exit={"rules": [{"event": 'event = "Unsubscribed"'}]},
    )
    inst = instance(j)
    start(j, inst, track("Go"), T0, nobody)
    assert on_event(j, inst, track("Unsubscribed", 2), T0 + 1, nobody) == Progress()
    assert (inst.status, inst.exit_reason) == (EXITED, "exit: rule 1")


# -- split -----------------------------------------------------------------------------------------


def split_journey(condition: str, first: dict[str, Any] | None = None) -> Journey:
    steps = [
        {"key": "choose", "split": {"condition": condition, "then": "yes", "else": "no"}},
        send_step("yes", next=END),
        send_step("no"),
    ]
    return journey([first, *steps] if first is not None else steps)


@pytest.mark.parametrize(
    ("condition", "facts", "event", "taken"),
    [
        ("traits.tier = 'gold'", {"traits": {"tier": "gold"}}, track("Go"), "yes"),
        ("traits.tier = 'gold'", {"traits": {"tier": "silver"}}, track("Go"), "no"),
        ("audiences.vip", {"audiences": {"vip": True}}, track("Go"), "yes"),
        ("audiences.vip", {"audiences": {}}, track("Go"), "no"),
        ("journey_context.Go.plan = 'pro'", {}, track("Go", plan="pro"), "yes"),
        ("journey_context.Go.plan = 'pro'", {}, track("Go", plan="free"), "no"),
        ("event.properties.total >= 40", {}, track("Go", total=40), "yes"),
        ("event.properties.total >= 40", {}, track("Go", total=39), "no"),
    ],
)
def test_a_split_reads_traits_audiences_the_context_and_the_event(
    condition: str, facts: dict[str, Any], event: dict[str, Any], taken: str
) -> None:
    j = split_journey(condition)
    asked: list[str] = []

    def profile(profile_id: str) -> Mapping[str, Any]:
        asked.append(profile_id)
        return {"traits": {}, "audiences": {}, **facts}

    inst = instance(j)
    progress = start(j, inst, event, T0, profile)
    assert progress.reached == ["choose", taken] and sent(progress) == [taken]
    assert asked == ["p1"]


def test_a_split_after_a_timer_sees_no_event_but_the_context() -> None:
    j = split_journey(
        "event.type = null and journey_context.Go.plan = 'pro'",
        {"key": "pause", "wait": "1 hour"},
    )
    inst = instance(j)
    start(j, inst, track("Go", plan="pro"), T0, nobody)
    assert sent(on_timer(j, inst, T0 + HOUR, nobody)) == ["yes"]


def test_a_split_after_a_branch_sees_the_branchs_event() -> None:
    j = split_journey(
        "event.event = 'Paid'",
        wait_until("hold", "1 hour", {"name": "paid", "event": "all"}),
    )
    inst = instance(j)
    start(j, inst, track("Go"), T0, nobody)
    assert sent(on_event(j, inst, track("Paid", 2), T0 + 1, nobody)) == ["yes"]


def test_a_split_reads_the_profile_when_it_is_reached() -> None:
    j = split_journey("traits.tier = 'gold'", {"key": "pause", "wait": "1 hour"})
    tier = {"p1": "silver"}

    def profile(profile_id: str) -> Mapping[str, Any]:
        return {"traits": {"tier": tier[profile_id]}, "audiences": {}}

    inst = instance(j)
    start(j, inst, track("Go"), T0, profile)
    tier["p1"] = "gold"
    assert sent(on_timer(j, inst, T0 + HOUR, profile)) == ["yes"]


# -- the context and the path ----------------------------------------------------------------------


def test_the_trigger_is_remembered_by_its_name() -> None:
    j = journey([{"key": "pause", "wait": "1 hour"}])
    inst = instance(j)
    start(j, inst, track("Signed Up", 7, plan="pro"), T0, nobody)
    assert inst.context == {"Signed Up": {"plan": "pro"}}
    assert inst.events == [
        {
            "event": "Signed Up",
            "properties": {"plan": "pro"},
            "timestamp": "2026-06-01T00:00:07Z",
            "messageId": "m7",
        }
    ]


def test_a_start_without_an_event_has_an_empty_context() -> None:
    j = journey([send_step("hello")])
    inst = instance(j)
    (hello,) = start(j, inst, None, T0, nobody).sends
    assert (hello.context, hello.events) == ({}, [])
    assert inst.context == {} and inst.events == []


def test_identify_events_put_their_traits_in_the_context() -> None:
    j = journey([wait_until("hold", "1 hour", {"name": "who", "event": 'type = "identify"'})])
    inst = instance(j)
    start(j, inst, track("Go"), T0, nobody)
    identify = {"type": "identify", "messageId": "i1", "traits": {"email": "a@example.com"}}
    on_event(j, inst, identify, T0 + 1, nobody)
    assert inst.context["identify"] == {"email": "a@example.com"}
    assert inst.events[-1] == {
        "event": "identify",
        "properties": {"email": "a@example.com"},
        "timestamp": None,
        "messageId": "i1",
    }


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ({"type": "track", "event": "Paid"}, "Paid"),
        ({"type": "track", "event": ""}, "track"),
        ({"type": "page", "name": "Home"}, "page"),
        ({"event": 5}, "event"),
        ({}, "event"),
    ],
)
def test_event_name(event: dict[str, Any], name: str) -> None:
    assert event_name(event) == name


def test_a_send_keeps_the_context_as_it_was_when_reached() -> None:
    again = {"name": "again", "event": 'event = "Cart"', "restart": True}
    paid = {"name": "paid", "event": 'event = "Paid"'}
    j = journey(
        [
            send_step("first"),
            wait_until("hold", "1 hour", again, paid),
            send_step("second"),
        ]
    )
    inst = instance(j)
    trigger = track("Cart", 1, items=1)
    (first,) = start(j, inst, trigger, T0, nobody).sends
    on_event(j, inst, track("Cart", 2, items=2), T0 + 1, nobody)  # replaces Cart
    paid = on_event(j, inst, track("Paid", 3, total=9), T0 + 2, nobody)
    assert paid is not None
    (second,) = paid.sends
    # Then the first send still holds the context and path of its moment
    assert first.context == {"Cart": {"items": 1}}
    assert [e["messageId"] for e in first.events] == ["m1"]
    assert first.event == trigger
    assert second.context == {"Cart": {"items": 2}, "Paid": {"total": 9}}
    assert [e["messageId"] for e in second.events] == ["m1", "m2", "m3"]
    assert isinstance(second, Send) and second.event == track("Paid", 3, total=9)


def test_the_path_keeps_the_latest_max_path_events() -> None:
    anything = {"name": "any", "event": 'type = "track"', "restart": True}
    j = journey([wait_until("hold", "1 hour", anything)])
    inst = instance(j)
    start(j, inst, track("E0", 0, n=0), T0, nobody)
    total = MAX_PATH_EVENTS + 10
    for n in range(1, total):
        on_event(j, inst, track(f"E{n % 20}", n, n=n), T0 + n, nobody)
    assert len(inst.events) == MAX_PATH_EVENTS
    assert [e["properties"]["n"] for e in inst.events] == list(range(10, total))
    # the context holds the latest properties of each name
    assert len(inst.context) == 20
    assert inst.context["E0"] == {"n": 40} and inst.context["E19"] == {"n": 59}


# -- the scheduler's view: any clock, any polling --------------------------------------------------

# A linear journey of waits (1 second .. 30 days) and sends; twelve steps at most, so the
# waits always fit in the default lifetime (365 days).
linear_steps = st.lists(
    st.one_of(st.integers(1, 30 * 86_400).map(lambda s: s * S), st.just(0)),
    min_size=1,
    max_size=12,
)
# How far the clock moves each time the scheduler looks: a tick, hours, or a long downtime
clock_moves = st.lists(
    st.one_of(
        st.integers(0, 5 * S),
        st.integers(0, 3 * DAY),
        st.integers(0, 800).map(lambda days: days * DAY + 1),
    ),
    max_size=25,
)


def linear(waits: list[int], lifetime: str | None = None) -> Journey:
    steps = [
        {"key": f"s{i}", "wait": f"{w // S} seconds"} if w else send_step(f"s{i}")
        for i, w in enumerate(waits)
    ]
    return journey(steps, **({"exit": {"after": lifetime}} if lifetime else {}))


def tick(j: Journey, inst: Instance, now: int) -> list[Progress]:
    """What the runner's scheduler does at ``now``: the timer, as long as it is due."""
    progress = []
    for _ in range(len(j.steps) + 1):
        if inst.wake_us is None or inst.wake_us > now:
            break
        assert inst.wake_us <= inst.expires_us
        progress.append(on_timer(j, inst, now, nobody))
    assert inst.wake_us is None or inst.wake_us > now  # nothing due is left behind
    return progress


def drive(j: Journey, inst: Instance, moves: list[int], until: int) -> list[Progress]:
    """Start ``inst`` at T0, move the clock by each of ``moves`` with the scheduler looking
    after each, then once more at ``until`` (if the clock is not past it)."""
    progress = [start(j, inst, track("Go"), T0, nobody)]
    now = T0
    for move in moves:
        now += move
        progress += tick(j, inst, now)
    return progress + tick(j, inst, max(now, until))


@settings(max_examples=100, deadline=None)
@given(waits=linear_steps, moves=clock_moves)
def test_every_send_goes_exactly_once_whatever_the_clock_does(
    waits: list[int], moves: list[int]
) -> None:
    j = linear(waits)
    inst = instance(j)
    total = sum(waits)
    progress = drive(j, inst, moves, until=T0 + total)
    sends = [s.step.key for p in progress for s in p.sends]
    assert sends == [s.key for s in j.steps if s.kind == "send"]
    reached = [k for p in progress for k in p.reached]
    assert reached == [s.key for s in j.steps]  # each step once, in order
    assert sum(len(p.reached) for p in progress) == len(j.steps)
    assert (inst.status, inst.exit_reason) == (COMPLETED, None)
    assert inst.ended_us == T0 + total  # when it was due, however late the timer ran


@settings(max_examples=100, deadline=None)
@given(
    waits=linear_steps,
    moves=clock_moves,
    lifetime_days=st.integers(1, 365),
)
def test_the_outcome_does_not_depend_on_when_the_scheduler_looks(
    waits: list[int], moves: list[int], lifetime_days: int
) -> None:
    # Given a journey that may outlive its lifetime, a scheduler that runs exactly when each
    # timer is due, and one that runs whenever the clock happens to move
    j = linear(waits, f"{lifetime_days} days")
    punctual = instance(j)
    on_time = [start(j, punctual, track("Go"), T0, nobody)]
    while punctual.wake_us is not None:
        on_time.append(on_timer(j, punctual, punctual.wake_us, nobody))
    late = instance(j)
    progress = drive(j, late, moves, until=T0 + 400 * DAY)
    # Then both send the same, reach the same steps and end the same way
    assert [s.step.key for p in progress for s in p.sends] == [
        s.step.key for p in on_time for s in p.sends
    ]
    assert [k for p in progress for k in p.reached] == [k for p in on_time for k in p.reached]
    assert (late.status, late.exit_reason, late.step) == (
        punctual.status,
        punctual.exit_reason,
        punctual.step,
    )
    if late.status == COMPLETED:
        assert late.ended_us == punctual.ended_us
