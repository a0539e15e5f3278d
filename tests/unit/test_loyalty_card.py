"""The member card (pure): the SVG is valid XML whatever the names hold, and its barcode and QR
code, as well as the PNG's, decode back to the member token with an independent decoder
(zxing-cpp, the C++ port of ZXing that scanner apps use)."""

from __future__ import annotations

import io
import re
from xml.etree import ElementTree as ET

import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from opencdp.loyalty.card import (
    HEIGHT_MM,
    WIDTH_MM,
    CardFace,
    card_png,
    card_svg,
    code128_modules,
    code128_png,
    code128_svg,
    qr_png,
    qr_svg,
)
from opencdp.loyalty.tokens import new_member_token

SVG = "{http://www.w3.org/2000/svg}"
FACE = CardFace(
    programme="Glow Rewards",
    member_name="Ann O'Neil",
    member_id="mem_0001",
    token="7K3M9QXW2HTR5VBN8CJD",
    tier="Gold",
    points=12345,
)


def _decoded(image: Image.Image) -> dict[str, str]:
    return {r.format.name: r.text for r in zxingcpp.read_barcodes(image)}


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def _by_id(root: ET.Element, ident: str) -> ET.Element:
    found = [e for e in root.iter() if e.get("id") == ident]
    assert len(found) == 1, ident
    return found[0]


def _raster_of_svg_card(svg: str, px_per_mm: int = 12) -> Image.Image:
    """Draw the card's barcode rectangles and QR path (nothing else) onto a white image, as a
    renderer would, so that a real decoder can read them."""
    root = ET.fromstring(svg.encode())
    image = Image.new("L", (round(WIDTH_MM * px_per_mm), round(HEIGHT_MM * px_per_mm)), 255)
    draw = ImageDraw.Draw(image)
    for rect in _by_id(root, "barcode").iter(f"{SVG}rect"):
        x, y = float(rect.get("x", 0)), float(rect.get("y", 0))
        w, h = float(rect.get("width", 0)), float(rect.get("height", 0))
        draw.rectangle(
            (
                round(x * px_per_mm),
                round(y * px_per_mm),
                round((x + w) * px_per_mm) - 1,
                round((y + h) * px_per_mm) - 1,
            ),
            fill=0,
        )
    qr = _by_id(root, "qr")
    match = re.fullmatch(
        r"translate\(([\d.]+) ([\d.]+)\) scale\(([\d.]+)\)", qr.get("transform", "")
    )
    assert match, qr.get("transform")
    tx, ty, unit = (float(v) for v in match.groups())
    path = qr.find(f"{SVG}path")
    assert path is not None
    for col, row, run in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", path.get("d", "")):
        x0 = (tx + int(col) * unit) * px_per_mm
        y0 = (ty + int(row) * unit) * px_per_mm
        draw.rectangle(
            (
                round(x0),
                round(y0),
                round(x0 + int(run) * unit * px_per_mm) - 1,
                round(y0 + unit * px_per_mm) - 1,
            ),
            fill=0,
        )
    return image


def test_the_svg_card_is_a_credit_card_shaped_svg_document() -> None:
    root = ET.fromstring(card_svg(FACE).encode())
    assert root.tag == f"{SVG}svg"
    assert root.get("width") == f"{WIDTH_MM}mm" and root.get("height") == f"{HEIGHT_MM}mm"
    assert root.get("viewBox") == "0 0 85.6 54.0"
    assert abs(WIDTH_MM / HEIGHT_MM - 85.6 / 54) < 1e-9
    texts = {e.get("id"): "".join(e.itertext()) for e in root.iter(f"{SVG}text")}
    assert texts["programme"] == "Glow Rewards"
    assert texts["member-name"] == "Ann O'Neil"
    assert texts["member-id"] == "Member mem_0001"
    assert "Gold" in texts["status"] and "12\u202f345 points" in texts["status"]
    assert texts["token"] == FACE.token


def test_the_svg_cards_barcode_and_qr_code_decode_to_the_token() -> None:
    for token in (FACE.token, new_member_token(), "abc-DEF_123", "CARD-" + "9" * 59):
        face = CardFace("P", None, "m", token, None, 0)
        assert _decoded(_raster_of_svg_card(card_svg(face))) == {
            "Code128": token,
            "QRCode": token,
        }


def test_the_svg_barcode_draws_the_code128_modules_exactly() -> None:
    # Given the card's bars read back as a module string (the narrowest bar is one module)
    root = ET.fromstring(card_svg(FACE).encode())
    rects = [
        (float(r.get("x", 0)), float(r.get("width", 0)))
        for r in _by_id(root, "barcode").iter(f"{SVG}rect")
    ]
    unit = min(w for _, w in rects)
    start = rects[0][0]
    modules = ["0"] * round((rects[-1][0] + rects[-1][1] - start) / unit)
    for x, w in rects:
        first = round((x - start) / unit)
        for i in range(first, first + round(w / unit)):
            modules[i] = "1"
    # Then they are Code 128's start B, the data, the check symbol and the stop pattern
    read = "".join(modules)
    assert read == code128_modules(FACE.token)
    assert read.startswith("11010010000")  # start code B
    assert read.endswith("1100011101011")  # stop pattern


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_the_png_card_decodes_to_the_token_in_both_symbols(scale: int) -> None:
    image = _png(card_png(FACE, scale=scale))
    assert image.size == (round(85.6 * 5 * scale), round(54 * 5 * scale))
    assert _decoded(image) == {"Code128": FACE.token, "QRCode": FACE.token}


def test_a_long_token_makes_the_png_larger_rather_than_the_bars_thinner_than_a_pixel() -> None:
    token = "T" * 64
    image = _png(card_png(CardFace("P", "Ann", "m", token, "Silver", 5), scale=1))
    assert image.size[0] > 428
    assert abs(image.size[0] / image.size[1] - 85.6 / 54) < 0.01
    assert _decoded(image) == {"Code128": token, "QRCode": token}


def test_the_stand_alone_symbols_decode() -> None:
    url = "https://shop.example/q/AbC-12_xyz"
    assert _decoded(_png(qr_png(url))) == {"QRCode": url}
    assert _decoded(_png(qr_png(url, scale=3))) == {"QRCode": url}
    assert _decoded(_png(code128_png("HELLO-123"))) == {"Code128": "HELLO-123"}
    for svg in (code128_svg("HELLO-123"), qr_svg(url)):
        assert ET.fromstring(svg.encode()).tag == f"{SVG}svg"
    texts = "".join(ET.fromstring(code128_svg("A<&>").encode()).itertext())
    assert "A<&>" in texts


def test_what_code128_cannot_carry_is_refused() -> None:
    for bad in ("", "caf\u00e9", "tab\there"):
        with pytest.raises(ValueError):
            code128_modules(bad)
    with pytest.raises(ValueError):
        qr_png("")
    with pytest.raises(ValueError):
        card_png(FACE, scale=0)


def _xml_text(value: str) -> str:
    """What the card may show of a name: XML 1.0's characters, white space collapsed."""
    kept = "".join(
        " " if ch in "\t\n\r" else ch
        for ch in value
        if ch in "\t\n\r"
        or (ord(ch) >= 0x20 and not 0xD800 <= ord(ch) <= 0xDFFF and ch not in "\ufffe\uffff")
    )
    return " ".join(kept.split())


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(max_size=39),
    programme=st.text(min_size=1, max_size=39),
    tier=st.one_of(st.none(), st.text(max_size=20)),
)
def test_any_name_stays_text_in_the_svg(name: str, programme: str, tier: str | None) -> None:
    # Given names with markup, quotes, ampersands, control characters and any script
    face = CardFace(programme, name, "mem_1", FACE.token, tier, -3)
    # When the card is drawn, then it parses and shows each name as text, nothing more
    root = ET.fromstring(card_svg(face).encode())
    texts = {e.get("id"): "".join(e.itertext()) for e in root.iter(f"{SVG}text")}
    assert texts["programme"] == _xml_text(programme)
    assert texts.get("member-name", "") == _xml_text(name)
    if tier and _xml_text(tier):
        assert texts["status"].startswith(_xml_text(tier))
    assert {e.tag for e in root.iter()} <= {
        f"{SVG}{t}" for t in ("svg", "title", "rect", "text", "g", "path")
    }
    assert len(list(root.iter(f"{SVG}text"))) == 4 + (1 if _xml_text(name) else 0)


@settings(max_examples=25, deadline=None)
@given(name=st.text(max_size=60))
def test_any_name_draws_on_the_png(name: str) -> None:
    image = _png(card_png(CardFace("Glow", name, "m", FACE.token, None, 0), scale=1))
    assert _decoded(image)["Code128"] == FACE.token
