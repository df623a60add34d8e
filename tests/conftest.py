"""Shared fixtures: isolated Prefect home and key folder, the project's codebook, tiny corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    # Isolate everything a test run could write outside its tmp folders (Prefect home, results,
    # pseudonym keys) and keep data on the machine.
    base = Path(os.environ.get("PYTEST_TMPDIR_BASE", "/tmp")) / f"alliance-tests-{os.getpid()}"
    (base / "prefect_home").mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(base / "prefect_home")
    os.environ["ALLIANCE_KEY_DIR"] = str(base / "keys")
    os.environ["ALLIANCE_CACHE_DIR"] = str(base / "cache")  # embeddings and the distilled static model
    from pipeline.environment import configure_environment

    configure_environment()


@pytest.fixture(scope="session")
def codebook_path() -> Path:
    return ROOT / "configs" / "codebooks" / "working_alliance.v1.yaml"


@pytest.fixture(scope="session")
def codebook(codebook_path: Path):
    from pipeline.codebook import load_codebook

    return load_codebook(codebook_path)


@pytest.fixture(scope="session")
def demo_corpus() -> Path:
    return ROOT / "corpora" / "demo"


@pytest.fixture(scope="session")
def broken_corpus() -> Path:
    return ROOT / "corpora" / "demo_broken"
