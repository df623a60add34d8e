"""Segmentation: speaker turns split into sentences with spaCy, with stable ids and exact offsets.

Every segment's ``text`` equals ``DOCUMENT.text[start_char:end_char]`` (code points). Sentences
shorter than ``min_chars`` ("Yeah.", "Mm-hm.") join the previous sentence of the same turn; longer
than ``max_chars`` are split at whitespace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pandas as pd

from pipeline.config import SegmentConfig
from pipeline.nlp import load_spacy
from pipeline.schema import SEGMENT, coerce_frame

__all__ = ["segment_id", "segment_turns"]


def segment_id(document_id: str, start_char: int, end_char: int) -> str:
    """Stable segment id: hash of the document id and offsets."""
    return hashlib.sha256(f"{document_id}:{start_char}:{end_char}".encode()).hexdigest()[:20]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_long(text: str, start: int, end: int, max_chars: int) -> Iterator[tuple[int, int]]:
    while end - start > max_chars:
        cut = text.rfind(" ", start + 1, start + max_chars)
        cut = cut if cut > start else start + max_chars
        yield _trim(text, start, cut)
        start = cut
    yield _trim(text, start, end)


def _sentence_spans(text: str, sents: list[tuple[int, int]], cfg: SegmentConfig) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for s, e in sents:
        s, e = _trim(text, s, e)
        if s >= e:
            continue
        if spans and (e - s < cfg.min_chars or spans[-1][1] - spans[-1][0] < cfg.min_chars):
            spans[-1] = (spans[-1][0], e)
        else:
            spans.append((s, e))
    out: list[tuple[int, int]] = []
    for s, e in spans:
        out.extend(p for p in _split_long(text, s, e, cfg.max_chars) if p[0] < p[1])
    return out


def segment_turns(turns: pd.DataFrame, cfg: SegmentConfig, *, spacy_model: str) -> pd.DataFrame:
    """Split TURN rows into SEGMENT rows.

    Args:
        turns: TURN table (de-identified).
        cfg: Segmentation settings.
        spacy_model: Installed spaCy pipeline whose ``senter`` splits sentences.

    Returns:
        SEGMENT table, ordered by document and offset.
    """
    rows = []
    texts = turns["text"].tolist()
    if cfg.unit == "sentence":
        nlp = load_spacy(spacy_model, "sentences")
        sent_lists = [[(s.start_char, s.end_char) for s in doc.sents]
                      for doc in nlp.pipe(texts, batch_size=cfg.batch_size)]
    else:
        sent_lists = [[(0, len(t))] for t in texts]
    for turn, text, sents in zip(turns.itertuples(index=False), texts, sent_lists, strict=True):
        for s, e in _sentence_spans(text, sents, cfg):
            start, end = turn.start_char + s, turn.start_char + e
            rows.append({
                "segment_id": segment_id(turn.document_id, start, end), "document_id": turn.document_id,
                "speaker": turn.speaker, "turn_index": turn.turn_index, "start_char": start, "end_char": end,
                "source_line": turn.source_line, "text": text[s:e],
            })
    frame = pd.DataFrame(rows, columns=SEGMENT.column_names)
    return coerce_frame(frame, SEGMENT)
