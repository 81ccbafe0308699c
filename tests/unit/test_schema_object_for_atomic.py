"""A batch where every value of an atomic column arrives as an object (the partner's v2 `shipping_fee`)."""

from pyspark.sql import types as T

from northstar.transforms.schema import RESCUED, ColumnPlan, conform


def test_object_for_a_decimal_column_is_rescued_not_an_analysis_error(spark):
    fee = T.StructType([T.StructField("amount", T.DoubleType()), T.StructField("currency", T.StringType())])
    frame = spark.createDataFrame(
        [("a", {"amount": 7.5, "currency": "USD"}), ("b", None)],
        T.StructType([T.StructField("id", T.StringType()), T.StructField("shipping_fee", fee)]),
    )
    plans = [
        ColumnPlan("id", T.StringType(), T.StringType()),
        ColumnPlan("shipping_fee", fee, T.DecimalType(12, 2)),
    ]
    out = {r["id"]: r for r in conform(frame, plans, keep=[]).collect()}
    assert out["a"]["shipping_fee"] is None
    assert out["a"][RESCUED] == '{"shipping_fee":"{\\"amount\\":7.5,\\"currency\\":\\"USD\\"}"}'
    assert out["b"]["shipping_fee"] is None and out["b"][RESCUED] is None
    assert conform(frame, plans, keep=[]).schema["shipping_fee"].dataType == T.DecimalType(12, 2)
