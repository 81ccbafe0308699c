"""Crash tests: a bronze + silver run killed with SIGKILL at each commit boundary, in its own process and JVM, then
run again; every table must equal one clean run's, and the ledger's `written` must be what reached the tables.

Every kill point starts from the same lake (a first delivery already through bronze and silver, a second one
landed) copied from one baseline; the landing folder is shared (read-only), so file URIs match. The killed run and
its rerun are compared with one clean run of the second delivery from the same baseline. That delivery has a
truncated gzip among its files, so bronze's first write fails, the file goes to quarantine whole and the others are
written (main's unreadable-file path), and every bronze kill point interrupts that path too. The crash table
(kill point -> what the rerun did) is printed at the end of the module (pytest -s).
"""

from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path

import pytest
from delta.tables import DeltaMergeBuilder
from pyspark.sql import functions as F
from pyspark.sql.readwriter import DataFrameWriter

from northstar import ledger
from northstar.dev.generate.marketplace import generate_feed
from northstar.lake import commits, run_lock, tables
from northstar.silver.pipeline import run_source
from tests.helpers import crash_run, snapshots
from tests.helpers.envs import make_env

RUN_SPECIFIC = ("_run_id", "_ingest_time", "_ingest_date")
QUARANTINE_RUN_SPECIFIC = ("run_id", "quarantined_at")
# a silver reject's raw_record is its bronze row as JSON, lineage included: the run-specific fields are left out
RAW_RUN_SPECIFIC = r'"(_run_id|_ingest_time|_ingest_date)":("[^"]*"|null),?'
TABLE = crash_run.TABLE
RESULTS: list[str] = []


def env_at(root: Path, landing: Path):
    return make_env(root).model_copy(update={"landing": str(landing)})


def deliver(feed: Path, landing: Path, parts) -> None:
    target = landing / "marketplace" / "orders"
    target.mkdir(parents=True, exist_ok=True)
    for number in parts:
        shutil.copy(feed / "marketplace" / "orders" / f"part-{number:04d}.jsonl", target)


def table_paths(env):
    return {
        "bronze": tables.bronze("marketplace", TABLE).path(env),
        "silver": tables.silver("marketplace", TABLE).path(env),
        "quarantine": tables.quarantine("marketplace", TABLE).path(env),
        "landing_log": tables.LANDING_FILES.path(env),
    }


def copy_lake(src, root: Path, landing: Path):
    shutil.copytree(src.lake, root / "lake")
    shutil.copytree(src.quarantine, root / "quarantine")
    return env_at(root, landing)


@pytest.fixture(scope="module")
def baseline(spark, marketplace, tmp_path_factory):
    """(landing folder, the lake before the second delivery's run, the lake after one clean run of it)."""
    root = tmp_path_factory.mktemp("crash")
    generate_feed(root / "feed", orders=160, files=4, seed=11)
    landing = root / "landing"
    before = env_at(root / "before", landing)
    deliver(root / "feed", landing, [0, 1])
    run_source(spark, before, marketplace, tables=[TABLE])
    # the batch each kill point interrupts: malformed lines, null keys, and a file that cannot be read at all
    deliver(root / "feed", landing, [2, 3])
    truncated = (root / "feed" / "marketplace" / "orders" / "part-0002.jsonl").read_bytes()
    (landing / "marketplace" / "orders" / "part-0004.jsonl.gz").write_bytes(gzip.compress(truncated)[:64])
    clean = copy_lake(before, root / "clean", landing)
    bronze_run = run_source(spark, clean, marketplace, tables=[TABLE])[0]
    assert (bronze_run.details["files"], bronze_run.details.get("files_unreadable")) == (3, 1)
    yield landing, before, clean
    if RESULTS:  # printed with pytest -s; kept beside the session's temporary folders too
        table = "kill point | killed run exit | rerun\n--- | --- | ---\n" + "\n".join(RESULTS) + "\n"
        print("\n\n" + table)
        (tmp_path_factory.getbasetemp() / "crash_table.md").write_text(table)


def ledger_rows(spark, env, layer, statuses=(ledger.SUCCESS, ledger.NOOP)):
    return [
        r
        for r in ledger.read(spark, env).collect()
        if r.layer == layer and r.table_name == TABLE and r.status in statuses
    ]


def data_commit_rows(spark, path):
    """Rows each data commit of the table wrote (MERGE: inserted + updated + deleted; a write: its output rows)."""
    total = 0
    for commit in commits.recent(spark, path, limit=1000):
        if commit.operation == "MERGE":
            total += sum(
                commit.metrics.get(f"numTargetRows{k}", 0) for k in ("Inserted", "Updated", "Deleted")
            )
        elif commit.operation == "WRITE":
            total += commit.metrics.get("numOutputRows", 0)
    return total


def assert_same_tables(spark, clean, env):
    clean_paths, paths = table_paths(clean), table_paths(env)
    load = lambda p: spark.read.format("delta").load(p)  # noqa: E731
    for name in ("bronze", "silver"):
        snapshots.assert_same_rows(name, load(clean_paths[name]), load(paths[name]), drop=RUN_SPECIFIC)
    raw = lambda p: load(p).withColumn(  # noqa: E731
        "raw_record", F.regexp_replace("raw_record", RAW_RUN_SPECIFIC, "")
    )
    snapshots.assert_same_rows(
        "quarantine", raw(clean_paths["quarantine"]), raw(paths["quarantine"]), drop=QUARANTINE_RUN_SPECIFIC
    )
    log_columns = ("file_uri", "content_sha256", "duplicate_of")
    snapshots.assert_same_rows(
        "landing log",
        load(clean_paths["landing_log"]).select(*log_columns),
        load(paths["landing_log"]).select(*log_columns),
    )


def assert_ledger_exact(spark, clean, env, failed=()):
    """Every row balances, no run is recorded twice, the sums equal one clean run's, and `written` is what reached
    the tables: bronze's non-corrupt rows, silver's rows inserted (and what its commits wrote). `failed`: the layers
    of the attempts that failed with an exception (each left one `failed` row, which counts for nothing)."""
    paths = table_paths(env)
    for layer in ("bronze", "silver"):
        rows, clean_rows = ledger_rows(spark, env, layer), ledger_rows(spark, clean, layer)
        failures = ledger_rows(spark, env, layer, statuses=(ledger.FAILED,))
        assert len(failures) == list(failed).count(layer), [(r.run_id, r.error) for r in failures]
        for r in rows:
            assert r.records_read == r.records_written + r.records_duplicate + r.records_quarantined, r.run_id
        ran = [r.run_id for r in rows if r.status == ledger.SUCCESS]
        assert len(ran) == len(set(ran)), f"{layer}: a run recorded twice: {ran}"
        for column in ("records_read", "records_written", "records_duplicate", "records_quarantined"):
            assert sum(r[column] for r in rows) == sum(r[column] for r in clean_rows), (layer, column)
    bronze = spark.read.format("delta").load(paths["bronze"])
    assert (
        sum(r.records_written for r in ledger_rows(spark, env, "bronze"))
        == bronze.where(F.col("_corrupt_record").isNull()).count()
    )
    silver_rows = ledger_rows(spark, env, "silver")
    assert sum(r.records_written for r in silver_rows) == data_commit_rows(spark, paths["silver"])
    inserted = sum((r.details or {}).get("inserted", 0) for r in silver_rows)
    assert inserted == spark.read.format("delta").load(paths["silver"]).count()


def wait_out_the_killed_lease(env, layer: str) -> None:
    """The killed run still holds its table's lease (nothing released it): wait until it has expired, as an
    operator rerunning after a kill waits at most `run_lease_seconds`."""
    key = run_lock.lease_key(env, layer, "marketplace", TABLE)
    lease = run_lock.store_for(env).read(key)
    assert lease is not None, f"the killed {layer} run left no lease"
    assert not lease.released, f"the killed {layer} run released its lease: {lease}"
    time.sleep(max(0.0, lease.expires_at - time.time()) + 0.2)


def ledger_keys(spark, env):
    return {(r.run_id, r.status, r.ended_at) for r in ledger.read(spark, env).collect()}


def what_the_rerun_did(spark, env, left: set) -> str:
    flags = (
        "ledger_row_written_by_later_run",
        "resumed_interrupted_run",
        "written_by_earlier_attempt",
        "quarantine_written_by_earlier_attempt",
        "window_of_earlier_attempt",
        "files_unreadable",
        "lease_taken_over",
    )
    rows = [
        r
        for r in ledger.read(spark, env).orderBy("started_at").collect()
        if (r.run_id, r.status, r.ended_at) not in left
    ]
    said = []
    for r in rows:
        marks = [f for f in flags if (r.details or {}).get(f)]
        said.append(
            f"{r.layer} {r.status} read {r.records_read} written {r.records_written} dup {r.records_duplicate} "
            f"quar {r.records_quarantined}" + (f" [{', '.join(marks)}]" if marks else "")
        )
    return "; ".join(said)


@pytest.mark.parametrize("kill_point", list(crash_run.KILL_POINTS))
def test_killed_run_then_rerun_equals_one_clean_run(spark, marketplace, baseline, kill_point, tmp_path):
    landing, before, clean = baseline
    env = copy_lake(before, tmp_path, landing)
    rows_before = len(ledger_keys(spark, env))

    killed = crash_run.killed_run(landing, Path(env.lake), Path(env.quarantine), kill_point)
    assert killed.returncode == -9, killed.output[-3000:]  # SIGKILL, at the kill point
    left = ledger_keys(spark, env)
    layer = crash_run.KILL_POINTS[kill_point].layer
    wait_out_the_killed_lease(env, layer)

    run_source(spark, env, marketplace, tables=[TABLE])

    assert_same_tables(spark, clean, env)
    assert_ledger_exact(spark, clean, env)
    rerun = [r for r in ledger.read(spark, env).collect() if (r.run_id, r.status, r.ended_at) not in left]
    assert [r.layer for r in rerun if (r.details or {}).get("lease_taken_over")] == [layer]
    RESULTS.append(
        f"{crash_run.KILL_POINTS[kill_point].name} | -9 after {killed.seconds:.0f} s, "
        f"{len(left) - rows_before} ledger row(s) left | {what_the_rerun_did(spark, env, left)}"
    )


class Interrupted(Exception):
    """What the exception tests raise right after a data commit."""


def raise_once_after(monkeypatch, owner, name, applies):
    """owner.name raises Interrupted right after its first call for which `applies(*args)` holds."""
    original, raised = getattr(owner, name), []

    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)
        if not raised and applies(*args, **kwargs):
            raised.append(1)
            raise Interrupted(f"after {name}")
        return result

    monkeypatch.setattr(owner, name, wrapped)


@pytest.mark.parametrize("layer", ["bronze", "silver"])
def test_a_run_failed_by_an_exception_after_its_data_commit_then_rerun(
    spark, marketplace, baseline, layer, tmp_path, monkeypatch
):
    """Not a kill: the attempt records a `failed` row. Bronze's retry takes over its run id (the ledger then has
    that id failed and then successful), silver's retry adopts its MERGE; the tables and the successful rows are
    one clean run's."""
    landing, before, clean = baseline
    env = copy_lake(before, tmp_path, landing)
    if layer == "bronze":
        target = table_paths(env)["bronze"]
        raise_once_after(
            monkeypatch, DataFrameWriter, "save", lambda writer, path=None, *a, **k: path == target
        )
    else:
        raise_once_after(monkeypatch, DeltaMergeBuilder, "execute", lambda *a, **k: True)
    with pytest.raises(Interrupted):
        run_source(spark, env, marketplace, tables=[TABLE])
    monkeypatch.undo()
    left = ledger_keys(spark, env)
    failed_run = next(r for r in ledger_rows(spark, env, layer, statuses=(ledger.FAILED,)))

    run_source(spark, env, marketplace, tables=[TABLE])

    assert_same_tables(spark, clean, env)
    assert_ledger_exact(spark, clean, env, failed=[layer])
    retried = [r.run_id for r in ledger_rows(spark, env, layer, statuses=(ledger.SUCCESS,))]
    assert (failed_run.run_id in retried) == (layer == "bronze")
    RESULTS.append(
        f"{layer}: exception after its data commit | failed row | {what_the_rerun_did(spark, env, left)}"
    )


def test_a_killed_silver_run_retried_after_bronze_grew_applies_its_own_window_first(
    spark, marketplace, tmp_path
):
    """Silver killed after its MERGE; bronze then takes another delivery before silver runs again. The retry applies
    the interrupted attempt's window alone (adopting its MERGE), the next run the new bronze version: the batches,
    and so the tables and the ledger, are one clean run's that never crashed."""
    generate_feed(tmp_path / "feed", orders=90, files=3, seed=5)
    landing = tmp_path / "landing"
    clean, env = env_at(tmp_path / "clean", landing), env_at(tmp_path / "crashed", landing)
    deliver(tmp_path / "feed", landing, [0])
    for lake in (clean, env):
        run_source(spark, lake, marketplace, tables=[TABLE])
    deliver(tmp_path / "feed", landing, [1])
    run_source(spark, clean, marketplace, tables=[TABLE])
    killed = crash_run.killed_run(landing, Path(env.lake), Path(env.quarantine), "silver-after-data-commit")
    assert killed.returncode == -9, killed.output[-3000:]
    left = ledger_keys(spark, env)
    wait_out_the_killed_lease(env, "silver")
    deliver(tmp_path / "feed", landing, [2])
    run_source(spark, clean, marketplace, tables=[TABLE])

    run_source(spark, env, marketplace, tables=[TABLE], layers=("bronze",))
    retry = run_source(spark, env, marketplace, tables=[TABLE], layers=("silver",))[0]
    assert (
        retry.details.get("window_of_earlier_attempt"),
        retry.details.get("written_by_earlier_attempt"),
    ) == (1, 1)
    run_source(spark, env, marketplace, tables=[TABLE], layers=("silver",))

    assert_same_tables(spark, clean, env)
    assert_ledger_exact(spark, clean, env)
    rerun = [r for r in ledger.read(spark, env).collect() if (r.run_id, r.status, r.ended_at) not in left]
    assert [r.layer for r in rerun if (r.details or {}).get("lease_taken_over")] == ["silver"]
    RESULTS.append(
        f"silver: after merge, bronze grown before the rerun | -9 after {killed.seconds:.0f} s | "
        f"{what_the_rerun_did(spark, env, left)}"
    )
