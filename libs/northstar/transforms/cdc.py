"""Change-data-capture events -> one row per event with the table's columns and `_cdc_op` (I, U or D).

A source with a delete marker instead of a change feed (an API's tombstones: Stripe's `deleted: true`, a
`deleted_at` timestamp) is `format: flag`: a marked record is a delete, every other one an upsert.

AWS DMS writes rows with an `Op` column (I/U/D) and the table's columns. Its full-load files (named
LOAD00000001.csv, LOAD0000000A.csv, or LOAD_<segment>_<counter> for a parallel load) carry no `Op` unless
IncludeOpForFullLoad is set, and every row of them is an insert; its CDC files (named by timestamp) always carry
one. So a row without an operation is an insert only when it comes from a full-load file; elsewhere it is
left without one and quarantined (invalid_change_event), never applied as an insert.
Debezium writes envelopes: `before`, `after`, `op` (c/r/u/d), `ts_ms` and `source` (with `lsn`); the row
is `after`, or `before` for a delete. Its ordering values come out as `_cdc_ts_ms` and `_cdc_lsn`, so a
table can order by `[_cdc_ts_ms, _cdc_lsn]` (equal timestamps broken by the log position), or by `[_cdc_lsn]`
alone: the envelope's ts_ms is when the connector processed the event, not when it was committed.
A Debezium table's `columns:` type the row once it is out of the envelope (`type_debezium_rows`): JSON without
schemas carries numeric as text and timestamptz as ISO-8601 text, and leaves out a field null in a whole batch.
"""

from __future__ import annotations

import re

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar.config.source import CdcSpec, TableSpec
from northstar.transforms import schema

OP = "_cdc_op"
DELETED = "_deleted"
INSERT, UPDATE, DELETE = "I", "U", "D"

FULL_LOAD_FILE = r"^LOAD[0-9A-Fa-f_]+\.[^/]*$"  # the DMS S3 target's full-load file names
LANDING_FILE = "_landing_file"

_DEBEZIUM_OPS = {"c": INSERT, "r": INSERT, "u": UPDATE, "d": DELETE}
_DEBEZIUM_ENVELOPE = ["before", "after", "op", "ts_ms", "source", "transaction", "payload", "schema"]


def is_full_load_file(name: str) -> bool:
    """True for a DMS full-load file name (its last path segment), e.g. LOAD00000001.csv."""
    return re.match(FULL_LOAD_FILE, name.rsplit("/", 1)[-1]) is not None


def normalize_dms(events: DataFrame, op_column: str = "Op") -> DataFrame:
    """DMS rows: the `Op` column becomes `_cdc_op`; a row without one is an insert when it comes from a full-load
    file (by `_landing_file`), and has no operation (quarantined) otherwise."""
    full_load = (
        F.regexp_like(F.element_at(F.split(F.col(LANDING_FILE), "/"), -1), F.lit(FULL_LOAD_FILE))
        if LANDING_FILE in events.columns
        else F.lit(True)  # rows without lineage (a test frame): the batch had no Op, as before
    )
    if op_column not in events.columns:
        return events.withColumn(OP, F.when(full_load, F.lit(INSERT)))
    op = F.upper(F.trim(F.col(op_column)))
    given = F.when(op.isin(INSERT, UPDATE, DELETE), op)
    return events.withColumn(
        OP, F.when(F.col(op_column).isNull() & full_load, F.lit(INSERT)).otherwise(given)
    ).drop(op_column)


def _struct_fields(events: DataFrame, name: str) -> list[str]:
    """The field names of struct column `name`; [] when the batch has no such column."""
    if name not in events.columns:
        return []
    data_type = events.schema[name].dataType
    if not isinstance(data_type, T.StructType):
        raise TypeError(f"Debezium envelope field {name} is {data_type.simpleString()}, not a struct")
    return data_type.fieldNames()


def normalize_debezium(events: DataFrame) -> DataFrame:
    """Debezium envelopes (optionally wrapped in `payload`): the row image's columns, `_cdc_op`,
    `_cdc_ts_ms` and `_cdc_lsn`, next to the lineage columns the events already carry."""
    if "payload" in events.columns and "op" not in events.columns:
        lineage = [c for c in events.columns if c.startswith("_")]
        events = events.select("payload.*", *lineage)
    op = F.col("op")
    images = {name: _struct_fields(events, name) for name in ("before", "after")}
    fields = list(dict.fromkeys(images["after"] + images["before"]))

    def image_field(name: str) -> F.Column:
        # a batch may lack `before` (all inserts) or `after` (all deletes), or carry a key-only `before`
        before = F.col("before").getField(name) if name in images["before"] else F.lit(None)
        after = F.col("after").getField(name) if name in images["after"] else F.lit(None)
        return F.when(op == "d", before).otherwise(after).alias(name)

    mapping = F.create_map(*[F.lit(x) for pair in _DEBEZIUM_OPS.items() for x in pair])
    source_fields = _struct_fields(events, "source")
    lineage = [c for c in events.columns if c.startswith("_")]
    return events.select(
        *[image_field(f) for f in fields],
        mapping[op].alias(OP),
        F.col("ts_ms").cast("long").alias("_cdc_ts_ms"),
        (F.col("source.lsn").cast("long") if "lsn" in source_fields else F.lit(None).cast("long")).alias(
            "_cdc_lsn"
        ),
        *lineage,
    )


def type_debezium_rows(rows: DataFrame, spec: TableSpec) -> DataFrame:
    """Normalized Debezium rows with the table's declared column types, as bronze types other tables: values that
    fit are cast, a declared column the batch lacks is null, a value that does not fit is null and kept in
    `_rescued_data` (so a key or ordering value that did not fit is quarantined). Rows without `columns:` are
    returned as they are."""
    if not spec.columns:
        return rows
    carried = "_rescued_envelope"  # what bronze rescued of the envelope, if anything
    rows = (
        rows.withColumnRenamed(schema.RESCUED, carried)
        if schema.RESCUED in rows.columns
        else rows.withColumn(carried, F.lit(None).cast("string"))
    )
    own = [c for c in rows.columns if c.startswith("_")]  # _cdc_*, _deleted and the lineage columns
    image = T.StructType([f for f in rows.schema.fields if f.name not in own])
    typed = schema.conform(rows, schema.plan_columns(spec, image, None), keep=own)
    # both rescued: one JSON object of their keys (envelope fields and row columns)
    both = F.concat(
        F.expr(f"left({carried}, length({carried}) - 1)"),
        F.lit(","),
        F.expr(f"substring({schema.RESCUED}, 2)"),
    )
    envelope, row = F.col(carried), F.col(schema.RESCUED)
    merged = F.when(envelope.isNull(), row).when(row.isNull(), envelope).otherwise(both)
    return typed.withColumn(schema.RESCUED, merged).drop(carried)


def normalize(events: DataFrame, cdc: CdcSpec) -> DataFrame:
    """Events of either format as rows with `_cdc_op`; an unknown op leaves `_cdc_op` null (quarantined)."""
    if cdc.format == "dms":
        return normalize_dms(events, cdc.op_column)
    if cdc.format == "flag":
        assert cdc.deleted_field  # CdcSpec checks it
        return normalize_flagged(events, cdc.deleted_field, cdc.deleted_when)
    return normalize_debezium(events)


def normalize_flagged(events: DataFrame, field: str, when: str) -> DataFrame:
    """Records with a delete marker: D where `field` is true (or, `when` not_null, set), U for every other one.
    A batch without the field has no deletes; the field stays a column of the table."""
    if field not in events.columns:
        return events.withColumn(OP, F.lit(UPDATE))
    marked = F.col(field).isNotNull() if when == "not_null" else F.col(field).cast("boolean")
    return events.withColumn(OP, F.when(marked, F.lit(DELETE)).otherwise(F.lit(UPDATE)))


def with_deleted_flag(rows: DataFrame) -> DataFrame:
    """`_deleted`: true for a delete event; the flag silver keeps under soft deletes."""
    return rows.withColumn(DELETED, F.col(OP) == F.lit(DELETE))
