"""`northstar privacy delete|process`: deletion requests within 72 h, with proof (docs/runbooks/pii-deletion.md)."""

from __future__ import annotations

import argparse

from northstar.config import ConfigError, load_env


def _cmd_privacy_delete(args: argparse.Namespace) -> int:
    from northstar.privacy import deletion, requests
    from northstar.privacy.spec import load_privacy
    from northstar.secrets import SecretError, resolve
    from northstar.spark import get_spark

    privacy = load_privacy()
    try:
        key = resolve(privacy.token_key).value.encode("utf-8")
    except SecretError as err:
        raise ConfigError(f"conf/privacy.yaml token_key: {err}") from None
    env = load_env(args.env)
    spark = get_spark(env, app_name="northstar-privacy")
    token = deletion.token_of(spark, args.subject, key)
    request_id = requests.record_request(spark, env, token, privacy.deadline_hours)
    print(f"deletion request {request_id} recorded (deadline {privacy.deadline_hours} h)")
    if args.process:
        proofs = deletion.process_requests(spark, env, privacy)
        print(_proof_report(proofs))
    return 0


def _cmd_privacy_process(args: argparse.Namespace) -> int:
    from northstar.privacy.deletion import process_requests
    from northstar.privacy.spec import load_privacy
    from northstar.spark import get_spark

    privacy = load_privacy()
    env = load_env(args.env)
    spark = get_spark(env, app_name="northstar-privacy")
    print(_proof_report(process_requests(spark, env, privacy)))
    return 0


def _proof_report(proofs: list[dict]) -> str:
    if not proofs:
        return "no pending deletion requests"
    lines = [f"{'request':<32}{'table':<36}{'rows deleted':>13}{'versions':>12}{'files removed':>15}"]
    for p in proofs:
        versions = f"{p['version_before']}->{p['version_after']}" if p["table_exists"] else "absent"
        lines.append(
            f"{p['request_id']:<32}{p['table_name']:<36}{p['rows_deleted']:>13}{versions:>12}{p['files_removed']:>15}"
        )
    return "\n".join(lines)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`northstar privacy delete|process`."""
    privacy = commands.add_parser("privacy", help="deletion requests (72 h): record, process, prove")
    subcommands = privacy.add_subparsers(dest="privacy_command", required=True)
    delete = subcommands.add_parser("delete", help="record a deletion request for a subject (user id)")
    delete.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    delete.add_argument("--subject", required=True, help="the user id; stored only as its keyed token")
    delete.add_argument("--process", action="store_true", help="process pending requests right away")
    delete.set_defaults(action=_cmd_privacy_delete)
    process = subcommands.add_parser(
        "process", help="delete, vacuum and write proof for every pending request"
    )
    process.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    process.set_defaults(action=_cmd_privacy_process)
