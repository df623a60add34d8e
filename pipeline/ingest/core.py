"""Ingest entry points: the reader registry, one file, a whole corpus, and corpus-level settings.

:func:`ingest_file` never raises for bad input. Every :class:`~pipeline.errors.IngestError` becomes a
``quarantined`` :class:`Problem`; any other exception from a reader is wrapped the same way (QA-E013,
naming only the exception type, since third-party messages may quote file content). Repairs and
skipped rows come back as problems next to the documents that were kept.

Adding a format is one function: write ``read_xyz(ctx: ReadContext) -> IngestResult`` and add it to
:data:`READERS` under its extension.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from pipeline.errors import ConfigError, IngestError
from pipeline.ingest.base import IngestResult, Problem, ReadContext, Reader
from pipeline.ingest.discovery import discover, matches_any, relative_posix
from pipeline.ingest.guards import MB, check_file_size
from pipeline.ingest.metadata import filename_metadata, find_sidecar, load_sidecar, plain
from pipeline.ingest.settings import IngestConfig
from pipeline.ingest.spreadsheets import read_csv, read_xlsx
from pipeline.ingest.subtitles import read_srt, read_vtt
from pipeline.ingest.text import read_docx, read_txt
from pipeline.yamlio import MAX_YAML_BYTES, check_nesting

__all__ = ["READERS", "ingest_corpus", "ingest_file", "load_corpus_config"]

logger = logging.getLogger(__name__)

#: Reader per lower-case file extension (without the dot).
READERS: dict[str, Reader] = {
    "txt": read_txt,
    "docx": read_docx,
    "vtt": read_vtt,
    "srt": read_srt,
    "csv": read_csv,
    "xlsx": read_xlsx,
}


def ingest_file(path: Path, *, root: Path, cfg: IngestConfig) -> IngestResult:
    """Read one file into documents; never raises for bad input.

    Args:
        path: The file (under ``root``).
        root: The corpus root; ``source_path`` values are relative to it.
        cfg: Ingest settings.

    Returns:
        The file's documents (none when quarantined) and its problems, in file order.
    """
    rel = relative_posix(path, root)
    fmt = path.suffix.lower().lstrip(".")
    reader = READERS.get(fmt)
    if reader is None:
        error = f"file type '{path.suffix or '(none)'}' is not supported; supported: {sorted(READERS)}"
        return IngestResult(problems=[Problem(rel, None, "QA-E016", "quarantined", error)])
    try:
        result = reader(_context(path, rel, fmt, root, cfg))
    except IngestError as err:
        logger.info("%s quarantined [%s]", rel, err.code)
        return IngestResult(problems=[_quarantine(err, rel)])
    except Exception as err:  # noqa: BLE001 - a parser bug must not stop the corpus
        name = _error_name(err)
        logger.warning("%s quarantined: unexpected %s in the %s reader", rel, name, fmt)
        error = f"unexpected {name} while reading the {fmt} file"
        return IngestResult(problems=[Problem(rel, None, "QA-E013", "quarantined", error)])
    logger.info("%s: %d document(s), %d problem(s)", rel, len(result.documents), len(result.problems))
    return result


def ingest_corpus(root: Path, cfg: IngestConfig) -> IngestResult:
    """Discover and read every input file under ``root``, in sorted path order.

    Returns:
        All documents and all problems, concatenated file by file.
    """
    result = IngestResult()
    for path in discover(root, cfg):
        result.extend(ingest_file(path, root=root, cfg=cfg))
    quarantined = sum(p.action == "quarantined" for p in result.problems)
    logger.info("ingest: %d document(s), %d file(s) quarantined", len(result.documents), quarantined)
    return result


def _error_name(err: Exception) -> str:
    """The exception's type name, module-qualified unless built in (``zlib.error``); never its message."""
    kind = type(err)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"


def _quarantine(err: IngestError, rel: str) -> Problem:
    return Problem(file=err.path or rel, line=err.line, code=err.code, action="quarantined", error=err.message)


def _context(path: Path, rel: str, fmt: str, root: Path, cfg: IngestConfig) -> ReadContext:
    """Check the size, read the bytes and gather file-level metadata and sidecar settings."""
    check_file_size(path, rel, cfg)
    limit = int(cfg.max_file_mb * MB)
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise IngestError(f"file cannot be read ({type(err).__name__})", code="QA-E010", path=rel) from None
    if len(data) > limit:
        raise IngestError(f"file is larger than max_file_mb={cfg.max_file_mb:g}", code="QA-E014", path=rel)
    if not data.strip():
        raise IngestError("file is empty or holds only whitespace", code="QA-E011", path=rel)
    metadata = filename_metadata(path, cfg)
    speakers: dict[str, str] = {}
    names: list[str] = []
    source_type = next((t for g, t in cfg.source_types.items() if matches_any(rel, [g])), None)
    sidecar_path = find_sidecar(path)
    if sidecar_path is not None and sidecar_path != root / "corpus.yaml":
        sidecar = load_sidecar(sidecar_path, relative_posix(sidecar_path, root), rel)
        metadata.update(sidecar.metadata)
        speakers, names = sidecar.speakers, sidecar.known_names
        source_type = sidecar.source_type or source_type
    return ReadContext(
        path=path, source_path=rel, source_format=fmt, data=data, cfg=cfg, metadata=metadata,
        speaker_map=speakers, source_type=source_type, known_names=tuple(dict.fromkeys(names)),
    )


def load_corpus_config(root: Path, base: IngestConfig) -> IngestConfig:
    """Apply ``root/corpus.yaml`` (if present) over ``base``; its top-level keys replace base's.

    Raises:
        ConfigError: QA-E001 with file and line for unreadable YAML; QA-E002 with file, line and key
            path for a value that does not validate.
    """
    path = root / "corpus.yaml"
    if not path.is_file():
        return base
    where = path.as_posix()
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"is larger than {MAX_YAML_BYTES} bytes", code="QA-E001", path=where)
        text = path.read_text(encoding="utf-8-sig")
        check_nesting(text)
        data = YAML(typ="rt", pure=True).load(text)
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot be read ({type(err).__name__})", code="QA-E001", path=where) from None
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ConfigError(f"is not valid YAML ({problem})", code="QA-E001", path=where, line=line,
                          column=column) from None
    except (RecursionError, ValueError) as err:  # nesting too deep; an integer over int_max_str_digits
        reason = str(err) if str(err).startswith("brackets nest") else type(err).__name__
        raise ConfigError(f"is not valid YAML ({reason})", code="QA-E001", path=where) from None
    if data is None:
        return base
    if not isinstance(data, Mapping):
        raise ConfigError("must be a mapping of setting names to values", code="QA-E001", path=where, line=1)
    try:
        values = plain(data)
    except RecursionError:
        raise ConfigError("is nested too deeply", code="QA-E001", path=where) from None
    except ValueError as err:
        raise ConfigError(str(err), code="QA-E001", path=where) from None
    try:
        return IngestConfig.model_validate({**base.model_dump(), **values})  # type: ignore[dict-item]
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        raise ConfigError(
            f"{first['msg']}", code="QA-E002", path=where, line=_yaml_line(data, loc),
            key=".".join(str(p) for p in loc),
        ) from None


def _yaml_line(node: object, loc: Sequence[object]) -> int | None:
    """Line of the deepest YAML node found along a pydantic error location."""
    line = None
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, Mapping) and part in node:
                line = lc.key(part)[0] + 1 if lc is not None else line
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                line = lc.item(part)[0] + 1 if lc is not None else line
                node = node[part]
            else:
                break
        except (KeyError, TypeError, AttributeError, IndexError):
            break
    return line
