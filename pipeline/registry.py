"""The single list of buildable parts, by versioned name (``coder.rules.v1``).

A changed behaviour gets a new name (``v2``); old names keep their behaviour. Entries are import
paths resolved lazily, so optional heavy backends load only when used.
"""

from __future__ import annotations

import importlib
from typing import Any

from pipeline.errors import ConfigError, MissingDependencyError

__all__ = ["REGISTRY", "build", "registry_names", "resolve"]

#: name -> "module:attribute"
REGISTRY: dict[str, str] = {
    "coder.rules.v1": "pipeline.coders.rules:RulesCoder",
    "coder.similarity.v1": "pipeline.coders.similarity:SimilarityCoder",
    "coder.classifier.v1": "pipeline.coders.classifier:ClassifierCoder",
    "coder.topics.v1": "pipeline.coders.topics:TopicCoder",
    "embed.minilm.v1": "pipeline.embed:load_minilm",
    "embed.static.v1": "pipeline.embed:load_static",
}


def registry_names(prefix: str = "") -> list[str]:
    """Registered names that start with ``prefix``."""
    return sorted(n for n in REGISTRY if n.startswith(prefix))


def resolve(name: str) -> Any:
    """Return the class or function registered under ``name``.

    Raises:
        ConfigError: the name is not registered.
        MissingDependencyError: its module needs a package that is not installed.
    """
    try:
        target = REGISTRY[name]
    except KeyError:
        raise ConfigError(f"{name!r} is not a registered name. Known: {registry_names()}.") from None
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise MissingDependencyError(
            f"{name!r} needs the package {e.name!r}, which is not installed.",
            hint="Run `make install` (or `pip install -e .`) in the project folder.",
        ) from e
    return getattr(module, attr)


def build(name: str, **params: Any) -> Any:
    """Instantiate the part registered under ``name`` with keyword parameters.

    Raises:
        ConfigError: unknown name or parameters the part does not accept.
    """
    cls = resolve(name)
    try:
        return cls(**params)
    except TypeError as e:
        raise ConfigError(f"{name!r} does not accept these parameters: {e}.", key="params") from None
