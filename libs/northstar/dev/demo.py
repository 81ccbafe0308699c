"""The end-to-end demo: the partner API simulator, two extracts through its API, bronze and silver, Stripe
charges of the same orders from the simulator's Stripe list API, the 3PL shipment drops and the finance control
totals of the same orders (northstar.dev.world), the conformed models, gold, the publish to the local Snowflake
stand-in (fakesnow) and its reconciliation, then the daily reconciliation over the world's business days.

The simulator serves marketplace orders and refunds with every fault on (5xx bursts, dropped connections,
partial pages, records repeated across pages, late updates, the partner's schema change). The first
extract lands the history so far, the second (a day and more later) the incremental changes, re-reading
24 h behind the watermark; bronze and silver run after each, so the report shows incremental runs, drift
being absorbed and every record accounted for, and silver is checked against the simulator's ground truth.
The faults are the kind the pipeline absorbs, so the daily reconciliation finds no breach.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from northstar import ledger
from northstar.catalog import all_tables
from northstar.config import ConfigError, EnvConfig, SourceSpec, load_env, load_source
from northstar.config.api import ApiSpec, RetrySpec
from northstar.config.env import SnowflakeSpec
from northstar.dev.simulate.partner_api import START, Faults, PartnerApiSimulator, record_hash
from northstar.dev.world import (
    WorldRecon,
    business_days,
    correct_repost,
    land_drops,
    reconcile_world,
    repost_finance_day,
)
from northstar.extract.rest import ExtractReport, run_extract
from northstar.gold.runner import run_gold
from northstar.lake import tables
from northstar.ledger import LedgerEntry
from northstar.models.runner import run_models
from northstar.reconciliation.investigate import investigate
from northstar.reconciliation.spec import load_recon
from northstar.report import run_report
from northstar.silver.pipeline import run_source
from northstar.spark import get_spark
from northstar.warehouse.commands import format_results
from northstar.warehouse.connection import connect
from northstar.warehouse.publish import PublishResult, publish_all

DEMO_RETRIES = RetrySpec(attempts=6, initial_seconds=0.2, max_seconds=2)  # quick; the conf's start at 1 s
DELIVERIES = (("first", START + timedelta(days=1, hours=12)), ("second", START + timedelta(days=9)))


def _api(source: SourceSpec) -> ApiSpec:
    if source.api is None:
        raise ConfigError(f"sources/{source.name}.yaml: the demo needs its api: section")
    return source.api


def _snowflake(env: EnvConfig) -> SnowflakeSpec:
    if env.snowflake is None:
        raise ConfigError(
            f"env/{env.name}.yaml: the demo publishes to Snowflake and needs its snowflake: section"
        )
    return env.snowflake


def _with_quick_retries(source: SourceSpec) -> SourceSpec:
    """The source with the demo's quick retries (the conf's backoff starts at 1 s, as the real partner wants)."""
    return source.model_copy(update={"api": _api(source).model_copy(update={"retries": DEMO_RETRIES})})


def _payments_shipments_and_totals(
    spark: SparkSession, env: EnvConfig, sim: PartnerApiSimulator, seed: int
) -> list[LedgerEntry]:
    """The same orders' Stripe charges through the simulator's Stripe list API, their 3PL drops and finance
    control totals (from the orders the partner served), to silver."""
    os.environ["NORTHSTAR_STRIPE_API"] = sim.stripe_url
    os.environ["NORTHSTAR_STRIPE_KEY"] = os.environ["NORTHSTAR_PARTNER_TOKEN"]  # the simulator's one token
    stripe = _with_quick_retries(load_source("stripe"))
    print(run_extract(env, stripe, tables=["charges"]).format(), flush=True)
    land_drops(env, sim.ground_truth("orders").values(), posted_at=sim.time, seed=seed)
    return (
        run_source(spark, env, stripe, tables=["charges"])
        + run_source(spark, env, load_source("wms"))
        + run_source(spark, env, load_source("finance_totals"))
    )


def _local_secrets(data_dir: Path) -> None:
    """Throw-away tokens and keys for the local stand-ins; real runs read the secret references the conf names."""
    os.environ["NORTHSTAR_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("NORTHSTAR_PARTNER_TOKEN", secrets.token_hex(16))
    os.environ.setdefault("NORTHSTAR_CUSTOMER_TOKEN_KEY", secrets.token_hex(32))
    os.environ.setdefault("NORTHSTAR_PII_TOKEN_KEY", secrets.token_hex(32))  # silver's PII tokens
    os.environ.setdefault("NORTHSTAR_SNOWFLAKE_PASSWORD", "fakesnow-ignores-it")


def _partner_deliveries(
    spark: SparkSession, env: EnvConfig, source: SourceSpec, sim: PartnerApiSimulator
) -> tuple[list[LedgerEntry], list[ExtractReport]]:
    """Two extracts through the simulator's API (the history, then a day and more later the changes), each
    followed by bronze and silver."""
    entries, extracts = [], []
    for drop, when in DELIVERIES:
        sim.set_time(when)
        print(
            f"extracting the {drop} delivery from the partner API (simulated time {when:%Y-%m-%d %H:%M}) ...",
            flush=True,
        )
        report = run_extract(env, source)
        extracts.append(report)
        print(report.format(), flush=True)
        print("running bronze and silver ...", flush=True)
        entries += run_source(spark, env, source)
    return entries, extracts


def run_demo(data_dir: Path, *, orders: int = 2000, seed: int = 7) -> str:
    """Reset `data_dir`, run the demo there and return the printed report."""
    data_dir = data_dir.resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    _local_secrets(data_dir)
    env = load_env("local")
    source = _with_quick_retries(load_source("marketplace"))
    sim = PartnerApiSimulator(
        orders=orders,
        stripe_from_orders=True,  # a charge per paid order, its total (metadata.order_id = the order)
        seed=seed,
        # bad records are broken extra lines next to the real ones (quarantined, no order lost: world.py)
        faults=replace(Faults.everything(seed=seed, timeouts=0), bad_records=0.3),
        rate_limit=(_api(source).rate_limit.requests, _api(source).rate_limit.per_seconds),
        token=os.environ["NORTHSTAR_PARTNER_TOKEN"],
    ).start()
    os.environ["NORTHSTAR_PARTNER_API"] = sim.partner_url  # what the conf's base_url reads
    spark = get_spark(env, app_name="northstar-demo")
    try:
        entries, extracts = _partner_deliveries(spark, env, source, sim)
        print(
            "extracting the orders' Stripe charges from the Stripe list API; landing the 3PLs' shipment CSV "
            "drops and the finance control totals of the same orders ...",
            flush=True,
        )
        entries += _payments_shipments_and_totals(spark, env, sim, seed)
    finally:
        sim.stop()
    print(
        "building the conformed models, gold, and publishing gold to the local Snowflake (fakesnow) ...",
        flush=True,
    )
    entries += run_models(spark, env, "all")
    entries += run_gold(spark, env)
    publish_run = ledger.new_run_id("publish")
    with connect(_snowflake(env)) as conn:
        published = publish_all(spark, env, conn, run_id=publish_run)
    last, days = business_days(sim.ground_truth("orders").values())
    print(f"running the daily reconciliation for {days} business days up to {last} ...", flush=True)
    recon = reconcile_world(spark, env, last, days, report=data_dir / "reconciliation.html")
    fault = _injected_fault(spark, env, sim, data_dir, recon)
    run = _Run(entries, extracts, publish_run, published, recon, fault)
    return _report(spark, env, source, sim, data_dir, run)


def _injected_fault(
    spark: SparkSession, env: EnvConfig, sim: PartnerApiSimulator, data_dir: Path, clean: WorldRecon
) -> list[str]:
    """After the clean pass, one known fault: finance re-posts a day 1% higher. The reconciliation again (its
    own run id and report), then `northstar investigate` of the finance table on that day; the lines to print."""
    orders = sim.ground_truth("orders").values()
    repost = repost_finance_day(spark, env, orders, posted_at=sim.time + timedelta(hours=6))
    print(
        f"injecting a known fault: finance re-posts {repost.day} {repost.currency} 1% higher ...", flush=True
    )
    report = data_dir / "reconciliation-fault.html"
    run_id = f"{clean.result.run_id}-fault"
    again = reconcile_world(spark, env, clean.last, clean.days, report=report, run_id=run_id)
    table = "silver.finance_totals_daily_totals"
    found = investigate(spark, env, load_recon("daily"), table, repost.day)
    breached = sorted({f"{r['comparison']} {r['business_date']} {r['currency']}" for r in again.breaches})
    fix = correct_repost(spark, env, repost)
    fixed = reconcile_world(spark, env, clean.last, clean.days, run_id=f"{clean.result.run_id}-corrected")
    return [
        f"injected fault: finance re-posted {repost.day} {repost.currency} as {repost.now} (was {repost.was}, what "
        "the orders and the payments add up to); the reconciliation again:",
        *again.format(report=report),
        f"northstar investigate {table} --date {repost.day}: {found.classification}",
        *[f"  because {reason}" for reason in found.reasons],
        f"northstar correct --table {table} --where \"business_date = DATE'{repost.day}' AND currency = "
        f"'{repost.currency}'\" --set gross_amount=... --why ... --ticket FIN-1042: {fix.action} of "
        f"{fix.rows_affected} row(s), version {fix.version_before} -> {fix.version_after} "
        f"(ops.corrections {fix.correction_id})",
        "the reconciliation after the correction:",
        *fixed.format(),
        "",
        f"In short: the clean world reconciles ({len(clean.rows)} figures, {len(clean.breaches)} breaches); the "
        f"re-posted finance total breaches {', '.join(breached) or 'nothing'}, investigate calls it "
        f"{found.classification}, an audited correction (FIN-1042) restores the posting and the "
        f"reconciliation is clean again ({len(fixed.breaches)} breaches).",
    ]


def _ground_truth_checks(
    spark: SparkSession, env: EnvConfig, source: SourceSpec, sim: PartnerApiSimulator
) -> list[str]:
    """Silver's orders and refunds against the simulator's ground truth (record hashes per key)."""
    checks = []
    for table, key in (("orders", "order_id"), ("refunds", "refund_id")):
        expected = sim.ground_truth(table)
        silver_table = tables.silver(source.name, table)
        silver = spark.read.format("delta").load(silver_table.path(env))
        got = {r[key]: r["_record_hash"] for r in silver.select(key, "_record_hash").collect()}
        want = {k: record_hash(v) for k, v in expected.items()}
        verdict = "matches" if got == want else f"DIFFERS ({len(set(got.items()) ^ set(want.items()))} rows)"
        checks.append(f"  {silver_table}: {len(got):,} rows; {verdict} the simulator's ground truth")
    return checks


@dataclass(frozen=True)
class _Run:
    """What the demo's steps returned, for its report."""

    entries: list[LedgerEntry]
    extracts: list[ExtractReport]
    publish_run: str
    published: list[PublishResult]
    recon: WorldRecon
    fault: list[str]  # the injected fault's lines


def _closing(run: _Run, data_dir: Path) -> list[str]:
    """The last lines: the clean world's daily reconciliation, then the injected fault."""
    return [
        "The orders, their Stripe charges, their 3PL shipments and the finance totals are one world; the daily",
        "reconciliation (conf/reconciliation/daily.yaml, ops.reconciliation) over its business days:",
        *run.recon.format(report=data_dir / "reconciliation.html"),
        "",
        *run.fault,
    ]


def _report(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    sim: PartnerApiSimulator,
    data_dir: Path,
    run: _Run,
) -> str:
    """What the demo prints: the faults it went through, every run's counts, the checks, the publish, the
    tables, and last the daily reconciliation in plain words."""
    rescued = (
        spark.read.format("delta")
        .load(tables.bronze(source.name, "orders").path(env))
        .where(F.col("_rescued_data").isNotNull())
        .count()
    )
    records_in = sum(t.records for r in run.extracts for t in r.tables)
    faults = sim.stats.faults
    partial = sum(v for k, v in faults.items() if k.startswith("partial_"))
    ledger_rows = ledger.read(spark, env).count()
    locations = {
        t.full_name: t.path(env)
        for t in all_tables()
        if "marketplace" in t.full_name or t.layer in ("ops", "gold")
    }
    return "\n".join(
        [
            "",
            f"Northstar demo: {records_in:,} marketplace orders and refunds extracted from the partner API in "
            f"{sim.stats.requests} requests ({sim.stats.over_limit} over its rate limit),",
            f"through {faults['server_error']} server errors, {faults['disconnect']} dropped connections, {partial} partial "
            f"pages (re-fetched), {faults['repeated_record']} records repeated across pages,",
            f"broken records in pages ({faults['malformed_record']} not JSON objects, {faults['null_key_record']} with a null "
            "key, re-fetched pages counted twice: the landed ones are quarantined with a reason),",
            "late updates re-read through the 24 h lookback and the partner's schema change in delivery two.",
            "",
            run_report(run.entries),
            "",
            "checks:",
            *_ground_truth_checks(spark, env, source, sim),
            f"  bronze.marketplace_orders: {rescued:,} rows kept a value that did not fit its type in _rescued_data",
            f"  ops.run_ledger: {ledger_rows} runs recorded",
            "",
            format_results(run.publish_run, run.published),
            f"  warehouse: {_snowflake(env).fakesnow_path} (fakesnow / DuckDB files; ops.warehouse_reconciliation "
            "has every compared figure)",
            "",
            "tables:",
            *[f"  {name:<34}{path}" for name, path in locations.items()],
            "",
            "open them in a notebook or pyspark shell:",
            f"  NORTHSTAR_DATA_DIR={data_dir} .venv/bin/python -c 'from northstar.catalog import open_lake; "
            'spark = open_lake("local"); spark.table("silver.marketplace_orders").show()\'',
            "",
            *_closing(run, data_dir),
        ]
    )
