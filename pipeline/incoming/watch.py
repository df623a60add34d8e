"""Watching the cumulative store: per-period prevalence of each code, a trend report and alert rules.

Reads ``STORE/coded/`` (hive-partitioned Parquet, ``day=YYYY-MM-DD/part-<run_id>.parquet``, one row per
segment with its final ``codes``) and writes ``STORE/reports/``:

- ``prevalence.parquet`` / ``prevalence.csv``: per period (day, ISO week, month), per group (all comments,
  each clinician) and per code (every codebook code and every parent theme, a parent counting segments
  with any of its children): comments (= documents) and segments, with the code and in all, and shares;
- ``trends.html``: the same numbers as lines over the weeks and months plus a table per clinician;
- ``alerts.jsonl``: one line per fired alert; ``webhook.jsonl``: one line per delivery attempt series.

Definitions. A segment's *period* comes from the ``day`` partition the pass stored it under: the comment's
own date (``collected_at``) or, for undated comments, the date of the pass. De-identification keeps dates
to the month by default (``deidentify.date_precision: month``); such comments are stored under the 1st of
their month and count in month periods only, never in day or week periods (set ``date_precision: day`` for
weekly rules on dated feeds). Only the
rule's ``speaker`` segments count (client segments by default); a comment counts for a period and group
when it has at least one such segment there. An alert rule fires for a (period, group) when at least
``min_comments`` comments are in it and the share of those with one of the rule's codes is *above*
``threshold`` (equal does not fire). Rules are judged for the periods that hold segments of this run and
of any earlier run whose watch never finished (a pass killed between its commit and its watch; the runs
watched are listed in ``STORE/reports/watched_runs.json``). Each (rule, period, group) fires at most once:
a later pass that finds it still above the threshold does not repeat it. Webhook deliveries that failed
are retried by the next watch.

Nothing here carries participant text: alerts and logs hold counts, code ids, period labels, segment ids
and group ids. Group ids are ``g-`` plus a hash of the grouping column and its value; the value itself is
shown (``group_label``) only for clinician pseudonyms written by de-identification (``[THERAPIST_3]``),
never for case ids or file paths, which may be identifying.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from pipeline.errors import ConfigError

__all__ = [
    "PERIODS",
    "alert_artifact_rows",
    "check_alert_rules",
    "evaluate_alerts",
    "expand_codes",
    "group_identity",
    "period_label",
    "post_webhook",
    "prevalence_table",
    "read_coded_store",
    "resolve_alert_codes",
    "store_day",
    "watch_store",
]

logger = logging.getLogger(__name__)

PERIODS = ("day", "week", "month")
#: Groupings of the prevalence table (alert rules may use any ``AlertRule.by``).
PREVALENCE_BY = ("all", "clinician")
CODED_COLUMNS = ("segment_id", "document_id", "item_id", "run_id", "collected_at", "clinician", "case_id",
                 "source_path", "source_type", "speaker", "start_char", "end_char", "codes", "scores", "day")
PREVALENCE_COLUMNS = ("period", "period_label", "by", "group_id", "group_label", "code_id", "comments",
                      "comments_with_code", "share_comments", "segments", "segments_with_code", "share_segments")
#: Most segment ids listed in one alert (the count is always complete).
MAX_ALERT_SEGMENT_IDS = 500
_PSEUDONYM = re.compile(r"^\[[A-Z][A-Z_]*_\d+\]$")
_NONE = "(not recorded)"


# --- periods and groups ---------------------------------------------------------------------------


def store_day(now: datetime | None = None, *, timezone: str) -> str:
    """The local date ``YYYY-MM-DD`` in ``timezone`` under which a pass files its items (``day=`` partition).

    Args:
        now: An aware datetime (default: the current time).
        timezone: IANA zone, normally ``incoming.schedule.timezone``.
    """
    zone = ZoneInfo(timezone)
    moment = datetime.now(zone) if now is None else now.astimezone(zone)
    return moment.date().isoformat()


def period_label(day: str | date, period: str) -> str:
    """Label of the period a day falls in: ``2026-03-04``, ISO week ``2026-W10`` or ``2026-03``.

    Raises:
        ValueError: ``period`` is not one of day, week, month, or ``day`` is not an ISO date.
    """
    d = day if isinstance(day, date) else date.fromisoformat(str(day))
    if period == "day":
        return d.isoformat()
    if period == "week":
        year, week, _ = d.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{d.year:04d}-{d.month:02d}"
    raise ValueError(f"The 'period' parameter of period_label must be one of {PERIODS}. Got {period!r} instead.")


def group_identity(by: str, value: Any) -> tuple[str, str | None]:
    """``(group_id, group_label)`` of one group value; the label only where it cannot identify anyone.

    ``group_id`` is ``all`` for ``by='all'``, else ``g-`` + 16 hex digits of sha256(``by``, value). The
    label is the value for clinician pseudonyms (``[THERAPIST_3]``) and ``(not recorded)`` for missing
    values; case ids and file paths get no label.
    """
    if by == "all":
        return "all", "all comments"
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "g-none", _NONE
    digest = hashlib.sha256(f"{by}\0{value}".encode()).hexdigest()[:16]
    label = str(value) if by == "clinician" and _PSEUDONYM.match(str(value)) else None
    return f"g-{digest}", label


# --- codes ---------------------------------------------------------------------------------------


def expand_codes(codes: Sequence[str], codebook: Any, *, key: str = "codes") -> list[str]:
    """Codebook code ids a rule's ``codes`` stand for: a parent id stands for all of its children.

    Raises:
        ConfigError: an id is neither a code nor a parent of the codebook (``key`` names where).
    """
    children: dict[str, list[str]] = {p.id: [] for p in codebook.parents}
    for code in codebook.codes:
        if code.parent is not None:
            children.setdefault(code.parent, []).append(code.id)
    known = set(codebook.code_ids)
    out: list[str] = []
    for cid in codes:
        if cid in known:
            out.append(cid)
        elif cid in children:
            out.extend(children[cid])
        else:
            raise ConfigError(
                f"code id {cid!r} is not in codebook {codebook.id!r} {codebook.version}; use a code or parent id "
                f"such as {sorted(children)[:3] or codebook.code_ids[:3]}.", key=key,
            )
    return sorted(set(out))


def resolve_alert_codes(cfg: Any, codebook: Any) -> dict[str, list[str]]:
    """Rule name -> expanded code ids for every alert rule of ``cfg.incoming``.

    Raises:
        ConfigError: unknown code id (key ``incoming.alerts[i].codes``) or two rules with one name.
    """
    out: dict[str, list[str]] = {}
    for i, rule in enumerate(cfg.incoming.alerts):
        if rule.name in out:
            raise ConfigError(f"alert rule name {rule.name!r} is used twice; names must be unique.",
                              key=f"incoming.alerts[{i}].name")
        out[rule.name] = expand_codes(rule.codes, codebook, key=f"incoming.alerts[{i}].codes")
    return out


def check_alert_rules(cfg: Any, codebook: Any, path: str | Path | None = None) -> dict[str, list[str]]:
    """:func:`resolve_alert_codes`, with the config file's line and column in the error when ``path`` is given.

    Raises:
        ConfigError: ``file:line:column incoming.alerts[i].codes: code id ... is not in codebook ...``.
    """
    try:
        return resolve_alert_codes(cfg, codebook)
    except ConfigError as err:
        if path is None or err.key is None:
            raise
        from pipeline.yamlio import load_yaml, node_position

        m = re.fullmatch(r"incoming\.alerts\[(\d+)\]\.(\w+)", err.key)
        line = col = None
        if m is not None:
            line, col = node_position(load_yaml(Path(path)), ("incoming", "alerts", int(m.group(1)), m.group(2)))
        raise ConfigError(err.message, path=str(path), line=line, column=col, key=err.key) from None


# --- reading the store ---------------------------------------------------------------------------


def read_coded_store(store: Path, *, since: str | None = None) -> pd.DataFrame:
    """The committed coded segments of the store (``pipeline.incoming.store.read_coded``), text dropped.

    Returns:
        One row per segment with :data:`CODED_COLUMNS` (``day`` as ``YYYY-MM-DD``), sorted by day and
        segment id; empty when nothing is committed yet. Parts of a pass that died before its ledger
        commit are not read.
    """
    from pipeline.incoming.store import read_coded

    df = read_coded(Path(store), since=since)
    for c in CODED_COLUMNS:
        if c not in df.columns:
            df[c] = None
    df = df[list(CODED_COLUMNS)].copy()
    df["day"] = df["day"].astype(str).str.slice(0, 10)
    df["codes"] = [[] if v is None else [str(x) for x in v] for v in df["codes"]]
    return df.sort_values(["day", "segment_id"], kind="stable").reset_index(drop=True)


def _day_precise(coded: pd.DataFrame) -> pd.Series:
    """True where the ``day`` partition is a real day: ``collected_at`` has a day, or no date (pass date)."""
    dated = coded["collected_at"]
    return dated.isna() | (dated.astype(str).str.len() >= 10)


def _speaker_rows(coded: pd.DataFrame, speaker: str) -> pd.DataFrame:
    return coded if speaker == "any" else coded[coded["speaker"] == speaker]


# --- prevalence ----------------------------------------------------------------------------------


def _code_hits(segs: pd.DataFrame, codebook: Any) -> pd.DataFrame:
    """Long ``segment_id, code_id`` rows: each final code and, for codes with a parent, the parent."""
    ex = segs[["segment_id", "codes"]].explode("codes").dropna(subset=["codes"])
    parent_of = {c.id: c.parent for c in codebook.codes if c.parent} if codebook is not None else {}
    parents = ex.assign(codes=ex["codes"].map(parent_of)).dropna(subset=["codes"])
    hits = pd.concat([ex, parents], ignore_index=True).rename(columns={"codes": "code_id"})
    return hits.drop_duplicates(["segment_id", "code_id"])


def _code_order(codebook: Any, seen: Iterable[str]) -> list[str]:
    order = [p.id for p in codebook.parents] + codebook.code_ids if codebook is not None else []
    return order + sorted(set(seen) - set(order))


def _grouped(segs: pd.DataFrame, period: str, by: str) -> pd.DataFrame:
    """Segments with their period label and group value; day and week periods skip month-dated rows."""
    if period != "month":
        segs = segs[_day_precise(segs)]
    out = segs[["segment_id", "document_id"]].copy()
    out["period_label"] = segs["day"].map(lambda d: period_label(d, period))
    out["group_value"] = "all" if by == "all" else segs[by].astype(object).where(segs[by].notna(), None)
    return out


def prevalence_table(coded: pd.DataFrame, codebook: Any, *, speaker: str = "client",
                     periods: Sequence[str] = PERIODS, by: Sequence[str] = PREVALENCE_BY) -> pd.DataFrame:
    """Per period, group and code: comments and segments with the code, in all, and the shares.

    Args:
        coded: Rows of :func:`read_coded_store`.
        codebook: The run's :class:`~pipeline.codebook.Codebook` (order, parents); codes the store holds
            that the codebook lacks are listed after it.
        speaker: ``client`` (default) or ``any``: which segments count.
        periods: Period kinds to compute.
        by: Groupings (``all`` and columns of the store).

    Returns:
        A frame with :data:`PREVALENCE_COLUMNS`, sorted; every code appears in every (period, group).
    """
    segs = _speaker_rows(coded, speaker)
    if segs.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PREVALENCE_COLUMNS})
    hits = _code_hits(segs, codebook)
    codes = _code_order(codebook, hits["code_id"])
    frames = []
    for period in periods:
        for b in by:
            g = _grouped(segs, period, b)
            keys = ["period_label", "group_value"]
            den = g.groupby(keys, dropna=False).agg(segments=("segment_id", "size"),
                                                    comments=("document_id", "nunique")).reset_index()
            h = hits.merge(g, on="segment_id")
            num = h.groupby([*keys, "code_id"], dropna=False).agg(
                segments_with_code=("segment_id", "nunique"), comments_with_code=("document_id", "nunique"),
            ).reset_index()
            grid = den.merge(pd.DataFrame({"code_id": codes}), how="cross")
            t = grid.merge(num, on=[*keys, "code_id"], how="left").fillna(
                {"segments_with_code": 0, "comments_with_code": 0})
            ident = [group_identity(b, v) for v in t["group_value"]]
            t["group_id"] = [i[0] for i in ident]
            t["group_label"] = [i[1] for i in ident]
            t["period"], t["by"] = period, b
            frames.append(t)
    out = pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)
    for c in ("segments", "comments", "segments_with_code", "comments_with_code"):
        out[c] = out[c].astype("int64")
    out["share_comments"] = (out["comments_with_code"] / out["comments"]).round(6)
    out["share_segments"] = (out["segments_with_code"] / out["segments"]).round(6)
    rank = {c: i for i, c in enumerate(codes)}
    out["_p"], out["_c"] = out["period"].map({p: i for i, p in enumerate(PERIODS)}), out["code_id"].map(rank)
    out = out.sort_values(["_p", "by", "period_label", "group_id", "_c"], kind="stable")
    return out[list(PREVALENCE_COLUMNS)].reset_index(drop=True)


# --- alerts --------------------------------------------------------------------------------------


def evaluate_alerts(coded: pd.DataFrame, rules: Sequence[Any], expanded: dict[str, list[str]], *,
                    periods_of_run: dict[str, set[str]]) -> list[dict[str, Any]]:
    """The alerts the rules fire in the given periods (counts, code ids and segment ids only).

    Args:
        coded: Rows of :func:`read_coded_store`.
        rules: ``AlertRule`` objects.
        expanded: Rule name -> code ids (see :func:`resolve_alert_codes`).
        periods_of_run: Period kind -> labels to evaluate (the periods this run's segments fall in).

    Returns:
        One dict per (rule, period, group) whose share of comments with the codes is above the threshold
        with at least ``min_comments`` comments, in rule, period and group order.
    """
    alerts = []
    for rule in rules:
        labels = periods_of_run.get(rule.period, set())
        segs = _speaker_rows(coded, rule.speaker)
        if not labels or segs.empty:
            continue
        g = _grouped(segs, rule.period, rule.by)
        g = g[g["period_label"].isin(labels)]
        codes = set(expanded[rule.name])
        g = g.assign(hit=[bool(codes.intersection(cs)) for cs in segs.loc[g.index, "codes"]])
        for (label, value), grp in g.groupby(["period_label", "group_value"], dropna=False, sort=True):
            comments = int(grp["document_id"].nunique())
            hit = grp[grp["hit"]]
            with_codes = int(hit["document_id"].nunique())
            share = with_codes / comments if comments else 0.0
            if comments < rule.min_comments or not share > rule.threshold:
                continue
            group_id, group_label = group_identity(rule.by, value)
            ids = sorted(hit["segment_id"].astype(str))
            alerts.append({
                "rule": rule.name, "codes": sorted(codes), "period": rule.period, "period_label": str(label),
                "by": rule.by, "group_id": group_id, "group_label": group_label, "speaker": rule.speaker,
                "comments": comments, "comments_with_codes": with_codes, "share": round(share, 6),
                "threshold": rule.threshold, "min_comments": rule.min_comments, "segments": len(grp),
                "segments_with_codes": len(ids), "segment_ids": ids[:MAX_ALERT_SEGMENT_IDS],
                "segment_ids_truncated": len(ids) > MAX_ALERT_SEGMENT_IDS,
                "alert_id": _alert_id(rule.name, rule.period, str(label), group_id),
            })
    return alerts


def _alert_id(rule: str, period: str, label: str, group_id: str) -> str:
    return hashlib.sha256(f"{rule}\0{period}\0{label}\0{group_id}".encode()).hexdigest()[:20]


def alert_artifact_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a Prefect table artifact for :func:`watch_store`'s result: counts only, no segment ids."""
    return [{"rule": a["rule"], "period": a["period_label"], "group": a["group_label"] or a["group_id"],
             "comments": a["comments"], "with codes": a["comments_with_codes"], "share": f"{100 * a['share']:.1f}%",
             "threshold": f"{100 * a['threshold']:.1f}%", "webhook": a.get("webhook", "off")}
            for a in result.get("alerts", [])]


def _log_alert(alert: dict[str, Any]) -> None:
    logger.warning(
        "alert %s: %d of %d comments (%.1f%%, threshold %.1f%%) have codes %s in %s %s, %s %s",
        alert["rule"], alert["comments_with_codes"], alert["comments"], 100 * alert["share"],
        100 * alert["threshold"], ",".join(alert["codes"]), alert["period"], alert["period_label"], alert["by"],
        alert["group_label"] or alert["group_id"],
    )


# --- webhook -------------------------------------------------------------------------------------


def post_webhook(url: str, payload: dict[str, Any], *, timeout: float, attempts: int = 3,
                 backoff_s: float = 1.0) -> dict[str, Any]:
    """POST ``payload`` as JSON; retry on network errors, 408, 429 and 5xx with exponential backoff.

    Never raises for delivery problems: a failure is logged as an ERROR with the HTTP status (the URL's
    host only, as webhook URLs often hold a token) and returned.

    Returns:
        ``{"status": "sent" | "failed", "http_status": int | None, "attempts": n, "error": str | None}``.
    """
    body = json.dumps(payload, sort_keys=True, ensure_ascii=True).encode("utf-8")
    host = urllib.parse.urlsplit(url).hostname or "?"
    http_status: int | None = None
    error = None
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": "alliance-coder-alerts"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http/https checked)
                http_status = response.status
            return {"status": "sent", "http_status": http_status, "attempts": attempt, "error": None}
        except urllib.error.HTTPError as e:
            http_status, error = e.code, f"HTTP {e.code}"
            retry = e.code in (408, 429) or e.code >= 500
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            http_status, error, retry = None, type(reason).__name__, True
        if not retry or attempt == attempts:
            break
        time.sleep(backoff_s * 2 ** (attempt - 1))
    logger.error("webhook to host %s failed after %d attempt(s): %s (status %s); the alert is kept in "
                 "alerts.jsonl and retried on the next pass", host, attempt, error, http_status)
    return {"status": "failed", "http_status": http_status, "attempts": attempt, "error": error}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text("utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s: skipped a malformed line (a pass was interrupted while writing)", path)
    return out


def _append_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    rows = list(rows)
    if not rows:
        return
    data = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _deliver(alerts: list[dict[str, Any]], cfg: Any, reports: Path, *, backoff_s: float) -> dict[str, int]:
    """Post new alerts and earlier failed ones; record each outcome in ``webhook.jsonl``."""
    url = cfg.incoming.webhook_url
    counts = {"sent": 0, "failed": 0}
    if not url:
        for a in alerts:
            a["webhook"] = "off"
        return counts
    log_path = reports / "webhook.jsonl"
    last: dict[str, str] = {}
    for row in _read_jsonl(log_path):
        last[row["alert_id"]] = row["status"]
    retry = {a["alert_id"]: a for a in _read_jsonl(reports / "alerts.jsonl") if last.get(a["alert_id"]) == "failed"}
    todo = [*alerts, *[a for i, a in retry.items() if i not in {x["alert_id"] for x in alerts}]]
    for alert in todo:
        payload = {"source": "alliance-coder", "type": "alert",
                   "alert": {k: v for k, v in alert.items() if k != "webhook"}}
        outcome = post_webhook(url, payload, timeout=cfg.incoming.webhook_timeout_s, backoff_s=backoff_s)
        alert["webhook"] = outcome["status"]
        counts[outcome["status"]] += 1
        _append_jsonl(log_path, [{"alert_id": alert["alert_id"], "run_id": alert["run_id"], **outcome}])
    return counts


@contextmanager
def _watch_lock(reports: Path) -> Iterator[None]:
    """Serialise watches of one store (two passes finishing together must not both fire an alert)."""
    fd = os.open(reports / ".watch.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _watched_runs(reports: Path) -> set[str]:
    path = reports / "watched_runs.json"
    return set(json.loads(path.read_text("utf-8"))["runs"]) if path.exists() else set()


# --- the pass's watch step -----------------------------------------------------------------------


def watch_store(store: Path, cfg: Any, run_id: str, *, codebook: Any = None,
                webhook_backoff_s: float = 1.0) -> dict[str, Any]:
    """Prevalence tables, trend report and alerts for the store after pass ``run_id``.

    Args:
        store: The store folder (``STORE/coded`` is read, ``STORE/reports`` written, mode 0700/0600).
        cfg: The :class:`~pipeline.config.RunConfig` (``incoming.alerts``, ``webhook_url``, the codebook).
        run_id: The pass whose new segments (with those of runs never watched) select the periods alert
            rules are judged for.
        codebook: The codebook (default: loaded from ``cfg.codebook``).
        webhook_backoff_s: First retry delay of webhook posts (doubles per retry).

    Returns:
        ``{"run_id", "alerts": [...], "periods": n, "segments", "comments", "new_segments", "rules",
        "webhook": {"sent", "failed"}, "paths": {...}}``; alerts hold counts and segment ids only.

    Raises:
        ConfigError: an alert rule names a code id the codebook lacks (``incoming.alerts[i].codes``).
    """
    from pipeline.codebook import load_codebook
    from pipeline.incoming.trends import write_trends
    from pipeline.io import atomic_write_bytes, ensure_private_dir, write_csv, write_json

    store = Path(store)
    codebook = codebook if codebook is not None else load_codebook(cfg.codebook)
    expanded = resolve_alert_codes(cfg, codebook)
    reports = ensure_private_dir(store / "reports")
    with _watch_lock(reports):
        coded = read_coded_store(store)
        table = prevalence_table(coded, codebook)
        buf = io.BytesIO()
        table.to_parquet(buf, index=False, engine="pyarrow")
        paths = {"prevalence": str(atomic_write_bytes(reports / "prevalence.parquet", buf.getvalue())),
                 "prevalence_csv": str(write_csv(reports / "prevalence.csv", list(table.columns),
                                                 table.itertuples(index=False, name=None))),
                 "trends": str(write_trends(table, codebook, reports / "trends.html", run_id=run_id)),
                 "alerts": str(reports / "alerts.jsonl")}
        watched = _watched_runs(reports)
        new = coded[(coded["run_id"] == run_id) | ~coded["run_id"].isin(watched)]
        precise = _day_precise(new)
        touched = {p: {period_label(d, p) for d in (new if p == "month" else new[precise])["day"].unique()}
                   for p in PERIODS}
        undated = int((~precise).sum())
        if undated and any(r.period != "month" for r in cfg.incoming.alerts):
            logger.warning("%d new segments are dated to the month only (deidentify.date_precision); day and "
                           "week alert rules do not judge them, month rules do", undated)
        fired = evaluate_alerts(coded, cfg.incoming.alerts, expanded, periods_of_run=touched)
        seen = {a["alert_id"] for a in _read_jsonl(reports / "alerts.jsonl")}
        alerts = [{**a, "run_id": run_id} for a in fired if a["alert_id"] not in seen]
        for alert in alerts:
            _log_alert(alert)
        _append_jsonl(reports / "alerts.jsonl", alerts)
        webhook = _deliver(alerts, cfg, reports, backoff_s=webhook_backoff_s)
        write_json(reports / "watched_runs.json", {"runs": sorted(watched | set(coded["run_id"]))})
    return {
        "run_id": run_id, "alerts": alerts, "already_alerted": len(fired) - len(alerts),
        "periods": len({(r.period, label) for r in cfg.incoming.alerts for label in touched[r.period]}),
        "segments": len(coded), "comments": int(coded["document_id"].nunique()), "new_segments": len(new),
        "new_segments_month_dated": undated, "runs_judged": sorted(set(new["run_id"])),
        "rules": len(cfg.incoming.alerts), "webhook": webhook, "paths": paths,
    }
