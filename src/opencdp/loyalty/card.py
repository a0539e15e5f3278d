"""The member card's face, pure: a credit-card-shaped picture (ISO/IEC 7810 ID-1, 85.6 x 54 mm)
with the programme's name, the member's name, tier and points, the member token as a Code 128
barcode with the token as human-readable text under it, and the same token as a QR code.

Tills read the barcode (1D scanners are everywhere), phones and newer scanners the QR code. The
encodings come from maintained libraries: python-barcode computes Code 128's modules (and draws
the stand-alone barcode with its ``SVGWriter`` and ``ImageWriter``), segno the QR code's; this
module only lays them out. Every text is escaped (a name with ``<``, ``&`` or ``"`` stays text).

Bars and QR modules are drawn on whole pixels in the PNG (a blurred edge misreads), so the PNG
grows beyond ``scale`` when a long token would otherwise need bars thinner than a pixel.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import segno
from barcode import Code128
from barcode.writer import ImageWriter, SVGWriter
from PIL import Image, ImageDraw, ImageFont

#: the card's size in millimetres (ISO/IEC 7810 ID-1)
WIDTH_MM = 85.6
HEIGHT_MM = 54.0
#: pixels per millimetre of a PNG card at scale 1
_PX_PER_MM = 5

# The layout, in millimetres from the top left corner.
_MARGIN = 4.0
_QR_SIZE = 22.0  # the QR code's square, quiet zone included
_BAR_TOP = 36.0
_BAR_HEIGHT = 10.0
_BAR_QUIET = 2.5  # Code 128 wants a quiet zone of ten modules; at least this much
_TEXT_Y = 50.5

_BACKGROUND = "#ffffff"
_INK = "#111111"
_ACCENT = "#1f4e79"


@dataclass(frozen=True)
class CardFace:
    """What a member card shows."""

    programme: str
    member_name: str | None
    member_id: str
    token: str
    tier: str | None
    points: int


def code128_modules(data: str) -> str:
    """The Code 128 symbol of ``data`` as a string of modules, ``1`` a bar and ``0`` a space
    (start code, data, check digit and stop pattern; no quiet zone). Raises ValueError for a
    character Code 128 cannot carry (anything outside ASCII)."""
    _check_code128(data)
    return str(Code128(data).build()[0])


def code128_svg(data: str) -> str:
    """``data`` as a stand-alone Code 128 barcode in SVG, with ``data`` as text under the
    bars (python-barcode's SVGWriter)."""
    _check_code128(data)
    out = io.BytesIO()
    Code128(data, writer=SVGWriter()).write(out, options={"module_height": 12.0})
    return out.getvalue().decode("utf-8")


def code128_png(data: str, dpi: int = 300) -> bytes:
    """``data`` as a stand-alone Code 128 barcode in PNG, with ``data`` as text under the
    bars (python-barcode's ImageWriter)."""
    _check_code128(data)
    out = io.BytesIO()
    Code128(data, writer=ImageWriter(format="PNG", dpi=dpi)).write(
        out, options={"module_height": 12.0}
    )
    return out.getvalue()


def qr_svg(data: str) -> str:
    """``data`` as a QR code in SVG (error correction M, four modules of quiet zone)."""
    out = io.BytesIO()
    _qr(data).save(out, kind="svg", scale=8, border=4, xmldecl=True, title=None)
    return out.getvalue().decode("utf-8")


def qr_png(data: str, scale: int = 8) -> bytes:
    """``data`` as a QR code in PNG, ``scale`` pixels a module (four modules of quiet zone)."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    out = io.BytesIO()
    _qr(data).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def card_svg(face: CardFace) -> str:
    """The card as an SVG document 85.6 x 54 mm large (coordinates in millimetres)."""
    modules = code128_modules(face.token)
    qr = _qr(face.token)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_MM}mm" height="{HEIGHT_MM}mm"'
        f' viewBox="0 0 {WIDTH_MM} {HEIGHT_MM}" font-family="DejaVu Sans, Helvetica, Arial,'
        ' sans-serif">',
        f"<title>{escape(_title(face))}</title>",
        f'<rect x="0.25" y="0.25" width="{WIDTH_MM - 0.5}" height="{HEIGHT_MM - 0.5}" rx="3.2"'
        f' fill="{_BACKGROUND}" stroke="{_ACCENT}" stroke-width="0.5"/>',
        f'<rect x="0.25" y="0.25" width="{WIDTH_MM - 0.5}" height="1.6" fill="{_ACCENT}"/>',
    ]
    text_width = WIDTH_MM - 2 * _MARGIN - _QR_SIZE - 2
    for line in _text_lines(face):
        parts.append(
            f'<text id="{line.role}" x="{_MARGIN}" y="{line.y}" font-size="{line.size}"'
            f' font-weight="{"bold" if line.bold else "normal"}" fill="{line.colour}"'
            f" textLength={quoteattr(_fmt(min(text_width, line.size * 0.6 * len(line.text))))}"
            f' lengthAdjust="spacingAndGlyphs">{escape(line.text)}</text>'
        )
    # The QR code, top right, on whole modules of the square.
    size = qr.symbol_size(scale=1, border=4)[0]
    unit = _QR_SIZE / size
    qr_x = WIDTH_MM - _MARGIN - _QR_SIZE
    qr_y = _MARGIN
    path = []
    for row, cells in enumerate(qr.matrix_iter(scale=1, border=4)):
        row_modules = "".join("1" if dark else "0" for dark in cells)
        for col, run in _runs(row_modules):
            path.append(f"M{col} {row}h{run}v1h-{run}z")
    parts.append(
        f'<g id="qr" transform="translate({_fmt(qr_x)} {_fmt(qr_y)}) scale({_fmt(unit)})"'
        f' shape-rendering="crispEdges"><path fill="{_INK}" d="{"".join(path)}"/></g>'
    )
    # The barcode, across the bottom, with its quiet zones.
    bar_area = WIDTH_MM - 2 * _MARGIN
    module = min(0.33, (bar_area - 2 * _BAR_QUIET) / len(modules))
    bar_x = (WIDTH_MM - module * len(modules)) / 2
    parts.append(f'<g id="barcode" fill="{_INK}" shape-rendering="crispEdges">')
    for start, width in _runs(modules):
        parts.append(
            f'<rect x="{_fmt(bar_x + start * module)}" y="{_BAR_TOP}"'
            f' width="{_fmt(width * module)}" height="{_BAR_HEIGHT}"/>'
        )
    parts.append("</g>")
    parts.append(
        f'<text id="token" x="{WIDTH_MM / 2}" y="{_TEXT_Y}" font-size="2.8" text-anchor="middle"'
        f' font-family="DejaVu Sans Mono, Courier New, monospace" fill="{_INK}"'
        f' letter-spacing="0.3">{escape(face.token)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def card_png(face: CardFace, scale: int = 2) -> bytes:
    """The same face as :func:`card_svg` as a PNG, ``5 * scale`` pixels a millimetre (more
    when the barcode's bars would otherwise be thinner than a pixel)."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    modules = code128_modules(face.token)
    bar_area_mm = WIDTH_MM - 2 * _MARGIN - 2 * _BAR_QUIET
    ppm = max(_PX_PER_MM * scale, math.ceil(len(modules) / bar_area_mm))
    width, height = round(WIDTH_MM * ppm), round(HEIGHT_MM * ppm)
    image = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle(
        (0, 0, width - 1, height - 1),
        radius=round(3.2 * ppm),
        fill=_BACKGROUND,
        outline=_ACCENT,
        width=max(1, round(0.5 * ppm)),
    )
    draw.rectangle((round(0.5 * ppm), 0, width - round(0.5 * ppm), round(1.6 * ppm)), fill=_ACCENT)
    text_right = round((WIDTH_MM - _MARGIN - _QR_SIZE - 2) * ppm)
    for line in _text_lines(face):
        font = _font(line.size * ppm * 1.35, bold=line.bold)
        text = _fit(draw, line.text, font, text_right - round(_MARGIN * ppm))
        draw.text(
            (round(_MARGIN * ppm), round(line.y * ppm)),
            text,
            font=font,
            fill=line.colour,
            anchor="ls",
        )
    # The QR code on whole pixels a module.
    qr = _qr(face.token)
    size = qr.symbol_size(scale=1, border=4)[0]
    unit = max(1, int(_QR_SIZE * ppm) // size)
    qr_x = round((WIDTH_MM - _MARGIN) * ppm) - unit * size
    qr_y = round(_MARGIN * ppm)
    for row, line_ in enumerate(qr.matrix_iter(scale=1, border=4)):
        for col, dark in enumerate(line_):
            if dark:
                x, y = qr_x + col * unit, qr_y + row * unit
                draw.rectangle((x, y, x + unit - 1, y + unit - 1), fill=_INK)
    # The barcode on whole pixels a module, centred.
    module = max(1, min(round(0.33 * ppm), int(bar_area_mm * ppm) // len(modules)))
    bar_x = (width - module * len(modules)) // 2
    top, bottom = round(_BAR_TOP * ppm), round((_BAR_TOP + _BAR_HEIGHT) * ppm)
    for start, run in _runs(modules):
        x = bar_x + start * module
        draw.rectangle((x, top, x + run * module - 1, bottom - 1), fill=_INK)
    font = _font(2.8 * ppm * 1.35, mono=True)
    draw.text((width // 2, round(_TEXT_Y * ppm)), face.token, font=font, fill=_INK, anchor="ms")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


@dataclass(frozen=True)
class _Line:
    role: str
    text: str
    y: float
    size: float
    bold: bool
    colour: str


def _text_lines(face: CardFace) -> list[_Line]:
    lines = [_Line("programme", _clip(face.programme, 40), 9.0, 4.2, True, _ACCENT)]
    name = _clip(face.member_name or "", 40)
    if name:
        lines.append(_Line("member-name", name, 17.0, 3.4, True, _INK))
    lines.append(_Line("member-id", f"Member {_clip(face.member_id, 36)}", 22.0, 2.4, False, _INK))
    status = f"{face.points:,} points".replace(",", "\u202f")
    tier = _clip(face.tier or "", 24)
    if tier:
        status = f"{tier} \u00b7 {status}"
    lines.append(_Line("status", status, 29.0, 3.2, False, _INK))
    return lines


def _title(face: CardFace) -> str:
    who = f" - {face.member_name}" if face.member_name else ""
    return _printable(f"{face.programme}{who}")


def _clip(text: str, limit: int) -> str:
    text = _printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _printable(text: str) -> str:
    """``text`` without what XML 1.0 cannot carry (control characters, lone surrogates,
    U+FFFE/U+FFFF) and with any run of white space as one space."""
    kept = []
    for ch in text:
        code = ord(ch)
        if ch in "\t\n\r":
            kept.append(" ")
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
            continue
        else:
            kept.append(ch)
    return " ".join("".join(kept).split())


def _runs(modules: str) -> list[tuple[int, int]]:
    """The bars of a module string as (first module, width in modules)."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, m in enumerate(modules + "0"):
        if m == "1" and start is None:
            start = i
        elif m != "1" and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def _qr(data: str) -> segno.QRCode:
    if not data:
        raise ValueError("nothing to encode in a QR code")
    return segno.make_qr(data, error="m", boost_error=False)


def _check_code128(data: str) -> None:
    if not data:
        raise ValueError("nothing to encode in a Code 128 barcode")
    if not data.isascii() or any(ord(ch) < 32 or ord(ch) == 127 for ch in data):
        raise ValueError("Code 128 carries printable ASCII only")


def _fmt(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _font(pixels: float, *, bold: bool = False, mono: bool = False) -> ImageFont.ImageFont:
    """A TrueType font when Pillow finds one (DejaVu ships with most systems), else Pillow's
    own default at the requested size."""
    size = max(8, round(pixels))
    names = (
        ("DejaVuSansMono.ttf",)
        if mono
        else (("DejaVuSans-Bold.ttf",) if bold else ("DejaVuSans.ttf",))
    )
    for name in names:
        try:
            return ImageFont.truetype(name, size)  # type: ignore[return-value]
        except OSError:
            continue
    return ImageFont.load_default(size)  # type: ignore[return-value]


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    """``text`` shortened with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "\u2026", font=font) > width:
        text = text[:-1]
    return text + "\u2026"
