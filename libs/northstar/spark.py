"""The one place a Spark session is built: a local profile for this machine, an EMR profile for the cloud.

Jobs call `get_spark(env)`; they never build sessions themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyspark.sql import SparkSession

from northstar.config import EnvConfig
from northstar.lake.storage import jvm
from northstar.secrets import resolve

# Settings every session gets, local or EMR: UTC timestamps everywhere.
SESSION_SETTINGS = {"spark.sql.session.timeZone": "UTC"}

# The local profile: Spark in this process with Delta, sized for a 2-core laptop or CI machine.
LOCAL_SETTINGS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "4g",
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "4",
    "spark.hadoop.fs.s3a.path.style.access": "true",
    "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
}

# Jars only needed when a zone is on S3 (the AWS SDK bundle alone is over 500 MB; leave it off otherwise).
S3_JAR_PREFIXES = ("hadoop-aws-", "bundle-")
# The AWS SDK v1 client of Delta's DynamoDB commit coordinator: with the S3 jars or a `delta_commit_coordinator:`.
COORDINATOR_JAR_PREFIXES = ("aws-java-sdk-",)


def jars_dir() -> Path:
    """Where scripts/setup.sh put the Maven jars: $NORTHSTAR_JARS_DIR, else .jars/ in the checkout."""
    if os.environ.get("NORTHSTAR_JARS_DIR"):
        return Path(os.environ["NORTHSTAR_JARS_DIR"])
    return Path(__file__).resolve().parents[2] / ".jars"


def local_jars(env: EnvConfig) -> list[str]:
    """The jars for a local session; the S3 ones only when a zone is on S3 (or `northstar.s3Jars: true`)."""
    folder = jars_dir()
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not any(Path(j).name.startswith("delta-spark") for j in jars):
        raise RuntimeError(
            f"Delta jars not found in {folder}. Run `make setup` (or scripts/setup.sh) to fetch them from Maven "
            "Central, or set NORTHSTAR_JARS_DIR to a folder that has them."
        )
    uses_s3 = any(loc.startswith(("s3://", "s3a://")) for loc in (env.landing, env.lake, env.quarantine))
    wants_s3 = uses_s3 or env.spark.get("northstar.s3Jars") == "true"
    if not wants_s3:
        jars = [j for j in jars if not Path(j).name.startswith(S3_JAR_PREFIXES)]
    if not wants_s3 and env.delta_commit_coordinator is None:
        jars = [j for j in jars if not Path(j).name.startswith(COORDINATOR_JAR_PREFIXES)]
    return jars


def s3_encryption(env: EnvConfig) -> dict[str, str]:
    """Hadoop s3a settings for the env's `s3:` section: SSE-KMS with the key its reference points at, so
    every object a job writes to S3 is encrypted with that key (local: none)."""
    if env.s3.encryption != "SSE-KMS":
        return {}
    assert env.s3.kms_key_id is not None  # S3Spec requires it with SSE-KMS
    return {
        "fs.s3a.encryption.algorithm": "SSE-KMS",
        "fs.s3a.encryption.key": resolve(env.s3.kms_key_id).value,
    }


def get_spark(env: EnvConfig, app_name: str = "northstar") -> SparkSession:
    """Return the session for this environment, building it on first use.

    local: `local[*]` (or `spark.master` from the env file), Delta extensions, the Maven jars.
    emr: app name only; EMR Serverless supplies master, Delta jars and sizing from the job's Spark properties.
    Both: with a `delta_commit_coordinator:` every table the session creates commits through DynamoDB.
    """
    builder = SparkSession.builder.appName(app_name)
    if env.profile == "local":
        settings = {
            "spark.master": "local[*]",
            **LOCAL_SETTINGS,
            "spark.jars": ",".join(local_jars(env)),
            "spark.sql.warehouse.dir": f"{env.lake}/_catalog",
        }
        settings.update({k: v for k, v in env.spark.items() if not k.startswith("northstar.")})
        for key, value in settings.items():
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    for key, value in SESSION_SETTINGS.items():
        spark.conf.set(key, value)
    for key, value in s3_encryption(env).items():  # on the Hadoop conf: EMR builds the session itself
        spark.sparkContext._jsc.hadoopConfiguration().set(key, value)
    if env.delta_commit_coordinator is not None:  # SQL confs: set here for local and EMR alike
        for key, value in env.delta_commit_coordinator.spark_settings().items():
            spark.conf.set(key, value)
    if env.profile == "local":
        spark.sparkContext.setLogLevel("ERROR")
        _require_delta(spark)
    return spark


def _require_delta(spark: SparkSession) -> None:
    """Fail early and clearly when the JVM was started without Delta (e.g. a plain `spark-submit`)."""
    try:
        jvm(spark).org.apache.spark.util.Utils.classForName("io.delta.tables.DeltaTable", True, False)
    except Exception:  # py4j wraps the ClassNotFoundException
        raise RuntimeError(
            "Delta Lake is not on this Spark's classpath. Under spark-submit, pass the jars: "
            "scripts/submit.sh jobs/<job>.py ... (adds --jars from .jars/), or "
            "--jars .jars/delta-spark_2.13-4.0.0.jar,.jars/delta-storage-4.0.0.jar"
        ) from None
