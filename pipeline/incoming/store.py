"""The cumulative store of coded segments: day-partitioned Parquet parts under ``STORE/coded/``.

Layout (the contract other modules read)::

    STORE/coded/day=YYYY-MM-DD/part-<run_id>-b<batch>.parquet   one row per segment
    STORE/coded/_manifest.json                                  the committed parts (sorted, relative paths)

Columns of every part: ``segment_id``, ``document_id``, ``item_id``, ``run_id``, ``collected_at``,
``clinician``, ``case_id``, ``source_path``, ``source_type``, ``speaker``, ``start_char``, ``end_char``,
``text`` (de-identified), ``codes`` (list of code ids the final coder assigned, ``label`` true) and
``scores`` (same order). ``day`` is the hive partition: the item's ``collected_at`` date (first day of the
month when only ``YYYY-MM`` is known) or, if unknown, the UTC date of the pass.

Part files are written with temp file + fsync + rename and have deterministic names, so a batch that is
redone after a crash overwrites its own part instead of adding a second copy. The ledger decides which
parts are committed; :func:`read_coded` reads only the parts listed in the manifest (a mirror of the
ledger, rewritten after every commit and on every start), so a part written by a pass that died before
its ledger commit is never read.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.io import atomic_write_bytes, ensure_private_dir

__all__ = [
    "CODED_COLUMNS",
    "CODED_SCHEMA",
    "coded_dir",
    "day_of",
    "list_part_files",
    "manifest_path",
    "part_relpath",
    "read_coded",
    "read_manifest",
    "utc_today",
    "write_manifest",
    "write_part",
]

#: Arrow schema of a part file (the partition column ``day`` lives in the folder name only).
CODED_SCHEMA = pa.schema([
    ("segment_id", pa.string()),
    ("document_id", pa.string()),
    ("item_id", pa.string()),
    ("run_id", pa.string()),
    ("collected_at", pa.string()),
    ("clinician", pa.string()),
    ("case_id", pa.string()),
    ("source_path", pa.string()),
    ("source_type", pa.string()),
    ("speaker", pa.string()),
    ("start_char", pa.int64()),
    ("end_char", pa.int64()),
    ("text", pa.string()),
    ("codes", pa.list_(pa.string())),
    ("scores", pa.list_(pa.float64())),
])
CODED_COLUMNS = [f.name for f in CODED_SCHEMA]
_DAY = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?")
_PART = re.compile(r"^day=(\d{4}-\d{2}-\d{2})/part-[A-Za-z0-9_.-]+\.parquet$")


def coded_dir(store: Path) -> Path:
    """``STORE/coded``."""
    return Path(store) / "coded"


def manifest_path(store: Path) -> Path:
    """``STORE/coded/_manifest.json``: the committed parts, mirrored from the ledger."""
    return coded_dir(store) / "_manifest.json"


def day_of(collected_at: object, fallback: str) -> str:
    """Partition day of an item: its ``collected_at`` (``YYYY-MM`` -> first of month), else ``fallback``.

    A year-only date (``date_precision: year``) maps to January 1st of that year.
    """
    if isinstance(collected_at, str):
        m = _DAY.match(collected_at)
        if m:
            return f"{m.group(1)}-{m.group(2)}-{m.group(3) or '01'}"
        if re.fullmatch(r"\d{4}", collected_at):
            return f"{collected_at}-01-01"
    return fallback


def part_relpath(day: str, run_id: str, batch: int) -> str:
    """Deterministic relative path of one part: ``day=<day>/part-<run_id>-b<batch>.parquet``."""
    return f"day={day}/part-{run_id}-b{batch:05d}.parquet"


def write_part(store: Path, rel: str, rows: pd.DataFrame) -> Path:
    """Write one part file atomically (temp + fsync + rename; 0600 in 0700 folders).

    Args:
        store: The store folder.
        rel: Relative path from :func:`part_relpath`.
        rows: Coded rows with :data:`CODED_COLUMNS`.
    """
    path = coded_dir(store) / rel
    ensure_private_dir(coded_dir(store))
    ensure_private_dir(path.parent)
    table = pa.Table.from_pandas(rows[CODED_COLUMNS], schema=CODED_SCHEMA, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return atomic_write_bytes(path, sink.getvalue().to_pybytes())


def list_part_files(store: Path) -> list[str]:
    """Relative paths of every part file on disk (committed or not), sorted."""
    root = coded_dir(store)
    if not root.is_dir():
        return []
    found = [p.relative_to(root).as_posix() for p in root.glob("day=*/part-*.parquet")]
    return sorted(r for r in found if _PART.match(r))


def write_manifest(store: Path, parts: Iterable[str]) -> Path:
    """Write the manifest of committed parts (atomically, sorted)."""
    ensure_private_dir(coded_dir(store))
    payload = {"version": 1, "parts": sorted(set(parts))}
    return atomic_write_bytes(manifest_path(store), (json.dumps(payload, indent=1) + "\n").encode("utf-8"))


def read_manifest(store: Path) -> list[str] | None:
    """The committed parts listed in the manifest, or ``None`` when the store has no manifest yet."""
    path = manifest_path(store)
    if not path.is_file():
        return None
    return [str(p) for p in json.loads(path.read_text(encoding="utf-8"))["parts"]]


def read_coded(store: Path, *, since: str | None = None) -> pd.DataFrame:
    """Read the committed coded segments of a store.

    Args:
        store: The store folder (holding ``coded/``).
        since: Only partitions with ``day >= since`` (``YYYY-MM-DD``; ``YYYY-MM`` means its first day).

    Returns:
        One row per segment with :data:`CODED_COLUMNS` plus ``day`` (str); ``codes`` and ``scores`` hold
        Python lists. Sorted by day, run, document and
        offset. Empty (with those columns) when nothing is committed yet.
    """
    parts = read_manifest(store)
    if parts is None:
        parts = []
    floor = day_of(since, since) if since else None
    frames = []
    for rel in parts:
        m = _PART.match(rel)
        if m is None or (floor is not None and m.group(1) < floor):
            continue
        df = pq.read_table(coded_dir(store) / rel, schema=CODED_SCHEMA).to_pandas()
        df["codes"] = [list(v) for v in df["codes"]]
        df["scores"] = [[float(x) for x in v] for v in df["scores"]]
        df["day"] = m.group(1)
        frames.append(df)
    if not frames:
        empty = CODED_SCHEMA.empty_table().to_pandas()
        empty["day"] = pd.Series(dtype="object")
        return empty
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["day", "run_id", "document_id", "start_char"], kind="stable").reset_index(drop=True)
    return out


def utc_today() -> str:
    """Today's UTC date (``YYYY-MM-DD``): the partition of items with no ``collected_at``."""
    return dt.datetime.now(dt.UTC).date().isoformat()
