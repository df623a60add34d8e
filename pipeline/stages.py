"""Pipeline stages over files: each reads its inputs from the run folder and writes its outputs there.

Flows call these (one task each) and pass only paths and small JSON reports between them, never
participant text. Each stage returns a :class:`StageReport` dict: ``paths`` (written files),
``counts`` and ``seconds``.

Run folder layout::

    OUT/documents.parquet  segments.parquet  codes.parquet  coded_segments.csv  quarantine.csv
    OUT/manifest.json
    OUT/interim/turns.parquet  interim/codes.<coder>.parquet
    OUT/interim/turns/part-NNNNN.parquet  interim/segments/part-NNNNN.parquet  interim/codes.<coder>/part-...
        (one part per batch of ``runner.batch_documents`` documents, joined in batch order)
    OUT/restricted/redactions.parquet   (never exported)
    OUT/restricted/work/   (raw turn texts and their parses for the parallel NER pass; removed when
        de-identification ends)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.codebook import Codebook
from pipeline.config import RunConfig
from pipeline.deidentify import PseudonymMap, default_map_path, deidentify_documents
from pipeline.ingest import ingest_corpus, load_corpus_config
from pipeline.io import atomic_write_bytes, ensure_private_dir, read_table, write_csv, write_table
from pipeline.registry import build, resolve
from pipeline.runners import batch_bounds, part_path
from pipeline.runners import load_codebook_once as load_codebook  # validated once per process
from pipeline.schema import ASSIGNMENT, DOCUMENT, QUARANTINE, SEGMENT, TURN, coerce_frame, validate_offsets
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
    "find_topics",
    "ingest_and_deidentify",
    "run_paths",
    "segment_documents",
    "prepare_deidentify",
    "ner_batch",
    "segment_batch",
    "gather_segments",
    "code_batch",
    "gather_codes",
    "batch_coder",
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


def private_results_dir(out_dir: Path) -> Path:
    """The run's folder for Prefect task results (JSON reports of paths and counts), created 0700."""
    ensure_private_dir(Path(out_dir).resolve())
    return ensure_private_dir(Path(out_dir).resolve() / ".prefect-results")


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
    try:
        parsed = _parsed_turns(result.documents, cfg, Path(out_dir))
        deid = deidentify_documents(result.documents, cfg.deidentify, pseudonyms, corpus_id=corpus_id,
                                    parsed=parsed)
        del parsed
    finally:
        _remove_work(Path(out_dir))
    pseudonyms.save()
    write_table(deid.documents, paths["documents"], DOCUMENT, stage="deidentify")
    validate_offsets(deid.turns, deid.documents, table=TURN, stage="deidentify")
    write_table(deid.turns, paths["turns"], TURN, stage="deidentify")
    _write_turn_parts(deid.documents, deid.turns, cfg, Path(out_dir))
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
        batches=len(_document_batches(len(deid.documents), cfg)),
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


def code_segments(cfg: RunConfig, out_dir: Path, coder_index: int, *, run_id: str,
                  codebook: Codebook | None = None) -> StageReport:
    """Fit and apply one configured coder; write its ASSIGNMENT table (``codebook``: preloaded, else loaded)."""
    start = time.perf_counter()
    spec = cfg.coders[coder_index]
    codebook = codebook if codebook is not None else load_codebook(cfg.codebook)
    segments = read_table(run_paths(out_dir)["segments"], SEGMENT)
    if spec.model is not None:
        coder = resolve(spec.use).load(spec.model, codebook=codebook)
    else:
        coder = build(spec.use, **spec.params).fit(segments, codebook=codebook)
    assignments = coder.predict(segments, run_id=run_id)
    path = Path(out_dir) / "interim" / f"codes.{spec.use}.parquet"
    write_table(assignments, path, ASSIGNMENT, stage=spec.use)
    return _report(start, {"codes": path}, coder=spec.use, assignments=int(assignments["label"].sum()))


# -- batch stages: the same work split into batches of documents (see pipeline.runners) -------------------
_WORK = ("restricted", "work")


def _work_dir(out_dir: Path, name: str) -> Path:
    return Path(out_dir).joinpath(*_WORK, name)


def _remove_work(out_dir: Path) -> None:
    """Delete the raw turn texts and parses of the NER pass (they hold identifying text)."""
    import shutil

    shutil.rmtree(Path(out_dir).joinpath(*_WORK), ignore_errors=True)


def _document_batches(n_documents: int, cfg: RunConfig) -> list[tuple[int, int]]:
    return batch_bounds(n_documents, cfg.runner.batch_documents)


def _parse_bytes(texts: list[str], cfg: RunConfig) -> bytes:
    """Parse turn texts with the de-identification pipeline; a ``DocBin`` (tokens, tags, entities; no tensors)."""
    from spacy.tokens import DocBin

    from pipeline.deidentify.core import ner_pipeline

    nlp = ner_pipeline(cfg.deidentify)
    docs = DocBin(store_user_data=False)
    for doc in nlp.pipe(texts, batch_size=cfg.deidentify.batch_size):
        docs.add(doc)
    return docs.to_bytes()


def _load_parses(data: bytes, cfg: RunConfig) -> list[Any]:
    from spacy.tokens import DocBin

    from pipeline.deidentify.core import ner_pipeline

    return list(DocBin(store_user_data=False).from_bytes(data).get_docs(ner_pipeline(cfg.deidentify).vocab))


def prepare_deidentify(corpus_root: Path, cfg: RunConfig, out_dir: Path) -> StageReport:
    """Ingest and write each batch's raw turn texts to ``restricted/work/`` (0700) for :func:`ner_batch`.

    These files hold identifying text: :func:`ingest_and_deidentify` deletes them when it ends.
    """
    start = time.perf_counter()
    _remove_work(Path(out_dir))
    for sub in (Path(out_dir), Path(out_dir) / _WORK[0], Path(out_dir).joinpath(*_WORK)):
        ensure_private_dir(sub)
    folder = ensure_private_dir(_work_dir(out_dir, "turn-text"))
    ensure_private_dir(_work_dir(out_dir, "ner"))
    result = ingest_corpus(Path(corpus_root), load_corpus_config(Path(corpus_root), cfg.ingest))
    bounds = _document_batches(len(result.documents), cfg)
    for i, (a, b) in enumerate(bounds):
        texts = [t.text for d in result.documents[a:b] for t in d.turns]
        write_table(pd.DataFrame({"text": pd.Series(texts, dtype="string")}), part_path(folder, i))
    return _report(start, {"work": folder.parent}, batches=len(bounds), documents=len(result.documents))


def ner_batch(cfg: RunConfig, out_dir: Path, index: int) -> StageReport:
    """Parse one batch's raw turn texts (the NER pass, the costly part of de-identification)."""
    start = time.perf_counter()
    texts = read_table(part_path(_work_dir(out_dir, "turn-text"), index))["text"].tolist()
    path = atomic_write_bytes(part_path(_work_dir(out_dir, "ner"), index, ".spacy"), _parse_bytes(texts, cfg))
    return _report(start, {}, turns=len(texts), batch=index, written=path.is_file())


def _parsed_turns(raw_docs: list[Any], cfg: RunConfig, out_dir: Path) -> list[Any]:
    """Every turn parsed, in document order: batch parses from :func:`ner_batch`, or parsed here when missing."""
    parsed: list[Any] = []
    for i, (a, b) in enumerate(_document_batches(len(raw_docs), cfg)):
        texts = [t.text for d in raw_docs[a:b] for t in d.turns]
        path = part_path(_work_dir(out_dir, "ner"), i, ".spacy")
        docs = _load_parses(path.read_bytes() if path.is_file() else _parse_bytes(texts, cfg), cfg)
        if [d.text for d in docs] != texts:
            raise RuntimeError(f"{path}: the parsed batch does not match the corpus; rerun the flow.")
        parsed += docs
    return parsed


def _write_turn_parts(documents: pd.DataFrame, turns: pd.DataFrame, cfg: RunConfig, out_dir: Path) -> None:
    """``interim/turns/part-NNNNN.parquet``: the TURN rows of each batch of documents (input of segment batches)."""
    folder = Path(out_dir) / "interim" / "turns"
    for old in folder.glob("part-*.parquet"):
        old.unlink()
    ids = documents["document_id"].tolist()
    for i, (a, b) in enumerate(_document_batches(len(ids), cfg)):
        part = turns[turns["document_id"].isin(set(ids[a:b]))].reset_index(drop=True)
        write_table(part, part_path(folder, i), TURN, stage="deidentify")


def _concat_parts(folder: Path, n_batches: int, table: Any) -> pd.DataFrame:

    frames = [read_table(part_path(folder, i), table) for i in range(n_batches)]
    frames = [f for f in frames if len(f)] or frames[:1]
    return coerce_frame(pd.concat(frames, ignore_index=True), table)


def segment_batch(cfg: RunConfig, out_dir: Path, index: int) -> StageReport:
    """Segment the turns of one batch of documents into ``interim/segments/part-NNNNN.parquet``."""
    start = time.perf_counter()
    turns = read_table(part_path(Path(out_dir) / "interim" / "turns", index), TURN)
    segments = segment_turns(turns, cfg.segment, spacy_model=cfg.deidentify.spacy_model)
    path = write_table(segments, part_path(Path(out_dir) / "interim" / "segments", index), SEGMENT, stage="segment")
    return _report(start, {"part": path}, segments=len(segments), batch=index)


def gather_segments(cfg: RunConfig, out_dir: Path, n_batches: int) -> StageReport:
    """Join the segment parts in batch order into ``segments.parquet``, checked against the document text."""
    start = time.perf_counter()
    paths = run_paths(out_dir)
    segments = _concat_parts(Path(out_dir) / "interim" / "segments", n_batches, SEGMENT)
    validate_offsets(segments, read_table(paths["documents"], DOCUMENT), stage="segment")
    write_table(segments, paths["segments"], SEGMENT, stage="segment")
    return _report(start, {"segments": paths["segments"]}, segments=len(segments),
                   by_speaker=segments["speaker"].value_counts().sort_index().to_dict(), batches=n_batches)


def batch_coder(cfg: RunConfig, coder_index: int) -> bool:
    """True when coder ``coder_index`` may predict batch by batch: it fits on the codebook alone.

    Such a coder gives the same assignments for the whole table and for its batches joined in order.
    """
    spec = cfg.coders[coder_index]
    return spec.model is None and bool(getattr(resolve(spec.use), "fits_on_codebook_only", False))


def code_batch(cfg: RunConfig, out_dir: Path, coder_index: int, index: int, *, run_id: str) -> StageReport:
    """Apply a :func:`batch_coder` to one batch of segments: ``interim/codes.<coder>/part-NNNNN.parquet``."""
    start = time.perf_counter()
    spec = cfg.coders[coder_index]
    segments = read_table(part_path(Path(out_dir) / "interim" / "segments", index), SEGMENT)
    coder = build(spec.use, **spec.params).fit(None, codebook=load_codebook(cfg.codebook))
    assignments = coder.predict(segments, run_id=run_id)
    path = write_table(assignments, part_path(Path(out_dir) / "interim" / f"codes.{spec.use}", index), ASSIGNMENT,
                       stage=spec.use)
    return _report(start, {"part": path}, assignments=int(assignments["label"].sum()), batch=index)


def gather_codes(cfg: RunConfig, out_dir: Path, coder_index: int, n_batches: int) -> StageReport:
    """Join a batch coder's parts in batch order into ``interim/codes.<coder>.parquet``."""
    start = time.perf_counter()
    spec = cfg.coders[coder_index]
    assignments = _concat_parts(Path(out_dir) / "interim" / f"codes.{spec.use}", n_batches, ASSIGNMENT)
    # The order of ``assignment_frame`` (a coder's own output) over the whole table.
    assignments = assignments.sort_values(["segment_id", "code_id", "coder"], kind="stable").reset_index(drop=True)
    path = Path(out_dir) / "interim" / f"codes.{spec.use}.parquet"
    write_table(assignments, path, ASSIGNMENT, stage=spec.use)
    return _report(start, {"codes": path}, coder=spec.use, assignments=int(assignments["label"].sum()),
                   batches=n_batches)


def combine_codes(coder_reports: list[StageReport], out_dir: Path, cfg: RunConfig | None = None, *,
                  run_id: str = "", codebook: Codebook | None = None) -> StageReport:
    """Every coder's ASSIGNMENT rows, plus final ``coder.combined.v1`` rows when there are several coders.

    The combined rows carry the merged score and, in their evidence, a ``review:`` flag where the coders
    disagree or the score is low (rules per code from ``cfg.combine``).
    """
    from pipeline.coders.combine import combine_assignments

    start = time.perf_counter()
    frames = [read_table(Path(r["paths"]["codes"]), ASSIGNMENT) for r in coder_reports]
    if cfg is not None and len(frames) > 1:
        codebook = codebook if codebook is not None else load_codebook(cfg.codebook)
        combined = combine_assignments(frames, codebook=codebook, rules=cfg.combine.rules,
                                       review_threshold=cfg.combine.review_threshold, run_id=run_id)
        frames.append(combined)
    codes = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ASSIGNMENT.column_names)
    codes = codes.sort_values(["segment_id", "code_id", "coder"], kind="stable").reset_index(drop=True)
    path = run_paths(out_dir)["codes"]
    write_table(codes, path, ASSIGNMENT, stage="combine")
    review = int(codes["evidence"].str.startswith("review:").sum())
    return _report(start, {"codes": path}, assignments=int(codes["label"].sum()),
                   segments_coded=int(codes.loc[codes["label"], "segment_id"].nunique()), needs_review=review)


def find_topics(cfg: RunConfig, out_dir: Path, *, run_id: str) -> StageReport:
    """Emergent topics (``coder.topics.v1``): topics.parquet, topics.html, ... and its rows in codes.parquet.

    See :func:`pipeline.topics.stage.topics_for_run`.
    """
    from pipeline.topics.stage import topics_for_run

    return topics_for_run(cfg, Path(out_dir), run_id)


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
