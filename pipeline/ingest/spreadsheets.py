"""Readers for feedback exports: ``.csv`` (csv module) and ``.xlsx`` (openpyxl, values only).

CSV is parsed with :mod:`csv` in strict mode over the decoded lines so every problem has a physical
line. A row with the wrong number of fields, or with an unterminated or stray quote, is skipped
(QA-E015, ``row_skipped``) and parsing resumes on the next line, so the rows a bad quote would have
swallowed are kept. The delimiter is the most frequent of ``,`` ``;`` tab ``|`` in the header line.

XLSX is opened with ``read_only=True, data_only=True``: formulas are never evaluated (a formula cell
gives its cached value, or nothing). With defusedxml installed openpyxl refuses DTDs (QA-E013).
Lines are Excel row numbers.
"""

from __future__ import annotations

import csv
import io
import logging
import warnings
from collections.abc import Iterator, Sequence

import openpyxl

from pipeline.errors import IngestError
from pipeline.ingest.base import IngestResult, ReadContext
from pipeline.ingest.decode import decode_text
from pipeline.ingest.feedback import RowReader, cell_text, map_columns
from pipeline.ingest.guards import check_zip

__all__ = ["read_csv", "read_xlsx"]

logger = logging.getLogger(__name__)

_DELIMITERS = (",", ";", "\t", "|")


def read_csv(ctx: ReadContext) -> IngestResult:
    """Read a feedback CSV export: one document per row with a comment.

    Raises:
        IngestError: QA-E011 (empty, or no row with a comment), QA-E013 (no comment column),
            QA-E012/QA-E014 (encoding, line length).
    """
    decoded = decode_text(ctx)
    lines = [line + "\n" for line in decoded.text.split("\n")]
    delimiter = _sniff_delimiter(lines)
    records = _csv_records(lines, delimiter)
    header = next(((n, f) for n, f, err in records if err is None and any(x.strip() for x in f)), None)
    if header is None:
        raise IngestError("no header row found", code="QA-E011", path=ctx.source_path)
    columns = map_columns(header[1], ctx, header[0])
    reader = RowReader(ctx, columns, decoded.encoding, problems=list(decoded.problems))
    for line, fields, error in records:
        if line <= header[0]:
            continue
        if error is not None:
            reader.skip(line, error)
        elif any(f.strip() for f in fields):
            if len(fields) != len(columns.headers):
                reader.skip(line, f"row has {len(fields)} fields; the header has {len(columns.headers)}")
            else:
                reader.add(fields, line)
    return _finish(ctx, reader)


def _csv_records(lines: list[str], delimiter: str) -> list[tuple[int, list[str], str | None]]:
    """``(start line, fields, error or None)`` for every record; resumes after bad quoting."""
    records: list[tuple[int, list[str], str | None]] = []
    width: int | None = None
    pos = 0
    while pos < len(lines):
        restart = None
        rest = (lines[i] for i in range(pos, len(lines)))  # no copy: restarts stay linear
        reader = csv.reader(rest, delimiter=delimiter, strict=True)
        done = 0
        try:
            for fields in reader:
                start, done = pos + done + 1, reader.line_num
                if width is None and any(f.strip() for f in fields):
                    width = len(fields)
                spans = pos + done > start
                if spans and width is not None and len(fields) != width:
                    records.append((start, [], f"row has {len(fields)} fields; the header has {width}"))
                    restart = start
                    break
                records.append((start, fields, None))
        except csv.Error as err:
            start = pos + done + 1
            records.append((start, [], _csv_reason(err)))
            restart = start
        if restart is None:
            break
        pos = restart
    return records


def _csv_reason(err: csv.Error) -> str:
    if "field larger" in str(err):
        return f"a field is longer than the csv field limit ({csv.field_size_limit()} characters)"
    return "row has an unterminated or stray quote character"


def _sniff_delimiter(lines: Sequence[str]) -> str:
    first = next((line for line in lines if line.strip()), "")
    counts = {d: first.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def read_xlsx(ctx: ReadContext) -> IngestResult:
    """Read a feedback workbook (``cfg.feedback_sheet`` or the first sheet): one document per row.

    Raises:
        IngestError: QA-E013 (corrupt workbook, DTD, missing sheet, no comment column), QA-E014 (zip
            bomb), QA-E011 (no row with a comment).
    """
    check_zip(ctx.data, ctx.source_path, ctx.cfg, "xlsx")
    workbook = _open_workbook(ctx)
    try:
        rows = list(_sheet_rows(workbook, ctx))
    except IngestError:
        raise
    except Exception as err:  # openpyxl raises many types for broken sheet XML
        raise _not_readable(ctx, err) from None
    finally:
        workbook.close()
    header = next(((n, r) for n, r in rows if any(cell_text(v) for v in r)), None)
    if header is None:
        raise IngestError("the sheet has no header row", code="QA-E011", path=ctx.source_path)
    columns = map_columns(header[1], ctx, header[0])
    reader = RowReader(ctx, columns, "xlsx")
    limit = ctx.cfg.max_line_chars
    for number, values in rows:
        if number <= header[0] or not any(cell_text(v) for v in values):
            continue
        if any(isinstance(v, str) and len(v) > limit for v in values):
            reader.skip(number, f"a cell is longer than max_line_chars={limit}", code="QA-E014")
            continue
        reader.add(values, number)
    return _finish(ctx, reader)


def _open_workbook(ctx: ReadContext) -> openpyxl.Workbook:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return openpyxl.load_workbook(io.BytesIO(ctx.data), read_only=True, data_only=True)
    except Exception as err:  # zip, XML, DTD (defusedxml) and format errors
        raise _not_readable(ctx, err) from None


def _sheet_rows(workbook: openpyxl.Workbook, ctx: ReadContext) -> Iterator[tuple[int, tuple[object, ...]]]:
    name = ctx.cfg.feedback_sheet
    if name is not None and name not in workbook.sheetnames:
        raise IngestError(
            f"sheet {name!r} (feedback_sheet) not found; the workbook has {len(workbook.sheetnames)} sheet(s)",
            code="QA-E013", path=ctx.source_path,
        )
    sheet = workbook[name] if name is not None else workbook.worksheets[0]
    if hasattr(sheet, "reset_dimensions"):
        sheet.reset_dimensions()  # stored dimensions can be wrong; read every row present
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield from enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1)


def _not_readable(ctx: ReadContext, err: Exception) -> IngestError:
    return IngestError(
        f"not a readable Excel workbook ({type(err).__name__}); workbooks with DTDs or entity "
        "declarations are refused; re-save the export from Excel",
        code="QA-E013", path=ctx.source_path,
    )


def _finish(ctx: ReadContext, reader: RowReader) -> IngestResult:
    if reader.empty:
        logger.debug("%s: %d row(s) with an empty comment skipped", ctx.source_path, reader.empty)
    problems = list(reader.problems)
    if not reader.documents:
        problems.append(ctx.problem("QA-E011", "quarantined", "no row with a comment was read (0 documents)"))
    return IngestResult(documents=reader.documents, problems=problems)
