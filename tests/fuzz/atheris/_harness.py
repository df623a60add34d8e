"""Coverage-guided fuzzing of one parser with atheris (libFuzzer), shared by the fuzz_<parser>.py scripts.

Usage (from the repository root)::

    .venv/bin/python tests/fuzz/atheris/fuzz_docx.py -atheris_runs=100000 /tmp/corpus_docx

The corpus folder is filled with the seed files of tests/fuzz/fuzz_support.py when empty; libFuzzer adds
the inputs that reach new coverage. Each input goes through ``fuzz_support.classify``: a result that passes
the contract checks, a quarantine record or a typed PipelineError is fine; anything else raises, and
libFuzzer stops and writes the input as ``crash-<sha1>`` in the working folder. libFuzzer's own
``-timeout`` (seconds per input) and ``-rss_limit_mb`` bound time and memory (defaults below).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[2])]  # fuzz_support, and the repository root

with atheris.instrument_imports(include=["pipeline"]):
    import fuzz_support  # noqa: E402

    fuzz_support._preload()  # noqa: SLF001 - import (and instrument) every parser before fuzzing

DEFAULT_FLAGS = ("-timeout=20", "-rss_limit_mb=3072")


class FuzzFailure(RuntimeError):
    """An input that escaped the contract (untyped exception, broken result, memory error)."""


def seeds(target: str) -> list[bytes]:
    """Seed inputs of a target (valid files from the demo corpus and small generated ones)."""
    fs = fuzz_support
    if target in ("run_config", "codebook", "corpus_yaml", "sidecar"):
        return fs.yaml_seeds(target)
    if target == "qdpx":
        return [fs.qdpx_bytes(), fs.qdpx_bytes("Ünïcode 😀 text\r\nline two\n")]
    if target == "docx":
        return fs.demo_seeds(".docx")[:2] + [fs.docx_bytes(["Therapist: hello", "Client: hi"], [["T", "x"]])]
    if target == "xlsx":
        return fs.demo_seeds(".xlsx") + [fs.xlsx_bytes([["response_id", "comment"], [1, "fine"]])]
    return fs.demo_seeds(f".{target}")[:4]


def main(target: str) -> None:
    """Run libFuzzer on ``target`` with the command-line flags and corpus folders given."""
    args = list(sys.argv)
    corpora = [Path(a) for a in args[1:] if not a.startswith("-")]
    for folder in corpora[:1]:
        folder.mkdir(parents=True, exist_ok=True)
        if not any(folder.iterdir()):
            for seed in seeds(target):
                (folder / hashlib.sha1(seed).hexdigest()).write_bytes(seed)  # noqa: S324 - a file name
    for flag in DEFAULT_FLAGS:
        if not any(a.startswith(flag.split("=")[0] + "=") for a in args):
            args.insert(1, flag)

    def test_one_input(data: bytes) -> None:
        kind, detail = fuzz_support.classify(target, data)
        if kind in fuzz_support.FAILURE_KINDS:
            raise FuzzFailure(f"{target}: {kind} ({detail})")

    atheris.Setup(args, test_one_input)
    atheris.Fuzz()
