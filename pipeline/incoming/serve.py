"""``alliance serve``: a Prefect API that can schedule, and the incoming-feedback deployment served on it.

``flow.serve`` cannot schedule on Prefect's ephemeral API, so ``alliance serve`` first finds a real server:
``--api-url`` (must answer), else ``$PREFECT_API_URL`` if it answers, else it starts one itself
(``prefect server start`` on 127.0.0.1 and a free port, SQLite database in ``$PREFECT_HOME``, telemetry off)
and waits for ``/api/health``. Then it serves ``flows.incoming_feedback:incoming_feedback`` as deployment
``incoming-feedback`` with the config's cron schedule and time zone (see ``flows.serve``), keeping the
schedule active when it stops. On SIGTERM or SIGINT it stops serving and stops the server it started (the
server's whole process group); a server it only connected to is left running.

This module holds the process management only; the Prefect calls are in ``flows/serve.py``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from pipeline.errors import PipelineError

__all__ = ["ApiServer", "api_healthy", "local_prefect_server", "prefect_api", "serve_incoming", "server_env"]

logger = logging.getLogger(__name__)

#: Environment of a server this command starts: nothing leaves the machine.
SERVER_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
              "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
              "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false"}


@dataclass
class ApiServer:
    """The Prefect API in use: its URL and, when this process started it, the server process."""

    url: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def started_here(self) -> bool:
        """Whether this process started (and will stop) the server."""
        return self.process is not None


def api_healthy(url: str, *, timeout: float = 2.0) -> bool:
    """Whether the Prefect API at ``url`` (``http://host:port/api``) answers ``GET /health`` with 200."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as response:  # noqa: S310
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")


def server_env(home: Path) -> dict[str, str]:
    """Environment for ``prefect server start``: ours, minus the client's API URL, telemetry off."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_UI_API_URL")}
    env.update(SERVER_ENV)
    env["PREFECT_HOME"] = str(home)
    return env


def _prefect_command() -> list[str]:
    return [sys.executable, "-m", "prefect"]


@contextmanager
def local_prefect_server(*, home: Path | None = None, port: int | None = None,
                         startup_timeout_s: float = 180.0) -> Iterator[ApiServer]:
    """Start ``prefect server start`` on 127.0.0.1, wait until it is healthy, stop it on exit.

    The server runs in its own process group (SIGTERM to the group, SIGKILL after 30 s). Its output goes
    to ``$PREFECT_HOME/alliance-server.log`` (mode 0600).

    Raises:
        PipelineError: QA-E070 when the server exits or is not healthy within ``startup_timeout_s``.
    """
    home = Path(home) if home is not None else _prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log_path = home / "alliance-server.log"
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    cmd = [*_prefect_command(), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(cmd, env=server_env(home), stdout=log_fd, stderr=subprocess.STDOUT,  # noqa: S603
                               stdin=subprocess.DEVNULL, start_new_session=True)
    os.close(log_fd)
    server = ApiServer(url=url, process=process, log_path=log_path)
    try:
        _wait_healthy(process, url, log_path, startup_timeout_s)
        yield server
    finally:
        _stop(process)


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PipelineError(f"the Prefect server exited with code {process.returncode} while starting.",
                                code="QA-E070", path=str(log_path), hint="See its log.")
        if api_healthy(url):
            return
        time.sleep(0.5)
    raise PipelineError(f"the Prefect server was not healthy within {timeout_s:.0f} s.", code="QA-E070",
                        path=str(log_path), hint="See its log.")


def _stop(process: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """SIGTERM the server's process group, wait, then SIGKILL what is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        logger.warning("the Prefect server did not stop within %.0f s; killing it", grace_s)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    with suppress(ProcessLookupError, PermissionError):  # uvicorn or service children left in the group
        os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def prefect_api(api_url: str | None = None, *, on_start: Callable[[ApiServer], None] | None = None,
                startup_timeout_s: float = 180.0) -> Iterator[ApiServer]:
    """The Prefect API to use: ``api_url``, else ``$PREFECT_API_URL`` if it answers, else a local server.

    ``api_url`` must answer. A local server is started here and stopped on exit.

    Raises:
        PipelineError: QA-E070 when ``api_url`` does not answer or a local server cannot start.
    """
    if api_url:
        if not api_healthy(api_url, timeout=5.0):
            raise PipelineError(f"no Prefect API answers at {api_url!r} (GET /health).", code="QA-E070",
                                hint="Start it (prefect server start) or leave --api-url out to start one here.")
        yield ApiServer(url=api_url)
        return
    env_url = os.environ.get("PREFECT_API_URL")
    if env_url and api_healthy(env_url, timeout=5.0):
        yield ApiServer(url=env_url)
        return
    if env_url:
        logger.warning("PREFECT_API_URL=%s does not answer; starting a local Prefect server instead", env_url)
    with local_prefect_server(startup_timeout_s=startup_timeout_s) as server:
        if on_start is not None:
            on_start(server)
        yield server


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Until the runner installs its own handlers, SIGTERM and SIGINT unwind (so the server is stopped)."""

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, _raise) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def serve_incoming(inbox: Path, store: Path, config: Path | None, *, api_url: str | None = None,
                   once: bool = False, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Serve (or, with ``once``, register and run once) the incoming-feedback deployment.

    Args:
        inbox: Inbox folder (a flow parameter, stored as an absolute path).
        store: Store folder (a flow parameter, absolute).
        config: Run config file (a flow parameter, absolute), or None for the bundled default.
        api_url: A Prefect API to use instead of ``$PREFECT_API_URL`` / a local server.
        once: Register the deployment, run one pass now, and return instead of serving.
        echo: Where progress lines go (the CLI passes ``typer.echo``).

    Returns:
        ``{"api_url", "started_server", "deployment", "schedule", "run"}`` (``run``: the pass summary with
        ``once``, else None).

    Raises:
        ConfigError: the config or its alert rules are invalid (checked before anything starts).
        PipelineError: QA-E070 when no Prefect API is available.
    """
    from pipeline.config import load_run_config
    from pipeline.environment import configure_environment

    configure_environment()
    cfg = load_run_config(config)
    _check_alerts(cfg, config)
    params = {"inbox": str(Path(inbox).resolve()), "store": str(Path(store).resolve()),
              "config": None if config is None else str(Path(config).resolve())}
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "pipeline")  # alert warnings reach the run logs

    def started(server: ApiServer) -> None:
        pid = server.process.pid if server.process is not None else None
        echo(f"started a Prefect server (pid {pid}) at {server.url}; log: {server.log_path}")

    schedule = cfg.incoming.schedule
    info: dict[str, Any] = {"api_url": None, "started_server": False,
                            "deployment": "incoming-feedback/incoming-feedback",
                            "schedule": {"cron": schedule.cron, "timezone": schedule.timezone,
                                         "active": schedule.active}, "run": None}
    try:
        with _signals_raise(), prefect_api(api_url, on_start=started) as server:
            os.environ["PREFECT_API_URL"] = server.url
            info.update(api_url=server.url, started_server=server.started_here)
            if not server.started_here:
                echo(f"using the Prefect API at {server.url}")
            from flows.serve import run_once, serve_deployment

            if once:
                info["run"] = run_once(params, schedule)
            else:
                echo(f"serving incoming-feedback/incoming-feedback: cron {schedule.cron!r} in {schedule.timezone}"
                     f"{'' if schedule.active else ' (schedule paused: incoming.schedule.active is false)'}")
                serve_deployment(params, schedule)
    except KeyboardInterrupt:  # SIGTERM/SIGINT before the runner took over its signals
        logger.info("stopped by a signal")
    return info


def _check_alerts(cfg: Any, path: Path | None) -> None:
    from pipeline.codebook import load_codebook
    from pipeline.incoming.watch import check_alert_rules

    check_alert_rules(cfg, load_codebook(cfg.codebook), path)
