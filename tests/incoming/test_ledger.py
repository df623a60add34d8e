"""The ledger on real SQLite and real PostgreSQL: claims, all-or-nothing commits, recovery, errors."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from incoming_support import ledger_url  # noqa: F401 - fixture

from pipeline.errors import PipelineError
from pipeline.incoming.ledger import Item, open_ledger


def _items(n: int, prefix: str = "i") -> list[Item]:
    return [Item(f"{prefix}{k:04d}", "feed/export.csv", f"R{k}", f"{k:064x}", "row") for k in range(n)]


@pytest.fixture
def ledger(tmp_path, ledger_url):  # noqa: F811
    ledger = open_ledger(tmp_path / "store", ledger_url)
    yield ledger
    ledger.dispose()


def test_ledger_claim_is_exclusive(ledger):
    ledger.begin_run("run-a")
    ledger.begin_run("run-b")
    claimed_a, _ = ledger.claim("run-a", _items(5), [])
    claimed_b, quarantined = ledger.claim("run-b", _items(8), [Item("bad1", "feed/x.docx", "", "0" * 64, "file",
                                                                       "QA-E013", "[QA-E013] feed/x.docx: corrupt")])
    assert claimed_a == [f"i{k:04d}" for k in range(5)]
    assert claimed_b == [f"i{k:04d}" for k in range(5, 8)]
    assert quarantined == ["bad1"]
    assert ledger.statuses(["i0000", "i0007", "bad1", "nope"]) == {"i0000": "seen", "i0007": "seen",
                                                                  "bad1": "quarantined"}


def test_ledger_concurrent_claims_never_overlap(tmp_path, ledger_url):  # noqa: F811
    ledgers = [open_ledger(tmp_path / "store", ledger_url) for _ in range(4)]
    results: dict[int, list[str]] = {}

    def claim(i: int) -> None:
        ledgers[i].begin_run(f"run-{i}")
        results[i] = ledgers[i].claim(f"run-{i}", _items(200), [])[0]

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ledger in ledgers:
        ledger.dispose()
    claimed = [i for ids in results.values() for i in ids]
    assert sorted(claimed) == [f"i{k:04d}" for k in range(200)]  # each item claimed by exactly one run


def test_ledger_commit_is_all_or_nothing(ledger):
    ledger.begin_run("run-a")
    ledger.claim("run-a", _items(3), [])
    with pytest.raises(PipelineError) as err:
        ledger.commit_batch("run-a", 0, {"i0000": 2, "i0001": 1, "not-claimed": 4},
                            [{"rel": "coded/day=2026-01-01/part-run-a-b00000.parquet", "kind": "coded", "rows": 7}])
    assert err.value.code == "QA-E062"
    assert ledger.items(status="processed") == []
    assert ledger.parts() == []
    ledger.commit_batch("run-a", 0, {"i0000": 2, "i0001": 1},
                        [{"rel": "coded/day=2026-01-01/part-run-a-b00000.parquet", "kind": "coded", "rows": 3}])
    assert {i["item_id"]: i["segments"] for i in ledger.items(status="processed")} == {"i0000": 2, "i0001": 1}
    assert [p["rel"] for p in ledger.parts("coded")] == ["coded/day=2026-01-01/part-run-a-b00000.parquet"]


def test_ledger_release_dead_runs_keeps_committed_work(ledger):
    ledger.begin_run("run-a")
    ledger.claim("run-a", _items(4), [])
    ledger.commit_batch("run-a", 0, {"i0000": 1, "i0001": 1}, [])
    assert ledger.release_dead_runs() == ["run-a"]
    assert {i["item_id"] for i in ledger.items()} == {"i0000", "i0001"}  # the unfinished claims are gone
    assert [r["status"] for r in ledger.runs()] == ["interrupted"]
    ledger.begin_run("run-b")
    assert ledger.claim("run-b", _items(4), [])[0] == ["i0002", "i0003"]  # free to claim again


def test_ledger_sqlite_settings(tmp_path):
    ledger = open_ledger(tmp_path / "store")
    with ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000
    ledger.dispose()
    assert (tmp_path / "store" / "ledger.sqlite").is_file()


def test_ledger_url_from_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    monkeypatch.setenv("ALLIANCE_LEDGER_URL", url)
    ledger = open_ledger(tmp_path / "store")
    assert ledger.url == url
    ledger.dispose()
    assert (tmp_path / "elsewhere.sqlite").is_file()


def test_ledger_unreachable_database_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError) as err:
        open_ledger(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert err.value.code == "QA-E061"
    assert "nobody" not in str(err.value)  # the URL (which may hold a password) is not echoed


def test_ledger_tables_hold_no_text_columns_beyond_paths_and_reasons():
    from pipeline.incoming.ledger import ITEMS

    assert {c.name for c in ITEMS.columns if isinstance(c.type, sa.Text)} == {"source_path", "record_key", "reason"}
