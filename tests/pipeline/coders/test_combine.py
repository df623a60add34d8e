import numpy as np
import pandas as pd
import pytest

from pipeline.codebook import Code, Codebook, Parent
from pipeline.coders.combine import CombineRule, combine_assignments, resolve_rules, review_table
from pipeline.errors import ConfigError, SchemaError
from pipeline.schema import ASSIGNMENT, validate_frame

X, Y, Z = "WA.A.X", "WA.A.Y", "WA.B.Z"
RULES, SIM, CLF, HUMAN = "coder.rules.v1", "coder.similarity.v1", "coder.classifier.v1", "human:review"


@pytest.fixture(scope="module")
def codebook():
    return Codebook(id="toy", version="1.0.0", parents=[Parent(id="WA.A", name="A"), Parent(id="WA.B", name="B")],
                    codes=[Code(id=c, name=c, parent=c.rsplit(".", 1)[0], definition="d") for c in (X, Y, Z)])


def _table(coder, rows):
    """rows: (segment_id, code_id, score[, label]); label defaults to True (sparse coders)."""
    return pd.DataFrame([{"segment_id": r[0], "code_id": r[1], "coder": coder, "score": r[2],
                          "label": r[3] if len(r) > 3 else True, "evidence": "e", "run_id": "r"} for r in rows],
                        columns=ASSIGNMENT.column_names)


@pytest.fixture(scope="module")
def tables():
    return [_table(RULES, [("s1", X, 1.0), ("s2", Y, 0.9)]),
            _table(SIM, [("s1", X, 0.7), ("s3", Z, 0.65)]),
            _table(CLF, [("s1", X, 0.4), ("s2", Y, 0.3), ("s3", Z, 0.95)])]


def _decisions(frame):
    return {(r.segment_id, r.code_id): (r.score, r.label) for r in frame.itertuples()}


def test_combine_max_is_the_default_and_output_is_valid(tables, codebook):
    out = combine_assignments(tables, codebook=codebook, run_id="run7")
    validate_frame(out, ASSIGNMENT, stage="combine")
    assert (out["coder"] == "coder.combined.v1").all() and (out["run_id"] == "run7").all()
    assert _decisions(out) == {("s1", X): (1.0, True), ("s2", Y): (0.9, True), ("s3", Z): (0.95, True)}
    ev = dict(zip(out["segment_id"], out["evidence"], strict=True))
    assert ev["s1"] == "max: coder.classifier.v1=0.40 coder.rules.v1=1.00 coder.similarity.v1=0.70"
    assert ev["s2"].startswith("review:disagree; max: ")  # similarity did not assign it
    assert ev["s3"].startswith("review:disagree; ")


def test_combine_mean_vote_and_precedence(tables, codebook):
    mean = combine_assignments(tables, codebook=codebook, rules={"*": {"method": "mean", "threshold": 0.6}})
    assert _decisions(mean) == {("s1", X): (0.7, True), ("s2", Y): (0.4, False), ("s3", Z): (0.533333, False)}
    vote = combine_assignments(tables, codebook=codebook, rules={"*": {"method": "vote"}})
    assert _decisions(vote) == {("s1", X): (1.0, True), ("s2", Y): (pytest.approx(2 / 3), True),
                                ("s3", Z): (pytest.approx(2 / 3), True)}
    strict = combine_assignments(tables, codebook=codebook, rules={"*": {"method": "vote", "min_votes": 3}})
    assert _decisions(strict)[("s2", Y)][1] is False
    order = {"method": "precedence", "coders": [SIM, CLF]}
    prec = combine_assignments(tables, codebook=codebook, rules={"*": order})
    assert _decisions(prec) == {("s1", X): (0.7, True), ("s2", Y): (0.3, True), ("s3", Z): (0.65, True)}


def test_combine_precedence_lets_an_explicit_no_win(tables, codebook):
    review = _table(HUMAN, [("s1", X, 0.0, False)])
    out = combine_assignments([*tables, review], codebook=codebook,
                              rules={X: {"method": "precedence", "coders": [HUMAN, RULES]}})
    assert _decisions(out)[("s1", X)] == (0.0, False)
    assert out.set_index("segment_id").loc["s1", "evidence"].startswith("review:disagree; precedence: ")


def test_combine_rules_resolve_by_code_then_prefix_then_star(codebook):
    rules = resolve_rules({"WA.A": {"method": "vote"}, X: {"method": "mean"}, "*": {"method": "precedence",
                                                                                    "coders": [RULES]}}, codebook)
    assert (rules[X].method, rules[Y].method, rules[Z].method) == ("mean", "vote", "precedence")
    assert resolve_rules(None, codebook)[Z] == CombineRule()


@pytest.mark.parametrize(("rules", "key"), [
    ({"WA.C": {"method": "max"}}, "rules.WA.C"),
    ({X: {"method": "median"}}, "rules.WA.A.X.method"),
    ({X: {"method": "precedence"}}, "rules.WA.A.X"),
    ({X: {"method": "max", "colour": "red"}}, "rules.WA.A.X.colour"),
    ({"*": {"threshold": 2}}, "rules.*.threshold"),
])
def test_combine_rejects_invalid_rules_naming_the_key(rules, key, tables, codebook):
    with pytest.raises(ConfigError) as err:
        combine_assignments(tables, codebook=codebook, rules=rules)
    assert err.value.key == key and err.value.code == "QA-E002"


def test_combine_flags_low_scores_with_per_code_review_threshold(codebook):
    one = [_table(CLF, [("s1", X, 0.3), ("s2", Z, 0.3)])]
    flags = review_table(one, codebook=codebook, rules={Z: {"review_threshold": 0.2}})
    assert flags[["code_id", "needs_review", "reasons"]].values.tolist() == [[X, True, "low"], [Z, False, ""]]
    out = combine_assignments(one, codebook=codebook, review_threshold=0.25)
    assert not out["evidence"].str.startswith("review:").any()


def test_combine_review_table_has_per_coder_scores_and_is_order_independent(tables, codebook):
    table = review_table(tables, codebook=codebook)
    assert list(table.columns) == ["segment_id", "code_id", "score", "label", "needs_review", "reasons", "method",
                                   f"score:{CLF}", f"label:{CLF}", f"score:{RULES}", f"label:{RULES}",
                                   f"score:{SIM}", f"label:{SIM}"]
    s2 = table.set_index("segment_id").loc["s2"]
    assert np.isnan(s2[f"score:{SIM}"]) and not s2[f"label:{SIM}"] and s2["reasons"] == "disagree"
    shuffled = [t.sample(frac=1, random_state=0) for t in reversed(tables)]
    pd.testing.assert_frame_equal(review_table(shuffled, codebook=codebook), table)
    pd.testing.assert_frame_equal(combine_assignments(shuffled, codebook=codebook),
                                  combine_assignments(tables, codebook=codebook))


def test_combine_rejects_bad_tables(tables, codebook):
    with pytest.raises(SchemaError, match="not in codebook"):
        combine_assignments([_table(CLF, [("s1", "WA.A.NOPE", 0.5)])], codebook=codebook)
    with pytest.raises(SchemaError, match="more than once"):
        combine_assignments([tables[0], tables[0]], codebook=codebook)
    with pytest.raises(SchemaError, match=r"\[0, 1\]"):
        combine_assignments([_table(CLF, [("s1", X, 1.5)])], codebook=codebook)
    with pytest.raises(SchemaError, match="lacks columns"):
        combine_assignments([tables[0].drop(columns="label")], codebook=codebook)
    with pytest.raises(ConfigError, match="review_threshold"):
        combine_assignments(tables, codebook=codebook, review_threshold=1.5)


def test_combine_of_nothing_is_an_empty_valid_table(codebook):
    for given in ([], [_table(CLF, [])]):
        out = combine_assignments(given, codebook=codebook)
        validate_frame(out, ASSIGNMENT)
        assert out.empty
