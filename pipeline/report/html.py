"""Self-contained HTML pages of a run: ``report.html`` (charts + tables) and ``viewer.html`` (coded transcripts).

Both pages work offline: plotly.js is embedded once from the installed plotly package, the viewer's
script is a few lines of vanilla JavaScript, a Content-Security-Policy forbids every network request,
and all text is HTML-escaped (jinja2 autoescape) or JSON-escaped (``<``, ``>``, ``&`` as unicode escapes).
Only what the run folder holds is shown: de-identified text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from pipeline.io import atomic_write_text
from pipeline.report.data import SPEAKER_COLOURS, SPEAKERS, load_run, load_run_codebook, pick_coder, report_data

__all__ = ["viewer_data", "write_report", "write_viewer"]

_ENV: jinja2.Environment | None = None
_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src data: blob:; font-src data:")
_BY_TITLES = {"case": "Case", "session": "Session", "clinician": "Clinician", "month": "Month collected"}


def json_for_script(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>``, ``&`` and U+2028/9 become unicode escapes."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_plain)
    for ch in ("<", ">", "&", "\u2028", "\u2029"):
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _env() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = jinja2.Environment(loader=jinja2.DictLoader({"report.html.j2": _REPORT, "viewer.html.j2": _VIEWER}),
                                  autoescape=True, keep_trailing_newline=True)
    return _ENV


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


# --- report -------------------------------------------------------------------------------------


def write_report(run_dir: Path, path: Path | None = None, *, gold: Path | None = None, coder: str | None = None,
                 codebook: Any = None) -> Path:
    """Write the run report: summary, prevalence, co-occurrence, speakers, scores, agreement, quotes.

    Args:
        run_dir: The run folder (see ``pipeline.stages.run_paths``).
        path: Output file; default ``run_dir/report.html``.
        gold: Optional human-coded gold CSV (adds an agreement table).
        coder: Coder to report on; default ``coder.combined.v1``, else the first coder.
        codebook: Codebook for names and colours; default the one named in the run's manifest.

    Returns:
        The written path.
    """
    run_dir = Path(run_dir)
    path = Path(path) if path is not None else run_dir / "report.html"
    data = report_data(run_dir, coder=coder, gold=gold, codebook=codebook)
    html = _env().get_template("report.html.j2").render(
        csp=_CSP, style=_STYLE, plotly_js=_plotly_js(), d=data, figures=_figures(data), by_titles=_BY_TITLES,
        topics_page=(run_dir / "topics.html").is_file(),
        speakers=SPEAKERS, fmt=_fmt, pct=_pct, names=dict(zip(data["codes"]["code_id"], data["codes"]["name"],
                                                            strict=True)),
    )
    return atomic_write_text(path, html)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * float(value):.1f}%"


def _layout(title: str, height: int, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "height": height, "margin": {"l": 10, "r": 10, "t": 50, "b": 40},
            "font": {"family": "system-ui, sans-serif", "size": 12}, "paper_bgcolor": "white",
            "plot_bgcolor": "white", **extra}


def _figures(d: dict[str, Any]) -> dict[str, str]:
    """Plotly figure specs (``{data, layout}``) as script-safe JSON, one per chart."""
    prev, codes = d["prevalence"], d["codes"]
    labels = [f"{n} ({c})" if n != c else c for c, n in zip(codes["code_id"], codes["name"], strict=True)]
    short = list(codes["name"])
    rows = len(labels)
    figs: dict[str, Any] = {}
    figs["prevalence"] = {
        "data": [{"type": "bar", "orientation": "h", "y": labels, "x": prev["segments"].tolist(),
                  "marker": {"color": prev["colour"].tolist(), "line": {"color": "#333", "width": 0.5}},
                  "customdata": (100 * prev["share"]).round(1).tolist(),
                  "hovertemplate": "%{y}<br>%{x} segments (%{customdata}% of all)<extra></extra>"}],
        "layout": _layout("Segments per code", 120 + 26 * rows,
                          yaxis={"autorange": "reversed", "automargin": True},
                          xaxis={"title": {"text": "segments"}, "gridcolor": "#ddd"}),
    }
    co = d["cooccurrence"]
    figs["cooccurrence"] = {
        "data": [{"type": "heatmap", "z": co.to_numpy().tolist(), "x": short, "y": short, "colorscale": "Cividis",
                  "hovertemplate": "%{y} + %{x}: %{z} segments<extra></extra>"}],
        "layout": _layout("Segments with both codes", 200 + 26 * rows,
                          yaxis={"autorange": "reversed", "automargin": True},
                          xaxis={"automargin": True, "tickangle": -40}),
    }
    sp = d["speakers"]
    figs["speakers"] = {
        "data": [{"type": "bar", "orientation": "h", "name": role, "y": labels, "x": sp[role].tolist(),
                  "marker": {"color": SPEAKER_COLOURS[role]},
                  "hovertemplate": f"%{{y}}<br>{role}: %{{x}}<extra></extra>"} for role in SPEAKERS],
        "layout": _layout("Who says it: coded segments by speaker", 140 + 26 * rows, barmode="stack",
                          yaxis={"autorange": "reversed", "automargin": True},
                          xaxis={"title": {"text": "segments"}, "gridcolor": "#ddd"},
                          legend={"orientation": "h", "traceorder": "normal", "y": -0.12 - 4.0 / (140 + 26 * rows)}),
    }
    sc = d["scores"]
    figs["scores"] = {
        "data": [{"type": "bar", "x": [f"{lo:.1f}–{hi:.1f}" for lo, hi in zip(sc["low"], sc["high"], strict=True)],
                  "y": sc["assigned"].tolist(), "marker": {"color": "#0072B2"},
                  "hovertemplate": "score %{x}: %{y} assigned codes<extra></extra>"}],
        "layout": _layout("Confidence of assigned codes", 320, xaxis={"title": {"text": "score"}},
                          yaxis={"title": {"text": "assigned codes"}, "gridcolor": "#ddd", "automargin": True}),
    }
    month = d["by"]["month"]
    figs["month"] = {
        "data": [{"type": "scatter", "mode": "lines+markers", "name": name, "x": [str(i) for i in month.index],
                  "y": (month[cid] / month["segments"].where(month["segments"] > 0)).mul(100).round(2).fillna(0)
                  .tolist(), "customdata": month[cid].tolist(), "line": {"color": colour},
                  "hovertemplate": f"{name}<br>%{{x}}: %{{y}}% of segments (%{{customdata}})<extra></extra>"}
                 for cid, name, colour in zip(codes["code_id"], codes["name"], codes["colour"], strict=True)],
        "layout": _layout("Share of segments per code, by month collected", 420,
                          xaxis={"type": "category", "title": {"text": "month"}},
                          yaxis={"title": {"text": "% of the month's segments"}, "gridcolor": "#ddd",
                                 "automargin": True}),
    }
    return {k: json_for_script(v) for k, v in figs.items()}


# --- viewer -------------------------------------------------------------------------------------


def viewer_data(run_dir: Path, *, coder: str | None = None, codebook: Any = None) -> dict[str, Any]:
    """The viewer's JSON: codes, and per document its turns and coded segments with evidence.

    Returns:
        ``{"coder", "codes": [{id, name, colour}], "documents": [{id, label, type, text,
        turns: [[start, end, role, label]], segments: [[start, end, [[code index, score, evidence]]]]}]}``.
        A segment's evidence lists the reporting coder's evidence and every other coder's for that code.
    """
    tables = load_run(Path(run_dir))
    if codebook is None:
        codebook = load_run_codebook(tables, run_dir)
    from pipeline.report.data import code_info

    coder = pick_coder(tables.codes, coder)
    info = code_info(tables.codes, codebook)
    index = {cid: i for i, cid in enumerate(info["code_id"])}
    final = tables.codes[(tables.codes["coder"] == coder) & tables.codes["label"]]
    others = tables.codes[tables.codes["coder"] != coder]
    extra = {(r.segment_id, r.code_id): [] for r in final.itertuples(index=False)}
    for r in others.itertuples(index=False):
        if (r.segment_id, r.code_id) in extra:
            extra[(r.segment_id, r.code_id)].append(f"{r.coder}: {r.evidence} ({r.score:.2f})")
    seg_codes: dict[str, list[list[Any]]] = {}
    for r in final.sort_values(["segment_id", "score"], ascending=[True, False]).itertuples(index=False):
        evidence = "\n".join([f"{r.coder}: {r.evidence}", *extra[(r.segment_id, r.code_id)]])
        seg_codes.setdefault(r.segment_id, []).append([index[r.code_id], round(float(r.score), 3), evidence])
    turns = tables.turns if len(tables.turns) else _turns_from_segments(tables.segments)
    turns_by_doc = {k: g.sort_values("start_char") for k, g in turns.groupby("document_id")}
    segs_by_doc = {k: g.sort_values("start_char") for k, g in tables.segments.groupby("document_id")}
    docs = []
    for doc in tables.documents.sort_values(["source_path", "record_key"]).itertuples(index=False):
        label = doc.source_path + (f" · {doc.record_key}" if doc.record_key else "")
        segs = segs_by_doc.get(doc.document_id, pd.DataFrame(columns=["segment_id", "start_char", "end_char"]))
        dturns = turns_by_doc.get(doc.document_id, pd.DataFrame(columns=["start_char", "end_char", "speaker",
                                                                          "speaker_label"]))
        docs.append({
            "id": doc.document_id, "label": label, "type": doc.source_type, "text": doc.text,
            "turns": [[int(t.start_char), int(t.end_char), t.speaker, t.speaker_label]
                      for t in dturns.itertuples(index=False)],
            "segments": [[int(s.start_char), int(s.end_char), seg_codes[s.segment_id]]
                         for s in segs.itertuples(index=False) if s.segment_id in seg_codes],
        })
    return {"coder": coder, "run_id": str(tables.manifest.get("run_id", "")),
            "codes": [{"id": r.code_id, "name": r.name, "colour": r.colour} for r in info.itertuples(index=False)],
            "documents": docs}


def _turns_from_segments(segments: pd.DataFrame) -> pd.DataFrame:
    g = segments.groupby(["document_id", "turn_index"], as_index=False).agg(
        start_char=("start_char", "min"), end_char=("end_char", "max"), speaker=("speaker", "first"))
    g["speaker_label"] = g["speaker"].str.upper()
    return g


def write_viewer(run_dir: Path, path: Path | None = None, *, coder: str | None = None,
                 codebook: Any = None) -> Path:
    """Write ``viewer.html``: pick a document, read its turns with coded spans highlighted, filter, inspect.

    Args:
        run_dir: The run folder.
        path: Output file; default ``run_dir/viewer.html``.
        coder: Coder whose codes are highlighted; default ``coder.combined.v1``, else the first coder.
        codebook: Codebook for names and colours; default the one named in the run's manifest.

    Returns:
        The written path.
    """
    run_dir = Path(run_dir)
    path = Path(path) if path is not None else run_dir / "viewer.html"
    data = viewer_data(run_dir, coder=coder, codebook=codebook)
    html = _env().get_template("viewer.html.j2").render(csp=_CSP, style=_STYLE + _VIEWER_STYLE,
                                                        data_json=json_for_script(data), d=data)
    return atomic_write_text(path, html)


# --- templates (inline, so the package needs no data files) ---------------------------------------

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1a1a1a;
background:#fafafa;line-height:1.45}
header{background:#fff;border-bottom:1px solid #ddd;padding:1rem 2rem}
main{max-width:1100px;margin:0 auto;padding:1rem 2rem 3rem}
h1{font-size:1.5rem;margin:0} h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:2px solid #0072B2;
padding-bottom:.2rem} .muted{color:#555;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem;background:#fff}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums} thead th{background:#f0f0f0}
.swatch{display:inline-block;width:.9em;height:.9em;border:1px solid #333;vertical-align:-.1em;margin-right:.3em}
.chart{background:#fff;border:1px solid #e2e2e2;margin:.6rem 0;min-height:80px}
details{margin:.5rem 0} summary{cursor:pointer;color:#0050a0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:.8rem 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;min-width:9rem}
.card b{display:block;font-size:1.4rem}
blockquote{margin:.4rem 0;padding:.3rem .8rem;background:#fff;border-left:4px solid #999}
.scroll{overflow-x:auto}
"""

# The end of every page with charts: plotly.js once, each figure's spec as JSON, and the script that draws them.
_FIGURES_TAIL = """<script>{{ plotly_js | safe }}</script>
{% for name, spec in figures.items() %}<script type="application/json" id="fig-{{ name }}">{{ spec | safe }}</script>
{% endfor %}
<script>
(function () {
  if (!window.Plotly) { return; }
  document.querySelectorAll('script[id^="fig-"]').forEach(function (el) {
    var spec = JSON.parse(el.textContent);
    var target = document.getElementById('chart-' + el.id.slice(4));
    if (target) { Plotly.newPlot(target, spec.data, spec.layout, {displaylogo: false, responsive: true}); }
  });
})();
</script>
</body></html>
"""

_REPORT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Run report {{ d.run_id }}</title><style>{{ style }}</style></head>
<body><header><h1>Working-alliance codes: run report</h1>
<p class="muted">Run <code>{{ d.run_id or "(no manifest)" }}</code> · codes from <code>{{ d.coder }}</code> ·
de-identified text only. Every chart has a table of the same numbers below it.
{%- if topics_page %} Emergent themes and candidate new themes: <a href="topics.html">topics.html</a>.{% endif %}</p>
</header>
<main>
<noscript><p><strong>JavaScript is off:</strong> the charts are not drawn; the tables hold every number.</p></noscript>
{% set s = d.summary %}
<h2 id="corpus">Corpus</h2>
<div class="cards">
<div class="card"><b>{{ s.documents }}</b>documents</div>
<div class="card"><b>{{ s.segments }}</b>segments</div>
<div class="card"><b>{{ s.cases }}</b>cases</div>
<div class="card"><b>{{ s.quarantined_files }}</b>files quarantined</div>
<div class="card"><b>{{ s.skipped_rows }}</b>rows skipped</div>
<div class="card"><b>{{ d.review.assigned }}</b>assigned codes need review</div>
</div>
<table id="table-corpus"><thead><tr><th>What</th><th class="n">Count</th></tr></thead><tbody>
{% for k, v in s.documents_by_type.items() %}<tr><td>documents: {{ k }}</td><td class="n">{{ v }}</td></tr>{% endfor %}
{% for k, v in s.segments_by_speaker.items() %}<tr><td>segments: {{ k }}</td><td class="n">{{ v }}</td></tr>{% endfor %}
<tr><td>distinct speaker labels</td><td class="n">{{ s.speaker_labels }}</td></tr>
<tr><td>files quarantined</td><td class="n">{{ s.quarantined_files }}</td></tr>
<tr><td>rows skipped</td><td class="n">{{ s.skipped_rows }}</td></tr>
<tr><td>files repaired</td><td class="n">{{ s.repaired_files }}</td></tr>
<tr><td>rows flagged for review (all / assigned / segments)</td>
<td class="n">{{ d.review.rows }} / {{ d.review.assigned }} / {{ d.review.segments }}</td></tr>
</tbody></table>
<p class="muted">Coders in this run:
{% for c in s.coders %}<code>{{ c }}</code>{{ ", " if not loop.last }}{% endfor %}.</p>

<h2 id="prevalence">How often each code occurs</h2>
<div class="chart" id="chart-prevalence" role="img" aria-label="Bar chart of segments per code"></div>
<table id="table-prevalence"><thead><tr><th>Code</th><th>Name</th><th class="n">Segments</th>
<th class="n">% of all segments</th></tr></thead><tbody>
{% for r in d.prevalence.itertuples() %}<tr><td><span class="swatch" style="background:{{ r.colour }}"></span>
<code>{{ r.code_id }}</code></td><td>{{ r.name }}</td><td class="n">{{ r.segments }}</td>
<td class="n">{{ pct(r.share) }}</td></tr>{% endfor %}
</tbody></table>

<h2 id="month">Over time</h2>
<div class="chart" id="chart-month" role="img" aria-label="Line chart of code share by month"></div>
{% for by, title in by_titles.items() %}{% set t = d.by[by] %}
<details{{ " open" if by == "month" }}><summary>Coded segments by {{ title | lower }} ({{ t | length }} rows)</summary>
<div class="scroll"><table id="table-by-{{ by }}"><thead><tr><th>{{ title }}</th><th class="n">Segments</th>
{% for cid in t.columns[1:] %}<th class="n" title="{{ cid }}">{{ names[cid] }}</th>{% endfor %}</tr></thead>
<tbody>
{% for idx, row in t.iterrows() %}<tr><td>{{ idx }}</td>{% for v in row %}<td class="n">{{ v }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div></details>
{% endfor %}

<h2 id="cooccurrence">Codes that occur together</h2>
<div class="chart" id="chart-cooccurrence" role="img" aria-label="Heatmap of segments with both codes"></div>
<details><summary>Table: segments with both codes</summary><div class="scroll">
<table id="table-cooccurrence"><thead><tr><th></th>{% for c in d.cooccurrence.columns %}
<th class="n">{{ names[c] }}</th>{% endfor %}</tr></thead><tbody>
{% for idx, row in d.cooccurrence.iterrows() %}<tr><th>{{ names[idx] }}</th>{% for v in row %}
<td class="n">{{ v }}</td>{% endfor %}</tr>{% endfor %}</tbody></table></div></details>

<h2 id="speakers">Client or therapist?</h2>
<div class="chart" id="chart-speakers" role="img" aria-label="Stacked bars of coded segments by speaker"></div>
<table id="table-speakers"><thead><tr><th>Code</th>{% for role in speakers %}<th class="n">{{ role }}</th>
{% endfor %}<th class="n">Total</th><th class="n">Client share</th></tr></thead><tbody>
{% for r in d.speakers.to_dict("records") %}<tr><td>{{ r.name }}</td>{% for role in speakers %}
<td class="n">{{ r[role] }}</td>{% endfor %}<td class="n">{{ r.total }}</td>
<td class="n">{{ pct(r.client_share) }}</td></tr>{% endfor %}</tbody></table>

<h2 id="scores">Confidence</h2>
<div class="chart" id="chart-scores" role="img" aria-label="Histogram of scores of assigned codes"></div>
<table id="table-scores"><thead><tr><th>Score from</th><th>to</th><th class="n">Assigned codes</th></tr></thead>
<tbody>{% for r in d.scores.itertuples() %}<tr><td>{{ fmt(r.low, 1) }}</td><td>{{ fmt(r.high, 1) }}</td>
<td class="n">{{ r.assigned }}</td></tr>{% endfor %}</tbody></table>
<p>{{ d.review.assigned }} assigned codes ({{ d.review.rows }} rows in all, on {{ d.review.segments }} segments)
are flagged <code>review:</code> because the coders disagree or the score is low.</p>

{% if d.agreement is not none %}
<h2 id="agreement">Agreement with the human coding</h2>
<table id="table-agreement"><thead><tr><th>Code</th><th class="n">Segments</th><th class="n">Support</th>
<th class="n">Kappa</th><th class="n">Alpha</th><th class="n">Precision</th><th class="n">Recall</th>
<th class="n">F1</th><th class="n">F1 95% CI</th></tr></thead><tbody>
{% for r in d.agreement.itertuples() %}<tr><td>{{ names.get(r.code_id, r.code_id) }}</td>
<td class="n">{{ r.n }}</td><td class="n">{{ r.support }}</td><td class="n">{{ fmt(r.kappa) }}</td>
<td class="n">{{ fmt(r.alpha) }}</td><td class="n">{{ fmt(r.precision) }}</td><td class="n">{{ fmt(r.recall) }}</td>
<td class="n">{{ fmt(r.f1) }}</td><td class="n">{{ fmt(r.f1_low) }}–{{ fmt(r.f1_high) }}</td></tr>{% endfor %}
</tbody></table>
<p class="muted">“–”: undefined (the code was never used by either side).</p>
{% endif %}

<h2 id="quotes">Representative quotes</h2>
<p class="muted">Per code, the five coded segments with the highest score.</p>
{% for r in d.codes.itertuples() %}{% set qs = d.quotes[r.code_id] %}
<h3><span class="swatch" style="background:{{ r.colour }}"></span>{{ r.name }} <code>{{ r.code_id }}</code></h3>
{% if not qs %}<p class="muted">No segment has this code.</p>{% endif %}
{% for q in qs %}<blockquote style="border-left-color:{{ r.colour }}" class="quote"><p>{{ q.text }}</p>
<footer class="muted">{{ q.speaker }} · <code>{{ q.source_path }}</code>
{%- if q.record_key %} {{ q.record_key }}{% endif %}
· position {{ q.start_char }} · score {{ fmt(q.score) }} · {{ q.evidence }}</footer></blockquote>{% endfor %}
{% endfor %}
</main>
""" + _FIGURES_TAIL

_VIEWER_STYLE = """
.layout{display:grid;grid-template-columns:17rem 1fr 19rem;gap:1rem;max-width:1500px;margin:0 auto;padding:1rem}
aside{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8rem;align-self:start;position:sticky;
top:1rem;max-height:calc(100vh - 2rem);overflow:auto;font-size:.9rem}
#doc{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1rem 1.4rem;min-height:60vh}
select{width:100%;font-size:.9rem;padding:.2rem} label{display:block;margin:.15rem 0;cursor:pointer}
.turn{display:grid;grid-template-columns:9rem 1fr;gap:.6rem;padding:.35rem 0;border-bottom:1px solid #eee}
.who{font-size:.8rem;font-weight:600;color:#444;overflow-wrap:anywhere}
.who.client{color:#0072B2} .who.therapist{color:#B35C00}
.said{white-space:pre-wrap}
mark.span{background:var(--bg);color:inherit;border-radius:2px;cursor:pointer;padding:0 1px;
-webkit-box-decoration-break:clone;box-decoration-break:clone}
mark.span:focus,mark.span:hover{outline:2px solid #000;outline-offset:1px}
mark.span.review{text-decoration:underline dotted #D55E00 2px;text-underline-offset:4px}
#doc h2{margin-top:0}
#evidence h3{font-size:1rem;margin:.2rem 0} #evidence pre{white-space:pre-wrap;font-size:.8rem;background:#f5f5f5;
padding:.3rem;margin:.2rem 0 .6rem} .flag{color:#A33F00;font-weight:600}
"""

_VIEWER = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Coded transcripts {{ d.run_id }}</title><style>{{ style }}</style></head>
<body><header><h1>Coded transcripts</h1>
<p class="muted">Run <code>{{ d.run_id or "(no manifest)" }}</code> · codes from <code>{{ d.coder }}</code> ·
de-identified text. Hover, click or Tab to a highlighted span to see why it was coded.</p></header>
<noscript><p style="padding:1rem"><strong>This viewer needs JavaScript.</strong> report.html and coded_segments.csv
hold the same codes without it.</p></noscript>
<div class="layout">
<aside aria-label="Filters">
<label for="docpick"><b>Document</b></label><select id="docpick"></select>
<p><label for="minscore"><b>Minimum score</b> <output id="minscore-value">0.00</output></label>
<input type="range" id="minscore" min="0" max="1" step="0.05" value="0" style="width:100%"></p>
<p><b>Codes</b> <button type="button" id="all-on">all</button> <button type="button" id="all-off">none</button></p>
<div id="codefilter"></div>
<p class="muted"><span id="count" data-count="0">0</span> highlighted spans in this document.</p>
</aside>
<main id="doc" aria-live="polite"></main>
<aside id="evidence" aria-label="Evidence" aria-live="polite"><p class="muted">Select a highlighted span.</p></aside>
</div>
<script type="application/json" id="viewer-data">{{ data_json | safe }}</script>
<script>
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('viewer-data').textContent);
  var pick = document.getElementById('docpick'), slider = document.getElementById('minscore');
  var filter = document.getElementById('codefilter'), docEl = document.getElementById('doc');
  var evid = document.getElementById('evidence'), count = document.getElementById('count');
  var on = data.codes.map(function () { return true; });

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function hexA(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + a + ')';
  }
  data.documents.forEach(function (d, i) {
    var o = el('option', '', d.label + ' (' + d.segments.length + ' coded)'); o.value = i; pick.appendChild(o);
  });
  data.codes.forEach(function (c, i) {
    var lab = el('label'), box = el('input'), sw = el('span', 'swatch');
    box.type = 'checkbox'; box.checked = true; box.value = i; box.className = 'codebox';
    box.addEventListener('change', function () { on[i] = box.checked; render(); });
    sw.style.background = c.colour;
    lab.appendChild(box); lab.appendChild(sw); lab.appendChild(document.createTextNode(c.name));
    lab.title = c.id; filter.appendChild(lab);
  });
  function setAll(v) {
    filter.querySelectorAll('input').forEach(function (b, i) { b.checked = v; on[i] = v; }); render();
  }
  document.getElementById('all-on').addEventListener('click', function () { setAll(true); });
  document.getElementById('all-off').addEventListener('click', function () { setAll(false); });
  slider.addEventListener('input', function () {
    document.getElementById('minscore-value').textContent = Number(slider.value).toFixed(2); render();
  });
  pick.addEventListener('change', function () { render(); });

  function visible(codes) {
    var min = Number(slider.value);
    return codes.filter(function (c) { return on[c[0]] && c[1] >= min; });
  }
  function show(codes) {
    evid.textContent = '';
    codes.forEach(function (c) {
      var code = data.codes[c[0]], h = el('h3');
      var sw = el('span', 'swatch'); sw.style.background = code.colour;
      h.appendChild(sw); h.appendChild(document.createTextNode(code.name));
      evid.appendChild(h);
      evid.appendChild(el('div', 'muted', code.id + ' · score ' + c[1].toFixed(2)));
      if (c[2].indexOf(data.coder + ': review:') === 0) { evid.appendChild(el('div', 'flag', 'Needs review')); }
      evid.appendChild(el('pre', '', c[2]));
    });
  }
  function mark(text, codes) {
    var m = el('mark', 'span', text), shadows = [];
    m.tabIndex = 0;
    m.style.setProperty('--bg', hexA(data.codes[codes[0][0]].colour, 0.28));
    codes.forEach(function (c, k) {
      shadows.push('inset 0 -' + (3 * (k + 1)) + 'px 0 ' + data.codes[c[0]].colour);
    });
    m.style.boxShadow = shadows.join(',');
    m.style.paddingBottom = (3 * codes.length - 2) + 'px';
    m.title = codes.map(function (c) { return data.codes[c[0]].name + ' (' + c[1].toFixed(2) + ')'; }).join('; ');
    m.setAttribute('aria-label', 'coded: ' + m.title);
    m.dataset.codes = codes.map(function (c) { return data.codes[c[0]].id; }).join(' ');
    if (codes.some(function (c) { return c[2].indexOf(data.coder + ': review:') === 0; })) {
      m.classList.add('review');
    }
    ['mouseenter', 'focus', 'click'].forEach(function (ev) {
      m.addEventListener(ev, function () { show(codes); });
    });
    return m;
  }
  function render() {
    var d = data.documents[Number(pick.value) || 0], n = 0, si = 0;
    docEl.textContent = '';
    if (!d) { return; }
    docEl.appendChild(el('h2', '', d.label));
    var turns = d.turns.length ? d.turns : [[0, d.text.length, 'unknown', '']];
    turns.forEach(function (t) {
      var row = el('div', 'turn'), said = el('div', 'said'), pos = t[0];
      row.appendChild(el('div', 'who ' + t[2], t[3] || t[2]));
      while (si < d.segments.length && d.segments[si][1] <= t[0]) { si++; }
      while (si < d.segments.length && d.segments[si][0] < t[1]) {
        var s = d.segments[si], start = Math.max(s[0], pos), end = Math.min(s[1], t[1]), codes = visible(s[2]);
        si++;
        if (start >= end) { continue; }
        if (start > pos) { said.appendChild(document.createTextNode(d.text.slice(pos, start))); }
        if (codes.length) { said.appendChild(mark(d.text.slice(start, end), codes)); n++; }
        else { said.appendChild(document.createTextNode(d.text.slice(start, end))); }
        pos = end;
      }
      if (pos < t[1]) { said.appendChild(document.createTextNode(d.text.slice(pos, t[1]))); }
      row.appendChild(said); docEl.appendChild(row);
    });
    count.textContent = n; count.dataset.count = n;
  }
  render();
})();
</script>
</body></html>
"""
