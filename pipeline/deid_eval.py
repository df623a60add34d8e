"""Measure de-identification against planted identifiers: a string key (recall) or span labels (recall and precision).

Span mode (:func:`evaluate_span_labels`, a corpus with ``labels.csv``) is described in ``docs/privacy.md``.
Key mode follows.

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

__all__ = [
    "LABEL_TYPES",
    "align_redactions",
    "evaluate_deidentification",
    "evaluate_span_labels",
    "format_report",
    "format_span_report",
    "is_fictional",
    "load_key",
    "load_labels",
    "score_spans",
]


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


# ---------------------------------------------------------------------------------------------------
# Span mode: labels with offsets, recall and precision.

#: Label types of the span-labelled sets; detector categories use the same names.
LABEL_TYPES = ("NAME", "PHONE", "EMAIL", "ADDRESS", "PLACE", "ORG", "DATE", "AGE", "ID", "URL")
_LABEL_COLUMNS = ("file", "record_key", "start", "end", "type", "text")


def is_fictional(corpus: Path) -> bool:
    """True when ``corpus/README.md`` or its parent's README.md has the word "fictional" in its first line.

    That declaration is the only thing that lets :command:`alliance deid-report --show-misses` print
    identifier text: misses and false positives of a real corpus are real participant data.
    """
    for folder in (Path(corpus), Path(corpus).parent):
        readme = folder / "README.md"
        if readme.is_file():
            with open(readme, encoding="utf-8") as fh:
                first = fh.readline()
            if re.search(r"\bfictional\b", first, re.IGNORECASE):
                return True
    return False


def load_labels(path: Path) -> list[dict[str, Any]]:
    """Read span labels (``file, record_key, start, end, type, text``); offsets are ints.

    Raises:
        IngestError: QA-E010 when unreadable, QA-E018 when columns, offsets or types are wrong.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = reader.fieldnames or []
    except OSError as e:
        raise IngestError(f"cannot read the labels ({e.strerror}).", code="QA-E010", path=str(path)) from None
    if not set(_LABEL_COLUMNS) <= set(header):
        raise IngestError(f"the labels need the columns {', '.join(_LABEL_COLUMNS)}.", code="QA-E018",
                          path=str(path))
    out = []
    for line, row in enumerate(rows, start=2):
        try:
            start, end = int(row["start"]), int(row["end"])
        except ValueError:
            raise IngestError("start and end must be integers.", code="QA-E018", path=str(path),
                              line=line) from None
        if not 0 <= start < end or (row["type"] not in LABEL_TYPES and row["type"] != "NEG"):
            raise IngestError(f"needs 0 <= start < end and a type in {', '.join(LABEL_TYPES)} (or NEG).",
                              code="QA-E018", path=str(path), line=line)
        out.append({**row, "start": start, "end": end, "line": line})
    return out


_TITLE = r"(?:(?:dr|mr|mrs|ms|mx|miss|prof|professor)\.?\s+)?"


def align_redactions(
    raw: str, clean: str, spans: list[tuple[int, int]], candidates: list[list[str]] | None = None
) -> list[tuple[int, int]]:
    """Map redactions in de-identified text back to offsets in the raw text.

    ``clean`` is ``raw`` with some pieces replaced; ``spans`` are the replacements' (start, end) in
    ``clean``, sorted. The text between replacements is copied verbatim, so the raw offsets follow from
    matching those verbatim pieces in order. Where that leaves a choice ("[PERSON_1] [PLACE_1]" from
    "Gwen Tasker Leeds"), ``candidates`` (per span, the normalised originals that have that pseudonym, from
    the pseudonym map) decide it; without candidates the shortest consistent piece is taken.

    Raises:
        ValueError: when ``clean`` cannot be derived from ``raw`` that way.
    """
    if not spans:
        if raw != clean:
            raise ValueError("texts differ but no redactions were recorded")
        return []

    def pattern(use_candidates: bool) -> str:
        parts, pos = [], 0
        for i, (a, b) in enumerate(spans):
            parts.append(re.escape(clean[pos:a]))
            names = candidates[i] if use_candidates and candidates else []
            if names:
                alts = "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in sorted(names, key=len, reverse=True))
                parts.append(f"((?i:{_TITLE}(?:{alts})(?:['’]s)?))")
            else:
                parts.append("(.+?)")
            pos = b
        parts.append(re.escape(clean[pos:]))
        return "".join(parts)

    m = re.fullmatch(pattern(True), raw, re.DOTALL) if candidates else None
    if m is None:
        m = re.fullmatch(pattern(False), raw, re.DOTALL)
    if m is None:
        raise ValueError("the de-identified text is not the raw text with the recorded replacements")
    return [m.span(i) for i in range(1, len(spans) + 1)]


def _alnum_positions(text: str, start: int, end: int) -> list[int]:
    return [i for i in range(start, end) if text[i].isalnum()] or list(range(start, end))


def score_spans(
    gold: list[dict[str, Any]],
    predicted: list[dict[str, Any]],
    texts: dict[tuple[str, str], str],
    negatives: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Score predicted redaction spans against gold identifier spans.

    Args:
        gold: Rows with ``file, record_key, start, end, type``.
        predicted: Rows with ``file, record_key, start, end, category, detector`` (raw-text offsets).
        texts: (file, record_key) -> the raw text the offsets index.
        negatives: Optional hard negatives (same columns as gold): words that must stay.

    Returns:
        ``by_type[T]``: ``gold`` (labelled spans), ``removed`` (every letter and digit of the span lies
        inside some redaction), ``partial`` (some but not all), ``recall`` (removed / gold),
        ``recall_overlap`` ((removed + partial) / gold), ``predicted`` (redactions of category T),
        ``precision`` (those overlapping a gold span of type T / predicted) and ``precision_any`` (those
        overlapping a gold span of any type / predicted). ``overall`` sums the types; its ``precision``
        counts every redaction (whatever its category) overlapping any gold span. ``negatives``: count
        and how many were touched by a redaction. ``misses``, ``false_positives``, ``negatives_hit``:
        lists of rows (with offsets; identifier text only in the rows, never logged).
    """
    by_doc: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for p in predicted:
        by_doc[(p["file"], p["record_key"])].append(p)
    gold_by_doc: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for g in gold:
        gold_by_doc[(g["file"], g["record_key"])].append(g)

    def overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return a["start"] < b["end"] and b["start"] < a["end"]

    stats = {t: {"gold": 0, "removed": 0, "partial": 0, "predicted": 0, "tp_strict": 0, "tp_any": 0}
             for t in LABEL_TYPES}
    misses: list[dict[str, Any]] = []
    for g in gold:
        doc = (g["file"], g["record_key"])
        covered: set[int] = set()
        for p in by_doc.get(doc, []):
            if overlaps(g, p):
                covered.update(range(max(g["start"], p["start"]), min(g["end"], p["end"])))
        need = _alnum_positions(texts.get(doc, ""), g["start"], g["end"]) if doc in texts else \
            list(range(g["start"], g["end"]))
        s = stats[g["type"]]
        s["gold"] += 1
        hit = sum(i in covered for i in need)
        if hit == len(need):
            s["removed"] += 1
        else:
            s["partial"] += hit > 0
            misses.append({**g, "covered": hit, "of": len(need)})
    false_positives: list[dict[str, Any]] = []
    tp_all = 0
    for p in predicted:
        doc = (p["file"], p["record_key"])
        hits = [g for g in gold_by_doc.get(doc, []) if overlaps(g, p)]
        tp_all += bool(hits)
        if not hits:
            false_positives.append({**p, "text": texts.get(doc, "")[p["start"]:p["end"]]})
        cat = p["category"]
        if cat in stats:
            s = stats[cat]
            s["predicted"] += 1
            s["tp_any"] += bool(hits)
            s["tp_strict"] += any(g["type"] == cat for g in hits)
    negatives_hit = [n for n in (negatives or []) if any(overlaps(n, p) for p in by_doc.get(
        (n["file"], n["record_key"]), []))]

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    table = {
        t: {
            "gold": s["gold"], "removed": s["removed"], "partial": s["partial"],
            "recall": ratio(s["removed"], s["gold"]), "recall_overlap": ratio(s["removed"] + s["partial"], s["gold"]),
            "predicted": s["predicted"], "precision": ratio(s["tp_strict"], s["predicted"]),
            "precision_any": ratio(s["tp_any"], s["predicted"]),
        }
        for t, s in stats.items() if s["gold"] or s["predicted"]
    }
    n_gold = sum(s["gold"] for s in stats.values())
    n_removed = sum(s["removed"] for s in stats.values())
    return {
        "by_type": table,
        "overall": {"gold": n_gold, "removed": n_removed, "recall": ratio(n_removed, n_gold),
                    "predicted": len(predicted), "precision": ratio(tp_all, len(predicted))},
        "negatives": {"count": len(negatives or []), "redacted": len(negatives_hit)},
        "misses": misses,
        "false_positives": false_positives,
        "negatives_hit": negatives_hit,
    }


def evaluate_span_labels(corpus: Path, labels_path: Path, cfg: RunConfig) -> dict[str, Any]:
    r"""Ingest and de-identify ``corpus``, recover each redaction's raw offsets and score against span labels.

    Offsets index the *ingest text* of a document (``file``, ``record_key``):
    ``"\n".join(turn.text for turn in document.turns)`` as :func:`pipeline.ingest.ingest_corpus` reads it.
    Hard negatives are read from ``negatives.csv`` next to the labels when present.

    Raises:
        IngestError: QA-E018 when a label's text is not the slice at its offsets (or names an unknown
            document), so the labels and the corpus have drifted apart.
    """
    corpus = Path(corpus)
    gold_rows = load_labels(labels_path)
    neg_path = Path(labels_path).with_name("negatives.csv")
    neg_rows = load_labels(neg_path) if neg_path.is_file() else []
    result = ingest_corpus(corpus, load_corpus_config(corpus, cfg.ingest))
    with tempfile.TemporaryDirectory() as tmp:
        pseudonyms = PseudonymMap(Path(tmp) / "map.json")
        deid = deidentify_documents(result.documents, cfg.deidentify, pseudonyms, corpus_id="eval")
    originals: dict[str, list[str]] = defaultdict(list)  # pseudonym -> normalised originals (temporary map)
    for name in pseudonyms.names():
        pseudonym = pseudonyms.get(name)
        if pseudonym:
            originals[pseudonym].append(name)
    texts: dict[tuple[str, str], str] = {}
    predicted: list[dict[str, Any]] = []
    turns_by_doc = {k: g for k, g in deid.turns.groupby("document_id")}
    reds_by_doc = {k: g for k, g in deid.redactions.groupby("document_id")}
    for doc in result.documents:
        key = (doc.source_path, doc.record_key)
        texts[key] = "\n".join(t.text for t in doc.turns)
        turns = turns_by_doc.get(doc.document_id)
        reds = reds_by_doc.get(doc.document_id)
        rows = {} if turns is None else {int(r.turn_index): r for r in turns.itertuples(index=False)}
        base = 0
        for ti, turn in enumerate(doc.turns):
            row = rows.get(ti)
            if row is not None:
                local = [] if reds is None else sorted(
                    (int(r.start_char) - int(row.start_char), int(r.end_char) - int(row.start_char), r.category,
                     r.detector)
                    for r in reds.itertuples(index=False)
                    if int(r.start_char) >= int(row.start_char) and int(r.end_char) <= int(row.end_char)
                )
                replaced = [row.text[a:b] for a, b, _, _ in local]
                try:
                    raw_spans = align_redactions(turn.text, row.text, [(a, b) for a, b, _, _ in local],
                                                 [originals.get(r, []) for r in replaced])
                except ValueError as err:
                    raise IngestError(f"cannot align redactions of turn {ti}: {err}.", code="QA-E018",
                                      path=doc.source_path, line=turn.source_line) from None
                predicted += [
                    {"file": key[0], "record_key": key[1], "start": base + a, "end": base + b, "category": c,
                     "detector": d}
                    for (a, b), (_, _, c, d) in zip(raw_spans, local, strict=True)
                ]
            base += len(turn.text) + 1
    for row in [*gold_rows, *neg_rows]:
        text = texts.get((row["file"], row["record_key"]))
        where = str(labels_path if row in gold_rows else neg_path)
        if text is None:
            raise IngestError(f"names a document the corpus does not have ({row['file']!r}, record "
                              f"{row['record_key']!r}).", code="QA-E018", path=where, line=row["line"])
        if text[row["start"]:row["end"]] != row["text"]:
            raise IngestError("the label's text is not the slice of the document at its offsets.",
                              code="QA-E018", path=where, line=row["line"])
    report = score_spans(gold_rows, predicted, texts, neg_rows)
    report["documents"] = len(result.documents)
    report["mode"] = "spans"
    return report


def format_span_report(report: dict[str, Any], *, show_text: bool = False) -> str:
    """Markdown table (type, gold spans, recall, precision) plus misses and false positives by location.

    Args:
        report: Output of :func:`evaluate_span_labels`.
        show_text: Also print the identifier text of misses and false positives (fictional corpora only;
            the caller checks :func:`is_fictional`).
    """
    lines = ["| type | gold spans | removed | recall | redactions | precision (same type) | precision (any id) |",
             "|---|---:|---:|---:|---:|---:|---:|"]

    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.3f}"

    for t in LABEL_TYPES:
        s = report["by_type"].get(t)
        if s:
            lines.append(f"| {t} | {s['gold']} | {s['removed']} | {f(s['recall'])} | {s['predicted']} | "
                         f"{f(s['precision'])} | {f(s['precision_any'])} |")
    o = report["overall"]
    lines.append(f"| **all** | {o['gold']} | {o['removed']} | {f(o['recall'])} | {o['predicted']} | – | "
                 f"{f(o['precision'])} |")
    n = report["negatives"]
    lines += ["", f"Hard negatives (words that must stay): {n['count']}, of which {n['redacted']} redacted.",
              f"Misses: {len(report['misses'])}; redactions overlapping no labelled identifier: "
              f"{len(report['false_positives'])}."]
    if show_text:
        lines.append("")
        for r in report["misses"]:
            lines.append(f"missed: {r['file']}#{r['record_key']}:{r['start']}-{r['end']} {r['type']} "
                         f"{r['covered']}/{r['of']} covered {r['text']!r}")
        for r in report["false_positives"]:
            lines.append(f"false positive: {r['file']}#{r['record_key']}:{r['start']}-{r['end']} {r['category']} "
                         f"{r['detector']} {r['text']!r}")
        for r in report["negatives_hit"]:
            lines.append(f"negative redacted: {r['file']}#{r['record_key']}:{r['start']}-{r['end']} {r['text']!r}")
    return "\n".join(lines)
