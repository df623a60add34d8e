"""Incremental passes in-process, on SQLite and PostgreSQL: only new items, exactly once, store contract."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from incoming_support import (
    assert_exactly_once,
    feedback_rows,
    ledger_url,  # noqa: F401 - fixture
    write_config,
    write_feedback,
    write_session,
)

from pipeline.config import load_run_config
from pipeline.incoming.ledger import open_ledger
from pipeline.incoming.passes import run_pass
from pipeline.incoming.store import CODED_COLUMNS, CODED_SCHEMA, coded_dir, read_coded

pytestmark = pytest.mark.slow


def test_passes_second_pass_processes_nothing_and_edit_processed_once(tmp_path, ledger_url):  # noqa: F811
    inbox, store = tmp_path / "inbox", tmp_path / "store"
    write_feedback(inbox / "clinic_a" / "export.csv", feedback_rows(0, 12))
    write_session(inbox / "clinic_b" / "s1.txt", 1)
    cfg = load_run_config(write_config(tmp_path, batch_size=5))
    first = run_pass(inbox, store, cfg, ledger_url=ledger_url)
    assert (first.new, first.unchanged, first.quarantined, first.batches) == (13, 0, 0, 3)
    second = run_pass(inbox, store, cfg, ledger_url=ledger_url)
    assert (second.new, second.unchanged, second.processed_segments) == (0, 13, 0)

    write_session(inbox / "clinic_b" / "s1.txt", 2)  # edited after processing
    write_feedback(inbox / "clinic_a" / "export.csv", feedback_rows(0, 12)[::-1] + feedback_rows(12, 3))
    third = run_pass(inbox, store, cfg, ledger_url=ledger_url)
    assert (third.new, third.unchanged) == (1 + 3, 12)  # the edited file and 3 appended rows; re-ordered rows known
    fourth = run_pass(inbox, store, cfg, ledger_url=ledger_url)
    assert fourth.new == 0
    counts = assert_exactly_once(store, ledger_url)
    assert counts["processed"] == 17


def test_passes_coded_store_contract(tmp_path, ledger_url):  # noqa: F811
    inbox, store = tmp_path / "inbox", tmp_path / "store"
    write_feedback(inbox / "f" / "export.csv", feedback_rows(0, 6, month=2) + feedback_rows(6, 4, month=4))
    write_session(inbox / "s" / "nodate.txt", 3)
    cfg = load_run_config(write_config(tmp_path, nvivo=True))
    result = run_pass(inbox, store, cfg, ledger_url=ledger_url)
    coded = read_coded(store)
    assert list(coded.columns) == [*CODED_COLUMNS, "day"]
    assert len(coded) == result.processed_segments > 0
    for path in coded_dir(store).rglob("part-*.parquet"):
        assert pq.read_schema(path).remove_metadata() == CODED_SCHEMA
        assert path.parent.name.startswith("day=")
    # collected_at is generalised to the month by de-identification: the partition is its first day
    feedback = coded[coded["source_type"] == "feedback"]
    assert set(feedback["collected_at"]) == {"2026-02", "2026-04"}
    assert set(feedback["day"]) == {"2026-02-01", "2026-04-01"}
    undated = coded[coded["collected_at"].isna()]
    assert len(undated) and set(undated["day"]) == {result.run_id[4:8] + "-" + result.run_id[8:10] + "-"
                                                    + result.run_id[10:12]}
    assert all(len(c) == len(s) for c, s in zip(coded["codes"], coded["scores"], strict=True))
    assert any(len(c) for c in coded["codes"]), "the rules coder assigned no code at all"
    assert "Alex Morgan" not in set(coded["clinician"].dropna()), "clinician names must be pseudonymised"
    assert read_coded(store, since="2026-04")["day"].min() >= "2026-04-01"
    assert (store / "exports" / "project.qdpx").is_file()


def test_passes_quarantine_retried_only_when_changed(tmp_path, ledger_url):  # noqa: F811
    inbox, store = tmp_path / "inbox", tmp_path / "store"
    write_feedback(inbox / "f" / "ok.csv", feedback_rows(0, 3))
    (inbox / "f" / "empty.txt").write_text("   \n", encoding="utf-8")
    (inbox / "f" / "broken.docx").write_bytes(b"PK\x03\x04 this is not a zip archive")
    cfg = load_run_config(write_config(tmp_path))
    first = run_pass(inbox, store, cfg, ledger_url=ledger_url)
    assert (first.new, first.quarantined) == (3, 2)
    ledger = open_ledger(store, ledger_url)
    reasons = {i["source_path"]: (i["code"], i["reason"]) for i in ledger.items(status="quarantined")}
    ledger.dispose()
    assert reasons["f/empty.txt"][0] == "QA-E011" and "f/empty.txt" in reasons["f/empty.txt"][1]
    assert reasons["f/broken.docx"][0].startswith("QA-E0") and "f/broken.docx" in reasons["f/broken.docx"][1]
    again = run_pass(inbox, store, cfg, ledger_url=ledger_url)
    assert (again.new, again.quarantined, again.unchanged) == (0, 0, 5)
    write_session(inbox / "f" / "empty.txt", 7)  # fixed: new content, so a new item
    fixed = run_pass(inbox, store, cfg, ledger_url=ledger_url)
    assert (fixed.new, fixed.quarantined) == (1, 0)
    assert_exactly_once(store, ledger_url)


def test_passes_thousand_items_ten_percent_broken(tmp_path, ledger_url):  # noqa: F811
    inbox, store = tmp_path / "inbox", tmp_path / "store"
    for k in range(9):  # 900 good rows in 9 exports
        write_feedback(inbox / f"clinic{k}" / "export.csv", feedback_rows(k * 100, 100))
    broken = inbox / "broken"
    broken.mkdir()
    for k in range(25):
        (broken / f"empty{k:02d}.txt").write_bytes(b"" if k % 2 else b"  \n\n ")
        (broken / f"corrupt{k:02d}.docx").write_bytes(b"PK\x03\x04" + bytes(range(256)) * (k + 1))
        (broken / f"binary{k:02d}.vtt").write_bytes(b"\x00\xff\xfe\x00" * (50 + k))
    # 25 malformed rows: a row whose record id repeats an earlier one is skipped (QA-E015) and quarantined
    rows = feedback_rows(5000, 25)
    write_feedback(broken / "dupes.csv", rows + [[r[0], *r[1:5], f"second answer {i}"] for i, r in enumerate(rows)])
    cfg = load_run_config(write_config(tmp_path, batch_size=300))
    result = run_pass(inbox, store, cfg, ledger_url=ledger_url)
    assert (result.new, result.quarantined) == (900 + 25, 100)
    ledger = open_ledger(store, ledger_url)
    quarantined = ledger.items(status="quarantined")
    ledger.dispose()
    assert len(quarantined) == 100
    for item in quarantined:
        assert item["code"].startswith("QA-E0") and item["reason"].startswith(f"[{item['code']}] {item['source_path']}")
    assert sum(":" in item["reason"].split("] ", 1)[1].split(" ")[0] for item in quarantined) >= 25  # rows: file:line
    counts = assert_exactly_once(store, ledger_url)
    assert counts["processed"] == 925
    assert set(read_coded(store)["item_id"]) <= {i for i in ledger_items_processed(store, ledger_url)}


def ledger_items_processed(store, url):
    ledger = open_ledger(store, url)
    try:
        return [i["item_id"] for i in ledger.items(status="processed")]
    finally:
        ledger.dispose()
