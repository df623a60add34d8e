"""Where a run's per-batch work executes: in this process (``local``) or on a Dask cluster (``dask``).

The runner never changes what a run writes. Both runners execute the same per-batch tasks over the same
batches of documents (NER, segmentation, rules coding), each reading its slice from files in the run
folder and writing ``interim/<stage>/part-NNNNN.parquet``; a gather step joins the parts in batch order.
So a Dask run and a local run of the same inputs and config give byte-identical outputs, and the runner
section is left out of the config hash (run id and cache keys).

``build_task_runner`` is the only place that touches Prefect; it imports it lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["RunnerConfig", "batch_bounds", "build_task_runner", "load_codebook_once", "part_path", "with_overrides"]

#: Parts are numbered with this many digits: ``part-00012.parquet``.
PART_DIGITS = 5
#: Codebooks validated in this process, by (resolved path, file sha256).
_CODEBOOKS: dict[tuple[str, str], Any] = {}


class RunnerConfig(BaseModel):
    """The ``runner:`` section of a run config.

    Only ``batch_documents`` shapes the work (how many documents one batch task handles); no field
    changes the outputs.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "dask"] = Field("local", description="local: this process; dask: a Dask cluster")
    address: str | None = Field(
        None, description="scheduler of an existing Dask cluster (tcp://host:8786); none: a temporary LocalCluster"
    )
    workers: int = Field(2, ge=1, le=1024, description="worker processes of the temporary LocalCluster")
    threads_per_worker: int = Field(1, ge=1, le=64, description="threads per worker of the temporary LocalCluster")
    local_threads: int = Field(
        1, ge=1, le=64, description="threads of the local runner (1: batches run one after the other)"
    )
    batch_documents: int = Field(200, ge=1, le=1_000_000, description="documents per batch task")

    @field_validator("address")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError(f"a Dask scheduler address looks like tcp://host:8786; got {v!r}")
        return v


def with_overrides(cfg: RunnerConfig, *, kind: str | None = None, address: str | None = None,
                   workers: int | None = None) -> RunnerConfig:
    """``cfg`` with the command line's ``--runner``, ``--dask-address`` and ``--workers`` applied.

    An address implies ``kind="dask"``.
    """
    update: dict[str, Any] = {}
    if kind is not None:
        update["kind"] = kind
    if address is not None:
        update["address"] = address
        update.setdefault("kind", "dask")
    if workers is not None:
        update["workers"] = workers
    return RunnerConfig.model_validate({**cfg.model_dump(), **update})


def batch_bounds(n_items: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n_items)`` in order, ``size`` items each (the last may be short).

    Zero items give one empty batch, so every stage still writes one (empty) part.
    """
    if size < 1:
        raise ValueError(f"The 'size' parameter of batch_bounds must be >= 1. Got {size!r} instead.")
    if n_items <= 0:
        return [(0, 0)]
    return [(i, min(i + size, n_items)) for i in range(0, n_items, size)]


def part_path(folder: Path, index: int, suffix: str = ".parquet") -> Path:
    """``folder/part-NNNNN.parquet``: the output of batch ``index``."""
    return Path(folder) / f"part-{index:0{PART_DIGITS}d}{suffix}"


def build_task_runner(cfg: RunnerConfig) -> Any:
    """A Prefect task runner for ``cfg``.

    ``local`` gives a ``ThreadPoolTaskRunner`` with ``local_threads`` threads; ``dask`` gives a
    ``DaskTaskRunner`` on the scheduler at ``address``, or on a temporary ``LocalCluster`` of ``workers``
    processes (``threads_per_worker`` threads each, no dashboard port) that lives as long as the flow run.
    """
    if cfg.kind == "local":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=cfg.local_threads)
    from prefect_dask import DaskTaskRunner

    if cfg.address:
        return DaskTaskRunner(address=cfg.address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.workers, "threads_per_worker": cfg.threads_per_worker,
                                          "processes": True, "dashboard_address": ":0"})


def load_codebook_once(path: str | Path) -> Any:
    """``pipeline.codebook.load_codebook``, validated once per process for each file content.

    Validating the codebook's spaCy patterns takes seconds; every batch task and every cache key needs the
    codebook, so a worker process validates each codebook file once. Same bytes give the same codebook; the
    returned object is shared, so treat it as read-only.
    """
    from pipeline.codebook import load_codebook
    from pipeline.io import file_sha256

    p = Path(path)
    if not p.is_file():
        return load_codebook(p)  # raises the usual error
    key = (str(p.resolve()), file_sha256(p))
    if key not in _CODEBOOKS:
        _CODEBOOKS[key] = load_codebook(p)
    return _CODEBOOKS[key]
