"""The ledger: which inbox items were seen, processed or quarantined, by which run, and what was committed.

An embedded SQLite database in the store by default (``STORE/ledger.sqlite``, WAL mode, busy timeout); any
SQLAlchemy URL otherwise (``postgresql+psycopg://user@host/db`` for a multi-user set-up). SQLAlchemy Core
only. Tables:

``runs``   one row per pass: ``running`` -> ``committed`` | ``interrupted`` (found dead on a later start) |
           ``failed`` (raised an error).
``items``  one row per item (``item_id`` = sha256 of source path + item content hash): ``seen`` (claimed by
           a running pass), ``processed`` or ``quarantined`` (with ``code`` and ``reason``), the run that
           did it, segment count and timestamps.
``parts``  every committed output (coded Parquet part or batch table folder) and the run that wrote it.
``files``  per inbox file: size, mtime and content hash of the version whose items are all accounted for
           (lets a pass skip re-reading unchanged files).

Each batch commit (items -> processed, its parts recorded) is one transaction: all or nothing. No
participant text is stored here: paths, hashes, codes and counts only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipeline.errors import PipelineError
from pipeline.io import ensure_private_dir

__all__ = ["Item", "Ledger", "ledger_url_for", "open_ledger"]

_META = sa.MetaData()
RUNS = sa.Table(
    "runs", _META,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("finished_at", sa.String(32)),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("counts", sa.Text),
)
ITEMS = sa.Table(
    "items", _META,
    sa.Column("item_id", sa.String(64), primary_key=True),
    sa.Column("source_path", sa.Text, nullable=False),
    sa.Column("record_key", sa.Text, nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("code", sa.String(16)),
    sa.Column("reason", sa.Text),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("segments", sa.Integer),
    sa.Column("first_seen_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Index("ix_items_run_status", "run_id", "status"),
)
PARTS = sa.Table(
    "parts", _META,
    sa.Column("rel", sa.String(512), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("batch", sa.Integer, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("committed_at", sa.String(32), nullable=False),
)
FILES = sa.Table(
    "files", _META,
    sa.Column("source_path", sa.String(1024), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
)
_CHUNK = 500
#: Key of the PostgreSQL advisory lock that serialises passes over one ledger database.
PG_LOCK_KEY = 0x616C6C69616E6365 & 0x7FFFFFFFFFFFFFFF


@dataclass(frozen=True)
class Item:
    """One inbox item as the ledger sees it (no text)."""

    item_id: str
    source_path: str
    record_key: str
    content_sha256: str
    kind: str  # file | row | row-problem
    code: str | None = None
    reason: str | None = None


def now() -> str:
    """UTC time stamp (ISO, seconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def ledger_url_for(store: Path, url: str | None = None) -> str:
    """The ledger URL: ``url``, else ``$ALLIANCE_LEDGER_URL``, else SQLite at ``STORE/ledger.sqlite``."""
    url = url or os.environ.get("ALLIANCE_LEDGER_URL") or None
    return url or f"sqlite:///{(Path(store).resolve() / 'ledger.sqlite').as_posix()}"


def open_ledger(store: Path, url: str | None = None, *, busy_timeout_s: float = 60.0) -> Ledger:
    """Open (and create if needed) the ledger of ``store``.

    Raises:
        PipelineError: QA-E061 when the database cannot be reached or its tables cannot be created.
    """
    resolved = ledger_url_for(store, url)
    if resolved == f"sqlite:///{(Path(store).resolve() / 'ledger.sqlite').as_posix()}":
        ensure_private_dir(Path(store))  # the default ledger lives in the store
    return Ledger(resolved, busy_timeout_s=busy_timeout_s)


class Ledger:
    """Item and run bookkeeping in one SQL database (see the module docstring).

    Args:
        url: SQLAlchemy URL.
        busy_timeout_s: SQLite: how long a writer waits for another writer before "database is locked".
    """

    def __init__(self, url: str, *, busy_timeout_s: float = 60.0) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        try:
            self.engine = self._engine(url, busy_timeout_s)
            try:
                _META.create_all(self.engine, checkfirst=True)
            except sa.exc.IntegrityError:  # PostgreSQL: another process created the tables at the same moment
                _META.create_all(self.engine, checkfirst=True)
        except sa.exc.SQLAlchemyError as err:
            raise PipelineError(f"the ledger database cannot be opened ({type(err).__name__}); check the URL "
                                "and that the server is running.", code="QA-E061",
                                key="incoming.ledger_url") from None

    def _engine(self, url: str, busy_timeout_s: float) -> Engine:
        if not self.is_sqlite:
            return sa.create_engine(url, pool_pre_ping=True)
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_s}, poolclass=sa.pool.NullPool)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (BEGIN IMMEDIATE below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlocks

        return engine

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # -- locking ------------------------------------------------------------------------------------
    @contextmanager
    def advisory_lock(self, timeout_s: float, poll_s: float = 0.2) -> Iterator[bool]:
        """PostgreSQL: hold a session advisory lock (released by the server if this process dies).

        Yields True when held; on SQLite yields False at once (the store's file lock does the job there).

        Raises:
            PipelineError: QA-E060 when another pass holds it for longer than ``timeout_s``.
        """
        if self.is_sqlite:
            yield False
            return
        import time

        conn = self.engine.connect()
        held = False
        try:
            deadline = time.monotonic() + timeout_s
            while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": PG_LOCK_KEY}).scalar():
                conn.rollback()
                if time.monotonic() >= deadline:
                    raise PipelineError(f"another pass holds the ledger lock (waited {timeout_s:g} s); retry "
                                        "later or raise incoming.lock_timeout_s.", code="QA-E060")
                time.sleep(poll_s)
            conn.commit()
            held = True
            yield True
        finally:
            try:
                if held:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY})
                    conn.commit()
            finally:
                conn.invalidate()  # never hand a session that held the lock back to the pool

    # -- runs ---------------------------------------------------------------------------------------
    def begin_run(self, run_id: str) -> None:
        """Record a new running pass."""
        with self.engine.begin() as conn:
            conn.execute(sa.insert(RUNS).values(run_id=run_id, status="running", started_at=now(),
                                                host=socket.gethostname(), pid=os.getpid()))

    def finish_run(self, run_id: str, status: str, counts: dict[str, Any],
                   files: Sequence[dict[str, Any]] = ()) -> None:
        """Close a run and record the inbox files it accounted for fully, in one transaction."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(RUNS).where(RUNS.c.run_id == run_id).values(
                status=status, finished_at=now(), counts=json.dumps(counts, sort_keys=True)))
            for rec in files:
                conn.execute(sa.delete(FILES).where(FILES.c.source_path == rec["source_path"]))
                conn.execute(sa.insert(FILES).values(**rec, run_id=run_id))

    def runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(RUNS).order_by(RUNS.c.started_at, RUNS.c.run_id)).mappings().all()
        return [dict(r) for r in rows]

    def release_dead_runs(self, *, status: str = "interrupted") -> list[str]:
        """Mark every ``running`` run as ``status`` and drop every unfinished claim (items still ``seen``).

        Call only while holding the pass lock: then no run is really running and every claim is orphaned.
        Items a dead run already committed stay processed.
        """
        with self.engine.begin() as conn:
            dead = [r for (r,) in conn.execute(sa.select(RUNS.c.run_id).where(RUNS.c.status == "running"))]
            conn.execute(sa.delete(ITEMS).where(ITEMS.c.status == "seen"))  # every claim left is orphaned
            for run_id in dead:
                conn.execute(sa.update(RUNS).where(RUNS.c.run_id == run_id).values(status=status,
                                                                                  finished_at=now()))
        return dead

    def release_run(self, run_id: str, status: str) -> None:
        """Drop a run's unfinished claims and close it with ``status`` (after an error)."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(ITEMS).where(ITEMS.c.run_id == run_id, ITEMS.c.status == "seen"))
            conn.execute(sa.update(RUNS).where(RUNS.c.run_id == run_id).values(status=status, finished_at=now()))

    # -- items --------------------------------------------------------------------------------------
    def statuses(self, item_ids: Iterable[str]) -> dict[str, str]:
        """``item_id -> status`` for the ids the ledger knows."""
        ids = list(dict.fromkeys(item_ids))
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i:i + _CHUNK]
                stmt = sa.select(ITEMS.c.item_id, ITEMS.c.status).where(ITEMS.c.item_id.in_(chunk))
                out.update({r.item_id: r.status for r in conn.execute(stmt)})
        return out

    def claim(self, run_id: str, items: Sequence[Item], quarantined: Sequence[Item]) -> tuple[list[str], list[str]]:
        """In one transaction, claim new items for ``run_id`` and record new quarantined ones.

        An id another pass inserted first is skipped (``ON CONFLICT DO NOTHING``), so no item is claimed twice.

        Returns:
            (claimed item ids, newly quarantined item ids).
        """
        stamp = now()
        claimed: list[str] = []
        quarantined_ids: list[str] = []
        with self.engine.begin() as conn:
            for status, batch, out in (("seen", items, claimed), ("quarantined", quarantined, quarantined_ids)):
                for item in batch:
                    values = {"item_id": item.item_id, "source_path": item.source_path,
                              "record_key": item.record_key, "content_sha256": item.content_sha256,
                              "kind": item.kind, "status": status, "code": item.code, "reason": item.reason,
                              "run_id": run_id, "first_seen_at": stamp, "updated_at": stamp}
                    stmt = self._insert_ignore(values).returning(ITEMS.c.item_id)
                    if conn.execute(stmt).first() is not None:
                        out.append(item.item_id)
        return claimed, quarantined_ids

    def _insert_ignore(self, values: dict[str, Any]) -> Any:
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        return insert(ITEMS).values(**values).on_conflict_do_nothing(index_elements=["item_id"])

    def commit_batch(self, run_id: str, batch: int, segments: dict[str, int], parts: Sequence[dict[str, Any]]) -> None:
        """One transaction: mark the batch's items processed and record the parts that hold their output.

        Raises:
            PipelineError: QA-E062 when an item is no longer claimed by this run (nothing is changed).
        """
        stamp = now()
        with self.engine.begin() as conn:
            for item_id, count in segments.items():
                res = conn.execute(sa.update(ITEMS).where(
                    ITEMS.c.item_id == item_id, ITEMS.c.run_id == run_id, ITEMS.c.status == "seen",
                ).values(status="processed", segments=count, updated_at=stamp))
                if res.rowcount != 1:
                    raise PipelineError(f"item {item_id[:12]} is no longer claimed by run {run_id}; the batch "
                                        "was not committed.", code="QA-E062")
            for part in parts:
                conn.execute(sa.insert(PARTS).values(**part, run_id=run_id, batch=batch, committed_at=stamp))

    def items(self, *, status: str | None = None) -> list[dict[str, Any]]:
        """Every item row (optionally of one status), by id."""
        stmt = sa.select(ITEMS).order_by(ITEMS.c.item_id)
        if status is not None:
            stmt = stmt.where(ITEMS.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def item_counts(self) -> dict[str, int]:
        """``source_path -> number of processed or quarantined items`` (one grouped query)."""
        stmt = (sa.select(ITEMS.c.source_path, sa.func.count()).where(ITEMS.c.status != "seen")
                .group_by(ITEMS.c.source_path))
        with self.engine.connect() as conn:
            return {path: int(n) for path, n in conn.execute(stmt)}

    # -- parts and files ----------------------------------------------------------------------------
    def parts(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Committed outputs (optionally of one ``kind``: ``coded`` or ``batch``)."""
        stmt = sa.select(PARTS).order_by(PARTS.c.rel)
        if kind is not None:
            stmt = stmt.where(PARTS.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def known_files(self) -> dict[str, dict[str, Any]]:
        """``source_path -> {size, mtime_ns, sha256}`` of files whose items are all accounted for."""
        with self.engine.connect() as conn:
            return {r.source_path: {"size": r.size, "mtime_ns": r.mtime_ns, "sha256": r.sha256}
                    for r in conn.execute(sa.select(FILES))}
