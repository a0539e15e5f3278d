"""The recommendation evaluation as a Rich table, a JSON file and a self-contained HTML page
with charts (inline SVG by pygal, no script: it opens from a file or an e-mail)."""

from __future__ import annotations

import html
from pathlib import Path

import orjson
import pygal
from rich.table import Table

from opencdp.imports.report import chart, page, svg, write_json
from opencdp.recs.evaluation import METRICS, Report

__all__ = ["render_html", "table", "write_html", "write_json"]


def _rows(report: Report) -> list[tuple[str, list[str]]]:
    out = []
    for model, values in report.models.items():
        cells = [f"{values.get(metric, 0.0):.4f}" for metric in METRICS]
        cells.append(f"{report.seconds.get(model, 0.0):.2f}")
        label = model + (" (chosen)" if model == report.chosen else "")
        label += " (baseline)" if model == report.baseline else ""
        out.append((label, cells))
    return out


def _caption(report: Report) -> str:
    lift = report.lift
    versus = (
        "no baseline to compare"
        if lift is None
        else f"{report.chosen} is {lift * 100:+.1f} % NDCG@10 against {report.baseline}"
    )
    repeats = "repeat purchases allowed" if report.repeat else "seen products masked"
    return (
        f"holdout {report.holdout}; {report.users:,} customers evaluated, "
        f"{report.interactions:,} training rows, {report.items:,} products; {repeats}; {versus}"
    )


def table(report: Report, title: str = "Recommendations: offline evaluation") -> Table:
    """The report as a Rich table: a row per model, a column per metric."""
    out = Table(title=title, caption=_caption(report))
    out.add_column("model")
    for metric in (*METRICS, "fit s"):
        out.add_column(metric, justify="right")
    for label, cells in _rows(report):
        out.add_row(label, *cells, style="bold" if "(chosen)" in label else None)
    return out


def charts(report: Report) -> list[str]:
    """NDCG@10 per model, then every metric grouped by model."""
    if not report.models:
        return []
    models = list(report.models)
    ndcg = chart(pygal.Bar, "NDCG@10 per model")
    ndcg.x_labels = models
    ndcg.add("NDCG@10", [report.models[m]["ndcg@10"] for m in models])
    grouped = chart(pygal.Bar, "Every metric per model", show_legend=True)
    grouped.x_labels = list(METRICS)
    for model in models:
        grouped.add(model, [report.models[model].get(metric, 0.0) for metric in METRICS])
    return [svg(ndcg), svg(grouped)]


def render_html(report: Report, title: str = "Recommendations: offline evaluation") -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in ("model", *METRICS, "fit s"))
    rows = "".join(
        f"<tr><td>{esc(label)}</td>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>"
        for label, cells in _rows(report)
    )
    figures = "".join(f'<figure class="chart">{image}</figure>' for image in charts(report))
    raw = esc(orjson.dumps(report.to_document(), option=orjson.OPT_INDENT_2).decode())
    body = f"""<p>{esc(_caption(report))}</p>
<table><tr>{head}</tr>{rows}</table>
<h2>Charts</h2>{figures}
<h2>Raw report</h2><details><summary>JSON</summary><pre>{raw}</pre></details>"""
    numbers = (
        "td, th { text-align: right; }\ntd:first-child, th:first-child { text-align: left; }\n"
    )
    return page(title, body, numbers)


def write_html(
    report: Report, path: Path, title: str = "Recommendations: offline evaluation"
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report, title), encoding="utf-8")
    return path
