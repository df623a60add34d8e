"""Flows for the supervised coder: train from human coding, evaluate against held-out human coding.

Thin wiring over ``pipeline.training``: parameters are paths, tasks return paths and metrics (numbers),
never text. Results are JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from pipeline.codebook import load_codebook
from pipeline.config import load_run_config
from pipeline.io import write_json
from pipeline.training import cross_validate, evaluate_model, train_model

__all__ = ["evaluate_coder", "train_coder"]


def _codebook(path: str | None) -> Any:
    return load_codebook(path or load_run_config(None).codebook)


@task(name="train-classifier", result_serializer="json", persist_result=False)
def train_task(gold: str, model_out: str, codebook: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """Fit and save the classifier; return its model card's summary."""
    card = train_model(gold, _codebook(codebook), model_out, **params)
    return {"model": model_out, "cv": card.get("cv", {}).get("macro", {}), "codebook": card["codebook"]}


@task(name="evaluate", result_serializer="json", persist_result=False)
def evaluate_task(gold: str, out: str, model: str | None, cv: int, codebook: str | None) -> dict[str, Any]:
    """Agreement of a model (or grouped cross-validation) with human coding; writes metrics.json."""
    cb = _codebook(codebook)
    metrics = evaluate_model(model, gold, cb) if model else cross_validate(gold, cb, n_splits=cv)
    write_json(Path(out), metrics)
    return {"metrics": out, "macro": metrics["macro"]}


@flow(name="train-coder", log_prints=False, persist_result=False)
def train_coder(gold: str, model_out: str, codebook: str | None = None,
                params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the supervised coder from a human-coded CSV or .qdpx."""
    return train_task(gold, model_out, codebook, params or {})


@flow(name="evaluate-coder", log_prints=False, persist_result=False)
def evaluate_coder(gold: str, out: str, model: str | None = None, cv: int = 0,
                   codebook: str | None = None) -> dict[str, Any]:
    """Evaluate a trained model, or cross-validate (grouped by document) when ``cv`` > 0."""
    result = evaluate_task(gold, out, model, cv, codebook)
    rows = [{"statistic": k, "value": round(float(v), 4)} for k, v in result["macro"].items()
            if isinstance(v, (int, float))]
    create_table_artifact(rows, key="coder-agreement", description="macro agreement with human coding")
    return result
