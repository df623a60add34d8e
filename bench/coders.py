"""Benchmark the coders on public expert-coded data: AnnoMI (MI behaviour) and EPITOME (empathy levels).

Run: ``.venv/bin/python bench/coders.py [--quick] [--out bench/results/coders.json]`` from the project
folder. The data are read from ``../shared/datasets`` (``--data`` to change); nothing is copied.

Every task is single-label and multi-class; each class is one code of a codebook written for the task
(``bench/coders_codebooks.py``). Evaluation: 5 folds grouped by transcript (AnnoMI) or seeker post
(EPITOME) from :func:`pipeline.evaluate.grouped_folds`; every model is fitted on the training folds only
and predicts the held-out fold; the predicted class is the argmax of the per-class scores (for
ClassifierCoder its calibrated probabilities from ``predict_proba``; its per-code thresholds are not used).
Pooled out-of-fold predictions give macro-F1, Cohen's kappa and accuracy (scikit-learn), with 95%
cluster-bootstrap intervals over documents (:func:`pipeline.evaluate_cv.bootstrap_weights`, 1000 draws).

Methods: ``reference`` is the TF-IDF word 1-2-gram + class-balanced multinomial logistic regression of
SOURCE.md, re-run here on the same folds; ``clf ...`` are ClassifierCoder variants; ``zero-shot ...``
never see a label (SimilarityCoder on the codebook text, and ClassifierCoder trained on the codebook's
examples only). Speed: fit seconds per fold, predict segments/s, and encode texts/s of both embedding
backends on the same texts (cache bypassed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "datasets"
SEED = 0
N_BOOT = 1000
QUICK_DOCS = {"annomi": 20, "epitome": 200}

# (label, ClassifierCoder params). cv=2: the inner out-of-fold pass only tunes per-code thresholds, which
# an argmax decision does not use; 2 is the smallest value the coder accepts. calibration_cv=2 (default 3)
# cuts the per-code fits (calibration + final model) from 4 to 3: time budget on 2 cores.
BASE = {"cv": 2, "calibration_cv": 2, "random_state": SEED}
CLF_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("clf TF-IDF", {}),
    ("clf TF-IDF + context", {"context": True}),
    ("clf TF-IDF + static + context", {"context": True, "embedding_backend": "embed.static.v1"}),
    ("clf TF-IDF + MiniLM + context", {"context": True, "embedding_backend": "embed.minilm.v1"}),
]
TARGETS = {  # task: (reference macro-F1, reference kappa, human agreement, target macro-F1, target kappa)
    "annomi_therapist": (0.690, 0.621, "Fleiss κ 0.74", 0.75, 0.70),
    "annomi_client": (0.492, 0.259, "Fleiss κ 0.47", 0.58, None),
    "epitome_er": (0.713, 0.516, "not verified", 0.763, None),
    "epitome_ip": (0.544, 0.599, "not verified", 0.594, None),
    "epitome_ex": (0.619, 0.552, "not verified", 0.669, None),
}


# ------------------------------------------------------------------------------------------------ data
@dataclass
class Task:
    """One benchmark task: segments (coded ones plus context-only ones), gold classes, codebook."""

    key: str
    title: str
    codebook: Any
    segments: pd.DataFrame  # SEGMENT columns; all segments of the documents (context included)
    coded: np.ndarray  # bool per segment row: has a gold class
    gold: np.ndarray  # class index per coded row (in segment order)
    notes: list[str] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return list(self.codebook.code_ids)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """SEGMENT rows with offsets into a document text made of the segments joined by blank lines."""
    seg = pd.DataFrame(rows)
    seg = seg.sort_values(["document_id", "turn_index"], kind="stable").reset_index(drop=True)
    lengths = seg["text"].str.len().to_numpy()
    first = ~seg["document_id"].duplicated().to_numpy()
    start = np.zeros(len(seg), dtype=np.int64)
    for i in range(1, len(seg)):
        start[i] = 0 if first[i] else start[i - 1] + lengths[i - 1] + 2
    seg["start_char"] = start
    seg["end_char"] = start + np.maximum(lengths, 1)
    seg["source_line"] = pd.array([None] * len(seg), dtype="Int64")
    cols = ["segment_id", "document_id", "speaker", "turn_index", "start_char", "end_char", "source_line", "text"]
    return seg[cols + [c for c in seg.columns if c not in cols]]


def load_annomi(data: Path, docs: int | None) -> tuple[pd.DataFrame, list[str]]:
    df = pd.read_csv(data / "annomi" / "AnnoMI-simple.csv", keep_default_na=False, dtype=str)
    notes = []
    if docs is not None:
        ids = sorted(df["transcript_id"].unique(), key=int)
        keep = set(np.random.default_rng(SEED).choice(ids, size=min(docs, len(ids)), replace=False))
        df = df[df["transcript_id"].isin(keep)]
        notes.append(f"quick: {len(keep)} of {len(ids)} transcripts (seed {SEED})")
    rows = [{"segment_id": f"annomi:{r.transcript_id}:{r.utterance_id}", "document_id": f"annomi:{r.transcript_id}",
             "speaker": r.interlocutor, "turn_index": int(r.utterance_id), "text": r.utterance_text,
             "therapist_label": r.main_therapist_behaviour, "client_label": r.client_talk_type}
            for r in df.itertuples(index=False)]
    return _frame(rows), notes


def annomi_tasks(data: Path, docs: int | None) -> list[Task]:
    from coders_codebooks import annomi_client_codebook, annomi_therapist_codebook

    seg, notes = load_annomi(data, docs)
    out = []
    for key, title, column, codebook, names in [
        ("annomi_therapist", "AnnoMI therapist behaviour (4 classes)", "therapist_label", annomi_therapist_codebook(),
         ["reflection", "question", "therapist_input", "other"]),
        ("annomi_client", "AnnoMI client talk type (3 classes)", "client_label", annomi_client_codebook(),
         ["change", "neutral", "sustain"]),
    ]:
        labels = seg[column].to_numpy()
        coded = np.isin(labels, names)
        gold = np.array([names.index(v) for v in labels[coded]])
        out.append(Task(key, title, codebook, seg, coded, gold, list(notes)))
    return out


def load_epitome(data: Path, docs: int | None) -> tuple[pd.DataFrame, list[str]]:
    folder = data / "epitome_reddit"
    files = {"er": "emotional-reactions-reddit.csv", "ip": "interpretations-reddit.csv",
             "ex": "explorations-reddit.csv"}
    frames = {k: pd.read_csv(folder / f, keep_default_na=False, dtype=str) for k, f in files.items()}
    base = frames["er"][["sp_id", "rp_id", "seeker_post", "response_post"]].copy()
    for k, f in frames.items():
        if not (f["sp_id"].equals(base["sp_id"]) and f["rp_id"].equals(base["rp_id"])):
            raise SystemExit(f"EPITOME: {files[k]} is not row-aligned with {files['er']} (see SOURCE.md).")
        base[f"level_{k}"] = f["level"].astype(int)
    n = len(base)
    base = base.drop_duplicates(["sp_id", "rp_id"], keep="first").reset_index(drop=True)
    notes = [f"{n} pairs; {n - len(base)} repeated (sp_id, rp_id) rows dropped (first kept): {len(base)} responses"]
    if docs is not None:
        ids = sorted(base["sp_id"].unique())
        keep = set(np.random.default_rng(SEED).choice(ids, size=min(docs, len(ids)), replace=False))
        base = base[base["sp_id"].isin(keep)].reset_index(drop=True)
        notes.append(f"quick: {len(keep)} of {len(ids)} seeker posts (seed {SEED})")
    rows = []
    for sp_id, group in base.groupby("sp_id", sort=True):
        for k, r in enumerate(group.itertuples(index=False)):
            # the seeker post is repeated before each response, so the response's previous segment is its post
            rows.append({"segment_id": f"epitome:{sp_id}:{r.rp_id}:post", "document_id": f"epitome:{sp_id}",
                         "speaker": "client", "turn_index": 2 * k, "text": r.seeker_post,
                         "level_er": -1, "level_ip": -1, "level_ex": -1})
            rows.append({"segment_id": f"epitome:{sp_id}:{r.rp_id}", "document_id": f"epitome:{sp_id}",
                         "speaker": "therapist", "turn_index": 2 * k + 1, "text": r.response_post,
                         "level_er": r.level_er, "level_ip": r.level_ip, "level_ex": r.level_ex})
    return _frame(rows), notes


def epitome_tasks(data: Path, docs: int | None) -> list[Task]:
    from coders_codebooks import epitome_codebook

    seg, notes = load_epitome(data, docs)
    out = []
    for mech, name in [("ER", "emotional reactions"), ("IP", "interpretations"), ("EX", "explorations")]:
        levels = seg[f"level_{mech.lower()}"].to_numpy(dtype=int)
        coded = levels >= 0
        out.append(Task(f"epitome_{mech.lower()}", f"EPITOME {name} (levels 0/1/2)", epitome_codebook(mech), seg,
                        coded, levels[coded], list(notes)))
    return out


def assignments_for(task: Task, rows: np.ndarray) -> pd.DataFrame:
    """Human ASSIGNMENT rows (one per segment x code) of the coded segments among ``rows``."""
    from pipeline.coders.base import assignment_frame

    gold_of = dict(zip(np.flatnonzero(task.coded), task.gold, strict=True))
    ids = task.segments["segment_id"].to_numpy()
    out = [{"segment_id": ids[i], "code_id": code, "coder": "human:gold", "score": float(gold_of[i] == j),
            "label": bool(gold_of[i] == j), "evidence": "", "run_id": ""}
           for i in rows if i in gold_of for j, code in enumerate(task.codes)]
    return assignment_frame(out)


# --------------------------------------------------------------------------------------------- metrics
def metrics(task: Task, pred: np.ndarray, *, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Macro-F1, kappa, accuracy and per-class F1 of pooled predictions, with cluster-bootstrap intervals."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    from pipeline.evaluate_cv import bootstrap_weights, group_index

    k = len(task.codes)
    y = task.gold
    out = {"macro_f1": float(f1_score(y, pred, average="macro", labels=list(range(k)), zero_division=0)),
           "kappa": float(cohen_kappa_score(y, pred, labels=list(range(k)))),
           "accuracy": float(accuracy_score(y, pred)),
           "per_class_f1": dict(zip(task.codes, f1_score(y, pred, average=None, labels=list(range(k)),
                                                         zero_division=0).round(4).tolist(), strict=True))}
    groups = task.segments["document_id"].to_numpy()[task.coded]
    units = group_index(groups, None, len(y))
    cell = np.eye(k * k)[y * k + pred]  # rows x confusion cells
    f1s, kappas = [], []
    for w in bootstrap_weights(units, n_boot, SEED):
        cm = (w @ cell).reshape(-1, k, k)  # resample x true x predicted
        tp = np.einsum("bii->bi", cm)
        support, predicted = cm.sum(2), cm.sum(1)
        denom = support + predicted
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        active = denom > 0
        f1s.append((f1 * active).sum(1) / np.maximum(active.sum(1), 1))
        n = cm.sum((1, 2))
        po = tp.sum(1) / n
        pe = (support * predicted).sum(1) / n**2
        kappas.append(np.divide(po - pe, 1 - pe, out=np.full_like(po, np.nan), where=pe < 1))
    for name, values in (("macro_f1", f1s), ("kappa", kappas)):
        values = np.concatenate(values) if values else np.array([np.nan])
        out[f"{name}_ci"] = [float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))]
    return out


# ------------------------------------------------------------------------------------------ the methods
def _fold_reference(task: Task, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, float, float, int]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = task.segments["text"].to_numpy()
    gold = np.full(len(texts), -1)
    gold[task.coded] = task.gold
    tr, te = train[task.coded[train]], test[task.coded[test]]
    start = time.perf_counter()
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)),
                          LogisticRegression(class_weight="balanced", max_iter=2000, random_state=SEED))
    model.fit(texts[tr], gold[tr])
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    proba = np.zeros((len(te), len(task.codes)))
    proba[:, model.classes_] = model.predict_proba(texts[te])
    return proba, fit_s, time.perf_counter() - start, len(te)


def _fold_classifier(task: Task, params: dict[str, Any], train: np.ndarray,
                     test: np.ndarray) -> tuple[np.ndarray, float, float, int]:
    from pipeline.coders.classifier import ClassifierCoder

    seg = task.segments
    start = time.perf_counter()
    coder = ClassifierCoder(**BASE, **params).fit(seg.iloc[train], assignments_for(task, train),
                                                  codebook=task.codebook)
    fit_s = time.perf_counter() - start
    # with context the held-out frame keeps the uncoded segments: they are the previous segments
    rows = test if params.get("context") else test[task.coded[test]]
    start = time.perf_counter()
    proba = coder.predict_proba(seg.iloc[rows])
    predict_s = time.perf_counter() - start
    return proba[task.coded[rows]], fit_s, predict_s, len(rows)


def _run_fold(task: Task, method: str, params: dict[str, Any], train: np.ndarray, test: np.ndarray):
    import logging

    logging.getLogger("pipeline").setLevel(logging.WARNING)
    if method == "reference":
        return _fold_reference(task, train, test)
    return _fold_classifier(task, params, train, test)


def cross_validate(task: Task, folds, method: str, params: dict[str, Any], jobs: int) -> dict[str, dict[str, Any]]:
    """Pooled out-of-fold results: ``{"argmax": ..., "prior": ...}`` (the second for ClassifierCoder only).

    ``argmax`` takes the class with the highest calibrated probability. ``prior`` divides each class's
    probability by its frequency in the training folds first (argmax of p / prior): the per-code Platt
    calibration restores each class's base rate, which an argmax then favours; dividing it out is the
    usual prior correction and uses nothing but the training folds' label counts.
    """
    from joblib import Parallel, delayed

    start = time.perf_counter()
    results = Parallel(n_jobs=jobs)(delayed(_run_fold)(task, method, params, tr, te) for tr, te in folds)
    wall = time.perf_counter() - start
    k = len(task.codes)
    gold = np.full(len(task.segments), -1)
    gold[task.coded] = task.gold
    position = np.full(len(task.segments), -1)
    position[np.flatnonzero(task.coded)] = np.arange(int(task.coded.sum()))
    pred = {"argmax": np.full(int(task.coded.sum()), -1), "prior": np.full(int(task.coded.sum()), -1)}
    for (train, test), (proba, _, _, _) in zip(folds, results, strict=True):
        rows = position[test[task.coded[test]]]
        prior = np.bincount(gold[train][task.coded[train]], minlength=k) / int(task.coded[train].sum())
        pred["argmax"][rows] = proba.argmax(axis=1)
        pred["prior"][rows] = (proba / np.maximum(prior, 1e-9)).argmax(axis=1)
    fit_s = [r[1] for r in results]
    predict_s, predicted = sum(r[2] for r in results), sum(r[3] for r in results)
    timing = {"fit_seconds_mean": float(np.mean(fit_s)),
              "train_segments_mean": float(np.mean([int(task.coded[tr].sum()) for tr, _ in folds])),
              "predict_segments_per_s": predicted / predict_s if predict_s else None,
              "wall_seconds": wall, "parallel_jobs": jobs}
    rules = ["argmax"] if method == "reference" else ["argmax", "prior"]
    return {rule: {"decision": rule, **metrics(task, pred[rule]), **timing} for rule in rules}


def zero_shot_similarity(task: Task, backend: str) -> dict[str, Any]:
    """SimilarityCoder from the codebook text alone; class = argmax of its per-code scores."""
    from pipeline.coders.similarity import SimilarityCoder

    seg = task.segments[task.coded].reset_index(drop=True)
    start = time.perf_counter()
    coder = SimilarityCoder(backend=backend, threshold=0.0, top_k=None).fit(seg, codebook=task.codebook)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    out = coder.predict(seg)  # threshold 0, no top_k: a row for every score > 0
    predict_s = time.perf_counter() - start
    scores = np.zeros((len(seg), len(task.codes)))
    row_of = {s: i for i, s in enumerate(seg["segment_id"])}
    scores[[row_of[s] for s in out["segment_id"]], [task.codes.index(c) for c in out["code_id"]]] = out["score"]
    ties = int((scores.max(axis=1) <= 0).sum())
    return {**metrics(task, scores.argmax(axis=1)), "fit_seconds_mean": fit_s,
            "predict_segments_per_s": len(seg) / predict_s, "segments_without_score": ties,
            "note": "no training; fit only learns the corpus mean embedding (no labels)"}


def zero_shot_examples(task: Task) -> dict[str, Any]:
    """ClassifierCoder trained on the codebook's own examples only (no gold)."""
    from pipeline.coders.classifier import ClassifierCoder

    seg = task.segments[task.coded].reset_index(drop=True)
    start = time.perf_counter()
    coder = ClassifierCoder(**BASE).fit(codebook=task.codebook)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    proba = coder.predict_proba(seg)
    predict_s = time.perf_counter() - start
    return {**metrics(task, proba.argmax(axis=1)), "fit_seconds_mean": fit_s,
            "predict_segments_per_s": len(seg) / predict_s, "note": "codebook examples only, no gold"}


# ---------------------------------------------------------------------------------------------- speed
def encode_speed(texts: list[str]) -> dict[str, Any]:
    """Encode throughput of both backends on the same texts, bypassing the cache (model load excluded)."""
    from pipeline.embed import get_embedder

    out: dict[str, Any] = {"texts": len(texts), "mean_words": float(np.mean([len(t.split()) for t in texts]))}
    for backend in ("embed.static.v1", "embed.minilm.v1"):
        start = time.perf_counter()
        embedder = get_embedder(backend)
        load = time.perf_counter() - start
        embedder.encode(texts[:8])  # warm-up
        start = time.perf_counter()
        embedder.encode(texts)
        seconds = time.perf_counter() - start
        out[backend] = {"load_seconds": load, "encode_seconds": seconds, "texts_per_s": len(texts) / seconds}
    out["static_over_minilm"] = out["embed.static.v1"]["texts_per_s"] / out["embed.minilm.v1"]["texts_per_s"]
    return out


def warm_cache(tasks: list[Task], backends: list[str]) -> dict[str, float]:
    """Embed every text once per backend into the shared cache (so the folds read it, not re-encode)."""
    from pipeline.embed import embed_texts

    seconds = {}
    texts = list(dict.fromkeys(t for task in tasks for t in task.segments["text"]))
    for backend in backends:
        start = time.perf_counter()
        for s in range(0, len(texts), 1000):
            embed_texts(texts[s:s + 1000], backend=backend)
        seconds[backend] = time.perf_counter() - start
    return seconds


# --------------------------------------------------------------------------------------------- report
def _fmt(x: float | None, nd: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{nd}f}"


def markdown(result: dict[str, Any]) -> str:
    lines = ["| task | method | macro-F1 [95% CI] | κ [95% CI] | acc. | reference F1 / κ | human | target | met? |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, task in result["tasks"].items():
        ref_f1, ref_k, human, t_f1, t_k = TARGETS[key]
        target = f"F1 ≥ {t_f1:.3f}" + (f", κ ≥ {t_k:.2f}" if t_k else "")
        for name, row in task["methods"].items():
            f1, k = row["macro_f1"], row["kappa"]
            met = f1 >= t_f1 and (t_k is None or k >= t_k)
            lines.append(f"| {task['title']} | {name} | {_fmt(f1)} [{_fmt(row['macro_f1_ci'][0])}, "
                         f"{_fmt(row['macro_f1_ci'][1])}] | {_fmt(k)} [{_fmt(row['kappa_ci'][0])}, "
                         f"{_fmt(row['kappa_ci'][1])}] | {_fmt(row['accuracy'])} | {ref_f1:.3f} / {ref_k:.3f} | "
                         f"{human} | {target} | {'yes' if met else 'no'} |")
    lines += ["", "| task | method | fit s / fold (mean) | train segments / fold | predict segments/s |",
              "|---|---|---|---|---|"]
    for task in result["tasks"].values():
        for name, row in task["methods"].items():
            if name.endswith(", p/prior"):  # same fits as the argmax row
                continue
            lines.append(f"| {task['title']} | {name} | {_fmt(row.get('fit_seconds_mean'), 2)} | "
                         f"{_fmt(row.get('train_segments_mean'), 0)} | "
                         f"{_fmt(row.get('predict_segments_per_s'), 0)} |")
    sp = result.get("encode_speed")
    if sp:
        lines += ["", f"Encode throughput on the same {sp['texts']} texts (mean {sp['mean_words']:.1f} words; cache "
                  "bypassed; model load excluded):", "", "| backend | texts/s | load s |", "|---|---|---|"]
        for b in ("embed.static.v1", "embed.minilm.v1"):
            lines.append(f"| {b} | {sp[b]['texts_per_s']:.1f} | {sp[b]['load_seconds']:.1f} |")
        lines.append(f"| ratio static / MiniLM | {sp['static_over_minilm']:.0f}× | |")
    cost = result.get("static_cost")
    if cost:
        lines += ["", "| task | decision | macro-F1 static + context | macro-F1 MiniLM + context | "
                  "MiniLM − static |", "|---|---|---|---|---|"]
        for c in cost.values():
            lines.append(f"| {result['tasks'][c['task']]['title']} | {c['decision']} | {_fmt(c['static'])} | "
                         f"{_fmt(c['minilm'])} | {c['minilm'] - c['static']:+.3f} |")
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = {n: version(n) for n in ("scikit-learn", "numpy", "torch", "model2vec", "sentence-transformers")}
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            **libs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="subsample documents, TF-IDF/static only (< 2 min)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results/coders.json, "
                        "coders.quick.json with --quick)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding annomi/ and epitome_reddit/")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="folds run in parallel")
    parser.add_argument("--tasks", default="all", help="comma-separated task keys (default: all)")
    parser.add_argument("--variants", default="all", help="comma-separated ClassifierCoder variant labels")
    parser.add_argument("--C", type=float, default=1.0, help="C of every ClassifierCoder variant (default 1.0)")
    args = parser.parse_args(argv)
    needed = [args.data / "annomi" / "AnnoMI-simple.csv", args.data / "epitome_reddit" / "explorations-reddit.csv"]
    if missing := [str(p) for p in needed if not p.is_file()]:
        print(f"bench/coders.py: the benchmark data are missing ({', '.join(missing)}). It reads AnnoMI and "
              f"EPITOME from {args.data} (see SOURCE.md there); pass --data to point elsewhere.", file=sys.stderr)
        return 2
    from pipeline.environment import configure_environment

    configure_environment()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pipeline.evaluate import grouped_folds

    began = time.perf_counter()
    if args.C != 1.0:
        BASE["C"] = args.C
    out_path = args.out or ROOT / "bench" / "results" / ("coders.quick.json" if args.quick else "coders.json")
    tasks = annomi_tasks(args.data, QUICK_DOCS["annomi"] if args.quick else None)
    tasks += epitome_tasks(args.data, QUICK_DOCS["epitome"] if args.quick else None)
    if args.tasks != "all":
        tasks = [t for t in tasks if t.key in args.tasks.split(",")]
    variants = [(n, p) for n, p in CLF_VARIANTS if not (args.quick and p.get("embedding_backend") == "embed.minilm.v1")]
    if args.variants != "all":
        variants = [(n, p) for n, p in variants if n in args.variants.split(",")]
    backends = ["embed.static.v1"] if args.quick else ["embed.static.v1", "embed.minilm.v1"]
    print(f"warming the embedding cache ({', '.join(backends)}) ...", file=sys.stderr, flush=True)
    cache_seconds = warm_cache(tasks, backends)
    result: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "bench/coders.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "quick": args.quick, "machine": machine(),
        "seed": SEED, "n_boot": N_BOOT, "folds": 5, "classifier_base_params": BASE,
        "cache_warm_seconds": cache_seconds, "tasks": {}}
    for task in tasks:
        folds = grouped_folds(task.segments, groups_column="document_id", n_splits=5, random_state=SEED)
        info = {"title": task.title, "codes": task.codes, "segments": int(task.coded.sum()),
                "documents": int(task.segments["document_id"].nunique()),
                "class_counts": dict(zip(task.codes, np.bincount(task.gold, minlength=len(task.codes)).tolist(),
                                         strict=True)),
                "notes": task.notes, "methods": {}}
        runs: list[tuple[str, str, dict[str, Any]]] = [("reference (TF-IDF + LR, sklearn)", "reference", {})]
        suffix = f" (C={args.C:g})" if args.C != 1.0 else ""
        runs += [(name + suffix, "classifier", p) for name, p in variants]
        for name, method, params in runs:
            print(f"{task.key}: {name} ...", file=sys.stderr, flush=True)
            for rule, row in cross_validate(task, folds, method, params, args.jobs).items():
                info["methods"][name + (", p/prior" if rule == "prior" else "")] = {"params": params, **row}
        for backend in backends:
            label = "zero-shot similarity (" + ("static" if "static" in backend else "MiniLM") + ")"
            print(f"{task.key}: {label} ...", file=sys.stderr, flush=True)
            info["methods"][label] = {"params": {"backend": backend}, **zero_shot_similarity(task, backend)}
        info["methods"]["zero-shot clf (codebook examples)"] = {"params": {}, **zero_shot_examples(task)}
        result["tasks"][task.key] = info
        _write(out_path, result)
    texts = tasks[0].segments["text"].tolist()
    sample = [texts[i] for i in np.random.default_rng(SEED).choice(len(texts), size=min(len(texts),
                                                                                        200 if args.quick else 1000),
                                                                   replace=False)]
    print("encode speed ...", file=sys.stderr, flush=True)
    result["encode_speed"] = encode_speed(sample)
    result["static_cost"] = {f"{k}{rule}": {"task": k, "decision": "p/prior" if rule else "argmax",
                                            "static": t["methods"][f"clf TF-IDF + static + context{rule}"]["macro_f1"],
                                            "minilm": t["methods"][f"clf TF-IDF + MiniLM + context{rule}"]["macro_f1"]}
                             for k, t in result["tasks"].items() for rule in ("", ", p/prior")
                             if f"clf TF-IDF + MiniLM + context{rule}" in t["methods"]
                             and f"clf TF-IDF + static + context{rule}" in t["methods"]}
    result["elapsed_seconds"] = time.perf_counter() - began
    result["markdown"] = markdown(result)
    _write(out_path, result)
    print(result["markdown"])
    print(f"wrote {out_path} ({result['elapsed_seconds']:.0f} s)", file=sys.stderr)
    return 0


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
