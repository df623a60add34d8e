"""Scheduled incremental runs on incoming feedback (flow "incoming-feedback").

A short script of task calls into ``pipeline.incoming``: one exactly-once pass over the inbox (new items
only, crash-safe, locked), the cumulative NVivo export, then the watch (prevalence, trend report, alerts).
Parameters are paths only (the ledger URL, which may hold a password, comes from the config's
``incoming.ledger_url`` or ``$ALLIANCE_LEDGER_URL``, never from a flow parameter). Task results are small
JSON dicts (counts, ids, paths) persisted as JSON (``PREFECT_RESULTS_LOCAL_STORAGE_PATH`` is pointed at
``STORE/.prefect-results`` as in flows/code_corpus.py); no participant text.
Tasks are never cached (every pass must look at the inbox again): their result keys are unique per task run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

from pipeline.config import load_run_config
from pipeline.incoming import passes

__all__ = ["incoming_feedback"]



def _run_key(context: Any, parameters: dict[str, Any]) -> str:
    """A key unique to the task run: results are persisted (as JSON, in the store) but never reused."""
    return f"incoming-{context.task.name}-{context.task_run.id}"


TASK_OPTIONS: dict[str, Any] = {"cache_key_fn": _run_key, "persist_result": True, "result_serializer": "json",
                                "retries": 0}


@task(name="ingest-pass", **TASK_OPTIONS)
def pass_task(inbox: str, store: str, config: str | None) -> dict[str, Any]:
    """Recover, scan, claim and process the new items in committed batches; returns the counts."""
    return passes.run_pass(Path(inbox), Path(store), load_run_config(config), export=False).summary()


@task(name="update-exports", **TASK_OPTIONS)
def export_task(store: str, config: str | None, run_id: str) -> dict[str, Any]:
    """Bring STORE/current and the cumulative NVivo export up to date (whole corpus; skipped if unchanged)."""
    return passes.export_store(Path(store), load_run_config(config))


@task(name="watch", **TASK_OPTIONS)
def watch_task(store: str, config: str | None, run_id: str) -> dict[str, Any] | None:
    """Prevalence per period, trend report and alert rules over the store (counts and segment ids only)."""
    return passes.watch_after_pass(Path(store), load_run_config(config), run_id)


@task(name="publish-artifacts", **TASK_OPTIONS)
def artifacts_task(summary: dict[str, Any], watched: dict[str, Any] | None) -> None:
    """A markdown summary of the pass and, when alerts fired, a table of them (counts only)."""
    lines = [f"# Incoming pass {summary['run_id']}", "", f"- new items: {summary['new']}",
             f"- unchanged items: {summary['unchanged']}", f"- quarantined items: {summary['quarantined']}",
             f"- segments coded: {summary['processed_segments']} in {summary['batches']} batch(es)"]
    if summary["recovered_runs"]:
        lines.append(f"- interrupted passes recovered: {len(summary['recovered_runs'])}")
    create_markdown_artifact("\n".join(lines), key="incoming-pass", description=f"pass {summary['run_id']}")
    if watched and watched.get("alerts"):
        from pipeline.incoming.watch import alert_artifact_rows

        create_table_artifact(alert_artifact_rows(watched), key="incoming-alerts",
                              description=f"alerts after pass {summary['run_id']}")


@flow(name="incoming-feedback", log_prints=False, persist_result=False)
def incoming_feedback(inbox: str, store: str, config: str | None = None) -> dict[str, Any]:
    """One pass over ``inbox`` into ``store``; returns the pass summary plus export and alert counts."""
    results = Path(store).resolve() / ".prefect-results"
    with temporary_settings(updates={PREFECT_RESULTS_LOCAL_STORAGE_PATH: results}):
        summary = pass_task(inbox, store, config)
        exported = export_task(store, config, summary["run_id"])
        watched = watch_task(store, config, summary["run_id"])
        artifacts_task(summary, watched)
    return {**summary, "exported": exported["exported"],
            "alerts": None if watched is None else len(watched["alerts"])}


if __name__ == "__main__":
    import sys

    from pipeline.environment import configure_environment

    configure_environment()
    incoming_feedback(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
