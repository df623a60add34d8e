"""The main flow: raw transcripts and feedback -> de-identified, segmented, coded tables.

A short script of task calls into ``pipeline.stages``. Tasks take and return paths and small JSON
reports (counts, timings), never participant text; flow parameters are paths only. Results are
persisted as JSON inside the run folder (no pickles); cache keys hash the task's inputs, the config
and the pipeline version (see ``flows._cache``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import get_run_context
from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

from flows._cache import artifact_key, needs_refresh
from pipeline import stages
from pipeline.config import load_run_config
from pipeline.manifest import plan_run, write_manifest

__all__ = ["code_corpus"]

TASK_OPTIONS: dict[str, Any] = {"cache_key_fn": artifact_key, "result_serializer": "json", "retries": 0}


@task(name="plan-run", result_serializer="json")
def plan_task(corpus: str, config: str | None, corpus_id: str) -> dict[str, Any]:
    """Hash inputs, config and codebook; derive the run id."""
    return vars(plan_run(Path(corpus), load_run_config(config), corpus_id=corpus_id))


@task(name="ingest-deidentify", **TASK_OPTIONS)
def ingest_task(corpus: str, out: str, config: str | None, plan: dict[str, Any],
                writes: list[str]) -> dict[str, Any]:
    """Ingest every file and de-identify before anything is written."""
    return stages.ingest_and_deidentify(Path(corpus), load_run_config(config), Path(out),
                                        corpus_id=plan["corpus_id"])


@task(name="segment", **TASK_OPTIONS)
def segment_task(out: str, config: str | None, reads: list[str], writes: list[str]) -> dict[str, Any]:
    """Split speaker turns into sentence segments."""
    return stages.segment_documents(load_run_config(config), Path(out))


@task(name="code", **TASK_OPTIONS)
def code_task(out: str, config: str | None, coder_index: int, run_id: str, reads: list[str],
              writes: list[str]) -> dict[str, Any]:
    """Apply one configured coder."""
    return stages.code_segments(load_run_config(config), Path(out), coder_index, run_id=run_id)


@task(name="combine", **TASK_OPTIONS)
def combine_task(out: str, config: str | None, reports: list[dict[str, Any]], run_id: str, reads: list[str],
                 writes: list[str]) -> dict[str, Any]:
    """Merge the coders' assignments into the final code table."""
    return stages.combine_codes(reports, Path(out), load_run_config(config), run_id=run_id)


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
    results = Path(out).resolve() / ".prefect-results"
    with temporary_settings(updates={PREFECT_RESULTS_LOCAL_STORAGE_PATH: results}):
        return _code_corpus(corpus, out, config, corpus_id)


def _fresh(task_fn: Any, writes: list[str]) -> Any:
    """The task, told to ignore its cache when one of its outputs is missing."""
    return task_fn.with_options(refresh_cache=True) if needs_refresh(writes) else task_fn


def _code_corpus(corpus: str, out: str, config: str | None, corpus_id: str | None) -> dict[str, Any]:
    paths = {k: str(v) for k, v in stages.run_paths(Path(out)).items()}
    corpus_id = corpus_id or load_run_config(config).corpus_id or Path(corpus).resolve().name
    plan = plan_task(corpus, config, corpus_id)
    reports: dict[str, Any] = {}
    writes = [paths["documents"], paths["turns"]]
    reports["ingest"] = _fresh(ingest_task, writes)(corpus, out, config, plan, writes=writes)
    writes = [paths["segments"]]
    reports["segment"] = _fresh(segment_task, writes)(out, config, reads=[paths["turns"]], writes=writes)
    coder_reports = []
    for i, spec in enumerate(load_run_config(config).coders):
        writes = [f"{out}/interim/codes.{spec.use}.parquet"]
        coder_reports.append(_fresh(code_task, writes)(out, config, i, plan["run_id"], reads=[paths["segments"]],
                                                       writes=writes))
    reports.update({f"code.{r['counts']['coder']}": r for r in coder_reports})
    reports["combine"] = _fresh(combine_task, [paths["codes"]])(
        out, config, coder_reports, plan["run_id"], reads=[r["paths"]["codes"] for r in coder_reports],
        writes=[paths["codes"]])
    reports["export"] = _fresh(export_task, [paths["coded_segments"]])(
        out, config, reads=[paths["codes"], paths["segments"]], writes=[paths["coded_segments"]])
    summary = artifacts_task(out, config, plan["run_id"])
    flow_run_id = str(get_run_context().flow_run.id)
    manifest = manifest_task(out, config, plan, reports, flow_run_id)
    cfg = load_run_config(config)
    if cfg.outputs.nvivo:
        reports["export_nvivo"] = export_task_nvivo(out, config, manifest)
    if cfg.outputs.report:
        reports["report"] = reports_task(out, config, manifest)
    if cfg.outputs.nvivo or cfg.outputs.report:
        manifest = manifest_task(out, config, plan, reports, flow_run_id)
    return {"run_id": plan["run_id"], "manifest": manifest, "reports": reports, "summary": summary}


if __name__ == "__main__":
    import sys

    from pipeline.environment import configure_environment

    configure_environment()
    code_corpus(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
