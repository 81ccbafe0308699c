"""`northstar status` (freshness and lag per table from the run ledger; with --publish, metrics and alerts) and
`northstar ledger` (recent runs and their counts).

Also the function a scheduled monitor calls after each run (`report_runs`): ledger metrics to CloudWatch and
a freshness alert to SNS when a table is older than the env's limit.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from northstar.config import EnvConfig, load_env
from northstar.observability import metrics, notify
from northstar.observability.status import table_status

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_FRESHNESS_MINUTES = 30  # brief 001/003: curated tables 15-30 min after the source


def freshness_limit(env: EnvConfig) -> int:
    return env.alerts.freshness_minutes if env.alerts else DEFAULT_FRESHNESS_MINUTES


def report_runs(
    spark: SparkSession,
    env: EnvConfig,
    now: datetime,
    *,
    since: timedelta = timedelta(hours=1),
    sns_client: Any = None,  # boto3 clients (no stubs); default: from the env
    cloudwatch_client: Any = None,
) -> dict:
    """Publish the last hour's ledger rows and every table's freshness/lag; alert on freshness breaches."""
    from pyspark.sql import functions as F

    from northstar import ledger

    rows = ledger.read(spark, env)
    status_rows = [r.asDict() for r in table_status(rows, now, freshness_limit(env)).collect()]
    recent = [r.asDict() for r in rows.where(F.col("started_at") >= F.lit(now - since)).collect()]
    sent = metrics.publish(
        env,
        metrics.ledger_metrics(env.name, recent) + metrics.status_metrics(env.name, status_rows, now),
        cloudwatch_client,
    )
    alert = notify.freshness_alert(env.name, status_rows, freshness_limit(env))
    message_id = notify.send(env, alert, sns_client=sns_client) if alert else None
    return {"metrics": sent, "alert": message_id, "breaches": sum(1 for r in status_rows if r["breach"])}


def _cmd_status(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from northstar import ledger
    from northstar.spark import get_spark

    env = load_env(args.env)
    spark = get_spark(env, app_name="northstar-status")
    now = datetime.now(UTC)
    rows = ledger.read(spark, env)
    if args.source:
        rows = rows.where(F.col("source") == args.source)
    table_status(rows, now, freshness_limit(env)).select(
        "source",
        "table_name",
        "layer",
        "last_status",
        "last_success",
        "freshness_minutes",
        "lag_minutes",
        "breach",
    ).show(200, truncate=False)
    if args.publish:
        print(report_runs(spark, env, now))
    return 0


def _cmd_ledger(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from northstar import ledger
    from northstar.spark import get_spark

    env = load_env(args.env)
    spark = get_spark(env, app_name="northstar-ledger")
    rows = ledger.read(spark, env)
    if args.source:
        rows = rows.where(F.col("source") == args.source)
    rows.orderBy(F.col("started_at").desc()).select(
        "started_at",
        "layer",
        "source",
        "table_name",
        "status",
        "records_read",
        "records_written",
        "records_duplicate",
        "records_quarantined",
        "run_id",
    ).show(args.limit, truncate=False)
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`northstar status` and `northstar ledger`."""
    status = commands.add_parser("status", help="freshness and lag per table from the run ledger")
    status.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    status.add_argument("--source", help="only this source")
    status.add_argument(
        "--publish", action="store_true", help="also send metrics to CloudWatch, breaches to SNS"
    )
    status.set_defaults(action=_cmd_status)
    show = commands.add_parser("ledger", help="show recent runs from the run ledger")
    show.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    show.add_argument("--source", help="only this source")
    show.add_argument("--limit", type=int, default=20, help="runs to show (default 20)")
    show.set_defaults(action=_cmd_ledger)
