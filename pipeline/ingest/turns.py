"""Speaker-turn sniffing for plain-text layouts, and assembly of a transcript :class:`RawDocument`.

A *unit* is a numbered piece of text: a line of a txt file or a block (paragraph, table row) of a docx.
A turn starts at a unit that begins with a speaker label followed by ``:``::

    Therapist: How has the week been?        T: ...   Interviewer: ...   Speaker 1: ...
    Speaker 1 (00:00:05): text               [00:01:02] Client: text
    Jane Roe  0:03                           (Otter, 2+ such lines: name and time alone; text follows)

A candidate label is *accepted* when it is a role word, a ``cfg.speaker_roles`` or sidecar label,
``Speaker N``, carries a timestamp, or is a name-like label used at least twice. So ``Note: ...`` or
``Here's the thing: ...`` in running text does not start a turn. Units without an accepted label
continue the current turn (joined with a newline); a file without any accepted label is one turn.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.errors import IngestError
from pipeline.ingest.base import IngestResult, Problem, RawDocument, RawTurn, ReadContext, sha256_hex
from pipeline.ingest.roles import is_speaker_n, label_names, resolve_role

__all__ = ["Unit", "build_transcript", "format_clock", "is_name_like", "split_turns"]

logger = logging.getLogger(__name__)

Unit = tuple[int, str]

_TS = r"\d{1,2}(?::\d{1,2}){1,2}(?:[.,]\d{1,3})?"
_COLON_LABEL = re.compile(
    rf"^[ \t]*(?:[\[\(]?(?P<ts0>{_TS})[\]\)]?[ \t]+)?"
    r"(?P<label>[^\W\d_][^:\n]{0,39}?)[ \t]*"
    rf"(?:[\(\[](?P<ts>{_TS})[\)\]][ \t]*)?"
    r":(?!//)[ \t]*(?P<rest>.*)\Z",
    re.DOTALL,
)
_OTTER_LABEL = re.compile(rf"^[ \t]*(?P<label>[^\W\d_][^:\n]{{0,39}}?)[ \t]+(?P<ts>{_TS})[ \t]*\Z")
_SENTENCE_PUNCT = re.compile(r"[,;!?\"“”()\[\]{}<>…=/\\|#$%^*~]")
_PARTICLES = frozenset({"de", "da", "del", "della", "di", "van", "von", "der", "den", "la", "le", "bin", "al", "el"})


@dataclass
class _Candidate:
    label: str
    rest: str
    timestamp: str | None
    otter: bool = False
    timed_label: bool = False  # Rev/Otter: the time belongs to the label, a strong speaker signal


@dataclass
class _Builder:
    label: str | None
    line: int
    timestamp: str | None
    parts: list[str] = field(default_factory=list)


def format_clock(value: str) -> str:
    """Normalise ``M:SS``, ``H:MM:SS`` or ``HH:MM:SS,mmm`` to ``HH:MM:SS.mmm``."""
    main, _, frac = value.replace(",", ".").partition(".")
    numbers = [int(p) for p in main.split(":")]
    while len(numbers) < 3:
        numbers.insert(0, 0)
    hours, minutes, seconds = numbers[-3:]
    millis = int((frac + "000")[:3]) if frac else 0
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def is_name_like(label: str, *, strict: bool = True) -> bool:
    """True when ``label`` could be a speaker's display name.

    Args:
        label: Candidate label.
        strict: Also require capitalised words (particles such as ``de`` or ``van`` excepted).
    """
    words = label.split()
    if not words or len(label) > 40 or len(words) > 5 or _SENTENCE_PUNCT.search(label):
        return False
    if not strict:
        return True
    if not words[0][0].isupper():
        return False
    return all(w[0].isupper() or w[0].isdigit() or w.casefold() in _PARTICLES for w in words)


def _match(text: str) -> _Candidate | None:
    match = _OTTER_LABEL.match(text)  # first: its time ("0:03") would look like a colon label
    if match and is_name_like(match.group("label").strip()):
        return _Candidate(match.group("label").strip(), "", match.group("ts"), otter=True, timed_label=True)
    match = _COLON_LABEL.match(text)
    if match:
        ts = match.group("ts") or match.group("ts0")
        return _Candidate(match.group("label").strip(), match.group("rest"), ts, timed_label=bool(match.group("ts")))
    return None


def _is_strong(cand: _Candidate, ctx: ReadContext) -> bool:
    label = cand.label
    if label in ctx.speaker_map or is_speaker_n(label):
        return True
    if resolve_role(label, ctx.speaker_map, ctx.cfg.speaker_roles) != "unknown":
        return True
    return cand.timed_label and is_name_like(label)


def _accepted(cands: Sequence[_Candidate | None], ctx: ReadContext) -> set[str]:
    present = [c for c in cands if c is not None]
    if sum(c.otter for c in present) < 2:  # one "Monday 10:30" line is not an Otter layout
        present = [c for c in present if not c.otter]
    counts = Counter(c.label for c in present if is_name_like(c.label))
    strong = {c.label for c in present if _is_strong(c, ctx)}
    return strong | {label for label, n in counts.items() if n >= 2}


def split_turns(units: Sequence[Unit], ctx: ReadContext) -> list[RawTurn]:
    """Split numbered units into speaker turns (see the module docstring).

    Args:
        units: ``(line or block number, text)`` in file order.
        ctx: The file's read context (sidecar speakers, ``cfg.speaker_roles``).

    Returns:
        Turns in order; an empty list when the units hold no text. Unlabelled files give one turn
        with ``speaker_label=None`` and role ``unknown`` (see :func:`build_transcript`).
    """
    cands = [_match(text) for _, text in units]
    accepted = _accepted(cands, ctx)
    if not accepted:
        return _whole_text(units)
    builders: list[_Builder] = []
    for (number, text), cand in zip(units, cands, strict=True):
        if cand is not None and cand.label in accepted:
            builders.append(_Builder(cand.label, number, cand.timestamp))
            text = cand.rest
        elif not builders and text.strip():
            builders.append(_Builder(None, number, None))
        if text.strip() and builders:
            builders[-1].parts.extend(p.strip() for p in text.split("\n") if p.strip())
    turns = [_to_turn(b, ctx) for b in builders if b.parts]
    if len(turns) < len(builders):
        logger.debug("%s: %d labelled turn(s) without text dropped", ctx.source_path, len(builders) - len(turns))
    return turns


def _to_turn(builder: _Builder, ctx: ReadContext) -> RawTurn:
    role = resolve_role(builder.label, ctx.speaker_map, ctx.cfg.speaker_roles)
    start = format_clock(builder.timestamp) if builder.timestamp else None
    return RawTurn(builder.label, role, "\n".join(builder.parts), builder.line, start)


def _whole_text(units: Sequence[Unit]) -> list[RawTurn]:
    text = "\n".join(t for _, t in units).strip()
    if not text:
        return []
    first = next(n for n, t in units if t.strip())
    return [RawTurn(None, "unknown", text, first)]


def build_transcript(
    ctx: ReadContext, turns: list[RawTurn], encoding: str, problems: list[Problem]
) -> IngestResult:
    """Assemble the :class:`RawDocument` of a transcript file.

    Fixes the source type (sidecar or config glob, else ``interview`` when an interviewer speaks,
    else ``session``); gives unlabelled files the role ``client`` when they are feedback; collects
    speaker names for de-identification.

    Raises:
        IngestError: QA-E011 when no turn holds text.
    """
    if not turns:
        raise IngestError(
            "no text was extracted (0 turns); the file is empty or holds only markup",
            code="QA-E011", path=ctx.source_path,
        )
    source_type = ctx.source_type or ("interview" if any(t.role == "interviewer" for t in turns) else "session")
    if all(t.speaker_label is None for t in turns):
        role = "client" if source_type == "feedback" else "unknown"
        turns = [RawTurn(None, role, t.text, t.source_line, t.start_time) for t in turns]
    names = list(ctx.known_names)
    names += [name for t in turns if t.speaker_label for name in label_names(t.speaker_label)]
    document = RawDocument(
        source_path=ctx.source_path,
        record_key="",
        source_sha256=sha256_hex(ctx.data),
        source_type=source_type,
        source_format=ctx.source_format,
        encoding=encoding,
        metadata=dict(ctx.metadata),
        turns=turns,
        known_names=list(dict.fromkeys(names)),
    )
    return IngestResult(documents=[document], problems=list(problems))
