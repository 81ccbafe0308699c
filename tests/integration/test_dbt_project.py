"""The dbt project (dbt/) against the local Snowflake stand-in: `fakesnow -s` (server mode) from .venv-dbt
(scripts/setup-dbt.sh, which `make test` runs), the warehouse tables created as the publish leaves them (gold
columns + `_LOADED_AT`, `_RUN_ID`) with a few hand-written gold rows, then `dbt build` with dbt-snowflake over
HTTP: every source test of the generated sources.yml and the mart's own tests pass, and the finance mart equals
the figures worked out by hand below; a duplicate gold key makes the `northstar_unique_key` test fail the build.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import snowflake.connector

from northstar.gold.tables import GOLD
from tests.helpers.envs import REPO

DBT_VENV = REPO / ".venv-dbt"
DBT = DBT_VENV / "bin" / "dbt"
FAKESNOW = DBT_VENV / "bin" / "fakesnow"
PROJECT = REPO / "dbt"
DATABASE, SCHEMA = "NORTHSTAR", "ANALYTICS"
RUN_ID = "publish-20261125T0600-test"

pytestmark = pytest.mark.skipif(
    not DBT.exists(), reason="no .venv-dbt: run scripts/setup-dbt.sh (make test does) to run the dbt project"
)

NUMBERS = {"line_number", "quantity", "item_count", "cartons", "version", "payment_count", "shipment_count"}
NUMBERS |= {"order_count", "refund_count", "input_rows", "orders_in_version", "seconds_to_payment"}
TIMESTAMPS = {"status_time", "valid_from", "valid_to"}
MONEY = {"unit_price", "amount", "weight_kg"}


def snowflake_type(column: str) -> str:
    """The type the publish's DDL gives a gold column (docs/snowflake.md: DDL evolution rules)."""
    rules = (
        (column in NUMBERS, "NUMBER(38,0)"),
        (column.endswith("_date"), "DATE"),
        (column.endswith("_at") or column in TIMESTAMPS, "TIMESTAMP_NTZ"),
        (column == "is_current", "BOOLEAN"),
        (column.startswith("hours_to"), "FLOAT"),
        ("amount" in column or column in MONEY, "NUMBER(18,2)"),
    )
    return next((kind for matches, kind in rules if matches), "VARCHAR")


D24, D25 = date(2026, 11, 24), date(2026, 11, 25)
# Hand-written gold rows (only the columns that matter; the rest are NULL).
ROWS: dict[str, list[dict]] = {
    "fact_orders": [
        dict(
            source_system="marketplace",
            order_id="MO-1",
            order_date=D24,
            status="paid",
            currency="USD",
            total_amount=Decimal("100.00"),
            sales_channel="web",
            customer_token="c1",
        ),
        dict(
            source_system="marketplace",
            order_id="MO-2",
            order_date=D24,
            status="cancelled",
            currency="USD",
            total_amount=Decimal("50.00"),
            sales_channel="web",
        ),
        dict(
            source_system="shop_db",
            order_id="SO-1",
            order_date=D24,
            status="shipped",
            currency="EUR",
            total_amount=Decimal("80.00"),
            sales_channel="shop",
        ),
        dict(
            source_system="marketplace",
            order_id="MO-3",
            order_date=D25,
            status="delivered",
            currency="USD",
            total_amount=Decimal("30.00"),
            sales_channel="app",
        ),
    ],
    "fact_refunds": [
        dict(
            source_system="marketplace",
            refund_id="R-1",
            order_id="MO-1",
            refund_date=D25,
            order_date=D24,
            status="completed",
            currency="USD",
            refund_amount=Decimal("10.00"),
            sales_channel="web",
        ),
        dict(
            source_system="marketplace",
            refund_id="R-2",
            order_id="MO-3",
            refund_date=D25,
            order_date=D25,
            status="requested",
            currency="USD",
            refund_amount=Decimal("5.00"),
            sales_channel="app",
        ),
    ],
    # what gold.daily_revenue makes of the facts above (cancelled MO-2 earns nothing, requested R-2 is not
    # counted, R-1 lands on its own day in its order's channel)
    "daily_revenue": [
        dict(
            revenue_date=D24,
            currency="USD",
            sales_channel="web",
            order_count=1,
            gross_amount=Decimal("100.00"),
            refund_count=0,
            refund_amount=Decimal("0.00"),
            net_amount=Decimal("100.00"),
            input_rows=2,
        ),
        dict(
            revenue_date=D24,
            currency="EUR",
            sales_channel="shop",
            order_count=1,
            gross_amount=Decimal("80.00"),
            refund_count=0,
            refund_amount=Decimal("0.00"),
            net_amount=Decimal("80.00"),
            input_rows=1,
        ),
        dict(
            revenue_date=D25,
            currency="USD",
            sales_channel="web",
            order_count=0,
            gross_amount=Decimal("0.00"),
            refund_count=1,
            refund_amount=Decimal("10.00"),
            net_amount=Decimal("-10.00"),
            input_rows=1,
        ),
        dict(
            revenue_date=D25,
            currency="USD",
            sales_channel="app",
            order_count=1,
            gross_amount=Decimal("30.00"),
            refund_count=0,
            refund_amount=Decimal("0.00"),
            net_amount=Decimal("30.00"),
            input_rows=2,
        ),
    ],
    "dim_customer": [
        dict(
            customer_sk="sk-c1-1",
            customer_token="c1",
            valid_from=datetime(2026, 11, 24, 9),
            is_current=True,
            version=1,
            orders_in_version=1,
        ),
    ],
}
# finance_daily_net_revenue by hand: per day and currency, all channels
# (revenue_date, currency, order_count, gross, refund_count, refunds, net, net from facts, matches)
EXPECTED_MART = [
    (D24, "EUR", 1, Decimal("80.00"), 0, Decimal("0.00"), Decimal("80.00"), Decimal("80.00"), True),
    (D24, "USD", 1, Decimal("100.00"), 0, Decimal("0.00"), Decimal("100.00"), Decimal("100.00"), True),
    (D25, "USD", 1, Decimal("30.00"), 1, Decimal("10.00"), Decimal("20.00"), Decimal("20.00"), True),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fakesnow_server(tmp_path) -> Iterator[int]:
    """`fakesnow -s` on a free port with its databases under tmp_path; yields the port."""
    port = free_port()
    log = (tmp_path / "fakesnow.log").open("w")
    server = subprocess.Popen(
        [str(FAKESNOW), "-s", "-p", str(port), "-d", str(tmp_path / "fakesnow")], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "fakesnow.log").read_text()) from None
                time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def connect(port: int) -> snowflake.connector.SnowflakeConnection:
    return snowflake.connector.connect(
        account="local", user="test", password="test", database=DATABASE, schema=SCHEMA,
        host="localhost", port=port, protocol="http", session_parameters={"TIMEZONE": "UTC"},
    )  # fmt: skip


def publish_by_hand(port: int, rows: dict[str, list[dict]]) -> None:
    """Every gold table as the publish leaves it: gold columns, then _LOADED_AT and _RUN_ID, with `rows`."""
    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    conn = connect(port)
    cur = conn.cursor()
    cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA}")
    for name, table in GOLD.items():
        columns = [c for c, _ in table.columns]
        ddl = ", ".join(f"{c.upper()} {snowflake_type(c)}" for c in columns)
        cur.execute(f"CREATE OR REPLACE TABLE {DATABASE}.{SCHEMA}.{name.upper()} ({ddl}, "
                    "_LOADED_AT TIMESTAMP_NTZ, _RUN_ID VARCHAR)")  # fmt: skip
        values = [tuple(r.get(c) for c in columns) + (loaded_at, RUN_ID) for r in rows.get(name, [])]
        if values:
            marks = ", ".join(["%s"] * (len(columns) + 2))
            cur.executemany(f"INSERT INTO {DATABASE}.{SCHEMA}.{name.upper()} VALUES ({marks})", values)
    conn.close()


def dbt(command: list[str], port: int, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """`dbt <command>` on dbt/ against the fakesnow server; returns the process and run_results.json by test."""
    target = tmp_path / "dbt-target"
    env = {
        **os.environ,
        "FAKESNOW_PORT": str(port),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": str(PROJECT),
    }
    done = subprocess.run(
        [str(DBT), *command, "--project-dir", str(PROJECT), "--target-path", str(target),
         "--log-path", str(tmp_path / "dbt-logs"), "--no-partial-parse"],
        check=False, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    results_file = target / "run_results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {"results": []}
    return done, {r["unique_id"]: r["status"] for r in results["results"]}


def test_dbt_build_passes_and_the_finance_mart_equals_the_hand_figures(fakesnow_server, tmp_path):
    publish_by_hand(fakesnow_server, ROWS)
    done, statuses = dbt(["build"], fakesnow_server, tmp_path)
    assert done.returncode == 0, done.stdout[-4000:]
    tests = {k: v for k, v in statuses.items() if k.startswith("test.")}
    # every generated source test ran: not_null per key column, the key tests, the relationships
    assert sum("source_not_null_northstar" in k for k in tests) == sum(len(g.key) for g in GOLD.values())
    assert sum("source_northstar_unique_key_northstar" in k for k in tests) == 8  # all compound keys
    assert any("source_unique_northstar_dim_customer_customer_sk" in k for k in tests)
    assert sum("relationships" in k for k in tests) == 7
    assert set(tests.values()) == {"pass"}, tests
    assert statuses["model.northstar.finance_daily_net_revenue"] == "success"

    conn = connect(fakesnow_server)
    rows = (
        conn.cursor()
        .execute(
            "SELECT revenue_date, currency, order_count, gross_amount, refund_count, refund_amount, net_amount, "
            "net_amount_from_facts, matches_facts FROM NORTHSTAR.MARTS.FINANCE_DAILY_NET_REVENUE "
            "ORDER BY revenue_date, currency"
        )
        .fetchall()
    )
    conn.close()
    assert [tuple(r) for r in rows] == EXPECTED_MART

    # freshness on _loaded_at: the tables loaded a moment ago pass; a table with no row has no max(_loaded_at),
    # which dbt reports as stale (exit 1): the check cannot pass on an empty warehouse table
    fresh, _ = dbt(["source", "freshness"], fakesnow_server, tmp_path)
    assert fresh.returncode == 1
    freshness = json.loads((tmp_path / "dbt-target" / "sources.json").read_text())["results"]
    by_table = {r["unique_id"].rsplit(".", 1)[-1]: r["status"] for r in freshness}
    assert by_table == {name: "pass" if name in ROWS else "error" for name in GOLD}


def test_a_duplicate_gold_key_fails_the_unique_key_test(fakesnow_server, tmp_path):
    duplicated = {**ROWS, "fact_orders": [*ROWS["fact_orders"], ROWS["fact_orders"][0]]}
    publish_by_hand(fakesnow_server, duplicated)
    done, statuses = dbt(["build"], fakesnow_server, tmp_path)
    assert done.returncode == 1
    failed = [k for k, v in statuses.items() if v in ("fail", "error")]
    assert len(failed) == 1
    assert "source_northstar_unique_key_northstar_fact_orders_" in failed[0]
    # the mart reads fact_orders: dbt build does not build it on a failed source test
    assert statuses["model.northstar.finance_daily_net_revenue"] == "skipped"


def test_an_order_view_row_without_its_order_fails_and_an_early_refund_only_warns(fakesnow_server, tmp_path):
    """order_status is built from the orders, so an orphan is an error; a refund of an order still to arrive is
    kept by gold by design, so its relationships test only warns."""
    orphans = {
        **ROWS,
        "order_status": [dict(source_system="marketplace", order_id="MO-404", order_date=D25, status="paid")],
        "fact_refunds": [
            *ROWS["fact_refunds"],
            dict(source_system="marketplace", refund_id="R-3", order_id="MO-405", refund_date=D25,
                 status="requested", currency="USD", refund_amount=Decimal("1.00"), sales_channel="unknown"),
        ],
    }  # fmt: skip
    publish_by_hand(fakesnow_server, orphans)
    done, statuses = dbt(["build"], fakesnow_server, tmp_path)
    assert done.returncode == 1
    failed = [k for k, v in statuses.items() if v in ("fail", "error")]
    warned = [k for k, v in statuses.items() if v == "warn"]
    assert len(failed) == 1
    assert "relationships_key_northstar_order_status" in failed[0]
    assert len(warned) == 1
    assert "relationships_key_northstar_fact_refunds" in warned[0]
    assert statuses["model.northstar.finance_daily_net_revenue"] == "success"  # it does not read order_status
