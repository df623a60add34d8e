import json
import os
import stat

import pytest

from pipeline.config import DeidentifyConfig
from pipeline.deidentify import PseudonymMap, deidentify_documents
from pipeline.deidentify.detectors import find_pattern_spans
from pipeline.ingest.base import RawDocument, RawTurn
from pipeline.schema import TURN, validate_offsets


def _doc(turns, path="sessions/C01_s01.txt", meta=None, names=(), source_type="session"):
    return RawDocument(
        source_path=path, record_key="", source_sha256="0" * 64, source_type=source_type, source_format="txt",
        encoding="utf-8", metadata=meta or {}, turns=[RawTurn(*t) for t in turns], known_names=list(names),
    )


@pytest.fixture()
def pmap(tmp_path):
    return PseudonymMap(tmp_path / "keys" / "demo.pseudonyms.json")


@pytest.mark.parametrize("text,category", [
    ("call me on (555) 014-2231 tomorrow", "PHONE"),
    ("my number is 07700 900431.", "PHONE"),
    ("ring 555-0173 after six", "PHONE"),
    ("it's five five five, oh one seven three", "PHONE"),
    ("email dana.w@example.com please", "EMAIL"),
    ("see www.calmcorner.example.org/intake", "URL"),
    ("we moved to 14 Larkspur Road last year", "ADDRESS"),
    ("my MRN is 4471902", "ID"),
    ("it was on the 2nd of June", "DATE"),
    ("back on March 3rd, 2025 I think", "DATE"),
    ("the letter was dated 03/04/2025", "DATE"),
    ("my gran was 93 years old", "AGE"),
])
def test_deidentify_patterns_find_identifiers(text, category):
    assert category in {s.category for s in find_pattern_spans(text)}


def test_deidentify_patterns_leave_durations_and_plain_numbers():
    text = "I waited three months, about 12 weeks, and in 2019 I was 34. Session 5 of 12 helped."
    assert [s for s in find_pattern_spans(text) if s.category in ("DATE", "PHONE", "AGE")] == []


def test_deidentify_replaces_names_consistently_with_roles(pmap):
    doc = _doc(
        [("Maya Ellis", "therapist", "Hi Jordan, how has the week been?", 3),
         ("Jordan Reyes", "client", "Honestly Maya, rough. My sister Dana Whitfield called me at 555-0173.", 7),
         ("Maya Ellis", "therapist", "That sounds hard. Did dana come round?", 11)],
        meta={"clinician": "Maya Ellis", "case_id": "C01", "date": "2026-03-04", "session": 3},
    )
    res = deidentify_documents([doc], DeidentifyConfig(), pmap, corpus_id="demo")
    text = res.documents.loc[0, "text"]
    for secret in ("Maya", "Jordan", "Dana", "dana", "Whitfield", "555-0173", "Ellis"):
        assert secret not in text
    assert "[THERAPIST_1]: Hi [CLIENT_1]" in text
    assert text.count("[PERSON_1]") == 2  # "Dana Whitfield" and later lower-case "dana"
    assert res.documents.loc[0, "clinician"] == "[THERAPIST_1]"
    assert res.documents.loc[0, "collected_at"] == "2026-03"
    validate_offsets(res.turns, res.documents, table=TURN)
    assert list(res.turns["speaker"]) == ["therapist", "client", "therapist"]
    assert set(res.redactions.columns) >= {"document_id", "start_char", "end_char", "category", "replacement"}
    assert not any("Maya" in str(v) for v in res.redactions.to_numpy().ravel())


def test_deidentify_pseudonyms_stable_across_batches_and_map_is_private(pmap, tmp_path):
    d1 = _doc([("Client", "client", "I told Priya Raghunathan everything.", 1)], path="a.txt")
    d2 = _doc([("Client", "client", "Later priya said it made sense.", 1)], path="b.txt")
    r1 = deidentify_documents([d1], DeidentifyConfig(), pmap, corpus_id="demo")
    pmap.save()
    reloaded = PseudonymMap(pmap.path)
    # By default a batch replaces only the names its own text and structure reveal (reproducible) ...
    plain = deidentify_documents([d2], DeidentifyConfig(), PseudonymMap(pmap.path), corpus_id="demo")
    assert "priya" in plain.documents.loc[0, "text"]
    # ... and with remember_names, names from earlier batches keep their pseudonyms.
    r2 = deidentify_documents([d2], DeidentifyConfig(remember_names=True), reloaded, corpus_id="demo")
    p1 = r1.documents.loc[0, "text"].split("told ")[1].split(" ")[0]
    assert p1.startswith("[PERSON_") and p1 in r2.documents.loc[0, "text"]
    mode = stat.S_IMODE(os.stat(pmap.path).st_mode)
    assert mode == 0o600 and stat.S_IMODE(os.stat(pmap.path.parent).st_mode) == 0o700
    assert "priya raghunathan" in json.loads(pmap.path.read_text())["map"]


def test_deidentify_feedback_has_no_speaker_prefix(pmap):
    doc = _doc([(None, "client", "Maya was great, felt listened to.", 2)], path="fb.csv",
               source_type="feedback", meta={"clinician": "Dr. Maya Ellis"})
    res = deidentify_documents([doc], DeidentifyConfig(), pmap, corpus_id="demo")
    assert res.documents.loc[0, "text"] == "[THERAPIST_1] was great, felt listened to."
