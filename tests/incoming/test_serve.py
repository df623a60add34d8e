"""``alliance serve``: a real Prefect server, the incoming-feedback deployment with the config's schedule.

These tests start real processes (``alliance serve`` and ``prefect server start``), each 20-90 s on a
2-core machine, so they are marked slow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.incoming.serve import api_healthy, local_prefect_server, prefect_api

ROOT = Path(__file__).resolve().parents[2]
ALLIANCE = Path(sys.executable).parent / "alliance"
CODEBOOK = ROOT / "configs" / "codebooks" / "working_alliance.v1.yaml"


def write_config(path: Path, cron: str, timezone: str) -> Path:
    path.write_text(f"""codebook: {CODEBOOK}
incoming:
  schedule:
    cron: "{cron}"
    timezone: {timezone}
  alerts:
    - name: ruptures
      codes: [WA.RUPW, WA.RUPC]
      threshold: 0.15
""")
    return path


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process exited ({proc.returncode}) before {what}:\n{log.read_text() if log else ''}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text() if log else ''}")


def read_deployment(url: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name("incoming-feedback/incoming-feedback")
        except Exception as e:  # noqa: BLE001 - not there yet (ObjectNotFound) or the server is still busy
            if type(e).__name__ in ("ObjectNotFound", "PrefectHTTPStatusError", "HTTPStatusError"):
                return None
            raise


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_serve_starts_a_server_serves_the_schedule_and_leaves_it_active(tmp_path):
    home, log = tmp_path / "prefect_home", tmp_path / "serve.log"
    (tmp_path / "inbox").mkdir()
    config = write_config(tmp_path / "incoming.yaml", "15 7 * * 1-5", "America/Chicago")
    with log.open("wb") as out:
        proc = subprocess.Popen([str(ALLIANCE), "serve", str(tmp_path / "inbox"), "--store", str(tmp_path / "store"),
                                 "--config", str(config)], env=child_env(home), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        started = wait_for(lambda: re.search(r"started a Prefect server \(pid (\d+)\) at (\S+);", log.read_text()),
                           240, "the Prefect server", proc, log)
        server_pid, url = int(started.group(1)), started.group(2)
        assert url.startswith("http://127.0.0.1:") and api_healthy(url)
        deployment = wait_for(lambda: read_deployment(url), 180, "the deployment", proc, log)
        (schedule,) = deployment.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == ("15 7 * * 1-5", "America/Chicago")
        assert schedule.active and not deployment.paused
        assert deployment.parameters == {"inbox": str((tmp_path / "inbox").resolve()),
                                         "store": str((tmp_path / "store").resolve()), "config": str(config)}
        assert deployment.entrypoint == "flows.incoming_feedback.incoming_feedback"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    wait_for(lambda: not alive(server_pid), 30, "the server to be gone")
    assert not api_healthy(url)
    db = sqlite3.connect(f"file:{home / 'prefect.db'}?mode=ro", uri=True)
    try:
        paused = db.execute("SELECT paused FROM deployment WHERE name = 'incoming-feedback'").fetchall()
        active = db.execute("SELECT active FROM deployment_schedule").fetchall()
    finally:
        db.close()
    assert paused == [(0,)] and active == [(1,)]
    assert "Pausing" not in log.read_text()


FEEDBACK = """response_id,client_id,session_number,date,clinician,comment
R1,C11,2,2026-03-03,Maya Ellis,I wish she would just tell me what to do instead of asking questions.
R2,C12,3,2026-03-04,Maya Ellis,She kept putting words in my mouth and I felt unheard.
R3,C13,1,2026-03-05,Maya Ellis,The sessions were fine and I liked the room.
R4,C14,4,2026-03-06,Maya Ellis,Parking was easy and the time suited me.
R5,C15,2,2026-03-09,Maya Ellis,We talked about my week and my sleep.
R6,C16,5,2026-03-10,Maya Ellis,It was a normal session about work stress.
"""


def read_artifacts(url: str, key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


@pytest.mark.slow
def test_serve_once_on_a_running_server_runs_a_pass_publishes_alerts_and_leaves_the_server(tmp_path, monkeypatch):
    home = tmp_path / "prefect_home"
    monkeypatch.setenv("PREFECT_HOME", str(home))
    (tmp_path / "inbox" / "forms").mkdir(parents=True)
    (tmp_path / "inbox" / "forms" / "feedback.csv").write_text(FEEDBACK)
    config = tmp_path / "incoming.yaml"
    config.write_text(f"""codebook: {CODEBOOK}
incoming:
  schedule: {{cron: "0 6 * * 1", timezone: Europe/London}}
  alerts:
    - {{name: ruptures-month, codes: [WA.RUPC, WA.RUPW], threshold: 0.15, period: month, by: clinician}}
""")
    with local_prefect_server(home=home) as server:
        monkeypatch.setenv("PREFECT_API_URL", server.url)
        with prefect_api() as found:  # $PREFECT_API_URL answers: used, not started
            assert found.url == server.url and not found.started_here
        res = subprocess.run([str(ALLIANCE), "serve", str(tmp_path / "inbox"), "--store", str(tmp_path / "store"),
                              "--config", str(config), "--api-url", server.url, "--once"],
                             env=child_env(home), capture_output=True, text=True, timeout=400)
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"using the Prefect API at {server.url}" in res.stdout and "started a Prefect server" not in res.stdout
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        assert summary["new"] == 6 and summary["alerts"] == 1
        deployment = read_deployment(server.url)
        assert deployment.schedules[0].schedule.cron == "0 6 * * 1" and deployment.schedules[0].active
        (artifact,) = read_artifacts(server.url, "incoming-alerts")
        (row,) = json.loads(artifact.data)
        assert (row["rule"], row["period"], row["comments"], row["with codes"]) == ("ruptures-month", "2026-03", 6, 2)
        assert re.fullmatch(r"\[THERAPIST_\d+\]", row["group"])
        assert "Maya" not in artifact.data and "words in my mouth" not in artifact.data
        (alert,) = [json.loads(x) for x in (tmp_path / "store" / "reports" / "alerts.jsonl").read_text().splitlines()]
        assert alert["comments_with_codes"] == 2 and len(alert["segment_ids"]) == 2
        assert api_healthy(server.url)  # a server it did not start is left running
        # the multi-user route on the same server: process pool + `prefect deploy --all` with prefect.yaml
        env = {**child_env(home), "PREFECT_API_URL": server.url}
        prefect = [sys.executable, "-m", "prefect"]
        for cmd in (["work-pool", "create", "alliance-process", "--type", "process"],
                    ["--no-prompt", "deploy", "--all"]):
            res = subprocess.run(prefect + cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        deployed = read_deployment(server.url)
        assert deployed.work_pool_name == "alliance-process"
        assert deployed.entrypoint == "flows/incoming_feedback.py:incoming_feedback"
        assert deployed.global_concurrency_limit is not None and deployed.global_concurrency_limit.limit == 1
        ((sched, active),) = [(d.schedule, d.active) for d in deployed.schedules]
        assert (sched.cron, sched.timezone, active) == ("0 6 * * *", "Europe/London", True)
        pid = server.process.pid
    assert not alive(pid) and not api_healthy(server.url)


def test_prefect_api_refuses_an_explicit_url_that_does_not_answer():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PipelineError, match="no Prefect API answers") as err, prefect_api(f"http://127.0.0.1:{port}/api"):
        pass
    assert err.value.code == "QA-E070"


def test_serve_rejects_unknown_alert_codes_before_starting_anything(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli import app

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    config = tmp_path / "bad.yaml"
    config.write_text(f"codebook: {CODEBOOK}\nincoming:\n  alerts:\n    - name: typo\n      codes: [WA.NOPE]\n"
                      "      threshold: 0.2\n")
    res = CliRunner().invoke(app, ["serve", str(tmp_path), "--store", str(tmp_path / "store"), "--config",
                                   str(config)])
    assert res.exit_code == 1 and "incoming.alerts[0].codes" in res.output and "WA.NOPE" in res.output
    assert f"{config}:5:" in res.output  # file and line of the rule's codes
    assert not (tmp_path / "home" / "alliance-server.log").exists()


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
def test_serve_stopped_while_its_server_starts_leaves_no_server_behind(tmp_path):
    home, log = tmp_path / "prefect_home", tmp_path / "serve.log"
    config = write_config(tmp_path / "incoming.yaml", "0 6 * * *", "UTC")
    with log.open("wb") as out:
        proc = subprocess.Popen([str(ALLIANCE), "serve", str(tmp_path), "--store", str(tmp_path / "store"), "--config",
                                 str(config)], env=child_env(home), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        (server_pid,) = wait_for(lambda: children(proc.pid), 120, "the server process", proc, log)
        # usually still starting (8-40 s): the signal then unwinds the start-up, which must stop the server
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    wait_for(lambda: not alive(server_pid), 30, "the server to be gone")
    assert "Traceback" not in log.read_text()
