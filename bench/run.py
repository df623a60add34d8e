"""Benchmark suite: synthetic corpora of 10k-300k segments through the whole pipeline (``make bench``).

For each size (``--sizes``, default 10000):

1. generate the corpus with :mod:`bench.synth` (cached under ``outputs/bench/corpora/``);
2. the de-identification NER pass alone: the pipeline's own ``_Deidentifier.ner_spans`` (same spaCy
   model, labels and batch size as the run config) over every turn text, in a subprocess;
3. ``alliance run`` end to end (local runner) in a subprocess: wall time, peak memory of the process tree
   (RSS summed over the process and its children, polled every 0.2 s), per-stage seconds from its
   ``manifest.json``;
4. ``alliance run --runner dask --workers 2`` on the same corpus, when the CLI has that option;
5. an incremental pass with 1% new items against a full pass (``bench.incremental.measure_incremental``,
   with size/2 feedback rows, about ``size`` segments), when that module is present;
6. static against transformer embeddings: encode speed of both on 300 segments of this corpus (this run),
   and the AnnoMI macro-F1 difference from ``bench/results/coders.json`` (``bench/coders.py``).

Every run starts with an empty embedding cache (the distilled static model is shared) and an empty
pseudonym map. Results go to ``bench/results/suite-<size>.json``; the table in ``bench/README.md``
between ``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->`` is rebuilt from every
``suite-*.json`` there.

Command line::

    .venv/bin/python bench/run.py [--sizes 10000 100000 300000] [--no-dask] [--no-incremental]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import inspect
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
DEFAULT_CONFIG = ROOT / "configs" / "runs" / "bench_full.yaml"
DEFAULT_WORK = ROOT / "outputs" / "bench"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
STAGES = ["ner", "ingest", "segment", "code.coder.rules.v1", "code.coder.similarity.v1", "code.coder.classifier.v1",
          "combine", "export", "export_nvivo", "report"]
EMBED_SAMPLE = 300


# --- measuring a subprocess -----------------------------------------------------------------------------
def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_measured(cmd: list[str], *, env: dict[str, str], log: Path, interval: float = 0.2) -> dict[str, Any]:
    """Run ``cmd``; return exit code, wall seconds and peak RSS (MB) summed over its process tree.

    The command's output goes to ``log`` (it holds counts and paths only: the pipeline never logs text).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    peak = 0
    with log.open("w", encoding="utf-8") as fh:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        done = threading.Event()

        def poll() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(proc.pid))
                done.wait(interval)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        code = proc.wait()
        wall = time.perf_counter() - start
        done.set()
        thread.join()
    return {"returncode": code, "wall_seconds": round(wall, 3), "peak_rss_mb": round(peak / 2**20, 1),
            "command": " ".join(str(c) for c in cmd), "log": str(log)}


def bench_env(work: Path, label: str) -> dict[str, str]:
    """Environment of one measured run: its own empty embedding cache and key folder, the shared static model."""
    cache = work / "cache" / label
    keys = work / "keys" / label
    for folder in (cache, keys):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, mode=0o700)
    (cache / "models").symlink_to((work / "models-cache" / "models").resolve(), target_is_directory=True)
    env = dict(os.environ)
    env.update({"ALLIANCE_CACHE_DIR": str(cache), "ALLIANCE_KEY_DIR": str(keys),
                "PREFECT_HOME": str(work / "prefect"), "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(ROOT)})
    return env


# --- the pieces, run as subprocesses of this script ---------------------------------------------------------
def ner_pass(corpus: Path, config: Path) -> dict[str, Any]:
    """The de-identification NER pass alone over every turn text of ``corpus`` (called in a subprocess)."""
    from pipeline.config import load_run_config
    from pipeline.deidentify import PseudonymMap
    from pipeline.deidentify.core import _Deidentifier
    from pipeline.environment import configure_environment
    from pipeline.ingest import ingest_corpus, load_corpus_config

    configure_environment()
    cfg = load_run_config(config)
    t0 = time.perf_counter()
    result = ingest_corpus(corpus, load_corpus_config(corpus, cfg.ingest))
    texts = [t.text for d in result.documents for t in d.turns]
    t1 = time.perf_counter()
    engine = _Deidentifier(cfg.deidentify, PseudonymMap(None))
    t2 = time.perf_counter()
    engine.ner_spans(texts)
    t3 = time.perf_counter()
    return {"documents": len(result.documents), "texts": len(texts), "chars": sum(map(len, texts)),
            "read_seconds": round(t1 - t0, 3), "model_load_seconds": round(t2 - t1, 3),
            "ner_seconds": round(t3 - t2, 3), "batch_size": cfg.deidentify.batch_size,
            "spacy_model": cfg.deidentify.spacy_model}


def embed_speed(run_dir: Path, n: int = EMBED_SAMPLE) -> dict[str, Any]:
    """Encode speed of the static and MiniLM backends on ``n`` segments of a run, cache bypassed."""
    import pandas as pd

    from pipeline.embed import get_embedder
    from pipeline.environment import configure_environment

    configure_environment()
    segments = pd.read_parquet(run_dir / "segments.parquet", columns=["text"])
    texts = segments["text"].astype(str).sample(n=min(n, len(segments)), random_state=0).tolist()
    out: dict[str, Any] = {"texts": len(texts)}
    for name in ("embed.static.v1", "embed.minilm.v1"):
        t0 = time.perf_counter()
        embedder = get_embedder(name)
        embedder.encode(texts[:8])
        t1 = time.perf_counter()
        embedder.encode(texts)
        t2 = time.perf_counter()
        out[name] = {"load_seconds": round(t1 - t0, 3), "encode_seconds": round(t2 - t1, 3),
                     "texts_per_s": round(len(texts) / (t2 - t1), 1)}
    out["static_over_minilm"] = round(out["embed.static.v1"]["texts_per_s"] / out["embed.minilm.v1"]["texts_per_s"], 1)
    return out


def _child(what: str, args: list[str], *, env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run one piece of this script in a fresh Python process; its JSON result is the log's last line."""
    res = run_measured([sys.executable, str(Path(__file__)), "_child", what, *args], env=env, log=log)
    if res["returncode"] != 0:
        raise RuntimeError(f"{what} failed (exit {res['returncode']}); see {log}")
    last = log.read_text(encoding="utf-8").strip().splitlines()[-1]
    return {**json.loads(last), "wall_seconds": res["wall_seconds"], "peak_rss_mb": res["peak_rss_mb"]}


# --- the suite -----------------------------------------------------------------------------------------------
def ensure_corpus(work: Path, size: int, seed: int) -> Path:
    """The synthetic corpus of ``size`` segments, generated once and cached."""
    from bench.synth import write_corpus

    version = hashlib.sha256((ROOT / "bench" / "synth.py").read_bytes()).hexdigest()[:8]
    corpus = work / "corpora" / f"synth-{size}-s{seed}-{version}"  # a changed generator writes a new corpus
    if not (corpus / "synth.json").exists():
        shutil.rmtree(corpus, ignore_errors=True)
        write_corpus(corpus, size, seed=seed)
    return corpus


def dask_available() -> bool:
    """Whether ``alliance run`` has a ``--runner`` option (the Dask runner)."""
    res = subprocess.run([str(ROOT / ".venv" / "bin" / "alliance"), "run", "--help"], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"}, check=False)
    return "--runner" in res.stdout


def alliance_run(corpus: Path, out: Path, config: Path, *, work: Path, label: str,
                 extra: list[str] | None = None) -> dict[str, Any]:
    """``alliance run`` end to end in a subprocess, with its manifest's per-stage timings and counts."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(ROOT / ".venv" / "bin" / "alliance"), "run", str(corpus), "--out", str(out), "--config",
           str(config), *(extra or [])]
    res = run_measured(cmd, env=bench_env(work, label), log=work / "logs" / f"{label}.log")
    if res["returncode"] not in (0, 3):
        raise RuntimeError(f"alliance run failed (exit {res['returncode']}); see {res['log']}")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    counts = manifest["counts"]
    return {**res, "run_dir": str(out), "stages": manifest["timings_seconds"],
            "segments": counts.get("segment.segments"), "documents": counts.get("ingest.documents"),
            "files": counts.get("ingest.files_read"), "quarantined_files": counts.get("ingest.quarantined_files"),
            "skipped_rows": counts.get("ingest.skipped_rows")}


def incremental(corpus: Path, config: Path, *, work: Path, size: int, seed: int) -> dict[str, Any]:
    """The incremental 1% pass against a full run, from ``bench.incremental.measure_incremental`` if present."""
    try:
        from bench.incremental import measure_incremental
    except ImportError as err:
        return {"available": False, "reason": f"bench.incremental.measure_incremental not importable ({err})"}
    from bench.synth import write_increment

    params = inspect.signature(measure_incremental).parameters
    folder = work / "incremental" / str(size)
    folder.mkdir(parents=True, exist_ok=True)
    offer: dict[str, Any] = {"config": config, "config_path": config, "work": folder, "work_dir": folder,
                             "workdir": folder, "fraction": 0.01, "new_fraction": 0.01, "seed": seed,
                             "items": max(200, size // 2)}  # feedback rows hold about 2 segments each
    if {"corpus", "corpus_dir", "inbox", "new_items"} & set(params):  # a pass over this suite's own corpus
        inbox = work / "inbox" / f"{corpus.name}-1pct"
        if not inbox.exists():
            write_increment(corpus, inbox, fraction=0.01, seed=seed)
        offer.update({"corpus": corpus, "corpus_dir": corpus, "inbox": inbox, "new_items": inbox})
    kwargs = {k: v for k, v in offer.items() if k in params}
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in kwargs
               and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    if missing:
        return {"available": False, "reason": f"measure_incremental needs {missing}, which bench/run.py cannot give"}
    result = measure_incremental(**kwargs)
    return {"available": True, **json.loads(json.dumps(result, default=str))}


def static_vs_transformer(speed: dict[str, Any] | None, coders_json: Path) -> dict[str, Any]:
    """The same-run encode speed ratio and the AnnoMI macro-F1 difference from ``bench/coders.py``'s results."""
    out: dict[str, Any] = {"speed_this_run": speed}
    if coders_json.exists():
        data = json.loads(coders_json.read_text(encoding="utf-8"))
        cost = data.get("static_cost", {})
        out["annomi"] = {task: {"static_f1": round(cost[task]["static"], 4),
                                "minilm_f1": round(cost[task]["minilm"], 4),
                                "f1_static_minus_minilm": round(cost[task]["static"] - cost[task]["minilm"], 4)}
                         for task in ("annomi_therapist", "annomi_client") if task in cost}
        out["coders_json"] = {"path": _rel(coders_json), "command": data.get("command"),
                              "date": data.get("date"), "quick": data.get("quick"),
                              "encode_static_over_minilm": data.get("encode_speed", {}).get("static_over_minilm")}
    return out


def stage_rates(stages: dict[str, float | None], segments: int) -> dict[str, float | None]:
    """Segments per second of each stage (None where a stage has no timing)."""
    return {k: (round(segments / v, 1) if v else None) for k, v in stages.items()}


def ratios(result: dict[str, Any]) -> dict[str, Any]:
    """The four ratios of a size's result (None where a part did not run)."""
    local, ner = result["local"], result["ner"]
    out: dict[str, Any] = {"e2e_over_ner": round(ner["ner_seconds"] / local["wall_seconds"], 3)}
    out["e2e_stages_over_ner"] = round(ner["ner_seconds"] / sum(v or 0 for v in local["stages"].values()), 3)
    inc = result.get("incremental") or {}
    out["incremental_over_full"] = None
    out["incremental_over_full_without_export"] = inc.get("ratio_without_export")
    if inc.get("available"):
        given = inc.get("ratio_incremental_to_full", inc.get("ratio"))
        full, part = (inc.get("full") or {}).get("seconds"), (inc.get("incremental") or {}).get("seconds")
        if given is not None:
            out["incremental_over_full"] = round(float(given), 4)
        elif full and part is not None:
            out["incremental_over_full"] = round(part / full, 4)
    dask = result.get("dask") or {}
    if dask.get("available") and "stages" in dask:
        cpu = ("ner", "ingest", "segment")
        local_cpu = sum(v or 0 for k, v in local["stages"].items() if k in cpu or k.startswith("code."))
        dask_cpu = sum(v or 0 for k, v in dask["stages"].items() if k in cpu or k.startswith("code."))
        out["dask2_speedup_e2e"] = round(local["wall_seconds"] / dask["wall_seconds"], 3)
        out["dask2_speedup_cpu_stages"] = round(local_cpu / dask_cpu, 3) if dask_cpu else None
    else:
        out["dask2_speedup_e2e"] = out["dask2_speedup_cpu_stages"] = None
    speed = (result.get("embeddings") or {}).get("speed_this_run") or {}
    out["static_over_minilm_speed"] = speed.get("static_over_minilm")
    annomi = (result.get("embeddings") or {}).get("annomi", {})
    out["annomi_f1_static_minus_minilm"] = {k: v["f1_static_minus_minilm"] for k, v in annomi.items()}
    return out


def _save(result: dict[str, Any], args: argparse.Namespace, before: list[float]) -> Path:
    """Write the result so far (ratios of the parts done) to ``suite-<size>.json``: a killed run keeps them."""
    result["embeddings"] = result.get("embeddings") or static_vs_transformer(None, args.coders_json)
    result["ratios"] = ratios(result)
    result["machine"] = {"cores": os.cpu_count(), "loadavg_before": before, "loadavg_after": _loadavg(),
                         "python": sys.version.split()[0]}
    result["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["command"] = " ".join(["bench/run.py", *sys.argv[1:]])
    path = args.results / f"suite-{result['size']}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _failed(err: Exception) -> dict[str, Any]:
    return {"available": True, "error": f"{type(err).__name__}: {err}"}


def run_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Everything for one corpus size, saved to ``suite-<size>.json`` after each part; returns the result."""
    work: Path = args.work
    before = _loadavg()
    t0 = time.perf_counter()
    corpus = ensure_corpus(work, size, args.seed)
    gen_seconds = time.perf_counter() - t0
    print(f"[{size}] corpus {corpus} ({gen_seconds:.1f} s)", flush=True)  # noqa: T201
    ner = _child("ner", [str(corpus), str(args.config)], env=bench_env(work, f"{size}-ner"),
                 log=work / "logs" / f"{size}-ner.log")
    print(f"[{size}] NER pass {ner['ner_seconds']} s over {ner['texts']} texts", flush=True)  # noqa: T201
    local = alliance_run(corpus, work / "runs" / f"{size}-local", args.config, work=work, label=f"{size}-local")
    local["stage_segments_per_s"] = stage_rates(local["stages"], local["segments"])
    local["e2e_segments_per_s"] = round(local["segments"] / local["wall_seconds"], 1)
    print(f"[{size}] local run {local['wall_seconds']} s, {local['segments']} segments, "  # noqa: T201
          f"peak {local['peak_rss_mb']} MB", flush=True)
    synth_info = json.loads((corpus / "synth.json").read_text(encoding="utf-8"))
    result: dict[str, Any] = {"size": size, "seed": args.seed, "corpus": _rel(corpus), "synth": synth_info,
                              "config": _rel(args.config), "generate_seconds": round(gen_seconds, 1),
                              "ner": ner, "local": local,
                              "dask": {"available": False, "reason": "not run yet"},
                              "incremental": {"available": False, "reason": "not run yet"}}
    _save(result, args, before)
    speed = _child("embed", [str(work / "runs" / f"{size}-local")], env=bench_env(work, f"{size}-embed"),
                   log=work / "logs" / f"{size}-embed.log")
    result["embeddings"] = static_vs_transformer(speed, args.coders_json)
    _save(result, args, before)
    if not args.dask:
        result["dask"] = {"available": False, "reason": "skipped (--no-dask)"}
    elif not dask_available():
        result["dask"] = {"available": False, "reason": "`alliance run` has no --runner option in this checkout"}
    else:
        try:
            dask = alliance_run(corpus, work / "runs" / f"{size}-dask2", args.config, work=work,
                                label=f"{size}-dask2", extra=["--runner", "dask", "--workers", "2"])
            dask["stage_segments_per_s"] = stage_rates(dask["stages"], dask["segments"])
            result["dask"] = {"available": True, **dask}
            print(f"[{size}] dask run {dask['wall_seconds']} s, peak {dask['peak_rss_mb']} MB", flush=True)  # noqa: T201
        except (RuntimeError, OSError, KeyError, ValueError) as err:
            result["dask"] = _failed(err)
    _save(result, args, before)
    if args.incremental:
        try:
            result["incremental"] = incremental(corpus, args.config, work=work, size=size, seed=args.seed)
        except Exception as err:  # noqa: BLE001 - another helper's code: record the failure, keep the suite's results
            result["incremental"] = _failed(err)
    else:
        result["incremental"] = {"available": False, "reason": "skipped (--no-incremental)"}
    path = _save(result, args, before)
    print(f"[{size}] wrote {_rel(path)}: {json.dumps(result['ratios'])}", flush=True)  # noqa: T201
    return result


def _rel(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- the README table ------------------------------------------------------------------------------------------
def _fmt(value: Any, spec: str = ".0f") -> str:
    if value is None:
        return "n/a"
    return format(value, spec)


def _missing(part: dict[str, Any] | None) -> str:
    """Table cell of a part without a ratio: it failed (see the JSON) or was not available."""
    return "failed (see JSON)" if (part or {}).get("error") else "not available"


def growth_exponents(results: list[dict[str, Any]]) -> dict[str, float]:
    """Slope of log(seconds) against log(segments) per stage and end to end (1.0 = linear), over all sizes."""
    rows = [r for r in results if r.get("local", {}).get("segments")]
    if len({r["local"]["segments"] for r in rows}) < 2:
        return {}
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        x = math.log(r["local"]["segments"])
        points = {**{k: v for k, v in r["local"]["stages"].items() if v}, "end to end": r["local"]["wall_seconds"],
                  "NER pass": r["ner"]["ner_seconds"], "peak memory": r["local"]["peak_rss_mb"]}
        for name, value in points.items():
            series.setdefault(name, []).append((x, math.log(value)))
    out = {}
    for name, pts in series.items():
        if len(pts) < 2:
            continue
        mx = sum(p[0] for p in pts) / len(pts)
        my = sum(p[1] for p in pts) / len(pts)
        den = sum((p[0] - mx) ** 2 for p in pts)
        if den > 0:
            out[name] = round(sum((p[0] - mx) * (p[1] - my) for p in pts) / den, 2)
    return out


def render_table(results: list[dict[str, Any]]) -> str:
    """Markdown tables for the README from suite results (sorted by size)."""
    results = sorted(results, key=lambda r: r["size"])
    lines = ["| size (target) | segments | documents | end-to-end s | end-to-end seg/s | peak memory MB | "
             "NER pass seg/s | e2e / NER | incremental 1% / full | Dask 2 / local (CPU stages) | "
             "static / MiniLM speed | AnnoMI F1 static − MiniLM (therapist / client) | load before→after |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        loc, rat, ner = r["local"], r["ratios"], r["ner"]
        f1 = rat.get("annomi_f1_static_minus_minilm") or {}
        dask = (_missing(r.get("dask")) if rat.get("dask2_speedup_cpu_stages") is None
                else f"{rat['dask2_speedup_cpu_stages']:.2f}× (e2e {rat['dask2_speedup_e2e']:.2f}×)")
        inc = (_missing(r.get("incremental")) if rat.get("incremental_over_full") is None
               else f"{rat['incremental_over_full']:.3f}")
        if rat.get("incremental_over_full_without_export") is not None:
            inc += f" ({rat['incremental_over_full_without_export']:.3f} without the NVivo export)"
        load = f"{r['machine']['loadavg_before'][0]:.1f}→{r['machine']['loadavg_after'][0]:.1f}"
        lines.append(
            f"| {r['size']:,} | {loc['segments']:,} | {loc['documents']:,} | {loc['wall_seconds']:.0f} | "
            f"{loc['e2e_segments_per_s']:.0f} | {loc['peak_rss_mb']:.0f} | "
            f"{loc['segments'] / ner['ner_seconds']:.0f} | "
            f"{rat['e2e_over_ner']:.2f} | {inc} | {dask} | {_fmt(rat.get('static_over_minilm_speed'), '.0f')}× | "
            f"{_fmt(f1.get('annomi_therapist'), '+.3f')} / {_fmt(f1.get('annomi_client'), '+.3f')} | {load} |")
    lines += ["", "Segments per second by stage (local runner; the flow's own timings from manifest.json: `ner` is "
              "its parallel NER pass, `ingest` reading plus the rest of de-identification):", ""]
    stages = [s for s in STAGES if any(s in r["local"]["stages"] for r in results)]
    stages += sorted({s for r in results for s in r["local"]["stages"]} - set(stages))
    lines.append("| size | " + " | ".join(stages) + " |")
    lines.append("|---:|" + "---:|" * len(stages))
    for r in results:
        rates = r["local"]["stage_segments_per_s"]
        lines.append(f"| {r['size']:,} | " + " | ".join(_fmt(rates.get(s)) for s in stages) + " |")
    growth = growth_exponents(results)
    if growth:
        lines += ["", "Growth exponents (slope of log time against log segments over the sizes above; 1.0 is "
                  "linear, above 1.1 grows faster than linear):", "",
                  "| " + " | ".join(growth) + " |", "|" + "---:|" * len(growth),
                  "| " + " | ".join(f"{v:.2f}" for v in growth.values()) + " |"]
    dates = sorted({r["date"][:16] for r in results})
    lines += ["", f"Runs: {', '.join(dates)} UTC; raw results in `bench/results/suite-<size>.json`."]
    return "\n".join(lines)


def update_readme(readme: Path, table: str) -> None:
    """Replace the text between the bench-table markers of ``readme`` with ``table``."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(f"{readme} lacks the markers {START} and {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")


def load_results(folder: Path) -> list[dict[str, Any]]:
    """Every ``suite-*.json`` in ``folder``."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("suite-*.json"))]


def prepare(work: Path) -> None:
    """Distil (or find) the static model once, in a cache every measured run shares."""
    from pipeline.embed import load_static

    shared = work / "models-cache"
    shared.mkdir(parents=True, exist_ok=True, mode=0o700)
    load_static(cache_dir=shared)


def main(argv: list[str] | None = None) -> int:
    """Command line of the suite (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_child"]:
        what, rest = argv[1], argv[2:]
        result = ner_pass(Path(rest[0]), Path(rest[1])) if what == "ner" else embed_speed(Path(rest[0]))
        print(json.dumps(result))  # noqa: T201
        return 0
    ap = argparse.ArgumentParser(description="Benchmark suite over synthetic corpora (see bench/README.md).")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--coders-json", type=Path, default=RESULTS / "coders.json")
    ap.add_argument("--no-dask", dest="dask", action="store_false")
    ap.add_argument("--no-incremental", dest="incremental", action="store_false")
    ap.add_argument("--table-only", action="store_true", help="rebuild the README table from the saved results")
    args = ap.parse_args(argv)
    args.config, args.work, args.results = args.config.resolve(), args.work.resolve(), args.results.resolve()
    if not args.table_only:
        args.work.mkdir(parents=True, exist_ok=True)
        prepare(args.work)
        for size in args.sizes:
            run_size(size, args)
            update_readme(args.readme, render_table(load_results(args.results)))
    update_readme(args.readme, render_table(load_results(args.results)))
    print(f"table updated in {args.readme}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
