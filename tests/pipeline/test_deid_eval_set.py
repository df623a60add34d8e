"""The span-labelled de-identification set (corpora/deid_eval) and the span scorer of pipeline.deid_eval."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import RunConfig
from pipeline.deid_eval import (
    LABEL_TYPES,
    align_redactions,
    evaluate_span_labels,
    is_fictional,
    load_labels,
    score_spans,
)
from pipeline.errors import IngestError
from pipeline.ingest import ingest_corpus, load_corpus_config

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "corpora" / "deid_eval"

#: Regression floors, a margin of about one span per type under the figures measured with the final detectors
#: (docs/privacy.md). The test split's figures are post hoc: its first, held-out measurement was lower
#: (NAME 0.970, ADDRESS 0.911, ID 0.833, URL 0.958) and three detector bugs it revealed were fixed afterwards;
#: the first-name gazetteer, prompted by its two lower-case NAME misses and tuned on dev only, then raised
#: test NAME recall from 0.970 to 0.985 (65 of 66), hence the NAME floor of 0.96 (one span under).
TEST_FLOOR = {"NAME": 0.96, "PHONE": 0.98, "EMAIL": 0.98, "ADDRESS": 0.98, "PLACE": 0.97, "ORG": 0.87, "DATE": 0.95,
              "AGE": 0.95, "ID": 0.95, "URL": 0.95}
DEV_FLOOR = {"NAME": 0.98, "PHONE": 0.98, "EMAIL": 0.98, "ADDRESS": 0.98}


def _ingest_texts(folder: Path) -> dict[tuple[str, str], str]:
    result = ingest_corpus(folder, load_corpus_config(folder, RunConfig().ingest))
    assert not result.problems
    return {(d.source_path, d.record_key): "\n".join(t.text for t in d.turns) for d in result.documents}


# -- the labelled set ----------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["dev", "test"])
def test_deid_eval_labels_equal_their_slices_of_the_ingest_text(split):
    folder = EVAL / split
    texts = _ingest_texts(folder)
    labels = load_labels(folder / "labels.csv")
    negatives = load_labels(folder / "negatives.csv")
    for row in [*labels, *negatives]:
        text = texts[(row["file"], row["record_key"])]
        assert text[row["start"]:row["end"]] == row["text"], (split, row["line"])
    counts = Counter(r["type"] for r in labels)
    assert set(counts) == set(LABEL_TYPES)
    for kind in ("NAME", "PHONE", "EMAIL", "ADDRESS"):
        assert counts[kind] >= 40, (kind, counts[kind])
    for kind in ("PLACE", "ORG", "DATE", "AGE", "ID", "URL"):
        assert counts[kind] >= 20, (kind, counts[kind])
    assert len(negatives) >= 200
    # every source format of the project is represented
    assert {Path(f).suffix for f, _ in texts} >= {".txt", ".vtt", ".csv"}


def test_deid_eval_splits_share_no_names_addresses_emails_places_or_urls():
    kinds = {"NAME", "EMAIL", "ADDRESS", "PLACE", "URL"}
    dev = {r["text"].casefold() for r in load_labels(EVAL / "dev" / "labels.csv") if r["type"] in kinds}
    test = {r["text"].casefold() for r in load_labels(EVAL / "test" / "labels.csv") if r["type"] in kinds}
    # Ages, dates and drama-range phone numbers come from small shared spaces and may repeat by chance.
    assert not dev & test, sorted(dev & test)


def test_deid_eval_is_declared_fictional_and_other_folders_are_not(tmp_path):
    assert is_fictional(EVAL / "dev") and is_fictional(EVAL / "test") and is_fictional(ROOT / "corpora" / "demo")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "README.md").write_text("# Wave 3 transcripts\n\nfictional characters are discussed\n")
    assert not is_fictional(tmp_path / "real")


def test_deid_report_refuses_to_print_text_of_a_corpus_not_declared_fictional(tmp_path):
    corpus = tmp_path / "site_b"
    corpus.mkdir()
    (corpus / "labels.csv").write_text("file,record_key,start,end,type,text\n")
    res = CliRunner().invoke(app, ["deid-report", str(corpus), "--show-misses"])
    assert res.exit_code == 1 and "QA-E019" in res.output


def test_load_labels_rejects_bad_offsets_with_the_line(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,record_key,start,end,type,text\na.txt,,5,3,NAME,x\n")
    with pytest.raises(IngestError) as err:
        load_labels(path)
    assert err.value.code == "QA-E018" and err.value.line == 2


def test_evaluate_span_labels_rejects_labels_that_do_not_match_the_text(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "s1.txt").write_text("Therapist: Hello Maria, how are you?\n\nClient: Fine thanks.\n")
    with open(corpus / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "record_key", "start", "end", "type", "text"])
        w.writerow(["s1.txt", "", 6, 11, "NAME", "Maria"])
        w.writerow(["s1.txt", "", 0, 5, "NAME", "Maria"])  # wrong offsets
    with pytest.raises(IngestError) as err:
        evaluate_span_labels(corpus, corpus / "labels.csv", RunConfig())
    assert err.value.code == "QA-E018" and err.value.line == 3


# -- the scorer on hand-made examples --------------------------------------------------------------------


def test_align_redactions_maps_replacements_back_to_raw_offsets():
    raw = "I told Sarah and sarah's mum on 07700 900123."
    clean = "I told [PERSON_1] and [PERSON_1]'s mum on [PHONE_1]."
    spans = [(7, 17), (22, 32), (42, 51)]
    assert [clean[a:b] for a, b in spans] == ["[PERSON_1]", "[PERSON_1]", "[PHONE_1]"]
    assert [raw[a:b] for a, b in align_redactions(raw, clean, spans)] == ["Sarah", "sarah", "07700 900123"]
    assert align_redactions("same", "same", []) == []
    # adjacent replacements: without candidates the first piece is the shortest; the map's originals decide
    raw, clean, spans = "Gwen Tasker Leeds, ok", "[PERSON_1] [PLACE_1], ok", [(0, 10), (11, 20)]
    assert [raw[a:b] for a, b in align_redactions(raw, clean, spans)] == ["Gwen", "Tasker Leeds"]
    cands = [["gwen tasker", "gwen", "tasker"], ["leeds"]]
    assert [raw[a:b] for a, b in align_redactions(raw, clean, spans, cands)] == ["Gwen Tasker", "Leeds"]
    with pytest.raises(ValueError):
        align_redactions("abc", "xyz", [])


def _g(start, end, kind, doc="d.txt"):
    return {"file": doc, "record_key": "", "start": start, "end": end, "type": kind}


def _p(start, end, cat, doc="d.txt"):
    return {"file": doc, "record_key": "", "start": start, "end": end, "category": cat, "detector": "t"}


def test_score_spans_hand_computed_recall_and_precision():
    #       0         1         2         3         4         5         6
    #       0123456789012345678901234567890123456789012345678901234567890
    text = "Ask Liz Okafor on 0113 496 0732 or at Leeds. Hope helps. May."
    texts = {("d.txt", ""): text}
    gold = [_g(4, 14, "NAME"), _g(18, 31, "PHONE"), _g(38, 43, "PLACE")]
    negatives = [_g(45, 49, "NEG"), _g(57, 60, "NEG")]
    predicted = [
        _p(4, 7, "NAME"),  # "Liz": only part of the name -> the name is partial, not removed
        _p(18, 31, "PHONE"),  # exact
        _p(38, 43, "ORG"),  # removes the place but with the wrong type
        _p(45, 49, "NAME"),  # "Hope": a false positive on a hard negative
    ]
    r = score_spans(gold, predicted, texts, negatives)
    t = r["by_type"]
    assert t["NAME"]["gold"] == 1 and t["NAME"]["removed"] == 0 and t["NAME"]["partial"] == 1
    assert t["NAME"]["recall"] == 0.0 and t["NAME"]["recall_overlap"] == 1.0
    # NAME redactions: "Liz" (true, right type) and "Hope" (false) -> 1/2
    assert t["NAME"]["predicted"] == 2 and t["NAME"]["precision"] == 0.5 and t["NAME"]["precision_any"] == 0.5
    assert t["PHONE"]["recall"] == 1.0 and t["PHONE"]["precision"] == 1.0
    assert t["PLACE"]["recall"] == 1.0 and t["PLACE"]["predicted"] == 0 and t["PLACE"]["precision"] is None
    # the ORG redaction covers a PLACE: wrong type (strict precision 0) but an identifier (any-precision 1)
    assert t["ORG"]["gold"] == 0 and t["ORG"]["precision"] == 0.0 and t["ORG"]["precision_any"] == 1.0
    o = r["overall"]
    assert o["gold"] == 3 and o["removed"] == 2 and o["recall"] == round(2 / 3, 4)
    assert o["predicted"] == 4 and o["precision"] == 0.75
    assert r["negatives"] == {"count": 2, "redacted": 1}
    assert [m["text"] if "text" in m else (m["start"], m["end"]) for m in r["misses"]] == [(4, 14)]
    assert [(fp["start"], fp["text"]) for fp in r["false_positives"]] == [(45, "Hope")]


def test_score_spans_ignores_punctuation_inside_a_label_and_joins_adjacent_redactions():
    text = "call 555-0134 now"
    texts = {("d.txt", ""): text}
    gold = [_g(5, 13, "PHONE")]
    # two redactions that together cover every digit; the hyphen between them is not needed
    r = score_spans(gold, [_p(5, 8, "PHONE"), _p(9, 13, "ID")], texts)
    assert r["by_type"]["PHONE"]["removed"] == 1 and r["overall"]["precision"] == 1.0
    assert r["by_type"]["ID"]["precision"] == 0.0 and r["by_type"]["ID"]["precision_any"] == 1.0
    # a redaction in another document does not count
    r = score_spans(gold, [_p(5, 13, "PHONE", doc="other.txt")], texts)
    assert r["by_type"]["PHONE"]["removed"] == 0 and r["overall"]["precision"] == 0.0


# -- measured figures --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("split", ["dev", "test"])
def test_deid_eval_recall_and_precision_floors(split):
    report = evaluate_span_labels(EVAL / split, EVAL / split / "labels.csv", RunConfig())
    by_type = report["by_type"]
    for kind, floor in (DEV_FLOOR if split == "dev" else TEST_FLOOR).items():
        assert by_type[kind]["recall"] >= floor, (split, kind, by_type[kind])
    for kind in ("PHONE", "EMAIL", "ADDRESS", "DATE", "AGE", "ID", "URL"):
        assert by_type[kind]["precision_any"] >= 0.95, (split, kind, by_type[kind])
    assert report["overall"]["recall"] >= 0.97
    assert report["overall"]["precision"] >= 0.75
    assert by_type["NAME"]["precision_any"] >= 0.42
