"""Speaker roles: built-in label words, role resolution, and which labels are names (PII).

Resolution order for a label: the sidecar's ``speakers`` map (exact label), then ``cfg.speaker_roles``
(case-insensitive), then the built-in words below, else ``unknown``. Built-in words match the whole
label ignoring case and a trailing dot, or its first word when the rest is a number or one letter
(``Client 2``, ``Participant B``). ``Dr``/``Dr.`` followed by a name is a therapist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["ROLE_WORDS", "builtin_role", "is_generic_label", "is_speaker_n", "label_names", "resolve_role"]

ROLE_WORDS: dict[str, str] = {
    **dict.fromkeys(
        ("therapist", "counsellor", "counselor", "clinician", "psychologist", "psychotherapist", "t", "th"),
        "therapist",
    ),
    **dict.fromkeys(
        ("client", "patient", "participant", "respondent", "interviewee", "c", "p", "r", "cl", "pt"),
        "client",
    ),
    **dict.fromkeys(("interviewer", "researcher", "moderator", "facilitator", "i", "int"), "interviewer"),
}
_GENERIC_WORDS = frozenset({"speaker", "unknown", "unidentified", "other", "audience"})
_SUFFIX = re.compile(r"^(?P<word>[^\W\d_]+)\.?\s+(?:\d{1,3}|[A-Za-z])$")
_SPEAKER_N = re.compile(r"^speaker\s*\d{1,3}$", re.IGNORECASE)
_DOCTOR = re.compile(r"^dr\.?\s+(?P<name>\S.*)$", re.IGNORECASE)
_PAREN = re.compile(r"^(?P<word>[^\W\d_]+)\.?\s*\((?P<inner>[^()]{1,40})\)$")


def _word(label: str) -> str:
    return label.strip().rstrip(".").casefold()


def builtin_role(label: str) -> str | None:
    """Role of a built-in label word (``Therapist``, ``T``, ``Client 2``, ``Dr. Lee``), else ``None``."""
    word = _word(label)
    if word in ROLE_WORDS:
        return ROLE_WORDS[word]
    match = _SUFFIX.match(label.strip())
    if match and match.group("word").casefold() in ROLE_WORDS and len(match.group("word")) > 1:
        return ROLE_WORDS[match.group("word").casefold()]
    paren = _PAREN.match(label.strip())
    if paren and paren.group("word").casefold() in ROLE_WORDS:
        return ROLE_WORDS[paren.group("word").casefold()]
    if _DOCTOR.match(label.strip()):
        return "therapist"
    return None


def is_speaker_n(label: str) -> bool:
    """True for unassigned-speaker labels such as ``Speaker 1``."""
    return _SPEAKER_N.match(label.strip()) is not None


def is_generic_label(label: str) -> bool:
    """True when a label is a role word or ``Speaker N`` rather than a person's name."""
    if is_speaker_n(label) or _word(label) in _GENERIC_WORDS:
        return True
    clean = label.strip()
    return builtin_role(clean) is not None and not _DOCTOR.match(clean) and not _PAREN.match(clean)


def label_names(label: str) -> list[str]:
    """Names a label reveals, for de-identification deny-lists.

    Returns ``[]`` for generic labels, else the label itself plus the name inside
    ``Therapist (Jane)`` or after ``Dr.``.
    """
    clean = label.strip()
    if not clean or is_generic_label(clean):
        return []
    names = [clean]
    for match in (_PAREN.match(clean), _DOCTOR.match(clean)):
        if match is not None:
            names.append(match.group(match.lastgroup or 0).strip())
    return names


def resolve_role(label: str | None, speaker_map: Mapping[str, str], extra_roles: Mapping[str, str]) -> str:
    """Return the role of ``label``.

    Args:
        label: Speaker label as written, or ``None``.
        speaker_map: Sidecar ``speakers`` (exact label -> role).
        extra_roles: ``cfg.speaker_roles`` (label -> role, case-insensitive).

    Returns:
        ``client`` | ``therapist`` | ``interviewer`` | ``unknown``.
    """
    if label is None:
        return "unknown"
    clean = label.strip()
    if clean in speaker_map:
        return speaker_map[clean]
    folded = clean.casefold()
    for key, role in extra_roles.items():
        if key.strip().casefold() == folded:
            return role
    return builtin_role(clean) or "unknown"
