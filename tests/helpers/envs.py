"""The repository's paths and a throw-away environment rooted in a test's tmp folder."""

from __future__ import annotations

from pathlib import Path

from northstar.config import EnvConfig

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


# Sized for tests: tables of a few hundred rows on a 2-core machine running two test workers. One shuffle
# partition and one Delta snapshot partition (fewer, not different, tasks), and a short-lived JVM's flags: the
# C1 JIT only and the serial collector, so two JVMs do not spend the cores compiling and collecting. None of it
# changes what a query returns; measured 23% faster on tests/integration/test_cdc.py + test_file_drops.py.
TEST_SPARK = {
    "spark.master": "local[2]",
    "spark.driver.memory": "2g",
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "2",
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1",
}


def make_env(root: Path, name: str = "test") -> EnvConfig:
    """An environment whose zones live under `root` (Spark local[2], 2 GB driver, TEST_SPARK)."""
    return EnvConfig(
        name=name,
        profile="local",
        landing=str(root / "landing"),
        lake=str(root / "lake"),
        quarantine=str(root / "quarantine"),
        spark=dict(TEST_SPARK),
    )
