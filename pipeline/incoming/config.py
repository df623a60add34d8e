"""Settings of scheduled runs on incoming feedback: schedule, alert rules, webhook, locking.

Part of the run config (``incoming:``), validated like every other section; unknown keys are errors.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AlertRule", "IncomingConfig", "ScheduleConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleConfig(_Strict):
    """When ``alliance serve`` runs a pass over the inbox (a cron line in an IANA time zone)."""

    cron: str = Field("0 6 * * *", description="cron expression (minute hour day month weekday)")
    timezone: str = Field("Europe/London", description="IANA time zone the cron line is read in")
    active: bool = Field(True, description="false: the deployment is served but its schedule is paused")


class AlertRule(_Strict):
    """Warn when the share of comments with one of ``codes`` rises above ``threshold`` in a period.

    Example: rupture codes above 15% of this week's comments for a clinician::

        - name: ruptures-per-clinician
          codes: [WA.RUPW, WA.RUPC]
          threshold: 0.15
          period: week
          by: clinician
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="short id used in artifacts and logs")
    codes: list[str] = Field(min_length=1, description="codebook code ids; a parent id includes its children")
    threshold: float = Field(gt=0.0, le=1.0, description="alert when the share is above this")
    period: Literal["day", "week", "month"] = "week"
    by: Literal["all", "clinician", "case_id", "source_path"] = Field(
        "clinician", description="group comments by this column before computing the share"
    )
    min_comments: int = Field(5, ge=1, description="groups with fewer comments in the period are not judged")
    speaker: Literal["client", "any"] = Field("client", description="count codes on client segments only, or any")


class IncomingConfig(_Strict):
    """Incremental runs over an inbox folder (``alliance ingest-incoming``, ``alliance serve``)."""

    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    alerts: list[AlertRule] = Field(default_factory=list)
    webhook_url: str | None = Field(
        None, pattern=r"^https?://", description="POST a JSON message (counts and segment ids only) per alert"
    )
    webhook_timeout_s: float = Field(10.0, gt=0, le=120)
    lock_timeout_s: float = Field(0.0, ge=0, description="wait this long for another pass to finish; 0: fail at once")
    ledger_url: str | None = Field(
        None, description="SQLAlchemy URL of the ledger (postgresql+psycopg://...); default: SQLite in the store"
    )
