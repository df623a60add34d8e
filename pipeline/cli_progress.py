"""Terminal progress for ``alliance run``: one step per flow stage, driven by Prefect's task-run log records.

The flow runs in-process; every task run logs ``Finished in state ...`` on the ``prefect.task_runs``
logger with its ``task_run_name`` (``ingest-deidentify-4da``). A logging handler turns those records into
progress steps with the stage's plain name. Nothing here reads or shows participant text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["STAGE_LABELS", "StageProgressHandler", "stage_progress"]

#: Task name -> what the user sees.
STAGE_LABELS = {
    "plan-run": "hashing inputs",
    "ingest-prepare": "reading the corpus",
    "ner-batch": "finding names (batches)",
    "ingest-deidentify": "reading and de-identifying",
    "segment-batch": "segmenting (batches)",
    "code-batch": "coding (batches)",
    "segment": "segmenting",
    "code": "coding",
    "combine": "combining codes",
    "export-tables": "writing tables",
    "publish-artifacts": "publishing Prefect artifacts",
    "write-manifest": "writing the manifest",
    "export-nvivo": "exporting for NVivo",
    "write-reports": "writing the report and viewer",
}
_SUFFIX = re.compile(r"-[0-9a-f]{3}$")


def stage_of(task_run_name: str) -> str:
    """``ingest-deidentify-4da`` -> ``ingest-deidentify``."""
    return _SUFFIX.sub("", task_run_name)


class StageProgressHandler(logging.Handler):
    """Advances a rich progress task by one step per finished task run, showing the stage's label."""

    def __init__(self, progress: Any, task_id: Any) -> None:
        super().__init__(level=logging.INFO)
        self.progress = progress
        self.task_id = task_id
        self.done: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Count ``Finished in state`` records of task runs."""
        name = getattr(record, "task_run_name", None)
        if not name or "Finished in state" not in record.getMessage():
            return
        stage = stage_of(str(name))
        if stage.endswith("-batch"):  # one of many batch tasks: shown, not counted as a stage
            self.progress.update(self.task_id, description=STAGE_LABELS.get(stage, stage))
            return
        self.done.append(stage)
        failed = "Completed" not in record.getMessage() and "Cached" not in record.getMessage()
        label = STAGE_LABELS.get(stage, stage) + (" (failed)" if failed else "")
        self.progress.update(self.task_id, advance=1, description=label)


@contextmanager
def stage_progress(total: int, *, enabled: bool = True) -> Iterator[StageProgressHandler | None]:
    """Show a progress bar over ``total`` stages while the block runs (only on a terminal)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task_id = progress.add_task("starting Prefect", total=total)
        handler = StageProgressHandler(progress, task_id)
        logger = logging.getLogger("prefect.task_runs")
        logger.addHandler(handler)
        quietened = _quieten_console_handlers()
        try:
            yield handler
        finally:
            logger.removeHandler(handler)
            for console_handler, quiet in quietened:
                console_handler.removeFilter(quiet)
            progress.update(task_id, description="done")


class _QuietPrefectInfo(logging.Filter):
    """Drop Prefect's INFO lines (the bar shows them); warnings and errors still print."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith("prefect")


def _quieten_console_handlers() -> list[tuple[logging.Handler, logging.Filter]]:
    """Filter Prefect's console output while the bar is shown (Prefect's logging is set up first)."""
    from prefect.logging.configuration import setup_logging

    setup_logging()
    changed = []
    for h in logging.getLogger().handlers:
        if isinstance(h, logging.StreamHandler):
            quiet = _QuietPrefectInfo()
            h.addFilter(quiet)
            changed.append((h, quiet))
    return changed
