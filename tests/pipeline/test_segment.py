import pandas as pd

from pipeline.config import SegmentConfig
from pipeline.schema import SEGMENT, TURN, coerce_frame, validate_frame, validate_offsets
from pipeline.segment import segment_id, segment_turns


def _tables(text_turns):
    parts, rows, offset = [], [], 0
    for i, (role, text) in enumerate(text_turns):
        prefix = ("\n\n" if parts else "") + f"{role.title()}: "
        start = offset + len(prefix)
        parts.append(prefix + text)
        offset = start + len(text)
        rows.append({"document_id": "d1", "turn_index": i, "speaker": role, "speaker_label": role.title(),
                     "start_char": start, "end_char": offset, "source_line": i + 1, "start_time": None,
                     "text": text})
    docs = pd.DataFrame({"document_id": ["d1"], "text": ["".join(parts)]})
    return docs, coerce_frame(pd.DataFrame(rows), TURN)


def test_segment_sentences_have_exact_offsets_and_stable_ids():
    docs, turns = _tables([
        ("therapist", "How was the week? Tell me about it."),
        ("client", "Honestly it was rough. Mm. But I felt she really got it when I said that, [CLIENT_1] too."),
    ])
    segs = segment_turns(turns, SegmentConfig(), spacy_model="en_core_web_sm")
    validate_frame(segs, SEGMENT)
    validate_offsets(segs, docs)
    texts = segs["text"].tolist()
    assert "How was the week?" in texts[0]
    assert any(t.startswith("Honestly it was rough. Mm.") for t in texts)  # short sentence merged
    again = segment_turns(turns, SegmentConfig(), spacy_model="en_core_web_sm")
    assert segs.equals(again)
    row = segs.iloc[0]
    assert row.segment_id == segment_id("d1", row.start_char, row.end_char)


def test_segment_turn_unit_and_long_split():
    docs, turns = _tables([("client", "word " * 200 + "end.")])
    segs = segment_turns(turns, SegmentConfig(unit="turn", max_chars=100), spacy_model="en_core_web_sm")
    validate_offsets(segs, docs)
    assert len(segs) > 5 and (segs["end_char"] - segs["start_char"]).max() <= 100
