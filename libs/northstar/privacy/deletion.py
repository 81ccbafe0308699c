"""Process deletion requests: DELETE the subject's rows from every declared table, VACUUM the files the DELETE
unlinked, and record proof per table (`ops.deletion_proofs`).

Subjects are matched by keyed token: the request log holds the token only. For tables keeping the raw id
(bronze, quarantine's raw records) the raw values whose token matches are found by a query; every table's
rows are then deleted by a row key (event id, record hash), so no UDF runs inside Delta's DELETE and neither
the id nor the token lands in the DELETE predicate Delta keeps in its transaction log. Aggregates
(gold.<source>_minute) hold counts only and need no rewrite.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from delta.tables import DeltaTable
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from northstar.config import ConfigError, EnvConfig
from northstar.lake import delta, tables
from northstar.privacy import requests
from northstar.privacy.spec import PrivacySpec, PrivacyTable
from northstar.secrets import resolve
from northstar.transforms.pii import keyed_token

RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
DEFAULT_RETENTION_HOURS = 168  # Delta refuses shorter VACUUM retention unless the check is switched off


def token_of(spark: SparkSession, subject: str, key: bytes) -> str:
    """The subject's keyed token, computed by the same function silver uses."""
    row = spark.range(1).select(keyed_token(F.lit(subject), key)).first()
    assert row is not None  # a one-row range gives one row
    return row[0]


def subject_column(entry: PrivacyTable) -> Column:
    """The value compared with the subject: the column, or the JSON field read out of a raw record with a regex
    (quarantined records are often not valid JSON, so get_json_object is not enough)."""
    if entry.match == "json_field":
        return F.regexp_extract(F.col(entry.column), rf'"{entry.field}"\s*:\s*"?([^",}}\s]*)', 1)
    return F.col(entry.column).cast("string")


def files_on_disk(spark: SparkSession, path: str) -> int:
    """Data files under the table's folder (the log left out): what VACUUM can remove."""
    jvm = spark._jvm
    assert jvm is not None  # a classic (py4j) session, as get_spark builds
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration())
    listing, count = fs.listFiles(hadoop_path, True), 0
    while listing.hasNext():
        if "/_delta_log/" not in listing.next().getPath().toString():
            count += 1
    return count


def delete_subject(
    spark: SparkSession, path: str, entry: PrivacyTable, token: str, key: bytes
) -> tuple[int, int, int]:
    """DELETE the subject's rows; returns (rows deleted, version before, version after)."""
    before = _latest_version(spark, path)
    value = subject_column(entry)
    frame = spark.read.format("delta").load(path).select(value.alias("v"), F.col(entry.row_key).alias("k"))
    if entry.match == "token":
        found = frame.where(F.col("v") == F.lit(token))
    else:
        values = frame.select("v").where("v IS NOT NULL AND v != ''").distinct()
        found = frame.join(values.where(keyed_token(F.col("v"), key) == token), "v", "left_semi")
    # rows named by their row key: the predicate goes into the commit's metadata, the id or token must not
    keys = [r["k"] for r in found.select("k").distinct().collect()]
    if not keys:
        return 0, before, before
    condition = F.col(entry.row_key).isin(keys)
    table = DeltaTable.forPath(spark, path)
    table.delete(condition)
    after = _latest_version(spark, path)
    if after == before:
        return 0, before, after
    detail = table.detail().first()
    assert detail is not None  # DESCRIBE DETAIL gives one row
    if detail["properties"].get("delta.enableDeletionVectors") == "true":
        spark.sql(
            f"REORG TABLE delta.`{path}` APPLY (PURGE)"
        )  # rewrite files so the rows leave the data files
        after = _latest_version(spark, path)
    return delta.commit_metrics(spark, path, before + 1).get("numDeletedRows", 0), before, after


def _latest_version(spark: SparkSession, path: str) -> int:
    version = delta.latest_version(spark, path)
    if version is None:
        raise FileNotFoundError(f"no Delta table at {path}")
    return version


def vacuum(spark: SparkSession, path: str, retain_hours: int) -> int:
    """VACUUM with `retain_hours`; returns how many data files it removed from disk."""
    on_disk = files_on_disk(spark, path)
    previous = spark.conf.get(RETENTION_CHECK, "true")
    assert previous is not None  # a default is given
    if retain_hours < DEFAULT_RETENTION_HOURS:
        spark.conf.set(RETENTION_CHECK, "false")  # this session only; the short retention is deliberate
    try:
        DeltaTable.forPath(spark, path).vacuum(float(retain_hours))
    finally:
        spark.conf.set(RETENTION_CHECK, previous)
    return on_disk - files_on_disk(spark, path)


def _location(env: EnvConfig, name: str) -> str | None:
    try:
        return tables.lookup(name).path(env)
    except ConfigError:
        return None


def process_requests(
    spark: SparkSession,
    env: EnvConfig,
    privacy: PrivacySpec,
    now: datetime | None = None,
) -> list[dict]:
    """Process every pending request; returns the proof rows written."""
    key = resolve(privacy.token_key).value.encode("utf-8")
    found = {t.table: _location(env, t.table) for t in privacy.tables}
    unknown = [name for name, path in found.items() if path is None]
    if unknown:
        raise ConfigError(
            f"privacy.yaml tables: {', '.join(unknown)} is not a table of this lake (see `northstar tables`)"
        )
    locations = {name: path for name, path in found.items() if path is not None}
    pending = requests.read_requests(spark, env).where(F.col("status") == requests.PENDING).collect()
    proofs: list[dict] = []
    for request in pending:
        now = now or datetime.now(UTC)
        for entry in privacy.tables:
            path = locations[entry.table]
            proof = {
                "request_id": request["request_id"],
                "subject_token": request["subject_token"],
                "table_name": entry.table,
                "table_path": path,
                "table_exists": delta.table_exists(spark, path),
                "rows_deleted": 0,
                "version_before": None,
                "version_after": None,
                "vacuum_retain_hours": privacy.vacuum_retain_hours,
                "vacuum_done": False,
                "files_removed": 0,
                "files_erased_by": None,
                "processed_at": now,
            }
            if proof["table_exists"]:
                deleted, before, after = delete_subject(spark, path, entry, request["subject_token"], key)
                proof.update(rows_deleted=deleted, version_before=before, version_after=after)
                proof["files_removed"] = vacuum(spark, path, privacy.vacuum_retain_hours)
                proof["vacuum_done"] = True
                # files unlinked now are erased by the first VACUUM at least retain hours later (same day if 0)
                proof["files_erased_by"] = now + timedelta(hours=privacy.vacuum_retain_hours)
            proofs.append(proof)
        requests.append_proofs(spark, env, proofs[-len(privacy.tables) :])
        requests.mark_done(spark, env, request["request_id"], now)
    return proofs
