"""A silver batch from bronze rows: the rows silver judges (parsed, change events normalised, derived columns),
validated, flagged by the table's row-level checks and tagged with a disposition. Used by the silver run and by
the quarantine replay, so a replayed record is judged exactly as it was the first time."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar import quarantine
from northstar.bronze.transforms import CORRUPT
from northstar.config import EnvConfig, TableSpec
from northstar.quality import checks as qc
from northstar.quality import evaluate
from northstar.quality.spec import TableChecks
from northstar.silver import transforms as tx
from northstar.transforms import cdc, columns


def parsed_only(bronze_rows: DataFrame) -> DataFrame:
    """Bronze rows that were parsed (unparseable ones carry only `_corrupt_record` and are quarantined)."""
    if CORRUPT not in bronze_rows.columns:
        return bronze_rows
    return bronze_rows.where(F.col(CORRUPT).isNull()).drop(CORRUPT)


def prepare_batch(bronze_rows: DataFrame, spec: TableSpec) -> DataFrame:
    """Bronze rows as silver judges them: parsed ones only, change events normalised, derived columns added.
    (Quarantine keeps each rejected record in this shape as JSON, so a replay parses it back with this schema.)"""
    batch = parsed_only(bronze_rows)
    if spec.cdc:
        batch = cdc.with_deleted_flag(cdc.normalize(batch, spec.cdc))
    if spec.cdc and spec.cdc.format == "debezium":
        batch = cdc.type_debezium_rows(batch, spec)  # the row's `columns:` (bronze kept the envelope)
    if spec.derive:
        batch = columns.derive_columns(batch, spec.derive)  # e.g. a key on a nested path
    return batch


def classify_with_checks(
    spark: SparkSession, env: EnvConfig, spec: TableSpec, batch: DataFrame, checks: TableChecks | None
) -> DataFrame:
    """Validate the batch, flag it with the table's row-level checks (conf/quality/), and tag dispositions:
    a record failing a quarantine-severity check is quarantined (reason failed_check, `_check` names it)."""
    validated = tx.validate(batch, spec)
    if checks is not None:
        validated = evaluate.flag(spark, env, checks, validated, eligible=F.col(tx.REASON).isNull())
        failed_check = F.col(qc.CHECK).isNotNull()
        validated = validated.withColumn(
            tx.REASON, F.when(failed_check, F.lit(quarantine.FAILED_CHECK)).otherwise(F.col(tx.REASON))
        ).withColumn(
            tx.REASON_DETAIL, F.when(failed_check, F.col(qc.CHECK_DETAIL)).otherwise(F.col(tx.REASON_DETAIL))
        )
    return tx.tag_dispositions(validated, spec.primary_key, spec.ordering)
