"""Run report and viewer: numbers equal the ASSIGNMENT table's, pages are offline and escaped, and render."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.io import atomic_write_text, write_csv, write_table
from pipeline.report import write_report, write_viewer
from pipeline.report.data import (
    code_info,
    coded_segments,
    cooccurrence,
    corpus_summary,
    load_run,
    needs_review,
    pick_coder,
    prevalence,
    prevalence_by,
    report_data,
    score_distribution,
    speaker_share,
    top_quotes,
)
from pipeline.schema import ASSIGNMENT, DOCUMENT, QUARANTINE, SEGMENT, TURN, coerce_frame

FINAL = "coder.combined.v1"
CODES = ["WA.A", "WA.B", "WA.C"]
PAYLOAD = "<script>alert('x')</script>"
# (speaker, label, sentences): each sentence is one segment.
DOCS = {
    "d1": ("session", "C01", 1, "2026-01", [
        ("therapist", "[THERAPIST_1]", ["How was your week?", "Tell me more."]),
        ("client", "[CLIENT_1]", ["I felt heard last time.", f"You said {PAYLOAD} which helped."]),
        ("therapist", "[THERAPIST_1]", ["That sounds important to you."]),
    ]),
    "d2": ("session", "C02", 2, "2026-02-14", [
        ("client", "[CLIENT_2]", ["I am not sure this works.", "I want to stop coming."]),
        ("therapist", "[THERAPIST_2]", ["Let us look at what is not working."]),
    ]),
    "d3": ("feedback", "C02", None, None, [
        ("client", "[RESPONDENT]", ["Kind and patient staff.", "Waiting list was long."]),
    ]),
}
# (document, segment index in the document, code, coder, score, label, evidence)
ASSIGN = [
    ("d1", 2, "WA.A", FINAL, 0.91, True, "max: coder.rules.v1=0.91"),
    ("d1", 2, "WA.B", FINAL, 0.45, True, "review:low; max: coder.similarity.v1=0.45"),
    ("d1", 3, "WA.A", FINAL, 0.62, True, "review:disagree; max: coder.rules.v1=0.62"),
    ("d1", 4, "WA.A", FINAL, 0.33, False, "review:low; max: coder.similarity.v1=0.33"),
    ("d1", 0, "WA.C", FINAL, 0.75, True, "max: coder.rules.v1=0.75"),
    ("d2", 0, "WA.C", FINAL, 0.55, True, "max: coder.rules.v1=0.55"),
    ("d2", 1, "WA.C", FINAL, 0.97, True, "max: coder.rules.v1=0.97"),
    ("d2", 1, "WA.B", FINAL, 0.81, True, "max: coder.rules.v1=0.81"),
    ("d2", 2, "WA.B", FINAL, 0.40, True, "review:low; max: coder.similarity.v1=0.40"),
    ("d3", 0, "WA.B", FINAL, 0.88, True, "max: coder.rules.v1=0.88"),
    ("d3", 1, "WA.C", FINAL, 0.30, True, "review:low; max: coder.similarity.v1=0.30"),
    ("d1", 2, "WA.A", "coder.rules.v1", 0.91, True, "phrase:felt heard"),
    ("d2", 1, "WA.C", "coder.rules.v1", 0.97, True, "phrase:stop coming"),
]


def build_run(out: Path) -> Path:
    """A tiny, valid run folder written with the project's own writers."""
    docs, turns, segs = [], [], []
    seg_ids: dict[tuple[str, int], str] = {}
    for doc_id, (stype, case, session, month, doc_turns) in DOCS.items():
        text, k = "", 0
        for t_index, (speaker, label, sentences) in enumerate(doc_turns):
            turn_start = len(text)
            for sentence in sentences:
                if len(text) > turn_start:
                    text += " "
                start = len(text)
                text += sentence
                sid = f"{doc_id}-s{k}"
                seg_ids[(doc_id, k)] = sid
                segs.append({"segment_id": sid, "document_id": doc_id, "speaker": speaker, "turn_index": t_index,
                             "start_char": start, "end_char": len(text), "source_line": t_index + 1,
                             "text": sentence})
                k += 1
            turns.append({"document_id": doc_id, "turn_index": t_index, "speaker": speaker, "speaker_label": label,
                          "start_char": turn_start, "end_char": len(text), "source_line": t_index + 1,
                          "start_time": None, "text": text[turn_start:]})
            text += "\n"
        docs.append({"document_id": doc_id, "corpus_id": "tiny", "source_path": f"{stype}/{doc_id}.txt",
                     "record_key": "", "source_sha256": "0" * 64, "source_type": stype, "source_format": "txt",
                     "case_id": case, "session": session, "collected_at": month,
                     "clinician": None if stype == "feedback" else f"[THERAPIST_{doc_id[-1]}]", "encoding": "utf-8",
                     "metadata": "{}", "text": text})
    codes = [{"segment_id": seg_ids[(d, i)], "code_id": c, "coder": coder, "score": s, "label": lab,
              "evidence": ev, "run_id": "tiny-run"} for d, i, c, coder, s, lab, ev in ASSIGN]
    out.mkdir(parents=True, exist_ok=True)
    write_table(coerce_frame(pd.DataFrame(docs), DOCUMENT), out / "documents.parquet", DOCUMENT)
    write_table(coerce_frame(pd.DataFrame(turns), TURN), out / "interim" / "turns.parquet", TURN)
    write_table(coerce_frame(pd.DataFrame(segs), SEGMENT), out / "segments.parquet", SEGMENT)
    write_table(coerce_frame(pd.DataFrame(codes), ASSIGNMENT), out / "codes.parquet", ASSIGNMENT)
    write_csv(out / "quarantine.csv", QUARANTINE.column_names,
              [["bad.docx", None, "QA-E101", "quarantined", "not a docx"],
               ["fb.csv", 7, "QA-E115", "row_skipped", "empty response"]])
    atomic_write_text(out / "manifest.json", json.dumps({"run_id": "tiny-run"}))
    return out


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return build_run(tmp_path / "run")


def _final(run: Path) -> pd.DataFrame:
    codes = pd.read_parquet(run / "codes.parquet")
    return codes[(codes["coder"] == FINAL) & codes["label"]]


# --- (a) numbers ---------------------------------------------------------------------------------


def test_report_pick_coder_prefers_combined(run_dir: Path) -> None:
    tables = load_run(run_dir)
    assert pick_coder(tables.codes) == FINAL
    assert pick_coder(tables.codes, "coder.rules.v1") == "coder.rules.v1"
    with pytest.raises(ValueError, match="'coder' parameter"):
        pick_coder(tables.codes, "coder.nope.v1")
    only_rules = tables.codes[tables.codes["coder"] == "coder.rules.v1"]
    assert pick_coder(only_rules) == "coder.rules.v1"


def test_report_corpus_summary(run_dir: Path) -> None:
    s = corpus_summary(load_run(run_dir))
    assert s["documents"] == 3 and s["documents_by_type"] == {"feedback": 1, "session": 2}
    assert s["segments"] == 10 and s["segments_by_speaker"] == {"client": 6, "therapist": 4}
    assert s["speaker_labels"] == 5 and s["cases"] == 2
    assert (s["quarantined_files"], s["skipped_rows"], s["repaired_files"]) == (1, 1, 0)


def test_report_numbers_equal_assignment_table(run_dir: Path) -> None:
    tables = load_run(run_dir)
    info = code_info(tables.codes)
    assert list(info["code_id"]) == CODES
    coded = coded_segments(tables, FINAL)
    final = _final(run_dir)
    # prevalence
    prev = prevalence(coded, info, len(tables.segments)).set_index("code_id")
    direct = final.groupby("code_id")["segment_id"].nunique()
    assert prev["segments"].to_dict() == direct.to_dict() == {"WA.A": 2, "WA.B": 4, "WA.C": 4}
    assert prev.loc["WA.B", "share"] == pytest.approx(4 / 10)
    # co-occurrence: segments with both codes
    co = cooccurrence(coded, info)
    sets = {c: set(final.loc[final["code_id"] == c, "segment_id"]) for c in CODES}
    for a in CODES:
        for b in CODES:
            assert co.loc[a, b] == len(sets[a] & sets[b]), (a, b)
    assert co.loc["WA.A", "WA.B"] == 1 and co.loc["WA.B", "WA.C"] == 1 and co.loc["WA.A", "WA.C"] == 0
    # speakers
    segs = pd.read_parquet(run_dir / "segments.parquet")
    merged = final.merge(segs[["segment_id", "speaker"]], on="segment_id")
    sp = speaker_share(coded, info).set_index("code_id")
    for c in CODES:
        rows = merged[merged["code_id"] == c]
        assert sp.loc[c, "client"] == (rows["speaker"] == "client").sum()
        assert sp.loc[c, "therapist"] == (rows["speaker"] == "therapist").sum()
        assert sp.loc[c, "total"] == len(rows)
    assert sp.loc["WA.A", "client_share"] == 1.0
    # scores and review
    hist = score_distribution(tables.codes, FINAL)
    expected, _ = np.histogram(final["score"], bins=np.linspace(0, 1, 11))
    assert hist["assigned"].tolist() == expected.tolist() and hist["assigned"].sum() == len(final)
    all_final = tables.codes[tables.codes["coder"] == FINAL]
    flagged = all_final["evidence"].str.startswith("review:")
    assert needs_review(tables.codes, FINAL) == {"rows": int(flagged.sum()),
                                                 "assigned": int((flagged & all_final["label"]).sum()),
                                                 "segments": int(all_final.loc[flagged, "segment_id"].nunique())}
    assert needs_review(tables.codes, FINAL) == {"rows": 5, "assigned": 4, "segments": 5}


def test_report_prevalence_by_groups(run_dir: Path) -> None:
    tables = load_run(run_dir)
    info = code_info(tables.codes)
    coded = coded_segments(tables, FINAL)
    month = prevalence_by(coded, tables, info, "month")
    assert list(month.index) == ["2026-01", "2026-02", "(unknown)"]
    assert month.loc["2026-01"].to_dict() == {"segments": 5, "WA.A": 2, "WA.B": 1, "WA.C": 1}
    assert month.loc["2026-02"].to_dict() == {"segments": 3, "WA.A": 0, "WA.B": 2, "WA.C": 2}
    assert month.loc["(unknown)"].to_dict() == {"segments": 2, "WA.A": 0, "WA.B": 1, "WA.C": 1}
    case = prevalence_by(coded, tables, info, "case")
    assert case.loc["C02"].to_dict() == {"segments": 5, "WA.A": 0, "WA.B": 3, "WA.C": 3}
    session = prevalence_by(coded, tables, info, "session")
    assert list(session.index) == ["1", "2", "(unknown)"]
    assert int(session[CODES].to_numpy().sum()) == len(_final(run_dir))
    with pytest.raises(ValueError, match="'by' parameter"):
        prevalence_by(coded, tables, info, "weekday")


def test_report_top_quotes_highest_score_first(run_dir: Path) -> None:
    tables = load_run(run_dir)
    info = code_info(tables.codes)
    quotes = top_quotes(coded_segments(tables, FINAL), info, n=2)
    assert [q["score"] for q in quotes["WA.C"]] == [0.97, 0.75]
    assert quotes["WA.C"][0]["text"] == "I want to stop coming."
    assert quotes["WA.C"][0]["source_path"] == "session/d2.txt"
    assert quotes["WA.A"][0]["start_char"] == DOCUMENT_TEXT_START(run_dir, "d1-s2")
    assert all(q["score"] != 0.33 for q in quotes["WA.A"])  # unlabelled rows are never quoted


def DOCUMENT_TEXT_START(run: Path, sid: str) -> int:  # noqa: N802
    segs = pd.read_parquet(run / "segments.parquet").set_index("segment_id")
    return int(segs.loc[sid, "start_char"])


def test_report_data_other_coder(run_dir: Path) -> None:
    d = report_data(run_dir, coder="coder.rules.v1")
    assert d["coder"] == "coder.rules.v1"
    assert d["prevalence"].set_index("code_id")["segments"].to_dict() == {"WA.A": 1, "WA.C": 1, "WA.B": 0}
    assert d["agreement"] is None


# --- (b) html --------------------------------------------------------------------------------------


_EXTERNAL = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def test_report_html_offline_tables_escaped(run_dir: Path) -> None:
    report = write_report(run_dir)
    assert report == run_dir / "report.html"
    html = report.read_text("utf-8")
    assert not _EXTERNAL.search(html)
    assert html.count("<script") == html.count("</script>")
    assert html.count('<script type="application/json"') == 5
    assert len(re.findall(r"<script>/\*\*\s*\n?\s*\*\s*plotly\.js", html)) <= 1
    for table in ("corpus", "prevalence", "by-month", "by-case", "cooccurrence", "speakers", "scores"):
        assert f'id="table-{table}"' in html
    assert PAYLOAD not in html
    assert "&lt;script&gt;alert(" in html  # the quote of WA.A#2 is shown, escaped
    assert "Content-Security-Policy" in html and "default-src &#39;none&#39;" in html


def test_viewer_html_offline_json_escaped(run_dir: Path) -> None:
    viewer = write_viewer(run_dir, run_dir / "v" / "view.html")
    html = viewer.read_text("utf-8")
    assert not _EXTERNAL.search(html)
    assert PAYLOAD not in html and "</script>alert" not in html
    blob = re.search(r'<script type="application/json" id="viewer-data">(.*?)</script>', html, re.S).group(1)
    assert "<" not in blob
    data = json.loads(blob)
    assert [c["id"] for c in data["codes"]] == CODES
    d1 = next(d for d in data["documents"] if d["id"] == "d1")
    assert PAYLOAD in d1["text"]
    assert len(d1["turns"]) == 3
    start, end, codes = d1["segments"][1]  # d1-s2: WA.A (0.91) and WA.B (0.45), best first
    assert d1["text"][start:end] == "I felt heard last time."
    assert [(data["codes"][c[0]]["id"], c[1]) for c in codes] == [("WA.A", 0.91), ("WA.B", 0.45)]
    assert "coder.rules.v1: phrase:felt heard" in codes[0][2]


# --- (c) real browser ---------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path("/tmp/report_shots")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip package 'playwright' is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}")
            if not r.url.startswith(("file:", "data:", "blob:", "about:")) else None)
    page.goto(path.as_uri())
    return page, problems


def _shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / name)


def test_report_renders_in_chromium(browser, run_dir: Path, tmp_path: Path) -> None:
    page, problems = _open(browser, write_report(run_dir))
    page.wait_for_selector(".plotly .main-svg", timeout=15000)
    for chart in ("prevalence", "cooccurrence", "speakers", "scores", "month"):
        assert page.locator(f"#chart-{chart} .main-svg").count() >= 1, chart
    assert page.locator("#table-prevalence tbody tr").count() == 3
    assert page.locator("script[src]").count() == 0
    _shot(page, tmp_path, "tiny_report.png")
    assert problems == []
    page.close()


def test_viewer_filters_in_chromium(browser, run_dir: Path, tmp_path: Path) -> None:
    page, problems = _open(browser, write_viewer(run_dir))
    spans = page.locator("#doc mark.span")

    def count() -> int:
        n = int(page.locator("#count").get_attribute("data-count"))
        assert n == spans.count()
        return n

    labels = page.locator("#docpick option").all_text_contents()
    page.select_option("#docpick", str(next(i for i, t in enumerate(labels) if "d1.txt" in t)))
    assert count() == 3  # d1: s0 (WA.C), s2 (WA.A+WA.B), s3 (WA.A)
    assert PAYLOAD in page.locator("#doc").inner_text()  # shown as text, never run
    spans.nth(1).focus()
    assert "WA.A" in page.locator("#evidence").inner_text()
    assert "phrase:felt heard" in page.locator("#evidence").inner_text()
    _shot(page, tmp_path, "tiny_viewer.png")
    page.locator("#codefilter input[value='0']").uncheck()  # WA.A off: s3 loses its only code
    assert count() == 2
    page.locator("#codefilter input[value='0']").check()
    assert count() == 3
    page.fill("#minscore", "0.7")  # keeps s0 (0.75) and s2 (WA.A 0.91)
    assert count() == 2
    _shot(page, tmp_path, "tiny_viewer_min07.png")
    page.fill("#minscore", "0.95")
    assert count() == 0
    assert problems == []
    page.close()


def test_report_agreement_table_with_gold(tmp_path):
    """Gold coding (CSV) -> an agreement table whose F1 matches a hand count, rendered in the report."""
    from pipeline.report.data import agreement_table

    run = build_run(tmp_path / "run")
    gold = tmp_path / "gold.csv"
    # Gold says: d1-s2 has WA.A (machine agrees), d2-s1 has WA.C (agrees) and WA.A (machine misses it).
    write_csv(gold, ["document_id", "segment_id", "speaker", "text", "codes"], [
        ["d1", "d1-s2", "client", "I felt heard last time.", "WA.A"],
        ["d2", "d2-s1", "client", "I want to stop coming.", "WA.A;WA.C"],
        ["d2", "d2-s0", "client", "I am not sure this works.", ""],
    ])
    table = agreement_table(load_run(run), gold, None, FINAL, code_ids=CODES, n_boot=50).set_index("code_id")
    # WA.A: TP d1-s2, FN d2-s1 -> P 1, R 0.5, F1 2/3. WA.C: TP d2-s1, FP d2-s0 (machine 0.55) -> F1 2/3.
    assert table.loc["WA.A", "f1"] == pytest.approx(2 / 3) and table.loc["WA.A", "recall"] == pytest.approx(0.5)
    assert table.loc["WA.C", "f1"] == pytest.approx(2 / 3) and table.loc["WA.A", "n"] == 3
    html = write_report(run, tmp_path / "r.html", gold=gold).read_text()
    assert "Agreement" in html or "agreement" in html
