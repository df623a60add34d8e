"""Small run folders built from the real schema tables, and the vendored REFI-QDA schemas."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from pipeline.io import write_table
from pipeline.schema import ASSIGNMENT, DOCUMENT, SEGMENT, coerce_frame

XSD_DIR = Path(__file__).parent / "xsd"
SHARED_SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "refi-qda" / "samples"
STARTED_AT = "2026-01-02T03:04:05+00:00"

DOC_A = ("INTERVIEWER: How did the first session feel?\n"
         "CLIENT: Honestly — I felt heard 😊 and not judged.\n"
         "CLIENT: שלום, she said it made sense. Café talk.\n")
DOC_B = '=HYPERLINK("http://x","click") she listened.\n-1 point for the waiting room.'
DOC_C = "@home I could be honest."
DOC_D = "Nothing coded here."


def document(document_id: str, text: str, *, source_path: str, record_key: str = "", source_type: str = "interview",
             case_id: str | None = None, session: int | None = None, collected_at: str | None = None,
             clinician: str | None = None) -> dict:
    return {"document_id": document_id, "corpus_id": "mini", "source_path": source_path, "record_key": record_key,
            "source_sha256": "0" * 64, "source_type": source_type, "source_format": "txt", "case_id": case_id,
            "session": session, "collected_at": collected_at, "clinician": clinician, "encoding": "utf-8",
            "metadata": "{}", "text": text}


def segment(document_id: str, text: str, piece: str, *, speaker: str = "client", turn: int = 0,
            start: int | None = None) -> dict:
    begin = text.index(piece) if start is None else start
    return {"segment_id": f"{document_id}-{begin}-{begin + len(piece)}", "document_id": document_id,
            "speaker": speaker, "turn_index": turn, "start_char": begin, "end_char": begin + len(piece),
            "source_line": text[:begin].count("\n") + 1, "text": piece}


def assignment(segment_id: str, code_id: str, score: float, *, coder: str = "coder.rules.v1", label: bool = True,
               evidence: str = "") -> dict:
    return {"segment_id": segment_id, "code_id": code_id, "coder": coder, "score": score, "label": label,
            "evidence": evidence, "run_id": "run0001"}


def tables(docs: list[dict], segs: list[dict], assigns: list[dict]) -> tuple[pd.DataFrame, ...]:
    frames = []
    for rows, table in ((docs, DOCUMENT), (segs, SEGMENT), (assigns, ASSIGNMENT)):
        frame = pd.DataFrame(rows, columns=table.column_names)
        frames.append(coerce_frame(frame, table))
    return tuple(frames)


def manifest(codebook, codebook_path: Path, *, run_id: str = "run0001") -> dict:
    return {"run_id": run_id, "corpus_id": "mini", "pipeline_version": "0.1.0", "config_sha256": "c" * 64,
            "started_at": STARTED_AT,
            "codebook": {"id": codebook.id, "version": codebook.version, "sha256": codebook.sha256(),
                         "path": str(codebook_path)},
            "config": {"coders": [{"use": "coder.rules.v1", "params": {}},
                                  {"use": "coder.similarity.v1", "params": {"model": "minilm-l6"}}]}}


def mini_rows() -> tuple[list[dict], list[dict], list[dict]]:
    docs = [
        document("docA", DOC_A, source_path="interviews/C01_s1.txt", case_id="C01", session=1,
                 collected_at="2026-01", clinician="[THERAPIST_1]"),
        document("docB", DOC_B, source_path="feedback/wave1.csv", record_key="R0001", source_type="feedback",
                 case_id="C01", session=2, collected_at="2026-02", clinician="[THERAPIST_1]"),
        document("docC", DOC_C, source_path="feedback/wave1.csv", record_key="R0002", source_type="feedback",
                 case_id="C02"),
        document("docD", DOC_D, source_path="interviews/misc.txt"),
    ]
    a = [segment("docA", DOC_A, "How did the first session feel?", speaker="interviewer"),
         segment("docA", DOC_A, "Honestly — I felt heard 😊 and not judged.", turn=1),
         segment("docA", DOC_A, "שלום, she said it made sense.", turn=2),
         segment("docA", DOC_A, "Café talk.", turn=2)]
    b = [segment("docB", DOC_B, '=HYPERLINK("http://x","click") she listened.'),
         segment("docB", DOC_B, "-1 point for the waiting room.", turn=1)]
    segs = [*a, *b, segment("docC", DOC_C, DOC_C), segment("docD", DOC_D, DOC_D)]
    ids = [s["segment_id"] for s in segs]
    assigns = [
        assignment(ids[1], "WA.VAL.VALIDATION", 0.9, evidence="felt_heard | felt heard"),
        assignment(ids[1], "WA.VAL.VALIDATION", 0.45, coder="coder.similarity.v1", evidence="exemplar:3"),
        assignment(ids[2], "WA.VAL.VALIDATION", 0.7, evidence="makes_sense"),
        assignment(ids[3], "WA.OPEN.CLIENT_OPENNESS", 0.2, label=False),
        assignment(ids[4], "WA.VAL.VALIDATION", 0.3, evidence="really_listened"),
        assignment(ids[5], "WA.EARLY.ACCESS_WAITING", 0.8, evidence="waiting room"),
        assignment(ids[6], "WA.OPEN.CLIENT_OPENNESS", 0.6, evidence="could_be_honest"),
    ]
    return docs, segs, assigns


def write_run(run_dir: Path, frames: tuple[pd.DataFrame, ...], data: dict) -> Path:
    documents, segments, assignments = frames
    write_table(documents, run_dir / "documents.parquet", DOCUMENT)
    write_table(segments, run_dir / "segments.parquet", SEGMENT)
    write_table(assignments, run_dir / "codes.parquet", ASSIGNMENT)
    (run_dir / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    return run_dir


@pytest.fixture(scope="session")
def project_schema():
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(XSD_DIR / "Project-mrt2019.xsd")))


@pytest.fixture(scope="session")
def codebook_schema():
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(XSD_DIR / "Codebook-mrt2019.xsd")))


@pytest.fixture
def mini(codebook, codebook_path) -> SimpleNamespace:
    """The mini corpus as tables plus its manifest (nothing on disk)."""
    docs, segs, assigns = mini_rows()
    documents, segments, assignments = tables(docs, segs, assigns)
    return SimpleNamespace(documents=documents, segments=segments, assignments=assignments,
                           manifest=manifest(codebook, codebook_path), segment_ids=[s["segment_id"] for s in segs])


@pytest.fixture
def mini_run(tmp_path, mini) -> Path:
    """A finished run folder holding the mini corpus."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return write_run(run_dir, (mini.documents, mini.segments, mini.assignments), mini.manifest)


@pytest.fixture
def helpers() -> SimpleNamespace:
    return SimpleNamespace(document=document, segment=segment, assignment=assignment, tables=tables,
                           manifest=manifest, write_run=write_run, samples=SHARED_SAMPLES)
