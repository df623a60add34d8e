"""SimilarityCoder: semantic sanity, speaker scope, calibration from training data only, config integration."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.coders.similarity import SimilarityCoder, codebook_prototypes
from pipeline.config import load_run_config
from pipeline.errors import CoderError, ConfigError
from pipeline.registry import build
from pipeline.schema import ASSIGNMENT, SEGMENT, coerce_frame, validate_frame
from pipeline.segment import segment_id

ROOT = Path(__file__).resolve().parents[3]
VALIDATION = "WA.VAL.VALIDATION"
OPENNESS = "WA.OPEN.CLIENT_OPENNESS"  # client-only scope
WAITING = "WA.EARLY.ACCESS_WAITING"


def make_segments(rows: list[tuple[str, str]], doc: str = "d1") -> pd.DataFrame:
    records = []
    for i, (speaker, text) in enumerate(rows):
        start = i * 1000
        records.append({"segment_id": segment_id(doc, start, start + len(text)), "document_id": doc,
                        "speaker": speaker, "turn_index": i, "start_char": start, "end_char": start + len(text),
                        "source_line": i + 1, "text": text})
    return coerce_frame(pd.DataFrame(records), SEGMENT)


def human_rows(segments: pd.DataFrame, codes: dict[int, set[str]], code_ids: list[str],
               coder: str = "human:gold") -> pd.DataFrame:
    """Dense human ASSIGNMENT rows: label True for the codes listed per row position."""
    rows = [{"segment_id": sid, "code_id": c, "coder": coder, "score": float(c in codes.get(i, set())),
             "label": c in codes.get(i, set()), "evidence": "", "run_id": "gold"}
            for i, sid in enumerate(segments["segment_id"]) for c in code_ids]
    return coerce_frame(pd.DataFrame(rows), ASSIGNMENT)


def score_table(coder: SimilarityCoder, segments: pd.DataFrame) -> pd.DataFrame:
    """Segments x codes score matrix from predict (threshold 0, no top_k): 0 where no row."""
    out = coder.predict(segments)
    table = out.pivot(index="segment_id", columns="code_id", values="score")
    return table.reindex(index=segments["segment_id"], columns=coder.code_ids_).fillna(0.0)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("similarity-cache")


BACKGROUND = [
    ("client", "The bus was late so I missed the start of my shift."),
    ("client", "We had pasta for dinner on Tuesday."),
    ("therapist", "Shall we look at the diary you kept this week?"),
    ("client", "My sister moved to a new flat last month."),
    ("client", "It rained the whole weekend and the garden flooded."),
    ("client", "I waited four months on the waiting list before anyone called me."),
    ("client", "I told her things I've never told anyone, not even my husband."),
    ("therapist", "It makes sense that you'd feel angry after what happened."),
]


@pytest.mark.parametrize("backend", ["embed.static.v1", "embed.minilm.v1"])
def test_understood_scores_validation_above_the_bus(backend, codebook, cache_dir):
    segs = make_segments([("client", "I felt completely understood and not judged"),
                          ("client", "The bus was late"), *BACKGROUND])
    coder = SimilarityCoder(backend=backend, threshold=0.0, top_k=None, cache_dir=cache_dir).fit(
        segs, codebook=codebook)
    scores = score_table(coder, segs)
    understood, bus = segs["segment_id"].iloc[0], segs["segment_id"].iloc[1]
    assert scores.loc[understood, VALIDATION] > scores.loc[bus, VALIDATION] + 0.2
    assert scores.loc[understood].idxmax() == VALIDATION
    default = SimilarityCoder(backend=backend, cache_dir=cache_dir).fit(segs, codebook=codebook).predict(segs)
    assert VALIDATION in set(default.loc[default["segment_id"] == understood, "code_id"])
    assert bus not in set(default["segment_id"])


def test_output_is_sparse_valid_and_explained(codebook, cache_dir):
    segs = make_segments([("client", "I felt completely understood and not judged"), *BACKGROUND])
    coder = SimilarityCoder(cache_dir=cache_dir, top_k=2).fit(segs, codebook=codebook)
    out = coder.predict(segs, run_id="r9")
    validate_frame(out, ASSIGNMENT, stage="test")
    assert len(out) and out["label"].all() and (out["run_id"] == "r9").all()
    assert (out["score"] >= coder.threshold).all() and (out["score"] <= 1).all()
    assert out.groupby("segment_id").size().max() <= 2
    pattern = re.compile(r"^(definition|when_to_use|example):(?P<code>[A-Z_.]+)#\d+"
                         r"( near_miss:(counter_example|when_not_to_use):(?P<neg>[A-Z_.]+)#\d+)?$")
    for code, evidence in zip(out["code_id"], out["evidence"], strict=True):
        match = pattern.match(evidence)
        assert match and match["code"] == code and match["neg"] in (None, code), evidence


def test_speaker_scope_is_respected(codebook, cache_dir):
    text = "I told her things I've never told anyone, not even my husband."
    segs = make_segments([("client", text), ("therapist", text), ("unknown", text), ("interviewer", text),
                          *BACKGROUND])
    ids = segs["segment_id"].tolist()
    scoped = SimilarityCoder(threshold=0.0, top_k=None, cache_dir=cache_dir).fit(segs, codebook=codebook)
    scores = score_table(scoped, segs)
    assert scores.loc[ids[0], OPENNESS] > 0 and scores.loc[ids[2], OPENNESS] == scores.loc[ids[0], OPENNESS]
    assert scores.loc[ids[1], OPENNESS] == 0  # client-only code never on therapist talk
    assert not scores.loc[ids[3]].any()  # no code admits interviewers
    free = SimilarityCoder(threshold=0.0, top_k=None, respect_speakers=False, cache_dir=cache_dir)
    free_scores = score_table(free.fit(segs, codebook=codebook), segs)
    assert free_scores.loc[ids[1], OPENNESS] == pytest.approx(scores.loc[ids[0], OPENNESS])


def test_near_misses_lower_the_score(codebook, cache_dir):
    near_miss = "I always felt safe in her room"  # a counter-example of WA.VAL.VALIDATION
    segs = make_segments([("client", near_miss), *BACKGROUND])
    with_neg = SimilarityCoder(threshold=0.0, top_k=None, cache_dir=cache_dir).fit(segs, codebook=codebook)
    without = SimilarityCoder(threshold=0.0, top_k=None, negative_weight=0.0, cache_dir=cache_dir)
    sid = segs["segment_id"].iloc[0]
    assert score_table(with_neg, segs).loc[sid, VALIDATION] < score_table(
        without.fit(segs, codebook=codebook), segs).loc[sid, VALIDATION]
    out = with_neg.predict(segs)
    evidence = out.loc[(out["segment_id"] == sid) & (out["code_id"] == VALIDATION), "evidence"]
    assert evidence.empty or "near_miss:counter_example:WA.VAL.VALIDATION#2" in evidence.iloc[0]


TRAIN = [
    ("client", "She made me feel heard, like my feelings actually made sense."),
    ("client", "He never judged me, even when I talked about the drinking."),
    ("client", "I felt listened to properly for the first time in years."),
    ("client", "She said anyone would have felt that way after the accident."),
    ("client", "I waited six months for my first appointment."),
    ("client", "The waiting list was so long I nearly gave up."),
    ("client", "Nobody rang me back for weeks after the referral."),
    ("client", "We had pasta for dinner on Tuesday."),
    ("client", "The bus was late so I missed the start of my shift."),
    ("client", "My sister moved to a new flat last month."),
    ("client", "It rained the whole weekend and the garden flooded."),
    ("therapist", "Shall we look at the diary you kept this week?"),
]
TEST = [
    ("client", "I felt understood when I told her about the panic attacks."),
    ("client", "The car park was full again."),
]


def test_calibration_learns_per_code_thresholds_from_training_segments_only(codebook, cache_dir):
    train = make_segments(TRAIN, doc="train")
    test = make_segments(TEST, doc="test")
    gold = {0: {VALIDATION}, 1: {VALIDATION}, 2: {VALIDATION}, 3: {VALIDATION}, 4: {WAITING}, 5: {WAITING},
            6: {WAITING}}
    train_gold = human_rows(train, gold, codebook.code_ids)
    coder = SimilarityCoder(cache_dir=cache_dir, top_k=None).fit(train, train_gold, codebook=codebook)
    calibrated = {c for c, e in coder.calibration_.items() if e["source"] == "calibrated"}
    assert calibrated == {VALIDATION, WAITING}
    assert all(coder.thresholds_[c] == coder.threshold for c in codebook.code_ids if c not in calibrated)
    # The chosen thresholds maximise F1 on the training segments (checked against a fine grid).
    raw = score_table(SimilarityCoder(threshold=0.0, top_k=None, cache_dir=cache_dir).fit(
        train, codebook=codebook), train)
    for code in calibrated:
        truth = np.array([code in gold.get(i, set()) for i in range(len(train))])
        def f1(t, code=code, truth=truth):
            pred = raw[code].to_numpy() >= t
            return 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
        assert f1(coder.thresholds_[code]) == pytest.approx(max(f1(t) for t in np.linspace(0.01, 1, 100)))
        assert f1(coder.thresholds_[code]) >= f1(coder.threshold)
        assert coder.calibration_[code]["positives"] == truth.sum()
    # Human rows of other (test) segments, even contradicting ones, are ignored ...
    test_gold = human_rows(test, {0: set(), 1: {VALIDATION}}, codebook.code_ids)
    both = SimilarityCoder(cache_dir=cache_dir, top_k=None).fit(train, pd.concat([train_gold, test_gold]),
                                                                 codebook=codebook)
    assert both.thresholds_ == coder.thresholds_
    # ... and predicting on test data changes nothing learned.
    before = dict(coder.thresholds_)
    coder.predict(test)
    assert coder.thresholds_ == before


def test_calibration_needs_one_human_coder(codebook, cache_dir):
    train = make_segments(TRAIN, doc="train")
    model_rows = human_rows(train, {0: {VALIDATION}}, codebook.code_ids, coder="coder.rules.v1")
    with pytest.raises(CoderError, match="exactly one human coder"):
        SimilarityCoder(cache_dir=cache_dir).fit(train, model_rows, codebook=codebook)
    two = pd.concat([human_rows(train, {}, codebook.code_ids, coder=f"human:{n}") for n in ("a", "b")])
    with pytest.raises(CoderError, match="got 2"):
        SimilarityCoder(cache_dir=cache_dir).fit(train, two, codebook=codebook)
    with pytest.raises(CoderError):
        SimilarityCoder(cache_dir=cache_dir).fit(None, model_rows, codebook=codebook)


def test_codes_with_too_few_positives_keep_the_default(codebook, cache_dir):
    train = make_segments(TRAIN, doc="train")
    coder = SimilarityCoder(cache_dir=cache_dir, min_positives=5).fit(
        train, human_rows(train, {0: {VALIDATION}, 1: {VALIDATION}}, codebook.code_ids), codebook=codebook)
    assert set(coder.thresholds_.values()) == {coder.threshold}
    assert coder.calibration_[VALIDATION] == {"positives": 2, "segments": len(train), "source": "default",
                                             "threshold": coder.threshold}


@pytest.mark.parametrize(("param", "value"), [("threshold", 1.5), ("threshold", None), ("top_k", 0),
                                              ("negative_weight", -1.0), ("min_positives", 0),
                                              ("backend", "embed.nope.v1"), ("backend", "coder.rules.v1")])
def test_invalid_parameters_are_config_errors(param, value, codebook):
    with pytest.raises(ConfigError) as err:
        SimilarityCoder(**{param: value}).fit(codebook=codebook)
    assert err.value.code == "QA-E002" and repr(value) in str(err.value)


def test_prototypes_come_from_the_codebook_text(codebook):
    protos = codebook_prototypes(codebook)
    kinds = {(p.kind, p.positive) for p in protos}
    assert kinds == {("definition", True), ("when_to_use", True), ("example", True), ("counter_example", False),
                     ("when_not_to_use", False)}
    negatives = [p for p in protos if not p.positive]
    assert not [p for p in negatives if " -- " in p.text or re.search(r"\bWA\.[A-Z]", p.text)]
    val = [p for p in protos if p.code_id == VALIDATION]
    assert [p.id for p in val if p.kind == "example"][3] == "example:WA.VAL.VALIDATION#3"
    assert len({p.id for p in protos}) == len(protos)


def test_run_config_selects_the_backend():
    cfg = load_run_config(ROOT / "configs" / "runs" / "similarity.yaml")
    specs = {spec.use: spec for spec in cfg.coders}
    assert set(specs) == {"coder.rules.v1", "coder.similarity.v1"}
    coder = build("coder.similarity.v1", **specs["coder.similarity.v1"].params)
    assert coder.backend in {"embed.static.v1", "embed.minilm.v1"}
    assert build("coder.similarity.v1", backend="embed.minilm.v1").get_params()["backend"] == "embed.minilm.v1"
