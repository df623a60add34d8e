"""Helpers of the incremental-pass tests: ledgers on SQLite and PostgreSQL, synthetic inboxes, invariants.

PostgreSQL variants need ``ALLIANCE_TEST_PG_URL`` (a server URL, e.g. from ``.ci/postgres.sh start DIR``;
``make test`` starts one); each test gets its own fresh database on that server.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
PG_ENV = "ALLIANCE_TEST_PG_URL"
PG_SKIP = (f"PostgreSQL variant: set {PG_ENV}=postgresql+psycopg://user@127.0.0.1:PORT/db (`make test` starts a "
           "server with .ci/postgres.sh; none was given)")

#: Synthetic client comments (no real participant text); several match the rules coder's patterns.
COMMENTS = [
    "I felt really heard today and my therapist understood what I meant.",
    "We agreed on goals for the next few weeks and that helped me.",
    "I did not feel listened to and the session felt rushed.",
    "The homework made sense and we worked on it together.",
    "Honestly I am not sure this is helping, it felt like going in circles.",
    "She explained the plan clearly and I trust the approach.",
    "I felt judged when I talked about my drinking.",
    "Good session, we talked about sleep and made a plan.",
    "I wanted more direction and practical tools for anxiety.",
    "It felt like a script being read at me rather than a conversation.",
]
HEADER = ["response_id", "client_id", "session_number", "date", "clinician", "comment"]


def feedback_rows(start: int, n: int, *, month: int = 3) -> list[list[str]]:
    """``n`` synthetic feedback rows with ids ``R<start>..``; dates in 2026-``month``."""
    return [[f"R{i:05d}", f"C{i % 37:03d}", str(1 + i % 12), f"2026-{month:02d}-{1 + i % 28:02d}",
             ["Alex Morgan", "Sam Patel", "Jo Kim"][i % 3], f"{COMMENTS[i % len(COMMENTS)]} (note {i})"]
            for i in range(start, start + n)]


def write_feedback(path: Path, rows: list[list[str]]) -> Path:
    """A feedback export CSV with the header and ``rows``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def write_session(path: Path, n: int) -> Path:
    """A short session transcript (txt) with speaker labels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for k in range(4):
        lines.append(f"Therapist: How has the week been for you, part {n}-{k}?")
        lines.append(f"Client: {COMMENTS[(n + k) % len(COMMENTS)]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_config(tmp: Path, *, nvivo: bool = False, **incoming: object) -> Path:
    """A run config in ``tmp``: rules coder, no HTML report, NVivo export if asked, and ``incoming`` settings."""
    cfg = {"version": 1, "codebook": "configs/codebooks/working_alliance.v1.yaml", "seed": 13,
           "coders": [{"use": "coder.rules.v1"}], "outputs": {"nvivo": nvivo, "report": False},
           "incoming": incoming}
    path = tmp / "incoming.yaml"
    path.write_text(json.dumps(cfg, indent=1) + "\n", encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest):
    """``None`` (SQLite in the store) or the URL of a fresh PostgreSQL database (dropped afterwards)."""
    if request.param == "sqlite":
        yield None
        return
    server = os.environ.get(PG_ENV)
    if not server:
        pytest.skip(PG_SKIP)
    name = f"alliance_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as err:
        admin.dispose()
        pytest.skip(f"PostgreSQL variant: the server at {PG_ENV} cannot be reached ({type(err).__name__})")
    url = sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def cli_env(**extra: str) -> dict[str, str]:
    """Environment of a CLI subprocess (inherits the test's isolated key folder and Prefect home)."""
    env = {k: v for k, v in os.environ.items() if k != "ALLIANCE_CRASH_AT"}
    env.update(extra)
    return env


def cli_args(inbox: Path, store: Path, config: Path, ledger_url: str | None) -> list[str]:
    """Arguments of ``alliance ingest-incoming`` as a module call."""
    args = [sys.executable, "-m", "pipeline.cli", "ingest-incoming", str(inbox), "--store", str(store),
            "--config", str(config)]
    return [*args, "--ledger-url", ledger_url] if ledger_url else args


def run_cli(inbox: Path, store: Path, config: Path, ledger_url: str | None, *,
            env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, dict | None, str]:
    """Run one pass in a subprocess; returns (exit code, JSON summary or None, stderr)."""
    proc = subprocess.run(cli_args(inbox, store, config, ledger_url), capture_output=True, text=True,
                          env=env or cli_env(), timeout=timeout, cwd=ROOT, check=False)
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return proc.returncode, summary, proc.stderr


def assert_exactly_once(store: Path, ledger_url: str | None, *, expected_items: set[str] | None = None) -> dict:
    """Every item is processed or quarantined once, and its segments are in the coded store exactly once.

    Also reads every Parquet file under ``STORE/coded`` (all must be readable and committed).

    Returns:
        ``{"processed": n, "quarantined": n, "segments": n}``.
    """
    from pipeline.incoming.ledger import open_ledger
    from pipeline.incoming.store import coded_dir, read_coded, read_manifest

    ledger = open_ledger(store, ledger_url)
    try:
        items = ledger.items()
        parts = {p["rel"] for p in ledger.parts("coded")}
    finally:
        ledger.dispose()
    assert not [i for i in items if i["status"] == "seen"], "unfinished claims left in the ledger"
    processed = {i["item_id"]: i for i in items if i["status"] == "processed"}
    if expected_items is not None:
        assert set(processed) == expected_items
    on_disk = sorted(p.relative_to(coded_dir(store)).as_posix() for p in coded_dir(store).rglob("*.parquet"))
    for rel in on_disk:
        pq.read_table(coded_dir(store) / rel)  # readable
    assert sorted(read_manifest(store) or []) == on_disk == sorted(r.removeprefix("coded/") for r in parts)
    coded = read_coded(store)
    assert coded["segment_id"].is_unique, "a segment is in the store twice"
    per_item = coded.groupby("item_id").size().to_dict()
    for item_id, row in processed.items():
        assert per_item.get(item_id, 0) == row["segments"], f"item {item_id[:12]}: segments differ from ledger"
    assert set(per_item) <= set(processed)
    return {"processed": len(processed), "quarantined": sum(i["status"] == "quarantined" for i in items),
            "segments": len(coded)}


@pytest.fixture(scope="session")
def prefect_harness():
    """A real Prefect API (temporary database) for the flow tests of this folder."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
