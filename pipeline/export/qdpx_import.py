"""Read a REFI-QDA project (``.qdpx``) back, as hostile input, and turn its coded selections into training rows.

Closes the loop with NVivo, QualCoder, ATLAS.ti or MAXQDA: a researcher corrects the machine coding there,
exports a ``.qdpx``, and :func:`qdpx_to_training_csv` turns every coded selection into a human-coded row.

The archive is treated as hostile. Nothing is extracted or written: members are read into memory by their
expected names only (``project.qde`` or the single ``*.qde``, and the ``sources/<file>`` each TextSource
names). Before anything is decompressed the central directory is checked: member count, total declared
size, compression ratio, and names (no absolute paths, ``..``, backslashes, drive letters, symlinks,
encryption or duplicates). While decompressing, bytes are counted against the declared sizes and the
total limit. XML is parsed with defusedxml with DTDs refused, so entity expansion cannot happen.
Offsets are checked against the text: ``0 <= start < end <= len(text)`` in code points.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from pipeline.codebook import Codebook
from pipeline.errors import IngestError
from pipeline.ingest.guards import DECOMPRESS_ERRORS
from pipeline.io import write_csv

__all__ = [
    "MAX_BYTES",
    "MAX_MEMBERS",
    "MAX_RATIO",
    "TRAINING_COLUMNS",
    "QdpxCase",
    "QdpxCode",
    "QdpxProject",
    "QdpxSelection",
    "QdpxSource",
    "qdpx_to_training_csv",
    "read_qdpx",
]

logger = logging.getLogger(__name__)

MB = 1 << 20
MAX_BYTES = 200 * MB  # archive size and total uncompressed size
MAX_MEMBERS = 20_000
MAX_RATIO = 100.0  # for members over 1 MiB; small members may legitimately compress very well
_RATIO_FLOOR = MB
TRAINING_COLUMNS = ("document_id", "speaker", "text", "codes", "segment_id")
_DRIVE = re.compile(r"^[A-Za-z]:")
_INT = re.compile(r"^\s*[+-]?\d{1,12}\s*$")
_SPEAKER = re.compile(r"^(client|therapist|interviewer|unknown) turn \d+$")


@dataclass(frozen=True)
class QdpxCode:
    """A codebook entry: ``parent`` is the parent code's GUID (None at the top)."""

    guid: str
    name: str
    parent: str | None
    codable: bool
    description: str = ""


@dataclass(frozen=True)
class QdpxSource:
    """A text source and its plain text (BOM removed, line endings as shipped)."""

    guid: str
    name: str
    text: str
    description: str = ""


@dataclass(frozen=True)
class QdpxSelection:
    """A coded span of a source: ``text == source.text[start:end]`` (code points, end exclusive)."""

    guid: str
    source: str
    start: int
    end: int
    codes: tuple[str, ...]
    user: str
    text: str
    name: str = ""


@dataclass(frozen=True)
class QdpxCase:
    """A case with its variable values and the sources and selections it holds."""

    guid: str
    name: str
    sources: tuple[str, ...]
    selections: tuple[str, ...]
    variables: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class QdpxProject:
    """What :func:`read_qdpx` found. GUIDs are lowercase without braces."""

    path: str
    name: str
    origin: str
    users: Mapping[str, str]
    codes: tuple[QdpxCode, ...]
    sources: tuple[QdpxSource, ...]
    selections: tuple[QdpxSelection, ...]
    cases: tuple[QdpxCase, ...]


def _fail(path: str, message: str, code: str = "QA-E013") -> IngestError:
    return IngestError(message, code=code, path=path)


def _norm(guid: str | None) -> str:
    return (guid or "").strip().strip("{}").lower()


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _kids(el: Element | None, name: str) -> Iterator[Element]:
    return (c for c in (el if el is not None else []) if _local(c.tag) == name)


def _kid(el: Element | None, name: str) -> Element | None:
    return next(_kids(el, name), None)


def _ref(el: Element, name: str) -> str:
    """Normalised ``targetGUID`` of the first ``name`` child ('' if absent)."""
    child = _kid(el, name)
    return _norm(child.get("targetGUID")) if child is not None else ""


def read_qdpx(path: str | Path, *, max_bytes: int = MAX_BYTES, max_members: int = MAX_MEMBERS,
              max_ratio: float = MAX_RATIO) -> QdpxProject:
    """Read a ``.qdpx`` in memory: users, codebook, text sources with text, coded selections, cases.

    Args:
        path: The ``.qdpx`` file (NVivo, QualCoder, ATLAS.ti, MAXQDA or this project's export).
        max_bytes: Limit of the archive's size and of its total uncompressed size.
        max_members: Limit of the number of archive members.
        max_ratio: Limit of the compression ratio of any member over 1 MiB.

    Returns:
        The project's content; nothing is written anywhere.

    Raises:
        IngestError: QA-E010 unreadable file; QA-E014 a size, count or ratio limit exceeded; QA-E013 not a
            zip, unsafe member names, symlinks, encryption, XML with a DTD, malformed XML, a missing member,
            a dangling reference or offsets outside the text; QA-E012 a source that is not UTF-8.
    """
    where = str(path)
    try:
        size = Path(path).stat().st_size
        if size > max_bytes:
            raise _fail(where, f"file is {size / MB:.1f} MB; the limit is max_bytes={max_bytes}", "QA-E014")
        data = Path(path).read_bytes()
    except OSError as err:
        raise _fail(where, f"file cannot be read ({type(err).__name__})", "QA-E010") from None
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as err:
        raise _fail(where, f"not a readable .qdpx: the zip container is corrupt ({type(err).__name__})") from None
    with archive:
        members = _check_members(archive.infolist(), where, max_bytes, max_members, max_ratio)
        read = _reader(archive, where, max_bytes)
        qde = _find_qde(members, where)
        root = _parse_xml(read(members[qde]), where, qde)
        if _local(root.tag) != "Project":
            raise _fail(where, f"{qde} is not a REFI-QDA project (root element {_local(root.tag)!r})")
        return _project(root, where, members, read)


def _check_members(infos: list[zipfile.ZipInfo], where: str, max_bytes: int, max_members: int,
                   max_ratio: float) -> dict[str, zipfile.ZipInfo]:
    """Check the central directory before any member is decompressed; return members by name."""
    if len(infos) > max_members:
        raise _fail(where, f"archive has {len(infos)} members; the limit is max_members={max_members}", "QA-E014")
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for number, info in enumerate(infos, start=1):
        name = info.filename
        if (name.startswith("/") or "\\" in name or ".." in name.split("/") or _DRIVE.match(name)
                or "\x00" in name):
            raise _fail(where, f"archive member {number} has an unsafe name {ascii(name)[:80]} (absolute path, "
                               "'..', drive letter or backslash); nothing was read")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise _fail(where, f"archive member {number} ({ascii(name)[:80]}) is a symbolic link; refused")
        if info.flag_bits & 0x1:
            raise _fail(where, f"archive member {number} is encrypted; refused")
        if name in members:
            raise _fail(where, f"archive holds two members named {ascii(name)[:80]}; refused")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_FLOOR and ratio > max_ratio:
            raise _fail(where, f"archive member {number} expands {ratio:.0f}x ({info.file_size / MB:.1f} MB); the "
                               f"limit is max_ratio={max_ratio:g} (possible zip bomb)", "QA-E014")
        members[name] = info
    if total > max_bytes:
        raise _fail(where, f"archive expands to {total / MB:.1f} MB; the limit is max_bytes={max_bytes}", "QA-E014")
    return members


def _reader(archive: zipfile.ZipFile, where: str, max_bytes: int) -> Callable[[zipfile.ZipInfo], bytes]:
    """A member reader that counts bytes against the declared size and the archive-wide limit."""
    used = 0

    def read(info: zipfile.ZipInfo) -> bytes:
        nonlocal used
        chunks, got = [], 0
        try:
            with archive.open(info) as fh:
                while chunk := fh.read(MB):
                    got += len(chunk)
                    used += len(chunk)
                    if got > info.file_size or used > max_bytes:
                        raise _fail(where, f"member {ascii(info.filename)[:80]} expands beyond its declared size "
                                           f"or the limit max_bytes={max_bytes}", "QA-E014")
                    chunks.append(chunk)
        except IngestError:
            raise
        except DECOMPRESS_ERRORS as err:
            raise _fail(where, f"member {ascii(info.filename)[:80]} cannot be decompressed "
                               f"({type(err).__name__}); the archive is corrupt") from None
        return b"".join(chunks)

    return read


def _find_qde(members: Mapping[str, zipfile.ZipInfo], where: str) -> str:
    if "project.qde" in members:
        return "project.qde"
    found = [n for n in members if "/" not in n and n.lower().endswith(".qde")]
    if len(found) != 1:
        raise _fail(where, f"archive must hold one project.qde (or one *.qde); found {len(found)}")
    return found[0]


def _parse_xml(data: bytes, where: str, member: str) -> Element:
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as err:
        raise _fail(where, f"{member} declares a DTD or entities ({type(err).__name__}); refused") from None
    except ParseError as err:
        line, column = getattr(err, "position", (None, None))
        raise IngestError(f"{member} is not well-formed XML", code="QA-E013", path=where, line=line,
                          column=None if column is None else column + 1) from None


def _source_member(members: Mapping[str, zipfile.ZipInfo], where: str, ref: str, owner: str) -> zipfile.ZipInfo:
    if not ref.startswith("internal://"):
        raise _fail(where, f"TextSource {owner} points outside the archive ({ref.split('://')[0]}://); only "
                           "internal:// sources can be imported")
    name = ref[len("internal://"):]
    if not name or "/" in name or "\\" in name or name in {".", ".."} or "\x00" in name:
        raise _fail(where, f"TextSource {owner} names an unsafe source file {ascii(name)[:80]}")
    wanted = f"sources/{name}"
    if wanted in members:
        return members[wanted]
    matches = [i for n, i in members.items() if n.lower() == wanted.lower()]  # NVivo Windows writes Sources/
    if len(matches) != 1:
        raise _fail(where, f"TextSource {owner} names sources/{ascii(name)[:80]}, which is not in the archive")
    return matches[0]


def _text(data: bytes, where: str, owner: str) -> str:
    data = data.removeprefix(b"\xef\xbb\xbf")  # readers strip a BOM (NOTES.md pitfall 2)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _fail(where, f"text of TextSource {owner} is not UTF-8 (byte {err.start})", "QA-E012") from None


def _position(el: Element, attr: str, where: str, owner: str) -> int:
    raw = el.get(attr) or ""
    if not _INT.match(raw):
        raise _fail(where, f"PlainTextSelection {owner} has a non-integer {attr}")
    return int(raw)


def _codes(root: Element) -> list[QdpxCode]:
    codes: list[QdpxCode] = []
    stack = [(c, None) for c in reversed(list(_kids(_kid(_kid(root, "CodeBook"), "Codes"), "Code")))]
    while stack:  # iterative: a hostile file may nest codes very deeply
        el, parent = stack.pop()
        guid = _norm(el.get("guid"))
        desc = _kid(el, "Description")
        codes.append(QdpxCode(guid, el.get("name") or guid, parent, (el.get("isCodable") or "true") != "false",
                              (desc.text or "") if desc is not None else ""))
        stack.extend((c, guid) for c in reversed(list(_kids(el, "Code"))))
    return codes


def _cases(root: Element, case_codings: Mapping[str, list[str]]) -> list[QdpxCase]:
    variables = {_norm(v.get("guid")): v.get("name") or "" for v in _kids(_kid(root, "Variables"), "Variable")}
    cases = []
    for el in _kids(_kid(root, "Cases"), "Case"):
        guid = _norm(el.get("guid"))
        values = []
        for vv in _kids(el, "VariableValue"):
            ref = _ref(vv, "VariableRef")
            value = next((c.text or "" for c in vv if _local(c.tag).endswith("Value")), "")
            values.append((variables.get(ref, ref), value))
        sels = [_norm(s.get("targetGUID")) for s in _kids(el, "SelectionRef")] + case_codings.get(guid, [])
        cases.append(QdpxCase(guid, el.get("name") or guid, tuple(_norm(s.get("targetGUID"))
                                                                 for s in _kids(el, "SourceRef")),
                              tuple(sels), tuple(values)))
    return cases


def _project(root: Element, where: str, members: Mapping[str, zipfile.ZipInfo],
             read: Callable[[zipfile.ZipInfo], bytes]) -> QdpxProject:
    users = {_norm(u.get("guid")): u.get("name") or u.get("id") or "" for u in _kids(_kid(root, "Users"), "User")}
    codes = _codes(root)
    code_ids = {c.guid for c in codes}
    case_ids = {_norm(c.get("guid")) for c in _kids(_kid(root, "Cases"), "Case")}
    case_codings: dict[str, list[str]] = {}
    sources, selections, skipped = [], [], 0
    for el in _kids(_kid(root, "Sources"), "TextSource"):
        sguid = _norm(el.get("guid"))
        if not sguid:
            raise _fail(where, "a TextSource has no guid")
        content = _kid(el, "PlainTextContent")
        if el.get("plainTextPath"):
            text = _text(read(_source_member(members, where, el.get("plainTextPath") or "", sguid)), where, sguid)
        else:
            text = (content.text or "") if content is not None else ""
        desc = _kid(el, "Description")
        sources.append(QdpxSource(sguid, el.get("name") or sguid, text, (desc.text or "") if desc is not None else ""))
        for sel in _kids(el, "PlainTextSelection"):
            selections.append(_selection(sel, sguid, text, where, users, code_ids, case_ids, case_codings))
        skipped += sum(1 for _ in _kids(el, "Coding"))
    if skipped:
        logger.info("%s: %d whole-source codings have no span and were not imported", where, skipped)
    return QdpxProject(where, root.get("name") or "", root.get("origin") or "", users, tuple(codes), tuple(sources),
                       tuple(selections), tuple(_cases(root, case_codings)))


def _selection(el: Element, source: str, text: str, where: str, users: Mapping[str, str], code_ids: set[str],
               case_ids: set[str], case_codings: dict[str, list[str]]) -> QdpxSelection:
    guid = _norm(el.get("guid"))
    start, end = _position(el, "startPosition", where, guid), _position(el, "endPosition", where, guid)
    if not 0 <= start < end <= len(text):
        raise _fail(where, f"PlainTextSelection {guid} of TextSource {source}: offsets {start}..{end} are outside "
                           f"the text (length {len(text)} code points)")
    codes, user = [], _norm(el.get("creatingUser"))
    for coding in _kids(el, "Coding"):
        ref = _ref(coding, "CodeRef")
        user = _norm(coding.get("creatingUser")) or user
        if ref in code_ids:
            codes.append(ref)
        elif ref in case_ids:  # NVivo codes selections to cases through Case GUIDs
            case_codings.setdefault(ref, []).append(guid)
        else:
            raise _fail(where, f"Coding in PlainTextSelection {guid} refers to code {ref or '(none)'}, which is "
                               "not in the codebook")
    return QdpxSelection(guid, source, start, end, tuple(dict.fromkeys(codes)), users.get(user, user),
                         text[start:end], el.get("name") or "")


def qdpx_to_training_csv(project: QdpxProject, path: str | Path, *, codebook: Codebook | None = None) -> Path:
    """Write the human-coded training CSV: one row per coded selection.

    Columns (:data:`TRAINING_COLUMNS`): ``document_id`` (source name, else its GUID), ``speaker`` (from
    this project's selection names such as ``client turn 3``; empty if unknown), ``text`` (the selection's
    slice of the source text), ``codes`` (``;``-separated; codebook ids where a code's name or id matches a
    code of ``codebook``, else the code's name) and ``segment_id`` (the selection GUID). Text cells that
    begin with ``= + - @`` tab CR LF get a leading ``'`` (the file came from outside; see
    :func:`pipeline.io.safe_cell`).

    Args:
        project: From :func:`read_qdpx`.
        path: Target CSV (written atomically, 0600).
        codebook: Maps code names back to codebook ids.

    Returns:
        The written path.
    """
    lookup: dict[str, str] = {}
    if codebook is not None:
        for item in [*codebook.parents, *codebook.codes]:
            lookup[item.name.casefold()] = item.id
            lookup[item.id.casefold()] = item.id
    codes = {c.guid: lookup.get(c.name.casefold(), c.name) for c in project.codes}
    names = {s.guid: s.name or s.guid for s in project.sources}
    rows = []
    for sel in project.selections:
        labels = sorted({codes[g] for g in sel.codes})
        if labels:
            match = _SPEAKER.match(sel.name)
            rows.append([names[sel.source], match.group(1) if match else "", sel.text, ";".join(labels), sel.guid])
    return write_csv(Path(path), TRAINING_COLUMNS, rows)
