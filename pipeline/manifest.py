"""Run planning and the run manifest: what went in, with which code and config, and what came out.

``run_id`` is deterministic: a short hash of the pipeline version, the resolved config, the codebook
and every input file's sha256. The same inputs and config give the same run id and the same outputs.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.codebook import load_codebook
from pipeline.config import RunConfig, config_sha256, project_root
from pipeline.ingest import discover, load_corpus_config
from pipeline.io import file_sha256, write_json
from pipeline.nlp import model_info

__all__ = ["RunPlan", "plan_run", "write_manifest"]

PACKAGES = ("spacy", "pandas", "pyarrow", "pydantic", "prefect", "scikit-learn", "numpy", "python-docx",
            "webvtt-py", "srt", "openpyxl", "charset-normalizer", "ftfy", "ruamel.yaml")


@dataclass
class RunPlan:
    """Everything known before a run starts."""

    run_id: str
    corpus_id: str
    corpus_root: str
    config_sha256: str
    codebook: dict[str, str]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = ""


def plan_run(corpus_root: Path, cfg: RunConfig, *, corpus_id: str) -> RunPlan:
    """Hash the inputs, config and codebook, and derive the run id."""
    corpus_root = Path(corpus_root)
    ingest_cfg = load_corpus_config(corpus_root, cfg.ingest)
    inputs = []
    for path in discover(corpus_root, ingest_cfg):
        inputs.append({"file": path.relative_to(corpus_root).as_posix(), "sha256": file_sha256(path),
                       "bytes": path.stat().st_size})
    codebook = load_codebook(cfg.codebook)
    cfg_sha = config_sha256(cfg)
    h = hashlib.sha256()
    for part in (__version__, cfg_sha, codebook.sha256(), corpus_id, *(i["sha256"] for i in inputs)):
        h.update(part.encode())
        h.update(b"\0")
    return RunPlan(
        run_id=h.hexdigest()[:12], corpus_id=corpus_id, corpus_root=str(corpus_root), config_sha256=cfg_sha,
        codebook={"id": codebook.id, "version": codebook.version, "sha256": codebook.sha256(),
                  "path": str(cfg.codebook)},
        inputs=inputs, started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git_sha() -> str:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return res.stdout.strip() if res.returncode == 0 else ""


def write_manifest(out_dir: Path, plan: RunPlan, cfg: RunConfig, stages: dict[str, Any], *,
                   flow_run_id: str = "") -> Path:
    """Write ``manifest.json``: ids, hashes, versions, config, inputs, counts and timings."""
    counts: dict[str, Any] = {}
    for name, report in stages.items():
        for key, value in report.get("counts", {}).items():
            counts[f"{name}.{key}"] = value
    manifest = {
        "run_id": plan.run_id,
        "prefect_flow_run_id": flow_run_id,
        "corpus_id": plan.corpus_id,
        "corpus_root": plan.corpus_root,
        "pipeline_version": __version__,
        "git_sha": _git_sha(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _package_versions(),
        "spacy_model": model_info(cfg.deidentify.spacy_model),
        "config_sha256": plan.config_sha256,
        "config": cfg.model_dump(mode="json"),
        "codebook": plan.codebook,
        "inputs": plan.inputs,
        "outputs": {k: v for r in stages.values() for k, v in r.get("paths", {}).items()
                    if "restricted" not in v},
        "counts": counts,
        "timings_seconds": {name: r.get("seconds") for name, r in stages.items()},
        "started_at": plan.started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return write_json(Path(out_dir) / "manifest.json", manifest)
