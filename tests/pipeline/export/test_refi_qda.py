"""REFI-QDA export: XSD validity, references, offsets, provenance, filters, determinism, xlsx safety."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from pipeline.errors import ExportError
from pipeline.export import export_run, write_codebook_qdc, write_nvivo_xlsx, write_project_qdpx
from pipeline.export.refi_qda import EXPORT_FILES, PROJECT_NAMESPACE, guid, write_qdpx_tables

NS = {"q": "urn:QDA-XML:project:1.0"}
CB = {"c": "urn:QDA-XML:codebook:1.0"}


def qde_tree(path: Path) -> etree._Element:
    with zipfile.ZipFile(path) as archive:
        return etree.fromstring(archive.read("project.qde"))


def source_texts(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as archive:
        return {n: archive.read(n).decode("utf-8") for n in archive.namelist() if n.startswith("sources/")}


def test_refi_qda_guid_is_uuid5_of_the_project_namespace():
    import uuid

    assert guid("code:WA.VAL.VALIDATION") == str(uuid.uuid5(PROJECT_NAMESPACE, "code:WA.VAL.VALIDATION"))
    assert guid("code:WA.VAL.VALIDATION") == guid("code:WA.VAL.VALIDATION") != guid("code:WA.VAL")


def test_refi_qda_qdc_validates_and_nests_codes_under_parents(tmp_path, codebook, codebook_schema):
    path = write_codebook_qdc(codebook, tmp_path / "codebook.qdc")
    tree = etree.parse(str(path))
    assert codebook_schema.validate(tree), codebook_schema.error_log
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    top = tree.findall("c:Codes/c:Code", CB)
    assert [c.get("name") for c in top] == [p.name for p in codebook.parents]
    assert {c.get("isCodable") for c in top} == {"false"}
    validation = tree.find(f"c:Codes/c:Code/c:Code[@guid='{guid('code:WA.VAL.VALIDATION')}']", CB)
    assert validation is not None and validation.get("isCodable") == "true"
    assert validation.get("color") == codebook.code("WA.VAL.VALIDATION").colour
    description = validation.find("c:Description", CB).text
    assert description.startswith("[WA.VAL.VALIDATION] ")
    assert "Use when:" in description and "Do not use when:" in description
    children = tree.findall("c:Codes/c:Code/c:Code", CB)
    assert len(children) == len(codebook.codes)


def test_refi_qda_qdpx_validates_and_every_reference_resolves(mini_run, codebook, project_schema, tmp_path):
    path = write_project_qdpx(mini_run, tmp_path / "p.qdpx", codebook=codebook)
    root = qde_tree(path)
    assert project_schema.validate(root), project_schema.error_log
    guids = [el.get("guid") for el in root.iter() if el.get("guid")]
    assert len(guids) == len(set(guids))
    targets = {el.get("targetGUID") for el in root.iter() if el.get("targetGUID")}
    assert targets <= set(guids)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert names[0] == "project.qde" and names[1:] == sorted(names[1:])
        assert all(n.startswith("sources/") and n.endswith(".txt") for n in names[1:])
        for info in archive.infolist():
            assert info.date_time == (2026, 1, 2, 3, 4, 4)  # started_at; zip times have 2 s resolution
            assert not archive.read(info).startswith(b"\xef\xbb\xbf")
    for el in root.iter():
        for attr in ("plainTextPath", "richTextPath", "basePath"):
            value = el.get(attr)
            assert value is None or (attr == "plainTextPath" and value.startswith("internal://"))
            if value:
                assert f"sources/{value.removeprefix('internal://')}" in names
    assert str(tmp_path) not in etree.tostring(root, encoding="unicode")


def test_refi_qda_exports_validate_with_xmlschema_too(mini_run, codebook, tmp_path):
    xmlschema = pytest.importorskip("xmlschema", reason="xmlschema (dev extra) is not installed")
    xsd = Path(__file__).parent / "xsd"
    path = write_project_qdpx(mini_run, tmp_path / "p.qdpx", codebook=codebook)
    with zipfile.ZipFile(path) as archive:
        xmlschema.XMLSchema(str(xsd / "Project-mrt2019.xsd")).validate(archive.read("project.qde").decode())
    qdc = write_codebook_qdc(codebook, tmp_path / "c.qdc")
    xmlschema.XMLSchema(str(xsd / "Codebook-mrt2019.xsd")).validate(str(qdc))


def test_refi_qda_runs_without_codings_or_documents_still_validate(mini, codebook, project_schema, tmp_path):
    none = mini.assignments.iloc[0:0]
    path = write_qdpx_tables(mini.documents, mini.segments, none, tmp_path / "a.qdpx", codebook=codebook,
                             manifest=mini.manifest)
    assert project_schema.validate(qde_tree(path)), project_schema.error_log
    path = write_qdpx_tables(mini.documents.iloc[0:0], mini.segments.iloc[0:0], none, tmp_path / "b.qdpx",
                             codebook=codebook, manifest=mini.manifest)
    assert project_schema.validate(qde_tree(path)), project_schema.error_log


def test_refi_qda_selections_reslice_to_segment_texts(mini_run, mini, codebook, tmp_path):
    path = write_project_qdpx(mini_run, tmp_path / "p.qdpx", codebook=codebook)
    root, texts = qde_tree(path), source_texts(path)
    segments = mini.segments.set_index("segment_id")
    documents = mini.documents.set_index("document_id")
    seen = set()
    for source in root.iterfind("q:Sources/q:TextSource", NS):
        text = texts[f"sources/{source.get('plainTextPath').removeprefix('internal://')}"]
        doc_id = next(d for d in documents.index if guid(f"source:{d}") == source.get("guid"))
        assert text == documents.loc[doc_id, "text"]
        for sel in source.iterfind("q:PlainTextSelection", NS):
            seg_id = next(s for s in segments.index if guid(f"selection:{s}") == sel.get("guid"))
            start, end = int(sel.get("startPosition")), int(sel.get("endPosition"))
            assert text[start:end] == segments.loc[seg_id, "text"]
            seen.add(seg_id)
    # label=False rows are not exported; every labelled segment is.
    labelled = set(mini.assignments.loc[mini.assignments["label"], "segment_id"])
    assert seen == labelled


def test_refi_qda_qdpx_carries_users_cases_notes_and_review_set(mini_run, mini, codebook, tmp_path):
    path = write_project_qdpx(mini_run, tmp_path / "p.qdpx", codebook=codebook, review_threshold=0.5)
    root, texts = qde_tree(path), source_texts(path)
    users = {u.get("guid"): u.get("name") for u in root.iterfind("q:Users/q:User", NS)}
    assert users[guid("user:coder.rules.v1")] == "coder.rules.v1 (codebook working_alliance 1.0.0)"
    assert users[guid("user:coder.similarity.v1")] == ("coder.similarity.v1 (model minilm-l6; "
                                                      "codebook working_alliance 1.0.0)")
    seg = mini.segment_ids[1]
    sel = root.find(f".//q:PlainTextSelection[@guid='{guid(f'selection:{seg}')}']", NS)
    codings = sel.findall("q:Coding", NS)
    assert [users[c.get("creatingUser")].split()[0] for c in codings] == ["coder.rules.v1", "coder.similarity.v1"]
    assert {c.find("q:CodeRef", NS).get("targetGUID") for c in codings} == {guid("code:WA.VAL.VALIDATION")}
    assert sel.get("name") == "client turn 1" and sel.get("creationDateTime") == "2026-01-02T03:04:05Z"
    note = root.find(f"q:Notes/q:Note[@guid='{guid(f'note:selection:{seg}')}']/q:PlainTextContent", NS).text
    assert "score 0.90; evidence: felt_heard | felt heard" in note and "score 0.45" in note and "NEEDS REVIEW" in note
    cases = {c.get("name"): c for c in root.iterfind("q:Cases/q:Case", NS)}
    assert sorted(cases) == ["C01", "C02"]
    assert {r.get("targetGUID") for r in cases["C01"].iterfind("q:SourceRef", NS)} == {
        guid("source:docA"), guid("source:docB")}
    variables = {v.get("guid"): v.get("name") for v in root.iterfind("q:Variables/q:Variable", NS)}
    values = {variables[v.find("q:VariableRef", NS).get("targetGUID")]: v[1].text
              for v in cases["C01"].iterfind("q:VariableValue", NS)}
    assert values == {"Documents": "2", "Sessions": "1; 2", "Dates": "2026-01 to 2026-02",
                      "Clinicians": "[THERAPIST_1]", "Source types": "feedback; interview"}
    source_a = root.find(f"q:Sources/q:TextSource[@guid='{guid('source:docA')}']", NS)
    assert source_a.get("name") == "interviews_C01_s1"
    assert {variables[v.find("q:VariableRef", NS).get("targetGUID")]: v[1].text
            for v in source_a.iterfind("q:VariableValue", NS)} == {
        "Session": "1", "Date": "2026-01", "Clinician": "[THERAPIST_1]", "Source type": "interview"}
    review = root.find("q:Sets/q:Set", NS)
    assert review.get("name") == "Needs review (score < 0.5)"
    assert {m.get("targetGUID") for m in review.iterfind("q:MemberNote", NS)} == {
        guid(f"note:selection:{mini.segment_ids[1]}"), guid(f"note:selection:{mini.segment_ids[4]}")}
    assert {m.get("targetGUID") for m in review.iterfind("q:MemberSource", NS)} == {
        guid("source:docA"), guid("source:docB")}
    memo_ref = root.find("q:NoteRef", NS).get("targetGUID")
    memo = texts[f"sources/{memo_ref}.txt"]
    for fact in ("run0001", "c" * 64, "working_alliance 1.0.0", "coder.rules.v1 (5 codings)",
                 "coder.similarity.v1 (1 codings)", "outside the BMP"):
        assert fact in memo
    for name in [el.get("name") or "" for el in root.iter()]:  # names never hold participant text
        assert "felt heard" not in name and "HYPERLINK" not in name


def test_refi_qda_filters_by_code_and_score(mini_run, codebook, tmp_path):
    path = write_project_qdpx(mini_run, tmp_path / "p.qdpx", codebook=codebook, min_score=0.5,
                              codes=["WA.VAL.VALIDATION"], review_threshold=0.8)
    root = qde_tree(path)
    refs = [c.get("targetGUID") for c in root.iterfind(".//q:Coding/q:CodeRef", NS)]
    assert refs == [guid("code:WA.VAL.VALIDATION")] * 2
    assert len(root.findall("q:Sets/q:Set/q:MemberNote", NS)) == 1  # the 0.7 coding is below 0.8
    with pytest.raises(ExportError, match="not in codebook") as err:
        write_project_qdpx(mini_run, tmp_path / "x.qdpx", codebook=codebook, codes=["WA.NOPE"])
    assert err.value.code == "QA-E040"
    with pytest.raises(ExportError, match="min_score"):
        write_project_qdpx(mini_run, tmp_path / "x.qdpx", codebook=codebook, min_score=1.5)
    assert not (tmp_path / "x.qdpx").exists()


def test_refi_qda_offsets_outside_the_text_raise(mini, codebook, helpers, tmp_path):
    segments = mini.segments.copy()
    segments.loc[6, "end_char"] = 500  # docC is 24 code points long
    with pytest.raises(ExportError, match="outside the document text") as err:
        write_qdpx_tables(mini.documents, segments, mini.assignments, tmp_path / "p.qdpx", codebook=codebook,
                          manifest=mini.manifest)
    assert err.value.code == "QA-E040" and err.value.context["segment_id"] == mini.segment_ids[6]
    segments = mini.segments.copy()
    segments.loc[6, "text"] = "something else"
    with pytest.raises(ExportError, match="offsets would not line up"):
        write_qdpx_tables(mini.documents, segments, mini.assignments, tmp_path / "p.qdpx", codebook=codebook,
                          manifest=mini.manifest)
    assignments = mini.assignments.copy()
    assignments.loc[0, "code_id"] = "WA.UNKNOWN"
    with pytest.raises(ExportError, match="not in codebook"):
        write_qdpx_tables(mini.documents, mini.segments, assignments, tmp_path / "p.qdpx", codebook=codebook,
                          manifest=mini.manifest)
    assert not (tmp_path / "p.qdpx").exists()


def test_refi_qda_export_run_writes_every_target_byte_identically(mini_run, tmp_path):
    first = export_run(mini_run, to="all")
    assert [p.name for p in first] == [EXPORT_FILES[k] for k in ("qdc", "qdpx", "xlsx")]
    assert all(p.parent == mini_run / "exports" for p in first)
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in first]
    second = export_run(mini_run, to="all", out=tmp_path / "again")
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in second] == digests
    assert export_run(mini_run, to="qdc", out=tmp_path / "qdc") == [tmp_path / "qdc" / "codebook.qdc"]


def test_refi_qda_export_run_rejects_incomplete_runs(mini_run, tmp_path):
    with pytest.raises(ExportError, match="must be one of"):
        export_run(mini_run, to="pdf")
    (mini_run / "codes.parquet").unlink()
    with pytest.raises(ExportError, match=r"incomplete: \['codes.parquet'\] missing") as err:
        export_run(mini_run, to="qdpx")
    assert err.value.code == "QA-E040" and err.value.path == str(mini_run)
    manifest = mini_run / "manifest.json"
    manifest.write_text(manifest.read_text().replace("working_alliance.v1.yaml", "gone.yaml"))
    with pytest.raises(ExportError, match="does not exist"):
        export_run(mini_run, to="qdc")
    manifest.write_text("{not json")
    with pytest.raises(ExportError, match="cannot be read"):
        export_run(mini_run, to="qdc")
    with pytest.raises(ExportError, match="incomplete"):
        export_run(tmp_path / "nowhere", to="qdc")


def test_refi_qda_xlsx_neutralises_formulas_as_string_cells(mini_run, mini, codebook, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    path = write_nvivo_xlsx(mini_run, tmp_path / "n.xlsx", codebook=codebook)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Segments", "Cases"]
    sheet = book["Segments"]
    header = [c.value for c in sheet[1]]
    assert header[:9] == ["segment_id", "document", "case", "session", "date", "clinician", "speaker",
                          "source type", "turn"]
    assert header[9:-1] == codebook.code_ids and header[-1] == "text"
    rows = {r[0].value: r for r in sheet.iter_rows(min_row=2)}
    assert len(rows) == len(mini.segments)
    formula = rows[mini.segment_ids[4]][-1]
    assert formula.value == "'" + '=HYPERLINK("http://x","click") she listened.' and formula.data_type == "s"
    minus = rows[mini.segment_ids[5]][-1]
    assert minus.value == "'-1 point for the waiting room." and minus.data_type == "s"
    at = rows[mini.segment_ids[6]][-1]
    assert at.value == "'@home I could be honest." and at.data_type == "s"
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    col = header.index("WA.VAL.VALIDATION")
    assert [rows[s][col].value for s in mini.segment_ids] == [0, 1, 1, 0, 1, 0, 0, 0]
    assert rows[mini.segment_ids[1]][1].value == "interviews_C01_s1"
    cases = [[c.value for c in r] for r in book["Cases"].iter_rows()]
    assert cases[0] == ["Client", "Documents", "Sessions", "Dates", "Clinicians", "Source types"]
    assert cases[1] == ["C01", 2, "1; 2", "2026-01 to 2026-02", "[THERAPIST_1]", "feedback; interview"]
    assert cases[2] == ["C02", 1, None, None, None, "feedback"]


def test_refi_qda_pyrefiqda_reads_the_export(mini_run, mini, codebook, tmp_path):
    pyrefiqda = pytest.importorskip("pyrefiqda", reason="pyrefiqda (dev extra) is not installed")
    path = write_project_qdpx(mini_run, tmp_path / "p.qdpx", codebook=codebook)
    extract = tmp_path / "extract"
    project = pyrefiqda.RefiProject.load(str(path), extract_dir=str(extract))
    segments = dict(zip(mini.segments["segment_id"], mini.segments["text"], strict=True))
    by_guid = {guid(f"selection:{s}"): text for s, text in segments.items()}
    code_guids = {guid(f"code:{c}") for c in codebook.code_ids}
    resliced = {}
    for source in project.sources.text_source:
        local = pyrefiqda.RefiProject.resolve_source_path(source.plain_text_path, str(extract))
        text = local.read_bytes().decode("utf-8")
        for sel in source.plain_text_selection or []:
            resliced[sel.guid] = text[sel.start_position:sel.end_position]
            assert {c.code_ref.target_guid for c in sel.coding} <= code_guids
    assert resliced == {g: by_guid[g] for g in resliced} and len(resliced) == 5
    assert len(project.code_book.codes.code) == len(codebook.parents)
    assert {u.name.split()[0] for u in project.users.user} == {"alliance-coder", "coder.rules.v1",
                                                               "coder.similarity.v1"}


def test_refi_qda_qc_imports_the_export(mini_run, codebook, tmp_path):
    qc = os.environ.get("ALLIANCE_QC_BIN") or shutil.which("qc")
    if not qc or not os.path.exists(qc):
        pytest.skip("qualitative-coding's `qc` is not installed; it cannot share the project venv (it pins "
                    "rich<14, webvtt-py<0.6, xmlschema<4). Install it in its own venv and set ALLIANCE_QC_BIN.")
    path = write_project_qdpx(mini_run, tmp_path / "p.qdpx", codebook=codebook)
    work = tmp_path / "qc"
    work.mkdir()
    env = {**os.environ, "PYTHONBREAKPOINT": "0"}  # qc 1.7.8 ships a stray breakpoint() in its reader
    done = subprocess.run([qc, "init", "--import", str(path)], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = subprocess.run([qc, "codes", "list"], cwd=work, env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert "Validation of experience" in listed.stdout and "Validation and affirmation" in listed.stdout
    assert len(list((work / "corpus").iterdir())) == 4


# -- property: the same run exported twice is byte-identical, whatever the text -------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\ufeff"), min_size=1,
                max_size=60)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(_TEXT, min_size=1, max_size=3), score=st.floats(0, 1), evidence=st.text(max_size=20))
def test_refi_qda_same_run_exports_byte_identical(texts, score, evidence, codebook, codebook_path, helpers,
                                                  project_schema):
    docs = [helpers.document(f"d{i}", t, source_path=f"x/{i}.txt", case_id="C1") for i, t in enumerate(texts)]
    segs = [helpers.segment(f"d{i}", t, t) for i, t in enumerate(texts)]
    assigns = [helpers.assignment(s["segment_id"], "WA.HOPE.HOPE_EXPECTANCY", score, evidence=evidence)
               for s in segs]
    frames = helpers.tables(docs, segs, assigns)
    data = helpers.manifest(codebook, codebook_path)
    with tempfile.TemporaryDirectory() as tmp:
        one = write_qdpx_tables(*frames, Path(tmp) / "1.qdpx", codebook=codebook, manifest=data)
        two = write_qdpx_tables(*frames, Path(tmp) / "2.qdpx", codebook=codebook, manifest=data)
        assert one.read_bytes() == two.read_bytes()
        assert project_schema.validate(qde_tree(one)), project_schema.error_log
