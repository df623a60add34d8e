"""Drift: how far the topic distribution of new segments moved from the one the model was fitted on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["topic_drift"]


def _shares(topics: np.ndarray, ids: list[int]) -> np.ndarray:
    counts = np.array([(topics == t).sum() for t in ids], dtype=np.float64)
    return counts / counts.sum() if counts.sum() else counts


def topic_drift(reference: Sequence[int] | np.ndarray, new: Sequence[int] | np.ndarray, *,
                top: int = 5) -> dict[str, Any]:
    """Compare the topic distributions of the fitted (reference) and the new segments.

    Args:
        reference: Primary topic per reference segment (-1 = outlier).
        new: Primary topic per new segment.
        top: How many topics with the largest change in share to list.

    Returns:
        ``js_distance`` (Jensen-Shannon distance, base 2: 0 = same distribution, 1 = disjoint),
        ``outlier_share_reference`` / ``outlier_share_new``, segment counts, the shares of every topic
        and the ``top`` largest changes (``topic_id``, ``reference``, ``new``, ``change``).
    """
    ref = np.asarray(reference, dtype=np.int64)
    cur = np.asarray(new, dtype=np.int64)
    ids = sorted(set(ref.tolist()) | set(cur.tolist()))
    p, q = _shares(ref, ids), _shares(cur, ids)
    if len(ref) and len(cur):
        m = (p + q) / 2
        kl = lambda a: float(np.sum(a[a > 0] * np.log2(a[a > 0] / m[a > 0])))  # noqa: E731
        js = float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))
    else:
        js = float("nan") if not (len(ref) or len(cur)) else 1.0
    shares = [{"topic_id": t, "reference": round(float(a), 6), "new": round(float(b), 6),
               "change": round(float(b - a), 6)} for t, a, b in zip(ids, p, q, strict=True)]
    biggest = sorted(shares, key=lambda r: (-abs(r["change"]), r["topic_id"]))[:top]
    return {"js_distance": round(js, 6) if js == js else None, "reference_segments": int(len(ref)),
            "new_segments": int(len(cur)), "outlier_share_reference": round(float((ref == -1).mean()), 6)
            if len(ref) else None, "outlier_share_new": round(float((cur == -1).mean()), 6) if len(cur) else None,
            "shares": shares, "largest_changes": biggest}
