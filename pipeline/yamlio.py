"""YAML loading that keeps node positions, so errors can say ``file:line:column key``.

Used for run configs, codebooks, corpus settings and sidecars. Pydantic validation errors are mapped
back to the YAML node they concern.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from pipeline.errors import ConfigError

__all__ = ["check_nesting", "format_loc", "load_yaml", "node_position", "validate_yaml_model"]

M = TypeVar("M", bound=BaseModel)

#: Refuse configs larger than this before parsing (YAML is hostile input too).
MAX_YAML_BYTES = 5 * 1024 * 1024
#: Refuse configs whose alias-expanded tree has more values than this (YAML "billion laughs").
MAX_YAML_NODES = 100_000
#: Refuse configs whose flow brackets nest deeper than this (the parser recurses per level).
MAX_FLOW_DEPTH = 100
_BRACKETS = re.compile(r"[\[\]{}]")


def load_yaml(path: Path, *, error_cls: type[ConfigError] = ConfigError) -> Any:
    """Parse a YAML file safely, keeping positions (ruamel round-trip types).

    Raises:
        ConfigError: (QA-E001) when the file is missing, too large or not valid YAML, with the line.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise error_cls(f"cannot read the file ({e.strerror}).", code="QA-E001", path=str(path)) from None
    if len(raw) > MAX_YAML_BYTES:
        raise error_cls(f"file is larger than {MAX_YAML_BYTES} bytes.", code="QA-E001", path=str(path))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error_cls(f"file is not UTF-8 (byte {e.start}).", code="QA-E001", path=str(path)) from None
    try:
        check_nesting(text)
    except ValueError as e:
        raise error_cls(f"invalid YAML: {e}.", code="QA-E001", path=str(path)) from None
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        problem = (e.problem or e.context or "invalid YAML").strip()
        raise error_cls(f"invalid YAML: {problem}.", code="QA-E001", path=str(path), line=line,
                        column=col) from None
    except YAMLError as e:
        raise error_cls(f"invalid YAML: {type(e).__name__}.", code="QA-E001", path=str(path)) from None
    except RecursionError:
        raise error_cls("invalid YAML: nested too deeply.", code="QA-E001", path=str(path)) from None
    except ValueError as e:  # e.g. an integer longer than Python's int_max_str_digits
        raise error_cls(f"invalid YAML: a value cannot be read ({type(e).__name__}).", code="QA-E001",
                        path=str(path)) from None


def check_nesting(text: str, limit: int = MAX_FLOW_DEPTH) -> None:
    """Raise ValueError when flow brackets (``[``/``{``) nest deeper than ``limit``.

    The YAML parser recurses per level and takes seconds on a few thousand levels before it fails,
    so this cheap scan runs first. Brackets inside quotes or plain text count too; real configs stay
    far below the limit either way.

    Raises:
        ValueError: naming the 1-based line where the limit was passed.
    """
    depth = 0
    for match in _BRACKETS.finditer(text):
        depth = depth + 1 if match.group() in "[{" else max(depth - 1, 0)
        if depth > limit:
            line = text.count("\n", 0, match.start()) + 1
            raise ValueError(f"brackets nest more than {limit} levels deep at line {line}")


def format_loc(loc: Sequence[str | int]) -> str:
    """Render a pydantic ``loc`` as a key path: ``coders[1].params.threshold``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def node_position(data: Any, loc: Sequence[str | int]) -> tuple[int | None, int | None]:
    """Return the 1-based (line, column) of the deepest YAML node on ``loc`` that exists."""
    line = col = None
    node = data
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            pos = node.lc.key(part) if not isinstance(node.get(part), (CommentedMap, CommentedSeq)) \
                else node.lc.key(part)
            line, col = pos[0] + 1, pos[1] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            pos = node.lc.item(part)
            line, col = pos[0] + 1, pos[1] + 1
            node = node[part]
        else:
            break
    if line is None and hasattr(data, "lc"):
        line, col = data.lc.line + 1, data.lc.col + 1
    return line, col


def _plain(data: Any, budget: list[int] | None = None) -> Any:
    """Convert ruamel round-trip containers to plain dicts and lists.

    Aliases are expanded, so a small file can describe a huge tree (a YAML "billion laughs");
    the expansion stops with a ValueError after :data:`MAX_YAML_NODES` nodes.
    """
    budget = budget if budget is not None else [MAX_YAML_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"more than {MAX_YAML_NODES} values after expanding aliases")
    if isinstance(data, dict):
        return {str(k): _plain(v, budget) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v, budget) for v in data]
    return data


def validate_yaml_model(data: Any, model: type[M], *, path: Path,
                        error_cls: type[ConfigError] = ConfigError) -> M:
    """Validate parsed YAML against a pydantic model; map errors to ``file:line:column key``.

    Raises:
        ConfigError: (QA-E002 or the subclass default) listing every validation error with its position.
    """
    if not isinstance(data, dict):
        raise error_cls("the top level must be a mapping of keys to values.", path=str(path), line=1)
    try:
        plain = _plain(data)
    except (ValueError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise error_cls(f"invalid YAML: {reason}.", code="QA-E001", path=str(path), line=1) from None
    try:
        return model.model_validate(plain)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        first = errors[0]
        line, col = node_position(data, first["loc"])
        lines = []
        for err in errors:
            eline, ecol = node_position(data, err["loc"])
            key = format_loc(err["loc"]) or "(top level)"
            lines.append(f"{path}:{eline}:{ecol} {key}: {_message(err)}")
        more = "" if len(lines) == 1 else " Also:\n  " + "\n  ".join(lines[1:])
        raise error_cls(
            _message(first) + more, path=str(path), line=line, column=col,
            key=format_loc(first["loc"]) or "(top level)", errors=lines,
        ) from None


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key (not allowed here; check the spelling)."
    if kind == "missing":
        return "required key is missing."
    got = err.get("input")
    shown = repr(got) if isinstance(got, (int, float, bool)) or (isinstance(got, str) and len(got) < 60) \
        else type(got).__name__
    msg = str(err.get("msg", "invalid value")).rstrip(".")
    return f"{msg}. Got {shown} instead."
