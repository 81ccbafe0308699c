"""Payments, shipments and the customer dimension on tiny DataFrames: Stripe minor units with the currency's
exponent (JPY is not /100), no card data in payments, shipment statuses conformed, SCD type 2 versions that do
not depend on arrival order, and the customer's details carried by silver.orders only as tokens."""

from datetime import datetime
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import functions as F

from northstar.gold import transforms as t
from northstar.models import common as c
from northstar.models import orders, payments, shipments
from northstar.models.spec import load_model
from tests.helpers.model_rows import CTX, frame, order

D = Decimal
KEY = b"unit-test-key"


def test_stripe_minor_units_use_the_currency_exponent(spark):
    rows = [
        (1999, "USD"),
        (500, "JPY"),
        (123456, "KRW"),
        (1230, "KWD"),
        (1235, "KWD"),
        (None, "USD"),
        (7, "EUR"),
    ]
    out = (
        spark.createDataFrame(rows, "minor bigint, currency string")
        .select(c.from_minor_units(F.col("minor"), F.col("currency")).alias("amount"))
        .collect()
    )
    # 1999 cents = 19.99; JPY and KRW have no minor unit; KWD has 3 decimals (1230 fils = 1.230, but 1.235
    # would need rounding to fit decimal(18,2): null, so the model quarantines it); 7 cents = 0.07
    assert [r.amount for r in out] == [
        D("19.99"),
        D("500.00"),
        D("123456.00"),
        D("1.23"),
        None,
        None,
        D("0.07"),
    ]


def test_a_minor_unit_amount_that_is_not_a_whole_number_is_null_not_rounded(spark):
    # a webhook's inferred JSON type can be double or text: 12.5 cents is no amount (the model quarantines it)
    rows = [("1999", "USD"), ("1999.0", "USD"), ("12.5", "USD"), ("500.4", "JPY"), ("abc", "USD")]
    out = (
        spark.createDataFrame(rows, "minor string, currency string")
        .select(c.from_minor_units(F.col("minor"), F.col("currency")).alias("amount"))
        .collect()
    )
    assert [r.amount for r in out] == [D("19.99"), D("19.99"), None, None, None]


CHARGE_SCHEMA = (
    "id string, amount bigint, amount_refunded bigint, currency string, status string, created bigint, "
    "_extracted_at timestamp, metadata struct<order_id:string>, billing_details struct<email:string,name:string>, "
    "payment_method_details struct<type:string,card:struct<brand:string,last4:string,fingerprint:string>>, "
    "_record_hash string, _landing_file string, _rescued_data string"
)


def charge(charge_id, amount, currency, status="succeeded", refunded=0, order_id="MO-1"):
    card = {"type": "card", "card": {"brand": "visa", "last4": "4242", "fingerprint": "fp123"}}
    return (
        charge_id, amount, refunded, currency, status, 1772359200, datetime(2026, 3, 2), {"order_id": order_id},
        {"email": "e" * 64, "name": "n" * 64}, card, f"h-{charge_id}", "f", None,
    )  # fmt: skip


def test_stripe_charges_conform_without_card_data_and_bad_rows_are_quarantined(spark):
    spec = load_model("payments")
    item = spec.inputs[0]
    ctx = c.MappingContext(item.system, "silver.stripe_charges", item.status_map)
    rows = [
        charge("ch_1", 12345, "usd", refunded=2345),
        charge("ch_2", 5000, "jpy"),  # zero-decimal: 5000 yen, not 50.00
        charge("ch_3", 100, "usd", status="requires_capture"),  # not in the status_map
        charge("ch_4", 1235, "kwd"),  # 3-decimal currency, would need rounding
    ]
    out = {
        r.payment_id: r
        for r in payments.stripe_charges(spark.createDataFrame(rows, CHARGE_SCHEMA), ctx).collect()
    }
    assert (out["ch_1"].amount, out["ch_1"].amount_refunded, out["ch_1"].currency) == (
        D("123.45"),
        D("23.45"),
        "USD",
    )
    assert out["ch_1"].order_id == "MO-1"
    assert out["ch_1"].status == "succeeded"
    assert out["ch_1"][c.REASON] is None
    assert out["ch_1"].created_at == datetime(2026, 3, 1, 10)  # 1772359200 s = 2026-03-01T10:00Z
    assert out["ch_2"].amount == D("5000.00")
    assert out["ch_3"][c.REASON] == c.UNMAPPED_STATUS
    assert "conf/models/payments.yaml" in out["ch_3"][c.REASON_DETAIL]
    assert out["ch_4"][c.REASON] == c.UNPARSEABLE_AMOUNT
    assert "amount" in out["ch_4"][c.REASON_DETAIL]
    columns = set(payments.stripe_charges(spark.createDataFrame(rows, CHARGE_SCHEMA), ctx).columns)
    assert (
        not {"card", "last4", "fingerprint", "brand", "billing_details", "payment_method_details"} & columns
    )
    facts = t.payment_facts(
        payments.stripe_charges(spark.createDataFrame(rows[:2], CHARGE_SCHEMA), ctx).select(*payments.COLUMNS)
    )
    assert {r.payment_id: (r.payment_date.isoformat(), r.net_amount) for r in facts.collect()} == {
        "ch_1": ("2026-03-01", D("100.00")),  # 123.45 - 23.45
        "ch_2": ("2026-03-01", D("5000.00")),
    }


# silver.stripe_events_objects as silver holds it: the event's columns, the object inside `data` (its inferred
# types: a double `amount` where one delivery sent a fraction), object_id/object_type derived
EVENT_SCHEMA = (
    "id string, type string, created bigint, object_id string, object_type string, "
    "data struct<object:struct<id:string,object:string,amount:double,amount_refunded:bigint,currency:string,"
    "status:string,created:bigint,metadata:struct<order_id:string>>>, "
    "_record_hash string, _landing_file string, _rescued_data string"
)


def webhook(
    event_id, event_type, created, charge_id, amount=2000.0, status="succeeded", charge_created=1772359200
):
    obj = {"id": charge_id, "object": "charge", "amount": amount, "amount_refunded": 0, "currency": "usd",
           "status": status, "created": charge_created, "metadata": {"order_id": "MO-1"}}  # fmt: skip
    return (event_id, event_type, created, charge_id, "charge", {"object": obj}, f"h-{event_id}", "f", None)


def test_webhook_charges_conform_like_the_list_api_with_the_event_time_and_id(spark):
    spec = load_model("payments")
    item = spec.inputs[1]
    assert (item.source, item.table, item.system, item.mapping) == (
        "stripe_events", "objects", "stripe", "stripe_event_charges"
    )  # fmt: skip
    ctx = c.MappingContext(item.system, "silver.stripe_events_objects", item.status_map)
    rows = [
        webhook("evt_1", "charge.succeeded", 1772359260, "ch_1"),
        webhook("evt_2", "charge.succeeded", 1772359260, "ch_2", amount=12.5),  # 12.5 cents: no amount
        webhook("evt_3", "charge.succeeded", 1772359260, "ch_3", charge_created=None),
    ]
    out = payments.stripe_event_charges(spark.createDataFrame(rows, EVENT_SCHEMA), ctx)
    expected = spark.createDataFrame(
        [
            ("ch_1", "MO-1", "succeeded", D("20.00"), datetime(2026, 3, 1, 10), datetime(2026, 3, 1, 10, 1), "evt_1", None),
            ("ch_2", "MO-1", "succeeded", None, datetime(2026, 3, 1, 10), datetime(2026, 3, 1, 10, 1), "evt_2", c.UNPARSEABLE_AMOUNT),
            ("ch_3", "MO-1", "succeeded", D("20.00"), None, datetime(2026, 3, 1, 10, 1), "evt_3", c.MISSING_REQUIRED),
        ],
        "payment_id string, order_id string, status string, amount decimal(18,2), created_at timestamp, "
        f"updated_at timestamp, source_event_id string, {c.REASON} string",
    )  # fmt: skip
    assert_df_equality(out.select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True)
    assert list(out.select(*payments.COLUMNS).columns) == payments.COLUMNS
    assert "_source_table" in out.columns


def test_only_webhook_objects_that_are_charges_are_payments(spark):
    rows = [
        webhook("evt_1", "charge.succeeded", 1, "ch_1"),
        ("evt_2", "payment_intent.succeeded", 1, "pi_1", "payment_intent", None, "h2", "f", None),
        ("evt_3", "setup_intent.created", 1, "seti_1", None, None, "h3", "f", None),
    ]
    frame = spark.createDataFrame(rows, EVENT_SCHEMA)
    assert [r.object_id for r in frame.where(payments.is_charge(frame)).collect()] == ["ch_1"]
    assert payments.ROW_FILTERS["stripe_event_charges"] == (payments.NOT_A_CHARGE, payments.is_charge)


SHIPMENT_SCHEMA = (
    "shipment_id string, order_id string, status string, status_time timestamp, carrier string, "
    "tracking_number string, warehouse string, cartons int, weight_kg decimal(9,2), notes string, "
    "_record_hash string, _landing_file string, _rescued_data string"
)


def test_partner_shipments_conform_statuses_and_quarantine_unknown_ones(spark):
    spec = load_model("shipments")
    assert [i.system for i in spec.inputs] == ["wms_acme", "wms_bolt"]
    ctx = c.MappingContext("wms_bolt", "silver.wms_shipments_bolt", spec.inputs[1].status_map)
    rows = [
        ("BO-1", "MO-1", "out_for_delivery", datetime(2026, 3, 1, 23, 50), "DHL", "1Z", "RNO1", 2, D("3.25"), "", "h1", "f", None),
        ("BO-2", "MO-2", "Lost", datetime(2026, 3, 1, 9), "UPS", "1Z", "ATL2", 1, D("1.00"), "", "h2", "f", None),
    ]  # fmt: skip
    out = {
        r.shipment_id: r
        for r in shipments.partner_shipments(spark.createDataFrame(rows, SHIPMENT_SCHEMA), ctx).collect()
    }
    assert (out["BO-1"].status, out["BO-1"].source_status, out["BO-1"].source_system) == (
        "in_transit",
        "out_for_delivery",
        "wms_bolt",
    )
    assert out["BO-1"].weight_kg == D("3.25")
    assert out["BO-1"].cartons == 2
    assert out["BO-1"][c.REASON] is None
    assert out["BO-2"][c.REASON] == c.UNMAPPED_STATUS
    fact = t.shipment_facts(
        shipments.partner_shipments(spark.createDataFrame(rows[:1], SHIPMENT_SCHEMA), ctx)
    )
    assert fact.first().shipment_date.isoformat() == "2026-03-01"  # the UTC day of the latest status


def test_orders_carry_the_customer_details_only_as_tokens(spark):
    token = "e" * 64  # what silver holds after its pii: tokenization
    customer = {"customer_id": "C-1", "email": token, "name": "b" * 64, "shipping_address": {"country": "us"}}
    rows = [
        order(spark, "A", customer=customer),
        order(spark, "B"),  # a silver table built before its pii: list: raw values never go further
    ]
    out = {r.order_id: r for r in orders.partner_orders(frame(spark, rows), CTX).collect()}
    assert (out["A"].customer_email_token, out["A"].customer_name_token) == (
        token,
        "b" * 64,
    )  # passed through
    assert (out["B"].customer_email_token, out["B"].customer_name_token) == (
        None,
        None,
    )  # not "a@example.com"
    assert out["A"].customer_phone_token is None
    assert out["A"].ship_to_city_token is None  # not delivered


DIM_INPUT = (
    "source_system string, order_id string, customer_token string, created_at timestamp, "
    "customer_email_token string, customer_phone_token string, customer_name_token string, "
    "ship_to_country string, ship_to_city_token string"
)


def o(order_id, day, email, customer="ca", country="US"):
    return ("marketplace", order_id, customer, datetime(2026, 3, day, 12), email, "p1", "n1", country, "c1")


HISTORY = [
    o("O1", 1, "e1"),
    o("O2", 2, "e1"),  # same details: no new version
    o("O3", 4, "e2"),  # email changed: version 2
    o("O4", 6, "e2", country="DE"),  # moved: version 3
    o("O5", 2, "x1", customer="cb"),
    (
        "marketplace",
        "O6",
        None,
        datetime(2026, 3, 1),
        None,
        None,
        None,
        "US",
        None,
    ),  # no customer: not a version
]
LATE = o("O7", 3, "e1")  # created on day 3 with the old email, delivered after O4


def dimension(spark, rows):
    frame = t.customer_dimension(spark.createDataFrame(rows, DIM_INPUT))
    return sorted(tuple(r) for r in frame.collect())


def versions(spark, rows) -> dict:
    """(customer_token, version) -> the row as a dict."""
    names = t.CUSTOMER_DIM_COLUMNS
    return {
        (r[1], r[names.index("version")]): dict(zip(names, r, strict=True)) for r in dimension(spark, rows)
    }


def test_scd2_versions_change_only_when_an_attribute_changes(spark):
    dim = versions(spark, HISTORY)
    assert sorted(dim) == [
        ("ca", 1),
        ("ca", 2),
        ("ca", 3),
        ("cb", 1),
    ]  # O2 repeats O1's details; O6 has no customer
    first, second, third = dim[("ca", 1)], dim[("ca", 2)], dim[("ca", 3)]
    assert (first["customer_email_token"], first["valid_from"], first["valid_to"]) == (
        "e1", datetime(2026, 3, 1, 12), datetime(2026, 3, 4, 12)
    )  # fmt: skip
    assert not first["is_current"]
    assert first["orders_in_version"] == 2  # O1 and O2
    assert (second["customer_email_token"], second["ship_to_country"], second["valid_to"]) == (
        "e2", "US", datetime(2026, 3, 6, 12)
    )  # fmt: skip
    assert (third["ship_to_country"], third["valid_to"], third["is_current"]) == ("DE", None, True)
    assert dim[("cb", 1)]["is_current"]
    assert len({r["customer_sk"] for r in dim.values()}) == 4


def test_scd2_late_order_gives_the_same_dimension_as_in_order_arrival(spark):
    in_order = sorted(HISTORY[:5] + [LATE], key=lambda r: r[3]) + HISTORY[5:]
    late_last = HISTORY + [LATE]
    assert dimension(spark, late_last) == dimension(spark, in_order) == dimension(spark, late_last[::-1])
    # O7 (day 3, e1) joins version 1, which now counts 3 orders; every surrogate key stays the same
    with_late = versions(spark, late_last)
    assert with_late[("ca", 1)]["orders_in_version"] == 3
    assert len(with_late) == 4
    assert {r["customer_sk"] for r in versions(spark, HISTORY).values()} == {
        r["customer_sk"] for r in with_late.values()
    }
