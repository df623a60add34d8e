"""Typed errors with codes that say where the problem is.

Every error the library raises on purpose is a :class:`PipelineError` subclass with a catalogue code
(``QA-Ennn``) and optional location fields (file, line, column, key path, table, ids). ``str(err)``
renders them in one line, for example::

    [QA-E012] configs/runs/x.yaml:14:7 coders[1].threshold: must be a float in [0, 1]. Got 1.5 instead.

Messages never contain participant text: they name files, lines, keys and ids only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ERRORS",
    "CodebookError",
    "CoderError",
    "ConfigError",
    "ExportError",
    "IngestError",
    "MissingDependencyError",
    "NotFittedError",
    "PipelineError",
    "SchemaError",
]


@dataclass(frozen=True)
class ErrorSpec:
    """One entry of the error catalogue."""

    code: str
    title: str


#: The catalogue. Codes are never reused; retired codes stay listed.
ERRORS: dict[str, ErrorSpec] = {
    spec.code: spec
    for spec in (
        ErrorSpec("QA-E001", "configuration file cannot be read or parsed"),
        ErrorSpec("QA-E002", "configuration value is invalid"),
        ErrorSpec("QA-E003", "codebook is invalid"),
        ErrorSpec("QA-E004", "codebook rule pattern is invalid"),
        ErrorSpec("QA-E010", "input file cannot be read"),
        ErrorSpec("QA-E011", "input file is empty or holds no text"),
        ErrorSpec("QA-E012", "input file encoding could not be decoded"),
        ErrorSpec("QA-E013", "input file is corrupt or not in the expected format"),
        ErrorSpec("QA-E014", "input file exceeds a size limit"),
        ErrorSpec("QA-E015", "input row is malformed"),
        ErrorSpec("QA-E016", "input file type is not supported"),
        ErrorSpec("QA-E017", "sidecar metadata is invalid"),
        ErrorSpec("QA-E018", "de-identification labels do not match the corpus text"),
        ErrorSpec("QA-E019", "identifier text may be printed only for a corpus declared fictional"),
        ErrorSpec("QA-E020", "table does not match its declared schema"),
        ErrorSpec("QA-E021", "segment text does not equal its slice of the document text"),
        ErrorSpec("QA-E030", "coder used before it was fitted"),
        ErrorSpec("QA-E031", "coder failed"),
        ErrorSpec("QA-E040", "export failed"),
        ErrorSpec("QA-E050", "a required package or model is not installed"),
        ErrorSpec("QA-E060", "another incoming pass holds the store lock"),
        ErrorSpec("QA-E061", "the incoming ledger database cannot be opened"),
        ErrorSpec("QA-E062", "an incoming item is not claimed by the committing pass"),
        ErrorSpec("QA-E070", "no Prefect API answers and a local Prefect server could not be started"),
    )
}


class PipelineError(Exception):
    """Base class of every error the pipeline raises on purpose.

    Args:
        code: Catalogue code, e.g. ``"QA-E002"``.
        message: What was expected, what was found, how to fix it. Never participant text.
        path: File the problem is in.
        line: 1-based line number in ``path``.
        column: 1-based column number in ``path``.
        key: Key path inside a config (``coders[1].threshold``) or column name.
        hint: How to fix it, appended to the message.
        **context: Further location fields (``table``, ``stage``, ``ids``, ``document_id``, ...).
    """

    default_code = "QA-E000"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
        hint: str | None = None,
        **context: object,
    ) -> None:
        self.code = code or self.default_code
        if self.code not in ERRORS:
            raise KeyError(f"Unknown error code {self.code!r}; add it to pipeline.errors.ERRORS.")
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column
        self.key = key
        self.hint = hint
        self.context = context
        super().__init__(str(self))

    @property
    def location(self) -> str:
        """``path:line:column`` (the parts that are known)."""
        if not self.path:
            return ""
        loc = self.path
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        return loc

    def __str__(self) -> str:
        parts = [f"[{self.code}]"]
        if self.location:
            parts.append(self.location)
        if self.key:
            parts.append(f"{self.key}:")
        parts.append(self.message)
        text = " ".join(parts)
        if self.hint:
            text += f" {self.hint}"
        return text

    def to_record(self) -> dict[str, object]:
        """A flat dict for quarantine lists and JSON output."""
        return {
            "code": self.code,
            "file": self.path or "",
            "line": self.line,
            "key": self.key or "",
            "error": self.message,
        }


class ConfigError(PipelineError, ValueError):
    """A run config is unreadable or invalid."""

    default_code = "QA-E002"


class CodebookError(ConfigError):
    """A codebook is invalid (ids, parents, fields, patterns)."""

    default_code = "QA-E003"


class IngestError(PipelineError, ValueError):
    """An input file (or one row of it) cannot be read; carries ``path`` and ``line``."""

    default_code = "QA-E013"


class SchemaError(PipelineError, ValueError):
    """A table violates its declared contract; carries ``table``, ``column``, ``stage``, ``ids``."""

    default_code = "QA-E020"


class NotFittedError(PipelineError, ValueError):
    """A coder's ``predict`` was called before ``fit``."""

    default_code = "QA-E030"


class CoderError(PipelineError):
    """A coder failed on its input."""

    default_code = "QA-E031"


class ExportError(PipelineError):
    """An export could not be written (bad offsets, schema violation, ...)."""

    default_code = "QA-E040"


class MissingDependencyError(PipelineError, ImportError):
    """A package or model is missing; the message gives the install command."""

    default_code = "QA-E050"
