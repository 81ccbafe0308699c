"""`northstar publish`: publish every gold table to the env's Snowflake (or fakesnow), print the
reconciliation, exit non-zero when the warehouse differs from gold or a schema change is refused."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from northstar.config import ConfigError, load_env, load_source
from northstar.errors import EXIT_FAILED

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from northstar.config import EnvConfig, SourceSpec
    from northstar.warehouse.publish import PublishResult
    from northstar.warehouse.stream_publish import StreamPublisher


def parse_versions(pairs: list[str]) -> dict[str, int]:
    """`--version fact_orders=12` pairs -> {"fact_orders": 12}; an unknown table or a bad number is a
    ConfigError naming it."""
    from northstar.gold.tables import GOLD

    versions = {}
    for pair in pairs:
        table, _, number = pair.partition("=")
        if table not in GOLD or not number.isdigit():
            raise ConfigError(
                f"--version {pair!r}: expected TABLE=N with TABLE one of {', '.join(GOLD)} and N a Delta "
                "version (see DESCRIBE HISTORY of the gold table)"
            )
        versions[table] = int(number)
    return versions


def stream_publisher(spark: SparkSession, env: EnvConfig, source: SourceSpec) -> StreamPublisher | None:
    """The publisher `northstar stream run` hands to its silver query (cli passes this to the streaming
    commands, which sit below the warehouse layer)."""
    from northstar.warehouse.stream_publish import publisher_for

    return publisher_for(spark, env, source)


def publish_command(args: argparse.Namespace) -> int:
    from northstar import ledger
    from northstar.spark import get_spark
    from northstar.warehouse.connection import connect
    from northstar.warehouse.ddl import SchemaChangeRefused
    from northstar.warehouse.publish import publish_all, publish_stream
    from northstar.warehouse.reconcile import ReconciliationError

    env = load_env(args.env)
    if env.snowflake is None:
        raise ConfigError(f"conf/env/{args.env}.yaml: no snowflake: section (see docs/snowflake.md)")
    if args.stream and args.version:
        raise ConfigError("--stream publishes the stream tables at their latest version: drop --version")
    versions = parse_versions(args.version)
    if args.stream:
        load_source(args.stream).require_stream()  # a source without a stream: section stops here
    run_id = args.run_id or ledger.new_run_id("stream-publish" if args.stream else "publish")
    spark = get_spark(env, app_name="northstar-publish")
    try:
        with connect(env.snowflake) as conn:
            if args.stream:
                results = publish_stream(spark, env, conn, args.stream, run_id=run_id)
            else:
                results = publish_all(spark, env, conn, run_id=run_id, versions=versions)
    except (SchemaChangeRefused, ReconciliationError) as err:
        print(f"publish {run_id} failed: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(format_results(run_id, results))
    return 0


def format_results(run_id: str, results: list[PublishResult]) -> str:
    """One line per table: version, what moved, warehouse rows, partitions compared, verdict; then the
    statements skipped locally."""
    lines = [f"publish {run_id}:"]
    for r in results:
        partitions = len({d.partition for d in r.differences})
        held = "-" if r.from_version is None else f"v{r.from_version}"
        if r.mode == "noop":
            moved, verdict = "already there", "unchanged"
        else:
            moved = f"+{r.upserted:,} -{r.deleted:,} ({r.mode})"
            verdict = f"{partitions} partitions {'reconciled' if r.reconciled else 'DIFFER'}"
        lines.append(
            f"  {r.table:<18} {held:>5} -> v{r.gold_version:<4} {moved:<26} {r.rows:>9,} rows  {verdict}"
        )
    skipped = sorted({s.split(" AS ")[0].split("\n")[0][:90] for r in results for s in r.skipped_statements})
    if skipped:
        lines.append("  skipped locally (fakesnow does not accept them; Snowflake runs them all):")
        lines += [f"    {s}" for s in skipped]
    return "\n".join(lines)


def dbt_sources_command(args: argparse.Namespace) -> int:
    """Write the dbt sources.yml of the env's warehouse from the gold metadata."""
    from pathlib import Path

    from northstar.warehouse import dbt_sources

    env = load_env(args.env)
    if env.snowflake is None:
        raise ConfigError(f"conf/env/{args.env}.yaml: no snowflake: section (see docs/snowflake.md)")
    out = dbt_sources.write(env.snowflake, Path(args.out))
    print(
        f"dbt-sources: {len(dbt_sources.GOLD)} tables of {env.snowflake.database}.{env.snowflake.analytics_schema} -> {out}"
    )
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`northstar publish`, `northstar dbt-sources`."""
    publish = commands.add_parser(
        "publish", help="publish gold to Snowflake and reconcile (docs/snowflake.md)"
    )
    publish.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    publish.add_argument(
        "--version",
        action="append",
        default=[],
        metavar="TABLE=N",
        help="gold Delta version to publish (default: latest)",
    )
    publish.add_argument("--run-id", help="reuse a run id to retry the same publish (default: a new one)")
    publish.add_argument(
        "--stream",
        metavar="SOURCE",
        help="publish a streamed source's session and minute tables (latest version) instead of gold; "
        "`northstar stream run` does this every stream.publish_seconds (docs/streaming.md)",
    )
    publish.set_defaults(action=publish_command)

    sources = commands.add_parser(
        "dbt-sources", help="write the dbt sources.yml of the published tables from the gold metadata (dbt/)"
    )
    sources.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    sources.add_argument("--out", default="dbt/models/sources.yml", help="default: dbt/models/sources.yml")
    sources.set_defaults(action=dbt_sources_command)
