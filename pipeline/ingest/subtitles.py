"""Readers for subtitle transcripts: WebVTT (``.vtt``, Zoom and Teams) and SubRip (``.srt``).

The speaker of a cue comes from a Teams voice span (``<v Jane Roe>text</v>``) or from a Zoom-style
``Name: text`` payload. The payload is split on its first ``": "`` only when the prefix is accepted as
a speaker: a sidecar or role label, ``Speaker N``, a name-like prefix used in at least two cues, or any
name-like prefix when most cues have one (a Zoom file). A cue without a speaker continues the current
turn; consecutive cues of one speaker merge into one turn (texts joined by one space). ``start_time``
is the first cue's start; ``source_line`` is the line of that cue's payload in the file.

Files are decoded by :func:`pipeline.ingest.decode.decode_text` first, so the parsers only ever see
clean text; their error messages (which quote file content) are never passed on.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import srt
import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError
from webvtt.models import Timestamp

from pipeline.errors import IngestError
from pipeline.ingest.base import IngestResult, Problem, RawTurn, ReadContext
from pipeline.ingest.decode import decode_text
from pipeline.ingest.roles import is_speaker_n, resolve_role
from pipeline.ingest.turns import build_transcript, is_name_like

__all__ = ["Cue", "cues_to_turns", "read_srt", "read_vtt"]

_VTT_TIMING = re.compile(r"^\s*((?:\d+:)?\d{1,2}:\d{1,2}\.\d{1,3})\s*-->")
_SRT_TIMING = re.compile(r"^\s*(\d+:\d{1,2}:\d{1,2}(?:[,.:]\d{1,3})?)\s*-->")
_VOICE = re.compile(r"^<v(?:\.[\w-]+)*\s+([^>\s][^>]*)>")
_TAGS = re.compile(r"<[^>\n]*>|\{\\[^}\n]*\}")
_LONG_DIGITS = 30
_LONG_NUMBER = re.compile(rf"^[ \t]*\d{{{_LONG_DIGITS},}}", re.MULTILINE)


@dataclass
class Cue:
    """One subtitle cue reduced to what turns need."""

    voice: str | None
    text: str
    line: int | None
    start: str


def read_vtt(ctx: ReadContext) -> IngestResult:
    """Read a WebVTT transcript (Zoom ``Name: text`` or Teams ``<v Name>`` layout).

    Raises:
        IngestError: QA-E013 when the file is not WebVTT; QA-E011 when no cue holds text.
    """
    decoded = decode_text(ctx)
    try:
        captions = webvtt.from_string(decoded.text).captions
    except MalformedFileError:
        raise IngestError(
            "not a WebVTT file: the first line must start with 'WEBVTT'", code="QA-E013", path=ctx.source_path, line=1
        ) from None
    except MalformedCaptionError:
        raise IngestError("a WebVTT cue is malformed", code="QA-E013", path=ctx.source_path) from None
    timings = _timing_lines(decoded.text, _VTT_TIMING, _vtt_start)
    lines, skipped = _locate([c.start for c in captions], timings)
    cues = [
        Cue(c.voice.strip() if c.voice else None, _clean(c.text), line, c.start)
        for c, line in zip(captions, lines, strict=True)
    ]
    problems = decoded.problems + [_skipped_cue(ctx, n) for n in skipped]
    return build_transcript(ctx, cues_to_turns(cues, ctx), decoded.encoding, problems)


def read_srt(ctx: ReadContext) -> IngestResult:
    """Read a SubRip transcript with ``Name: text`` payloads.

    Raises:
        IngestError: QA-E013 with the line of the first malformed block; QA-E011 when no cue holds text.
    """
    decoded = decode_text(ctx)
    text = decoded.text
    long_number = _LONG_NUMBER.search(text)
    if long_number is not None:  # srt's block regex backtracks on it: 1,122 digits took 11 s, 5,000 minutes
        line = text.count("\n", 0, long_number.start()) + 1
        raise IngestError(f"SRT line {line} starts with {_LONG_DIGITS} or more digits; it is not a cue number",
                          code="QA-E013", path=ctx.source_path, line=line)
    try:
        subtitles = list(srt.parse(text))
    except srt.SRTParseError as err:
        unmatched = text[err.expected_start:err.actual_start]
        offset = err.expected_start + len(unmatched) - len(unmatched.lstrip())
        line = text.count("\n", 0, offset) + 1
        raise IngestError(
            f"SRT block at line {line} is malformed (expected a cue number, a 'start --> end' line and text)",
            code="QA-E013", path=ctx.source_path, line=line,
        ) from None
    except OverflowError:  # e.g. "00:00:02,0707070707070707076": too many milliseconds for a timedelta
        raise IngestError("an SRT timestamp is out of range", code="QA-E013", path=ctx.source_path) from None
    timings = _timing_lines(text, _SRT_TIMING, _srt_start)
    lines, skipped = _locate([_format_td(s.start) for s in subtitles], timings)
    cues = []
    for sub, line in zip(subtitles, lines, strict=True):
        voice = _VOICE.match(sub.content.strip())
        cues.append(Cue(voice.group(1).strip() if voice else None, _clean(sub.content), line, _format_td(sub.start)))
    problems = decoded.problems + [_skipped_cue(ctx, n) for n in skipped]
    return build_transcript(ctx, cues_to_turns(cues, ctx), decoded.encoding, problems)


def cues_to_turns(cues: Sequence[Cue], ctx: ReadContext) -> list[RawTurn]:
    """Assign speakers to cues and merge consecutive cues of one speaker into turns."""
    speakers = _cue_speakers(cues, ctx)
    turns: list[RawTurn] = []
    current: str | None = None
    for cue, (speaker, text) in zip(cues, speakers, strict=True):
        if not text:
            continue
        if turns and (speaker is None or speaker == current):
            turns[-1].text = f"{turns[-1].text} {text}"
            continue
        role = resolve_role(speaker, ctx.speaker_map, ctx.cfg.speaker_roles)
        turns.append(RawTurn(speaker, role, text, cue.line, cue.start))
        current = speaker
    return turns


def _cue_speakers(cues: Sequence[Cue], ctx: ReadContext) -> list[tuple[str | None, str]]:
    """``(speaker or None, text without the name prefix)`` for each cue."""
    prefixes: list[str | None] = []
    for cue in cues:
        prefix, sep, _ = cue.text.partition(": ")
        ok = cue.voice is None and sep and (prefix.strip() in ctx.speaker_map or is_name_like(prefix, strict=False))
        prefixes.append(prefix.strip() if ok else None)
    counts = Counter(p for p in prefixes if p)
    zoom_layout = 2 * sum(counts.values()) >= len(cues) > 0
    result: list[tuple[str | None, str]] = []
    for cue, prefix in zip(cues, prefixes, strict=True):
        if cue.voice:
            result.append((cue.voice, cue.text))
        elif prefix and (zoom_layout or counts[prefix] >= 2 or _is_known(prefix, ctx)):
            result.append((prefix, cue.text.partition(": ")[2].strip()))
        else:
            result.append((None, cue.text))
    return result


def _is_known(label: str, ctx: ReadContext) -> bool:
    if label in ctx.speaker_map or is_speaker_n(label):
        return True
    return resolve_role(label, ctx.speaker_map, ctx.cfg.speaker_roles) != "unknown"


def _clean(text: str) -> str:
    """Cue text on one line: tags removed, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(_TAGS.sub("", text)).split())


def _timing_lines(
    text: str, pattern: re.Pattern[str], norm: Callable[[str], str | None]
) -> list[tuple[int, str | None]]:
    found = []
    for number, line in enumerate(text.split("\n"), start=1):
        match = pattern.match(line)
        if match:
            found.append((number, norm(match.group(1))))
    return found


def _locate(starts: Sequence[str], timings: Sequence[tuple[int, str | None]]) -> tuple[list[int | None], list[int]]:
    """Match parsed cues to timing lines in order; return payload lines and lines of dropped cues."""
    lines: list[int | None] = []
    skipped: list[int] = []
    pos = 0
    for start in starts:
        k = pos
        while k < len(timings) and timings[k][1] != start:
            k += 1
        if k == len(timings):
            lines.append(None)
            continue
        skipped.extend(n for n, _ in timings[pos:k])
        lines.append(timings[k][0] + 1)
        pos = k + 1
    skipped.extend(n for n, _ in timings[pos:])
    return lines, skipped


def _skipped_cue(ctx: ReadContext, line: int) -> Problem:
    return ctx.problem("QA-E015", "row_skipped", "cue timing line is malformed; the cue was skipped", line=line)


def _vtt_start(value: str) -> str | None:
    try:
        return str(Timestamp.from_string(value))
    except (MalformedCaptionError, ValueError):
        return None


def _srt_start(value: str) -> str | None:
    try:
        return _format_td(srt.srt_timestamp_to_timedelta(value))
    except (ValueError, TypeError, AttributeError, OverflowError):
        return None


def _format_td(value: dt.timedelta) -> str:
    millis = int(value.total_seconds() * 1000 + 0.5)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
