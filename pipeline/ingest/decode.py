"""Turn raw bytes into clean text: decode, repair mojibake, normalise, check line lengths.

Order: byte-order mark -> strict UTF-8 -> charset-normalizer's best guess (used only when it is
confident and not merely a sibling of cp1252) -> cp1252. A fallback decode is kept and recorded as a
``repaired`` problem naming the first line with an invalid UTF-8 byte. Mojibake (UTF-8 read as cp1252)
is fixed with ftfy only where ftfy changes a line. The result is NFC with LF line ends, so line ``n``
of the text is line ``n`` of the file.
"""

from __future__ import annotations

import codecs
import logging
import re
import unicodedata
from dataclasses import dataclass, field

import charset_normalizer
import ftfy
from ftfy.badness import is_bad

from pipeline.errors import IngestError
from pipeline.ingest.base import Problem, ReadContext

__all__ = ["DecodedText", "check_line_lengths", "decode_text", "normalize_text"]

logger = logging.getLogger(__name__)

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")
_SURROGATE_BYTE = re.compile("[\udc80-\udcff]")
_MAX_CHAOS = 0.2  # charset-normalizer mess ratio above which a guess is not trusted
_FALLBACK = "cp1252"


@dataclass
class DecodedText:
    """Decoded, normalised text of a file and the repairs made on the way."""

    text: str
    encoding: str
    problems: list[Problem] = field(default_factory=list)


def decode_text(ctx: ReadContext) -> DecodedText:
    """Decode ``ctx.data`` to NFC text with LF line ends.

    Args:
        ctx: The file's read context.

    Returns:
        The text, the encoding used and ``repaired`` problems (QA-E012) for fallbacks and mojibake.

    Raises:
        IngestError: QA-E011 for an empty file, QA-E012 when a byte-order mark lies, QA-E013 for binary
            content, QA-E014 for a line over ``cfg.max_line_chars``.
    """
    data = ctx.data
    if not data.strip():
        raise IngestError("file is empty or holds only whitespace", code="QA-E011", path=ctx.source_path)
    problems: list[Problem] = []
    text, encoding = _decode_with_bom(data, ctx)
    if text is None:
        text, encoding, problem = _decode_without_bom(data, ctx)
        if problem is not None:
            problems.append(problem)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    check_line_lengths(text.split("\n"), ctx)  # before the costly steps (ftfy scans ~1 s/MB); again after NFC
    text, fixed = _fix_mojibake(text, ctx)
    problems.extend(fixed)
    text = unicodedata.normalize("NFC", text)
    check_line_lengths(text.split("\n"), ctx)
    return DecodedText(text=text, encoding=encoding, problems=problems)


def normalize_text(text: str) -> str:
    """Return ``text`` as NFC with LF line ends (for text from docx/xlsx, which need no decoding)."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))


def check_line_lengths(lines: list[str], ctx: ReadContext, *, unit: str = "line") -> None:
    """Raise QA-E014 naming the first line (or paragraph) longer than ``cfg.max_line_chars``.

    Raises:
        IngestError: QA-E014 with the 1-based line number.
    """
    limit = ctx.cfg.max_line_chars
    for number, line in enumerate(lines, start=1):
        if len(line) > limit:
            raise IngestError(
                f"{unit} {number} has {len(line)} characters; the limit is max_line_chars={limit}",
                code="QA-E014", path=ctx.source_path, line=number,
            )


def _decode_with_bom(data: bytes, ctx: ReadContext) -> tuple[str | None, str]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError as err:
                line = _line_of_offset(data, err.start)
                raise IngestError(
                    f"file starts with a {encoding} byte-order mark but is not valid {encoding} "
                    f"(first bad byte at line {line})",
                    code="QA-E012", path=ctx.source_path, line=line,
                ) from None
            return text.lstrip("\ufeff"), encoding
    return None, ""


def _decode_without_bom(data: bytes, ctx: ReadContext) -> tuple[str, str, Problem | None]:
    try:
        return data.decode("utf-8"), "utf-8", None
    except UnicodeDecodeError as err:
        bad_line = _line_of_offset(data, err.start)
    encoding = _guess_encoding(data)
    if b"\x00" in data and not encoding.startswith("utf_"):
        raise IngestError(
            "file holds NUL bytes and no known text encoding fits; it looks binary",
            code="QA-E013", path=ctx.source_path, line=bad_line,
        )
    text = _decode_cp1252(data) if encoding == _FALLBACK else data.decode(encoding, errors="replace")
    logger.info("%s: not valid UTF-8, decoded as %s", ctx.source_path, encoding)
    problem = ctx.problem(
        "QA-E012", "repaired",
        f"not valid UTF-8 (first bad byte at line {bad_line}); decoded as {encoding}",
        line=bad_line,
    )
    return text, encoding, problem


def _guess_encoding(data: bytes) -> str:
    """Return charset-normalizer's guess when confident, preferring cp1252 among equals."""
    results = charset_normalizer.from_bytes(data)
    best = results.best()
    if best is None or best.chaos > _MAX_CHAOS:
        return _FALLBACK
    for match in results:
        same_quality = match.chaos <= best.chaos + 0.01 and match.coherence >= best.coherence - 0.05
        if same_quality and _FALLBACK in match.could_be_from_charset:
            return _FALLBACK
    return str(best.encoding)


def _decode_cp1252(data: bytes) -> str:
    """Decode cp1252 as browsers do: the five undefined bytes map to the C1 code points."""
    text = data.decode(_FALLBACK, errors="surrogateescape")
    return _SURROGATE_BYTE.sub(lambda m: chr(ord(m.group()) - 0xDC00), text)


def _fix_mojibake(text: str, ctx: ReadContext) -> tuple[str, list[Problem]]:
    if text.isascii() or not is_bad(text):  # mojibake is never pure ASCII; is_bad costs ~1 s per MB
        return text, []
    lines = text.split("\n")
    changed: list[int] = []
    for index, line in enumerate(lines):
        fixed = ftfy.fix_encoding(line)
        if fixed != line:
            lines[index] = fixed
            changed.append(index + 1)
    if not changed:
        return text, []
    logger.info("%s: mojibake repaired in %d line(s)", ctx.source_path, len(changed))
    problem = ctx.problem(
        "QA-E012", "repaired",
        f"mojibake (UTF-8 text decoded as cp1252) repaired in {len(changed)} line(s); first at line {changed[0]}",
        line=changed[0],
    )
    return "\n".join(lines), [problem]


def _line_of_offset(data: bytes, offset: int) -> int:
    """1-based line number of byte ``offset`` (CRLF, CR and LF all end a line)."""
    return len(_LINE_BREAK_BYTES.findall(data, 0, offset)) + 1
