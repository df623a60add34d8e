import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support
from sklearn.model_selection import KFold

from pipeline import evaluate_cv
from pipeline.errors import IngestError, SchemaError
from pipeline.evaluate import (
    STATISTICS,
    agreement,
    binary_matrix,
    check_grouped_folds,
    compare_coders,
    grouped_folds,
    krippendorff_alpha_nominal,
    read_gold_csv,
)
from pipeline.schema import ASSIGNMENT, validate_frame

CODES = ["WA.A", "WA.B", "WA.C"]
KEYS = {"f1", "kappa", "alpha", "precision", "recall", "n", "prevalence", "percent_agreement", "support"}


def _col(values):
    return np.asarray(values, dtype=int).reshape(-1, 1)


def _assignments(coder, coded):
    """ASSIGNMENT rows for {segment_id: set of codes}, one row per segment x code (like gold tables)."""
    rows = [{"segment_id": s, "code_id": c, "coder": coder, "score": float(c in codes), "label": c in codes,
             "evidence": "", "run_id": "r"} for s, codes in coded.items() for c in CODES]
    return pd.DataFrame(rows, columns=ASSIGNMENT.column_names)


# --- hand-computed examples ------------------------------------------------------------------------


def test_evaluate_hand_computed_symmetric_example():
    # ref  = 1 1 1 1 0 0 0 0 0 0 ; pred = 1 1 1 0 1 0 0 0 0 0  ->  tp=3 fn=1 fp=1 tn=5, n=10
    # precision = 3/4, recall = 3/4, F1 = 2*3 / (2*3 + 1 + 1) = 0.75
    # p_o = 8/10; p_e = (4*4 + 6*6) / 100 = 0.52; kappa = (0.8 - 0.52) / 0.48 = 7/12
    # alpha: n_1 = 2*3 + 1 + 1 = 8, n_0 = 2*5 + 2 = 12, m = 20, D = fp + fn = 2
    #        alpha = 1 - (m - 1) * D / (n_0 * n_1) = 1 - 19*2/96 = 29/48
    ref = _col([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    pred = _col([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    d = agreement(ref, pred, codes=["WA.A"], n_boot=0).per_code["WA.A"]
    assert d["precision"] == pytest.approx(0.75) and d["recall"] == pytest.approx(0.75)
    assert d["f1"] == pytest.approx(0.75)
    assert d["kappa"] == pytest.approx(7 / 12)
    assert d["alpha"] == pytest.approx(29 / 48)
    assert d["prevalence"] == pytest.approx(0.4) and d["percent_agreement"] == pytest.approx(0.8)
    assert (d["n"], d["support"]) == (10, 4)
    assert krippendorff_alpha_nominal(np.hstack([ref, pred]).T) == pytest.approx(29 / 48)


def test_evaluate_hand_computed_asymmetric_example():
    # ref = 1 1 0 0 0 0 ; pred = 1 1 1 1 0 0  ->  tp=2 fp=2 fn=0 tn=2, n=6
    # precision = 2/4, recall = 2/2, F1 = 4 / (4 + 2) = 2/3
    # p_o = 4/6; p_e = (2*4 + 4*2) / 36 = 4/9; kappa = (2/3 - 4/9) / (5/9) = 0.4
    # alpha: n_1 = 2*2 + 2 = 6, n_0 = 2*2 + 2 = 6, m = 12, D = 2 -> 1 - 11*2/36 = 7/18
    d = agreement(_col([1, 1, 0, 0, 0, 0]), _col([1, 1, 1, 1, 0, 0]), codes=["WA.A"], n_boot=0).per_code["WA.A"]
    assert (d["precision"], d["recall"]) == (pytest.approx(0.5), pytest.approx(1.0))
    assert d["f1"] == pytest.approx(2 / 3)
    assert d["kappa"] == pytest.approx(0.4)
    assert d["alpha"] == pytest.approx(7 / 18)


def test_evaluate_alpha_coincidence_matrix_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example with missing
    # values (4 coders x 12 units): alpha = 0.743.
    nan = np.nan
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
    assert krippendorff_alpha_nominal(data) == pytest.approx(0.743, abs=5e-4)
    assert math.isnan(krippendorff_alpha_nominal([[1, 1, 1], [1, 1, nan]]))


def test_evaluate_macro_averages_active_codes_only():
    # WA.A as in the symmetric example; WA.B never used (inactive); WA.C used on every segment by both
    # (F1 = 1, kappa/alpha undefined: one category only).
    ref = np.array([[1, 0, 1]] * 4 + [[0, 0, 1]] * 6)
    pred = ref.copy()
    pred[3, 0], pred[4, 0] = 0, 1
    rep = agreement(ref, pred, codes=CODES, n_boot=0)
    c = rep.per_code["WA.C"]
    assert c["f1"] == 1.0 and math.isnan(c["kappa"]) and math.isnan(c["alpha"])
    m = rep.macro
    assert m["f1"] == pytest.approx((0.75 + 1.0) / 2)
    assert m["kappa"] == pytest.approx(7 / 12)  # WA.C is nan and skipped, WA.B inactive
    assert m["percent_agreement"] == pytest.approx((0.8 + 1.0) / 2)
    assert m["prevalence"] == pytest.approx((0.4 + 1.0) / 2)
    assert (m["n"], m["support"]) == (10, 14)


# --- references and limiting cases ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evaluate_matches_sklearn_and_krippendorff_on_random_data(seed):
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(seed)
    ref = (rng.random((150, 4)) < [0.5, 0.2, 0.05, 0.3]).astype(int)
    pred = np.where(rng.random(ref.shape) < 0.8, ref, rng.integers(0, 2, ref.shape))
    codes = ["C0", "C1", "C2", "C3"]
    rep = agreement(ref, pred, codes=codes, n_boot=0)
    p, r, f, s = precision_recall_fscore_support(ref, pred, average=None, zero_division=0)
    for j, code in enumerate(codes):
        d = rep.per_code[code]
        assert d["kappa"] == pytest.approx(cohen_kappa_score(ref[:, j], pred[:, j]), abs=1e-12)
        ka = krippendorff.alpha(reliability_data=np.vstack([ref[:, j], pred[:, j]]), level_of_measurement="nominal")
        assert d["alpha"] == pytest.approx(ka, abs=1e-12)
        assert krippendorff_alpha_nominal(np.vstack([ref[:, j], pred[:, j]])) == pytest.approx(ka, abs=1e-12)
        assert (d["precision"], d["recall"], d["f1"], d["support"]) == (
            pytest.approx(p[j]), pytest.approx(r[j]), pytest.approx(f[j]), s[j])
    assert rep.macro["f1"] == pytest.approx(f.mean())


def test_evaluate_alpha_general_matches_krippendorff_with_missing_values():
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(7)
    data = rng.integers(0, 4, (3, 60)).astype(float)
    data[rng.random(data.shape) < 0.2] = np.nan
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert krippendorff_alpha_nominal(data) == pytest.approx(expected, abs=1e-12)


def test_evaluate_perfect_agreement_is_one():
    ref = np.random.default_rng(3).integers(0, 2, (50, 3))
    rep = agreement(ref, ref.copy(), codes=CODES, n_boot=50)
    for stat in ("f1", "kappa", "alpha", "precision", "recall", "percent_agreement"):
        assert rep.macro[stat] == 1.0
        assert all(rep.per_code[c][stat] == 1.0 for c in CODES)
    assert rep.macro["kappa_ci"] == (1.0, 1.0)


def test_evaluate_independent_labels_give_chance_agreement():
    rng = np.random.default_rng(11)
    ref, pred = rng.integers(0, 2, (20_000, 2)), rng.integers(0, 2, (20_000, 2))
    rep = agreement(ref, pred, codes=["WA.A", "WA.B"], n_boot=0)
    for code in ("WA.A", "WA.B"):
        assert abs(rep.per_code[code]["kappa"]) < 0.03 and abs(rep.per_code[code]["alpha"]) < 0.03
        assert rep.per_code[code]["percent_agreement"] == pytest.approx(0.5, abs=0.02)


def test_evaluate_no_positives_anywhere_is_nan_without_warnings():
    zeros = np.zeros((8, 3), dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = agreement(zeros, zeros, codes=CODES, n_boot=20)
    for d in (*rep.per_code.values(), rep.macro):
        for stat in ("f1", "kappa", "alpha", "precision", "recall"):
            assert math.isnan(d[stat]) and all(math.isnan(x) for x in d[f"{stat}_ci"])
    d = rep.per_code["WA.A"]
    assert (d["prevalence"], d["percent_agreement"], d["n"], d["support"]) == (0.0, 1.0, 8, 0)
    assert rep.macro["n"] == 8 and rep.macro["support"] == 0 and math.isnan(rep.macro["percent_agreement"])


def test_evaluate_missed_code_has_zero_precision_and_recall():
    d = agreement(_col([1, 0, 0, 0]), _col([0, 0, 0, 0]), codes=["WA.A"], n_boot=0).per_code["WA.A"]
    assert (d["precision"], d["recall"], d["f1"], d["kappa"]) == (0.0, 0.0, 0.0, 0.0)


# --- bootstrap -------------------------------------------------------------------------------------


def _noisy(seed=5, n=120):
    rng = np.random.default_rng(seed)
    ref = (rng.random((n, 3)) < 0.35).astype(int)
    return ref, np.where(rng.random(ref.shape) < 0.85, ref, 1 - ref)


def test_evaluate_bootstrap_ci_contains_estimate_and_is_deterministic():
    ref, pred = _noisy()
    a = agreement(ref, pred, codes=CODES, n_boot=300, random_state=42)
    b = agreement(ref, pred, codes=CODES, n_boot=300, random_state=42)
    c = agreement(ref, pred, codes=CODES, n_boot=300, random_state=43)
    assert a.to_dict() == b.to_dict()
    assert a.macro["kappa_ci"] != c.macro["kappa_ci"]
    for d in (a.macro, *a.per_code.values()):
        for stat in STATISTICS:
            low, high = d[f"{stat}_ci"]
            assert low <= d[stat] <= high, stat
            assert low < high, stat
    assert (a.resample_unit, a.n_units, a.n_boot) == ("segment", 120, 300)


def test_evaluate_cluster_bootstrap_resamples_groups():
    # 20 documents x 10 segments; agreement is all-or-nothing per document, so documents, not
    # segments, are the independent units and the cluster interval must be wider.
    docs = np.repeat([f"doc{i}" for i in range(20)], 10)
    ref = np.tile([1, 0], 100).reshape(-1, 1)
    disagree = np.isin(docs, ["doc1", "doc5", "doc9", "doc13", "doc17"])
    pred = np.where(disagree[:, None], 1 - ref, ref)
    seg = agreement(ref, pred, codes=["WA.A"], n_boot=400)
    clu = agreement(ref, pred, codes=["WA.A"], n_boot=400, groups=docs)
    assert (clu.resample_unit, clu.n_units) == ("group", 20)
    assert clu.per_code["WA.A"]["kappa"] == seg.per_code["WA.A"]["kappa"]
    width = {name: np.diff(r.per_code["WA.A"]["kappa_ci"])[0] for name, r in (("seg", seg), ("clu", clu))}
    assert width["clu"] > 1.5 * width["seg"]
    # one group per segment is the plain segment bootstrap
    same = agreement(ref, pred, codes=["WA.A"], n_boot=400, groups=[f"s{i}" for i in range(200)])
    assert same.per_code["WA.A"]["kappa_ci"] == seg.per_code["WA.A"]["kappa_ci"]


def test_evaluate_groups_as_mapping_from_segment_ids():
    ids = [f"s{i}" for i in range(6)]
    ref, pred = _col([1, 1, 0, 0, 1, 0]), _col([1, 0, 0, 0, 1, 1])
    mapping = pd.Series({s: f"d{i // 2}" for i, s in enumerate(ids)})
    rep = agreement(ref, pred, codes=["WA.A"], segment_ids=ids, groups=mapping, n_boot=50)
    listed = agreement(ref, pred, codes=["WA.A"], segment_ids=ids, groups=mapping.to_numpy(), n_boot=50)
    assert rep.n_units == 3 and rep.to_dict() == listed.to_dict()
    with pytest.raises(ValueError, match="no group"):
        agreement(ref, pred, codes=["WA.A"], segment_ids=ids, groups={"s0": "d0"}, n_boot=5)
    with pytest.raises(ValueError, match="one label per segment"):
        agreement(ref, pred, codes=["WA.A"], groups=["d0"], n_boot=5)


# --- report, tables, input checks ----------------------------------------------------------------


def test_evaluate_report_dict_and_frame_shape():
    ref, pred = _noisy(n=40)
    rep = agreement(ref, pred, codes=CODES, n_boot=20)
    out = rep.to_dict()
    assert set(out) == {"macro", "per_code"} and list(out["per_code"]) == CODES
    expected = KEYS | {f"{s}_ci" for s in STATISTICS}
    assert set(out["macro"]) == expected and all(set(v) == expected for v in out["per_code"].values())
    frame = rep.to_frame()
    assert list(frame.columns) == ["code_id", "statistic", "value", "ci_low", "ci_high"]
    assert len(frame) == (1 + len(CODES)) * (len(STATISTICS) + 2)
    row = frame[(frame["code_id"] == "WA.B") & (frame["statistic"] == "kappa")].iloc[0]
    assert row["value"] == out["per_code"]["WA.B"]["kappa"]
    assert (row["ci_low"], row["ci_high"]) == out["per_code"]["WA.B"]["kappa_ci"]


def test_evaluate_binary_matrix_and_tables():
    table = pd.concat([
        _assignments("human:x", {"s1": {"WA.A"}, "s2": set(), "s3": {"WA.B", "WA.C"}}),
        _assignments("coder.rules.v1", {"s1": {"WA.A"}, "s2": {"WA.C"}, "s9": {"WA.A"}}),
    ], ignore_index=True)
    m = binary_matrix(table, segments=["s1", "s2", "s3"], codes=CODES, coder="human:x")
    assert m.tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 1]]
    with pytest.raises(SchemaError, match="coder="):
        binary_matrix(table, segments=["s1"], codes=CODES)
    with pytest.raises(SchemaError, match="label"):
        binary_matrix(table.drop(columns=["label"]), segments=["s1"], codes=CODES, coder="human:x")
    # rules coders write positive rows only; the reference decides the segments (s9 is ignored)
    gold = table[table["coder"] == "human:x"]
    positives = table[(table["coder"] == "coder.rules.v1") & table["label"]]
    rep = agreement(gold, positives, codes=CODES, n_boot=0)
    assert rep.segment_ids == ("s1", "s2", "s3") and rep.reference == "human:x"
    assert rep.per_code["WA.A"]["f1"] == 1.0 and rep.per_code["WA.C"]["precision"] == 0.0


def test_evaluate_rejects_bad_inputs():
    with pytest.raises(ValueError, match="0/1"):
        agreement(_col([0, 2]), _col([0, 1]), codes=["WA.A"], n_boot=0)
    with pytest.raises(ValueError, match="same shape"):
        agreement(_col([0, 1]), _col([0, 1, 1]), codes=["WA.A"], n_boot=0)
    with pytest.raises(ValueError, match="n_boot"):
        agreement(_col([0, 1]), _col([0, 1]), codes=["WA.A"], n_boot=-1)
    with pytest.raises(ValueError, match="unique"):
        agreement(np.zeros((2, 2)), np.zeros((2, 2)), codes=["WA.A", "WA.A"], n_boot=0)


# --- compare_coders ----------------------------------------------------------------------------------


def test_evaluate_compare_coders_uses_overlapping_segments_only():
    a = _assignments("human:ann", {"s1": {"WA.A"}, "s2": set(), "s3": {"WA.A"}, "s4": {"WA.A"},
                                   "s5": set(), "s6": {"WA.B"}})
    b = _assignments("human:ben", {"s4": {"WA.A"}, "s5": {"WA.A"}, "s6": {"WA.B"}, "s7": {"WA.A"},
                                   "s8": {"WA.A"}})
    table = pd.concat([a, b], ignore_index=True)
    rep = compare_coders(table, "human:ann", "human:ben", codes=CODES, n_boot=0)
    # shared: s4 s5 s6. WA.A: ann 1 0 0, ben 1 1 0 -> tp=1 fp=1 fn=0 tn=1 -> precision 1/2, recall 1
    # p_o = 2/3, p_e = (1*2 + 2*1)/9 = 4/9, kappa = (2/3 - 4/9)/(5/9) = 0.4
    assert rep.segment_ids == ("s4", "s5", "s6") and rep.per_code["WA.A"]["n"] == 3
    assert (rep.reference, rep.predicted) == ("human:ann", "human:ben")
    d = rep.per_code["WA.A"]
    assert (d["precision"], d["recall"], d["kappa"]) == (pytest.approx(0.5), 1.0, pytest.approx(0.4))
    assert rep.per_code["WA.B"]["kappa"] == 1.0
    restricted = compare_coders(table, "human:ann", "human:ben", codes=CODES, segment_ids=["s6", "s4", "s1"],
                                n_boot=0)
    assert restricted.segment_ids == ("s6", "s4")
    with pytest.raises(SchemaError, match="No segment was coded by both"):
        compare_coders(table, "human:ann", "human:ben", codes=CODES, segment_ids=["s1", "s7"], n_boot=0)
    with pytest.raises(SchemaError, match="human:eve"):
        compare_coders(table, "human:ann", "human:eve", codes=CODES, n_boot=0)


# --- grouped folds -----------------------------------------------------------------------------------


def _segments_for_folds():
    sizes = [3, 7, 1, 4, 9, 2, 5, 6, 2, 8, 3, 4]
    docs = np.repeat([f"doc{i}" for i in range(len(sizes))], sizes)
    return pd.DataFrame({"segment_id": [f"s{i}" for i in range(len(docs))], "document_id": docs})


def _check_whole_documents(segments, folds):
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(segments)))
    for train, test in folds:
        train_docs = set(segments["document_id"].iloc[train])
        test_docs = set(segments["document_id"].iloc[test])
        assert not train_docs & test_docs
        assert len(train) + len(test) == len(segments)


def test_evaluate_grouped_folds_never_split_a_document(monkeypatch):
    segments = _segments_for_folds()
    folds = grouped_folds(segments, n_splits=4, random_state=0)
    assert len(folds) == 4
    _check_whole_documents(segments, folds)
    again = grouped_folds(segments, n_splits=4, random_state=0)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again, strict=True))
    other = grouped_folds(segments, n_splits=4, random_state=1)
    assert any(set(a[1]) != set(b[1]) for a, b in zip(folds, other, strict=True))
    monkeypatch.setattr(evaluate_cv, "_SUPPORTS_SHUFFLE", False)  # older scikit-learn: group permutation
    fallback = grouped_folds(segments, n_splits=4, random_state=0)
    _check_whole_documents(segments, fallback)


def test_evaluate_grouped_folds_checks_and_errors():
    segments = _segments_for_folds()
    by_segment = list(KFold(n_splits=3).split(segments))
    with pytest.raises(ValueError, match="doc"):
        check_grouped_folds(by_segment, segments["document_id"])
    with pytest.raises(ValueError, match="n_splits"):
        grouped_folds(segments, n_splits=13)
    with pytest.raises(SchemaError, match="case_id"):
        grouped_folds(segments, groups_column="case_id")


# --- read_gold_csv -----------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "gold_ann.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOLD = (
    "document_id,speaker,text,codes\n"
    "d1,Client,\"I felt heard,\nreally heard.\",WA.A; WA.B\n"
    "d1,therapist,Tell me more.,\n"
    "\n"
    "d2,,We agreed on goals.,WA.C;\n"
)


def test_evaluate_read_gold_csv_builds_segments_and_assignments(tmp_path):
    segments, assignments = read_gold_csv(_write(tmp_path, GOLD), CODES)
    assert segments["document_id"].tolist() == ["d1", "d1", "d2"]
    assert segments["speaker"].tolist() == ["client", "therapist", "unknown"]
    assert segments["turn_index"].tolist() == [0, 1, 0]
    assert segments["source_line"].tolist() == [2, 4, 6]  # the quoted text spans lines 2-3; line 5 is blank
    assert segments["segment_id"].is_unique
    validate_frame(assignments, ASSIGNMENT)
    assert len(assignments) == 3 * len(CODES) and set(assignments["coder"]) == {"human:gold_ann"}
    m = binary_matrix(assignments, segments=segments["segment_id"].tolist(), codes=CODES)
    assert m.tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    again, _ = read_gold_csv(_write(tmp_path, GOLD, "copy.csv"), CODES)
    assert again["segment_id"].tolist() == segments["segment_id"].tolist()  # ids are stable


def test_evaluate_read_gold_csv_with_codebook_and_optional_columns(tmp_path, codebook):
    code = codebook.code_ids[0]
    text = f"segment_id,document_id,turn,speaker,text,codes\nseg-1,d1,4,T,Hello.,{code}\nseg-2,d1,5,P,Hi.,\n"
    segments, assignments = read_gold_csv(_write(tmp_path, text), codebook)
    assert segments["segment_id"].tolist() == ["seg-1", "seg-2"]
    assert segments["turn_index"].tolist() == [4, 5] and segments["speaker"].tolist() == ["therapist", "client"]
    assert len(assignments) == 2 * len(codebook.code_ids)
    assert assignments.loc[assignments["label"], "code_id"].tolist() == [code]


@pytest.mark.parametrize(
    ("text", "line", "code", "needle"),
    [
        (GOLD + "d3,client,Hm.,WA.ZZZ\n", 7, "QA-E015", "'WA.ZZZ'"),
        ("document_id,speaker,text\nd1,client,Hm.\n", 1, "QA-E013", "'codes'"),
        ("\ndocument_id,speaker,text,codes\nd1,client,\"Hm.,WA.A\n", 3, "QA-E013", "malformed CSV"),
        ("document_id,speaker,text,codes\nd1,client,\"Hm.\"x,WA.A\n", 2, "QA-E013", "malformed CSV"),
        ("document_id,speaker,text,codes\nd1,client,Hm.,WA.A,extra\n", 2, "QA-E015", "5 fields"),
        ("document_id,speaker,text,codes,turn\nd1,client,a,,1\nd1,client,b,,one\n", 3, "QA-E015", "'one'"),
        ("document_id,speaker,text,codes\n,client,a,\n", 2, "QA-E015", "document_id"),
        ("segment_id,document_id,speaker,text,codes\nx,d1,client,a,\nx,d1,client,b,\n", 3, "QA-E015", "line 2"),
    ],
)
def test_evaluate_read_gold_csv_errors_name_file_and_line(tmp_path, text, line, code, needle):
    with pytest.raises(IngestError) as err:
        read_gold_csv(_write(tmp_path, text), CODES)
    assert (err.value.line, err.value.code) == (line, code)
    assert f"gold_ann.csv:{line}" in str(err.value) and needle in str(err.value)


def test_evaluate_read_gold_csv_does_not_echo_speaker_names(tmp_path):
    with pytest.raises(IngestError) as err:
        read_gold_csv(_write(tmp_path, "document_id,speaker,text,codes\nd1,Jane Smithson,a,\n"), CODES)
    assert err.value.line == 2 and err.value.key == "speaker" and "Smithson" not in str(err.value)


def test_evaluate_read_gold_csv_file_level_errors(tmp_path):
    with pytest.raises(IngestError) as err:
        read_gold_csv(tmp_path / "missing.csv", CODES)
    assert err.value.code == "QA-E010" and "missing.csv" in str(err.value)
    with pytest.raises(IngestError) as err:
        read_gold_csv(_write(tmp_path, "\n\n"), CODES)
    assert err.value.code == "QA-E011"
    with pytest.raises(IngestError) as err:
        read_gold_csv(_write(tmp_path, "document_id,speaker,text,codes\n"), CODES)
    assert (err.value.code, err.value.line) == ("QA-E011", 1)
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"\xef\xbb\xbfdocument_id,speaker,text,codes\nd1,client,caf\xe9,\n")  # BOM, then cp1252
    with pytest.raises(IngestError) as err:
        read_gold_csv(bad, CODES)
    assert (err.value.code, err.value.line) == ("QA-E012", 2) and "0xe9" in str(err.value)


def test_evaluate_two_gold_files_compared(tmp_path):
    ann_segments, ann = read_gold_csv(_write(tmp_path, GOLD, "ann.csv"), CODES)
    ben_text = GOLD.replace("WA.A; WA.B", "WA.A").replace("d2,,We agreed on goals.,WA.C;\n", "")
    _, ben = read_gold_csv(_write(tmp_path, ben_text, "ben.csv"), CODES)
    groups = ann_segments.set_index("segment_id")["document_id"]
    rep = compare_coders(pd.concat([ann, ben], ignore_index=True), "human:ann", "human:ben", codes=CODES,
                         n_boot=50, groups=groups)
    assert rep.per_code["WA.A"]["n"] == 2 and rep.n_units == 1
    assert rep.per_code["WA.A"]["kappa"] == 1.0 and rep.per_code["WA.B"]["recall"] == 0.0
