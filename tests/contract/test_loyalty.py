"""The loyalty ledger on both backends: enrolment binds a member to its profile, orders earn
exactly once per order id (online or at the till), refunds reverse, redemptions never overdraw
(also when two race), balances equal the ledger's sums, the traits and events reach the
profile, two cards or two e-mails joined by one purchase become one member with one ledger, a
lost card is revoked and a new one earns for the same member, and time expires points and
moves tiers."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from opencdp.clock import FrozenClock
from opencdp.errors import Conflict, NotFound, RequestError
from opencdp.runtime import Runtime
from opencdp.services import loyalty
from opencdp.storage.admin import DEFAULT_WORKSPACE as WS
from opencdp.storage.products import ProductStore

PROGRAMME = {
    "name": "Glow Rewards",
    "currency": "EUR",
    "points_per_unit": 1,
    "multipliers": {"categories": {"Skincare": 2}, "products": {"LIP-1": 3}},
    "bonuses": {"first_order": 50},
    "tiers": [
        {"name": "Member", "threshold": 0},
        {"name": "Silver", "threshold": 200},
        {"name": "Gold", "threshold": 1000},
    ],
    "qualification_period": "365 days",
    "expiry": "365 days",
}


def ingest(rt: Runtime, *messages: dict[str, Any]) -> None:
    source = rt.admin.list_sources(WS)[0]
    result = rt.collector.ingest_messages(source, list(messages))
    assert result.quarantined == 0, result.errors
    rt.processor.run_until_idle()


def card(number: str) -> dict[str, Any]:
    """A till's identifiers: its own anonymous id and the scanned card."""
    return {
        "anonymousId": f"till-{number}",
        "context": {
            "externalIds": [
                {"id": number, "type": "loyalty_card", "collection": "users", "encoding": "none"}
            ]
        },
    }


def order(user: dict[str, Any], order_id: str, total: float, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        **user,
        "messageId": f"msg-{order_id}-{extra.pop('n', 1)}",
        "properties": {"order_id": order_id, "total": total, "currency": "EUR", **extra},
    }


def traits_of(rt: Runtime, profile_id: str) -> dict[str, Any]:
    return rt.profiles.trait_values(
        WS, [profile_id], ["points_balance", "loyalty_tier", "points_expiring_30d"]
    ).get(profile_id, {})


def events_of(rt: Runtime, profile_id: str) -> list[str]:
    return [e.event for e in rt.profiles.events(WS, profile_id, limit=500)]


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    loyalty.apply_programme(runtime, WS, PROGRAMME)
    return runtime


def enrolled(rt: Runtime, **body: Any) -> dict[str, Any]:
    created, member = loyalty.enrol(rt, WS, body, actor="test")
    assert created
    rt.processor.run_until_idle()
    return loyalty.member_view(rt, WS, member["id"])


def test_an_enrolled_member_earns_once_per_order_and_a_refund_reverses(rt: Runtime) -> None:
    # Given a member enrolled online
    member = enrolled(rt, user_id="ann", email="ann@example.com", traits={"first_name": "Ann"})
    assert member["profile_id"] is not None and member["token"]
    ann = {"userId": "ann"}
    # When she orders twice, the second order sent twice (a retry with a new message id)
    ingest(rt, order(ann, "o-1", 100.0))
    ingest(rt, order(ann, "o-2", 30.0), order(ann, "o-2", 30.0, n=2))
    view = loyalty.member_view(rt, WS, member["id"])
    # Then: 100 + 50 first-order bonus, then 30: each order once
    assert view["balance"] == 180
    entries = loyalty.ledger_of(rt, WS, member["id"])["data"]
    assert sorted((e["kind"], e["points"], e["order_id"]) for e in entries) == [
        ("earn", 30, "o-2"),
        ("earn", 150, "o-1"),
    ]
    # and the traits and events are on her profile
    pid = member["profile_id"]
    assert traits_of(rt, pid)["points_balance"] == 180
    assert traits_of(rt, pid)["loyalty_tier"] == "Member"
    assert events_of(rt, pid).count("Points Earned") == 2
    # When the first order is refunded (twice)
    refund = {"type": "track", "event": "Order Refunded", **ann, "properties": {"order_id": "o-1"}}
    ingest(rt, {**refund, "messageId": "r-1"}, {**refund, "messageId": "r-2"})
    # Then its points, bonus included, are taken back once
    assert loyalty.member_view(rt, WS, member["id"])["balance"] == 30
    assert traits_of(rt, pid)["points_balance"] == 30
    assert "Points Reversed" in events_of(rt, pid)
    assert rt.loyalty.ledger_sums(WS) == {member["id"]: 30}


def test_line_items_are_weighted_by_product_and_category_multipliers(rt: Runtime) -> None:
    member = enrolled(rt, user_id="bea")
    ProductStore(rt.db).upsert(
        [
            {
                "workspace_id": WS,
                "id": "SERUM-1",
                "category": "Skincare > Serums",
                "attributes": "{}",
            }
        ],
        rt.now_us(),
    )
    items = [
        {"product_id": "SERUM-1", "price": 10, "quantity": 2},  # catalog: Skincare x2 = 40
        {"product_id": "LIP-1", "price": 5, "category": "Lips"},  # product x3 = 15
        {"product_id": "X", "price": 7},  # x1 = 7
    ]
    ingest(rt, order({"userId": "bea"}, "o-9", 999, products=items))
    assert loyalty.member_view(rt, WS, member["id"])["balance"] == 40 + 15 + 7 + 50


def test_other_currencies_and_non_members_earn_nothing(rt: Runtime) -> None:
    member = enrolled(rt, user_id="cid")
    ingest(
        rt,
        {
            **order({"userId": "cid"}, "usd-1", 50),
            "properties": {"order_id": "usd-1", "total": 50, "currency": "USD"},
        },
        order({"userId": "stranger"}, "s-1", 500),
    )
    assert loyalty.member_view(rt, WS, member["id"])["balance"] == 0
    assert rt.loyalty.ledger_sums(WS) == {}


def test_redemption_never_overdraws_even_when_two_race(rt: Runtime) -> None:
    member = enrolled(rt, user_id="dan")
    ingest(rt, order({"userId": "dan"}, "o-1", 50))  # 50 + 50 bonus
    with pytest.raises(Conflict):
        loyalty.redeem(rt, WS, member["id"], 101, "rcpt-0", reason=None, actor="till")
    created, entry = loyalty.redeem(rt, WS, member["id"], 40, "rcpt-1", reason=None, actor="till")
    assert created and entry["points"] == -40
    again, same = loyalty.redeem(rt, WS, member["id"], 40, "rcpt-1", reason=None, actor="till")
    assert not again and same["id"] == entry["id"]
    # Two tills redeem 40 each from the 60 left at the same moment: one is refused
    outcomes: list[str] = []

    def till(n: int) -> None:
        try:
            loyalty.redeem(rt, WS, member["id"], 40, f"race-{n}", reason=None, actor="till")
            outcomes.append("ok")
        except Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=till, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused"]
    assert loyalty.member_view(rt, WS, member["id"])["balance"] == 20
    assert rt.loyalty.ledger_sums(WS) == {member["id"]: 20}
    rt.processor.run_until_idle()
    assert events_of(rt, member["profile_id"]).count("Points Redeemed") == 2


def test_adjustments_need_a_reason_and_never_go_below_zero(rt: Runtime) -> None:
    member = enrolled(rt, user_id="eve")
    with pytest.raises(RequestError):
        loyalty.adjust(rt, WS, member["id"], 10, reason="", actor="cli:op")
    loyalty.adjust(rt, WS, member["id"], 25, reason="goodwill", actor="cli:op")
    with pytest.raises(Conflict):
        loyalty.adjust(rt, WS, member["id"], -26, reason="fix", actor="cli:op")
    loyalty.adjust(rt, WS, member["id"], -5, reason="fix", actor="cli:op")
    assert loyalty.member_view(rt, WS, member["id"])["balance"] == 20


def test_two_cards_joined_by_one_purchase_become_one_member_with_one_ledger(
    rt: Runtime,
) -> None:
    # Given two cards handed out in two stores, each enrolled and each used for an order
    a = enrolled(rt, card_number="CARD-A-1", channel="store", store_id="s1")
    b = enrolled(rt, card_number="CARD-B-2", channel="store", store_id="s2")
    ingest(rt, order(card("CARD-A-1"), "a-1", 100))  # 150 with the bonus
    ingest(rt, order(card("CARD-B-2"), "b-1", 20))  # 70 with the bonus
    assert a["id"] != b["id"]
    # When one purchase shows both cards (and an identify with her e-mail)
    both = {
        "anonymousId": "till-x",
        "context": {
            "externalIds": [
                {
                    "id": "CARD-A-1",
                    "type": "loyalty_card",
                    "collection": "users",
                    "encoding": "none",
                },
                {
                    "id": "CARD-B-2",
                    "type": "loyalty_card",
                    "collection": "users",
                    "encoding": "none",
                },
            ]
        },
    }
    ingest(rt, order(both, "ab-1", 10))
    # Then both cards lead to one member whose ledger holds every entry once
    one = loyalty.lookup_token(rt, WS, "CARD-A-1")
    other = loyalty.lookup_token(rt, WS, "CARD-B-2")
    assert one["member_id"] == other["member_id"]
    survivor = one["member_id"]
    assert survivor == min((a, b), key=lambda m: (m["enrolled_at"], m["id"]))["id"]
    ledger = loyalty.ledger_of(rt, WS, survivor)["data"]
    assert sorted(e["order_id"] for e in ledger) == ["a-1", "ab-1", "b-1"]
    assert one["balance"] == 150 + 70 + 10
    assert rt.loyalty.ledger_sums(WS) == {survivor: 230}
    # the absorbed member leads to the survivor
    gone = b["id"] if survivor == a["id"] else a["id"]
    assert loyalty.member_view(rt, WS, gone)["id"] == survivor
    assert loyalty.member_view(rt, WS, gone)["cards"] == ["CARD-A-1", "CARD-B-2"]


def test_two_emails_joined_by_one_purchase_become_one_member_with_one_ledger(
    rt: Runtime,
) -> None:
    # Given one shopper enrolled twice online, with her home and her work e-mail
    home = enrolled(rt, email="ivy@home.example")
    work = enrolled(rt, email="ivy@work.example")
    assert home["id"] != work["id"]
    # and an order on each: the home one from her laptop, the work one from her phone
    laptop = {"anonymousId": "laptop-ivy", "context": {"traits": {"email": "ivy@home.example"}}}
    phone = {"anonymousId": "phone-ivy", "context": {"traits": {"email": "ivy@work.example"}}}
    ingest(rt, order(laptop, "h-1", 100))  # 150 with the bonus
    ingest(rt, order(phone, "w-1", 20))  # 70 with the bonus
    # When she checks out on the laptop with her work e-mail
    ingest(
        rt,
        order(
            {"anonymousId": "laptop-ivy", "context": {"traits": {"email": "ivy@work.example"}}},
            "hw-1",
            10,
        ),
    )
    # Then both e-mails lead to one member whose ledger holds every order once
    one = loyalty.member_view(rt, WS, "email:ivy@home.example")
    other = loyalty.member_view(rt, WS, "email:ivy@work.example")
    assert (
        one["id"]
        == other["id"]
        == min((home, work), key=lambda m: (m["enrolled_at"], m["id"]))["id"]
    )
    ledger = loyalty.ledger_of(rt, WS, one["id"])["data"]
    assert sorted(e["order_id"] for e in ledger) == ["h-1", "hw-1", "w-1"]
    assert one["balance"] == 150 + 70 + 10
    assert rt.loyalty.ledger_sums(WS) == {one["id"]: 230}
    assert traits_of(rt, one["profile_id"])["points_balance"] == 230
    # both digital tokens still work at the till, for the one member
    for token in (home["token"], work["token"]):
        assert loyalty.lookup_token(rt, WS, token)["member_id"] == one["id"]


def test_a_lost_card_is_revoked_and_a_new_one_earns_for_the_same_member(rt: Runtime) -> None:
    # Given a member with a card she used at the till
    member = enrolled(rt, card_number="LOST-0001", channel="store", store_id="s1")
    ingest(rt, order(card("LOST-0001"), "c-1", 40))  # 90 with the bonus
    # When she reports it lost and the store revokes it
    view = loyalty.revoke_card(rt, WS, member["id"], "LOST-0001")
    # Then the till no longer finds it, and she keeps her points
    assert view["cards"] == [] and view["balance"] == 90
    assert [t["status"] for t in view["tokens"] if t["token"] == "LOST-0001"] == ["revoked"]
    with pytest.raises(NotFound):
        loyalty.lookup_token(rt, WS, "LOST-0001")
    # and the number is never issued again, to her or to anyone
    for give in (
        lambda: loyalty.add_card(rt, WS, member["id"], "LOST-0001", actor="t"),
        lambda: loyalty.enrol(
            rt, WS, {"email": "x@example.com", "card_number": "LOST-0001"}, actor="t"
        ),
    ):
        with pytest.raises(Conflict) as refused:
            give()
        assert refused.value.code == "card_revoked"
    with pytest.raises(NotFound) as twice:
        loyalty.revoke_card(rt, WS, member["id"], "LOST-0001")
    assert twice.value.code == "card_not_found"
    # When the store hands her a new card
    added, view = loyalty.add_card(rt, WS, member["id"], "NEW-0002", actor="t")
    assert added and view["cards"] == ["NEW-0002"]
    assert loyalty.add_card(rt, WS, member["id"], " NEW-0002 ", actor="t")[0] is False
    rt.processor.run_until_idle()
    # Then the till finds it, and an order with it (and no other identifier) earns for her
    assert loyalty.lookup_token(rt, WS, "NEW-0002")["member_id"] == member["id"]
    ingest(rt, order(card("NEW-0002"), "c-2", 10))
    assert loyalty.member_view(rt, WS, member["id"])["balance"] == 100
    assert loyalty.member_view(rt, WS, "loyalty_card:NEW-0002")["id"] == member["id"]
    # and nobody else can take it
    other = enrolled(rt, email="oz@example.com")
    with pytest.raises(Conflict) as taken:
        loyalty.add_card(rt, WS, other["id"], "NEW-0002", actor="t")
    assert taken.value.code == "card_taken"
    with pytest.raises(RequestError):
        loyalty.add_card(rt, WS, other["id"], "no spaces allowed", actor="t")


def test_enrolling_twice_keeps_one_member(rt: Runtime) -> None:
    first = enrolled(rt, email="fay@example.com")
    created, again = loyalty.enrol(
        rt, WS, {"email": "fay@example.com", "card_number": "CARD-F", "channel": "store"}, actor="t"
    )
    assert not created and again["id"] == first["id"] and again["cards"] == ["CARD-F"]
    with pytest.raises(Conflict):
        loyalty.enrol(rt, WS, {"email": "gus@example.com", "card_number": "CARD-F"}, actor="t")


def test_rotating_the_token_revokes_the_old_one(rt: Runtime) -> None:
    member = enrolled(rt, user_id="hal")
    old = member["token"]
    assert loyalty.lookup_token(rt, WS, old)["member_id"] == member["id"]
    new = loyalty.rotate_token(rt, WS, member["id"])["token"]
    assert new != old
    assert loyalty.lookup_token(rt, WS, new)["member_id"] == member["id"]
    with pytest.raises(RequestError):
        loyalty.lookup_token(rt, WS, old)


def test_time_expires_points_and_lowers_the_tier(rt: Runtime) -> None:
    clock = FrozenClock(rt.clock.now())
    rt.clock = clock
    rt.loyalty_book.clock = clock
    member = enrolled(rt, user_id="ida")
    ingest(rt, order({"userId": "ida"}, "big", 300))
    assert loyalty.member_view(rt, WS, member["id"])["tier"] == "Silver"
    clock.advance(timedelta(days=340).total_seconds())
    rt.loyalty_timer.tick(force=True)
    rt.processor.run_until_idle()
    assert traits_of(rt, member["profile_id"])["points_expiring_30d"] == 350
    clock.advance(timedelta(days=30).total_seconds())
    rt.loyalty_timer.tick(force=True)
    rt.processor.run_until_idle()
    view = loyalty.member_view(rt, WS, member["id"])
    assert view["balance"] == 0 and view["tier"] == "Member"
    assert "Points Expired" in events_of(rt, member["profile_id"])
    assert "Tier Changed" in events_of(rt, member["profile_id"])


def test_a_loyalty_enrolled_event_from_any_sdk_enrols_with_its_card(rt: Runtime) -> None:
    ingest(
        rt,
        {
            "type": "track",
            "event": "Loyalty Enrolled",
            "userId": "jo",
            "messageId": "jo-enrol",
            "properties": {"card_number": "JO-CARD-1", "channel": "store", "store_id": "s9"},
        },
    )
    member = loyalty.member_view(rt, WS, "user_id:jo")
    assert member["cards"] == ["JO-CARD-1"] and member["channel"] == "store"
    assert member["store_id"] == "s9" and member["token"]
    # the same event again (a retry with a new message id) keeps one member
    ingest(
        rt,
        {"type": "track", "event": "Loyalty Enrolled", "userId": "jo", "messageId": "jo-enrol-2"},
    )
    assert loyalty.lookup_token(rt, WS, "JO-CARD-1")["member_id"] == member["id"]
    assert len(rt.loyalty.active_of_profiles(None, WS, [member["profile_id"]])) == 1


def test_the_customer_joins_on_the_self_service_profile(rt: Runtime) -> None:
    from fastapi.testclient import TestClient

    from opencdp.services.self_service import issue_link
    from opencdp.web.app import create_app

    ingest(
        rt,
        {
            "type": "identify",
            "userId": "kim",
            "messageId": "kim-1",
            "traits": {"email": "kim@example.com"},
        },
    )
    link = issue_link(rt, WS, "user_id:kim")["token"]
    with TestClient(create_app(rt, start_worker=False)) as client:
        auth = {"Authorization": f"Bearer {link}"}
        joined = client.post("/api/self/loyalty", headers=auth)
        assert joined.status_code == 201, joined.text
        rt.processor.run_until_idle()
        again = client.post("/api/self/loyalty", headers=auth)
        assert again.status_code == 200 and again.json()["id"] == joined.json()["id"]
        card = client.get("/api/self/loyalty/card.svg", headers=auth)
        assert card.status_code == 200 and joined.json()["token"] in card.text
        assert client.get("/api/self/loyalty/card.svg").status_code == 401


def test_the_member_api_answers_with_clear_errors(rt: Runtime) -> None:
    from fastapi.testclient import TestClient

    from opencdp.web.app import create_app
    from tests.conftest import TOKEN

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(rt, start_worker=False)) as client:
        bad = client.post("/api/loyalty/members", json={"channel": "store"}, headers=auth)
        assert bad.status_code == 400 and "name the person" in bad.json()["message"]
        made = client.post("/api/loyalty/members", json={"email": "lu@example.com"}, headers=auth)
        assert made.status_code == 201, made.text
        member = made.json()["id"]
        short = client.post(
            f"/api/loyalty/members/{member}/redemptions",
            json={"points": 5, "reference": "r-1"},
            headers=auth,
        )
        assert short.status_code == 409 and short.json()["code"] == "insufficient_points"
        unknown = client.post(
            f"/api/loyalty/members/{member}/redemptions",
            json={"points": 5, "reference": "r-1", "extra": 1},
            headers=auth,
        )
        assert unknown.status_code == 400 and "unknown fields" in unknown.json()["message"]
        assert client.get("/api/loyalty/tokens/NOPE-NOPE", headers=auth).status_code == 404
        cards = f"/api/loyalty/members/{member}/cards"
        given = client.post(cards, json={"card_number": "LU-CARD-1"}, headers=auth)
        assert given.status_code == 201 and given.json()["cards"] == ["LU-CARD-1"], given.text
        again = client.post(cards, json={"card_number": "LU-CARD-1"}, headers=auth)
        assert again.status_code == 200
        for wrong in ({}, {"card_number": "x"}, {"card_number": "LU-CARD-2", "extra": 1}):
            refused = client.post(cards, json=wrong, headers=auth)
            assert refused.status_code == 400 and refused.json()["code"] == "invalid_member"
        revoked = client.delete(f"{cards}/LU-CARD-1", headers=auth)
        assert revoked.status_code == 200 and revoked.json()["cards"] == []
        gone = client.delete(f"{cards}/LU-CARD-1", headers=auth)
        assert gone.status_code == 404 and gone.json()["code"] == "card_not_found"
        back = client.post(cards, json={"card_number": "LU-CARD-1"}, headers=auth)
        assert back.status_code == 409 and back.json()["code"] == "card_revoked"
        png = client.get(f"/api/loyalty/members/{member}/card.png", headers=auth)
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        bad_programme = client.put(
            "/api/loyalty/programme",
            json={"name": "x", "tiers": [{"name": "A", "threshold": 3}]},
            headers=auth,
        )
        assert bad_programme.status_code == 400
        assert bad_programme.json()["message"].startswith("tiers: the first tier")


def test_an_order_refunded_in_its_own_batch_and_an_order_older_than_the_expiry_earn_nothing(
    rt: Runtime,
) -> None:
    member = enrolled(rt, user_id="max")
    refund = {
        "type": "track",
        "event": "Order Refunded",
        "userId": "max",
        "messageId": "max-refund",
        "properties": {"order_id": "o-9"},
    }
    # one ingest: the order and its refund are processed in the same batch
    ingest(rt, order({"userId": "max"}, "o-9", 100), refund)
    assert loyalty.member_view(rt, WS, member["id"])["balance"] == 0
    # an order of two years ago (a late import): its points would have expired long since
    old = order({"userId": "max"}, "o-old", 100)
    old["timestamp"] = "2020-01-01T00:00:00Z"
    ingest(rt, old)
    assert loyalty.member_view(rt, WS, member["id"])["balance"] == 0
    # an amount no till rings up earns nothing and does not fail the batch
    ingest(rt, order({"userId": "max"}, "o-huge", 1e300), order({"userId": "max"}, "o-ok", 10))
    assert loyalty.member_view(rt, WS, member["id"])["balance"] == 60  # 10 + first-order 50


def test_the_same_receipt_redeemed_twice_at_once_takes_the_points_once(rt: Runtime) -> None:
    member = enrolled(rt, user_id="ned")
    ingest(rt, order({"userId": "ned"}, "o-1", 50))  # 100 with the bonus
    answers: list[tuple[bool, int]] = []

    def till() -> None:
        created, entry = loyalty.redeem(rt, WS, member["id"], 30, "rcpt-9", reason=None, actor="t")
        answers.append((created, entry["id"]))

    threads = [threading.Thread(target=till) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(c for c, _ in answers) == [False, False, True]
    assert len({i for _, i in answers}) == 1
    assert loyalty.member_view(rt, WS, member["id"])["balance"] == 70


def test_an_order_in_the_birthday_month_earns_the_bonus(rt: Runtime) -> None:
    loyalty.apply_programme(rt, WS, {**PROGRAMME, "bonuses": {"birthday_month": 2}})
    month = rt.clock.now().month
    other = month % 12 + 1
    for user, born in (("liv", f"1990-{month:02d}-17"), ("ole", f"1990-{other:02d}-17")):
        ingest(
            rt,
            {
                "type": "identify",
                "userId": user,
                "messageId": f"{user}-id",
                "traits": {"birthday": born},
            },
        )
        enrolled(rt, user_id=user)
        ingest(rt, order({"userId": user}, f"{user}-o", 40))
    assert loyalty.member_view(rt, WS, "user_id:liv")["balance"] == 80
    assert loyalty.member_view(rt, WS, "user_id:ole")["balance"] == 40


def test_the_cli_runs_the_programme_members_cards_and_ledger(
    runtime: Runtime, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from opencdp.cli.main import app as cli_app

    def cli(*args: str, code: int = 0) -> str:
        options = ["--data-dir", str(runtime.settings.data_dir)]
        options += ["--database-url", runtime.settings.resolved_database_url()]
        result = CliRunner().invoke(cli_app, [*args, *options])
        assert result.exit_code == code, result.output
        return result.output

    # Given a programme kept as a file
    document = tmp_path / "programme.yaml"
    document.write_text(yaml.safe_dump(PROGRAMME))
    assert "applied Glow Rewards" in cli("loyalty", "programme", "apply", str(document))
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**PROGRAMME, "points_per_unit": -1}))
    assert "points_per_unit" in cli("loyalty", "programme", "apply", str(broken), code=1)
    # When the till enrols a member with a card and she orders with it
    enrolled_out = cli("loyalty", "member", "enrol", "--card", "CLI-CARD-1", "--store", "s1")
    member_id = enrolled_out.split()[1].rstrip(",")
    ingest(runtime, order(card("CLI-CARD-1"), "k-1", 10))  # 60 with the bonus
    # Then the member, the hand-made adjustment and the ledger show through the CLI
    shown = json.loads(cli("loyalty", "member", "show", "CLI-CARD-1", "--json"))
    assert shown["id"] == member_id and shown["balance"] == 60
    assert "+5 points (goodwill); balance 65" in cli(
        "loyalty", "member", "adjust", member_id, "--points", "5", "--reason", "goodwill"
    )
    assert "does not have 100 points" in cli(
        "loyalty", "member", "adjust", member_id, "--points", "-100", "--reason", "x", code=1
    )
    ledger = json.loads(cli("loyalty", "ledger", member_id, "--json"))
    assert [e["kind"] for e in ledger["data"]] == ["adjust", "earn"]
    # When the card is lost: revoked, and a new one handed out
    assert "revoked card CLI-CARD-1" in cli(
        "loyalty", "member", "revoke-card", member_id, "CLI-CARD-1"
    )
    assert "no active card" in cli(
        "loyalty", "member", "revoke-card", member_id, "CLI-CARD-1", code=1
    )
    assert "added card CLI-CARD-2" in cli("loyalty", "member", "add-card", member_id, "CLI-CARD-2")
    assert "was revoked" in cli("loyalty", "member", "add-card", member_id, "CLI-CARD-1", code=1)
    rotated = cli("loyalty", "member", "rotate-token", "CLI-CARD-2")
    assert rotated.split()[-1] == loyalty.member_view(runtime, WS, member_id)["token"]
    out = tmp_path / "card.svg"
    cli("loyalty", "member", "card", member_id, "--out", str(out))
    assert "Glow Rewards" in out.read_text()
    assert "--out must end in .svg or .png" in cli(
        "loyalty", "member", "card", member_id, "--out", str(tmp_path / "card.gif"), code=2
    )
