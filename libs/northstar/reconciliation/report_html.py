"""The reconciliation report: one self-contained HTML page (inline SVG, no scripts, opens offline).

Breaches first, then per comparison a chart of variance % by day against the threshold line and a chart of
the daily totals of both sides. Input: the rows of ops.reconciliation as plain dicts.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, SupportsFloat

WIDTH, HEIGHT, PAD = 640, 220, 48
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def _num(value: SupportsFloat | None) -> float | None:
    return None if value is None else float(value)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal | float):
        return f"{float(value):,.2f}"
    return html.escape(str(value))


def _pct(value: SupportsFloat | None) -> str:
    return "-" if value is None else f"{float(value):.4f}%"


def line_chart(
    title: str, series: Mapping[str, list[tuple[date, float | None]]], threshold: float | None = None
) -> str:
    """An SVG line chart: one polyline per series over the union of its dates, an optional dashed threshold."""
    days = sorted({d for points in series.values() for d, _ in points})
    values = [v for points in series.values() for _, v in points if v is not None]
    if threshold is not None:
        values.append(threshold)
    if not days or not values:
        return f"<p>{html.escape(title)}: no data.</p>"
    low, high = min(0.0, *values), max(values)
    high = high if high > low else low + 1.0
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def x(day: date) -> float:
        return PAD + (plot_w * days.index(day) / max(len(days) - 1, 1))

    def y(value: float) -> float:
        return PAD + plot_h - (value - low) / (high - low) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="{PAD}" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{PAD}" y1="{PAD + plot_h}" x2="{PAD + plot_w}" y2="{PAD + plot_h}" stroke="#999"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{PAD + plot_h}" stroke="#999"/>',
        f'<text x="4" y="{PAD + 4}" font-size="10">{high:,.4g}</text>',
        f'<text x="4" y="{PAD + plot_h}" font-size="10">{low:,.4g}</text>',
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">{days[0]}</text>',
        f'<text x="{PAD + plot_w - 60}" y="{HEIGHT - 8}" font-size="10">{days[-1]}</text>',
    ]
    if threshold is not None:
        parts.append(
            f'<line x1="{PAD}" y1="{y(threshold):.1f}" x2="{PAD + plot_w}" y2="{y(threshold):.1f}" '
            f'stroke="#e67e22" stroke-dasharray="6 4"/><text x="{PAD + plot_w - 110}" y="{y(threshold) - 4:.1f}" '
            f'font-size="10" fill="#e67e22">threshold {threshold:g}%</text>'
        )
    for n, (name, points) in enumerate(sorted(series.items())):
        colour = COLOURS[n % len(COLOURS)]
        coords = [(x(d), y(v)) for d, v in sorted(points) if v is not None]
        if len(coords) > 1:
            text = " ".join(f"{px:.1f},{py:.1f}" for px, py in coords)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{text}"/>')
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in coords]
        parts.append(
            f'<text x="{PAD + 10 + 130 * n}" y="34" font-size="11" fill="{colour}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


HEADER = (
    "<tr><th>comparison</th><th>day</th><th>currency</th><th>measure</th><th>left</th><th>right</th>"
    "<th>variance</th><th>variance %</th><th>threshold %</th><th>status</th></tr>"
)


def row_html(r: Mapping[str, Any]) -> str:
    """One figure as a table row (its status in red when it is not ok)."""
    css = "breach" if r["status"] != "ok" else ""
    return (
        f"<tr><td class='t'>{html.escape(str(r['comparison']))}</td><td>{r['business_date']}</td>"
        f"<td>{html.escape(str(r['currency']))}</td><td>{html.escape(str(r['measure']))}</td>"
        f"<td>{_fmt(r['left_value'])}</td><td>{_fmt(r['right_value'])}</td><td>{_fmt(r['abs_variance'])}</td>"
        f"<td>{_pct(r['variance_pct'])}</td><td>{_pct(r['threshold_pct'])}</td>"
        f"<td class='{css}'>{html.escape(str(r['status']))}</td></tr>"
    )


def _not_run_section(not_run: list[Mapping[str, Any]]) -> list[str]:
    """The comparisons that could not run (an input table missing), each with what builds it."""
    if not not_run:
        return []
    return [
        f"<h2 class='breach'>Not run ({len(not_run)})</h2><p>An input table is missing: these comparisons "
        "were not computed and prove nothing until it is built.</p><ul>",
        *[
            f"<li><b>{html.escape(str(r['comparison']))}</b>: {html.escape(str(r.get('detail') or ''))}</li>"
            for r in not_run
        ],
        "</ul>",
    ]


def render(rows: Iterable[Mapping[str, Any]], title: str) -> str:
    """The whole page for the rows of one reconciliation run (ops.reconciliation)."""
    everything = sorted(
        rows, key=lambda r: (r["comparison"], r["business_date"], r["currency"], r["measure"])
    )
    not_run = [r for r in everything if r["status"] == "not_run"]
    rows = [r for r in everything if r["status"] != "not_run"]
    breaches = [r for r in rows if r["status"] != "ok"]
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "th{background:#f3f3f3}td.t{text-align:left}.breach{color:#b00020;font-weight:bold}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(rows)} figures checked, <span class='{'breach' if breaches else ''}'>{len(breaches)} "
        f"outside their threshold</span>. Variance is |left - right| / |right|; right is the reference.</p>",
    ]
    out += _not_run_section(not_run)
    out.append("<h2>Breaches</h2>")
    header = HEADER
    if breaches:
        out += ["<table>", header, *map(row_html, breaches), "</table>"]
    else:
        out.append("<p>None: every figure is within its threshold.</p>")
    by_comparison: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by_comparison[str(r["comparison"])].append(r)
    for name, items in by_comparison.items():
        first = items[0]
        out.append(
            f"<h2>{html.escape(name)}</h2><p>left: {html.escape(str(first['left_table']))}, right: "
            f"{html.escape(str(first['right_table']))}</p>"
        )
        for measure in sorted({str(r["measure"]) for r in items}):
            chosen = [r for r in items if r["measure"] == measure]
            variance = defaultdict(list)
            totals = defaultdict(list)
            for r in chosen:
                variance[str(r["currency"])].append((r["business_date"], _num(r["variance_pct"])))
                totals[f"left {r['currency']}"].append((r["business_date"], _num(r["left_value"])))
                totals[f"right {r['currency']}"].append((r["business_date"], _num(r["right_value"])))
            out.append(line_chart(f"{measure}: variance % by day", variance, _num(first["threshold_pct"])))
            out.append(line_chart(f"{measure}: daily totals", totals))
        out += [
            "<details><summary>all figures</summary><table>",
            header,
            *map(row_html, items),
            "</table></details>",
        ]
    out.append("</body></html>")
    return "\n".join(out)
