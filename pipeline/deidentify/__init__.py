"""De-identification: NER, deny-lists and pattern detectors, with consistent pseudonyms."""

from pipeline.deidentify.core import DeidResult, deidentify_documents, is_generic_label, scrub_text
from pipeline.deidentify.pseudonyms import PseudonymMap, default_map_path

__all__ = ["DeidResult", "PseudonymMap", "default_map_path", "deidentify_documents", "is_generic_label",
           "scrub_text"]
