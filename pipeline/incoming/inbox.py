r"""Scanning an inbox: which items are new, which unchanged, which broken.

An inbox is a folder with one sub-folder per feed. Files dropped there (``.txt``, ``.docx``, ``.vtt``,
``.srt``) are one item each; spreadsheet exports (``.csv``, ``.xlsx``) give one item per data row, so an
export that grows (rows appended) or is re-delivered yields new items only for rows not seen before.

Item ids (sha256, hex):

- whole file: ``sha256("file" \0 source_path \0 sha256(file bytes))``;
- spreadsheet row: ``sha256("row" \0 source_path \0 sha256(canonical row JSON))``: the row's content, not
  its line, so re-exported or re-ordered unchanged rows are recognised;
- unreadable spreadsheet row: ``sha256("row-problem" \0 source_path \0 line \0 code \0 reason)``.

A file whose size, mtime and hash match the ledger's record of a fully accounted version is not read again.
Nothing here holds participant text outside :class:`NewItem` documents (kept in memory only).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.incoming.ledger import Item, Ledger
from pipeline.ingest import IngestConfig, RawDocument, discover, ingest_file
from pipeline.ingest.discovery import relative_posix
from pipeline.io import file_sha256

__all__ = ["NewItem", "ScanResult", "item_id", "scan_inbox"]

logger = logging.getLogger(__name__)
_SHEETS = {"csv", "xlsx"}


def item_id(kind: str, source_path: str, content: str) -> str:
    """The item id: sha256 over kind, source-relative path and content key."""
    return hashlib.sha256(f"{kind}\0{source_path}\0{content}".encode()).hexdigest()


@dataclass
class NewItem:
    """An item not in the ledger yet, with its ingested documents (raw text: memory only, never logged)."""

    item: Item
    documents: list[RawDocument]


@dataclass
class ScanResult:
    """What a scan found.

    Attributes:
        new: Readable items the ledger does not know, in inbox order.
        quarantined: Broken items (with code and reason) the ledger does not know.
        unchanged: Count of items the ledger already has (processed or quarantined), including files skipped
            because they have not changed.
        files: Inbox files read this time, with size/mtime/hash, to record once all their items are committed.
    """

    new: list[NewItem] = field(default_factory=list)
    quarantined: list[Item] = field(default_factory=list)
    unchanged: int = 0
    files: list[dict[str, object]] = field(default_factory=list)


def scan_inbox(inbox: Path, cfg: IngestConfig, ledger: Ledger) -> ScanResult:
    """List the inbox's items and sort them into new, quarantined and unchanged.

    Args:
        inbox: The inbox folder (sub-folders per feed).
        cfg: Ingest settings (an ``inbox/corpus.yaml`` is applied by the caller).
        ledger: The store's ledger.

    Returns:
        A :class:`ScanResult`; new items keep their ingested documents for the pass.
    """
    result = ScanResult()
    known_files = ledger.known_files()
    per_path: dict[str, int] | None = None
    candidates: list[tuple[Item, list[RawDocument]]] = []
    for path in discover(inbox, cfg):
        rel = relative_posix(path, inbox)
        stat = path.stat()
        record = known_files.get(rel)
        if record is not None and record["size"] == stat.st_size and record["mtime_ns"] == stat.st_mtime_ns:
            per_path = ledger.item_counts() if per_path is None else per_path
            result.unchanged += per_path.get(rel, 0)
            continue
        sha = file_sha256(path)
        result.files.append({"source_path": rel, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha})
        if record is not None and record["sha256"] == sha:  # touched, not changed
            per_path = ledger.item_counts() if per_path is None else per_path
            result.unchanged += per_path.get(rel, 0)
            continue
        candidates.extend(_file_items(path, rel, sha, inbox, cfg))
    statuses = ledger.statuses(item.item_id for item, _ in candidates)
    seen: set[str] = set()
    for item, documents in candidates:
        if item.item_id in statuses or item.item_id in seen:
            result.unchanged += 1
            continue
        seen.add(item.item_id)
        if item.kind == "row-problem" or not documents:
            result.quarantined.append(item)
        else:
            result.new.append(NewItem(item, documents))
    logger.info("inbox scan: %d new, %d quarantined, %d unchanged", len(result.new), len(result.quarantined),
                result.unchanged)
    return result


def _file_items(path: Path, rel: str, sha: str, inbox: Path, cfg: IngestConfig) -> list[tuple[Item, list[RawDocument]]]:
    """The items of one file: the whole file, or one per spreadsheet row (plus unreadable rows)."""
    result = ingest_file(path, root=inbox, cfg=cfg)
    fatal = [p for p in result.problems if p.action == "quarantined"]
    fmt = path.suffix.lower().lstrip(".")
    if fatal or (not result.documents and fmt not in _SHEETS):
        problem = fatal[0] if fatal else None
        code = problem.code if problem else "QA-E011"
        where = f"{rel}:{problem.line}" if problem and problem.line else rel
        reason = f"[{code}] {where}: {problem.error if problem else 'file holds no text'}"
        return [(Item(item_id("file", rel, sha), rel, "", sha, "file", code, reason), [])]
    if fmt not in _SHEETS:
        return [(Item(item_id("file", rel, sha), rel, "", sha, "file"), result.documents)]
    out: list[tuple[Item, list[RawDocument]]] = []
    for doc in result.documents:
        out.append((Item(item_id("row", rel, doc.source_sha256), rel, doc.record_key, doc.source_sha256, "row"),
                    [doc]))
    for p in result.problems:
        if p.action != "row_skipped":
            continue
        key = f"{p.line}\0{p.code}\0{p.error}"
        content = hashlib.sha256(key.encode()).hexdigest()
        reason = f"[{p.code}] {rel}:{p.line}: {p.error}"
        out.append((Item(item_id("row-problem", rel, content), rel, f"line-{p.line}", content, "row-problem",
                         p.code, reason), []))
    return out
