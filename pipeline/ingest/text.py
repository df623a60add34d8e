"""Readers for plain-text (``.txt``) and Word (``.docx``) transcripts.

Both reduce the file to numbered units and hand them to :func:`pipeline.ingest.turns.split_turns`.
For txt a unit is a line (``source_line`` is the file line). For docx a unit is a *block* in body
order: a paragraph, a table row laid out as ``speaker | text`` (leading timestamp cells are skipped),
or else one table cell; ``source_line`` is that 1-based block number. Only the body is read: headers,
footers, footnotes, comments and document properties are never opened (they are not part of the
transcript and often carry names). Bold label runs are plain text here.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import docx
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from pipeline.errors import IngestError
from pipeline.ingest.base import IngestResult, ReadContext
from pipeline.ingest.decode import check_line_lengths, decode_text, normalize_text
from pipeline.ingest.guards import check_zip
from pipeline.ingest.turns import Unit, build_transcript, split_turns

__all__ = ["read_docx", "read_txt"]

_TIME_CELL = re.compile(r"^[\[#(]?\d{1,2}(?::\d{1,2}){1,2}(?:[.,]\d{1,3})?[\]#)]?(?:\s*[-–]\s*\S+)?$")
_MAX_NESTING = 5


def read_txt(ctx: ReadContext) -> IngestResult:
    """Read a plain-text transcript (any layout in :mod:`pipeline.ingest.turns`).

    Raises:
        IngestError: QA-E011 (empty), QA-E012/QA-E013 (encoding, binary), QA-E014 (line too long).
    """
    decoded = decode_text(ctx)
    units = list(enumerate(decoded.text.split("\n"), start=1))
    turns = split_turns(units, ctx)
    return build_transcript(ctx, turns, decoded.encoding, decoded.problems)


def read_docx(ctx: ReadContext) -> IngestResult:
    """Read the body of a Word transcript: paragraphs and table cells, in order.

    Raises:
        IngestError: QA-E013 (corrupt archive or not a Word document), QA-E014 (zip bomb, size,
            paragraph too long), QA-E011 (no text).
    """
    check_zip(ctx.data, ctx.source_path, ctx.cfg, "docx")
    try:
        document = docx.Document(io.BytesIO(ctx.data))
        texts = list(_body_texts(document.iter_inner_content()))
    except IngestError:
        raise
    except Exception as err:  # python-docx/lxml raise many types for broken packages
        raise IngestError(
            f"not a readable Word document ({type(err).__name__}); open and re-save it in Word",
            code="QA-E013", path=ctx.source_path,
        ) from None
    check_line_lengths(texts, ctx, unit="paragraph")
    units: list[Unit] = list(enumerate(texts, start=1))
    turns = split_turns(units, ctx)
    return build_transcript(ctx, turns, "docx", [])


def _body_texts(blocks: Iterator[Paragraph | Table], depth: int = 0) -> Iterator[str]:
    for block in blocks:
        if isinstance(block, Paragraph):
            yield normalize_text(block.text)
        elif depth < _MAX_NESTING:
            for row in block.rows:
                yield from _row_texts(_unique_cells(row.cells), depth)


def _unique_cells(cells: list[_Cell]) -> list[_Cell]:
    """Merged cells are returned once per grid column; keep each once."""
    seen: set[int] = set()
    unique = []
    for cell in cells:
        if id(cell._tc) not in seen:  # noqa: SLF001 - identity of the underlying XML element
            seen.add(id(cell._tc))  # noqa: SLF001
            unique.append(cell)
    return unique


def _row_texts(cells: list[_Cell], depth: int) -> Iterator[str]:
    texts = ["\n".join(_body_texts(cell.iter_inner_content(), depth + 1)).strip() for cell in cells]
    texts = [t for t in texts if t]
    content = [t for t in texts if not _TIME_CELL.match(t)]
    if len(content) >= 2 and _is_label_cell(content[0]):
        yield f"{content[0]}: " + " ".join(content[1:])
    else:
        yield from texts


def _is_label_cell(text: str) -> bool:
    return len(text) <= 40 and "\n" not in text and ":" not in text and not text.endswith((".", "?", "!"))
