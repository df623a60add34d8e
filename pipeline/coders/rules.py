"""RulesCoder: the codebook's patterns through spaCy's Matcher and PhraseMatcher.

The transparent baseline: every assignment names the pattern that fired and the matched words as
evidence. A code fires only for segments whose speaker is in the code's speaker scope (segments with
an ``unknown`` speaker are coded for every scope).
"""

from __future__ import annotations

from typing import Any, Self

import pandas as pd

from pipeline.codebook import Codebook
from pipeline.coders.base import BaseCoder, assignment_frame, check_is_fitted
from pipeline.errors import CodebookError
from pipeline.nlp import load_spacy

__all__ = ["RulesCoder"]

#: Token attributes the tokenizer alone sets (lexical); patterns using only these need no tagger or lemmatizer.
_LEXICAL = {"ORTH", "TEXT", "LOWER", "LENGTH", "IS_ALPHA", "IS_ASCII", "IS_DIGIT", "IS_LOWER", "IS_UPPER",
            "IS_TITLE", "IS_PUNCT", "IS_SPACE", "IS_STOP", "IS_BRACKET", "IS_QUOTE", "IS_LEFT_PUNCT",
            "IS_RIGHT_PUNCT", "IS_CURRENCY", "LIKE_NUM", "LIKE_URL", "LIKE_EMAIL", "SHAPE", "PREFIX", "SUFFIX",
            "OP"}


class RulesCoder(BaseCoder):
    """Rule-based coder.

    Args:
        spacy_model: Installed spaCy pipeline (tokeniser and lemmatiser are used).
        batch_size: Segments per ``nlp.pipe`` batch.
        respect_speakers: Apply each code only to segments of the speakers in its scope.
        max_evidence_chars: Longest matched-words evidence kept per assignment.
    """

    name = "coder.rules.v1"
    #: ``fit`` reads only the codebook and ``predict`` codes each segment on its own, so batches of segments
    #: can be predicted apart (in parallel) and joined in order with the same result.
    fits_on_codebook_only = True

    def __init__(self, *, spacy_model: str = "en_core_web_sm", batch_size: int = 256,
                 respect_speakers: bool = True, max_evidence_chars: int = 80) -> None:
        self.spacy_model = spacy_model
        self.batch_size = batch_size
        self.respect_speakers = respect_speakers
        self.max_evidence_chars = max_evidence_chars

    def fit(self, segments: pd.DataFrame | None = None, assignments: pd.DataFrame | None = None, *,
            codebook: Codebook) -> Self:
        """Compile the codebook's patterns. ``segments`` and ``assignments`` are not used.

        Raises:
            CodebookError: (QA-E004) a pattern spaCy rejects, naming the code and pattern.
        """
        from spacy.matcher import Matcher, PhraseMatcher

        nlp = load_spacy(self.spacy_model, "lemmas")
        matcher = Matcher(nlp.vocab, validate=True)
        phrases = PhraseMatcher(nlp.vocab, attr="LOWER")
        index: dict[str, tuple[str, str, float]] = {}
        for code in codebook.codes:
            for i, pattern in enumerate(code.patterns):
                key = f"{code.id}#{i}"
                index[key] = (code.id, pattern.label(i), pattern.weight)
                try:
                    if pattern.phrase is not None:
                        phrases.add(key, [nlp.make_doc(pattern.phrase)])
                    else:
                        matcher.add(key, [pattern.tokens])
                except ValueError as e:
                    raise CodebookError(f"pattern {i} of code {code.id} is rejected by spaCy: {e}",
                                        code="QA-E004", key=f"{code.id}.patterns[{i}]") from None
        self.matcher_ = matcher
        self.phrase_matcher_ = phrases
        self.pattern_index_ = index
        self.code_speakers_ = {c.id: set(c.speakers) for c in codebook.codes}
        used = {str(k).upper() for c in codebook.codes for p in c.patterns if p.tokens for t in p.tokens for k in t}
        self.needs_pipeline_ = not used <= _LEXICAL
        self.codebook_version_ = f"{codebook.id}@{codebook.version}"
        return self

    def predict(self, segments: pd.DataFrame, *, run_id: str = "") -> pd.DataFrame:
        """Return ASSIGNMENT rows (label True) for every segment x code whose patterns match."""
        check_is_fitted(self)
        nlp = load_spacy(self.spacy_model, "lemmas")
        best: dict[tuple[str, str], tuple[float, str]] = {}
        texts = segments["text"].tolist()
        ids = segments["segment_id"].tolist()
        speakers = segments["speaker"].tolist()
        # Matches depend on the text alone: match each distinct text once. Patterns over lexical attributes
        # only (LOWER, IS_PUNCT, ...) need the tokenizer alone, not the tagger and lemmatizer.
        unique = list(dict.fromkeys(texts))
        if self.needs_pipeline_:
            docs = nlp.pipe(unique, batch_size=self.batch_size)
        else:
            docs = nlp.tokenizer.pipe(unique, batch_size=self.batch_size)
        found: dict[str, list[tuple[str, str]]] = {}
        for text, doc in zip(unique, docs, strict=True):
            strings = doc.vocab.strings
            found[text] = [(strings[match_id], doc[start:end].text)
                           for match_id, start, end in [*self.matcher_(doc), *self.phrase_matcher_(doc)]]
        for seg_id, speaker, text in zip(ids, speakers, texts, strict=True):
            for key, matched in found[text]:
                code_id, label, weight = self.pattern_index_[key]
                if self.respect_speakers and speaker != "unknown" and speaker not in self.code_speakers_[code_id]:
                    continue
                evidence = f"{label} | {matched[: self.max_evidence_chars]}"
                current = best.get((seg_id, code_id))
                if current is None or (weight, current[1]) > (current[0], evidence):
                    best[(seg_id, code_id)] = (weight, evidence)
        rows: list[dict[str, Any]] = [
            {"segment_id": s, "code_id": c, "coder": self.name, "score": float(w), "label": True,
             "evidence": ev, "run_id": run_id}
            for (s, c), (w, ev) in best.items()
        ]
        return assignment_frame(rows)
