import pandas as pd

from pipeline.codebook import Code, Codebook, Parent, Pattern
from pipeline.coders.rules import RulesCoder
from pipeline.schema import SEGMENT, coerce_frame


def _segments(items):
    rows = [{"segment_id": f"s{i}", "document_id": "d", "speaker": sp, "turn_index": i, "start_char": i * 100,
             "end_char": i * 100 + len(t), "source_line": None, "text": t} for i, (sp, t) in enumerate(items)]
    return coerce_frame(pd.DataFrame(rows), SEGMENT)


def _codebook():
    return Codebook(id="t", version="1.0.0", parents=[Parent(id="WA.A", name="A")], codes=[
        Code(id="WA.A.HEARD", name="Heard", parent="WA.A", definition="d", speakers=["client"],
             patterns=[Pattern(phrase="felt heard", id="felt_heard"),
                       Pattern(tokens=[{"LEMMA": "listen"}, {"LOWER": "to"}, {"LOWER": "me"}], weight=0.7)]),
        Code(id="WA.A.RUP", name="Rupture", parent="WA.A", definition="d", speakers=["client"],
             patterns=[Pattern(phrase="not helping", weight=0.9)]),
    ])


def test_rules_match_phrases_lemmas_and_give_evidence():
    segs = _segments([("client", "I FELT HEARD, truly."), ("client", "She listened to me for once."),
                      ("client", "The bus was late.")])
    out = RulesCoder().fit(codebook=_codebook()).predict(segs, run_id="r")
    got = {(r.segment_id, r.code_id): (r.score, r.evidence) for r in out.itertuples()}
    assert got[("s0", "WA.A.HEARD")] == (1.0, "felt_heard | FELT HEARD")
    assert got[("s1", "WA.A.HEARD")][0] == 0.7 and "listened to me" in got[("s1", "WA.A.HEARD")][1]
    assert not any(s == "s2" for s, _ in got)


def test_rules_respect_speaker_scope():
    segs = _segments([("therapist", "You felt heard there."), ("unknown", "I felt heard."),
                      ("client", "This is not helping.")])
    out = RulesCoder().fit(codebook=_codebook()).predict(segs)
    assert set(zip(out["segment_id"], out["code_id"], strict=True)) == {("s1", "WA.A.HEARD"), ("s2", "WA.A.RUP")}
    out_all = RulesCoder(respect_speakers=False).fit(codebook=_codebook()).predict(segs)
    assert ("s0", "WA.A.HEARD") in set(zip(out_all["segment_id"], out_all["code_id"], strict=True))
