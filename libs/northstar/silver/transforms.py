"""Silver transforms: reject records silver cannot place (null, blank or unfit keys, ordering values that are
null, unfit or out of range), find exact duplicates, keep the latest.

"Latest" is decided by the table's ordering columns, compared in order, then by the record hash, so the
same records always give the same winner whatever order their files arrived in.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar import quarantine
from northstar.bronze.transforms import LANDING_FILE, RECORD_HASH
from northstar.config import TableSpec
from northstar.quality.checks import CHECK  # the quarantine-severity check a record failed, if any
from northstar.transforms import cdc
from northstar.transforms.schema import RESCUED

DISPOSITION = "_disposition"
REASON = "_reason"
REASON_DETAIL = "_reason_detail"

CANDIDATE = "candidate"  # the latest version of its key in this batch: offered to the MERGE
EXACT_DUPLICATE = "exact_duplicate"  # same key and same record hash as another record of the batch
SUPERSEDED = "superseded"  # an older version of a key whose newer version is in the same batch
QUARANTINED = "quarantined"

HELPER_COLUMNS = [DISPOSITION, REASON, REASON_DETAIL, CHECK]


def _first_problem(checks: list[tuple[Column, str, str]]) -> tuple[Column, Column]:
    """(reason, detail) of the first failing check, null when all pass."""
    reason = F.lit(None).cast("string")
    detail = F.lit(None).cast("string")
    for failed, code, message in reversed(checks):
        reason = F.when(failed, F.lit(code)).otherwise(reason)
        detail = F.when(failed, F.lit(message)).otherwise(detail)
    return reason, detail


# Java regex; (?U): Unicode whitespace too (no-break space, ideographic space)
_WHITESPACE_ONLY = r"(?U)^\s*$"
_TIME_TYPES = (T.TimestampType, T.TimestampNTZType, T.DateType)


def _unfit_checks(batch: DataFrame, spec: TableSpec) -> list[tuple[Column, str, str]]:
    """A key, ordering or required value that did not fit its declared type is null in its column and kept in
    `_rescued_data` by the contract: the record cannot be placed, so it is quarantined saying so."""
    if RESCUED not in batch.columns:
        return []
    declared = {column.name: column.type for column in spec.columns or []}
    roles = [(c, "primary key") for c in spec.primary_key] + [(c, "ordering") for c in spec.ordering]
    roles += [(c, "required") for c in spec.required_columns]
    return [
        (
            F.get_json_object(F.col(RESCUED), f"$.{c}").isNotNull()
            & (_required_applies(batch) if role == "required" else True),
            quarantine.UNFIT_VALUE,
            f"{role} column {c}: the delivered value does not fit type {declared.get(c, 'of the table')}; "
            f"it is kept in {RESCUED}",
        )
        for c, role in roles
    ]


def _required_applies(batch: DataFrame) -> Column:
    """Where a required column must hold a value: every record but a change feed's delete. A delete needs only its
    key and ordering; what else it carries depends on the source (PostgreSQL sends the old row's other columns only
    under REPLICA IDENTITY FULL; Debezium fills NOT NULL ones with placeholders, DMS leaves them empty)."""
    if cdc.OP not in batch.columns:
        return F.lit(True)
    return F.coalesce(F.col(cdc.OP) != F.lit(cdc.DELETE), F.lit(True))


def _blank_key_checks(batch: DataFrame, spec: TableSpec) -> list[tuple[Column, str, str]]:
    types = {f.name: f.dataType for f in batch.schema.fields}
    return [
        (F.col(f"`{c}`").rlike(_WHITESPACE_ONLY), quarantine.BLANK_KEY, f"primary key column {c} is blank")
        for c in spec.primary_key
        if isinstance(types.get(c), T.StringType)
    ]


def _ordering_range_checks(batch: DataFrame, spec: TableSpec) -> list[tuple[Column, str, str]]:
    """Time-typed ordering values more than `max_future_hours` after the record was ingested, or before
    `earliest`: such a version would win over every real later update of its key."""
    types = {f.name: f.dataType for f in batch.schema.fields}
    bounds = spec.ordering_bounds
    ingested = F.col("_ingest_time") if "_ingest_time" in batch.columns else F.current_timestamp()
    latest = ingested + F.expr(f"INTERVAL {bounds.max_future_hours} HOURS")
    earliest = F.lit(bounds.earliest.isoformat()).cast("timestamp")
    checks = []
    for c in spec.ordering:
        if not isinstance(types.get(c), _TIME_TYPES):
            continue
        value = F.col(f"`{c}`").cast("timestamp")
        checks.append(
            (
                (value > latest) | (value < earliest),
                quarantine.ORDERING_OUT_OF_RANGE,
                f"ordering column {c} is more than {bounds.max_future_hours} h after the record was ingested "
                f"or before {bounds.earliest}: as the latest version it would win for ever (ordering_bounds)",
            )
        )
    return checks


def validate(batch: DataFrame, spec: TableSpec) -> DataFrame:
    """Add `_reason`/`_reason_detail`: why the record cannot enter silver (null when it can)."""
    checks = _unfit_checks(batch, spec) + [
        (F.col(f"`{c}`").isNull(), quarantine.NULL_KEY, f"primary key column {c} is null")
        for c in spec.primary_key
    ]
    checks += _blank_key_checks(batch, spec)
    checks += [
        (
            F.col(f"`{c}`").isNull(),
            quarantine.NULL_ORDERING,
            f"ordering column {c} is null, so this version cannot be placed in order",
        )
        for c in spec.ordering
    ]
    checks += _ordering_range_checks(batch, spec)
    checks += [
        (
            F.col(f"`{c}`").isNull() & _required_applies(batch),
            quarantine.MISSING_REQUIRED,
            f"required column {c} is null or missing",
        )
        for c in spec.required_columns
        if c in batch.columns
    ]
    if cdc.OP in batch.columns:
        checks.append(
            (
                F.col(cdc.OP).isNull(),
                quarantine.INVALID_CHANGE,
                "change event has no recognised operation (expected I/U/D, or c/r/u/d for Debezium)",
            )
        )
    reason, detail = _first_problem(checks)
    return batch.withColumn(REASON, reason).withColumn(REASON_DETAIL, detail)


def classify(batch: DataFrame, spec: TableSpec) -> DataFrame:
    """Validate, then tag every record with `_disposition`: candidate, exact_duplicate, superseded or quarantined.

    Within each key, records are ranked newest first (ordering columns, then record hash, then earliest
    delivered); identical records (same hash) sit next to each other in that order, so one window finds
    both duplicates and superseded versions.
    """
    return tag_dispositions(validate(batch, spec), spec.primary_key, spec.ordering)


def tag_dispositions(validated: DataFrame, key: list[str], ordering: list[str]) -> DataFrame:
    """Tag each row of a validated batch (`_reason` set on the invalid ones) with `_disposition`.

    Shared by silver and the conformed models: rows with a reason are quarantined; among the valid rows of a
    key, newest first by (ordering..., record hash), the first is the candidate, a row identical to the one
    before it an exact duplicate, the rest superseded.
    """
    is_valid = F.col(REASON).isNull()
    newest_first = [F.col(f"`{c}`").desc() for c in ordering] + [F.col(RECORD_HASH).desc()]
    # among identical copies, the first delivered is kept (what an incremental run keeps), so a replay
    # from bronze rebuilds silver with the same lineage
    newest_first += [F.col(c).asc() for c in ("_ingest_time", LANDING_FILE) if c in validated.columns]
    by_key = Window.partitionBy(is_valid, *[F.col(f"`{c}`") for c in key]).orderBy(*newest_first)
    disposition = (
        F.when(~is_valid, F.lit(QUARANTINED))
        .when(F.lag(RECORD_HASH).over(by_key) == F.col(RECORD_HASH), F.lit(EXACT_DUPLICATE))
        .when(F.row_number().over(by_key) == 1, F.lit(CANDIDATE))
        .otherwise(F.lit(SUPERSEDED))
    )
    return validated.withColumn(DISPOSITION, disposition)


def newer_condition(ordering: list[str], source: str = "s", target: str = "t") -> str:
    """SQL: the source row sorts after the target row on (ordering..., _record_hash)."""
    keys = [f"`{c}`" for c in ordering] + [RECORD_HASH]

    def after(i: int) -> str:
        here = f"{source}.{keys[i]} > {target}.{keys[i]}"
        if i == len(keys) - 1:
            return here
        return f"({here} OR ({source}.{keys[i]} = {target}.{keys[i]} AND {after(i + 1)}))"

    return after(0)


def key_condition(primary_key: list[str], source: str = "s", target: str = "t") -> str:
    return " AND ".join(f"{target}.`{c}` = {source}.`{c}`" for c in primary_key)


def candidates(tagged: DataFrame) -> DataFrame:
    """The records to MERGE into silver: one per key, helper columns removed."""
    return tagged.where(F.col(DISPOSITION) == CANDIDATE).drop(*HELPER_COLUMNS)


def rejected_to_quarantine(
    tagged: DataFrame, *, run_id: str, source: str, table: str, quarantined_at: datetime
) -> DataFrame:
    """Quarantine rows for records that failed validation, with the record as JSON."""
    rejected = tagged.where(F.col(DISPOSITION) == QUARANTINED)
    data = [c for c in tagged.columns if c not in HELPER_COLUMNS]
    return quarantine.quarantine_rows(
        rejected,
        run_id=run_id,
        layer="silver",
        source=source,
        table=table,
        reason=F.col(REASON),
        reason_detail=F.col(REASON_DETAIL),
        raw_record=F.to_json(F.struct(*[F.col(f"`{c}`") for c in data])),
        landing_file=F.col(LANDING_FILE),
        record_hash=F.col(RECORD_HASH),
        quarantined_at=F.lit(quarantined_at).cast("timestamp"),
        check_name=F.col(CHECK) if CHECK in tagged.columns else None,
    )


VALID_FROM, VALID_TO, IS_CURRENT = "_valid_from", "_valid_to", "_is_current"
HISTORY_COLUMNS = [VALID_FROM, VALID_TO, IS_CURRENT]


def versions(tagged: DataFrame) -> DataFrame:
    """For history tables: every distinct version (the latest and the superseded ones), helper columns removed."""
    return tagged.where(F.col(DISPOSITION).isin(CANDIDATE, SUPERSEDED)).drop(*HELPER_COLUMNS)


def with_validity(all_versions: DataFrame, spec: TableSpec) -> DataFrame:
    """SCD type 2 intervals: a version is valid from its first ordering value until the next version's;
    the last version of a key is current unless it is a delete. Rebuilt from all versions of a key, so a
    version arriving late slots into place and its neighbours' intervals move."""
    oldest_first = [F.col(f"`{c}`").asc() for c in spec.ordering] + [F.col(RECORD_HASH).asc()]
    by_key = Window.partitionBy(*[F.col(f"`{c}`") for c in spec.primary_key]).orderBy(*oldest_first)
    first = F.col(f"`{spec.ordering[0]}`")
    deleted = F.col(cdc.DELETED) if cdc.DELETED in all_versions.columns else F.lit(False)
    return (
        all_versions.withColumn(VALID_FROM, first)
        .withColumn(VALID_TO, F.lead(first).over(by_key))
        .withColumn(IS_CURRENT, F.lead(RECORD_HASH).over(by_key).isNull() & ~deleted)
    )
