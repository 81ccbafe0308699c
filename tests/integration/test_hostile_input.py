"""Hostile input through one YAML-onboarded source: each kind of bad record or file ends in silver, in
quarantine with a reason, or counted as a duplicate, and the ledger's counts equal the rows in the tables.

The expected outcomes come from the contract (docs/onboarding.md) and RFC 4180, not from running the code:
each record's fate is written next to it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from northstar import ledger, quarantine
from northstar.config import load_source
from northstar.lake import tables
from northstar.quality import results as check_results
from northstar.silver.pipeline import run_source
from tests.helpers.conf import load_from

SOURCE = """
tables:
  orders:
    format: jsonl
    landing: shop/orders
    primary_key: [id]
    ordering: [updated_at]
    drift: rescue
    columns:
      - {name: id, type: string}
      - {name: updated_at, type: timestamp}
      - {name: qty, type: int}
      - {name: amount, type: "decimal(12,2)"}
  drops:
    format: csv
    landing: shop/drops
    primary_key: [id]
    ordering: [seq]
    columns:
      - {name: id, type: string}
      - {name: seq, type: bigint}
      - {name: note, type: string}
"""

T0 = "2026-11-25T10:00:00Z"


def order(key: str, **values: object) -> str:
    return json.dumps({"id": key, "updated_at": T0, "qty": 1, "amount": "1.00", **values})


# kind -> (lines of one file, where each record must end)
JSONL_KINDS = {
    "clean": ([order("a")], ["silver"]),
    "exact_duplicate": ([order("b"), order("b")], ["silver", "duplicate"]),
    "superseded": ([order("c", updated_at="2026-11-25T09:00:00Z"), order("c")], ["duplicate", "silver"]),
    "malformed_line": (['{"id": "d", "updated_at": '], ["quarantine:malformed_record"]),
    "null_key": ([order(None)], ["quarantine:null_primary_key"]),  # type: ignore[arg-type]
    "empty_key": ([order("")], ["quarantine:blank_primary_key"]),
    "blank_key": ([order("   ")], ["quarantine:blank_primary_key"]),
    "null_ordering": ([order("e", updated_at=None)], ["quarantine:null_ordering_value"]),
    "unparseable_ordering": ([order("f", updated_at="yesterday")], ["quarantine:value_does_not_fit"]),
    "far_future_ordering": (
        [order("g", updated_at="2999-12-31T00:00:00Z")],
        ["quarantine:ordering_out_of_range"],
    ),
    "before_1970_ordering": (
        [order("h", updated_at="1969-07-20T20:17:00Z")],
        ["quarantine:ordering_out_of_range"],
    ),
    "decimal_into_int": ([order("i", qty=0.04)], ["silver"]),  # qty null, 0.04 in _rescued_data
    "too_many_decimals": ([order("j", amount="12.345")], ["silver"]),  # amount null, "12.345" rescued
    "int_overflow": ([order("k", qty=99999999999)], ["silver"]),
    "new_column": ([order("l", coupon="X1")], ["silver"]),  # rescued under drift: rescue
    "blank_lines": (["", "   ", order("m")], ["silver"]),
    "unicode": ([order("n\u00e9\u4e2d")], ["silver"]),
}


def latin1(line: str) -> bytes:
    """The line with its \u00e9 written as Latin-1 (one byte 0xE9): not valid UTF-8."""
    return line.replace("\\u00e9", "\u00e9").encode("latin-1")


# kind -> (bytes of one file, where each record must end): bytes that are not UTF-8 are never parsed into data
UNDECODABLE_KINDS = {
    "latin1_in_value": (
        latin1(order("o", note="caf\u00e9")) + b"\n" + order("p").encode() + b"\n",
        ["quarantine:invalid_encoding", "silver"],
    ),
    "latin1_in_key": (latin1(order("q\u00e9")) + b"\n", ["quarantine:invalid_encoding"]),
}


def write_file(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def expected_outcomes(kinds: dict[str, tuple[list[str], list[str]]]) -> Counter:
    return Counter(outcome for _, outcomes in kinds.values() for outcome in outcomes)


def outcomes_in_tables(spark, env, table: str) -> Counter:
    silver = spark.read.format("delta").load(tables.silver("shop", table, None).path(env)).count()
    found = Counter({"silver": silver})
    path = tables.quarantine("shop", table).path(env)
    if Path(path).exists():
        for row in spark.read.format("delta").load(path).groupBy("reason").count().collect():
            found[f"quarantine:{row['reason']}"] = row["count"]
    return found


def ledger_rows(spark, env, table: str, job: str):
    return ledger.read(spark, env).where((F.col("table_name") == table) & (F.col("job") == job)).collect()


def assert_ledger_balanced_and_true(spark, env, table: str) -> None:
    for row in ledger.read(spark, env).where(F.col("table_name") == table).collect():
        assert row.records_read == row.records_written + row.records_duplicate + row.records_quarantined, row
    silver_written = sum(r.records_written for r in ledger_rows(spark, env, table, "silver"))
    silver = spark.read.format("delta").load(tables.silver("shop", table, None).path(env)).count()
    assert silver_written == silver  # no updates in these batches: every write is an insert


@pytest.fixture
def shop(tmp_path):
    (tmp_path / "conf" / "sources").mkdir(parents=True)
    (tmp_path / "conf" / "sources" / "shop.yaml").write_text(SOURCE)
    return load_from(tmp_path / "conf", load_source, "shop")


def test_every_kind_of_bad_record_ends_where_the_contract_says(spark, env, shop):
    landing = Path(env.landing) / "shop" / "orders"
    for kind, (lines, _) in JSONL_KINDS.items():
        write_file(landing / f"{kind}.jsonl", lines)
    for kind, (data, _) in UNDECODABLE_KINDS.items():
        (landing / f"{kind}.jsonl").write_bytes(data)
    # a corrupt file and a case-colliding one must not hold back the others
    (landing / "truncated.jsonl.gz").write_bytes(gzip.compress(order("z").encode() * 50)[:40])
    write_file(landing / "id_and_ID.jsonl", [json.dumps({"id": "y", "ID": "Y", "updated_at": T0})])

    bronze_run, silver_run = run_source(spark, env, shop, tables=["orders"])

    expected = expected_outcomes(JSONL_KINDS) + Counter(
        o for _, outs in UNDECODABLE_KINDS.values() for o in outs
    )
    duplicates = expected.pop("duplicate")
    expected["quarantine:unreadable_file"] = 2
    found = outcomes_in_tables(spark, env, "orders")
    assert found == expected, (found, expected)
    assert silver_run.records_duplicate == duplicates
    assert bronze_run.details["files_unreadable"] == 2
    assert_ledger_balanced_and_true(spark, env, "orders")

    rows = {
        r.id: r
        for r in spark.read.format("delta").load(tables.silver("shop", "orders", None).path(env)).collect()
    }
    assert (rows["i"].qty, json.loads(rows["i"]._rescued_data)) == (None, {"qty": 0.04})  # never 0
    assert (rows["j"].amount, json.loads(rows["j"]._rescued_data)) == (
        None,
        {"amount": "12.345"},
    )  # never 12.35
    assert (rows["k"].qty, json.loads(rows["k"]._rescued_data)) == (None, {"qty": 99999999999})
    assert json.loads(rows["l"]._rescued_data) == {"coupon": "X1"}
    assert str(rows["a"].amount) == "1.00"
    assert "n\u00e9\u4e2d" in rows

    unreadable = (
        spark.read.format("delta")
        .load(tables.quarantine("shop", "orders").path(env))
        .where(F.col("reason") == "unreadable_file")
        .collect()
    )
    assert sorted(Path(r.landing_file).name for r in unreadable) == ["id_and_ID.jsonl", "truncated.jsonl.gz"]
    assert all("\n" not in r.reason_detail and "re-deliver" in r.reason_detail for r in unreadable)
    assert all(json.loads(r.raw_record)["sha256"] == r.record_hash for r in unreadable)

    undecodable = (
        spark.read.format("delta")
        .load(tables.quarantine("shop", "orders").path(env))
        .where(F.col("reason") == "invalid_encoding")
        .collect()
    )
    delivered = {line for data, _ in UNDECODABLE_KINDS.values() for line in data.splitlines()}
    assert {base64.b64decode(r.raw_record) for r in undecodable} <= delivered  # byte for byte
    assert len(undecodable) == 2
    assert bronze_run.details["quarantined.invalid_encoding"] == 2


def test_replaced_file_is_a_new_delivery_and_same_bytes_stay_a_redelivery(spark, env, shop):
    landing = Path(env.landing) / "shop" / "orders"
    write_file(landing / "day.jsonl", [order("a"), order("b")])
    run_source(spark, env, shop, tables=["orders"])

    # the partner replaces the file under the same name with new content
    write_file(landing / "day.jsonl", [order("a"), order("b"), order("c"), order("d", qty=4)])
    os.utime(landing / "day.jsonl", ns=(os.stat(landing / "day.jsonl").st_mtime_ns + 10**9,) * 2)
    # and sends the first content again under a new name
    write_file(landing / "day-copy.jsonl", [order("a"), order("b")])
    entry = run_source(spark, env, shop, tables=["orders"])[0]

    assert entry.details["files_replaced"] == 1
    assert entry.details["files_redelivered"] == 1
    silver = spark.read.format("delta").load(tables.silver("shop", "orders", None).path(env))
    assert sorted(r.id for r in silver.collect()) == ["a", "b", "c", "d"]
    bronze = spark.read.format("delta").load(tables.bronze("shop", "orders").path(env))
    assert bronze.count() == 6  # both deliveries of day.jsonl kept: bronze holds everything that landed
    assert_ledger_balanced_and_true(spark, env, "orders")

    # touched, same bytes: nothing new, counted as a re-delivery of itself
    os.utime(landing / "day.jsonl", ns=(os.stat(landing / "day.jsonl").st_mtime_ns + 10**9,) * 2)
    again = run_source(spark, env, shop, tables=["orders"])[0]
    assert (again.records_written, again.records_duplicate) == (0, 4)


def test_csv_is_read_as_rfc_4180(spark, env, shop):
    path = Path(env.landing) / "shop" / "drops" / "d1.csv"
    path.parent.mkdir(parents=True)
    # RFC 4180 section 2: quoted fields may hold the delimiter, line breaks and doubled quotes
    path.write_bytes(
        b'id,seq,note\r\n1,1,"line one\r\nline two"\r\n2,1,"he said ""hi"""\r\n\r\n3,1,"a,b"\r\n4,1\r\n'
    )
    # a Latin-1 file: the CSV reader would turn 0xE9 into U+FFFD, so the file goes whole to quarantine
    (path.parent / "latin1.csv").write_bytes(b"id,seq,note\r\n5,1,caf\xe9\r\n")
    bronze_run = run_source(spark, env, shop, tables=["drops"])[0]
    assert (bronze_run.records_read, bronze_run.records_written, bronze_run.records_quarantined) == (4, 3, 1)
    notes = {
        r.id: r.note
        for r in spark.read.format("delta").load(tables.silver("shop", "drops", None).path(env)).collect()
    }
    # Spark's CSV reader (univocity) turns a CRLF inside quotes into LF; noted in docs/onboarding.md
    assert notes == {"1": "line one\nline two", "2": 'he said "hi"', "3": "a,b"}
    assert_ledger_balanced_and_true(spark, env, "drops")

    rows = spark.read.format("delta").load(tables.quarantine("shop", "drops").path(env))
    files = quarantine.whole_files(rows.withColumn("table", F.lit("shop.drops"))).collect()
    assert [(Path(f.file).name, f.size, f.reason) for f in files] == [
        ("latin1.csv", (path.parent / "latin1.csv").stat().st_size, "invalid_encoding")
    ]
    assert files[0].sha256 == hashlib.sha256((path.parent / "latin1.csv").read_bytes()).hexdigest()
    assert bronze_run.details["files_unreadable"] == 1


def test_drift_that_empties_a_column_is_a_warn_result_and_an_alert(spark, env, shop):
    landing = Path(env.landing) / "shop" / "orders"
    # the partner starts sending qty as text for 26 of 100 records: each is null in qty, kept in _rescued_data
    write_file(landing / "b1.jsonl", [order(f"k{i}", qty="lots" if i < 26 else i) for i in range(100)])
    bronze_run = run_source(spark, env, shop, tables=["orders"])[0]
    # and one record of 100 in the next batch: under the table's rescued_share_warn (5%), a pass
    write_file(landing / "b2.jsonl", [order(f"m{i}", qty="lots" if i == 0 else i) for i in range(100)])
    second = run_source(spark, env, shop, tables=["orders"])[0]

    found = {
        r.run_id: r
        for r in check_results.read(spark, env).where(F.col("check_name") == "rescued_share.qty").collect()
    }
    first = found[bronze_run.run_id]
    assert (first.status, first.observed, first.failed_rows, first.rows_checked) == ("warn", 0.26, 26, 100)
    assert "26 of 100 values of qty (26.0%)" in first.explanation
    assert "_rescued_data" in first.explanation
    assert (found[second.run_id].status, found[second.run_id].failed_rows) == ("pass", 1)

    raised = (
        spark.read.format("delta")
        .load(tables.ALERTS.path(env))
        .where(F.col("kind") == "column_emptied_by_rescue")
    )
    assert [(r.run_id, r.details["column"], r.details["share"]) for r in raised.collect()] == [
        (bronze_run.run_id, "qty", "0.2600")
    ]
    silver = spark.read.format("delta").load(tables.silver("shop", "orders", None).path(env))
    assert silver.where(F.col("qty").isNull()).count() == 27
    assert silver.where(F.get_json_object("_rescued_data", "$.qty") == "lots").count() == 27
