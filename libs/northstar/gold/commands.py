"""`northstar gold`: build the gold facts, the customer dimension and the daily revenue mart (docs/gold.md)."""

from __future__ import annotations

import argparse

from northstar.config import load_env


def _cmd_gold(args: argparse.Namespace) -> int:
    from northstar.gold.runner import run_gold
    from northstar.report import run_report
    from northstar.spark import get_spark

    env = load_env(args.env)
    spark = get_spark(env, app_name="northstar-gold")
    print(run_report(run_gold(spark, env, full_refresh=args.full_refresh)))
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`northstar gold`."""
    gold = commands.add_parser("gold", help="build the gold facts and the daily revenue mart (docs/gold.md)")
    gold.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    gold.add_argument("--full-refresh", action="store_true", help="rebuild every day partition")
    gold.set_defaults(action=_cmd_gold)
