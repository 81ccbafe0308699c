"""The shop's own revenue end to end, from a real PostgreSQL: orders and order lines written in the database
reach silver.orders and silver.order_lines (one conformed model with the marketplace's), gold.fact_orders and
gold.fact_order_lines, and the warehouse (fakesnow), through the keyset extractor, each time in one
`northstar cycle` (orchestration/cycle.py: extract -> bronze -> silver -> models -> gold -> publish); then changes made in the
database (a status change, a deleted line, a deleted order, a new order, a line added a day after its order)
reach every layer; then a rerun with no change leaves every table as it was.

Real components: the PostgreSQL server of scripts/postgres.sh, Spark + Delta, fakesnow for the warehouse.
The expected figures are worked out by hand from the rows the test writes (EXPECTED_* below).
"""

from __future__ import annotations

import time
import uuid
from datetime import date
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from northstar import ledger
from northstar.config import load_source
from northstar.config.env import SnowflakeSpec
from northstar.lake import tables
from northstar.orchestration.cycle import models_fed_by, run_cycle
from northstar.warehouse import publish
from northstar.warehouse.connection import connect, execute
from tests.helpers import snapshots
from tests.helpers.postgres_server import PgServer

D = Decimal
READER = f"northstar_shop_{uuid.uuid4().hex[:8]}"
PASSWORD_VAR = "NORTHSTAR_TEST_SHOP_ORDERS_PASSWORD"
DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)

SCHEMA = """
create table public.orders (
  id bigint primary key, customer_id bigint not null, status text not null, currency text,
  amount numeric(12,2) not null, tax_amount numeric(12,2), shipping_amount numeric(12,2),
  discount_amount numeric(12,2), created_at timestamptz not null, updated_at timestamptz not null,
  deleted_at timestamptz);
create index orders_updated_at_id on public.orders (updated_at, id);
create table public.order_lines (
  id bigint primary key, order_id bigint not null references public.orders, line_number int not null,
  sku text not null, quantity int not null, unit_price numeric(12,2) not null, discount_amount numeric(12,2),
  created_at timestamptz not null, updated_at timestamptz not null, deleted_at timestamptz);
create index order_lines_updated_at_id on public.order_lines (updated_at, id);
create table public.customers (id bigint primary key, email text, updated_at timestamptz not null);
create index customers_updated_at_id on public.customers (updated_at, id);
"""
# updated_at a little before now: inside the first extract's window
FIRST = """
insert into public.customers values (11, 'ann@example.com', now() - interval '1 hour'),
  (12, 'bo@example.org', now() - interval '1 hour'), (13, 'cy@example.net', now() - interval '1 hour');
insert into public.orders values
  (1, 11, 'paid',    'USD', 65.00, 5.00, null, null, '2026-03-01 10:00+00', now() - interval '1 hour', null),
  (2, 12, 'shipped', 'eur', 40.00, null, 5.00, 2.00, '2026-03-01 23:30+00', now() - interval '1 hour', null),
  (3, 11, 'new',     'USD', 15.00, null, null, null, '2026-03-02 09:00+00', now() - interval '1 hour', null),
  (4, 13, 'paid',    'JPY', 1200,  null, null, null, '2026-03-02 12:00+00', now() - interval '1 hour', null),
  (5, 13, 'paid',    null,  10.00, null, null, null, '2026-03-02 13:00+00', now() - interval '1 hour', null);
insert into public.order_lines values
  (101, 1, 1, 'A', 2, 20.00, null, '2026-03-01 10:00+00', now() - interval '1 hour', null),
  (102, 1, 2, 'B', 1, 20.00, null, '2026-03-01 10:00+00', now() - interval '1 hour', null),
  (201, 2, 1, 'C', 3, 10.00, 2.00, '2026-03-01 23:30+00', now() - interval '1 hour', null),
  (202, 2, 2, 'H', 1,  7.00, null, '2026-03-01 23:30+00', now() - interval '1 hour', null),
  (301, 3, 1, 'D', 1, 15.00, null, '2026-03-02 09:00+00', now() - interval '1 hour', null),
  (302, 3, 2, 'G', 0,  1.00, null, '2026-03-02 09:00+00', now() - interval '1 hour', null),
  (401, 4, 1, 'E', 1, 1200,  null, '2026-03-02 12:00+00', now() - interval '1 hour', null),
  (501, 5, 1, 'F', 1, 10.00, null, '2026-03-02 13:00+00', now() - interval '1 hour', null);
"""
# the shop changes, each change in its own transaction as the application would commit it
CHANGES = [
    "update public.orders set status = 'paid', updated_at = now() where id = 3",
    # a line removed from order 2: the line is soft-deleted and the order's total drops by 7.00
    "update public.order_lines set deleted_at = now(), updated_at = now() where id = 202",
    "update public.orders set amount = 33.00, updated_at = now() where id = 2",
    "update public.orders set deleted_at = now(), updated_at = now() where id = 4",
    "insert into public.orders values (6, 12, 'paid', 'USD', 9.99, null, null, null, '2026-03-02 18:00+00', "
    "now(), null)",
    "insert into public.order_lines values (601, 6, 1, 'A', 1, 9.99, null, '2026-03-02 18:00+00', now(), null)",
    # a line added to order 1 a day later; the order row itself is not touched
    "insert into public.order_lines values (103, 1, 3, 'C', 1, 5.00, null, '2026-03-03 08:00+00', now(), null)",
]

ORDER_COLUMNS = (
    "order_id string, status string, source_status string, currency string, subtotal_amount decimal(18,2), "
    "tax_amount decimal(18,2), shipping_amount decimal(18,2), discount_amount decimal(18,2), "
    "total_amount decimal(18,2), sales_channel string"
)
EXPECTED_ORDERS_FIRST = [
    ("1", "paid", "paid", "USD", D("60.00"), D("5.00"), D("0.00"), D("0.00"), D("65.00"), "shop"),
    ("2", "shipped", "shipped", "EUR", D("37.00"), D("0.00"), D("5.00"), D("2.00"), D("40.00"), "shop"),
    ("3", "pending", "new", "USD", D("15.00"), D("0.00"), D("0.00"), D("0.00"), D("15.00"), "shop"),
    ("4", "paid", "paid", "JPY", D("1200.00"), D("0.00"), D("0.00"), D("0.00"), D("1200.00"), "shop"),
]  # order 5 has no currency: quarantined
EXPECTED_ORDERS_AFTER = [
    EXPECTED_ORDERS_FIRST[0],
    ("2", "shipped", "shipped", "EUR", D("30.00"), D("0.00"), D("5.00"), D("2.00"), D("33.00"), "shop"),
    ("3", "paid", "paid", "USD", D("15.00"), D("0.00"), D("0.00"), D("0.00"), D("15.00"), "shop"),
    ("4", "cancelled", "deleted", "JPY", D("1200.00"), D("0.00"), D("0.00"), D("0.00"), D("1200.00"), "shop"),
    ("6", "paid", "paid", "USD", D("9.99"), D("0.00"), D("0.00"), D("0.00"), D("9.99"), "shop"),
]
LINE_FACT_COLUMNS = (
    "order_id string, line_number int, order_date date, sku string, quantity int, currency string, "
    "unit_price decimal(18,2), discount_amount decimal(18,2), line_amount decimal(18,2), sales_channel string"
)
EXPECTED_LINES_FIRST = [
    ("1", 1, DAY1, "A", 2, "USD", D("20.00"), D("0.00"), D("40.00"), "shop"),
    ("1", 2, DAY1, "B", 1, "USD", D("20.00"), D("0.00"), D("20.00"), "shop"),
    ("2", 1, DAY1, "C", 3, "EUR", D("10.00"), D("2.00"), D("28.00"), "shop"),
    ("2", 2, DAY1, "H", 1, "EUR", D("7.00"), D("0.00"), D("7.00"), "shop"),
    ("3", 1, DAY2, "D", 1, "USD", D("15.00"), D("0.00"), D("15.00"), "shop"),
    ("4", 1, DAY2, "E", 1, "JPY", D("1200.00"), D("0.00"), D("1200.00"), "shop"),
    # order 5 was quarantined: its line is counted on its own day, currency unknown, never dropped
    ("5", 1, DAY2, "F", 1, None, D("10.00"), D("0.00"), D("10.00"), "unknown"),
]  # line 302 (quantity 0) is quarantined
EXPECTED_LINES_AFTER = [
    *EXPECTED_LINES_FIRST[:3],
    ("1", 3, DAY1, "C", 1, "USD", D("5.00"), D("0.00"), D("5.00"), "shop"),  # its order's day, not its own
    *EXPECTED_LINES_FIRST[4:],
    ("6", 1, DAY2, "A", 1, "USD", D("9.99"), D("0.00"), D("9.99"), "shop"),
]  # line 202 was deleted in the shop


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A fresh database with the shop's three tables, a read-only login, and the repo's shop_db source
    pointed at it (the repo's table definitions, only the connection changed)."""
    server = PgServer.from_env()
    problem = server.check_up()
    if problem:
        pytest.fail(problem, pytrace=False)
    password = f"pw-{uuid.uuid4().hex}"
    server.ensure_role(READER, password)
    database = server.create_database("shop_orders")
    with server.connect(database) as conn:
        conn.execute(SCHEMA)
        conn.execute(FIRST)
        conn.execute(f'grant select on all tables in schema public to "{READER}"')
    source = load_source("shop_db")
    assert source.jdbc is not None
    connection = {"host": server.host, "port": server.port, "database": database, "user": READER}
    source = source.model_copy(
        update={"jdbc": source.jdbc.model_copy(update={**connection, "password": f"env:{PASSWORD_VAR}"})}
    )
    yield server, database, source, password
    server.drop_database(database)
    with server.connect() as conn:
        conn.execute(f'drop role if exists "{READER}"')


@pytest.fixture
def shop_env(env, tmp_path, monkeypatch, shop):
    _, _, _, password = shop
    monkeypatch.setenv(PASSWORD_VAR, password)
    monkeypatch.setenv("NORTHSTAR_PII_TOKEN_KEY", "test-pii-key")
    monkeypatch.setenv("NORTHSTAR_CUSTOMER_TOKEN_KEY", "test-customer-key")
    monkeypatch.setenv("NORTHSTAR_SNOWFLAKE_PASSWORD", "fakesnow-ignores-it")
    snowflake = SnowflakeSpec(
        mode="fakesnow", account="local", database="NORTHSTAR", warehouse="WH", role="PUBLISHER",
        user="env:USER", password="env:NORTHSTAR_SNOWFLAKE_PASSWORD", fakesnow_path=str(tmp_path / "snowflake"),
    )  # fmt: skip
    return env.model_copy(update={"snowflake": snowflake})


def cycle(spark, env, source) -> None:
    """One scheduled tick of the shop_db DAG: `northstar cycle --source shop_db` (one Spark session)."""
    lines: list[str] = []
    report = run_cycle(spark, env, source, progress=lines.append)
    assert [s.name for s in report.steps] == ["extract", "ingest", "models", "gold", "publish"]
    assert len(lines) == 5
    assert all(line.startswith("cycle shop_db: ") for line in lines)
    assert {m.name for m in models_fed_by("shop_db")} == {"orders", "order_lines"}
    assert all(r.reconciled for r in report.published)  # publish_all also raises when they differ


def shop_orders(spark, env):
    frame = spark.read.format("delta").load(tables.model("orders").path(env))
    return frame.where("source_system = 'shop_db'").select(*[c.split()[0] for c in ORDER_COLUMNS.split(", ")])


def shop_line_facts(spark, env):
    frame = spark.read.format("delta").load(tables.gold("fact_order_lines").path(env))
    names = [c.split()[0] for c in LINE_FACT_COLUMNS.split(", ")]
    return frame.where("source_system = 'shop_db'").select(*names)


def warehouse_line_facts(env) -> set[tuple]:
    assert env.snowflake is not None
    with connect(env.snowflake) as conn:
        table = publish.qualified(env.snowflake, "fact_order_lines")
        rows = execute(
            conn,
            f"SELECT order_id, line_number, line_amount FROM {table} WHERE source_system = 'shop_db'",
        )
    return {(r[0], r[1], D(str(r[2]))) for r in rows}


def assert_orders_and_lines(spark, env, orders, lines):
    """silver.orders' shop rows and gold.fact_order_lines' shop rows equal the expected ones."""
    for actual, expected, columns in (
        (shop_orders(spark, env), orders, ORDER_COLUMNS),
        (shop_line_facts(spark, env), lines, LINE_FACT_COLUMNS),
    ):
        assert_df_equality(
            actual, spark.createDataFrame(expected, columns), ignore_row_order=True, ignore_nullable=True
        )


def assert_balanced(spark, env):
    for run in ledger.read(spark, env).where("status = 'success'").collect():
        assert run.records_read == (run.records_written + run.records_duplicate + run.records_quarantined), (
            f"{run.layer} {run.source}.{run.table_name} does not balance"
        )


def test_shop_orders_and_lines_reach_gold_and_the_warehouse_and_follow_the_database(spark, shop_env, shop):
    server, database, source, _ = shop
    env = shop_env

    # 1. the first cycle: the whole tables
    cycle(spark, env, source)
    assert_orders_and_lines(spark, env, EXPECTED_ORDERS_FIRST, EXPECTED_LINES_FIRST)
    quarantined = spark.read.format("delta").load(tables.model_quarantine("orders").path(env))
    assert {(r.table_name, r.reason) for r in quarantined.collect()} == {("orders", "unknown_currency")}
    bad_lines = spark.read.format("delta").load(tables.model_quarantine("order_lines").path(env)).collect()
    assert [(r.reason, r.table_name) for r in bad_lines] == [("invalid_line_item", "order_lines")]
    assert warehouse_line_facts(env) == {(r[0], r[1], r[8]) for r in EXPECTED_LINES_FIRST}
    customers = spark.read.format("delta").load(tables.silver("shop_db", "customers").path(env))
    assert customers.where(F.col("email").contains("@")).count() == 0  # PII lands as tokens
    assert_balanced(spark, env)

    # 2. the shop changes; the next cycle reads the changes (keyset window from the watermark)
    with server.connect(database) as conn:
        for statement in CHANGES:
            with conn.transaction():
                conn.execute(statement)
    time.sleep(1.1)  # a window ends at a whole second (keyset.incremental_window): commits before the run
    cycle(spark, env, source)
    assert_orders_and_lines(spark, env, EXPECTED_ORDERS_AFTER, EXPECTED_LINES_AFTER)
    facts = (
        spark.read.format("delta")
        .load(tables.gold("fact_orders").path(env))
        .where("source_system = 'shop_db'")
    )
    assert {r.order_id: r.status for r in facts.collect()} == {
        "1": "paid", "2": "shipped", "3": "paid", "4": "cancelled", "6": "paid",
    }  # fmt: skip
    assert warehouse_line_facts(env) == {(r[0], r[1], r[8]) for r in EXPECTED_LINES_AFTER}
    assert_balanced(spark, env)

    # 3. nothing changed in the shop: a third cycle leaves the models, gold and the warehouse as they were
    paths = {
        "orders": tables.model("orders").path(env),
        "order_lines": tables.model("order_lines").path(env),
        "fact_orders": tables.gold("fact_orders").path(env),
        "fact_order_lines": tables.gold("fact_order_lines").path(env),
    }
    versions = snapshots.versions(spark, paths)
    cycle(spark, env, source)
    snapshots.assert_rows_unchanged(spark, paths, versions)
    assert warehouse_line_facts(env) == {(r[0], r[1], r[8]) for r in EXPECTED_LINES_AFTER}
    assert_balanced(spark, env)
