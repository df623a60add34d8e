"""The data contract: declared tables passed between stages, and their validation.

Tables are pandas DataFrames with a declared, ordered list of columns. :func:`validate_frame` checks a
frame against its declaration and raises :class:`~pipeline.errors.SchemaError` naming the table, the
column, the stage and the first offending ids.

Offsets (``start_char``, ``end_char``) are Unicode code points into the **de-identified** document
text (``DOCUMENT.text``), end exclusive, and ``SEGMENT.text == DOCUMENT.text[start_char:end_char]``
always holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from pipeline.errors import SchemaError

__all__ = [
    "ASSIGNMENT",
    "DOCUMENT",
    "QUARANTINE",
    "SEGMENT",
    "TABLES",
    "TOPIC",
    "TURN",
    "Column",
    "Table",
    "empty_frame",
    "validate_frame",
    "validate_offsets",
]

SPEAKER_ROLES = ("client", "therapist", "interviewer", "unknown")
SOURCE_TYPES = ("interview", "session", "feedback")


@dataclass(frozen=True)
class Column:
    """One declared column: name, kind, nullability and meaning."""

    name: str
    kind: str  # "str" | "int" | "float" | "bool"
    nullable: bool = False
    description: str = ""
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Table:
    """A declared table: its columns and the columns that together are unique."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    description: str = ""

    @property
    def column_names(self) -> list[str]:
        """Column names in declared order."""
        return [c.name for c in self.columns]


DOCUMENT = Table(
    "DOCUMENT",
    (
        Column("document_id", "str", description="stable id: hash of corpus path, record key and content"),
        Column("corpus_id", "str", description="corpus name from the run config"),
        Column("source_path", "str", description="path relative to the corpus root"),
        Column("record_key", "str", description="row id within a spreadsheet export; '' for whole files"),
        Column("source_sha256", "str", description="sha256 of the item's raw content"),
        Column("source_type", "str", choices=SOURCE_TYPES, description="interview | session | feedback"),
        Column("source_format", "str", description="txt | docx | vtt | srt | csv | xlsx"),
        Column("case_id", "str", nullable=True, description="client / participant id"),
        Column("session", "int", nullable=True, description="session number"),
        Column("collected_at", "str", nullable=True, description="date, generalised per config (ISO)"),
        Column("clinician", "str", nullable=True, description="clinician pseudonym, never a real name"),
        Column("encoding", "str", description="encoding the bytes were decoded with"),
        Column("metadata", "str", description="JSON object of further de-identified metadata"),
        Column("text", "str", description="canonical de-identified text; offsets refer to it"),
    ),
    key=("document_id",),
    description="One row per document (a transcript file or one feedback response).",
)

TURN = Table(
    "TURN",
    (
        Column("document_id", "str"),
        Column("turn_index", "int", description="0-based position of the turn in the document"),
        Column("speaker", "str", choices=SPEAKER_ROLES, description="speaker role"),
        Column("speaker_label", "str", description="de-identified label, e.g. [THERAPIST_1]"),
        Column("start_char", "int"),
        Column("end_char", "int"),
        Column("source_line", "int", nullable=True, description="1-based line in the raw file"),
        Column("start_time", "str", nullable=True, description="media time of the turn (transcripts)"),
        Column("text", "str"),
    ),
    key=("document_id", "turn_index"),
    description="Speaker turns; their text is a slice of DOCUMENT.text.",
)

SEGMENT = Table(
    "SEGMENT",
    (
        Column("segment_id", "str", description="hash of document_id and offsets"),
        Column("document_id", "str"),
        Column("speaker", "str", choices=SPEAKER_ROLES),
        Column("turn_index", "int"),
        Column("start_char", "int", description="code point offset into DOCUMENT.text (inclusive)"),
        Column("end_char", "int", description="code point offset into DOCUMENT.text (exclusive)"),
        Column("source_line", "int", nullable=True),
        Column("text", "str", description="== DOCUMENT.text[start_char:end_char]"),
    ),
    key=("segment_id",),
    description="The unit every coder reads: a sentence (or turn) of one speaker.",
)

ASSIGNMENT = Table(
    "ASSIGNMENT",
    (
        Column("segment_id", "str"),
        Column("code_id", "str", description="codebook code id, e.g. WA.VAL.VALIDATION"),
        Column("coder", "str", description="registry name of the coder, or human:<name>"),
        Column("score", "float", description="confidence in [0, 1]"),
        Column("label", "bool", description="True when the code is assigned"),
        Column("evidence", "str", description="matched pattern id, exemplar id or topic id"),
        Column("run_id", "str"),
    ),
    key=("segment_id", "code_id", "coder"),
    description="Long format: one row per segment x code x coder.",
)

QUARANTINE = Table(
    "QUARANTINE",
    (
        Column("file", "str", description="path relative to the corpus root"),
        Column("line", "int", nullable=True),
        Column("code", "str", description="error catalogue code"),
        Column("action", "str", choices=("quarantined", "row_skipped", "repaired"),
               description="what happened to the data"),
        Column("error", "str", description="clear reason; never participant text"),
    ),
    key=("file", "line", "code"),
    description="Every input problem of a run: skipped files and rows, and repairs.",
)

TOPIC = Table(
    "TOPIC",
    (
        Column("topic_id", "int", description="topic number of coder.topics.v1 (0 = largest at fit time)"),
        Column("label", "str", description="the mapped code's name, else the suggested label"),
        Column("code_id", "str", description="mapped codebook code id, or a candidate-theme id TOPIC.nn"),
        Column("code_name", "str", nullable=True, description="name of the mapped code; null for candidate themes"),
        Column("candidate", "bool", description="True when the topic matches no code (a candidate new theme)"),
        Column("size", "int", description="segments in the topic at fit time"),
        Column("share", "float", description="size / fitted segments"),
        Column("top_terms", "str", description="c-TF-IDF terms, '; '-separated, best first"),
        Column("suggested_label", "str", description="label from the top three terms"),
        Column("similarity", "float", description="centred cosine of the topic to its nearest code"),
    ),
    key=("topic_id",),
    description="Emergent topics of a run (topics.parquet); no participant text.",
)

TABLES = {t.name: t for t in (DOCUMENT, TURN, SEGMENT, ASSIGNMENT, QUARANTINE, TOPIC)}

_KIND_CHECK = {
    "str": pd.api.types.is_string_dtype,
    "int": pd.api.types.is_integer_dtype,
    "float": pd.api.types.is_float_dtype,
    "bool": pd.api.types.is_bool_dtype,
}
_PANDAS_DTYPE = {"str": "string", "int": "Int64", "float": "float64", "bool": "bool"}


def empty_frame(table: Table) -> pd.DataFrame:
    """Return an empty frame with the table's columns and dtypes."""
    return pd.DataFrame({c.name: pd.Series(dtype=_dtype(c)) for c in table.columns})


def _dtype(col: Column) -> str:
    if col.kind == "int" and not col.nullable:
        return "int64"
    return _PANDAS_DTYPE[col.kind]


def coerce_frame(df: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Return ``df`` with the table's column order and dtypes (a new frame)."""
    out = pd.DataFrame(index=df.index)
    for col in table.columns:
        if col.name not in df.columns:
            raise SchemaError(
                f"Column {col.name!r} is missing from table {table.name}.", column=col.name, table=table.name
            )
        out[col.name] = df[col.name].astype(_dtype(col))
    return out.reset_index(drop=True)


def _first_ids(df: pd.DataFrame, mask: pd.Series, table: Table, n: int = 5) -> list[str]:
    key = list(table.key)
    rows = df.loc[mask, key].head(n)
    return ["/".join(str(v) for v in row) for row in rows.itertuples(index=False)]


def validate_frame(df: pd.DataFrame, table: Table, *, stage: str = "") -> None:
    """Check ``df`` against ``table``; raise :class:`SchemaError` on the first violation.

    Checks column presence and order-independent set, dtype kinds, nulls in non-nullable columns,
    allowed choices, key uniqueness, and for tables with offsets ``0 <= start_char < end_char``.

    Raises:
        SchemaError: naming the table, column, stage and first offending ids.
    """
    where = f" (stage {stage})" if stage else ""
    missing = [c for c in table.column_names if c not in df.columns]
    if missing:
        raise SchemaError(
            f"Table {table.name}{where} lacks columns {missing}. Expected {table.column_names}.",
            table=table.name, column=missing[0], stage=stage,
        )
    extra = [c for c in df.columns if c not in table.column_names]
    if extra:
        raise SchemaError(
            f"Table {table.name}{where} has undeclared columns {extra}.",
            table=table.name, column=extra[0], stage=stage,
        )
    for col in table.columns:
        _check_column(df, table, col, where, stage)
    dup = df.duplicated(list(table.key), keep=False)
    if dup.any():
        ids = _first_ids(df, dup, table)
        raise SchemaError(
            f"Table {table.name}{where}: key {list(table.key)} is not unique; first duplicates {ids}.",
            table=table.name, column=table.key[0], stage=stage, ids=ids,
        )
    if "start_char" in df.columns and len(df):
        bad = (df["start_char"] < 0) | (df["start_char"] >= df["end_char"])
        if bad.any():
            ids = _first_ids(df, bad, table)
            raise SchemaError(
                f"Table {table.name}{where}: need 0 <= start_char < end_char; first offending {ids}.",
                table=table.name, column="start_char", stage=stage, ids=ids,
            )


def _check_column(df: pd.DataFrame, table: Table, col: Column, where: str, stage: str) -> None:
    series = df[col.name]
    if len(series) and not series.isna().all() and not _KIND_CHECK[col.kind](series.dtype):
        raise SchemaError(
            f"Column {table.name}.{col.name}{where} must hold {col.kind} values. Got dtype {series.dtype}.",
            table=table.name, column=col.name, stage=stage,
        )
    nulls = series.isna()
    if not col.nullable and nulls.any():
        ids = _first_ids(df, nulls, table)
        raise SchemaError(
            f"Column {table.name}.{col.name}{where} must not be null; first null rows {ids}.",
            table=table.name, column=col.name, stage=stage, ids=ids,
        )
    if col.choices is not None:
        bad = ~series.isin(col.choices) & ~nulls
        if bad.any():
            ids = _first_ids(df, bad, table)
            raise SchemaError(
                f"Column {table.name}.{col.name}{where} must be one of {list(col.choices)}; "
                f"first offending rows {ids}.",
                table=table.name, column=col.name, stage=stage, ids=ids,
            )
    if col.kind == "float" and col.name == "score" and len(series):
        bad = (series < 0) | (series > 1)
        if bad.any():
            ids = _first_ids(df, bad, table)
            raise SchemaError(
                f"Column {table.name}.score{where} must be in [0, 1]; first offending rows {ids}.",
                table=table.name, column="score", stage=stage, ids=ids,
            )


def validate_offsets(spans: pd.DataFrame, documents: pd.DataFrame, *, table: Table = SEGMENT,
                     stage: str = "") -> None:
    """Check that every span's ``text`` equals its slice of ``DOCUMENT.text``.

    Args:
        spans: SEGMENT or TURN table.
        documents: DOCUMENT table holding every referenced ``document_id``.
        table: The declaration of ``spans`` (for its key columns in messages).
        stage: Stage name for messages.

    Raises:
        SchemaError: (QA-E021) naming the first offending ids.
    """
    texts = dict(zip(documents["document_id"], documents["text"], strict=True))
    bad: list[str] = []
    for row in spans.itertuples(index=False):
        doc = texts.get(row.document_id)
        if doc is None or row.end_char > len(doc) or doc[row.start_char:row.end_char] != row.text:
            bad.append("/".join(str(getattr(row, k)) for k in table.key))
            if len(bad) >= 5:
                break
    if bad:
        raise SchemaError(
            f"Table {table.name}: text != DOCUMENT.text[start_char:end_char] (or unknown document); "
            f"first offending {bad}.",
            code="QA-E021", table=table.name, column="text", stage=stage, ids=bad,
        )


def iter_declared(tables: Iterable[Table] = TABLES.values()) -> Iterable[tuple[str, Column]]:
    """Yield ``(table name, column)`` for documentation."""
    for table in tables:
        for col in table.columns:
            yield table.name, col
