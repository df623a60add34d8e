"""Coders: each assigns codebook codes to SEGMENT rows and returns ASSIGNMENT rows."""

from pipeline.coders.base import BaseCoder, Coder, assignment_frame, check_is_fitted

__all__ = ["BaseCoder", "Coder", "assignment_frame", "check_is_fitted"]
