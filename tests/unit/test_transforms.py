"""Bronze and silver transforms on tiny DataFrames (chispa)."""

import hashlib
import hmac
import json
from datetime import datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar.bronze import transforms as bronze
from northstar.config import ColumnSpec, TableSpec
from northstar.silver import transforms as silver
from northstar.transforms import cdc
from northstar.transforms.pii import tokenize

SPEC = TableSpec(
    format="jsonl",
    landing="x",
    primary_key=["id"],
    ordering=["ts"],
    columns=[
        ColumnSpec(name="id", type="string"),
        ColumnSpec(name="ts", type="bigint"),
        ColumnSpec(name="status", type="string", required=True),
    ],
)


def lines(spark, *values):
    return spark.createDataFrame(
        [(v, "f1") for v in values], f"{bronze.RAW} string, {bronze.LANDING_FILE} string"
    )


def test_blank_lines_are_not_records(spark):
    out = bronze.non_blank_lines(lines(spark, '{"id":"a"}', "", "   ", '{"id":"b"}'))
    assert [r[bronze.RAW] for r in out.collect()] == ['{"id":"a"}', '{"id":"b"}']


def test_parse_flags_only_malformed_lines(spark):
    schema = T.StructType([T.StructField("id", T.StringType()), T.StructField("n", T.LongType())])
    parsed = bronze.parse_json_lines(
        lines(spark, '{"id":"a","n":1}', '{"id":"b",', "[1,2]", '{"id":"c"}'), schema
    )
    expected = spark.createDataFrame(
        [("a", 1, None), (None, None, '{"id":"b",'), (None, None, "[1,2]"), ("c", None, None)],
        f"id string, n bigint, {bronze.CORRUPT} string",
    )
    assert_df_equality(
        parsed.select("id", "n", bronze.CORRUPT), expected, ignore_row_order=True, ignore_nullable=True
    )


def test_record_hash_is_sha256_of_the_delivered_text(spark):
    out = bronze.hash_raw_record(lines(spark, '{"id":"a"}', '{"id":"a"}', '{"id": "a"}'))
    hashes = [r[bronze.RECORD_HASH] for r in out.collect()]
    assert hashes[0] == hashes[1] != hashes[2]
    assert hashes[0] == hashlib.sha256(b'{"id":"a"}').hexdigest()


def test_corrupt_rows_become_quarantine_rows_with_raw_text(spark):
    frame = spark.createDataFrame(
        [("{bad", "{bad", "f1", "h1")],
        f"{bronze.RAW} string, {bronze.CORRUPT} string, "
        f"{bronze.LANDING_FILE} string, {bronze.RECORD_HASH} string",
    )
    row = bronze.corrupt_to_quarantine(
        frame, run_id="r1", source="s", table="t", file_format="jsonl", quarantined_at=datetime(2026, 11, 24)
    ).first()
    assert (row.reason, row.raw_record, row.landing_file, row.layer, row.run_id) == (
        "malformed_record",
        "{bad",
        "f1",
        "bronze",
        "r1",
    )


BATCH_SCHEMA = (
    f"id string, ts bigint, status string, {bronze.RECORD_HASH} string, {bronze.LANDING_FILE} string"
)


def test_classify_tags_every_record(spark):
    batch = spark.createDataFrame(
        [
            ("a", 1, "placed", "h1", "f1"),
            ("a", 2, "paid", "h2", "f2"),  # newest version of a -> candidate
            ("a", 2, "paid", "h2", "f3"),  # same record delivered again -> exact duplicate
            ("b", 5, "placed", "h9", "f1"),  # tie on ts with the next row: higher hash wins
            ("b", 5, "placed!", "h3", "f2"),
            (None, 1, "placed", "h4", "f1"),  # null key -> quarantined
            ("c", None, "placed", "h5", "f1"),  # null ordering value -> quarantined
            ("d", 1, None, "h6", "f1"),  # required status missing -> quarantined
        ],
        BATCH_SCHEMA,
    )
    tagged = silver.classify(batch, SPEC).select(
        "id", "ts", bronze.RECORD_HASH, silver.DISPOSITION, silver.REASON
    )
    expected = spark.createDataFrame(
        [
            ("a", 1, "h1", "superseded", None),
            ("a", 2, "h2", "candidate", None),
            ("a", 2, "h2", "exact_duplicate", None),
            ("b", 5, "h9", "candidate", None),
            ("b", 5, "h3", "superseded", None),
            (None, 1, "h4", "quarantined", "null_primary_key"),
            ("c", None, "h5", "quarantined", "null_ordering_value"),
            ("d", 1, "h6", "quarantined", "missing_required_value"),
        ],
        f"id string, ts bigint, {bronze.RECORD_HASH} string, {silver.DISPOSITION} string, {silver.REASON} string",
    )
    assert_df_equality(tagged, expected, ignore_row_order=True, ignore_nullable=True)


def test_candidates_do_not_depend_on_row_order(spark):
    rows = [
        ("a", 1, "x", "h1", "f1"),
        ("a", 3, "y", "h2", "f2"),
        ("a", 3, "z", "h7", "f3"),
        ("a", 2, "w", "h3", "f4"),
    ]
    first = silver.candidates(silver.classify(spark.createDataFrame(rows, BATCH_SCHEMA), SPEC))
    second = silver.candidates(
        silver.classify(spark.createDataFrame(rows[::-1], BATCH_SCHEMA).repartition(3), SPEC)
    )
    assert_df_equality(first, second, ignore_row_order=True)
    assert first.first()["status"] == "z"


def test_rejected_rows_carry_reason_and_record_json(spark):
    batch = spark.createDataFrame([(None, 1, "placed", "h4", "f1")], BATCH_SCHEMA)
    row = silver.rejected_to_quarantine(
        silver.classify(batch, SPEC), run_id="r", source="s", table="t", quarantined_at=F.current_timestamp()
    ).first()
    assert row.reason == "null_primary_key"
    assert row.reason_detail == "primary key column id is null"
    assert '"status":"placed"' in row.raw_record
    assert row.layer == "silver"


def test_newer_condition_compares_ordering_then_hash():
    assert (
        silver.newer_condition(["ts"])
        == "(s.`ts` > t.`ts` OR (s.`ts` = t.`ts` AND s._record_hash > t._record_hash))"
    )
    assert silver.key_condition(["a", "b"]) == "t.`a` = s.`a` AND t.`b` = s.`b`"


def test_pii_paths_become_keyed_tokens_and_a_struct_path_is_refused(spark):
    frame = spark.createDataFrame(
        [("o1", "a@x.com", ("Ana Ng", ("1 Main St", "US"))), ("o2", None, None)],
        "id string, email string, customer struct<name string, address struct<line1 string, country string>>",
    )
    out = tokenize(frame, ["email", "customer.name", "customer.address.line1", "customer.missing"], b"k")
    first, second = out.orderBy("id").collect()
    token = hmac.new(b"k", b"a@x.com", hashlib.sha256).hexdigest()
    assert first.email == token
    assert second.email is None
    assert first.customer.name == hmac.new(b"k", b"Ana Ng", hashlib.sha256).hexdigest()
    assert first.customer.address.line1 != "1 Main St"
    assert first.customer.address.country == "US"
    assert second.customer is None  # a null struct stays null
    with pytest.raises(ValueError, match="declare its leaf fields"):
        tokenize(frame, ["customer.address"], b"k")


TIMED_SPEC = TableSpec(
    format="jsonl",
    landing="x",
    primary_key=["id"],
    ordering=["updated_at"],
    drift="rescue",
    columns=[
        ColumnSpec(name="id", type="string"),
        ColumnSpec(name="updated_at", type="timestamp"),
        ColumnSpec(name="qty", type="int"),
    ],
)


def test_blank_unfit_and_out_of_range_records_are_quarantined_with_their_reason(spark):
    ingested = datetime(2026, 11, 25, 12, 0)
    rows = [
        ("ok", datetime(2026, 11, 25, 11), 1, None),
        ("", datetime(2026, 11, 25, 11), 1, None),  # empty key
        ("   ", datetime(2026, 11, 25, 11), 1, None),  # whitespace only
        ("\u3000", datetime(2026, 11, 25, 11), 1, None),  # ideographic space only
        ("soon", datetime(2026, 11, 26, 11), 1, None),  # 23 h ahead: a skewed clock, accepted
        ("future", datetime(2999, 12, 31), 1, None),  # would win over every real update for ever
        ("ancient", datetime(1969, 12, 31), 1, None),
        (None, datetime(2026, 11, 25, 11), 1, '{"id":"12345678901234567890123"}'),  # unfit key kept aside
        ("q", datetime(2026, 11, 25, 11), None, '{"qty":"0.04"}'),  # unfit non-key value: null + rescued
    ]
    batch = spark.createDataFrame(
        [(*r, f"h{i}", "f1", ingested) for i, r in enumerate(rows)],
        f"id string, updated_at timestamp, qty int, _rescued_data string, {bronze.RECORD_HASH} string, "
        f"{bronze.LANDING_FILE} string, _ingest_time timestamp",
    )
    tagged = {
        r[bronze.RECORD_HASH]: (r[silver.DISPOSITION], r[silver.REASON])
        for r in silver.classify(batch, TIMED_SPEC).collect()
    }
    assert tagged == {
        "h0": ("candidate", None),
        "h1": ("quarantined", "blank_primary_key"),
        "h2": ("quarantined", "blank_primary_key"),
        "h3": ("quarantined", "blank_primary_key"),
        "h4": ("candidate", None),
        "h5": ("quarantined", "ordering_out_of_range"),
        "h6": ("quarantined", "ordering_out_of_range"),
        "h7": ("quarantined", "value_does_not_fit"),
        "h8": ("candidate", None),
    }


def test_ordering_bounds_are_configurable(spark):
    spec = TIMED_SPEC.model_copy(
        update={"ordering_bounds": TIMED_SPEC.ordering_bounds.model_copy(update={"max_future_hours": 0})}
    )
    batch = spark.createDataFrame(
        [("a", datetime(2026, 11, 25, 13), None, "h1", "f1", datetime(2026, 11, 25, 12))],
        f"id string, updated_at timestamp, qty int, {bronze.RECORD_HASH} string, {bronze.LANDING_FILE} string, "
        "_ingest_time timestamp",
    )
    assert silver.classify(batch, spec).first()[silver.REASON] == "ordering_out_of_range"


DEBEZIUM_SPEC = TableSpec(
    format="jsonl",
    landing="x",
    primary_key=["id"],
    ordering=["_cdc_lsn"],
    cdc={"format": "debezium", "deletes": "hard"},
    columns=[
        ColumnSpec(name="id", type="bigint", required=True),
        ColumnSpec(name="status", type="string", required=True),
        ColumnSpec(name="amount", type="decimal(12,2)", required=True),
        ColumnSpec(name="updated_at", type="timestamp", required=True),
        ColumnSpec(name="deleted_at", type="timestamp"),
    ],
)


def debezium_batch(spark, *envelopes):
    """Envelopes as bronze holds them (JSON inference, a field null in every record left out), normalized."""
    frame = spark.read.options(dropFieldIfAllNull=True).json(
        spark.sparkContext.parallelize([json.dumps(e) for e in envelopes])
    )
    frame = frame.withColumn(bronze.RECORD_HASH, F.sha2(F.to_json(F.struct("*")), 256))
    return cdc.with_deleted_flag(cdc.normalize_debezium(frame))


def test_debezium_rows_get_the_declared_types_and_unfit_values_are_rescued(spark):
    row = {"id": 1, "status": "paid", "amount": "11.10", "updated_at": "2026-12-04T18:51:09.915777Z"}
    batch = debezium_batch(
        spark,
        {"before": None, "after": row, "op": "c", "ts_ms": 1, "source": {"lsn": 10}},
        {
            "before": None,
            "after": {**row, "id": 2, "amount": "12.345"},
            "op": "c",
            "ts_ms": 1,
            "source": {"lsn": 11},
        },
    )
    typed = cdc.type_debezium_rows(batch, DEBEZIUM_SPEC)
    types = {f.name: f.dataType for f in typed.schema.fields}
    assert types["amount"] == T.DecimalType(12, 2)
    assert types["updated_at"] == T.TimestampType()
    assert types["deleted_at"] == T.TimestampType()  # declared, null in the whole batch: a typed null column
    rows = {r.id: r for r in typed.collect()}
    assert rows[1].amount == Decimal("11.10")
    assert rows[1].updated_at == datetime(2026, 12, 4, 18, 51, 9, 915777)
    assert rows[1]._rescued_data is None
    assert rows[2].amount is None  # 12.345 does not fit decimal(12,2): never rounded, kept aside
    assert json.loads(rows[2]._rescued_data) == {"amount": "12.345"}
    # an amount that did not fit is a required value: the record is quarantined, not applied without it
    tagged = {r.id: r[silver.REASON] for r in silver.classify(typed, DEBEZIUM_SPEC).collect()}
    assert tagged == {1: None, 2: "value_does_not_fit"}


def test_a_delete_needs_only_its_key_and_ordering(spark):
    row = {"id": 1, "status": "paid", "amount": "11.10", "updated_at": "2026-12-04T18:51:09.915777Z"}
    batch = debezium_batch(
        spark,
        {
            "before": None,
            "after": {**row, "id": 2, "status": None},
            "op": "c",
            "ts_ms": 1,
            "source": {"lsn": 9},
        },
        {"before": None, "after": row, "op": "c", "ts_ms": 1, "source": {"lsn": 10}},
        # PostgreSQL's default replica identity: the old row's key, Debezium's placeholders ('' read as absent)
        {
            "before": {"id": 1, "status": "", "amount": "0.00"},
            "after": None,
            "op": "d",
            "ts_ms": 2,
            "source": {"lsn": 20},
        },
    )
    tagged = {
        (r.id, r[cdc.OP]): (r[silver.DISPOSITION], r[silver.REASON])
        for r in silver.classify(cdc.type_debezium_rows(batch, DEBEZIUM_SPEC), DEBEZIUM_SPEC).collect()
    }
    assert tagged == {
        (2, "I"): ("quarantined", "missing_required_value"),  # an insert without its status
        (1, "I"): ("superseded", None),
        (1, "D"): ("candidate", None),  # no status, no updated_at: still the delete of key 1
    }
