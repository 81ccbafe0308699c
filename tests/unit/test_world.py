"""The demo's one world without Spark: the simulator's Stripe payments of its orders and the 3PL drops of the
same orders agree with the orders per day, as conf/reconciliation/daily.yaml compares them."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from northstar.dev.generate.finance_totals import totals_from_orders
from northstar.dev.generate.shipments import shipments_from_orders
from northstar.dev.simulate.partner_api import PartnerApiSimulator, minor_units
from northstar.dev.world import business_days

PAID = ("paid", "shipped", "delivered")


@pytest.fixture(scope="module")
def sim() -> PartnerApiSimulator:
    return PartnerApiSimulator(orders=400, stripe_from_orders=True, seed=3)


def test_minor_units_follow_the_currency_exponent():
    assert minor_units(19.99, "usd") == 1999
    assert minor_units(500, "JPY") == 500
    assert minor_units("1.234", "kwd") == 1234
    with pytest.raises(ValueError, match="decimals"):
        minor_units("12.5", "JPY")


def test_one_succeeded_charge_per_paid_order_with_its_total_on_its_day(sim):
    orders = sim.final_records("orders")
    charges = sim.ground_truth("charges", api="stripe")
    succeeded = [c for c in charges.values() if c["status"] == "succeeded"]
    by_order = Counter(c["metadata"]["order_id"] for c in succeeded)
    assert set(by_order) == {k for k, o in orders.items() if o["status"] in PAID}
    assert set(by_order.values()) == {1}
    failed = {c["metadata"]["order_id"] for c in charges.values() if c["status"] == "failed"}
    assert failed == {k for k, o in orders.items() if o["status"] == "cancelled"}
    figures: dict[tuple, Decimal] = defaultdict(Decimal)
    for c in succeeded:
        figures[(datetime.fromtimestamp(c["created"], UTC).date(), c["currency"].upper())] += Decimal(
            c["amount"]
        )
    want = totals_from_orders(orders.values())
    assert {k: v / 100 for k, v in figures.items()} == {k: total for k, (_, total) in want.items()}


def test_stripe_refunds_mirror_the_partners_completed_refunds(sim):
    charges = sim.ground_truth("charges", api="stripe")
    order_of = {c["id"]: c["metadata"]["order_id"] for c in charges.values()}
    stripe = {order_of[r["charge"]]: r["amount"] for r in sim.ground_truth("refunds", api="stripe").values()}
    paid = {k for k, o in sim.final_records("orders").items() if o["status"] in PAID}
    partner = {
        r["order_id"]: minor_units(r["amount"], r["currency"])
        for r in sim.final_records("refunds").values()
        if r["status"] == "refunded" and r["order_id"] in paid
    }
    assert stripe == partner
    assert partner


def test_one_shipment_per_shipped_order_latest_scan_on_the_orders_update_day(sim, tmp_path):
    orders = sim.final_records("orders")
    truth = shipments_from_orders(tmp_path, orders.values(), seed=5)
    scans = Counter(at.date() for latest in truth.latest.values() for _, at in latest.values())
    shipped = [o for o in orders.values() if o["status"] in ("shipped", "delivered")]
    days = Counter(datetime.fromisoformat(o["updated_at"].replace("Z", "+00:00")).date() for o in shipped)
    assert scans == days
    statuses = Counter(status for latest in truth.latest.values() for status, _ in latest.values())
    assert statuses == Counter(o["status"] for o in shipped)
    assert all(len(truth.files[p]) > 1 for p in ("acme", "bolt"))


def test_business_days_span_checkout_to_the_last_status_change(sim):
    last, days = business_days(sim.final_records("orders").values())
    assert last.isoformat() > "2026-11-04"
    assert days >= 4
