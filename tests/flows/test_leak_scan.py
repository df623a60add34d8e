"""Leak scan: run the code-corpus flow on the planted demo corpus as a user does (CLI, own process, Prefect's
ephemeral API) and look for every planted identifier everywhere the run wrote or said anything.

Scanned: every file under the output folder (parquet read as tables; qdpx/xlsx unzipped; the Prefect
result files in ``.prefect-results``), everything under the run's PREFECT_HOME (the SQLite database read
table by table, plus raw bytes of every other file), the embedding cache folder, and the process's
stdout/stderr (console logs). The pseudonym key folder is the one place allowed to hold names: it must be
outside the output folder, 0700, with 0600 files. Also: no pickle anywhere in the outputs, folders 0700 and
files 0600, telemetry settings off.

Short numeric identifiers (an age "94") also occur as offsets, counts and ports, so they are left to the
per-file check of tests/flows/test_code_corpus_e2e.py; every other identifier must not appear at all.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from pipeline.deid_eval import load_key

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _identifiers(corpus: Path) -> list[dict]:
    key = load_key(corpus / "identifiers.csv")
    return [r for r in key if not (len(r["text"]) <= 3 or r["text"].replace(" ", "").isdigit())]


def _leaks(identifiers: list[dict], blob: str) -> list[tuple[str, str]]:
    blob = blob.casefold()
    found = set()
    for r in identifiers:
        text = r["text"].casefold()
        if text in blob and re.search(rf"(?<!\w){re.escape(text)}(?!\w)", blob):  # substring test first: fast
            found.add((r["type"], r["file"]))
    return sorted(found)


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory, demo_corpus):
    base = tmp_path_factory.mktemp("leak")
    env = {**os.environ, "PREFECT_HOME": str(base / "prefect"), "ALLIANCE_KEY_DIR": str(base / "keys"),
           "ALLIANCE_CACHE_DIR": str(base / "cache")}
    for name in ("PREFECT_API_URL", "DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED"):
        env.pop(name, None)  # the CLI must switch telemetry off by itself
    out = base / "out"
    res = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(demo_corpus), "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    return base, out, res


def _file_text(path: Path) -> str:
    """Everything readable in a file: tables as CSV, zip members unpacked, other bytes decoded leniently."""
    data = path.read_bytes()
    if path.suffix == ".parquet":
        return pd.read_parquet(path).to_csv()
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "\n".join(archive.read(n).decode("utf-8", errors="replace") for n in archive.namelist())
    return data.decode("utf-8", errors="replace").replace(_plotly_js(), "")


@functools.cache
def _plotly_js() -> str:
    """Third-party code embedded in report.html and topics.html (it holds place names of its own)."""
    import plotly.offline

    return plotly.offline.get_plotlyjs()


def _sqlite_text(db: Path) -> str:
    """Every value of every table (a raw byte scan can miss text split across overflow pages)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return "\n".join(conn.iterdump())


def test_no_identifier_in_outputs_results_or_logs(leak_run, demo_corpus) -> None:
    base, out, res = leak_run
    identifiers = _identifiers(demo_corpus)
    assert len(identifiers) > 20
    files = [p for p in out.rglob("*") if p.is_file()]
    report = {str(p.relative_to(out)): _leaks(identifiers, _file_text(p)) for p in files}
    report["stdout+stderr"] = _leaks(identifiers, res.stdout + res.stderr)
    assert {k: v for k, v in report.items() if v} == {}


def test_no_identifier_in_the_prefect_home_database_or_storage(leak_run, demo_corpus) -> None:
    base, _, _ = leak_run
    identifiers = _identifiers(demo_corpus)
    home = base / "prefect"
    db = home / "prefect.db"
    assert db.is_file(), sorted(p.name for p in home.iterdir())
    dump = _sqlite_text(db)
    assert "code-corpus" in dump  # the flow run is in this database
    assert _leaks(identifiers, dump) == []
    others = {str(p.relative_to(home)): _leaks(identifiers, _file_text(p)) for p in home.rglob("*")
              if p.is_file() and not p.name.startswith("prefect.db")}
    assert {k: v for k, v in others.items() if v} == {}


def test_no_identifier_in_the_embedding_cache(leak_run, demo_corpus) -> None:
    """Cached embeddings are keyed by a hash of the text: no index or file there may hold the text itself.

    (``cache/models`` holds the static model distilled from the installed MiniLM package: public weights and
    a tokenizer vocabulary with common names, derived from no corpus, so it is not scanned.)
    """
    base, _, _ = leak_run
    cache = base / "cache" / "embeddings"
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files, "the run cached no embeddings: the scan would prove nothing"
    leaks = {str(p.relative_to(cache)): _leaks(_identifiers(demo_corpus), _file_text(p)) for p in files}
    assert {k: v for k, v in leaks.items() if v} == {}


def test_pseudonym_keys_are_the_only_place_with_names_and_are_private(leak_run, demo_corpus) -> None:
    base, out, _ = leak_run
    keys = base / "keys"
    key_files = [p for p in keys.rglob("*") if p.is_file()]
    assert key_files, "the run wrote no pseudonym key"
    assert not keys.resolve().is_relative_to(out.resolve())
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in key_files)
    names = [r for r in _identifiers(demo_corpus) if r["type"] in ("PERSON", "NAME")]
    held = "\n".join(_file_text(p) for p in key_files)
    assert names and _leaks(names, held), "the key folder holds no names: the scan above would prove nothing"


def test_outputs_hold_no_pickles_and_are_private(leak_run) -> None:
    _, out, _ = leak_run
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    bad_modes, pickles = [], []
    for path in out.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir() and mode != 0o700 or path.is_file() and mode != 0o600:
            bad_modes.append((str(path.relative_to(out)), oct(mode)))
        if not path.is_file():
            continue
        data = path.read_bytes()
        if data.startswith(PICKLE_MAGIC) or b"cloudpickle" in data or b'"picklelib"' in data:
            pickles.append(str(path.relative_to(out)))
    assert bad_modes == [] and pickles == []


def _result_files(base: Path, out: Path) -> list[Path]:
    folders = [out / ".prefect-results", base / "prefect" / "storage"]
    return [p for folder in folders if folder.is_dir() for p in folder.rglob("*") if p.is_file()]


def test_prefect_results_are_json_without_identifiers(leak_run, demo_corpus) -> None:
    """Wherever Prefect put the task results (run folder or PREFECT_HOME/storage): JSON, no pickle, no names."""
    base, out, _ = leak_run
    results = _result_files(base, out)
    assert results, "no persisted task result found: the scan would prove nothing"
    for path in results:
        data = path.read_bytes()
        envelope = json.loads(data)
        assert envelope["metadata"]["serializer"]["type"] == "json", path.name
        assert b"cloudpickle" not in data and not data.startswith(PICKLE_MAGIC)
        assert _leaks(_identifiers(demo_corpus), data.decode("utf-8")) == [], path.name


def test_prefect_results_stay_in_the_private_run_folder(leak_run) -> None:
    base, out, _ = leak_run
    assert not (base / "prefect" / "storage").exists() or not any((base / "prefect" / "storage").iterdir())
    results = _result_files(base, out)
    assert results and all(out in p.parents for p in results)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in results)


def test_telemetry_is_off_by_default(monkeypatch) -> None:
    from pipeline.environment import PRIVATE_ENV, configure_environment

    for name in PRIVATE_ENV:
        monkeypatch.delenv(name, raising=False)
    values = configure_environment()
    assert values["DO_NOT_TRACK"] == "1" and values["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert values["PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY"] == "false"
    assert values["HF_HUB_DISABLE_TELEMETRY"] == "1" and values["RAY_USAGE_STATS_ENABLED"] == "0"
    from prefect.settings import Settings

    settings = Settings()
    assert settings.server.analytics_enabled is False
    assert settings.cloud.enable_orchestration_telemetry is False
