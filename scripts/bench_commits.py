"""Cost of a Delta commit through the DynamoDB commit coordinator vs a plain file-system commit, same run.

Both tables live on s3a:// in moto's S3; the coordinated one decides every version in moto's DynamoDB. The
same small append is committed alternately to each table (warm-up first), so machine load hits both alike;
the figure that matters is the ratio, not the milliseconds (moto on 127.0.0.1 is not AWS).

    .venv/bin/python scripts/bench_commits.py [--commits 10]        # or: make bench-commits
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/moto_aws.py: moto's server with its one DynamoDB correction


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10, help="timed commits per table")
    args = parser.parse_args()

    # dev-only moto, Spark and tests/ load after the arguments parse (and after sys.path holds the repo)
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - dev-only, heavy

    from northstar.config import EnvConfig  # noqa: PLC0415 - see above
    from northstar.config.env import CommitCoordinatorSpec  # noqa: PLC0415 - see above
    from northstar.spark import get_spark  # noqa: PLC0415 - see above
    from tests.moto_aws import (  # noqa: PLC0415 - tests/ is importable only after sys.path.insert
        bool_updates_kept,
        client,
        free_port,
        give_coordinator_test_credentials,
        point_s3a_at,
    )

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client("s3", endpoint).create_bucket(Bucket="bench")
    root = Path(tempfile.mkdtemp(prefix="bench-commits-"))
    env = EnvConfig(
        name="bench",
        profile="local",
        landing=str(root / "landing"),
        lake=str(root / "lake"),
        quarantine=str(root / "quarantine"),
        spark={"spark.master": "local[2]", "spark.driver.memory": "2g", "northstar.s3Jars": "true"},
    )
    spark = get_spark(env, app_name="northstar-bench-commits")
    point_s3a_at(spark, endpoint)
    give_coordinator_test_credentials(spark)
    spec = CommitCoordinatorSpec(
        dynamodb_table="bench-delta-commits",
        region="us-east-1",
        endpoint=endpoint,
        credentials_provider="com.amazonaws.auth.SystemPropertiesCredentialsProvider",
    )
    for key, value in spec.submit_settings().items():
        spark.conf.set(key, value)
    plain, coordinated = "s3a://bench/plain", "s3a://bench/coordinated"
    properties = ", ".join(f"'{k}' = '{v}'" for k, v in spec.table_properties().items())
    timings: dict[str, list[float]] = {plain: [], coordinated: []}
    with bool_updates_kept():
        spark.sql(f"CREATE TABLE delta.`{plain}` (n int) USING DELTA")
        spark.sql(f"CREATE TABLE delta.`{coordinated}` (n int) USING DELTA TBLPROPERTIES ({properties})")
        row = spark.createDataFrame([(1,)], "n int")
        for n in range(args.commits + 2):  # two warm-up rounds
            for path in (plain, coordinated):
                started = time.perf_counter()
                row.write.format("delta").mode("append").save(path)
                if n >= 2:
                    timings[path].append(time.perf_counter() - started)
        # the coordinated table really committed through DynamoDB: its item holds the latest version
        (item,) = client("dynamodb", endpoint).scan(TableName=spec.dynamodb_table)["Items"]
        latest = spark.sql(f"DESCRIBE HISTORY delta.`{coordinated}` LIMIT 1").first().version
        assert item["path"]["S"] == coordinated
        assert int(item["tableVersion"]["N"]) == latest == args.commits + 2
    server.stop()
    base, coord = (statistics.median(timings[p]) * 1000 for p in (plain, coordinated))
    print(f"commits timed per table: {args.commits} (s3a on moto; one-row appends)")
    print(f"file-system commit (baseline):       median {base:7.0f} ms")
    print(f"DynamoDB-coordinated commit:         median {coord:7.0f} ms")
    print(f"ratio coordinated / baseline:        {coord / base:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
