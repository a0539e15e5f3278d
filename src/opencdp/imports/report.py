"""The data-quality report as a Rich table, a JSON file and a self-contained HTML page.

The HTML page embeds its charts as inline SVG drawn by pygal (with pygal's JavaScript turned
off: ``js = []``), so it opens from a file, an e-mail attachment or an air-gapped machine with
nothing fetched from anywhere.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import orjson
import pygal
from pygal.style import CleanStyle
from rich.console import Console
from rich.table import Table

_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def write_json(report: dict[str, Any], path: Path) -> Path:
    """Write the report as indented JSON; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2, default=str))
    return path


def print_report(report: dict[str, Any], console: Console) -> None:
    """The report as Rich tables: summary, findings, then one line per column."""
    summary = Table(title=f"{report.get('file', '')}: {report['kind']} ({report.get('mode')})")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    for label, value in _summary_rows(report):
        summary.add_row(label, value)
    console.print(summary)
    if report["issues"]:
        findings = Table(title="Findings", show_header=False)
        findings.add_column("")
        for text in report["issues"]:
            findings.add_row(f"[yellow]•[/yellow] {text}")
        console.print(findings)
    else:
        console.print("[green]No data-quality problems found.[/green]")
    cols = Table(title="Columns")
    for name in ("column", "mapped to", "type", "null %", "empty %", "invalid", "min", "max"):
        cols.add_column(
            name, justify="left" if name in ("column", "mapped to", "type") else "right"
        )
    for c in report["columns"]:
        cols.add_row(
            c["column"],
            c.get("mapped_to", "-"),
            c.get("type", "-"),
            f"{c['null_rate'] * 100:.1f}",
            f"{c['empty_rate'] * 100:.1f}",
            f"[red]{c['invalid']}[/red]" if c.get("invalid") else str(c.get("invalid", "-")),
            _fmt(c.get("min")),
            _fmt(c.get("max")),
        )
    console.print(cols)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)[:19]


def _summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("rows", f"{report['rows']:,}"),
        ("unreadable rows", f"{report['rows_unreadable']:,}"),
        ("rows refused (would be quarantined)", f"{report['rows_rejected']:,}"),
        ("invalid e-mails", f"{report['emails']['invalid']:,} of {report['emails']['checked']:,}"),
        ("invalid phones", f"{report['phones']['invalid']:,} of {report['phones']['checked']:,}"),
        ("unparseable dates", f"{report['dates']['invalid']:,} of {report['dates']['checked']:,}"),
        (
            "unparseable amounts",
            f"{report['amounts']['invalid']:,} of {report['amounts']['checked']:,}",
        ),
        (
            "unparseable quantities",
            f"{report['quantities']['invalid']:,} of {report['quantities']['checked']:,}",
        ),
        ("currency conflicts", f"{report['currency_conflicts']['count']:,}"),
        ("duplicate keys", f"{report['keys']['duplicates']:,}"),
    ]
    refs = report.get("customer_refs")
    if refs is not None:
        if refs.get("checked"):
            rows.append(
                (
                    "rows pointing to unknown customers",
                    f"{refs['orphan_rows']:,} ({refs['unknown_customers']:,} customers)",
                )
            )
        else:
            rows.append(("unknown customers", "not checked"))
    ident = report["identity"]
    if ident.get("simulated", True):
        rows += [
            ("profiles the rows become", f"{ident['profiles']:,}"),
            ("merges identity would make", f"{ident['merges']:,}"),
            ("identifiers left out (limits)", f"{ident['conflicts']:,}"),
        ]
    imported = report.get("imported")
    if imported:
        rows += [
            ("run", str(report.get("run"))),
            ("messages accepted", f"{imported['accepted']:,}"),
            ("new events", f"{imported['new_events']:,}"),
            ("products upserted", f"{imported['products']:,}"),
            ("quarantined", f"{imported['quarantined']:,}"),
            ("profiles created", f"{imported['profiles_created']:,}"),
            ("merges created", f"{imported['merges_created']:,}"),
        ]
    return rows


# -- HTML --------------------------------------------------------------------------------------


def chart(kind: type[Any], title: str, **options: Any) -> Any:
    chart = kind(
        js=[],  # no script fetched from a CDN: the page must be self-contained
        style=CleanStyle,
        width=720,
        height=320,
        # width/height attributes besides the viewBox: a reader that drops the page's CSS
        # (an e-mail client) still draws the chart at its size instead of 0 px wide.
        explicit_size=True,
        title=title,
        show_legend=options.pop("show_legend", False),
        disable_xml_declaration=True,
        **options,
    )
    return chart


def svg(chart: Any) -> str:
    return _COMMENT.sub("", chart.render(is_unicode=True))


def charts(report: dict[str, Any]) -> list[str]:
    """The report's charts as inline SVG strings."""
    out: list[str] = []
    columns = report["columns"]
    if columns:
        c = chart(
            pygal.HorizontalBar, "Null, empty and invalid values per column (%)", show_legend=True
        )
        c.x_labels = [col["column"] for col in columns]
        c.add("null", [round(col["null_rate"] * 100, 2) for col in columns])
        c.add("empty", [round(col["empty_rate"] * 100, 2) for col in columns])
        c.add("invalid", [round(col.get("invalid_rate", 0) * 100, 2) for col in columns])
        out.append(svg(c))
    for col in columns:
        months = col.get("by_month")
        if months:
            c = chart(pygal.Bar, f"Rows per month: {col['column']}", x_label_rotation=45)
            c.x_labels = list(months)
            c.add(col["column"], list(months.values()))
            out.append(svg(c))
        histogram = col.get("histogram")
        if histogram:
            c = chart(pygal.Bar, f"Distribution of {col['column']}")
            c.x_labels = list(histogram)
            c.add(col["column"], list(histogram.values()))
            out.append(svg(c))
    imported = report.get("imported")
    outcome = {
        "imported": imported["accepted"] if imported else 0,
        "quarantined": imported["quarantined"] if imported else report["rows_rejected"],
        "unreadable": report["rows_unreadable"],
    }
    if not imported:
        outcome["would import"] = max(0, report["rows_readable"] - report["rows_rejected"])
        del outcome["imported"]
    if any(outcome.values()):
        c = chart(pygal.Pie, "What happens to the rows", show_legend=True)
        for label, n in outcome.items():
            if n:
                c.add(label, n)
        out.append(svg(c))
    return out


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page: summary, findings, column table, charts, raw JSON."""
    esc = html.escape
    title = f"Data quality: {report.get('file', '')} ({report['kind']}, {report.get('mode')})"
    summary = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _summary_rows(report)
    )
    findings = (
        "".join(f"<li>{esc(t)}</li>" for t in report["issues"])
        or "<li>No data-quality problems found.</li>"
    )
    head = ("column", "mapped to", "type", "rows", "null %", "empty %", "invalid", "min", "max")
    col_rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{esc(str(v))}</td>"
            for v in (
                c["column"],
                c.get("mapped_to", "-"),
                c.get("type", "-"),
                f"{c['rows']:,}",
                f"{c['null_rate'] * 100:.1f}",
                f"{c['empty_rate'] * 100:.1f}",
                c.get("invalid", "-"),
                _fmt(c.get("min")),
                _fmt(c.get("max")),
            )
        )
        + "</tr>"
        for c in report["columns"]
    )
    examples = []
    for c in report["columns"]:
        for e in c.get("examples", []):
            examples.append(
                f"<tr><td>{e['row']}</td><td>{esc(c['column'])}</td>"
                f"<td>{esc(str(e['value']))}</td><td>{esc(e['problem'])}</td></tr>"
            )
    figures = "".join(f'<figure class="chart">{svg}</figure>' for svg in charts(report))
    raw = esc(orjson.dumps(report, option=orjson.OPT_INDENT_2, default=str).decode())
    body = f"""<h2>Summary</h2><table>{summary}</table>
<h2>Findings</h2><ul>{findings}</ul>
<h2>Columns</h2>
<table><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>{col_rows}</table>
<h2>Examples of invalid values</h2>
<table><tr><th>row</th><th>column</th><th>value</th><th>problem</th></tr>{"".join(examples)}</table>
<h2>Charts</h2>{figures}
<h2>Raw report</h2><details><summary>JSON</summary><pre>{raw}</pre></details>"""
    return page(title, body)


def page(title: str, body: str, extra_css: str = "") -> str:
    """A self-contained HTML report page (inline CSS, no script fetched) around ``body``."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #ddd; padding: .3rem .6rem; text-align: left; }}
th {{ background: #f4f4f4; }}
.chart {{ margin: 1rem 0; max-width: 720px; }}
.chart svg {{ display: block; width: 100%; height: auto; }}
pre {{ background: #f8f8f8; padding: 1rem; overflow: auto; max-height: 30rem; }}
{extra_css}</style></head>
<body>
<h1>{html.escape(title)}</h1>
{body}
</body></html>
"""


def write_html(report: dict[str, Any], path: Path) -> Path:
    """Write the HTML page; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
