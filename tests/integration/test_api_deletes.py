"""Deletes through a REST API reach silver as deletes (Spark): an API's tombstones (`{id, deleted: true}` with a
newer cursor value, as Stripe and many partner APIs return deleted objects), onboarded with `cdc: {format: flag}`.

The server is the header-token contract of tests/helpers/contract_apis.py with its faults on; silver is compared
with the server's own ground truth after a full run, a late update with deletes, and an incremental run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import functions as F

from northstar.config import parse_source
from northstar.extract.ratelimit import FakeClock
from northstar.extract.rest import run_extract
from northstar.lake import tables
from northstar.silver.pipeline import run_source
from tests.helpers.contract_apis import CONTRACTS, ContractServer, source_yaml

TABLE_WITH_DELETES = """\
    columns:
      - {name: id, type: string, required: true}
      - {name: amount, type: bigint, required: true}
      - {name: modified_ms, type: bigint, required: true}
      - {name: deleted, type: boolean}
    cdc: {format: flag, deleted_field: deleted, deletes: %s}
"""


def onboard_with_deletes(tmp_path: Path, server: ContractServer, deletes: str):
    text = source_yaml(server).replace(
        "    ordering: [modified_ms]\n", "    ordering: [modified_ms]\n" + TABLE_WITH_DELETES % deletes
    )
    path = tmp_path / "conf" / "header_token.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return parse_source(path)


@pytest.mark.parametrize("deletes", ["soft", "hard"])
def test_api_tombstones_reach_silver_as_deletes(spark, env, tmp_path, deletes):
    clock = FakeClock()
    with ContractServer(CONTRACTS["header_token"], clock) as server:
        source = onboard_with_deletes(tmp_path, server, deletes)
        assert run_extract(env, source, clock=clock).complete
        run_source(spark, env, source, tables=["items"])
        clock.advance(86_400)
        server.update_late()
        gone = server.delete()
        assert run_extract(env, source, clock=clock).complete
        run_source(spark, env, source, tables=["items"])
        truth = server.truth()

    silver = spark.read.format("delta").load(tables.silver("header_token", "items").path(env))
    live = {r.id: r.amount for r in silver.where(~F.col("_deleted")).collect()}
    assert live == {k: r["amount"] for k, r in truth.items() if not r.get("deleted")}
    flagged = sorted(r.id for r in silver.where(F.col("_deleted")).collect())
    assert flagged == (sorted(gone) if deletes == "soft" else [])
