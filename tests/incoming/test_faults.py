"""Fault injection: passes killed at every critical point and at random moments still give exactly once.

Passes run in child processes forked from the test process (pipeline and models already imported, so a
kill lands inside the pass rather than during start-up; ``test_cli_incoming`` covers the same through the
real CLI). ``ALLIANCE_CRASH_AT=<point>`` makes the pass call ``os._exit`` at that point
(pipeline.incoming.passes.CRASH_POINTS); the random variant sends SIGKILL after a seeded random delay, many
times, while the inbox keeps growing. Afterwards one clean pass must leave every item processed exactly once,
its segments in the coded store exactly once, and every output file readable.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import random
import zipfile
from pathlib import Path

import pytest
from incoming_support import (
    assert_exactly_once,
    feedback_rows,
    ledger_url,  # noqa: F401 - fixture
    write_config,
    write_feedback,
    write_session,
)

from pipeline.codebook import Codebook, load_codebook
from pipeline.config import load_run_config
from pipeline.incoming.ledger import open_ledger
from pipeline.incoming.passes import CRASH_EXIT_CODE, CRASH_POINTS, incoming_pass
from pipeline.incoming.store import list_part_files

pytestmark = pytest.mark.slow


def _child(inbox: Path, store: Path, config: Path, url: str | None, crash_at: str | None) -> None:
    os.environ.pop("ALLIANCE_CRASH_AT", None)
    if crash_at:
        os.environ["ALLIANCE_CRASH_AT"] = crash_at
    cfg = load_run_config(config)
    incoming_pass(inbox, store, cfg, ledger_url=url, codebook=_codebook(cfg.codebook))


@functools.cache
def _codebook(path: Path) -> Codebook:
    """Parsed once in the test process; forked children inherit it."""
    return load_codebook(path)


def forked_pass(inbox: Path, store: Path, config: Path, url: str | None, *, crash_at: str | None = None,
                kill_after: float | None = None) -> int | None:
    """Run one pass in a forked child; SIGKILL it after ``kill_after`` seconds if given. Returns its exit code."""
    proc = multiprocessing.get_context("fork").Process(target=_child,
                                                       args=(inbox, store, config, url, crash_at))
    proc.start()
    proc.join(timeout=kill_after if kill_after is not None else 600)
    if proc.is_alive():
        proc.kill()  # SIGKILL
        proc.join(timeout=60)
    return proc.exitcode


def test_faults_crash_at_every_point_then_exactly_once(tmp_path, ledger_url):  # noqa: F811
    inbox, store = tmp_path / "inbox", tmp_path / "store"
    config = write_config(tmp_path, batch_size=2)
    rows = feedback_rows(0, 4)
    write_feedback(inbox / "f" / "export.csv", rows)
    _child(inbox, store, config, ledger_url, None)  # loads the models and the codebook once
    for n, point in enumerate(CRASH_POINTS):
        rows += feedback_rows(len(rows), 3)  # new items every time, so every point is reached
        write_feedback(inbox / "f" / "export.csv", rows)
        write_session(inbox / "s" / f"session{n}.txt", n)
        rc = forked_pass(inbox, store, config, ledger_url, crash_at=point)
        assert rc == CRASH_EXIT_CODE, f"{point}: pass did not reach the crash point (exit code {rc})"
        if point == "after-parquet-before-ledger":
            ledger = open_ledger(store, ledger_url)
            committed = {p["rel"].removeprefix("coded/") for p in ledger.parts("coded")}
            ledger.dispose()
            assert set(list_part_files(store)) - committed, "the crash should leave an uncommitted part behind"
    summary = incoming_pass(inbox, store, load_run_config(config), ledger_url=ledger_url)
    assert summary["recovered_runs"] == [], "the last crash point is after the run was committed"
    counts = assert_exactly_once(store, ledger_url)
    assert counts["processed"] == len(rows) + len(CRASH_POINTS)
    again = incoming_pass(inbox, store, load_run_config(config), ledger_url=ledger_url)
    assert (again["new"], again["unchanged"]) == (0, counts["processed"])
    ledger = open_ledger(store, ledger_url)
    statuses = [r["status"] for r in ledger.runs()]
    ledger.dispose()
    # points from after-claim up to before-finish leave a running run, which the next pass marks interrupted
    assert statuses.count("interrupted") == CRASH_POINTS.index("after-finish") - CRASH_POINTS.index("after-claim")


@pytest.mark.parametrize("kills", [12])
def test_faults_random_sigkill_many_times(tmp_path, ledger_url, kills):  # noqa: F811
    rng = random.Random(20260611)
    inbox, store = tmp_path / "inbox", tmp_path / "store"
    config = write_config(tmp_path, batch_size=3, nvivo=True)
    rows = feedback_rows(0, 6)
    write_feedback(inbox / "f" / "export.csv", rows)
    _child(inbox, store, config, ledger_url, None)  # loads the models and the codebook once
    sessions = 0
    for _ in range(kills):
        rows += feedback_rows(len(rows), rng.randint(4, 15))  # the inbox keeps growing between attempts
        write_feedback(inbox / "f" / "export.csv", rows)
        if rng.random() < 0.3:
            write_session(inbox / "s" / f"session{sessions}.txt", sessions)
            sessions += 1
        forked_pass(inbox, store, config, ledger_url, kill_after=rng.uniform(0.05, 2.5))
    summary = incoming_pass(inbox, store, load_run_config(config), ledger_url=ledger_url)
    counts = assert_exactly_once(store, ledger_url)
    assert counts["processed"] == len(rows) + sessions
    assert counts["quarantined"] == 0
    ledger = open_ledger(store, ledger_url)
    runs = ledger.runs()
    ledger.dispose()
    interrupted = sum(r["status"] == "interrupted" for r in runs)
    assert interrupted >= kills // 4, f"only {interrupted} of {kills} kills landed inside a pass"
    assert all(r["status"] in ("committed", "interrupted") for r in runs)
    assert summary["new"] >= 0
    with zipfile.ZipFile(store / "exports" / "project.qdpx") as archive:
        assert archive.testzip() is None
