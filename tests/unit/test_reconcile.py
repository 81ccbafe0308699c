"""Reconciliation logic on tiny DataFrames: compare's thresholds and missing sides, an order counted once,
the duplicate-rate SLA, the HTML report, and the spec's error messages."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from northstar.config import ConfigError
from northstar.reconciliation import report_html
from northstar.reconciliation.reconcile import compare, daily_figures, duplicate_rate
from northstar.reconciliation.spec import TableProfile, load_recon
from tests.helpers.conf import load_from

D1, D2 = date(2026, 11, 23), date(2026, 11, 24)
FIGURES = "business_date date, currency string, count decimal(38,4), sum decimal(38,4)"


def _by_key(rows):
    return {(r["business_date"], r["currency"], r["measure"]): r for r in rows}


def test_compare_within_and_beyond_the_threshold_and_missing_sides(spark):
    finance = spark.createDataFrame(
        [
            (D1, "USD", Decimal(100), Decimal("10000.00")),
            (D1, "EUR", Decimal(50), Decimal("10000.00")),
            (D2, "USD", Decimal(10), Decimal("500.00")),  # the lake has no USD on D2
        ],
        FIGURES,
    )
    lake = spark.createDataFrame(
        [
            (D1, "USD", Decimal(100), Decimal("10004.99")),  # 0.0499%: within 0.05%
            (D1, "EUR", Decimal(50), Decimal("10005.00")),  # 0.05% exactly: the SLA is < 0.05%, a breach
            (D2, "GBP", Decimal(1), Decimal("20.00")),  # finance has no GBP on D2
        ],
        FIGURES,
    )
    rows = _by_key(compare(lake, finance, ["business_date", "currency"], ["count", "sum"], 0.05).collect())
    assert len(rows) == 8  # 4 (day, currency) keys x 2 measures
    usd = rows[(D1, "USD", "sum")]
    assert usd["status"] == "ok"
    assert usd["abs_variance"] == Decimal("4.99")
    assert usd["variance_pct"] == pytest.approx(0.0499)
    assert rows[(D1, "USD", "count")]["status"] == "ok"
    assert rows[(D1, "USD", "count")]["variance_pct"] == 0
    assert rows[(D1, "EUR", "sum")]["status"] == "breach"
    assert rows[(D1, "EUR", "sum")]["variance_pct"] == pytest.approx(0.05)
    missing_in_lake = rows[(D2, "USD", "sum")]
    assert missing_in_lake["status"] == "missing_left"
    assert missing_in_lake["left_value"] is None
    assert missing_in_lake["right_value"] == Decimal("500.0000")
    missing_in_finance = rows[(D2, "GBP", "count")]
    assert missing_in_finance["status"] == "missing_right"
    assert missing_in_finance["variance_pct"] is None


def test_an_order_is_counted_once_and_filters_apply(spark):
    charges = spark.createDataFrame(
        [
            ("ch1", "o1", 1_000, "usd", "succeeded", 1_795_392_400),  # 2026-11-23
            ("ch2", "o1", 1_000, "usd", "succeeded", 1_795_392_500),  # o1 charged twice: one order
            ("ch3", "o2", 2_550, "usd", "succeeded", 1_795_392_600),
            ("ch4", "o3", 9_999, "usd", "failed", 1_795_392_700),  # not captured: not counted
            ("ch5", "o4", 500, "eur", "succeeded", 1_795_478_400),  # 2026-11-24
        ],
        "id string, order_id string, amount bigint, currency string, status string, created bigint",
    )
    profile = TableProfile(
        key=["order_id"],
        date="timestamp_seconds(created)",
        currency="upper(currency)",
        amount="amount / 100",
        filter="status = 'succeeded'",
    )
    figures = {
        (r["business_date"], r["currency"]): (r["count"], r["sum"])
        for r in daily_figures(charges, profile).collect()
    }
    assert figures == {
        (D1, "USD"): (Decimal(2), Decimal("35.5000")),
        (D2, "EUR"): (Decimal(1), Decimal("5.0000")),
    }


def test_a_table_of_totals_gives_its_own_count(spark):
    totals = spark.createDataFrame(
        [(D1, "USD", 120, Decimal("999.50"))],
        "business_date date, currency string, n bigint, gross decimal(18,2)",
    )
    profile = TableProfile(
        key=["business_date", "currency"],
        date="business_date",
        currency="currency",
        amount="gross",
        count="n",
    )
    row = daily_figures(totals, profile).first()
    assert (row["count"], row["sum"]) == (Decimal(120), Decimal("999.5000"))


def test_duplicate_rate_against_the_sla(spark):
    # D1: 1000 orders, one of them twice (0.1%: the SLA is < 0.1%, a breach); D2: 1000 orders, none twice
    rows = [(f"o{n}", D1, 1.0) for n in range(1000)] + [("o7", D1, 1.0)]
    rows += [(f"p{n}", D2, 1.0) for n in range(1000)]
    orders = spark.createDataFrame(rows, "order_id string, created_at date, total double")
    profile = TableProfile(key=["order_id"], date="created_at", amount="total")
    rates = {r["business_date"]: r for r in duplicate_rate(orders, profile, 0.1).collect()}
    assert rates[D1]["left_value"] == 1
    assert rates[D1]["right_value"] == 1000
    assert rates[D1]["variance_pct"] == pytest.approx(0.1)
    assert rates[D1]["status"] == "breach"
    assert rates[D2]["variance_pct"] == 0
    assert rates[D2]["status"] == "ok"


def test_report_names_the_breaches_first_and_draws_charts_offline():
    base = {
        "comparison": "orders_vs_finance",
        "left_table": "silver.orders",
        "right_table": "silver.finance_totals_daily_totals",
        "currency": "USD",
        "measure": "sum",
        "threshold_pct": 0.05,
    }
    rows = [
        {
            **base,
            "business_date": D1,
            "left_value": Decimal(100),
            "right_value": Decimal(100),
            "abs_variance": Decimal(0),
            "variance_pct": 0.0,
            "status": "ok",
        },
        {
            **base,
            "business_date": D2,
            "left_value": Decimal(90),
            "right_value": Decimal(100),
            "abs_variance": Decimal(10),
            "variance_pct": 10.0,
            "status": "breach",
        },
    ]
    page = report_html.render(rows, "Reconciliation <daily>")
    assert "Reconciliation &lt;daily&gt;" in page  # escaped
    breaches = page.index("<h2>Breaches</h2>")
    first_chart = page.index("<svg")
    assert (
        breaches < page.index("2026-11-24") < first_chart
    )  # the breach row sits in the table above the charts
    assert "1 outside their threshold" in page
    assert page.count("<svg") == 2
    assert "threshold 0.05%" in page
    assert "<polyline" in page
    assert "<script" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_spec_errors_name_the_file_and_the_field(tmp_path):
    folder = tmp_path / "reconciliation"
    folder.mkdir()
    (folder / "daily.yaml").write_text(
        "tables:\n  a: {key: [id], date: d, amount: x}\n"
        "comparisons:\n  c:\n    left: {table: a}\n    right: {table: nope}\n    measures: [median]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_from(tmp_path, load_recon, "daily")
    message = str(err.value)
    assert "daily.yaml is not a valid reconciliation spec" in message
    assert "measures: unknown median; allowed: count, sum" in message
    (folder / "daily.yaml").write_text(
        "tables:\n  a: {key: [id], date: d, amount: x}\ncomparisons:\n  c: {left: {table: a}, right: {table: nope}}\n"
    )
    with pytest.raises(ConfigError, match=r"comparisons.c.right.table: nope is not under tables: \(a\)"):
        load_from(tmp_path, load_recon, "daily")


def test_the_shipped_spec_loads():
    spec = load_recon("daily")
    assert spec.thresholds.variance_pct == 0.05
    assert spec.thresholds.duplicate_rate_pct == 0.1
    assert {"orders_vs_payments", "orders_vs_finance", "lake_vs_source_orders"} <= set(spec.comparisons)
