"""Snowflake DDL generated from a gold table's Spark schema, and the add-only evolution rule: new columns are
added; a dropped or retyped column is refused (BI dashboards depend on every existing column), with a
message naming the table, the column and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

# Spark type -> (Snowflake DDL type, the DATA_TYPE information_schema reports for it)
_SIMPLE = {
    T.StringType: ("VARCHAR", "TEXT"),
    T.BooleanType: ("BOOLEAN", "BOOLEAN"),
    T.ByteType: ("NUMBER(38,0)", "NUMBER(38,0)"),
    T.ShortType: ("NUMBER(38,0)", "NUMBER(38,0)"),
    T.IntegerType: ("NUMBER(38,0)", "NUMBER(38,0)"),
    T.LongType: ("NUMBER(38,0)", "NUMBER(38,0)"),
    T.FloatType: ("FLOAT", "FLOAT"),
    T.DoubleType: ("FLOAT", "FLOAT"),
    T.DateType: ("DATE", "DATE"),
    T.TimestampType: ("TIMESTAMP_NTZ", "TIMESTAMP_NTZ"),  # gold timestamps are UTC instants
    T.TimestampNTZType: ("TIMESTAMP_NTZ", "TIMESTAMP_NTZ"),
}


class SchemaChangeRefused(RuntimeError):
    """The gold schema would drop or retype a column the warehouse table has."""


@dataclass(frozen=True)
class Column:
    """One warehouse column: upper-case name and its Snowflake type as information_schema reports it."""

    name: str
    type: str


# Columns only the warehouse tables have: when the publish last wrote the row (UTC) and which publish run it was
LOADED_AT = Column("_LOADED_AT", "TIMESTAMP_NTZ")
RUN_ID = Column("_RUN_ID", "VARCHAR")
# Column only the per-run staging tables have: true = the key leaves the target (changes.DELETED)
DELETED = Column("_DELETED", "BOOLEAN")


def snowflake_type(data_type: T.DataType) -> str:
    """The Snowflake type a Spark type is published as (structs/arrays/maps as VARIANT)."""
    if isinstance(data_type, T.DecimalType):
        return f"NUMBER({data_type.precision},{data_type.scale})"
    for spark_type, (ddl, _) in _SIMPLE.items():
        if isinstance(data_type, spark_type):
            return ddl
    if isinstance(data_type, T.StructType | T.ArrayType | T.MapType):
        return "VARIANT"
    raise SchemaChangeRefused(f"no Snowflake type for Spark type {data_type.simpleString()}")


def columns_of(schema: T.StructType) -> list[Column]:
    """The warehouse columns a gold schema asks for, in the gold order."""
    return [Column(f.name.upper(), snowflake_type(f.dataType)) for f in schema.fields]


def normalise(data_type: str, precision: int | None = None, scale: int | None = None) -> str:
    """information_schema's DATA_TYPE (+ precision/scale) in the form `snowflake_type` writes."""
    name = data_type.upper()
    if name in ("TEXT", "VARCHAR", "STRING"):
        return "VARCHAR"
    if name in ("NUMBER", "DECIMAL", "NUMERIC"):
        return f"NUMBER({precision if precision is not None else 38},{scale or 0})"
    if name in ("DOUBLE", "REAL", "FLOAT"):
        return "FLOAT"
    return name


def create_table(qualified: str, columns: list[Column], *, replace: bool = False) -> str:
    """CREATE TABLE for `columns` (IF NOT EXISTS, or OR REPLACE for per-run staging tables)."""
    body = ",\n  ".join(f"{c.name} {c.type}" for c in columns)
    head = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE IF NOT EXISTS"
    return f"{head} {qualified} (\n  {body}\n)"


def evolve(qualified: str, existing: list[Column], wanted: list[Column]) -> list[str]:
    """ALTER TABLE ... ADD COLUMN for gold columns the warehouse table lacks; refuse drops and retypes."""
    have = {c.name: c.type for c in existing}
    want = {c.name: c.type for c in wanted}
    dropped = [name for name in have if name not in want]
    retyped = [f"{n} ({have[n]} -> {want[n]})" for n in want if n in have and have[n] != want[n]]
    problems = []
    if dropped:
        problems.append(f"column(s) {', '.join(dropped)} are no longer in the gold table")
    if retyped:
        problems.append(f"column(s) {', '.join(retyped)} changed type")
    if problems:
        raise SchemaChangeRefused(
            f"publish of {qualified} refused: {'; '.join(problems)}. Existing warehouse columns are never "
            "dropped or retyped because BI dashboards read them. Keep the column in gold (deprecate it, fill "
            "it), or add a new column under a new name; a deliberate breaking change needs a new table "
            "(e.g. <table>_V2) and a migration agreed with the dashboard owners (docs/snowflake.md)."
        )
    return [f"ALTER TABLE {qualified} ADD COLUMN {c.name} {c.type}" for c in wanted if c.name not in have]
