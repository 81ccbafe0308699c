"""The generated DAGs import and build the same task graphs on Apache Airflow 2.11 (ShopPulse's standard).

Runs the DagBag in .venv-airflow2 (scripts/setup-airflow2.sh, which `make test` runs) in a subprocess: one
Python process cannot hold Airflow 2 and 3 at once.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from northstar.orchestration.spec import load_pipelines

REPO = Path(__file__).resolve().parents[2]
PYTHON2 = REPO / ".venv-airflow2" / "bin" / "python"
PROBE = """
import json, sys, airflow
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
print(json.dumps({
    "version": airflow.__version__,
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": {d: {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} for d, dag in bag.dags.items()},
    "pools": {d: {t.task_id: t.pool for t in dag.tasks} for d, dag in bag.dags.items()},
}))
"""


def test_dags_import_on_airflow_2_11(tmp_path):
    if not PYTHON2.exists():
        pytest.fail(
            "no .venv-airflow2: run scripts/setup-airflow2.sh (make test does) to test the Airflow 2 import"
        )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "NORTHSTAR_CONF_DIR": str(REPO / "conf"),
        "NORTHSTAR_ENV": "prod",
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("AIRFLOW__CORE__DAGS_FOLDER", None)
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    done = subprocess.run(
        [str(PYTHON2), "-c", PROBE, str(REPO / "airflow" / "dags")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["version"].startswith("2.11.")
    assert result["errors"] == {}
    assert result["dags"]["northstar_shop_db"] == {"extract": ["bronze"], "bronze": ["silver"], "silver": []}
    assert result["pools"]["northstar_shop_db"]["extract"] == "postgres_extracts"
    chain = ["deadline_guard", *load_pipelines().reconciliation.stages, "deadline_check"]
    assert result["dags"]["northstar_daily_reconciliation"] == {
        task: chain[i + 1 : i + 2] for i, task in enumerate(chain)
    }
    pipelines = load_pipelines()
    assert len(result["dags"]) == 2 * len(pipelines.sources) + 1 + len(pipelines.housekeeping)
    assert result["dags"]["northstar_monitoring"] == {"status": []}
