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
    ("my grandad died at ninety-two", "AGE"),
    ("email me at jo dot bloggs at example dot co dot uk", "EMAIL"),
    ("ring (0114) 496 0831 please", "PHONE"),
    ("send it to flat 2, 11 chapel close", "ADDRESS"),
    ("my hospital number is 7075690.", "ID"),
    ("the router said 192.168.10.24", "ID"),
    ("the car was YK19 ABC", "ID"),
    ("Springfield, IL 62704", "ADDRESS"),
    ("it's sleepstation.example.org.uk/start.", "URL"),
])
def test_deidentify_patterns_find_identifiers(text, category):
    assert category in {s.category for s in find_pattern_spans(text)}


def test_deidentify_patterns_keep_spoken_at_and_walking_distances():
    for text in ("have a look at this dot com thing", "it's a 10 minute walk from the station"):
        assert [s for s in find_pattern_spans(text) if s.category in ("EMAIL", "ADDRESS")] == [], text


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


# -- first-name gazetteer (US Census 1990 lists from the ``names`` package) ----------------------------------


def test_first_name_gazetteer_is_loaded_from_the_names_package():
    from pipeline.deidentify.detectors import first_name_gazetteer

    names = first_name_gazetteer()
    assert 5000 <= len(names) <= 5500 and {"nadia", "gwen", "rosie", "will", "grace"} <= names
    assert all(n == n.casefold() and n.isalpha() for n in names)
    assert first_name_gazetteer() is names  # cached


def _client_text(pmap, *texts, cfg=None):
    doc = _doc([("Client", "client", t, i + 1) for i, t in enumerate(texts)])
    return deidentify_documents([doc], cfg or DeidentifyConfig(), pmap, corpus_id="demo").documents.loc[0, "text"]


def test_deidentify_gazetteer_finds_lower_case_first_names(pmap):
    text = _client_text(pmap, "i told nadia about it and she just listened.")
    assert "nadia" not in text and "i told [PERSON_1] about it" in text
    # without the layer the lower-case name survives (NER alone does not take it)
    plain = _client_text(PseudonymMap(None), "i told nadia about it and she just listened.",
                         cfg=DeidentifyConfig(first_names=False))
    assert "nadia" in plain


def test_deidentify_gazetteer_keeps_dictionary_words_that_are_also_names(pmap):
    said = "we will meet in may, and i hope there is some grace in it. i hung up on mark and art."
    assert _client_text(pmap, said).endswith(said)


def test_deidentify_gazetteer_joins_a_following_surname_into_one_span(pmap):
    text = _client_text(pmap, "me and carla whitmore went to the cinema.", "carla notices everything.")
    assert "me and [PERSON_1] went to the cinema." in text  # one span, not "[PERSON_1] [PERSON_2]"
    assert "[PERSON_1] notices everything." in text  # a verb after the name is not a surname
    assert "whitmore" not in text and "carla" not in text


def test_deidentify_gazetteer_names_keep_the_pseudonym_of_the_capitalised_name(pmap):
    text = _client_text(pmap, "My friend Nadia Okafor came round.", "later nadia rang again.")
    assert text.count("[PERSON_1]") == 2 and "nadia" not in text.casefold()
    # and a name first found in lower case joins the batch's deny-list, in metadata too
    doc = _doc([("Client", "client", "so i told rosie", 1)], meta={"note": "Rosie was there"})
    res = deidentify_documents([doc], DeidentifyConfig(), PseudonymMap(None), corpus_id="demo")
    pseudonym = res.documents.loc[0, "text"].rsplit(" ", 1)[1]
    assert pseudonym.startswith("[PERSON_") and json.loads(res.documents.loc[0, "metadata"])["note"] == (
        f"{pseudonym} was there")
