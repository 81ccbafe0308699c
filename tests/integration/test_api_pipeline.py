"""Partner API -> landing -> bronze -> silver on the local stack, against the simulator with every fault on."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
import yaml
from pyspark.sql import functions as F

from northstar import ledger
from northstar.cli import main
from northstar.config import load_source
from northstar.dev.simulate.partner_api import START, Faults, PartnerApiSimulator, record_hash
from northstar.extract.ratelimit import FakeClock
from northstar.extract.rest import run_extract
from northstar.lake import delta, tables
from northstar.silver.pipeline import run_source
from tests.helpers import snapshots
from tests.helpers.api_sim import KEYS, RATE, TOKEN, pointed_at
from tests.helpers.envs import REPO

TIMES = (START + timedelta(days=1), START + timedelta(days=3), START + timedelta(days=9))


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("NORTHSTAR_PARTNER_TOKEN", TOKEN)


def silver(spark, env, table):
    return spark.read.format("delta").load(tables.silver("marketplace", table).path(env))


def silver_hashes(spark, env, table) -> dict[str, str]:
    return {r[0]: r[1] for r in silver(spark, env, table).select(KEYS[table], "_record_hash").collect()}


def test_silver_equals_the_simulators_ground_truth_with_every_fault_on(spark, env, marketplace):
    clock = FakeClock()
    faults = Faults.everything(seed=4, timeouts=0.1)
    faults.disconnects, faults.timeout_seconds = 0.1, 0.8  # the client gives up after 0.5 s and retries
    with PartnerApiSimulator(orders=150, faults=faults, rate_limit=RATE, clock=clock, token=TOKEN) as sim:
        source = pointed_at(marketplace, sim.partner_url)
        for when in TIMES:  # three deliveries; bronze + silver after the last two (incremental silver)
            sim.set_time(when)
            assert run_extract(env, source, clock=clock).complete
            if when != TIMES[0]:
                entries = run_source(spark, env, source)
                assert all(e.status == "success" for e in entries)

        for table in ("orders", "refunds"):
            truth = {key: record_hash(record) for key, record in sim.ground_truth(table).items()}
            assert silver_hashes(spark, env, table) == truth, table  # every record, byte for byte as served
        assert sim.stats.over_limit == 0, sim.stats
        for fault in ("server_error", "timeout", "disconnect", "repeated_record"):
            assert sim.stats.faults[fault] > 0, (fault, sim.stats.faults)

        rows = ledger.read(spark, env).collect()
        assert rows
        assert all(
            r.records_read == r.records_written + r.records_duplicate + r.records_quarantined for r in rows
        )
        # broken records in the pages are landed as delivered and quarantined with a reason, not dropped
        reasons = Counter()
        for table in ("orders", "refunds"):
            path = tables.quarantine("marketplace", table).path(env)
            if delta.table_exists(spark, path):
                reasons.update(
                    r.reason for r in spark.read.format("delta").load(path).select("reason").collect()
                )
        served = sim.stats.faults  # a re-fetched page serves its broken record again: served >= landed
        assert served["malformed_record"] + served["null_key_record"] > 0, served
        assert (reasons["malformed_record"] > 0) == (served["malformed_record"] > 0), (reasons, served)
        assert (reasons["null_primary_key"] > 0) == (served["null_key_record"] > 0), (reasons, served)
        silver_runs = [r for r in rows if r.layer == "silver" and r.table_name == "orders"]
        assert sum(r.records_duplicate for r in silver_runs) > 0  # repeats and lookback re-reads, counted

        # schema drift: the new field and the renamed one are columns; the changed type is rescued, not lost
        orders = silver(spark, env, "orders")
        assert {"fulfillment", "sales_channel", "channel"} <= set(orders.columns)
        assert orders.where(F.col("fulfillment").isNotNull()).count() > 0
        assert orders.where(F.col("sales_channel").isNotNull()).count() > 0
        rescued = orders.where(F.col("_rescued_data").isNotNull()).select("_rescued_data").first()[0]
        assert '"shipping_fee":"{\\"amount\\":' in rescued

        # re-running the same window lands the lookback again; silver does not change
        silver_orders = {"silver.orders": tables.silver("marketplace", "orders").path(env)}
        before = snapshots.versions(spark, silver_orders)
        assert run_extract(env, source, clock=clock).complete
        again = run_source(spark, env, source, tables=["orders"])
        assert again[1].records_written == 0
        assert again[1].records_duplicate > 0
        snapshots.assert_rows_unchanged(spark, silver_orders, before)


def test_drift_fail_stops_the_run_naming_the_field(spark, env, marketplace, tmp_path, capsys):
    conf = tmp_path / "conf"
    (conf / "env").mkdir(parents=True)
    (conf / "sources").mkdir()
    (conf / "env" / "mine.yaml").write_text(
        f"profile: local\nlanding: {env.landing}\nlake: {env.lake}\nquarantine: {env.quarantine}\n"
    )
    clock = FakeClock()
    with PartnerApiSimulator(
        orders=40, faults=Faults(schema_drift=True), rate_limit=RATE, clock=clock, token=TOKEN
    ) as sim:
        spec = yaml.safe_load((REPO / "conf" / "sources" / "marketplace.yaml").read_text())
        spec["api"]["base_url"] = sim.partner_url
        (conf / "sources" / "marketplace.yaml").write_text(yaml.safe_dump(spec))
        source = pointed_at(marketplace, sim.partner_url)
        command = [
            "run",
            "--source",
            "marketplace",
            "--table",
            "orders",
            "--env",
            "mine",
            "--conf-dir",
            str(conf),
        ]

        sim.set_time(TIMES[0])  # before the partner's v2 schema: the first batch defines the table
        run_extract(env, source, clock=clock, tables=["orders"])
        assert main(command) == 0
        spec["tables"]["orders"]["drift"] = "fail"  # from now on a schema change must stop the run
        (conf / "sources" / "marketplace.yaml").write_text(yaml.safe_dump(spec))
        sim.set_time(TIMES[-1])
        run_extract(env, source, clock=clock, tables=["orders"])
        capsys.readouterr()
        code = main(command)
    err = capsys.readouterr().err
    assert code == 3
    assert "new column fulfillment" in err or "new column sales_channel" in err, err


def test_stripe_list_api_to_silver_keeps_the_latest_snapshot_and_no_card_number(spark, env, monkeypatch):
    monkeypatch.setenv("NORTHSTAR_STRIPE_KEY", TOKEN)
    stripe = load_source("stripe")
    # extracted a day ago: ordering by `_extracted_at`, a stamp far in the future would be quarantined
    # (ordering_out_of_range), as FakeClock's default start (2027) is
    clock = FakeClock(start=time.time() - 86_400)
    faults = Faults.everything(seed=12, timeouts=0)
    with PartnerApiSimulator(
        orders=0, payments=60, faults=faults, rate_limit=RATE, clock=clock, token=TOKEN
    ) as sim:
        source = pointed_at(stripe, sim.stripe_url)
        for when in (TIMES[0], TIMES[-1]):  # charges are refunded and disputes decided in between
            sim.set_time(when)
            assert run_extract(env, source, clock=clock, tables=["charges", "refunds"]).complete
        entries = run_source(spark, env, source, tables=["charges", "refunds"])
        assert all(e.status == "success" for e in entries)
        for table in ("charges", "refunds"):
            rows = spark.read.format("delta").load(tables.silver("stripe", table).path(env)).collect()
            got = {
                r["id"]: (r["status"], r["amount"], r["amount_refunded"] if table == "charges" else None)
                for r in rows
            }
            want = {
                k: (v["status"], v["amount"], v.get("amount_refunded") if table == "charges" else None)
                for k, v in sim.ground_truth(table, api="stripe").items()
            }
            assert got == want, table
        bronze = spark.read.format("delta").load(tables.bronze("stripe", "charges").path(env))
        descriptions = [r[0] for r in bronze.select("description").collect()]
        assert any("[REDACTED-PAN]" in d for d in descriptions)
        assert not any("4242 4242 4242 4242" in d for d in descriptions)
