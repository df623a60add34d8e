"""Safe artefacts: model files load only with reviewed types, spreadsheets hold no live formulas, exported XML
is well-formed whatever the text, and names from the input never become paths outside the output folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from lxml import etree

from pipeline.errors import CoderError
from pipeline.export.refi_qda import write_qdpx_tables, write_xlsx_tables
from pipeline.ingest import IngestConfig, discover, ingest_corpus
from pipeline.io import safe_cell, write_csv
from pipeline.schema import ASSIGNMENT, DOCUMENT, SEGMENT, coerce_frame

FORMULAS = ["=1+1", '=HYPERLINK("http://x","click")', "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "\n=1",
            "=cmd|' /C calc'!A0"]
HOSTILE_XML = 'a <b> & "c" \'d\' ]]> \x00\x01\x0b\x0c\x1f\ufffe\ud800 e \U0001F600 \u2028 f'


# ------------------------------------------------------------------------------------------ skops models

def test_skops_model_with_a_function_reference_is_refused(tmp_path: Path, codebook) -> None:
    """A model file that would call os.system on load is refused with a typed error before loading."""
    import skops.io as sio

    from pipeline.coders.classifier import CARD_FILE, MODEL_FILE, ClassifierCoder

    segments = pd.DataFrame([{"segment_id": f"s{i}", "document_id": "d", "speaker": "client", "turn_index": i,
                              "start_char": 0, "end_char": 4, "source_line": 1, "text": text}
                             for i, text in enumerate(["I felt heard", "the wait was long"])])
    folder = ClassifierCoder(cv=2, calibration_cv=2).fit(segments, codebook=codebook).save(tmp_path / "model")
    blob = sio.dumps({"format": 1, "payload": os.system})
    (folder / MODEL_FILE).write_bytes(blob)
    card = json.loads((folder / CARD_FILE).read_text())
    card["model_file"]["sha256"] = hashlib.sha256(blob).hexdigest()
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(CoderError, match="not trusted") as err:
        ClassifierCoder.load(folder, codebook=codebook)
    assert "posix.system" in str(err.value) or "os.system" in str(err.value)


# ------------------------------------------------------------------------------------------ formula cells

@pytest.mark.parametrize("payload", FORMULAS)
def test_safe_cell_neutralises_every_formula_prefix(payload: str) -> None:
    assert safe_cell(payload) == "'" + payload
    assert safe_cell("plain " + payload) == "plain " + payload
    assert safe_cell(3) == 3


def test_csv_export_holds_no_cell_starting_a_formula(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", ["id", "text"], [[str(i), p] for i, p in enumerate(FORMULAS)])
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    assert [r[1] for r in rows] == ["'" + p.replace("\r", "\n") for p in FORMULAS]  # a lone CR ended the row
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r", "\n")) for row in rows for cell in row)
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def _frames(codebook, texts: list[str], *, source_path: str = "interviews/C01.txt", case_id: str = "C01",
            record_key: str = "") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    docs, segs, assigns = [], [], []
    code = codebook.code_ids[0]
    for i, text in enumerate(texts):
        doc_id = f"doc{i}"
        docs.append({"document_id": doc_id, "corpus_id": "c", "source_path": f"{source_path}{i}",
                     "record_key": record_key, "source_sha256": "0" * 64, "source_type": "interview",
                     "source_format": "txt", "case_id": case_id, "session": 1, "collected_at": None,
                     "clinician": None, "encoding": "utf-8", "metadata": "{}", "text": text})
        seg_id = f"{doc_id}-0-{len(text)}"
        segs.append({"segment_id": seg_id, "document_id": doc_id, "speaker": "client", "turn_index": 0,
                     "start_char": 0, "end_char": len(text), "source_line": 1, "text": text})
        assigns.append({"segment_id": seg_id, "code_id": code, "coder": "coder.rules.v1", "score": 0.9,
                        "label": True, "evidence": text[:20], "run_id": "run0001"})
    return tuple(coerce_frame(pd.DataFrame(rows, columns=table.column_names), table)
                 for rows, table in ((docs, DOCUMENT), (segs, SEGMENT), (assigns, ASSIGNMENT)))


def _manifest(codebook) -> dict:
    return {"run_id": "run0001", "corpus_id": "c", "pipeline_version": "0.1.0", "config_sha256": "c" * 64,
            "started_at": "2026-01-01T00:00:00+00:00",
            "codebook": {"id": codebook.id, "version": codebook.version, "sha256": codebook.sha256(), "path": ""},
            "config": {"coders": [{"use": "coder.rules.v1", "params": {}}]}}


def test_xlsx_export_writes_formulas_as_neutralised_strings(tmp_path: Path, codebook) -> None:
    import openpyxl

    texts = FORMULAS
    docs, segs, assigns = _frames(codebook, texts, case_id="=CASE()")
    path = write_xlsx_tables(docs, segs, assigns, tmp_path / "x.xlsx", codebook=codebook,
                             manifest=_manifest(codebook))
    book = openpyxl.load_workbook(path)  # not read-only: data_type is visible per cell
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row if c.value is not None]
    assert cells and all(c.data_type != "f" for c in cells)
    strings = [c.value.replace("\r", "") for c in cells if isinstance(c.value, str)]
    assert all(not s.startswith(("=", "+", "-", "@", "\t", "\r", "\n")) for s in strings)
    assert {"'" + t for t in texts if "\r" not in t} <= set(strings) and "'=CASE()" in strings
    with zipfile.ZipFile(path) as archive:
        sheets = b"".join(archive.read(n) for n in archive.namelist() if n.startswith("xl/worksheets/"))
    assert b"<f>" not in sheets and b"<f " not in sheets


# ------------------------------------------------------------------------------------------ XML escaping

def test_qdpx_xml_is_well_formed_for_hostile_text_ids_and_code_names(tmp_path: Path, codebook) -> None:
    first = codebook.codes[0].model_copy(update={"name": HOSTILE_XML.replace("\ud800", "")})
    book = codebook.model_copy(update={"codes": [first, *codebook.codes[1:]]})
    texts = [HOSTILE_XML.replace("\ud800", ""), "plain </Project> <!-- x --> &amp; text"]  # Arrow refuses
    docs, segs, assigns = _frames(book, texts, source_path='<a&b>"q"/x', case_id='C<1>&"2"\x01',
                                  record_key="]]>")
    path = write_qdpx_tables(docs, segs, assigns, tmp_path / "p.qdpx", codebook=book, manifest=_manifest(book))
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        qde = archive.read("project.qde")
        sources = {n: archive.read(n).decode("utf-8") for n in names if n.startswith("sources/")}
    root = etree.fromstring(qde, etree.XMLParser(resolve_entities=False, no_network=True))  # raises if malformed
    ns = {"q": "urn:QDA-XML:project:1.0"}
    code_names = [c.get("name") for c in root.iterfind(".//q:Code", ns)]
    assert any(n and n.startswith('a <b> & "c" \'d\' ]]> ') for n in code_names)
    assert not any(ch in "".join(filter(None, code_names)) for ch in "\x00\x01\x0b\x1f\ufffe")
    assert texts[1] in sources.values()  # source text is written exactly, outside the XML
    for sel in root.iterfind(".//q:PlainTextSelection", ns):
        assert int(sel.get("startPosition")) < int(sel.get("endPosition"))


# ------------------------------------------------------------------------------------------ paths

@pytest.mark.parametrize("source_path", ["../../x.txt", "/etc/passwd", "a/../../b.txt", "..\\..\\win.txt",
                                         "C:\\evil.txt", "x\x00y.txt"])
def test_exported_member_names_never_come_from_input_paths(tmp_path: Path, codebook, source_path: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    docs, segs, assigns = _frames(codebook, ["I felt heard."], source_path=source_path, case_id="../../C1",
                                  record_key="../r")
    path = write_qdpx_tables(docs, segs, assigns, out / "p.qdpx", codebook=codebook, manifest=_manifest(codebook))
    write_xlsx_tables(docs, segs, assigns, out / "p.xlsx", codebook=codebook, manifest=_manifest(codebook))
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            assert name == "project.qde" or (name.startswith("sources/") and "/" not in name[8:]
                                               and ".." not in name and "\\" not in name), name
        qde = etree.fromstring(archive.read("project.qde"))
    names = [s.get("name") for s in qde.iter("{urn:QDA-XML:project:1.0}TextSource")]
    assert names and all("/" not in n and "\\" not in n and "." not in n for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written next to the output folder
    assert sorted(p.name for p in out.iterdir()) == ["p.qdpx", "p.xlsx"]


def test_symlinks_pointing_outside_the_corpus_are_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("Client: Quillon Marbury lives at 7 Coppice Lane.\n")
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "ok.txt").write_text("Client: fine.\n")
    (corpus / "link.txt").symlink_to(secret)
    (corpus / "sub" / "up").symlink_to(tmp_path / "outside", target_is_directory=True)
    (corpus / "rel.txt").symlink_to(Path("..") / "outside" / "secret.txt")
    (corpus / "inside.txt").symlink_to(corpus / "ok.txt")
    cfg = IngestConfig()
    found = [p.relative_to(corpus).as_posix() for p in discover(corpus, cfg)]
    assert found == ["inside.txt", "ok.txt"]
    result = ingest_corpus(corpus, cfg)
    assert all("Marbury" not in t.text for d in result.documents for t in d.turns)
    assert {d.source_path for d in result.documents} == {"inside.txt", "ok.txt"}


def test_hostile_zip_member_names_in_inputs_are_refused(tmp_path: Path) -> None:
    """``../../x.txt`` in a docx/xlsx: the archive is quarantined unopened, nothing is written anywhere."""
    from pipeline.ingest import ingest_file

    for suffix in ("docx", "xlsx"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("../../x.txt", "owned")
        (tmp_path / f"evil.{suffix}").write_bytes(buffer.getvalue())
        result = ingest_file(tmp_path / f"evil.{suffix}", root=tmp_path, cfg=IngestConfig())
        assert result.documents == [] and [p.code for p in result.problems] == ["QA-E013"]
    assert not (tmp_path.parent.parent / "x.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.docx", "evil.xlsx"]
