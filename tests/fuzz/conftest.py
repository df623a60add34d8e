"""Fixtures of the fuzz tests: one sandboxed worker per session, and the inputs-tried report."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzz_support import COUNTS, PARSERS, PROFILE, Sandbox, write_counts


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox()
    yield box
    box.close()


def counts_path() -> Path:
    """Where the inputs-tried counts go: $ALLIANCE_FUZZ_COUNTS, else next to the test session's Prefect home."""
    explicit = os.environ.get("ALLIANCE_FUZZ_COUNTS")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("PREFECT_HOME", "/tmp")).parent / "fuzz_counts.json"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not COUNTS:
        return
    path = counts_path()
    write_counts(path)
    terminalreporter.section(f"fuzz inputs tried (profile {PROFILE})")
    for name in (*PARSERS, *sorted(set(COUNTS) - set(PARSERS))):
        if COUNTS.get(name):
            terminalreporter.write_line(f"{name:>22}: {COUNTS[name]}")
    terminalreporter.write_line(f"written to {path}")
