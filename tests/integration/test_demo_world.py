"""The demo's one world (northstar.dev.world) agrees with itself: the partner API simulator's orders and the
Stripe charges of the same orders, their 3PL drops and finance totals, through extract, bronze, silver, the
models and gold, pass the daily reconciliation with no breach, every fault on (the pipeline absorbs them)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from northstar.config import load_source
from northstar.dev.simulate.partner_api import START, Faults, PartnerApiSimulator
from northstar.dev.world import business_days, correct_repost, land_drops, reconcile_world, repost_finance_day
from northstar.extract.ratelimit import FakeClock
from northstar.extract.rest import run_extract
from northstar.gold.runner import run_gold
from northstar.models.runner import run_models
from northstar.reconciliation.corrections import read_log
from northstar.reconciliation.investigate import LATE_ARRIVING, investigate
from northstar.reconciliation.spec import load_recon
from northstar.silver.pipeline import run_source
from tests.helpers.api_sim import RATE, TOKEN, pointed_at

DELIVERIES = (START + timedelta(days=1, hours=12), START + timedelta(days=9))  # as the demo's


@pytest.fixture(autouse=True)
def secrets(monkeypatch):
    monkeypatch.setenv("NORTHSTAR_PARTNER_TOKEN", TOKEN)
    monkeypatch.setenv("NORTHSTAR_STRIPE_KEY", TOKEN)
    monkeypatch.setenv("NORTHSTAR_CUSTOMER_TOKEN_KEY", "tests-only-customer-token-key")
    monkeypatch.delenv("NORTHSTAR_CUSTOMER_TOKEN_KEY_REF", raising=False)


def test_the_clean_world_reconciles_with_no_breach_and_a_finance_repost_is_found(
    spark, env, marketplace, tmp_path
):
    # stamps a day old: silver orders Stripe snapshots by `_extracted_at`, a future one is quarantined
    clock = FakeClock(start=time.time() - 86_400)
    faults = Faults.everything(seed=5, timeouts=0)
    faults.bad_records = 0.3  # as the demo: broken extra lines, quarantined, no order lost
    sim = PartnerApiSimulator(
        orders=60, stripe_from_orders=True, seed=11, faults=faults, rate_limit=RATE, clock=clock, token=TOKEN
    )
    with sim:
        partner = pointed_at(marketplace, sim.partner_url)
        for when in DELIVERIES:
            sim.set_time(when)
            assert run_extract(env, partner, clock=clock).complete
            run_source(spark, env, partner)
        stripe = pointed_at(load_source("stripe"), sim.stripe_url)
        assert run_extract(env, stripe, clock=clock, tables=["charges"]).complete
    orders = sim.ground_truth("orders")
    assert orders == sim.final_records("orders")  # the partner has served every order's last version
    land_drops(env, orders.values(), posted_at=sim.time, seed=3)
    entries = run_source(spark, env, stripe, tables=["charges"])
    entries += run_source(spark, env, load_source("wms")) + run_source(
        spark, env, load_source("finance_totals")
    )
    entries += run_models(spark, env, "all") + run_gold(spark, env)
    # the model inputs of sources this world does not have (the shop's PostgreSQL, the Stripe webhooks): noops
    absent = [e for e in entries if e.details.get("input_table_missing")]
    assert {(e.source, e.status) for e in absent} == {
        ("shop_db", "noop"),
        ("stripe:stripe_events.objects", "noop"),
    }
    others = [e for e in entries if not e.details.get("input_table_missing")]
    assert all(e.status == "success" for e in others), [e for e in others if e.status != "success"]

    last, days = business_days(orders.values())
    report = tmp_path / "reconciliation.html"
    recon = reconcile_world(spark, env, last, days, report=report)

    assert recon.breaches == [], "\n".join(recon.format())
    # the shop's PostgreSQL is not part of this world: its comparisons are not run, naming what is missing
    assert set(recon.not_run) == {"lake_vs_source_shop_orders", "lake_vs_source_conformed_shop_orders"}
    assert all("silver.shop_db_orders missing - run" in reason for reason in recon.not_run.values())
    checked = {r["comparison"] for r in recon.rows}
    assert checked == {
        "orders_vs_payments",
        "orders_vs_finance",
        "payments_vs_finance",
        "lake_vs_source_orders",
        "orders_vs_fulfillment",
        "duplicates silver.orders",
        "duplicates silver.marketplace_orders",
    }
    paid_days = {r["business_date"] for r in recon.rows if r["comparison"] == "orders_vs_payments"}
    assert len(paid_days) >= 3  # orders are placed over three days
    shipped = sum(r["left_value"] for r in recon.rows if r["comparison"] == "orders_vs_fulfillment")
    assert shipped > 0
    assert sum(sim.stats.faults.values()) > 0, sim.stats.faults  # 5xx, partial pages, repeats, bad records
    assert "0 breaches" in recon.format()[0]
    assert report.read_text().count("orders_vs_payments") >= 1

    # the demo's known fault: finance re-posts the first day 1% higher; only the comparisons with finance breach
    repost = repost_finance_day(spark, env, orders.values(), posted_at=sim.time + timedelta(hours=6))
    again = reconcile_world(spark, env, last, days, run_id="world-fault")
    assert {(r["comparison"], r["business_date"], r["currency"], r["measure"]) for r in again.breaches} == {
        (name, repost.day, repost.currency, "sum") for name in ("orders_vs_finance", "payments_vs_finance")
    }
    found = investigate(spark, env, load_recon("daily"), "silver.finance_totals_daily_totals", repost.day)
    assert found.classification == LATE_ARRIVING, found.format()

    # the audited correction puts the posting back; the reconciliation is clean again, the log says who and why
    fix = correct_repost(spark, env, repost)
    assert (fix.action, fix.rows_affected) == ("update", 1)
    fixed = reconcile_world(spark, env, last, days, run_id="world-corrected")
    assert fixed.breaches == [], "\n".join(fixed.format())
    [logged] = [r for r in read_log(spark, env).collect() if r.correction_id == fix.correction_id]
    assert (logged.ticket, logged.who) == ("FIN-1042", "demo-operator")
