"""``topics.html``: the interactive topic view of a run (offline, self-contained).

Built like ``report.html`` (:mod:`pipeline.report.html`): plotly.js embedded once from the installed
package, a Content-Security-Policy that forbids every network request, text HTML-escaped by jinja2 or
JSON-escaped for ``<script>``. Charts: a documents map (2-D PCA of the segments' embeddings, coloured
by topic; hover shows segment id, topic and code, not text), the terms of each topic (a bar chart with
a topic menu), topics and codes over time (month) and by feedback wave. Candidate themes are listed
with their terms, suggested label and representative de-identified quotes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from pipeline.coders.topics import TopicCoder
from pipeline.io import atomic_write_text
from pipeline.report.data import OKABE_ITO
from pipeline.report.html import _CSP, _FIGURES_TAIL, _STYLE, _plotly_js, json_for_script

__all__ = ["MAX_MAP_POINTS", "topic_figures", "write_topics_html"]

MAX_MAP_POINTS = 6000  # beyond this the map shows every k-th segment (deterministic)
_PALETTE = OKABE_ITO[:-1] + ("#999999", "#6A3D9A", "#B15928", "#1B9E77", "#7570B3", "#E7298A", "#66A61E")


def _layout(title: str, height: int, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "height": height, "margin": {"l": 10, "r": 10, "t": 50, "b": 40},
            "font": {"family": "system-ui, sans-serif", "size": 12}, "paper_bgcolor": "white",
            "plot_bgcolor": "white", **extra}


def _map_points(assigned: pd.DataFrame, embeddings: np.ndarray, rows: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    x = embeddings[rows].astype(np.float64)
    if len(x) < 3:
        return np.zeros((len(x), 2))
    return PCA(n_components=2, svd_solver="full").fit_transform(x - x.mean(axis=0))


def topic_figures(coder: TopicCoder, segments: pd.DataFrame, assigned: pd.DataFrame, embeddings: np.ndarray,
                  prevalence: pd.DataFrame) -> dict[str, str]:
    """Plotly figure specs (``{data, layout}``) as script-safe JSON: map, terms, month, wave, codes."""
    info = {r["topic_id"]: r for r in coder.topics_}
    colour = {t: _PALETTE[i % len(_PALETTE)] for i, t in enumerate(sorted(info))}
    position = {sid: i for i, sid in enumerate(segments["segment_id"].astype(str))}
    rows = np.array([position[s] for s in assigned["segment_id"]], dtype=np.int64)
    keep = np.arange(len(rows))[:: max(1, -(-len(rows) // MAX_MAP_POINTS))]
    xy = _map_points(assigned, embeddings, rows[keep]) if len(keep) else np.zeros((0, 2))
    topics = assigned["topic"].to_numpy()[keep]
    ids = assigned["segment_id"].to_numpy()[keep]
    figs: dict[str, Any] = {}
    traces = []
    for tid in sorted(set(topics.tolist())):
        m = topics == tid
        r = info.get(tid)
        name = f"{tid}: {r['label']}" if r else "-1: outlier"
        code = r["code_id"] if r else ""
        traces.append({"type": "scattergl", "mode": "markers", "name": name, "x": np.round(xy[m, 0], 4).tolist(),
                       "y": np.round(xy[m, 1], 4).tolist(), "customdata": [[s, code] for s in ids[m]],
                       "marker": {"size": 5, "opacity": 0.7, "color": colour.get(tid, "#bbbbbb")},
                       "hovertemplate": f"{name}<br>segment %{{customdata[0]}}<br>code %{{customdata[1]}}"
                                        "<extra></extra>"})
    figs["map"] = {"data": traces, "layout": _layout(
        f"Documents map: {len(keep)} segments, 2-D PCA of their embeddings", 560,
        xaxis={"zeroline": False, "showticklabels": False}, yaxis={"zeroline": False, "showticklabels": False},
        legend={"font": {"size": 10}})}
    bars, buttons = [], []
    order = sorted(info)
    for i, tid in enumerate(order):
        r = info[tid]
        bars.append({"type": "bar", "orientation": "h", "x": r["weights"], "y": r["top_terms"], "visible": i == 0,
                     "name": str(tid), "marker": {"color": colour[tid]},
                     "hovertemplate": "%{y}: %{x:.3f}<extra></extra>"})
        buttons.append({"label": f"{tid}: {r['label'][:40]}", "method": "update",
                        "args": [{"visible": [j == i for j in range(len(order))]}]})
    figs["terms"] = {"data": bars, "layout": _layout(
        "Terms of a topic (c-TF-IDF weight)", 420, yaxis={"autorange": "reversed", "automargin": True},
        updatemenus=[{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.18, "yanchor": "top"}])}
    for key, grouping, kind, title in (("month", "month", "topic", "Topics over time (share of segments per month)"),
                                       ("wave", "wave", "topic", "Topics per feedback wave (share of segments)"),
                                       ("codes", "month", "code", "Codes over time (share of segments per month)")):
        part = prevalence[(prevalence["grouping"] == grouping) & (prevalence["kind"] == kind)
                          & (prevalence["group"] != "(none)")]
        groups = sorted(set(part["group"]))
        data = []
        for ident, sub in part.groupby("id", sort=False):
            share = dict(zip(sub["group"], sub["share"], strict=True))
            label = str(sub["label"].iloc[0])
            trace = {"name": f"{ident}: {label}"[:60], "x": groups, "y": [share.get(g, 0.0) for g in groups],
                     "hovertemplate": f"{label[:40]}<br>%{{x}}: %{{y:.1%}}<extra></extra>"}
            trace.update({"type": "bar"} if key == "wave" else {"type": "scatter", "mode": "lines+markers"})
            if kind == "topic" and ident.lstrip("-").isdigit():
                trace["marker"] = {"color": colour.get(int(ident), "#bbbbbb")}
            data.append(trace)
        figs[key] = {"data": data, "layout": _layout(title, 460, yaxis={"tickformat": ".0%", "gridcolor": "#ddd"},
                                                      barmode="group", legend={"font": {"size": 10}})}
    return {k: json_for_script(v) for k, v in figs.items()}


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Topics {{ run_id }}</title><style>{{ style }}</style></head>
<body><header><h1>Emergent themes: topic view</h1>
<p class="muted">Run <code>{{ run_id }}</code> · <code>coder.topics.v1</code> ({{ params }}) ·
{{ n_fitted }} segments fitted ({{ speakers }}) · de-identified text only.</p></header>
<main>
<noscript><p><strong>JavaScript is off:</strong> the charts are not drawn; the tables hold the numbers.</p></noscript>
<div class="cards">
<div class="card"><b>{{ topics|length }}</b>topics</div>
<div class="card"><b>{{ n_mapped }}</b>match a code</div>
<div class="card"><b>{{ themes|length }}</b>candidate themes</div>
<div class="card"><b>{{ pct(outliers_before) }} → {{ pct(outliers_after) }}</b>outliers before → after reduction</div>
</div>
<h2 id="topics">Topics</h2>
<table id="table-topics"><thead><tr><th class="n">Topic</th><th>Label</th><th>Code / candidate</th>
<th class="n">Segments</th><th class="n">Share</th><th class="n">Similarity to nearest code</th><th>Top terms</th></tr>
</thead><tbody>{% for t in topics %}<tr><td class="n">{{ t.topic_id }}</td><td>{{ t.label }}</td>
<td><code>{{ t.code_id }}</code></td><td class="n">{{ t.size }}</td><td class="n">{{ pct(t.share) }}</td>
<td class="n">{{ "%.2f"|format(t.similarity) }}</td><td>{{ t.top_terms }}</td></tr>{% endfor %}</tbody></table>
<h2 id="map">Documents map</h2>
<div class="chart" id="chart-map" role="img" aria-label="Scatter plot of segments coloured by topic"></div>
<h2 id="terms">Terms per topic</h2>
<div class="chart" id="chart-terms" role="img" aria-label="Bar chart of the terms of one topic"></div>
<h2 id="over-time">Topics and codes over time</h2>
<div class="chart" id="chart-month" role="img" aria-label="Topic share per month"></div>
<div class="chart" id="chart-wave" role="img" aria-label="Topic share per feedback wave"></div>
<div class="chart" id="chart-codes" role="img" aria-label="Code share per month"></div>
<details><summary>Prevalence table (topics and codes per wave, month and clinician)</summary>
<div class="scroll"><table id="table-prevalence"><thead><tr><th>Grouping</th><th>Group</th><th>Kind</th><th>Id</th>
<th>Label</th><th class="n">Segments</th><th class="n">Of</th><th class="n">Share</th></tr></thead><tbody>
{% for r in prevalence %}<tr><td>{{ r.grouping }}</td><td>{{ r.group }}</td><td>{{ r.kind }}</td><td>{{ r.id }}</td>
<td>{{ r.label }}</td><td class="n">{{ r.segments }}</td><td class="n">{{ r.total }}</td>
<td class="n">{{ pct(r.share) }}</td></tr>{% endfor %}</tbody></table></div></details>
<h2 id="candidates">Candidate new themes</h2>
<p class="muted">Topics that match no code of the codebook (centred cosine to the nearest code below the
threshold), with the segments nearest each topic's centre.</p>
{% if not themes %}<p>Every topic matches a code.</p>{% endif %}
{% for t in themes %}<section class="candidate" id="cand-{{ t.candidate_id }}">
<h3><code>{{ t.candidate_id }}</code> {{ t.suggested_label }} <span class="muted">({{ t.size }} segments;
nearest code <code>{{ t.nearest_code }}</code> at {{ "%.2f"|format(t.similarity) }})</span></h3>
<p>Top terms: {{ t.top_terms|join(", ") }}</p>
{% for q in t.quotes %}<blockquote class="quote"><p>{{ q.text }}</p><footer class="muted">segment
<code>{{ q.segment_id }}</code></footer></blockquote>{% endfor %}</section>{% endfor %}
{% if drift %}<h2 id="drift">Drift against the reference</h2>
<p>Jensen-Shannon distance {{ drift.js_distance }}; outliers {{ pct(drift.outlier_share_reference) }} (reference)
→ {{ pct(drift.outlier_share_new) }} (new); {{ drift.reference_segments }} → {{ drift.new_segments }} segments.</p>
<table id="table-drift"><thead><tr><th class="n">Topic</th><th class="n">Reference</th><th class="n">New</th>
<th class="n">Change</th></tr></thead><tbody>{% for r in drift.largest_changes %}<tr><td class="n">{{ r.topic_id }}</td>
<td class="n">{{ pct(r.reference) }}</td><td class="n">{{ pct(r.new) }}</td><td class="n">{{ pct(r.change) }}</td></tr>
{% endfor %}</tbody></table>{% endif %}
</main>
""" + _FIGURES_TAIL


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{100 * float(value):.1f}%"


def write_topics_html(path: Path, *, coder: TopicCoder, segments: pd.DataFrame, assigned: pd.DataFrame,
                      embeddings: np.ndarray, prevalence: pd.DataFrame, themes: list[dict[str, Any]],
                      run_id: str = "", drift: dict[str, Any] | None = None) -> Path:
    """Write the topic view for a fitted coder and its assignments (see the module docstring)."""
    env = jinja2.Environment(autoescape=True, keep_trailing_newline=True)
    table = coder.topic_table()
    params = coder.get_params()
    html = env.from_string(_TEMPLATE).render(
        csp=_CSP, style=_STYLE, plotly_js=_plotly_js(), run_id=run_id,
        params=f"{params['reducer']} + {params['clusterer']}, seed {params['random_state']}, {params['backend']}",
        speakers=", ".join(params["speakers"]) if params["speakers"] else "all speakers",
        n_fitted=len(coder.fit_segment_ids_), topics=list(table.itertuples(index=False)),
        n_mapped=int((~table["candidate"]).sum()), themes=themes, outliers_before=coder.outlier_share_before_,
        outliers_after=coder.outlier_share_after_, prevalence=list(prevalence.itertuples(index=False)), pct=_pct,
        drift=drift, figures=topic_figures(coder, segments, assigned, embeddings, prevalence))
    return atomic_write_text(Path(path), html)
