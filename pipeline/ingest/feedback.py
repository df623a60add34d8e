"""Feedback spreadsheets, format-independent part: header mapping and one row -> one document.

Headers are matched against ``cfg.feedback_columns`` ignoring case and space/underscore/hyphen
differences; the ``text`` column is required. Every other column lands in the document's metadata
under its header name; mapped columns land under ``case_id``, ``session`` (int), ``date`` (ISO) and
``clinician``. A row's ``record_key`` is its response id, else ``row-<n>`` with ``n`` the physical
line (csv) or Excel row (xlsx); its ``source_sha256`` is the sha256 of
``json.dumps(row, sort_keys=True, default=str)``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.errors import IngestError
from pipeline.ingest.base import Problem, RawDocument, RawTurn, ReadContext, sha256_hex
from pipeline.ingest.decode import normalize_text
from pipeline.ingest.metadata import jsonable, normalize_date, normalize_session

__all__ = ["ColumnMap", "RowReader", "map_columns"]

_MAPPED = ("case_id", "session", "date", "clinician")
_SEPARATORS = re.compile(r"[\s_\-]+")


@dataclass(frozen=True)
class ColumnMap:
    """Unique header names and the column index of each mapped field."""

    headers: tuple[str, ...]
    text: int
    fields: dict[str, int]


def map_columns(raw_headers: Sequence[object], ctx: ReadContext, line: int) -> ColumnMap:
    """Map a header row to feedback fields.

    Args:
        raw_headers: Header cells as read.
        ctx: The file's read context (``cfg.feedback_columns``).
        line: Line (or Excel row) of the header, for the error.

    Raises:
        IngestError: QA-E013 when no header matches a ``text`` candidate (the file is quarantined).
    """
    headers = _unique_headers(raw_headers)
    folded = [_fold(h) for h in headers]
    candidates = ctx.cfg.feedback_columns.model_dump()
    found: dict[str, int] = {}
    for name, options in candidates.items():
        for option in options:
            if _fold(option) in folded:
                found[name] = folded.index(_fold(option))
                break
    if "text" not in found:
        raise IngestError(
            f"no comment column; expected one of {candidates['text']} in the header",
            code="QA-E013", path=ctx.source_path, line=line,
        )
    text = found.pop("text")
    return ColumnMap(headers=tuple(headers), text=text, fields=found)


def _fold(header: str) -> str:
    """Compare headers ignoring case and space/underscore/hyphen differences (``Response ID``)."""
    return _SEPARATORS.sub("_", header.strip().casefold())


def _unique_headers(raw: Sequence[object]) -> list[str]:
    headers: list[str] = []
    seen: set[str] = set()  # a set: a list made 50,000 columns quadratic (minutes)
    for index, cell in enumerate(raw, start=1):
        name = str(cell).strip() if cell is not None else ""
        name = name or f"column_{index}"
        while name in seen:
            name = f"{name}_{index}"
        headers.append(name)
        seen.add(name)
    return headers


def cell_text(value: object) -> str | None:
    """A cell as stripped text (whole floats without ``.0``, dates as ISO); ``None`` when empty."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dt.datetime | dt.date):
        value = value.isoformat()
    text = normalize_text(str(value)).strip()
    return text or None


def _json_value(value: object) -> object:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return jsonable(value)


@dataclass
class RowReader:
    """Turns the rows of one spreadsheet into documents, remembering record ids seen."""

    ctx: ReadContext
    columns: ColumnMap
    encoding: str
    documents: list[RawDocument] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    empty: int = 0
    _seen: dict[str, int] = field(default_factory=dict)

    def add(self, values: Sequence[object], line: int) -> None:
        """Read one data row (already known to have a valid shape) found at ``line``."""
        row = self._row_dict(values)
        text = cell_text(values[self.columns.text] if self.columns.text < len(values) else None)
        if text is None:
            self.empty += 1
            return
        key = self._record_key(values, line)
        if key in self._seen:
            self.skip(line, f"duplicate record id (first seen at line {self._seen[key]}); row skipped")
            return
        self._seen[key] = line
        metadata = self._metadata(row, values, line)
        names = list(self.ctx.known_names)
        if isinstance(metadata.get("clinician"), str):
            names.append(str(metadata["clinician"]))
        canonical = json.dumps(row, sort_keys=True, default=str)
        self.documents.append(RawDocument(
            source_path=self.ctx.source_path,
            record_key=key,
            source_sha256=sha256_hex(canonical.encode("utf-8")),
            source_type=self.ctx.source_type or "feedback",
            source_format=self.ctx.source_format,
            encoding=self.encoding,
            metadata=metadata,
            turns=[RawTurn(None, "client", text, line)],
            known_names=list(dict.fromkeys(names)),
        ))

    def skip(self, line: int, reason: str, code: str = "QA-E015") -> None:
        """Record a skipped row."""
        self.problems.append(self.ctx.problem(code, "row_skipped", reason, line=line))

    def _row_dict(self, values: Sequence[object]) -> dict[str, object]:
        headers = self.columns.headers
        row = {h: _json_value(values[i]) if i < len(values) else None for i, h in enumerate(headers)}
        for index in range(len(headers), len(values)):
            if values[index] not in (None, ""):
                row[f"column_{index + 1}"] = _json_value(values[index])
        return row

    def _record_key(self, values: Sequence[object], line: int) -> str:
        index = self.columns.fields.get("record_id")
        value = cell_text(values[index]) if index is not None and index < len(values) else None
        return value or f"row-{line}"

    def _metadata(self, row: dict[str, object], values: Sequence[object], line: int) -> dict[str, object]:
        metadata = dict(self.ctx.metadata)
        skip = {self.columns.headers[self.columns.text]}
        skip |= {self.columns.headers[i] for i in self.columns.fields.values()}
        metadata.update({k: v for k, v in row.items() if k not in skip})
        for name in _MAPPED:
            index = self.columns.fields.get(name)
            if index is None or index >= len(values) or values[index] in (None, ""):
                continue
            metadata[name] = self._mapped_value(name, values[index], line)
        return {k: v for k, v in metadata.items() if v is not None}

    def _mapped_value(self, name: str, value: object, line: int) -> object:
        if name == "session":
            try:
                return normalize_session(value)
            except ValueError:
                self.problems.append(self.ctx.problem(
                    "QA-E015", "repaired", "session value is not a whole number; left empty", line=line
                ))
                return None
        if name == "date":
            return normalize_date(value if isinstance(value, dt.date) else cell_text(value))
        return cell_text(value)
