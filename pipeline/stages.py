"""Pipeline stages over files: each reads its inputs from the run folder and writes its outputs there.

Flows call these (one task each) and pass only paths and small JSON reports between them, never
participant text. Each stage returns a :class:`StageReport` dict: ``paths`` (written files),
``counts`` and ``seconds``.

Run folder layout::

    OUT/documents.parquet  segments.parquet  codes.parquet  coded_segments.csv  quarantine.csv
    OUT/manifest.json
    OUT/interim/turns.parquet  interim/codes.<coder>.parquet
    OUT/restricted/redactions.parquet   (never exported)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.codebook import load_codebook
from pipeline.config import RunConfig
from pipeline.deidentify import PseudonymMap, default_map_path, deidentify_documents
from pipeline.ingest import ingest_corpus, load_corpus_config
from pipeline.io import ensure_private_dir, read_table, write_csv, write_table
from pipeline.registry import build, resolve
from pipeline.schema import ASSIGNMENT, DOCUMENT, QUARANTINE, SEGMENT, TURN, validate_offsets
from pipeline.segment import segment_turns

__all__ = [
    "StageReport",
    "preflight",
    "run_summary",
    "code_segments",
    "combine_codes",
    "export_nvivo",
    "write_reports",
    "export_tables",
    "ingest_and_deidentify",
    "run_paths",
    "segment_documents",
]

logger = logging.getLogger(__name__)
StageReport = dict[str, Any]


def run_paths(out_dir: Path) -> dict[str, Path]:
    """The fixed file names of a run folder."""
    out = Path(out_dir)
    return {
        "documents": out / "documents.parquet",
        "turns": out / "interim" / "turns.parquet",
        "segments": out / "segments.parquet",
        "codes": out / "codes.parquet",
        "coded_segments": out / "coded_segments.csv",
        "quarantine": out / "quarantine.csv",
        "redactions": out / "restricted" / "redactions.parquet",
        "manifest": out / "manifest.json",
    }


def _report(start: float, paths: dict[str, Path], **counts: Any) -> StageReport:
    return {"paths": {k: str(v) for k, v in paths.items()}, "counts": counts,
            "seconds": round(time.perf_counter() - start, 3)}


def preflight(cfg: RunConfig) -> None:
    """Check before a run that the codebook loads, the models are installed and every coder builds.

    Raises:
        PipelineError: the first problem, with its location or install command.
    """
    from pipeline.nlp import check_model

    load_codebook(cfg.codebook)
    check_model(cfg.deidentify.spacy_model)
    for spec in cfg.coders:
        if spec.model is not None and not hasattr(resolve(spec.use), "load"):
            from pipeline.errors import ConfigError

            raise ConfigError(f"{spec.use} cannot load a trained model; remove 'model' or use coder.classifier.v1.",
                              key="coders.model")
        coder = build(spec.use, **spec.params)
        model = getattr(coder, "spacy_model", None)
        if model:
            check_model(model)


def pseudonym_map_path(cfg: RunConfig, corpus_id: str) -> Path:
    """Where the restricted pseudonym map of this corpus lives."""
    return cfg.deidentify.pseudonym_map or default_map_path(corpus_id)


def ingest_and_deidentify(corpus_root: Path, cfg: RunConfig, out_dir: Path, *, corpus_id: str) -> StageReport:
    """Read every file of the corpus, de-identify in memory, write only de-identified tables.

    Bad files and rows go to ``quarantine.csv`` and never stop the other files.
    """
    start = time.perf_counter()
    paths = run_paths(out_dir)
    for sub in (Path(out_dir), paths["turns"].parent, paths["redactions"].parent):
        ensure_private_dir(sub)
    ingest_cfg = load_corpus_config(Path(corpus_root), cfg.ingest)
    result = ingest_corpus(Path(corpus_root), ingest_cfg)
    pseudonyms = PseudonymMap(pseudonym_map_path(cfg, corpus_id))
    deid = deidentify_documents(result.documents, cfg.deidentify, pseudonyms, corpus_id=corpus_id)
    pseudonyms.save()
    write_table(deid.documents, paths["documents"], DOCUMENT, stage="deidentify")
    validate_offsets(deid.turns, deid.documents, table=TURN, stage="deidentify")
    write_table(deid.turns, paths["turns"], TURN, stage="deidentify")
    write_table(deid.redactions, paths["redactions"])
    problems = sorted(result.problems, key=lambda p: (p.file, p.line or 0, p.code))
    write_csv(paths["quarantine"], QUARANTINE.column_names,
              ([p.file, p.line, p.code, p.action, p.error] for p in problems))
    files = sorted({d.source_path for d in result.documents})
    return _report(
        start, {k: paths[k] for k in ("documents", "turns", "redactions", "quarantine")},
        documents=len(deid.documents), turns=len(deid.turns), files_read=len(files),
        quarantined_files=len({p.file for p in problems if p.action == "quarantined"}),
        skipped_rows=sum(p.action == "row_skipped" for p in problems),
        repaired_files=len({p.file for p in problems if p.action == "repaired"}),
        redactions=dict(sorted(deid.counts.items())),
    )


def segment_documents(cfg: RunConfig, out_dir: Path) -> StageReport:
    """TURN -> SEGMENT (sentences of one speaker), checked against the document text."""
    start = time.perf_counter()
    paths = run_paths(out_dir)
    documents = read_table(paths["documents"], DOCUMENT)
    turns = read_table(paths["turns"], TURN)
    segments = segment_turns(turns, cfg.segment, spacy_model=cfg.deidentify.spacy_model)
    validate_offsets(segments, documents, stage="segment")
    write_table(segments, paths["segments"], SEGMENT, stage="segment")
    return _report(start, {"segments": paths["segments"]}, segments=len(segments),
                   by_speaker=segments["speaker"].value_counts().sort_index().to_dict())


def code_segments(cfg: RunConfig, out_dir: Path, coder_index: int, *, run_id: str) -> StageReport:
    """Fit and apply one configured coder; write its ASSIGNMENT table."""
    start = time.perf_counter()
    spec = cfg.coders[coder_index]
    codebook = load_codebook(cfg.codebook)
    segments = read_table(run_paths(out_dir)["segments"], SEGMENT)
    if spec.model is not None:
        coder = resolve(spec.use).load(spec.model, codebook=codebook)
    else:
        coder = build(spec.use, **spec.params).fit(segments, codebook=codebook)
    assignments = coder.predict(segments, run_id=run_id)
    path = Path(out_dir) / "interim" / f"codes.{spec.use}.parquet"
    write_table(assignments, path, ASSIGNMENT, stage=spec.use)
    return _report(start, {"codes": path}, coder=spec.use, assignments=int(assignments["label"].sum()))


def combine_codes(coder_reports: list[StageReport], out_dir: Path, cfg: RunConfig | None = None, *,
                  run_id: str = "") -> StageReport:
    """Every coder's ASSIGNMENT rows, plus final ``coder.combined.v1`` rows when there are several coders.

    The combined rows carry the merged score and, in their evidence, a ``review:`` flag where the coders
    disagree or the score is low (rules per code from ``cfg.combine``).
    """
    from pipeline.coders.combine import combine_assignments

    start = time.perf_counter()
    frames = [read_table(Path(r["paths"]["codes"]), ASSIGNMENT) for r in coder_reports]
    if cfg is not None and len(frames) > 1:
        combined = combine_assignments(frames, codebook=load_codebook(cfg.codebook), rules=cfg.combine.rules,
                                       review_threshold=cfg.combine.review_threshold, run_id=run_id)
        frames.append(combined)
    codes = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ASSIGNMENT.column_names)
    codes = codes.sort_values(["segment_id", "code_id", "coder"], kind="stable").reset_index(drop=True)
    path = run_paths(out_dir)["codes"]
    write_table(codes, path, ASSIGNMENT, stage="combine")
    review = int(codes["evidence"].str.startswith("review:").sum())
    return _report(start, {"codes": path}, assignments=int(codes["label"].sum()),
                   segments_coded=int(codes.loc[codes["label"], "segment_id"].nunique()), needs_review=review)


def export_tables(cfg: RunConfig, out_dir: Path) -> StageReport:
    """Write ``coded_segments.csv``: one row per coded segment x code x coder, formula-safe."""
    start = time.perf_counter()
    paths = run_paths(out_dir)
    codebook = load_codebook(cfg.codebook)
    names = {c.id: c.name for c in codebook.codes}
    documents = read_table(paths["documents"], DOCUMENT)
    segments = read_table(paths["segments"], SEGMENT)
    codes = read_table(paths["codes"], ASSIGNMENT)
    codes = codes[codes["label"] & (codes["score"] >= cfg.outputs.min_score)]
    merged = codes.merge(segments, on="segment_id", how="inner", suffixes=("", "_seg")).merge(
        documents[["document_id", "source_path", "record_key", "source_type", "case_id", "session",
                   "collected_at", "clinician"]], on="document_id", how="left")
    merged = merged.sort_values(["source_path", "record_key", "start_char", "code_id", "coder"], kind="stable")
    header = ["document_id", "source_path", "record_key", "source_type", "case_id", "session", "collected_at",
              "clinician", "segment_id", "speaker", "start_char", "end_char", "text", "code_id", "code_name",
              "coder", "score", "evidence"]
    rows = ([r.document_id, r.source_path, r.record_key, r.source_type, r.case_id,
             None if pd.isna(r.session) else int(r.session), r.collected_at, r.clinician, r.segment_id,
             r.speaker, int(r.start_char), int(r.end_char), r.text, r.code_id, names.get(r.code_id, ""),
             r.coder, round(float(r.score), 4), r.evidence] for r in merged.itertuples(index=False))
    write_csv(paths["coded_segments"], header, rows, bom=cfg.outputs.csv_bom)
    return _report(start, {"coded_segments": paths["coded_segments"]}, rows=len(merged))


def export_nvivo(cfg: RunConfig, out_dir: Path) -> StageReport:
    """Write ``project.qdpx``, ``codebook.qdc`` and ``nvivo_dataset.xlsx`` into the run folder."""
    from pipeline.export import export_run

    start = time.perf_counter()
    written = export_run(Path(out_dir), to="all", out=Path(out_dir), min_score=cfg.outputs.nvivo_min_score)
    return _report(start, {p.stem: p for p in written}, files=len(written))


def write_reports(cfg: RunConfig, out_dir: Path) -> StageReport:
    """Write ``report.html`` (with agreement when ``outputs.gold`` is set) and ``viewer.html`` into the run folder."""
    from pipeline.report import write_report, write_viewer

    start = time.perf_counter()
    codebook = load_codebook(cfg.codebook)
    report = write_report(Path(out_dir), gold=cfg.outputs.gold, codebook=codebook)
    viewer = write_viewer(Path(out_dir), codebook=codebook)
    return _report(start, {"report": report, "viewer": viewer}, pages=2)


def run_summary(cfg: RunConfig, out_dir: Path) -> dict[str, Any]:
    """Counts for dashboards (Prefect artifacts): per code, per speaker, and input problems by kind.

    Holds no participant text and no file names (file names can identify people).
    """
    paths = run_paths(out_dir)
    codebook = load_codebook(cfg.codebook)
    codes = read_table(paths["codes"], ASSIGNMENT)
    segments = read_table(paths["segments"], SEGMENT)
    coded = codes[codes["label"]].merge(segments[["segment_id", "speaker"]], on="segment_id", how="left")
    per_code = []
    for code in codebook.codes:
        rows = coded[coded["code_id"] == code.id]
        per_code.append({"code_id": code.id, "code": code.name, "segments": int(rows["segment_id"].nunique()),
                         "client": int((rows["speaker"] == "client").sum()),
                         "therapist": int((rows["speaker"] == "therapist").sum())})
    problems = pd.read_csv(paths["quarantine"], dtype=str, keep_default_na=False)
    by_kind = (problems.groupby(["code", "action"]).size().reset_index(name="count").to_dict("records")
               if len(problems) else [])
    return {"segments": len(segments), "coded_segments": int(coded["segment_id"].nunique()),
            "per_code": per_code, "problems": [{k: (int(v) if k == "count" else v) for k, v in r.items()}
                                                for r in by_kind]}
