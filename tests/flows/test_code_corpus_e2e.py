"""End to end: the code-corpus flow on the demo corpus and on the broken corpus, via the real Prefect API."""

import csv
import json
import os
import re
import stat
from pathlib import Path

import pandas as pd
import pytest

from pipeline.deid_eval import load_key
from pipeline.schema import ASSIGNMENT, DOCUMENT, SEGMENT, validate_frame, validate_offsets

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(prefect_harness, demo_corpus, tmp_path_factory):
    from flows.code_corpus import code_corpus

    out = tmp_path_factory.mktemp("run") / "demo"
    result = code_corpus(str(demo_corpus), str(out))
    return out, result


def test_e2e_demo_writes_every_output(demo_run):
    out, result = demo_run
    for name in ("documents.parquet", "segments.parquet", "codes.parquet", "coded_segments.csv", "quarantine.csv",
                 "manifest.json", "project.qdpx", "codebook.qdc", "nvivo_dataset.xlsx", "report.html", "viewer.html"):
        assert (out / name).is_file(), name
    docs = pd.read_parquet(out / "documents.parquet")
    segs = pd.read_parquet(out / "segments.parquet")
    codes = pd.read_parquet(out / "codes.parquet")
    validate_frame(docs, DOCUMENT)
    validate_frame(segs, SEGMENT)
    validate_frame(codes, ASSIGNMENT)
    validate_offsets(segs, docs)
    assert set(docs["source_type"]) == {"interview", "session", "feedback"}
    assert len(docs) >= 12 + 8 + 300 and len(segs) > 1000
    assert codes["label"].sum() > 100 and codes["code_id"].nunique() >= 10
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_id"] == result["run_id"] and manifest["counts"]["segment.segments"] == len(segs)
    assert len(manifest["inputs"]) >= 22 and all(len(i["sha256"]) == 64 for i in manifest["inputs"])
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    topics = pd.read_parquet(out / "topics.parquet")  # emergent themes (coder.topics.v1), on by default
    assert len(topics) >= 5 and topics["candidate"].any() and (~topics["candidate"]).any()
    assert set(codes.loc[codes["coder"] == "coder.topics.v1", "code_id"]) == set(topics["code_id"])
    assert (out / "topics.html").is_file() and (out / "candidate_themes.csv").is_file()
    assert result["reports"]["topics"]["counts"]["fitted_segments"] == int((segs["speaker"] == "client").sum())
    codes_per_id = codes[codes["label"]].groupby("code_id")["segment_id"].nunique()
    published = {row["code_id"]: row["segments"] for row in result["summary"]["per_code"]}
    assert published == {c: int(codes_per_id.get(c, 0)) for c in published}


def test_e2e_runs_in_batches_and_removes_raw_work_files(demo_run):
    out, result = demo_run
    n = result["reports"]["ingest"]["counts"]["batches"]
    assert n >= 2  # the demo's 349 documents in batches of 200 (runner.batch_documents)
    assert result["reports"]["ner"]["counts"]["batches"] == n
    for stage in ("turns", "segments", "codes.coder.rules.v1"):
        assert len(list((out / "interim" / stage).glob("part-*.parquet"))) == n, stage
    assert not (out / "restricted" / "work").exists()  # raw turn texts of the NER pass are deleted


def test_e2e_prefect_artifacts_hold_counts_not_text(demo_run):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["code-corpus-summary",
                                                                           "code-corpus-counts"])))

    arts = asyncio.run(read())
    assert {a.key for a in arts} >= {"code-corpus-summary", "code-corpus-counts"}
    body = " ".join(str(a.data) for a in arts)
    assert "WA.VAL.VALIDATION" in body and "[CLIENT" not in body and "[THERAPIST" not in body


def test_e2e_coded_segments_csv_matches_tables(demo_run):
    out, _ = demo_run
    with open(out / "coded_segments.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    codes = pd.read_parquet(out / "codes.parquet")
    assert len(rows) == int(codes["label"].sum())
    segs = pd.read_parquet(out / "segments.parquet").set_index("segment_id")
    for row in rows[:200]:
        text = segs.loc[row["segment_id"], "text"]
        assert row["text"] in (text, "'" + text)


def _found(text: str, haystack: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(text.casefold())}(?!\w)", haystack) is not None


def test_e2e_no_planted_identifier_in_any_output(demo_run, demo_corpus):
    """Every output file (all text, whatever the format) is free of every planted identifier.

    Short numeric identifiers ("94", an age) also occur as offsets and counts, so those are checked in the
    text derived from their own source file instead of globally.
    """
    out, _ = demo_run
    key = load_key(demo_corpus / "identifiers.csv")
    import plotly.offline

    plotly_js = plotly.offline.get_plotlyjs()  # third-party code embedded in report.html (has place names)
    blobs = []
    for path in out.rglob("*"):
        if path.is_file() and "restricted" not in path.parts:
            if path.suffix == ".parquet":
                blobs.append(pd.read_parquet(path).to_csv())
            elif path.suffix in (".qdpx", ".xlsx"):
                import zipfile

                with zipfile.ZipFile(path) as zf:
                    blobs += [zf.read(n).decode("utf-8", errors="replace") for n in zf.namelist()]
            else:
                blobs.append(path.read_bytes().decode("utf-8", errors="replace").replace(plotly_js, ""))
    everything = "\n".join(blobs).casefold()
    docs = pd.read_parquet(out / "documents.parquet")
    per_file = {f: "\n".join(g["text"] + " " + g["metadata"]).casefold() for f, g in docs.groupby("source_path")}
    leaked = []
    for row in key:
        text = row["text"]
        short_numeric = len(text) <= 3 or text.replace(" ", "").isdigit()
        haystack = per_file.get(row["file"], "") if short_numeric else everything
        if _found(text, haystack):
            leaked.append((row["file"], row["type"]))
    assert leaked == []


def test_e2e_rerun_is_reproducible(demo_run, demo_corpus, tmp_path):
    from flows.code_corpus import code_corpus

    out, result = demo_run
    again = tmp_path / "again"
    result2 = code_corpus(str(demo_corpus), str(again))
    assert result2["run_id"] == result["run_id"]
    for name in ("documents.parquet", "segments.parquet", "codes.parquet", "topics.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / name), pd.read_parquet(again / name))
    assert (out / "coded_segments.csv").read_bytes() == (again / "coded_segments.csv").read_bytes()


def test_e2e_broken_corpus_completes_and_quarantines(prefect_harness, broken_corpus, tmp_path):
    from flows.code_corpus import code_corpus

    out = tmp_path / "broken"
    code_corpus(str(broken_corpus), str(out))
    with open(out / "quarantine.csv", newline="", encoding="utf-8") as fh:
        problems = list(csv.DictReader(fh))
    files = {p["file"] for p in problems}
    assert {"corrupt_interview.docx", "empty_feedback.csv", "malformed_feedback.csv", "latin1_interview.txt",
            "zip_bomb.docx"} <= files
    assert all(p["error"] and p["code"].startswith("QA-E") for p in problems)
    docs = pd.read_parquet(out / "documents.parquet")
    assert {"good_session.txt", "good_feedback.csv", "latin1_interview.txt", "malformed_feedback.csv"} <= set(
        docs["source_path"])
    assert len(pd.read_parquet(out / "segments.parquet")) > 0


def test_e2e_nvivo_round_trip_through_cli(demo_run, tmp_path):
    """The run's project.qdpx comes back through `alliance import-qdpx` with every coded segment intact."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    out, _ = demo_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert "project" in manifest["outputs"] and manifest["outputs"]["project"].endswith("project.qdpx")
    runner = CliRunner()
    res = runner.invoke(app, ["export", str(out), "--to", "qdc", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "codebook.qdc").read_bytes() == (out / "codebook.qdc").read_bytes()
    csv_path = tmp_path / "training.csv"
    res = runner.invoke(app, ["import-qdpx", str(out / "project.qdpx"), "--out", str(csv_path), "--codebook",
                              str(Path(manifest["codebook"]["path"]))])
    assert res.exit_code == 0, res.output
    back = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    segs = pd.read_parquet(out / "segments.parquet")
    codes = pd.read_parquet(out / "codes.parquet")
    codes = codes[codes["coder"] != "coder.topics.v1"]  # topics are exploratory: not exported to NVivo
    coded = codes[codes["label"]].groupby("segment_id")["code_id"].apply(lambda c: ";".join(sorted(set(c))))
    assert len(back) == len(coded)
    texts = set(segs.loc[segs["segment_id"].isin(coded.index), "text"])
    assert set(back["text"].str.lstrip("'")) <= texts
    assert {";".join(sorted(c.split(";"))) for c in back["codes"]} == set(coded)


def test_e2e_train_and_evaluate_flows(prefect_harness, demo_corpus, tmp_path):
    from flows.train_evaluate import evaluate_coder, train_coder

    gold = demo_corpus / "gold" / "gold_coding.csv"
    trained = train_coder(str(gold), str(tmp_path / "model"))
    assert (tmp_path / "model" / "model.skops").exists() and "f1" in trained["cv"]
    result = evaluate_coder(str(gold), str(tmp_path / "metrics.json"), model=str(tmp_path / "model"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) >= {"macro", "per_code"} and result["macro"]["n"] == 480
