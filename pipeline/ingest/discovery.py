"""Finding input files: posix globs relative to the corpus root, hidden files and outside links skipped.

Glob syntax: ``*`` any characters but ``/``; ``?`` one such character; ``[abc]``/``[!abc]`` classes;
``**/`` zero or more folders (so ``**/*.csv`` also matches ``a.csv`` at the root); ``**`` elsewhere
matches anything. Matching is case-sensitive.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from pathlib import Path

from pipeline.ingest.settings import IngestConfig

__all__ = ["discover", "glob_to_regex", "matches_any", "relative_posix"]


@functools.lru_cache(maxsize=256)
def glob_to_regex(glob: str) -> re.Pattern[str]:
    """Compile a corpus glob (see the module docstring) to an anchored regex."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        if glob.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and "]" in glob[i + 2:]:
            end = glob.index("]", i + 2)
            body = glob[i + 1:end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches_any(rel: str, globs: Iterable[str]) -> bool:
    """True when the posix relative path ``rel`` matches one of ``globs``."""
    return any(glob_to_regex(g).match(rel) for g in globs)


def relative_posix(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a posix string (the file name if it lies outside ``root``)."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel == ".." or rel.startswith(".." + os.sep):
        return path.name
    return Path(rel).as_posix()


def discover(root: Path, cfg: IngestConfig) -> list[Path]:
    """List the files under ``root`` that match ``cfg.include`` and not ``cfg.exclude``.

    Hidden files and folders (name starts with ``.``) and Office lock files (``~$``) are skipped.
    Folder links are not followed; a file link is kept only when it resolves to a file inside ``root``.

    Args:
        root: The corpus root.
        cfg: Ingest settings (``include``, ``exclude``).

    Returns:
        Paths under ``root`` sorted by their posix relative path.
    """
    root_real = Path(os.path.realpath(root))
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith((".", "~$")):
                continue
            path = Path(dirpath) / name
            if not _is_safe_file(path, root_real):
                continue
            rel = relative_posix(path, root)
            if matches_any(rel, cfg.include) and not matches_any(rel, cfg.exclude):
                found.append((rel, path))
    return [path for _, path in sorted(found)]


def _is_safe_file(path: Path, root_real: Path) -> bool:
    if not path.is_symlink():
        return path.is_file()
    try:
        target = Path(os.path.realpath(path, strict=True))
    except OSError:
        return False
    return target.is_relative_to(root_real) and target.is_file()
