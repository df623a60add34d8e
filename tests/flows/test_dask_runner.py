"""The Dask runner gives the same outputs as the local runner (same segments, same codes, same exports).

A small corpus cut from the demo (feedback rows, an interview and sessions in three formats) runs once
with the local runner and once on a temporary Dask ``LocalCluster`` of two worker processes; a third run
goes through ``alliance run --dask-address`` to a cluster started by the test. Batches of a few
documents make every stage run as several batch tasks.
"""

import csv
import hashlib
import io
import re
import shutil
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TABLES = ("documents.parquet", "segments.parquet", "codes.parquet", "coded_segments.csv", "interim/turns.parquet")
DEMO_FILES = ("corpus.yaml", "interviews/P03_interview.txt", "interviews/P03_interview.yaml", "sessions/C01_s03.vtt",
              "sessions/C01_s03.yaml", "sessions/C03_s05.srt", "sessions/C03_s05.yaml")
FEEDBACK_ROWS = 14


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    demo = ROOT / "corpora" / "demo"
    if not (demo / "corpus.yaml").is_file():
        pytest.skip("corpora/demo is absent")
    root = tmp_path_factory.mktemp("corpus") / "dasksmall"
    for rel in DEMO_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(demo / rel, root / rel)
    with (demo / "feedback" / "feedback_wave1.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[: FEEDBACK_ROWS + 1]
    (root / "feedback").mkdir()
    with (root / "feedback" / "feedback_wave1.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return root


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "run.yaml"
    codebook = ROOT / "configs" / "codebooks" / "working_alliance.v1.yaml"
    path.write_text(f"version: 1\ncodebook: {codebook}\nseed: 13\ncoders:\n  - use: coder.rules.v1\n"
                    "outputs:\n  report: false\ntopics:\n  enabled: false\nrunner:\n  batch_documents: 6\n")
    return path


def _run(small_corpus, small_config, out: Path, runner, monkeypatch, keys: Path) -> dict:
    """One flow run with its own pseudonym map folder, so no run sees another's names."""
    from flows.code_corpus import code_corpus
    from pipeline.runners import build_task_runner

    monkeypatch.setenv("ALLIANCE_KEY_DIR", str(keys))
    flow = code_corpus.with_options(task_runner=build_task_runner(runner))
    return flow(str(small_corpus), str(out), str(small_config))


def _digests(out: Path) -> dict[str, str]:
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in TABLES}


def _qdpx_members(path: Path) -> dict[str, bytes]:
    """The project's members; only the run's start time (creationDateTime, from the manifest) is masked."""
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as z:
        return {i.filename: re.sub(rb'creationDateTime="[^"]*"|run started at: [^<\n]*', b"<time>", z.read(i))
                for i in z.infolist()}


@pytest.fixture(scope="module")
def local_run(prefect_harness, small_corpus, small_config, tmp_path_factory):
    from pipeline.runners import RunnerConfig

    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("local")
    try:
        result = _run(small_corpus, small_config, base / "out", RunnerConfig(kind="local"), mp, base / "keys")
    finally:
        mp.undo()
    return base / "out", result


def test_dask_local_cluster_gives_identical_outputs(local_run, small_corpus, small_config, tmp_path, monkeypatch):
    from pipeline.runners import RunnerConfig

    local_out, local_result = local_run
    out = tmp_path / "out"
    result = _run(small_corpus, small_config, out, RunnerConfig(kind="dask", workers=2), monkeypatch,
                  tmp_path / "keys")
    assert local_result["reports"]["ingest"]["counts"]["batches"] >= 3  # the batches really were split
    assert result["run_id"] == local_result["run_id"]
    assert _digests(out) == _digests(local_out)
    assert _qdpx_members(out / "project.qdpx") == _qdpx_members(local_out / "project.qdpx")
    assert not (out / "restricted" / "work").exists()  # raw texts of the NER pass are gone


def test_cli_dask_address_runs_on_an_existing_cluster(local_run, small_corpus, small_config, tmp_path, monkeypatch):
    import os

    from distributed import Client, LocalCluster
    from typer.testing import CliRunner

    from pipeline.cli import app

    monkeypatch.setenv("ALLIANCE_KEY_DIR", str(tmp_path / "keys"))
    out = tmp_path / "out"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        res = CliRunner().invoke(app, ["run", str(small_corpus), "--out", str(out), "--config", str(small_config),
                                       "--dask-address", cluster.scheduler_address])
        assert res.exit_code == 0, res.output[-3000:]
        with Client(cluster) as client:
            # The batch tasks ran in the workers: each imported the stages and loaded its spaCy pipelines once.
            loaded = client.run(lambda: __import__("pipeline.nlp").nlp.load_spacy.cache_info().currsize)
            pids = client.run(os.getpid)
    assert "outputs written to" in res.output
    assert _digests(out) == _digests(local_run[0])
    assert len(loaded) == 2 and all(n >= 1 for n in loaded.values()), loaded
    assert os.getpid() not in pids.values()


def test_cli_rejects_a_bad_dask_address(small_corpus, small_config, tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    res = CliRunner().invoke(app, ["run", str(small_corpus), "--out", str(tmp_path / "out"), "--config",
                                   str(small_config), "--dask-address", "localhost:8786"])
    assert res.exit_code != 0
    assert "tcp://host:8786" in res.output
    assert not (tmp_path / "out" / "documents.parquet").exists()
