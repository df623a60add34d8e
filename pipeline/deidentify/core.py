"""De-identification of ingested documents, before anything is stored.

Layers, recall first: (1) names known from the structure of the files (speaker display names,
clinician and interviewer fields) and from the pseudonym map of earlier batches, as a deny-list;
(2) spaCy NER (PERSON, GPE, LOC, FAC, ORG), the proper-noun rule and a first-name gazetteer (any case,
English dictionary words excluded); (3) pattern detectors for e-mails, phones (also read out
in words), URLs, record numbers, street addresses, postcodes, specific dates and ages over 89. Names
found by NER or the gazetteer anywhere in a batch join the deny-list, so the lower-case "dana" three
pages later is replaced too. Replacements are consistent pseudonyms (``[CLIENT_1]``, ``[THERAPIST_2]``,
``[PERSON_3]``, ``[PLACE_1]``) or fixed placeholders (``[DATE]``, ``[AGE_90+]``).

The output holds only de-identified text; the mapping goes to the restricted pseudonym file.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from spacy.lang.en.stop_words import STOP_WORDS

from pipeline.config import DeidentifyConfig
from pipeline.deidentify.detectors import Span, find_pattern_spans, first_name_gazetteer, merge_spans
from pipeline.deidentify.pseudonyms import PseudonymMap, normalise
from pipeline.ingest.base import RawDocument, RawTurn
from pipeline.ingest.roles import is_generic_label as _ingest_is_generic
from pipeline.nlp import PLACEHOLDER_RE, load_spacy
from pipeline.schema import DOCUMENT, TURN, coerce_frame

__all__ = ["DeidResult", "deidentify_documents", "is_generic_label", "ner_pipeline", "scrub_text"]

logger = logging.getLogger(__name__)

_ROLE_WORDS = {
    "therapist",
    "counsellor",
    "counselor",
    "clinician",
    "client",
    "patient",
    "participant",
    "respondent",
    "interviewer",
    "researcher",
    "moderator",
    "t",
    "c",
    "i",
    "p",
    "r",
    "dr",
    "doctor",
    "speaker",
    "unknown",
}
#: Terms NER often mislabels that are not identifiers in this domain.
DEFAULT_KEEP = {
    "cbt",
    "dbt",
    "emdr",
    "erp",
    "act",
    "ocd",
    "ptsd",
    "adhd",
    "gad",
    "nhs",
    "zoom",
    "teams",
    "god",
    "mum",
    "mom",
    "dad",
    "mam",
    "covid",
    "christmas",
    "easter",
    "google",
    "youtube",
    "instagram",
    "facebook",
    "whatsapp",
    "therapy",
    "thanks",
    "okay",
    "ok",
    "mm",
    "hmm",
    "yeah",
    "sorry",
    "um",
    "uh",
    "wow",
    "thursday",
    "monday",
    "tuesday",
    "wednesday",
    "friday",
    "saturday",
    "sunday",
    "hi",
    "hello",
    "hey",
    "bye",
    "goodbye",
    "cheers",
    "yes",
    "yep",
    "nope",
    "oh",
    "ah",
    "aw",
    "er",
    "erm",
    "huh",
    "right",
    "sure",
    "honestly",
    "anyway",
    "alright",
    "mhm",
    "mm-hm",
    "uh-huh",
    "ha",
    "haha",
    "lol",
    "thank",
    "morning",
    "afternoon",
    "evening",
    "night",
    "sir",
    "madam",
    "miss",
    "dear",
    "pardon",
    "exactly",
    "totally",
    # therapy vocabulary that NER and the proper-noun rule take for names or organisations
    "mindfulness",
    "compassion",
    "schema",
    "gestalt",
    "thought record",
    "worry tree",
    "bank holiday",
    "gad-7",
    "phq-9",
    "core-10",
    "homework",
    "recovery",
    "distress tolerance",
}
#: A word seen this often in lower case in a batch is an ordinary word, not a name.
_ORDINARY_MIN_COUNT = 2
_CALENDAR = {
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
}
_NOT_NAME_ENTS = {"DATE", "TIME", "MONEY", "PERCENT", "QUANTITY", "ORDINAL", "CARDINAL"}
#: Nationalities, religions and languages: not identifiers of a person on their own.
_DEMONYMS = set(
    [
        "english",
        "british",
        "scottish",
        "welsh",
        "irish",
        "american",
        "canadian",
        "australian",
        "french",
        "german",
        "spanish",
        "italian",
        "polish",
        "portuguese",
        "dutch",
        "swedish",
        "norwegian",
        "danish",
        "finnish",
        "russian",
        "ukrainian",
        "chinese",
        "japanese",
        "korean",
        "indian",
        "pakistani",
        "bangladeshi",
        "nigerian",
        "ghanaian",
        "kenyan",
        "somali",
        "ethiopian",
        "jamaican",
        "mexican",
        "brazilian",
        "filipino",
        "vietnamese",
        "thai",
        "turkish",
        "greek",
        "arab",
        "arabic",
        "persian",
        "jewish",
        "muslim",
        "christian",
        "catholic",
        "protestant",
        "hindu",
        "sikh",
        "buddhist",
        "african",
        "asian",
        "european",
        "latino",
        "latina",
        "latinx",
        "hispanic",
        "black",
        "white",
        "caribbean",
        "celtic",
        "gaelic",
        "urdu",
        "punjabi",
        "bengali",
        "hindi",
        "tamil",
        "mandarin",
        "cantonese",
        "swahili",
        "yoruba",
        "igbo",
        "hebrew",
    ]
)
_ORG_SUFFIX = re.compile(
    r"\b(?:Surgery|Clinic|Centre|Center|Therapies|Therapy|Program|Programme|Hospital|Practice|School|Academy|"
    r"College|University|Services|Service|Trust|Foundation|Counselling|Counseling|Group|Partnership|Health|"
    r"Institute|Church|Library|Ltd|Inc)\b"
)
#: A proper-noun run ending in a street word is an address or place, not a person ("Clarendon Way").
_STREET_END = re.compile(
    r"\b(?:Road|Street|Avenue|Lane|Close|Drive|Way|Place|Terrace|Crescent|Gardens|Grove|Mews|Square)$"
)
_DICTIONARIES: dict[str, frozenset[str]] = {}


def _dictionary_words(nlp: Any) -> frozenset[str]:
    """English dictionary words (WordNet lemmas) from the model's lemmatizer tables; empty when it has none.

    Used only to tell a sentence-initial capitalised common word ("Hospital record number ...") from a
    name when the batch is too small to have seen the word in lower case.
    """
    path = getattr(nlp, "path", None)
    key = str(path)
    if key not in _DICTIONARIES:
        words: set[str] = set()
        lookups_dir = None if path is None else Path(path) / "lemmatizer" / "lookups"
        if lookups_dir is not None and (lookups_dir / "lookups.bin").is_file():
            from spacy.lookups import Lookups

            index = Lookups().from_disk(lookups_dir).get_table("lemma_index", {})
            for entries in index.values():
                words.update(w for w in entries if "_" not in w)
        _DICTIONARIES[key] = frozenset(words)
    return _DICTIONARIES[key]


_FORMS: dict[str, tuple[frozenset[str], tuple[tuple[str, str], ...]]] = {}


def _english_forms(nlp: Any) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    """Irregular inflected forms ("hung", "drew") and the suffix rules of the model's lemmatizer tables.

    With :func:`_dictionary_words` they say whether a word is an English word form: a dictionary lemma, an
    irregular form of one, or (by the rules: "-s", "-ed", "-ing", ...) a regular form of one.
    """
    path = getattr(nlp, "path", None)
    key = str(path)
    if key not in _FORMS:
        forms: set[str] = set()
        rules: list[tuple[str, str]] = []
        lookups_dir = None if path is None else Path(path) / "lemmatizer" / "lookups"
        if lookups_dir is not None and (lookups_dir / "lookups.bin").is_file():
            from spacy.lookups import Lookups

            lookups = Lookups().from_disk(lookups_dir)
            for table in lookups.get_table("lemma_exc", {}).values():
                forms.update(w for w in table if "_" not in w)
            for pos_rules in lookups.get_table("lemma_rules", {}).values():
                rules += [(old, new) for old, new in pos_rules if old and old.isalpha()]
        _FORMS[key] = (frozenset(forms), tuple(dict.fromkeys(rules)))
    return _FORMS[key]


#: Given names that are also everyday words: never gazetteer names on their own. Most are English
#: dictionary words anyway (excluded by that test); the list keeps them out when a model has no lemmatizer
#: tables, and adds transcript words the dictionary lacks ("nana", "miles").
_WORD_NAMES = {
    "will", "may", "grace", "hope", "joy", "faith", "mark", "bill", "rose", "june", "april", "august", "art",
    "dawn", "summer", "autumn", "winter", "heather", "holly", "ivy", "iris", "daisy", "amber", "ruby", "pearl",
    "crystal", "destiny", "patience", "prudence", "charity", "chastity", "honey", "candy", "sunny", "rusty",
    "buddy", "sonny", "guy", "sky", "river", "rich", "frank", "pat", "sue", "don", "chance", "chase", "drew",
    "rob", "bob", "jack", "carol", "gene", "jean", "miles", "nana", "nan", "gran", "granny", "nanny", "earl",
    "major", "king", "duke", "baby", "bunny", "lady", "angel", "star", "easter", "christmas", "merry",
    "harmony", "unity", "trinity", "love", "precious", "lucky", "golden", "sterling", "ok", "okay",
}
#: Tags of a word that can be a surname after a gazetteer first name ("carla whitmore").
_NOUN_TAGS = {"NN", "NNS", "NNP", "NNPS"}

_NER_CATEGORY = {"PERSON": "NAME", "GPE": "PLACE", "LOC": "PLACE", "FAC": "PLACE", "ORG": "ORG"}
_ROLE_TITLE = {"client": "Client", "therapist": "Therapist", "interviewer": "Interviewer", "unknown": "Speaker"}


def _at_sentence_start(tok: Any) -> bool:
    prev = tok.doc[tok.i - 1] if tok.i > 0 else None
    return prev is None or prev.text in {".", "!", "?", "…", ":"} or "\n" in prev.text_with_ws


def is_generic_label(label: str | None) -> bool:
    """True for role labels that identify no one ("Therapist", "T", "Speaker 2"); ``None`` counts as generic.

    The same rule as ingest's speaker-label reader (:func:`pipeline.ingest.roles.is_generic_label`).
    """
    return not label or _ingest_is_generic(label.strip().rstrip(":"))


@dataclass
class DeidResult:
    """De-identified DOCUMENT and TURN tables plus restricted redaction records (no original text)."""

    documents: pd.DataFrame
    turns: pd.DataFrame
    redactions: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


class _Deidentifier:
    def __init__(self, cfg: DeidentifyConfig, pseudonyms: PseudonymMap) -> None:
        self.cfg = cfg
        self.map = pseudonyms
        self.keep = DEFAULT_KEEP | {normalise(t) for t in cfg.keep_terms}
        self.nlp = load_spacy(cfg.spacy_model, "ner+tags" if cfg.proper_nouns else "ner")
        self.counts: dict[str, int] = {}
        self._deny_re: re.Pattern[str] | None = None
        self._lower_vocab: set[str] = set()
        self._trusted: set[str] = set()  # names from the files' structure: always matched in any case
        self._batch_names: set[str] = set()  # every name-like key found in this batch (the deny-list)
        self._dictionary = _dictionary_words(self.nlp)
        self._irregular, self._inflection_rules = _english_forms(self.nlp)
        self._first_names = first_name_gazetteer() if cfg.first_names else frozenset()

    # -- names from structure and NER -------------------------------------------------------
    def register_structural_names(self, doc: RawDocument) -> None:
        found: list[str] = []
        for turn in doc.turns:
            if turn.speaker_label and not is_generic_label(turn.speaker_label):
                self.map.assign(turn.speaker_label, turn.role if turn.role != "unknown" else "NAME")
                found.append(turn.speaker_label)
        meta = doc.metadata
        if meta.get("clinician"):
            self.map.assign(str(meta["clinician"]), "therapist")
            found.append(str(meta["clinician"]))
        if meta.get("interviewer"):
            self.map.assign(str(meta["interviewer"]), "interviewer")
            found.append(str(meta["interviewer"]))
        for name in [*doc.known_names, *self.cfg.extra_names]:
            if not is_generic_label(name):
                if self.map.get(name) is None:
                    self.map.assign(name, "NAME")
                found.append(name)
        for name in found:
            key = normalise(name)
            parts = {p for p in key.replace("-", " ").split() if len(p) >= 3}
            self._trusted.update({key} | parts)
            self._batch_names.update({key} | parts)

    def _deny_names(self) -> set[str]:
        if self.cfg.remember_names:
            return self._batch_names | set(self.map.names())
        return self._batch_names

    def _register(self, text: str, category: str) -> None:
        """Give a detected name a pseudonym and add it (and its parts) to this batch's deny-list.

        The deny-list holds only what this batch's own text and structure reveal, never names remembered
        from earlier runs, so the same inputs always give the same output whatever the map held before.
        """
        self.map.assign(text, category)
        key = normalise(text)
        self._batch_names.add(key)
        if category == "NAME":
            self._batch_names.update(p for p in key.replace("-", " ").split() if len(p) >= 3)

    def ner_spans(self, texts: Sequence[str], docs: Sequence[Any] | None = None) -> list[list[Span]]:
        # ``docs``: the texts already parsed by ``ner_pipeline(cfg)`` (batch tasks); else parsed here.
        docs = list(docs) if docs is not None else list(self.nlp.pipe(texts, batch_size=self.cfg.batch_size))
        # Words seen in lower case anywhere in the batch are ordinary words, not names, even when they
        # start a sentence ("Honestly, ..."); a capitalised word never seen in lower case probably is a name.
        lower = Counter(t.text for d in docs for t in d if t.text.islower())
        self._lower_vocab = {w for w, n in lower.items() if n >= _ORDINARY_MIN_COUNT}
        out: list[list[Span]] = []
        for doc in docs:
            spans = []
            for ent in doc.ents:
                category = _NER_CATEGORY.get(ent.label_)
                if category is None or ent.label_ not in self.cfg.ner_labels:
                    continue
                if not self._plausible(ent.text, category) and not self._lower_case_full_name(ent):
                    continue
                if len(ent) == 1 and ent.text.casefold() in self._lower_vocab and _at_sentence_start(ent[0]):
                    continue  # "Felt ..." / "Badly, ..." at a sentence start: an ordinary word, not a name
                spans.append(Span(ent.start_char, ent.end_char, category, f"ner:{ent.label_}", 2))
                self._register(ent.text, category)
            if self.cfg.proper_nouns:
                spans += self._proper_noun_spans(doc)
            if self._first_names:
                spans += self._gazetteer_spans(doc, spans)
            out.append(spans)
        self._deny_re = None
        return out

    def _lower_case_full_name(self, ent: Any) -> bool:
        """A lower-case person's full name ("me and rosie rowntree"): NER PERSON over 2-3 proper-noun tags."""
        return (
            ent.label_ == "PERSON"
            and 2 <= len(ent) <= 3
            and all(
                t.tag_ in ("NNP", "NNPS") and t.text.isalpha() and t.text.islower() and len(t.text) >= 3
                and t.text not in STOP_WORDS and t.text not in self.keep and t.text not in _ROLE_WORDS
                for t in ent
            )
        )

    def _proper_noun_spans(self, doc: Any) -> list[Span]:
        """Runs of mid-sentence proper nouns (tag NNP) that NER missed: nicknames, rare names, clinics."""
        spans: list[Span] = []
        run: list[Any] = []
        for tok in [*doc, None]:
            if tok is not None and self._name_like(tok):
                run.append(tok)
                continue
            if run:
                text = doc[run[0].i : run[-1].i + 1].text
                category = "ORG" if _ORG_SUFFIX.search(text) else "ADDRESS" if _STREET_END.search(text) else "NAME"
                if _ORG_SUFFIX.fullmatch(text):
                    pass  # "Hospital", "School" alone: a kind of place, not a named one
                elif self._plausible(text, category):
                    spans.append(Span(run[0].idx, run[-1].idx + len(run[-1].text), category, "propn", 1))
                    self._register(text, category)
                run = []
        return spans

    def _gazetteer_spans(self, doc: Any, found: Sequence[Span] = ()) -> list[Span]:
        """First names from the gazetteer in any case ("i told carla"), with a following surname if any.

        A token is a first name when its lower-cased form is in the gazetteer and it is not an English word
        (a dictionary lemma or an irregular form of one from the model's lemmatizer tables: "grace", "will",
        "may", "hung"), a stop word, a keep-list, role or calendar word, or a word name (``_WORD_NAMES``).
        Unlike the proper-noun rule it does not skip words seen in lower case in the batch: a name written in
        lower case twice is still a name. A following token that could be a surname (a noun that is no
        English word form, or a capitalised proper noun: "carla whitmore", "carla Baker") joins the span.
        NER's entity type is not trusted on lower-case text ("carla" may come out as GPE or ORG); only a token
        inside a place or organisation already accepted in ``found`` is left to that span.
        """
        other = [(s.start, s.end) for s in found if s.category != "NAME"]

        def in_other(tok: Any) -> bool:
            return any(a < tok.idx + len(tok.text) and tok.idx < b for a, b in other)

        spans: list[Span] = []
        i = 0
        while i < len(doc):
            tok = doc[i]
            if not self._gazetteer_name(tok) or in_other(tok):
                i += 1
                continue
            end = i + 1
            while (
                end < len(doc) and end - i < 3 and doc[end - 1].whitespace_
                and self._surname_like(doc[end]) and not in_other(doc[end])
            ):
                end += 1
            text = doc[i:end].text
            spans.append(Span(tok.idx, doc[end - 1].idx + len(doc[end - 1].text), "NAME", "gazetteer", 1))
            self._register(text, "NAME")
            i = end
        return spans

    def _ordinary_token(self, tok: Any) -> bool:
        """Not a name on its own: too short, not a word, a stop, keep, role, calendar or demonym word."""
        low = tok.text.casefold()
        return (
            len(low) < 3
            or not tok.text.isalpha()
            or low in STOP_WORDS
            or low in self.keep
            or low in _ROLE_WORDS
            or low in _CALENDAR
            or low in _DEMONYMS
            or low in _WORD_NAMES
        )

    def _english_word(self, low: str) -> bool:
        return low in self._dictionary or low in self._irregular

    def _gazetteer_name(self, tok: Any) -> bool:
        low = tok.text.casefold()
        if not (tok.text.islower() or tok.text.istitle() or tok.text.isupper()):
            return False  # mixed case ("RoBERTa"): a product or a brand, not a first name
        return low in self._first_names and not self._ordinary_token(tok) and not self._english_word(low)

    def _surname_like(self, tok: Any) -> bool:
        if self._ordinary_token(tok):
            return False
        low = tok.text.casefold()
        if tok.text[:1].isupper() and tok.tag_ in ("NNP", "NNPS"):
            return True  # "carla Baker": a capitalised proper noun, even if also a word
        if self._gazetteer_name(tok):
            return True  # "mary ann"
        if tok.tag_ and tok.tag_ not in _NOUN_TAGS:
            return False  # "carla notices everything": a verb, not a surname
        return not self._english_word(low) and not self._regular_form(low)

    def _regular_form(self, low: str) -> bool:
        """A regular inflection of a dictionary word by the lemmatizer's suffix rules ("thinks", "called")."""
        return any(
            low.endswith(old) and len(low) > len(old) + 2 and low[: len(low) - len(old)] + new in self._dictionary
            for old, new in self._inflection_rules
        )

    def _name_like(self, tok: Any) -> bool:
        if (
            tok.tag_ not in ("NNP", "NNPS", "NN", "NNS")
            or not tok.text[:1].isupper()
            or tok.ent_type_ in _NOT_NAME_ENTS
        ):
            return False
        if tok.tag_ in ("NN", "NNS") and tok.text.casefold() in self._lower_vocab:
            return False
        if tok.ent_type_ in ("NORP", "LANGUAGE") and tok.text.casefold() in _DEMONYMS:
            return False
        if not re.fullmatch(r"[^\W\d_][\w'’-]*", tok.text) or (tok.text.isupper() and len(tok.text) <= 5):
            return False
        low = tok.text.casefold()
        if low in self.keep or low in STOP_WORDS or low in _ROLE_WORDS or low in _CALENDAR:
            return False
        if low.endswith("s") and low[:-1] in _CALENDAR:
            return False
        if low in self._lower_vocab and (_at_sentence_start(tok) or tok.tag_ in ("NN", "NNS")):
            return False
        return (
            not _at_sentence_start(tok)
            or tok.ent_type_ in ("PERSON", "ORG", "GPE", "LOC", "FAC")
            or (low not in self._lower_vocab and low not in self._dictionary)
        )

    def _plausible(self, text: str, category: str) -> bool:
        key = normalise(text)
        if not key or key in self.keep or key in STOP_WORDS or PLACEHOLDER_RE.search(text):
            return False
        if not any(ch.isalpha() for ch in text) or not any(ch.isupper() for ch in text):
            return False
        if re.fullmatch(r"[A-Z&]{1,4}", text.strip()):
            return False  # GP, A&E, BMI, ECG: short acronyms are services and measures, not identifiers
        return not (category == "NAME" and key in _ROLE_WORDS)

    def deny_regex(self) -> re.Pattern[str] | None:
        """One regex for every known name, case-insensitive.

        Single words that are also ordinary lower-case words in this batch match only capitalised
        ("Felt" tagged as a name must not remove every "felt"), unless they come from the files' structure.
        """
        if self._deny_re is None:
            names = sorted(
                (n for n in self._deny_names() if len(n) >= 3 and n not in STOP_WORDS and n not in self.keep),
                key=len,
                reverse=True,
            )
            if not names:
                return None
            alternatives = []
            for name in names:
                if " " not in name and name in self._lower_vocab and name not in self._trusted:
                    body = f"(?-i:{re.escape(name[:1].upper())}){re.escape(name[1:])}"
                else:
                    body = re.escape(name).replace(r"\ ", r"\s+")
                alternatives.append(body)
            self._deny_re = re.compile(
                rf"(?<![\w\[])(?:dr\.?\s+|mr\.?\s+|mrs\.?\s+|ms\.?\s+)?(?:{'|'.join(alternatives)})(?![\w\]])",
                re.IGNORECASE,
            )
        return self._deny_re

    def _ordinary_at_start(self, text: str, start: int, found: str) -> bool:
        """A deny-list hit that is one ordinary word ("Hope", "Ring") at the start of a sentence: keep it.

        Names from the files' structure are always replaced; a name found only by NER or the proper-noun
        rule that is also a common lower-case word in the batch is replaced mid-sentence only.
        """
        key = normalise(found)
        if " " in key or key in self._trusted or key not in self._lower_vocab:
            return False
        before = text[:start].rstrip(" \t\"'‘“(—–-")
        return not before or before[-1] in ".!?…:\n"

    # -- replacing ----------------------------------------------------------------------------
    def scrub(self, text: str, ner: list[Span]) -> tuple[str, list[tuple[int, int, str, str, str]]]:
        spans = list(find_pattern_spans(text)) + ner
        deny = self.deny_regex()
        if deny is not None:
            spans += [Span(m.start(), m.end(), "NAME", "denylist", 2) for m in deny.finditer(text)
                      if not self._ordinary_at_start(text, m.start(), m.group())]
        merged = merge_spans(spans)
        pieces: list[str] = []
        records = []
        pos = 0
        new_len = 0
        for span in merged:
            original = text[span.start : span.end]
            replacement = self.map.get(original) or self.map.assign(original, span.category)
            pieces.append(text[pos : span.start])
            new_len += span.start - pos
            records.append((new_len, new_len + len(replacement), span.category, span.source, replacement))
            pieces.append(replacement)
            new_len += len(replacement)
            pos = span.end
            self.counts[span.category] = self.counts.get(span.category, 0) + 1
        pieces.append(text[pos:])
        return "".join(pieces), records


def scrub_text(text: str, cfg: DeidentifyConfig, pseudonyms: PseudonymMap) -> str:
    """De-identify one free text (metadata values, run names) with all layers."""
    engine = _Deidentifier(cfg, pseudonyms)
    ner = engine.ner_spans([text])[0]
    return engine.scrub(text, ner)[0]


def _generalise_date(value: Any, precision: str) -> str | None:
    if value is None or value == "":
        return None
    s = str(value)
    m = re.match(r"^(\d{4})-(\d{2})(?:-(\d{2}))?", s)
    if not m:
        return None
    if precision == "day":
        return s[:10]
    if precision == "month":
        return f"{m.group(1)}-{m.group(2)}"
    if precision == "year":
        return m.group(1)
    return None


def ner_pipeline(cfg: DeidentifyConfig) -> Any:
    """The spaCy pipeline whose parses de-identification reads (loaded once per process)."""
    return load_spacy(cfg.spacy_model, "ner+tags" if cfg.proper_nouns else "ner")


def deidentify_documents(
    raw_docs: Sequence[RawDocument],
    cfg: DeidentifyConfig,
    pseudonyms: PseudonymMap,
    *,
    corpus_id: str,
    parsed: Sequence[Any] | None = None,
) -> DeidResult:
    """De-identify a batch of ingested documents.

    Args:
        raw_docs: Output of ``pipeline.ingest`` (raw text: never stored).
        cfg: De-identification settings.
        pseudonyms: The corpus's pseudonym map (updated in place; save it afterwards).
        corpus_id: Corpus name written to DOCUMENT.corpus_id.
        parsed: Every turn's text (in document, then turn order) already parsed by :func:`ner_pipeline`,
            e.g. by parallel batch tasks; ``None`` parses here. Names are assigned in this fixed order
            either way, so the result does not depend on who parsed.

    Returns:
        DOCUMENT and TURN tables whose text is de-identified, and REDACTION records.
    """
    engine = _Deidentifier(cfg, pseudonyms)
    for doc in raw_docs:
        engine.register_structural_names(doc)
    flat: list[RawTurn] = [t for d in raw_docs for t in d.turns]
    ner = engine.ner_spans([t.text for t in flat], docs=parsed)
    doc_rows, turn_rows, red_rows = [], [], []
    k = 0
    for doc in raw_docs:
        doc_id = doc.document_id
        parts: list[str] = []
        offset = 0
        for ti, turn in enumerate(doc.turns):
            clean, records = engine.scrub(turn.text, ner[k])
            k += 1
            label = _speaker_label(turn, pseudonyms)
            prefix = f"{label}: " if label and doc.source_type != "feedback" else ""
            sep = "\n\n" if parts else ""
            start = offset + len(sep) + len(prefix)
            parts.append(sep + prefix + clean)
            offset += len(sep) + len(prefix) + len(clean)
            turn_rows.append(
                {
                    "document_id": doc_id,
                    "turn_index": ti,
                    "speaker": turn.role,
                    "speaker_label": label or _ROLE_TITLE.get(turn.role, "Speaker"),
                    "start_char": start,
                    "end_char": start + len(clean),
                    "source_line": turn.source_line,
                    "start_time": turn.start_time,
                    "text": clean,
                }
            )
            red_rows += [
                {
                    "document_id": doc_id,
                    "start_char": start + a,
                    "end_char": start + b,
                    "category": c,
                    "detector": s,
                    "replacement": r,
                }
                for a, b, c, s, r in records
            ]
        doc_rows.append(_document_row(doc, "".join(parts), cfg, pseudonyms, engine, corpus_id))
    documents = coerce_frame(pd.DataFrame(doc_rows, columns=DOCUMENT.column_names), DOCUMENT)
    turns = coerce_frame(pd.DataFrame(turn_rows, columns=TURN.column_names), TURN)
    turns = turns[turns["end_char"] > turns["start_char"]].reset_index(drop=True)
    redactions = pd.DataFrame(
        red_rows, columns=["document_id", "start_char", "end_char", "category", "detector", "replacement"]
    )
    logger.info("de-identified %d documents: %s", len(doc_rows), dict(sorted(engine.counts.items())))
    return DeidResult(documents, turns, redactions, dict(engine.counts))


def _speaker_label(turn: RawTurn, pseudonyms: PseudonymMap) -> str:
    if turn.speaker_label is None:
        return ""
    if is_generic_label(turn.speaker_label):
        return _ROLE_TITLE.get(turn.role, "Speaker")
    return pseudonyms.get(turn.speaker_label) or _ROLE_TITLE.get(turn.role, "Speaker")


def _document_row(
    doc: RawDocument, text: str, cfg: DeidentifyConfig, pseudonyms: PseudonymMap, engine: _Deidentifier, corpus_id: str
) -> dict[str, Any]:
    meta = dict(doc.metadata)
    clinician = meta.pop("clinician", None)
    interviewer = meta.pop("interviewer", None)
    date = meta.pop("date", None)
    case_id = meta.pop("case_id", None)
    session = meta.pop("session", None)
    clean_meta: dict[str, Any] = {}
    if interviewer:
        clean_meta["interviewer"] = pseudonyms.assign(str(interviewer), "interviewer")
    for key, value in sorted(meta.items()):
        if isinstance(value, str):
            clean_meta[key] = engine.scrub(value, [])[0]
        elif isinstance(value, (int, float, bool)) or value is None:
            clean_meta[key] = value
        else:
            clean_meta[key] = engine.scrub(str(value), [])[0]
    return {
        "document_id": doc.document_id,
        "corpus_id": corpus_id,
        "source_path": doc.source_path,
        "record_key": doc.record_key,
        "source_sha256": doc.source_sha256,
        "source_type": doc.source_type,
        "source_format": doc.source_format,
        "case_id": None if case_id in (None, "") else engine.scrub(str(case_id), [])[0],
        "session": None if session in (None, "") else int(session),
        "collected_at": _generalise_date(date, cfg.date_precision),
        "clinician": pseudonyms.assign(str(clinician), "therapist") if clinician else None,
        "encoding": doc.encoding,
        "metadata": json.dumps(clean_meta, sort_keys=True, ensure_ascii=False),
        "text": text,
    }
