"""Benchmark the topic coder (``coder.topics.v1``): fit and transform time, stability, coherence, outliers, NMI.

Run from the project folder::

    .venv/bin/python bench/topics.py            # 2k / 10k / 50k segments -> bench/results/topics.json
    .venv/bin/python bench/topics.py --quick    # 2k / 10k, fewer variants -> bench/results/topics.quick.json

Texts: sentences of AnnoMI utterances and EPITOME posts and responses (``../shared/datasets``, read in
place, nothing copied) plus the demo run's segments when ``outputs/demo/segments.parquet`` exists; the
pool is sampled (seed 0) to 2k, 10k and 50k segments, repeating texts only when the pool is smaller.
Embeddings (``embed.static.v1``) are computed once, through the shared cache, before any timing: fit
times exclude embedding. Variants: PCA + KMeans (the default), PCA + HDBSCAN (+ outlier reduction),
UMAP + KMeans (seeded; its first fit in the process includes numba compilation, timed separately).

Measures: fit seconds per size and variant (and the growth factor per 5x more segments); transform
seconds for 1,000 new segments (with and without the multi-topic distribution); adjusted Rand index
between two fits with the same seed (must be 1.0) and with other seeds; NPMI coherence of the top 10
terms from document co-occurrence in the fitted texts; outlier share before and after reduction; NMI
of the topics with human labels (AnnoMI: target behaviour of client talk, therapist behaviour; EPITOME:
empathy levels of responses), next to the NMI of a random assignment with the same topic sizes.
Timings are wall-clock seconds on whatever the machine was doing (shared, 2 cores): compare rows of one
run, not runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "datasets"
SEED = 0
VARIANTS = {
    "pca+kmeans": {"reducer": "pca", "clusterer": "kmeans"},
    "pca+hdbscan": {"reducer": "pca", "clusterer": "hdbscan", "outliers": "embeddings"},
    "umap+kmeans": {"reducer": "umap", "clusterer": "kmeans"},
    # BERTopic's default 5 dimensions: HDBSCAN finds clusters here, so outlier reduction has work to do
    "pca5+hdbscan": {"reducer": "pca", "n_components": 5, "clusterer": "hdbscan", "outliers": "embeddings"},
}


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", " ".join(str(text).split()))
    return [p for p in parts if len(p) >= 12]


def load_pool(data: Path) -> pd.DataFrame:
    """``text, source`` rows: AnnoMI and EPITOME sentences, plus the demo run's segments if present."""
    rows: list[tuple[str, str]] = []
    annomi = pd.read_csv(data / "annomi" / "AnnoMI-simple.csv", keep_default_na=False)
    rows += [(s, "annomi") for t in annomi["utterance_text"] for s in _sentences(t)]
    er = pd.read_csv(data / "epitome_reddit" / "emotional-reactions-reddit.csv", keep_default_na=False)
    for col in ("seeker_post", "response_post"):
        rows += [(s, "epitome") for t in er[col].drop_duplicates() for s in _sentences(t)]
    demo = ROOT / "outputs" / "demo" / "segments.parquet"
    if demo.is_file():
        rows += [(t, "demo") for t in pd.read_parquet(demo)["text"]]
    pool = pd.DataFrame(rows, columns=["text", "source"]).drop_duplicates("text").reset_index(drop=True)
    return pool


def segment_frame(texts: list[str], doc: str = "bench") -> pd.DataFrame:
    from pipeline.schema import SEGMENT, coerce_frame
    from pipeline.segment import segment_id

    starts = np.arange(len(texts)) * 10_000
    frame = pd.DataFrame({"segment_id": [segment_id(doc, int(s), int(s) + len(t)) for s, t in zip(starts, texts,
                                                                                                   strict=True)],
                          "document_id": doc, "speaker": "client", "turn_index": np.arange(len(texts)),
                          "start_char": starts, "end_char": starts + np.array([len(t) for t in texts]),
                          "source_line": np.arange(len(texts)) + 1, "text": texts})
    return coerce_frame(frame, SEGMENT)


def sample(pool: pd.DataFrame, n: int, seed: int = SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if n <= len(pool):
        return np.sort(rng.choice(len(pool), size=n, replace=False))
    return np.concatenate([np.arange(len(pool)), rng.choice(len(pool), size=n - len(pool), replace=True)])


def npmi(coder: Any, texts: list[str], top: int = 10) -> float:
    """Mean NPMI of each topic's top terms over document co-occurrence in ``texts`` (-1 when never together)."""
    from sklearn.feature_extraction.text import CountVectorizer

    from pipeline.coders.topics import _TOKEN_PATTERN

    terms = sorted({w for r in coder.topics_ for w in r["top_terms"][:top]})
    if not terms:
        return float("nan")
    x = CountVectorizer(vocabulary=terms, token_pattern=_TOKEN_PATTERN, binary=True).fit_transform(texts)
    x = x.tocsc().astype(np.float64)
    n = x.shape[0]
    df = np.asarray(x.sum(axis=0)).ravel() / n
    co = (x.T @ x).toarray() / n
    index = {t: i for i, t in enumerate(terms)}
    scores = []
    for r in coder.topics_:
        ids = [index[w] for w in r["top_terms"][:top]]
        pair = []
        for i, j in combinations(ids, 2):
            pij = co[i, j]
            if pij <= 0 or df[i] <= 0 or df[j] <= 0:
                pair.append(-1.0)
            elif pij >= 1.0:
                pair.append(1.0)
            else:
                pair.append(float(np.log(pij / (df[i] * df[j])) / -np.log(pij)))
        if pair:
            scores.append(float(np.mean(pair)))
    return round(float(np.mean(scores)), 4) if scores else float("nan")


def fit(segments: pd.DataFrame, emb: np.ndarray, codebook: Any, variant: str, seed: int = SEED,
        **extra: Any) -> tuple[Any, float]:
    from pipeline.coders.topics import TopicCoder

    coder = TopicCoder(**VARIANTS[variant], speakers=None, random_state=seed, **extra)
    start = time.perf_counter()
    coder.fit(segments, codebook=codebook, embeddings=emb)
    return coder, round(time.perf_counter() - start, 3)


def import_seconds() -> float:
    """Seconds to import bertopic in a fresh interpreter (paid once per `alliance run` process)."""
    code = "import time; t = time.perf_counter(); import bertopic; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 2)


def nmi_tasks(data: Path, codebook: Any, backend: str) -> list[dict[str, Any]]:
    """NMI between topics (default coder, fitted per task) and human labels."""
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from pipeline.embed import embed_segments

    annomi = pd.read_csv(data / "annomi" / "AnnoMI-simple.csv", keep_default_na=False)
    annomi["topic"] = annomi["topic"].str.strip()
    client = annomi[annomi["interlocutor"] == "client"]
    therapist = annomi[annomi["interlocutor"] == "therapist"]
    files = {m: pd.read_csv(data / "epitome_reddit" / f"{f}-reddit.csv", keep_default_na=False)
             for m, f in (("ER", "emotional-reactions"), ("IP", "interpretations"), ("EX", "explorations"))}
    ep = files["ER"][["sp_id", "rp_id", "response_post"]].assign(**{m: f["level"].to_numpy() for m, f in files.items()})
    ep = ep.drop_duplicates(["sp_id", "rp_id"]).reset_index(drop=True)
    tasks = [("AnnoMI client utterances", client["utterance_text"], {"target behaviour (topic)": client["topic"],
                                                                     "client talk type": client["client_talk_type"]}),
             ("AnnoMI therapist utterances", therapist["utterance_text"],
              {"therapist behaviour": therapist["main_therapist_behaviour"], "target behaviour (topic)":
               therapist["topic"]}),
             ("EPITOME responses", ep["response_post"], {"ER level": ep["ER"], "IP level": ep["IP"],
                                                         "EX level": ep["EX"]})]
    out = []
    rng = np.random.default_rng(SEED)
    for name, texts, labels in tasks:
        segs = segment_frame([str(t) if str(t).strip() else "(empty)" for t in texts], doc=name)
        emb = embed_segments(segs, backend=backend)
        coder, seconds = fit(segs, emb, codebook, "pca+kmeans")
        topics = coder.labels_
        for label_name, y in labels.items():
            y = np.asarray(y).astype(str)
            out.append({"data": name, "labels": label_name, "segments": len(segs), "topics": len(coder.topic_ids_),
                        "label_classes": int(len(set(y))), "nmi": round(float(nmi(y, topics)), 4),
                        "nmi_random_same_sizes": round(float(nmi(y, rng.permutation(topics))), 4),
                        "fit_seconds": seconds})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2k and 10k only, UMAP at 2k only")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--backend", default="embed.static.v1")
    parser.add_argument("--only", choices=sorted(VARIANTS), help="only the fit rows (and stability) of one variant")
    args = parser.parse_args()
    missing = [p for p in (args.data / "annomi" / "AnnoMI-simple.csv",
                           args.data / "epitome_reddit" / "emotional-reactions-reddit.csv") if not p.is_file()]
    if missing:
        print(f"missing data files: {[str(p) for p in missing]}", file=sys.stderr)
        return 2
    name = "topics" + (f".{args.only.replace('+', '_')}" if args.only else "") + (".quick" if args.quick else "")
    out_path = args.out or ROOT / "bench" / "results" / f"{name}.json"
    from pipeline.environment import configure_environment

    configure_environment()
    from pipeline.codebook import load_codebook
    from pipeline.embed import embed_segments

    codebook = load_codebook(ROOT / "configs" / "codebooks" / "working_alliance.v1.yaml")
    result: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                              "command": " ".join(["python", *sys.argv]), "quick": args.quick,
                              "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count(),
                                          "bertopic": version("bertopic"), "scikit-learn": version("scikit-learn"),
                                          "umap-learn": version("umap-learn"), "hdbscan": version("hdbscan")},
                              "backend": args.backend}
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every section, so an interrupted run keeps what it measured
        out_path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    result["import_bertopic_seconds"] = import_seconds()
    pool = load_pool(args.data)
    sizes = [2000, 10000] if args.quick else [2000, 10000, 50000]
    result["pool"] = {"texts": len(pool), "by_source": pool["source"].value_counts().to_dict()}
    idx = sample(pool, max(sizes) + 1000)
    texts = pool["text"].to_numpy()[idx].tolist()
    start = time.perf_counter()
    all_segs = segment_frame(texts)
    emb_all = embed_segments(all_segs, backend=args.backend)
    result["embed_seconds_all"] = round(time.perf_counter() - start, 2)
    new_segs, new_emb = all_segs.iloc[-1000:].reset_index(drop=True), emb_all[-1000:]
    fit(all_segs.iloc[:300].reset_index(drop=True), emb_all[:300], codebook, "pca+kmeans")  # warm-up: imports
    from sklearn.metrics import adjusted_rand_score as ari

    rows: list[dict[str, Any]] = []
    keep: dict[tuple[str, int], Any] = {}
    stability: list[dict[str, Any]] = []

    def fit_rows(variant: str, ns: list[int]) -> None:
        for n in ns:
            segs, emb = all_segs.iloc[:n].reset_index(drop=True), emb_all[:n]
            cpu = time.process_time()
            coder, seconds = fit(segs, emb, codebook, variant)
            row = {"variant": variant, "segments": n, "fit_seconds": seconds,
                   "fit_cpu_seconds": round(time.process_time() - cpu, 3), "topics": len(coder.topic_ids_),
                   "outlier_share_before": round(coder.outlier_share_before_, 4),
                   "outlier_share_after": round(coder.outlier_share_after_, 4),
                   "npmi": npmi(coder, segs["text"].tolist()) if coder.topic_ids_ else None}
            if variant == "umap+kmeans":
                _, row["fit_seconds_second_fit"] = fit(segs, emb, codebook, variant)
            prev = next((p for p in rows if p["variant"] == variant and p["segments"] * 5 == n), None)
            if prev:  # growth per 5x more segments
                row["growth_vs_one_fifth"] = round(row["fit_seconds"] / max(prev["fit_seconds"], 1e-9), 2)
                row["cpu_growth_vs_one_fifth"] = round(row["fit_cpu_seconds"] / max(prev["fit_cpu_seconds"], 1e-9), 2)
            rows.append(row)
            keep[(variant, n)] = coder
            result["fit"] = rows
            save()
            print(json.dumps(row), flush=True)

    def stable(variant: str, n: int) -> None:
        segs, emb = all_segs.iloc[:n].reset_index(drop=True), emb_all[:n]
        base = keep.get((variant, n)) or fit(segs, emb, codebook, variant)[0]
        same = fit(segs, emb, codebook, variant, seed=SEED)[0]
        other = [fit(segs, emb, codebook, variant, seed=s)[0] for s in (1, 2)]
        stability.append({"variant": variant, "segments": n, "ari_same_seed": round(ari(base.labels_, same.labels_), 6),
                          "ari_other_seeds_1_2": [round(ari(base.labels_, o.labels_), 4) for o in other]})
        result["stability"] = stability
        save()
        print(json.dumps(stability[-1]), flush=True)

    if args.only:
        fit_rows(args.only, sizes)
        stable(args.only, 10000 if not args.only.startswith("umap") else 2000)
        result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        save()
        return 0
    # sections in order of priority (each saved as it completes)
    fit_rows("pca+kmeans", sizes)
    coder = keep[("pca+kmeans", 10000)]
    t, cpu = time.perf_counter(), time.process_time()
    coder.transform(new_segs, embeddings=new_emb)
    with_dist, with_cpu = time.perf_counter() - t, time.process_time() - cpu
    coder.set_params(multi_topic_threshold=None)
    t, cpu = time.perf_counter(), time.process_time()
    coder.transform(new_segs, embeddings=new_emb)
    result["transform_1k"] = {"model": "pca+kmeans fitted on 10k", "seconds_with_multi_topic": round(with_dist, 3),
                              "cpu_seconds_with_multi_topic": round(with_cpu, 3),
                              "seconds_primary_only": round(time.perf_counter() - t, 3),
                              "cpu_seconds_primary_only": round(time.process_time() - cpu, 3)}
    coder.set_params(multi_topic_threshold=0.3)
    save()
    print(json.dumps(result["transform_1k"]), flush=True)
    stable("pca+kmeans", 10000)
    result["nmi"] = nmi_tasks(args.data, codebook, args.backend)
    for r in result["nmi"]:
        print(json.dumps(r), flush=True)
    save()
    fit_rows("pca+hdbscan", sizes)
    stable("pca+hdbscan", 10000)
    fit_rows("umap+kmeans", [2000] if args.quick else [2000, 10000])
    stable("umap+kmeans", 2000)
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    save()
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
