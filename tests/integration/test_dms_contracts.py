"""An AWS DMS feed under every drift policy, with contracts that declare the operation column and ones that omit it.

The files follow the DMS S3 target's documented layout, not our generator's: a full load in files named
LOAD00000001.csv without an `Op` column (IncludeOpForFullLoad off, the default), then CDC files named by
timestamp whose first column is `Op` (I/U/D). The expected table is the source's state after every event,
computed by applying the events in commit order here, independently of the pipeline.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from northstar.config import load_source
from northstar.dev.generate.cdc import change_events
from northstar.errors import ConfigError
from northstar.lake import tables
from northstar.silver.pipeline import run_source
from northstar.transforms.schema import SchemaDriftError
from tests.helpers.conf import load_from

COLUMNS = ["id", "commit_ts", "change_seq", "name", "tier", "version"]
CONTRACT = """
tables:
  customers:
    format: csv
    landing: dms/customers
    primary_key: [id]
    ordering: [commit_ts, change_seq]
    cdc: {{format: dms, deletes: hard}}
    drift: {drift}
    columns:
{op}      - {{name: id, type: bigint}}
      - {{name: commit_ts, type: timestamp}}
      - {{name: change_seq, type: bigint}}
      - {{name: name, type: string}}
      - {{name: tier, type: string}}
      - {{name: version, type: int}}
"""
OP_DECLARED = "      - {name: Op, type: string}\n"
FEED = change_events(keys=30, updates=90, seed=11)
FULL_LOAD_AT = 45  # the full load is the table after the first 45 events; CDC brings the rest


def source(tmp_path: Path, drift: str, declare_op: bool):
    folder = tmp_path / "conf" / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pg_dms.yaml").write_text(CONTRACT.format(drift=drift, op=OP_DECLARED if declare_op else ""))
    return load_from(tmp_path / "conf", load_source, "pg_dms")


def state_after(events: list[dict]) -> dict[int, dict]:
    table: dict[int, dict] = {}
    for e in events:
        if e["op"] == "d":
            table.pop(e["before"]["id"])
        else:
            table[e["after"]["id"]] = e["after"]
    return table


def commit_ts(event: dict) -> str:
    return datetime.fromtimestamp(event["ts_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def deliver_full_load(landing: Path) -> None:
    snapshot_event = FEED.events[FULL_LOAD_AT - 1]
    snapshot = state_after(FEED.events[:FULL_LOAD_AT])
    write_csv(
        landing / "LOAD00000001.csv",
        COLUMNS,
        [
            [r["id"], commit_ts(snapshot_event), snapshot_event["lsn"], r["name"], r["tier"], r["version"]]
            for r in snapshot.values()
        ],
    )


def deliver_cdc(landing: Path) -> None:
    changes = FEED.events[FULL_LOAD_AT:]
    for number, part in enumerate([changes[0::2], changes[1::2]]):  # interleaved: each file has late events
        rows = []
        for e in part:
            image = e["after"] or {"id": e["before"]["id"]}  # a delete carries the key
            op = {"c": "I", "u": "U", "d": "D"}[e["op"]]
            row = [
                commit_ts(e),
                e["lsn"],
                image["id"],
                image.get("name"),
                image.get("tier"),
                image.get("version"),
            ]
            rows.append([op, *row])
        write_csv(
            landing / f"20261118-12000{number}0000.csv",
            ["Op", *COLUMNS[1:3], *COLUMNS[:1], *COLUMNS[3:]],
            rows,
        )


def silver_state(spark, env) -> dict[int, dict]:
    rows = spark.read.format("delta").load(tables.silver("pg_dms", "customers").path(env)).collect()
    return {r.id: {"id": r.id, "name": r.name, "tier": r.tier, "version": r.version} for r in rows}


@pytest.mark.parametrize(
    ("drift", "declare_op"),
    [("evolve", True), ("rescue", True), ("fail", True), ("evolve", False)],
)
def test_full_load_then_cdc_gives_the_source_table_under_each_contract(
    spark, env, tmp_path, drift, declare_op
):
    spec = source(tmp_path, drift, declare_op)
    landing = Path(env.landing) / "dms" / "customers"
    deliver_full_load(landing)
    load = run_source(spark, env, spec)
    assert silver_state(spark, env) == state_after(
        FEED.events[:FULL_LOAD_AT]
    )  # every full-load row an insert

    deliver_cdc(landing)
    changes = run_source(spark, env, spec)

    assert all(entry.balanced and entry.records_quarantined == 0 for entry in load + changes)
    assert silver_state(spark, env) == state_after(FEED.events)  # deletes applied
    assert changes[1].details["deleted"] > 0


@pytest.mark.parametrize("drift", ["rescue", "fail"])
def test_a_contract_that_omits_the_operation_column_is_refused_under_rescue_and_fail(tmp_path, drift):
    with pytest.raises(ConfigError, match=r"operation column Op is not in columns.*deletes would be lost"):
        source(tmp_path, drift, declare_op=False)


def test_a_cdc_file_without_its_operation_column_stops_the_run_naming_it(spark, env, tmp_path):
    spec = source(tmp_path, "evolve", declare_op=True)
    landing = Path(env.landing) / "dms" / "customers"
    # CDC files (named by timestamp) with the Op column turned off at the source: deletes cannot be told
    write_csv(
        landing / "20261118-1300000000.csv", COLUMNS, [[1, "2026-11-18 00:00:01.000000", 7, "n", "gold", 2]]
    )

    with pytest.raises(SchemaDriftError, match=r"has no column Op \(CDC operation\), which the table needs"):
        run_source(spark, env, spec)
    assert not Path(tables.bronze("pg_dms", "customers").path(env)).exists()  # nothing written, file pending


def test_a_cdc_row_with_a_blank_operation_is_quarantined_not_inserted(spark, env, tmp_path):
    spec = source(tmp_path, "rescue", declare_op=True)
    landing = Path(env.landing) / "dms" / "customers"
    write_csv(
        landing / "20261118-1400000000.csv",
        ["Op", *COLUMNS],
        [
            ["I", 1, "2026-11-18 00:00:01.000000", 7, "n", "gold", 2],
            ["", 2, "2026-11-18 00:00:02.000000", 8, "m", "gold", 1],
        ],
    )
    silver = run_source(spark, env, spec)[1]

    assert silver.details["quarantined.invalid_change_event"] == 1
    assert sorted(silver_state(spark, env)) == [1]
    reasons = spark.read.format("delta").load(tables.quarantine("pg_dms", "customers").path(env))
    assert [r.reason for r in reasons.where(F.col("layer") == "silver").collect()] == ["invalid_change_event"]
