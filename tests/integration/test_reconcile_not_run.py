"""The daily reconciliation on a lake whose inputs do not exist yet (a new environment, a source never run):
each comparison is reported as `not_run` naming the missing table and the command that builds it, the CLI
prints one line per comparison (no traceback), `--fail-on-breach` exits 1 (a missing input proves nothing),
and the HTML report is written. Real Spark + Delta, the repo's own conf/reconciliation/daily.yaml.
"""

from __future__ import annotations

import shutil
from datetime import date

from northstar.cli import main
from northstar.lake import tables
from tests.helpers.envs import CONF, make_env

DAY = date(2026, 11, 24)


def test_missing_inputs_are_not_run_with_the_command_that_builds_them(spark, tmp_path, capsys):
    env = make_env(tmp_path, name="t")
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "env" / "t.yaml").write_text(
        f"profile: local\nlanding: {env.landing}\nlake: {env.lake}\nquarantine: {env.quarantine}\n"
    )
    report = tmp_path / "r.html"
    args = [
        "reconcile",
        "--date",
        DAY.isoformat(),
        "--env",
        "t",
        "--conf-dir",
        str(conf),
        "--report",
        str(report),
    ]

    assert main(args) == 0  # without --fail-on-breach: reported, not failed
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in out.splitlines() if line.startswith("NOT RUN ")]
    assert (
        "NOT RUN orders_vs_finance: not_run: silver.orders missing - run northstar model --name orders; "
        "not_run: silver.finance_totals_daily_totals missing - run northstar extract --source finance_totals "
        "&& northstar run --source finance_totals"
    ) in lines
    assert (
        "NOT RUN orders_vs_fulfillment: not_run: silver.orders missing - run northstar model --name orders; "
        "not_run: silver.wms_shipments_acme missing - run northstar extract --source wms && northstar run "
        "--source wms; not_run: silver.wms_shipments_bolt missing - run northstar extract --source wms && "
        "northstar run --source wms"
    ) in lines
    assert len(lines) == 9  # 7 comparisons + 2 duplicate checks, every one without its inputs
    assert "0 breaches, 9 comparisons not run" in out

    stored = spark.read.format("delta").load(tables.RECONCILIATION.path(env)).collect()
    assert {r.status for r in stored} == {"not_run"}
    assert {r.comparison for r in stored} >= {"orders_vs_payments", "duplicates silver.orders"}
    page = report.read_text()
    assert "Not run (9)" in page
    assert "silver.orders missing - run northstar model --name orders" in page

    assert main([*args, "--fail-on-breach"]) == 1  # the daily DAG stops: nothing was proven
    again = spark.read.format("delta").load(tables.RECONCILIATION.path(env)).collect()
    assert sorted(map(tuple, again)) == sorted(map(tuple, stored))  # the retry replaced its own rows
