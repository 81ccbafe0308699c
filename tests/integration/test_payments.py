"""silver.payments from Stripe's list API and its webhooks, end to end (landing -> bronze -> silver -> model ->
gold): one row per charge id whichever channel saw it, the latest state winning; duplicated and out-of-order
deliveries; objects that are not charges accounted in the ledger; a re-run and a full refresh that change
nothing. Webhook deliveries are built from Stripe's documented Event and Charge (tests/helpers/stripe_docs.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from northstar import ledger
from northstar.config import load_source
from northstar.gold.runner import run_gold
from northstar.lake import tables
from northstar.models import payments, runner
from northstar.models.runner import run_models
from northstar.silver.pipeline import run_source
from tests.helpers import snapshots
from tests.helpers.envs import make_env
from tests.helpers.stripe_docs import DOCS_CHARGE, DOCS_EVENT, charge, event

D = Decimal
BASE = 1_794_000_000  # 2026-11-06T00:40:00Z, epoch seconds as Stripe sends them
LIST_API, WEBHOOKS = "silver.stripe_charges", "silver.stripe_events_objects"
LEDGER_KEYS = {"stripe:stripe.charges": LIST_API, "stripe:stripe_events.objects": WEBHOOKS}

DOCS_ID = DOCS_CHARGE["id"]  # ch_3MmlLrLkdIwHu7ix0snN0B15: seen only by a webhook
LIST_ONLY = charge(
    id="ch_1ListOnly", amount=2500, currency="eur", created=BASE, metadata={"order_id": "NS-1"}
)
WEBHOOK_NEWER = charge(id="ch_1WebhookNewer", amount=5000, created=BASE + 10, metadata={"order_id": "NS-2"})
LIST_NEWER = charge(
    id="ch_1ListNewer", amount=1000, currency="jpy", created=BASE + 20, metadata={"order_id": "NS-3"}
)
OUT_OF_ORDER = charge(id="ch_1OutOfOrder", amount=3000, created=BASE + 30, metadata={"order_id": "NS-4"})
SAME_SECOND = charge(id="ch_1SameSecond", amount=700, created=BASE + 40, metadata={"order_id": "NS-5"})


def refunded(obj: dict, amount: int | None = None) -> dict:
    """The charge after a refund (Stripe keeps status `succeeded` and sets amount_refunded)."""
    amount = obj["amount"] if amount is None else amount
    return {**obj, "amount_refunded": amount, "refunded": amount == obj["amount"]}


def extracted(obj: dict, seconds: int) -> dict:
    """A list API record: the charge as GET /v1/charges returns it, stamped with the extraction time."""
    return {**obj, "_extracted_at": datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")}


PAYMENT_INTENT = {
    "id": "pi_1OutOfOrder",
    "object": "payment_intent",
    "amount": 3000,
    "currency": "usd",
    "status": "succeeded",
    "latest_charge": OUT_OF_ORDER["id"],
    "created": BASE + 30,
}
DISPUTE = {
    "id": "dp_1ListNewer",
    "object": "dispute",
    "amount": 1000,
    "charge": LIST_NEWER["id"],
    "currency": "jpy",
    "reason": "fraudulent",
    "status": "needs_response",
    "created": BASE + 8000,
}
# the second delivery of one refund: the same bytes twice (at-least-once)
OUT_OF_ORDER_REFUND = event("evt_1OutOfOrderRefund", "charge.refunded", BASE + 5000, refunded(OUT_OF_ORDER))
WEBHOOK_NEWER_REFUND = event(
    "evt_1WebhookNewerRefund", "charge.refunded", BASE + 3600, refunded(WEBHOOK_NEWER)
)

FIRST = {
    "charges": [extracted(LIST_ONLY, BASE + 900), extracted(WEBHOOK_NEWER, BASE + 600)],
    "events": [
        event("evt_3MmlLrLkdIwHu7ix0b2JtmBq", "charge.succeeded", DOCS_CHARGE["created"], DOCS_CHARGE),
        DOCS_EVENT,  # setup_intent.created: not a payment
        event("evt_1OutOfOrderIntent", "payment_intent.succeeded", BASE + 30, PAYMENT_INTENT),
        OUT_OF_ORDER_REFUND,  # the refund arrives before the charge.succeeded it follows ...
        OUT_OF_ORDER_REFUND,  # ... and twice
        event("evt_1SameSecond0", "charge.succeeded", BASE + 40, SAME_SECOND),
        event("evt_1ListNewerPaid", "charge.succeeded", BASE + 20, LIST_NEWER),
        WEBHOOK_NEWER_REFUND,
    ],
}
SECOND = {
    "charges": [extracted(refunded(LIST_NEWER, 400), BASE + 7200)],  # a refund no webhook told us about
    "events": [
        event("evt_1OutOfOrderPaid", "charge.succeeded", BASE + 30, OUT_OF_ORDER),  # late and older
        event(
            "evt_1SameSecond1", "charge.refunded", BASE + 40, refunded(SAME_SECOND)
        ),  # same second: id decides
        event("evt_1ListNewerDispute", "charge.dispute.created", BASE + 8000, DISPUTE),
        WEBHOOK_NEWER_REFUND,  # re-delivered a day later
    ],
}

EXPECTED_SCHEMA = (
    "payment_id string, order_id string, status string, currency string, amount decimal(18,2), "
    "amount_refunded decimal(18,2), created_at timestamp, updated_at timestamp, source_event_id string, "
    "_source_table string"
)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# one row per charge id, the latest state, by hand from FIRST and SECOND
EXPECTED = [
    (DOCS_ID, None, "succeeded", "USD", D("10.99"), D("0.00"), at(1679090539), at(1679090539),
     "evt_3MmlLrLkdIwHu7ix0b2JtmBq", WEBHOOKS),  # only a webhook saw it
    ("ch_1ListOnly", "NS-1", "succeeded", "EUR", D("25.00"), D("0.00"), at(BASE), at(BASE + 900), "", LIST_API),
    ("ch_1WebhookNewer", "NS-2", "succeeded", "USD", D("50.00"), D("50.00"), at(BASE + 10), at(BASE + 3600),
     "evt_1WebhookNewerRefund", WEBHOOKS),  # the refund event (3600) is newer than the snapshot (600)
    ("ch_1ListNewer", "NS-3", "succeeded", "JPY", D("1000.00"), D("400.00"), at(BASE + 20), at(BASE + 7200), "",
     LIST_API),  # the snapshot (7200) is newer than the charge.succeeded (20); JPY has no minor unit
    ("ch_1OutOfOrder", "NS-4", "succeeded", "USD", D("30.00"), D("30.00"), at(BASE + 30), at(BASE + 5000),
     "evt_1OutOfOrderRefund", WEBHOOKS),  # the late charge.succeeded does not undo the refund
    ("ch_1SameSecond", "NS-5", "succeeded", "USD", D("7.00"), D("7.00"), at(BASE + 40), at(BASE + 40),
     "evt_1SameSecond1", WEBHOOKS),  # two events of one second: the higher event id, as silver orders them
]  # fmt: skip


def land(env, folder: str, name: str, records: list[dict]) -> None:
    target = Path(env.landing) / "stripe" / folder
    target.mkdir(parents=True, exist_ok=True)
    (target / name).write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))


def deliver(spark, env, batch: dict, name: str) -> list[ledger.LedgerEntry]:
    """Land one delivery of each channel, bring silver up to date, run the payments model."""
    land(env, "charges", f"{name}.jsonl", batch["charges"])
    land(env, "events", f"{name}.jsonl", batch["events"])
    for entry in run_source(spark, env, load_source("stripe"), tables=["charges"]):
        assert entry.status == "success", entry
    for entry in run_source(spark, env, load_source("stripe_events")):
        assert entry.status == "success", entry
    return run_models(spark, env, "payments")


def by_input(entries) -> dict[str, ledger.LedgerEntry]:
    assert {e.source for e in entries} == set(LEDGER_KEYS)
    assert all(e.table_name == "payments" and e.balanced for e in entries)
    return {LEDGER_KEYS[e.source]: e for e in entries}


def counts(entry) -> tuple:
    return (entry.records_read, entry.records_written, entry.records_duplicate, entry.records_quarantined)


def model(spark, env):
    return spark.read.format("delta").load(tables.model("payments").path(env))


def model_runs(spark, env) -> tuple:
    """Totals over every payments run in the ledger: what a re-run must not change."""
    runs = ledger.read(spark, env).where("layer = 'model' AND table_name = 'payments'")
    row = runs.agg(
        *[F.sum(c).alias(c) for c in ("records_read", "records_written", "records_duplicate")]
    ).first()
    return tuple(row)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    env = make_env(tmp_path_factory.mktemp("payments"))
    first = by_input(deliver(spark, env, FIRST, "first"))
    second = by_input(deliver(spark, env, SECOND, "second"))
    return env, first, second


def test_one_row_per_charge_id_with_its_latest_state_whichever_channel_saw_it(spark, lake):
    env, _, _ = lake
    expected = spark.createDataFrame(EXPECTED, EXPECTED_SCHEMA)
    got = model(spark, env)
    assert got.where("source_system != 'stripe'").count() == 0
    assert_df_equality(got.select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True)
    assert set(payments.COLUMNS) == set(got.columns)  # no card or billing field reached the model


def test_webhook_objects_that_are_not_charges_are_accounted_for(lake):
    _, first, second = lake
    # first: the list API's 2 snapshots create the table; the 7 webhook objects are 5 charges (1 of them the
    # list API's ch_1WebhookNewer, updated by its newer refund) and 2 others (setup intent, payment intent)
    assert counts(first[LIST_API]) == (2, 2, 0, 0)
    assert counts(first[WEBHOOKS]) == (5, 5, 0, 0)
    assert first[WEBHOOKS].details[payments.NOT_A_CHARGE] == 2
    assert (first[WEBHOOKS].details["inserted"], first[WEBHOOKS].details["updated"]) == (4, 1)
    assert payments.NOT_A_CHARGE not in first[LIST_API].details
    # second: silver changed ch_1SameSecond (the same second's later event) and gained the dispute; the late
    # charge.succeeded and the re-delivered refund never changed silver, so the model does not see them
    assert counts(second[LIST_API]) == (1, 1, 0, 0)
    assert second[LIST_API].details["updated"] == 1
    assert counts(second[WEBHOOKS]) == (1, 1, 0, 0)
    assert second[WEBHOOKS].details[payments.NOT_A_CHARGE] == 1


def test_gold_fact_payments_has_one_row_per_charge(spark, lake):
    env, _, _ = lake
    [facts] = [e for e in run_gold(spark, env) if e.table_name == "fact_payments"]
    assert facts.status == "success"
    assert facts.details["published"] == 1  # its audit (unique key, amounts, net >= 0) passed
    got = spark.read.format("delta").load(tables.gold("fact_payments").path(env))
    expected = spark.createDataFrame(
        [
            (DOCS_ID, "2023-03-17", "USD", D("10.99")),
            ("ch_1ListOnly", "2026-11-06", "EUR", D("25.00")),
            ("ch_1WebhookNewer", "2026-11-06", "USD", D("0.00")),
            ("ch_1ListNewer", "2026-11-06", "JPY", D("600.00")),
            ("ch_1OutOfOrder", "2026-11-06", "USD", D("0.00")),
            ("ch_1SameSecond", "2026-11-06", "USD", D("0.00")),
        ],
        "payment_id string, payment_date string, currency string, net_amount decimal(18,2)",
    ).withColumn("payment_date", F.to_date("payment_date"))
    assert_df_equality(got.select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True)


def test_running_the_model_again_changes_nothing(spark, lake):
    env, _, _ = lake
    paths = {"payments": tables.model("payments").path(env)}
    versions, totals = snapshots.versions(spark, paths), model_runs(spark, env)
    again = by_input(run_models(spark, env, "payments"))
    assert [e.status for e in again.values()] == ["noop", "noop"]
    assert snapshots.versions(spark, paths) == versions
    assert model_runs(spark, env) == totals


def test_a_failed_full_refresh_changes_no_row_and_keeps_each_inputs_window(spark, lake, monkeypatch):
    env, _, _ = lake
    paths = {"payments": tables.model("payments").path(env)}
    versions = snapshots.versions(spark, paths)

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runner, "_overwrite", disk_full)  # the one commit that replaces stripe's rows
    with pytest.raises(OSError, match="disk full"):
        run_models(spark, env, "payments", full_refresh=True)
    failed = ledger.read(spark, env).where("layer = 'model' AND status = 'failed'").collect()
    assert {r.source for r in failed} == set(LEDGER_KEYS)  # both inputs' runs failed, neither half-done
    assert snapshots.versions(spark, paths) == versions
    monkeypatch.undo()
    assert [e.status for e in run_models(spark, env, "payments")] == ["noop", "noop"]  # nothing to catch up


def test_full_refresh_rebuilds_both_inputs_and_keeps_every_charge(spark, lake):
    env, _, _ = lake
    paths = {"payments": tables.model("payments").path(env)}
    versions = snapshots.versions(spark, paths)
    replay = by_input(run_models(spark, env, "payments", full_refresh=True))
    assert all(e.status == "success" and e.details["full_refresh"] == 1 for e in replay.values())
    # read whole: each input's older state of a charge the other saw newer is superseded, not written
    assert counts(replay[LIST_API]) == (3, 2, 1, 0)  # ch_1WebhookNewer's snapshot is older than its refund
    assert counts(replay[WEBHOOKS]) == (
        5,
        4,
        1,
        0,
    )  # ch_1ListNewer's charge.succeeded is older than its snapshot
    assert replay[WEBHOOKS].details[payments.NOT_A_CHARGE] == 3
    assert snapshots.versions(spark, paths)["payments"] == versions["payments"] + 1  # one commit ...
    snapshots.assert_rows_unchanged(spark, paths, versions)  # ... with the same rows: no input's charges lost
