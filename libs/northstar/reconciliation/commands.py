"""The quality subcommands of `northstar`: reconcile, investigate, correct, rollback, reproduce.

Each parses its arguments, opens the env's Spark session and calls the library; `cli.py` registers them.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from northstar.config import ConfigError, EnvConfig, load_env
from northstar.reconciliation.spec import ReconSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date; write YYYY-MM-DD, e.g. 2026-11-24"
        ) from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    parser.add_argument("--spec", default="daily", help="conf/reconciliation/<spec>.yaml (default: daily)")


def _audit(parser: argparse.ArgumentParser) -> None:
    from northstar.reconciliation.corrections import default_who

    parser.add_argument("--who", default=default_who(), help="who makes the change (default: the OS user)")
    parser.add_argument("--why", help="why, in words an auditor understands (required)")
    parser.add_argument("--ticket", help="the change ticket, e.g. FIN-1234 (required)")


def _session(args: argparse.Namespace, app: str) -> tuple[EnvConfig, ReconSpec, SparkSession]:
    from northstar.reconciliation.spec import load_recon
    from northstar.spark import get_spark

    env = load_env(args.env)
    spec = load_recon(args.spec)
    return env, spec, get_spark(env, app_name=f"northstar-{app}")


def _location(env: EnvConfig, spec: ReconSpec, name: str) -> str:
    """A table of the reconciliation spec, else of the registry."""
    if name in spec.tables:
        return spec.tables[name].location(env, name)
    from northstar.lake import tables

    return tables.lookup(name).path(env)


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from northstar.reconciliation import report_html
    from northstar.reconciliation.reconcile import read_run, run_reconciliation

    env, spec, spark = _session(args, "reconcile")
    result = run_reconciliation(spark, env, spec, args.date, args.days, args.run_id)
    rows = [r.asDict() for r in read_run(spark, env, result.run_id).collect()]
    for r in sorted(rows, key=lambda r: (r["status"] == "ok", r["comparison"], r["business_date"])):
        if r["status"] == "not_run":
            print(f"NOT RUN {r['comparison']}: {r['detail']}")
        elif r["status"] != "ok":
            print(
                f"BREACH {r['comparison']} {r['business_date']} {r['currency']} {r['measure']}: left "
                f"{r['left_value']} right {r['right_value']} variance {r['variance_pct']}% "
                f"(threshold {r['threshold_pct']}%) {r['status']}"
            )
    print(
        f"reconcile {result.run_id}: {result.rows} figures, {result.breaches} breaches, {result.not_run} "
        f"comparisons not run (ops.reconciliation v{result.version})"
    )
    if args.report:
        title = f"Reconciliation {spec.name}: {args.date} ({args.days} day(s))"
        args.report.write_text(report_html.render(rows, title))
        print(f"report: {args.report}")
    return 1 if (result.breaches or result.not_run) and args.fail_on_breach else 0


def _cmd_investigate(args: argparse.Namespace) -> int:
    from northstar.reconciliation.investigate import investigate

    env, spec, spark = _session(args, "investigate")
    found = investigate(spark, env, spec, args.table, args.date, args.max_versions)
    print(found.as_json() if args.json else found.format())
    return 0


def _assignments(values: list[str] | None) -> dict[str, str]:
    out = {}
    for item in values or []:
        column, sep, expression = item.partition("=")
        if not sep or not column.strip() or not expression.strip():
            raise ConfigError(
                f"--set {item!r}: write COLUMN=SQL_EXPRESSION, e.g. --set \"status='cancelled'\""
            )
        out[column.strip()] = expression.strip()
    return out


def _cmd_correct(args: argparse.Namespace) -> int:
    from northstar.reconciliation.corrections import correct

    assignments = _assignments(args.set)
    if not assignments and not args.delete:
        raise ConfigError("correct: pass --set COLUMN=EXPR (an UPDATE) or --delete (a DELETE) with --where")
    env, spec, spark = _session(args, "correct")
    done = correct(
        spark,
        env,
        table_name=args.table,
        path=_location(env, spec, args.table),
        where=args.where,
        assignments=assignments or None,
        who=args.who,
        why=args.why,
        ticket=args.ticket,
    )
    print(
        f"{done.action} {done.table_name}: {done.rows_affected} row(s), version {done.version_before} -> "
        f"{done.version_after}; logged in ops.corrections as {done.correction_id}"
    )
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from northstar.reconciliation.corrections import rollback

    env, spec, spark = _session(args, "rollback")
    done = rollback(
        spark,
        env,
        table_name=args.table,
        path=_location(env, spec, args.table),
        to_version=args.to_version,
        who=args.who,
        why=args.why,
        ticket=args.ticket,
    )
    print(
        f"rollback {done.table_name} to version {args.to_version}: {done.rows_affected} row(s) changed, version "
        f"{done.version_before} -> {done.version_after}; logged in ops.corrections as {done.correction_id}"
    )
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from northstar.reconciliation.corrections import reproduce

    env, spec, spark = _session(args, "reproduce")
    if args.table not in spec.tables:
        raise ConfigError(
            f"reproduce: {args.table} has no profile under tables: in conf/reconciliation/{spec.name}.yaml"
        )
    path = _location(env, spec, args.table)
    for r in reproduce(spark, path, args.version, spec.tables[args.table], args.date).collect():
        print(
            f"{args.table}@v{args.version} {r['business_date']} {r['currency']}: count {r['count']} sum {r['sum']}"
        )
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register the quality subcommands on the `northstar` parser."""
    reconcile = commands.add_parser(
        "reconcile", help="daily reconciliation into ops.reconciliation (+ HTML report)"
    )
    reconcile.add_argument("--date", type=_date, required=True, help="last business date, YYYY-MM-DD")
    reconcile.add_argument("--days", type=int, default=1, help="business dates ending at --date (default 1)")
    reconcile.add_argument(
        "--run-id", help="default reconcile-<spec>-<date>-<days>d: a retry replaces its rows"
    )
    reconcile.add_argument("--report", type=Path, help="write the HTML report here")
    reconcile.add_argument(
        "--fail-on-breach",
        action="store_true",
        help="exit 1 when any figure breaches or a comparison could not run (an input table is missing)",
    )
    _common(reconcile)
    reconcile.set_defaults(action=_cmd_reconcile)

    inv = commands.add_parser(
        "investigate", help="evidence and root-cause class of a mismatch in a table on a date"
    )
    inv.add_argument("table", help="a table under tables: in conf/reconciliation/<spec>.yaml")
    inv.add_argument("--date", type=_date, required=True)
    inv.add_argument("--json", action="store_true", help="print the evidence as JSON")
    inv.add_argument("--max-versions", type=int, default=30, help="newest Delta versions to inspect")
    _common(inv)
    inv.set_defaults(action=_cmd_investigate)

    cor = commands.add_parser("correct", help="audited UPDATE/DELETE of a table (logged in ops.corrections)")
    cor.add_argument("--table", required=True)
    cor.add_argument("--where", required=True, help="SQL condition of the rows to correct")
    cor.add_argument("--set", action="append", help="COLUMN=SQL_EXPRESSION (repeatable): an UPDATE")
    cor.add_argument("--delete", action="store_true", help="delete the rows instead")
    _audit(cor)
    _common(cor)
    cor.set_defaults(action=_cmd_correct)

    rb = commands.add_parser("rollback", help="audited Delta RESTORE of a table to an earlier version")
    rb.add_argument("--table", required=True)
    rb.add_argument("--to-version", type=int, required=True)
    _audit(rb)
    _common(rb)
    rb.set_defaults(action=_cmd_rollback)

    rep = commands.add_parser(
        "reproduce", help="a table's daily figures as of a recorded version (time travel)"
    )
    rep.add_argument("--table", required=True)
    rep.add_argument("--version", type=int, required=True)
    rep.add_argument("--date", type=_date, help="only this business date")
    _common(rep)
    rep.set_defaults(action=_cmd_reproduce)
