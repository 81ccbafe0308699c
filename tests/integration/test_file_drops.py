"""Partner CSV drops (3PL / WMS): per-partner headers, re-delivered files ingested once, late files in order."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from northstar import ledger
from northstar.bronze.transforms import LINEAGE_COLUMNS
from northstar.config import load_source
from northstar.dev.generate.shipments import PARTNERS, generate_shipments
from northstar.lake import tables
from northstar.silver.pipeline import run_source
from tests.helpers import snapshots
from tests.helpers.envs import make_env

SOURCE = "wms"
RUN_SPECIFIC = ["_run_id", "_ingest_time", "_ingest_date", "_landing_file"]


@pytest.fixture(scope="module")
def wms():
    return load_source(SOURCE)


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    return generate_shipments(tmp_path_factory.mktemp("drops"), shipments=30, seed=21)


def deliver(env, partner: str, paths: list[Path], subfolder: str = "") -> None:
    target = Path(env.landing) / "wms" / partner / subfolder
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        shutil.copy(path, target)


def load(spark, path, drop=()):
    return spark.read.format("delta").load(path).drop(*drop)


def silver_state(spark, env, partner):
    frame = load(spark, tables.silver(SOURCE, f"shipments_{partner}").path(env))
    rows = frame.select(
        "shipment_id", "status", F.date_format("status_time", "yyyy-MM-dd HH:mm:ss").alias("t")
    )
    return {r.shipment_id: (r.status, r.t) for r in rows.collect()}


def truth_state(feed, partner):
    return {k: (status, at.strftime("%Y-%m-%d %H:%M:%S")) for k, (status, at) in feed.latest[partner].items()}


def assert_balanced_ledger(spark, env):
    rows = ledger.read(spark, env).collect()
    assert rows
    assert all(r.status in ("success", "noop") for r in rows)
    for r in rows:
        assert r.records_read == r.records_written + r.records_duplicate + r.records_quarantined, r.run_id


def reorder_columns(path: Path, delimiter: str, target: Path) -> Path:
    """The same rows with the columns in reverse order and a new column: the partner changed its export."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter=delimiter))
    rows = [["Dock Door", *reversed(rows[0])]] + [[f"D{i % 7}", *reversed(r)] for i, r in enumerate(rows[1:])]
    with target.open("w", newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return target


def test_partners_with_different_headers_land_in_one_conformed_shape(spark, env, wms, feed, tmp_path):
    deliver(env, "acme", feed.files["acme"][:-1])
    # the last acme file comes from a changed export: columns reordered and one added ("Dock Door")
    changed = reorder_columns(feed.files["acme"][-1], ",", tmp_path / feed.files["acme"][-1].name)
    deliver(env, "acme", [changed])
    deliver(env, "bolt", feed.files["bolt"])
    entries = {(e.layer, e.table_name): e for e in run_source(spark, env, wms)}

    shapes = {}
    for partner in PARTNERS:
        table = f"shipments_{partner}"
        assert silver_state(spark, env, partner) == truth_state(feed, partner), partner
        bronze, silver = entries["bronze", table], entries["silver", table]
        assert bronze.records_read == feed.rows[partner]
        assert bronze.details["quarantined.malformed_record"] == feed.malformed[partner]
        assert bronze.details["rescued"] >= feed.rescued[partner]  # "3 boxes" kept as text, cartons null
        assert silver.details["quarantined.null_primary_key"] == feed.null_keys[partner]
        assert silver.records_written == len(feed.latest[partner])
        schema = load(spark, tables.silver(SOURCE, table).path(env)).schema
        shapes[partner] = [(f.name, f.dataType) for f in schema.fields if f.name not in LINEAGE_COLUMNS]
    assert shapes["acme"] == shapes["bolt"]  # one conformed shape, whatever the partner's headers
    assert [name for name, _ in shapes["acme"]][:4] == ["shipment_id", "order_id", "status", "status_time"]

    bronze = load(spark, tables.bronze(SOURCE, "shipments_acme").path(env))
    dock = bronze.where(F.col("_landing_file").endswith(changed.name) & F.col("_rescued_data").isNotNull())
    assert dock.count() > 0
    assert '"dock_door":"D' in dock.first()["_rescued_data"]  # drift: rescue
    cartons = bronze.where(F.col("_rescued_data").contains('"cartons":"3 boxes"')).collect()
    assert len(cartons) == 1
    assert cartons[0].cartons is None
    assert_balanced_ledger(spark, env)


def test_late_files_apply_status_changes_in_order(spark, tmp_path, wms, feed):
    at_once, late = make_env(tmp_path / "at_once"), make_env(tmp_path / "late")
    files = feed.files["acme"]
    deliver(at_once, "acme", files)  # every file in one run
    for entry in run_source(spark, at_once, wms, tables=["shipments_acme"]):
        assert entry.balanced, entry
    newest_first = list(reversed(files))
    half = len(newest_first) // 2
    for paths in (newest_first[:half], newest_first[half:]):  # the second run's files are all older
        deliver(late, "acme", paths)
        for entry in run_source(spark, late, wms, tables=["shipments_acme"]):
            assert entry.balanced, entry
    assert silver_state(spark, late, "acme") == truth_state(feed, "acme")
    first = load(spark, tables.silver(SOURCE, "shipments_acme").path(at_once), RUN_SPECIFIC)
    second = load(spark, tables.silver(SOURCE, "shipments_acme").path(late), RUN_SPECIFIC)
    assert_df_equality(first, second, ignore_row_order=True, ignore_column_order=True, ignore_nullable=True)
    not_applied = [
        r.details.get("not_applied", 0)
        for r in ledger.read(spark, late).where("layer = 'silver' AND status = 'success'").collect()
    ]
    assert sum(not_applied) > 0  # older status changes arrived after newer ones and were not applied
    assert_balanced_ledger(spark, late)


def test_redelivered_file_is_ingested_once_and_the_ledger_shows_it(spark, env, wms, feed, tmp_path):
    files = feed.files["bolt"]
    # a partner's SFTP retry: the same bytes under another name, in the same drop as the original
    resent = tmp_path / f"{files[0].stem}_RESEND.csv"
    shutil.copy(files[0], resent)
    deliver(env, "bolt", files)
    deliver(env, "bolt", [resent], subfolder="resend")
    bronze, silver = run_source(spark, env, wms, tables=["shipments_bolt"])
    rows_in = {p: sum(1 for line in p.read_text().splitlines() if line.strip()) - 1 for p in files}

    assert bronze.details["files"] == len(files)
    assert bronze.details["files_redelivered"] == 1
    assert bronze.records_read == feed.rows["bolt"] + rows_in[files[0]]
    assert bronze.records_duplicate == bronze.details["records_redelivered"] == rows_in[files[0]]
    assert silver_state(spark, env, "bolt") == truth_state(feed, "bolt")
    paths = {
        layer: path
        for layer, path in (
            ("bronze", tables.bronze(SOURCE, "shipments_bolt").path(env)),
            ("silver", tables.silver(SOURCE, "shipments_bolt").path(env)),
            ("quarantine", tables.quarantine(SOURCE, "shipments_bolt").path(env)),
        )
    }
    versions = snapshots.versions(spark, paths)

    # a day later the partner re-sends an old file under yet another name
    again = tmp_path / "late" / "bolt_shipments_resent_by_partner.csv"
    again.parent.mkdir()
    shutil.copy(files[1], again)
    deliver(env, "bolt", [again])
    bronze, silver = run_source(spark, env, wms, tables=["shipments_bolt"])
    assert (bronze.status, bronze.details["files_redelivered"], bronze.details["files"]) == ("success", 1, 0)
    assert bronze.records_read == bronze.records_duplicate == rows_in[files[1]]
    assert silver.status == "noop"
    assert snapshots.versions(spark, paths) == versions
    snapshots.assert_rows_unchanged(spark, paths, versions)

    log = load(spark, tables.LANDING_FILES.path(env)).where("duplicate_of IS NOT NULL").collect()
    assert sorted((r.file_uri.rsplit("/", 1)[1], r.duplicate_of.rsplit("/", 1)[1]) for r in log) == sorted(
        [(resent.name, files[0].name), (again.name, files[1].name)]
    )
    assert all(r.content_sha256 and len(r.content_sha256) == 64 for r in log)
    assert [e.status for e in run_source(spark, env, wms, tables=["shipments_bolt"])] == ["noop", "noop"]
    assert_balanced_ledger(spark, env)
