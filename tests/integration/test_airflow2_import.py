"""The generated DAGs import, build the same task graphs and render the same dates on Apache Airflow 2.11
(ShopPulse's standard).

Runs the DagBag in .venv-airflow2 (scripts/setup-airflow2.sh, which `make test` runs) in a subprocess: one
Python process cannot hold Airflow 2 and 3 at once. The subprocess also renders the templates of a task
instance of a manual run (SQLite metadata DB in the test's AIRFLOW_HOME), as dag.test() does on Airflow 3 in
tests/integration/test_airflow_dags.py, and returns the job arguments in its JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

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
    assert len(result["dags"]) == 2 * len(pipelines.sources) + 1 + len(pipelines.housekeeping)
    assert result["dags"]["northstar_monitoring"] == {"status": []}


def test_scheduled_dags_have_the_explicit_timetable_on_airflow_2_11(airflow2):
    timetables = airflow2["timetables"]
    backfills = {d for d in timetables if d.startswith("northstar_backfill_")}
    assert backfills
    assert {d: t for d, t in timetables.items() if d not in backfills} == dict.fromkeys(
        set(timetables) - backfills, "CronDataIntervalTimetable"
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
