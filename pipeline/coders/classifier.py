"""ClassifierCoder: one calibrated logistic regression per code, trained from human coding.

**Features.** TF-IDF word uni- and bigrams plus TF-IDF character 2-5-grams (``char_wb``) of the
segment text; with ``context=True`` also TF-IDF words of the *previous segment of the same document*
as a separate block (so "thanks" after a rupture is a different feature from "thanks" in the segment
itself); with ``embedding_backend`` set, the shared sentence embedding of the text (and of the context)
from :mod:`pipeline.embed` is appended. The previous segment is looked up in the frame given to ``fit``
or ``predict`` (order: ``turn_index``, then ``start_char`` when present, then row order); the first
segment of a document, or one whose predecessor is not in the frame, has an empty context.

**Models.** For every code, a binary :class:`~sklearn.linear_model.LogisticRegression`
(``class_weight="balanced"``, liblinear, ``C``). Its probabilities are calibrated with Platt scaling
(:class:`~sklearn.calibration.CalibratedClassifierCV`, ``method="sigmoid"``, ``ensemble=False``):

- *grouped*: when the code's training rows allow ``calibration_cv`` stratified folds grouped by document
  (at least ``calibration_cv`` documents and positives, and both classes in every training part), the
  sigmoid is fitted on out-of-fold decision values of those folds, and one final model on all rows;
- *train-fit*: otherwise, the sigmoid is fitted on the decision values of the model's own training fit
  (:class:`~sklearn.frozen.FrozenEstimator`). That is over-confident on small data; ``calibration_``
  says which codes got it, and the model card lists it.

**Thresholds.** The decision threshold of each code is tuned to maximise F1 on *out-of-fold*
probabilities of the **training data only**: ``fit`` splits its own rows into ``cv`` folds grouped by
document (:func:`pipeline.evaluate.grouped_folds`), refits the whole model (vectoriser included) on each
training part and scores the held-out part. Nothing outside ``segments`` is ever read. The threshold is
the midpoint between the best out-of-fold score and the next lower one, never below the code's base
rate (else a weak model "wins" F1 by coding everything); it is tuned on the human rows (on the codebook
rows only when the human rows hold no positive); a code without out-of-fold positives keeps 0.5. The
same out-of-fold predictions give the per-code metrics of the model card (``cv_report_``); they are
slightly optimistic because the thresholds were chosen on them (``bench/demo_gold_cv.py`` measures on
folds ``fit`` never saw).

**Training data.** ``assignments`` are the rows of exactly one human coder (``human:<name>``). A segment
counts as coded when that coder has at least one row for it (:func:`pipeline.evaluate.read_gold_csv`
writes a row per segment x code, so segments coded with no code count); uncoded segments are ignored
(they still serve as context). Pairs without a true row are negatives. Assignment rows of segments not
in ``segments`` are ignored.

**Codebook examples (weak supervision).** The codebook's own texts can join the training rows: a
code's ``examples`` are positives; its ``counter_examples`` (the text before ``--``) and the examples of
the other codes are negatives; a counter-example of another code whose note names this code is left
out (the note may say "is this code or that one"). Each text is its own group in the folds. These are
weak labels written to illustrate a definition, not a sample of real segments. ``codebook_examples``
says when they are used:

- ``"fallback"`` (default): for codes with fewer than ``min_positives`` human positives; and for every
  code when ``fit`` gets no ``assignments``, which lets a new user (and the coder contract test) start
  from the codebook alone. Such a model is a starting point, not a measured one;
- ``"always"``: for every code, as data augmentation of the human rows (on the demo gold coding it
  measured better than ``"fallback"`` in held-out grouped cross-validation; see ``bench/demo_gold_cv.py``);
- ``"never"``: strictly supervised; ``fit`` without assignments raises
  :class:`~pipeline.errors.CoderError` and codes below ``min_positives`` are skipped
  (``skipped_codes_``; never assigned).

``sources_`` gives each code's source (``human``, ``human+codebook``, ``codebook`` or ``skipped``); the
model card records it and the ``supervision`` of the whole model.

**Output.** One ASSIGNMENT row (``label`` True) per segment x code whose calibrated probability reaches
the code's threshold; ``score`` is the probability; ``evidence`` is ``clf:p=0.83``, plus
``src=<source>`` for codes not trained from human coding alone. With ``respect_speakers`` a code is
never assigned to a segment of a speaker outside its scope (``unknown`` speakers are coded for every
scope), in training (threshold tuning) as in prediction.

**Persistence.** :meth:`ClassifierCoder.save` writes a folder with ``model.skops`` (scikit-learn objects
and plain values through :mod:`skops.io`, never pickle), ``model_card.json`` and ``MODEL_CARD.md``.
:meth:`ClassifierCoder.load` refuses a file whose sha256 differs from its card, refuses any type
:func:`skops.io.get_untrusted_types` reports unless it is in :data:`REVIEWED_TYPES` or in the caller's
own ``trusted`` list (``trusted=True`` is never accepted), and refuses a codebook with another id or
version than the model was trained with. The model holds the TF-IDF vocabulary, i.e. words and word
pairs of the de-identified training segments: it is as sensitive as that corpus.

**Speed.** ``fit`` runs ``cv + 1`` full fits (each ``calibration_cv + 1`` logistic regressions per code;
liblinear, dual) with BLAS limited to one thread for the duration (``threadpoolctl``): the problems are
tiny and BLAS threads only add overhead. About 3-5 s for 480 segments x 15 codes on two CPU cores.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import re
import zipfile
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from pipeline.codebook import Codebook
from pipeline.coders.base import BaseCoder, assignment_frame, check_is_fitted
from pipeline.errors import CoderError, ConfigError

__all__ = [
    "CARD_FILE", "CARD_MARKDOWN", "MODEL_FILE", "REVIEWED_TYPES", "ClassifierCoder", "codebook_training_rows",
    "grouped_calibration_splits", "previous_texts", "tune_threshold",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.skops"
CARD_FILE = "model_card.json"
CARD_MARKDOWN = "MODEL_CARD.md"
FORMAT_VERSION = 1

#: Types that ``skops.io.get_untrusted_types`` reports for this coder's files and that were reviewed:
#: the private containers CalibratedClassifierCV keeps per fitted classifier (an estimator reference plus
#: its sigmoid calibrator) and the sigmoid's two fitted parameters: plain attribute holders with no state
#: hooks of their own (only BaseEstimator's, like every sklearn estimator). Anything else skops reports
#: is refused unless the caller passes it in ``trusted`` after reviewing it.
REVIEWED_TYPES: tuple[str, ...] = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)

_CODE_REF = re.compile(r"\b[A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)+\b")
_WORD = re.compile(r"\w")
_TOKEN_PATTERN = r"(?u)\b\w+\b"
_EXAMPLE_MODES = ("fallback", "always", "never")
_STATE = ("code_ids_", "sources_", "skipped_codes_", "thresholds_", "calibration_", "vectorizer_", "models_",
          "code_speakers_", "codebook_", "embedding_model_id_", "training_", "cv_report_")


# --------------------------------------------------------------------------------------------- helpers
def previous_texts(segments: pd.DataFrame) -> list[str]:
    """Text of the previous segment of the same document in ``segments`` ('' for none), in row order.

    Order within a document: ``turn_index``, then ``start_char`` when the column exists, then row order.
    """
    n = len(segments)
    order = pd.DataFrame({"doc": segments["document_id"].astype(str).to_numpy(),
                          "turn": segments["turn_index"].to_numpy(dtype=np.int64) if n else [],
                          "start": (segments["start_char"].to_numpy(dtype=np.int64) if "start_char" in segments
                                    else np.zeros(n, dtype=np.int64)),
                          "row": np.arange(n)})
    order = order.sort_values(["doc", "turn", "start", "row"], kind="stable")
    texts = segments["text"].astype(str).to_numpy()
    out = [""] * n
    prev_doc, prev_row = None, -1
    for doc, row in zip(order["doc"], order["row"], strict=True):
        if doc == prev_doc:
            out[row] = str(texts[prev_row])
        prev_doc, prev_row = doc, row
    return out


def codebook_training_rows(codebook: Codebook) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Weak-supervision rows from the codebook (see the module docstring).

    Returns:
        ``(texts, groups, labels, known)``: one group per text (``codebook:<code>:example#<i>``),
        ``labels`` and ``known`` are ``len(texts) x len(codes)`` booleans; ``known`` False leaves a pair out.
    """
    ids = codebook.code_ids
    texts, groups, labels, known = [], [], [], []
    for j, code in enumerate(codebook.codes):
        items = [("example", text, "") for text in code.examples]
        items += [("counter_example", *_split_note(text)) for text in code.counter_examples]
        for i, (kind, text, note) in enumerate(items):
            if not text:
                continue
            row = np.zeros(len(ids), dtype=bool)
            row[j] = kind == "example"
            seen = np.ones(len(ids), dtype=bool)
            if kind == "counter_example":
                seen &= ~np.isin(ids, [c for c in _CODE_REF.findall(note) if c != code.id])
            texts.append(text)
            groups.append(f"codebook:{code.id}:{kind}#{i}")
            labels.append(row)
            known.append(seen)
    return texts, groups, np.array(labels, dtype=bool), np.array(known, dtype=bool)


def _split_note(text: str) -> tuple[str, str]:
    head, _, note = text.partition(" -- ")
    return " ".join(head.split()), note


def grouped_calibration_splits(y: np.ndarray, groups: np.ndarray, n_splits: int,
                               random_state: int | None) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Folds grouped by document with the positives spread evenly, or None when the data do not allow them.

    Groups are shuffled (``random_state``), then taken with the most positives first, each into the fold
    with the fewest positives so far (groups without positives: the fold with the fewest rows), like a
    fast :class:`~sklearn.model_selection.StratifiedGroupKFold` for one binary label. Folds are allowed
    when there are at least ``n_splits`` groups and positives and every training part holds both
    classes. No group is ever in two folds.
    """
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    labels, index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    if n_splits < 2 or n_pos < n_splits or len(labels) < n_splits or n_pos == len(y):
        return None
    pos = np.bincount(index, weights=y, minlength=len(labels))
    size = np.bincount(index, minlength=len(labels))
    order = np.random.default_rng(random_state).permutation(len(labels))
    order = order[np.argsort(-pos[order], kind="stable")]
    fold_pos, fold_size = np.zeros(n_splits), np.zeros(n_splits)
    fold_of = np.empty(len(labels), dtype=np.int64)
    for g in order:
        k = int(np.lexsort((fold_size, fold_pos))[0]) if pos[g] else int(np.argmin(fold_size))
        fold_of[g] = k
        fold_pos[k] += pos[g]
        fold_size[k] += size[g]
    row_fold = fold_of[index]
    splits = [(np.flatnonzero(row_fold != k), np.flatnonzero(row_fold == k)) for k in range(n_splits)]
    if any(len(te) == 0 or len(np.unique(y[tr])) < 2 for tr, te in splits):
        return None
    return splits


def tune_threshold(scores: np.ndarray, truth: np.ndarray, *, floor: float = 0.0, default: float = 0.5) -> float:
    """Threshold maximising F1 of ``scores >= t`` against ``truth`` (ties: the higher threshold).

    Candidates are the positives' scores at or above ``floor``; the result is the midpoint between the
    best candidate and the next lower score (but not below ``floor``). ``default`` when there is no
    candidate. With calibrated probabilities, ``floor`` = the code's base rate keeps a weak model from
    "winning" F1 by coding every segment (a probability below the base rate is less likely than average).
    """
    truth = np.asarray(truth).astype(bool)
    candidates = np.unique(scores[truth & (scores >= floor)])
    if not len(candidates):
        return default
    n_pos = int(truth.sum())
    best_t, best_f1 = float(candidates[-1]), -1.0
    for t in candidates[::-1]:
        pred = scores >= t
        f1 = 2 * int((pred & truth).sum()) / (int(pred.sum()) + n_pos)
        if f1 > best_f1:
            best_t, best_f1 = float(t), f1
    below = scores[scores < best_t]
    threshold = (best_t + float(below.max())) / 2 if len(below) else best_t
    return round(max(threshold, floor), 6)


def _sha256_json(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _versions() -> dict[str, str]:
    from pipeline import __version__

    out = {"alliance-coder": __version__, "python": platform.python_version()}
    for name in ("scikit-learn", "skops", "numpy", "scipy", "pandas"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _is_int(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


# ------------------------------------------------------------------------------------------------ coder
class ClassifierCoder(BaseCoder):
    """Supervised coder: calibrated per-code logistic regressions on TF-IDF (and embedding) features.

    See the module docstring for features, calibration, threshold tuning, the codebook examples and
    persistence.

    Args:
        embedding_backend: Append shared embeddings from this backend (``embed.static.v1`` or
            ``embed.minilm.v1``); ``None`` uses TF-IDF only (fast, needs no model).
        context: Add the previous segment of the same document as a separate block of features.
        min_positives: Human positives a code needs to be trained from human coding alone.
        codebook_examples: When the codebook's examples join the training rows: ``"fallback"`` for codes
            below ``min_positives`` (every code when ``fit`` gets no assignments), ``"always"`` for every
            code, ``"never"`` (strictly supervised: such codes are skipped, no assignments is an error).
        C: Inverse regularisation strength of every logistic regression.
        cv: Folds (grouped by document) of the out-of-fold predictions that tune the thresholds.
        calibration_cv: Folds (grouped by document) of the sigmoid calibration.
        max_features: Vocabulary size limit of each TF-IDF block.
        respect_speakers: Never assign a code to a speaker outside its scope.
        cache_dir: Embedding cache root (see :mod:`pipeline.embed`).
        random_state: Seed of the fold shuffles and of liblinear.
    """

    name = "coder.classifier.v1"

    def __init__(self, *, embedding_backend: str | None = None, context: bool = False, min_positives: int = 5,
                 codebook_examples: str = "fallback", C: float = 1.0, cv: int = 5, calibration_cv: int = 3,
                 max_features: int = 20000, respect_speakers: bool = True, cache_dir: str | Path | None = None,
                 random_state: int = 0) -> None:
        self.embedding_backend = embedding_backend
        self.context = context
        self.min_positives = min_positives
        self.codebook_examples = codebook_examples
        self.C = C
        self.cv = cv
        self.calibration_cv = calibration_cv
        self.max_features = max_features
        self.respect_speakers = respect_speakers
        self.cache_dir = cache_dir
        self.random_state = random_state

    # ------------------------------------------------------------------------------------------- fit
    def fit(self, segments: pd.DataFrame | None = None, assignments: pd.DataFrame | None = None, *,
            codebook: Codebook) -> Self:
        """Train one calibrated model per code and tune its threshold on out-of-fold predictions.

        Args:
            segments: Training SEGMENT table (``segment_id``, ``document_id``, ``turn_index``, ``speaker``,
                ``text``; offsets optional, so :func:`pipeline.evaluate.read_gold_csv` output works).
            assignments: Human ASSIGNMENT rows of one coder ``human:<name>``; ``None`` trains every code
                from the codebook's examples alone (or raises with ``codebook_examples="never"``).
            codebook: The codebook; its id, version and sha256 are recorded.

        Raises:
            ConfigError: (QA-E002) an invalid parameter.
            CoderError: (QA-E031) no assignments with ``codebook_examples="never"``; unusable assignments;
                no code left to train.
        """
        self._check_params()
        ids = list(codebook.code_ids)
        human = self._human_rows(segments, assignments, ids) if assignments is not None else None
        if human is None and self.codebook_examples == "never":
            raise CoderError(f"{self.name} is supervised and fit got no assignments. Pass the human coding "
                             "(e.g. from pipeline.evaluate.read_gold_csv), or use codebook_examples='fallback' "
                             "to start from the codebook's examples.", coder=self.name, key="assignments")
        data, sources, positives = self._training_table(human, codebook)
        active = [j for j, c in enumerate(ids) if sources[c] != "skipped"]
        if not active:
            raise CoderError(f"no code has {self.min_positives} or more human positives and codebook_examples "
                             "is 'never'; nothing to train.", coder=self.name, key="min_positives")
        scopes = {c.id: sorted(c.speakers) for c in codebook.codes}
        embedded, model_id = self._embed(data["text"], data["context"])
        with threadpool_limits(limits=1, user_api="blas"):  # tiny BLAS calls: threads only add overhead
            oof, fold_groups = self._out_of_fold(data, embedded, ids, active)
            vectorizer, models, calibration = self._fit_models(data, embedded, ids, active)
        if oof is not None:
            oof = self._gate(oof, data["speaker"], ids, scopes)
        thresholds = {ids[j]: self._threshold(data, oof, j) for j in active}
        self.code_ids_ = ids
        self.sources_ = sources
        self.skipped_codes_ = [c for c in ids if sources[c] == "skipped"]
        self.code_speakers_ = scopes
        self.thresholds_ = thresholds
        self.vectorizer_, self.models_, self.calibration_ = vectorizer, models, calibration
        self.embedding_model_id_ = model_id
        self.codebook_ = {"id": codebook.id, "version": codebook.version, "sha256": codebook.sha256()}
        self.training_ = self._training_record(data, human, positives)
        self.cv_report_ = self._cv_report(data, oof, fold_groups)
        return self

    def _check_params(self) -> None:
        checks = [
            ("embedding_backend", self.embedding_backend is None or isinstance(self.embedding_backend, str),
             "a registered embedding backend name or None"),
            ("context", isinstance(self.context, bool), "a bool"),
            ("min_positives", _is_int(self.min_positives, 1), "an int >= 1"),
            ("codebook_examples", self.codebook_examples in _EXAMPLE_MODES, f"one of {list(_EXAMPLE_MODES)}"),
            ("C", isinstance(self.C, int | float) and not isinstance(self.C, bool) and self.C > 0, "a float > 0"),
            ("cv", _is_int(self.cv, 2), "an int >= 2"),
            ("calibration_cv", _is_int(self.calibration_cv, 2), "an int >= 2"),
            ("max_features", _is_int(self.max_features, 1), "an int >= 1"),
            ("respect_speakers", isinstance(self.respect_speakers, bool), "a bool"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(f"The {key!r} parameter of {self.name} must be {expected}. "
                                  f"Got {getattr(self, key)!r} instead.", key=key)

    def _source(self, positives: int, negatives: int, has_human: bool) -> str:
        """``human`` | ``human+codebook`` | ``codebook`` | ``skipped``: what a code is trained from."""
        if not has_human:
            return "codebook"
        enough = positives >= self.min_positives and negatives > 0
        if self.codebook_examples == "always" or (self.codebook_examples == "fallback" and not enough):
            return "human+codebook"
        return "human" if enough else "skipped"

    @staticmethod
    def _threshold(data: dict[str, Any], oof: np.ndarray | None, j: int) -> float:
        """Tuned on out-of-fold scores of the human rows (all of the code's rows if they hold no positive)."""
        rows = data["mask"][:, j] & data["human"]
        if not data["labels"][rows, j].any():
            rows = data["mask"][:, j]
        if oof is None or not rows.any():
            return 0.5
        truth = data["labels"][rows, j]
        return tune_threshold(oof[rows, j], truth, floor=float(truth.mean()))

    def _human_rows(self, segments: pd.DataFrame | None, assignments: pd.DataFrame,
                    ids: list[str]) -> dict[str, Any]:
        from pipeline.evaluate_cv import binary_matrix, check_assignment_columns

        if segments is None:
            raise CoderError("fit got assignments but no segments; pass the training segments too.",
                             coder=self.name, key="segments")
        check_assignment_columns(assignments)
        human = assignments[assignments["coder"].astype(str).str.startswith("human:")]
        coders = sorted(human["coder"].astype(str).unique())
        if len(coders) != 1:
            raise CoderError(f"training needs the rows of exactly one human coder ('human:<name>'); got "
                             f"{len(coders)}: {coders[:5]}.", coder=self.name, key="assignments")
        coded = segments["segment_id"].astype(str).isin(set(human["segment_id"].astype(str)))
        if not coded.any():
            raise CoderError(f"none of the {len(segments)} segments has a row of {coders[0]}.",
                             coder=self.name, key="assignments")
        frame = segments.reset_index(drop=True)
        contexts = previous_texts(frame) if self.context else [""] * len(frame)  # whole frame: uncoded rows too
        keep = coded.to_numpy()
        frame = frame[keep].reset_index(drop=True)
        labels = binary_matrix(human, segments=frame["segment_id"].astype(str).tolist(), codes=ids,
                               coder=coders[0]).astype(bool)
        if (~keep).any():
            logger.info("%s: %d of %d segments have no human rows and are not used", self.name,
                        int((~keep).sum()), len(keep))
        return {"frame": frame, "context": [c for c, k in zip(contexts, keep, strict=True) if k],
                "labels": labels, "coder": coders[0]}

    def _training_table(self, human: dict[str, Any] | None,
                        codebook: Codebook) -> tuple[dict[str, Any], dict[str, str], dict[str, int]]:
        ids = codebook.code_ids
        labels = human["labels"] if human is not None else np.zeros((0, len(ids)), dtype=bool)
        positives = {c: int(labels[:, j].sum()) for j, c in enumerate(ids)}
        negatives = {c: int((~labels[:, j]).sum()) for j, c in enumerate(ids)}
        sources = {c: self._source(positives[c], negatives[c], human is not None) for c in ids}
        active = np.array([sources[c] != "skipped" for c in ids])
        uses_codebook = np.array(["codebook" in sources[c] for c in ids])
        texts, contexts, groups, speakers = [], [], [], []
        masks = [np.tile(active, (len(labels), 1))]
        if human is not None:
            frame = human["frame"]
            texts += frame["text"].astype(str).tolist()
            contexts += list(human["context"])
            groups += frame["document_id"].astype(str).tolist()
            speakers += frame["speaker"].astype(str).tolist()
        label_blocks = [labels]
        if uses_codebook.any():
            cb_texts, cb_groups, cb_labels, cb_known = codebook_training_rows(codebook)
            texts += cb_texts
            contexts += [""] * len(cb_texts)
            groups += cb_groups
            speakers += ["unknown"] * len(cb_texts)
            label_blocks.append(cb_labels)
            masks.append(cb_known & uses_codebook[None, :])
        data = {"text": texts, "context": contexts if self.context else [""] * len(texts),
                "group": np.asarray(groups, dtype=object), "speaker": np.asarray(speakers, dtype=object),
                "labels": np.vstack(label_blocks), "mask": np.vstack(masks),
                "human": np.arange(len(texts)) < len(labels)}
        return data, sources, positives

    # --------------------------------------------------------------------------------------- predict
    def predict(self, segments: pd.DataFrame, *, run_id: str = "") -> pd.DataFrame:
        """Return ASSIGNMENT rows (label True) for every segment x code whose probability reaches its threshold.

        Raises:
            NotFittedError: (QA-E030) before ``fit``.
            CoderError: (QA-E031) the embedding backend now loads other weights than at training time.
        """
        check_is_fitted(self)
        probs = self.predict_proba(segments)
        ids = segments["segment_id"].astype(str).tolist()
        rows: list[dict[str, Any]] = []
        for j, code in enumerate(self.code_ids_):
            if code not in self.thresholds_:
                continue
            suffix = "" if self.sources_[code] == "human" else f" src={self.sources_[code]}"
            for i in np.flatnonzero(probs[:, j] >= self.thresholds_[code]):
                p = float(probs[i, j])
                rows.append({"segment_id": ids[i], "code_id": code, "coder": self.name, "score": round(p, 6),
                             "label": True, "evidence": f"clf:p={p:.2f}{suffix}", "run_id": run_id})
        return assignment_frame(rows)

    def predict_proba(self, segments: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, ``len(segments) x len(code_ids_)``.

        Skipped codes, and with ``respect_speakers`` speakers outside a code's scope, get 0.
        """
        check_is_fitted(self)
        texts = segments["text"].astype(str).tolist()
        contexts = previous_texts(segments) if self.context else [""] * len(texts)
        embedded, model_id = self._embed(texts, contexts)
        if model_id != self.embedding_model_id_:
            raise CoderError(f"the model was trained on embeddings {self.embedding_model_id_!r} but "
                             f"{self.embedding_backend!r} now loads {model_id!r}; retrain the classifier.",
                             coder=self.name, key="embedding_backend")
        if not texts:
            return np.zeros((0, len(self.code_ids_)))
        x = self._features(self.vectorizer_, texts, contexts, embedded)
        probs = _probabilities(self.models_, x, self.code_ids_)
        return self._gate(probs, segments["speaker"].astype(str).to_numpy(), self.code_ids_, self.code_speakers_)

    # ----------------------------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write ``model.skops``, ``model_card.json`` and ``MODEL_CARD.md`` into the folder ``path``.

        Returns:
            The folder.

        Raises:
            NotFittedError: (QA-E030) before ``fit``.
        """
        import skops.io as sio

        from pipeline.io import atomic_write_bytes, atomic_write_text, ensure_private_dir, write_json

        check_is_fitted(self)
        folder = ensure_private_dir(Path(path))
        params = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.get_params().items()}
        state = {"format": FORMAT_VERSION, "coder": self.name, "params": params,
                 **{k: getattr(self, k) for k in _STATE}}
        blob = sio.dumps(state, compression=zipfile.ZIP_DEFLATED)
        atomic_write_bytes(folder / MODEL_FILE, blob)
        card = self.model_card()
        card["model_file"] = {"name": MODEL_FILE, "sha256": hashlib.sha256(blob).hexdigest(),
                              "untrusted_types": sio.get_untrusted_types(data=blob)}
        write_json(folder / CARD_FILE, card)
        atomic_write_text(folder / CARD_MARKDOWN, _card_markdown(card))
        return folder

    def model_card(self) -> dict[str, Any]:
        """The model card as plain values (what ``model_card.json`` holds, less the file hash)."""
        check_is_fitted(self)
        codes = {c: {"source": self.sources_[c], "human_positives": self.training_["human_positives"][c],
                     "threshold": self.thresholds_.get(c), "calibration": self.calibration_.get(c),
                     "cv": self.cv_report_.get("per_code", {}).get(c)} for c in self.code_ids_}
        return {"coder": self.name, "format": FORMAT_VERSION, "codebook": dict(self.codebook_),
                "training_data": dict(self.training_), "params": {k: (str(v) if isinstance(v, Path) else v)
                                                                  for k, v in self.get_params().items()},
                "embedding_model_id": self.embedding_model_id_, "skipped_codes": list(self.skipped_codes_),
                "codes": codes, "cv": {k: v for k, v in self.cv_report_.items() if k not in ("per_code",
                                                                                           "fold_groups")},
                "libraries": _versions()}

    @classmethod
    def load(cls, path: str | Path, *, codebook: Codebook, trusted: list[str] | tuple[str, ...] | None = None
             ) -> ClassifierCoder:
        """Load a folder written by :meth:`save`, for use with ``codebook``.

        Args:
            path: The folder.
            codebook: The codebook predictions will be read against; its id and version must be the model's.
            trusted: Further type names (as :func:`skops.io.get_untrusted_types` prints them) that you
                reviewed and trust, beyond :data:`REVIEWED_TYPES`. ``True`` is refused.

        Raises:
            ConfigError: (QA-E002) another codebook id or version (naming both); ``trusted`` not a list.
            CoderError: (QA-E031) a missing or altered file, untrusted types in it, or an unknown format.
        """
        import skops.io as sio

        folder = Path(path)
        extra = _check_trusted(trusted)
        card = _read_card(folder)
        _check_codebook(card.get("codebook", {}), codebook, folder)
        blob = _read_model(folder, card)
        untrusted = sio.get_untrusted_types(data=blob)
        refused = sorted(t for t in untrusted if t not in REVIEWED_TYPES and t not in extra)
        if refused:
            raise CoderError(f"refusing to load: the model file holds types that are not trusted: {refused}. "
                             "Review them and pass trusted=[...] naming them if you trust this file.",
                             coder=cls.name, path=str(folder / MODEL_FILE), key="trusted")
        state = sio.loads(blob, trusted=untrusted)
        if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION or state.get("coder") != cls.name:
            raise CoderError(f"not a {cls.name} model of format {FORMAT_VERSION}.", coder=cls.name,
                             path=str(folder / MODEL_FILE))
        _check_codebook(state["codebook_"], codebook, folder)
        coder = cls(**state["params"])
        for key in _STATE:
            setattr(coder, key, state[key])
        return coder

    # --------------------------------------------------------------------------------- model fitting
    def _embed(self, texts: list[str], contexts: list[str]) -> tuple[np.ndarray | None, str | None]:
        """Shared embeddings of the texts (and contexts), float64, plus the embedding model id."""
        if self.embedding_backend is None:
            return None, None
        from pipeline.embed import embed_texts, get_embedder

        model_id = get_embedder(self.embedding_backend, cache_dir=self.cache_dir).model_id
        blocks = [embed_texts(texts, backend=self.embedding_backend, cache_dir=self.cache_dir)]
        if self.context:
            ctx = embed_texts(contexts, backend=self.embedding_backend, cache_dir=self.cache_dir)
            ctx[[not _WORD.search(c) for c in contexts]] = 0.0
            blocks.append(ctx)
        return np.hstack(blocks).astype(np.float64), model_id

    def _make_vectorizer(self, contexts: list[str]) -> ColumnTransformer:
        blocks = [
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=_TOKEN_PATTERN,
                                     max_features=self.max_features), "text"),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                     max_features=self.max_features), "text"),
        ]
        if self.context and any(_WORD.search(c) for c in contexts):
            blocks.append(("context", TfidfVectorizer(sublinear_tf=True, token_pattern=_TOKEN_PATTERN,
                                                      max_features=self.max_features), "context"))
        return ColumnTransformer(blocks, sparse_threshold=1.0)

    @staticmethod
    def _features(vectorizer: ColumnTransformer, texts: list[str], contexts: list[str],
                  embedded: np.ndarray | None, *, fit: bool = False) -> sparse.csr_matrix:
        frame = pd.DataFrame({"text": pd.Series(texts, dtype=object), "context": pd.Series(contexts, dtype=object)})
        try:
            x = vectorizer.fit_transform(frame) if fit else vectorizer.transform(frame)
        except ValueError as e:  # an empty vocabulary: no training text has a word character
            raise CoderError(f"cannot build text features from the training texts: {e}",
                             coder=ClassifierCoder.name, key="segments") from None
        x = sparse.csr_matrix(x)
        return x if embedded is None else sparse.hstack([x, sparse.csr_matrix(embedded)], format="csr")

    def _fit_models(self, data: dict[str, Any], embedded: np.ndarray | None, ids: list[str], active: list[int],
                    rows: np.ndarray | None = None) -> tuple[ColumnTransformer, dict[str, Any], dict[str, str]]:
        """Vectoriser and one calibrated model per active code, fitted on ``rows`` (default: all)."""
        rows = np.arange(len(data["text"])) if rows is None else rows
        texts, contexts = [data["text"][i] for i in rows], [data["context"][i] for i in rows]
        vectorizer = self._make_vectorizer(contexts)
        x = self._features(vectorizer, texts, contexts, None if embedded is None else embedded[rows], fit=True)
        for _, block, _ in vectorizer.transformers_:
            if hasattr(block, "stop_words_"):
                block.stop_words_ = None  # the terms cut by max_features: introspection only, large on disk
                block.vocabulary_ = {term: int(i) for term, i in block.vocabulary_.items()}  # not numpy scalars
        models: dict[str, Any] = {}
        calibration: dict[str, str] = {}
        for j in active:
            use = data["mask"][rows, j]
            models[ids[j]], calibration[ids[j]] = self._fit_code(x[use], data["labels"][rows, j][use],
                                                                 data["group"][rows][use])
        return vectorizer, models, calibration

    def _fit_code(self, x: sparse.csr_matrix, y: np.ndarray, groups: np.ndarray) -> tuple[Any, str]:
        """A calibrated model, or the constant positive rate when ``y`` holds one class only."""
        if len(np.unique(y)) < 2:
            return (float(y.mean()) if len(y) else 0.0), "constant"
        y = y.astype(int)
        base = LogisticRegression(C=float(self.C), class_weight="balanced", solver="liblinear", dual=True,
                                  max_iter=1000, random_state=self.random_state)
        splits = grouped_calibration_splits(y, groups, self.calibration_cv, self.random_state)
        if splits is not None:
            return CalibratedClassifierCV(base, method="sigmoid", cv=splits, ensemble=False).fit(x, y), "grouped-cv"
        everything = np.arange(len(y))  # one "split" whose test part is every row: the sigmoid sees the training fit
        model = CalibratedClassifierCV(FrozenEstimator(base.fit(x, y)), method="sigmoid", cv=[(everything, everything)])
        return model.fit(x, y), "train-fit"

    def _out_of_fold(self, data: dict[str, Any], embedded: np.ndarray | None, ids: list[str],
                     active: list[int]) -> tuple[np.ndarray | None, list[list[str]]]:
        """Out-of-fold probabilities of the training rows (folds grouped by document), or None."""
        from pipeline.evaluate_cv import grouped_folds

        groups = data["group"]
        n_splits = min(self.cv, len(set(groups)))
        if n_splits < 2:
            return None, []
        folds = grouped_folds(pd.DataFrame({"group": groups}), groups_column="group", n_splits=n_splits,
                              random_state=self.random_state)
        oof = np.zeros(data["labels"].shape, dtype=np.float64)
        for train, test in folds:
            vectorizer, models, _ = self._fit_models(data, embedded, ids, active, rows=train)
            x = self._features(vectorizer, [data["text"][i] for i in test], [data["context"][i] for i in test],
                               None if embedded is None else embedded[test])
            oof[test] = _probabilities(models, x, ids)
        return oof, [sorted(map(str, set(groups[test]))) for _, test in folds]

    def _gate(self, probs: np.ndarray, speakers: np.ndarray, ids: list[str],
              scopes: dict[str, list[str]]) -> np.ndarray:
        """``probs`` with 0 where the segment's speaker is outside the code's scope (``respect_speakers``)."""
        if not self.respect_speakers:
            return probs
        out = probs.copy()
        for j, code in enumerate(ids):
            allowed = set(scopes[code])
            out[[s != "unknown" and s not in allowed for s in speakers], j] = 0.0
        return out

    # ------------------------------------------------------------------------------------ the record
    def _training_record(self, data: dict[str, Any], human: dict[str, Any] | None,
                         positives: dict[str, int]) -> dict[str, Any]:
        ids = self.code_ids_
        rows = [[str(g), t, c, [ids[j] for j in np.flatnonzero(lab)], [ids[j] for j in np.flatnonzero(m)]]
                for g, t, c, lab, m in zip(data["group"], data["text"], data["context"], data["labels"],
                                           data["mask"], strict=True)]
        n_human = int(data["human"].sum())
        kinds = sorted(set(self.sources_.values()) - {"skipped"})
        supervision = kinds[0] if len(kinds) == 1 else "mixed: " + ", ".join(kinds)
        return {"sha256": _sha256_json(rows), "rows": len(rows), "human_segments": n_human,
                "documents": len(set(data["group"][data["human"]])), "codebook_rows": len(rows) - n_human,
                "human_coder": human["coder"] if human is not None else None, "supervision": supervision,
                "human_positives": positives, "created_at": datetime.now(UTC).isoformat(timespec="seconds")}

    def _cv_report(self, data: dict[str, Any], oof: np.ndarray | None,
                   fold_groups: list[list[str]]) -> dict[str, Any]:
        from pipeline.evaluate import agreement

        report: dict[str, Any] = {"folds": len(fold_groups), "fold_groups": fold_groups}
        if oof is None:
            return {**report, "note": "too few documents for out-of-fold predictions; thresholds are 0.5."}
        rows = data["human"] if data["human"].any() else np.ones(len(data["text"]), dtype=bool)
        pred = np.zeros((int(rows.sum()), len(self.code_ids_)), dtype=np.int8)
        for j, code in enumerate(self.code_ids_):
            if code in self.thresholds_:
                pred[:, j] = oof[rows, j] >= self.thresholds_[code]
        result = agreement(data["labels"][rows].astype(np.int8), pred, codes=self.code_ids_, n_boot=0)
        return {**report, "evaluated_on": "human segments" if data["human"].any() else "codebook examples",
                "segments": int(rows.sum()), "macro": _clean_stats(result.macro),
                "per_code": {c: _clean_stats(v) for c, v in result.per_code.items()},
                "note": "grouped out-of-fold predictions of the training data at the tuned thresholds, which were "
                        "chosen on these same scores: slightly optimistic."}


def _probabilities(models: dict[str, Any], x: sparse.csr_matrix, ids: list[str]) -> np.ndarray:
    """Calibrated probabilities, segments x codes; 0 for codes without a model."""
    out = np.zeros((x.shape[0], len(ids)), dtype=np.float64)
    for j, code in enumerate(ids):
        model = models.get(code)
        if model is not None:
            out[:, j] = model if isinstance(model, float) else model.predict_proba(x)[:, 1]
    return out


def _clean_stats(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in ("f1", "kappa", "precision", "recall", "support"):
        value = float(values[key])
        out[key] = None if np.isnan(value) else round(value, 4)
    return out


def _check_trusted(trusted: object) -> set[str]:
    if trusted is None:
        return set()
    if isinstance(trusted, list | tuple | set | frozenset) and all(isinstance(t, str) for t in trusted):
        return set(trusted)
    raise ConfigError(f"The 'trusted' parameter of ClassifierCoder.load must be a list of type names you "
                      f"reviewed (see skops.io.get_untrusted_types). Got {trusted!r} instead.", key="trusted")


def _read_card(folder: Path) -> dict[str, Any]:
    try:
        card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CoderError(f"cannot read the model card ({e}).", coder=ClassifierCoder.name,
                         path=str(folder / CARD_FILE)) from None
    if not isinstance(card, dict):
        raise CoderError("the model card is not a JSON object.", coder=ClassifierCoder.name,
                         path=str(folder / CARD_FILE))
    return card


def _read_model(folder: Path, card: dict[str, Any]) -> bytes:
    try:
        blob = (folder / MODEL_FILE).read_bytes()
    except OSError as e:
        raise CoderError(f"cannot read the model file ({e.strerror}).", coder=ClassifierCoder.name,
                         path=str(folder / MODEL_FILE)) from None
    expected = card.get("model_file", {}).get("sha256")
    if hashlib.sha256(blob).hexdigest() != expected:
        raise CoderError("the model file's sha256 differs from the one in its model card; the file was "
                         "changed or belongs to another model.", coder=ClassifierCoder.name,
                         path=str(folder / MODEL_FILE))
    return blob


def _check_codebook(trained: dict[str, Any], codebook: Codebook, folder: Path) -> None:
    have = f"{trained.get('id')}@{trained.get('version')}"
    want = f"{codebook.id}@{codebook.version}"
    if have != want:
        raise ConfigError(f"the model in {folder} was trained with codebook {have}, but codebook {want} was "
                          "given. Retrain the classifier on coding against this codebook version.", key="codebook")
    if trained.get("sha256") != codebook.sha256():
        logger.warning("codebook %s differs in content from the one the model was trained with (same version); "
                       "bump the codebook version when codes change", want)


def _card_markdown(card: dict[str, Any]) -> str:
    t, cb, cv = card["training_data"], card["codebook"], card["cv"]
    macro = cv.get("macro") or {}
    lines = [
        f"# Model card: {card['coder']}", "",
        f"- Codebook: `{cb['id']}` {cb['version']} (sha256 `{cb['sha256'][:16]}...`)",
        f"- Training data: sha256 `{t['sha256'][:16]}...`; {t['human_segments']} human-coded segments from "
        f"{t['documents']} documents ({t['human_coder'] or 'no human coder'}), {t['codebook_rows']} codebook rows",
        f"- Supervision: **{t['supervision']}**"
        + (" (codebook examples are weak labels: check before relying on these codes)"
           if "codebook" in t["supervision"] else ""),
        f"- Embeddings: {card['embedding_model_id'] or 'none (TF-IDF only)'}",
        f"- Model file: `{card['model_file']['name']}` (skops), sha256 `{card['model_file']['sha256'][:16]}...`",
        "- Contains the TF-IDF vocabulary, i.e. words and word pairs of the (de-identified) training segments: "
        "share the model only where the training corpus may be shared.",
        f"- Created {t['created_at']} with "
        + ", ".join(f"{k} {v}" for k, v in sorted(card["libraries"].items())), "",
        f"Cross-validation ({cv.get('folds', 0)} folds grouped by document, on {cv.get('evaluated_on', '-')}): "
        f"macro F1 {macro.get('f1')}, kappa {macro.get('kappa')}. {cv.get('note', '')}", "",
        "| code | source | positives | threshold | calibration | F1 | kappa |", "|---|---|---|---|---|---|---|",
    ]
    for code, v in card["codes"].items():
        m = v["cv"] or {}
        lines.append(f"| {code} | {v['source']} | {v['human_positives']} | {v['threshold']} | "
                     f"{v['calibration'] or '-'} | {m.get('f1')} | {m.get('kappa')} |")
    return "\n".join(lines) + "\n"
