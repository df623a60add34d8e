"""Reading and writing tables and files: atomic, private, schema-checked.

Every write goes to a temporary file in the destination folder, is flushed and fsynced, then renamed
over the target, so a crash never leaves a half-written output. Output folders are created 0700 and
files 0600: the outputs hold de-identified but still sensitive text.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.schema import Table, validate_frame

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "ensure_private_dir",
    "file_sha256",
    "read_table",
    "safe_cell",
    "write_csv",
    "write_json",
    "write_table",
]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_LONE_CR = re.compile(r"\r(?!\n)")


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o600) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    if not path.parent.is_dir():
        ensure_private_dir(path.parent)  # 0700: a plain mkdir left part folders 0755 under the umask
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write text atomically (UTF-8, LF)."""
    return atomic_write_bytes(path, text.encode(encoding))


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically with sorted keys (reproducible bytes)."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)
                             + "\n")


def write_table(df: pd.DataFrame, path: Path, table: Table | None = None, *, stage: str = "") -> Path:
    """Validate ``df`` against ``table`` (if given) and write it as Parquet atomically."""
    if table is not None:
        validate_frame(df, table, stage=stage)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    return atomic_write_bytes(path, buf.getvalue())


def read_table(path: Path, table: Table | None = None, *, stage: str = "") -> pd.DataFrame:
    """Read a Parquet table and validate it against ``table`` (if given)."""
    df = pd.read_parquet(path, engine="pyarrow")
    if table is not None:
        validate_frame(df, table, stage=stage)
    return df


def safe_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas (OWASP): prefix ``'`` to text starting with = + - @ tab CR LF."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _lf(value: Any) -> Any:
    """A lone CR becomes LF, so the csv module quotes the field.

    csv quotes only fields holding the line terminator (LF); an unquoted CR ends the row in Excel and in csv
    readers (row injection). CRLF is kept: its LF gets the field quoted.
    """
    return _LONE_CR.sub("\n", value) if isinstance(value, str) and "\r" in value else value


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], *, bom: bool = False) -> Path:
    """Write a CSV atomically with every text cell formula-neutralised."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None or (isinstance(v, float) and v != v) else _lf(safe_cell(v)) for v in row])
    data = buf.getvalue().encode("utf-8-sig" if bom else "utf-8")
    return atomic_write_bytes(path, data)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
