"""Measure de-identification recall against an answer key of planted identifiers.

The key lists ``file, type, text``: every identifier string planted in a (fictional) corpus. For each
key row we count its occurrences (case-insensitive, whole words) in the raw text the ingest stage
extracted from that file, and how many of them survive in the de-identified text. Recall per type =
removed / planted occurrences. Identifiers that live only in a file's structure (sidecar fields,
spreadsheet columns, speaker display names) are checked separately: they must not appear in the
de-identified documents (text or metadata) at all.

A temporary pseudonym map is used, so measuring never touches a corpus's real key file.
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.config import RunConfig
from pipeline.deidentify import PseudonymMap, deidentify_documents
from pipeline.errors import IngestError
from pipeline.ingest import ingest_corpus, load_corpus_config

__all__ = ["evaluate_deidentification", "format_report", "load_key"]


def load_key(path: Path) -> list[dict[str, str]]:
    """Read the answer key (``file,type,text``).

    Raises:
        IngestError: when the key is missing or lacks the columns.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as e:
        raise IngestError(f"cannot read the answer key ({e.strerror}).", code="QA-E010", path=str(path)) from None
    if not rows or not {"file", "type", "text"} <= set(rows[0]):
        raise IngestError("the answer key needs the columns file, type, text.", code="QA-E013", path=str(path))
    return [r for r in rows if r["text"].strip()]


def _pattern(text: str) -> re.Pattern[str]:
    body = re.escape(text.strip()).replace(r"\ ", r"\s+")
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def evaluate_deidentification(corpus: Path, key_path: Path, cfg: RunConfig) -> dict[str, Any]:
    """Run ingest + de-identification on ``corpus`` and score it against the key.

    Returns:
        ``{"by_type": {TYPE: {"planted", "removed", "recall"}}, "overall": {...}, "structural": {...},
        "misses": [(file, type, text)], "documents": n}``.
    """
    corpus = Path(corpus)
    key = load_key(key_path)
    result = ingest_corpus(corpus, load_corpus_config(corpus, cfg.ingest))
    with tempfile.TemporaryDirectory() as tmp:
        pseudonyms = PseudonymMap(Path(tmp) / "map.json")
        deid = deidentify_documents(result.documents, cfg.deidentify, pseudonyms, corpus_id="eval")
    raw_by_file: dict[str, list[str]] = defaultdict(list)
    for doc in result.documents:
        raw_by_file[doc.source_path].extend(t.text for t in doc.turns)
    clean_by_file: dict[str, list[str]] = defaultdict(list)
    for row in deid.documents.itertuples(index=False):
        clean_by_file[row.source_path] += [row.text, row.metadata, "" if pd.isna(row.clinician) else row.clinician,
                                        "" if pd.isna(row.case_id) else row.case_id]
    by_type: dict[str, dict[str, float]] = defaultdict(lambda: {"planted": 0, "removed": 0})
    structural = {"checked": 0, "leaked": 0}
    misses: list[tuple[str, str, str]] = []
    for row in key:
        pat = _pattern(row["text"])
        raw = " \n".join(raw_by_file.get(row["file"], []))
        clean = " \n".join(clean_by_file.get(row["file"], []))
        planted = len(pat.findall(raw))
        left = len(pat.findall(clean))
        if planted == 0:
            structural["checked"] += 1
            if left:
                structural["leaked"] += 1
                misses.append((row["file"], row["type"], row["text"]))
            continue
        stats = by_type[row["type"]]
        stats["planted"] += planted
        stats["removed"] += max(planted - left, 0)
        if left:
            misses.append((row["file"], row["type"], row["text"]))
    table = {t: {**s, "recall": round(s["removed"] / s["planted"], 4)} for t, s in sorted(by_type.items())}
    planted = sum(s["planted"] for s in table.values())
    removed = sum(s["removed"] for s in table.values())
    return {
        "documents": len(deid.documents),
        "by_type": table,
        "overall": {"planted": planted, "removed": removed, "recall": round(removed / planted, 4) if planted else None},
        "structural": structural,
        "misses": misses,
    }


def format_report(report: dict[str, Any], *, show_misses: bool = False) -> str:
    """A Markdown table of recall per identifier type."""
    lines = ["| type | planted | removed | recall |", "|---|---:|---:|---:|"]
    for t, s in report["by_type"].items():
        lines.append(f"| {t} | {s['planted']} | {s['removed']} | {s['recall']:.3f} |")
    o = report["overall"]
    if o["planted"]:
        lines.append(f"| **all** | {o['planted']} | {o['removed']} | {o['recall']:.3f} |")
    s = report["structural"]
    lines.append("")
    lines.append(f"Structural identifiers (sidecars, columns, display names): {s['checked']} checked, "
                 f"{s['leaked']} found in de-identified output.")
    if show_misses:
        lines.append("")
        lines += [f"missed: {f} {t} {x!r}" for f, t, x in report["misses"]]
    return "\n".join(lines)
