import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.codebook import Code, Codebook, Parent
from pipeline.coders.classifier import (
    CARD_FILE,
    CARD_MARKDOWN,
    MODEL_FILE,
    ClassifierCoder,
    codebook_training_rows,
    grouped_calibration_splits,
    previous_texts,
    tune_threshold,
)
from pipeline.errors import CoderError, ConfigError, NotFittedError
from pipeline.evaluate import agreement, binary_matrix
from pipeline.schema import ASSIGNMENT, validate_frame

WAIT, HEARD = "WA.T.WAIT", "WA.T.HEARD"
CODES = [WAIT, HEARD]
POOLS = {
    WAIT: ["waited", "months", "waiting", "list", "referral", "weeks", "queue", "letter"],
    HEARD: ["understood", "heard", "listened", "validated", "seen", "believed", "respected", "accepted"],
    None: ["parking", "weather", "bus", "coffee", "rain", "traffic", "lunch", "garden", "shoes", "radio"],
}
FAST = {"cv": 3, "calibration_cv": 2}


def _codebook(version="1.0.0"):
    return Codebook(id="toy", version=version, parents=[Parent(id="WA.T", name="Toy")], codes=[
        Code(id=WAIT, name="Waiting", parent="WA.T", definition="d",
             examples=["I waited months on the waiting list.", "The referral letter took weeks."],
             counter_examples=["The bus was late -- ordinary delay, not WA.T.WAIT",
                               "I felt heard after the wait -- this is WA.T.HEARD"]),
        Code(id=HEARD, name="Heard", parent="WA.T", definition="d", speakers=["client"],
             examples=["I felt understood and heard.", "She listened and I felt respected."],
             counter_examples=["The coffee was nice -- small talk"]),
    ])


def _segments(n_docs, per_doc=4, seed=0, prefix="d"):
    """Documents of ``per_doc`` client segments; segment k of each document has a known code (or none)."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for d in range(n_docs):
        for t in range(per_doc):
            code = [WAIT, HEARD, None, None][(d + t) % 4]
            words = list(rng.choice(POOLS[code], 4)) + list(rng.choice(POOLS[None], 2))
            rng.shuffle(words)
            text = " ".join(words)
            rows.append({"segment_id": f"{prefix}{d}s{t}", "document_id": f"{prefix}{d}", "speaker": "client",
                         "turn_index": t, "start_char": t * 100, "end_char": t * 100 + len(text),
                         "source_line": t + 1, "text": text})
            labels.append(code)
    return pd.DataFrame(rows), labels


def _human(segments, labels, coder="human:toy"):
    rows = [{"segment_id": sid, "code_id": c, "coder": coder, "score": float(lab == c), "label": lab == c,
             "evidence": "", "run_id": "gold"} for sid, lab in zip(segments["segment_id"], labels, strict=True)
            for c in CODES]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def toy():
    train, train_labels = _segments(12, seed=1, prefix="a")
    test, test_labels = _segments(6, seed=2, prefix="b")
    return train, _human(train, train_labels), test, _human(test, test_labels)


@pytest.fixture(scope="module")
def fitted(toy):
    train, human, _, _ = toy
    return ClassifierCoder(**FAST).fit(train, human, codebook=_codebook())


def test_classifier_learns_separable_toy_task(fitted, toy):
    _, _, test, test_human = toy
    out = fitted.predict(test, run_id="r")
    validate_frame(out, ASSIGNMENT, stage="classifier")
    ids = test["segment_id"].tolist()
    report = agreement(binary_matrix(test_human, segments=ids, codes=CODES),
                       binary_matrix(out, segments=ids, codes=CODES), codes=CODES, n_boot=0)
    assert report.macro["f1"] == 1.0 and report.macro["kappa"] == 1.0
    assert fitted.sources_ == {WAIT: "human", HEARD: "human"} and fitted.skipped_codes_ == []
    assert set(fitted.calibration_.values()) == {"grouped-cv"}


def test_classifier_probabilities_are_calibrated_scores_in_unit_interval(fitted, toy):
    _, _, test, _ = toy
    probs = fitted.predict_proba(test)
    assert probs.shape == (len(test), 2) and ((probs >= 0) & (probs <= 1)).all()
    out = fitted.predict(test)
    assert out["label"].all() and out["evidence"].str.fullmatch(r"clf:p=\d\.\d\d").all()
    col = {c: j for j, c in enumerate(CODES)}
    pos = {s: i for i, s in enumerate(test["segment_id"])}
    for row in out.itertuples():
        assert row.score == pytest.approx(probs[pos[row.segment_id], col[row.code_id]], abs=1e-6)
        assert row.score >= fitted.thresholds_[row.code_id]


def test_classifier_fit_reads_only_its_own_segments(toy):
    """Rows of held-out segments in ``assignments`` (even with wrong labels) never reach fit."""
    train, human, test, test_human = toy
    poisoned = test_human.assign(label=~test_human["label"])
    a = ClassifierCoder(**FAST).fit(train, human, codebook=_codebook())
    b = ClassifierCoder(**FAST).fit(train, pd.concat([human, poisoned]), codebook=_codebook())
    assert a.thresholds_ == b.thresholds_ and a.training_["sha256"] == b.training_["sha256"]
    np.testing.assert_array_equal(a.predict_proba(test), b.predict_proba(test))
    held_out = set(test["document_id"])
    assert not held_out & {d for fold in b.cv_report_["fold_groups"] for d in fold}


def test_classifier_out_of_fold_folds_never_split_a_document(fitted, toy):
    train = toy[0]
    folds = fitted.cv_report_["fold_groups"]
    seen = [d for fold in folds for d in fold]
    assert len(folds) == 3 and sorted(seen) == sorted(set(train["document_id"]))  # each document once


def test_classifier_calibration_splits_are_grouped_and_stratified():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 3).astype(str)
    y = rng.random(90) < 0.2
    splits = grouped_calibration_splits(y, groups, 3, 0)
    tested = np.zeros(90, dtype=int)
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])
        assert y[train].any() and (~y[train]).any() and y[test].any()
        tested[test] += 1
    assert (tested == 1).all()
    assert grouped_calibration_splits(y, groups, 3, 0)[0][1].tolist() == splits[0][1].tolist()  # seeded
    assert grouped_calibration_splits(np.array([1, 0, 0, 0]), np.array(list("abcd")), 2, 0) is None


def test_classifier_small_data_calibrates_on_the_training_fit():
    segs, labels = _segments(1, per_doc=8, seed=3)  # one document: no grouped folds at all
    coder = ClassifierCoder(min_positives=2, codebook_examples="never", **FAST).fit(
        segs, _human(segs, labels), codebook=_codebook())
    assert set(coder.calibration_.values()) == {"train-fit"}
    assert coder.thresholds_ == {WAIT: 0.5, HEARD: 0.5} and "too few documents" in coder.cv_report_["note"]
    probs = coder.predict_proba(segs)
    assert ((probs > 0) & (probs < 1)).all()


def test_tune_threshold_maximises_f1_with_a_margin_and_a_floor():
    scores = np.array([0.9, 0.8, 0.6, 0.4, 0.1])
    truth = np.array([1, 1, 0, 1, 0], dtype=bool)
    assert tune_threshold(scores, truth) == pytest.approx(0.25)  # 3/4 with all three positives: F1 0.857
    assert tune_threshold(scores, truth, floor=0.5) == pytest.approx(0.7)
    assert tune_threshold(scores, np.zeros(5, dtype=bool)) == 0.5


def test_classifier_save_load_round_trip_and_model_card(fitted, toy, tmp_path):
    _, _, test, _ = toy
    folder = fitted.save(tmp_path / "model")
    assert {p.name for p in folder.iterdir()} == {MODEL_FILE, CARD_FILE, CARD_MARKDOWN}
    loaded = ClassifierCoder.load(folder, codebook=_codebook())
    pd.testing.assert_frame_equal(fitted.predict(test, run_id="x"), loaded.predict(test, run_id="x"))
    assert loaded.get_params() == fitted.get_params()
    card = json.loads((folder / CARD_FILE).read_text())
    data = card["training_data"]
    assert data["sha256"] == fitted.training_["sha256"] and len(data["sha256"]) == 64
    assert (data["human_segments"], data["documents"], data["supervision"]) == (48, 12, "human")
    assert card["codebook"] == {"id": "toy", "version": "1.0.0", "sha256": _codebook().sha256()}
    assert card["params"]["cv"] == 3 and card["coder"] == "coder.classifier.v1"
    assert card["codes"][WAIT]["cv"]["f1"] == 1.0 and card["codes"][WAIT]["threshold"] > 0
    assert card["cv"]["macro"]["kappa"] == 1.0
    assert {"scikit-learn", "skops", "numpy", "alliance-coder"} <= set(card["libraries"])
    assert card["model_file"]["sha256"] == hashlib.sha256((folder / MODEL_FILE).read_bytes()).hexdigest()
    assert "Supervision: **human**" in (folder / CARD_MARKDOWN).read_text()


class Untrusted:
    """A type skops does not trust."""


def test_classifier_load_rejects_untrusted_types_and_altered_files(fitted, tmp_path):
    import skops.io as sio

    folder = fitted.save(tmp_path / "model")
    card = json.loads((folder / CARD_FILE).read_text())
    (folder / MODEL_FILE).write_bytes((folder / MODEL_FILE).read_bytes() + b"x")
    with pytest.raises(CoderError, match="sha256"):
        ClassifierCoder.load(folder, codebook=_codebook())
    blob = sio.dumps({"format": 1, "payload": Untrusted()})
    (folder / MODEL_FILE).write_bytes(blob)
    card["model_file"]["sha256"] = hashlib.sha256(blob).hexdigest()
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(CoderError, match="Untrusted") as err:
        ClassifierCoder.load(folder, codebook=_codebook())
    assert err.value.key == "trusted"
    with pytest.raises(ConfigError, match="trusted"):
        ClassifierCoder.load(folder, codebook=_codebook(), trusted=True)
    with pytest.raises(CoderError, match="not a coder.classifier.v1 model"):  # reviewed by the caller: loads
        ClassifierCoder.load(folder, codebook=_codebook(), trusted=[f"{__name__}.Untrusted"])


def test_classifier_load_with_another_codebook_version_names_both(fitted, tmp_path):
    folder = fitted.save(tmp_path / "model")
    with pytest.raises(ConfigError) as err:
        ClassifierCoder.load(folder, codebook=_codebook("1.1.0"))
    assert "toy@1.0.0" in str(err.value) and "toy@1.1.0" in str(err.value)


def test_classifier_without_assignments_learns_from_the_codebook_or_refuses(toy):
    train = toy[0]
    with pytest.raises(CoderError, match="supervised") as err:
        ClassifierCoder(codebook_examples="never").fit(train, codebook=_codebook())
    assert err.value.code == "QA-E031"
    coder = ClassifierCoder(**FAST).fit(train, codebook=_codebook())
    assert coder.sources_ == {WAIT: "codebook", HEARD: "codebook"}
    assert coder.training_["supervision"] == "codebook" and coder.training_["human_segments"] == 0
    out = coder.predict(train)
    assert out["evidence"].str.endswith(" src=codebook").all()


def test_classifier_codebook_rows_follow_examples_and_notes():
    texts, groups, labels, known = codebook_training_rows(_codebook())
    row = {t: i for i, t in enumerate(texts)}
    assert labels[row["I waited months on the waiting list."]].tolist() == [True, False]
    assert labels[row["The bus was late"]].tolist() == [False, False]
    assert known[row["I felt heard after the wait"]].tolist() == [True, False]  # names WA.T.HEARD: left out
    assert len(set(groups)) == len(texts)


def test_classifier_sparse_codes_fall_back_or_are_skipped(toy):
    train, human, test, _ = toy
    few = human.copy()
    heard = few.index[(few["code_id"] == HEARD) & few["label"]]
    few.loc[heard[2:], "label"] = False  # 2 human positives left, below min_positives=5
    strict = ClassifierCoder(codebook_examples="never", **FAST).fit(train, few, codebook=_codebook())
    assert strict.skipped_codes_ == [HEARD] and HEARD not in set(strict.predict(test)["code_id"])
    mixed = ClassifierCoder(**FAST).fit(train, few, codebook=_codebook())
    assert mixed.sources_ == {WAIT: "human", HEARD: "human+codebook"} and mixed.skipped_codes_ == []
    assert mixed.training_["supervision"] == "mixed: human, human+codebook"


def test_classifier_respects_speaker_scope(fitted, toy):
    test = toy[2].assign(speaker="therapist")  # HEARD is a client-only code
    assert HEARD not in set(fitted.predict(test)["code_id"])
    assert (fitted.predict_proba(test)[:, 1] == 0).all()


def test_classifier_previous_texts_stay_in_their_document():
    segs = pd.DataFrame({"segment_id": list("abcde"), "document_id": ["x", "y", "x", "x", "y"],
                         "turn_index": [2, 0, 0, 2, 1], "start_char": [50, 0, 0, 10, 5],
                         "text": ["x2b", "y0", "x0", "x2a", "y1"]})
    assert previous_texts(segs) == ["x2a", "", "", "x0", "y0"]


def test_classifier_context_learns_from_the_previous_segment():
    rows, labels = [], []
    rng = np.random.default_rng(4)
    for d in range(16):
        cue = d % 2 == 0
        first = " ".join(rng.choice(POOLS[WAIT] if cue else POOLS[None], 4))
        rows += [(d, 0, first), (d, 1, "okay thanks for that")]
        labels += [None, WAIT if cue else None]
    segs = pd.DataFrame([{"segment_id": f"c{d}s{t}", "document_id": f"c{d}", "speaker": "client",
                          "turn_index": t, "text": text} for d, t, text in rows])
    human = _human(segs, labels)
    second = segs[segs["turn_index"] == 1]
    with_context = ClassifierCoder(context=True, codebook_examples="never", **FAST).fit(segs, human,
                                                                                         codebook=_codebook())
    without = ClassifierCoder(codebook_examples="never", **FAST).fit(segs, human, codebook=_codebook())
    p_with = with_context.predict_proba(segs)[second.index, 0]
    p_without = without.predict_proba(segs)[second.index, 0]
    cue = np.arange(len(second)) % 2 == 0
    assert p_with[cue].min() > p_with[~cue].max()
    assert np.ptp(p_without) < 1e-9  # identical texts: no way to tell them apart without context


class FakeEmbedder:
    def __init__(self, model_id):
        self.model_id, self.dim = model_id, 8


def test_classifier_appends_embeddings_and_checks_their_model(toy, monkeypatch):
    import pipeline.embed as embed

    def fake_texts(texts, *, backend, cache_dir=None, batch_size=64):
        out = np.array([[int(h, 16) % 7 - 3 for h in hashlib.sha256(t.encode()).hexdigest()[:8]] for t in texts],
                       dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    monkeypatch.setattr(embed, "embed_texts", fake_texts)
    monkeypatch.setattr(embed, "get_embedder", lambda name, cache_dir=None: FakeEmbedder("fake@1"))
    train, human, test, _ = toy
    coder = ClassifierCoder(embedding_backend="embed.static.v1", **FAST).fit(train, human, codebook=_codebook())
    assert coder.embedding_model_id_ == "fake@1"
    n_tfidf = len(coder.vectorizer_.get_feature_names_out())
    model = coder.models_[WAIT].calibrated_classifiers_[0].estimator
    assert model.coef_.shape[1] == n_tfidf + 8
    assert len(coder.predict(test)) > 0
    monkeypatch.setattr(embed, "get_embedder", lambda name, cache_dir=None: FakeEmbedder("fake@2"))
    with pytest.raises(CoderError, match="retrain"):
        coder.predict(test)


@pytest.mark.parametrize(("params", "key"), [
    ({"cv": 1}, "cv"), ({"codebook_examples": "sometimes"}, "codebook_examples"), ({"C": 0}, "C"),
    ({"min_positives": True}, "min_positives"),
])
def test_classifier_rejects_invalid_params(params, key, toy):
    with pytest.raises(ConfigError) as err:
        ClassifierCoder(**params).fit(toy[0], toy[1], codebook=_codebook())
    assert err.value.key == key and "Got" in str(err.value)


def test_classifier_needs_one_human_coder_and_is_not_fitted_before_fit(toy):
    train, human, _, _ = toy
    two = pd.concat([human, human.assign(coder="human:other")])
    with pytest.raises(CoderError, match="exactly one human coder"):
        ClassifierCoder().fit(train, two, codebook=_codebook())
    with pytest.raises(NotFittedError):
        ClassifierCoder().save("unused")
