"""Ingest of plain-text and Word transcripts: layouts, roles, metadata, encodings."""

from __future__ import annotations

from pathlib import Path

import docx
import pytest

from pipeline.errors import ConfigError
from pipeline.ingest import IngestConfig, IngestResult, discover, ingest_file, load_corpus_config

CFG = IngestConfig()


def write(root: Path, name: str, content: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def ingest(root: Path, name: str, content: str | bytes, cfg: IngestConfig = CFG) -> IngestResult:
    return ingest_file(write(root, name, content), root=root, cfg=cfg)


def turns_of(result: IngestResult) -> list[tuple[str | None, str, str, int | None]]:
    assert len(result.documents) == 1, result.problems
    return [(t.speaker_label, t.role, t.text, t.source_line) for t in result.documents[0].turns]


def test_ingest_txt_t_c_layout(tmp_path: Path) -> None:
    result = ingest(tmp_path, "s.txt", "T: How was the week?\nC: Better than I expected.\n\nT: Good to hear.\n")
    assert turns_of(result) == [
        ("T", "therapist", "How was the week?", 1),
        ("C", "client", "Better than I expected.", 2),
        ("T", "therapist", "Good to hear.", 4),
    ]
    doc = result.documents[0]
    assert (doc.source_type, doc.source_format, doc.encoding, doc.record_key) == ("session", "txt", "utf-8", "")
    assert doc.known_names == [] and result.problems == []


def test_ingest_txt_therapist_client_with_continuation_lines(tmp_path: Path) -> None:
    text = "Therapist: Where would you like to start?\nClient: With work.\nIt has been a lot.\n\n  Mostly deadlines.\n"
    assert turns_of(ingest(tmp_path, "s.txt", text)) == [
        ("Therapist", "therapist", "Where would you like to start?", 1),
        ("Client", "client", "With work.\nIt has been a lot.\nMostly deadlines.", 2),
    ]


def test_ingest_txt_interviewer_participant_is_interview(tmp_path: Path) -> None:
    result = ingest(tmp_path, "i.txt", "Interviewer: How did it feel?\nParticipant: Safe, mostly.\n")
    assert [t[:2] for t in turns_of(result)] == [("Interviewer", "interviewer"), ("Participant", "client")]
    assert result.documents[0].source_type == "interview"


def test_ingest_txt_rev_style_timestamps(tmp_path: Path) -> None:
    text = (
        "Speaker 1 (00:00:05):\nThanks for coming in.\n\nSpeaker 2 (01:02):\nHappy to be here.\n"
        "[00:01:09] Client: Me too.\n10:30 Meeting: not a speaker, just a note.\n"
    )
    result = ingest(tmp_path, "rev.txt", text)
    doc = result.documents[0]
    assert turns_of(result) == [
        ("Speaker 1", "unknown", "Thanks for coming in.", 1),
        ("Speaker 2", "unknown", "Happy to be here.", 4),
        ("Client", "client", "Me too.\n10:30 Meeting: not a speaker, just a note.", 6),
    ]
    assert [t.start_time for t in doc.turns] == ["00:00:05.000", "00:01:02.000", "00:01:09.000"]
    assert doc.known_names == []  # "Speaker N" is not a name


def test_ingest_txt_without_labels_is_one_turn(tmp_path: Path) -> None:
    text = "I was not sure what to expect.\n\nBut it went well.\n"
    assert turns_of(ingest(tmp_path, "notes.txt", text)) == [
        (None, "unknown", "I was not sure what to expect.\n\nBut it went well.", 1)
    ]
    cfg = IngestConfig(source_types={"fb/**": "feedback"})
    result = ingest(tmp_path, "fb/a.txt", text, cfg)
    assert result.documents[0].source_type == "feedback"
    assert result.documents[0].turns[0].role == "client"


def test_ingest_txt_colon_in_sentence_does_not_start_a_turn(tmp_path: Path) -> None:
    text = (
        "Therapist: What stayed with you?\n"
        "Client: Here's the thing: I finally said no.\n"
        "Note: she smiled when she said it.\n"
        "Therapist: That matters.\n"
    )
    assert turns_of(ingest(tmp_path, "s.txt", text)) == [
        ("Therapist", "therapist", "What stayed with you?", 1),
        ("Client", "client", "Here's the thing: I finally said no.\nNote: she smiled when she said it.", 2),
        ("Therapist", "therapist", "That matters.", 4),
    ]
    plain = "Here's the thing: it helped.\nNote: this was written later.\n"
    assert turns_of(ingest(tmp_path, "p.txt", plain))[0][:2] == (None, "unknown")


def test_ingest_txt_repeated_names_are_speakers(tmp_path: Path) -> None:
    text = "Alex Moor: Shall we begin?\nSam: Sure.\nAlex Moor: How are you?\nSam: Tired.\n"
    result = ingest(tmp_path, "s.txt", text)
    assert [t[:2] for t in turns_of(result)] == [("Alex Moor", "unknown"), ("Sam", "unknown")] * 2
    assert result.documents[0].known_names == ["Alex Moor", "Sam"]


def test_ingest_txt_role_labels_with_names_and_otter_layout(tmp_path: Path) -> None:
    text = "Therapist (Jane Roe): Hello.\nDr. Lee: Welcome.\nClient 2: Hi.\n"
    result = ingest(tmp_path, "s.txt", text)
    assert [t[:2] for t in turns_of(result)] == [
        ("Therapist (Jane Roe)", "therapist"), ("Dr. Lee", "therapist"), ("Client 2", "client")]
    assert result.documents[0].known_names == ["Therapist (Jane Roe)", "Jane Roe", "Dr. Lee", "Lee"]
    otter = "Jane Roe  0:03\nI felt heard in that session.\n\nSpeaker 2  0:15\nGood, tell me more.\n"
    doc = ingest(tmp_path, "o.txt", otter).documents[0]
    assert [(t.speaker_label, t.text, t.source_line, t.start_time) for t in doc.turns] == [
        ("Jane Roe", "I felt heard in that session.", 1, "00:00:03.000"),
        ("Speaker 2", "Good, tell me more.", 4, "00:00:15.000"),
    ]


def test_ingest_sidecar_metadata_and_roles(tmp_path: Path) -> None:
    write(tmp_path, "K12_s4.yaml", (
        "case_id: K12\nsession: '4'\ndate: 2024-03-05\nclinician: Dr Lane\nsite: north\n"
        "speakers:\n  Alex Moor: therapist\n  Sam: client\n"
    ))
    result = ingest(tmp_path, "K12_s4.txt", "Alex Moor: Welcome.\nSam: Thanks.\n")
    doc = result.documents[0]
    assert [(t.speaker_label, t.role) for t in doc.turns] == [("Alex Moor", "therapist"), ("Sam", "client")]
    assert doc.metadata == {"case_id": "K12", "session": 4, "date": "2024-03-05", "clinician": "Dr Lane",
                            "site": "north"}
    assert set(doc.known_names) == {"Dr Lane", "Alex Moor", "Sam"}


def test_ingest_sidecar_source_type_and_yml(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", "source_type: interview\n")
    assert ingest(tmp_path, "a.txt", "T: Hi.\nC: Hello.\n").documents[0].source_type == "interview"


def test_ingest_sidecar_errors_quarantine_with_line(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "case_id: A1\nspeakers:\n  Alex: therapist\n  Sam: boss\n")
    result = ingest(tmp_path, "a.txt", "Alex: Hi.\nSam: Hello.\n")
    assert result.documents == []
    [problem] = result.problems
    assert (problem.file, problem.line, problem.code, problem.action) == ("a.yaml", 4, "QA-E017", "quarantined")
    assert "Sam" not in problem.error and "a.txt" in problem.error
    write(tmp_path, "b.yaml", "case_id: B1\nsession: [1\n")
    [problem] = ingest(tmp_path, "b.txt", "T: Hi.\n").problems
    assert (problem.file, problem.code) == ("b.yaml", "QA-E017") and problem.line is not None


def test_ingest_filename_metadata(tmp_path: Path) -> None:
    doc = ingest(tmp_path, "P07_session3_notes.txt", "T: Hi.\n").documents[0]
    assert doc.metadata == {"case_id": "P07", "session": 3}
    cfg = IngestConfig(filename_pattern=r"^(?P<case_id>\w+?)_(?P<date>\d{4}-\d{2}-\d{2})")
    assert ingest(tmp_path, "X9_2024-01-31.txt", "T: Hi.\n", cfg).documents[0].metadata == {
        "case_id": "X9", "date": "2024-01-31"}


def test_ingest_bom_and_crlf(tmp_path: Path) -> None:
    result = ingest(tmp_path, "s.txt", "\ufeffT: Hello.\r\nC: Hi.\r\nStill me.\rT: Ok.\r\n".encode())
    assert turns_of(result) == [
        ("T", "therapist", "Hello.", 1), ("C", "client", "Hi.\nStill me.", 2), ("T", "therapist", "Ok.", 4)]
    assert result.documents[0].encoding == "utf-8-sig" and result.problems == []


def test_ingest_latin1_is_repaired_and_kept(tmp_path: Path) -> None:
    text = (
        "Interviewer: How was it?\nParticipant: We met at the café.\n"
        "Interviewer: And then?\nParticipant: Très bien.\n"
    )
    result = ingest(tmp_path, "i.txt", text.encode("latin-1"))
    assert result.documents[0].turns[1].text == "We met at the café."
    assert result.documents[0].turns[3].text == "Très bien."
    assert result.documents[0].encoding == "cp1252"
    [problem] = result.problems
    assert (problem.code, problem.action, problem.line) == ("QA-E012", "repaired", 2)
    assert problem.error == "not valid UTF-8 (first bad byte at line 2); decoded as cp1252"


def test_ingest_mojibake_is_fixed(tmp_path: Path) -> None:
    result = ingest(tmp_path, "s.txt", "T: How was it?\nC: CafÃ© was warm â€” felt safe.\n")
    assert result.documents[0].turns[1].text == "Café was warm — felt safe."
    [problem] = result.problems
    assert (problem.code, problem.action, problem.line) == ("QA-E012", "repaired", 2)
    assert "Caf" not in problem.error


def test_ingest_nfc_normalisation(tmp_path: Path) -> None:
    doc = ingest(tmp_path, "s.txt", "C: cafe\u0301\n").documents[0]
    assert doc.turns[0].text == "caf\u00e9"


@pytest.mark.parametrize("content", [b"", b"  \n\n\t", "Therapist:\nClient:\n"])
def test_ingest_empty_txt_is_quarantined(tmp_path: Path, content: str | bytes) -> None:
    result = ingest(tmp_path, "e.txt", content)
    assert result.documents == []
    assert [(p.code, p.action) for p in result.problems] == [("QA-E011", "quarantined")]


def make_docx(path: Path) -> Path:
    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = "Header with a name that must stay unread"
    paragraph = document.add_paragraph()
    paragraph.add_run("Interviewer:").bold = True
    paragraph.add_run(" Thanks for talking with me.")
    document.add_paragraph("Participant: Glad to.")
    document.add_paragraph("It took a while to say yes.")
    table = document.add_table(rows=2, cols=3)
    for row, (time, who, said) in zip(table.rows, [("00:01:10", "Interviewer", "Why?"),
                                                   ("00:01:15", "Participant", "Trust, I think.")], strict=True):
        row.cells[0].text, row.cells[1].text, row.cells[2].text = time, who, said
    document.add_paragraph("")
    document.save(path)
    return path


def test_ingest_docx_paragraphs_and_tables(tmp_path: Path) -> None:
    result = ingest_file(make_docx(tmp_path / "P08_interview.docx"), root=tmp_path, cfg=CFG)
    assert turns_of(result) == [
        ("Interviewer", "interviewer", "Thanks for talking with me.", 1),
        ("Participant", "client", "Glad to.\nIt took a while to say yes.", 2),
        ("Interviewer", "interviewer", "Why?", 4),
        ("Participant", "client", "Trust, I think.", 5),
    ]
    doc = result.documents[0]
    assert (doc.source_type, doc.encoding, doc.metadata) == ("interview", "docx", {"case_id": "P08"})
    assert all("Header" not in t.text for t in doc.turns)


def test_ingest_docx_without_text_is_empty(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("   ")
    document.save(tmp_path / "blank.docx")
    result = ingest_file(tmp_path / "blank.docx", root=tmp_path, cfg=CFG)
    assert [(p.code, p.action) for p in result.problems] == [("QA-E011", "quarantined")]


def test_ingest_corrupt_docx_from_demo() -> None:
    root = Path(__file__).resolve().parents[2] / "corpora" / "demo_broken"
    result = ingest_file(root / "corrupt_interview.docx", root=root, cfg=CFG)
    assert result.documents == []
    [problem] = result.problems
    assert (problem.file, problem.code, problem.action) == ("corrupt_interview.docx", "QA-E013", "quarantined")
    assert "zip" in problem.error


def test_document_id_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    first = ingest(tmp_path, "s.txt", "T: Hi.\n").documents[0]
    again = ingest(tmp_path, "s.txt", "T: Hi.\n").documents[0]
    changed = ingest(tmp_path, "s.txt", "T: Hello.\n").documents[0]
    assert first.document_id == again.document_id != changed.document_id
    assert len(first.document_id) == 20


def test_discover_globs_hidden_and_links(tmp_path: Path) -> None:
    for name in ["a.txt", "sub/b.vtt", "sub/b.yaml", "README.md", ".hidden.txt", ".git/c.txt", "sub/~$lock.docx"]:
        write(tmp_path, name, "T: Hi.\n")
    outside = tmp_path.parent / f"{tmp_path.name}_outside.txt"
    outside.write_text("T: secret\n")
    (tmp_path / "link_out.txt").symlink_to(outside)
    (tmp_path / "link_in.txt").symlink_to(tmp_path / "a.txt")
    rel = [p.relative_to(tmp_path).as_posix() for p in discover(tmp_path, CFG)]
    assert rel == ["a.txt", "link_in.txt", "sub/b.vtt"]
    cfg = IngestConfig(include=["sub/**"], exclude=["**/*.yaml"])
    assert [p.name for p in discover(tmp_path, cfg)] == ["b.vtt"]


def test_load_corpus_config_overrides_and_errors(tmp_path: Path) -> None:
    assert load_corpus_config(tmp_path, CFG) is CFG
    write(tmp_path, "corpus.yaml", "source_types:\n  'interviews/**': interview\nmax_file_mb: 5\n")
    cfg = load_corpus_config(tmp_path, IngestConfig(max_line_chars=10))
    assert (cfg.source_types, cfg.max_file_mb, cfg.max_line_chars) == ({"interviews/**": "interview"}, 5, 10)
    write(tmp_path, "corpus.yaml", "max_file_mb: 5\nsource_types:\n  'a/**': podcast\n")
    with pytest.raises(ConfigError) as err:
        load_corpus_config(tmp_path, CFG)
    assert (err.value.code, err.value.line, err.value.key) == ("QA-E002", 3, "source_types.a/**")
    write(tmp_path, "corpus.yaml", "max_file_mb: 5\nexclude: [a\n")
    with pytest.raises(ConfigError) as err:
        load_corpus_config(tmp_path, CFG)
    assert err.value.code == "QA-E001" and err.value.line is not None
    assert str(err.value).startswith("[QA-E001] ") and "corpus.yaml" in str(err.value)
