"""Build the Airflow DAGs from conf: one per source, the daily reconciliation, one backfill per source, the
housekeeping DAGs (monitoring, privacy deadlines, late stream events) and the dbt DAG.

The files in airflow/dags/ only call these functions; everything a DAG runs comes from
conf/orchestration/pipelines.yaml (stages, pools, schedules, retries) and conf/env/<env>.yaml (EMR Serverless
applications, role, artifacts, alerts). Runs on Airflow 2.11 and 3.x: version-specific imports are in
`_airflow()`, `_scheduled_timetable()`, `_asset_class()` and `_bash_operator()` only.

Assets: every task of a stage with `publishes_gold: true` has as outlets one asset (Airflow 3 `Asset`, 2.11
`Dataset`) per published gold table (orchestration/assets.py), which Airflow updates when the task succeeds;
`northstar_dbt` is scheduled on the ones its `schedule_on` names.

Windows and business dates, the same on both Airflow lines (they do not depend on a line's default timetable:
a cron string is a CronDataIntervalTimetable on 2.x but a CronTriggerTimetable, with an empty data interval,
on 3.x):

- every scheduled DAG has an explicit `CronDataIntervalTimetable(schedule, timezone="UTC")`, so a run's data
  interval is the schedule period that ended when it runs: the 05:15 run of "15 * * * *" has 04:15 -> 05:15
  (a manual run: the last period that ended before it). `{window_start}` / `{window_end}` are that interval.
- `{business_date}` is the UTC day before the day the data interval ends on, i.e. the last full UTC day the
  run can see: the 04:00 run of 25 Nov reconciles 24 Nov.
"""

from __future__ import annotations

import importlib
import os
import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

from northstar.config import EnvConfig, conf_dir_set_to, enabled_sources, load_env
from northstar.config import conf_dir as current_conf_dir
from northstar.observability.notify import deadline_alert, send, task_failed_alert
from northstar.orchestration import deadline as dl
from northstar.orchestration.assets import published_table_uris
from northstar.orchestration.emr import configuration_overrides, job_driver, require_emr
from northstar.orchestration.spec import PipelinesSpec, fill, load_pipelines

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = ["northstar"]
# Airflow macros the window placeholders become (scheduled DAGs: the rule in the module docstring)
SCHEDULED_WINDOW = {
    "window_start": "{{ data_interval_start | ts }}",
    "window_end": "{{ data_interval_end | ts }}",
    "business_date": "{{ macros.ds_add(data_interval_end | ds, -1) }}",  # the UTC day before the end's day
}
BACKFILL_WINDOW = {
    "window_start": "{{ params.start }}",
    "window_end": "{{ params.end }}",
    "business_date": "{{ params.end[:10] }}",
}


def _airflow() -> tuple[Any, ...]:
    """DAG, chain, Param, PythonOperator, TriggerRule and the EMR operator, from Airflow 3 or 2.

    Imported by name when a DAG is built, so this module (and `referenced_entry_points`) loads without Airflow.
    """
    emr_operator = _first_importable(
        ("airflow.providers.amazon.aws.operators.emr:EmrServerlessStartJobOperator",)
    )[0]
    dag, param, chain = _first_importable(
        ("airflow.sdk:DAG", "airflow.sdk:Param", "airflow.sdk:chain"),  # Airflow 3: the task SDK
        ("airflow:DAG", "airflow.models.param:Param", "airflow.models.baseoperator:chain"),  # Airflow 2.x
    )
    (python_operator,) = _first_importable(
        ("airflow.providers.standard.operators.python:PythonOperator",),
        ("airflow.operators.python:PythonOperator",),
    )
    (trigger_rule,) = _first_importable(
        ("airflow.task.trigger_rule:TriggerRule",), ("airflow.utils.trigger_rule:TriggerRule",)
    )
    return dag, chain, param, python_operator, trigger_rule, emr_operator


def _scheduled_timetable(schedule: str) -> Any:
    """The timetable of every scheduled DAG: data intervals from the cron expression (or preset), in UTC.

    Explicit, because a plain cron string means a data interval on Airflow 2 and a trigger time on Airflow 3.
    """
    (timetable,) = _first_importable(
        ("airflow.sdk:CronDataIntervalTimetable",),  # Airflow 3: the task SDK
        ("airflow.timetables.interval:CronDataIntervalTimetable",),  # Airflow 2.x
    )
    return timetable(schedule, timezone="UTC")


def _asset_class() -> Any:
    """Airflow 3's Asset, or Airflow 2's Dataset (its name before 3.0): both take the URI and an `extra` dict."""
    (asset,) = _first_importable(("airflow.sdk:Asset",), ("airflow.datasets:Dataset",))
    return asset


def _bash_operator() -> Any:
    """BashOperator from the standard provider (Airflow 3) or from Airflow 2's core."""
    (bash_operator,) = _first_importable(
        ("airflow.providers.standard.operators.bash:BashOperator",),
        ("airflow.operators.bash:BashOperator",),
    )
    return bash_operator


def gold_assets(env: EnvConfig) -> dict[str, Any]:
    """gold table name -> the Airflow asset of its warehouse table in `env` (none when nothing is published)."""
    asset = _asset_class()
    return {
        name: asset(uri, extra={"gold_table": f"gold.{name}"})
        for name, uri in published_table_uris(env).items()
    }


def _first_importable(*alternatives: tuple[str, ...]) -> list[Any]:
    """The objects ("module:name") of the first alternative that imports in full; the last one's ImportError."""
    for alternative in alternatives[:-1]:
        try:
            return [_import(path) for path in alternative]
        except ImportError:
            continue
    return [_import(path) for path in alternatives[-1]]


def _import(path: str) -> Any:
    """`from module import name` for "module:name"."""
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except AttributeError:
        raise ImportError(f"cannot import name {name!r} from {module!r}") from None


def current_env_name() -> str:
    """The env the DAGs are generated for: $NORTHSTAR_ENV (set per Airflow deployment), default dev."""
    return os.environ.get("NORTHSTAR_ENV", "dev")


class FailureAlert:
    """on_failure_callback: publish the failed task to the env's SNS topic (and Slack)."""

    def __init__(self, env_name: str, conf_dir: str | None) -> None:
        self.env_name, self.conf_dir = env_name, conf_dir

    def __call__(self, context: dict) -> None:
        with conf_dir_set_to(self.conf_dir):
            env = load_env(self.env_name)
        send(env, task_failed_alert(env.name, context))


def check_deadline(
    env_name: str,
    conf_dir: str | None,
    dag_id: str,
    deadline_utc: str,
    expected_minutes: float,
    finished: bool,
    data_interval_end: datetime | None = None,
    **_context: Any,
) -> str:
    """The guard (finished=False: will the run finish in time?) and the final check (finished=True: did it?)."""
    now = datetime.now(UTC)
    deadline = dl.deadline_for(data_interval_end or now, deadline_utc)
    end = now if finished else dl.predicted_end(now, expected_minutes)
    if end <= deadline:
        return f"on time: {'finished' if finished else 'predicted'} {end:%H:%M} <= {deadline:%H:%M} UTC"
    send(load_env(env_name), deadline_alert(env_name, dag_id, deadline, end, missed=finished))
    return f"{'missed' if finished else 'at risk'}: {end:%H:%M} > {deadline:%H:%M} UTC (alert sent)"


def _default_args(pipelines: PipelinesSpec, env: EnvConfig, conf_dir: str | None, timeout: float) -> dict:
    d = pipelines.defaults
    return {
        "owner": d.owner,
        "retries": d.retries,
        "retry_delay": timedelta(minutes=d.retry_delay_minutes),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=d.max_retry_delay_minutes),
        "execution_timeout": timedelta(minutes=timeout),
        "on_failure_callback": FailureAlert(env.name, conf_dir),
    }


def _stage_tasks(
    pipelines: PipelinesSpec,
    env: EnvConfig,
    stages: list[str],
    application: str,
    source: str | None,
    window: dict[str, str],
    label: str | None = None,
) -> list:
    *_, EmrServerlessStartJobOperator = _airflow()
    emr = require_emr(env)
    published = list(gold_assets(env).values())
    tasks = []
    for stage_name in stages:
        stage = pipelines.stages[stage_name]
        placeholders = {**window, **({"source": source} if source else {})}
        pool = pipelines.pool_for(source, stage_name)
        outlets = published if stage.publishes_gold else []
        tasks.append(
            EmrServerlessStartJobOperator(
                task_id=stage_name,
                name=f"northstar-{env.name}-{label or source or 'daily'}-{stage_name}",
                application_id=application,
                execution_role_arn=emr.execution_role_arn,
                job_driver=job_driver(env, stage, **placeholders),
                configuration_overrides=configuration_overrides(env),
                aws_conn_id=emr.aws_conn_id,
                region_name=emr.region,
                wait_for_completion=True,
                waiter_delay=emr.waiter_delay_seconds,
                waiter_max_attempts=emr.waiter_max_attempts,
                **({"pool": pool} if pool else {}),
                **({"outlets": outlets} if outlets else {}),
            )
        )
    return tasks


def _sources(pipelines: PipelinesSpec, env: EnvConfig) -> list[str]:
    enabled = enabled_sources(env)
    return [s for s in pipelines.sources if s in enabled]


def _linear_dag(
    pipelines: PipelinesSpec,
    env: EnvConfig,
    conf_dir: str | None,
    *,
    dag_id: str,
    description: str,
    schedule: str,
    stages: list[str],
    source: str | None,
    label: str,
    tags: list[str],
) -> Any:  # an airflow DAG
    """A DAG running `stages` in order on the scheduled application."""
    DAG, chain, *_ = _airflow()
    with DAG(
        dag_id=dag_id,
        description=f"{description} on EMR Serverless ({env.name})",
        schedule=_scheduled_timetable(schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(pipelines, env, conf_dir, pipelines.defaults.execution_timeout_minutes),
        tags=[*TAGS, *tags, env.name],
    ) as dag:
        chain(
            *_stage_tasks(
                pipelines,
                env,
                stages,
                require_emr(env).applications.scheduled,
                source,
                SCHEDULED_WINDOW,
                label,
            )
        )
    return dag


def source_dags(env_name: str | None = None) -> dict:
    """northstar_<source>: the source's stages in order on the scheduled application."""
    conf_dir = str(current_conf_dir())  # what the callbacks, which run in workers, read
    env = load_env(env_name or current_env_name())
    pipelines = load_pipelines()
    dags = {}
    for source in _sources(pipelines, env):
        pipeline = pipelines.sources[source]
        dag_id = f"northstar_{source}"
        dags[dag_id] = _linear_dag(
            pipelines,
            env,
            conf_dir,
            dag_id=dag_id,
            description=f"{source}: {' -> '.join(pipeline.stages)}",
            schedule=pipeline.schedule,
            stages=pipeline.stages,
            source=source,
            label=source,
            tags=[source],
        )
    return dags


def housekeeping_dags(env_name: str | None = None) -> dict:
    """northstar_<name> for each `housekeeping:` entry (skipped where the env does not enable its source)."""
    conf_dir = str(current_conf_dir())  # what the callbacks, which run in workers, read
    env = load_env(env_name or current_env_name())
    pipelines = load_pipelines()
    enabled = enabled_sources(env)
    dags = {}
    for name, spec in pipelines.housekeeping.items():
        if spec.source and spec.source not in enabled:
            continue
        dag_id = f"northstar_{name}"
        dags[dag_id] = _linear_dag(
            pipelines,
            env,
            conf_dir,
            dag_id=dag_id,
            description=spec.description or f"{name}: {' -> '.join(spec.stages)}",
            schedule=spec.schedule,
            stages=spec.stages,
            source=spec.source,
            label=name,
            tags=["housekeeping"],
        )
    return dags


def reconciliation_dag(env_name: str | None = None) -> dict:
    """northstar_daily_reconciliation: deadline guard -> stages -> deadline check (ALL_DONE)."""
    DAG, chain, _, PythonOperator, TriggerRule, _ = _airflow()
    conf_dir = str(current_conf_dir())  # what the callbacks, which run in workers, read
    env = load_env(env_name or current_env_name())
    pipelines = load_pipelines()
    spec = pipelines.reconciliation
    if spec is None:
        return {}
    dag_id = "northstar_daily_reconciliation"
    deadline_kwargs = {
        "env_name": env.name,
        "conf_dir": conf_dir,
        "dag_id": dag_id,
        "deadline_utc": spec.deadline_utc,
        "expected_minutes": spec.expected_minutes,
    }
    with DAG(
        dag_id=dag_id,
        description=f"daily financial reconciliation, done by {spec.deadline_utc} UTC ({env.name})",
        schedule=_scheduled_timetable(spec.schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(pipelines, env, conf_dir, pipelines.defaults.execution_timeout_minutes),
        tags=[*TAGS, "reconciliation", env.name],
    ) as dag:
        guard = PythonOperator(
            task_id="deadline_guard",
            python_callable=check_deadline,
            op_kwargs={**deadline_kwargs, "finished": False},
            retries=0,
        )
        stages = _stage_tasks(
            pipelines, env, spec.stages, require_emr(env).applications.scheduled, None, SCHEDULED_WINDOW
        )
        final = PythonOperator(
            task_id="deadline_check",
            python_callable=check_deadline,
            op_kwargs={**deadline_kwargs, "finished": True},
            trigger_rule=TriggerRule.ALL_DONE,
            retries=0,
        )
        chain(guard, *stages, final)
    return {dag_id: dag}


def backfill_dags(env_name: str | None = None) -> dict:
    """northstar_backfill_<source>: the backfill stages for a window given as parameters, on the backfill app."""
    DAG, chain, Param, *_ = _airflow()
    conf_dir = str(current_conf_dir())  # what the callbacks, which run in workers, read
    env = load_env(env_name or current_env_name())
    pipelines = load_pipelines()
    spec = pipelines.backfill
    if spec is None:
        return {}
    dags = {}
    for source in _sources(pipelines, env):
        dag_id = f"northstar_backfill_{source}"
        stages = pipelines.backfill_stages(source)
        with DAG(
            dag_id=dag_id,
            description=f"backfill {source} for a window: {' -> '.join(stages)} ({env.name})",
            schedule=None,
            start_date=START_DATE,
            catchup=False,
            max_active_runs=1,
            params={
                "start": Param(
                    "2026-01-01T00:00:00+00:00", type="string", description="window start, ISO 8601"
                ),
                "end": Param(
                    "2026-01-02T00:00:00+00:00", type="string", description="window end (exclusive)"
                ),
            },
            default_args=_default_args(pipelines, env, conf_dir, spec.execution_timeout_minutes),
            tags=[*TAGS, "backfill", source, env.name],
        ) as dag:
            chain(
                *_stage_tasks(
                    pipelines, env, stages, require_emr(env).applications.backfill, source, BACKFILL_WINDOW
                )
            )
        dags[dag_id] = dag
    return dags


def dbt_dag(env_name: str | None = None) -> dict:
    """northstar_dbt: `dbt build` (conf `dbt:`) on a worker, scheduled on the published gold tables it reads."""
    DAG, *_ = _airflow()
    BashOperator = _bash_operator()
    conf_dir = current_conf_dir().resolve()  # what the callbacks, which run in workers, read
    env = load_env(env_name or current_env_name())
    pipelines = load_pipelines()
    spec = pipelines.dbt
    assets = gold_assets(env)
    if spec is None or env.snowflake is None or not assets:
        return {}
    dag_id = "northstar_dbt"
    command = [spec.executable, *fill(spec.arguments, env=env.name)]
    timeout = spec.execution_timeout_minutes or pipelines.defaults.execution_timeout_minutes
    with DAG(
        dag_id=dag_id,
        description=f"dbt on the warehouse when {', '.join(spec.schedule_on)} are published ({env.name})",
        schedule=[assets[name] for name in spec.schedule_on],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(pipelines, env, str(conf_dir), timeout),
        tags=[*TAGS, "dbt", env.name],
    ) as dag:
        BashOperator(
            task_id="dbt_build",
            bash_command=" ".join(shlex.quote(part) for part in command),
            cwd=spec.working_dir or str(conf_dir.parent),
            env=dbt_environment(env),
            append_env=True,
            **({"pool": spec.pool} if spec.pool else {}),
        )
    return {dag_id: dag}


def dbt_environment(env: EnvConfig) -> dict[str, str]:
    """What the dbt process gets besides the worker's environment: the env's name and warehouse coordinates
    (no credentials: the dbt profile reads those itself)."""
    assert env.snowflake is not None  # dbt_dag builds nothing without a warehouse
    spec = env.snowflake
    return {
        "NORTHSTAR_ENV": env.name,
        "NORTHSTAR_SNOWFLAKE_ACCOUNT": spec.account,
        "NORTHSTAR_SNOWFLAKE_DATABASE": spec.database,
        "NORTHSTAR_SNOWFLAKE_SCHEMA": spec.analytics_schema,
        "NORTHSTAR_SNOWFLAKE_WAREHOUSE": spec.warehouse,
        "NORTHSTAR_SNOWFLAKE_ROLE": spec.role,
    }


def referenced_entry_points(pipelines: PipelinesSpec) -> set[str]:
    """Every jobs/ entry point a generated DAG can start (for the test that they all exist)."""
    names = {s for p in pipelines.sources.values() for s in p.stages}
    names |= {s for p in pipelines.housekeeping.values() for s in p.stages}
    names |= set(pipelines.reconciliation.stages if pipelines.reconciliation else [])
    names |= set(pipelines.backfill.substitute.values() if pipelines.backfill else [])
    return {pipelines.stages[n].entry_point for n in names}
