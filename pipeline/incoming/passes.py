"""One incremental pass over an inbox: new items only, exactly once, safe to kill at any point.

A pass (see docs/incoming.md for every kill point)::

    lock     STORE/.pass.lock (fcntl.flock) and, on PostgreSQL, a session advisory lock
    recover  runs left ``running`` are dead: their unfinished claims are dropped; part files and batch
             folders the ledger does not list are deleted; the coded manifest is rewritten from the ledger
    scan     inbox -> new, unchanged and broken items (pipeline.incoming.inbox)
    claim    one transaction: new items -> ``seen`` by this run, broken ones -> ``quarantined``
    batches  per ``incoming.batch_size`` items, in STORE/runs/<run_id>/b<k>/: de-identify, segment, code,
             combine (the stages of ``alliance run``); then write coded parts (temp + rename, deterministic
             names), move the batch tables to STORE/batches/, and in ONE ledger transaction mark the items
             processed and record those outputs; then rewrite the manifest
    finish   run -> ``committed`` with the inbox files it accounted for; STORE/runs/<run_id> removed

The environment variable ``ALLIANCE_CRASH_AT=<point>`` (one of :data:`CRASH_POINTS`) makes the process exit
at once (``os._exit``) when the pass reaches that point; tests use it to hit each point for sure. Unset, it
does nothing.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import stages
from pipeline.codebook import Codebook, load_codebook
from pipeline.config import RunConfig
from pipeline.deidentify import PseudonymMap, deidentify_documents
from pipeline.errors import PipelineError
from pipeline.incoming.exports import update_exports
from pipeline.incoming.inbox import NewItem, scan_inbox
from pipeline.incoming.ledger import Ledger, open_ledger
from pipeline.incoming.store import (
    CODED_COLUMNS,
    coded_dir,
    day_of,
    list_part_files,
    part_relpath,
    utc_today,
    write_manifest,
    write_part,
)
from pipeline.ingest import load_corpus_config
from pipeline.io import ensure_private_dir, write_table
from pipeline.schema import DOCUMENT, SEGMENT, TURN, validate_offsets

__all__ = ["CRASH_POINTS", "PassResult", "crash_point", "export_store", "incoming_pass", "pass_lock", "recover",
           "run_pass", "watch_after_pass"]

logger = logging.getLogger(__name__)

#: Named points where ``ALLIANCE_CRASH_AT`` kills the pass (in pass order).
CRASH_POINTS = (
    "after-recover",
    "after-claim",
    "after-stages",
    "mid-parquet",
    "after-parquet-before-ledger",
    "after-ledger-before-manifest",
    "before-finish",
    "after-finish",
    "before-watch",
)
CRASH_EXIT_CODE = 86


def crash_point(name: str) -> None:
    """Exit the process at once when ``$ALLIANCE_CRASH_AT`` names this point (fault-injection tests only)."""
    if os.environ.get("ALLIANCE_CRASH_AT") == name:
        logging.shutdown()
        os._exit(CRASH_EXIT_CODE)


@dataclass
class PassResult:
    """What a pass did (counts and ids only)."""

    run_id: str
    new: int
    unchanged: int
    quarantined: int
    processed_segments: int
    batches: int
    recovered_runs: list[str]
    export: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON summary printed by ``alliance ingest-incoming``."""
        return {"new": self.new, "unchanged": self.unchanged, "quarantined": self.quarantined,
                "run_id": self.run_id, "processed_segments": self.processed_segments, "batches": self.batches,
                "recovered_runs": self.recovered_runs,
                "export_seconds": None if self.export is None else self.export["seconds"]}


class _CodebookOnce:
    """The config's codebook, loaded on first use (a large codebook takes seconds to parse)."""

    def __init__(self, cfg: RunConfig, given: Codebook | Callable[[], Codebook] | None = None) -> None:
        self.cfg = cfg
        self._given = given
        self._book = given if isinstance(given, Codebook) else None

    def __call__(self) -> Codebook:
        if self._book is None:
            self._book = self._given() if callable(self._given) else load_codebook(self.cfg.codebook)
        return self._book


@contextmanager
def pass_lock(store: Path, ledger: Ledger, timeout_s: float, poll_s: float = 0.1) -> Iterator[None]:
    """Hold the store's pass lock (flock on ``STORE/.pass.lock``) and, on PostgreSQL, the ledger's advisory lock.

    Both are released by the operating system / the server when the process dies, so a killed pass never
    leaves a stale lock.

    Raises:
        PipelineError: QA-E060 when another pass holds a lock for longer than ``timeout_s``.
    """
    ensure_private_dir(Path(store))
    with ExitStack() as stack:
        fd = os.open(Path(store) / ".pass.lock", os.O_RDWR | os.O_CREAT, 0o600)
        stack.callback(os.close, fd)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PipelineError(f"another pass holds the store lock (waited {timeout_s:g} s); retry later "
                                        "or raise incoming.lock_timeout_s.", code="QA-E060",
                                        path=str(Path(store) / ".pass.lock")) from None
                time.sleep(poll_s)
        stack.enter_context(ledger.advisory_lock(max(0.0, deadline - time.monotonic())))
        yield


def recover(store: Path, ledger: Ledger) -> list[str]:
    """Bring the store back to the ledger's committed state (call while holding the pass lock).

    Runs still marked ``running`` are dead (we hold the lock): their unfinished claims are dropped and they
    become ``interrupted``. Part files, batch folders and temp files the ledger does not list are deleted;
    scratch run folders are removed; the coded manifest is rewritten from the ledger.

    Returns:
        The ids of the runs found dead.
    """
    store = Path(store)
    dead = ledger.release_dead_runs()
    committed = {p["rel"] for p in ledger.parts()}
    for rel in list_part_files(store):
        if f"coded/{rel}" not in committed:
            logger.warning("removing uncommitted part %s (from an interrupted pass)", rel)
            (coded_dir(store) / rel).unlink()
    for tmp in coded_dir(store).glob("day=*/.*.tmp") if coded_dir(store).is_dir() else []:
        tmp.unlink()
    batches = store / "batches"
    for folder in sorted(batches.iterdir()) if batches.is_dir() else []:
        if f"batches/{folder.name}" not in committed:
            shutil.rmtree(folder)
    runs = store / "runs"
    for folder in sorted(runs.iterdir()) if runs.is_dir() else []:
        shutil.rmtree(folder)
    missing = [rel for rel in committed if not (store / rel).exists()]
    if missing:
        logger.error("%d committed output(s) are missing from the store, e.g. %s", len(missing), sorted(missing)[0])
    write_manifest(store, [rel.removeprefix("coded/") for rel in committed if rel.startswith("coded/")])
    if dead:
        logger.warning("recovered %d interrupted pass(es): %s", len(dead), ", ".join(dead))
    return dead


def export_store(store: Path, cfg: RunConfig, *, ledger_url: str | None = None,
                 corpus_id: str = "incoming") -> dict[str, Any]:
    """Bring ``STORE/current`` and ``STORE/exports`` up to date, holding the pass lock."""
    ledger = open_ledger(store, ledger_url or cfg.incoming.ledger_url,
                         busy_timeout_s=max(30.0, cfg.incoming.lock_timeout_s))
    try:
        with pass_lock(store, ledger, cfg.incoming.lock_timeout_s):
            recover(store, ledger)
            return update_exports(store, cfg, ledger, corpus_id=corpus_id)
    finally:
        ledger.dispose()


def watch_after_pass(store: Path, cfg: RunConfig, run_id: str, *,
                     codebook: Codebook | None = None) -> dict[str, Any] | None:
    """Run the store watch (prevalence, trend report, alerts) after a pass; ``None`` if it is not installed."""
    try:
        from pipeline.incoming.watch import watch_store
    except ImportError:  # pragma: no cover - the watch module ships with the package
        logger.info("pipeline.incoming.watch is not available; trends and alerts skipped")
        return None
    return watch_store(Path(store), cfg, run_id, codebook=codebook)


def incoming_pass(inbox: Path, store: Path, cfg: RunConfig, *, ledger_url: str | None = None,
                  corpus_id: str | None = None, codebook: Codebook | None = None) -> dict[str, Any]:
    """One complete pass as ``alliance ingest-incoming`` runs it: pass + exports, then the watch.

    Returns:
        The pass summary plus ``alerts`` (number of alerts fired; ``None`` when the watch is unavailable).
    """
    books = _CodebookOnce(cfg, codebook)
    result = run_pass(inbox, store, cfg, ledger_url=ledger_url, corpus_id=corpus_id, export=True, codebook=books)
    crash_point("before-watch")
    watched = watch_after_pass(store, cfg, result.run_id, codebook=books())
    return {**result.summary(), "alerts": None if watched is None else len(watched["alerts"])}


def new_run_id() -> str:
    """``inc-<UTC time>-<random>``: unique per pass, sortable by start time."""
    return f"inc-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"


def run_pass(inbox: Path, store: Path, cfg: RunConfig, *, ledger_url: str | None = None,
             corpus_id: str | None = None, export: bool = True,
             codebook: Codebook | Callable[[], Codebook] | None = None) -> PassResult:
    """Process the inbox's new items into the store, exactly once.

    Args:
        inbox: Inbox folder (one sub-folder per feed).
        store: Store folder (ledger, coded segments, batch tables, exports, reports).
        cfg: Run config; ``incoming`` gives lock timeout, batch size and ledger URL.
        ledger_url: SQLAlchemy URL overriding ``cfg.incoming.ledger_url`` and ``$ALLIANCE_LEDGER_URL``.
        corpus_id: Names the pseudonym map (default: config ``corpus_id`` or the inbox folder name).
        export: Also bring the cumulative NVivo export up to date (under the same lock).
        codebook: The loaded codebook of ``cfg`` (loaded once, when first needed, if not given).

    Returns:
        Counts and the run id.

    Raises:
        PipelineError: QA-E060 lock timeout, QA-E061 ledger unreachable, or a stage's error (the run is then
            marked ``failed`` and its unfinished claims are dropped).
    """
    inbox, store = Path(inbox), Path(store)
    if not inbox.is_dir():
        raise PipelineError(f"inbox folder {str(inbox)!r} does not exist.", code="QA-E010", path=str(inbox))
    ensure_private_dir(store)
    corpus_id = corpus_id or cfg.corpus_id or inbox.resolve().name
    books = _CodebookOnce(cfg, codebook)
    ledger = open_ledger(store, ledger_url or cfg.incoming.ledger_url,
                         busy_timeout_s=max(30.0, cfg.incoming.lock_timeout_s))
    try:
        with pass_lock(store, ledger, cfg.incoming.lock_timeout_s):
            recovered = recover(store, ledger)
            crash_point("after-recover")
            run_id = new_run_id()
            ledger.begin_run(run_id)
            try:
                result = _pass_body(inbox, store, cfg, ledger, run_id, corpus_id, books)
            except BaseException:
                ledger.release_run(run_id, "failed")
                raise
            result.recovered_runs = recovered
            if export:
                result.export = update_exports(store, cfg, ledger, corpus_id=corpus_id, codebook=books)
            return result
    finally:
        ledger.dispose()


def _pass_body(inbox: Path, store: Path, cfg: RunConfig, ledger: Ledger, run_id: str, corpus_id: str,
               books: _CodebookOnce) -> PassResult:
    scan = scan_inbox(inbox, load_corpus_config(inbox, cfg.ingest), ledger)
    claimed, quarantined = ledger.claim(run_id, [n.item for n in scan.new], scan.quarantined)
    crash_point("after-claim")
    mine = set(claimed)
    todo = [n for n in scan.new if n.item.item_id in mine]
    size = cfg.incoming.batch_size
    segments_total = 0
    batches = 0
    today = utc_today()
    for k in range(0, len(todo), size):
        segments_total += _process_batch(todo[k:k + size], k // size, store, cfg, ledger, run_id, corpus_id, today,
                                         books())
        batches += 1
    counts = {"new": len(todo), "unchanged": scan.unchanged + len(scan.new) - len(todo),
              "quarantined": len(quarantined), "segments": segments_total, "batches": batches}
    crash_point("before-finish")
    ledger.finish_run(run_id, "committed", counts, scan.files)
    crash_point("after-finish")
    shutil.rmtree(store / "runs" / run_id, ignore_errors=True)
    logger.info("pass %s: %d new item(s), %d segment(s), %d quarantined", run_id, len(todo), segments_total,
                len(quarantined))
    return PassResult(run_id=run_id, new=len(todo), unchanged=counts["unchanged"], quarantined=len(quarantined),
                      processed_segments=segments_total, batches=batches, recovered_runs=[])


def _process_batch(items: list[NewItem], batch: int, store: Path, cfg: RunConfig, ledger: Ledger, run_id: str,
                   corpus_id: str, today: str, codebook: Codebook) -> int:
    """Run the stages over one batch, write its outputs and commit it; returns its segment count."""
    name = f"{run_id}-b{batch:05d}"
    work = ensure_private_dir(store / "runs" / run_id / f"b{batch:05d}")
    item_of = {doc.document_id: n.item.item_id for n in items for doc in n.documents}
    n_docs = _deidentify_batch([d for n in items for d in n.documents], cfg, work, corpus_id)
    rows = pd.DataFrame(columns=CODED_COLUMNS)
    if n_docs:
        stages.segment_documents(cfg, work)
        reports = [stages.code_segments(cfg, work, i, run_id=run_id, codebook=codebook)
                   for i in range(len(cfg.coders))]
        stages.combine_codes(reports, work, cfg, run_id=run_id, codebook=codebook)
        rows = coded_rows(work, item_of, run_id, cfg, today)
    crash_point("after-stages")
    parts = []
    for i, (day, frame) in enumerate(sorted(rows.groupby(rows["_day"]) if len(rows) else [], key=lambda t: t[0])):
        rel = part_relpath(str(day), run_id, batch)
        write_part(store, rel, frame.drop(columns="_day"))
        parts.append({"rel": f"coded/{rel}", "kind": "coded", "rows": len(frame)})
        if i == 0:
            crash_point("mid-parquet")
    committed_batch = ensure_private_dir(store / "batches") / name
    os.replace(work, committed_batch)
    parts.append({"rel": f"batches/{name}", "kind": "batch", "rows": n_docs})
    crash_point("after-parquet-before-ledger")
    per_item = {n.item.item_id: 0 for n in items}
    for item, count in rows["item_id"].value_counts().items() if len(rows) else []:
        per_item[str(item)] = int(count)
    ledger.commit_batch(run_id, batch, per_item, parts)
    crash_point("after-ledger-before-manifest")
    write_manifest(store, [p["rel"].removeprefix("coded/") for p in ledger.parts("coded")])
    return len(rows)


def _deidentify_batch(raw_docs: list[Any], cfg: RunConfig, work: Path, corpus_id: str) -> int:
    """De-identify one batch's documents into the batch folder (DOCUMENT, TURN, restricted redactions)."""
    paths = stages.run_paths(work)
    for sub in (paths["turns"].parent, paths["redactions"].parent):
        ensure_private_dir(sub)
    pseudonyms = PseudonymMap(stages.pseudonym_map_path(cfg, corpus_id))
    deid = deidentify_documents(raw_docs, cfg.deidentify, pseudonyms, corpus_id=corpus_id)
    pseudonyms.save()
    write_table(deid.documents, paths["documents"], DOCUMENT, stage="deidentify")
    validate_offsets(deid.turns, deid.documents, table=TURN, stage="deidentify")
    write_table(deid.turns, paths["turns"], TURN, stage="deidentify")
    write_table(deid.redactions, paths["redactions"])
    return len(deid.documents)


def final_coder(cfg: RunConfig) -> str:
    """The coder whose labels are the final codes: ``coder.combined.v1`` with several coders, else the one."""
    return "coder.combined.v1" if len(cfg.coders) > 1 else cfg.coders[0].use


def coded_rows(work: Path, item_of: dict[str, str], run_id: str, cfg: RunConfig, today: str) -> pd.DataFrame:
    """One row per segment of a finished batch folder, in the coded-store schema, plus ``_day``."""
    from pipeline.io import read_table
    from pipeline.schema import ASSIGNMENT

    paths = stages.run_paths(work)
    documents = read_table(paths["documents"], DOCUMENT)
    segments = read_table(paths["segments"], SEGMENT)
    codes = read_table(paths["codes"], ASSIGNMENT)
    codes = codes[(codes["coder"] == final_coder(cfg)) & codes["label"]].sort_values(["segment_id", "code_id"])
    per_segment = codes.groupby("segment_id").agg(codes=("code_id", list), scores=("score", list))
    docs = documents[["document_id", "collected_at", "clinician", "case_id", "source_path", "source_type"]]
    out = segments[["segment_id", "document_id", "speaker", "start_char", "end_char", "text"]].merge(
        docs, on="document_id", how="left").merge(per_segment, left_on="segment_id", right_index=True, how="left")
    out["codes"] = [v if isinstance(v, list) else [] for v in out["codes"]]
    out["scores"] = [[float(x) for x in v] if isinstance(v, list) else [] for v in out["scores"]]
    out["item_id"] = out["document_id"].map(item_of)
    out["run_id"] = run_id
    for col in ("collected_at", "clinician", "case_id"):
        out[col] = [None if pd.isna(v) else str(v) for v in out[col]]
    out["_day"] = [day_of(v, today) for v in out["collected_at"]]
    out = out.sort_values(["document_id", "start_char", "segment_id"], kind="stable").reset_index(drop=True)
    return out[[*CODED_COLUMNS, "_day"]]
