"""Process-wide settings that keep data on the machine: telemetry off, hubs offline.

Called explicitly by the CLI and flow entry points (never at import time).
"""

from __future__ import annotations

import os

__all__ = ["PRIVATE_ENV", "configure_environment"]

#: Set unless the user already set them (a user may, for example, point Prefect at a server).
PRIVATE_ENV = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def configure_environment() -> dict[str, str]:
    """Apply :data:`PRIVATE_ENV` with ``setdefault`` and return the values in force.

    Also sets the process umask to 077: every file and folder this process (and the task workers it starts)
    creates is readable by its owner only, including files written by libraries such as Prefect's result store.
    """
    os.umask(0o077)
    for key, value in PRIVATE_ENV.items():
        os.environ.setdefault(key, value)
    return {k: os.environ[k] for k in PRIVATE_ENV}
