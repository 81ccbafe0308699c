"""`northstar model`: build the conformed models (silver.orders, order_lines, refunds, payments, shipments)."""

from __future__ import annotations

import argparse

from northstar.config import ConfigError, load_env


def _cmd_model(args: argparse.Namespace) -> int:
    from northstar.models.runner import run_models
    from northstar.models.spec import list_models, load_model
    from northstar.report import run_report
    from northstar.secrets import SecretError, resolve
    from northstar.spark import get_spark

    env = load_env(args.env)
    for name in list_models() if args.name == "all" else [args.name]:
        spec = load_model(name)  # a bad file or an unset key stops before Spark starts
        if spec.customer_token_key:
            try:
                resolve(spec.customer_token_key)
            except SecretError as err:
                raise ConfigError(f"conf/models/{name}.yaml customer_token_key: {err}") from None
    spark = get_spark(env, app_name=f"northstar-model-{args.name}")
    print(run_report(run_models(spark, env, args.name, full_refresh=args.full_refresh)))
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`northstar model`."""
    model = commands.add_parser(
        "model", help="build the conformed models (silver.orders, order_lines, refunds, payments, shipments)"
    )
    model.add_argument("--name", required=True, help="a model (conf/models/<name>.yaml) or all")
    model.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    model.add_argument("--full-refresh", action="store_true", help="rebuild from the whole silver input")
    model.set_defaults(action=_cmd_model)
