"""Shared machinery of the fuzz tests: parser targets, a sandboxed worker, seeds, mutations, counters.

Every input runs in a forked worker process (:class:`Sandbox`) that has an address-space cap
(``RLIMIT_AS``: its size at start plus :data:`MEMORY_CAP_MB`) and a wall-clock limit per input
(:data:`TIME_LIMIT_S`, enforced by the parent with ``poll`` and ``SIGKILL``). A subprocess rather than
``signal.alarm`` because the parsers are C code (lxml, zlib, libyaml-free ruamel is pure Python but
pyexpat/zlib are not): an alarm cannot interrupt a C call and cannot cap memory; a fork shares the
already-imported modules, so one input costs a pipe round trip, not an interpreter start.

The worker classifies each input as ``ok`` (a result that passed the contract checks), ``typed`` (a
:class:`~pipeline.errors.PipelineError` whose code is in the catalogue, or an ingest quarantine record)
or a failure: ``untyped`` (any other exception), ``contract`` (a result that breaks the data contract),
``timeout`` (over the time limit) or ``died`` (killed, e.g. by the memory cap).
"""

from __future__ import annotations

import codecs
import io
import json
import multiprocessing
import os
import re
import resource
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "corpora" / "demo"
TIME_LIMIT_S = float(os.environ.get("ALLIANCE_FUZZ_TIME_LIMIT_S", "20"))
MEMORY_CAP_MB = int(os.environ.get("ALLIANCE_FUZZ_MEMORY_CAP_MB", "1536"))
PROFILE = os.environ.get("ALLIANCE_FUZZ_PROFILE", "fuzz-ci")

settings.register_profile(
    "fuzz-ci", max_examples=60, derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz-long", max_examples=int(os.environ.get("ALLIANCE_FUZZ_EXAMPLES", "5000")), derandomize=False,
    database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
#: Settings for every fuzz test; choose with ALLIANCE_FUZZ_PROFILE=fuzz-ci|fuzz-long (not loaded globally,
#: so the rest of the suite keeps its own hypothesis settings).
FUZZ = settings(settings.get_profile(PROFILE))

#: Inputs tried per parser in this pytest process (printed in the terminal summary, written as JSON).
COUNTS: Counter[str] = Counter()
FAILURE_KINDS = ("untyped", "contract", "timeout", "died")
PARSERS = ("txt", "docx", "vtt", "srt", "csv", "xlsx", "qdpx", "run_config", "codebook", "corpus_yaml", "sidecar")


# --------------------------------------------------------------------------------------------- targets
# These run inside the worker. Each takes (data, options) and returns ("ok" | "typed", detail) or raises.

def _check_ingest_result(result) -> str:
    from pipeline.errors import ERRORS
    from pipeline.ingest.base import ACTIONS, ROLES

    for doc in result.documents:
        assert doc.turns, "document without turns"
        assert re.fullmatch(r"[0-9a-f]{20}", doc.document_id), "bad document_id"
        assert doc.source_type in ("interview", "session", "feedback"), "bad source_type"
        json.dumps(doc.metadata, allow_nan=True)
        for turn in doc.turns:
            assert isinstance(turn.text, str) and turn.text.strip(), "empty turn text"
            assert turn.role in ROLES, f"bad role {turn.role!r}"
            assert turn.source_line is None or (isinstance(turn.source_line, int) and turn.source_line >= 1)
            assert "\r" not in turn.text, "CR left in turn text"
    for problem in result.problems:
        assert problem.code in ERRORS and problem.action in ACTIONS, f"bad problem {problem.code}/{problem.action}"
        assert problem.line is None or problem.line >= 1, "bad problem line"
    quarantined = [p for p in result.problems if p.action == "quarantined"]
    return f"quarantined:{quarantined[0].code}" if quarantined else f"docs:{len(result.documents)}"


def _ingest_target(fmt: str):
    def run(data: bytes, options: dict) -> tuple[str, str]:
        from pipeline.ingest import READERS, IngestConfig, ReadContext

        cfg = IngestConfig(**options.get("cfg", {}))
        if "ingest_path" in options:  # the whole entry point, on a file that is too big to send
            from pipeline.ingest import ingest_file

            path = Path(options["ingest_path"])
            detail = _check_ingest_result(ingest_file(path, root=path.parent, cfg=cfg))
            return ("typed" if detail.startswith("quarantined") else "ok"), detail
        ctx = ReadContext(path=Path(f"/fuzz/input.{fmt}"), source_path=f"input.{fmt}", source_format=fmt,
                          data=data, cfg=cfg, speaker_map=options.get("speakers", {}))
        result = READERS[fmt](ctx)
        detail = _check_ingest_result(result)
        return ("typed" if detail.startswith("quarantined") else "ok"), detail
    return run


def _file_target(name: str, load):
    def run(data: bytes, options: dict) -> tuple[str, str]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / options.get("name", name)
            path.write_bytes(data)
            return "ok", load(path)
    return run


def _load_qdpx(path: Path) -> str:
    from pipeline.export.qdpx_import import read_qdpx

    project = read_qdpx(path)
    texts = {s.guid: s.text for s in project.sources}
    for sel in project.selections:
        assert 0 <= sel.start < sel.end <= len(texts[sel.source]), "selection outside its text"
        assert sel.text == texts[sel.source][sel.start:sel.end], "selection text is not its slice"
    return f"sources:{len(project.sources)} selections:{len(project.selections)}"


def _load_run_config(path: Path) -> str:
    from pipeline.config import RunConfig, load_run_config

    assert isinstance(load_run_config(path), RunConfig)
    return "run config"


def _load_codebook(path: Path) -> str:
    from pipeline.codebook import Codebook, load_codebook

    book = load_codebook(path)
    assert isinstance(book, Codebook) and len(set(book.code_ids)) == len(book.code_ids)
    return f"codes:{len(book.code_ids)}"


def _load_corpus_yaml(path: Path) -> str:
    from pipeline.ingest import IngestConfig, load_corpus_config

    assert isinstance(load_corpus_config(path.parent, IngestConfig()), IngestConfig)
    return "corpus config"


def _load_sidecar(path: Path) -> str:
    from pipeline.ingest.metadata import load_sidecar

    sidecar = load_sidecar(path, "x.yaml", "x.txt")
    json.dumps(sidecar.metadata)
    assert all(isinstance(n, str) for n in sidecar.known_names)
    return "sidecar"


TARGETS = {
    **{fmt: _ingest_target(fmt) for fmt in ("txt", "docx", "vtt", "srt", "csv", "xlsx")},
    "qdpx": _file_target("input.qdpx", _load_qdpx),
    "run_config": _file_target("run.yaml", _load_run_config),
    "codebook": _file_target("codebook.yaml", _load_codebook),
    "corpus_yaml": _file_target("corpus.yaml", _load_corpus_yaml),
    "sidecar": _file_target("x.yaml", _load_sidecar),
}


def classify(target: str, data: bytes, options: dict | None = None) -> tuple[str, str]:
    """Run one input through a target in this process and classify the outcome."""
    from pipeline.errors import ERRORS, PipelineError

    try:
        return TARGETS[target](data, options or {})
    except PipelineError as err:
        if err.code not in ERRORS:
            return "contract", f"error code {err.code} is not in the catalogue"
        return "typed", err.code
    except AssertionError as err:
        return "contract", str(err)[:200]
    except MemoryError:
        return "died", "MemoryError (memory cap reached)"
    except Exception as err:  # noqa: BLE001 - this is what the fuzzer looks for
        return "untyped", f"{type(err).__module__}.{type(err).__name__}"


# --------------------------------------------------------------------------------------------- sandbox

def _worker(conn, cap_bytes: int) -> None:
    vm = _vm_bytes()
    limit = vm + cap_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        target, data, options = message
        conn.send(classify(target, data, options))


def _vm_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Outcome:
    """What one input did."""

    kind: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.kind in FAILURE_KINDS


class Sandbox:
    """A forked worker with a memory cap that runs one input at a time under a wall-clock limit."""

    def __init__(self, time_limit_s: float = TIME_LIMIT_S, memory_cap_mb: int = MEMORY_CAP_MB) -> None:
        self.time_limit_s = time_limit_s
        self.cap = memory_cap_mb * 1024 * 1024
        self._ctx = multiprocessing.get_context("fork")
        self._proc = None
        self._conn = None

    def _start(self) -> None:
        _preload()
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_worker, args=(child, self.cap), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent

    def run(self, target: str, data: bytes, options: dict | None = None, *, count: bool = True,
            time_limit_s: float | None = None) -> Outcome:
        """Run ``data`` through ``target`` in the worker; count it under the target's name."""
        if count:
            COUNTS[target] += 1
        if self._proc is None or not self._proc.is_alive():
            self._start()
        self._conn.send((target, data, options or {}))
        if not self._conn.poll(time_limit_s or self.time_limit_s):
            self._kill()
            return Outcome("timeout", f"no answer within {time_limit_s or self.time_limit_s:g} s")
        try:
            return Outcome(*self._conn.recv())
        except (EOFError, ConnectionError):
            code = self._proc.exitcode
            self._kill()
            return Outcome("died", f"worker died (exit code {code}; memory cap {self.cap >> 20} MB)")

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        self._proc = None

    def close(self) -> None:
        """Stop the worker."""
        if self._proc is not None and self._proc.is_alive():
            self._conn.send(None)
            self._proc.join(5)
        self._kill()


def _preload() -> None:
    """Import every parser before forking, so the worker starts warm."""
    import docx  # noqa: F401
    import openpyxl  # noqa: F401
    import spacy.schemas  # noqa: F401 - load_codebook imports it lazily; seconds under load, not the parser's time

    import pipeline.codebook  # noqa: F401
    import pipeline.config  # noqa: F401
    import pipeline.export.qdpx_import  # noqa: F401
    import pipeline.ingest  # noqa: F401


def assert_safe(outcome: Outcome, target: str, data: bytes) -> None:
    """Fail with a reproducible description when an input escaped the contract."""
    assert not outcome.failed, (
        f"{target}: {outcome.kind} ({outcome.detail}) for a {len(data)}-byte input starting {data[:80]!r}"
    )


# --------------------------------------------------------------------------------------------- seeds

def demo_seeds(suffix: str) -> list[bytes]:
    """Bytes of every demo corpus file with this suffix (sorted, so examples are reproducible)."""
    return [p.read_bytes() for p in sorted(DEMO.rglob(f"*{suffix}"))]


def docx_bytes(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    """A small Word document."""
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=max(len(r) for r in table))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    """A small workbook (first sheet holds ``rows``)."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


QDE_NS = "urn:QDA-XML:project:1.0"


def qde_xml(text_len: int, *, start: int = 0, end: int = 5, extra: str = "") -> str:
    """A REFI-QDA project with one user, two nested codes, one source and one coded selection."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<Project xmlns="{QDE_NS}" name="fuzz" origin="fuzz">'
        '<Users><User guid="00000000-0000-4000-8000-000000000001" name="coder"/></Users>'
        '<CodeBook><Codes><Code guid="00000000-0000-4000-8000-000000000002" name="WA.BOND" isCodable="true">'
        '<Code guid="00000000-0000-4000-8000-000000000003" name="WA.BOND.WARM" isCodable="true"/></Code>'
        "</Codes></CodeBook><Sources>"
        '<TextSource guid="00000000-0000-4000-8000-000000000004" name="P01" '
        'plainTextPath="internal://00000000-0000-4000-8000-000000000004.txt">'
        f'<PlainTextSelection guid="00000000-0000-4000-8000-000000000005" startPosition="{start}" '
        f'endPosition="{end}" creatingUser="00000000-0000-4000-8000-000000000001">'
        '<Coding guid="00000000-0000-4000-8000-000000000006" creatingUser="00000000-0000-4000-8000-000000000001">'
        '<CodeRef targetGUID="00000000-0000-4000-8000-000000000003"/></Coding></PlainTextSelection>'
        f"</TextSource></Sources>{extra}</Project>"
    )


def qdpx_bytes(text: str = "Client: I felt heard today.\n", qde: str | None = None,
               members: dict[str, bytes] | None = None) -> bytes:
    """A small .qdpx archive (project.qde plus one source text)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("project.qde", qde if qde is not None else qde_xml(len(text)))
        archive.writestr("sources/00000000-0000-4000-8000-000000000004.txt", text.encode("utf-8"))
        for name, payload in (members or {}).items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def yaml_seeds(kind: str) -> list[bytes]:
    """Valid YAML files of one kind from the repository."""
    if kind == "run_config":
        return [p.read_bytes() for p in sorted((ROOT / "configs" / "runs").glob("*.yaml"))]
    if kind == "codebook":
        return [p.read_bytes() for p in sorted((ROOT / "configs" / "codebooks").glob("*.yaml"))]
    if kind == "corpus_yaml":
        return [(DEMO / "corpus.yaml").read_bytes(), b"max_line_chars: 1000\nfeedback_sheet: Sheet1\n"]
    return demo_seeds(".yaml")[:6]


# --------------------------------------------------------------------------------------------- mutations

_INSERTS = (b"\x00", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, b"\xff\xfe\x00\x00", b"\xff", b"\xc3\x28",
            b"\xed\xa0\x80", b"\r", b"\r\n", b"\n\n", b"\t", b'"', b",", b":", b"-->", b"<v A>", b"&amp;",
            b"]]>", b"<!DOCTYPE x>", b"&#0;", b"*a", b"&a ", b"{", b"[", b"!!python/object:os.system ",
            b"\xe2\x80\xae", b"WEBVTT\n\n")


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed with 1-6 byte-level mutations: flips, truncation, insertions, deletions, repeats."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(("flip", "truncate", "insert", "delete", "repeat", "splice")))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(_INSERTS)) if draw(st.booleans()) else draw(st.binary(max_size=16))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif op == "repeat":
            chunk = bytes(data[pos:pos + draw(st.integers(1, 32))])
            data[pos:pos] = chunk * draw(st.integers(2, 400))
        elif op == "splice" and len(seeds) > 1:
            other = draw(st.sampled_from(seeds))
            cut = draw(st.integers(0, len(other)))
            data = data[:pos] + bytearray(other[cut:])
    return bytes(data)


@st.composite
def zip_tampered(draw, seeds: list[bytes]) -> bytes:
    """Rebuild a seed archive with one member's content mutated, a member dropped, renamed or added,
    or its raw bytes flipped (headers, sizes, CRCs)."""
    seed = draw(st.sampled_from(seeds))
    op = draw(st.sampled_from(("member", "drop", "rename", "add", "raw", "stored")))
    if op == "raw":
        return draw(mutated([seed]))
    with zipfile.ZipFile(io.BytesIO(seed)) as src:
        members = [(i.filename, src.read(i.filename)) for i in src.infolist()]
    index = draw(st.integers(0, len(members) - 1))
    name, payload = members[index]
    if op == "member":
        members[index] = (name, draw(mutated([payload])))
    elif op == "drop":
        del members[index]
    elif op == "rename":
        members[index] = (draw(st.sampled_from(("../" + name, "/" + name, name.upper(), name + "\x00",
                                                 name.replace("/", "\\"), "C:" + name, name + "/"))), payload)
    elif op == "add":
        members.append((draw(st.sampled_from(("evil.xml", "word/x.xml", "sources/y.txt", "a/../b.xml"))),
                        draw(st.sampled_from((b"<x/>", b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', b"\x00" * 64)))))
    out = io.BytesIO()
    method = zipfile.ZIP_STORED if op == "stored" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w", method) as dst:
        for member_name, member_payload in members:
            dst.writestr(member_name, member_payload)
    return out.getvalue()


_LABELS = st.sampled_from(["Therapist", "Client", "T", "C", "Interviewer", "Speaker 1", "Jane Roe", "Dr. X",
                           "[00:01:02] Client", "Speaker 2 (00:00:05)", "Note", "http", ""])
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@st.composite
def transcript_text(draw) -> bytes:
    """A generated plain-text transcript: labelled and unlabelled lines, odd characters."""
    lines = draw(st.lists(st.tuples(_LABELS, _TEXT, st.booleans()), min_size=1, max_size=20))
    body = "\n".join(f"{label}: {text}" if labelled else text for label, text, labelled in lines)
    encoding = draw(st.sampled_from(("utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1")))
    return body.encode(encoding, errors="replace")


def _timestamp(draw, sep: str) -> str:
    h, m, s, ms = draw(st.integers(0, 99)), draw(st.integers(0, 99)), draw(st.integers(0, 99)), \
        draw(st.integers(0, 9999))
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


@st.composite
def subtitle_text(draw, kind: str) -> bytes:
    """A generated WebVTT or SRT file with random (also invalid) timings, voices and payloads."""
    sep = "." if kind == "vtt" else ","
    out = ["WEBVTT", ""] if kind == "vtt" and draw(st.integers(0, 9)) else []  # sometimes no header
    for number in range(1, draw(st.integers(1, 12)) + 1):
        if kind == "srt" or draw(st.booleans()):
            out.append(str(number if draw(st.booleans()) else draw(st.integers(-5, 10**6))))
        out.append(f"{_timestamp(draw, sep)} --> {_timestamp(draw, sep)}")
        voice = draw(_LABELS)
        payload = draw(_TEXT)
        out.append(f"<v {voice}>{payload}</v>" if kind == "vtt" and draw(st.booleans()) else f"{voice}: {payload}")
        out.append("")
    return "\n".join(out).encode("utf-8")


@st.composite
def csv_text(draw) -> bytes:
    """A generated feedback CSV: a header with a comment column, rows with random quoting and widths."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    header = draw(st.lists(st.sampled_from(["response_id", "client_id", "session", "date", "comment", "clinician",
                                            "x", "Comment", ""]), min_size=1, max_size=8))
    rows = [delimiter.join(header)]
    for _ in range(draw(st.integers(0, 15))):
        cells = draw(st.lists(st.one_of(_TEXT, st.sampled_from(['"', '""', '"a,b"', "=1+1", "1e999", "nan",
                                                               "2024-13-45", "9" * 50])),
                              max_size=len(header) + 2))
        rows.append(delimiter.join(cells))
    return "\n".join(rows).encode(draw(st.sampled_from(("utf-8", "utf-8-sig", "cp1252"))), errors="replace")


CELL = st.one_of(st.none(), _TEXT, st.integers(-10**18, 10**18), st.floats(allow_nan=True),
                 st.sampled_from(["=HYPERLINK(\"http://x\")", "2024-01-02", "", " "]))


@st.composite
def xlsx_generated(draw) -> bytes:
    """A generated workbook with a (possibly broken) header and mixed-type cells."""
    header = draw(st.lists(st.sampled_from(["response_id", "comment", "session", "date", "x", None]),
                           min_size=1, max_size=6))
    rows = [header] + draw(st.lists(st.lists(CELL, max_size=8), max_size=10))
    cleaned = [[_xlsx_safe(v) for v in row] for row in rows]
    return xlsx_bytes(cleaned)


def _xlsx_safe(value: object) -> object:
    """openpyxl refuses control characters in cells; the fuzz input is the file, so drop them here."""
    if isinstance(value, str):
        return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", value)
    return value


@st.composite
def yaml_generated(draw) -> bytes:
    """Generated YAML: random keys/values, anchors and aliases, flow and block nesting, odd scalars."""
    keys = st.sampled_from(["ingest", "coders", "name", "codes", "id", "speakers", "session", "date", "max_file_mb",
                            "seed", "codebook", "exclude", "source_type", "client", "x"])
    scalars = st.one_of(_TEXT.map(json.dumps), st.integers().map(str), st.sampled_from(
        ["~", "null", "yes", "1e400", ".nan", "2024-02-30", "!!binary aGk=", "*a", "&a x", "[*a, *a]", "{}", "[]",
         "|\n  block", ">-", "'", '"\\x00"', "0o777", "0x" + "f" * 40, "9" * 5000]))
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        depth = draw(st.integers(0, 4))
        lines.append("  " * depth + f"{draw(keys)}: {draw(scalars)}")
        if draw(st.booleans()):
            lines.append("  " * depth + "- " + draw(scalars))
    return "\n".join(lines).encode("utf-8")


def write_counts(path: Path) -> None:
    """Write :data:`COUNTS` as JSON (parser -> inputs tried)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(COUNTS.items())), indent=2) + "\n", encoding="utf-8")
