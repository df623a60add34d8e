"""Batch stages: the per-batch work joined in order equals the whole-table work, byte for byte."""

import hashlib
import shutil
import stat
from pathlib import Path

import pytest

from pipeline import stages
from pipeline.config import RunConfig, config_sha256, load_run_config
from pipeline.runners import RunnerConfig, batch_bounds, part_path, with_overrides

ROOT = Path(__file__).resolve().parents[2]
DEMO_FILES = ("corpus.yaml", "interviews/P02_interview.txt", "sessions/C01_s03.vtt", "sessions/C01_s03.yaml",
              "sessions/C05_s07.txt", "sessions/C05_s07.yaml", "feedback/feedback_wave1.csv")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_batch_bounds_cover_every_item_in_order():
    assert batch_bounds(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert batch_bounds(6, 3) == [(0, 3), (3, 6)]
    assert batch_bounds(0, 5) == [(0, 0)]
    with pytest.raises(ValueError, match="'size' parameter of batch_bounds"):
        batch_bounds(3, 0)
    assert part_path(Path("x"), 12).name == "part-00012.parquet"


def test_runner_overrides_and_address_check():
    cfg = RunnerConfig()
    assert cfg.kind == "local"
    assert with_overrides(cfg, address="tcp://10.0.0.5:8786").kind == "dask"
    assert with_overrides(cfg, kind="dask", workers=4).workers == 4
    with pytest.raises(ValueError, match="tcp://host:8786"):
        with_overrides(cfg, address="10.0.0.5:8786")
    with pytest.raises(ValueError):
        with_overrides(cfg, kind="spark")


def test_runner_section_does_not_change_the_config_hash():
    cfg = load_run_config(None)
    other = cfg.model_copy(update={"runner": RunnerConfig(kind="dask", workers=8, batch_documents=5)})
    assert config_sha256(cfg) == config_sha256(other)
    assert config_sha256(cfg) != config_sha256(cfg.model_copy(update={"seed": cfg.seed + 1}))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    demo = ROOT / "corpora" / "demo"
    if not (demo / "corpus.yaml").is_file():
        pytest.skip("corpora/demo is absent")
    root = tmp_path_factory.mktemp("c") / "small"
    for rel in DEMO_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(demo / rel, root / rel)
    return root


def _cfg(tmp: Path, name: str, batch_documents: int) -> RunConfig:
    cfg = load_run_config(None)
    deid = cfg.deidentify.model_copy(update={"pseudonym_map": tmp / f"{name}.map.json"})
    return cfg.model_copy(update={"deidentify": deid, "runner": RunnerConfig(batch_documents=batch_documents)})


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    """The same corpus de-identified with the parallel NER pass (batches of 9) and in one process (no parts)."""
    tmp = tmp_path_factory.mktemp("runs")
    batched, whole = tmp / "batched", tmp / "whole"
    cfg_b, cfg_w = _cfg(tmp, "b", 9), _cfg(tmp, "w", 10_000)
    prepared = stages.prepare_deidentify(corpus, cfg_b, batched)
    work = Path(prepared["paths"]["work"])
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [work, *work.rglob("*")]}
    for i in range(prepared["counts"]["batches"]):
        stages.ner_batch(cfg_b, batched, i)
    report_b = stages.ingest_and_deidentify(corpus, cfg_b, batched, corpus_id="small")
    report_w = stages.ingest_and_deidentify(corpus, cfg_w, whole, corpus_id="small")
    return {"batched": batched, "whole": whole, "cfg_b": cfg_b, "cfg_w": cfg_w, "prepared": prepared,
            "modes": modes, "report_b": report_b, "report_w": report_w}


def test_parallel_ner_pass_gives_the_same_deidentified_tables(runs):
    assert runs["prepared"]["counts"]["batches"] >= 3
    for name in ("documents.parquet", "interim/turns.parquet", "restricted/redactions.parquet"):
        assert _sha(runs["batched"] / name) == _sha(runs["whole"] / name), name
    assert runs["report_b"]["counts"]["redactions"] == runs["report_w"]["counts"]["redactions"]
    assert runs["report_b"]["counts"]["batches"] == runs["prepared"]["counts"]["batches"]


def test_raw_work_files_are_private_and_removed(runs):
    dirs = {p: m for p, m in runs["modes"].items() if p.is_dir() or not p.suffix}
    files = {p: m for p, m in runs["modes"].items() if p.suffix}
    assert files and all(m == 0o600 for m in files.values())
    assert all(m == 0o700 for p, m in dirs.items() if p.name in ("work", "turn-text", "ner"))
    assert not (runs["batched"] / "restricted" / "work").exists()
    assert not (runs["whole"] / "restricted" / "work").exists()


def test_segment_and_rules_batches_join_to_the_whole_table(runs):
    batched, whole, cfg_b, cfg_w = runs["batched"], runs["whole"], runs["cfg_b"], runs["cfg_w"]
    n = runs["report_b"]["counts"]["batches"]
    assert len(list((batched / "interim" / "turns").glob("part-*.parquet"))) == n
    for i in range(n):
        stages.segment_batch(cfg_b, batched, i)
    gathered = stages.gather_segments(cfg_b, batched, n)
    stages.segment_documents(cfg_w, whole)
    assert _sha(batched / "segments.parquet") == _sha(whole / "segments.parquet")
    assert gathered["counts"]["segments"] > 0

    assert stages.batch_coder(cfg_b, 0)
    for i in range(n):
        stages.code_batch(cfg_b, batched, 0, i, run_id="r1")
    joined = stages.gather_codes(cfg_b, batched, 0, n)
    stages.code_segments(cfg_w, whole, 0, run_id="r1")
    name = "interim/codes.coder.rules.v1.parquet"
    assert _sha(batched / name) == _sha(whole / name)
    assert joined["counts"]["assignments"] > 0


def test_rules_tokenizer_fast_path_matches_the_full_pipeline(runs):
    """Lexical-only patterns are matched on tokenizer output; the tagged pipeline gives the same assignments."""
    import pandas as pd

    from pipeline.codebook import load_codebook
    from pipeline.coders.rules import RulesCoder
    from pipeline.io import read_table

    segments = read_table(runs["whole"] / "segments.parquet")
    segments = pd.concat([segments, segments.head(20)], ignore_index=True)  # repeated texts hit the text cache
    segments.loc[len(segments) - 20:, "segment_id"] = [f"dup{i}" for i in range(20)]
    coder = RulesCoder().fit(codebook=load_codebook(runs["cfg_w"].codebook))
    assert coder.needs_pipeline_ is False
    fast = coder.predict(segments, run_id="r")
    coder.needs_pipeline_ = True
    full = coder.predict(segments, run_id="r")
    assert len(fast) > 0
    pd.testing.assert_frame_equal(fast, full)
