"""Reading .qdpx files back: NVivo, QualCoder-style and our own exports; hostile archives; round trips."""

from __future__ import annotations

import csv
import io
import os
import struct
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import IngestError
from pipeline.export import qdpx_to_training_csv, read_qdpx, write_project_qdpx
from pipeline.export.refi_qda import guid, write_qdpx_tables

QDE_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'
SRC = "0b0b0b0b-0000-4000-8000-000000000001"
CODE = "0c0c0c0c-0000-4000-8000-000000000001"


def project_xml(selections: str = "", *, plain: str = f"internal://{SRC}.txt", extra: str = "") -> str:
    return (f'{QDE_HEAD}<Project xmlns="urn:QDA-XML:project:1.0" name="t">{extra}'
            f'<CodeBook><Codes><Code guid="{CODE}" name="Hope" isCodable="true"/></Codes></CodeBook>'
            f'<Sources><TextSource guid="{SRC}" name="doc" plainTextPath="{plain}">{selections}</TextSource>'
            "</Sources></Project>")


def selection(start: object, end: object, code: str = CODE) -> str:
    return (f'<PlainTextSelection guid="0d0d0d0d-0000-4000-8000-000000000001" startPosition="{start}" '
            f'endPosition="{end}"><Coding guid="0e0e0e0e-0000-4000-8000-000000000001">'
            f'<CodeRef targetGUID="{code}"/></Coding></PlainTextSelection>')


def make_zip(path: Path, members: dict[str, bytes | str], *, mode: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            archive.writestr(info, data)
    return path


def good_members(text: str = "I feel hopeful now.", sels: str | None = None) -> dict[str, bytes | str]:
    return {"project.qde": project_xml(selection(2, 6) if sels is None else sels),
            f"sources/{SRC}.txt": text.encode("utf-8")}


def listing(*folders: Path) -> set[str]:
    return {str(p) for folder in folders for p in folder.rglob("*")}


def test_qdpx_import_reads_the_nvivo_sample(helpers):
    samples = sorted(helpers.samples.glob("*.qdpx")) if helpers.samples.is_dir() else []
    if not samples:
        pytest.skip(f"NVivo sample not found under {helpers.samples} (shared/ is not part of the repository)")
    project = read_qdpx(samples[0])
    assert project.origin == "NVivo for Mac 15.0.0"
    assert len(project.codes) == 262 and len(project.users) == 2
    by_guid = {c.guid: c for c in project.codes}
    assert all(c.parent is None or c.parent in by_guid for c in project.codes)
    assert by_guid[next(c.guid for c in project.codes if c.name == "programming")].parent == next(
        c.guid for c in project.codes if c.name == "competencies")
    assert [s.text for s in project.sources] == ["\n", "\n"] and project.selections == ()


def test_qdpx_import_round_trips_our_export_to_training_rows(mini_run, mini, codebook, tmp_path):
    path = write_project_qdpx(mini_run, tmp_path / "p.qdpx", codebook=codebook)
    project = read_qdpx(path)
    assert project.origin.startswith("alliance-coder")
    segments = dict(zip(mini.segments["segment_id"], mini.segments["text"], strict=True))
    expected = {guid(f"selection:{s}"): t for s, t in segments.items()}
    assert {sel.guid: sel.text for sel in project.selections} == {
        g: expected[g] for g in (sel.guid for sel in project.selections)}
    assert {c.name for c in project.cases} == {"C01", "C02"}
    c01 = next(c for c in project.cases if c.name == "C01")
    assert dict(c01.variables)["Sessions"] == "1; 2" and len(c01.sources) == 2
    out = qdpx_to_training_csv(project, tmp_path / "train.csv", codebook=codebook)
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert list(rows[0]) == ["document_id", "speaker", "text", "codes", "segment_id"]
    by_id = {r["segment_id"]: r for r in rows}
    first = by_id[guid(f"selection:{mini.segment_ids[1]}")]
    assert first == {"document_id": "interviews_C01_s1", "speaker": "client",
                     "text": "Honestly — I felt heard 😊 and not judged.", "codes": "WA.VAL.VALIDATION",
                     "segment_id": guid(f"selection:{mini.segment_ids[1]}")}
    formula = by_id[guid(f"selection:{mini.segment_ids[4]}")]
    assert formula["text"].startswith("'=HYPERLINK")  # hostile-input CSV is formula-neutralised
    assert by_id[guid(f"selection:{mini.segment_ids[6]}")]["codes"] == "WA.OPEN.CLIENT_OPENNESS"


def test_qdpx_import_reads_qualcoder_style_projects(tmp_path, codebook):
    text = "Line one.\nShe was so encouraging, I felt heard.\nThe end."
    cat, code = "AAAAAAAA-0000-4000-8000-00000000000A", "BBBBBBBB-0000-4000-8000-00000000000B"
    user, src = "CCCCCCCC-0000-4000-8000-00000000000C", "DDDDDDDD-0000-4000-8000-00000000000D"
    start = text.index("She was")
    end = start + len("She was so encouraging")
    qde = (f'{QDE_HEAD}<Project xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
           'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" name="qc" origin="QualCoder 3.6" '
           f'creatingUserGUID="{user}" xmlns="urn:QDA-XML:project:1.0">\n<Users>\n<User guid="{user}" name="ana" />'
           f'\n</Users>\n<CodeBook><Codes><Code guid="{cat}" name="Validation and affirmation" isCodable="false">'
           f'<Description /><Code guid="{code}" name="encouragement and affirmation" isCodable="true" '
           f'color="#E65100"><Description>memo</Description></Code></Code></Codes></CodeBook>\n'
           f'<Sources>\n<TextSource plainTextPath="internal://{src}.txt" creatingUser="{user}" guid="{src}" '
           f'name="interview 1.txt">\n<PlainTextSelection guid="{{EEEEEEEE-0000-4000-8000-00000000000E}}" '
           f'startPosition="{start}" endPosition="{end}" name="She was so encouraging" creatingUser="{user}">\n'
           f'<Description>memo</Description>\n<Coding guid="FFFFFFFF-0000-4000-8000-00000000000F" '
           f'creatingUser="{user}" >\n<CodeRef targetGUID="{{{code.lower()}}}" />\n</Coding>\n'
           '</PlainTextSelection>\n</TextSource>\n</Sources>\n<Description>project memo</Description>\n</Project>')
    path = make_zip(tmp_path / "qc.qdpx", {"project.qde": qde,
                                           f"Sources/{src}.txt": b"\xef\xbb\xbf" + text.encode("utf-8")})
    project = read_qdpx(path)
    [sel] = project.selections
    assert sel.text == "She was so encouraging" and sel.user == "ana"
    assert sel.codes == (code.lower(),) and project.sources[0].text == text
    out = qdpx_to_training_csv(project, tmp_path / "t.csv", codebook=codebook)
    [row] = list(csv.DictReader(out.open(encoding="utf-8")))
    assert row["codes"] == "WA.VAL.AFFIRMATION" and row["speaker"] == "" and row["document_id"] == "interview 1.txt"


def test_qdpx_import_keeps_crlf_offsets_as_shipped_and_case_codings(tmp_path):
    text = "a\r\nhopeful\r\n"
    case = "0f0f0f0f-0000-4000-8000-000000000001"
    sels = selection(3, 10) + selection(0, 1, code=case).replace("0d0d0d0d", "0d0d0d0e").replace("0e0e", "0e0f")
    members = good_members(text, sels)
    members["project.qde"] = members["project.qde"].replace(
        "<Sources>", f'<Cases><Case guid="{case}" name="P1"/></Cases><Sources>')
    project = read_qdpx(make_zip(tmp_path / "c.qdpx", members))
    assert [s.text for s in project.selections] == ["hopeful", "a"]
    assert project.selections[1].codes == () and project.cases[0].selections == (project.selections[1].guid,)


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                  '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                  '<Project xmlns="urn:QDA-XML:project:1.0" name="&lol3;"/>')
XXE = ('<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       '<Project xmlns="urn:QDA-XML:project:1.0" name="&x;"/>')


def _hostile(tmp_path: Path, kind: str) -> tuple[Path, dict]:
    limits: dict = {}
    members = good_members()
    if kind == "traversal":
        members["../evil.txt"] = b"x"
    elif kind == "absolute":
        members["/etc/evil.txt"] = b"x"
    elif kind == "backslash":
        members["sources\\..\\evil.txt"] = b"x"
    elif kind == "symlink":
        return make_zip(tmp_path / "h.qdpx", {**members, "sources/link.txt": b"/etc/passwd"}, mode=0o120777), {}
    elif kind == "internal_traversal":
        members["project.qde"] = project_xml(plain="internal://../../etc/passwd")
    elif kind == "relative_source":
        members["project.qde"] = project_xml(plain="relative:///home/user/secret.txt")
    elif kind == "missing_source":
        del members[f"sources/{SRC}.txt"]
    elif kind == "bomb":
        members["sources/bomb.txt"] = b"\0" * (40 * 1024 * 1024)
    elif kind == "too_many_members":
        members.update({f"sources/{i}.txt": b"x" for i in range(10)})
        limits = {"max_members": 5}
    elif kind == "oversized":
        limits = {"max_bytes": 200}
    elif kind == "billion_laughs":
        members["project.qde"] = BILLION_LAUGHS
    elif kind == "xxe":
        members["project.qde"] = XXE
    elif kind == "malformed_xml":
        members["project.qde"] = "<Project><unclosed></Project>"
    elif kind == "no_qde":
        del members["project.qde"]
    elif kind == "offsets_outside":
        members["project.qde"] = project_xml(selection(5, 999))
    elif kind == "negative_offset":
        members["project.qde"] = project_xml(selection(-1, 3))
    elif kind == "empty_selection":
        members["project.qde"] = project_xml(selection(4, 4))
    elif kind == "non_integer_offset":
        members["project.qde"] = project_xml(selection("2", "1e3"))
    elif kind == "dangling_code":
        members["project.qde"] = project_xml(selection(2, 6, code="0a0a0a0a-0000-4000-8000-000000000009"))
    elif kind == "not_utf8":
        members[f"sources/{SRC}.txt"] = "I feel hopeful, café".encode("latin-1")
    elif kind == "not_a_zip":
        path = tmp_path / "h.qdpx"
        path.write_bytes(b"PK\x03\x04 definitely not a zip")
        return path, {}
    return make_zip(tmp_path / "h.qdpx", members), limits


HOSTILE = {
    "traversal": ("QA-E013", "unsafe name"), "absolute": ("QA-E013", "unsafe name"),
    "backslash": ("QA-E013", "unsafe name"), "symlink": ("QA-E013", "symbolic link"),
    "internal_traversal": ("QA-E013", "unsafe source file"), "relative_source": ("QA-E013", "outside the archive"),
    "missing_source": ("QA-E013", "not in the archive"), "bomb": ("QA-E014", "zip bomb"),
    "too_many_members": ("QA-E014", "max_members"), "oversized": ("QA-E014", "max_bytes"),
    "billion_laughs": ("QA-E013", "DTD"), "xxe": ("QA-E013", "DTD"), "malformed_xml": ("QA-E013", "well-formed"),
    "no_qde": ("QA-E013", "project.qde"), "offsets_outside": ("QA-E013", "outside the text"),
    "negative_offset": ("QA-E013", "outside the text"), "empty_selection": ("QA-E013", "outside the text"),
    "non_integer_offset": ("QA-E013", "non-integer"), "dangling_code": ("QA-E013", "not in the codebook"),
    "not_utf8": ("QA-E012", "not UTF-8"), "not_a_zip": ("QA-E013", "corrupt"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_qdpx_import_refuses_hostile_archives_and_writes_nothing(kind, tmp_path, monkeypatch):
    path, limits = _hostile(tmp_path, kind)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = listing(tmp_path)
    code, words = HOSTILE[kind]
    with pytest.raises(IngestError, match=words) as err:
        read_qdpx(path, **limits)
    assert err.value.code == code and err.value.path == str(path)
    assert listing(tmp_path) == before and not os.listdir(work)


def _patch_declared_size(data: bytes, size: int) -> bytes:
    """Make a one-member zip lie: declared uncompressed size ``size`` in both headers."""
    buf = bytearray(data)
    buf[22:26] = struct.pack("<I", size)  # local file header
    cd = buf.index(b"PK\x01\x02")
    buf[cd + 24:cd + 28] = struct.pack("<I", size)  # central directory entry
    return bytes(buf)


def test_qdpx_import_counts_bytes_while_decompressing(tmp_path):
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("project.qde", project_xml() + " " * 3_000_000)
    path = tmp_path / "liar.qdpx"
    path.write_bytes(_patch_declared_size(raw.getvalue(), 1000))
    with pytest.raises(IngestError) as err:
        read_qdpx(path)
    assert err.value.code in {"QA-E013", "QA-E014"}


def test_qdpx_import_refuses_encrypted_and_duplicate_members(tmp_path):
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("project.qde", project_xml())
    data = bytearray(raw.getvalue())
    cd = data.index(b"PK\x01\x02")
    data[cd + 8] |= 0x1
    (tmp_path / "enc.qdpx").write_bytes(bytes(data))
    with pytest.raises(IngestError, match="encrypted"):
        read_qdpx(tmp_path / "enc.qdpx")
    with zipfile.ZipFile(tmp_path / "dup.qdpx", "w") as archive:
        archive.writestr("project.qde", project_xml())
        with pytest.warns(UserWarning):
            archive.writestr("project.qde", project_xml())
    with pytest.raises(IngestError, match="two members"):
        read_qdpx(tmp_path / "dup.qdpx")


# -- property: random Unicode documents survive export -> import --------------------------------------------

_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\ufeff")
_SAMPLES = st.sampled_from(["é", "ü", "ñ", "ß", "שלום", "مرحبا", "😊", "👩‍⚕️", "—", "\n", " ", "漢字", "\u200f"])
_TEXT = st.lists(st.one_of(st.text(_CHARS, min_size=1, max_size=8), _SAMPLES), min_size=1, max_size=12).map("".join)


@st.composite
def coded_corpus(draw):
    codes = ["WA.VAL.VALIDATION", "WA.HOPE.HOPE_EXPECTANCY", "WA.RUPW.WITHDRAWAL"]
    docs = []
    for i in range(draw(st.integers(1, 3))):
        text = draw(_TEXT)
        cuts = sorted(draw(st.sets(st.integers(0, len(text)), min_size=2, max_size=6)))
        spans = [(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
        labels = [draw(st.sets(st.sampled_from(codes), max_size=3)) for _ in spans]
        docs.append((f"d{i}", text, spans, labels))
    return docs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(corpus=coded_corpus())
def test_qdpx_import_round_trips_random_unicode(corpus, codebook, codebook_path, helpers):
    docs, segs, assigns, expected = [], [], [], {}
    for doc_id, text, spans, labels in corpus:
        docs.append(helpers.document(doc_id, text, source_path=f"in/{doc_id}.txt", case_id="C1"))
        for (start, end), codes in zip(spans, labels, strict=True):
            seg = helpers.segment(doc_id, text, text[start:end], start=start)
            segs.append(seg)
            for code in sorted(codes):
                assigns.append(helpers.assignment(seg["segment_id"], code, 0.7))
            if codes:
                expected[guid(f"selection:{seg['segment_id']}")] = (text[start:end], {guid(f"code:{c}")
                                                                                      for c in codes})
    frames = helpers.tables(docs, segs, assigns)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_qdpx_tables(*frames, Path(tmp) / "p.qdpx", codebook=codebook,
                                 manifest=helpers.manifest(codebook, codebook_path))
        project = read_qdpx(path)
    assert {s.guid: (s.text, set(s.codes)) for s in project.selections} == expected
    assert {s.name: s.text for s in project.sources} == {f"in_{d}": t for d, t, _, _ in corpus}
