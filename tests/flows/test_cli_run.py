"""`alliance run` as a user runs it (own process, Prefect's ephemeral API): outputs, logs, exit codes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.deid_eval import load_key

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _run(corpus: Path, out: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect"), "ALLIANCE_KEY_DIR": str(home / "keys")}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(corpus), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)


def test_cli_run_broken_corpus_exit_code_3_and_no_traceback(tmp_path):
    res = _run(ROOT / "corpora/demo_broken", tmp_path / "out", tmp_path)
    assert res.returncode == 3, res.stderr[-3000:]
    assert "Traceback" not in res.stdout + res.stderr
    assert "quarantine.csv" in res.stdout and (tmp_path / "out" / "coded_segments.csv").exists()


def test_cli_run_demo_logs_no_identifier(tmp_path):
    res = _run(ROOT / "corpora/demo", tmp_path / "out", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "outputs written to" in res.stdout
    logs = (res.stdout + res.stderr).casefold()
    # Short numbers (an age "94") also appear as ports and counts in logs: checked per file in the e2e test.
    key = [r for r in load_key(ROOT / "corpora/demo/identifiers.csv")
           if not (len(r["text"]) <= 3 or r["text"].replace(" ", "").isdigit())]
    leaked = [r["type"] for r in key if re.search(rf"(?<!\w){re.escape(r['text'].casefold())}(?!\w)", logs)]
    assert leaked == []
    # The Prefect database of this run holds parameters (paths) and logs: no identifier either.
    db = tmp_path / "prefect" / "prefect.db"
    if db.exists():
        blob = db.read_bytes().decode("utf-8", errors="replace").casefold()
        assert [r["type"] for r in key if re.search(rf"(?<!\w){re.escape(r['text'].casefold())}(?!\w)", blob)] == []
