"""Hostile and broken input: zip bombs, corrupt archives, size limits, binary data, parser crashes.

Every case must end as a Problem (never an exception) that names the file and never quotes its text.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
import zipfile
from pathlib import Path

import docx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline.ingest.core as core
from pipeline.errors import ERRORS
from pipeline.ingest import IngestConfig, IngestResult, ingest_corpus, ingest_file, load_corpus_config

CFG = IngestConfig()
DEMO = Path(__file__).resolve().parents[2] / "corpora" / "demo_broken"
SECRET = "Quillon Marbury confided"


def only_problem(result: IngestResult) -> tuple[str, str, str]:
    assert result.documents == []
    [problem] = result.problems
    return problem.file, problem.code, problem.action


def docx_bytes(*paragraphs: str) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def rezip(data: bytes, extra: dict[str, bytes]) -> bytes:
    """Copy a zip archive and add members (names unchecked, as an attacker would)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info.filename))
        for name, payload in extra.items():
            dst.writestr(name, payload)
    return out.getvalue()


def test_demo_zip_bomb_is_quarantined_quickly() -> None:
    started = time.perf_counter()
    result = ingest_file(DEMO / "zip_bomb.docx", root=DEMO, cfg=CFG)
    assert time.perf_counter() - started < 5
    assert only_problem(result) == ("zip_bomb.docx", "QA-E014", "quarantined")
    assert "zip bomb" in result.problems[0].error


@pytest.mark.parametrize(("name", "code"), [
    ("../evil.xml", "QA-E013"), ("/abs.xml", "QA-E013"), ("word\\..\\x.xml", "QA-E013"), ("C:/x.xml", "QA-E013")])
def test_docx_with_unsafe_member_names(tmp_path: Path, name: str, code: str) -> None:
    (tmp_path / "t.docx").write_bytes(rezip(docx_bytes("T: Hi."), {name: b"<x/>"}))
    assert only_problem(ingest_file(tmp_path / "t.docx", root=tmp_path, cfg=CFG)) == ("t.docx", code, "quarantined")


def test_docx_member_count_total_size_and_dtd_limits(tmp_path: Path) -> None:
    many = rezip(docx_bytes("T: Hi."), {f"media/{i}.bin": b"x" for i in range(30)})
    (tmp_path / "many.docx").write_bytes(many)
    result = ingest_file(tmp_path / "many.docx", root=tmp_path, cfg=IngestConfig(max_zip_members=20))
    assert only_problem(result)[1] == "QA-E014"
    result = ingest_file(tmp_path / "many.docx", root=tmp_path, cfg=IngestConfig(max_unzipped_mb=0.001))
    assert only_problem(result)[1] == "QA-E014"
    payload = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><a/>'
    dtd = rezip(docx_bytes("T: Hi."), {"customXml/item9.xml": payload})
    (tmp_path / "dtd.docx").write_bytes(dtd)
    assert only_problem(ingest_file(tmp_path / "dtd.docx", root=tmp_path, cfg=CFG))[1] == "QA-E013"


def test_file_over_size_limit_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("T: " + "word " * 2000)
    result = ingest_file(tmp_path / "big.txt", root=tmp_path, cfg=IngestConfig(max_file_mb=0.001))
    assert only_problem(result) == ("big.txt", "QA-E014", "quarantined")


def test_long_line_is_quarantined_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("T: Hi.\nC: " + "x" * 500 + "\n")
    result = ingest_file(tmp_path / "long.txt", root=tmp_path, cfg=IngestConfig(max_line_chars=100))
    assert only_problem(result)[1] == "QA-E014" and result.problems[0].line == 2


def test_binary_txt_and_unsupported_type(tmp_path: Path) -> None:
    (tmp_path / "bin.txt").write_bytes(bytes(range(256)) * 4)
    assert only_problem(ingest_file(tmp_path / "bin.txt", root=tmp_path, cfg=CFG))[1] == "QA-E013"
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.7")
    assert only_problem(ingest_file(tmp_path / "scan.pdf", root=tmp_path, cfg=CFG)) == (
        "scan.pdf", "QA-E016", "quarantined")


def test_parser_crash_is_wrapped_without_its_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    def crash(ctx: object) -> IngestResult:
        raise RuntimeError(SECRET)

    monkeypatch.setitem(core.READERS, "txt", crash)
    (tmp_path / "a.txt").write_text("T: hello\n")
    with caplog.at_level(logging.DEBUG, logger="pipeline"):
        result = ingest_file(tmp_path / "a.txt", root=tmp_path, cfg=CFG)
    assert only_problem(result) == ("a.txt", "QA-E013", "quarantined")
    assert "RuntimeError" in result.problems[0].error
    assert SECRET not in result.problems[0].error and SECRET not in caplog.text


def test_problems_and_logs_never_quote_participant_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = {
        "a.txt": f"T: {SECRET}\nC: " + "y" * 300 + "\n",
        "b.vtt": f"NOT VTT\n00:00:01.000 --> 00:00:02.000\n{SECRET}\n",
        "c.srt": f"{SECRET}\n\n1\n00:00:01,000 --> 00:00:02,000\nhi\n",
        "d.csv": f'id,comment\n1,"{SECRET}\n2,{SECRET},extra\n',
        "e.txt": f"C: {SECRET} Caf\u00c3\u00a9\n",
        "f.txt": f"C: {SECRET} caf\u00e9\n".encode("latin-1"),
    }
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    (tmp_path / "g.yaml").write_text(f"speakers:\n  {SECRET}: boss\n")
    (tmp_path / "g.txt").write_text("T: hi\n")
    with caplog.at_level(logging.DEBUG, logger="pipeline"):
        result = ingest_corpus(tmp_path, IngestConfig(max_line_chars=200))
    assert {p.file for p in result.problems} >= {"a.txt", "b.vtt", "c.srt", "d.csv", "e.txt", "f.txt", "g.yaml"}
    assert all(p.code in ERRORS for p in result.problems)
    assert not any("Quillon" in p.error or "Marbury" in p.error for p in result.problems)
    assert "Quillon" not in caplog.text


def test_demo_broken_corpus_end_to_end() -> None:
    cfg = load_corpus_config(DEMO, CFG)
    result = ingest_corpus(DEMO, cfg)
    per_file: dict[str, int] = {}
    for document in result.documents:
        per_file[document.source_path] = per_file.get(document.source_path, 0) + 1
    assert per_file == {"good_feedback.csv": 5, "good_session.txt": 1, "latin1_interview.txt": 1,
                        "malformed_feedback.csv": 8}
    problems = {(p.file, p.code, p.action) for p in result.problems}
    assert problems == {
        ("corrupt_interview.docx", "QA-E013", "quarantined"),
        ("empty_feedback.csv", "QA-E011", "quarantined"),
        ("latin1_interview.txt", "QA-E012", "repaired"),
        ("malformed_feedback.csv", "QA-E015", "row_skipped"),
        ("zip_bomb.docx", "QA-E014", "quarantined"),
    }
    session = next(d for d in result.documents if d.source_path == "good_session.txt")
    assert [t.role for t in session.turns] == ["therapist", "client"] * 3
    interview = next(d for d in result.documents if d.source_path == "latin1_interview.txt")
    assert interview.source_type == "interview" and "café" in interview.turns[1].text
    assert ingest_corpus(DEMO, cfg) == result  # deterministic


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=400), encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_ingest_file_never_raises_for_any_text(text: str, encoding: str) -> None:
    data = text.encode(encoding, errors="replace")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "x.txt").write_bytes(data)
        result = ingest_file(root / "x.txt", root=root, cfg=CFG)
    assert isinstance(result, IngestResult)
    assert result.documents or any(p.action == "quarantined" for p in result.problems)
    for document in result.documents:
        assert document.turns and all(t.text.strip() for t in document.turns)
