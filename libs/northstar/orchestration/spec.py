"""conf/orchestration/pipelines.yaml as pydantic models: stages (entry point + arguments), pools, DAG schedules.

No Airflow import here: the specs are validated by `northstar validate-conf` and unit tests without Airflow.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from northstar.config import ConfFile, Identifier, Strict
from northstar.gold.names import GOLD_TABLE_NAMES

PLACEHOLDER = re.compile(r"\{(\w+)\}")
# what a stage's arguments may name; filled at DAG generation ({source}, {env}) or at run time (the window)
PLACEHOLDERS = ("source", "env", "window_start", "window_end", "business_date")
DEADLINE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class StageSpec(Strict):
    """One pipeline step: a spark-submit entry point in jobs/ and its arguments."""

    entry_point: str = Field(pattern=r"^jobs/[a-z0-9_]+\.py$", description="jobs/<name>.py")
    arguments: list[str] = Field(default_factory=list)
    pool: str | None = Field(default=None, description="Airflow pool capping this stage's concurrency")
    publishes_gold: bool = Field(
        default=False,
        description="the job publishes gold to the warehouse: its task's outlets are the published tables' assets",
    )

    @field_validator("arguments")
    @classmethod
    def _known_placeholders(cls, value: list[str]) -> list[str]:
        unknown = sorted({p for a in value for p in PLACEHOLDER.findall(a) if p not in PLACEHOLDERS})
        if unknown:
            raise ValueError(f"unknown placeholders {unknown}; allowed: {', '.join(PLACEHOLDERS)}")
        return value

    @model_validator(mode="after")
    def _publishes_only_without_no_publish(self) -> StageSpec:
        if self.publishes_gold and "--no-publish" in self.arguments:
            raise ValueError("publishes_gold: true with --no-publish: the job would never update the assets")
        return self


class PoolSpec(Strict):
    slots: int = Field(ge=1)
    description: str = ""


class Defaults(Strict):
    retries: int = Field(default=3, ge=0)
    retry_delay_minutes: float = Field(default=2, gt=0)
    max_retry_delay_minutes: float = Field(default=30, gt=0)
    execution_timeout_minutes: float = Field(default=90, gt=0)
    owner: str = "data-engineering"


class SourcePipeline(Strict):
    """The DAG of one source: its schedule and stages in order."""

    schedule: str = Field(min_length=1, description="cron expression or @preset")
    stages: list[Identifier] = Field(min_length=1)
    pools: dict[Identifier, str] = Field(default_factory=dict, description="stage -> pool for this source")


class HousekeepingPipeline(Strict):
    """A scheduled operation that is not a source's load: monitoring, privacy deadlines, late stream events."""

    schedule: str = Field(min_length=1, description="cron expression or @preset")
    stages: list[Identifier] = Field(min_length=1)
    description: str = ""
    source: Identifier | None = Field(
        default=None, description="fills {source}; the DAG exists only where the env enables this source"
    )


class ReconciliationPipeline(Strict):
    schedule: str = Field(min_length=1)
    stages: list[Identifier] = Field(min_length=1)
    deadline_utc: str = Field(description="HH:MM UTC the run must finish by")
    expected_minutes: float = Field(gt=0, description="how long a run takes (for the deadline prediction)")

    @field_validator("deadline_utc")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not DEADLINE.match(value):
            raise ValueError(f"write the deadline as HH:MM in UTC, e.g. 06:30 (got {value!r})")
        return value


class BackfillPipeline(Strict):
    """Backfills run each source's own stages, with some swapped for their windowed form."""

    substitute: dict[Identifier, Identifier] = Field(default_factory=dict, description="stage -> stage")
    execution_timeout_minutes: float = Field(default=720, gt=0)


class DbtPipeline(Strict):
    """northstar_dbt: `<executable> <arguments>` on an Airflow worker once the gold tables it reads are published.

    The DAG is scheduled on the assets of `schedule_on` (orchestration/assets.py): a run is queued when each of
    them has been updated since the last run. The dbt project (dbt/) and its venv (.venv-dbt, scripts/setup-dbt.sh)
    live in the checkout the workers run from.
    """

    schedule_on: list[Identifier] = Field(
        min_length=1, description="gold tables (gold/names.py) whose publish triggers the DAG"
    )
    executable: str = Field(min_length=1, description="the dbt command: absolute, or relative to working_dir")
    arguments: list[str] = Field(default_factory=list, description="placeholder: {env}")
    working_dir: str | None = Field(
        default=None, description="where the command runs; default: the folder holding the conf folder"
    )
    pool: str | None = None
    execution_timeout_minutes: float | None = Field(default=None, gt=0, description="default: defaults'")

    @field_validator("schedule_on")
    @classmethod
    def _gold_tables(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in GOLD_TABLE_NAMES]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not gold tables; gold tables: {', '.join(GOLD_TABLE_NAMES)}"
            )
        return value

    @field_validator("arguments")
    @classmethod
    def _env_placeholder_only(cls, value: list[str]) -> list[str]:
        unknown = sorted({p for a in value for p in PLACEHOLDER.findall(a) if p != "env"})
        if unknown:
            raise ValueError(f"unknown placeholders {unknown}; allowed: env")
        return value


class PipelinesSpec(Strict):
    """Every DAG the project generates."""

    stages: dict[Identifier, StageSpec] = Field(min_length=1)
    pools: dict[Identifier, PoolSpec] = Field(default_factory=dict)
    defaults: Defaults = Defaults()
    sources: dict[Identifier, SourcePipeline] = Field(default_factory=dict)
    reconciliation: ReconciliationPipeline | None = None
    backfill: BackfillPipeline | None = None
    housekeeping: dict[Identifier, HousekeepingPipeline] = Field(default_factory=dict)
    dbt: DbtPipeline | None = None

    @model_validator(mode="after")
    def _names_resolve(self) -> PipelinesSpec:
        problems = self._stage_problems() + self._name_problems() + self._pool_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _stage_problems(self) -> list[str]:
        """Stage lists naming a stage that is not defined."""
        lists = {f"sources.{n}.stages": p.stages for n, p in self.sources.items()}
        lists |= {f"housekeeping.{n}.stages": p.stages for n, p in self.housekeeping.items()}
        if self.reconciliation:
            lists["reconciliation.stages"] = self.reconciliation.stages
        if self.backfill:
            lists["backfill.substitute"] = list(self.backfill.substitute.values())
        problems = []
        for where, names in lists.items():
            unknown = [s for s in names if s not in self.stages]
            if unknown:
                problems.append(
                    f"{where} names {', '.join(unknown)}; defined stages: {', '.join(self.stages)}"
                )
        return problems

    def _name_problems(self) -> list[str]:
        """Housekeeping DAG names taken by a source's DAG or the reconciliation."""
        taken = set(self.sources) | {"daily_reconciliation"} | ({"dbt"} if self.dbt else set())
        clash = sorted(set(self.housekeeping) & taken)
        if not clash:
            return []
        return [f"housekeeping names {', '.join(clash)} are taken by another DAG (northstar_<name>)"]

    def _pool_problems(self) -> list[str]:
        """Pool overrides for stages a DAG does not run, and pools that are not declared."""
        problems = []
        pools_used = {n: s.pool for n, s in self.stages.items() if s.pool}
        for name, pipeline in self.sources.items():
            for stage, pool in pipeline.pools.items():
                if stage not in pipeline.stages:
                    problems.append(f"sources.{name}.pools names stage {stage}, which this DAG does not run")
                pools_used[f"sources.{name}.pools.{stage}"] = pool
        if self.dbt and self.dbt.pool:
            pools_used["dbt.pool"] = self.dbt.pool
        for where, pool in pools_used.items():
            if pool not in self.pools:
                problems.append(
                    f"{where} uses pool {pool}; declared pools: {', '.join(self.pools) or 'none'}"
                )
        return problems

    def backfill_stages(self, source: str) -> list[str]:
        swap = self.backfill.substitute if self.backfill else {}
        return [swap.get(s, s) for s in self.sources[source].stages]

    def pool_for(self, source: str | None, stage: str) -> str | None:
        """The pool a stage runs in: the source's override, else the stage's own, else none."""
        overrides = self.sources[source].pools if source in self.sources else {}
        swapped_from = {v: k for k, v in (self.backfill.substitute if self.backfill else {}).items()}
        for name in (stage, swapped_from.get(stage)):
            if name in overrides:
                return overrides[name]
        return self.stages[stage].pool


PIPELINES = ConfFile("orchestration/pipelines.yaml", PipelinesSpec, "pipelines file")


def load_pipelines() -> PipelinesSpec:
    """conf/orchestration/pipelines.yaml; a bad file is a ConfigError naming the file and field."""
    return PIPELINES.load()


def fill(arguments: list[str], **values: str) -> list[str]:
    """Replace {placeholder}s that have a value; others stay for a later step (the run's window)."""
    return [PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), a) for a in arguments]
