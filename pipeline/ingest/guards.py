"""Checks that run before any parser sees a file: size limit and zip-archive sanity (bombs, traversal).

docx and xlsx files are zip archives. :func:`check_zip` reads only the central directory (``ZipInfo``
records) and rejects archives whose declared sizes, ratios, member counts or member names are out of
bounds. Declared sizes are trustworthy enough here: :mod:`zipfile` stops inflating a member at its
declared ``file_size`` and then fails the CRC check, so a member that lies about its size ends in
``BadZipFile`` (QA-E013) instead of unbounded memory use.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import Path

from pipeline.errors import IngestError
from pipeline.ingest.settings import IngestConfig

__all__ = ["DECOMPRESS_ERRORS", "MB", "check_file_size", "check_zip", "open_zip"]

MB = 1024 * 1024
_RATIO_MIN_MEMBER_BYTES = MB  # small members may legitimately compress very well
_DRIVE = re.compile(r"^[A-Za-z]:")
_DOCTYPE = b"<!doctype"
#: Errors a damaged or hostile zip member can raise while it is read.
DECOMPRESS_ERRORS = (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, OSError, EOFError, ValueError)


def check_file_size(path: Path, source_path: str, cfg: IngestConfig) -> None:
    """Raise QA-E014 if the file on disk is larger than ``cfg.max_file_mb``.

    Raises:
        IngestError: QA-E014, or QA-E010 when the file cannot be stat'ed.
    """
    try:
        size = path.stat().st_size
    except OSError as err:
        raise IngestError(
            f"file cannot be read ({type(err).__name__})", code="QA-E010", path=source_path
        ) from None
    if size > cfg.max_file_mb * MB:
        raise IngestError(
            f"file is {size / MB:.1f} MB; the limit is max_file_mb={cfg.max_file_mb:g}",
            code="QA-E014", path=source_path,
        )


def open_zip(data: bytes, source_path: str, kind: str) -> zipfile.ZipFile:
    """Open ``data`` as a zip archive, mapping any failure to QA-E013.

    Args:
        data: The file's bytes.
        source_path: Path for error messages.
        kind: ``docx`` or ``xlsx``, for the message.

    Raises:
        IngestError: QA-E013 when the bytes are not a readable zip archive.
    """
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as err:
        raise IngestError(
            f"not a readable {kind} file: the zip container is truncated or corrupt ({type(err).__name__}); "
            f"a legacy binary .{kind[:-1]} file must be saved as .{kind}",
            code="QA-E013", path=source_path,
        ) from None


def check_zip(data: bytes, source_path: str, cfg: IngestConfig, kind: str) -> None:
    """Reject zip bombs, hostile member names and XML with a DTD before a parser opens the archive.

    Raises:
        IngestError: QA-E013 for a corrupt archive, unsafe member names or a ``<!DOCTYPE`` in an XML
            member; QA-E014 for too many members, too large a total uncompressed size, or too high a
            compression ratio.
    """
    with open_zip(data, source_path, kind) as archive:
        infos = archive.infolist()
        _check_directory(infos, source_path, cfg, kind)
        try:
            for number, info in enumerate(infos, start=1):
                if info.filename.lower().endswith((".xml", ".rels")):
                    _scan_xml_member(archive, info, number, source_path, kind)
        except IngestError:
            raise
        except DECOMPRESS_ERRORS as err:
            raise IngestError(
                f"{kind} archive member cannot be decompressed ({type(err).__name__}); the file is corrupt",
                code="QA-E013", path=source_path,
            ) from None


def _check_directory(infos: list[zipfile.ZipInfo], source_path: str, cfg: IngestConfig, kind: str) -> None:
    if len(infos) > cfg.max_zip_members:
        raise IngestError(
            f"{kind} archive has {len(infos)} members; the limit is max_zip_members={cfg.max_zip_members}",
            code="QA-E014", path=source_path,
        )
    total = 0
    for number, info in enumerate(infos, start=1):
        _check_member_name(info.filename, number, source_path, kind)
        total += info.file_size
        if info.file_size > _RATIO_MIN_MEMBER_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > cfg.max_zip_ratio:
                raise IngestError(
                    f"{kind} archive member {number} expands {ratio:.0f}x ({info.file_size / MB:.1f} MB); "
                    f"the limit is max_zip_ratio={cfg.max_zip_ratio:g} (possible zip bomb)",
                    code="QA-E014", path=source_path,
                )
    if total > cfg.max_unzipped_mb * MB:
        raise IngestError(
            f"{kind} archive expands to {total / MB:.1f} MB; the limit is max_unzipped_mb={cfg.max_unzipped_mb:g}",
            code="QA-E014", path=source_path,
        )


def _scan_xml_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, number: int, source_path: str,
                     kind: str) -> None:
    """Stream one XML member (bounded by its checked declared size) looking for a DTD."""
    tail = b""
    with archive.open(info) as member:
        while chunk := member.read(MB):
            if _DOCTYPE in (tail + chunk).lower():
                raise IngestError(
                    f"{kind} archive member {number} is XML with a DTD (<!DOCTYPE>); DTDs and entity "
                    "declarations are refused",
                    code="QA-E013", path=source_path,
                )
            tail = chunk[-len(_DOCTYPE):]


def _check_member_name(name: str, number: int, source_path: str, kind: str) -> None:
    parts = name.split("/")
    unsafe = (
        name.startswith("/") or "\\" in name or ".." in parts or _DRIVE.match(name) is not None or "\x00" in name
    )
    if unsafe:
        raise IngestError(
            f"{kind} archive member {number} has an unsafe name (absolute path, '..', drive letter or "
            "backslash); the file was not opened",
            code="QA-E013", path=source_path,
        )
