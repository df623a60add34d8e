"""Run configuration: the single source of truth for a run, validated with positions in errors.

Every buildable part is named by a versioned registry name (``use: coder.rules.v1``). Models forbid
unknown keys at every level, so a typo in a nested key is an error, not a silent default.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.errors import ConfigError
from pipeline.incoming.config import IncomingConfig
from pipeline.ingest.settings import IngestConfig
from pipeline.runners import RunnerConfig
from pipeline.topics.config import TopicsConfig
from pipeline.yamlio import load_yaml, validate_yaml_model

__all__ = [
    "CoderSpec",
    "CombineConfig",
    "DeidentifyConfig",
    "OutputConfig",
    "RunConfig",
    "SegmentConfig",
    "config_sha256",
    "default_config_path",
    "load_run_config",
    "project_root",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeidentifyConfig(_Strict):
    """De-identification settings (see ``pipeline.deidentify``)."""

    spacy_model: str = Field("en_core_web_sm", description="installed spaCy pipeline used for NER")
    ner_labels: list[str] = Field(
        default_factory=lambda: ["PERSON", "GPE", "LOC", "FAC", "ORG"],
        description="spaCy entity labels that are replaced",
    )
    proper_nouns: bool = Field(
        True, description="also replace mid-sentence proper nouns (tag NNP) that NER missed (recall first)"
    )
    first_names: bool = Field(
        True,
        description="also replace person first names from a gazetteer (US Census 1990 lists) in any case "
        "(\"i told carla\"), unless they are English dictionary words (\"will\", \"grace\")",
    )
    remember_names: bool = Field(
        False,
        description="also replace names remembered in the pseudonym map from earlier runs (better recall for "
        "incremental feeds; outputs then depend on what earlier runs saw)",
    )
    extra_names: list[str] = Field(default_factory=list, description="names always replaced (deny-list)")
    keep_terms: list[str] = Field(default_factory=list, description="terms never replaced (allow-list)")
    date_precision: Literal["day", "month", "year", "none"] = Field(
        "month", description="precision kept for metadata dates; 'year' meets HIPAA Safe Harbor"
    )
    pseudonym_map: Path | None = Field(
        None, description="restricted file with the original->pseudonym map; default: outside the outputs"
    )
    batch_size: int = Field(64, ge=1, le=10_000)


class SegmentConfig(_Strict):
    """Segmentation settings (see ``pipeline.segment``)."""

    unit: Literal["sentence", "turn"] = "sentence"
    min_chars: int = Field(12, ge=0, le=500, description="shorter sentences join the previous one")
    max_chars: int = Field(2000, ge=50, le=100_000, description="longer sentences are split at whitespace")
    batch_size: int = Field(128, ge=1, le=10_000)


class CoderSpec(_Strict):
    """One coder: a registry name and its parameters."""

    use: str = Field(pattern=r"^coder\.[a-z_]+\.v\d+$")
    params: dict[str, Any] = Field(default_factory=dict)
    model: Path | None = Field(None, description="a trained model folder (alliance train) to load instead of fitting")


class CombineConfig(_Strict):
    """How several coders' assignments merge into final codes (``coder.combined.v1``).

    See ``pipeline.coders.combine`` for the rules.
    """

    rules: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="code id, dotted prefix or '*' -> {method: max|mean|vote|precedence, coders, threshold, ...}",
    )
    review_threshold: float = Field(0.5, ge=0.0, le=1.0, description="assigned scores below this need review")


class OutputConfig(_Strict):
    """What the run writes besides the tables."""

    csv_bom: bool = Field(False, description="write coded_segments.csv with a UTF-8 BOM for Excel")
    min_score: float = Field(0.0, ge=0.0, le=1.0, description="lowest score written to coded_segments.csv")
    nvivo: bool = Field(True, description="write project.qdpx, codebook.qdc and nvivo_dataset.xlsx at the end")
    report: bool = Field(True, description="write report.html and viewer.html at the end")
    gold: Path | None = Field(None, description="human-coded CSV of this corpus: adds an agreement table to the report")
    nvivo_min_score: float = Field(0.0, ge=0.0, le=1.0, description="lowest score exported to NVivo")


class RunConfig(_Strict):
    """A whole run."""

    version: Literal[1] = 1
    corpus_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    codebook: Path = Path("configs/codebooks/working_alliance.v1.yaml")
    seed: int = Field(0, ge=0)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    deidentify: DeidentifyConfig = Field(default_factory=DeidentifyConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    coders: list[CoderSpec] = Field(default_factory=lambda: [CoderSpec(use="coder.rules.v1")], min_length=1)
    combine: CombineConfig = Field(default_factory=CombineConfig)
    outputs: OutputConfig = Field(default_factory=OutputConfig)
    incoming: IncomingConfig = Field(default_factory=IncomingConfig)
    topics: TopicsConfig = Field(default_factory=TopicsConfig)
    runner: RunnerConfig = Field(
        default_factory=RunnerConfig, description="where batch tasks run (local or Dask); never changes outputs"
    )

    @field_validator("coders")
    @classmethod
    def _known_coders(cls, v: list[CoderSpec]) -> list[CoderSpec]:
        from pipeline.registry import registry_names

        known = registry_names("coder.")
        for spec in v:
            if spec.use not in known:
                raise ValueError(f"unknown coder {spec.use!r}; registered coders are {sorted(known)}")
        return v


def project_root() -> Path:
    """The repository root (the folder holding ``configs/``), for the bundled defaults."""
    return Path(__file__).resolve().parent.parent


def default_config_path() -> Path:
    """The bundled default run config."""
    return project_root() / "configs" / "runs" / "default.yaml"


def load_run_config(path: str | Path | None = None) -> RunConfig:
    """Load and validate a run config; relative ``codebook`` paths resolve against the project root.

    Raises:
        ConfigError: with ``file:line:column key`` for each problem.
    """
    path = Path(path) if path is not None else default_config_path()
    data = load_yaml(path)
    cfg = validate_yaml_model(data, RunConfig, path=path)
    return resolve_paths(cfg, base=path.parent)


def _resolve(path: Path, base: Path) -> Path | None:
    if path.is_absolute():
        return path
    for root in (base, Path.cwd(), project_root()):
        try:
            candidate = (root / path).resolve()
            if candidate.exists():
                return candidate
        except OSError:  # name too long, loops, unreadable parents: treated as "not found here"
            continue
    return None


def resolve_paths(cfg: RunConfig, *, base: Path) -> RunConfig:
    """Resolve relative codebook and model paths: next to the config, the working folder, the project root."""
    coders = []
    for i, spec in enumerate(cfg.coders):
        if spec.model is not None:
            found = _resolve(spec.model, base)
            if found is None:
                raise ConfigError(f"model folder {str(spec.model)!r} not found.", key=f"coders[{i}].model")
            spec = spec.model_copy(update={"model": found})
        coders.append(spec)
    cfg = cfg.model_copy(update={"coders": coders})
    if cfg.outputs.gold is not None:
        gold = _resolve(cfg.outputs.gold, base)
        if gold is None:
            raise ConfigError(f"gold file {str(cfg.outputs.gold)!r} not found.", key="outputs.gold")
        cfg = cfg.model_copy(update={"outputs": cfg.outputs.model_copy(update={"gold": gold})})
    found = _resolve(cfg.codebook, base)
    if found is not None:
        return cfg.model_copy(update={"codebook": found})
    raise ConfigError(
        f"codebook file {str(cfg.codebook)!r} not found next to the config or in the project root.",
        key="codebook",
    )


def config_sha256(cfg: RunConfig) -> str:
    """Hash of the resolved config (paths as given), for manifests and cache keys.

    The ``runner`` section is left out: where tasks run never changes the outputs.
    """
    blob = json.dumps(cfg.model_dump(mode="json", exclude={"runner"}), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
