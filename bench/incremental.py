"""Cost of an incremental pass with 1% new items, relative to a full pass over the same corpus.

A synthetic inbox of ``--items`` feedback rows (several exports; sentences built from a fixed word list, no
real participant text) goes through one pass into an empty store (the "full run"); then ``--new-fraction``
of that many rows are appended to one export and a second pass runs (the "incremental run"); a third pass
with nothing new shows the fixed cost. Every pass is the real one (``pipeline.incoming.passes.run_pass``:
ledger on SQLite, de-identification, segmentation, the configured coders, commit, cumulative NVivo export).
spaCy and the codebook are loaded by a warm-up pass on a separate store first, so no timing includes
model loading. The NVivo export is whole-corpus by nature and is reported on its own.

    .venv/bin/python bench/incremental.py                      # 2,000 items, 1% new
    .venv/bin/python bench/incremental.py --items 500 --out /tmp/inc.json

Writes ``bench/results/incremental.json`` by default. ``measure_incremental`` is the function the benchmark
suite calls.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_WORDS = ["felt", "heard", "understood", "session", "goals", "plan", "homework", "rushed", "judged", "trust",
          "together", "direction", "tools", "anxiety", "sleep", "week", "helpful", "listened", "clear", "confused",
          "stuck", "progress", "agreed", "worksheet", "script", "talked", "therapist", "really", "not", "sure",
          "wanted", "more", "less", "time"]
_OPENERS = ["I felt", "Today we", "Honestly I", "The session", "My therapist", "We agreed that", "It seemed"]
HEADER = ["response_id", "client_id", "session_number", "date", "clinician", "comment"]


def _comment(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(1, 3)):
        sentences.append(f"{rng.choice(_OPENERS)} {' '.join(rng.choices(_WORDS, k=rng.randint(6, 16)))}.")
    return " ".join(sentences)


def _rows(rng: random.Random, start: int, n: int) -> list[list[str]]:
    return [[f"R{i:06d}", f"C{i % 211:03d}", str(1 + i % 12), f"2026-{1 + i % 6:02d}-{1 + i % 28:02d}",
             ["Alex Morgan", "Sam Patel", "Jo Kim", "Ray Lee"][i % 4], _comment(rng)] for i in range(start, start + n)]


def _write(path: Path, rows: list[list[str]], *, append: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if not append:
            writer.writerow(HEADER)
        writer.writerows(rows)


def _config(folder: Path, batch_size: int) -> Path:
    cfg = {"version": 1, "codebook": "configs/codebooks/working_alliance.v1.yaml", "seed": 13,
           "coders": [{"use": "coder.rules.v1"}], "outputs": {"nvivo": True, "report": False},
           "incoming": {"batch_size": batch_size}}
    path = folder / "incoming.yaml"
    path.write_text(json.dumps(cfg, indent=1) + "\n", encoding="utf-8")
    return path


def _timed_pass(inbox: Path, store: Path, cfg: Any, codebook: Any) -> dict[str, Any]:
    from pipeline.incoming.passes import run_pass

    start = time.perf_counter()
    result = run_pass(inbox, store, cfg, codebook=codebook)
    seconds = time.perf_counter() - start
    export = result.export["seconds"] if result.export else 0.0
    return {"seconds": round(seconds, 3), "export_seconds": export,
            "seconds_without_export": round(seconds - export, 3), "new": result.new,
            "unchanged": result.unchanged, "segments": result.processed_segments, "batches": result.batches}


def measure_incremental(items: int = 2000, new_fraction: float = 0.01, *, exports: int = 8, batch_size: int = 500,
                        seed: int = 7, workdir: Path | None = None) -> dict[str, Any]:
    """Time a full pass over ``items`` rows, then a pass with ``new_fraction`` new rows, then an empty pass.

    Returns:
        Timings (seconds), counts and the ratios ``incremental / full`` (with and without the NVivo export).
    """
    from pipeline.codebook import load_codebook
    from pipeline.config import load_run_config
    from pipeline.environment import configure_environment

    configure_environment()
    rng = random.Random(seed)
    base = Path(tempfile.mkdtemp(prefix="bench-incremental-", dir=workdir))
    try:
        cfg = load_run_config(_config(base, batch_size))
        codebook = load_codebook(cfg.codebook)
        warm = base / "warm"
        _write(warm / "inbox" / "f" / "export.csv", _rows(rng, 900000, 20))
        _timed_pass(warm / "inbox", warm / "store", cfg, codebook)  # loads spaCy and the coders

        inbox, store = base / "inbox", base / "store"
        per = items // exports
        for k in range(exports):
            n = per if k < exports - 1 else items - per * (exports - 1)
            _write(inbox / f"clinic{k:02d}" / "export.csv", _rows(rng, k * per, n))
        full = _timed_pass(inbox, store, cfg, codebook)
        n_new = max(1, round(items * new_fraction))
        _write(inbox / "clinic00" / "export.csv", _rows(rng, items, n_new), append=True)
        incremental = _timed_pass(inbox, store, cfg, codebook)
        empty = _timed_pass(inbox, store, cfg, codebook)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {
        "items": items, "new_items": n_new, "new_fraction": new_fraction, "batch_size": batch_size,
        "coders": [c.use for c in cfg.coders], "ledger": "sqlite",
        "full": full, "incremental": incremental, "nothing_new": empty,
        "ratio_incremental_to_full": round(incremental["seconds"] / full["seconds"], 4),
        "ratio_without_export": round(incremental["seconds_without_export"] / full["seconds_without_export"], 4),
        "python": platform.python_version(), "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: run the measurement and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--new-fraction", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "incremental.json")
    args = parser.parse_args(argv)
    result = measure_incremental(args.items, args.new_fraction, batch_size=args.batch_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("items", "new_items", "ratio_incremental_to_full",
                                             "ratio_without_export")}))
    print(f"full {result['full']['seconds']} s, incremental {result['incremental']['seconds']} s, "
          f"nothing new {result['nothing_new']['seconds']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
