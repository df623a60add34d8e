"""The topic stage of a run: fit (or reuse a reference), assign, and write the topic outputs.

Files written into the run folder (no file holds anything a log would not; quotes are de-identified
segment text, as in ``report.html``)::

    topics.parquet              TOPIC table: id, label, mapped code or candidate id, size, terms
    topic_segments.parquet      segment_id, topic_id (primary, -1 = outlier), score, topics (count)
    topic_prevalence.parquet    topic and code prevalence per wave / month / clinician (and overall)
    candidate_themes.csv        topics that match no code: terms, suggested label, 5 representative quotes
    topics.html                 interactive topic view (offline, self-contained)
    topic_drift.json            only with a reference run: shift of the topic distribution
    codes.parquet               the coder's ASSIGNMENT rows replace its earlier rows there

Change over time uses the documents' metadata: ``wave`` from a ``wave<N>`` in the source file name
(feedback exports such as ``feedback_wave2.xlsx``), ``month`` from ``collected_at`` and the clinician
pseudonym. Shares are over the segments the topics were fitted on (client voice by default), for
topics and for the run's final codes alike, so the two are comparable.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.codebook import load_codebook
from pipeline.coders.topics import TOPICS_CODER, TopicCoder
from pipeline.config import RunConfig
from pipeline.embed import embed_segments
from pipeline.io import ensure_private_dir, read_table, write_csv, write_json, write_table
from pipeline.schema import ASSIGNMENT, DOCUMENT, SEGMENT, TOPIC
from pipeline.topics.drift import topic_drift

__all__ = ["PREVALENCE_COLUMNS", "candidate_themes", "segment_groups", "topic_paths", "topic_prevalence",
           "topics_for_run"]

logger = logging.getLogger(__name__)
PREVALENCE_COLUMNS = ["grouping", "group", "kind", "id", "label", "segments", "total", "share"]
_WAVE = re.compile(r"wave[ _-]?(\d+)", re.IGNORECASE)
_NONE = "(none)"


def topic_paths(out_dir: Path) -> dict[str, Path]:
    """The topic files of a run folder."""
    out = Path(out_dir)
    return {"topics": out / "topics.parquet", "segments": out / "topic_segments.parquet",
            "prevalence": out / "topic_prevalence.parquet", "candidates": out / "candidate_themes.csv",
            "html": out / "topics.html", "drift": out / "topic_drift.json", "codes": out / "codes.parquet"}


def segment_groups(segments: pd.DataFrame, documents: pd.DataFrame) -> pd.DataFrame:
    """``segment_id, wave, month, clinician`` of every segment (``(none)`` where the metadata is missing)."""
    docs = documents[["document_id", "source_path", "collected_at", "clinician"]].copy()
    name = docs["source_path"].astype(str).str.rsplit("/", n=1).str[-1]
    wave = name.str.extract(_WAVE, expand=False)
    docs["wave"] = ("wave " + wave.astype("string")).fillna(_NONE).astype(str)
    text = docs["collected_at"].astype("string").fillna("")
    docs["month"] = text.str.slice(0, 7).where(text.str.match(r"^\d{4}-\d{2}"), _NONE).astype(str)
    docs["clinician"] = docs["clinician"].astype("string").fillna(_NONE).astype(str)
    merged = segments[["segment_id", "document_id"]].merge(docs, on="document_id", how="left")
    return merged[["segment_id", "wave", "month", "clinician"]].fillna(_NONE)


def topic_prevalence(assigned: pd.DataFrame, groups: pd.DataFrame, topics: pd.DataFrame,
                     codes: pd.DataFrame | None = None, code_names: dict[str, str] | None = None) -> pd.DataFrame:
    """Topic (primary) and code prevalence overall and per wave, month and clinician, in long format.

    Args:
        assigned: ``segment_id, topic`` of the fitted segments (:meth:`TopicCoder.transform`).
        groups: :func:`segment_groups`.
        topics: TOPIC table (for labels).
        codes: Labelled ASSIGNMENT rows of the final coder (optional).
        code_names: Code id -> name.
    """
    base = assigned[["segment_id", "topic"]].merge(groups, on="segment_id", how="left").fillna(_NONE)
    base["overall"] = "all"
    labels = dict(zip(topics["topic_id"].astype(int), topics["label"], strict=True))
    coded = pd.DataFrame(columns=["segment_id", "code_id"])
    if codes is not None and len(codes):
        coded = codes.loc[codes["segment_id"].isin(base["segment_id"]), ["segment_id", "code_id"]]
        coded = coded.drop_duplicates()
    names = code_names or {}
    rows = []
    for grouping in ("overall", "wave", "month", "clinician"):
        for group, part in base.groupby(grouping, sort=True):
            total = len(part)
            for tid, n in part["topic"].value_counts().sort_index().items():
                rows.append([grouping, str(group), "topic", str(int(tid)), labels.get(int(tid), "outlier"),
                             int(n), total, round(n / total, 6)])
            hits = coded[coded["segment_id"].isin(part["segment_id"])]
            for cid, n in hits["code_id"].value_counts().sort_index().items():
                rows.append([grouping, str(group), "code", str(cid), names.get(str(cid), str(cid)), int(n), total,
                             round(n / total, 6)])
    frame = pd.DataFrame(rows, columns=PREVALENCE_COLUMNS)
    return frame.astype({"segments": "int64", "total": "int64", "share": "float64"})


def candidate_themes(coder: TopicCoder, segments: pd.DataFrame, *, quotes: int = 5) -> list[dict[str, Any]]:
    """Topics that match no code: id, suggested label, size, terms and the most representative quotes.

    Quotes are the de-identified texts of the segments nearest the topic's centre (at most ``quotes``).
    """
    text = dict(zip(segments["segment_id"].astype(str), segments["text"].astype(str), strict=True))
    out = []
    for r in coder.topics_:
        if r["mapped"]:
            continue
        ids = [sid for sid in r["representative"] if sid in text][:quotes]
        out.append({"topic_id": r["topic_id"], "candidate_id": r["code_id"], "suggested_label": r["suggested_label"],
                    "size": r["size"], "top_terms": r["top_terms"], "nearest_code": r.get("nearest_code"),
                    "similarity": r["similarity"], "quotes": [{"segment_id": s, "text": text[s]} for s in ids]})
    return out


def _write_candidates(path: Path, themes: list[dict[str, Any]], quotes: int) -> Path:
    header = ["candidate_id", "topic_id", "suggested_label", "size", "top_terms", "similarity_to_nearest_code",
              *[f"quote_{i + 1}" for i in range(quotes)], *[f"quote_{i + 1}_segment_id" for i in range(quotes)]]
    rows = []
    for t in themes:
        texts = [q["text"] for q in t["quotes"]] + [""] * (quotes - len(t["quotes"]))
        ids = [q["segment_id"] for q in t["quotes"]] + [""] * (quotes - len(t["quotes"]))
        rows.append([t["candidate_id"], t["topic_id"], t["suggested_label"], t["size"], "; ".join(t["top_terms"]),
                     t["similarity"], *texts, *ids])
    return write_csv(path, header, rows)


def _merge_codes(codes_path: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """The run's code table with this coder's rows replaced by ``rows`` (idempotent)."""
    frames = [rows]
    if codes_path.is_file():
        codes = read_table(codes_path, ASSIGNMENT)
        frames.insert(0, codes[codes["coder"] != TOPICS_CODER])
    merged = pd.concat(frames, ignore_index=True)
    return merged.sort_values(["segment_id", "code_id", "coder"], kind="stable").reset_index(drop=True)


def _final_codes(codes: pd.DataFrame) -> pd.DataFrame:
    from pipeline.report.data import pick_coder

    others = codes[codes["coder"] != TOPICS_CODER]
    if not len(others):
        return others
    coder = pick_coder(others)
    return others[(others["coder"] == coder) & others["label"]]


def topics_for_run(cfg: RunConfig, run_dir: Path, run_id: str, *, out_dir: Path | None = None,
                   reference: Path | None = None) -> dict[str, Any]:
    """Fit topics on the run's segments (or on a reference run's), assign them, write the topic outputs.

    Args:
        cfg: Run config (its ``topics`` section and ``seed``).
        run_dir: Run folder with ``documents.parquet`` and ``segments.parquet`` (and ``codes.parquet``).
        run_id: Written into the ASSIGNMENT rows.
        out_dir: Where to write (default ``run_dir``). ``codes.parquet`` there gets the topic rows (its
            earlier ``coder.topics.v1`` rows are replaced, so the stage is idempotent).
        reference: A finished run folder: the topics are fitted on its segments with the same config and
            seed (the fit is deterministic, so this reproduces that run's model without storing it), the
            new segments are only transformed, and ``topic_drift.json`` reports the shift.

    Returns:
        A stage report (``paths``, ``counts``, ``seconds``); counts only, no text.
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    out = ensure_private_dir(Path(out_dir) if out_dir is not None else run_dir)
    paths = topic_paths(out)
    codebook = load_codebook(cfg.codebook)
    segments = read_table(run_dir / "segments.parquet", SEGMENT)
    documents = read_table(run_dir / "documents.parquet", DOCUMENT)
    coder = TopicCoder(**cfg.topics.coder_params(cfg.seed))
    emb = embed_segments(segments, backend=cfg.topics.embedder)
    if reference is not None:
        ref_segments = read_table(Path(reference) / "segments.parquet", SEGMENT)
        coder.fit(ref_segments, codebook=codebook,
                  embeddings=embed_segments(ref_segments, backend=cfg.topics.embedder))
    else:
        coder.fit(segments, codebook=codebook, embeddings=emb)
    assigned = coder.transform(segments, embeddings=emb)
    rows = coder.assignments(assigned, run_id=run_id)
    codes_path = paths["codes"]
    source_codes = run_dir / "codes.parquet"
    codes = _merge_codes(source_codes if source_codes.is_file() else codes_path, rows)
    write_table(codes, codes_path, ASSIGNMENT, stage="topics")
    table = coder.topic_table()
    write_table(table, paths["topics"], TOPIC, stage="topics")
    seg_topics = pd.DataFrame({"segment_id": assigned["segment_id"], "topic_id": assigned["topic"].astype("int64"),
                               "score": assigned["score"].astype("float64"),
                               "topics": (1 + assigned["secondary"].map(len) - (assigned["topic"] == -1)).astype(
                                   "int64")})
    write_table(seg_topics, paths["segments"])
    groups = segment_groups(segments, documents)
    prevalence = topic_prevalence(assigned, groups, table, _final_codes(codes), {c.id: c.name for c in codebook.codes})
    write_table(prevalence, paths["prevalence"])
    themes = candidate_themes(coder, segments, quotes=cfg.topics.quotes)
    _write_candidates(paths["candidates"], themes, cfg.topics.quotes)
    written = {k: paths[k] for k in ("topics", "segments", "prevalence", "candidates", "codes")}
    drift = None
    if reference is not None:
        drift = topic_drift(coder.labels_, assigned["topic"].to_numpy())
        write_json(paths["drift"], drift)
        written["drift"] = paths["drift"]
    if cfg.topics.html:
        from pipeline.topics.html import write_topics_html

        write_topics_html(paths["html"], coder=coder, segments=segments, assigned=assigned, embeddings=emb,
                          prevalence=prevalence, themes=themes, run_id=run_id, drift=drift)
        written["html"] = paths["html"]
    logger.info("topics: %d topics (%d candidate themes) on %d segments", len(table), len(themes), len(assigned))
    counts = {"fitted_segments": len(coder.fit_segment_ids_), "assigned_segments": int((assigned["topic"] >= 0).sum()),
              "topics": len(table), "mapped_topics": int((~table["candidate"]).sum()), "candidate_themes": len(themes),
              "assignments": len(rows), "multi_topic_segments": int((seg_topics["topics"] > 1).sum()),
              "outlier_share_before": round(coder.outlier_share_before_, 6),
              "outlier_share_after": round(coder.outlier_share_after_, 6)}
    if drift is not None:
        counts["js_distance"] = drift["js_distance"]
    return {"paths": {k: str(v) for k, v in written.items()}, "counts": counts,
            "seconds": round(time.perf_counter() - start, 3)}
