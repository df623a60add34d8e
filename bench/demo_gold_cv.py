"""Cross-validate ClassifierCoder on the demo gold coding: 5 folds grouped by document.

Run: ``.venv/bin/python bench/demo_gold_cv.py`` (prints Markdown; no timing assertions).

Every fold fits a fresh coder on the training documents only (its thresholds come from its own inner
out-of-fold predictions) and codes the held-out documents; the pooled held-out predictions are compared
with the gold coding by :func:`pipeline.evaluate.agreement` (macro over codes; 95% cluster-bootstrap
intervals over documents). "codebook only" never sees the gold coding: it is the same model for every
fold, trained on the codebook's examples.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.codebook import load_codebook
from pipeline.coders.classifier import ClassifierCoder
from pipeline.environment import configure_environment
from pipeline.errors import PipelineError
from pipeline.evaluate import agreement, binary_matrix, grouped_folds, read_gold_csv

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "corpora" / "demo" / "gold" / "gold_coding.csv"
SECOND = ROOT / "corpora" / "demo" / "gold" / "gold_coding_coder2.csv"
CODEBOOK = ROOT / "configs" / "codebooks" / "working_alliance.v1.yaml"

CONFIGS: list[tuple[str, dict, bool]] = [  # (label, params, uses the gold coding)
    ("TF-IDF (default)", {}, True),
    ("TF-IDF + previous segment", {"context": True}, True),
    ("TF-IDF + codebook examples always", {"codebook_examples": "always"}, True),
    ("TF-IDF + embed.static.v1", {"embedding_backend": "embed.static.v1"}, True),
    ("codebook examples only (no gold)", {}, False),
]


def cross_validate(params: dict, supervised: bool, segments: pd.DataFrame, gold: pd.DataFrame, codebook,
                   folds) -> tuple[np.ndarray, float]:
    """Pooled held-out 0/1 predictions (segments x codes) and mean fit seconds per fold."""
    ids = segments["segment_id"].tolist()
    pred = np.zeros((len(ids), len(codebook.code_ids)), dtype=np.int8)
    seconds = []
    shared = None
    for train, test in folds:
        start = time.perf_counter()
        if supervised:
            train_ids = set(segments["segment_id"].iloc[train])
            coder = ClassifierCoder(**params).fit(segments.iloc[train], gold[gold["segment_id"].isin(train_ids)],
                                                  codebook=codebook)
        else:
            shared = shared or ClassifierCoder(**params).fit(codebook=codebook)
            coder = shared
        seconds.append(time.perf_counter() - start)
        held_out = segments.iloc[test]
        out = coder.predict(held_out)
        pred[test] = binary_matrix(out, segments=held_out["segment_id"].tolist(), codes=codebook.code_ids)
    return pred, float(np.mean(seconds))


def _ci(values: dict, key: str) -> str:
    low, high = values[f"{key}_ci"]
    return f"{values[key]:.3f} [{low:.3f}, {high:.3f}]"


def human_reference(codebook) -> str:
    """Coder A vs coder B on the doubly coded segments, for scale."""
    if not SECOND.is_file():
        return ""
    seg_b, gold_b = read_gold_csv(SECOND, codebook)
    seg_a, gold_a = read_gold_csv(GOLD, codebook)
    shared = [s for s in seg_b["segment_id"] if s in set(seg_a["segment_id"])]
    report = agreement(binary_matrix(gold_a, segments=shared, codes=codebook.code_ids),
                       binary_matrix(gold_b, segments=shared, codes=codebook.code_ids),
                       codes=codebook.code_ids, n_boot=0)
    return (f"Human reference (coder A vs coder B, {len(shared)} doubly coded segments): macro F1 "
            f"{report.macro['f1']:.3f}, kappa {report.macro['kappa']:.3f}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    configure_environment()
    codebook = load_codebook(CODEBOOK)
    segments, gold = read_gold_csv(GOLD, codebook)
    folds = grouped_folds(segments, n_splits=args.folds, random_state=args.seed)
    ids = segments["segment_id"].tolist()
    reference = binary_matrix(gold, segments=ids, codes=codebook.code_ids)
    groups = segments["document_id"].tolist()
    print(f"## ClassifierCoder on the demo gold coding ({len(ids)} segments, {segments['document_id'].nunique()} "
          f"documents, {int(reference.sum())} code assignments)\n")
    print(f"{args.folds}-fold cross-validation grouped by document (seed {args.seed}); pooled held-out "
          f"predictions; macro over the {len(codebook.code_ids)} codes; 95% cluster-bootstrap intervals "
          f"({args.n_boot} resamples of documents).\n")
    print("| configuration | macro F1 | macro kappa | precision | recall | assigned | fit s/fold |")
    print("|---|---|---|---|---|---|---|")
    per_code = None
    for label, params, supervised in CONFIGS:
        try:
            pred, seconds = cross_validate(params, supervised, segments, gold, codebook, folds)
        except PipelineError as e:  # e.g. the embedding backend is not installed
            print(f"| {label} | not run: {e.code} | | | | | |")
            continue
        report = agreement(reference, pred, codes=codebook.code_ids, n_boot=args.n_boot, random_state=args.seed,
                           groups=groups)
        m = report.macro
        print(f"| {label} | {_ci(m, 'f1')} | {_ci(m, 'kappa')} | {m['precision']:.3f} | {m['recall']:.3f} | "
              f"{int(pred.sum())} | {seconds:.1f} |")
        per_code = per_code or report
    if per_code is not None:
        print("\n### Per code, TF-IDF (default)\n")
        print("| code | support | F1 | kappa |")
        print("|---|---|---|---|")
        for code, v in per_code.per_code.items():
            print(f"| {code} | {v['support']} | {v['f1']:.3f} | {v['kappa']:.3f} |")
    line = human_reference(codebook)
    if line:
        print(f"\n{line}")


if __name__ == "__main__":
    main()
