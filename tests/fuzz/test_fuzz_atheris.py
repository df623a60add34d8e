"""Run every atheris harness (tests/fuzz/atheris/fuzz_<parser>.py) for a few hundred coverage-guided inputs.

Each harness runs in its own process (libFuzzer owns it) with libFuzzer's per-input time limit and RSS
limit; exit code 0 means no input escaped the contract. ALLIANCE_ATHERIS_RUNS sets the runs per parser
(default 300 here; use tens of thousands locally, see docs/security.md). Runs done are added to the
inputs-tried summary as ``<parser> (atheris)``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz_support import COUNTS, PARSERS

pytest.importorskip("atheris", reason="atheris is not installed (dev extra)")
HARNESSES = Path(__file__).resolve().parent / "atheris"
RUNS = int(os.environ.get("ALLIANCE_ATHERIS_RUNS", "300"))


@pytest.mark.parametrize("parser", PARSERS)
def test_atheris_harness_finds_no_contract_violation(parser: str, tmp_path: Path) -> None:
    script = HARNESSES / f"fuzz_{parser}.py"
    res = subprocess.run([sys.executable, str(script), f"-atheris_runs={RUNS}", "-timeout=30", "-rss_limit_mb=3072",
                          str(tmp_path / "corpus")], capture_output=True, text=True, cwd=tmp_path, timeout=900)
    done = re.search(r"Done (\d+) (?:runs )?in", res.stderr)
    crashes = sorted(p.name for p in tmp_path.glob("crash-*")) + sorted(p.name for p in tmp_path.glob("timeout-*"))
    assert res.returncode == 0 and not crashes, (crashes, res.stderr[-4000:])
    assert done is not None, res.stderr[-2000:]
    COUNTS[f"{parser} (atheris)"] += int(done.group(1))
    assert int(done.group(1)) >= RUNS
    assert any((tmp_path / "corpus").iterdir())  # seeded, and kept what reached new coverage
