"""Synthetic corpus generator for the benchmark suite: the demo corpus scaled to N segments.

``write_corpus(out_dir, target_segments, seed=0)`` writes a corpus folder laid out like ``corpora/demo``
(interviews as txt/docx with sidecar YAML, sessions as Zoom/Teams vtt, srt and txt with sidecars, feedback
exports as csv and xlsx with ``response_id, client_id, session_number, date, clinician, comment``, and a
``corpus.yaml``) holding about ``target_segments`` segments once the pipeline has segmented it.

How the text is made (all from the demo corpus, which is fictional):

- The demo's turns are read with the pipeline's own reader (``pipeline.ingest``) and split into sentences;
  each sentence goes into a pool by source type and speaker role (interviewer, client in interviews;
  therapist, client in sessions; feedback comments).
- Every identifier planted in the demo (``corpora/demo/identifiers.csv``: names, places, organisations,
  addresses, phones, e-mails, dates, URLs, record numbers, ages) becomes a typed slot. Each use of a
  sentence fills its slots with new values from word lists (names, places, streets) or new digits, so the
  de-identifier has real work on every document: planted identifiers it must catch.
- A document is a new sequence of turns; each turn draws its sentences from the pools across all demo
  documents (recombination). Sentences are varied: a clause of one sentence spliced onto another, discourse
  markers and tags added, words swapped for near-synonyms. Speakers, clinicians, case ids, session numbers
  and dates (spread over 18 months) are drawn per document.
- Sizes follow the demo's mix: about 49% of segments from interviews, 39% from sessions, 13% from feedback.

Deterministic: the same demo corpus, target and seed give byte-identical files (docx/xlsx archives are
rewritten with fixed timestamps). ``write_increment`` writes "new items" (about 1% of a corpus's segments by
default) as an inbox folder of feedback exports and transcripts, from a different random stream.

Command line::

    .venv/bin/python bench/synth.py OUT_DIR --segments 10000 [--seed 0]
    .venv/bin/python bench/synth.py INBOX --increment-of OUT_DIR [--fraction 0.01]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import random
import re
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "corpora" / "demo"

# Segments per source type in the demo corpus (outputs of `alliance run corpora/demo`): 2456 interview,
# 1946 session, 640 feedback of 5042.
TYPE_SHARE = {"interview": 2456 / 5042, "session": 1946 / 5042, "feedback": 640 / 5042}
MIN_CHARS = 12  # the default segment.min_chars: shorter sentences join the previous one
FEEDBACK_ROWS_PER_FILE = 250  # the demo's exports hold 210 and 120 rows
START_DATE = dt.date(2025, 1, 6)
DATE_SPAN_DAYS = 540


def _words(text: str) -> list[str]:
    return text.split()


FIRST_NAMES = _words("""
Aisha Alfie Amara Anders Anika Aoife Arjun Ayesha Beatriz Bronwen Callum Carys Ciaran Dafydd Delphine
Dmitri Eamon Efua Elif Emeka Esme Farah Fenella Finlay Gareth Greta Hamza Hollis Idris Imogen Ines Isla Jasper Jovan
Kofi Lachlan Leila Linnea Lorcan Mairead Malik Marisol Mateo Meera Morwenna Nadia Niamh Nkechi Obi Odette Orla Osian
Paloma Ravi Rhiannon Rohan Rosalind Ruaridh Saoirse Selin Seren Soren Tamsin Tariq Teodor Thandiwe Tobias Uma Valeria
Wren Yusuf Zainab Zofia Bernadette Cormac Declan Fionnuala Gwilym Hester Ivo Kasia Lowri Magnus Nell Piers
Quentin""")
SURNAMES = _words("""Abernethy Achterberg Adeyemi Ainsworth Balogun Barraclough Beaumont Bhattacharya Blackwood Brennan
Carmichael Castellano Chowdhury Cuthbertson Dalgleish Delacroix Doherty Drummond Ekwueme Fairbanks Farrow Featherstone
Gallagher Garside Haldane Hargreaves Holloway Iqbal Jankowski Kavanagh Kowalczyk Lindqvist Llewellyn Lockhart
MacAulay Maguire Markham Mensah Montague Mulligan Nakamura Nightingale Okonkwo Oyelaran Pemberton Penhaligon Quarshie
Radcliffe Ramaswamy Rutherford Sandoval Satterthwaite Shackleton Sinclair Szymanski Tennant Thistlethwaite Trevelyan
Underwood Vasquez Wainwright Whitlock Winterbottom Yardley Zielinski Oduya Ferreira Lindgren Moriarty Pryce""")
PLACES = _words("""
Ambleside Ashbourne Bakewell Barnstaple Bideford Bridlington Buxton Carnforth Chorley Clitheroe Cockermouth
Dalkeith Dungarvan Ennis Falmouth Frome Galway Grasmere Hebden Helston Hexham Keswick Kilkenny Kirkby Launceston
Ledbury Leominster Lisburn Llandudno Ludlow Malton Matlock Morpeth Nantwich Newry Oakham Otley Padstow Penrith
Pickering Ripon Rothbury Sedbergh Settle Skipton Stroud Tadcaster Thirsk Totnes Ulverston Wetherby Whitby Yarm
Brixton Clontarf Dorchester Somerville Roxbury Ballsbridge Jesmond Headingley Chorlton Didsbury Stoneygate""")
STREET_WORDS = _words("""
Acacia Alder Bramble Beacon Chapel Coppice Elm Fern Foundry Garden Glebe Hawthorn Heron Juniper Kiln
Larch Linden Maltings Meadow Mill Orchard Quarry Rowan Sandpiper Sorrel Tannery Thistle Willow Wharf Yew""")
STREET_KINDS = ["Road", "Lane", "Street", "Court", "Close", "Avenue", "Terrace", "Row"]
ORG_KINDS = ["Talking Therapies", "Primary School", "Community Centre", "Medical Practice", "Wellbeing Hub",
             "College", "Library", "Leisure Centre", "Family Centre", "Counselling Service", "House"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
MARKERS = ["Honestly, ", "I mean, ", "So, ", "Um, ", "To be fair, ", "And, ", "Look, ", "Well, ", "Actually, ",
           "You know, ", "Anyway, ", "I suppose ", "In a way, ", "Mind you, ", "But yeah, ", "I guess "]
TAGS = [", you know", ", I think", ", to be fair", ", if that makes sense", ", really", ", I suppose",
        ", at the time", ", looking back", ", in a way", ", mostly"]
SYNONYMS = {"really": "genuinely", "quite": "pretty", "a bit": "a little", "felt": "seemed", "week": "fortnight",
            "session": "appointment", "sessions": "appointments", "therapist": "counsellor", "anxious": "on edge",
            "hard": "tough", "good": "decent", "helpful": "useful", "talk": "chat", "worried": "nervous",
            "honestly": "truthfully", "maybe": "perhaps", "thing": "bit", "always": "usually", "kind": "sort",
            "started": "began", "difficult": "hard going", "nice": "lovely", "probably": "likely"}

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
_SLOT = re.compile(r"\u27e6([A-Z]+)\|([^\u27e7]*)\u27e7")
_SPLICE = re.compile(r", | and | but | because | so ")
_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")
_SYN_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SYNONYMS), key=len, reverse=True)) + r")\b")


@dataclass
class Pools:
    """Sentence templates (with typed identifier slots) and turn shapes taken from the demo corpus."""

    sentences: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # "<type>/<role>" -> templates
    turn_lengths: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # sentences per turn
    doc_turns: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # turns per document
    names: list[str] = field(default_factory=list)
    places: list[str] = field(default_factory=list)


def split_sentences(text: str) -> list[str]:
    """Split a turn into sentences at ``. ! ?`` followed by a capital or digit (a cheap stand-in for spaCy)."""
    return [s.strip() for s in _SENT_SPLIT.split(text) if s.strip()]


def count_segments(sentences: list[str]) -> int:
    """Segments the pipeline makes of one turn's sentences, estimated: short sentences join the previous one."""
    n = 0
    for i, sent in enumerate(sentences):
        if len(sent) >= MIN_CHARS or i == 0:
            n += 1
    return n


def _identifier_regex(demo: Path) -> tuple[re.Pattern[str], dict[str, str]]:
    types: dict[str, str] = {}
    with (demo / "identifiers.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            text = row["text"].strip()
            if len(text) >= 2:
                types.setdefault(text, row["type"])
    alts = sorted(types, key=len, reverse=True)
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(a) for a in alts) + r")(?!\w)"), types


def load_pools(demo: Path = DEMO) -> Pools:
    """Read the demo corpus with the pipeline's ingest and turn it into sentence pools with identifier slots."""
    from pipeline.ingest import ingest_corpus, load_corpus_config
    from pipeline.ingest.settings import IngestConfig

    result = ingest_corpus(demo, load_corpus_config(demo, IngestConfig()))
    ident_re, types = _identifier_regex(demo)
    pools = Pools()
    for name, kind in sorted(types.items()):
        if kind == "NAME" and name.replace("-", "").replace("'", "").isalpha() and name[0].isupper():
            pools.names.append(name)
        elif kind == "PLACE" and name.replace(" ", "").isalpha():
            pools.places.append(name)
    for doc in sorted(result.documents, key=lambda d: (d.source_path, str(d.metadata.get("record_id", "")))):
        stype = doc.source_type
        pools.doc_turns[stype].append(len(doc.turns))
        for turn in doc.turns:
            role = "respondent" if stype == "feedback" else turn.role
            key = f"{stype}/{role}"
            sents = [ident_re.sub(lambda m: f"\u27e6{types[m.group(1)]}|{m.group(1)}\u27e7", s)
                     for s in split_sentences(turn.text)]
            if not sents:
                continue
            pools.sentences[key].extend(sents)
            pools.turn_lengths[key].append(len(sents))
    return pools


def _splice_points(text: str) -> list[int]:
    """Starts of the clause boundaries (``, `` / `` and `` ...) outside identifier slots."""
    return [m.start() for m in _SPLICE.finditer(text)
            if m.start() > 3 and text.count("\u27e6", 0, m.start()) == text.count("\u27e7", 0, m.start())]


class _Filler:
    """Fills identifier slots and varies sentences, from one seeded random stream."""

    def __init__(self, rng: random.Random, pools: Pools) -> None:
        self.rng = rng
        self.pools = pools
        self.first = sorted(set(FIRST_NAMES) | {n for n in pools.names if " " not in n})
        self.places = sorted(set(PLACES) | set(pools.places))
        self.sentences = 0  # sentences of 20+ characters written, and the distinct ones (variety)
        self.distinct: set[str] = set()

    def person(self) -> str:
        return f"{self.rng.choice(self.first)} {self.rng.choice(SURNAMES)}"

    def _digits(self, text: str) -> str:
        return re.sub(r"\d", lambda _: str(self.rng.randint(0, 9)), text)

    def _date(self, orig: str) -> str:
        r = self.rng
        day, month = r.randint(1, 28), r.choice(MONTHS)
        suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
        if re.fullmatch(r"\d{4}-\d\d-\d\d", orig):
            return (START_DATE + dt.timedelta(days=r.randint(0, DATE_SPAN_DAYS))).isoformat()
        if re.fullmatch(r"\d+(st|nd|rd|th) of \w+", orig):
            return f"{day}{suffix} of {month}"
        if re.fullmatch(r"\d+ \w+", orig):
            return f"{day} {month}"
        if re.fullmatch(r"\w+ \d+(st|nd|rd|th)?, \d{4}", orig):
            return f"{month} {day}{suffix}, {r.randint(2019, 2025)}"
        if re.fullmatch(r"\w+ \d+(st|nd|rd|th)?", orig):
            return f"{month} {day}{suffix}"
        return self._digits(orig)

    def slot(self, kind: str, orig: str) -> str:
        r = self.rng
        if kind == "NAME":
            return self.person() if " " in orig else r.choice(self.first)
        if kind == "PLACE":
            return r.choice(self.places)
        if kind == "ORG":
            return f"{r.choice(self.places)} {r.choice(ORG_KINDS)}"
        if kind == "ADDRESS":
            return f"{r.randint(1, 180)} {r.choice(STREET_WORDS)} {r.choice(STREET_KINDS)}"
        if kind == "EMAIL":
            return f"{r.choice(self.first).lower()}.{r.choice(SURNAMES).lower()}@example.{r.choice(['org', 'com'])}"
        if kind == "URL":
            site = f"{r.choice(STREET_WORDS).lower()}{r.choice(self.places).lower()}"
            return f"{site}.example.org/{r.choice(['help', 'info'])}"
        if kind == "DATE":
            return self._date(orig)
        if kind == "AGE":
            return str(r.randint(90, 99)) if orig.isdigit() else orig
        return self._digits(orig)  # PHONE, ID

    def vary(self, template: str, pool: list[str]) -> str:
        """Splice, mark, tag and swap words with fixed probabilities (at least one change); then fill the slots."""
        r = self.rng
        text = template
        if r.random() < 0.6:
            other = r.choice(pool)
            heads, tails = _splice_points(text), _splice_points(other)
            if heads and tails:
                text = text[: r.choice(heads)] + other[r.choice(tails):]
        if r.random() < 0.3:
            text = self._mark(text)
        if r.random() < 0.25:
            text = self._tag(text)
        if r.random() < 0.5:
            text = _SYN_RE.sub(lambda m: SYNONYMS[m.group(1)] if r.random() < 0.5 else m.group(1), text)
        if text == template:
            text = self._tag(text) if r.random() < 0.5 else self._mark(text)
        return _SLOT.sub(lambda m: self.slot(m.group(1), m.group(2)), text)

    def _mark(self, text: str) -> str:
        if text[:1].isupper() and not text.startswith(("I ", "I'", "\u27e6")):
            return self.rng.choice(MARKERS) + text[0].lower() + text[1:]
        return text

    def _tag(self, text: str) -> str:
        if text[-1:] in ".!?" and len(text) > 8:
            return text[:-1] + self.rng.choice(TAGS) + text[-1]
        return text

    def turn(self, key: str) -> tuple[str, int]:
        """One turn's text for pool ``key`` and its estimated segment count."""
        pool = self.pools.sentences[key]
        n = self.rng.choice(self.pools.turn_lengths[key])
        sents = [self.vary(self.rng.choice(pool), pool) for _ in range(n)]
        for sent in sents:
            if len(sent) >= 20:
                self.sentences += 1
                self.distinct.add(sent)
        return " ".join(sents), count_segments(sents)


# --- writers ----------------------------------------------------------------------------------------------
def _fixed_zip(data: bytes) -> bytes:
    """Rewrite a zip archive (docx/xlsx) with fixed timestamps and member order, for byte-identical output."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o600 << 16
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps the save time whatever it is told
                data = _MODIFIED.sub(rb"\g<1>2026-01-01T00:00:00Z\g<2>", data)
            dst.writestr(fixed, data)
    return out.getvalue()


def _write_docx(path: Path, paragraphs: list[str]) -> None:
    import docx

    document = docx.Document()
    props = document.core_properties
    props.created = props.modified = dt.datetime(2026, 1, 1)
    props.author = props.last_modified_by = ""
    props.revision = 1
    for para in paragraphs:
        document.add_paragraph(para)
    buf = io.BytesIO()
    document.save(buf)
    path.write_bytes(_fixed_zip(buf.getvalue()))


def _write_xlsx(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.properties.created = wb.properties.modified = dt.datetime(2026, 1, 1)
    wb.properties.creator = ""
    ws = wb.active
    ws.title = "Responses"
    ws.append(header)
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(_fixed_zip(buf.getvalue()))


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")


def _sidecar(meta: dict[str, Any]) -> str:
    lines = []
    for key, value in meta.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k}: {v}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cues(turns: list[tuple[str, str]], style: str) -> str:
    """Subtitle text (vtt zoom/teams or srt) from (display name, text) turns; long turns become several cues."""
    t = 2.0
    blocks = ["WEBVTT\n"] if style != "srt" else []
    n = 0
    sep = "," if style == "srt" else "."
    for name, text in turns:
        for chunk in _SENT_SPLIT.split(text):
            n += 1
            dur = 1.5 + len(chunk) / 15
            body = f"<v {name}>{chunk}</v>" if style == "teams" else f"{name}: {chunk}"
            blocks.append(f"{n}\n{_stamp(t, sep)} --> {_stamp(t + dur, sep)}\n{body}\n")
            t += dur + 0.4
    return "\n".join(blocks)


@dataclass
class _Plan:
    """What remains to write: estimated segments per source type."""

    interview: int
    session: int
    feedback: int


def _date(rng: random.Random) -> dt.date:
    return START_DATE + dt.timedelta(days=rng.randint(0, DATE_SPAN_DAYS))


def _interview(fill: _Filler, idx: int, out: Path, prefix: str, budget: int) -> int:
    rng = fill.rng
    n_turns = rng.choice(fill.pools.doc_turns["interview"])
    interviewer = fill.person()
    turns, segs = [], 0
    for i in range(n_turns):
        if segs >= budget:  # the last document of a corpus stops at the target
            break
        role = "interviewer" if i % 2 == 0 else "client"
        text, n = fill.turn(f"interview/{role}")
        turns.append(("Interviewer" if role == "interviewer" else "Participant", text))
        segs += n
    stem = f"{prefix}P{idx:05d}_interview"
    meta = {"case_id": f"{prefix}P{idx:05d}", "source_type": "interview", "date": _date(rng).isoformat(),
            "interviewer": interviewer, "speakers": {"Interviewer": "interviewer", "Participant": "client"}}
    lines = [f"{label}: {text}" for label, text in turns]
    if idx % 2:
        _write_docx(out / "interviews" / f"{stem}.docx", lines)
    else:
        _write_text(out / "interviews" / f"{stem}.txt", "\n\n".join(lines) + "\n")
    _write_text(out / "interviews" / f"{stem}.yaml", _sidecar(meta))
    return segs


def _session(fill: _Filler, idx: int, out: Path, prefix: str, budget: int) -> int:
    rng = fill.rng
    n_turns = rng.choice(fill.pools.doc_turns["session"])
    therapist, client = fill.person(), fill.person()
    turns, segs = [], 0
    for i in range(n_turns):
        if segs >= budget:
            break
        role = "therapist" if i % 2 == 0 else "client"
        text, n = fill.turn(f"session/{role}")
        turns.append((role, text))
        segs += n
    session_no = rng.randint(1, 16)
    case = f"{prefix}C{idx:05d}"
    stem = f"{case}_s{session_no:02d}"
    style = ["zoom", "teams", "srt", "txt", "tc"][idx % 5]
    names = {"therapist": therapist, "client": client}
    if style in ("zoom", "teams", "srt"):
        body = _cues([(names[r], t) for r, t in turns], style)
        ext = "srt" if style == "srt" else "vtt"
        speakers = {therapist: "therapist", client: "client"}
    else:
        labels = {"txt": {"therapist": "Therapist", "client": "Client"}, "tc": {"therapist": "T", "client": "C"}}[style]
        body = "\n\n".join(f"{labels[r]}: {t}" for r, t in turns) + "\n"
        ext = "txt"
        speakers = {labels["therapist"]: "therapist", labels["client"]: "client"}
    _write_text(out / "sessions" / f"{stem}.{ext}", body)
    meta = {"case_id": case, "session": session_no, "date": _date(rng).isoformat(), "clinician": therapist,
            "source_type": "session", "speakers": speakers}
    _write_text(out / "sessions" / f"{stem}.yaml", _sidecar(meta))
    return segs


def _feedback(fill: _Filler, target: int, out: Path, prefix: str) -> int:
    """Feedback rows until ``target`` segments, sorted by date, in csv and xlsx exports of at most 250 rows."""
    rng = fill.rng
    clinicians = [("Dr. " if i % 4 == 0 else "") + fill.person() for i in range(max(4, target // 400))]
    rows, segs = [], 0
    while segs < target:
        text, n = fill.turn("feedback/respondent")
        rows.append([_date(rng).isoformat(), f"C{rng.randint(100, 999)}", rng.randint(1, 16),
                     rng.choice(clinicians), text])
        segs += n
    rows.sort(key=lambda r: r[0])
    header = ["response_id", "client_id", "session_number", "date", "clinician", "comment"]
    per_file = min(FEEDBACK_ROWS_PER_FILE, max(1, -(-len(rows) // 2)))  # at least two exports: csv and xlsx
    for w, start in enumerate(range(0, len(rows), per_file)):
        chunk = [[f"{prefix}R{start + i + 1:06d}", c, s, d, cl, t]
                 for i, (d, c, s, cl, t) in enumerate(rows[start:start + per_file])]
        name = f"{prefix}feedback_wave{w + 1:03d}"
        if w % 2 == 0:
            buf = io.StringIO(newline="")
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(chunk)
            _write_text(out / "feedback" / f"{name}.csv", buf.getvalue())
        else:
            _write_xlsx(out / "feedback" / f"{name}.xlsx", header, chunk)
    return segs


CORPUS_YAML = """# Synthetic benchmark corpus written by bench/synth.py (recombined from the fictional demo corpus).
exclude: ["**/*.yaml", "**/*.yml", "**/*.md", "**/*.json"]
source_types:
  "interviews/**": interview
  "sessions/**": session
  "feedback/**": feedback
"""


def _write(out: Path, plan: _Plan, rng: random.Random, pools: Pools, *, prefix: str = "") -> dict[str, int]:
    fill = _Filler(rng, pools)
    for sub in ("interviews", "sessions", "feedback"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    est = {"interview": 0, "session": 0, "feedback": 0}
    idx = 0
    while est["interview"] < plan.interview:
        idx += 1
        est["interview"] += _interview(fill, idx, out, prefix, plan.interview - est["interview"])
    idx = 0
    while est["session"] < plan.session:
        idx += 1
        est["session"] += _session(fill, idx, out, prefix, plan.session - est["session"])
    if plan.feedback > 0:
        est["feedback"] = _feedback(fill, plan.feedback, out, prefix)
    est["distinct_sentence_share"] = round(len(fill.distinct) / max(1, fill.sentences), 4)  # type: ignore[assignment]
    return est


def write_corpus(out_dir: str | Path, target_segments: int, *, seed: int = 0, demo: Path = DEMO,
                 pools: Pools | None = None) -> dict[str, Any]:
    """Write a synthetic corpus of about ``target_segments`` segments into ``out_dir`` (which must not exist).

    Returns:
        A summary (also written to ``OUT/synth.json``): target, seed, estimated segments per source type,
        the share of distinct sentences among those of 20+ characters, files written.
    """
    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out} exists; synth writes a new folder only")
    if target_segments < 50:
        raise ValueError(f"target_segments must be at least 50. Got {target_segments} instead.")
    pools = pools or load_pools(demo)
    plan = _Plan(**{k: max(1, round(target_segments * share)) for k, share in TYPE_SHARE.items()})
    est = _write(out, plan, random.Random(seed), pools)
    _write_text(out / "corpus.yaml", CORPUS_YAML)
    share = est.pop("distinct_sentence_share")
    summary = {"target_segments": target_segments, "seed": seed, "estimated_segments": est,
               "distinct_sentence_share": share,
               "files": sum(1 for p in out.rglob("*") if p.is_file() and p.suffix not in (".yaml", ".json"))}
    _write_text(out / "synth.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def write_increment(corpus_dir: str | Path, inbox: str | Path, *, fraction: float = 0.01, seed: int = 0,
                    demo: Path = DEMO, pools: Pools | None = None) -> dict[str, Any]:
    """Write new items worth ``fraction`` of a generated corpus's segments into ``inbox`` (a new folder).

    The inbox mirrors the corpus layout (``feedback/``, ``interviews/``, ``sessions/`` and a ``corpus.yaml``),
    with the same mix of source types, new file names (prefix ``new``) and a random stream of its own, so
    no file or row repeats one of the corpus.
    """
    corpus = Path(corpus_dir)
    summary = json.loads((corpus / "synth.json").read_text(encoding="utf-8"))
    target = max(50, round(summary["target_segments"] * fraction))
    out = Path(inbox)
    if out.exists():
        raise FileExistsError(f"{out} exists; synth writes a new folder only")
    pools = pools or load_pools(demo)
    plan = _Plan(**{k: max(1, round(target * share)) for k, share in TYPE_SHARE.items()})
    if target < 500:  # too small for whole transcripts at the demo's mix: new feedback only, like a daily export
        plan = _Plan(interview=0, session=0, feedback=target)
    est = _write(out, plan, random.Random(f"increment-{summary['seed']}-{seed}"), pools, prefix="new")
    est.pop("distinct_sentence_share")
    _write_text(out / "corpus.yaml", CORPUS_YAML)
    return {"target_segments": target, "fraction": fraction, "estimated_segments": est}


def main(argv: list[str] | None = None) -> int:
    """Command line: write a corpus, or an increment of one."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--segments", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--increment-of", type=Path, default=None, help="write new items for this generated corpus")
    ap.add_argument("--fraction", type=float, default=0.01)
    args = ap.parse_args(argv)
    if args.increment_of:
        summary = write_increment(args.increment_of, args.out, fraction=args.fraction, seed=args.seed)
    else:
        summary = write_corpus(args.out, args.segments, seed=args.seed)
    print(json.dumps(summary, indent=2, sort_keys=True))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
