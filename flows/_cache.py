"""Cache keys for thin tasks: content hashes of inputs and outputs, config hash and the pipeline version.

Prefect's default key covers only a task's own source lines, which do not change when ``pipeline/``
does; a path-only key goes stale when a file's bytes change. These keys hash what the task reads and
the outputs it finds on disk: a cached result is only reused when its outputs are still exactly the
files it recorded. When an output is missing the flow also asks Prefect to refresh the cache
(:func:`needs_refresh`), so deleted outputs are always rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.config import config_sha256, load_run_config
from pipeline.io import file_sha256
from pipeline.runners import load_codebook_once

__all__ = ["artifact_key", "needs_refresh"]


def _sha_or_missing(path: str | Path) -> str:
    p = Path(path)
    return file_sha256(p) if p.is_file() else "missing"


def artifact_key(context: Any, parameters: dict[str, Any]) -> str:
    """Key = task name + pipeline version + config hash + input file hashes + output existence."""
    h = hashlib.sha256()
    h.update(context.task.name.encode())
    h.update(__version__.encode())
    cfg = load_run_config(parameters.get("config"))
    h.update(config_sha256(cfg).encode())
    h.update(load_codebook_once(cfg.codebook).sha256().encode())
    for name in sorted(parameters):
        value = parameters[name]
        if name in ("plan", "reports", "report"):
            h.update(json.dumps(value, sort_keys=True, default=str).encode())
        elif name == "out":
            h.update(str(Path(value).resolve()).encode())
        elif isinstance(value, (str, int, float)):
            h.update(f"{name}={value}".encode())
    for path in parameters.get("reads", []):
        h.update(_sha_or_missing(path).encode())
    for path in parameters.get("writes", []):
        h.update(_sha_or_missing(path).encode())
    return h.hexdigest()


def needs_refresh(writes: list[str]) -> bool:
    """True when any output is missing: the task must run even if a cache record exists."""
    return not all(Path(p).is_file() for p in writes)
