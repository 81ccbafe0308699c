"""The `northstar` command: run jobs, the demo, the benchmark, and check configuration.

The spark-submit entry points in jobs/ call `job_main`, so a job behaves the same whether it is started
as `northstar run ...` or `spark-submit jobs/<job>.py ...`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from northstar.config import ConfigError, list_sources, load_env, load_source
from northstar.extract import ExtractError
from northstar.quality.errors import CorrectionError
from northstar.quality.evaluate import QualityCheckFailed
from northstar.transforms.schema import SchemaDriftError

EXIT_FAILED, EXIT_CONFIG, EXIT_DRIFT = 1, 2, 3


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="source name: conf/sources/<source>.yaml")
    parser.add_argument("--table", action="append", help="only this table (repeatable); default: all tables")
    parser.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    parser.add_argument(
        "--conf-dir", type=Path, help="configuration folder (default: $NORTHSTAR_CONF_DIR or ./conf)"
    )
    parser.add_argument(
        "--full-refresh", action="store_true", help="silver: rebuild from all of bronze (replay)"
    )
    parser.add_argument(
        "--max-files", type=int, help="bronze: take at most this many landing files per table"
    )


def _run_layers(args: argparse.Namespace, layers: tuple[str, ...]) -> int:
    from northstar.pipeline import run_source
    from northstar.report import run_report
    from northstar.spark import get_spark

    env = load_env(args.env, args.conf_dir)
    source = load_source(args.source, args.conf_dir)
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


def _guarded(action, args: argparse.Namespace) -> int:
    """Turn the errors a user can fix into a clear message and an exit code, not a stack trace."""
    try:
        return action(args)
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except SchemaDriftError as err:
        print(f"stopped: {err}", file=sys.stderr)
        return EXIT_DRIFT
    except ExtractError as err:
        print(f"extract failed: {err}", file=sys.stderr)
        return EXIT_FAILED
    except QualityCheckFailed as err:
        print(f"stopped by a quality check: {err}", file=sys.stderr)
        return EXIT_FAILED
    except CorrectionError as err:
        print(str(err), file=sys.stderr)
        return EXIT_CONFIG


def job_main(layers: tuple[str, ...], argv: list[str] | None = None, description: str | None = None) -> int:
    """Entry point of the spark-submit jobs in jobs/."""
    parser = argparse.ArgumentParser(description=description)
    _add_job_arguments(parser)
    args = parser.parse_args(argv)
    return _guarded(lambda a: _run_layers(a, layers), args)


def _add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="source name: conf/sources/<source>.yaml")
    parser.add_argument("--table", action="append", help="only this table (repeatable); default: all tables")
    parser.add_argument("--start", help="explicit window start, ISO 8601 (UTC if no offset); with --end")
    parser.add_argument("--end", help="explicit window end (exclusive), ISO 8601; with --start")
    parser.add_argument(
        "--full-refresh", action="store_true", help="re-read everything, not from the watermark"
    )
    parser.add_argument(
        "--max-requests", type=int, help="REST APIs: stop cleanly after this many requests (resumable)"
    )
    parser.add_argument(
        "--lookback-hours",
        type=float,
        help="REST APIs: re-read this far behind the watermark instead of the conf's lookback_hours "
        "(cheap hourly syncs with 1, a daily sweep with the default 24: docs/backfill.md)",
    )
    parser.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    parser.add_argument(
        "--conf-dir", type=Path, help="configuration folder (default: $NORTHSTAR_CONF_DIR or ./conf)"
    )


def _cmd_extract(args: argparse.Namespace) -> int:
    """Land new source rows into the landing zone: the source's `api` section (REST, no Spark needed) or
    its `jdbc` section (PostgreSQL over Spark JDBC)."""
    env = load_env(args.env, args.conf_dir)
    source = load_source(args.source, args.conf_dir)
    if source.api is not None:
        from northstar.extract.rest import run_extract as run_api_extract

        if args.lookback_hours is not None:  # e.g. hourly syncs read 1 h, a daily sweep the conf's 24 h
            api = source.api.model_copy(update={"lookback_hours": args.lookback_hours})
            source = source.model_copy(update={"api": api})

        report = run_api_extract(
            env,
            source,
            tables=args.table,
            start=args.start,
            end=args.end,
            full_refresh=args.full_refresh,
            max_requests=args.max_requests,
        )
        print(report.format())
        return 0
    if source.jdbc is None:
        raise ConfigError(
            f"source {source.name} has neither an api nor a jdbc section: nothing to extract "
            "(file sources land by themselves; run `northstar run --source ...`)"
        )
    from datetime import datetime

    from northstar.extract.jdbc import run_extract as run_jdbc_extract
    from northstar.spark import get_spark

    try:
        start, end = (datetime.fromisoformat(v) if v else None for v in (args.start, args.end))
    except ValueError as err:
        raise ConfigError(f"--start/--end: {err} (write e.g. 2026-11-01T00:00:00Z)") from None
    spark = get_spark(env, app_name=f"northstar-extract-{source.name}")
    results = run_jdbc_extract(spark, env, source, args.table, start, end, args.full_refresh)
    for r in results:
        print(
            f"extract {r.source}.{r.table} [{r.mode}] window {r.window_start or 'begin'} .. {r.window_end}: "
            f"{r.rows} rows in {r.queries} queries (max {r.max_rows_per_query}/query), "
            f"{len(r.files_written)} files written, {len(r.files_unchanged)} unchanged"
        )
    return 0


def extract_main(argv: list[str] | None = None, description: str | None = None) -> int:
    """Entry point of jobs/extract.py."""
    parser = argparse.ArgumentParser(description=description)
    _add_extract_arguments(parser)
    return _guarded(_cmd_extract, parser.parse_args(argv))


def _cmd_run(args: argparse.Namespace) -> int:
    layers = ("bronze", "silver") if args.layer == "all" else (args.layer,)
    return _run_layers(args, layers)


def _cmd_demo(args: argparse.Namespace) -> int:
    from northstar.demo import run_demo

    print(
        run_demo(args.data_dir, orders=args.orders, files=args.files, seed=args.seed, conf_dir=args.conf_dir)
    )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from northstar.bench import run_bench

    print(run_bench(args.out, records=args.records, files=args.files))
    return 0


def _cmd_bench_merge(args: argparse.Namespace) -> int:
    from northstar.bench import run_merge_bench

    print(run_merge_bench(args.out, sizes=tuple(args.sizes), changes=args.changes))
    return 0


def _cmd_bench_extract(args: argparse.Namespace) -> int:
    from northstar.extract.bench import run_extract_bench

    print(run_extract_bench(args.out, orders=args.orders, page_size=args.page_size))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    problems = []
    for name in list_sources(args.conf_dir):
        try:
            source = load_source(name, args.conf_dir)
            print(f"ok  source {name}: tables {', '.join(source.tables)}")
        except ConfigError as err:
            problems.append(str(err))
    from northstar.models.spec import list_models, load_model

    for name in list_models(args.conf_dir):
        try:
            model = load_model(name, args.conf_dir)
            print(f"ok  model {name}: inputs {', '.join(f'{i.source}.{i.table}' for i in model.inputs)}")
        except ConfigError as err:
            problems.append(str(err))
    from northstar.quality.spec import list_checked_tables, load_checks

    for name in list_checked_tables(args.conf_dir):
        try:
            checks = load_checks(name, args.conf_dir)
            print(f"ok  checks {name}: {', '.join(c.name for c in checks.checks)}")
        except ConfigError as err:
            problems.append(str(err))
    from northstar.quality.recon_spec import list_recons, load_recon

    for name in list_recons(args.conf_dir):
        try:
            recon = load_recon(name, args.conf_dir)
            print(f"ok  reconciliation {name}: comparisons {', '.join(recon.comparisons)}")
        except ConfigError as err:
            problems.append(str(err))
    for env_name in args.env or ["local"]:
        try:
            load_env(env_name, args.conf_dir)
            print(f"ok  env {env_name}")
        except ConfigError as err:
            problems.append(str(err))
    if args.promotion:
        from northstar.orchestration.promotion import check_promotion
        from northstar.orchestration.spec import load_pipelines

        names = [n.strip() for n in args.promotion.split(",") if n.strip()]
        try:
            load_pipelines(args.conf_dir)
            found = check_promotion(names, args.conf_dir)
            problems += found
            if not found:
                print(f"ok  promotion {' -> '.join(names)}")
        except ConfigError as err:
            problems.append(str(err))
    for problem in problems:
        print(problem, file=sys.stderr)
    return EXIT_CONFIG if problems else 0


def _cmd_status(args: argparse.Namespace) -> int:
    from northstar.observability.commands import status

    return status(args)


def _cmd_package(args: argparse.Namespace) -> int:
    from northstar.orchestration.package import package_command

    return package_command(args)


def _cmd_ledger(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from northstar import ledger
    from northstar.spark import get_spark

    env = load_env(args.env, args.conf_dir)
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


def _cmd_tables(args: argparse.Namespace) -> int:
    from northstar.catalog import table_paths

    env = load_env(args.env, args.conf_dir)
    for name, path in table_paths(env, args.conf_dir).items():
        print(f"{name:<40}{path}")
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    from northstar.models.runner import run_models
    from northstar.models.spec import list_models, load_model
    from northstar.report import run_report
    from northstar.secrets import SecretError, resolve
    from northstar.spark import get_spark

    env = load_env(args.env, args.conf_dir)
    for name in list_models(args.conf_dir) if args.name == "all" else [args.name]:
        spec = load_model(name, args.conf_dir)  # a bad file or an unset key stops before Spark starts
        if spec.customer_token_key:
            try:
                resolve(spec.customer_token_key)
            except SecretError as err:
                raise ConfigError(f"conf/models/{name}.yaml customer_token_key: {err}") from None
    spark = get_spark(env, app_name=f"northstar-model-{args.name}")
    print(
        run_report(run_models(spark, env, args.name, conf_dir=args.conf_dir, full_refresh=args.full_refresh))
    )
    return 0


def _source_table(value: str, conf_dir) -> tuple:
    """`<source>.<table>` -> (SourceSpec, table), with an error naming what exists."""
    source_name, _, table = value.partition(".")
    if not table:
        raise ConfigError(f"--table {value!r}: write <source>.<table>, e.g. marketplace.orders")
    source = load_source(source_name, conf_dir)
    if table not in source.tables:
        raise ConfigError(
            f"--table {value}: source {source_name} has no table {table} (its tables: {', '.join(source.tables)})"
        )
    return source, table


def _cmd_quarantine_list(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from northstar import delta
    from northstar.spark import get_spark

    env = load_env(args.env, args.conf_dir)
    sources = (
        [load_source(args.source, args.conf_dir)]
        if args.source
        else [load_source(n, args.conf_dir) for n in list_sources(args.conf_dir)]
    )
    spark = get_spark(env, app_name="northstar-quarantine-list")
    frames = []
    for source in sources:
        for table in source.tables:
            path = env.quarantine_path(source.name, table)
            if delta.table_exists(spark, path):
                frame = spark.read.format("delta").load(path)
                if "check_name" not in frame.columns:  # a table written before checks existed
                    frame = frame.withColumn("check_name", F.lit(None).cast("string"))
                if "replayed_run_id" not in frame.columns:
                    frame = frame.withColumn("replayed_run_id", F.lit(None).cast("string"))
                frames.append(frame.withColumn("table", F.lit(f"{source.name}.{table}")))
    if not frames:
        print("no quarantine tables yet")
        return 0
    from functools import reduce

    rows = reduce(lambda a, b: a.unionByName(b), frames)
    rows.groupBy("table", "layer", "reason", "check_name").agg(
        F.count("*").alias("rows"),
        F.count_if(F.col("replayed_run_id").isNotNull()).alias("replayed"),
        F.max("quarantined_at").alias("last_quarantined_at"),
    ).orderBy("table", "layer", "reason", "check_name").show(args.limit, truncate=False)
    return 0


def _cmd_quarantine_replay(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from northstar.quality.replay import replay
    from northstar.report import run_report
    from northstar.spark import get_spark

    env = load_env(args.env, args.conf_dir)
    source, table = _source_table(args.table, args.conf_dir)
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError as err:
            raise ConfigError(f"--since: {err} (write e.g. 2026-11-01T00:00:00Z)") from None
        since = since.astimezone(UTC).replace(tzinfo=None) if since.tzinfo else since
    spark = get_spark(env, app_name=f"northstar-quarantine-replay-{source.name}-{table}")
    entry = replay(
        spark, env, source, table, check=args.check, run_id=args.run_id, since=since, conf_dir=args.conf_dir
    )
    print(run_report([entry]))
    return 0


def _cmd_gold(args: argparse.Namespace) -> int:
    from northstar.gold.runner import run_gold
    from northstar.report import run_report
    from northstar.spark import get_spark

    env = load_env(args.env, args.conf_dir)
    spark = get_spark(env, app_name="northstar-gold")
    print(run_report(run_gold(spark, env, full_refresh=args.full_refresh)))
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from northstar.warehouse.command import publish_command

    return publish_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="northstar", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run bronze and/or silver for a source")
    _add_job_arguments(run)
    run.add_argument("--layer", choices=["bronze", "silver", "all"], default="all")
    run.set_defaults(action=_cmd_run)

    extract = commands.add_parser(
        "extract", help="extract a source (REST API or PostgreSQL) into landing (then: northstar run)"
    )
    _add_extract_arguments(extract)
    extract.set_defaults(action=_cmd_extract)

    demo = commands.add_parser("demo", help="partner API simulator -> extract -> bronze + silver, locally")
    demo.add_argument("--data-dir", type=Path, default=Path("data/demo"), help="reset and used by the demo")
    demo.add_argument("--orders", type=int, default=2000)
    demo.add_argument("--files", type=int, default=6, help="unused: the demo now extracts through the API")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--conf-dir", type=Path)
    demo.set_defaults(action=_cmd_demo)

    bench = commands.add_parser("bench", help="bronze and silver throughput against a plain-Spark baseline")
    bench.add_argument("--records", type=int, default=200_000, help="orders to generate (default 200000)")
    bench.add_argument("--files", type=int, default=8)
    bench.add_argument("--out", type=Path, default=Path("bench-data"), help="working folder (reset)")
    bench.set_defaults(action=_cmd_bench)

    bench_merge = commands.add_parser(
        "bench-merge", help="MERGE cost vs table size, with and without pruning"
    )
    bench_merge.add_argument("--sizes", type=int, nargs="+", default=[500_000, 2_000_000])
    bench_merge.add_argument("--changes", type=int, default=20_000)
    bench_merge.add_argument("--out", type=Path, default=Path("bench-data/merge"))
    bench_merge.set_defaults(action=_cmd_bench_merge)

    bench_extract = commands.add_parser(
        "bench-extract", help="API landing throughput vs plain requests + gzip"
    )
    bench_extract.add_argument("--orders", type=int, default=3000)
    bench_extract.add_argument("--page-size", type=int, default=100)
    bench_extract.add_argument(
        "--out", type=Path, default=Path("bench-data/extract"), help="working folder (reset)"
    )
    bench_extract.set_defaults(action=_cmd_bench_extract)

    validate = commands.add_parser("validate-conf", help="check every source file and the given env files")
    validate.add_argument("--conf-dir", type=Path)
    validate.add_argument("--env", action="append", help="env to check (repeatable; default: local)")
    validate.add_argument(
        "--promotion",
        help="envs in promotion order, e.g. dev,staging,prod: each must have what the one before has",
    )
    validate.set_defaults(action=_cmd_validate)

    status = commands.add_parser("status", help="freshness and lag per table from the run ledger")
    status.add_argument("--env", default="local")
    status.add_argument("--conf-dir", type=Path)
    status.add_argument("--source")
    status.add_argument(
        "--publish", action="store_true", help="also send metrics to CloudWatch, breaches to SNS"
    )
    status.set_defaults(action=_cmd_status)

    package = commands.add_parser(
        "package", help="build the EMR Serverless release (venv-pack archive, jobs, conf, jars) and upload it"
    )
    package.add_argument("--env", help="upload to this env's emr.artifacts (default: build only)")
    package.add_argument("--conf-dir", type=Path)
    package.add_argument("--out", type=Path, default=Path("dist/release"), help="build folder (reset)")
    package.add_argument("--version", help="release version (default: git describe --always --dirty)")
    package.add_argument(
        "--requirements", type=Path, default=Path("requirements.lock"), help="what goes into the venv"
    )
    package.set_defaults(action=_cmd_package)

    show = commands.add_parser("ledger", help="show recent runs from the run ledger")
    show.add_argument("--env", default="local")
    show.add_argument("--conf-dir", type=Path)
    show.add_argument("--source")
    show.add_argument("--limit", type=int, default=20)
    show.set_defaults(action=_cmd_ledger)

    tables = commands.add_parser("tables", help="list table names and their locations")
    tables.add_argument("--env", default="local")
    tables.add_argument("--conf-dir", type=Path)
    tables.set_defaults(action=_cmd_tables)

    from northstar import plan_backfill

    backfill = commands.add_parser(
        "plan-backfill", help="requests, duration and window split of a partner-API backfill"
    )
    plan_backfill.add_arguments(backfill)
    backfill.set_defaults(action=plan_backfill.command)

    model = commands.add_parser(
        "model", help="build the conformed models (silver.orders, refunds, payments, shipments)"
    )
    model.add_argument("--name", required=True, help="orders | refunds | all (conf/models/<name>.yaml)")
    model.add_argument("--env", default="local")
    model.add_argument("--conf-dir", type=Path)
    model.add_argument("--full-refresh", action="store_true", help="rebuild from the whole silver input")
    model.set_defaults(action=_cmd_model)

    quarantined = commands.add_parser(
        "quarantine", help="quarantined records: counts, and replay after a fix"
    )
    quarantine_commands = quarantined.add_subparsers(dest="quarantine_command", required=True)
    listing = quarantine_commands.add_parser(
        "list", help="quarantined rows by table, layer, reason and check"
    )
    listing.add_argument("--source", help="only this source")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--env", default="local")
    listing.add_argument("--conf-dir", type=Path)
    listing.set_defaults(action=_cmd_quarantine_list)
    replaying = quarantine_commands.add_parser(
        "replay", help="re-process quarantined silver records through the current rules (idempotent)"
    )
    replaying.add_argument("--table", required=True, help="<source>.<table>, e.g. marketplace.orders")
    replaying.add_argument("--check", help="only records quarantined by this check (conf/quality/)")
    replaying.add_argument("--run-id", help="only records quarantined by this run")
    replaying.add_argument("--since", help="only records quarantined at or after this time (ISO 8601, UTC)")
    replaying.add_argument("--env", default="local")
    replaying.add_argument("--conf-dir", type=Path)
    replaying.set_defaults(action=_cmd_quarantine_replay)
    from northstar.quality.commands import add_commands

    add_commands(commands)  # reconcile, investigate, correct, rollback, reproduce (docs/reconciliation.md)
    gold = commands.add_parser("gold", help="build the gold facts and the daily revenue mart (docs/gold.md)")
    gold.add_argument("--env", default="local")
    gold.add_argument("--conf-dir", type=Path)
    gold.add_argument("--full-refresh", action="store_true", help="rebuild every day partition")
    gold.set_defaults(action=_cmd_gold)

    publish = commands.add_parser(
        "publish", help="publish gold to Snowflake and reconcile (docs/snowflake.md)"
    )
    publish.add_argument("--env", default="local")
    publish.add_argument("--conf-dir", type=Path)
    publish.add_argument(
        "--version",
        action="append",
        default=[],
        metavar="TABLE=N",
        help="gold Delta version to publish (default: latest)",
    )
    publish.add_argument("--run-id", help="reuse a run id to retry the same publish (default: a new one)")
    publish.set_defaults(action=_cmd_publish)
    from northstar.streaming.commands import add_commands as add_streaming_commands

    add_streaming_commands(commands)  # stream run/replay/catch-up, privacy delete/process, produce-events
    from northstar.orchestration.coordinated_commits import add_commands as add_coordination_commands

    add_coordination_commands(commands)  # coordinate-commits (docs/concurrent-writers.md)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _guarded(args.action, args)


if __name__ == "__main__":
    sys.exit(main())
