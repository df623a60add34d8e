"""``STORE/reports/trends.html``: prevalence of each code over weeks and months, and a table per clinician.

A self-contained, offline page like the run report (``pipeline.report.html``): plotly.js embedded once,
a Content-Security-Policy that forbids every network request, jinja2 autoescape, figure specs as
script-safe JSON. It shows counts and shares only (no participant text); clinicians appear under their
de-identified pseudonym or a hashed group id (see ``pipeline.incoming.watch.group_identity``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from pipeline.io import atomic_write_text
from pipeline.report.html import _CSP, _FIGURES_TAIL, _STYLE, _layout, _pct, _plotly_js, json_for_script

__all__ = ["trend_figures", "write_trends"]


def _names(codebook: Any) -> dict[str, tuple[str, str]]:
    """Code or parent id -> (name, colour)."""
    if codebook is None:
        return {}
    out = {p.id: (p.name, p.colour) for p in codebook.parents}
    out.update({c.id: (c.name, c.colour) for c in codebook.codes})
    return out


def _lines(table: pd.DataFrame, period: str, ids: list[str], names: dict[str, tuple[str, str]],
           title: str) -> dict[str, Any]:
    t = table[(table["period"] == period) & (table["by"] == "all")]
    traces = []
    for cid in ids:
        rows = t[t["code_id"] == cid]
        if rows.empty:
            continue
        name, colour = names.get(cid, (cid, "#555555"))
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": name, "x": rows["period_label"].tolist(),
            "y": (100 * rows["share_comments"]).round(2).tolist(), "line": {"color": colour},
            "customdata": [[int(a), int(b)] for a, b in zip(rows["comments_with_code"], rows["comments"],
                                                                strict=True)],
            "hovertemplate": f"{name}<br>%{{x}}: %{{y}}% of comments (%{{customdata[0]}} of %{{customdata[1]}})"
                             "<extra></extra>",
        })
    return {"data": traces, "layout": _layout(title, 440, xaxis={"type": "category", "title": {"text": period}},
                                              yaxis={"title": {"text": "% of the period's comments"},
                                                     "gridcolor": "#ddd", "rangemode": "tozero",
                                                     "automargin": True})}


def trend_figures(table: pd.DataFrame, codebook: Any) -> dict[str, str]:
    """Plotly figure specs (script-safe JSON): themes and codes per week, themes per month."""
    names = _names(codebook)
    parents = [p.id for p in codebook.parents] if codebook is not None else []
    codes = [c for c in dict.fromkeys(table["code_id"]) if c not in set(parents)]
    figs = {
        "themes-week": _lines(table, "week", parents, names, "Share of comments per theme, by ISO week"),
        "codes-week": _lines(table, "week", codes, names, "Share of comments per code, by ISO week"),
        "themes-month": _lines(table, "month", parents, names, "Share of comments per theme, by month"),
    }
    return {k: json_for_script(v) for k, v in figs.items() if v["data"]}


def _clinician_tables(table: pd.DataFrame, ids: list[str]) -> list[dict[str, Any]]:
    """Per clinician group: rows of (week, comments, per theme 'k (share)')."""
    t = table[(table["period"] == "week") & (table["by"] == "clinician") & table["code_id"].isin(ids)]
    out = []
    for group_id, g in t.groupby("group_id", sort=True):
        label = g["group_label"].dropna().iloc[0] if g["group_label"].notna().any() else group_id
        rows = []
        for week, w in g.groupby("period_label", sort=True):
            by_code = {r.code_id: (int(r.comments_with_code), float(r.share_comments)) for r in w.itertuples()}
            rows.append({"week": week, "comments": int(w["comments"].iloc[0]),
                         "cells": [by_code.get(c, (0, 0.0)) for c in ids]})
        out.append({"label": label, "group_id": group_id, "rows": rows})
    out.sort(key=lambda d: (d["label"] == d["group_id"], d["label"]))
    return out


def write_trends(table: pd.DataFrame, codebook: Any, path: Path, *, run_id: str = "") -> Path:
    """Write the trend report for a prevalence table (see ``pipeline.incoming.watch.prevalence_table``).

    Args:
        table: The prevalence table (client segments by default).
        codebook: Codebook for names, colours and the theme (parent) list; None shows ids.
        path: The HTML file to write (atomically, mode 0600).
        run_id: The pass that wrote it, shown in the header.

    Returns:
        The written path.
    """
    names = _names(codebook)
    parents = [p.id for p in codebook.parents] if codebook is not None else list(dict.fromkeys(table["code_id"]))
    weeks = table[(table["period"] == "week") & (table["by"] == "all")]
    summary = []
    for label, w in weeks.groupby("period_label", sort=True):
        by_code = {r.code_id: (int(r.comments_with_code), float(r.share_comments)) for r in w.itertuples()}
        summary.append({"period_label": label, "comments": int(w["comments"].iloc[0]),
                        "segments": int(w["segments"].iloc[0]), "cells": [by_code.get(p, (0, 0.0)) for p in parents]})
    env = jinja2.Environment(autoescape=True, keep_trailing_newline=True)
    html = env.from_string(_TEMPLATE).render(
        csp=_CSP, style=_STYLE, plotly_js=_plotly_js(), figures=trend_figures(table, codebook), run_id=run_id,
        weeks=summary, themes=[(p, names.get(p, (p, "#555555"))) for p in parents],
        clinicians=_clinician_tables(table, parents), pct=_pct, empty=table.empty,
    )
    return atomic_write_text(Path(path), html)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Incoming feedback: trends</title><style>{{ style }} td.n{white-space:nowrap}</style></head>
<body><header><h1>Incoming feedback: trends of the working-alliance codes</h1>
<p class="muted">Updated by pass <code>{{ run_id }}</code> · client segments · share of comments (a comment
counts when one of its client segments has the code; a theme counts any of its codes) · counts only, no text.
Periods come from each comment's date (the pass's date when it has none); comments dated to the month only
count in months, not in weeks.</p></header>
<main>
<noscript><p><strong>JavaScript is off:</strong> the charts are not drawn; the tables hold every number.</p></noscript>
{% if empty %}<p id="empty">The store holds no coded client segments yet.</p>{% endif %}
{% for name in figures %}<div class="chart" id="chart-{{ name }}" role="img" aria-label="{{ name }} chart"></div>
{% endfor %}
{% if weeks %}
<h2 id="weeks">Comments per week</h2>
<div class="scroll"><table id="table-weeks"><thead><tr><th>Week</th><th class="n">Comments</th>
<th class="n">Client segments</th>{% for t, (name, colour) in themes %}<th class="n" title="{{ t }}">{{ name }}</th>
{% endfor %}</tr></thead><tbody>
{% for w in weeks %}<tr><td>{{ w.period_label }}</td><td class="n">{{ w.comments }}</td>
<td class="n">{{ w.segments }}</td>{% for k, s in w.cells %}<td class="n">{{ k }} ({{ pct(s) }})</td>
{% endfor %}</tr>{% endfor %}</tbody></table></div>
{% endif %}
<h2 id="clinicians">Per clinician</h2>
{% if not clinicians %}<p class="muted">No comment names a clinician.</p>{% endif %}
{% for c in clinicians %}<h3 class="clinician">{{ c.label }}</h3>
<div class="scroll"><table class="table-clinician" data-group="{{ c.group_id }}"><thead><tr><th>Week</th>
<th class="n">Comments</th>{% for t, (name, colour) in themes %}<th class="n" title="{{ t }}">{{ name }}</th>
{% endfor %}</tr></thead><tbody>
{% for r in c.rows %}<tr><td>{{ r.week }}</td><td class="n">{{ r.comments }}</td>{% for k, s in r.cells %}
<td class="n">{{ k }} ({{ pct(s) }})</td>{% endfor %}</tr>{% endfor %}</tbody></table></div>
{% endfor %}
</main>
""" + _FIGURES_TAIL
