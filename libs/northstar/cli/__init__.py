"""The `northstar` command: run jobs, the demo, the benchmarks, and check configuration.

This module only assembles: each command group lives beside the code it drives (`<package>/commands.py`), and
the errors a user can fix, with their exit codes, are defined in northstar.errors. The spark-submit entry points
in jobs/ call `main`, so a job behaves the same whether it is started as `northstar ...` or `spark-submit
jobs/<job>.py ...`.
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path
from types import ModuleType
from typing import Any

from northstar import catalog
from northstar.config import conf_dir_set_to
from northstar.dev import commands as dev
from northstar.errors import EXIT_CONFIG, EXIT_DRIFT, EXIT_FAILED, guarded
from northstar.extract import commands as extract
from northstar.gold import commands as gold
from northstar.models import commands as models
from northstar.observability import commands as observability
from northstar.orchestration import commands as orchestration
from northstar.privacy import commands as privacy
from northstar.reconciliation import commands as reconciliation
from northstar.silver import commands as silver
from northstar.streaming import commands as streaming
from northstar.warehouse import commands as warehouse

__all__ = ["EXIT_CONFIG", "EXIT_DRIFT", "EXIT_FAILED", "build_parser", "main"]

# The command groups, in the order `northstar --help` lists them.
COMMAND_GROUPS: tuple[ModuleType, ...] = (
    silver,  # run, quarantine
    extract,  # extract, plan-backfill
    models,  # model
    gold,  # gold
    warehouse,  # publish
    reconciliation,  # reconcile, investigate, correct, rollback, reproduce
    streaming,  # stream
    privacy,  # privacy
    observability,  # status, ledger
    orchestration,  # validate-conf, package, coordinate-commits
    catalog,  # tables
    dev,  # demo, bench*, produce-events
)


# `stream run` publishes its tables through the warehouse layer, which sits above the streaming one.
streaming.use_publisher(warehouse.stream_publisher)


class CommandParser(argparse.ArgumentParser):
    """Every command (and subcommand) takes `--conf-dir`: the conf folder for this invocation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--conf-dir",
            type=Path,
            default=argparse.SUPPRESS,
            help="configuration folder (default: $NORTHSTAR_CONF_DIR or ./conf)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="northstar", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, choose the conf folder once, run the command."""
    args = build_parser().parse_args(argv)
    chosen = getattr(args, "conf_dir", None)
    with conf_dir_set_to(chosen) if chosen else nullcontext():
        return guarded(args.action, args)
