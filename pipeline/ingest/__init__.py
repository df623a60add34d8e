"""Ingest: read raw corpus files (txt, docx, vtt, srt, csv, xlsx) into :class:`RawDocument` objects.

Public API::

    cfg = load_corpus_config(root, IngestConfig())      # corpus.yaml overrides, if any
    result = ingest_corpus(root, cfg)                    # IngestResult(documents, problems)
    result = ingest_file(path, root=root, cfg=cfg)       # one file; never raises for bad input

Bad input never raises: it becomes a :class:`Problem` (``quarantined`` file, ``row_skipped`` row, or
``repaired`` decoding) with a catalogue code, a file and a line, and never participant text.
A new format is one function registered in :data:`READERS` (extension -> reader).
"""

from pipeline.ingest.base import IngestResult, Problem, RawDocument, RawTurn, ReadContext, Reader
from pipeline.ingest.core import READERS, ingest_corpus, ingest_file, load_corpus_config
from pipeline.ingest.discovery import discover
from pipeline.ingest.settings import FeedbackColumns, IngestConfig

__all__ = [
    "READERS",
    "FeedbackColumns",
    "IngestConfig",
    "IngestResult",
    "Problem",
    "RawDocument",
    "RawTurn",
    "ReadContext",
    "Reader",
    "discover",
    "ingest_corpus",
    "ingest_file",
    "load_corpus_config",
]
