"""The codebook: parents, codes, definitions, criteria, examples and rule patterns.

A codebook is configuration, validated like a run config (``extra="forbid"``, positions in errors).
See ``configs/codebooks/working_alliance.v1.yaml`` for the project's own.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.errors import CodebookError
from pipeline.yamlio import load_yaml, node_position, validate_yaml_model

__all__ = ["Code", "Codebook", "Parent", "Pattern", "load_codebook"]

_CODE_ID = r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)*$"
_COLOUR = r"^#[0-9A-Fa-f]{6}$"
Speaker = Literal["client", "therapist", "interviewer"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pattern(_Strict):
    """A rule pattern: a phrase (PhraseMatcher on lower case) or a spaCy Matcher token pattern."""

    phrase: str | None = None
    tokens: list[dict[str, Any]] | None = None
    weight: float = Field(1.0, ge=0.0, le=1.0)
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")

    @model_validator(mode="after")
    def _one_kind(self) -> Pattern:
        if (self.phrase is None) == (self.tokens is None):
            raise ValueError("a pattern needs exactly one of 'phrase' or 'tokens'")
        if self.phrase is not None and not self.phrase.strip():
            raise ValueError("'phrase' must not be empty")
        if self.tokens is not None and not self.tokens:
            raise ValueError("'tokens' must hold at least one token dict")
        return self

    def label(self, index: int) -> str:
        """Evidence label: the pattern id, or ``phrase:<text>`` / ``tokens#<index>``."""
        if self.id:
            return self.id
        return f"phrase:{self.phrase}" if self.phrase is not None else f"tokens#{index}"


class Parent(_Strict):
    """A parent theme (an NVivo parent node); not assigned directly."""

    id: str = Field(pattern=_CODE_ID)
    name: str = Field(min_length=1)
    colour: str = Field("#999999", pattern=_COLOUR)
    description: str = ""


class Code(_Strict):
    """An assignable code."""

    id: str = Field(pattern=_CODE_ID)
    name: str = Field(min_length=1)
    parent: str | None = None
    colour: str = Field("#999999", pattern=_COLOUR)
    definition: str = Field(min_length=1)
    when_to_use: list[str] = Field(default_factory=list)
    when_not_to_use: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)
    counter_examples: list[str] = Field(default_factory=list)
    speakers: list[Speaker] = Field(default_factory=lambda: ["client", "therapist"])
    modes: list[Literal["reported", "enacted"]] = Field(default_factory=lambda: ["reported", "enacted"])
    valence: list[Literal["positive", "negative", "mixed"]] = Field(default_factory=list)
    patterns: list[Pattern] = Field(default_factory=list)

    @field_validator("speakers")
    @classmethod
    def _speakers_not_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("'speakers' must name at least one of client, therapist, interviewer")
        return v

    def description_text(self) -> str:
        """Definition plus when to use / not use, as one text (for NVivo descriptions)."""
        parts = [self.definition.strip()]
        if self.when_to_use:
            parts.append("Use when: " + " | ".join(self.when_to_use))
        if self.when_not_to_use:
            parts.append("Do not use when: " + " | ".join(self.when_not_to_use))
        return "\n".join(parts)


class Codebook(_Strict):
    """A validated codebook."""

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    title: str = ""
    description: str = ""
    parents: list[Parent] = Field(default_factory=list)
    codes: list[Code] = Field(min_length=1)

    @model_validator(mode="after")
    def _ids(self) -> Codebook:
        seen: set[str] = set()
        for item in [*self.parents, *self.codes]:
            if item.id in seen:
                raise ValueError(f"id {item.id!r} is used twice; ids must be unique across parents and codes")
            seen.add(item.id)
        parent_ids = {p.id for p in self.parents}
        for code in self.codes:
            if code.parent is not None and code.parent not in parent_ids:
                raise ValueError(f"code {code.id!r} names parent {code.parent!r}, which is not in 'parents'")
        return self

    @property
    def code_ids(self) -> list[str]:
        """Assignable code ids in file order."""
        return [c.id for c in self.codes]

    def code(self, code_id: str) -> Code:
        """Return one code by id."""
        for c in self.codes:
            if c.id == code_id:
                return c
        raise KeyError(code_id)

    def sha256(self) -> str:
        """Hash of the codebook's content (for manifests and cache keys)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def load_codebook(path: str | Path) -> Codebook:
    """Load and validate a codebook YAML file.

    Raises:
        CodebookError: with ``file:line:column key`` for every problem, including invalid rule patterns.
    """
    path = Path(path)
    data = load_yaml(path, error_cls=CodebookError)
    codebook = validate_yaml_model(data, Codebook, path=path, error_cls=CodebookError)
    _check_patterns(codebook, data, path)
    return codebook


def _check_patterns(codebook: Codebook, data: Any, path: Path) -> None:
    """Validate token patterns with spaCy's own pattern schema (no model needed)."""
    from spacy.schemas import validate_token_pattern

    for ci, code in enumerate(codebook.codes):
        for pi, pattern in enumerate(code.patterns):
            if pattern.tokens is None:
                continue
            problems = validate_token_pattern(pattern.tokens)
            for tok in pattern.tokens:
                for value in tok.values():
                    if isinstance(value, dict) and "REGEX" in value:
                        try:
                            re.compile(value["REGEX"])
                        except re.error as e:
                            problems.append(f"REGEX does not compile: {e}")
            if problems:
                loc = ("codes", ci, "patterns", pi, "tokens")
                line, col = node_position(data, loc)
                raise CodebookError(
                    f"invalid spaCy token pattern: {problems[0]}.", code="QA-E004", path=str(path),
                    line=line, column=col, key=f"codes[{ci}].patterns[{pi}].tokens",
                )
