"""Cumulative exports of a store: a run-folder-shaped view (``STORE/current/``) and the NVivo files.

Each committed batch keeps its DOCUMENT, SEGMENT and ASSIGNMENT tables under ``STORE/batches/<run>-b<k>/``.
:func:`update_exports` concatenates the committed batches into ``STORE/current/{documents,segments,codes}
.parquet`` plus a ``manifest.json``, then runs :func:`pipeline.export.export_run` on that folder, writing
``STORE/exports/project.qdpx``, ``codebook.qdc`` and ``nvivo_dataset.xlsx``. This step is whole-corpus by
nature (the REFI project holds every source); it is skipped when nothing was committed since the last
export (``STORE/exports/.state.json``) and when ``outputs.nvivo`` is false. Every file is written
atomically, so a kill leaves the previous export intact and the next pass redoes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import __version__
from pipeline.codebook import Codebook, load_codebook
from pipeline.config import RunConfig
from pipeline.incoming.ledger import Ledger
from pipeline.io import ensure_private_dir, read_table, write_json, write_table
from pipeline.schema import ASSIGNMENT, DOCUMENT, SEGMENT

__all__ = ["update_exports"]

logger = logging.getLogger(__name__)


def _state(batches: list[str], cfg: RunConfig) -> str:
    h = hashlib.sha256(json.dumps({"batches": batches, "nvivo_min_score": cfg.outputs.nvivo_min_score,
                                   "version": __version__}, sort_keys=True).encode())
    return h.hexdigest()


def update_exports(store: Path, cfg: RunConfig, ledger: Ledger, *, corpus_id: str = "incoming",
                   force: bool = False, codebook: Callable[[], Codebook] | None = None) -> dict[str, Any]:
    """Rebuild ``STORE/current/`` and ``STORE/exports/`` from the committed batches when they changed.

    Args:
        store: The store folder.
        cfg: Run config (``outputs.nvivo``, ``outputs.nvivo_min_score``, the codebook).
        ledger: The store's ledger (which batches are committed).
        corpus_id: Project name in the REFI export.
        force: Rebuild even when nothing changed.
        codebook: Returns the loaded codebook (avoids parsing it again).

    Returns:
        ``{"exported": bool, "documents": n, "segments": n, "seconds": s, "paths": {...}}`` (no text).
    """
    start = time.perf_counter()
    if not cfg.outputs.nvivo:
        return {"exported": False, "documents": None, "segments": None, "seconds": 0.0, "paths": {}}
    store = Path(store)
    batches = sorted(p["rel"] for p in ledger.parts("batch"))
    state_path = store / "exports" / ".state.json"
    state = _state(batches, cfg)
    if not force and state_path.is_file() and json.loads(state_path.read_text())["state"] == state:
        return {"exported": False, "documents": None, "segments": None,
                "seconds": round(time.perf_counter() - start, 3), "paths": {}}
    current = ensure_private_dir(store / "current")
    frames: dict[str, list[pd.DataFrame]] = {"documents": [], "segments": [], "codes": []}
    tables = {"documents": DOCUMENT, "segments": SEGMENT, "codes": ASSIGNMENT}
    for rel in batches:
        folder = store / rel
        if not (folder / "segments.parquet").is_file():
            continue  # a batch whose items gave no documents
        for key in frames:
            frames[key].append(read_table(folder / f"{key}.parquet"))
    for key, parts in frames.items():
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=tables[key].column_names)
        write_table(frame, current / f"{key}.parquet", tables[key] if parts else None, stage="incoming-export")
    book = codebook() if codebook is not None else load_codebook(cfg.codebook)
    write_json(current / "manifest.json", {
        "run_id": f"incoming-{state[:12]}", "corpus_id": corpus_id, "pipeline_version": __version__,
        "codebook": {"id": book.id, "version": book.version, "sha256": book.sha256(),
                     "path": str(Path(cfg.codebook).resolve())},
        "config": cfg.model_dump(mode="json"), "batches": batches,
    })
    paths: dict[str, str] = {}
    if frames["documents"]:
        from pipeline.export import export_run

        written = export_run(current, to="all", out=ensure_private_dir(store / "exports"),
                             min_score=cfg.outputs.nvivo_min_score)
        paths = {p.name: str(p) for p in written}
    write_json(state_path, {"state": state})
    n_docs = sum(len(f) for f in frames["documents"])
    n_segs = sum(len(f) for f in frames["segments"])
    logger.info("exports updated: %d document(s), %d segment(s)", n_docs, n_segs)
    return {"exported": True, "documents": n_docs, "segments": n_segs,
            "seconds": round(time.perf_counter() - start, 3), "paths": paths}
