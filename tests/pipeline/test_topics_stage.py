"""The topic stage over a run folder: outputs, reproducibility, HTML view, exports, CLI and drift."""

import csv
import json
import re
import xml.etree.ElementTree as ET
import zipfile

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.schema import ASSIGNMENT, TOPIC, validate_frame

GARDEN = ["my tomatoes finally ripened on the allotment", "I planted potatoes and runner beans in the garden",
          "the slugs ate all my lettuce seedlings", "I spent the weekend digging compost into the vegetable beds",
          "the courgettes in my greenhouse are huge this year", "I pruned the apple trees and weeded the borders"]
VALIDATION = ["she made me feel understood", "he listened and never judged me", "I felt heard and taken seriously",
              "she said my reaction made sense", "nobody had ever validated my feelings like that",
              "he understood why I was upset"]
TRUST = ["I trusted her completely", "I felt safe in that room", "she really cared about me",
         "I could trust him with anything", "it felt like a safe place to talk", "she cared and I felt protected"]
TAILS = ["", " this week", " last time", " honestly", " again", " at the start"]


def _write_corpus(root, months):
    root.mkdir()
    for n, (name, month) in enumerate(months):
        lines = []
        for base in (GARDEN, VALIDATION, TRUST):
            for i, b in enumerate(base):
                tail = TAILS[(i + n) % len(TAILS)]
                lines += ["Therapist: How was the week for you?", "", f"Client: {b[0].upper()}{b[1:]}{tail}.", ""]
        (root / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
        (root / f"{name}.yaml").write_text(
            f"case_id: C0{n}\nsource_type: session\nsession: {n + 1}\ndate: {month}-10\nclinician: Ada Lovelace\n"
            "speakers:\n  Therapist: therapist\n  Client: client\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory, codebook_path):
    from pipeline import stages
    from pipeline.config import load_run_config

    base = tmp_path_factory.mktemp("topics")
    corpus = _write_corpus(base / "corpus", [("C00_wave1", "2026-01"), ("C01_wave2", "2026-02"),
                                             ("C02_wave2", "2026-03")])
    config = base / "topics.yaml"
    config.write_text(f"version: 1\ncodebook: {codebook_path}\nseed: 3\n"
                      "topics:\n  n_topics: 3\n  min_topic_size: 5\n", encoding="utf-8")
    cfg = load_run_config(config)
    run = base / "run"
    stages.ingest_and_deidentify(corpus, cfg, run, corpus_id="topics-test")
    stages.segment_documents(cfg, run)
    return cfg, config, corpus, run


@pytest.fixture(scope="module")
def topic_run(setup):
    from pipeline.topics.stage import topics_for_run

    cfg, _, _, run = setup
    report = topics_for_run(cfg, run, "r1")
    return run, report


def test_outputs_are_written_and_valid(topic_run):
    run, report = topic_run
    topics = pd.read_parquet(run / "topics.parquet")
    validate_frame(topics, TOPIC)
    codes = pd.read_parquet(run / "codes.parquet")
    validate_frame(codes, ASSIGNMENT)
    assert (codes["coder"] == "coder.topics.v1").all() and len(codes) == report["counts"]["assignments"]
    assert report["counts"]["topics"] == len(topics) == 3
    assert report["counts"]["fitted_segments"] == 54  # client turns only (3 files x 18)
    segs = pd.read_parquet(run / "topic_segments.parquet")
    assert len(segs) == 54 and (segs["topic_id"] >= 0).all()
    assert set(codes["code_id"]) == set(topics["code_id"])


def test_rerun_is_byte_identical_and_idempotent(setup, topic_run, tmp_path):
    from pipeline.topics.stage import topics_for_run

    cfg, _, _, run = setup
    before = {n: (run / n).read_bytes() for n in ("topics.parquet", "codes.parquet", "topic_prevalence.parquet",
                                                  "candidate_themes.csv", "topics.html")}
    topics_for_run(cfg, run, "r1")  # again into the same folder: topic rows replaced, not duplicated
    topics_for_run(cfg, run, "r1", out_dir=tmp_path / "other")
    for name, data in before.items():
        assert (run / name).read_bytes() == data, name
        assert (tmp_path / "other" / name).read_bytes() == data, name


def test_candidate_themes_list_the_unplanned_theme_with_quotes(topic_run):
    run, report = topic_run
    with open(run / "candidate_themes.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == report["counts"]["candidate_themes"] >= 1
    garden = [r for r in rows if {"allotment", "garden", "greenhouse", "tomatoes"} & set(r["top_terms"].split("; "))]
    assert garden and all(re.match(r"^TOPIC\.\d\d$", g["candidate_id"]) for g in garden)
    words = ("allotment", "garden", "slugs", "compost", "courgettes", "apple", "tomatoes", "potatoes")
    biggest = max(garden, key=lambda g: int(g["size"]))
    assert int(biggest["size"]) >= 5 and all(biggest[f"quote_{i}"] for i in range(1, 6))
    for g in garden:
        quotes = [g[f"quote_{i}"] for i in range(1, 6) if g[f"quote_{i}"]]
        assert quotes and all(any(w in q.lower() for w in words) for q in quotes)


def test_prevalence_per_wave_month_and_clinician(topic_run):
    run, _ = topic_run
    prev = pd.read_parquet(run / "topic_prevalence.parquet")
    groups = {(g, v) for g, v in zip(prev["grouping"], prev["group"], strict=True)}
    assert {("wave", "wave 1"), ("wave", "wave 2"), ("month", "2026-01"), ("month", "2026-03"),
            ("overall", "all")} <= groups
    assert ("clinician", "[THERAPIST_1]") in groups and not prev["group"].str.contains("Lovelace").any()
    topics = prev[prev["kind"] == "topic"]
    sums = topics.groupby(["grouping", "group"])["share"].sum()
    assert ((sums - 1.0).abs() < 1e-4).all()  # shares are rounded to 6 decimals
    wave2 = topics[(topics["grouping"] == "wave") & (topics["group"] == "wave 2")]
    assert wave2["segments"].sum() == 36


def test_html_view_is_self_contained(topic_run):
    import plotly.offline

    run, _ = topic_run
    html = (run / "topics.html").read_text("utf-8")
    assert re.search(r"""Content-Security-Policy" content="default-src (?:'|&#39;)none""", html)
    rest = html.replace(plotly.offline.get_plotlyjs(), "")
    assert html.count(plotly.offline.get_plotlyjs()) == 1
    assert not re.search(r"""\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", rest)
    assert not re.search(r"<(?:link|iframe|img)\b", rest)
    for chart in ("chart-map", "chart-terms", "chart-month", "chart-wave", "chart-codes"):
        assert f'id="{chart}"' in rest
    assert "Candidate new themes" in rest and "allotment" in rest


def test_exports_skip_topic_rows_and_stay_valid(setup, topic_run, codebook, tmp_path):
    from pipeline.export.refi_qda import write_qdpx_tables, write_xlsx_tables

    run, _ = topic_run
    docs = pd.read_parquet(run / "documents.parquet")
    segs = pd.read_parquet(run / "segments.parquet")
    codes = pd.read_parquet(run / "codes.parquet")
    manifest = {"run_id": "r1", "started_at": "2026-01-01T00:00:00+00:00"}
    path = write_qdpx_tables(docs, segs, codes, tmp_path / "p.qdpx", codebook=codebook, manifest=manifest)
    with zipfile.ZipFile(path) as zf:
        root = ET.fromstring(zf.read("project.qde"))
    assert not [e for e in root.iter() if e.tag.endswith("Coding")]
    assert "TOPIC." not in ET.tostring(root, encoding="unicode")
    write_xlsx_tables(docs, segs, codes, tmp_path / "d.xlsx", codebook=codebook, manifest=manifest)


def test_report_still_renders_with_topic_rows(setup, topic_run, codebook):
    from pipeline.report.data import pick_coder

    run, _ = topic_run
    codes = pd.read_parquet(run / "codes.parquet")
    rules = codes.head(2).assign(coder="coder.rules.v1", code_id="WA.VAL.VALIDATION")
    assert pick_coder(pd.concat([codes, rules])) == "coder.rules.v1"
    assert pick_coder(codes) == "coder.topics.v1"


def test_cli_topics_on_a_run_folder_with_reference_reports_drift(setup, topic_run, tmp_path):
    from pipeline.cli import app

    _, config, _, run = setup
    out = tmp_path / "drift"
    result = CliRunner().invoke(app, ["topics", str(run), "--out", str(out), "--config", str(config),
                                      "--reference", str(run)])
    assert result.exit_code == 0, result.output
    drift = json.loads((out / "topic_drift.json").read_text("utf-8"))
    assert drift["js_distance"] == 0.0 and drift["new_segments"] == drift["reference_segments"] == 54
    assert (out / "topics.html").is_file() and "Jensen-Shannon distance 0.0" in result.output


def test_cli_topics_on_a_corpus_folder(setup, tmp_path):
    from pipeline.cli import app

    _, config, corpus, _ = setup
    out = tmp_path / "fromcorpus"
    result = CliRunner().invoke(app, ["topics", str(corpus), "--out", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (out / "topics.parquet").is_file() and (out / "segments.parquet").is_file()
    assert "3 topics on 54 segments" in result.output
