"""Settings of the ingest stage: :class:`IngestConfig` and :class:`FeedbackColumns`.

Both models are pydantic v2 models with ``extra="forbid"``, so a misspelt key is an error rather than
a silently ignored setting. The run config embeds :class:`IngestConfig`; a corpus may override it with
a ``corpus.yaml`` file at its root (see :func:`pipeline.ingest.load_corpus_config`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["FeedbackColumns", "IngestConfig", "RoleName", "SourceTypeName"]

RoleName = Literal["client", "therapist", "interviewer", "unknown"]
SourceTypeName = Literal["interview", "session", "feedback"]

DEFAULT_FILENAME_PATTERN = r"^(?P<case_id>[A-Za-z]+\d+)(?:[_-](?:s|session)(?P<session>\d+))?"


class FeedbackColumns(BaseModel):
    """Candidate header names (case-insensitive) for each field of a feedback spreadsheet.

    The first header of the file that equals a candidate (ignoring case and surrounding spaces) is
    used; candidates are tried in the order given. Only ``text`` is required to be present in a file.
    """

    model_config = ConfigDict(extra="forbid")

    text: list[str] = Field(default_factory=lambda: ["comment", "comments", "feedback", "response", "text", "answer"])
    record_id: list[str] = Field(default_factory=lambda: ["response_id", "id", "record_id"])
    case_id: list[str] = Field(default_factory=lambda: ["client_id", "case_id", "participant_id", "client"])
    session: list[str] = Field(default_factory=lambda: ["session_number", "session", "session_no"])
    date: list[str] = Field(default_factory=lambda: ["date", "session_date", "submitted"])
    clinician: list[str] = Field(default_factory=lambda: ["clinician", "therapist", "counsellor", "counselor"])


class IngestConfig(BaseModel):
    """What to read from a corpus folder and how.

    Attributes:
        include: Globs (relative to the corpus root, posix, ``**`` = any depth) of files to read.
        exclude: Globs of files to skip even when included (sidecars, notes).
        source_types: Glob -> ``interview`` | ``session`` | ``feedback``; the first matching glob wins.
            Without a match (and without a sidecar ``source_type``): csv/xlsx -> feedback, transcripts with
            an interviewer turn -> interview, other transcripts -> session.
        speaker_roles: Extra speaker label -> role (case-insensitive), tried after a sidecar's ``speakers``.
        max_file_mb: Files larger than this are quarantined unread (QA-E014).
        max_unzipped_mb: Total uncompressed size limit of a docx/xlsx archive.
        max_zip_ratio: Compression ratio limit of any archive member over 1 MB.
        max_zip_members: Member count limit of a docx/xlsx archive.
        max_line_chars: A line (or docx paragraph) longer than this quarantines the file.
        filename_pattern: Regex matched at the start of the file stem; named groups ``case_id``,
            ``session`` and ``date`` become metadata.
        feedback_columns: Candidate spreadsheet headers per field.
        feedback_sheet: Worksheet to read from xlsx files; the first sheet when ``None``.
    """

    model_config = ConfigDict(extra="forbid")

    include: list[str] = Field(default_factory=lambda: ["**/*"])
    exclude: list[str] = Field(default_factory=lambda: ["**/*.yaml", "**/*.yml", "**/*.md", "**/*.json"])
    source_types: dict[str, SourceTypeName] = Field(default_factory=dict)
    speaker_roles: dict[str, RoleName] = Field(default_factory=dict)
    max_file_mb: float = Field(default=50, gt=0)
    max_unzipped_mb: float = Field(default=200, gt=0)
    max_zip_ratio: float = Field(default=100, gt=1)
    max_zip_members: int = Field(default=2000, gt=0)
    max_line_chars: int = Field(default=200_000, gt=0)
    filename_pattern: str = DEFAULT_FILENAME_PATTERN
    feedback_columns: FeedbackColumns = Field(default_factory=FeedbackColumns)
    feedback_sheet: str | None = None

    @field_validator("filename_pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        """Reject a pattern that does not compile."""
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"must be a valid regular expression ({err})") from None
        return value

    @field_validator("include", "exclude", "source_types")
    @classmethod
    def _check_globs(cls, value: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        """Reject empty globs and absolute globs."""
        for glob in value:
            if not glob or glob.startswith("/"):
                raise ValueError(f"globs must be non-empty and relative to the corpus root. Got {glob!r}.")
        return value
