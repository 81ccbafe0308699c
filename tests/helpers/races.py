"""A forced race between a silver MERGE and a concurrent commit, for the conflict-retry tests.

The conflict is forced, not hoped for: the MERGE's source holds a UDF that, on the first try, signals that the
MERGE has started (its snapshot is taken) and waits; meanwhile another writer DELETEs a row of the same file
and commits; then the UDF lets the MERGE go on, and Delta refuses its commit (ConcurrentDeleteReadException).
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

from pyspark.sql import functions as F

from northstar.config import TableSpec
from northstar.lake.conflicts import retry_on_conflict
from northstar.lake.tables import Table
from northstar.ledger import LedgerEntry
from northstar.silver import merge
from tests.helpers.envs import make_env


def blocking_filter(started: Path, release: Path):
    @F.udf("boolean")
    def go_on(_key):
        if not started.exists():  # first try only: announce, then wait for the competing commit
            started.touch()
            deadline = time.time() + 120
            while not release.exists() and time.time() < deadline:
                time.sleep(0.1)
        return True

    return go_on


def race(spark, tmp_path: Path, merge_attempts: int, path: str | None = None):
    """The forced race on a table at `path` (default: tmp_path/silver); also used with coordinated commits."""
    path = path or str(tmp_path / "silver")
    spark.createDataFrame([(1, 1, "a"), (2, 1, "b")], "id int, v int, _record_hash string").coalesce(
        1
    ).write.format("delta").save(path)
    started, release = tmp_path / "started", tmp_path / "release"
    latest = spark.createDataFrame([(1, 2, "c"), (3, 1, "d")], "id int, v int, _record_hash string")
    latest = latest.where(blocking_filter(started, release)(F.col("id")))
    spec = TableSpec(format="jsonl", landing="x", primary_key=["id"], ordering=["v"])
    entry = LedgerEntry(run_id="r", job="silver", env="test", source="s", table_name="t", layer="silver")
    lake, _, folder = path.rpartition("/")
    env = make_env(tmp_path).model_copy(update={"lake": lake})
    table, tombstones = Table("silver", "race", folder), Table("ops", "race_tombstones", "_race_tombstones")
    outcome = {}

    def run_merge():
        try:
            outcome["metrics"] = merge.merge_latest(
                spark, env, latest, table, spec, entry, full_refresh=False, tombstones=tombstones
            )
        except Exception as err:  # noqa: BLE001 - inspected by the test
            outcome["error"] = err

    original = merge.retry_on_conflict
    merge.retry_on_conflict = functools.partial(retry_on_conflict, attempts=merge_attempts, max_wait=1)
    try:
        merging = threading.Thread(target=run_merge)
        merging.start()
        for _ in range(1200):
            if started.exists():
                break
            time.sleep(0.1)
        spark.sql(f"DELETE FROM delta.`{path}` WHERE id = 2")  # the competing writer rewrites the file
        release.touch()
        merging.join(timeout=300)
    finally:
        merge.retry_on_conflict = original
    return path, outcome
