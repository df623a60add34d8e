"""Ingest of feedback exports: CSV (row-level problems) and XLSX (values only, dates)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import openpyxl

from pipeline.ingest import IngestConfig, IngestResult, ingest_file

CFG = IngestConfig()
HEADER = "response_id,client_id,session_number,date,clinician,comment\n"
DEMO = Path(__file__).resolve().parents[2] / "corpora" / "demo_broken"


def ingest(root: Path, name: str, content: str, cfg: IngestConfig = CFG) -> IngestResult:
    path = root / name
    path.write_text(content, encoding="utf-8", newline="")
    return ingest_file(path, root=root, cfg=cfg)


def test_ingest_csv_rows_become_documents(tmp_path: Path) -> None:
    content = HEADER + "R1,C7,2,2024-03-05,Clinician Q,Felt heard.\n" + 'R2,C8,3.0,5 March 2024,,"Warm, clear."\n'
    result = ingest(tmp_path, "fb.csv", content)
    assert result.problems == []
    first, second = result.documents
    assert (first.record_key, first.source_type, first.source_format, first.encoding) == (
        "R1", "feedback", "csv", "utf-8")
    assert first.metadata == {"case_id": "C7", "session": 2, "date": "2024-03-05", "clinician": "Clinician Q"}
    assert [(t.speaker_label, t.role, t.text, t.source_line) for t in first.turns] == [
        (None, "client", "Felt heard.", 2)]
    assert first.known_names == ["Clinician Q"]
    assert second.metadata == {"case_id": "C8", "session": 3, "date": "2024-03-05"}
    row = {"response_id": "R2", "client_id": "C8", "session_number": "3.0", "date": "5 March 2024",
           "clinician": None, "comment": "Warm, clear."}
    assert second.source_sha256 == hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()
    assert first.document_id != second.document_id


def test_ingest_csv_malformed_rows_skipped_with_physical_lines(tmp_path: Path) -> None:
    content = (
        HEADER
        + 'R1,C1,1,2024-01-01,Clin A,"A comment\nover two lines"\n'      # lines 2-3
        + "R2,C2,1,2024-01-02,Clin A,too,many,fields\n"                    # line 4: skipped
        + 'R3,C3,1,2024-01-03,Clin A,"never closed\n'                      # line 5: skipped
        + "R4,C4,1,2024-01-04,Clin A,kept after the bad quote\n"           # line 6
        + "R5,C5,1,2024-01-05,Clin A,\n"                                   # line 7: empty comment
        + "R6,C6,1,2024-01-06,Clin A,also kept\n"                          # line 8
        + 'R7,C7,1,2024-01-07,Clin A,"unterminated at the end\n'           # line 9: skipped
    )
    result = ingest(tmp_path, "fb.csv", content)
    assert [(d.record_key, d.turns[0].source_line) for d in result.documents] == [
        ("R1", 2), ("R4", 6), ("R6", 8)]
    assert result.documents[0].turns[0].text == "A comment\nover two lines"
    assert [(p.line, p.code, p.action) for p in result.problems] == [
        (4, "QA-E015", "row_skipped"), (5, "QA-E015", "row_skipped"), (9, "QA-E015", "row_skipped")]
    assert [p.error for p in result.problems] == [
        "row has 8 fields; the header has 6",
        "row has an unterminated or stray quote character",
        "row has an unterminated or stray quote character",
    ]


def test_ingest_demo_malformed_feedback() -> None:
    result = ingest_file(DEMO / "malformed_feedback.csv", root=DEMO, cfg=CFG)
    assert len(result.documents) == 8
    assert [(p.line, p.action) for p in result.problems] == [(6, "row_skipped"), (11, "row_skipped")]


def test_ingest_csv_missing_comment_column_is_quarantined(tmp_path: Path) -> None:
    result = ingest(tmp_path, "fb.csv", "response_id,client_id,score\nR1,C1,4\n")
    assert result.documents == []
    [problem] = result.problems
    assert (problem.code, problem.action, problem.line) == ("QA-E013", "quarantined", 1)
    assert problem.error.startswith("no comment column; expected one of ['comment', 'comments'")


def test_ingest_csv_no_id_semicolons_duplicates_and_extra_columns(tmp_path: Path) -> None:
    content = "Client ID;Feedback;Site\nC1;Good;North\n\nC2;Fine;\n"
    result = ingest(tmp_path, "fb.csv", content)
    assert [(d.record_key, d.metadata) for d in result.documents] == [
        ("row-2", {"case_id": "C1", "Site": "North"}), ("row-4", {"case_id": "C2"})]
    dup = ingest(tmp_path, "dup.csv", "id,comment\n7,one\n7,two\n")
    assert [d.record_key for d in dup.documents] == ["7"]
    assert [(p.line, p.action) for p in dup.problems] == [(3, "row_skipped")]


def test_ingest_csv_only_empty_comments_is_quarantined(tmp_path: Path) -> None:
    result = ingest(tmp_path, "fb.csv", "id,comment\n1,\n2,  \n")
    assert [(p.code, p.action) for p in result.problems] == [("QA-E011", "quarantined")]


def write_xlsx(path: Path, rows: list[list[object]], sheet: str = "Sheet") -> Path:
    workbook = openpyxl.Workbook()
    worksheet = workbook.active
    worksheet.title = sheet
    for row in rows:
        worksheet.append(row)
    workbook.save(path)
    return path


def test_ingest_xlsx_dates_and_formulas_not_evaluated(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "fb.xlsx", [
        ["Response ID", "Client", "Session", "Submitted", "Therapist", "Comment", "Score"],
        ["A1", "C1", 2, dt.datetime(2024, 3, 5, 10, 30), "Clinician X", "Felt heard.", "=1+1"],
        ["A2", "C2", 3, dt.date(2024, 3, 6), "Clinician Y", '=HYPERLINK("http://example.invalid","x")', 5],
        [None] * 7,
        ["A3", 104, 4.0, "2024-03-07", "Clinician Y", "Third comment", "=SUM(G2:G3)"],
    ])
    result = ingest_file(path, root=tmp_path, cfg=CFG)
    assert result.problems == []
    assert [(d.record_key, d.turns[0].text, d.turns[0].source_line) for d in result.documents] == [
        ("A1", "Felt heard.", 2), ("A3", "Third comment", 5)]
    assert result.documents[0].metadata == {
        "case_id": "C1", "session": 2, "date": "2024-03-05", "clinician": "Clinician X"}
    assert result.documents[1].metadata == {
        "case_id": "104", "session": 4, "date": "2024-03-07", "clinician": "Clinician Y"}
    assert all(d.encoding == "xlsx" and d.source_format == "xlsx" for d in result.documents)


def test_ingest_xlsx_sheet_choice_and_missing_column(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "fb.xlsx", [["id", "score"], ["1", 3]])
    [problem] = ingest_file(path, root=tmp_path, cfg=CFG).problems
    assert (problem.code, problem.action, problem.line) == ("QA-E013", "quarantined", 1)
    [problem] = ingest_file(path, root=tmp_path, cfg=IngestConfig(feedback_sheet="Responses")).problems
    assert problem.code == "QA-E013" and "Responses" in problem.error


def test_ingest_xlsx_corrupt(tmp_path: Path) -> None:
    (tmp_path / "bad.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    [problem] = ingest_file(tmp_path / "bad.xlsx", root=tmp_path, cfg=CFG).problems
    assert (problem.code, problem.action) == ("QA-E013", "quarantined")
