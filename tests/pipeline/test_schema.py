import pandas as pd
import pytest

from pipeline.errors import SchemaError
from pipeline.schema import ASSIGNMENT, DOCUMENT, SEGMENT, coerce_frame, empty_frame, validate_frame, validate_offsets


def _docs():
    return pd.DataFrame({
        "document_id": ["d1"], "corpus_id": ["c"], "source_path": ["a.txt"], "record_key": [""],
        "source_sha256": ["x"], "source_type": ["interview"], "source_format": ["txt"], "case_id": ["P1"],
        "session": [None], "collected_at": [None], "clinician": [None], "encoding": ["utf-8"], "metadata": ["{}"],
        "text": ["Client: I felt heard. She got it."],
    })


def _segs(**over):
    row = {"segment_id": "s1", "document_id": "d1", "speaker": "client", "turn_index": 0, "start_char": 8,
           "end_char": 21, "source_line": 1, "text": "I felt heard."}
    row.update(over)
    return coerce_frame(pd.DataFrame([row]), SEGMENT)


def test_schema_valid_frames_pass():
    docs = coerce_frame(_docs(), DOCUMENT)
    validate_frame(docs, DOCUMENT)
    segs = _segs()
    validate_frame(segs, SEGMENT)
    validate_offsets(segs, docs)
    validate_frame(empty_frame(ASSIGNMENT), ASSIGNMENT)


def test_schema_missing_column_names_table_and_column():
    segs = _segs().drop(columns=["speaker"])
    with pytest.raises(SchemaError) as err:
        validate_frame(segs, SEGMENT, stage="segment")
    assert "SEGMENT" in str(err.value) and "speaker" in str(err.value) and err.value.code == "QA-E020"
    assert err.value.context["stage"] == "segment"


def test_schema_bad_choice_names_first_ids():
    segs = _segs(speaker="narrator")
    with pytest.raises(SchemaError) as err:
        validate_frame(segs, SEGMENT)
    assert "s1" in str(err.value) and err.value.context["ids"] == ["s1"]


def test_schema_duplicate_key_and_bad_offsets():
    segs = pd.concat([_segs(), _segs()], ignore_index=True)
    with pytest.raises(SchemaError, match="not unique"):
        validate_frame(segs, SEGMENT)
    with pytest.raises(SchemaError, match="start_char < end_char"):
        validate_frame(_segs(start_char=30, end_char=21), SEGMENT)


def test_schema_text_must_equal_document_slice():
    docs = coerce_frame(_docs(), DOCUMENT)
    with pytest.raises(SchemaError) as err:
        validate_offsets(_segs(text="I felt HEARD."), docs)
    assert err.value.code == "QA-E021" and err.value.context["ids"] == ["s1"]


def test_schema_score_range_checked():
    row = {"segment_id": "s1", "code_id": "WA.X", "coder": "c", "score": 1.5, "label": True, "evidence": "",
           "run_id": ""}
    with pytest.raises(SchemaError, match=r"\[0, 1\]"):
        validate_frame(coerce_frame(pd.DataFrame([row]), ASSIGNMENT), ASSIGNMENT)
