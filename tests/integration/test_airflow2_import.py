"""The generated DAGs import, build the same task graphs and render the same dates on Apache Airflow 2.11
(ShopPulse's standard).

Runs the DagBag in .venv-airflow2 (scripts/setup-airflow2.sh, which `make test` runs) in a subprocess: one
Python process cannot hold Airflow 2 and 3 at once. The subprocess also renders the templates of a task
instance of a manual run (SQLite metadata DB in the test's AIRFLOW_HOME), as dag.test() does on Airflow 3 in
tests/integration/test_airflow_dags.py, and returns the job arguments in its JSON, the Dataset outlets of every
task (Airflow 2.11's name for assets) and the dbt DAG's dataset schedule.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from northstar.config import load_env
from northstar.gold.names import GOLD_TABLE_NAMES
from northstar.orchestration.spec import load_pipelines
from tests.helpers.conf import with_source_stages

REPO = Path(__file__).resolve().parents[2]
PYTHON2 = REPO / ".venv-airflow2" / "bin" / "python"
PROBE = """
import json, sys, airflow, pendulum
from airflow.models.dagbag import DagBag
from airflow.utils import db
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunType
from northstar.config import conf_dir_set_to
from northstar.orchestration.dags import source_dags

def rendered(dag, task_id, run_at):
    # a manual run at run_at, as dag.test() makes one: the data interval is the last one that ended by then
    when = pendulum.parse(run_at)
    run = dag.create_dagrun(
        run_id=f"render_{run_at}",
        run_type=DagRunType.MANUAL,
        execution_date=when,
        data_interval=dag.timetable.infer_manual_data_interval(run_after=when),
        state=DagRunState.RUNNING,
    )
    ti = run.get_task_instance(task_id)
    ti.task = dag.get_task(task_id)
    ti.render_templates()
    return {
        "data_interval": [run.data_interval_start.isoformat(), run.data_interval_end.isoformat()],
        "arguments": ti.task.job_driver["sparkSubmit"]["entryPointArguments"],
    }

bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
reconciliation = bag.dags["northstar_daily_reconciliation"]
with conf_dir_set_to(sys.argv[2]):  # the windowed conf: marketplace runs the windowed extract hourly
    windowed = source_dags()["northstar_marketplace"]
db.initdb()
print(json.dumps({
    "version": airflow.__version__,
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": {d: {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} for d, dag in bag.dags.items()},
    "pools": {d: {t.task_id: t.pool for t in dag.tasks} for d, dag in bag.dags.items()},
    "timetables": {d: type(dag.timetable).__name__ for d, dag in bag.dags.items()},
    "outlets": {
        d: {t.task_id: sorted(o.uri for o in t.outlets) for t in dag.tasks if t.outlets}
        for d, dag in bag.dags.items()
    },
    "dataset_schedule": {
        "condition": type(bag.dags["northstar_dbt"].timetable.dataset_condition).__name__,
        "uris": [uri for uri, _ in bag.dags["northstar_dbt"].timetable.dataset_condition.iter_datasets()],
    },
    "dbt_command": bag.dags["northstar_dbt"].get_task("dbt_build").bash_command,
    "rendered": {
        "reconcile": rendered(reconciliation, "reconcile", "2026-11-25T04:00:00+00:00"),
        "extract_window": rendered(windowed, "extract_window", "2026-11-25T05:15:00+00:00"),
    },
}))
"""


@pytest.fixture(scope="module")
def airflow2(tmp_path_factory) -> dict:
    """The probe's JSON: the DAG folder as Airflow 2.11 parses it, the arguments two task instances render."""
    if not PYTHON2.exists():
        pytest.fail(
            "no .venv-airflow2: run scripts/setup-airflow2.sh (make test does) to test the Airflow 2 import"
        )
    home = tmp_path_factory.mktemp("airflow2")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "NORTHSTAR_CONF_DIR": str(REPO / "conf"),
        "NORTHSTAR_ENV": "prod",
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("AIRFLOW__CORE__DAGS_FOLDER", None)
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    # no scheduled stage takes the window today (extract is incremental): a conf whose marketplace DAG does
    windowed = with_source_stages(
        REPO / "conf", home / "windowed-conf", "marketplace", ["extract_window"], schedule="15 * * * *"
    )
    done = subprocess.run(
        [str(PYTHON2), "-c", PROBE, str(REPO / "airflow" / "dags"), str(windowed)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_dags_import_on_airflow_2_11(airflow2):
    result = airflow2
    assert result["version"].startswith("2.11.")
    assert result["errors"] == {}
    assert result["dags"]["northstar_shop_db"] == {"cycle": []}
    assert result["pools"]["northstar_shop_db"]["cycle"] == "postgres_extracts"
    chain = ["deadline_guard", *load_pipelines().reconciliation.stages, "deadline_check"]
    assert result["dags"]["northstar_daily_reconciliation"] == {
        task: chain[i + 1 : i + 2] for i, task in enumerate(chain)
    }
    pipelines = load_pipelines()
    assert len(result["dags"]) == 2 * len(pipelines.sources) + 2 + len(pipelines.housekeeping)
    assert result["dags"]["northstar_dbt"] == {"dbt_build": []}
    assert result["dags"]["northstar_monitoring"] == {"status": []}


def test_scheduled_dags_have_the_explicit_timetable_on_airflow_2_11(airflow2):
    timetables = airflow2["timetables"]
    backfills = {d for d in timetables if d.startswith("northstar_backfill_")}
    assert backfills
    not_cron = backfills | {"northstar_dbt"}  # the dbt DAG runs on dataset updates, not on a clock
    assert {d: t for d, t in timetables.items() if d not in not_cron} == dict.fromkeys(
        set(timetables) - not_cron, "CronDataIntervalTimetable"
    )
    assert {timetables[d] for d in backfills} == {"NullTimetable"}


def test_the_04_00_reconciliation_reconciles_the_utc_day_before_on_airflow_2_11(airflow2):
    reconcile = airflow2["rendered"]["reconcile"]  # the run of 25 Nov 04:00 UTC ("0 4 * * *")
    assert reconcile["data_interval"] == ["2026-11-24T04:00:00+00:00", "2026-11-25T04:00:00+00:00"]
    assert reconcile["arguments"] == ["--env", "prod", "--date", "2026-11-24", "--fail-on-breach"]


def test_an_hourly_source_dag_gets_the_hour_that_ended_on_airflow_2_11(airflow2):
    extract = airflow2["rendered"]["extract_window"]  # marketplace, "15 * * * *", the run of 05:15 UTC
    assert extract["arguments"] == [
        *("--source", "marketplace", "--env", "prod"),
        *("--start", "2026-11-25T04:15:00+00:00", "--end", "2026-11-25T05:15:00+00:00"),
    ]


def _prod_uri(table: str) -> str:
    spec = load_env("prod").snowflake
    return f"snowflake://{spec.account}/{spec.database}/{spec.analytics_schema}/{table.upper()}"


def test_publishing_tasks_update_the_gold_datasets_on_airflow_2_11(airflow2):
    gold = sorted(_prod_uri(name) for name in GOLD_TABLE_NAMES)
    pipelines = load_pipelines()
    expected = {f"northstar_{s}": {"cycle": gold} for s in pipelines.sources}
    expected |= {f"northstar_backfill_{s}": {"cycle_window": gold} for s in pipelines.sources}
    expected["northstar_daily_reconciliation"] = {"publish": gold}
    # Dataset outlets on exactly the publishing tasks; every other DAG and task has none
    assert {d: o for d, o in airflow2["outlets"].items() if o} == expected


def test_the_dbt_dag_is_scheduled_on_the_finance_mart_datasets_on_airflow_2_11(airflow2):
    schedule = airflow2["dataset_schedule"]
    assert airflow2["timetables"]["northstar_dbt"] == "DatasetTriggeredTimetable"
    assert schedule["condition"] == "DatasetAll"  # queued once each of them was updated since the last run
    assert schedule["uris"] == [_prod_uri(n) for n in ("daily_revenue", "fact_orders", "fact_refunds")]
    assert airflow2["dbt_command"] == ".venv-dbt/bin/dbt build --project-dir dbt --profiles-dir dbt"
