"""The numbers of a run report, computed from the run folder's tables (pure; reads, never writes).

Every function takes the tables of one run (see :class:`RunTables` and ``pipeline.stages.run_paths``)
and returns a small pandas DataFrame or dict that both the charts and the static tables of
``pipeline.report.html`` show, so the two always agree.

Definitions (one coder at a time, the *final* coder by default, see :func:`pick_coder`):

- a segment *has* a code when the coder's ASSIGNMENT row for it has ``label`` True;
- **prevalence** of a code: segments that have it, and their share of all segments (of the group);
- **co-occurrence** of codes a and b: segments that have both (the diagonal: segments with a);
- **speaker share**: per code, coded segments by speaker role and the client's share of them;
- **needs review**: rows of the coder whose evidence starts with ``review:`` (set by
  ``coder.combined.v1`` where the coders disagree or the score is low);
- **quotes**: per code the ``n`` labelled segments with the highest score (ties: document, offset).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.io import read_table
from pipeline.schema import ASSIGNMENT, DOCUMENT, SEGMENT, TURN
from pipeline.stages import run_paths

__all__ = [
    "FINAL_CODER",
    "OKABE_ITO",
    "SPEAKER_COLOURS",
    "RunTables",
    "agreement_table",
    "code_info",
    "coded_segments",
    "cooccurrence",
    "corpus_summary",
    "load_run",
    "load_run_codebook",
    "month_of",
    "needs_review",
    "pick_coder",
    "prevalence",
    "prevalence_by",
    "report_data",
    "score_distribution",
    "speaker_share",
    "top_quotes",
]

logger = logging.getLogger(__name__)

FINAL_CODER = "coder.combined.v1"
#: Okabe & Ito (2008) colour-blind-safe palette; fallback colours for codes not in a codebook.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
SPEAKER_COLOURS = {"client": "#0072B2", "therapist": "#E69F00", "interviewer": "#009E73", "unknown": "#999999"}
SPEAKERS = tuple(SPEAKER_COLOURS)
GROUPINGS = {"case": "case_id", "session": "session", "clinician": "clinician", "month": "month"}
UNKNOWN = "(unknown)"


@dataclass(frozen=True)
class RunTables:
    """The tables of one run folder.

    Attributes:
        documents: DOCUMENT table (de-identified text).
        segments: SEGMENT table.
        codes: ASSIGNMENT table of every coder.
        turns: TURN table, or an empty frame when the run folder has none.
        quarantine: The rows of ``quarantine.csv`` (all text columns).
        manifest: ``manifest.json`` as a dict (empty when missing).
    """

    documents: pd.DataFrame
    segments: pd.DataFrame
    codes: pd.DataFrame
    turns: pd.DataFrame
    quarantine: pd.DataFrame
    manifest: dict[str, Any]


def load_run(run_dir: Path) -> RunTables:
    """Read (and schema-check) the tables of a run folder.

    Raises:
        FileNotFoundError: the run folder lacks documents, segments or codes.
        SchemaError: a table breaks its declaration.
    """
    paths = run_paths(Path(run_dir))
    turns = read_table(paths["turns"], TURN) if paths["turns"].exists() else pd.DataFrame(columns=TURN.column_names)
    quarantine = (pd.read_csv(paths["quarantine"], dtype=str, keep_default_na=False)
                  if paths["quarantine"].exists() else pd.DataFrame(columns=["file", "line", "code", "action"]))
    manifest = json.loads(paths["manifest"].read_text("utf-8")) if paths["manifest"].exists() else {}
    return RunTables(
        documents=read_table(paths["documents"], DOCUMENT), segments=read_table(paths["segments"], SEGMENT),
        codes=read_table(paths["codes"], ASSIGNMENT), turns=turns, quarantine=quarantine, manifest=manifest,
    )


def pick_coder(codes: pd.DataFrame, coder: str | None = None) -> str:
    """The coder a report shows: ``coder`` if given, else ``coder.combined.v1``, else the first coder.

    Raises:
        ValueError: ``coder`` has no rows in ``codes``, or ``codes`` is empty.
    """
    coders = list(dict.fromkeys(codes["coder"].tolist()))
    if coder is not None:
        if coder not in coders:
            raise ValueError(f"The 'coder' parameter must name a coder of the run {coders}. Got {coder!r} instead.")
        return coder
    if FINAL_CODER in coders:
        return FINAL_CODER
    coders = [c for c in coders if c != "coder.topics.v1"] or coders  # topics have their own page (topics.html)
    if not coders:
        raise ValueError("The run's codes table is empty; there is no coder to report on.")
    return sorted(coders)[0]


def code_info(codes: pd.DataFrame, codebook: Any = None) -> pd.DataFrame:
    """One row per code: ``code_id, name, parent, colour`` in codebook order (then unknown ids, sorted).

    Args:
        codes: ASSIGNMENT table (codes not in the codebook are listed too).
        codebook: A :class:`~pipeline.codebook.Codebook`, or None (names are the ids, Okabe-Ito colours).
    """
    rows = []
    if codebook is not None:
        rows = [{"code_id": c.id, "name": c.name, "parent": c.parent or "", "colour": c.colour.upper()}
                for c in codebook.codes]
    known = {r["code_id"] for r in rows}
    extra = sorted(set(codes["code_id"]) - known)
    rows += [{"code_id": cid, "name": cid, "parent": "", "colour": OKABE_ITO[i % len(OKABE_ITO)]}
             for i, cid in enumerate(extra)]
    return pd.DataFrame(rows, columns=["code_id", "name", "parent", "colour"])


def month_of(collected_at: pd.Series) -> pd.Series:
    """``YYYY-MM`` of ISO dates (``YYYY-MM`` or ``YYYY-MM-DD``); ``(unknown)`` for missing or coarser dates."""
    text = collected_at.astype("string").fillna("")
    ok = text.str.match(r"^\d{4}-\d{2}")
    return text.str.slice(0, 7).where(ok, UNKNOWN).astype(str)


def coded_segments(tables: RunTables, coder: str) -> pd.DataFrame:
    """Labelled rows of ``coder`` joined with their segment and document.

    Returns:
        One row per coded segment x code: ``segment_id, code_id, score, evidence, document_id, speaker,
        start_char, end_char, text, source_path, record_key, case_id, session, clinician, month``.
    """
    rows = tables.codes[(tables.codes["coder"] == coder) & tables.codes["label"]]
    rows = rows[["segment_id", "code_id", "score", "evidence"]]
    seg = tables.segments[["segment_id", "document_id", "speaker", "start_char", "end_char", "text"]]
    docs = _document_groups(tables.documents)
    return rows.merge(seg, on="segment_id", how="inner").merge(docs, on="document_id", how="left")


def _document_groups(documents: pd.DataFrame) -> pd.DataFrame:
    docs = documents[["document_id", "source_path", "record_key", "case_id", "session", "clinician"]].copy()
    docs["month"] = month_of(documents["collected_at"])
    for col in ("case_id", "clinician"):
        docs[col] = docs[col].astype("string").fillna(UNKNOWN).astype(str)
    docs["session"] = docs["session"].astype("string").fillna(UNKNOWN).astype(str)
    return docs


def corpus_summary(tables: RunTables) -> dict[str, Any]:
    """Documents by source type, segments, speakers, and input problems.

    Returns:
        ``documents``, ``documents_by_type`` ({type: n}), ``segments``, ``segments_by_speaker``
        ({role: n}), ``speaker_labels`` (distinct de-identified speaker labels, from the turns),
        ``cases``, ``quarantined_files``, ``skipped_rows``, ``repaired_files``, ``coders``.
    """
    q = tables.quarantine
    action = q["action"] if "action" in q.columns else pd.Series(dtype=str)
    return {
        "documents": len(tables.documents),
        "documents_by_type": _counts(tables.documents["source_type"]),
        "segments": len(tables.segments),
        "segments_by_speaker": _counts(tables.segments["speaker"]),
        "speaker_labels": int(tables.turns["speaker_label"].nunique()) if len(tables.turns) else 0,
        "cases": int(tables.documents["case_id"].dropna().nunique()),
        "quarantined_files": int(q.loc[action == "quarantined", "file"].nunique()) if len(q) else 0,
        "skipped_rows": int((action == "row_skipped").sum()),
        "repaired_files": int(q.loc[action == "repaired", "file"].nunique()) if len(q) else 0,
        "coders": sorted(set(tables.codes["coder"])),
    }


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in values.value_counts().sort_index().items()}


def prevalence(coded: pd.DataFrame, info: pd.DataFrame, n_segments: int) -> pd.DataFrame:
    """Segments per code and their share of all ``n_segments``.

    Returns:
        ``code_id, name, colour, segments, share`` (share in [0, 1]) in ``info`` order.
    """
    counts = coded.groupby("code_id")["segment_id"].nunique()
    out = info[["code_id", "name", "colour"]].copy()
    out["segments"] = out["code_id"].map(counts).fillna(0).astype(int)
    out["share"] = out["segments"] / n_segments if n_segments else 0.0
    return out.reset_index(drop=True)


def prevalence_by(coded: pd.DataFrame, tables: RunTables, info: pd.DataFrame, by: str) -> pd.DataFrame:
    """Coded segments per group (rows) x code (columns), with each group's segment total.

    Args:
        coded: Output of :func:`coded_segments`.
        tables: The run's tables (for the segment totals per group).
        info: Output of :func:`code_info` (column order).
        by: ``case``, ``session``, ``clinician`` or ``month`` (of ``documents.collected_at``).

    Returns:
        Index: group values, sorted (``(unknown)`` last); columns ``segments`` then one per code id.
    """
    if by not in GROUPINGS:
        raise ValueError(f"The 'by' parameter of prevalence_by must be one of {list(GROUPINGS)}. Got {by!r} instead.")
    col = GROUPINGS[by]
    seg = tables.segments[["segment_id", "document_id"]].merge(_document_groups(tables.documents), on="document_id")
    totals = seg.groupby(col)["segment_id"].nunique()
    table = coded.pivot_table(index=col, columns="code_id", values="segment_id", aggfunc="nunique", fill_value=0)
    table = table.reindex(index=totals.index, columns=info["code_id"], fill_value=0).fillna(0).astype(int)
    table.insert(0, "segments", totals.astype(int))
    order = sorted(table.index, key=lambda v: (v == UNKNOWN, _natural(v)))
    table = table.loc[order]
    table.index.name, table.columns.name = by, None
    return table


def _natural(value: str) -> tuple[int, Any]:
    return (0, int(value)) if value.isdigit() else (1, value)


def cooccurrence(coded: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Segments that have both codes (square, symmetric; the diagonal is each code's prevalence)."""
    ids = list(info["code_id"])
    flags = pd.crosstab(coded["segment_id"], coded["code_id"]).reindex(columns=ids, fill_value=0).clip(upper=1)
    matrix = flags.T.to_numpy() @ flags.to_numpy() if len(flags) else np.zeros((len(ids), len(ids)), dtype=int)
    return pd.DataFrame(matrix.astype(int), index=ids, columns=ids)


def speaker_share(coded: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Coded segments per code by speaker role, and the client's share of them.

    Returns:
        ``code_id, name, client, therapist, interviewer, unknown, total, client_share`` (``nan`` share
        for a code with no segments).
    """
    counts = pd.crosstab(coded["code_id"], coded["speaker"]).reindex(index=info["code_id"], columns=list(SPEAKERS),
                                                                     fill_value=0)
    out = info[["code_id", "name"]].reset_index(drop=True)
    for role in SPEAKERS:
        out[role] = counts[role].to_numpy().astype(int)
    out["total"] = out[list(SPEAKERS)].sum(axis=1)
    out["client_share"] = (out["client"] / out["total"]).where(out["total"] > 0)
    return out


def score_distribution(codes: pd.DataFrame, coder: str, *, bins: int = 10) -> pd.DataFrame:
    """Histogram of the coder's scores of assigned codes (``label`` True) in ``bins`` equal bins of [0, 1].

    Returns:
        ``low, high, assigned`` (the last bin includes 1.0).
    """
    scores = codes.loc[(codes["coder"] == coder) & codes["label"], "score"].to_numpy(dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(scores, bins=edges)
    return pd.DataFrame({"low": edges[:-1].round(6), "high": edges[1:].round(6), "assigned": counts.astype(int)})


def needs_review(codes: pd.DataFrame, coder: str) -> dict[str, int]:
    """Rows of ``coder`` flagged for review (evidence starting ``review:``): all, and those assigned."""
    rows = codes[codes["coder"] == coder]
    flagged = rows["evidence"].astype(str).str.startswith("review:")
    return {"rows": int(flagged.sum()), "assigned": int((flagged & rows["label"]).sum()),
            "segments": int(rows.loc[flagged, "segment_id"].nunique())}


def top_quotes(coded: pd.DataFrame, info: pd.DataFrame, *, n: int = 5) -> dict[str, list[dict[str, Any]]]:
    """Per code the ``n`` most representative quotes: highest score first (ties: source, position).

    Returns:
        ``{code_id: [{text, score, speaker, source_path, record_key, start_char, evidence, segment_id}]}``.
    """
    ordered = coded.sort_values(["score", "source_path", "record_key", "start_char"],
                                ascending=[False, True, True, True], kind="stable")
    out: dict[str, list[dict[str, Any]]] = {}
    for code_id in info["code_id"]:
        rows = ordered[ordered["code_id"] == code_id].head(n)
        out[code_id] = [
            {"text": r.text, "score": float(r.score), "speaker": r.speaker, "source_path": r.source_path,
             "record_key": r.record_key, "start_char": int(r.start_char), "evidence": r.evidence,
             "segment_id": r.segment_id}
            for r in rows.itertuples(index=False)
        ]
    return out


def agreement_table(tables: RunTables, gold: Path, codebook: Any, coder: str, *, code_ids: Sequence[str],
                    n_boot: int = 500) -> pd.DataFrame:
    """Agreement of ``coder`` with a human-coded gold CSV, per code and macro, on the gold's segments.

    Segments are matched by ``segment_id`` (give the gold file the pipeline's segment ids); a gold
    segment the coder never saw counts as "no code". Intervals are cluster-bootstrap over documents.

    Returns:
        ``code_id, n, support, kappa, alpha, precision, recall, f1, f1_low, f1_high`` (macro row first).

    Raises:
        IngestError: the gold file is malformed (see :func:`pipeline.evaluate.read_gold_csv`).
    """
    from pipeline.evaluate import agreement, read_gold_csv

    gold_segments, reference = read_gold_csv(gold, codebook if codebook is not None else list(code_ids))
    predicted = tables.codes[tables.codes["coder"] == coder]
    ids = sorted(gold_segments["segment_id"].unique())
    groups = dict(zip(gold_segments["segment_id"], gold_segments["document_id"], strict=True))
    report = agreement(reference, predicted, codes=list(code_ids), segment_ids=ids, n_boot=n_boot,
                       groups=groups, random_state=0)
    rows = []
    for code_id, values in [("macro", report.macro), *report.per_code.items()]:
        low, high = values.get("f1_ci", (np.nan, np.nan))
        rows.append({"code_id": code_id, "n": int(values["n"]), "support": int(values["support"]),
                     **{k: float(values[k]) for k in ("kappa", "alpha", "precision", "recall", "f1")},
                     "f1_low": float(low), "f1_high": float(high)})
    return pd.DataFrame(rows)


def load_run_codebook(tables: RunTables, run_dir: Path) -> Any:
    """The run's codebook (path from ``manifest.json``, as given or relative to the run folder), or None."""
    from pipeline.codebook import load_codebook

    name = (tables.manifest.get("codebook") or {}).get("path")
    if not name:
        return None
    for candidate in (Path(name), Path(run_dir) / name):
        if candidate.is_file():
            try:
                return load_codebook(candidate)
            except Exception as e:  # a broken codebook must not stop the report; names fall back to ids
                logger.warning("Codebook %s did not load (%s); the report shows code ids.", candidate, e)
                return None
    logger.warning("Codebook %s named in the manifest was not found; the report shows code ids.", name)
    return None


def report_data(run_dir: Path, *, coder: str | None = None, gold: Path | None = None, codebook: Any = None,
                quotes: int = 5) -> dict[str, Any]:
    """Every number of the run report, for one coder (default: the final coder, see :func:`pick_coder`).

    Args:
        run_dir: The run folder.
        coder: Coder to report on.
        gold: Optional human-coded gold CSV; adds the ``agreement`` table.
        codebook: Codebook for names and colours; default: the one named in ``manifest.json``.
        quotes: Quotes per code.

    Returns:
        A dict with ``run_id, coder, codes (code_info), summary, prevalence, by (dict of prevalence_by),
        cooccurrence, speakers, scores, review, quotes, agreement (or None)``.
    """
    tables = load_run(run_dir)
    if codebook is None:
        codebook = load_run_codebook(tables, run_dir)
    coder = pick_coder(tables.codes, coder)
    info = code_info(tables.codes, codebook)
    coded = coded_segments(tables, coder)
    return {
        "run_id": str(tables.manifest.get("run_id", "")),
        "coder": coder,
        "codes": info,
        "summary": corpus_summary(tables),
        "prevalence": prevalence(coded, info, len(tables.segments)),
        "by": {by: prevalence_by(coded, tables, info, by) for by in GROUPINGS},
        "cooccurrence": cooccurrence(coded, info),
        "speakers": speaker_share(coded, info),
        "scores": score_distribution(tables.codes, coder),
        "review": needs_review(tables.codes, coder),
        "quotes": top_quotes(coded, info, n=quotes),
        "agreement": (agreement_table(tables, Path(gold), codebook, coder, code_ids=list(info["code_id"]))
                      if gold is not None else None),
    }
