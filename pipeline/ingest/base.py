"""Data types of the ingest stage: raw turns, raw documents, problems, and a reader's context.

A *reader* turns the bytes of one file into :class:`RawDocument` objects. Readers are plain functions
``(ReadContext) -> IngestResult`` registered by file extension in :data:`pipeline.ingest.core.READERS`;
they raise :class:`~pipeline.errors.IngestError` for input that cannot be used at all and return
:class:`Problem` records for input they repaired or partly skipped.

Nothing here holds participant text in a message: problems name files, lines and keys only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.ingest.settings import IngestConfig
from pipeline.schema import QUARANTINE, SOURCE_TYPES, SPEAKER_ROLES

__all__ = [
    "ROLES",
    "SOURCE_TYPES",
    "IngestResult",
    "Problem",
    "RawDocument",
    "RawTurn",
    "ReadContext",
    "Reader",
    "sha256_hex",
]

ROLES = SPEAKER_ROLES
ACTIONS = next(c.choices for c in QUARANTINE.columns if c.name == "action")


def sha256_hex(data: bytes) -> str:
    """Return the sha256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class RawTurn:
    """One speaker turn as read from the file.

    Attributes:
        speaker_label: The label as written (may be a real name: PII, never logged); ``None`` if unlabelled.
        role: ``client`` | ``therapist`` | ``interviewer`` | ``unknown``.
        text: The utterance only (no label, no timestamps); merged cues are joined by one space.
        source_line: 1-based line in the raw file where the turn starts (docx: block number).
        start_time: ``HH:MM:SS.mmm`` media time of the turn when the file gives one, else ``None``.
    """

    speaker_label: str | None
    role: str
    text: str
    source_line: int | None
    start_time: str | None = None


@dataclass
class RawDocument:
    """One document: a whole transcript file, or one row of a feedback spreadsheet.

    Attributes:
        source_path: Posix path relative to the corpus root.
        record_key: ``""`` for whole files; for spreadsheet rows the response id (or ``row-<n>``).
        source_sha256: sha256 of the file's raw bytes, or of the row's canonical JSON.
        source_type: ``interview`` | ``session`` | ``feedback``.
        source_format: ``txt`` | ``docx`` | ``vtt`` | ``srt`` | ``csv`` | ``xlsx``.
        encoding: Encoding the bytes were decoded with (``docx``/``xlsx`` for zip formats).
        metadata: ``case_id``, ``session`` (int), ``date`` (ISO), ``clinician`` (raw) and further keys.
        turns: The speaker turns, in file order.
        known_names: Names seen in the structure (speaker names, clinicians) for de-identification.
    """

    source_path: str
    record_key: str
    source_sha256: str
    source_type: str
    source_format: str
    encoding: str
    metadata: dict[str, object]
    turns: list[RawTurn]
    known_names: list[str] = field(default_factory=list)

    @property
    def document_id(self) -> str:
        """Stable id: first 20 hex chars of sha256 over path, record key and content hash."""
        key = f"{self.source_path}\0{self.record_key}\0{self.source_sha256}"
        return sha256_hex(key.encode("utf-8"))[:20]


@dataclass
class Problem:
    """One input problem: a quarantined file, a skipped row, or a repair.

    Attributes:
        file: Path relative to the corpus root (a sidecar's path for sidecar problems).
        line: 1-based line (Excel row for xlsx) if known.
        code: Catalogue code from :data:`pipeline.errors.ERRORS`.
        action: ``quarantined`` | ``row_skipped`` | ``repaired``.
        error: Clear reason; never participant text.
    """

    file: str
    line: int | None
    code: str
    action: str
    error: str


@dataclass
class IngestResult:
    """Documents read and problems met, in deterministic order."""

    documents: list[RawDocument] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def extend(self, other: IngestResult) -> None:
        """Append ``other``'s documents and problems to this result."""
        self.documents.extend(other.documents)
        self.problems.extend(other.problems)


@dataclass(frozen=True)
class ReadContext:
    """Everything a reader needs about one file.

    Attributes:
        path: Absolute path of the file.
        source_path: Posix path relative to the corpus root (use this in problems).
        source_format: Lower-case extension without the dot.
        data: The raw bytes (already checked against the size limit).
        cfg: The ingest settings.
        metadata: File-level metadata from the file name and the sidecar, normalised.
        speaker_map: Sidecar ``speakers`` (exact label -> role).
        source_type: Source type fixed by the sidecar or a ``source_types`` glob, else ``None``.
        known_names: Names from the sidecar (clinician, interviewer, speaker names).
    """

    path: Path
    source_path: str
    source_format: str
    data: bytes
    cfg: IngestConfig
    metadata: dict[str, object] = field(default_factory=dict)
    speaker_map: dict[str, str] = field(default_factory=dict)
    source_type: str | None = None
    known_names: tuple[str, ...] = ()

    def problem(self, code: str, action: str, error: str, line: int | None = None) -> Problem:
        """Build a :class:`Problem` about this file."""
        return Problem(file=self.source_path, line=line, code=code, action=action, error=error)


#: A reader: the bytes of one file (in a context) -> documents and problems.
Reader = Callable[[ReadContext], IngestResult]
