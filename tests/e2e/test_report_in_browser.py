"""The import report page, opened in a real headless Chromium: its charts must have a real size.

An SVG that carries only a ``viewBox`` inside an ``inline-block`` box has no width to take, and
Chromium draws it 0 px wide; nothing short of a browser's layout shows that. The browser is
Debian's ``chromium`` driven by Playwright (no ``playwright install``): when either is missing a
local run skips, a CI run (``CI=true``) fails.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from typer.testing import CliRunner

from opencdp.cli.main import app
from tests.conftest import CI

pytestmark = pytest.mark.e2e

# Wide enough to read: pygal draws these charts for 720 x 320.
MIN_WIDTH = 200
MIN_HEIGHT = 200

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    # Without these Chromium tries to reach the internet and fails noisily.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

MAPPING = """
kind: orders
locale: de_DE
constants: {currency: EUR}
fields:
  order_id: ID
  user_id: {column: Kunde, type: email}
  timestamp: {column: Datum, type: datetime}
  total: {column: Summe, type: decimal}
"""


def _missing(what: str) -> NoReturn:
    message = f"the report page test needs {what}"
    if CI:
        pytest.fail(f"{message}; `make install` installs both", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium under Playwright, for the module's tests."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package 'playwright' (the dev extra)")
    executable = shutil.which("chromium")
    if executable is None:
        _missing("a 'chromium' on PATH (Debian package chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def checked_report(tmp_path: Path) -> Path:
    """``opencdp import orders FILE --check --report-dir DIR`` on a small CSV; the page's path."""
    data = tmp_path / "orders.csv"
    rows = [
        [str(i), f"user{i % 7}@example.com", f"2024-{1 + i % 6:02d}-{1 + i % 27:02d}", f"{i},50 €"]
        for i in range(1, 41)
    ]
    rows.append(["41", "not-an-email", "31.31.2024", "zwölf"])
    with data.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["ID", "Kunde", "Datum", "Summe"], *rows])
    spec = tmp_path / "mapping.yaml"
    spec.write_text(MAPPING, encoding="utf-8")
    report_dir = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "import", "orders", str(data), "-m", str(spec), "--check",
            "--report-dir", str(report_dir), "--data-dir", str(tmp_path / "data"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    page = report_dir / "report.html"
    assert page.is_file()
    return page


def test_every_chart_in_the_report_page_has_a_real_size(browser: Any, tmp_path: Path) -> None:
    # Given the report page a check writes
    page_path = checked_report(tmp_path)
    # When Chromium opens it from the file, as a person would
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_path.as_uri(), wait_until="load")
    # Then it shows its charts, each one wide and tall enough to read
    charts = page.locator("figure.chart > svg")
    count = charts.count()
    assert count >= 3, f"expected the column, month and distribution charts; found {count}"
    sizes = [charts.nth(i).bounding_box() for i in range(count)]
    titles = [charts.nth(i).locator("title").first.text_content() for i in range(count)]
    too_small = [
        (title, box)
        for title, box in zip(titles, sizes, strict=True)
        if box is None or box["width"] < MIN_WIDTH or box["height"] < MIN_HEIGHT
    ]
    assert not too_small, f"charts drawn smaller than {MIN_WIDTH}x{MIN_HEIGHT} px: {too_small}"
    # And none of them is wider than the page: no sideways scrolling to read one
    page_width = page.evaluate("document.documentElement.clientWidth")
    assert all(box is not None and box["width"] <= page_width for box in sizes)
    # And the page logged no error
    assert errors == []
    page.close()
