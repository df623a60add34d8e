"""coder.topics.v1: determinism, client voice, codebook mapping vs candidate themes, outliers, transform, drift."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from pipeline.coders.combine import combine_assignments
from pipeline.coders.topics import TopicCoder, codebook_seed_words, is_candidate
from pipeline.errors import ConfigError
from pipeline.schema import ASSIGNMENT, SEGMENT, coerce_frame, validate_frame
from pipeline.segment import segment_id
from pipeline.topics.drift import topic_drift

VALIDATION = ["she made me feel understood", "he listened and never judged me", "I felt heard and taken seriously",
              "she said my reaction made sense", "nobody had ever validated my feelings like that",
              "he understood why I was upset"]
TRUST = ["I trusted her completely", "I felt safe in that room", "she really cared about me",
         "I could trust him with anything", "it felt like a safe place to talk", "she cared and I felt protected"]
GARDEN = ["my tomatoes finally ripened on the allotment", "I planted potatoes and runner beans in the garden",
          "the slugs ate all my lettuce seedlings", "I spent the weekend digging compost into the vegetable beds",
          "the courgettes in my greenhouse are huge this year", "I pruned the apple trees and weeded the borders"]
TAILS = ["", " this week", " last time", " honestly", " again", " at the start"]
THERAPIST = ["What would you like to focus on today?", "Let's look at the homework from last week.",
             "How did the exposure practice go?", "We have about ten minutes left."]
NOISE = ["The train to Leeds was cancelled.", "My sister bought a red bicycle.", "We watched a film about whales.",
         "The printer jammed twice.", "I cooked a curry for my neighbours.", "The football match went to penalties.",
         "My laptop battery died during the call.", "There was a thunderstorm on Tuesday night.",
         "I lost my umbrella on the bus.", "The bakery ran out of croissants.", "My cousin moved to Canada.",
         "The dentist said my teeth are fine."]
SMALL = {"n_topics": 3, "min_topic_size": 5}


def themed() -> list[tuple[str, str, str]]:
    """(theme, speaker, text): 36 client sentences per theme, and therapist talk."""
    rows = [(theme, "client", f"{b[0].upper()}{b[1:]}{t}.")
            for theme, base in (("validation", VALIDATION), ("trust", TRUST), ("garden", GARDEN))
            for b in base for t in TAILS]
    return rows + [("therapist", "therapist", t) for t in THERAPIST]


def frame(rows: list[tuple[str, str]], doc: str = "d1") -> pd.DataFrame:
    out = [{"segment_id": segment_id(doc, i * 200, i * 200 + len(text)), "document_id": doc, "speaker": speaker,
            "turn_index": i, "start_char": i * 200, "end_char": i * 200 + len(text), "source_line": i + 1,
            "text": text} for i, (speaker, text) in enumerate(rows)]
    return coerce_frame(pd.DataFrame(out), SEGMENT)


@pytest.fixture(scope="module")
def data():
    rows = themed()
    return frame([(s, t) for _, s, t in rows]), np.array([theme for theme, _, _ in rows])


@pytest.fixture(scope="module")
def fitted(data, codebook):
    segments, _ = data
    return TopicCoder(**SMALL, random_state=0).fit(segments, codebook=codebook)


def test_same_seed_gives_identical_topics_and_rows(data, codebook, fitted):
    segments, _ = data
    again = TopicCoder(**SMALL, random_state=0).fit(segments, codebook=codebook)
    pd.testing.assert_frame_equal(fitted.topic_table(), again.topic_table())
    pd.testing.assert_frame_equal(fitted.predict(segments, run_id="r"), again.predict(segments, run_id="r"))
    assert adjusted_rand_score(fitted.labels_, again.labels_) == 1.0


def test_client_voice_by_default_and_configurable(data, codebook, fitted):
    segments, themes = data
    therapist = set(segments.loc[themes == "therapist", "segment_id"])
    out = fitted.predict(segments, run_id="r")
    validate_frame(out, ASSIGNMENT)
    assert not therapist & set(out["segment_id"])
    assert set(out["segment_id"]) == set(segments.loc[themes != "therapist", "segment_id"])
    everyone = TopicCoder(**SMALL, speakers=None).fit(segments, codebook=codebook).predict(segments)
    assert therapist <= set(everyone["segment_id"])


def test_unplanned_theme_is_a_candidate_with_quotes_and_planned_themes_carry_codes(data, fitted):
    from pipeline.topics.stage import candidate_themes

    segments, themes = data
    garden_ids = set(segments.loc[themes == "garden", "segment_id"])
    position = {sid: i for i, sid in enumerate(fitted.fit_segment_ids_)}
    garden_topics = {int(fitted.labels_[position[s]]) for s in garden_ids}
    assert len(garden_topics) == 1
    garden = next(r for r in fitted.topics_ if r["topic_id"] in garden_topics)
    assert not garden["mapped"] and is_candidate(garden["code_id"]) and garden["code_id"] in fitted.candidate_code_ids_
    assert {"allotment", "garden", "greenhouse"} & set(garden["top_terms"])
    mapped = {r["code_id"] for r in fitted.topics_ if r["mapped"]}
    assert mapped & {"WA.VAL.VALIDATION", "WA.BOND.TRUST_SAFETY"}
    table = fitted.topic_table()
    row = table[table["code_id"].isin(mapped)].iloc[0]
    assert row["label"] == row["code_name"] and not row["candidate"]
    found = candidate_themes(fitted, segments, quotes=5)
    theme = next(t for t in found if t["candidate_id"] == garden["code_id"])
    assert len(theme["quotes"]) == 5 and {q["segment_id"] for q in theme["quotes"]} <= garden_ids
    out = fitted.predict(segments)
    assert set(out.loc[out["segment_id"].isin(garden_ids) & ~out["evidence"].str.contains("secondary"),
                       "code_id"]) == {garden["code_id"]}


def test_outlier_reduction_lowers_the_outlier_share(data, codebook):
    segments, _ = data
    noisy = pd.concat([segments, frame([("client", t) for t in NOISE], doc="d2")], ignore_index=True)
    params = {"clusterer": "hdbscan", "n_components": 3, "min_topic_size": 8, "random_state": 0}
    kept = TopicCoder(**params, outliers="none").fit(noisy, codebook=codebook)
    reduced = TopicCoder(**params, outliers="embeddings").fit(noisy, codebook=codebook)
    assert kept.outlier_share_before_ > 0.05 and kept.outlier_share_after_ == kept.outlier_share_before_
    assert reduced.outlier_share_before_ == kept.outlier_share_before_
    assert reduced.outlier_share_after_ < 0.5 * reduced.outlier_share_before_
    assert (reduced.transform(noisy)["topic"] >= 0).mean() >= 1 - reduced.outlier_share_after_ - 1e-9


def test_transform_without_refit_gives_the_training_topics_and_places_new_segments(data, fitted):
    segments, themes = data
    assigned = fitted.transform(segments)
    assert assigned["segment_id"].tolist() == fitted.fit_segment_ids_
    assert (assigned["topic"].to_numpy() == fitted.labels_).all()
    garden_topic = int(fitted.labels_[list(themes[themes != "therapist"]).index("garden")])
    new = frame([("client", "The runner beans and tomatoes on my allotment need watering."),
                 ("client", "I dug new vegetable beds in the garden.")], doc="new")
    assert fitted.transform(new)["topic"].tolist() == [garden_topic, garden_topic]


def test_combine_skips_candidate_themes(data, fitted, codebook):
    segments, _ = data
    topics = fitted.predict(segments, run_id="r")
    assert topics["code_id"].map(is_candidate).any()
    rules = topics.head(3).assign(code_id="WA.VAL.VALIDATION", coder="coder.rules.v1", score=1.0,
                                  evidence="pattern")
    combined = combine_assignments([rules, topics], codebook=codebook, run_id="r")
    validate_frame(combined, ASSIGNMENT)
    assert not combined["code_id"].map(is_candidate).any()
    assert set(combined["code_id"]) <= set(codebook.code_ids)


def test_drift_is_zero_for_the_same_and_one_for_disjoint_distributions():
    same = topic_drift([0, 1, 1, 2, -1], [0, 1, 1, 2, -1])
    assert same["js_distance"] == 0.0 and same["outlier_share_new"] == 0.2
    apart = topic_drift([0, 0, 1], [2, 2, 3])
    assert apart["js_distance"] == pytest.approx(1.0) and apart["largest_changes"][0]["change"] != 0
    half = topic_drift([0, 0, 1, 1], [0, 0, 0, 0])
    assert 0.0 < half["js_distance"] < 1.0


def test_invalid_parameters_and_seed_words(codebook, data):
    segments, _ = data
    for bad in ({"reducer": "tsne"}, {"clusterer": "dbscan"}, {"n_topics": 0}, {"multi_topic_threshold": 1.5}):
        with pytest.raises(ConfigError):
            TopicCoder(**bad).fit(segments, codebook=codebook)
    seeds = codebook_seed_words(codebook)
    assert "trust" in seeds and "client" not in seeds and "and" not in seeds
