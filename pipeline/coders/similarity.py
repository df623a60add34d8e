"""SimilarityCoder: zero-shot coding from the codebook text alone, by embedding similarity.

What a new user gets before coding anything by hand. Each code gets prototypes from its own text:

- **positive**: the definition, each ``when_to_use`` criterion and each example;
- **negative**: each counter-example (the part before ``--``, without the explanation) and each
  ``when_not_to_use`` criterion (without its ``(use WA.X)`` pointer).

Embeddings are centred before the cosine: ``fit`` learns ``center_``, the mean embedding of every text
it saw (the prototypes and the segments passed to it, i.e. the corpus being coded), and both sides
become ``normalise(v - center_)``. Sentence embeddings share a common direction (strongly so for the
static backend, whose raw cosines between unrelated texts sit around 0.6); removing the corpus mean
spreads the scores and puts both backends on one scale, so one default threshold serves both. With
``p`` the centred cosine to the nearest positive prototype of code ``c`` and ``n`` to its nearest
negative one, the score of a segment for ``c`` is::

    score = clip(p - negative_weight * max(0, n - p), 0, 1)

Near misses are, by design, close in meaning to the code's examples, so subtracting their similarity
everywhere would punish true positives too. They lower the score only when the segment is nearer to a
near miss than to every positive prototype, by the amount of that lead: the exclusion criteria act as
a local veto, not as a global offset. The cosine maps to [0, 1] by clipping: vectors are L2-normalised,
so ``p`` is in [-1, 1], and a negative cosine (pointing away from the code, relative to the corpus
mean) is as much "no" as 0.

A row (label True) is written for each segment x code whose score reaches the code's threshold, at
most ``top_k`` per segment (highest scores first); the table stays sparse. ``evidence`` names the
nearest positive prototype, e.g. ``example:WA.VAL.VALIDATION#3`` (0-based), plus ``near_miss:<id>``
when a negative prototype lowered the score.

Thresholds: the default 0.35 was chosen without gold labels, on the 5,042 demo segments and the
codebook's own examples: with centring it codes about a third of the demo segments (0.6 codes per
segment) with the static backend and a fifth with MiniLM, in line with "most ordinary talk gets no
code". When ``fit`` gets human assignments, each code with at least ``min_positives`` positives among
the training segments gets the threshold that maximises F1 on those segments (``thresholds_``; the
midpoint to the next lower score, for a margin); other codes keep the default. Only the segments
passed to ``fit`` are read. Embeddings come from the shared cache (:mod:`pipeline.embed`), so coders
and runs embed a text once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.coders.base import BaseCoder, assignment_frame, check_is_fitted
from pipeline.embed import embed_segments, embed_texts, get_embedder
from pipeline.errors import CoderError, ConfigError

__all__ = ["Prototype", "SimilarityCoder", "codebook_prototypes"]

_POINTER = re.compile(r"\s*\([^()]*\b[A-Z]{2,}(?:\.[A-Z0-9_]+)+[^()]*\)")


@dataclass(frozen=True)
class Prototype:
    """One codebook text used as a prototype of a code."""

    code_id: str
    kind: str  # definition | when_to_use | example | counter_example | when_not_to_use
    index: int
    text: str
    positive: bool

    @property
    def id(self) -> str:
        """Evidence id, e.g. ``example:WA.VAL.VALIDATION#3``."""
        return f"{self.kind}:{self.code_id}#{self.index}"


def _clean(text: str) -> str:
    return " ".join(_POINTER.sub("", text.split(" -- ")[0]).split())


def codebook_prototypes(codebook: Codebook) -> list[Prototype]:
    """Positive and negative prototypes of every code, in codebook order."""
    out: list[Prototype] = []
    for code in codebook.codes:
        parts = [("definition", [code.definition], True), ("when_to_use", code.when_to_use, True),
                 ("example", code.examples, True), ("counter_example", code.counter_examples, False),
                 ("when_not_to_use", code.when_not_to_use, False)]
        for kind, texts, positive in parts:
            for i, text in enumerate(texts):
                if cleaned := _clean(text):
                    out.append(Prototype(code.id, kind, i, cleaned, positive))
    return out


class SimilarityCoder(BaseCoder):
    """Zero-shot coder: cosine similarity of segments to the codebook's own text.

    Args:
        backend: Embedding backend registry name (``embed.static.v1`` or ``embed.minilm.v1``).
        threshold: Score in [0, 1] a code needs (codes without calibration data).
        top_k: At most this many codes per segment (highest scores); ``None``: no limit.
        respect_speakers: Apply each code only to segments of the speakers in its scope (segments with an
            ``unknown`` speaker are coded for every scope).
        negative_weight: How strongly a nearer near miss lowers the score (0 ignores negative prototypes).
        min_positives: Positives a code needs among the training segments for its own threshold.
        cache_dir: Embedding cache root (default ``$ALLIANCE_CACHE_DIR`` or ``~/.cache/alliance``).
        batch_size: Texts per encoder batch.
        random_state: Kept for the coder interface; nothing in this coder is random.
    """

    name = "coder.similarity.v1"

    def __init__(self, *, backend: str = "embed.static.v1", threshold: float = 0.35, top_k: int | None = 3,
                 respect_speakers: bool = True, negative_weight: float = 1.0, min_positives: int = 3,
                 cache_dir: str | Path | None = None, batch_size: int = 64, random_state: int = 0) -> None:
        self.backend = backend
        self.threshold = threshold
        self.top_k = top_k
        self.respect_speakers = respect_speakers
        self.negative_weight = negative_weight
        self.min_positives = min_positives
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.random_state = random_state

    # ------------------------------------------------------------------------------------------- fit
    def fit(self, segments: pd.DataFrame | None = None, assignments: pd.DataFrame | None = None, *,
            codebook: Codebook) -> Self:
        """Embed the prototypes, learn the centre; calibrate per-code thresholds if ``assignments`` are given.

        Args:
            segments: The segments to code (zero-shot) or the training segments (calibration). Their
                embeddings enter the centre; without them the centre is the prototypes' mean (weaker).
            assignments: Human ASSIGNMENT rows (coder ``human:<name>``) for ``segments``; pairs without a
                true row count as negatives. Rows of other segments are ignored.
            codebook: The codebook.

        Raises:
            ConfigError: (QA-E002) an invalid parameter. CoderError: (QA-E031) unusable assignments.
            MissingDependencyError: (QA-E050) the backend is not installed.
        """
        self._check_params()
        embedder = get_embedder(self.backend, cache_dir=self.cache_dir)
        prototypes = codebook_prototypes(codebook)
        self.code_ids_ = list(codebook.code_ids)
        self.prototype_ids_ = [p.id for p in prototypes]
        self.prototype_code_ = np.array([self.code_ids_.index(p.code_id) for p in prototypes], dtype=np.int64)
        self.prototype_positive_ = np.array([p.positive for p in prototypes], dtype=bool)
        raw = embed_texts([p.text for p in prototypes], backend=self.backend, cache_dir=self.cache_dir,
                          batch_size=self.batch_size)
        seen = raw if segments is None or not len(segments) else np.vstack([raw, self._embed(segments)])
        self.center_ = seen.mean(axis=0)
        self.prototypes_ = _normalise(raw - self.center_)
        self.code_speakers_ = {c.id: set(c.speakers) for c in codebook.codes}
        self.model_id_ = embedder.model_id
        self.codebook_version_ = f"{codebook.id}@{codebook.version}"
        self.default_threshold_ = float(self.threshold)
        self.thresholds_ = dict.fromkeys(self.code_ids_, self.default_threshold_)
        self.calibration_: dict[str, dict[str, Any]] = {}
        if assignments is not None:
            if segments is None:
                raise CoderError("fit got assignments but no segments; pass the training segments too.",
                                 key="segments")
            self._calibrate(segments, assignments)
        return self

    def _check_params(self) -> None:
        checks = [
            ("threshold", _is_number(self.threshold) and 0 <= self.threshold <= 1, "a float in [0, 1]"),
            ("top_k", self.top_k is None or (_is_int(self.top_k) and self.top_k >= 1), "an int >= 1 or None"),
            ("negative_weight", _is_number(self.negative_weight) and self.negative_weight >= 0, "a float >= 0"),
            ("min_positives", _is_int(self.min_positives) and self.min_positives >= 1, "an int >= 1"),
            ("batch_size", _is_int(self.batch_size) and self.batch_size >= 1, "an int >= 1"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(f"The {key!r} parameter of {self.name} must be {expected}. "
                                  f"Got {getattr(self, key)!r} instead.", key=key)

    def _calibrate(self, segments: pd.DataFrame, assignments: pd.DataFrame) -> None:
        from pipeline.evaluate_cv import binary_matrix

        human = assignments[assignments["coder"].astype(str).str.startswith("human:")]
        coders = sorted(human["coder"].astype(str).unique())
        if len(coders) != 1:
            raise CoderError(f"calibration needs the rows of exactly one human coder ('human:<name>'); "
                             f"got {len(coders)}: {coders[:5]}.", key="assignments")
        ids = segments["segment_id"].astype(str).tolist()
        truth = binary_matrix(human, segments=ids, codes=self.code_ids_, coder=coders[0]).astype(bool)
        scores, _ = self._score(segments)
        for j, code in enumerate(self.code_ids_):
            positives = int(truth[:, j].sum())
            entry: dict[str, Any] = {"positives": positives, "segments": len(ids), "source": "default",
                                     "threshold": self.default_threshold_}
            if positives >= self.min_positives:
                threshold, f1 = _best_threshold(scores[:, j], truth[:, j])
                if threshold is not None:
                    self.thresholds_[code] = threshold
                    entry.update(source="calibrated", threshold=threshold, train_f1=f1)
            self.calibration_[code] = entry

    # --------------------------------------------------------------------------------------- predict
    def predict(self, segments: pd.DataFrame, *, run_id: str = "") -> pd.DataFrame:
        """Return ASSIGNMENT rows (label True) for every segment x code whose score reaches the threshold."""
        check_is_fitted(self)
        scores, evidence = self._score(segments)
        thresholds = np.array([self.thresholds_[c] for c in self.code_ids_])
        hits = (scores >= thresholds[None, :]) & (scores > 0)
        if self.top_k is not None:
            order = np.argsort(-scores, axis=1, kind="stable")
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.arange(scores.shape[1])[None, :].repeat(len(scores), 0), axis=1)
            hits &= rank < self.top_k
        ids = segments["segment_id"].astype(str).tolist()
        rows: list[dict[str, Any]] = [
            {"segment_id": ids[i], "code_id": self.code_ids_[j], "coder": self.name,
             "score": round(float(scores[i, j]), 6), "label": True, "evidence": evidence[i][j], "run_id": run_id}
            for i, j in zip(*np.nonzero(hits), strict=True)
        ]
        return assignment_frame(rows)

    def _embed(self, segments: pd.DataFrame) -> np.ndarray:
        return embed_segments(segments, backend=self.backend, cache_dir=self.cache_dir,
                              batch_size=self.batch_size).astype(np.float64)

    def _score(self, segments: pd.DataFrame) -> tuple[np.ndarray, list[list[str]]]:
        """Scores (segments x codes, 0 outside a code's speaker scope) and evidence ids."""
        sims = _normalise(self._embed(segments) - self.center_) @ self.prototypes_.T
        n, k = len(segments), len(self.code_ids_)
        scores = np.zeros((n, k), dtype=np.float64)
        evidence: list[list[str]] = [[""] * k for _ in range(n)]
        speakers = segments["speaker"].astype(str).tolist() if n else []
        for j, code in enumerate(self.code_ids_):
            pos_cols = np.flatnonzero((self.prototype_code_ == j) & self.prototype_positive_)
            neg_cols = np.flatnonzero((self.prototype_code_ == j) & ~self.prototype_positive_)
            best_pos = sims[:, pos_cols].argmax(axis=1) if n else np.zeros(0, dtype=int)
            pos = sims[np.arange(n), pos_cols[best_pos]]
            lead = np.zeros(n)
            if len(neg_cols) and self.negative_weight > 0:
                best_neg = sims[:, neg_cols].argmax(axis=1)
                lead = np.maximum(0.0, sims[np.arange(n), neg_cols[best_neg]] - pos)
            scores[:, j] = np.clip(pos - self.negative_weight * lead, 0.0, 1.0)
            for i in range(n):
                ev = self.prototype_ids_[pos_cols[best_pos[i]]]
                if lead[i] > 0:
                    ev += f" near_miss:{self.prototype_ids_[neg_cols[best_neg[i]]]}"
                evidence[i][j] = ev
            if self.respect_speakers:
                allowed = self.code_speakers_[code]
                out_of_scope = np.array([s != "unknown" and s not in allowed for s in speakers], dtype=bool)
                scores[out_of_scope, j] = 0.0
        return scores, evidence


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def _best_threshold(scores: np.ndarray, truth: np.ndarray) -> tuple[float | None, float]:
    """The threshold that maximises F1 of ``scores >= t`` against ``truth`` (ties: the higher threshold).

    Candidates are the positives' scores; the returned value is the midpoint between the best candidate
    and the next lower training score, so that the training decisions stay the same with a margin.
    """
    candidates = np.unique(scores[truth & (scores > 0)])
    if not len(candidates):
        return None, 0.0
    n_pos = int(truth.sum())
    best_t, best_f1 = None, -1.0
    for t in candidates[::-1]:
        pred = scores >= t
        tp = int((pred & truth).sum())
        f1 = 2 * tp / (int(pred.sum()) + n_pos)
        if f1 > best_f1:
            best_t, best_f1 = float(t), f1
    below = scores[scores < best_t]
    threshold = (best_t + float(below.max())) / 2 if len(below) else best_t
    return threshold, round(best_f1, 4)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
