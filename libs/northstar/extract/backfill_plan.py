"""Plan a partner-API backfill under a rate limit shared with the hourly incremental syncs and their lookback.

The model (docs/backfill.md works it through for the brief's figures):

* A request returns one page of at most `page_size` records. Fetching N records of one endpoint costs
  ceil(N / page_size) requests; endpoints are paged separately.
* The incremental sync runs every `sync_every_hours` and re-reads the last `lookback_hours` of updates (the
  partner delivers updates up to 24 h late), so one sync costs sum over endpoints of
  ceil(volume_per_day * lookback_hours / 24 / page_size). With `sweep_every_hours` set instead, each sync
  reads only its own interval and one sweep every `sweep_every_hours` re-reads the lookback window.
* `headroom` of the rate limit is held back (retries of partial pages, manual re-runs). What is left after
  the incremental syncs is the backfill's: budget per run = floor(backfill requests/hour * run_every_hours).
* The date range is cut into windows that each fit one run's budget: whole days (as many as fit) when a
  day fits, otherwise a divisor of 24 hours. One run fetches one window; the duration is runs * run period.

Pure Python, no Spark: `northstar plan-backfill` prints the plan; the YAML `api:` section of a source, when
present, supplies page size, rate limit and lookback defaults that flags override.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from northstar.config.base import read_yaml
from northstar.config.source import SOURCES
from northstar.errors import ConfigError

HOUR_CHUNKS = (12, 8, 6, 4, 3, 2, 1)  # sub-day windows that tile a day exactly

# Names the `api:` section of conf/sources/<source>.yaml may use for each default (first found wins).
API_KEYS = {
    "page_size": ("page_size", "max_page_size", "limit"),
    "rate_limit_per_hour": ("rate_limit_per_hour", "requests_per_hour", "rate_limit"),
    "lookback_hours": ("lookback_hours", "lookback"),
}


class BackfillInputs(BaseModel):
    """What the plan depends on. Volumes are records per day per endpoint (e.g. orders: 8_000_000)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: date = Field(description="first day to backfill (UTC)")
    end: date = Field(description="last day to backfill, inclusive (UTC)")
    volumes: dict[str, PositiveInt] = Field(min_length=1, description="endpoint -> records per day")
    page_size: PositiveInt
    rate_limit_per_hour: PositiveInt
    lookback_hours: int = Field(default=24, ge=0, description="0: no incremental syncs share the limit")
    sync_every_hours: PositiveInt = 1
    sweep_every_hours: PositiveInt | None = Field(
        default=None,
        description="None: every sync re-reads the whole lookback; N: syncs read their own interval and "
        "one sweep every N hours re-reads the lookback",
    )
    run_every_hours: PositiveInt = Field(default=24, description="a backfill run starts this often")
    headroom: float = Field(default=0.0, ge=0, lt=1, description="share of the limit held back")
    deadline_days: float | None = Field(default=None, gt=0)
    begin: datetime | None = Field(default=None, description="when the first backfill run starts (UTC)")

    @model_validator(mode="after")
    def _range(self) -> BackfillInputs:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class Window:
    """One backfill run's slice of the range: [start, end) in UTC, what it costs, when it runs."""

    start: datetime
    end: datetime
    requests: int
    run_at: datetime | None = None


@dataclass
class BackfillPlan:
    """The answer: whether the backfill fits, its requests and duration, and the window split."""

    inputs: BackfillInputs
    incremental_requests_per_hour: Fraction
    usable_requests_per_hour: Fraction
    backfill_requests_per_hour: Fraction
    budget_per_run: int
    requests_per_day_of_data: int
    window_hours: int | None
    windows: list[Window] = field(default_factory=list)
    problem: str | None = None

    @property
    def fits(self) -> bool:
        """The backfill can run at all (and within the deadline when one is given)."""
        if self.problem:
            return False
        return self.inputs.deadline_days is None or self.duration_hours <= self.inputs.deadline_days * 24

    @property
    def runs(self) -> int:
        return len(self.windows)

    @property
    def requests_needed(self) -> int:
        return sum(w.requests for w in self.windows) if self.windows else self._unsplit_requests

    @property
    def _unsplit_requests(self) -> int:
        return self.inputs.days * self.requests_per_day_of_data

    @property
    def duration_hours(self) -> float:
        return math.inf if self.problem else self.runs * self.inputs.run_every_hours

    @property
    def duration_days(self) -> float:
        return self.duration_hours / 24


def requests_for(volumes: dict[str, int], hours: int | Fraction, page_size: int) -> int:
    """Requests to page through `hours` of data: sum over endpoints of ceil(records / page_size)."""
    return sum(math.ceil(Fraction(v) * Fraction(hours) / 24 / page_size) for v in volumes.values())


def incremental_requests_per_hour(inputs: BackfillInputs) -> Fraction:
    """The average hourly cost of the incremental syncs and their lookback (exact)."""
    if inputs.lookback_hours == 0:
        return Fraction(0)
    if inputs.sweep_every_hours is None:
        per_sync = requests_for(inputs.volumes, inputs.lookback_hours, inputs.page_size)
        return Fraction(per_sync, inputs.sync_every_hours)
    own = requests_for(inputs.volumes, inputs.sync_every_hours, inputs.page_size)
    sweep = requests_for(inputs.volumes, inputs.lookback_hours, inputs.page_size)
    return Fraction(own, inputs.sync_every_hours) + Fraction(sweep, inputs.sweep_every_hours)


def _window_hours(inputs: BackfillInputs, budget: int) -> int | None:
    """The widest window one run's budget pays for: whole days if a day fits, else a divisor of 24 hours."""
    day = requests_for(inputs.volumes, 24, inputs.page_size)
    if day <= budget:
        low, high = 1, inputs.days  # largest k with requests_for(24k) <= budget (monotone in k)
        while low < high:
            mid = (low + high + 1) // 2
            if requests_for(inputs.volumes, 24 * mid, inputs.page_size) <= budget:
                low = mid
            else:
                high = mid - 1
        return 24 * low
    return next((h for h in HOUR_CHUNKS if requests_for(inputs.volumes, h, inputs.page_size) <= budget), None)


def plan(inputs: BackfillInputs) -> BackfillPlan:
    """Work out the plan for `inputs` (see the module docstring for the model)."""
    incremental = incremental_requests_per_hour(inputs)
    usable = Fraction(inputs.rate_limit_per_hour) * (1 - Fraction(str(inputs.headroom)))
    backfill_rate = usable - incremental
    budget = math.floor(backfill_rate * inputs.run_every_hours) if backfill_rate > 0 else 0
    result = BackfillPlan(
        inputs=inputs,
        incremental_requests_per_hour=incremental,
        usable_requests_per_hour=usable,
        backfill_requests_per_hour=backfill_rate,
        budget_per_run=budget,
        requests_per_day_of_data=requests_for(inputs.volumes, 24, inputs.page_size),
        window_hours=None,
    )
    if backfill_rate <= 0:
        result.problem = (
            f"the incremental syncs alone need {float(incremental):,.1f} requests/hour, more than the "
            f"{float(usable):,.1f} available: no budget is left for the backfill"
        )
        return result
    hours = _window_hours(inputs, budget)
    if hours is None:
        result.problem = (
            f"one run's budget ({budget:,} requests) does not pay for even 1 hour of data "
            f"({requests_for(inputs.volumes, 1, inputs.page_size):,} requests)"
        )
        return result
    result.window_hours = hours
    cursor = datetime.combine(inputs.start, datetime.min.time(), UTC)
    stop = datetime.combine(inputs.end + timedelta(days=1), datetime.min.time(), UTC)
    run_at = inputs.begin.astimezone(UTC) if inputs.begin and inputs.begin.tzinfo else inputs.begin
    if run_at is not None and run_at.tzinfo is None:
        run_at = run_at.replace(tzinfo=UTC)
    while cursor < stop:
        end = min(cursor + timedelta(hours=hours), stop)
        span = Fraction(int((end - cursor).total_seconds()), 3600)
        result.windows.append(
            Window(cursor, end, requests_for(inputs.volumes, span, inputs.page_size), run_at)
        )
        cursor = end
        if run_at is not None:
            run_at = run_at + timedelta(hours=inputs.run_every_hours)
    return result


def _smallest(predicate: Callable[[int], bool], low: int, high: int) -> int | None:
    """Smallest integer in [low, high] where the monotone `predicate` holds (None if it never does)."""
    if not predicate(high):
        return None
    while low < high:
        mid = (low + high) // 2
        if predicate(mid):
            high = mid
        else:
            low = mid + 1
    return low


def _max_page(inputs: BackfillInputs) -> int:
    return max(inputs.volumes.values()) * inputs.days  # beyond this every window is one page


def min_page_size(inputs: BackfillInputs, deadline_days: float | None = None) -> int | None:
    """Smallest page size at which the backfill fits (within `deadline_days` if given, else at all)."""
    days = deadline_days if deadline_days is not None else inputs.deadline_days

    def fits(page_size: int) -> bool:
        candidate = plan(inputs.model_copy(update={"page_size": page_size, "deadline_days": days}))
        return candidate.fits

    return _smallest(fits, 1, _max_page(inputs))


def min_page_size_for_incremental(inputs: BackfillInputs) -> int | None:
    """Smallest page size at which the incremental syncs alone stay within the usable rate."""
    usable = Fraction(inputs.rate_limit_per_hour) * (1 - Fraction(str(inputs.headroom)))

    def fits(page_size: int) -> bool:
        return incremental_requests_per_hour(inputs.model_copy(update={"page_size": page_size})) < usable

    return _smallest(fits, 1, _max_page(inputs))


def min_rate_limit(inputs: BackfillInputs, deadline_days: float) -> int | None:
    """Requests/hour the partner would have to grant for the backfill to fit `deadline_days` at this page size."""

    def fits(rate: int) -> bool:
        return plan(
            inputs.model_copy(update={"rate_limit_per_hour": rate, "deadline_days": deadline_days})
        ).fits

    return _smallest(fits, 1, 10**9)


def api_defaults(source: str) -> dict[str, int]:
    """Page size, rate limit and lookback from the `api:` section of conf/sources/<source>.yaml, if any.

    Read leniently (a plan may come before the source file is complete); unknown keys are ignored,
    and a source without an `api:` section gives no defaults. `rate_limit: {requests: N, per_seconds: S}`
    is converted to requests per hour.
    """
    path = SOURCES.path(source)
    if not path.is_file():
        raise ConfigError(f"{path}: no such source file (give --page-size/--rate-limit without --source)")
    api = read_yaml(path).get("api")
    if not isinstance(api, dict):
        return {}
    found: dict[str, int] = {}
    for name, keys in API_KEYS.items():
        for key in keys:
            value = api.get(key)
            if (
                isinstance(value, dict) and "requests" in value
            ):  # rate_limit: {requests: 1200, per_seconds: 3600}
                per_seconds = value.get("per_seconds", 3600)
                value = value["requests"] * 3600 // per_seconds if isinstance(per_seconds, int) else None
            elif isinstance(value, dict):  # e.g. rate_limit: {requests_per_hour: 1200}
                value = next((value[k] for k in API_KEYS[name] if k in value), None)
            if isinstance(value, int) and not isinstance(value, bool):
                found[name] = value
                break
    return found


def _n(value: float | Fraction) -> str:
    value = float(value)
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def render(plan_: BackfillPlan, *, all_windows: bool = False) -> str:
    """The plan as text for the terminal: inputs, budget, verdict, window split, what to negotiate."""
    i = plan_.inputs
    volumes = ", ".join(f"{k} {v:,}/day" for k, v in i.volumes.items())
    if i.lookback_hours == 0:
        sync_model = "no incremental syncs share this limit"
    elif i.sweep_every_hours is None:
        sync_model = f"a sync every {i.sync_every_hours} h re-reading the last {i.lookback_hours} h"
    else:
        sync_model = (
            f"a sync every {i.sync_every_hours} h reading its own interval, plus a {i.lookback_hours} h "
            f"lookback sweep every {i.sweep_every_hours} h"
        )
    lines = [
        f"backfill {i.start} .. {i.end} ({i.days:,} days): {volumes}",
        f"page size {i.page_size:,}, rate limit {i.rate_limit_per_hour:,} requests/hour "
        f"({i.rate_limit_per_hour * 24:,}/day), headroom {i.headroom:.0%}",
        f"incremental: {sync_model} -> {_n(plan_.incremental_requests_per_hour)} requests/hour",
        f"left for the backfill: {_n(plan_.backfill_requests_per_hour)} requests/hour; "
        f"one run every {i.run_every_hours} h may spend {plan_.budget_per_run:,} requests",
        f"one day of data costs {plan_.requests_per_day_of_data:,} requests "
        f"(sum of ceil(records/day / page size) per endpoint)",
        "",
    ]
    if plan_.problem:
        lines.append(f"DOES NOT FIT: {plan_.problem}")
        lines.append(f"requests needed (by day windows): {plan_.requests_needed:,}")
    else:
        lines += _schedule_lines(plan_, all_windows)
    lines.append("")
    lines += _advice(plan_)
    return "\n".join(lines)


def _schedule_lines(plan_: BackfillPlan, all_windows: bool) -> list[str]:
    """The verdict and the runs' windows (the first and last 5 unless `all_windows` or there are few)."""
    i = plan_.inputs
    lines: list[str] = []
    hours = plan_.window_hours
    assert hours is not None  # plan() sets the window whenever there is no problem
    window = f"{hours // 24} day(s)" if hours % 24 == 0 else f"{hours} h"
    # without a deadline a plan with no problem always fits
    verdict = (
        "FITS"
        if plan_.fits or i.deadline_days is None
        else f"DOES NOT FIT the {_n(i.deadline_days)}-day deadline"
    )
    lines += [
        f"{verdict}: {plan_.requests_needed:,} requests in {plan_.runs:,} run(s), one {window} window "
        f"each = {_n(plan_.duration_days)} day(s)",
    ]
    lines.append("")
    lines.append(f"{'run':>6}  {'window start (UTC)':<20}{'window end (UTC)':<20}{'requests':>10}  run at")
    shown = plan_.windows if all_windows or len(plan_.windows) <= 12 else None
    rows: list[tuple[int, Window] | None] = list(enumerate(plan_.windows, 1))
    if shown is None:
        rows = rows[:5] + [None] + rows[-5:]
    for row in rows:
        if row is None:
            lines.append(f"{'...':>6}  ({len(plan_.windows) - 10:,} more; --all-windows lists every one)")
            continue
        n, w = row
        when = f"{w.run_at:%Y-%m-%d %H:%M}" if w.run_at else "-"
        lines.append(
            f"{n:>6}  {w.start:%Y-%m-%d %H:%M}    {w.end:%Y-%m-%d %H:%M}    {w.requests:>10,}  {when}"
        )
    return lines


def _advice(plan_: BackfillPlan) -> list[str]:
    """Minimum page sizes, and what to ask the partner for when the plan does not fit."""
    i = plan_.inputs
    total_per_day = sum(i.volumes.values())
    lines = [
        "minimum page sizes:",
        f"  backfill alone, whole limit, 1 day of data per day: {math.ceil(total_per_day / (i.rate_limit_per_hour * 24)):,} "
        f"records/page ({total_per_day:,} records/day / {i.rate_limit_per_hour * 24:,} requests/day)",
    ]
    incremental_min = min_page_size_for_incremental(i)
    if i.lookback_hours:
        lines.append(
            f"  incremental syncs alone within the limit: {incremental_min:,} records/page"
            if incremental_min
            else "  incremental syncs alone: no page size fits"
        )
    any_time = min_page_size(i.model_copy(update={"deadline_days": None}))
    lines.append(
        f"  backfill at all (any duration): {any_time:,} records/page"
        if any_time
        else "  backfill at all: no page size fits"
    )
    deadline = i.deadline_days
    if deadline is not None:
        needed = min_page_size(i, deadline)
        lines.append(
            f"  backfill within {_n(deadline)} days: "
            + (f"{needed:,} records/page" if needed else "no page size fits")
        )
    if plan_.fits:
        return lines
    lines += ["", "to negotiate with the partner (any one of these):"]
    if deadline is not None:
        rate = min_rate_limit(i, deadline)
        if rate:
            lines.append(
                f"  - a higher rate limit for the backfill window: {rate:,} requests/hour at page size "
                f"{i.page_size:,} finishes in {_n(deadline)} days"
            )
        dedicated = min_page_size(i.model_copy(update={"lookback_hours": 0}), deadline)
        if dedicated:
            lines.append(
                f"  - a dedicated backfill key with its own {i.rate_limit_per_hour:,}/hour: the incremental "
                f"syncs no longer share it; needs page size {dedicated:,} for {_n(deadline)} days"
            )
    lines += [
        "  - a larger page size (see the minimums above)",
        "  - a bulk export / S3 dump of the history (no API requests at all; land the files into the same "
        "landing folder and bronze picks them up)",
        "  - ours to change: re-read the 24 h lookback once a day (--sweep-every-hours 24) instead of every hour",
    ]
    return lines
