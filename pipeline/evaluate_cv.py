"""Evaluation data and resampling: gold CSVs, 0/1 matrices, grouped folds, (cluster) bootstrap weights.

Gold CSV format (UTF-8, optional BOM, comma separated, a header row; one row per segment):

============== ========= =================================================================
column         required  meaning
============== ========= =================================================================
document_id    yes       the document the segment belongs to (folds group by it)
speaker        yes       role: client, therapist, interviewer, unknown (or a role word such
                         as ``Therapist``/``T``/``Patient``); empty means unknown
text           yes       the segment text
codes          yes       code ids separated by ``;`` (``WA.A; WA.B``); empty = no code
segment_id     no        pipeline segment id; default: hash of document, turn and text
turn           no        0-based turn index; default: the row's position in its document
============== ========= =================================================================

Errors name the file and the 1-based physical line (a quoted field may span lines; the line is where
its record starts) and the bad value, never the segment text.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import inspect
import io
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from pipeline.errors import IngestError, SchemaError
from pipeline.ingest.roles import builtin_role
from pipeline.schema import ASSIGNMENT, SPEAKER_ROLES, coerce_frame, validate_frame

__all__ = [
    "GOLD_COLUMNS", "binary_matrix", "bootstrap_weights", "check_assignment_columns", "check_grouped_folds",
    "group_index", "grouped_folds", "read_gold_csv",
]

#: Required columns of a gold CSV.
GOLD_COLUMNS = ("document_id", "speaker", "text", "codes")
_SUPPORTS_SHUFFLE = "shuffle" in inspect.signature(GroupKFold).parameters
_NEEDED = ("segment_id", "code_id", "coder", "label")
_CHUNK_CELLS = 4_000_000  # bootstrap weights held at once (memory bound)

Folds = list[tuple[np.ndarray, np.ndarray]]


def grouped_folds(segments: pd.DataFrame, *, groups_column: str = "document_id", n_splits: int = 5,
                  random_state: int | None = 0) -> Folds:
    """Cross-validation folds that keep every group (document) whole: never split by segment.

    Uses :class:`sklearn.model_selection.GroupKFold` with ``shuffle=True, random_state`` where the
    installed scikit-learn supports it, else plain ``GroupKFold`` over group labels permuted with
    ``random_state`` (deterministic). The result is checked with :func:`check_grouped_folds`.

    Args:
        segments: SEGMENT table (or any frame with ``groups_column``); row positions are returned.
        groups_column: Column whose values must never be split across folds.
        n_splits: Number of folds, at least 2 and at most the number of groups.
        random_state: Seed of the group shuffle.

    Returns:
        ``[(train_positions, test_positions), ...]``, one pair per fold (positional indices).

    Raises:
        SchemaError: ``groups_column`` is missing or has nulls.
        ValueError: ``n_splits`` is out of range.
    """
    if groups_column not in segments.columns:
        raise SchemaError(f"The segments table lacks the groups column {groups_column!r}.", column=groups_column)
    if segments[groups_column].isna().any():
        raise SchemaError(f"Column {groups_column!r} must not be null to group folds.", column=groups_column)
    groups, _ = pd.factorize(segments[groups_column])
    n_groups = int(groups.max()) + 1 if groups.size else 0
    if isinstance(n_splits, bool) or not isinstance(n_splits, int) or not 2 <= n_splits <= n_groups:
        raise ValueError(f"The 'n_splits' parameter of grouped_folds must be an int in [2, {n_groups}] "
                         f"(the number of groups in {groups_column!r}). Got {n_splits!r} instead.")
    if _SUPPORTS_SHUFFLE:
        splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        split_groups = groups
    else:
        splitter = GroupKFold(n_splits=n_splits)
        split_groups = np.random.default_rng(random_state).permutation(n_groups)[groups]
    folds = [(np.asarray(tr), np.asarray(te))
             for tr, te in splitter.split(np.zeros((len(groups), 1)), groups=split_groups)]
    check_grouped_folds(folds, segments[groups_column].to_numpy())
    return folds


def check_grouped_folds(folds: Sequence[tuple[np.ndarray, np.ndarray]], groups: Sequence[Any]) -> None:
    """Check that every row is tested exactly once and no group is in two folds (or in train and test).

    Args:
        folds: ``(train_positions, test_positions)`` pairs.
        groups: Group label per row.

    Raises:
        ValueError: naming the first group that is split, or the number of rows not tested exactly once.
    """
    labels = np.asarray(groups, dtype=object)
    tested = np.zeros(len(labels), dtype=int)
    home: dict[Any, int] = {}
    for k, (train, test) in enumerate(folds):
        tested[test] += 1
        overlap = set(labels[train]) & set(labels[test])
        if overlap:
            raise ValueError(f"Fold {k}: group {sorted(map(str, overlap))[0]!r} is in both train and test.")
        for group in set(labels[test]):
            if home.setdefault(group, k) != k:
                raise ValueError(f"Group {group!r} is in the test part of folds {home[group]} and {k}.")
    bad = int((tested != 1).sum())
    if bad:
        raise ValueError(f"{bad} rows are not in exactly one test fold.")


def binary_matrix(assignments: pd.DataFrame, *, segments: Sequence[str], codes: Sequence[str],
                  coder: str | None = None) -> np.ndarray:
    """Segments x codes 0/1 matrix: 1 where an assignment row has ``label == True``.

    Rows for segments or codes not listed are ignored; listed pairs without a true row are 0.

    Args:
        assignments: ASSIGNMENT table (see ``pipeline.schema``); only ``segment_id``, ``code_id``,
            ``coder`` and ``label`` are read.
        segments: Segment ids, one matrix row each (unique).
        codes: Code ids, one matrix column each (unique).
        coder: Use only this coder's rows. Required when the table holds several coders.

    Returns:
        ``np.int8`` array of shape ``(len(segments), len(codes))``.

    Raises:
        SchemaError: a column is missing, or several coders are present and ``coder`` is None.
        ValueError: ``segments`` or ``codes`` are not unique.
    """
    check_assignment_columns(assignments)
    rows_index, cols_index = _unique_index(segments, "segments"), _unique_index(codes, "codes")
    frame = assignments
    if coder is not None:
        frame = frame[frame["coder"] == coder]
    elif len(coders := frame["coder"].dropna().unique()) > 1:
        raise SchemaError(
            f"The ASSIGNMENT table holds {len(coders)} coders; pass coder= to pick one.",
            table="ASSIGNMENT", column="coder",
        )
    label = frame["label"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    positive = frame[label]
    rows = rows_index.get_indexer(positive["segment_id"])
    cols = cols_index.get_indexer(positive["code_id"])
    keep = (rows >= 0) & (cols >= 0)
    out = np.zeros((len(rows_index), len(cols_index)), dtype=np.int8)
    out[rows[keep], cols[keep]] = 1
    return out


def check_assignment_columns(assignments: pd.DataFrame) -> None:
    """Check that an ASSIGNMENT table has the columns agreement reads.

    Raises:
        SchemaError: naming the first missing column.
    """
    missing = [c for c in _NEEDED if c not in assignments.columns]
    if missing:
        raise SchemaError(f"The ASSIGNMENT table lacks columns {missing}.", table="ASSIGNMENT", column=missing[0])


def _unique_index(values: Sequence[str], name: str) -> pd.Index:
    index = pd.Index(list(values))
    if not index.is_unique:
        raise ValueError(f"The '{name}' parameter must hold unique ids. Got duplicates "
                         f"{index[index.duplicated()].unique().tolist()[:5]} instead.")
    return index


def group_index(groups: Any, segment_ids: Sequence[str] | None, n: int) -> np.ndarray:
    """Integer group (resampling unit) per row: ``0..n_groups-1``; each row its own unit when None.

    Args:
        groups: None; a mapping or ``pd.Series`` from segment id to group (e.g.
            ``segments.set_index("segment_id")["document_id"]``); or a sequence with one label per row.
        segment_ids: Row ids, needed to look a mapping up.
        n: Number of rows.

    Raises:
        ValueError: a segment has no group, the length is wrong, or a label is missing.
    """
    if groups is None:
        return np.arange(n)
    if isinstance(groups, Mapping | pd.Series):
        if segment_ids is None:
            raise ValueError("groups given as a mapping need segment_ids (or tables) to look rows up.")
        lookup = groups if isinstance(groups, pd.Series) else pd.Series(dict(groups), dtype=object)
        missing = [s for s in segment_ids if s not in lookup.index]
        if missing:
            raise ValueError(f"groups has no group for segments {missing[:5]}.")
        labels = lookup.loc[list(segment_ids)].to_numpy()
    else:
        labels = np.asarray(list(groups), dtype=object)
        if len(labels) != n:
            raise ValueError(f"groups must have one label per segment ({n}). Got {len(labels)} instead.")
    codes, _ = pd.factorize(pd.Series(labels, dtype=object))
    if (codes < 0).any():
        raise ValueError("groups must not contain missing values.")
    return codes


def bootstrap_weights(units: np.ndarray, n_boot: int, random_state: int | None) -> Iterator[np.ndarray]:
    """Row weights of bootstrap resamples that draw whole units (segments or groups) with replacement.

    A row's weight is how often its unit was drawn, so weighted counts equal the counts of the
    resampled data. With one unit per row this is the ordinary bootstrap; with documents as units it
    is the cluster bootstrap. Deterministic for a given ``random_state``.

    Args:
        units: Unit index per row, from :func:`group_index`.
        n_boot: Number of resamples.
        random_state: Seed.

    Yields:
        Float arrays of shape ``(b, len(units))``, ``n_boot`` rows in all (chunked to bound memory).
    """
    n_units = int(units.max()) + 1 if units.size else 0
    if n_units == 0:
        return
    rng = np.random.default_rng(random_state)
    chunk = max(1, min(n_boot, _CHUNK_CELLS // (n_units + units.size)))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n_units, size=(b, n_units)) + n_units * np.arange(b)[:, None]
        unit_weights = np.bincount(draws.ravel(), minlength=b * n_units).reshape(b, n_units)
        yield unit_weights[:, units].astype(float)


def read_gold_csv(path: str | Path, codebook: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a human-coded CSV (format in the module docstring).

    Args:
        path: The CSV file.
        codebook: A :class:`~pipeline.codebook.Codebook`, or an iterable of allowed code ids.

    Returns:
        ``(segments, assignments)``. ``segments`` has ``segment_id, document_id, speaker, turn_index,
        text, source_line`` (the SEGMENT columns without offsets). ``assignments`` is an ASSIGNMENT table
        with one row per segment x codebook code (``label`` True where coded, ``score`` 1.0/0.0), coder
        ``human:<file stem>`` and run id ``gold:<first 12 hex of the file's sha256>``.

    Raises:
        IngestError: QA-E010 unreadable, QA-E012 not UTF-8, QA-E011 no header or no rows, QA-E013
            missing columns or malformed CSV (bad quoting), QA-E015 bad row (field count, unknown code id,
            unknown speaker, bad turn, empty document id, duplicate segment id); each names the file,
            the line and the bad value.
    """
    path = Path(path)
    code_ids = list(codebook.code_ids if hasattr(codebook, "code_ids") else codebook)
    data = _read_bytes(path)
    records = _records(_decode(data, path), path)
    header_line, header = _header(records, path)
    rows = [_parse_row(line, fields, header, set(code_ids), path) for line, fields in records]
    if not rows:
        raise IngestError("the gold file holds no coded segments.", code="QA-E011", path=str(path),
                          line=header_line)
    segments = _segments_frame(rows, path)
    run_id = "gold:" + hashlib.sha256(data).hexdigest()[:12]
    return segments, _assignment_frame(segments, rows, code_ids, f"human:{path.stem}", run_id)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise IngestError(f"cannot read the gold file ({e.strerror}).", code="QA-E010", path=str(path)) from None


def _decode(data: bytes, path: Path) -> str:
    body = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        line = body[: e.start].count(b"\n") + 1
        raise IngestError(f"not valid UTF-8 (byte 0x{body[e.start]:02x}); save the file as UTF-8.",
                          code="QA-E012", path=str(path), line=line) from None


def _records(text: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(start line, fields)`` per non-blank record; bad quoting raises QA-E013 at the record's line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    previous = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise IngestError(f"malformed CSV ({e}); check the quotes of this record.",
                              code="QA-E013", path=str(path), line=previous + 1) from None
        start, previous = previous + 1, reader.line_num
        if any(f.strip() for f in fields):
            yield start, fields


def _header(records: Iterator[tuple[int, list[str]]], path: Path) -> tuple[int, list[str]]:
    first = next(records, None)
    if first is None:
        raise IngestError("the gold file is empty (no header row).", code="QA-E011", path=str(path))
    line, names = first[0], [f.strip().lower() for f in first[1]]
    missing = [c for c in GOLD_COLUMNS if c not in names]
    if missing:
        raise IngestError(f"missing required column {missing[0]!r} (needs {list(GOLD_COLUMNS)}); "
                          f"found {names}.", code="QA-E013", path=str(path), line=line, key=missing[0])
    duplicated = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicated:
        raise IngestError(f"column {duplicated[0]!r} appears twice in the header.", code="QA-E013",
                          path=str(path), line=line, key=duplicated[0])
    return line, names


def _row_error(message: str, path: Path, line: int, key: str | None) -> IngestError:
    return IngestError(message, code="QA-E015", path=str(path), line=line, key=key)


def _parse_row(line: int, fields: list[str], header: list[str], allowed: set[str], path: Path) -> dict[str, Any]:
    if len(fields) != len(header):
        raise _row_error(f"row has {len(fields)} fields; the header has {len(header)}.", path, line, None)
    row = dict(zip(header, fields, strict=True))
    document_id = row["document_id"].strip()
    if not document_id:
        raise _row_error("document_id must not be empty.", path, line, "document_id")
    codes = list(dict.fromkeys(c.strip() for c in row["codes"].split(";") if c.strip()))
    unknown = [c for c in codes if c not in allowed]
    if unknown:
        shown = unknown[0] if len(unknown[0]) <= 40 else unknown[0][:40] + "..."
        raise _row_error(f"unknown code id {shown!r}; expected ids from the codebook separated by ';'.",
                         path, line, "codes")
    turn = (row.get("turn") or "").strip()
    if turn and not (turn.isdigit() and turn.isascii()):
        shown = turn if len(turn) <= 20 else turn[:20] + "..."
        raise _row_error(f"turn must be a whole number >= 0. Got {shown!r} instead.", path, line, "turn")
    return {"line": line, "document_id": document_id, "speaker": _speaker(row["speaker"], path, line),
            "text": row["text"], "codes": codes, "turn": int(turn) if turn else None,
            "segment_id": (row.get("segment_id") or "").strip()}


def _speaker(value: str, path: Path, line: int) -> str:
    word = value.strip().lower()
    if not word:
        return "unknown"
    if word in SPEAKER_ROLES:
        return word
    role = builtin_role(value)
    if role is None:
        # the value is not echoed: a speaker cell may hold a person's name
        raise _row_error(f"speaker must be a role ({', '.join(SPEAKER_ROLES)} or a role word such as "
                         "'T' or 'Patient'); this value is not one (not shown, it may name a person).",
                         path, line, "speaker")
    return role


def _segments_frame(rows: list[dict[str, Any]], path: Path) -> pd.DataFrame:
    position: dict[str, int] = {}
    seen: dict[str, int] = {}
    records = []
    for row in rows:
        index = position.get(row["document_id"], 0)
        position[row["document_id"]] = index + 1
        turn = index if row["turn"] is None else row["turn"]
        sid = row["segment_id"] or _gold_segment_id(row["document_id"], turn, row["text"])
        if sid in seen:
            raise _row_error(f"segment id {sid!r} repeats the one of line {seen[sid]}.", path, row["line"],
                             "segment_id")
        seen[sid] = row["line"]
        records.append({"segment_id": sid, "document_id": row["document_id"], "speaker": row["speaker"],
                        "turn_index": turn, "text": row["text"], "source_line": row["line"]})
    frame = pd.DataFrame.from_records(records)
    return frame.astype({"segment_id": "string", "document_id": "string", "speaker": "string",
                         "turn_index": "int64", "text": "string", "source_line": "int64"})


def _gold_segment_id(document_id: str, turn: int, text: str) -> str:
    """Stable id for a gold row without ``segment_id``: hash of document, turn and text."""
    return hashlib.sha256(f"gold:{document_id}:{turn}:{text}".encode()).hexdigest()[:20]


def _assignment_frame(segments: pd.DataFrame, rows: list[dict[str, Any]], code_ids: list[str],
                      coder: str, run_id: str) -> pd.DataFrame:
    coded = {c: i for i, c in enumerate(code_ids)}
    labels = np.zeros((len(rows), len(code_ids)), dtype=bool)
    for r, row in enumerate(rows):
        labels[r, [coded[c] for c in row["codes"]]] = True
    n, k = labels.shape
    frame = pd.DataFrame({
        "segment_id": np.repeat(segments["segment_id"].to_numpy(dtype=object), k),
        "code_id": np.tile(np.asarray(code_ids, dtype=object), n),
        "coder": coder, "score": labels.ravel().astype(float), "label": labels.ravel(),
        "evidence": "", "run_id": run_id,
    })
    frame = coerce_frame(frame, ASSIGNMENT)
    validate_frame(frame, ASSIGNMENT, stage="gold")
    return frame
