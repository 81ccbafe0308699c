"""Freshness benchmark (`northstar bench-freshness`, `make bench-freshness`): source change -> visible in the
warehouse, per flow, on the local stack, next to the brief's target.

Three flows, each changed at its real source and followed through one `northstar cycle` (orchestration/cycle.py)
to the Snowflake stand-in (fakesnow):
- shop orders (brief 001, 15 min): a new order and its line committed in the local PostgreSQL
  (scripts/postgres.sh) -> keyset extract -> bronze -> silver -> silver.orders / order_lines -> gold ->
  FACT_ORDER_LINES;
- Stripe webhooks (brief 002, 20 min): a new event file as the webhook receiver lands it -> bronze -> silver
  (silver.stripe_events_objects, the payments model's input);
- partner orders (brief 000, 30 min to Snowflake): the next hour of the partner API simulator's orders becomes
  visible -> REST extract -> bronze -> silver -> silver.orders -> gold -> FACT_ORDERS.

Each round changes the source, runs the cycle at once and polls the warehouse until the row is there: the
measured seconds are what one cycle adds. In production a change also waits for the next schedule tick, so
the worst case is the schedule's interval (conf/orchestration/pipelines.yaml) plus the measured cycle; the
report prints both against the target. The first cycle of each flow (a full load) is reported apart.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from northstar.config import EnvConfig, SourceSpec, load_env, load_source
from northstar.dev.simulate.partner_api import START, Faults, PartnerApiSimulator
from northstar.lake import tables
from northstar.orchestration.cycle import run_cycle
from northstar.orchestration.spec import load_pipelines
from northstar.spark import get_spark
from northstar.warehouse.connection import connect, execute
from northstar.warehouse.publish import qualified

# briefs 001 (shop orders), 002 (Stripe webhooks) and 000 (partner orders in Snowflake within 30 minutes)
TARGET_MINUTES = {"shop_db": 15, "stripe_events": 20, "marketplace": 30}
SHOP_SCHEMA = """
create table public.orders (id bigint primary key, customer_id bigint not null, status text not null,
  currency text, amount numeric(12,2) not null, tax_amount numeric(12,2), shipping_amount numeric(12,2),
  discount_amount numeric(12,2), created_at timestamptz not null, updated_at timestamptz not null,
  deleted_at timestamptz);
create index on public.orders (updated_at, id);
create table public.order_lines (id bigint primary key, order_id bigint not null, line_number int not null,
  sku text not null, quantity int not null, unit_price numeric(12,2) not null, discount_amount numeric(12,2),
  created_at timestamptz not null, updated_at timestamptz not null, deleted_at timestamptz);
create index on public.order_lines (updated_at, id);
create table public.customers (id bigint primary key, email text, updated_at timestamptz not null);
create index on public.customers (updated_at, id);
"""


@dataclass
class FlowResult:
    flow: str
    source: str
    first_seconds: float
    rounds: list[float]
    interval_minutes: float

    def line(self) -> str:
        cycle = statistics.median(self.rounds)
        worst = self.interval_minutes * 60 + cycle
        target = TARGET_MINUTES[self.source] * 60
        verdict = "meets" if worst <= target else "MISSES"
        return (
            f"{self.flow:<34}{cycle:>9.1f} s{max(self.rounds):>9.1f} s{self.interval_minutes:>8.0f} min"
            f"{worst / 60:>9.1f} min{TARGET_MINUTES[self.source]:>7} min  {verdict}"
            f"   (first full load {self.first_seconds:.1f} s)"
        )


def _interval_minutes(source: str) -> float:
    """The longest gap between two ticks of the source's DAG schedule. The source DAGs run on minute-of-hour
    crons ("*/5 * * * *", "5,20,35,50 * * * *", "15 * * * *"); anything else is refused rather than guessed."""
    schedule = load_pipelines().sources[source].schedule
    minute, *rest = schedule.split()
    if rest != ["*"] * 4:
        raise ValueError(
            f"{source}: schedule {schedule!r} is not a minute-of-hour cron; extend the benchmark"
        )
    if minute.startswith("*/"):
        return float(minute[2:])
    ticks = sorted(int(m) for m in minute.split(","))
    return float(max(b - a for a, b in zip(ticks, [*ticks[1:], ticks[0] + 60], strict=True)))


def in_warehouse(env: EnvConfig, table: str) -> Callable[[str], bool]:
    """visible(where): the warehouse table has a row matching `where`."""

    def visible(where: str) -> bool:
        assert env.snowflake is not None  # the local env publishes to fakesnow
        with connect(env.snowflake) as conn:
            target = qualified(env.snowflake, table)
            return execute(conn, f"SELECT COUNT(*) FROM {target} WHERE {where}")[0][0] > 0

    return visible


def _round(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    change: Callable[[], str],
    visible: Callable[[str], bool],
) -> float:
    """Change the source, run one cycle, wait until the change is visible: seconds from the change."""
    started = time.monotonic()
    what = change()
    run_cycle(spark, env, source, progress=lambda _line: None)
    while not visible(what):
        if time.monotonic() - started > 900:
            raise RuntimeError(f"{source.name}: the change ({what}) is not visible 15 minutes later")
        time.sleep(0.5)
    return time.monotonic() - started


def _shop_flow(spark: SparkSession, env: EnvConfig, rounds: int) -> FlowResult:
    """A bench database on the local PostgreSQL; each round commits one order with one line."""
    host, port = "127.0.0.1", int(os.environ.get("NORTHSTAR_PG_PORT", "54329"))
    password = os.environ.get("NORTHSTAR_PG_PASSWORD", "northstar")  # scripts/postgres.sh's throw-away login
    database = f"northstar_bench_{uuid.uuid4().hex[:8]}"

    def admin(dbname: str) -> psycopg.Connection:
        return psycopg.connect(
            host=host, port=port, dbname=dbname, user="northstar", password=password, autocommit=True
        )

    with admin("postgres") as conn:
        conn.execute(f'create database "{database}"')
    os.environ["NORTHSTAR_BENCH_PG_PASSWORD"] = password
    source = load_source("shop_db")
    assert source.jdbc is not None  # the repo's shop_db source reads PostgreSQL
    connection = {"host": host, "port": port, "database": database, "user": "northstar"}
    jdbc = source.jdbc.model_copy(update={**connection, "password": "env:NORTHSTAR_BENCH_PG_PASSWORD"})
    source = source.model_copy(update={"jdbc": jdbc})
    counter = iter(range(1, 10_000))

    def change() -> str:
        n = next(counter)
        with admin(database) as conn, conn.transaction():
            conn.execute(
                "insert into public.orders values (%s, 1, 'paid', 'USD', 10.00, null, null, null, now(), now(), null)",
                [n],
            )
            conn.execute(
                "insert into public.order_lines values (%s, %s, 1, 'A', 1, 10.00, null, now(), now(), null)",
                [n, n],
            )
        time.sleep(1.0)  # a keyset window ends at a whole second: the change must be in the past
        return f"source_system = 'shop_db' AND order_id = '{n}'"

    try:
        with admin(database) as conn:
            conn.execute(SHOP_SCHEMA)
        visible = in_warehouse(env, "fact_order_lines")
        first = _round(spark, env, source, change, visible)
        measured = [_round(spark, env, source, change, visible) for _ in range(rounds)]
    finally:
        with admin("postgres") as conn:
            conn.execute(f'drop database if exists "{database}" with (force)')
    return FlowResult(
        "shop order -> FACT_ORDER_LINES", "shop_db", first, measured, _interval_minutes("shop_db")
    )


def _stripe_events_flow(spark: SparkSession, env: EnvConfig, rounds: int) -> FlowResult:
    """Each round lands one Stripe webhook delivery (a `charge.succeeded` event, Stripe's Event shape) as the
    receiver writes it; visible = the event's charge in silver.stripe_events_objects (the table the payments
    model reads)."""
    source = load_source("stripe_events")
    folder = Path(env.landing) / source.tables["events"].landing
    path = tables.silver(source.name, "objects").path(env)
    counter = iter(range(1, 10_000))

    def change() -> str:
        n = next(counter)
        event = {
            "id": f"evt_bench{n:06d}", "object": "event", "type": "charge.succeeded", "created": int(time.time()),
            "api_version": "2024-06-20", "livemode": False, "pending_webhooks": 1, "request": {"id": f"req_bench{n:06d}", "idempotency_key": None},
            "data": {"object": {"id": f"ch_bench{n:06d}", "object": "charge", "amount": 1000, "currency": "usd",
                                "status": "succeeded", "created": int(time.time()), "metadata": {}}},
        }  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"bench-{n:06d}.jsonl").write_text(json.dumps(event) + "\n")
        return f"ch_bench{n:06d}"

    def visible(charge: str) -> bool:
        return spark.read.format("delta").load(path).where(F.col("object_id") == charge).limit(1).count() > 0

    first = _round(spark, env, source, change, visible)
    measured = [_round(spark, env, source, change, visible) for _ in range(rounds)]
    return FlowResult(
        "Stripe webhook -> silver", "stripe_events", first, measured, _interval_minutes("stripe_events")
    )


def _marketplace_flow(spark: SparkSession, env: EnvConfig, rounds: int) -> FlowResult:
    """The partner API simulator (no faults: the figure is the pipeline's, not the retries'); each round moves
    its data clock on by an hour, which makes that hour's new orders visible through the API; visible = one of
    them in FACT_ORDERS."""
    os.environ.setdefault("NORTHSTAR_PARTNER_TOKEN", uuid.uuid4().hex)
    source = load_source("marketplace")
    assert source.api is not None  # the marketplace source is a REST API
    limit = source.api.rate_limit
    sim = PartnerApiSimulator(
        orders=400, seed=11, faults=Faults(), rate_limit=(limit.requests, limit.per_seconds),
        token=os.environ["NORTHSTAR_PARTNER_TOKEN"],
    ).start()  # fmt: skip
    os.environ["NORTHSTAR_PARTNER_API"] = sim.partner_url  # what the conf's base_url reads
    sim.set_time(START + timedelta(days=1))

    def change() -> str:
        before = set(sim.ground_truth("orders"))
        for _ in range(48):  # at most two simulated days without a new order
            sim.advance(1)
            new = sorted(set(sim.ground_truth("orders")) - before)
            if new:
                return f"source_system = 'marketplace' AND order_id = '{new[0]}'"
        raise RuntimeError("the simulator served no new order for two simulated days: give it more orders")

    try:
        visible = in_warehouse(env, "fact_orders")
        first = _round(spark, env, source, change, visible)
        measured = [_round(spark, env, source, change, visible) for _ in range(rounds)]
    finally:
        sim.stop()
    return FlowResult(
        "partner API order -> FACT_ORDERS", "marketplace", first, measured, _interval_minutes("marketplace")
    )


FLOWS: dict[str, Callable[[SparkSession, EnvConfig, int], FlowResult]] = {
    "shop_db": _shop_flow,
    "stripe_events": _stripe_events_flow,
    "marketplace": _marketplace_flow,
}


def run_freshness_bench(out: Path, *, rounds: int = 3, flows: tuple[str, ...] = tuple(FLOWS)) -> str:
    """Measure the flows under `out` (reset) and return the report."""
    out = out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    os.environ["NORTHSTAR_DATA_DIR"] = str(out)
    os.environ.setdefault("NORTHSTAR_PII_TOKEN_KEY", uuid.uuid4().hex)
    os.environ.setdefault("NORTHSTAR_CUSTOMER_TOKEN_KEY", uuid.uuid4().hex)
    os.environ.setdefault("NORTHSTAR_SNOWFLAKE_PASSWORD", "fakesnow-ignores-it")
    env = load_env("local")
    spark = get_spark(env, app_name="northstar-bench-freshness")
    results = [FLOWS[name](spark, env, rounds) for name in flows]
    load = os.getloadavg()
    header = f"{'flow':<34}{'cycle':>11}{'max':>11}{'interval':>12}{'worst':>13}{'target':>11}\n{'-' * 100}"
    return "\n".join(
        [
            f"freshness: source change -> warehouse, {rounds} rounds per flow after a first full load "
            f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores)",
            "cycle = change committed -> visible (fakesnow; silver for the webhooks) through one `northstar cycle` (median; max);",
            "worst = the DAG schedule's interval + that cycle (a change can just miss a tick)",
            header,
            *[r.line() for r in results],
        ]
    )
