"""The coder contract: every registered coder must pass these checks (cf. sklearn's parametrize_with_checks)."""

import copy

import pandas as pd
import pytest

from pipeline.coders.base import Coder
from pipeline.errors import NotFittedError
from pipeline.registry import build, registry_names
from pipeline.schema import ASSIGNMENT, SEGMENT, coerce_frame, validate_frame
from pipeline.segment import segment_id

TEXTS = [
    ("client", "She never made me feel judged, I felt understood."),
    ("client", "Honestly this isn't helping and you don't get it."),
    ("therapist", "It makes sense that you'd feel that way after what happened."),
    ("client", "I waited three months on the waiting list before my first appointment."),
    ("client", "The parking was a nightmare today."),
    ("unknown", "I trusted her and felt safe in that room."),
]


@pytest.fixture(scope="module")
def segments():
    rows = []
    for i, (speaker, text) in enumerate(TEXTS):
        rows.append({"segment_id": segment_id("d1", i * 100, i * 100 + len(text)), "document_id": "d1",
                     "speaker": speaker, "turn_index": i, "start_char": i * 100, "end_char": i * 100 + len(text),
                     "source_line": i + 1, "text": text})
    return coerce_frame(pd.DataFrame(rows), SEGMENT)


CODERS = registry_names("coder.")


@pytest.mark.parametrize("name", CODERS)
def test_contract_fit_returns_self_and_output_is_valid(name, segments, codebook):
    coder = build(name)
    assert isinstance(coder, Coder)
    before = copy.deepcopy(segments)
    assert coder.fit(segments, codebook=codebook) is coder
    out = coder.predict(segments, run_id="r1")
    validate_frame(out, ASSIGNMENT, stage=name)
    pd.testing.assert_frame_equal(segments, before)  # input not mutated
    assert set(out["segment_id"]) <= set(segments["segment_id"])
    # codebook codes, or the candidate themes a coder declares (coder.topics.v1: TOPIC.nn)
    assert set(out["code_id"]) <= set(codebook.code_ids) | set(getattr(coder, "candidate_code_ids_", []))
    assert (out["coder"] == coder.name).all() and (out["run_id"] == "r1").all()


@pytest.mark.parametrize("name", CODERS)
def test_contract_unfitted_predict_raises(name, segments):
    with pytest.raises(NotFittedError) as err:
        build(name).predict(segments)
    assert err.value.code == "QA-E030"


@pytest.mark.parametrize("name", CODERS)
def test_contract_deterministic_and_params_round_trip(name, segments, codebook):
    coder = build(name)
    clone = type(coder)(**coder.get_params())
    assert clone.get_params() == coder.get_params()
    a = coder.fit(segments, codebook=codebook).predict(segments)
    b = clone.fit(segments, codebook=codebook).predict(segments)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError):
        coder.set_params(no_such_param=1)
