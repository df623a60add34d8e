"""The main flow: raw transcripts and feedback -> de-identified, segmented, coded tables.

A short script of task calls into ``pipeline.stages``. Tasks take and return paths and small JSON
reports (counts, timings), never participant text; flow parameters are paths only. Results are
persisted as JSON inside the run folder (no pickles); cache keys hash the task's inputs, the config
and the pipeline version (see ``flows._cache``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import get_run_context

from flows._cache import artifact_key, needs_refresh
from pipeline import stages
from pipeline.config import load_run_config
from pipeline.manifest import plan_run, write_manifest
from pipeline.runners import part_path

__all__ = ["code_corpus"]

TASK_OPTIONS: dict[str, Any] = {"cache_key_fn": artifact_key, "result_serializer": "json", "retries": 0}


@task(name="plan-run", result_serializer="json")
def plan_task(corpus: str, config: str | None, corpus_id: str) -> dict[str, Any]:
    """Hash inputs, config and codebook; derive the run id."""
    return vars(plan_run(Path(corpus), load_run_config(config), corpus_id=corpus_id))


@task(name="ingest-prepare", **TASK_OPTIONS)
def prepare_task(corpus: str, out: str, config: str | None, plan: dict[str, Any], writes: list[str]) -> dict[str, Any]:
    """Ingest and split the raw turn texts into batches for the parallel NER pass (restricted, temporary)."""
    return stages.prepare_deidentify(Path(corpus), load_run_config(config), Path(out))


@task(name="ner-batch", **TASK_OPTIONS)
def ner_batch_task(out: str, config: str | None, index: int, writes: list[str]) -> dict[str, Any]:
    """Parse one batch of turns for de-identification (runs on a worker)."""
    return stages.ner_batch(load_run_config(config), Path(out), index)


@task(name="ingest-deidentify", **TASK_OPTIONS)
def ingest_task(corpus: str, out: str, config: str | None, plan: dict[str, Any],
                writes: list[str]) -> dict[str, Any]:
    """Ingest every file and de-identify before anything is written."""
    return stages.ingest_and_deidentify(Path(corpus), load_run_config(config), Path(out),
                                        corpus_id=plan["corpus_id"])


@task(name="segment-batch", **TASK_OPTIONS)
def segment_batch_task(out: str, config: str | None, index: int, reads: list[str], writes: list[str]) -> dict[str, Any]:
    """Split one batch's speaker turns into sentence segments (runs on a worker)."""
    return stages.segment_batch(load_run_config(config), Path(out), index)


@task(name="segment", **TASK_OPTIONS)
def segment_task(out: str, config: str | None, batches: int, reads: list[str], writes: list[str]) -> dict[str, Any]:
    """Join the segment batches in order into segments.parquet."""
    return stages.gather_segments(load_run_config(config), Path(out), batches)


@task(name="code-batch", **TASK_OPTIONS)
def code_batch_task(out: str, config: str | None, coder_index: int, index: int, run_id: str, reads: list[str],
                    writes: list[str]) -> dict[str, Any]:
    """Apply a codebook-only coder (rules) to one batch of segments (runs on a worker)."""
    return stages.code_batch(load_run_config(config), Path(out), coder_index, index, run_id=run_id)


@task(name="code", **TASK_OPTIONS)
def code_task(out: str, config: str | None, coder_index: int, run_id: str, reads: list[str],
              writes: list[str], batches: int = 0) -> dict[str, Any]:
    """Apply one configured coder, or join its batches (``batches`` > 0) in order."""
    if batches:
        return stages.gather_codes(load_run_config(config), Path(out), coder_index, batches)
    return stages.code_segments(load_run_config(config), Path(out), coder_index, run_id=run_id)


@task(name="combine", **TASK_OPTIONS)
def combine_task(out: str, config: str | None, reports: list[dict[str, Any]], run_id: str, reads: list[str],
                 writes: list[str]) -> dict[str, Any]:
    """Merge the coders' assignments into the final code table."""
    return stages.combine_codes(reports, Path(out), load_run_config(config), run_id=run_id)


@task(name="topics", result_serializer="json")
def topics_task(out: str, config: str | None, run_id: str, reads: list[str]) -> dict[str, Any]:
    """Fit emergent topics; adds coder.topics.v1 rows to codes.parquet, so it reruns with every combine."""
    return stages.find_topics(load_run_config(config), Path(out), run_id=run_id)


@task(name="export-tables", **TASK_OPTIONS)
def export_task(out: str, config: str | None, reads: list[str], writes: list[str]) -> dict[str, Any]:
    """Write coded_segments.csv."""
    return stages.export_tables(load_run_config(config), Path(out))


@task(name="publish-artifacts", result_serializer="json")
def artifacts_task(out: str, config: str | None, run_id: str) -> dict[str, Any]:
    """Publish a markdown summary and a table of counts per code (no text, no file names) to Prefect."""
    summary = stages.run_summary(load_run_config(config), Path(out))
    lines = [f"# Run {run_id}", "", f"- segments: {summary['segments']}",
             f"- segments with at least one code: {summary['coded_segments']}",
             f"- input problems: {sum(p['count'] for p in summary['problems'])}"]
    lines += [f"  - {p['code']} {p['action']}: {p['count']}" for p in summary["problems"]]
    create_markdown_artifact("\n".join(lines), key="code-corpus-summary", description=f"run {run_id}")
    create_table_artifact(summary["per_code"], key="code-corpus-counts", description=f"run {run_id}")
    if summary["problems"]:
        create_table_artifact(summary["problems"], key="code-corpus-quarantine", description=f"run {run_id}")
    return summary


@task(name="write-manifest", result_serializer="json")
def manifest_task(out: str, config: str | None, plan: dict[str, Any], reports: dict[str, Any],
                  flow_run_id: str) -> str:
    """Write manifest.json with hashes, versions, counts and timings."""
    from pipeline.manifest import RunPlan

    return str(write_manifest(Path(out), RunPlan(**plan), load_run_config(config), reports,
                              flow_run_id=flow_run_id))


@task(name="write-reports", result_serializer="json")
def reports_task(out: str, config: str | None, manifest: str) -> dict[str, Any]:
    """Write report.html and viewer.html (self-contained, offline) into the run folder."""
    return stages.write_reports(load_run_config(config), Path(out))


@task(name="export-nvivo", result_serializer="json")
def export_task_nvivo(out: str, config: str | None, manifest: str) -> dict[str, Any]:
    """Write the NVivo exchange files (REFI-QDA project, codebook, dataset spreadsheet) into the run folder."""
    return stages.export_nvivo(load_run_config(config), Path(out))


@flow(name="code-corpus", log_prints=False, persist_result=False)
def code_corpus(corpus: str, out: str, config: str | None = None, corpus_id: str | None = None) -> dict[str, Any]:
    """Code a corpus folder into ``out``; returns the per-stage reports (paths and counts only)."""
    # Task results (JSON) go to the run's own private folder, not PREFECT_HOME/storage: a result store is fixed
    # when the flow run starts, so each task is given the storage explicitly.
    # (A ContextVar would be simpler, but the flow function is pickled by value for Dask workers.)
    return _code_corpus(corpus, out, config, corpus_id, stages.private_results_dir(Path(out)))


def _private(task_fn: Any, results: Path, **options: Any) -> Any:
    """The task with its results stored in this run's ``.prefect-results`` folder."""
    return task_fn.with_options(result_storage=results, **options)


def _fresh(task_fn: Any, writes: list[str], results: Path) -> Any:
    """The task, told to ignore its cache when one of its outputs is missing."""
    return _private(task_fn, results, refresh_cache=True) if needs_refresh(writes) else _private(task_fn, results)


def _parts(folder: str, n: int, suffix: str = ".parquet") -> list[str]:
    return [str(part_path(Path(folder), i, suffix)) for i in range(n)]


def _map(task_fn: Any, writes: list[list[str]], results: Path, **kwargs: Any) -> list[dict[str, Any]]:
    """Run one task per batch on the flow's task runner (local threads or Dask workers); results in batch order."""
    futures = [_fresh(task_fn, w, results).submit(
        **{k: (v[i] if k in ("index", "reads") else v) for k, v in kwargs.items()}, writes=w)
        for i, w in enumerate(writes)]
    return [f.result() for f in futures]


def _code_corpus(corpus: str, out: str, config: str | None, corpus_id: str | None,
                 results: Path) -> dict[str, Any]:
    paths = {k: str(v) for k, v in stages.run_paths(Path(out)).items()}
    corpus_id = corpus_id or load_run_config(config).corpus_id or Path(corpus).resolve().name
    plan = _private(plan_task, results)(corpus, config, corpus_id)
    reports: dict[str, Any] = {}
    writes = [paths["documents"], paths["turns"]]
    # De-identification: NER per batch on the workers; names are then assigned serially in document order.
    start = time.perf_counter()
    prepared = _fresh(prepare_task, writes, results)(corpus, out, config, plan, writes=writes)
    work = prepared["paths"]["work"]
    fresh = Path(work).is_dir()  # freshly prepared; a cached run has no raw work files
    if fresh:  # reports["ner"]: reading the corpus and the parallel NER pass (wall clock)
        n = prepared["counts"]["batches"]
        ner = _map(ner_batch_task, [[p] for p in _parts(f"{work}/ner", n, ".spacy")], results, out=out, config=config,
                   index=list(range(n)))
        reports["ner"] = {"counts": {"batches": n, "turns": sum(r["counts"]["turns"] for r in ner)},
                          "seconds": round(time.perf_counter() - start, 3)}
    deid = _private(ingest_task, results, refresh_cache=True) if fresh else _fresh(ingest_task, writes, results)
    reports["ingest"] = deid(corpus, out, config, plan, writes=writes)
    n = reports["ingest"]["counts"]["batches"]
    if needs_refresh(_parts(f"{out}/interim/turns", n)):  # batch inputs deleted since a cached run
        reports["ingest"] = _private(ingest_task, results, refresh_cache=True)(corpus, out, config, plan,
                                                                              writes=writes)
    start = time.perf_counter()
    _map(segment_batch_task, [[p] for p in _parts(f"{out}/interim/segments", n)], results, out=out, config=config,
         index=list(range(n)), reads=[[p] for p in _parts(f"{out}/interim/turns", n)])
    writes = [paths["segments"]]
    reports["segment"] = _fresh(segment_task, writes, results)(
        out, config, n, reads=_parts(f"{out}/interim/segments", n), writes=writes)
    reports["segment"]["seconds"] = round(time.perf_counter() - start, 3)
    coder_reports = []
    for i, spec in enumerate(load_run_config(config).coders):
        writes = [f"{out}/interim/codes.{spec.use}.parquet"]
        reads, batches, start = [paths["segments"]], 0, time.perf_counter()
        if stages.batch_coder(load_run_config(config), i):
            batches = n
            reads = _parts(f"{out}/interim/codes.{spec.use}", n)
            _map(code_batch_task, [[p] for p in reads], results, out=out, config=config, coder_index=i,
                 index=list(range(n)), run_id=plan["run_id"],
                 reads=[[p] for p in _parts(f"{out}/interim/segments", n)])
        report = _fresh(code_task, writes, results)(out, config, i, plan["run_id"], reads=reads, writes=writes,
                                                    batches=batches)
        coder_reports.append({**report, "seconds": round(time.perf_counter() - start, 3)})
    reports.update({f"code.{r['counts']['coder']}": r for r in coder_reports})
    reports["combine"] = _fresh(combine_task, [paths["codes"]], results)(
        out, config, coder_reports, plan["run_id"], reads=[r["paths"]["codes"] for r in coder_reports],
        writes=[paths["codes"]])
    if load_run_config(config).topics.enabled:
        reports["topics"] = _private(topics_task, results)(out, config, plan["run_id"],
                                                           reads=[paths["codes"], paths["segments"]])
    reports["export"] = _fresh(export_task, [paths["coded_segments"]], results)(
        out, config, reads=[paths["codes"], paths["segments"]], writes=[paths["coded_segments"]])
    summary = _private(artifacts_task, results)(out, config, plan["run_id"])
    flow_run_id = str(get_run_context().flow_run.id)
    manifest = _private(manifest_task, results)(out, config, plan, reports, flow_run_id)
    cfg = load_run_config(config)
    if cfg.outputs.nvivo:
        reports["export_nvivo"] = _private(export_task_nvivo, results)(out, config, manifest)
    if cfg.outputs.report:
        reports["report"] = _private(reports_task, results)(out, config, manifest)
    if cfg.outputs.nvivo or cfg.outputs.report:
        manifest = _private(manifest_task, results)(out, config, plan, reports, flow_run_id)
    return {"run_id": plan["run_id"], "manifest": manifest, "reports": reports, "summary": summary}


if __name__ == "__main__":
    import sys

    from pipeline.environment import configure_environment

    configure_environment()
    code_corpus(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
