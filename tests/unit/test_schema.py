import json
from decimal import Decimal

import pytest
from pyspark.sql import types as T

from northstar.config import ColumnSpec, TableSpec
from northstar.transforms.schema import (
    ColumnPlan,
    SchemaDriftError,
    conform,
    lossless,
    merge_types,
    plan_columns,
)

S, L, D, INT = T.StringType(), T.LongType(), T.DoubleType(), T.IntegerType()


def table(drift="evolve", columns=None) -> TableSpec:
    return TableSpec(
        format="jsonl",
        landing="x",
        primary_key=["id"],
        ordering=["ts"],
        drift=drift,
        columns=[ColumnSpec(**c) for c in columns] if columns else None,
    )


def struct(**fields) -> T.StructType:
    return T.StructType([T.StructField(k, v, True) for k, v in fields.items()])


CONTRACT = [
    {"name": "id", "type": "string"},
    {"name": "ts", "type": "timestamp"},
    {"name": "qty", "type": "int"},
]


def test_contract_types_win_over_delivered():
    plans = plan_columns(table(columns=CONTRACT), struct(id=S, ts=S, qty=L), existing=None)
    assert [(p.name, p.target) for p in plans] == [("id", S), ("ts", T.TimestampType()), ("qty", INT)]


def test_new_column_evolve_adds_it():
    plans = plan_columns(table(columns=CONTRACT), struct(id=S, ts=S, qty=L, gift=S), existing=None)
    assert plans[-1] == ColumnPlan("gift", S, S)


def test_new_column_rescue_keeps_it_out_of_the_schema():
    plans = plan_columns(table("rescue", CONTRACT), struct(id=S, ts=S, gift=S), existing=None)
    assert ColumnPlan("gift", S, None) in plans
    assert ColumnPlan("qty", None, INT) in plans  # declared but not delivered: a null column


def test_fail_policy_names_new_and_changed_fields():
    existing = struct(id=S, ts=T.TimestampType(), qty=INT, box=struct(w=L))
    with pytest.raises(SchemaDriftError) as err:
        plan_columns(
            table("fail", CONTRACT), struct(id=S, ts=S, qty=S, box=struct(w=L, h=L), gift=S), existing
        )
    message = str(err.value)
    assert "new column gift (string)" in message
    assert "qty changed type from int to string" in message
    assert "new field box.h (bigint)" in message


def test_fail_policy_accepts_an_unchanged_batch():
    plans = plan_columns(
        table("fail", CONTRACT), struct(id=S, ts=S, qty=L), struct(id=S, ts=T.TimestampType(), qty=INT)
    )
    assert [p.name for p in plans] == ["id", "ts", "qty"]


def test_without_contract_first_batch_defines_then_existing_types_hold():
    first = plan_columns(table("rescue"), struct(a=L, b=S), existing=None)
    assert [(p.name, p.target) for p in first] == [("a", L), ("b", S)]
    later = plan_columns(table("rescue"), struct(a=S, b=S, c=D), existing=struct(a=L, b=S))
    assert ColumnPlan("a", S, L) in later
    assert ColumnPlan("c", D, None) in later


def test_merge_types_appends_nested_fields_and_keeps_existing_leaf_types():
    current = struct(a=L, s=struct(x=L))
    merged = merge_types(current, struct(a=D, s=struct(x=S, y=S), z=S))
    assert merged == struct(a=L, s=struct(x=L, y=S), z=S)
    assert merge_types(current, struct(s=struct(y=S)), add_fields=False) == current


@pytest.mark.parametrize(
    ("delivered", "target", "expected"),
    [
        (INT, L, True),
        (L, INT, False),
        (INT, D, True),
        (L, D, False),
        (D, L, False),
        (S, T.TimestampType(), False),
        (T.DecimalType(6, 2), T.DecimalType(12, 2), True),
        (T.DecimalType(6, 3), T.DecimalType(12, 2), False),
        (L, T.DecimalType(12, 2), False),
        (INT, T.DecimalType(12, 2), True),
        (struct(b=L, a=S), struct(a=S, b=L, c=S), True),
        (struct(a=S, d=S), struct(a=S), False),
        (T.ArrayType(struct(q=INT)), T.ArrayType(struct(q=L)), True),
    ],
)
def test_lossless(delivered, target, expected):
    assert lossless(delivered, target) is expected


def test_conform_rescues_values_that_do_not_fit(spark):
    rows = [
        ("1", "2026-11-01T10:00:00Z", "3", None),
        ("2", "not a time", "three", '{"w":1}'),
        ("3", None, None, None),
    ]
    frame = spark.createDataFrame(rows, "id string, ts string, qty string, extra string")
    plans = plan_columns(table("rescue", CONTRACT), frame.schema, existing=None)
    out = {r["id"]: r for r in conform(frame, plans, keep=[]).collect()}
    assert out["1"]["qty"] == 3
    assert out["1"]["ts"].isoformat() == "2026-11-01T10:00:00"
    assert out["1"]["_rescued_data"] is None
    assert out["2"]["qty"] is None
    assert out["2"]["ts"] is None
    assert json.loads(out["2"]["_rescued_data"]) == {"ts": "not a time", "qty": "three", "extra": '{"w":1}'}
    assert out["3"]["_rescued_data"] is None  # nulls are not rescued: nothing was lost


def test_conform_detects_truncating_number_conversions(spark):
    frame = spark.createDataFrame([("1", 2.0), ("2", 2.5), ("3", 0.04)], "id string, n double")
    out = conform(frame, [ColumnPlan("id", S, S), ColumnPlan("n", D, L)], keep=[]).orderBy("id").collect()
    # never a truncated stand-in (2.5 -> 2, 0.04 -> 0): null, and the original kept
    assert [(r["n"], r["_rescued_data"]) for r in out] == [
        (2, None),
        (None, '{"n":2.5}'),
        (None, '{"n":0.04}'),
    ]


def test_conform_never_rounds_text_into_a_decimal_or_integer(spark):
    frame = spark.createDataFrame(
        [("1", "12.34", "7"), ("2", "12.345", "7.5"), ("3", "1e2", "99999999999")],
        "id string, amount string, n string",
    )
    plans = [ColumnPlan("id", S, S), ColumnPlan("amount", S, T.DecimalType(12, 2)), ColumnPlan("n", S, INT)]
    out = {r["id"]: r for r in conform(frame, plans, keep=[]).collect()}
    assert (str(out["1"]["amount"]), out["1"]["n"], out["1"]["_rescued_data"]) == ("12.34", 7, None)
    assert (out["2"]["amount"], out["2"]["n"]) == (None, None)
    assert json.loads(out["2"]["_rescued_data"]) == {"amount": "12.345", "n": "7.5"}
    # 1e2 is exactly 100.00; 99999999999 does not fit an int
    assert (str(out["3"]["amount"]), out["3"]["n"]) == ("100.00", None)
    assert json.loads(out["3"]["_rescued_data"]) == {"n": "99999999999"}


def test_conform_never_keeps_a_decimal_rounded_to_a_smaller_scale(spark):
    frame = spark.createDataFrame(
        [("1", Decimal("1.50")), ("2", Decimal("1.555"))], "id string, a decimal(10,3)"
    )
    out = {
        r["id"]: r
        for r in conform(
            frame,
            [ColumnPlan("id", S, S), ColumnPlan("a", frame.schema["a"].dataType, T.DecimalType(10, 2))],
            keep=[],
        ).collect()
    }
    assert (str(out["1"]["a"]), out["1"]["_rescued_data"]) == ("1.50", None)
    assert out["2"]["a"] is None
    assert json.loads(out["2"]["_rescued_data"], parse_float=Decimal) == {"a": Decimal("1.555")}


def test_conform_nested_reorder_is_lossless_and_not_rescued(spark):
    frame = spark.createDataFrame([("1", (1, "x"))], "id string, s struct<a:bigint,b:string>")
    target = struct(b=S, a=L, c=S)
    out = conform(
        frame, [ColumnPlan("id", S, S), ColumnPlan("s", frame.schema["s"].dataType, target)], keep=[]
    )
    row = out.first()
    assert out.schema["s"].dataType == target
    assert (row["s"]["a"], row["s"]["b"], row["s"]["c"], row["_rescued_data"]) == (1, "x", None, None)


def test_conform_nested_narrowing_rescues_the_original(spark):
    frame = spark.createDataFrame(
        [("1", [(1.5,)]), ("2", [(2.0,)])], "id string, items array<struct<q:double>>"
    )
    target = T.ArrayType(struct(q=L))
    plans = [ColumnPlan("id", S, S), ColumnPlan("items", frame.schema["items"].dataType, target)]
    out = {r["id"]: r for r in conform(frame, plans, keep=[]).collect()}
    assert json.loads(out["1"]["_rescued_data"]) == {"items": '[{"q":1.5}]'}
    assert out["1"]["items"] is None  # not [{"q": 1}]: a truncated value never stands in for the original
    assert out["2"]["items"][0]["q"] == 2
    assert out["2"]["_rescued_data"] is None


def test_conform_rescues_a_nested_value_delivered_for_an_atomic_column(spark):
    # a batch in which every record has the new shape (the partner's shipping_fee object): no string fallback
    frame = spark.createDataFrame(
        [("1", (4.5, "USD")), ("2", None)], "id string, fee struct<amount:double,currency:string>"
    )
    out = conform(
        frame,
        [ColumnPlan("id", S, S), ColumnPlan("fee", frame.schema["fee"].dataType, T.DecimalType(12, 2))],
        keep=[],
    )
    rows = {r["id"]: r for r in out.collect()}
    assert rows["1"]["fee"] is None
    assert json.loads(rows["1"]["_rescued_data"]) == {"fee": '{"amount":4.5,"currency":"USD"}'}
    assert rows["2"]["_rescued_data"] is None
