"""`northstar run` (bronze and/or silver of a source) and `northstar quarantine list|replay`.

jobs/ingest_source.py, jobs/bronze_ingest.py and jobs/silver_merge.py run `northstar run` with their layer, so a
job behaves the same under `spark-submit` as from the command line.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from northstar.config import ConfigError, SourceSpec, list_sources, load_env, load_source

LAYERS = {"bronze": ("bronze",), "silver": ("silver",), "all": ("bronze", "silver")}


def _cmd_run(args: argparse.Namespace) -> int:
    from northstar.lake import run_lock
    from northstar.report import run_report
    from northstar.silver.pipeline import run_source
    from northstar.spark import get_spark

    layers = LAYERS[args.layer]
    env = load_env(args.env)
    source = load_source(args.source)
    chosen = args.table or list(source.tables)
    if chosen:  # a busy table refused before the JVM starts: its one line is all the user sees
        run_lock.refuse_if_held(env, layers[0], source.name, chosen[0])
    spark = get_spark(env, app_name=f"northstar-{'-'.join(layers)}-{source.name}")
    entries = run_source(
        spark,
        env,
        source,
        tables=args.table,
        layers=layers,
        full_refresh=args.full_refresh,
        max_files=args.max_files,
    )
    print(run_report(entries))
    return 0


def source_table(value: str) -> tuple[SourceSpec, str]:
    """`<source>.<table>` -> (SourceSpec, table), with an error naming what exists."""
    source_name, _, table = value.partition(".")
    if not table:
        raise ConfigError(f"--table {value!r}: write <source>.<table>, e.g. marketplace.orders")
    source = load_source(source_name)
    if table not in source.tables:
        raise ConfigError(
            f"--table {value}: source {source_name} has no table {table} (its tables: {', '.join(source.tables)})"
        )
    return source, table


def _cmd_quarantine_list(args: argparse.Namespace) -> int:
    from functools import reduce

    from pyspark.sql import functions as F

    from northstar import quarantine
    from northstar.lake import delta, tables
    from northstar.spark import get_spark

    env = load_env(args.env)
    sources = [load_source(n) for n in ([args.source] if args.source else list_sources())]
    spark = get_spark(env, app_name="northstar-quarantine-list")
    frames = []
    for source in sources:
        for table in source.tables:
            path = tables.quarantine(source.name, table).path(env)
            if delta.table_exists(spark, path):
                frame = spark.read.format("delta").load(path)
                for column in ("check_name", "replayed_run_id"):  # tables written before these existed
                    if column not in frame.columns:
                        frame = frame.withColumn(column, F.lit(None).cast("string"))
                frames.append(frame.withColumn("table", F.lit(f"{source.name}.{table}")))
    if not frames:
        print("no quarantine tables yet")
        return 0
    rows = reduce(lambda a, b: a.unionByName(b), frames)
    quarantine.counts(rows).show(args.limit, truncate=False)
    files = quarantine.whole_files(rows)
    if not files.isEmpty():
        print("landing files in quarantine (fix or re-deliver each; the next bronze run reads it):")
        files.show(args.limit, truncate=False)
    return 0


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        since = datetime.fromisoformat(text)
    except ValueError as err:
        raise ConfigError(f"--since: {err} (write e.g. 2026-11-01T00:00:00Z)") from None
    return since.astimezone(UTC).replace(tzinfo=None) if since.tzinfo else since


def _cmd_quarantine_replay(args: argparse.Namespace) -> int:
    from northstar.report import run_report
    from northstar.silver.replay import replay
    from northstar.spark import get_spark

    env = load_env(args.env)
    source, table = source_table(args.table)
    since = _since(args.since)
    spark = get_spark(env, app_name=f"northstar-quarantine-replay-{source.name}-{table}")
    entry = replay(spark, env, source, table, check=args.check, run_id=args.run_id, since=since)
    print(run_report([entry]))
    return 0


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `northstar run` (and of the bronze/silver spark-submit jobs)."""
    parser.add_argument("--source", required=True, help="source name: conf/sources/<source>.yaml")
    parser.add_argument("--table", action="append", help="only this table (repeatable); default: all tables")
    parser.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    parser.add_argument(
        "--full-refresh", action="store_true", help="silver: rebuild from all of bronze (replay)"
    )
    parser.add_argument(
        "--max-files", type=int, help="bronze: take at most this many landing files per table"
    )
    parser.add_argument(
        "--layer", choices=list(LAYERS), default="all", help="bronze, silver or both (default: all)"
    )


def _add_quarantine_commands(commands: argparse._SubParsersAction) -> None:
    quarantined = commands.add_parser(
        "quarantine", help="quarantined records: counts, and replay after a fix"
    )
    subcommands = quarantined.add_subparsers(dest="quarantine_command", required=True)
    listing = subcommands.add_parser("list", help="quarantined rows by table, layer, reason and check")
    listing.add_argument("--source", help="only this source")
    listing.add_argument("--limit", type=int, default=100, help="rows to show (default 100)")
    listing.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    listing.set_defaults(action=_cmd_quarantine_list)
    replaying = subcommands.add_parser(
        "replay", help="re-process quarantined silver records through the current rules (idempotent)"
    )
    replaying.add_argument("--table", required=True, help="<source>.<table>, e.g. marketplace.orders")
    replaying.add_argument("--check", help="only records quarantined by this check (conf/quality/)")
    replaying.add_argument("--run-id", help="only records quarantined by this run")
    replaying.add_argument("--since", help="only records quarantined at or after this time (ISO 8601, UTC)")
    replaying.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    replaying.set_defaults(action=_cmd_quarantine_replay)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`northstar run` and `northstar quarantine ...`."""
    run = commands.add_parser("run", help="run bronze and/or silver for a source")
    add_run_arguments(run)
    run.set_defaults(action=_cmd_run)
    _add_quarantine_commands(commands)
