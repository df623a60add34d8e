"""Property-based fuzzing of every parser: generated inputs and mutations of valid files.

Each input runs in the sandboxed worker (memory cap, time limit per input). The property: a parser
returns a result that passes the data-contract checks, or a quarantine record, or raises one of the
project's typed errors (a PipelineError with a catalogue code). Anything else, a timeout or a dead
worker fails the test with the input's first bytes. Inputs tried per parser are counted and reported
in the terminal summary (see conftest.py).
"""

from __future__ import annotations

from fuzz_support import (
    FUZZ,
    assert_safe,
    csv_text,
    demo_seeds,
    docx_bytes,
    mutated,
    qdpx_bytes,
    subtitle_text,
    transcript_text,
    xlsx_bytes,
    xlsx_generated,
    yaml_generated,
    yaml_seeds,
    zip_tampered,
)
from hypothesis import given
from hypothesis import strategies as st

TXT_SEEDS = demo_seeds(".txt")
VTT_SEEDS = demo_seeds(".vtt")
SRT_SEEDS = demo_seeds(".srt")
CSV_SEEDS = demo_seeds(".csv")[:1] + [b"response_id,comment\n1,\"quoted, text\"\n2,plain\n"]
DOCX_SEEDS = demo_seeds(".docx")[:2] + [docx_bytes(["Therapist: hello", "Client: hi"], [["T", "00:01", "x"]])]
XLSX_SEEDS = demo_seeds(".xlsx") + [xlsx_bytes([["response_id", "comment", "session"], [1, "fine", 3]])]
QDPX_SEEDS = [qdpx_bytes(), qdpx_bytes("Ünïcode 😀 text\r\nline two\n")]


def check(sandbox, target: str, data: bytes) -> None:
    assert_safe(sandbox.run(target, data), target, data)


def test_seeds_are_valid(sandbox) -> None:
    """The seeds must parse cleanly, or mutating them would fuzz only the error paths."""
    for target, seeds in (("txt", TXT_SEEDS), ("vtt", VTT_SEEDS), ("srt", SRT_SEEDS), ("csv", CSV_SEEDS),
                          ("docx", DOCX_SEEDS), ("xlsx", XLSX_SEEDS), ("qdpx", QDPX_SEEDS)):
        assert seeds, target
        for seed in seeds:
            outcome = sandbox.run(target, seed, count=False)
            assert outcome.kind == "ok", (target, outcome)
    for target in ("run_config", "codebook", "corpus_yaml", "sidecar"):
        for seed in yaml_seeds(target):
            outcome = sandbox.run(target, seed, count=False)
            assert outcome.kind == "ok", (target, outcome)


@FUZZ
@given(st.one_of(transcript_text(), mutated(TXT_SEEDS)))
def test_fuzz_txt(sandbox, data: bytes) -> None:
    check(sandbox, "txt", data)


@FUZZ
@given(st.one_of(subtitle_text("vtt"), mutated(VTT_SEEDS)))
def test_fuzz_vtt(sandbox, data: bytes) -> None:
    check(sandbox, "vtt", data)


@FUZZ
@given(st.one_of(subtitle_text("srt"), mutated(SRT_SEEDS)))
def test_fuzz_srt(sandbox, data: bytes) -> None:
    check(sandbox, "srt", data)


@FUZZ
@given(st.one_of(csv_text(), mutated(CSV_SEEDS)))
def test_fuzz_csv(sandbox, data: bytes) -> None:
    check(sandbox, "csv", data)


@FUZZ
@given(st.one_of(zip_tampered(DOCX_SEEDS), mutated(DOCX_SEEDS)))
def test_fuzz_docx(sandbox, data: bytes) -> None:
    check(sandbox, "docx", data)


@FUZZ
@given(st.one_of(xlsx_generated(), zip_tampered(XLSX_SEEDS), mutated(XLSX_SEEDS)))
def test_fuzz_xlsx(sandbox, data: bytes) -> None:
    check(sandbox, "xlsx", data)


@FUZZ
@given(st.one_of(zip_tampered(QDPX_SEEDS), mutated(QDPX_SEEDS)))
def test_fuzz_qdpx(sandbox, data: bytes) -> None:
    check(sandbox, "qdpx", data)


@FUZZ
@given(st.one_of(yaml_generated(), mutated(yaml_seeds("run_config"))))
def test_fuzz_run_config_yaml(sandbox, data: bytes) -> None:
    check(sandbox, "run_config", data)


@FUZZ
@given(st.one_of(yaml_generated(), mutated(yaml_seeds("codebook"))))
def test_fuzz_codebook_yaml(sandbox, data: bytes) -> None:
    check(sandbox, "codebook", data)


@FUZZ
@given(st.one_of(yaml_generated(), mutated(yaml_seeds("corpus_yaml"))))
def test_fuzz_corpus_yaml(sandbox, data: bytes) -> None:
    check(sandbox, "corpus_yaml", data)


@FUZZ
@given(st.one_of(yaml_generated(), mutated(yaml_seeds("sidecar"))))
def test_fuzz_sidecar_yaml(sandbox, data: bytes) -> None:
    check(sandbox, "sidecar", data)
