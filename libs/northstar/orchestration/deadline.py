"""The 06:30 UTC reconciliation deadline: when a run's deadline is and whether it will be (or was) missed.

Works the same on Airflow 2.x and 3.x: Airflow 2's SLAs were removed in 3 and 3.1's DeadlineAlert does not
exist in 2, so the reconciliation DAG runs a guard task first (predicts the finish from the expected run
time) and a final task with trigger rule ALL_DONE (checks the actual finish); both alert through SNS.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta


def deadline_for(interval_end: datetime, deadline_utc: str) -> datetime:
    """The first HH:MM UTC at or after the end of the run's data interval (the day it reconciles)."""
    hours, minutes = (int(x) for x in deadline_utc.split(":"))
    candidate = datetime.combine(interval_end.date(), time(hours, minutes), tzinfo=interval_end.tzinfo)
    return candidate if candidate >= interval_end else candidate + timedelta(days=1)


def predicted_end(now: datetime, expected_minutes: float) -> datetime:
    return now + timedelta(minutes=expected_minutes)


def at_risk(now: datetime, expected_minutes: float, deadline: datetime) -> bool:
    """True when starting now and taking the expected time would finish after the deadline."""
    return predicted_end(now, expected_minutes) > deadline
