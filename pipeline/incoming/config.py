"""Settings of scheduled runs on incoming feedback: schedule, alert rules, webhook, locking.

Part of the run config (``incoming:``), validated like every other section; unknown keys are errors.
"""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AlertRule", "IncomingConfig", "ScheduleConfig", "cron_problem"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7))
_CRON_NAMES = {"month": ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
               "weekday": ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]}
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_CRON_PART = re.compile(r"^(\*|([0-9A-Za-z]+)(-([0-9A-Za-z]+))?)(/(\d+))?$")


def cron_problem(line: str) -> str | None:
    """What is wrong with a 5-field cron line (or a macro such as ``@daily``); None when it is valid."""
    if line.strip() in _CRON_MACROS:
        return None
    fields = line.split()
    if len(fields) != 5:
        return f"{len(fields)} fields instead of 5"
    for text, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        names = _CRON_NAMES.get(name, [])
        for part in text.split(","):
            m = _CRON_PART.match(part)
            if m is None or m.group(6) == "0":
                return f"{name} field {text!r}"
            for value in (m.group(2), m.group(4)):
                if value is None:
                    continue
                if value.upper() in names:
                    continue
                if not value.isdigit() or not low <= int(value) <= high:
                    return f"{name} {value!r} is outside {low}-{high}"
    return None


class ScheduleConfig(_Strict):
    """When ``alliance serve`` runs a pass over the inbox (a cron line in an IANA time zone)."""

    cron: str = Field("0 6 * * *", description="cron expression (minute hour day month weekday)")
    timezone: str = Field("Europe/London", description="IANA time zone the cron line is read in")
    active: bool = Field(True, description="false: the deployment is served but its schedule is paused")

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        problem = cron_problem(v)
        if problem:
            raise ValueError(f"must be a cron line 'minute hour day month weekday' ({problem}). Got {v!r} instead")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"must be an IANA time zone such as 'Europe/London'. Got {v!r} instead") from None
        return v


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
    batch_size: int = Field(
        200, ge=1, le=100_000, description="items coded and committed together; a crash loses at most one batch"
    )

    @field_validator("alerts")
    @classmethod
    def _unique_alert_names(cls, v: list[AlertRule]) -> list[AlertRule]:
        names = [rule.name for rule in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"alert rule names must be unique; {twice} used more than once")
        return v
