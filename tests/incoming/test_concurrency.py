"""Overlapping passes: two started at the same time process each item once; a held lock is a clear error."""

from __future__ import annotations

import subprocess

import pytest
from incoming_support import (
    ROOT,
    assert_exactly_once,
    cli_args,
    cli_env,
    feedback_rows,
    ledger_url,  # noqa: F401 - fixture
    write_config,
    write_feedback,
    write_session,
)

from pipeline.config import load_run_config
from pipeline.errors import PipelineError
from pipeline.incoming.ledger import open_ledger
from pipeline.incoming.passes import pass_lock, run_pass

pytestmark = pytest.mark.slow


def test_concurrency_two_passes_at_once_process_each_item_once(tmp_path, ledger_url):  # noqa: F811
    import json

    inbox, store = tmp_path / "inbox", tmp_path / "store"
    write_feedback(inbox / "f" / "export.csv", feedback_rows(0, 24))
    for n in range(3):
        write_session(inbox / "s" / f"s{n}.txt", n)
    config = write_config(tmp_path, batch_size=4, lock_timeout_s=300)
    procs = [subprocess.Popen(cli_args(inbox, store, config, ledger_url), env=cli_env(), cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-1500:] for _, err in outs]
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sorted(s["new"] for s in summaries) == [0, 27]  # the second waited for the lock, then found nothing
    assert {s["unchanged"] for s in summaries} == {0, 27}
    assert assert_exactly_once(store, ledger_url)["processed"] == 27


def test_concurrency_held_lock_times_out_with_code(tmp_path, ledger_url):  # noqa: F811
    inbox, store = tmp_path / "inbox", tmp_path / "store"
    write_feedback(inbox / "f" / "export.csv", feedback_rows(0, 2))
    cfg = load_run_config(write_config(tmp_path, lock_timeout_s=0.5))
    holder = open_ledger(store, ledger_url)
    try:
        with pass_lock(store, holder, 0), pytest.raises(PipelineError) as err:
            run_pass(inbox, store, cfg, ledger_url=ledger_url)
        assert err.value.code == "QA-E060"
    finally:
        holder.dispose()
    assert run_pass(inbox, store, cfg, ledger_url=ledger_url).new == 2  # released: the next pass runs


def test_concurrency_postgres_advisory_lock_is_exclusive(tmp_path, ledger_url):  # noqa: F811
    if ledger_url is None:
        pytest.skip("advisory locks are a PostgreSQL feature; SQLite stores rely on the store's file lock")
    first, second = open_ledger(tmp_path / "a", ledger_url), open_ledger(tmp_path / "b", ledger_url)
    try:
        with first.advisory_lock(0) as held:
            assert held
            with pytest.raises(PipelineError) as err, second.advisory_lock(0.3):
                pass
            assert err.value.code == "QA-E060"
        with second.advisory_lock(0) as held:  # released with the first one's session
            assert held
    finally:
        first.dispose()
        second.dispose()
