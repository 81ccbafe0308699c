"""`northstar extract` (a source's REST API or PostgreSQL tables -> landing) and `northstar plan-backfill`."""

from __future__ import annotations

import argparse
from datetime import date, datetime
from typing import Any

from northstar.config import ConfigError, EnvConfig, SourceSpec, load_env, load_source
from northstar.extract.backfill_plan import BackfillInputs, api_defaults, plan, render


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `northstar extract` (and of jobs/extract.py)."""
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


def _cmd_extract(args: argparse.Namespace) -> int:
    """Land new source rows into the landing zone: the source's `api` section (REST, no Spark needed) or
    its `jdbc` section (PostgreSQL over Spark JDBC)."""
    env = load_env(args.env)
    source = load_source(args.source)
    if source.api is not None:
        return _extract_api(env, source, args)
    if source.jdbc is None:
        raise ConfigError(
            f"source {source.name} has neither an api nor a jdbc section: nothing to extract "
            "(file sources land by themselves; run `northstar run --source ...`)"
        )
    return _extract_jdbc(env, source, args)


def _extract_api(env: EnvConfig, source: SourceSpec, args: argparse.Namespace) -> int:
    from northstar.extract.rest import run_extract

    assert source.api is not None  # _cmd_extract sends only sources with an api section here
    if args.lookback_hours is not None:  # e.g. hourly syncs read 1 h, a daily sweep the conf's 24 h
        api = source.api.model_copy(update={"lookback_hours": args.lookback_hours})
        source = source.model_copy(update={"api": api})
    report = run_extract(
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


def _extract_jdbc(env: EnvConfig, source: SourceSpec, args: argparse.Namespace) -> int:
    from northstar.extract.jdbc import run_extract
    from northstar.spark import get_spark

    try:
        start, end = (datetime.fromisoformat(v) if v else None for v in (args.start, args.end))
    except ValueError as err:
        raise ConfigError(f"--start/--end: {err} (write e.g. 2026-11-01T00:00:00Z)") from None
    spark = get_spark(env, app_name=f"northstar-extract-{source.name}")
    for r in run_extract(spark, env, source, args.table, start, end, args.full_refresh):
        print(
            f"extract {r.source}.{r.table} [{r.mode}] window {r.window_start or 'begin'} .. {r.window_end}: "
            f"{r.rows} rows in {r.queries} queries (max {r.max_rows_per_query}/query), "
            f"{len(r.files_written)} files written, {len(r.files_unchanged)} unchanged"
        )
    return 0


def _add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """The `northstar plan-backfill` flags."""
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="first day (YYYY-MM-DD, UTC)")
    parser.add_argument("--end", required=True, type=date.fromisoformat, help="last day, inclusive")
    parser.add_argument(
        "--volume",
        action="append",
        required=True,
        metavar="ENDPOINT=RECORDS_PER_DAY",
        help="records/day per endpoint, repeatable: --volume orders=8000000 --volume refunds=1000000",
    )
    parser.add_argument("--page-size", type=int, help="records per page (default: the source's api: section)")
    parser.add_argument("--rate-limit", type=int, help="requests/hour (default: the source's api: section)")
    parser.add_argument("--lookback-hours", type=int, help="hours each sync re-reads (default: api: or 24)")
    parser.add_argument("--sync-every-hours", type=int, default=1, help="incremental sync period (default 1)")
    parser.add_argument(
        "--sweep-every-hours",
        type=int,
        help="syncs read only their own interval; one lookback sweep every N hours (default: every sync)",
    )
    parser.add_argument("--run-every-hours", type=int, default=24, help="a backfill run starts this often")
    parser.add_argument("--headroom", type=float, default=0.0, help="share of the limit held back, e.g. 0.1")
    parser.add_argument("--deadline-days", type=float, help="the backfill must finish within this many days")
    parser.add_argument(
        "--begin", type=datetime.fromisoformat, help="when the first run starts (UTC), to date the runs"
    )
    parser.add_argument("--source", help="read defaults from conf/sources/<source>.yaml's api: section")
    parser.add_argument("--all-windows", action="store_true", help="list every window, not the first/last 5")


def inputs_from_args(args: argparse.Namespace) -> BackfillInputs:
    """Flags first, then the source's `api:` section, then built-in defaults (lookback 24 h)."""
    defaults = api_defaults(args.source) if args.source else {}
    volumes = {}
    for item in args.volume:
        endpoint, sep, value = item.partition("=")
        try:
            volumes[endpoint.strip()] = int(value.replace("_", "").replace(",", ""))
        except ValueError:
            sep = ""
        if not sep or not endpoint.strip():
            raise ConfigError(f"--volume {item!r}: write ENDPOINT=RECORDS_PER_DAY, e.g. orders=8000000")
    values: dict[str, Any] = {
        "page_size": args.page_size or defaults.get("page_size"),
        "rate_limit_per_hour": args.rate_limit or defaults.get("rate_limit_per_hour"),
        "lookback_hours": args.lookback_hours
        if args.lookback_hours is not None
        else defaults.get("lookback_hours", 24),
    }
    missing = [f"--{k.replace('_per_hour', '').replace('_', '-')}" for k, v in values.items() if v is None]
    if missing:
        where = f" and conf/sources/{args.source}.yaml has no api: value for it" if args.source else ""
        raise ConfigError(f"give {' and '.join(missing)}{where}")
    try:
        return BackfillInputs(
            start=args.start,
            end=args.end,
            volumes=volumes,
            sync_every_hours=args.sync_every_hours,
            sweep_every_hours=args.sweep_every_hours,
            run_every_hours=args.run_every_hours,
            headroom=args.headroom,
            deadline_days=args.deadline_days,
            begin=args.begin,
            **values,
        )
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"plan-backfill: {err}") from None


def _cmd_plan_backfill(args: argparse.Namespace) -> int:
    """`northstar plan-backfill`: print the plan."""
    print(render(plan(inputs_from_args(args)), all_windows=args.all_windows))
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`northstar extract` and `northstar plan-backfill`."""
    extract = commands.add_parser(
        "extract", help="extract a source (REST API or PostgreSQL) into landing (then: northstar run)"
    )
    add_extract_arguments(extract)
    extract.set_defaults(action=_cmd_extract)
    backfill = commands.add_parser(
        "plan-backfill", help="requests, duration and window split of a partner-API backfill"
    )
    _add_plan_arguments(backfill)
    backfill.set_defaults(action=_cmd_plan_backfill)
