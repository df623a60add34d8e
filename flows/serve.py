"""Serving the incoming-feedback flow as deployment ``incoming-feedback`` (used by ``alliance serve``).

Prefect wiring only: the schedule is the config's ``incoming.schedule`` as a ``prefect.schedules.Cron`` in
its IANA time zone; parameters are paths only; the runner keeps the schedule active when it stops
(``pause_on_shutdown=False``), so a restart or a reboot does not leave the schedule paused. The flow is
referenced by module path (``flows.incoming_feedback.incoming_feedback``), so runs work from any folder.
``pipeline.incoming.serve`` finds or starts the Prefect server first (serving needs a real server: the
ephemeral API cannot schedule).
"""

from __future__ import annotations

from typing import Any

from prefect.deployments.runner import EntrypointType
from prefect.schedules import Cron, Schedule

__all__ = ["DEPLOYMENT_NAME", "SCHEDULE_SLUG", "cron_schedule", "drain", "run_once", "serve_deployment"]

DEPLOYMENT_NAME = "incoming-feedback"
SCHEDULE_SLUG = "incoming-feedback-cron"
DESCRIPTION = "One exactly-once pass over the inbox into the store, then exports, trends and alerts."


def cron_schedule(schedule: Any) -> Schedule:
    """The config's ``incoming.schedule`` (cron, timezone, active) as a Prefect schedule."""
    return Cron(schedule.cron, timezone=schedule.timezone, active=schedule.active, slug=SCHEDULE_SLUG)


def _options(params: dict[str, Any], schedule: Any) -> dict[str, Any]:
    return {"name": DEPLOYMENT_NAME, "schedules": [cron_schedule(schedule)], "parameters": params,
            "description": DESCRIPTION, "tags": ["alliance", "incoming"], "entrypoint_type": EntrypointType.MODULE_PATH}


def drain() -> None:
    """Send queued logs and events to the API now (before a server this process started is stopped)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=5)


def serve_deployment(params: dict[str, Any], schedule: Any) -> None:
    """Create or update the deployment and run its scheduled runs in this process until SIGTERM/SIGINT."""
    from flows.incoming_feedback import incoming_feedback

    try:
        incoming_feedback.serve(**_options(params, schedule), pause_on_shutdown=False, print_starting_message=False)
    finally:
        drain()


def run_once(params: dict[str, Any], schedule: Any) -> dict[str, Any]:
    """Create or update the deployment (schedule included), then run one pass now in this process."""
    from flows.incoming_feedback import incoming_feedback

    try:
        incoming_feedback.to_deployment(**_options(params, schedule)).apply()
        return incoming_feedback(**params)
    finally:
        drain()
