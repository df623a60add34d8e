"""The coder interface every coder follows, shaped like a scikit-learn estimator.

- ``__init__`` only stores keyword parameters (``get_params``/``set_params`` work from its signature);
- ``fit(segments, assignments=None, *, codebook)`` learns and returns ``self``; learned state ends in ``_``;
- ``predict(segments, *, run_id="")`` begins with :func:`check_is_fitted`, never mutates ``segments`` and
  returns an ASSIGNMENT table (see ``pipeline.schema``);
- randomness goes through ``random_state``.

One contract test (``tests/pipeline/coders/test_contract.py``) checks every registered coder.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, Self, runtime_checkable

import pandas as pd

from pipeline.codebook import Codebook
from pipeline.errors import NotFittedError
from pipeline.schema import ASSIGNMENT, coerce_frame

__all__ = ["BaseCoder", "Coder", "assignment_frame", "check_is_fitted"]


@runtime_checkable
class Coder(Protocol):
    """Assigns codebook codes to segments. Registered as ``coder.<name>.v<N>``."""

    name: str

    def fit(self, segments: pd.DataFrame, assignments: pd.DataFrame | None = None, *,
            codebook: Codebook) -> Self:
        """Learn from segments (and human assignments, if supervised); return self."""

    def predict(self, segments: pd.DataFrame, *, run_id: str = "") -> pd.DataFrame:
        """Return an ASSIGNMENT table for ``segments``."""

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters."""


def check_is_fitted(coder: object) -> None:
    """Raise :class:`NotFittedError` unless ``coder`` has fitted attributes (names ending in ``_``)."""
    fitted = [k for k in vars(coder) if k.endswith("_") and not k.startswith("__")]
    if not fitted:
        name = getattr(coder, "name", type(coder).__name__)
        raise NotFittedError(
            f"This {name} coder is not fitted yet. Call 'fit' with the codebook before 'predict'.",
            coder=name,
        )


def assignment_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Build a valid ASSIGNMENT table from row dicts (sorted for determinism)."""
    frame = pd.DataFrame(rows, columns=ASSIGNMENT.column_names)
    frame = coerce_frame(frame, ASSIGNMENT)
    return frame.sort_values(["segment_id", "code_id", "coder"], kind="stable").reset_index(drop=True)


class BaseCoder:
    """Thin helper: parameters from the ``__init__`` signature, like scikit-learn's BaseEstimator."""

    name = "coder.base.v0"

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind == p.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, unchanged."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters; unknown names raise ``ValueError``."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for {self.name}. Valid: {sorted(valid)}.")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
