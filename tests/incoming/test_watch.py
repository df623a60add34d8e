"""Watching the store: prevalence per period, the trend report, alert rules and the webhook.

The store is written here the way the incremental pass writes it (hive-partitioned Parquet under
``STORE/coded/day=.../part-<run_id>.parquet``); the webhook receiver is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import RunConfig
from pipeline.errors import ConfigError
from pipeline.incoming.config import AlertRule, IncomingConfig
from pipeline.incoming.store import part_relpath, read_manifest, write_manifest, write_part
from pipeline.incoming.watch import (
    alert_artifact_rows,
    expand_codes,
    period_label,
    prevalence_table,
    read_coded_store,
    store_day,
    watch_store,
)

RUPTURE = AlertRule(name="ruptures", codes=["WA.RUPW", "WA.RUPC"], threshold=0.15, period="week", by="clinician",
                    min_comments=5)
SECRET = "SECRET-PARTICIPANT-TEXT"
CASE = "CASE-Jordan-0042"


def seg(n: int, doc: str, day: str, codes: list[str], *, clinician: str | None = "[THERAPIST_1]",
        speaker: str = "client", run_id: str = "run-1", case_id: str = CASE) -> dict:
    return {"segment_id": f"s{n:04d}", "document_id": doc, "item_id": f"i-{doc}", "run_id": run_id,
            "collected_at": day, "clinician": clinician, "case_id": case_id,
            "source_path": f"inbox/{CASE}.csv", "source_type": "feedback", "speaker": speaker,
            "start_char": 0, "end_char": 10, "text": f"{SECRET} {n}", "codes": codes,
            "scores": [0.9] * len(codes), "day": day}


def write_store(store: Path, rows: list[dict], *, commit: bool = True) -> None:
    """Write parts the way the pass does; ``commit`` lists them in the manifest (the ledger's mirror)."""
    df = pd.DataFrame(rows)
    written = []
    for (day, run_id), part in df.groupby(["day", "run_id"]):
        rel = part_relpath(day, run_id, 0)
        write_part(store, rel, part.drop(columns=["day"]))
        written.append(rel)
    if commit:
        write_manifest(store, [*(read_manifest(store) or []), *written])


def comments(clinician: str, day: str, total: int, hits: int, *, start: int, code: str = "WA.RUPW.WITHDRAWAL",
             run_id: str = "run-1", **kw) -> list[dict]:
    """``total`` one-segment comments, the first ``hits`` of them coded ``code``, the rest validation."""
    return [seg(start + i, f"d{start + i:04d}", day, [code] if i < hits else ["WA.VAL.VALIDATION"],
                clinician=clinician, run_id=run_id, **kw) for i in range(total)]


def make_cfg(codebook_path: Path, rules: list[AlertRule], url: str | None = None) -> RunConfig:
    return RunConfig(codebook=codebook_path, incoming=IncomingConfig(alerts=rules, webhook_url=url,
                                                                     webhook_timeout_s=5))


class Receiver:
    """A real HTTP server on 127.0.0.1 that records POSTed JSON and answers with the next queued status."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                receiver.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                code = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def payloads(self) -> list[dict]:
        return [json.loads(b) for b in self.bodies]


@pytest.fixture
def receiver():
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_watch_posts_counts_and_segment_ids_without_text(tmp_path, codebook, codebook_path, receiver, caplog):
    rows = comments("[THERAPIST_1]", "2026-03-03", 10, 2, start=0)
    rows += comments("[THERAPIST_2]", "2026-03-04", 10, 1, start=100, code="WA.RUPC.CONFRONTATION")
    write_store(tmp_path, rows)
    cfg = make_cfg(codebook_path, [RUPTURE], receiver.url)
    with caplog.at_level(logging.WARNING, logger="pipeline.incoming.watch"):
        result = watch_store(tmp_path, cfg, "run-1", codebook=codebook)
    assert [a["group_label"] for a in result["alerts"]] == ["[THERAPIST_1]"]
    (payload,) = receiver.payloads()
    alert = payload["alert"]
    assert alert["rule"] == "ruptures" and alert["period_label"] == "2026-W10"
    assert (alert["comments"], alert["comments_with_codes"], alert["share"]) == (10, 2, 0.2)
    assert alert["segment_ids"] == ["s0000", "s0001"]
    assert alert["codes"] == ["WA.RUPC.CONFRONTATION", "WA.RUPW.WITHDRAWAL"]
    body = b"".join(receiver.bodies).decode()
    assert SECRET not in body and CASE not in body and "Jordan" not in body
    assert result["alerts"][0]["webhook"] == "sent" and result["webhook"] == {"sent": 1, "failed": 0}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 of 10 comments" in warnings[0] and "[THERAPIST_1]" in warnings[0]
    assert SECRET not in caplog.text
    lines = (tmp_path / "reports" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line)["alert_id"] for line in lines] == [alert["alert_id"]]
    for name in ("alerts.jsonl", "webhook.jsonl", "prevalence.csv", "trends.html"):
        assert SECRET not in (tmp_path / "reports" / name).read_text()
        assert (tmp_path / "reports" / name).stat().st_mode & 0o077 == 0
    assert alert_artifact_rows(result) == [{"rule": "ruptures", "period": "2026-W10", "group": "[THERAPIST_1]",
                                            "comments": 10, "with codes": 2, "share": "20.0%",
                                            "threshold": "15.0%", "webhook": "sent"}]


@pytest.mark.parametrize(("hits", "fires"), [(3, False), (4, True)])
def test_watch_threshold_is_exclusive(tmp_path, codebook, codebook_path, hits, fires):
    write_store(tmp_path, comments("[THERAPIST_1]", "2026-03-03", 20, hits, start=0))  # 3/20 == 0.15 exactly
    result = watch_store(tmp_path, make_cfg(codebook_path, [RUPTURE]), "run-1", codebook=codebook)
    assert bool(result["alerts"]) is fires
    if fires:
        assert result["alerts"][0]["webhook"] == "off"


@pytest.mark.parametrize(("min_comments", "fires"), [(5, False), (4, True)])
def test_watch_min_comments(tmp_path, codebook, codebook_path, min_comments, fires):
    write_store(tmp_path, comments("[THERAPIST_1]", "2026-03-03", 4, 2, start=0))
    rule = RUPTURE.model_copy(update={"min_comments": min_comments})
    assert bool(watch_store(tmp_path, make_cfg(codebook_path, [rule]), "run-1", codebook=codebook)["alerts"]) is fires


def test_period_labels_iso_week_month_day():
    assert period_label("2026-01-04", "week") == "2026-W01"  # a Sunday: still ISO week 1 of 2026
    assert period_label("2026-01-05", "week") == "2026-W02"
    assert period_label("2024-12-30", "week") == "2025-W01"  # ISO year differs from the calendar year
    assert period_label("2026-01-31", "month") == "2026-01"
    assert period_label("2026-02-01", "day") == "2026-02-01"
    with pytest.raises(ValueError, match="'period' parameter"):
        period_label("2026-02-01", "year")


def test_store_day_uses_the_schedule_timezone():
    late_sunday_utc = datetime(2026, 1, 4, 23, 30, tzinfo=UTC)
    assert store_day(late_sunday_utc, timezone="UTC") == "2026-01-04"
    assert store_day(late_sunday_utc, timezone="Europe/Berlin") == "2026-01-05"
    assert period_label(store_day(late_sunday_utc, timezone="Europe/Berlin"), "week") == "2026-W02"
    assert period_label(store_day(late_sunday_utc, timezone="UTC"), "week") == "2026-W01"


@pytest.mark.parametrize(("period", "expected"), [
    ("week", ["2026-W01", "2026-W02"]),   # Sunday 4 Jan and Monday 5 Jan: two weeks, 3 of 6 comments each
    ("month", ["2026-01"]),                # one month: 6 of 12
    ("day", ["2026-01-04", "2026-01-05"]),
])
def test_watch_periods(tmp_path, codebook, codebook_path, period, expected):
    rows = comments("[THERAPIST_1]", "2026-01-04", 6, 3, start=0)
    rows += comments("[THERAPIST_1]", "2026-01-05", 6, 3, start=100)
    write_store(tmp_path, rows)
    rule = RUPTURE.model_copy(update={"period": period, "threshold": 0.4, "min_comments": 6})
    result = watch_store(tmp_path, make_cfg(codebook_path, [rule]), "run-1", codebook=codebook)
    assert [a["period_label"] for a in result["alerts"]] == expected
    assert result["periods"] == len(expected)


def test_watch_only_judges_periods_of_this_run_and_alerts_once(tmp_path, codebook, codebook_path):
    write_store(tmp_path, comments("[THERAPIST_1]", "2026-03-03", 10, 5, start=0, run_id="run-1"))  # W10 above
    watch_store(tmp_path, make_cfg(codebook_path, []), "run-1", codebook=codebook)  # watched without rules
    write_store(tmp_path, comments("[THERAPIST_1]", "2026-03-10", 10, 5, start=100, run_id="run-2"))  # W11 above
    cfg = make_cfg(codebook_path, [RUPTURE])
    first = watch_store(tmp_path, cfg, "run-2", codebook=codebook)
    assert [a["period_label"] for a in first["alerts"]] == ["2026-W11"] and first["runs_judged"] == ["run-2"]
    write_store(tmp_path, comments("[THERAPIST_1]", "2026-03-11", 2, 1, start=200, run_id="run-3"))
    second = watch_store(tmp_path, cfg, "run-3", codebook=codebook)
    assert second["alerts"] == [] and second["already_alerted"] == 1
    assert len((tmp_path / "reports" / "alerts.jsonl").read_text().splitlines()) == 1


def test_watch_catches_up_on_a_run_whose_watch_never_ran(tmp_path, codebook, codebook_path):
    cfg = make_cfg(codebook_path, [RUPTURE])
    write_store(tmp_path, comments("[THERAPIST_1]", "2026-03-03", 10, 1, start=0, run_id="run-1"))
    assert watch_store(tmp_path, cfg, "run-1", codebook=codebook)["alerts"] == []
    # run-2 committed, then the process died before its watch (the pass's "before-watch" point)
    write_store(tmp_path, comments("[THERAPIST_2]", "2026-03-17", 10, 6, start=100, run_id="run-2"))
    write_store(tmp_path, comments("[THERAPIST_1]", "2026-03-24", 10, 0, start=200, run_id="run-3"))
    result = watch_store(tmp_path, cfg, "run-3", codebook=codebook)
    assert [(a["period_label"], a["group_label"]) for a in result["alerts"]] == [("2026-W12", "[THERAPIST_2]")]
    assert result["runs_judged"] == ["run-2", "run-3"]
    assert json.loads((tmp_path / "reports" / "watched_runs.json").read_text())["runs"] == ["run-1", "run-2",
                                                                                           "run-3"]


def test_watch_parent_ids_expand_and_unknown_ids_are_config_errors(tmp_path, codebook, codebook_path):
    assert expand_codes(["WA.RUPW"], codebook) == ["WA.RUPW.WITHDRAWAL"]
    assert expand_codes(["WA.VAL", "WA.RUPC.CONFRONTATION"], codebook) == [
        "WA.RUPC.CONFRONTATION", "WA.VAL.AFFIRMATION", "WA.VAL.VALIDATION"]
    write_store(tmp_path, comments("[THERAPIST_1]", "2026-03-03", 10, 2, start=0))
    only_confrontation = AlertRule(name="confront", codes=["WA.RUPC"], threshold=0.1, min_comments=1)
    only_withdrawal = AlertRule(name="withdraw", codes=["WA.RUPW"], threshold=0.1, min_comments=1)
    cfg = make_cfg(codebook_path, [only_confrontation, only_withdrawal])
    assert [a["rule"] for a in watch_store(tmp_path, cfg, "run-1", codebook=codebook)["alerts"]] == ["withdraw"]
    bad = make_cfg(codebook_path, [RUPTURE, AlertRule(name="typo", codes=["WA.RUPX"], threshold=0.1)])
    with pytest.raises(ConfigError, match=r"incoming\.alerts\[1\]\.codes") as err:
        watch_store(tmp_path, bad, "run-1", codebook=codebook)
    assert err.value.key == "incoming.alerts[1].codes" and "WA.RUPX" in str(err.value)


def test_watch_counts_client_segments_unless_speaker_any(tmp_path, codebook, codebook_path):
    rows = comments("[THERAPIST_1]", "2026-03-03", 10, 0, start=0)
    rows += [seg(50 + i, f"d{i:04d}", "2026-03-03", ["WA.RUPW.WITHDRAWAL"], speaker="therapist") for i in range(3)]
    write_store(tmp_path, rows)
    assert watch_store(tmp_path, make_cfg(codebook_path, [RUPTURE]), "run-1", codebook=codebook)["alerts"] == []
    anyone = RUPTURE.model_copy(update={"speaker": "any", "name": "ruptures-any"})
    (alert,) = watch_store(tmp_path, make_cfg(codebook_path, [anyone]), "run-1", codebook=codebook)["alerts"]
    assert (alert["comments"], alert["comments_with_codes"], alert["segments"]) == (10, 3, 13)


def test_watch_case_groups_are_hashed_not_named(tmp_path, codebook, codebook_path, receiver):
    write_store(tmp_path, comments("[THERAPIST_1]", "2026-03-03", 10, 5, start=0))
    rule = RUPTURE.model_copy(update={"by": "case_id", "name": "per-case"})
    (alert,) = watch_store(tmp_path, make_cfg(codebook_path, [rule], receiver.url), "run-1",
                           codebook=codebook)["alerts"]
    assert alert["group_label"] is None and alert["group_id"].startswith("g-") and len(alert["group_id"]) == 18
    assert CASE not in receiver.bodies[0].decode() and "Jordan" not in receiver.bodies[0].decode()
    assert CASE not in (tmp_path / "reports" / "alerts.jsonl").read_text()


def test_failing_webhook_logs_error_keeps_alert_and_retries_next_pass(tmp_path, codebook, codebook_path, receiver,
                                                                    caplog):
    write_store(tmp_path, comments("[THERAPIST_1]", "2026-03-03", 10, 5, start=0))
    receiver.statuses = [500, 503, 502]
    cfg = make_cfg(codebook_path, [RUPTURE], receiver.url)
    with caplog.at_level(logging.ERROR, logger="pipeline.incoming.watch"):
        first = watch_store(tmp_path, cfg, "run-1", codebook=codebook, webhook_backoff_s=0.01)
    assert len(receiver.bodies) == 3 and first["webhook"] == {"sent": 0, "failed": 1}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "status 502" in errors[0] and "127.0.0.1" in errors[0] and "token" not in errors[0]
    assert len((tmp_path / "reports" / "alerts.jsonl").read_text().splitlines()) == 1
    second = watch_store(tmp_path, cfg, "run-2", codebook=codebook, webhook_backoff_s=0.01)  # no new items
    assert second["alerts"] == [] and second["webhook"] == {"sent": 1, "failed": 0}
    assert len(receiver.bodies) == 4 and receiver.payloads()[-1] == receiver.payloads()[0]
    third = watch_store(tmp_path, cfg, "run-3", codebook=codebook, webhook_backoff_s=0.01)
    assert third["webhook"] == {"sent": 0, "failed": 0} and len(receiver.bodies) == 4


def test_unreachable_webhook_and_client_errors_do_not_fail_the_pass(tmp_path, codebook, codebook_path, receiver):
    write_store(tmp_path, comments("[THERAPIST_1]", "2026-03-03", 10, 5, start=0))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    result = watch_store(tmp_path, make_cfg(codebook_path, [RUPTURE], closed), "run-1", codebook=codebook,
                         webhook_backoff_s=0.01)
    assert result["alerts"][0]["webhook"] == "failed"
    rows = [json.loads(x) for x in (tmp_path / "reports" / "webhook.jsonl").read_text().splitlines()]
    assert rows[0]["status"] == "failed" and rows[0]["attempts"] == 3 and rows[0]["http_status"] is None
    receiver.statuses = [400]  # not transient: one attempt only
    other = tmp_path / "other"
    write_store(other, comments("[THERAPIST_1]", "2026-03-03", 10, 5, start=0))
    result = watch_store(other, make_cfg(codebook_path, [RUPTURE], receiver.url), "run-1", codebook=codebook,
                         webhook_backoff_s=0.01)
    assert result["alerts"][0]["webhook"] == "failed" and len(receiver.bodies) == 1


def test_prevalence_table_counts(tmp_path, codebook):
    rows = [seg(1, "a", "2026-03-03", ["WA.RUPW.WITHDRAWAL"]), seg(2, "a", "2026-03-03", ["WA.VAL.VALIDATION"]),
            seg(3, "b", "2026-03-04", ["WA.VAL.VALIDATION", "WA.VAL.AFFIRMATION"]),
            seg(4, "c", "2026-03-04", [], clinician="[THERAPIST_2]"),
            seg(5, "c", "2026-03-04", ["WA.RUPW.WITHDRAWAL"], speaker="therapist")]
    write_store(tmp_path, rows)
    table = prevalence_table(read_coded_store(tmp_path), codebook)
    week_all = table[(table.period == "week") & (table.by == "all")].set_index("code_id")
    assert week_all.loc["WA.VAL", ["comments_with_code", "comments", "segments_with_code", "segments"]].tolist() \
        == [2, 3, 2, 4]
    assert week_all.loc["WA.VAL.AFFIRMATION", "share_comments"] == pytest.approx(1 / 3, abs=1e-6)
    assert week_all.loc["WA.RUPW.WITHDRAWAL", "segments_with_code"] == 1  # the therapist's segment is not counted
    day = table[(table.period == "day") & (table.by == "clinician") & (table.code_id == "WA.VAL")]
    assert sorted(zip(day.period_label, day.group_label, day.comments, strict=True)) == [
        ("2026-03-03", "[THERAPIST_1]", 1), ("2026-03-04", "[THERAPIST_1]", 1), ("2026-03-04", "[THERAPIST_2]", 1)]
    assert len(table[(table.period == "month") & (table.by == "all")]) == len(codebook.parents) + len(codebook.codes)


def test_trends_report_is_offline_and_text_free(tmp_path, codebook, codebook_path):
    rows = comments("[THERAPIST_1]", "2026-03-03", 10, 2, start=0)
    rows += comments("[THERAPIST_2]", "2026-03-12", 8, 1, start=100)
    write_store(tmp_path, rows)
    result = watch_store(tmp_path, make_cfg(codebook_path, []), "run-1", codebook=codebook)
    html = Path(result["paths"]["trends"]).read_text()
    assert 'http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;;' in html
    assert html.count("Plotly.newPlot") == 1 and html.count("<script>") == 2  # plotly.js once + the loader
    from plotly.offline import get_plotlyjs

    page = html.replace(get_plotlyjs(), "")
    assert len(page) < len(html) - 1_000_000  # plotly.js is embedded, not fetched
    assert 'src="http' not in page and 'href="http' not in page
    assert SECRET not in html and CASE not in html
    assert 'id="chart-themes-week"' in html and "2026-W10" in html and "2026-W11" in html
    assert html.count('class="clinician"') == 2 and "[THERAPIST_2]" in html
    assert pd.read_csv(result["paths"]["prevalence_csv"]).shape[0] == pd.read_parquet(
        result["paths"]["prevalence"]).shape[0]
    again = watch_store(tmp_path, make_cfg(codebook_path, []), "run-1", codebook=codebook)
    assert Path(again["paths"]["prevalence"]).read_bytes() == Path(result["paths"]["prevalence"]).read_bytes()


def test_watch_on_an_empty_store(tmp_path, codebook, codebook_path):
    result = watch_store(tmp_path, make_cfg(codebook_path, [RUPTURE]), "run-1", codebook=codebook)
    assert result["alerts"] == [] and result["segments"] == 0 and result["periods"] == 0
    assert "no coded client segments" in Path(result["paths"]["trends"]).read_text()


def test_month_dated_comments_count_in_months_only_and_uncommitted_parts_are_ignored(tmp_path, codebook,
                                                                                     codebook_path, caplog):
    rows = comments("[THERAPIST_1]", "2026-03-01", 10, 5, start=0)
    for r in rows:
        r["collected_at"] = "2026-03"  # date_precision: month -> stored under the 1st of the month
    write_store(tmp_path, rows)
    write_store(tmp_path, comments("[THERAPIST_1]", "2026-03-02", 10, 10, start=100, run_id="run-1b"), commit=False)
    monthly = RUPTURE.model_copy(update={"period": "month", "name": "monthly"})
    with caplog.at_level(logging.WARNING, logger="pipeline.incoming.watch"):
        result = watch_store(tmp_path, make_cfg(codebook_path, [RUPTURE, monthly]), "run-1", codebook=codebook)
    assert [(a["rule"], a["period_label"], a["comments"]) for a in result["alerts"]] == [("monthly", "2026-03", 10)]
    assert result["new_segments_month_dated"] == 10 and "dated to the month only" in caplog.text
    table = prevalence_table(read_coded_store(tmp_path), codebook)
    assert set(table["period"]) == {"month"} and table["comments"].max() == 10
