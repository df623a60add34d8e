"""Hostile inputs as explicit cases: zip bombs, entity bombs and XXE, YAML alias bombs and deep nesting,
huge lines, fields, column and row counts.

Each case runs in the sandboxed worker (memory cap, time limit per input, see fuzz_support.py) and must
end as a typed error or quarantine record with the expected catalogue code, within the limits.
"""

from __future__ import annotations

import io
import os
import struct
import time
import zipfile
from pathlib import Path

import pytest
from fuzz_support import Outcome, docx_bytes, qde_xml, qdpx_bytes, xlsx_bytes

from pipeline.ingest import IngestConfig, ingest_file
from pipeline.ingest.guards import MB

DOCX = docx_bytes(["Therapist: How was the week?", "Client: Better, thanks."])
XLSX = xlsx_bytes([["response_id", "comment"], [1, "It helped."]])
QDPX = qdpx_bytes()
MEMBER = {"docx": "word/document.xml", "xlsx": "xl/worksheets/sheet1.xml", "qdpx": "project.qde"}
SEED = {"docx": DOCX, "xlsx": XLSX, "qdpx": QDPX}
LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + "]>\n<lolz>&lol9;</lolz>"
)
XXE = '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<x>&xxe;</x>'


def replace_member(data: bytes, name: str, payload: bytes, extra: dict[str, bytes] | None = None,
                   method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", method) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, payload if info.filename == name else src.read(info.filename))
        for member, content in (extra or {}).items():
            dst.writestr(member, content)
    return out.getvalue()


def typed(outcome: Outcome, *codes: str) -> None:
    assert not outcome.failed, outcome
    assert outcome.kind == "typed", outcome
    assert outcome.detail.split(":")[-1] in codes, outcome


# ------------------------------------------------------------------------------------------ zip bombs

@pytest.mark.parametrize("kind", ["docx", "xlsx", "qdpx"])
def test_high_ratio_zip_bomb_is_refused_before_inflating(sandbox, kind: str) -> None:
    bomb = replace_member(SEED[kind], MEMBER[kind], b"\0" * (300 * MB))  # 300 MB member, ~300 KB archive
    assert len(bomb) < 2 * MB
    started = time.perf_counter()
    outcome = sandbox.run(kind, bomb)
    typed(outcome, "QA-E014")
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("kind", ["docx", "xlsx", "qdpx"])
def test_many_members_are_refused(sandbox, kind: str) -> None:
    count = 20_001 if kind == "qdpx" else 2_001  # read_qdpx MAX_MEMBERS, IngestConfig.max_zip_members
    extra = {f"junk/{i}.bin": b"" for i in range(count)}
    typed(sandbox.run(kind, replace_member(SEED[kind], "", b"", extra)), "QA-E014")


@pytest.mark.parametrize("kind", ["docx", "xlsx", "qdpx"])
def test_nested_zip_bomb_is_not_opened(sandbox, kind: str) -> None:
    """A bomb stored inside the archive (ratio ~1 for the outer member) is never inflated by the readers."""
    inner = replace_member(DOCX, "word/document.xml", b"\0" * (100 * MB))
    data = replace_member(SEED[kind], "", b"", {"nested/bomb.zip": inner, "word/embeddings/x.docx": inner},
                          method=zipfile.ZIP_STORED)
    outcome = sandbox.run(kind, data, time_limit_s=30)
    assert not outcome.failed, outcome


@pytest.mark.parametrize("kind", ["docx", "xlsx", "qdpx"])
def test_member_lying_about_its_size_is_stopped(sandbox, kind: str) -> None:
    """Headers that declare 1 KB for a 50 MB member: reading stops at the declared size (CRC or count check)."""
    data = bytearray(replace_member(SEED[kind], MEMBER[kind], b"<x>" + b" " * (50 * MB) + b"</x>"))
    target = MEMBER[kind].encode()
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = data.find(signature)
        while pos != -1:
            name_offset = 30 if signature == b"PK\x03\x04" else 46
            name_len = struct.unpack_from("<H", data, pos + (26 if signature == b"PK\x03\x04" else 28))[0]
            if bytes(data[pos + name_offset:pos + name_offset + name_len]) == target:
                struct.pack_into("<I", data, pos + size_offset, 1024)
            pos = data.find(signature, pos + 4)
    typed(sandbox.run(kind, bytes(data)), "QA-E013", "QA-E014")


@pytest.mark.parametrize("kind", ["docx", "xlsx", "qdpx"])
def test_unsupported_zip_version_is_typed(sandbox, kind: str) -> None:
    """Found by atheris: 'version needed to extract' 25.5 made zipfile raise NotImplementedError (untyped)."""
    data = bytearray(SEED[kind])
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 6, 255)
    typed(sandbox.run(kind, bytes(data)), "QA-E013")


# ------------------------------------------------------------------------------ entity bombs and XXE

@pytest.mark.parametrize("kind", ["docx", "xlsx", "qdpx"])
@pytest.mark.parametrize("payload", [LAUGHS, XXE], ids=["billion-laughs", "xxe"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_dtd_entity_bombs_and_external_entities_are_refused(sandbox, kind: str, payload: str, encoding: str) -> None:
    """UTF-16 hides ``<!DOCTYPE`` from a byte scan; the XML parsers must still refuse it."""
    xml = payload.replace('<?xml version="1.0"?>', f'<?xml version="1.0" encoding="{encoding}"?>')
    data = replace_member(SEED[kind], MEMBER[kind], xml.encode(encoding))
    outcome = sandbox.run(kind, data)
    typed(outcome, "QA-E013", "QA-E011")


def test_qdpx_deeply_nested_codes_are_read_iteratively(sandbox) -> None:
    depth = 50_000
    codes = "".join(f'<Code guid="{i:08d}-0000-4000-8000-000000000000" name="c{i}">' for i in range(depth))
    qde = qde_xml(20).replace("</Codes>", codes + "</Code>" * depth + "</Codes>")
    outcome = sandbox.run("qdpx", qdpx_bytes(qde=qde))
    assert outcome.kind == "ok", outcome


def test_docx_deeply_nested_xml_is_typed(sandbox) -> None:
    body = "<w:tbl><w:tr><w:tc>" * 3000 + "<w:p/>" + "</w:tc></w:tr></w:tbl>" * 3000
    with zipfile.ZipFile(io.BytesIO(DOCX)) as src:
        xml = src.read("word/document.xml").decode()
    start = xml.index("<w:body>") + len("<w:body>")
    data = replace_member(DOCX, "word/document.xml", (xml[:start] + body + xml[start:]).encode())
    outcome = sandbox.run("docx", data)
    assert not outcome.failed, outcome


def test_srt_timestamp_with_too_many_milliseconds_is_typed(sandbox) -> None:
    """Found by hypothesis (fuzz-long): srt's timedelta raised OverflowError (untyped) before the fix."""
    data = b"1\n00:00:02,0707070707070707076 --> 00:00:09,807\nClient: fine\n\n2\n00:00:10,000 --> 00:00:11,000\nok\n"
    typed(sandbox.run("srt", data), "QA-E013")


@pytest.mark.parametrize("digits", [1_122, 50_000])
def test_srt_with_a_long_digit_run_is_refused_quickly(sandbox, digits: int) -> None:
    """Found by hypothesis (fuzz-long): srt's regex backtracks on a digit run where a cue number belongs
    (1,122 digits took 11 s before the guard)."""
    started = time.perf_counter()
    typed(sandbox.run("srt", b"1" * digits), "QA-E013")
    assert time.perf_counter() - started < 5
    assert sandbox.run("srt", b"1\n00:00:01,000 --> 00:00:02,000\nClient: " + b"9" * 5000 + b"\n").kind == "ok"


# ------------------------------------------------------------------------------------------------ YAML

def yaml_laughs(levels: int = 9) -> bytes:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return ("\n".join(lines) + "\n").encode()


YAML_TARGETS = ["run_config", "codebook", "corpus_yaml", "sidecar"]
YAML_CASES = {
    "billion-laughs": yaml_laughs(),
    "recursive-alias": b"a: &a [*a, *a]\nb: &b {k: *b}\n",
    "flow-nesting": b"a: " + b"[" * 50_000 + b"]" * 50_000 + b"\n",
    "map-nesting": b"a: " + b"{b: " * 5_000 + b"1" + b"}" * 5_000 + b"\n",
    "block-nesting": "".join(" " * i + f"k{i}:\n" for i in range(1500)).encode() + b" " * 1500 + b"x\n",
    "huge-integer": b"seed: " + b"9" * 100_000 + b"\n",
    "python-tag": b"a: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
    "huge-document": b"x: " + b"y" * (6 * MB) + b"\n",
}


@pytest.mark.parametrize("target", YAML_TARGETS)
@pytest.mark.parametrize("case", list(YAML_CASES))
def test_hostile_yaml_is_refused_with_a_typed_error(sandbox, target: str, case: str) -> None:
    started = time.perf_counter()
    outcome = sandbox.run(target, YAML_CASES[case])
    assert not outcome.failed, outcome
    if target != "sidecar" or case not in ("recursive-alias", "python-tag"):
        assert outcome.kind == "typed", outcome  # a sidecar keeps free metadata: a tag is only a string there
    assert time.perf_counter() - started < 10, "a hostile YAML file took over 10 s"
    assert not Path("/tmp/pwned").exists()


def test_run_config_with_an_overlong_codebook_path_is_typed(sandbox) -> None:
    outcome = sandbox.run("run_config", b"codebook: " + b"a" * 300 + b"\n")
    assert outcome.kind == "typed", outcome


# ------------------------------------------------------------------------------- huge lines and fields

def test_one_gigabyte_single_line_is_refused_unread(tmp_path: Path, sandbox) -> None:
    """A sparse 1 GiB file (one line, no newline): ingest_file stats it and never reads it.

    Run in the worker through ingest_file with a 256 MB memory cap: reading it would die.
    """
    path = tmp_path / "huge.txt"
    with path.open("wb") as handle:
        handle.write(b"Client: ")
        handle.truncate(1 << 30)
    assert path.stat().st_size == 1 << 30 and path.stat().st_blocks * 512 < 10 * MB  # sparse on disk
    from fuzz_support import Sandbox

    small = Sandbox(memory_cap_mb=256)
    try:
        outcome = small.run("txt", b"", {"ingest_path": str(path)}, count=False)
    finally:
        small.close()
    assert outcome.kind == "typed" and outcome.detail == "quarantined:QA-E014", outcome


def test_file_size_cap_is_exact(tmp_path: Path) -> None:
    """max_file_mb is a byte limit: a file of exactly the limit is read; one byte more is not."""
    cfg = IngestConfig(max_file_mb=1, max_line_chars=10**7)
    line = b"Client: " + b"a" * 100 + b"\n"
    body = line * (MB // len(line))
    exact = body + b"b" * (MB - len(body))
    assert len(exact) == MB
    (tmp_path / "exact.txt").write_bytes(exact)
    (tmp_path / "over.txt").write_bytes(exact + b"c")
    ok = ingest_file(tmp_path / "exact.txt", root=tmp_path, cfg=cfg)
    assert len(ok.documents) == 1 and not [p for p in ok.problems if p.action == "quarantined"]
    over = ingest_file(tmp_path / "over.txt", root=tmp_path, cfg=cfg)
    assert over.documents == [] and [p.code for p in over.problems] == ["QA-E014"]


def test_line_length_cap_is_exact(sandbox) -> None:
    limit = 1000
    at_limit = b"Client: " + b"a" * (limit - 8)
    assert sandbox.run("txt", at_limit, {"cfg": {"max_line_chars": limit}}).kind == "ok"
    over = sandbox.run("txt", b"first line\n" + at_limit + b"a", {"cfg": {"max_line_chars": limit}})
    assert over.kind == "typed" and over.detail == "QA-E014", over


def test_csv_with_a_100_mb_field_is_refused(sandbox) -> None:
    """One 100 MB field on one line (file limit raised so the line check, not the file check, fires)."""
    data = b"response_id,comment\n1," + b"x" * (100 * MB) + b"\n2,fine\n"
    outcome = sandbox.run("csv", data, {"cfg": {"max_file_mb": 128}}, time_limit_s=60)
    assert outcome.kind == "typed" and outcome.detail == "QA-E014", outcome


def test_csv_with_a_huge_multiline_quoted_field_skips_the_row(sandbox) -> None:
    """A quoted field spanning 200,000 short lines passes the line check but not csv's field limit."""
    field = b"\n".join([b"y" * 40] * 200_000)
    data = b"response_id,comment\n1,\"" + field + b"\"\n2,fine\n"
    outcome = sandbox.run("csv", data, time_limit_s=60)
    assert not outcome.failed, outcome


@pytest.mark.parametrize(("columns", "cfg"), [(50_000, {}), (150_000, {"max_line_chars": 10**6})])
def test_csv_with_many_columns(sandbox, columns: int, cfg: dict) -> None:
    """Unnamed headers got unique names through a list scan: 50,000 columns took 76 s before the fix."""
    header = b",".join([b""] * (columns - 1) + [b"comment"])
    row = b",".join([b"1"] * (columns - 1) + [b"fine"])
    outcome = sandbox.run("csv", header + b"\n" + row + b"\n", {"cfg": cfg}, time_limit_s=30)
    assert outcome.kind == "ok", outcome


def test_csv_with_many_rows(sandbox) -> None:
    rows = b"".join(b"%d,ok %d\n" % (i, i) for i in range(100_000))
    outcome = sandbox.run("csv", b"response_id,comment\n" + rows, time_limit_s=90)
    assert outcome.kind == "ok" and outcome.detail == "docs:100000", outcome


def test_xlsx_with_many_rows_and_columns(sandbox) -> None:
    rows = "".join(f'<row r="{r}"><c t="inlineStr"><is><t>{"comment" if r == 1 else f"ok {r}"}</t></is></c>'
                   + '<c t="n"><v>1</v></c>' * 50 + "</row>" for r in range(1, 20_001))
    with zipfile.ZipFile(io.BytesIO(XLSX)) as src:
        sheet = src.read("xl/worksheets/sheet1.xml").decode()
    start, end = sheet.index("<sheetData"), sheet.index("</sheetData>") + len("</sheetData>")
    new = sheet[:start] + f"<sheetData>{rows}</sheetData>" + sheet[end:]
    outcome = sandbox.run("xlsx", replace_member(XLSX, "xl/worksheets/sheet1.xml", new.encode()), time_limit_s=60)
    assert not outcome.failed, outcome  # ok, or QA-E014 when the repetitive sheet trips the ratio limit


def test_sandbox_catches_a_hang_and_a_memory_blowup(sandbox) -> None:
    """The harness itself: an input that never returns and one that allocates without bound are failures."""
    from fuzz_support import TARGETS, Sandbox

    TARGETS["_hang"] = lambda data, options: time.sleep(60)
    TARGETS["_hog"] = lambda data, options: bytearray(8 << 30)
    box = Sandbox(time_limit_s=1, memory_cap_mb=256)
    try:
        assert box.run("_hang", b"", count=False).kind == "timeout"
        assert box.run("_hog", b"", count=False).kind == "died"
        assert box.run("txt", b"Client: fine\n", count=False).kind == "ok"  # a fresh worker after a kill
    finally:
        box.close()
        del TARGETS["_hang"], TARGETS["_hog"]
    assert os.environ.get("ALLIANCE_FUZZ_PROFILE", "fuzz-ci") in ("fuzz-ci", "fuzz-long")
