"""Training, evaluation and suggestions from the demo gold coding (real files, real models)."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.training import load_gold, suggest_segments

ROOT = Path(__file__).resolve().parents[2]
GOLD = ROOT / "corpora/demo/gold/gold_coding.csv"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    res = CliRunner().invoke(app, ["train", "--gold", str(GOLD), "--model-out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_training_model_card_records_data_and_codebook(model_dir, codebook):
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["codebook"]["version"] == codebook.version and len(card["training_data"]["sha256"]) == 64
    assert card["training_data"]["human_segments"] == 480 and "f1" in card["cv"]["macro"]
    assert (model_dir / "model.skops").exists() and not list(model_dir.glob("*.pkl"))


def test_training_evaluate_cli_writes_metrics_with_required_keys(model_dir, tmp_path):
    out = tmp_path / "metrics.json"
    res = CliRunner().invoke(app, ["evaluate", "--model", str(model_dir), "--gold", str(GOLD), "--out", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads(out.read_text())
    for part in (metrics["macro"], *metrics["per_code"].values()):
        assert {"f1", "kappa", "alpha", "precision", "recall", "n"} <= set(part)
    assert metrics["macro"]["n"] == 480 and 0 <= metrics["macro"]["f1"] <= 1


def test_training_suggest_ranks_uncoded_diverse_segments(model_dir, codebook):
    segments, _ = load_gold(GOLD, codebook)
    done = set(segments["segment_id"][:100])
    ranked = suggest_segments(model_dir, segments, codebook, n=20, exclude=done)
    assert len(ranked) == 20 and list(ranked["rank"]) == list(range(1, 21))
    assert not set(ranked["segment_id"]) & done and ranked["segment_id"].is_unique
    assert "text" not in ranked.columns
    assert (ranked["uncertainty"].between(0, 1)).all()


def test_training_run_uses_trained_model_from_config(model_dir, tmp_path, codebook_path):
    from pipeline.config import load_run_config
    from pipeline.stages import code_segments

    cfg_path = tmp_path / "run.yaml"
    cfg_path.write_text(f"version: 1\ncodebook: {codebook_path}\ncoders:\n"
                        f"  - use: coder.classifier.v1\n    model: {model_dir}\n")
    cfg = load_run_config(cfg_path)
    segments, _ = load_gold(GOLD, load_codebook_from(codebook_path))
    run = tmp_path / "run"
    (run / "interim").mkdir(parents=True)
    seg = segments.assign(start_char=0, end_char=segments["text"].str.len())
    from pipeline.io import write_table
    from pipeline.schema import SEGMENT, coerce_frame

    write_table(coerce_frame(seg[SEGMENT.column_names], SEGMENT), run / "segments.parquet", SEGMENT)
    report = code_segments(cfg, run, 0, run_id="r")
    codes = pd.read_parquet(report["paths"]["codes"])
    assert report["counts"]["coder"] == "coder.classifier.v1" and len(codes) > 0


def load_codebook_from(path):
    from pipeline.codebook import load_codebook

    return load_codebook(path)
