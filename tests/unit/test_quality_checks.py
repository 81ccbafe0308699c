"""Every check type fires on crafted data and stays quiet on clean data; anomaly ranges follow the weekday
pattern and explain themselves; check files are validated with errors naming the file and field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar.config import ConfigError
from northstar.quality import checks as c
from northstar.quality import spec as q
from northstar.quality.results import FAIL, PASS, QUARANTINED, SKIPPED, WARN
from tests.helpers.conf import load_from

ORDERS = "order_id string, status string, currency string, item_count int, customer_id string"
CHECK = TypeAdapter(q.Check)


def check(**fields) -> q.Check:
    return CHECK.validate_python({"name": "probe", "severity": "warn", **fields})


# (check definition, clean rows, crafted rows, key expected to fail)
ROW_CASES = {
    "not_null": (
        {"type": "not_null", "columns": ["currency", "status"]},
        [("o1", "paid", "USD", 1, "c1")],
        [("o1", "paid", "USD", 1, "c1"), ("o2", None, "USD", 1, "c1")],
        "o2",
    ),
    "accepted_values": (
        {"type": "accepted_values", "column": "status", "values": ["paid", "shipped"]},
        [("o1", "paid", "USD", 1, "c1"), ("o2", "shipped", "EUR", 2, "c1"), ("o3", None, "EUR", 2, "c1")],
        [("o1", "paid", "USD", 1, "c1"), ("o2", "on_hold", "USD", 1, "c1")],
        "o2",
    ),
    "range": (
        {"type": "range", "column": "item_count", "min": 0, "max": 10},
        [("o1", "paid", "USD", 0, "c1"), ("o2", "paid", "USD", 10, "c1")],
        [("o1", "paid", "USD", 3, "c1"), ("o2", "paid", "USD", -1, "c1")],
        "o2",
    ),
    "pattern": (
        {"type": "pattern", "column": "currency", "regex": "[A-Z]{3}"},
        [("o1", "paid", "USD", 1, "c1"), ("o2", "paid", "EUR", 1, "c1")],
        [("o1", "paid", "USD", 1, "c1"), ("o2", "paid", "usd", 1, "c1"), ("o3", "paid", "USDX", 1, "c1")],
        "o2",
    ),
    "relationship": (
        {"type": "relationship", "column": "customer_id", "to": "silver.customers", "to_column": "id"},
        [
            ("o1", "paid", "USD", 1, "c1"),
            ("o2", "paid", "USD", 1, None),
        ],  # a null reference is not_null's job
        [("o1", "paid", "USD", 1, "c1"), ("o2", "paid", "USD", 1, "c9")],
        "o2",
    ),
}


@pytest.mark.parametrize("case", ROW_CASES, ids=list(ROW_CASES))
def test_row_check_fires_on_crafted_rows_and_is_quiet_on_clean_rows(spark, case):
    definition, clean, crafted, failing_key = ROW_CASES[case]
    probe = check(**definition, severity="quarantine")
    refs = {"silver.customers": spark.createDataFrame([("c1",), ("c2",)], "id string")}

    def judged(rows):
        flagged = c.flag_rows(spark.createDataFrame(rows, ORDERS), [probe], refs).cache()
        counts = c.failure_counts(flagged, [probe], ["order_id"])
        result = c.row_results([probe], counts, len(rows), "r1", "silver.orders")[0]
        return {r["order_id"]: (r[c.CHECK], r[c.CHECK_DETAIL]) for r in flagged.collect()}, result

    tagged, quiet = judged(clean)
    assert (quiet.status, quiet.failed_rows) == (PASS, 0)
    assert list(tagged.values()) == [(None, None)] * len(clean)  # the relationship join keeps every row

    tagged, fired = judged(crafted)
    assert fired.status == QUARANTINED
    assert failing_key in fired.failing_keys
    assert "o1" not in fired.failing_keys
    assert tagged["o1"] == (None, None)
    name, detail = tagged[failing_key]
    assert name == "probe"
    assert detail.startswith("probe: ")
    assert fired.explanation.endswith(
        f"{fired.failed_rows} of {len(crafted)} rows failed and were quarantined; valid rows continued"
    )


def test_row_check_thresholds_and_severities(spark):
    rows = spark.createDataFrame(
        [(f"o{i}", "paid" if i else "odd", "USD", 1, "c1") for i in range(10)], ORDERS
    )
    values = {"type": "accepted_values", "column": "status", "values": ["paid"]}
    tolerant = check(**values, name="tolerant", severity="fail", max_failed_fraction=0.1)
    strict = check(**values, name="strict", severity="fail")
    warned = check(**values, name="warned", severity="warn")
    probes = [tolerant, strict, warned]
    flagged = c.flag_rows(rows, probes)
    results = {
        r.check_name: r
        for r in c.row_results(probes, c.failure_counts(flagged, probes, ["order_id"]), 10, "r", "t")
    }
    assert results["tolerant"].status == PASS  # 1 of 10 is within 10%
    assert results["strict"].status == FAIL
    assert results["strict"].stops_the_run
    assert results["warned"].status == WARN
    assert not results["warned"].stops_the_run
    assert flagged.where(f"{c.CHECK} IS NOT NULL").count() == 0  # only quarantine severity rejects rows


def test_eligible_rows_only_are_flagged(spark):
    rows = spark.createDataFrame([("o1", "odd", "USD", 1, "c1"), (None, "odd", "USD", 1, "c1")], ORDERS)
    probe = check(type="accepted_values", column="status", values=["paid"], severity="quarantine")
    flagged = c.flag_rows(rows, [probe], eligible=F.col("order_id").isNotNull())
    assert sorted((r["order_id"], r[c.CHECK]) for r in flagged.collect() if r[c.CHECK]) == [("o1", "probe")]


def test_unique_fires_on_repeated_keys_only(spark):
    probe = check(type="unique", columns=["order_id"], severity="fail")
    clean = spark.createDataFrame([("o1", "paid", "USD", 1, "c1"), ("o2", "paid", "USD", 1, "c1")], ORDERS)
    assert c.unique(clean, probe, "r", "t").status == PASS
    twice = clean.unionByName(clean.where("order_id = 'o2'"))
    fired = c.unique(twice, probe, "r", "t")
    assert (fired.status, fired.observed, fired.failed_rows, fired.failing_keys) == (FAIL, 1.0, 2, ["o2"])


def test_freshness_fires_when_the_newest_value_is_too_old(spark):
    probe = check(type="freshness", column="updated_at", max_lag_hours=2)
    now = datetime(2026, 11, 25, 12, 0)
    frame = spark.createDataFrame(
        [(now - timedelta(hours=1),), (now - timedelta(days=3),)], "updated_at timestamp"
    )
    quiet = c.freshness(frame, probe, "r", "t", now)
    assert quiet.status == PASS
    assert quiet.observed == pytest.approx(1.0)
    fired = c.freshness(frame.where("updated_at < '2026-11-24'"), probe, "r", "t", now)
    assert fired.status == WARN
    assert fired.observed == pytest.approx(72.0)
    assert "72.00 h before" in fired.explanation
    assert "at most 2.0 h" in fired.explanation
    empty = c.freshness(frame.where("false"), probe, "r", "t", now)
    assert empty.status == WARN
    assert "no value at all" in empty.explanation


def monday_heavy_history(weeks: int = 4) -> list[tuple[datetime, float]]:
    """Mondays around 1,000 rows, other days around 200 (weeks before Monday 2026-11-23)."""
    monday = datetime(2026, 11, 23, 6, tzinfo=UTC)
    history = []
    for week in range(1, weeks + 1):
        for day in range(7):
            at = monday - timedelta(weeks=week) + timedelta(days=day)
            history.append((at, (1_000 + 10 * week) if day == 0 else (200 + 5 * day)))
    return history


def test_row_count_anomaly_follows_the_weekday_pattern():
    probe = check(type="row_count_anomaly", severity="fail")
    history = monday_heavy_history()
    monday, tuesday = datetime(2026, 11, 23, 6, tzinfo=UTC), datetime(2026, 11, 24, 6, tzinfo=UTC)

    normal_monday = c.anomaly(probe, 1_020, history, monday, "r", "t", "row count")
    assert normal_monday.status == PASS
    assert "derived from 4 previous Mondays: median 1,025, MAD 10" in normal_monday.explanation
    assert normal_monday.expected_low < 1_020 < normal_monday.expected_high

    monday_sized_tuesday = c.anomaly(probe, 1_000, history, tuesday, "r", "t", "row count")
    assert monday_sized_tuesday.status == FAIL
    assert (
        "is outside the expected range derived from 4 previous Tuesdays: median 205"
        in monday_sized_tuesday.explanation
    )
    assert monday_sized_tuesday.expected_high < 1_000

    quiet_tuesday = c.anomaly(probe, 206, history, tuesday, "r", "t", "row count")
    assert quiet_tuesday.status == PASS


def test_anomaly_falls_back_to_all_days_then_skips_and_says_so():
    probe = check(type="row_count_anomaly", min_history=3)
    wednesday = datetime(2026, 11, 25, tzinfo=UTC)
    few = [(wednesday - timedelta(days=d), 100.0 + d) for d in (1, 2, 3, 4)]  # no earlier Wednesday
    fallback = c.expected_range(few, wednesday, probe)
    assert fallback is not None
    assert "4 previous runs of any weekday (only 0 previous Wednesdays" in fallback[2]
    skipped = c.anomaly(probe, 5.0, few[:2], wednesday, "r", "t", "row count")
    assert skipped.status == SKIPPED
    assert "not judged: 2 earlier runs, 3 needed" in skipped.explanation


def test_steady_history_gets_a_minimum_spread():
    probe = check(type="row_count_anomaly", min_spread=0.1)
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    steady = [(monday - timedelta(weeks=w), 500.0) for w in range(1, 5)]
    low, high, how = c.expected_range(steady, monday, probe)
    assert (low, high) == (450.0, 550.0)
    assert "widened to the minimum spread 0.1 x median" in how


def test_null_rate_spike_fires_against_history_and_hard_limit(spark):
    probe = check(type="null_rate_spike", column="currency", max_rate=0.5)
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    history = [(monday - timedelta(weeks=w), 0.1 + w / 1000) for w in range(1, 5)]
    clean = spark.createDataFrame([("o1", "paid", "USD" if i else None, 1, "c1") for i in range(10)], ORDERS)
    rate, rows = c.null_rate(clean, "currency")
    assert (rate, rows) == (0.1, 10)
    assert c.anomaly(probe, rate, history, monday, "r", "t", "null rate").status == PASS
    spiked, _ = c.null_rate(
        clean.where("order_id = 'o1' AND currency IS NULL").unionByName(clean.limit(3)), "currency"
    )
    fired = c.anomaly(probe, spiked, history, monday, "r", "t", "null rate of currency")
    assert fired.status == WARN
    assert "is outside the expected range" in fired.explanation
    over = c.anomaly(probe, 0.6, [], monday, "r", "t", "null rate")
    assert over.status == WARN
    assert "above the hard limit 0.5" in over.explanation


def test_schema_change_flags_removed_and_retyped_columns_not_additions():
    probe = check(type="schema_change", severity="fail")
    totals = T.StructType([T.StructField("total", T.DoubleType())])
    before = T.StructType([T.StructField("id", T.StringType()), T.StructField("totals", totals)])
    assert c.schema_change(before, before, probe, "r", "t").status == PASS
    wider = T.StructType(
        [
            T.StructField("id", T.StringType()),
            T.StructField("totals", T.StructType([*totals.fields, T.StructField("tax", T.DoubleType())])),
            T.StructField("channel", T.StringType()),
        ]
    )
    added = c.schema_change(wider, before, probe, "r", "t")
    assert added.status == PASS
    assert "added channel, totals (new nested fields) (allowed)" in added.explanation
    broken = T.StructType([T.StructField("id", T.LongType())])
    fired = c.schema_change(broken, before, probe, "r", "t")
    assert fired.status == FAIL
    assert fired.failing_keys == ["totals", "id"]
    assert "removed totals" in fired.explanation
    assert "retyped id string -> bigint" in fired.explanation
    strict = check(type="schema_change", allow_added=False)
    assert c.schema_change(wider, before, strict, "r", "t").status == WARN


def test_check_files_are_validated_with_file_and_field_named(tmp_path):
    folder = tmp_path / "quality"
    folder.mkdir()
    bad = folder / "silver.orders.yaml"
    bad.write_text(
        "checks:\n"
        "  - {name: fresh, type: freshness, column: updated_at, max_lag_hours: 2, severity: quarantine}\n"
        "  - {name: odd, type: accepted_values, column: status, severity: warn}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_from(tmp_path, q.load_checks, "silver.orders")
    message = str(err.value)
    assert str(bad) in message
    assert "checks.1.accepted_values.values: Field required" in message
    bad.write_text(
        "checks:\n  - {name: fresh, type: freshness, column: updated_at, max_lag_hours: 2, severity: quarantine}\n"
    )
    with pytest.raises(
        ConfigError, match="severity quarantine applies to row-level checks .* use warn or fail for fresh"
    ):
        load_from(tmp_path, q.load_checks, "silver.orders")
    bad.write_text("checks:\n  - {name: x, type: nonsense, severity: warn}\n")
    with pytest.raises(ConfigError, match="checks.0: Input tag 'nonsense' found using 'type' does not match"):
        load_from(tmp_path, q.load_checks, "silver.orders")
    assert load_from(tmp_path, q.load_checks, "silver.elsewhere") is None


def test_the_repo_check_files_load():

    tables = q.list_checked_tables()
    assert {"silver.marketplace_orders", "silver.marketplace_refunds"} <= set(tables)
    for table in tables:
        assert q.load_checks(table).table == table
