"""REFI-QDA export (NVivo, ATLAS.ti, MAXQDA, QualCoder): ``.qdc`` codebook, ``.qdpx`` project, NVivo xlsx.

Plain functions over a finished run folder (``documents.parquet``, ``segments.parquet``, ``codes.parquet``,
``manifest.json``; see :mod:`pipeline.stages`). Facts behind the choices are in ``shared/refi-qda/NOTES.md``:

- XML is streamed with :class:`xml.sax.saxutils.XMLGenerator`, never built from strings.
- GUIDs are ``uuid5(PROJECT_NAMESPACE, key)`` with keys such as ``code:WA.VAL.VALIDATION`` or
  ``selection:<segment_id>``: the same run exported twice gives byte-identical files (fixed zip
  timestamps taken from the manifest's ``started_at``, sorted members, no ``now()``, no ``basePath``).
- Sources are ``sources/<guid>.txt`` (lowercase folder), UTF-8 without BOM, exactly ``DOCUMENT.text``;
  selections count Unicode code points from 0 with an exclusive ``endPosition``, as the spec and every
  reader we know do.
- Machine coding stays auditable: one REFI ``User`` per coder, a confidence note per selection, a run
  memo, and a "Needs review" set for low scores.
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from xml.sax.saxutils import XMLGenerator

import numpy as np
import pandas as pd

from pipeline import __version__
from pipeline.codebook import Code, Codebook, load_codebook
from pipeline.coders.topics import TOPICS_CODER
from pipeline.errors import ExportError
from pipeline.io import atomic_write_bytes, ensure_private_dir, safe_cell
from pipeline.schema import ASSIGNMENT, DOCUMENT, SEGMENT, validate_frame

__all__ = [
    "EXPORT_FILES",
    "PROJECT_NAMESPACE",
    "REVIEW_THRESHOLD",
    "export_run",
    "guid",
    "load_run",
    "source_name",
    "write_codebook_qdc",
    "write_nvivo_xlsx",
    "write_project_qdpx",
    "write_qdpx_tables",
    "write_xlsx_tables",
]

logger = logging.getLogger(__name__)

#: Namespace of every GUID this project writes (uuid5 of a fixed URL); never change it.
PROJECT_NAMESPACE = uuid.UUID("69dd845c-e85d-553b-8c40-1576531a511f")
PROJECT_NS = "urn:QDA-XML:project:1.0"
CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
ORIGIN = f"alliance-coder {__version__}"
REVIEW_THRESHOLD = 0.5
#: File names ``export_run`` writes into the output folder.
EXPORT_FILES = {"qdc": "codebook.qdc", "qdpx": "project.qdpx", "xlsx": "nvivo_dataset.xlsx"}
RUN_FILES = {"documents": "documents.parquet", "segments": "segments.parquet", "codes": "codes.parquet",
             "manifest": "manifest.json"}
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_EXPORTER = "alliance-coder"
# (key, name, typeOfVariable, description): per document (on TextSource) and per case (on Case).
_SOURCE_VARS = (("session", "Session", "Integer", "session number"),
                ("date", "Date", "Text", "collection date, generalised as configured"),
                ("clinician", "Clinician", "Text", "clinician pseudonym"),
                ("source_type", "Source type", "Text", "interview | session | feedback"))
_CASE_VARS = (("documents", "Documents", "Integer", "number of documents of the case"),
              ("sessions", "Sessions", "Text", "session numbers of the case's documents"),
              ("dates", "Dates", "Text", "first and last collection date"),
              ("clinicians", "Clinicians", "Text", "clinician pseudonyms"),
              ("source_types", "Source types", "Text", "source types of the case's documents"))
_VAR_KINDS = {key: kind for key, _, kind, _ in (*_SOURCE_VARS, *_CASE_VARS)}


def guid(key: str) -> str:
    """Deterministic GUID for a stable key, e.g. ``guid("code:WA.VAL.VALIDATION")`` (lowercase, no braces)."""
    return str(uuid.uuid5(PROJECT_NAMESPACE, key))


def source_name(source_path: str, record_key: str = "") -> str:
    """Display name of a document: corpus path without extension (``/`` -> ``_``) plus ``#record``.

    The name never holds text, has no extension dot (readers that derive file names from it, such as
    ``qc``, would otherwise collide) and no path separators.
    """
    stem = PurePosixPath(source_path).with_suffix("").as_posix().replace("/", "_")
    name = f"{stem} #{record_key}" if record_key else stem
    return re.sub(r"[\\/.:]", "_", name)  # "/" too: a record key may hold one


def _present(value: Any) -> bool:
    return value is not None and not (not isinstance(value, str) and pd.isna(value))


def _clean(value: Any) -> str:
    """Text safe for XML 1.0 (forbidden control characters and lone surrogates removed)."""
    return _XML_BAD.sub("", str(value))


@contextmanager
def _el(xg: XMLGenerator, name: str, attrs: Mapping[str, Any] | None = None) -> Iterator[None]:
    xg.startElement(name, {k: _clean(v) for k, v in (attrs or {}).items() if v is not None})
    xg.ignorableWhitespace("\n")
    yield
    xg.endElement(name)
    xg.ignorableWhitespace("\n")


def _leaf(xg: XMLGenerator, name: str, attrs: Mapping[str, Any] | None = None, text: str | None = None) -> None:
    xg.startElement(name, {k: _clean(v) for k, v in (attrs or {}).items() if v is not None})
    if text:
        xg.characters(_clean(text))
    xg.endElement(name)
    xg.ignorableWhitespace("\n")


def _render(stream: Any, body: Callable[[XMLGenerator], None]) -> None:
    xg = XMLGenerator(stream, encoding="utf-8", short_empty_elements=True)
    xg.startDocument()
    body(xg)
    xg.endDocument()


def _code_tree(xg: XMLGenerator, codebook: Codebook) -> None:
    def code(c: Code) -> None:
        with _el(xg, "Code", {"guid": guid(f"code:{c.id}"), "name": c.name, "isCodable": "true", "color": c.colour}):
            _leaf(xg, "Description", text=f"[{c.id}] {c.description_text()}")

    with _el(xg, "Codes"):
        for parent in codebook.parents:
            attrs = {"guid": guid(f"code:{parent.id}"), "name": parent.name, "isCodable": "false",
                     "color": parent.colour}
            with _el(xg, "Code", attrs):
                _leaf(xg, "Description", text=f"[{parent.id}] {parent.description}".strip())
                for child in codebook.codes:
                    if child.parent == parent.id:
                        code(child)
        for child in codebook.codes:
            if child.parent is None:
                code(child)


def write_codebook_qdc(codebook: Codebook, path: str | Path) -> Path:
    """Write the codebook as a REFI-QDA Codebook (``.qdc``): parents non-codable, codes as their children.

    Args:
        codebook: The validated codebook.
        path: Target file (written atomically, 0600).

    Returns:
        The written path.
    """
    buf = io.BytesIO()

    def body(xg: XMLGenerator) -> None:
        with _el(xg, "CodeBook", {"xmlns": CODEBOOK_NS, "origin": ORIGIN}):
            _code_tree(xg, codebook)

    _render(buf, body)
    return atomic_write_bytes(Path(path), buf.getvalue())


def load_run(run_dir: str | Path, *, tables: bool = True) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Read a finished run folder: its manifest and (optionally) the DOCUMENT, SEGMENT, ASSIGNMENT tables.

    Raises:
        ExportError: (QA-E040) when the folder, a table or the manifest is missing or unreadable.
        SchemaError: when a table violates its declared schema.
    """
    from pipeline.io import read_table

    run_dir = Path(run_dir)
    needed = list(RUN_FILES.values()) if tables else [RUN_FILES["manifest"]]
    missing = [name for name in needed if not (run_dir / name).is_file()]
    if missing:
        raise ExportError(f"run folder is incomplete: {missing} missing. Export a finished run "
                          "(`alliance run` writes them).", path=str(run_dir))
    try:
        manifest = json.loads((run_dir / RUN_FILES["manifest"]).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExportError(f"manifest.json cannot be read ({type(err).__name__}).", path=str(run_dir)) from None
    if not isinstance(manifest, dict) or not manifest.get("run_id"):
        raise ExportError("manifest.json has no 'run_id'; it is not a finished run.", path=str(run_dir))
    frames: dict[str, pd.DataFrame] = {}
    if tables:
        for key, table in (("documents", DOCUMENT), ("segments", SEGMENT), ("codes", ASSIGNMENT)):
            frames[key] = read_table(run_dir / RUN_FILES[key], table, stage="export")
    return manifest, frames


def _run_codebook(manifest: Mapping[str, Any], run_dir: Path) -> Codebook:
    info = manifest.get("codebook") or {}
    raw = info.get("path")
    if not raw:
        raise ExportError("manifest.json names no codebook path.", path=str(run_dir), key="codebook.path")
    path = Path(raw)
    if not path.is_absolute() and not path.exists():
        path = run_dir / path
    if not path.is_file():
        raise ExportError(f"the run's codebook {raw!r} does not exist; restore it (same id and version).",
                          path=str(run_dir), key="codebook.path")
    codebook = load_codebook(path)
    if (codebook.id, codebook.version) != (info.get("id", codebook.id), info.get("version", codebook.version)):
        raise ExportError(f"codebook {path.name} is {codebook.id} {codebook.version}, but the run used "
                          f"{info.get('id')} {info.get('version')}.", path=str(run_dir), key="codebook")
    return codebook


def _timestamp(manifest: Mapping[str, Any]) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(str(manifest["started_at"]))
    except (KeyError, ValueError):
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)


def _select(assignments: pd.DataFrame, codebook: Codebook, *, min_score: float,
            codes: Sequence[str] | None) -> pd.DataFrame:
    """Assigned (label) rows with score >= min_score of the chosen codes, in codebook order."""
    if not 0.0 <= float(min_score) <= 1.0:
        raise ExportError(f"The 'min_score' parameter must be a float in [0, 1]. Got {min_score!r} instead.",
                          key="min_score")
    known = codebook.code_ids
    if codes is not None:
        unknown = sorted(set(codes) - set(known))
        if unknown:
            raise ExportError(f"The 'codes' filter names codes not in codebook {codebook.id} "
                              f"{codebook.version}: {unknown}.", key="codes")
    keep = assignments["label"].astype(bool) & (assignments["score"] >= min_score)
    # the topic coder's rows are exploratory (candidate themes TOPIC.nn are no codebook codes, and a mapped
    # topic is not a coding decision): NVivo gets the codebook coders' codings; topics are in topics.html
    keep &= assignments["coder"] != TOPICS_CODER
    if codes is not None:
        keep &= assignments["code_id"].isin(list(codes))
    chosen = assignments[keep]
    stray = sorted(set(chosen["code_id"]) - set(known))
    if stray:
        raise ExportError(f"assignments use codes not in codebook {codebook.id} {codebook.version}: {stray}.",
                          key="code_id")
    order = chosen["code_id"].map({c: i for i, c in enumerate(known)})
    return chosen.assign(_order=order).sort_values(["segment_id", "_order", "coder"], kind="stable")


def _check_texts(documents: pd.DataFrame) -> dict[str, str]:
    texts = dict(zip(documents["document_id"], documents["text"], strict=True))
    for doc_id, text in texts.items():
        if text.startswith("\ufeff"):
            raise ExportError("document text starts with U+FEFF, which readers take for a BOM and drop, "
                              "shifting every selection; remove it in normalisation.", document_id=doc_id)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ExportError("document text holds a lone surrogate and cannot be written as UTF-8.",
                              document_id=doc_id) from None
    return texts


def _check_selections(selected: pd.DataFrame, texts: Mapping[str, str]) -> None:
    for row in selected.itertuples(index=False):
        text = texts.get(row.document_id)
        where = {"segment_id": row.segment_id, "document_id": row.document_id}
        if text is None:
            raise ExportError("segment refers to a document that is not in documents.parquet.", **where)
        start, end = int(row.start_char), int(row.end_char)
        if not 0 <= start < end <= len(text):
            raise ExportError(f"segment offsets {start}..{end} are outside the document text "
                              f"(length {len(text)}).", **where)
        if text[start:end] != row.text:
            raise ExportError("segment text != DOCUMENT.text[start_char:end_char]; offsets would not line up.",
                              **where)


def _user_name(coder: str, manifest: Mapping[str, Any], codebook: Codebook) -> str:
    if coder.startswith("human:"):
        return coder
    parts = [coder]
    for spec in (manifest.get("config") or {}).get("coders") or []:
        if isinstance(spec, dict) and spec.get("use") == coder:
            params = spec.get("params") or {}
            parts += [f"model {params[k]}" for k in ("model", "model_id", "embedding_model") if params.get(k)]
    parts.append(f"codebook {codebook.id} {codebook.version}")
    return f"{parts[0]} ({'; '.join(parts[1:])})"


def _selection_note(seg: Any, rows: pd.DataFrame, names: Mapping[str, str], review: float) -> str:
    lines = [f"Machine coding of segment {seg.segment_id} ({seg.speaker}, turn {seg.turn_index})."]
    for r in rows.itertuples(index=False):
        flag = f"; NEEDS REVIEW (score < {review:g})" if r.score < review else ""
        lines.append(f"{r.code_id} ({names[r.code_id]}) by {r.coder}: score {r.score:.2f}; "
                     f"evidence: {r.evidence or '-'}{flag}")
    return "\n".join(lines)


@dataclass
class _Plan:
    """What one ``project.qde`` holds, sorted; ``files`` collects the members of ``sources/``."""

    documents: pd.DataFrame
    selected: pd.DataFrame
    chosen: pd.DataFrame
    codebook: Codebook
    manifest: dict[str, Any]
    review: float
    min_score: float
    codes: list[str] | None
    files: dict[str, bytes] = field(default_factory=dict)


def _source_names(documents: pd.DataFrame) -> dict[str, str]:
    """Unique display names in document order (a clash gets the document id appended)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for doc in documents.itertuples(index=False):
        name = source_name(doc.source_path, doc.record_key)
        names[doc.document_id] = f"{name} ({doc.document_id})" if name in taken else name
        taken.update((name, names[doc.document_id]))
    return names


def _case_table(documents: pd.DataFrame) -> list[tuple[str, dict[str, Any], list[str]]]:
    """Per case id: case-level attributes (keys of ``_CASE_VARS``) and its document ids, in document order."""
    cases = []
    for case_id, grp in documents[documents["case_id"].notna()].groupby("case_id", sort=True):
        sessions = sorted({int(s) for s in grp["session"] if _present(s)})
        dates = sorted({str(d) for d in grp["collected_at"] if _present(d)})
        attrs = {"documents": len(grp), "sessions": "; ".join(map(str, sessions)) or None,
                 "dates": (dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}") if dates else None,
                 "clinicians": "; ".join(sorted({str(c) for c in grp["clinician"] if _present(c)})) or None,
                 "source_types": "; ".join(sorted(set(grp["source_type"])))}
        cases.append((str(case_id), attrs, list(grp["document_id"])))
    return cases


def _values(xg: XMLGenerator, items: Sequence[tuple[str, Any]]) -> None:
    for key, value in items:
        if _present(value):
            kind = _VAR_KINDS[key]
            with _el(xg, "VariableValue"):
                _leaf(xg, "VariableRef", {"targetGUID": guid(f"variable:{key}")})
                _leaf(xg, f"{kind}Value", text=str(int(value)) if kind == "Integer" else str(value))


def _selection(xg: XMLGenerator, seg: Any, rows: pd.DataFrame, note: str, me: str, when: str | None) -> None:
    sid = seg.segment_id
    coders = sorted(set(rows["coder"]))
    attrs = {"guid": guid(f"selection:{sid}"), "name": f"{seg.speaker} turn {seg.turn_index}",
             "startPosition": int(seg.start_char), "endPosition": int(seg.end_char),
             "creatingUser": guid(f"user:{coders[0]}") if len(coders) == 1 else me, "creationDateTime": when}
    with _el(xg, "PlainTextSelection", attrs):
        _leaf(xg, "Description", text=note)
        for r in rows.itertuples(index=False):
            attrs = {"guid": guid(f"coding:{sid}:{r.code_id}:{r.coder}"), "creatingUser": guid(f"user:{r.coder}"),
                     "creationDateTime": when}
            with _el(xg, "Coding", attrs):
                _leaf(xg, "CodeRef", {"targetGUID": guid(f"code:{r.code_id}")})
        _leaf(xg, "NoteRef", {"targetGUID": guid(f"note:selection:{sid}")})


def _sources(xg: XMLGenerator, p: _Plan, rows: Mapping[str, pd.DataFrame], notes: Mapping[str, str], me: str,
             when: str | None) -> None:
    by_doc = dict(iter(p.selected.groupby("document_id", sort=False)))
    names = _source_names(p.documents)
    with _el(xg, "Sources"):
        for doc in p.documents.itertuples(index=False):
            sguid = guid(f"source:{doc.document_id}")
            p.files[f"{sguid}.txt"] = doc.text.encode("utf-8")
            attrs = {"guid": sguid, "name": names[doc.document_id], "plainTextPath": f"internal://{sguid}.txt",
                     "creatingUser": me, "creationDateTime": when}
            with _el(xg, "TextSource", attrs):
                record = f"; record {doc.record_key}" if doc.record_key else ""
                _leaf(xg, "Description", text=f"document_id {doc.document_id}; source {doc.source_path}{record}")
                segs = by_doc.get(doc.document_id)
                for seg in [] if segs is None else segs.itertuples(index=False):
                    _selection(xg, seg, rows[seg.segment_id], notes[seg.segment_id], me, when)
                _values(xg, [("session", doc.session), ("date", doc.collected_at), ("clinician", doc.clinician),
                             ("source_type", doc.source_type)])


def _run_memo(p: _Plan, coders: Sequence[str], n_review: int) -> str:
    m, cb = p.manifest, p.codebook
    counts = p.chosen["coder"].value_counts()
    lines = [f"alliance-coder export of run {m['run_id']} (corpus {m.get('corpus_id', '')})",
             f"pipeline version: {m.get('pipeline_version', __version__)}",
             f"config sha256: {m.get('config_sha256', '')}",
             f"codebook: {cb.id} {cb.version} (sha256 {cb.sha256()})",
             f"run started at: {m.get('started_at', '')}",
             "coders: " + ("; ".join(f"{c} ({counts[c]} codings)" for c in coders) or "none"),
             f"filters: min_score={p.min_score:g}; codes={'all' if p.codes is None else ', '.join(p.codes)}",
             f"needs review: {n_review} selections hold a coding scored below {p.review:g} (see the set "
             "'Needs review'; every selection has a confidence note with score and evidence)",
             "offsets: Unicode code points from 0, end exclusive, over the UTF-8 text (no BOM, LF) in sources/"]
    astral = int(p.documents["text"].str.contains("[\U00010000-\U0010ffff]", regex=True).sum())
    if astral:
        lines.append(f"compatibility: {astral} sources hold characters outside the BMP (e.g. emoji); a reader "
                     "that counts UTF-16 units instead of code points would shift selections after them")
    carriage = int(p.documents["text"].str.contains("\r", regex=False).sum())
    if carriage:
        lines.append(f"compatibility: {carriage} sources hold CR characters; readers disagree on counting them")
    return "\n".join(lines) + "\n"


def _project(xg: XMLGenerator, p: _Plan) -> None:
    run_id = str(p.manifest["run_id"])
    stamp = _timestamp(p.manifest)
    when = stamp.strftime("%Y-%m-%dT%H:%M:%SZ") if stamp else None
    me, memo = guid(f"user:{_EXPORTER}"), guid(f"note:run:{run_id}")
    coders = sorted(set(p.chosen["coder"]))
    names = {c.id: c.name for c in p.codebook.codes}
    rows = dict(iter(p.chosen.groupby("segment_id", sort=True)))
    notes = {s.segment_id: _selection_note(s, rows[s.segment_id], names, p.review)
             for s in p.selected.itertuples(index=False)}
    review = [s for s in p.selected["segment_id"] if (rows[s]["score"] < p.review).any()]
    attrs = {"xmlns": PROJECT_NS, "name": f"{p.manifest.get('corpus_id') or 'corpus'} run {run_id}",
             "origin": ORIGIN, "creatingUserGUID": me, "creationDateTime": when}
    with _el(xg, "Project", attrs):
        with _el(xg, "Users"):
            _leaf(xg, "User", {"guid": me, "name": ORIGIN, "id": "AC"})
            for c in coders:
                short = re.sub(r"[^A-Za-z0-9]", "", c.removeprefix("coder.")).upper()[:8]
                _leaf(xg, "User", {"guid": guid(f"user:{c}"), "name": _user_name(c, p.manifest, p.codebook),
                                   "id": short})
        with _el(xg, "CodeBook"):
            _code_tree(xg, p.codebook)
        with _el(xg, "Variables"):
            for key, name, kind, desc in (*_SOURCE_VARS, *_CASE_VARS):
                with _el(xg, "Variable", {"guid": guid(f"variable:{key}"), "name": name, "typeOfVariable": kind}):
                    _leaf(xg, "Description", text=desc)
        cases = _case_table(p.documents)
        if cases:
            with _el(xg, "Cases"):
                for case_id, case_attrs, doc_ids in cases:
                    with _el(xg, "Case", {"guid": guid(f"case:{case_id}"), "name": case_id}):
                        _values(xg, list(case_attrs.items()))
                        for doc_id in doc_ids:
                            _leaf(xg, "SourceRef", {"targetGUID": guid(f"source:{doc_id}")})
        if len(p.documents):
            _sources(xg, p, rows, notes, me, when)
        with _el(xg, "Notes"):
            p.files[f"{memo}.txt"] = _run_memo(p, coders, len(review)).encode("utf-8")
            _leaf(xg, "Note", {"guid": memo, "name": f"Run memo {run_id}", "plainTextPath": f"internal://{memo}.txt",
                               "creatingUser": me, "creationDateTime": when})
            for sid, text in notes.items():
                with _el(xg, "Note", {"guid": guid(f"note:selection:{sid}"), "name": f"Confidence {sid}",
                                      "creatingUser": me, "creationDateTime": when}):
                    _leaf(xg, "PlainTextContent", text=text)
        review_set = {"guid": guid("set:needs_review"), "name": f"Needs review (score < {p.review:g})"}
        with _el(xg, "Sets"), _el(xg, "Set", review_set):
            _leaf(xg, "Description", text=f"Selections with a machine coding scored below {p.review:g}: "
                  "the sources that hold them and their confidence notes.")
            review_docs = set(p.selected.loc[p.selected["segment_id"].isin(review), "document_id"])
            for doc_id in p.documents["document_id"]:
                if doc_id in review_docs:
                    _leaf(xg, "MemberSource", {"targetGUID": guid(f"source:{doc_id}")})
            for sid in review:
                _leaf(xg, "MemberNote", {"targetGUID": guid(f"note:selection:{sid}")})
        _leaf(xg, "Description", text=f"Machine coding from alliance-coder run {run_id}; see the run memo.")
        _leaf(xg, "NoteRef", {"targetGUID": memo})


def write_project_qdpx(run_dir: str | Path, path: str | Path, *, codebook: Codebook, min_score: float = 0.0,
                       codes: Sequence[str] | None = None, review_threshold: float = REVIEW_THRESHOLD) -> Path:
    """Export a finished run as a REFI-QDA project (``.qdpx``): sources, codebook, coded selections.

    Args:
        run_dir: Run folder (``documents.parquet``, ``segments.parquet``, ``codes.parquet``, ``manifest.json``).
        path: Target ``.qdpx`` (written atomically, 0600).
        codebook: The run's codebook.
        min_score: Only assignments with ``score >= min_score`` are exported.
        codes: Only these code ids (default: all).
        review_threshold: Selections with a coding scored below this go into the "Needs review" set.

    Returns:
        The written path.

    Raises:
        ExportError: (QA-E040) incomplete run folder, unknown codes, offsets outside the text.
    """
    manifest, frames = load_run(run_dir)
    return write_qdpx_tables(frames["documents"], frames["segments"], frames["codes"], path, codebook=codebook,
                             manifest=manifest, min_score=min_score, codes=codes, review_threshold=review_threshold)


def write_qdpx_tables(documents: pd.DataFrame, segments: pd.DataFrame, assignments: pd.DataFrame,
                      path: str | Path, *, codebook: Codebook, manifest: Mapping[str, Any], min_score: float = 0.0,
                      codes: Sequence[str] | None = None, review_threshold: float = REVIEW_THRESHOLD) -> Path:
    """Write a ``.qdpx`` from DOCUMENT, SEGMENT and ASSIGNMENT tables (see :func:`write_project_qdpx`).

    Args:
        documents: DOCUMENT table (``pipeline.schema``).
        segments: SEGMENT table.
        assignments: ASSIGNMENT table.
        path: Target ``.qdpx``.
        codebook: The run's codebook.
        manifest: The run manifest (``run_id``, ``started_at``, ``config_sha256``, ...).
        min_score: Lowest score exported.
        codes: Code ids to export (default: all).
        review_threshold: Score below which a selection needs review.

    Returns:
        The written path.

    Raises:
        ExportError: (QA-E040) unknown codes, missing segments or documents, offsets outside the text.
    """
    for frame, table in ((documents, DOCUMENT), (segments, SEGMENT), (assignments, ASSIGNMENT)):
        validate_frame(frame, table, stage="export")
    texts = _check_texts(documents)
    chosen = _select(assignments, codebook, min_score=min_score, codes=codes)
    missing = sorted(set(chosen["segment_id"]) - set(segments["segment_id"]))
    if missing:
        raise ExportError(f"assignments refer to segments not in segments.parquet: {missing[:5]}.",
                          segment_id=missing[0])
    selected = segments[segments["segment_id"].isin(chosen["segment_id"])]
    _check_selections(selected, texts)
    plan = _Plan(documents=documents.sort_values(["source_path", "record_key", "document_id"], kind="stable"),
                 selected=selected.sort_values(["document_id", "start_char", "end_char", "segment_id"]),
                 chosen=chosen, codebook=codebook, manifest=dict(manifest), review=float(review_threshold),
                 min_score=float(min_score), codes=None if codes is None else sorted(codes))
    stamp = _timestamp(manifest)
    date_time = stamp.timetuple()[:6] if stamp and stamp.year >= 1980 else (1980, 1, 1, 0, 0, 0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        with archive.open(_zinfo("project.qde", date_time), "w") as stream:
            _render(stream, lambda xg: _project(xg, plan))
        for name, data in sorted(plan.files.items()):
            archive.writestr(_zinfo(f"sources/{name}", date_time), data)
    logger.info("qdpx export: %d sources, %d selections, %d codings", len(documents), len(selected), len(chosen))
    return atomic_write_bytes(Path(path), buf.getvalue())


def _zinfo(name: str, date_time: tuple[int, ...]) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=date_time)  # type: ignore[arg-type]
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o100600 << 16
    return info


def write_nvivo_xlsx(run_dir: str | Path, path: str | Path, *, codebook: Codebook, min_score: float = 0.0,
                     codes: Sequence[str] | None = None) -> Path:
    """Write NVivo's spreadsheet route: a dataset sheet ("Segments") and a classification sheet ("Cases").

    "Segments" has one row per segment: classifying columns (segment_id, document, case, session, date,
    clinician, speaker, source type, turn), one 1/0 column per code id, then the text. "Cases" has the
    classification name in A1, case attributes in row 1 and one case per row. Every text cell is a string
    cell, and text starting with ``= + - @`` tab CR LF is neutralised with :func:`pipeline.io.safe_cell`.

    Args:
        run_dir: Finished run folder.
        path: Target ``.xlsx`` (written atomically, 0600).
        codebook: The run's codebook.
        min_score: A code counts as 1 when an assigned row has ``score >= min_score``.
        codes: Code columns to write (default: every code).

    Returns:
        The written path.

    Raises:
        ExportError: (QA-E040) incomplete run folder, unknown codes, a cell over Excel's 32,767 characters.
    """
    manifest, frames = load_run(run_dir)
    return write_xlsx_tables(frames["documents"], frames["segments"], frames["codes"], path, codebook=codebook,
                             manifest=manifest, min_score=min_score, codes=codes)


def _cell(ws: Any, row: int, col: int, value: Any) -> None:
    if not _present(value):
        return
    if isinstance(value, bool | np.bool_):
        ws.write_number(row, col, int(value))
    elif isinstance(value, int | float | np.integer | np.floating):
        ws.write_number(row, col, value)
    else:
        text = safe_cell(str(value))
        if len(text) > 32767:
            raise ExportError(f"cell {row + 1}:{col + 1} holds {len(text)} characters; Excel allows 32,767. "
                              "Lower segment.max_chars.", key=f"row {row + 1}")
        ws.write_string(row, col, text)


def write_xlsx_tables(documents: pd.DataFrame, segments: pd.DataFrame, assignments: pd.DataFrame,
                      path: str | Path, *, codebook: Codebook, manifest: Mapping[str, Any], min_score: float = 0.0,
                      codes: Sequence[str] | None = None) -> Path:
    """Write the NVivo xlsx from DOCUMENT, SEGMENT and ASSIGNMENT tables (see :func:`write_nvivo_xlsx`)."""
    import xlsxwriter

    chosen = _select(assignments, codebook, min_score=min_score, codes=codes)
    code_ids = [c for c in codebook.code_ids if codes is None or c in codes]
    hits = set(zip(chosen["segment_id"], chosen["code_id"], strict=True))
    docs = documents.sort_values(["source_path", "record_key", "document_id"], kind="stable")
    info = {d.document_id: d for d in docs.itertuples(index=False)}
    names = _source_names(docs)
    position = segments["document_id"].map({d: i for i, d in enumerate(docs["document_id"])})
    if position.isna().any():
        raise ExportError("segments refer to documents that are not in documents.parquet.",
                          segment_id=str(segments.loc[position.isna(), "segment_id"].iloc[0]))
    segs = segments.assign(_doc=position).sort_values(["_doc", "start_char", "end_char", "segment_id"])
    stamp = _timestamp(manifest) or datetime(2000, 1, 1, tzinfo=UTC)
    buf = io.BytesIO()
    workbook = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False,
                                         "strings_to_urls": False, "strings_to_numbers": False})
    workbook.set_properties({"title": f"alliance-coder run {manifest['run_id']}", "author": ORIGIN,
                             "created": stamp.replace(tzinfo=None)})
    sheet = workbook.add_worksheet("Segments")
    header = ["segment_id", "document", "case", "session", "date", "clinician", "speaker", "source type", "turn",
              *code_ids, "text"]
    for col, value in enumerate(header):
        _cell(sheet, 0, col, value)
    for row, seg in enumerate(segs.itertuples(index=False), start=1):
        doc = info[seg.document_id]
        values = [seg.segment_id, names[seg.document_id], doc.case_id, doc.session, doc.collected_at, doc.clinician,
                  seg.speaker, doc.source_type, seg.turn_index,
                  *[int((seg.segment_id, c) in hits) for c in code_ids], seg.text]
        for col, value in enumerate(values):
            _cell(sheet, row, col, value)
    sheet.freeze_panes(1, 0)
    cases = workbook.add_worksheet("Cases")
    for col, value in enumerate(["Client", *(name for _, name, _, _ in _CASE_VARS)]):
        _cell(cases, 0, col, value)
    for row, (case_id, attrs, _) in enumerate(_case_table(docs), start=1):
        for col, value in enumerate([case_id, *(attrs[key] for key, _, _, _ in _CASE_VARS)]):
            _cell(cases, row, col, value)
    workbook.close()
    return atomic_write_bytes(Path(path), buf.getvalue())


def export_run(run_dir: str | Path, *, to: str, out: str | Path | None = None, min_score: float = 0.0,
               codes: Sequence[str] | None = None, review_threshold: float = REVIEW_THRESHOLD) -> list[Path]:
    """Export a finished run for NVivo and other QDA software.

    Args:
        run_dir: Finished run folder; its codebook is the one named in ``manifest.json``.
        to: ``qdpx`` (REFI project), ``qdc`` (REFI codebook), ``xlsx`` (NVivo dataset + classification
            sheet) or ``all``.
        out: Output folder (default ``RUN_DIR/exports``); file names are :data:`EXPORT_FILES`.
        min_score: Lowest score exported (qdpx, xlsx).
        codes: Code ids to export (default: all).
        review_threshold: Score below which a qdpx selection goes into the "Needs review" set.

    Returns:
        The written files.

    Raises:
        ExportError: (QA-E040) unknown target, incomplete run folder, missing codebook, bad offsets.
    """
    kinds = ("qdc", "qdpx", "xlsx") if to == "all" else (to,)
    if any(k not in EXPORT_FILES for k in kinds):
        raise ExportError(f"The 'to' parameter of export_run must be one of {[*EXPORT_FILES, 'all']}. "
                          f"Got {to!r} instead.", key="to")
    run_dir = Path(run_dir)
    manifest, frames = load_run(run_dir, tables=kinds != ("qdc",))
    codebook = _run_codebook(manifest, run_dir)
    out_dir = ensure_private_dir(Path(out) if out is not None else run_dir / "exports")
    written = []
    for kind in kinds:
        target = out_dir / EXPORT_FILES[kind]
        if kind == "qdc":
            written.append(write_codebook_qdc(codebook, target))
        elif kind == "qdpx":
            written.append(write_qdpx_tables(frames["documents"], frames["segments"], frames["codes"], target,
                                             codebook=codebook, manifest=manifest, min_score=min_score, codes=codes,
                                             review_threshold=review_threshold))
        else:
            written.append(write_xlsx_tables(frames["documents"], frames["segments"], frames["codes"], target,
                                             codebook=codebook, manifest=manifest, min_score=min_score, codes=codes))
    return written
