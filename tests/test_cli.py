"""The command line as a user meets it: help, validate errors with positions, clean failures."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_cli_help_lists_every_command():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("run", "validate", "deid-report", "version"):
        assert cmd in res.output


def test_cli_validate_ok_and_error_with_position(tmp_path):
    ok = runner.invoke(app, ["validate", str(ROOT / "configs/runs/default.yaml"),
                             str(ROOT / "configs/codebooks/working_alliance.v1.yaml")])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("ok:") == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsegment:\n  unit: paragraph\n")
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 1
    assert f"{bad}:3:" in res.output and "segment.unit" in res.output and "Traceback" not in res.output


def test_cli_missing_corpus_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "does not exist" in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_cli_deid_report_on_demo(tmp_path):
    out = tmp_path / "deid.json"
    res = subprocess.run([sys.executable, "-m", "pipeline.cli", "deid-report", str(ROOT / "corpora/demo"),
                          "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    import json

    report = json.loads(out.read_text())
    assert report["overall"]["planted"] > 500
    for kind in ("NAME", "PHONE", "EMAIL", "ADDRESS"):
        assert report["by_type"][kind]["recall"] >= 0.98, (kind, report["by_type"][kind])
    assert report["structural"]["leaked"] == 0
    assert "| NAME |" in res.stdout


def test_cli_missing_model_gives_install_command(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"version: 1\ncodebook: {ROOT / 'configs/codebooks/working_alliance.v1.yaml'}\n"
                   "deidentify:\n  spacy_model: xx_no_such_model\n")
    res = runner.invoke(app, ["run", str(ROOT / "corpora/demo_broken"), "--out", str(tmp_path / "o"),
                              "--config", str(cfg)])
    assert res.exit_code == 1 and "QA-E050" in res.output and "pip install" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "o").exists()


def test_cli_progress_handler_counts_finished_stages():
    import logging

    from pipeline.cli_progress import StageProgressHandler, stage_of

    class FakeProgress:
        def __init__(self):
            self.updates = []

        def update(self, task_id, **kw):
            self.updates.append(kw)

    progress = FakeProgress()
    handler = StageProgressHandler(progress, 1)
    for name, msg in [("ingest-deidentify-4da", "Finished in state Completed()"), ("segment-bb1", "Running"),
                      ("code-9c2", "Finished in state Failed('x')")]:
        rec = logging.LogRecord("prefect.task_runs", logging.INFO, "", 0, msg, None, None)
        rec.task_run_name = name
        handler.emit(rec)
    assert stage_of("write-reports-0a1") == "write-reports"
    assert handler.done == ["ingest-deidentify", "code"]
    assert [u["description"] for u in progress.updates] == ["reading and de-identifying", "coding (failed)"]
