"""Drift policies, CSV and Parquet sources, and the command line, on hand-written files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from northstar import ledger
from northstar.bronze.runner import run_bronze
from northstar.cli import main
from northstar.config import load_source
from northstar.dev.generate.marketplace import generate_feed
from northstar.lake import tables
from northstar.landing.files import logged_files, pending_files
from northstar.silver.pipeline import run_source
from northstar.transforms.schema import SchemaDriftError
from tests.helpers.conf import load_from
from tests.helpers.envs import REPO

SOURCE = """
tables:
  events:
    format: jsonl
    landing: shop/events
    primary_key: [id]
    ordering: [ts]
    drift: {drift}
    columns:
      - {{name: id, type: string}}
      - {{name: ts, type: bigint}}
      - {{name: amount, type: "decimal(10,2)"}}
"""


def write_conf(root: Path, drift: str) -> Path:
    (root / "sources").mkdir(parents=True, exist_ok=True)
    (root / "sources" / "shop.yaml").write_text(SOURCE.format(drift=drift))
    return root


def land(env, folder: str, name: str, records: list) -> None:
    path = Path(env.landing) / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")


def test_fail_policy_stops_naming_the_field_and_keeps_files_pending(spark, env, tmp_path):
    source = load_from(write_conf(tmp_path / "conf", "fail"), load_source, "shop")
    land(env, "shop/events", "a.jsonl", [{"id": "1", "ts": 1, "amount": 2.5}])
    run_bronze(spark, env, source, "events")
    land(env, "shop/events", "b.jsonl", [{"id": "2", "ts": 2, "amount": 3, "coupon": "X1"}])

    with pytest.raises(SchemaDriftError, match=r"new column coupon \(string\)"):
        run_bronze(spark, env, source, "events")

    assert [
        f.uri.rsplit("/", 1)[1]
        for f in pending_files(
            spark, env, source.tables["events"], logged_files(spark, env, "shop", "events")
        )
    ] == ["b.jsonl"]
    last = ledger.read(spark, env).orderBy(F.col("started_at").desc()).first()
    assert last.status == "failed"
    assert "coupon" in last.error

    evolve = load_from(write_conf(tmp_path / "conf", "evolve"), load_source, "shop")
    entry = run_bronze(spark, env, evolve, "events")
    assert entry.records_written == 1
    assert "coupon" in spark.read.format("delta").load(tables.bronze("shop", "events").path(env)).columns


def test_rescue_policy_keeps_new_fields_and_bad_values_out_of_columns(spark, env, tmp_path):
    source = load_from(write_conf(tmp_path / "conf", "rescue"), load_source, "shop")
    land(
        env,
        "shop/events",
        "a.jsonl",
        [
            {"id": "1", "ts": 1, "amount": 2.5},
            {"id": "2", "ts": 2, "amount": "n/a", "coupon": "X1"},  # a type mismatch and a new field
            '{"id": "3", "ts": ',  # malformed
            {"id": None, "ts": 3, "amount": 1},  # null key
        ],
    )
    entries = run_source(spark, env, source)
    bronze_entry, silver_entry = entries
    assert (bronze_entry.records_read, bronze_entry.records_written, bronze_entry.records_quarantined) == (
        4,
        3,
        1,
    )
    assert (silver_entry.records_read, silver_entry.records_written, silver_entry.records_quarantined) == (
        3,
        2,
        1,
    )
    silver = {
        r.id: r for r in spark.read.format("delta").load(tables.silver("shop", "events").path(env)).collect()
    }
    assert "coupon" not in silver["2"].asDict()
    assert silver["2"].amount is None
    assert json.loads(silver["2"]._rescued_data) == {
        "amount": "n/a",
        "coupon": "X1",
    }
    assert str(silver["1"].amount) == "2.50"
    assert silver["1"]._rescued_data is None


def test_csv_source_with_a_ragged_row(spark, env, tmp_path):
    (tmp_path / "conf" / "sources").mkdir(parents=True)
    (tmp_path / "conf" / "sources" / "wms.yaml").write_text(
        "tables:\n  shipments:\n    format: csv\n    landing: wms/shipments\n    primary_key: [shipment_id]\n"
        "    ordering: [event_time]\n    columns:\n      - {name: shipment_id, type: string}\n"
        "      - {name: event_time, type: timestamp}\n      - {name: cartons, type: int}\n"
    )
    source = load_from(tmp_path / "conf", load_source, "wms")
    land(
        env,
        "wms/shipments",
        "drop1.csv",
        [
            "shipment_id,event_time,cartons,status",
            "S1,2026-11-20T10:00:00Z,3,picked",
            "S1,2026-11-20T12:00:00Z,3,shipped",
            "S2,2026-11-20T11:00:00Z,many,picked",
            "S3,2026-11-20T11:00:00Z,1,picked,EXTRA,COLUMNS",
        ],
    )
    bronze_entry, silver_entry = run_source(spark, env, source)
    assert (bronze_entry.records_read, bronze_entry.records_written, bronze_entry.records_quarantined) == (
        4,
        3,
        1,
    )
    assert silver_entry.balanced
    assert silver_entry.records_duplicate == 1  # S1's older event
    rows = {
        r.shipment_id: r
        for r in spark.read.format("delta").load(tables.silver("wms", "shipments").path(env)).collect()
    }
    assert rows["S1"].status == "shipped"
    assert rows["S1"].cartons == 3
    assert rows["S2"].cartons is None
    assert json.loads(rows["S2"]._rescued_data) == {"cartons": "many"}


def test_parquet_source(spark, env, tmp_path):
    (tmp_path / "conf" / "sources").mkdir(parents=True)
    (tmp_path / "conf" / "sources" / "erp.yaml").write_text(
        "tables:\n  invoices:\n    format: parquet\n    landing: erp/invoices\n"
        "    primary_key: [invoice_id]\n    ordering: [version]\n"
    )
    source = load_from(tmp_path / "conf", load_source, "erp")
    folder = Path(env.landing) / "erp" / "invoices"
    spark.createDataFrame(
        [("I1", 1, 10.0), ("I1", 2, 12.0), ("I2", 1, 5.0)], "invoice_id string, version int, total double"
    ).coalesce(1).write.parquet(str(folder / "batch1"))
    bronze_entry, silver_entry = run_source(spark, env, source)
    assert bronze_entry.records_written == 3
    assert silver_entry.records_written == 2
    totals = {
        r.invoice_id: r.total
        for r in spark.read.format("delta").load(tables.silver("erp", "invoices").path(env)).collect()
    }
    assert totals == {"I1": 12.0, "I2": 5.0}


def test_cli_reports_a_broken_source_file_without_a_traceback(tmp_path, capsys):
    conf = tmp_path / "conf"
    (conf / "sources").mkdir(parents=True)
    (conf / "sources" / "bad.yaml").write_text("tables:\n  t:\n    format: xml\n    landing: x\n")
    assert main(["validate-conf", "--conf-dir", str(conf)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml is not a valid source" in err
    assert "tables.t.format: Input should be 'jsonl', 'csv' or 'parquet'" in err
    assert "tables.t.primary_key: Field required" in err
    assert "Traceback" not in err


def test_cli_run_with_a_users_conf_dir(spark, env, tmp_path, capsys):
    conf = write_conf(tmp_path / "conf", "evolve")
    (conf / "env").mkdir()
    (conf / "env" / "mine.yaml").write_text(
        f"profile: local\nlanding: {env.landing}\nlake: {env.lake}\nquarantine: {env.quarantine}\n"
    )
    land(
        env, "shop/events", "a.jsonl", [{"id": "1", "ts": 1, "amount": 2}, {"id": "1", "ts": 1, "amount": 2}]
    )
    assert main(["run", "--source", "shop", "--env", "mine", "--conf-dir", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "bronze  shop.events" in out
    assert "silver  shop.events" in out
    assert "MISMATCH" not in out


def test_cli_unknown_source_is_a_config_error(capsys):
    assert main(["run", "--source", "nope", "--conf-dir", str(REPO / "conf")]) == 2
    assert "no such source file" in capsys.readouterr().err


def test_job_runs_unchanged_under_spark_submit(tmp_path):
    """The jobs/ entry point under a real spark-submit (a second JVM), as EMR Serverless starts it."""
    generate_feed(tmp_path / "landing", orders=30, files=2, seed=3)
    result = subprocess.run(
        [
            str(REPO / "scripts" / "submit.sh"),
            str(REPO / "jobs" / "ingest_source.py"),
            "--source",
            "marketplace",
            "--env",
            "local",
            "--table",
            "orders",
        ],
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "NORTHSTAR_DATA_DIR": str(tmp_path),
            "NORTHSTAR_SPARK_MASTER": "local[1]",
            "NORTHSTAR_DRIVER_MEMORY": "1g",
            "NORTHSTAR_PII_TOKEN_KEY": os.environ["NORTHSTAR_PII_TOKEN_KEY"],  # conftest's
            "JAVA_HOME": os.environ.get("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64"),
        },
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "silver  marketplace.orders" in result.stdout
    assert "MISMATCH" not in result.stdout
    assert (tmp_path / "lake" / "silver" / "marketplace" / "orders" / "_delta_log").is_dir()


def test_partitioned_silver_merges_only_touched_partitions_and_stays_correct(spark, env, tmp_path):
    (tmp_path / "conf" / "sources").mkdir(parents=True)
    (tmp_path / "conf" / "sources" / "erp.yaml").write_text(
        "tables:\n  invoices:\n    format: parquet\n    landing: erp/invoices\n"
        "    primary_key: [invoice_id]\n    ordering: [version]\n    partition_by: [region]\n"
    )
    source = load_from(tmp_path / "conf", load_source, "erp")
    folder = Path(env.landing) / "erp" / "invoices"
    schema = "invoice_id string, region string, version int, total double"
    first = [(f"I{n}", region, 1, float(n)) for n, region in enumerate(["eu", "us", "apac"] * 10)]
    spark.createDataFrame(first, schema).coalesce(1).write.parquet(str(folder / "batch1"))
    run_source(spark, env, source)
    second = [("I0", "eu", 2, 100.0), ("I3", "eu", 3, 300.0), ("I99", None, 1, 9.0), ("I4", "us", 0, -1.0)]
    spark.createDataFrame(second, schema).coalesce(1).write.parquet(str(folder / "batch2"))
    _, silver = run_source(spark, env, source)

    assert (silver.details["updated"], silver.details["inserted"], silver.details["not_applied"]) == (2, 1, 1)
    path = tables.silver("erp", "invoices").path(env)
    rows = {
        r.invoice_id: (r.region, r.version, r.total) for r in spark.read.format("delta").load(path).collect()
    }
    assert rows["I0"] == ("eu", 2, 100.0)
    assert rows["I3"] == ("eu", 3, 300.0)
    assert rows["I99"] == (None, 1, 9.0)
    assert rows["I4"] == ("us", 1, 4.0)  # an older version does not overwrite
    assert len(rows) == 31
    merge = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").where("operation = 'MERGE'").first()
    assert (
        "region" in merge.operationParameters["predicate"]
    )  # the target was restricted to touched partitions
