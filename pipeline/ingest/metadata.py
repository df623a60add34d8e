"""Document metadata: from the file name, from a sidecar YAML next to the file, and value normalisation.

Precedence (later wins): file name (``cfg.filename_pattern``) -> sidecar ``<stem>.yaml``/``<stem>.yml``
-> spreadsheet columns (row level). ``session`` becomes an int, ``date`` an ISO ``YYYY-MM-DD`` string
when it can be read without guessing (ISO forms, ``YYYY/MM/DD``, ``5 March 2024``, ``March 5, 2024``,
date objects); ambiguous forms such as ``03/05/2024`` are kept as given.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from pipeline.errors import IngestError
from pipeline.ingest.base import ROLES, SOURCE_TYPES
from pipeline.ingest.roles import builtin_role, label_names
from pipeline.ingest.settings import IngestConfig
from pipeline.yamlio import check_nesting

__all__ = [
    "Sidecar",
    "filename_metadata",
    "find_sidecar",
    "jsonable",
    "load_sidecar",
    "normalize_date",
    "normalize_session",
    "plain",
]

_SIDECAR_MAX_BYTES = 1024 * 1024
_MAX_NODES = 10_000
_NAME_KEYS = ("clinician", "interviewer")
_SESSION = re.compile(r"^\s*(\d{1,6})(?:\.0*)?\s*$")
_DATE_FORMATS = ("%Y/%m/%d", "%d %B %Y", "%d %b %Y", "%B %d, %Y", "%b %d, %Y", "%B %d %Y")


@dataclass
class Sidecar:
    """What a sidecar YAML says about its file."""

    path: str
    metadata: dict[str, object] = field(default_factory=dict)
    speakers: dict[str, str] = field(default_factory=dict)
    source_type: str | None = None
    known_names: list[str] = field(default_factory=list)


def normalize_session(value: object) -> int:
    """Return a session number as an int.

    Raises:
        ValueError: when ``value`` is not a whole non-negative number.
    """
    if isinstance(value, bool):
        raise ValueError("a session number must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    match = _SESSION.match(str(value))
    if match is None:
        raise ValueError("a session number must be a whole number")
    return int(match.group(1))


def normalize_date(value: object) -> object:
    """Return an ISO ``YYYY-MM-DD`` string when ``value`` is a date or an unambiguous date text."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return dt.datetime.fromisoformat(text).date().isoformat()
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return text


def filename_metadata(path: Path, cfg: IngestConfig) -> dict[str, object]:
    """Metadata from the file stem via ``cfg.filename_pattern`` (groups ``case_id``, ``session``, ``date``)."""
    match = re.match(cfg.filename_pattern, path.stem)
    if match is None:
        return {}
    meta: dict[str, object] = {k: v for k, v in match.groupdict().items() if v is not None}
    if "session" in meta:
        try:
            meta["session"] = normalize_session(meta["session"])
        except ValueError:
            del meta["session"]
    if "date" in meta:
        meta["date"] = normalize_date(meta["date"])
    return meta


def find_sidecar(path: Path) -> Path | None:
    """Return ``<stem>.yaml`` or ``<stem>.yml`` next to ``path`` if it exists (not a symlink)."""
    for suffix in (".yaml", ".yml"):
        candidate = path.with_suffix(suffix)
        if candidate != path and candidate.is_file() and not candidate.is_symlink():
            return candidate
    return None


def plain(value: object, budget: list[int] | None = None) -> object:
    """Convert ruamel round-trip objects to plain Python (dict, list, str, int, float, date, None).

    Raises:
        ValueError: when the structure has more than 10,000 nodes (e.g. an alias bomb).
    """
    budget = budget if budget is not None else [_MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("sidecar structure is too large")
    if isinstance(value, Mapping):
        return {str(k): plain(v, budget) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, budget) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, dt.datetime):
        return dt.datetime.fromisoformat(value.isoformat())
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return str(value)


def load_sidecar(sidecar: Path, sidecar_rel: str, data_rel: str) -> Sidecar:
    """Read and check a sidecar YAML.

    Args:
        sidecar: Absolute path of the sidecar.
        sidecar_rel: Its path relative to the corpus root (used in errors).
        data_rel: The described file's path relative to the corpus root (named in errors).

    Raises:
        IngestError: QA-E017 with the sidecar's path and line for unreadable YAML, a top level that is
            not a mapping, an unknown role or source type, or a session that is not a number.
    """
    data = _parse_yaml(sidecar, sidecar_rel, data_rel)
    result = Sidecar(path=sidecar_rel)
    for key in data:
        line = _key_line(data, key)
        value = data[key]
        try:
            _apply_key(result, str(key), value)
        except RecursionError:
            raise _sidecar_error(f"key '{key}': nested too deeply", sidecar_rel, data_rel, line) from None
        except ValueError as err:
            line = getattr(err, "line", None) or line
            raise _sidecar_error(f"key '{key}': {err}", sidecar_rel, data_rel, line) from None
    return result


def _apply_key(result: Sidecar, key: str, value: object) -> None:
    if key == "speakers":
        result.speakers = _speakers(value)
        result.known_names.extend(name for label in result.speakers for name in label_names(label))
        return
    if key == "source_type":
        if value not in SOURCE_TYPES:
            raise ValueError(f"must be one of {list(SOURCE_TYPES)}")
        result.source_type = str(value)
        return
    clean = plain(value)
    if key == "session" and clean is not None:
        clean = normalize_session(clean)
    elif key == "date" and clean is not None:
        clean = normalize_date(clean)
    elif key == "case_id" and clean is not None:
        clean = str(clean)
    if key in _NAME_KEYS:
        names = clean if isinstance(clean, list) else [clean]
        result.known_names.extend(str(n).strip() for n in names if n is not None and str(n).strip())
    result.metadata[key] = jsonable(clean)


def jsonable(value: object) -> object:
    """``value`` with dates as ISO strings, so metadata always passes ``json.dumps``."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _speakers(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping of speaker label to role")
    speakers: dict[str, str] = {}
    for label, role in value.items():
        role_text = str(role).strip().casefold()
        resolved = role_text if role_text in ROLES else builtin_role(role_text)
        if resolved is None:
            err = ValueError(f"speaker {len(speakers) + 1} has an unknown role; use one of {list(ROLES)}")
            err.line = _key_line(value, label)  # type: ignore[attr-defined]
            raise err
        speakers[str(label).strip()] = resolved
    return speakers


def _parse_yaml(sidecar: Path, sidecar_rel: str, data_rel: str) -> Mapping[str, object]:
    try:
        raw = sidecar.read_bytes()
    except OSError as err:
        raise _sidecar_error(f"cannot be read ({type(err).__name__})", sidecar_rel, data_rel, None) from None
    if len(raw) > _SIDECAR_MAX_BYTES:
        raise _sidecar_error("is larger than 1 MB", sidecar_rel, data_rel, None)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _sidecar_error("is not valid UTF-8", sidecar_rel, data_rel, None) from None
    try:
        check_nesting(text)
        data = YAML(typ="rt", pure=True).load(text)
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or type(err).__name__
        raise _sidecar_error(f"is not valid YAML ({problem})", sidecar_rel, data_rel, line) from None
    except (RecursionError, ValueError) as err:  # nesting too deep; an integer over int_max_str_digits
        reason = str(err) if str(err).startswith("brackets nest") else type(err).__name__
        raise _sidecar_error(f"is not valid YAML ({reason})", sidecar_rel, data_rel, None) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise _sidecar_error("must be a mapping of keys to values at the top level", sidecar_rel, data_rel, 1)
    return data


def _key_line(data: Mapping[str, object], key: object) -> int | None:
    lc = getattr(data, "lc", None)
    try:
        return int(lc.key(key)[0]) + 1 if lc is not None else None
    except (KeyError, TypeError, AttributeError):
        return None


def _sidecar_error(reason: str, sidecar_rel: str, data_rel: str, line: int | None) -> IngestError:
    return IngestError(
        f"sidecar metadata {reason}; {data_rel} was quarantined",
        code="QA-E017", path=sidecar_rel, line=line,
    )
