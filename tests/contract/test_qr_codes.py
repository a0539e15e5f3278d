"""Campaign QR codes on both backends: the store, the scan (a redirect only ever to the
registered target, analytics.js's anonymous id cookie, a ``QR Code Scanned`` event that a later
``identify`` joins to the person), the ``/api/qr`` routes and ``opencdp qr``."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from opencdp.cli.main import app as cli_app
from opencdp.errors import NotFound, RequestError
from opencdp.runtime import Runtime
from opencdp.services import qr_codes as service
from opencdp.storage.qr_codes import QrCode
from opencdp.web.app import create_app
from tests.conftest import TOKEN, WRITE_KEY, basic, make_settings

WS = "default"
AUTH = basic(TOKEN)
TARGET = "https://shop.example/spring?utm_source=poster"
COOKIE_HEADER = re.compile(
    r"ajs_anonymous_id=([0-9a-f-]{36}); Path=/; Max-Age=31536000; SameSite=Lax"
)


def _new(client: TestClient, campaign: str = "spring-posters", target: str = TARGET) -> str:
    made = client.post("/api/qr", json={"campaign": campaign, "target": target}, headers=AUTH)
    assert made.status_code == 201, made.text
    return str(made.json()["code"])


def _scan(client: TestClient, path: str, **kwargs: Any) -> Any:
    return client.get(path, follow_redirects=False, **kwargs)


def _events(client: TestClient, ref: str) -> list[dict[str, Any]]:
    answer = client.get(
        f"/v1/spaces/{WS}/collections/users/profiles/{ref}/events?limit=50", headers=AUTH
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


# -- the store ------------------------------------------------------------------------------------


def test_the_store_adds_gets_lists_and_disables(runtime: Runtime) -> None:
    store = runtime.qr_codes
    first = QrCode("code-aaaa-01", WS, "spring", "https://a.example/", 1_000, None)
    second = QrCode("code-bbbb-02", WS, "autumn", "https://b.example/", 2_000, None)
    other = QrCode("code-cccc-03", "brand-b", "spring", "https://c.example/", 3_000, None)
    runtime.admin.add_workspace("brand-b", "B", runtime.now_us())
    for qr in (first, second, other):
        assert store.add(qr)
    # A code is unique on the instance: the same code in another workspace is refused
    assert not store.add(QrCode("code-aaaa-01", "brand-b", "x", "https://x.example/", 9, None))
    assert store.get("code-aaaa-01") == first
    assert store.get("code-cccc-03") == other  # a scan knows no workspace
    assert store.get("nothing-here") is None
    assert store.list(WS) == [second, first]  # newest first, this workspace only
    assert store.list(WS, campaign="spring") == [first]
    assert store.list("brand-b") == [other]
    # Disabling: only in its own workspace, once
    assert not store.disable("brand-b", "code-aaaa-01", 5_000)
    assert store.disable(WS, "code-aaaa-01", 5_000)
    assert not store.disable(WS, "code-aaaa-01", 6_000)
    found = store.get("code-aaaa-01")
    assert found is not None and found.disabled_us == 5_000 and not found.active


def test_new_codes_are_unguessable_and_url_safe(runtime: Runtime) -> None:
    codes = {service.add_qr(runtime, WS, "c", "https://shop.example/") for _ in range(50)}
    assert len(codes) == 50
    for code in codes:
        assert re.fullmatch(r"[A-Za-z0-9_-]{10,}", code), code
        assert runtime.qr_codes.get(code) is not None


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("shop.example/spring", "absolute http(s) URL"),
        ("/spring", "absolute http(s) URL"),
        ("//evil.example/", "absolute http(s) URL"),
        ("javascript:alert(1)", "absolute http(s) URL"),
        ("ftp://shop.example/", "absolute http(s) URL"),
        ("https://", "absolute http(s) URL"),
        ("https://user:secret@shop.example/", "no user name or password"),
        ("https://shop.example@evil.example/", "no user name or password"),
        ("https://shop.example\\@evil.example/", "backslashes"),
        ("https://shop.example/a b", "white space"),
        ("https://shop.example:99999/", "is not a URL"),
        ("https://shop.example/" + "a" * 2000, "at most 2000"),
        (42, "absolute http(s) URL"),
    ],
)
def test_a_bad_target_is_refused_with_what_to_fix(runtime: Runtime, target: Any, says: str) -> None:
    with pytest.raises(RequestError) as caught:
        service.add_qr(runtime, WS, "spring", target)
    assert says in caught.value.message and caught.value.status == 400
    assert runtime.qr_codes.list(WS) == []


def test_a_bad_campaign_or_workspace_is_refused(runtime: Runtime) -> None:
    for campaign in ("", "   ", "a\nb", "x" * 201, None):
        with pytest.raises(RequestError):
            service.add_qr(runtime, WS, campaign, TARGET)
    with pytest.raises(NotFound):
        service.add_qr(runtime, "no-such-workspace", "spring", TARGET)


def test_the_cookie_value_of_analytics_js_is_read_plain_or_json_quoted() -> None:
    assert service.anonymous_id_from_cookie("%22abc-123%22") == "abc-123"
    assert service.anonymous_id_from_cookie('"abc-123"') == "abc-123"
    assert service.anonymous_id_from_cookie("abc-123") == "abc-123"
    for bad in (None, "", "%22%22", "a b", "x" * 200, "%00"):
        assert service.anonymous_id_from_cookie(bad) is None


# -- the scan -------------------------------------------------------------------------------------


def test_a_scan_redirects_sets_the_cookie_and_records_the_event(
    rt: Runtime, client: TestClient
) -> None:
    # Given a code for the spring posters
    code = _new(client)
    # When a phone without cookies scans it
    answer = _scan(client, f"/q/{code}", headers={"User-Agent": "PosterPhone/1.0"})
    # Then it goes to the registered target, with a new anonymous id in analytics.js's cookie
    assert answer.status_code == 302
    assert answer.headers["location"] == TARGET
    assert answer.headers["cache-control"] == "no-store"
    match = COOKIE_HEADER.fullmatch(answer.headers["set-cookie"])
    assert match, answer.headers["set-cookie"]
    visitor = match.group(1)
    # And the worker puts QR Code Scanned with the campaign on that visitor
    rt.processor.run_until_idle()
    [event] = _events(client, f"anonymous_id:{visitor}")
    assert event["event"] == "QR Code Scanned"
    assert event["properties"] == {"campaign": "spring-posters", "code": code, "target": TARGET}
    messages = _inbox_messages(rt)
    [message] = [m for m in messages if m.get("event") == "QR Code Scanned"]
    assert message["anonymousId"] == visitor
    assert message["context"]["campaign"] == {
        "name": "spring-posters",
        "source": "qr",
        "medium": "print",
    }
    assert message["context"]["userAgent"] == "PosterPhone/1.0"
    assert message["context"]["ip"] == "testclient"


def _inbox_messages(rt: Runtime) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from opencdp.storage.schema import inbox

    with rt.db.read() as conn:
        rows = conn.execute(select(inbox.c.payload)).scalars().all()
    return [json.loads(r) if isinstance(r, str | bytes) else r for r in rows]


def test_the_visitors_cookie_is_kept_and_a_later_identify_joins_the_scan(
    rt: Runtime, client: TestClient
) -> None:
    # Given a shopper whose browser already has analytics.js's cookie (JSON-quoted, encoded)
    code = _new(client, campaign="receipt-back")
    client.cookies.set("ajs_anonymous_id", "%22anon-77%22")
    # When she scans the receipt's code
    answer = _scan(client, f"/q/{code}")
    client.cookies.clear()
    # Then the cookie is left alone (no Set-Cookie) and the scan is on her anonymous id
    assert answer.status_code == 302 and answer.headers["location"] == TARGET
    assert "set-cookie" not in answer.headers
    rt.processor.run_until_idle()
    assert [e["event"] for e in _events(client, "anonymous_id:anon-77")] == ["QR Code Scanned"]
    # When the shop's analytics.js later identifies her with the same anonymous id
    sent = client.post(
        "/v1/identify",
        json={"userId": "ann", "anonymousId": "anon-77", "traits": {"email": "ann@example.com"}},
        headers=basic(WRITE_KEY),
    )
    assert sent.status_code == 200, sent.text
    rt.processor.run_until_idle()
    # Then her profile has the scan and her user id
    events = _events(client, "user_id:ann")
    assert "QR Code Scanned" in [e["event"] for e in events]
    ids = client.get(
        f"/v1/spaces/{WS}/collections/users/profiles/user_id:ann/external_ids", headers=AUTH
    ).json()["data"]
    assert {(i["type"], i["id"]) for i in ids} >= {("user_id", "ann"), ("anonymous_id", "anon-77")}


def test_a_second_scan_from_the_same_browser_is_the_same_visitor(
    rt: Runtime, client: TestClient
) -> None:
    code = _new(client)
    first = _scan(client, f"/q/{code}")
    visitor = COOKIE_HEADER.fullmatch(first.headers["set-cookie"]).group(1)  # type: ignore[union-attr]
    client.cookies.set("ajs_anonymous_id", visitor)
    second = _scan(client, f"/q/{code}")
    client.cookies.clear()
    assert second.status_code == 302 and "set-cookie" not in second.headers
    rt.processor.run_until_idle()
    assert len(_events(client, f"anonymous_id:{visitor}")) == 2


def test_an_unknown_or_disabled_code_is_a_plain_404_page(rt: Runtime, client: TestClient) -> None:
    code = _new(client)
    assert service.disable_qr(rt, WS, code)
    for path in (f"/q/{code}", "/q/AAAAAAAAAAAA", "/q/short", "/q/", "/q/a/b/c"):
        answer = _scan(client, path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/plain"), path
        assert "location" not in answer.headers and "set-cookie" not in answer.headers
        assert answer.headers["cache-control"] == "no-store"
    rt.processor.run_until_idle()
    assert [m for m in _inbox_messages(rt) if m.get("event") == "QR Code Scanned"] == []


def test_nothing_in_the_request_can_change_where_a_scan_goes(client: TestClient) -> None:
    code = _new(client)
    evil = "https://evil.example/"
    for path in (
        f"/q/{code}?next={evil}",
        f"/q/{code}?target={evil}&url={evil}&redirect={evil}",
        f"/q/{code}#{evil}",
    ):
        answer = _scan(client, path, headers={"Referer": evil, "Host": "evil.example"})
        assert answer.status_code == 302, path
        assert answer.headers["location"] == TARGET, path
    # A URL in the path instead of a code, plain or encoded, finds no code
    for path in (
        f"/q/{code}/{evil}",
        f"/q/{code}%2F%2Fevil.example",
        "/q/https%3A%2F%2Fevil.example%2F",
        "/q///evil.example",
        f"/q/{code}%3F{evil}",
        f"/q/{code}/..%2F..%2Fevil.example",
    ):
        answer = _scan(client, path)
        assert answer.status_code == 404, path
        assert "location" not in answer.headers, path


def test_the_scan_needs_no_credentials_but_the_api_does(client: TestClient) -> None:
    code = _new(client)
    assert _scan(client, f"/q/{code}").status_code == 302  # no Authorization header at all
    assert client.get("/api/qr").status_code == 401
    assert client.post("/api/qr", json={"campaign": "c", "target": TARGET}).status_code == 401


# -- the API --------------------------------------------------------------------------------------


def test_the_api_makes_lists_and_draws_codes(client: TestClient) -> None:
    made = client.post("/api/qr", json={"campaign": "spring", "target": TARGET}, headers=AUTH)
    assert made.status_code == 201, made.text
    body = made.json()
    code = body["code"]
    # Without the public_url setting, short URLs use the address the request came to
    assert body["short_url"] == f"http://testserver/q/{code}"
    assert body["campaign"] == "spring" and body["target"] == TARGET
    assert body["disabled_at"] is None
    other = _new(client, campaign="autumn")
    listed = client.get("/api/qr", headers=AUTH).json()["data"]
    assert {r["code"] for r in listed} == {code, other}
    only = client.get("/api/qr", params={"campaign": "spring"}, headers=AUTH).json()["data"]
    assert [r["code"] for r in only] == [code]
    # The images encode the short URL
    png = client.get(f"/api/qr/{code}.png", headers=AUTH)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    [read] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    assert read.text == f"http://testserver/q/{code}"
    svg = client.get(f"/api/qr/{code}.svg", headers=AUTH)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content
    assert client.get("/api/qr/AAAAAAAAAAAA.png", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"campaign": "c"},
        {"target": TARGET},
        {"campaign": "c", "target": "javascript:alert(1)"},
        {"campaign": "c", "target": "https://u:p@shop.example/"},
        {"campaign": "c", "target": TARGET, "code": "mine-mine-mine"},
        ["c", TARGET],
    ],
)
def test_the_api_refuses_bad_input_with_code_and_message(client: TestClient, body: Any) -> None:
    answer = client.post("/api/qr", json=body, headers=AUTH)
    assert answer.status_code == 400, answer.text
    assert set(answer.json()) == {"code", "message"}
    assert answer.json()["message"]
    assert client.get("/api/qr", headers=AUTH).json()["data"] == []


def test_a_configured_public_url_makes_the_short_urls(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, public_url="https://go.shop.example/")
    rt = Runtime(settings)
    try:
        with TestClient(create_app(rt, start_worker=False)) as client:
            body = client.post(
                "/api/qr", json={"campaign": "c", "target": TARGET}, headers=AUTH
            ).json()
            assert body["short_url"] == f"https://go.shop.example/q/{body['code']}"
            svg = client.get(f"/api/qr/{body['code']}.png", headers=AUTH)
            [read] = zxingcpp.read_barcodes(Image.open(io.BytesIO(svg.content)))
            assert read.text == body["short_url"]
    finally:
        rt.close()


def test_a_code_of_another_workspace_is_not_seen(rt: Runtime, client: TestClient) -> None:
    rt.admin.add_workspace("brand-b", "B", rt.now_us())
    theirs = service.add_qr(rt, "brand-b", "b-campaign", "https://b.example/")
    assert client.get("/api/qr", headers=AUTH).json()["data"] == []
    assert client.get(f"/api/qr/{theirs}.svg", headers=AUTH).status_code == 404
    # …while anyone can scan it (it is printed), and the event lands in brand-b
    assert _scan(client, f"/q/{theirs}").headers["location"] == "https://b.example/"


# -- the CLI --------------------------------------------------------------------------------------


def _cli(rt: Runtime, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    options = ["--data-dir", str(rt.settings.data_dir)]
    options += ["--database-url", rt.settings.resolved_database_url()]
    result = CliRunner().invoke(cli_app, [*args, *options], env=env)
    return result.exit_code, result.output


def test_the_cli_adds_writes_the_image_and_lists(rt: Runtime, tmp_path: Path) -> None:
    out = tmp_path / "poster.png"
    status, output = _cli(rt, "qr", "add", "spring-posters", "--target", TARGET, "--out", str(out))
    assert status == 0, output
    code, url = output.split()[:2]
    assert url == f"http://127.0.0.1:8000/q/{code}"  # the public_url default
    [read] = zxingcpp.read_barcodes(Image.open(out))
    assert read.text == url
    svg = tmp_path / "poster.svg"
    env = {"OPENCDP_PUBLIC_URL": "https://go.shop.example"}
    status, output = _cli(rt, "qr", "add", "autumn", "--target", TARGET, "--out", str(svg), env=env)
    assert status == 0, output
    assert output.split()[1].startswith("https://go.shop.example/q/")
    assert svg.read_text().lstrip().startswith("<?xml")
    status, output = _cli(rt, "qr", "list", "--json")
    assert status == 0, output
    listed = json.loads(output)
    assert [r["campaign"] for r in listed] == ["autumn", "spring-posters"]
    status, output = _cli(rt, "qr", "list")
    assert status == 0 and code in output and "spring-posters" in output
    # Each add is in the audit log
    actions = [e.action for e in rt.audit.query(WS, action="qr")]
    assert actions.count("qr.add") == 2


def test_the_cli_says_what_to_fix_and_disables(rt: Runtime, tmp_path: Path) -> None:
    status, output = _cli(rt, "qr", "add", "spring", "--target", "shop.example/spring")
    assert status == 1 and "absolute http(s) URL" in output
    status, output = _cli(
        rt, "qr", "add", "spring", "--target", TARGET, "--out", str(tmp_path / "x.gif")
    )
    assert status == 2 and ".svg or .png" in output
    assert rt.qr_codes.list(WS) == []
    status, output = _cli(rt, "qr", "add", "spring", "--target", TARGET)
    code = output.split()[0]
    status, output = _cli(rt, "qr", "disable", code)
    assert status == 0 and "disabled" in output
    found = rt.qr_codes.get(code)
    assert found is not None and not found.active
    status, output = _cli(rt, "qr", "disable", "AAAAAAAAAAAA")
    assert status == 1 and "no QR code" in output


# -- the member card through the loyalty API ------------------------------------------------------


def test_the_member_card_of_the_loyalty_api_scans_to_the_members_token(
    rt: Runtime, client: TestClient
) -> None:
    # Given a member with a name, enrolled through the API
    assert client.put(
        "/api/loyalty/programme", json={"name": "Glow <Rewards> & Co"}, headers=AUTH
    ).status_code in (200, 201)
    member = client.post(
        "/api/loyalty/members",
        json={"email": "ann@example.com", "traits": {"first_name": 'Ann "<&>"'}},
        headers=AUTH,
    )
    assert member.status_code == 201, member.text
    rt.processor.run_until_idle()
    token, member_id = member.json()["token"], member.json()["id"]
    # When the app fetches the card, Then both symbols decode to the token
    png = client.get(f"/api/loyalty/members/{member_id}/card.png", headers=AUTH)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    found = {
        r.format.name: r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    }
    assert found == {"Code128": token, "QRCode": token}
    svg = client.get(f"/api/loyalty/members/{member_id}/card.svg", headers=AUTH)
    assert svg.status_code == 200, svg.text
    texts = ["".join(e.itertext()) for e in ET.fromstring(svg.content).iter()]
    assert "Glow <Rewards> & Co" in texts and token in texts
