"""Training, evaluating and active learning for the supervised coder, from human coding.

Human coding comes in as the training CSV (``document_id, speaker, text, codes``; optional
``segment_id, turn``) or as a ``.qdpx`` exported from NVivo, QualCoder or this project. Evaluation on
held-out gold is agreement (kappa, alpha, P/R/F1 with bootstrap CIs) from :mod:`pipeline.evaluate`;
cross-validation folds are grouped by document, never by segment, and thresholds are tuned on
training folds only (inside :class:`~pipeline.coders.classifier.ClassifierCoder`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.coders.classifier import ClassifierCoder
from pipeline.evaluate import agreement, grouped_folds, read_gold_csv

__all__ = ["cross_validate", "evaluate_model", "load_gold", "suggest_segments", "train_model"]


def load_gold(path: str | Path, codebook: Codebook) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read human coding from a training CSV or a ``.qdpx``; return (segments, ASSIGNMENT rows).

    Raises:
        IngestError: a malformed file, unknown code ids, a hostile archive.
    """
    path = Path(path)
    if path.suffix.lower() == ".qdpx":
        from pipeline.export.qdpx_import import qdpx_to_training_csv, read_qdpx

        project = read_qdpx(path)
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / f"{path.stem}.csv"
            qdpx_to_training_csv(project, csv_path, codebook=codebook)
            return read_gold_csv(csv_path, codebook)
    return read_gold_csv(path, codebook)


def train_model(gold: str | Path, codebook: Codebook, model_out: str | Path, **params: Any) -> dict[str, Any]:
    """Fit a :class:`ClassifierCoder` on the human coding in ``gold`` and save it with its model card.

    Returns:
        The model card (training data hash, codebook version, grouped out-of-fold metrics).
    """
    segments, assignments = load_gold(gold, codebook)
    coder = ClassifierCoder(**params).fit(segments, assignments, codebook=codebook)
    coder.save(model_out)
    return coder.model_card()


def _metrics(report: Any) -> dict[str, Any]:
    data = report.to_dict()
    keep = ("f1", "kappa", "alpha", "precision", "recall", "n", "prevalence", "support")
    out = {"macro": {k: v for k, v in data["macro"].items() if k in keep or k.endswith("_ci")}, "per_code": {}}
    for code, stats in data["per_code"].items():
        out["per_code"][code] = {k: v for k, v in stats.items() if k in keep or k.endswith("_ci")}
    return out


def evaluate_model(model_dir: str | Path, gold: str | Path, codebook: Codebook, *, n_boot: int = 1000,
                   random_state: int = 0) -> dict[str, Any]:
    """Agreement of a saved model with held-out human coding, per code and macro, with bootstrap CIs.

    The bootstrap resamples whole documents. Returns ``{"macro": {...}, "per_code": {...}}`` with
    ``f1, kappa, alpha, precision, recall, n`` (and ``*_ci``).
    """
    coder = ClassifierCoder.load(model_dir, codebook=codebook)
    segments, human = load_gold(gold, codebook)
    predicted = coder.predict(segments)
    groups = dict(zip(segments["segment_id"], segments["document_id"], strict=True))
    report = agreement(human, predicted, codes=codebook.code_ids, segment_ids=list(segments["segment_id"]),
                       n_boot=n_boot, random_state=random_state, groups=groups)
    return _metrics(report)


def cross_validate(gold: str | Path, codebook: Codebook, *, n_splits: int = 5, n_boot: int = 1000,
                   random_state: int = 0, **params: Any) -> dict[str, Any]:
    """Grouped-by-document K-fold cross-validation of the classifier on one gold file.

    Each fold's model is fitted on the other folds only (its thresholds too); the pooled held-out
    predictions are scored once against the human coding.
    """
    segments, human = load_gold(gold, codebook)
    predictions = []
    for train_idx, test_idx in grouped_folds(segments, n_splits=n_splits, random_state=random_state):
        train, test = segments.iloc[train_idx], segments.iloc[test_idx]
        coder = ClassifierCoder(random_state=random_state, **params)
        coder.fit(train, human[human["segment_id"].isin(train["segment_id"])], codebook=codebook)
        predictions.append(coder.predict(test))
    predicted = pd.concat(predictions, ignore_index=True)
    groups = dict(zip(segments["segment_id"], segments["document_id"], strict=True))
    report = agreement(human, predicted, codes=codebook.code_ids, segment_ids=list(segments["segment_id"]),
                       n_boot=n_boot, random_state=random_state, groups=groups)
    result = _metrics(report)
    result["folds"] = n_splits
    result["grouped_by"] = "document_id"
    return result


def suggest_segments(model_dir: str | Path, segments: pd.DataFrame, codebook: Codebook, *, n: int = 50,
                     exclude: set[str] | None = None, diversity: float = 0.5) -> pd.DataFrame:
    """Rank segments whose human coding would most improve the model (uncertainty x diversity).

    Uncertainty of a segment is how close its most uncertain code's probability is to that code's
    threshold (1 at the threshold, 0 far away). Segments are then picked greedily: each pick maximises
    ``(1 - diversity) * uncertainty + diversity * (1 - max similarity to earlier picks)`` over TF-IDF
    cosine similarity, so the list does not repeat near-duplicates.

    Returns:
        ``segment_id, document_id, speaker, rank, uncertainty, closest_code`` (no text).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    coder = ClassifierCoder.load(model_dir, codebook=codebook)
    pool = segments[~segments["segment_id"].isin(exclude or set())].reset_index(drop=True)
    pool = pool[pool["speaker"] != "interviewer"].reset_index(drop=True)
    if pool.empty:
        return pd.DataFrame(columns=["segment_id", "document_id", "speaker", "rank", "uncertainty", "closest_code"])
    probs = coder.predict_proba(pool)
    thresholds = np.array([coder.thresholds_.get(c, np.nan) for c in coder.code_ids_])
    distance = np.abs(probs - thresholds) / np.maximum(np.maximum(thresholds, 1 - thresholds), 1e-9)
    distance = np.where(np.isnan(distance), np.inf, distance)
    closest = distance.argmin(axis=1)
    uncertainty = 1.0 - np.clip(distance.min(axis=1), 0.0, 1.0)
    vectors = TfidfVectorizer(sublinear_tf=True).fit_transform(pool["text"].astype(str))
    chosen: list[int] = []
    max_sim = np.zeros(len(pool))
    for _ in range(min(n, len(pool))):
        gain = (1 - diversity) * uncertainty + diversity * (1 - max_sim)
        gain[chosen] = -np.inf
        pick = int(np.argmax(gain))
        chosen.append(pick)
        max_sim = np.maximum(max_sim, (vectors @ vectors[pick].T).toarray().ravel())
    out = pool.iloc[chosen][["segment_id", "document_id", "speaker"]].copy()
    out["rank"] = range(1, len(chosen) + 1)
    out["uncertainty"] = uncertainty[chosen].round(4)
    out["closest_code"] = [coder.code_ids_[closest[i]] for i in chosen]
    return out.reset_index(drop=True)
