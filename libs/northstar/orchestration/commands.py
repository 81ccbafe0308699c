"""`northstar cycle` (one source's extract -> bronze -> silver -> models -> gold -> publish in one session),
`northstar validate-conf` (every conf file, and the promotion check), `northstar package` (the EMR Serverless
release) and `northstar coordinate-commits` (tables -> Delta's DynamoDB commit coordinator)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from northstar.config import ConfigError, ConfKind, conf_dir, load_env, load_source
from northstar.errors import EXIT_CONFIG


def _conf_files() -> tuple[tuple[ConfKind[Any], str, Callable[[Any], str]], ...]:
    """What validate-conf checks, and what it prints of each valid file (imported here: the model specs import
    Spark, which `northstar --help` does not need)."""
    from northstar.config.source import SOURCES
    from northstar.models.spec import MODELS
    from northstar.quality.spec import CHECKS
    from northstar.reconciliation.spec import RECONCILIATIONS

    return (
        (SOURCES, "source", lambda s: f"tables {', '.join(s.tables)}"),
        (MODELS, "model", lambda m: f"inputs {', '.join(f'{i.source}.{i.table}' for i in m.inputs)}"),
        (CHECKS, "checks", lambda c: ", ".join(check.name for check in c.checks)),
        (RECONCILIATIONS, "reconciliation", lambda r: f"comparisons {', '.join(r.comparisons)}"),
    )


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO-8601 time, e.g. 2026-11-01T00:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cmd_cycle(args: argparse.Namespace) -> int:
    from northstar.orchestration.cycle import run_cycle
    from northstar.spark import get_spark

    if (args.start is None) != (args.end is None):
        raise ConfigError("give both --start and --end for an explicit window, or neither")
    env = load_env(args.env)
    source = load_source(args.source)
    spark = get_spark(env, app_name=f"northstar-cycle-{source.name}")
    window = (args.start, args.end) if args.start is not None else None
    report = run_cycle(spark, env, source, window=window, publish=not args.no_publish)
    print(report.format())
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    problems = []
    for kind, what, describe in _conf_files():
        for name in kind.names():
            try:
                print(f"ok  {what} {name}: {describe(kind.load(name))}")
            except ConfigError as err:
                problems.append(str(err))
    for env_name in args.env or ["local"]:
        try:
            load_env(env_name)
            print(f"ok  env {env_name}")
        except ConfigError as err:
            problems.append(str(err))
    if args.promotion:
        problems += _promotion_problems(args.promotion)
    for problem in problems:
        print(problem, file=sys.stderr)
    return EXIT_CONFIG if problems else 0


def _promotion_problems(order: str) -> list[str]:
    from northstar.orchestration.promotion import check_promotion
    from northstar.orchestration.spec import load_pipelines

    names = [n.strip() for n in order.split(",") if n.strip()]
    try:
        load_pipelines()
        found = check_promotion(names)
    except ConfigError as err:
        return [str(err)]
    if not found:
        print(f"ok  promotion {' -> '.join(names)}")
    return found


def _cmd_package(args: argparse.Namespace) -> int:
    from northstar.orchestration.package import build, git_version, runtime_requirements, upload
    from northstar.spark import jars_dir

    version = args.version or git_version()
    if args.requirements.name == "requirements.lock":
        requirements = runtime_requirements()
    else:
        requirements = [
            line.strip()
            for line in args.requirements.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
    manifest = build(args.out, version, requirements, conf_dir(), jars_dir())
    print(
        f"built {args.out} version {version}: {len(manifest['files'])} files, {len(requirements)} requirements"
    )
    if manifest["jars_missing"]:
        print(
            f"warning: jars not in .jars/ (run make setup): {', '.join(manifest['jars_missing'])}",
            file=sys.stderr,
        )
    if not args.env:
        return 0
    env = load_env(args.env)
    if env.emr is None:
        print(f"env {args.env} has no emr: section (artifacts); nothing uploaded", file=sys.stderr)
        return EXIT_CONFIG
    uris = upload(args.out, env.emr.artifacts, version)
    print(
        f"uploaded {len(uris)} files to {env.emr.artifacts}/{version}/; set emr.artifact_version: {version}"
    )
    return 0


def _cmd_coordinate_commits(args: argparse.Namespace) -> int:
    from northstar.orchestration.coordinated_commits import RELEASED, coordinate_lake, require_coordinator
    from northstar.spark import get_spark

    env = load_env(args.env)
    spec = require_coordinator(env)
    spark = get_spark(env, app_name="northstar-coordinate-commits")
    outcomes = coordinate_lake(spark, env, args.table or None, release=args.release)
    for name, outcome in outcomes.items():
        print(f"{name:45} {outcome}")
    if args.release:
        released = sum(1 for o in outcomes.values() if o == RELEASED)
        print(
            f"{released} taken off DynamoDB table {spec.dynamodb_table}; remove delta_commit_coordinator: from "
            f"conf/env/{env.name}.yaml too, or new tables will be coordinated again"
        )
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`northstar cycle`, `northstar validate-conf`, `northstar package`, `northstar coordinate-commits`."""
    cycle = commands.add_parser(
        "cycle",
        help="one source's extract -> bronze -> silver -> models -> gold -> publish in one Spark session",
    )
    cycle.add_argument("--source", required=True, help="a source: conf/sources/<source>.yaml")
    cycle.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    cycle.add_argument(
        "--start", type=_moment, help="extract this window instead of from the watermark (ISO)"
    )
    cycle.add_argument("--end", type=_moment, help="the window's end (ISO), with --start")
    cycle.add_argument("--no-publish", action="store_true", help="stop after gold (no Snowflake publish)")
    cycle.set_defaults(action=_cmd_cycle)

    validate = commands.add_parser("validate-conf", help="check every conf file and the given env files")
    validate.add_argument("--env", action="append", help="env to check (repeatable; default: local)")
    validate.add_argument(
        "--promotion",
        help="envs in promotion order, e.g. dev,staging,prod: each must have what the one before has",
    )
    validate.set_defaults(action=_cmd_validate)

    package = commands.add_parser(
        "package", help="build the EMR Serverless release (venv-pack archive, jobs, conf, jars) and upload it"
    )
    package.add_argument("--env", help="upload to this env's emr.artifacts (default: build only)")
    package.add_argument("--out", type=Path, default=Path("dist/release"), help="build folder (reset)")
    package.add_argument("--version", help="release version (default: git describe --always --dirty)")
    package.add_argument(
        "--requirements", type=Path, default=Path("requirements.lock"), help="what goes into the venv"
    )
    package.set_defaults(action=_cmd_package)

    coordinate = commands.add_parser(
        "coordinate-commits",
        help="put existing Delta tables under the env's DynamoDB commit coordinator (docs/concurrent-writers.md)",
    )
    coordinate.add_argument(
        "--env", default="local", help="environment: conf/env/<env>.yaml (default: local)"
    )
    coordinate.add_argument("--table", action="append", help="only this table (repeatable); default: all")
    coordinate.add_argument(
        "--release",
        action="store_true",
        help="the other way: DROP FEATURE coordinatedCommits-preview (back to file-system commits)",
    )
    coordinate.set_defaults(action=_cmd_coordinate_commits)
