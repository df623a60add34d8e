"""Agreement between coders, per code and macro: human vs model, or any coder vs any coder.

Every statistic is computed per code on the binary decision "is this code assigned to this segment",
from the four counts of a 2x2 table (``tp`` both code it, ``fp`` only ``predicted``, ``fn`` only
``reference``, ``tn`` neither; ``n`` segments):

- **Cohen's kappa** ``(p_o - p_e) / (1 - p_e)`` with ``p_o = (tp + tn) / n`` and
  ``p_e = (r1 * p1 + r0 * p0) / n**2`` (``r1``/``p1`` positives of reference/predicted).
- **Krippendorff's alpha**, nominal, two coders, no missing values. From the coincidence matrix,
  ``alpha = 1 - (m - 1) * D / (n_0 * n_1)`` with ``m = 2n`` pairable values, ``n_1 = 2tp + fp + fn`` and
  ``n_0 = 2tn + fp + fn`` the values of each category and ``D = fp + fn`` the disagreeing units (each
  adds 1 to ``o_01`` and to ``o_10``). :func:`krippendorff_alpha_nominal` is the general coincidence
  matrix version (any number of coders, missing values); both agree.
- **precision** ``tp / (tp + fp)``, **recall** ``tp / (tp + fn)``, **F1** ``2tp / (2tp + fp + fn)`` of
  ``predicted`` against ``reference``; **prevalence** ``(tp + fn) / n`` (reference);
  **percent_agreement** ``p_o``; **n**; **support** ``tp + fn``.

Undefined values (documented behaviour, never an exception):

- A code is *active* when ``reference`` or ``predicted`` assigns it at least once. For an inactive code
  (no positives anywhere) kappa, alpha, precision, recall and F1 are ``nan``: both coders "agree" only
  by never using the code, which says nothing about reliability. Its prevalence is 0, its percent
  agreement 1.
- On an active code, precision without predicted positives and recall without reference positives are
  0.0 (scikit-learn's ``zero_division=0``).
- Kappa and alpha are ``nan`` when all ``2n`` values fall in one category (``p_e = 1``), which on an
  active code means both coders assigned it to every segment.

**Macro** values are the unweighted mean over the *active* codes of each statistic, skipping ``nan``
(inactive codes never count); ``n`` is the number of segments and ``support`` the sum over codes.

**Confidence intervals** are percentile bootstrap intervals (``confidence``, default 95%). Each
resample draws segments with replacement, or, when ``groups`` is given, whole groups (documents) with
replacement, the cluster bootstrap, because segments of one document are not independent. Resamples in
which a statistic is undefined are left out of its interval; macro values are recomputed per resample
over the codes active in it. ``n_boot=0`` skips the bootstrap (intervals are ``nan``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import SchemaError
from pipeline.evaluate_cv import (
    binary_matrix,
    bootstrap_weights,
    check_assignment_columns,
    check_grouped_folds,
    group_index,
    grouped_folds,
    read_gold_csv,
)

__all__ = [  # statistics here, then the evaluation-data helpers of evaluate_cv
    "STATISTICS", "AgreementReport", "agreement", "binary_matrix", "compare_coders", "krippendorff_alpha_nominal",
    "check_grouped_folds", "grouped_folds", "read_gold_csv",
]

#: Rate statistics, each reported with a ``<name>_ci`` interval.
STATISTICS = ("f1", "kappa", "alpha", "precision", "recall", "prevalence", "percent_agreement")
_COUNTS = ("n", "support")

Binary = np.ndarray | pd.DataFrame


@dataclass(frozen=True)
class AgreementReport:
    """Agreement statistics per code and macro, with bootstrap intervals.

    Attributes:
        codes: Code ids in column order.
        per_code: ``{code_id: {statistic: value}}``; see :meth:`to_dict` for the keys.
        macro: The macro values, same keys.
        n_boot: Bootstrap resamples drawn (0: no intervals).
        confidence: Coverage of the intervals.
        resample_unit: ``"segment"`` or ``"group"`` (cluster bootstrap).
        n_units: Segments or groups the bootstrap resampled.
        segment_ids: Segment ids in row order, when known.
        reference: Name of the reference coder, when known.
        predicted: Name of the predicted coder, when known.
    """

    codes: tuple[str, ...]
    per_code: dict[str, dict[str, Any]]
    macro: dict[str, Any]
    n_boot: int
    confidence: float
    resample_unit: str
    n_units: int
    segment_ids: tuple[str, ...] | None = None
    reference: str = ""
    predicted: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain values: ``{"macro": {...}, "per_code": {code_id: {...}}}``.

        Each inner dict has ``f1, kappa, alpha, precision, recall, prevalence, percent_agreement, n,
        support`` and a ``(low, high)`` pair ``<statistic>_ci`` for each rate statistic. Undefined
        values are ``float("nan")``.
        """
        return {"macro": dict(self.macro), "per_code": {c: dict(v) for c, v in self.per_code.items()}}

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per (``code_id``, ``statistic``); the macro rows have ``code_id="macro"``.

        Returns:
            Columns ``code_id, statistic, value, ci_low, ci_high`` (intervals ``nan`` for counts).
        """
        rows = []
        for code_id, values in [("macro", self.macro), *self.per_code.items()]:
            for stat in (*STATISTICS, *_COUNTS):
                low, high = values.get(f"{stat}_ci", (np.nan, np.nan))
                rows.append({"code_id": code_id, "statistic": stat, "value": float(values[stat]),
                             "ci_low": float(low), "ci_high": float(high)})
        return pd.DataFrame(rows, columns=["code_id", "statistic", "value", "ci_low", "ci_high"])


def krippendorff_alpha_nominal(reliability_data: Any) -> float:
    """Krippendorff's alpha for nominal data via the coincidence matrix.

    ``o_ck = sum_u (n_uc * n_uk - [c == k] * n_uc) / (m_u - 1)`` over units with ``m_u >= 2`` values;
    ``alpha = 1 - (n - 1) * sum_{c != k} o_ck / (n**2 - sum_c n_c**2)`` with ``n_c`` the row sums of ``o``
    and ``n`` their total.

    Args:
        reliability_data: Coders x units array; ``nan`` marks a missing value.

    Returns:
        Alpha, or ``nan`` when fewer than two categories occur among pairable values (no variation).
    """
    data = np.asarray(reliability_data, dtype=float)
    if data.ndim != 2:
        raise ValueError(f"reliability_data must be a 2-D coders x units array. Got {data.ndim} dimensions.")
    values = np.unique(data[~np.isnan(data)])
    counts = (data[:, :, None] == values[None, None, :]).sum(axis=0).astype(float)  # units x values
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    o = np.einsum("uc,uk,u->ck", counts, counts, 1.0 / (m - 1)) - np.diag((counts / (m - 1)[:, None]).sum(0))
    n_c = o.sum(axis=1)
    n = n_c.sum()
    expected = n**2 - (n_c**2).sum()
    if expected <= 0:
        return float("nan")
    return float(1.0 - (n - 1) * (o.sum() - np.trace(o)) / expected)


def agreement(reference: Binary, predicted: Binary, *, codes: Sequence[str],
              segment_ids: Sequence[str] | None = None, n_boot: int = 1000, random_state: int | None = 0,
              groups: Any = None, confidence: float = 0.95) -> AgreementReport:
    """Agreement of ``predicted`` with ``reference`` per code and macro, with bootstrap intervals.

    See the module docstring for the formulas, the undefined cases and the macro average.

    Args:
        reference: ASSIGNMENT table of one coder (the gold standard), or a segments x codes 0/1 matrix.
        predicted: The same for the coder under test. Kappa and alpha are symmetric; precision and
            recall treat ``reference`` as the truth.
        codes: Code ids (matrix columns).
        segment_ids: Segments to compare (matrix rows). Default for tables: every segment with a row
            in ``reference``, sorted. Required when only ``predicted`` is a table.
        n_boot: Bootstrap resamples; 0 skips the intervals.
        random_state: Seed of the bootstrap (same seed, same intervals).
        groups: Cluster labels (e.g. document ids) for the cluster bootstrap: a mapping or
            ``pd.Series`` from segment id to group, or a sequence aligned with the rows.
        confidence: Coverage of the percentile intervals, in (0, 1).

    Returns:
        An :class:`AgreementReport`.

    Raises:
        SchemaError: a table lacks a column or mixes coders.
        ValueError: shapes, values (not 0/1), parameters or groups are invalid.
    """
    codes = list(codes)
    _check_params(n_boot, confidence)
    ref, pred, ids = _matrices(reference, predicted, codes, segment_ids)
    units = group_index(groups, ids, ref.shape[0])
    r, p = ref.astype(float), pred.astype(float)
    parts = np.stack([r * p, (1 - r) * p, r * (1 - p), (1 - r) * (1 - p)])  # tp, fp, fn, tn indicators
    point = _statistics(*_counts(parts, np.ones((1, ref.shape[0]))))
    boot = _bootstrap(parts, units, n_boot, random_state) if n_boot else None
    q = ((1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100)
    per_code = {c: _summary(point, boot, q, j) for j, c in enumerate(codes)}
    return AgreementReport(
        codes=tuple(codes), per_code=per_code, macro=_summary(point, boot, q, None), n_boot=n_boot,
        confidence=confidence, resample_unit="segment" if groups is None else "group",
        n_units=int(units.max() + 1) if units.size else 0, segment_ids=None if ids is None else tuple(ids),
        reference=_coder_name(reference), predicted=_coder_name(predicted),
    )


def compare_coders(assignments: pd.DataFrame, coder_a: str, coder_b: str, *, codes: Sequence[str],
                   segment_ids: Sequence[str] | None = None, n_boot: int = 1000, random_state: int | None = 0,
                   groups: Any = None, confidence: float = 0.95) -> AgreementReport:
    """Agreement of two coders on the segments both coded (per segment and per code).

    Like NVivo's coding comparison, but on segments rather than characters. A coder *coded* a segment
    when the table has at least one row for that coder and segment; human tables from
    :func:`read_gold_csv` hold a row per segment x code, so segments coded with no code count too.
    For coders that only write positive rows, call :func:`agreement` on :func:`binary_matrix` output
    over an explicit segment list instead.

    Args:
        assignments: ASSIGNMENT table holding both coders.
        coder_a: Reference coder (precision/recall treat it as the truth; kappa and alpha are symmetric).
        coder_b: The other coder.
        codes: Code ids to compare.
        segment_ids: Restrict to these segments (kept in this order), still only those both coded.
        n_boot: See :func:`agreement`.
        random_state: See :func:`agreement`.
        groups: See :func:`agreement`.
        confidence: See :func:`agreement`.

    Returns:
        An :class:`AgreementReport` whose ``segment_ids`` are the shared segments.

    Raises:
        SchemaError: a column is missing, a coder has no rows, or no segment was coded by both.
    """
    check_assignment_columns(assignments)
    shared = _coded_by_both(assignments, coder_a, coder_b, segment_ids)
    ref = binary_matrix(assignments, segments=shared, codes=codes, coder=coder_a)
    pred = binary_matrix(assignments, segments=shared, codes=codes, coder=coder_b)
    report = agreement(ref, pred, codes=codes, segment_ids=shared, n_boot=n_boot, random_state=random_state,
                       groups=groups, confidence=confidence)
    return dataclasses.replace(report, reference=coder_a, predicted=coder_b)


# --- inputs --------------------------------------------------------------------------------------


def _check_params(n_boot: int, confidence: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 0:
        raise ValueError(f"The 'n_boot' parameter of agreement must be an int >= 0. Got {n_boot!r} instead.")
    if not 0 < confidence < 1:
        raise ValueError(f"The 'confidence' parameter of agreement must be in (0, 1). Got {confidence!r} instead.")


def _matrices(reference: Binary, predicted: Binary, codes: list[str],
              segment_ids: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    if len(set(codes)) != len(codes):
        raise ValueError(f"The 'codes' parameter must hold unique ids. Got {codes} instead.")
    ids = None if segment_ids is None else list(segment_ids)
    if ids is None and isinstance(reference, pd.DataFrame):
        check_assignment_columns(reference)
        ids = sorted(reference["segment_id"].dropna().unique().tolist())
    ref, pred = _as_matrix(reference, ids, codes, "reference"), _as_matrix(predicted, ids, codes, "predicted")
    if ref.shape != pred.shape:
        raise ValueError(f"reference and predicted must have the same shape. Got {ref.shape} and {pred.shape}.")
    if ids is not None and len(ids) != ref.shape[0]:
        raise ValueError(f"segment_ids has {len(ids)} ids but the matrices have {ref.shape[0]} rows.")
    return ref, pred, ids


def _as_matrix(x: Binary, ids: list[str] | None, codes: list[str], name: str) -> np.ndarray:
    if isinstance(x, pd.DataFrame):
        if ids is None:
            raise ValueError(f"segment_ids is required when '{name}' is a table and reference is a matrix.")
        return binary_matrix(x, segments=ids, codes=codes)
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[1] != len(codes):
        raise ValueError(f"'{name}' must be a segments x codes matrix with {len(codes)} columns. "
                         f"Got shape {arr.shape} instead.")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"'{name}' must hold only 0/1 (or booleans).")
    return arr.astype(np.int8)


def _coder_name(x: Binary) -> str:
    if isinstance(x, pd.DataFrame) and "coder" in x.columns:
        coders = x["coder"].dropna().unique()
        return str(coders[0]) if len(coders) == 1 else ""
    return ""


def _coded_by_both(assignments: pd.DataFrame, coder_a: str, coder_b: str,
                   segment_ids: Sequence[str] | None) -> list[str]:
    coded = []
    for coder in (coder_a, coder_b):
        ids = set(assignments.loc[assignments["coder"] == coder, "segment_id"].dropna())
        if not ids:
            raise SchemaError(f"Coder {coder!r} has no rows in the ASSIGNMENT table.",
                              table="ASSIGNMENT", column="coder")
        coded.append(ids)
    both = coded[0] & coded[1]
    shared = sorted(both) if segment_ids is None else [s for s in segment_ids if s in both]
    if not shared:
        raise SchemaError(f"No segment was coded by both {coder_a!r} and {coder_b!r}"
                          f"{'' if segment_ids is None else ' among segment_ids'}.",
                          table="ASSIGNMENT", column="segment_id")
    return shared


# --- statistics ----------------------------------------------------------------------------------


def _counts(parts: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted tp, fp, fn, tn, each ``(b, k)``, from ``(4, n, k)`` indicators and ``(b, n)`` weights."""
    return tuple(weights @ part for part in parts)


def _statistics(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    """Every statistic from counts (any matching shapes), plus the ``active`` mask."""
    n = tp + fp + fn + tn
    r1, p1 = tp + fn, tp + fp
    active = (r1 + p1) > 0
    n1 = r1 + p1
    n0 = 2 * n - n1
    mixed = (n0 * n1) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        p_o = (tp + tn) / n
        p_e = (r1 * p1 + (n - r1) * (n - p1)) / n**2
        stats = {
            "f1": np.where(active, 2 * tp / (2 * tp + fp + fn), np.nan),
            "kappa": np.where(mixed, (p_o - p_e) / (1 - p_e), np.nan),
            "alpha": np.where(mixed, 1 - (2 * n - 1) * (fp + fn) / (n0 * n1), np.nan),
            "precision": np.where(p1 > 0, tp / p1, np.where(active, 0.0, np.nan)),
            "recall": np.where(r1 > 0, tp / r1, np.where(active, 0.0, np.nan)),
            "prevalence": np.where(n > 0, r1 / n, np.nan),
            "percent_agreement": np.where(n > 0, p_o, np.nan),
        }
    stats["n"], stats["support"], stats["active"] = n, r1, active
    return stats


def _macro(stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mean over active codes, skipping nan, per row (resample); ``n`` and summed ``support``."""
    out = {}
    for name in STATISTICS:
        values = np.where(stats["active"], stats[name], np.nan)
        finite = np.isfinite(values)
        count = finite.sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name] = np.where(count > 0, np.where(finite, values, 0.0).sum(axis=-1) / count, np.nan)
    n = stats["n"]
    out["n"] = n[..., 0] if n.shape[-1] else np.zeros(n.shape[:-1])
    out["support"] = stats["support"].sum(axis=-1)
    return out


def _bootstrap(parts: np.ndarray, units: np.ndarray, n_boot: int, random_state: int | None) -> dict[str, np.ndarray]:
    """Statistics (per code and macro) of ``n_boot`` resamples of the units (segments or groups)."""
    chunks = [_statistics(*_counts(parts, w)) for w in bootstrap_weights(units, n_boot, random_state)]
    if not chunks:
        return {}
    stats = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    return {**{k: stats[k] for k in STATISTICS}, **{f"macro:{k}": v for k, v in _macro(stats).items()}}


def _summary(point: dict[str, np.ndarray], boot: dict[str, np.ndarray] | None, q: tuple[float, float],
             j: int | None) -> dict[str, Any]:
    """One code's (``j``) or the macro's (``j=None``) values and intervals as plain Python numbers."""
    values = _macro(point) if j is None else {k: point[k][..., j] for k in (*STATISTICS, *_COUNTS)}
    out: dict[str, Any] = {k: float(np.asarray(values[k]).ravel()[0]) for k in STATISTICS}
    out.update({k: int(np.asarray(values[k]).ravel()[0]) for k in _COUNTS})
    for k in STATISTICS:
        out[f"{k}_ci"] = _interval(None if not boot else (boot[f"macro:{k}"] if j is None else boot[k][:, j]), q)
    return out


def _interval(samples: np.ndarray | None, q: tuple[float, float]) -> tuple[float, float]:
    if samples is None:
        return (float("nan"), float("nan"))
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return (float("nan"), float("nan"))
    low, high = np.percentile(finite, q)
    return (float(low), float(high))
