"""Combine the ASSIGNMENT tables of several coders into final codes with a score and a review flag.

Input tables are ASSIGNMENT tables (see ``pipeline.schema``), one or more coders each. Coders write
sparse tables (rows for the codes they assign), so a coder without a row for a segment x code pair
said "no" with score 0. Every pair for which any coder has a row becomes one output row.

**Rules, per code.** ``rules`` maps a code id, a dotted prefix of code ids (``WA.RUPC`` covers
``WA.RUPC.CONFRONTATION``) or ``"*"`` to a rule; a code takes the rule of its own id, else of its
longest matching prefix, else ``"*"``, else ``{"method": "max"}``. A rule is a dict (or
:class:`CombineRule`) with:

- ``method``:

  - ``max`` (default): score = the highest score; label = any coder assigns the code;
  - ``mean``: score = the mean score (0 for coders without a row); label = score >= ``threshold``.
    Only meaningful when the coders' scores share a scale (a cosine and a probability do not);
  - ``vote``: score = the share of coders that assign the code; label = at least ``min_votes``
    (default: a majority of the coders considered);
  - ``precedence``: the first coder in ``coders`` that has a row for the pair decides label and score
    (e.g. ``[human:review, coder.rules.v1, coder.classifier.v1]``); no row from any: not assigned.

- ``coders``: the coders considered (order matters for ``precedence``, where it is required); default:
  every coder in the tables. Rows of other coders are ignored for that code (they still show in
  :func:`review_table`);
- ``threshold`` (``mean``), ``min_votes`` (``vote``), ``review_threshold`` (overrides the argument).

**Review flag.** A pair needs review when the considered coders disagree (at least two coders, some
assign the code and some do not: reason ``disagree``) or when the code is assigned with a score below
the review threshold (reason ``low``). ASSIGNMENT has no column for it, so the evidence of a flagged row
starts with ``review:<reasons>;`` (e.g. ``review:disagree|low; max: coder.rules.v1=1.00
coder.similarity.v1=0.00``); unflagged rows start with the method. :func:`review_table` gives the same
decisions as a table with the per-coder scores.

Output is deterministic: rows sorted by segment id and code id, coders by name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.codebook import Codebook
from pipeline.coders.base import assignment_frame
from pipeline.coders.topics import TOPICS_CODER, is_candidate
from pipeline.errors import ConfigError, SchemaError
from pipeline.schema import ASSIGNMENT

__all__ = ["COMBINED_CODER", "CombineRule", "combine_assignments", "resolve_rules", "review_table"]

logger = logging.getLogger(__name__)

COMBINED_CODER = "coder.combined.v1"
_DEFAULT_RULE_KEY = "*"


class CombineRule(BaseModel):
    """How the coders' rows for one code become the final decision (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["max", "mean", "vote", "precedence"] = "max"
    coders: list[str] | None = None
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    min_votes: int | None = Field(None, ge=1)
    review_threshold: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _coders_for_precedence(self) -> CombineRule:
        if self.method == "precedence" and not self.coders:
            raise ValueError("method 'precedence' needs 'coders', the coders in order of precedence")
        if self.coders is not None and len(set(self.coders)) != len(self.coders):
            raise ValueError("'coders' must not name a coder twice")
        return self


def resolve_rules(rules: Mapping[str, CombineRule | Mapping[str, Any]] | None,
                  codebook: Codebook) -> dict[str, CombineRule]:
    """The rule of every code of ``codebook`` (own id, else longest dotted prefix, else ``"*"``, else max).

    Raises:
        ConfigError: (QA-E002) an invalid rule, or a key that is neither a code id, a prefix of one, nor ``"*"``.
    """
    parsed: dict[str, CombineRule] = {}
    for key, value in (rules or {}).items():
        ids = codebook.code_ids
        if key != _DEFAULT_RULE_KEY and not any(c == key or c.startswith(key + ".") for c in ids):
            raise ConfigError(f"rules key {key!r} is not a code id, a prefix of code ids or '*'.",
                              key=f"rules.{key}")
        try:
            parsed[key] = value if isinstance(value, CombineRule) else CombineRule.model_validate(dict(value))
        except (ValidationError, TypeError, ValueError) as e:
            detail = e.errors()[0] if isinstance(e, ValidationError) else {"loc": (), "msg": str(e)}
            where = ".".join(str(p) for p in detail["loc"])
            raise ConfigError(f"invalid combine rule: {detail['msg']}.",
                              key=f"rules.{key}" + (f".{where}" if where else "")) from None
    out = {}
    for code in codebook.code_ids:
        parts = code.split(".")
        keys = [".".join(parts[:n]) for n in range(len(parts), 0, -1)] + [_DEFAULT_RULE_KEY]
        out[code] = next((parsed[k] for k in keys if k in parsed), CombineRule())
    return out


def _gather(tables: list[pd.DataFrame], codebook: Codebook) -> tuple[pd.DataFrame, list[str]]:
    """One long frame of every input row, checked; and the coder names, sorted."""
    needed = ["segment_id", "code_id", "coder", "score", "label"]
    frames = []
    for i, table in enumerate(tables):
        missing = [c for c in needed if c not in table.columns]
        if missing:
            raise SchemaError(f"Table {i} given to combine lacks columns {missing}.", table=ASSIGNMENT.name,
                              column=missing[0], stage="combine")
        frames.append(table[needed])
    if not frames:
        return pd.DataFrame(columns=needed), []
    rows = pd.concat(frames, ignore_index=True)
    rows = rows.astype({"segment_id": str, "code_id": str, "coder": str, "score": float})
    rows["label"] = rows["label"].astype("boolean").fillna(False).astype(bool)
    # candidate themes of the topic coder (TOPIC.nn) are not codebook codes: they are not combined
    candidate = (rows["coder"] == TOPICS_CODER) & rows["code_id"].map(is_candidate).astype(bool)
    rows = rows[~candidate].reset_index(drop=True)
    unknown = sorted(set(rows["code_id"]) - set(codebook.code_ids))
    if unknown:
        raise SchemaError(f"code ids {unknown[:5]} are not in codebook {codebook.id}@{codebook.version}.",
                          table=ASSIGNMENT.name, column="code_id", stage="combine")
    bad = ~rows["score"].between(0.0, 1.0)
    if bad.any():
        raise SchemaError(f"scores must be in [0, 1]; {int(bad.sum())} rows are not.", table=ASSIGNMENT.name,
                          column="score", stage="combine")
    dup = rows.duplicated(["segment_id", "code_id", "coder"], keep=False)
    if dup.any():
        first = rows.loc[dup, ["segment_id", "code_id", "coder"]].iloc[0].tolist()
        raise SchemaError(f"segment x code x coder {first} appears more than once across the tables.",
                          table=ASSIGNMENT.name, column="segment_id", stage="combine", ids=["/".join(first)])
    return rows, sorted(rows["coder"].unique())


def _decide(tables: list[pd.DataFrame], codebook: Codebook,
            rules: Mapping[str, CombineRule | Mapping[str, Any]] | None,
            review_threshold: float) -> tuple[pd.DataFrame, list[str]]:
    """The decision per pair: score, label, reasons, method, plus per-coder score and label columns."""
    if not 0.0 <= review_threshold <= 1.0:
        raise ConfigError(f"The 'review_threshold' parameter of combine must be in [0, 1]. "
                          f"Got {review_threshold!r} instead.", key="review_threshold")
    resolved = resolve_rules(rules, codebook)
    rows, coders = _gather(tables, codebook)
    keys = ["segment_id", "code_id"]  # (segment, code, coder) is unique, so "first" is the only value
    scores = rows.pivot_table(index=keys, columns="coder", values="score", aggfunc="first")
    labels = rows.pivot_table(index=keys, columns="coder", values="label", aggfunc="first")
    scores = scores.reindex(columns=coders).sort_index()
    labels = labels.reindex(index=scores.index, columns=coders).fillna(False).astype(bool)
    codes = scores.index.get_level_values("code_id").to_numpy() if len(scores) else np.array([], dtype=object)
    n = len(scores)
    result = {"score": np.zeros(n), "label": np.zeros(n, dtype=bool), "reasons": np.full(n, "", dtype=object),
              "method": np.full(n, "", dtype=object)}
    for code in sorted(set(codes)):
        at = np.flatnonzero(codes == code)
        rule = resolved[code]
        _apply(rule, scores.iloc[at], labels.iloc[at], at, result,
               review_threshold if rule.review_threshold is None else rule.review_threshold)
    out = scores.index.to_frame(index=False)
    for key, values in result.items():
        out[key] = values
    out["needs_review"] = out["reasons"] != ""
    for coder in coders:
        out[f"score:{coder}"] = scores[coder].to_numpy()
        out[f"label:{coder}"] = labels[coder].to_numpy()
    return out, coders


def _apply(rule: CombineRule, scores: pd.DataFrame, labels: pd.DataFrame, at: np.ndarray,
           result: dict[str, np.ndarray], review_threshold: float) -> None:
    """Fill ``result`` at positions ``at`` for one code's pairs under ``rule``."""
    considered = rule.coders if rule.coders is not None else list(scores.columns)
    absent = [c for c in considered if c not in scores.columns]
    if absent:
        logger.warning("combine: coders %s named in a rule have no rows; they count as not assigning", absent)
    s = scores.reindex(columns=considered)
    lab = labels.reindex(columns=considered).fillna(False).astype(bool).to_numpy()
    filled = s.fillna(0.0).to_numpy()
    k = len(considered)
    if rule.method == "max":
        score, label = filled.max(axis=1), lab.any(axis=1)
    elif rule.method == "mean":
        score = filled.mean(axis=1)
        label = score >= rule.threshold
    elif rule.method == "vote":
        votes = lab.sum(axis=1)
        score, label = votes / k, votes >= (rule.min_votes or k // 2 + 1)
    else:  # precedence: the first considered coder with a row decides
        has_row = s.notna().to_numpy()
        first = np.where(has_row.any(axis=1), has_row.argmax(axis=1), -1)
        rows = np.arange(len(s))
        score = np.where(first >= 0, filled[rows, np.maximum(first, 0)], 0.0)
        label = (first >= 0) & lab[rows, np.maximum(first, 0)]
    disagree = (k >= 2) & lab.any(axis=1) & ~lab.all(axis=1)
    low = label & (score < review_threshold)
    result["score"][at] = np.round(np.clip(score, 0.0, 1.0), 6)
    result["label"][at] = label
    result["method"][at] = rule.method
    result["reasons"][at] = ["|".join(r for r, on in (("disagree", d), ("low", w)) if on)
                             for d, w in zip(disagree, low, strict=True)]


def combine_assignments(tables: list[pd.DataFrame], *, codebook: Codebook,
                        rules: Mapping[str, CombineRule | Mapping[str, Any]] | None = None,
                        review_threshold: float = 0.5, coder_name: str = COMBINED_CODER,
                        run_id: str = "") -> pd.DataFrame:
    """Merge the ASSIGNMENT tables of several coders into one final ASSIGNMENT table.

    Args:
        tables: ASSIGNMENT tables (rules, similarity, classifier, human review, ...).
        codebook: The codebook every code id must belong to.
        rules: Per-code rules (see the module docstring); default ``max`` for every code.
        review_threshold: An assigned code with a final score below this needs review (reason ``low``).
        coder_name: The ``coder`` of the output rows.
        run_id: The ``run_id`` of the output rows.

    Returns:
        ASSIGNMENT table, one row per segment x code that any coder has a row for (``label`` False where
        the rule rejects it); evidence ``[review:<reasons>; ]<method>: <coder>=<score> ...``.

    Raises:
        ConfigError: (QA-E002) invalid rules or review threshold.
        SchemaError: (QA-E020) a table lacks columns, holds unknown code ids, scores outside [0, 1] or
            a segment x code x coder twice.
    """
    decided, coders = _decide(tables, codebook, rules, review_threshold)
    records = []
    for row in decided.to_dict("records"):
        parts = " ".join(f"{c}={row[f'score:{c}']:.2f}" for c in coders if not pd.isna(row[f"score:{c}"]))
        evidence = f"{row['method']}: {parts}"
        if row["needs_review"]:
            evidence = f"review:{row['reasons']}; {evidence}"
        records.append({"segment_id": row["segment_id"], "code_id": row["code_id"], "coder": coder_name,
                        "score": float(row["score"]), "label": bool(row["label"]), "evidence": evidence,
                        "run_id": run_id})
    return assignment_frame(records)


def review_table(tables: list[pd.DataFrame], *, codebook: Codebook,
                 rules: Mapping[str, CombineRule | Mapping[str, Any]] | None = None,
                 review_threshold: float = 0.5) -> pd.DataFrame:
    """The decisions of :func:`combine_assignments` with the reasons and the per-coder scores.

    Returns:
        Columns ``segment_id, code_id, score, label, needs_review, reasons, method`` and, per coder (sorted),
        ``score:<coder>`` (NaN where the coder has no row) and ``label:<coder>``; sorted by segment and code.

    Raises:
        ConfigError, SchemaError: as :func:`combine_assignments`.
    """
    decided, coders = _decide(tables, codebook, rules, review_threshold)
    columns = ["segment_id", "code_id", "score", "label", "needs_review", "reasons", "method"]
    columns += [f"{kind}:{c}" for c in coders for kind in ("score", "label")]
    return decided[columns].sort_values(["segment_id", "code_id"], kind="stable").reset_index(drop=True)
