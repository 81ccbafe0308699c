"""A silver MERGE that loses a race with a concurrent commit is retried and lands; without the retry it fails.

The conflict is forced, not hoped for: the MERGE's source holds a UDF that, on the first try, signals that the
MERGE has started (its snapshot is taken) and waits; meanwhile another writer DELETEs a row of the same file
and commits; then the UDF lets the MERGE go on, and Delta refuses its commit (ConcurrentDeleteReadException).
"""

from __future__ import annotations

import pytest

from northstar.lake.conflicts import is_conflict, retry_on_conflict
from tests.helpers.races import race


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

    with pytest.raises(ValueError, match="not a conflict"):
        retry_on_conflict(fails, what="x", max_wait=0)
    assert calls == [1]
