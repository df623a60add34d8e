"""Scanning an inbox: item identity by source and content, broken items with reasons, unchanged files skipped."""

from __future__ import annotations

import os

from incoming_support import feedback_rows, write_feedback, write_session

from pipeline.incoming.inbox import item_id, scan_inbox
from pipeline.incoming.ledger import open_ledger
from pipeline.ingest import IngestConfig


def _scan(inbox, store):
    ledger = open_ledger(store)
    try:
        return scan_inbox(inbox, IngestConfig(), ledger)
    finally:
        ledger.dispose()


def _record(store, scan, run_id="run-1"):
    """Claim and commit everything the scan found, as a pass would."""
    ledger = open_ledger(store)
    ledger.begin_run(run_id)
    claimed, _ = ledger.claim(run_id, [n.item for n in scan.new], scan.quarantined)
    ledger.commit_batch(run_id, 0, dict.fromkeys(claimed, 1), [])
    ledger.finish_run(run_id, "committed", {}, scan.files)
    ledger.dispose()


def test_inbox_rows_identified_by_source_and_content(tmp_path):
    inbox, store = tmp_path / "inbox", tmp_path / "store"
    write_feedback(inbox / "a" / "export.csv", feedback_rows(0, 5))
    write_feedback(inbox / "b" / "export.csv", feedback_rows(0, 5))  # same rows, other feed: other items
    first = _scan(inbox, store)
    assert len(first.new) == 10 and not first.quarantined
    assert len({n.item.item_id for n in first.new}) == 10
    row = first.new[0]
    assert row.item.item_id == item_id("row", "a/export.csv", row.item.content_sha256)
    _record(store, first)
    # re-exported with the rows re-ordered and two appended: only the appended rows are new
    write_feedback(inbox / "a" / "export.csv", feedback_rows(0, 5)[::-1] + feedback_rows(5, 2))
    second = _scan(inbox, store)
    assert [n.item.record_key for n in second.new] == ["R00005", "R00006"]
    assert second.unchanged == 10  # 5 re-exported rows + the untouched export of feed b (5 items)


def test_inbox_whole_files_and_edits(tmp_path):
    inbox, store = tmp_path / "inbox", tmp_path / "store"
    write_session(inbox / "s" / "one.txt", 1)
    first = _scan(inbox, store)
    assert [n.item.kind for n in first.new] == ["file"]
    _record(store, first)
    write_session(inbox / "s" / "one.txt", 2)
    edited = _scan(inbox, store)
    assert len(edited.new) == 1 and edited.new[0].item.item_id != first.new[0].item.item_id


def test_inbox_unchanged_file_is_not_read_again(tmp_path):
    inbox, store = tmp_path / "inbox", tmp_path / "store"
    path = write_feedback(inbox / "a" / "export.csv", feedback_rows(0, 3))
    _record(store, _scan(inbox, store))
    again = _scan(inbox, store)
    assert (len(again.new), again.unchanged, again.files) == (0, 3, [])  # skipped on size and mtime
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched, same bytes
    touched = _scan(inbox, store)
    assert (len(touched.new), touched.unchanged) == (0, 3)


def test_inbox_broken_items_carry_code_and_location(tmp_path):
    inbox, store = tmp_path / "inbox", tmp_path / "store"
    (inbox / "f").mkdir(parents=True)
    (inbox / "f" / "empty.txt").write_bytes(b"")
    (inbox / "f" / "corrupt.docx").write_bytes(b"PK\x03\x04 not really a zip")
    (inbox / "f" / "bad.vtt").write_bytes(b"\x00\x01\x02garbage\xff\xfe")
    (inbox / "f" / "rows.csv").write_text(
        "response_id,comment\nR1,fine comment here\nR1,duplicate id row\n", encoding="utf-8")
    scan = _scan(inbox, store)
    reasons = {(q.source_path, q.kind): (q.code, q.reason) for q in scan.quarantined}
    assert reasons[("f/empty.txt", "file")][0] == "QA-E011"
    assert reasons[("f/corrupt.docx", "file")][0].startswith("QA-E0")
    assert ("f/bad.vtt", "file") in reasons
    code, reason = reasons[("f/rows.csv", "row-problem")]
    assert code == "QA-E015" and reason.startswith("[QA-E015] f/rows.csv:3:")  # file and line
    assert [n.item.record_key for n in scan.new] == ["R1"]
    for _, reason in reasons.values():
        assert "duplicate id row" not in reason and "garbage" not in reason  # no content in reasons
