"""The benchmark corpus generator (bench/synth.py): deterministic, near its target, varied, ingestable."""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import synth  # noqa: E402


@pytest.fixture(scope="module")
def pools() -> synth.Pools:
    return synth.load_pools()


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_synth_same_seed_same_bytes(tmp_path: Path, pools: synth.Pools) -> None:
    synth.write_corpus(tmp_path / "a", 600, seed=3, pools=pools)
    synth.write_corpus(tmp_path / "b", 600, seed=3, pools=pools)
    synth.write_corpus(tmp_path / "c", 600, seed=4, pools=pools)
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert {Path(k).suffix for k in a} >= {".txt", ".docx", ".vtt", ".csv", ".xlsx", ".yaml"}
    changed = [k for k in a if k in c and a[k] != c[k] and k.endswith((".txt", ".docx", ".csv", ".xlsx"))]
    assert changed, "another seed must give other text"


def test_synth_refuses_existing_folder(tmp_path: Path, pools: synth.Pools) -> None:
    with pytest.raises(FileExistsError):
        synth.write_corpus(tmp_path, 600, pools=pools)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, pools: synth.Pools) -> dict:
    """A 1,500-segment corpus through the pipeline's own ingest, de-identification and segmentation stages."""
    from pipeline.config import load_run_config
    from pipeline.stages import ingest_and_deidentify, segment_documents

    base = tmp_path_factory.mktemp("synth")
    corpus = base / "corpus"
    summary = synth.write_corpus(corpus, 1500, seed=0, pools=pools)
    cfg = load_run_config(None)
    ingest = ingest_and_deidentify(corpus, cfg, base / "run", corpus_id="synth-test")
    segment = segment_documents(cfg, base / "run")
    return {"corpus": corpus, "run": base / "run", "summary": summary, "ingest": ingest["counts"],
            "segment": segment["counts"]}


@pytest.mark.slow
def test_synth_ingests_without_quarantine(ingested: dict) -> None:
    counts = ingested["ingest"]
    assert counts["quarantined_files"] == 0
    assert counts["skipped_rows"] == 0
    assert counts["repaired_files"] == 0
    rows = list(csv.reader((ingested["run"] / "quarantine.csv").open(encoding="utf-8")))
    assert rows[1:] == []
    files = [p for p in ingested["corpus"].rglob("*") if p.is_file() and p.suffix not in (".yaml", ".json")]
    assert counts["files_read"] == len(files)


@pytest.mark.slow
def test_synth_segment_count_within_15_percent(ingested: dict) -> None:
    segments = ingested["segment"]["segments"]
    assert 0.85 * 1500 <= segments <= 1.15 * 1500
    assert set(ingested["segment"]["by_speaker"]) >= {"client", "therapist", "interviewer"}


@pytest.mark.slow
def test_synth_planted_identifiers_are_found(ingested: dict) -> None:
    """The corpus carries identifiers the de-identifier has to catch, of several kinds."""
    import pandas as pd

    redactions = ingested["ingest"]["redactions"]
    assert redactions.get("NAME", 0) >= 50
    assert sum(1 for kind in ("PLACE", "ORG", "DATE", "PHONE", "EMAIL", "ADDRESS") if redactions.get(kind)) >= 4
    documents = pd.read_parquet(ingested["run"] / "documents.parquet")
    text = "\n".join(documents["text"])
    sidecars = [p.read_text(encoding="utf-8") for p in (ingested["corpus"] / "sessions").glob("*.yaml")]
    clinicians = [line.split(": ", 1)[1] for s in sidecars for line in s.splitlines() if line.startswith("clinician:")]
    assert clinicians
    assert not [name for name in clinicians if name in text]


def test_synth_sentences_are_varied(tmp_path: Path, pools: synth.Pools) -> None:
    from pipeline.ingest import IngestConfig, ingest_corpus, load_corpus_config

    corpus = tmp_path / "corpus"
    synth.write_corpus(corpus, 2000, seed=1, pools=pools)
    result = ingest_corpus(corpus, load_corpus_config(corpus, IngestConfig()))
    sentences = [s for d in result.documents for t in d.turns for s in synth.split_sentences(t.text) if len(s) >= 20]
    assert len(sentences) > 1000
    assert len(set(sentences)) / len(sentences) >= 0.9
    demo = {s for key, pool in pools.sentences.items() for s in pool}
    assert sum(s in demo for s in sentences) / len(sentences) < 0.5, "most sentences must differ from the demo's"


def test_synth_months_and_clinicians_spread(tmp_path: Path, pools: synth.Pools) -> None:
    corpus = tmp_path / "corpus"
    synth.write_corpus(corpus, 3000, seed=2, pools=pools)
    rows = [r for p in sorted((corpus / "feedback").glob("*.csv"))
            for r in csv.DictReader(p.open(encoding="utf-8", newline=""))]
    assert rows and set(rows[0]) == {"response_id", "client_id", "session_number", "date", "clinician", "comment"}
    assert len({r["date"][:7] for r in rows}) >= 6
    assert len({r["clinician"] for r in rows}) >= 4
    assert len({r["response_id"] for r in rows}) == len(rows)


def test_synth_increment_is_new_and_small(tmp_path: Path, pools: synth.Pools) -> None:
    corpus, inbox = tmp_path / "corpus", tmp_path / "inbox"
    synth.write_corpus(corpus, 6000, seed=0, pools=pools)
    info = synth.write_increment(corpus, inbox, fraction=0.01, pools=pools)
    assert info["target_segments"] == 60
    new = [p for p in inbox.rglob("*") if p.is_file() and p.suffix in (".csv", ".xlsx", ".txt", ".docx", ".vtt")]
    assert new and all(p.name.startswith("new") for p in new)
    old_text = {p.read_text(encoding="utf-8") for p in corpus.rglob("*.csv")}
    assert not any(p.read_text(encoding="utf-8") in old_text for p in inbox.rglob("*.csv"))
    assert sum(info["estimated_segments"].values()) <= 0.02 * 6000
    with pytest.raises(FileExistsError):
        synth.write_increment(corpus, inbox, pools=pools)
