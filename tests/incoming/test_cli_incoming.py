"""`alliance ingest-incoming` (the real CLI in a subprocess) and the `incoming-feedback` Prefect flow."""

from __future__ import annotations

import json

import pytest
from incoming_support import (
    assert_exactly_once,
    cli_env,
    feedback_rows,
    prefect_harness,  # noqa: F401 - fixture
    run_cli,
    write_config,
    write_feedback,
    write_session,
)

from pipeline.incoming.passes import CRASH_EXIT_CODE

pytestmark = pytest.mark.slow


def test_cli_incoming_summary_exit_codes_and_crash_recovery(tmp_path):
    inbox, store = tmp_path / "inbox", tmp_path / "store"
    write_feedback(inbox / "f" / "export.csv", feedback_rows(0, 5))
    config = write_config(tmp_path, batch_size=2, nvivo=True)
    rc, summary, err = run_cli(inbox, store, config, None)
    assert rc == 0, err[-2000:]
    assert {"new": 5, "unchanged": 0, "quarantined": 0}.items() <= summary.items()
    assert summary["run_id"].startswith("inc-")
    assert (store / "exports" / "project.qdpx").is_file() and (store / "ledger.sqlite").is_file()
    assert "Therapist" not in err and "note 1" not in err  # no participant text on the console

    write_session(inbox / "s" / "one.txt", 1)
    rc, summary, _ = run_cli(inbox, store, config, None,
                             env=cli_env(ALLIANCE_CRASH_AT="after-parquet-before-ledger"))
    assert (rc, summary) == (CRASH_EXIT_CODE, None)
    (inbox / "f" / "broken.txt").write_bytes(b"")
    rc, summary, err = run_cli(inbox, store, config, None)
    assert rc == 3, err[-2000:]  # this pass quarantined an item
    assert (summary["new"], summary["unchanged"], summary["quarantined"]) == (1, 5, 1)
    assert len(summary["recovered_runs"]) == 1
    assert_exactly_once(store, None)


def test_cli_incoming_missing_inbox_is_an_error(tmp_path):
    rc, summary, err = run_cli(tmp_path / "nope", tmp_path / "store", write_config(tmp_path), None)
    assert rc == 1 and summary is None
    assert "QA-E010" in err and "Traceback" not in err


def test_flow_incoming_feedback_runs_on_prefect(tmp_path, prefect_harness):  # noqa: F811
    from flows.incoming_feedback import incoming_feedback

    inbox, store = tmp_path / "inbox", tmp_path / "store"
    write_feedback(inbox / "f" / "export.csv", feedback_rows(0, 4))
    config = str(write_config(tmp_path, nvivo=True))
    first = incoming_feedback(str(inbox), str(store), config)
    assert (first["new"], first["exported"]) == (4, True)
    second = incoming_feedback(str(inbox), str(store), config)
    assert (second["new"], second["unchanged"], second["exported"]) == (0, 4, False)
    assert first["run_id"] != second["run_id"]
    json.dumps(first)  # the flow's result is plain JSON (counts, ids, paths)
    assert_exactly_once(store, None)
