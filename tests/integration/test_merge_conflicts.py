"""A silver MERGE that loses a race with a concurrent commit is retried and lands; without the retry it fails.

The conflict is forced, not hoped for: the MERGE's source holds a UDF that, on the first try, signals that the
MERGE has started (its snapshot is taken) and waits; meanwhile another writer DELETEs a row of the same file
and commits; then the UDF lets the MERGE go on, and Delta refuses its commit (ConcurrentDeleteReadException).
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from northstar import silver
from northstar.config import TableSpec
from northstar.conflicts import is_conflict, retry_on_conflict
from northstar.ledger import LedgerEntry


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
    outcome = {}

    def run_merge():
        try:
            outcome["metrics"] = silver._merge(
                spark, latest, path, spec, entry, False, str(tmp_path / "tomb")
            )
        except Exception as err:  # noqa: BLE001 - inspected by the test
            outcome["error"] = err

    original = silver.retry_on_conflict
    silver.retry_on_conflict = functools.partial(retry_on_conflict, attempts=merge_attempts, max_wait=1)
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
        silver.retry_on_conflict = original
    return path, outcome


def test_conflicting_merge_is_retried_and_lands_once(spark, tmp_path, caplog):
    path, outcome = race(spark, tmp_path, merge_attempts=5)

    assert "error" not in outcome, outcome.get("error")
    rows = {r.id: r.v for r in spark.read.format("delta").load(path).collect()}
    assert rows == {1: 2, 3: 1}  # the DELETE kept, the MERGE applied once on top of it
    operations = [
        r.operation for r in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").orderBy("version").collect()
    ]
    assert operations == ["WRITE", "DELETE", "MERGE"]
    assert "concurrent Delta commit, retry 1" in caplog.text


def test_without_retry_the_same_race_fails_with_a_conflict(spark, tmp_path):
    path, outcome = race(spark, tmp_path, merge_attempts=1)

    assert is_conflict(outcome["error"]), outcome["error"]
    assert {r.id for r in spark.read.format("delta").load(path).collect()} == {1}


def test_other_errors_are_not_retried():
    calls = []

    def fails():
        calls.append(1)
        raise ValueError("not a conflict")

    with pytest.raises(ValueError):
        retry_on_conflict(fails, what="x", max_wait=0)
    assert calls == [1]
