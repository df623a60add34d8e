"""Pattern detectors for identifiers that NER does not find reliably.

Each detector yields :class:`Span` objects (code-point offsets into the text it was given). The
patterns aim at recall: a phone number read out in words or a date written as "the 2nd of June" is
still an identifier.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from spacy.lang.en.stop_words import STOP_WORDS

__all__ = ["Span", "find_pattern_spans", "first_name_gazetteer", "merge_spans"]


@dataclass(frozen=True)
class Span:
    """A detected identifier: offsets, category and the detector that found it."""

    start: int
    end: int
    category: str  # NAME PLACE ORG EMAIL PHONE URL ADDRESS ID DATE AGE
    source: str  # "pattern:<name>" | "ner:<LABEL>" | "propn" | "gazetteer" | "denylist"
    priority: int = 1


_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_ORD = r"(?:st|nd|rd|th)?"
_DIGIT_WORD = r"(?:zero|oh|o|one|two|three|four|five|six|seven|eight|nine|double|triple)"
_AGE_WORDS = (r"(?:ninety(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine))?|"
              r"(?:a|one)\s+hundred(?:\s+and\s+(?:one|two|three|four|five))?)")
_ORDINAL_WORD = (
    r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|"
    r"fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth|"
    r"(?:twenty|thirty)[\s-](?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth))")
_RELATION = (
    r"(?:mum|mom|mother|dad|father|sister|brother|husband|wife|partner|boyfriend|girlfriend|fianc[eé]e?|friend|"
    r"son|daughter|boss|manager|colleague|neighbou?r|cousin|aunt|auntie|uncle|nan|nana|gran|granny|grandma|"
    r"grandmother|grandad|grandpa|grandfather|niece|nephew|kid|therapist|counsel+or|doctor|GP|nurse|teacher|"
    r"flatmate|roommate|housemate|supervisor|pastor|priest|vicar|coach|sponsor|ex)")
_STREET = (
    r"(?:Road|Rd|Street|St|Avenue|Ave|Lane|Ln|Drive|Dr|Close|Way|Court|Ct|Place|Pl|Crescent|Cres|"
    r"Terrace|Boulevard|Blvd|Grove|Gardens|Square|Sq|Hill|Row|Mews|Parade|Walk|Park|Rise|View|Wynd|Brae|Loan|"
    r"Vale|Green|Quay|Circus|Highway|Hwy|Pike|Parkway|Pkwy|Trail|Heights|Meadow|Meadows|Yard|Gate|Chase)"
)
_STREET_LOWER = (r"(?:road|rd|street|avenue|ave|lane|close|drive|terrace|crescent|grove|gardens|place|mews|court|"
                 r"rise|walk|row|way|square|park)")
#: Words that cannot be part of a street name written in lower case ("2 more days drive", "10 minutes walk").
_NOT_STREET_WORD = (
    r"(?:the|a|an|of|my|his|her|our|their|your|more|less|minutes?|mins?|hours?|days?|weeks?|months?|years?|"
    r"miles?|times?|people|kids|and|or|to|in|on|at|for|from|with|by|i|we|you|they|he|she|it|was|is|very|too|so)"
)

_PATTERNS: list[tuple[str, str, re.Pattern[str], int]] = [
    ("email", "EMAIL", re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I), 5),
    ("email_spoken", "EMAIL", re.compile(
        r"(?<![\w.])[a-z0-9][\w]*(?:\s+(?:dot|underscore|dash|hyphen)\s+[a-z0-9][\w]*)*\s+at\s+[a-z0-9][\w-]*"
        r"(?:\s+dot\s+[a-z0-9][\w-]*)*\s+dot\s+(?:com|org|net|uk|io|edu|gov|info|ie|co)\b", re.I), 5),
    ("url", "URL", re.compile(
        r"\b(?:https?://|www\.)[^\s<>\"')\]]*[^\s<>\"')\].,;:!?]|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|co|"
        r"ac|nhs|io|info|edu|gov)(?:\.uk)?\b(?:/(?:[^\s<>\"')\]]*[^\s<>\"')\].,;:!?])?)?|"
        r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}/[^\s<>\"')\]]*[^\s<>\"')\].,;:!?]", re.I), 4),
    ("labelled_id", "ID", re.compile(
        r"\b(?:mrn|nhs(?:\s+no\.?|\s+number)?|record(?:\s+number|\s+no\.?)?|patient\s+(?:id|number)|"
        r"hospital\s+(?:id|number|no\.?)|reference(?:\s+number)?|ref(?:\s+no\.?)?|"
        r"client\s+(?:id|number)|case\s+number|policy(?:\s+number)?|account(?:\s+number)?|member\s+id|"
        r"insurance\s+(?:id|number)|ssn|social\s+security(?:\s+number)?|licen[cs]e(?:\s+number)?)"
        r"(?:\s*(?:is|was|:|#|no\.?))?\s*([A-Z]{0,3}\d[\d -]{2,}\d(?:[A-Z]\b)?)", re.I), 5),
    ("phone_intl", "PHONE", re.compile(r"(?<![\w+])\+\d{1,3}[\s.-]?(?:\(0\)\s?)?\d{2,5}(?:[\s.-]?\d{2,4}){2,3}\b"), 4),
    ("phone_us", "PHONE", re.compile(r"(?<!\w)\(?\b\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}\b"), 4),
    ("phone_uk", "PHONE", re.compile(r"(?<!\w)\b0\d{2,4}[\s-]?\d{3}[\s-]?\d{3,4}\b"), 4),
    ("phone_uk_paren", "PHONE", re.compile(r"\(0\d{2,4}\)\s?\d{3,4}[\s-]?\d{3,4}\b"), 4),
    ("phone_helpline", "PHONE", re.compile(r"(?<![\w-])\b116[\s-]?\d{3}\b(?![\w-])"), 3),
    ("phone_short", "PHONE", re.compile(r"(?<![\w-])\b\d{3}[\s.-]\d{4}\b(?![\w-])"), 3),
    ("phone_spoken", "PHONE", re.compile(
        rf"\b{_DIGIT_WORD}(?:[\s,.-]+(?:{_DIGIT_WORD}|\d)){{6,}}\b", re.I), 3),
    ("digits_long", "ID", re.compile(r"(?<![\w.])\d(?:[ -]?\d){6,}(?!\w|\.\d)"), 2),
    ("date_dmy", "DATE", re.compile(
        rf"\b(?:the\s+)?\d{{1,2}}{_ORD}(?:\s+of)?\s+{_MONTHS}\b\.?(?:,?\s+\d{{4}})?", re.I), 3),
    ("date_mdy", "DATE", re.compile(rf"\b{_MONTHS}\.?\s+(?:the\s+)?\d{{1,2}}{_ORD}\b(?:,?\s+\d{{4}})?", re.I), 3),
    ("date_day_only", "DATE", re.compile(
        r"\b(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day\s+)?the\s+\d{1,2}(?:st|nd|rd|th)\b"
        r"(?!\s+(?:time|session|week|day|floor|grade|year|place|one|attempt|appointment|of\s+(?:us|them|you)))",
        re.I), 2),
    ("date_ordinal_words", "DATE", re.compile(
        rf"\b(?:the\s+)?{_ORDINAL_WORD}\s+of\s+{_MONTHS}\b|\b{_MONTHS}\s+(?:the\s+)?{_ORDINAL_WORD}\b", re.I), 3),
    ("relation_name", "NAME", re.compile(
        rf"\b(?:[Mm]y|[Hh]is|[Hh]er|[Oo]ur|[Tt]heir|[Yy]our)\s+(?:(?:little|big|older|younger|step-?|late|best)\s*)?"
        rf"(?i:{_RELATION}),?\s+([A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+)?)"), 2),
    ("name_apposition", "NAME", re.compile(
        rf"\b([A-Z][a-z'’-]+)\s*[—–]\s*(?:[Mm]y|[Hh]is|[Hh]er|[Oo]ur|[Tt]heir)\s+"
        rf"(?:(?:little|big|older|younger|step-?|late|best)\s*)?(?i:{_RELATION})\b"), 2),
    ("title_name", "NAME", re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Mx|Prof|Miss)\.?\s+[A-Z](?:\.|\b)(?:\s?[A-Z]\b\.?)?"), 2),
    ("code_id", "ID", re.compile(r"\b[A-Z]{1,4}-?\d{5,}\b"), 3),
    ("ip_address", "ID", re.compile(
        r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w]|\.\d)"), 4),
    ("vehicle_plate_uk", "ID", re.compile(r"\b[A-Z]{2}\d{2}\s?[A-Z]{3}\b"), 3),
    ("zip_us", "ADDRESS", re.compile(r"\b[A-Z]{2}\s\d{5}(?:-\d{4})?\b"), 3),
    ("code_id_spaced", "ID", re.compile(r"\b[A-Z]{1,3}\s\d{6,}\b"), 3),
    ("date_numeric", "DATE", re.compile(r"\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b|\b\d{4}-\d{2}-\d{2}\b"), 3),
    ("age_90plus", "AGE", re.compile(
        r"\b(?:9\d|1[0-1]\d)(?=[\s-]*(?:years?[\s-]*old|yrs?\b|-year-old|th\s+birthday))|"
        r"(?<=\baged\s)(?:9\d|1[0-1]\d)\b|(?<=\bage\s)(?:9\d|1[0-1]\d)\b|"
        r"(?<=\bturned\s)(?:9\d|1[0-1]\d)\b|(?:(?<=\bwas\s)|(?<='s\s)|(?<=\bis\s)|(?<=\bdied\sat\s)|"
        r"(?<=\blived\sto\s)|(?<=\bmade\sit\sto\s)|(?<=\breached\s))(?:9\d|1[0-1]\d)\b"
        r"(?!\s*(?:%|percent|minutes|pounds|dollars|quid|miles|people|times|seconds|kilos|kg|mph))",
        re.I), 3),
    ("age_90plus_words", "AGE", re.compile(
        rf"(?:(?<=\bwas\s)|(?<=\baged\s)|(?<=\bturned\s)|(?<=\bage\sof\s)|(?<=\bis\s))?{_AGE_WORDS}"
        r"(?=[\s-]*(?:years?[\s-]*old|-year-old|th\s+birthday|when\s+(?:she|he)\s+died))|"
        rf"(?:(?<=\bwas\s)|(?<=\baged\s)|(?<=\bturned\s)|(?<=\bage\sof\s)|(?<='s\s)|(?<=\bis\s)|(?<=\bdied\sat\s)|"
        rf"(?<=\blived\sto\s)|(?<=\bmade\sit\sto\s)|(?<=\breached\s)){_AGE_WORDS}\b"
        r"(?!\s*(?:minutes|percent|pounds|dollars|people|times|quid|miles|seconds))", re.I), 2),
    ("address", "ADDRESS", re.compile(
        rf"\b(?:(?i:flat|apt\.?|apartment|unit)\s+\d+[A-Za-z]?,?\s+)?\d{{1,5}}[A-Za-z]?\s+"
        rf"(?:[A-Z][a-z'’-]+\s+){{1,3}}{_STREET}\b\.?"), 4),
    ("address_lower", "ADDRESS", re.compile(
        rf"\b(?:(?:flat|apt\.?|apartment|unit)\s+\d+[a-z]?,?\s+)?\d{{1,5}}[a-z]?\s+"
        rf"(?:(?!{_NOT_STREET_WORD}\b)[a-z][a-z'’-]+\s+){{1,3}}{_STREET_LOWER}\b"), 3),
    ("postcode_uk", "ADDRESS", re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b"), 4),
]


def find_pattern_spans(text: str) -> Iterator[Span]:
    """Yield identifier spans found by the regular-expression detectors."""
    for name, category, regex, priority in _PATTERNS:
        for m in regex.finditer(text):
            start, end = (m.start(1), m.end(1)) if regex.groups else (m.start(), m.end())
            if name == "phone_spoken" and sum(c.isdigit() for c in m.group()) == 0 and \
                    len(re.findall(_DIGIT_WORD, m.group(), re.I)) < 7:
                continue
            if name == "name_apposition" and m.group(1).casefold() in _DISCOURSE:
                continue  # "Anyway — my mum ...": a discourse word, not a name
            if name == "email_spoken" and _not_an_email_local_part(m.group().split()[0]):
                continue  # "look at this dot com": a sentence, not an address read out
            yield Span(start, end, category, f"pattern:{name}", priority)


_SPOKEN_AT_VERBS = {"look", "looking", "looked", "laugh", "laughing", "laughed", "stare", "staring", "arrive",
                    "arrived", "stay", "stayed", "staying", "work", "working", "worked", "met", "meet", "home",
                    "good", "bad", "better", "worse", "best", "aim", "aimed", "aiming", "point", "pointing"}


_DISCOURSE = (set(STOP_WORDS) - {"will", "may"}) | {
    "yeah", "yes", "no", "okay", "ok", "honestly", "anyway", "right", "sorry", "um", "oh", "actually", "basically",
    "literally", "also", "well", "so", "and", "but", "like", "because", "cos", "plus", "then", "now", "today",
    "yesterday",
}


def _not_an_email_local_part(word: str) -> bool:
    low = word.casefold()
    return low in STOP_WORDS or low in _SPOKEN_AT_VERBS


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Resolve overlaps: keep the union of overlapping spans under the highest-priority category."""
    ordered = sorted(spans, key=lambda s: (s.start, -s.end))
    merged: list[Span] = []
    for span in ordered:
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            best = last if (last.priority, last.end - last.start) >= (span.priority, span.end - span.start) \
                else span
            merged[-1] = Span(last.start, max(last.end, span.end), best.category, best.source, best.priority)
        else:
            merged.append(span)
    return merged


#: The US Census 1990 first-name lists shipped as data files in the MIT-licensed PyPI package ``names``.
_GAZETTEER_PACKAGE = "names"
_GAZETTEER_FILES = ("dist.female.first", "dist.male.first")


@cache
def first_name_gazetteer() -> frozenset[str]:
    """Lower-cased person first names (US Census 1990 lists, about 5,100 distinct names).

    Read from the data files of the pinned ``names`` package with :mod:`importlib.resources` (no network).
    A gazetteer hit is only a candidate: the caller drops English dictionary words ("grace", "will", "may").
    """
    try:
        root = files(_GAZETTEER_PACKAGE)
    except ModuleNotFoundError as exc:  # a core dependency: failing loudly beats silently missing names
        raise ModuleNotFoundError(
            "the first-name gazetteer needs the 'names' package (names==0.3.0, a core dependency): "
            "reinstall the project (pip install -e .)"
        ) from exc
    out: set[str] = set()
    for name in _GAZETTEER_FILES:
        for line in root.joinpath(name).read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if fields and fields[0].isalpha():
                out.add(fields[0].casefold())
    return frozenset(out)
