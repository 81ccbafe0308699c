"""Column names and derived columns: per-partner header mappings (`rename`) and `derive` expressions.

`rename` maps what a partner delivers ("Shipment #", "Status Code") to the table's column names, so
partners with different headers land in one conformed shape. `derive` adds columns computed from the
record (e.g. a key on a nested path, `data.object.id`), so a table can be keyed or ordered by them.
Both are DataFrame -> DataFrame (or name -> name) functions with no I/O.
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar.config.base import IDENTIFIER

# characters Delta refuses in column names (without column mapping)
DELTA_INVALID = re.compile(r"[ ,;{}()\n\t=]")
DOT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class ColumnNameError(ValueError):
    """Two delivered columns end up with the same name after renaming."""


def header_key(name: str) -> str:
    """How delivered names are matched against `rename`: byte-order mark, case and outer spaces ignored."""
    return name.lstrip("\ufeff").strip().lower()


def snake_case(name: str) -> str:
    """A name Delta can store, for delivered names no mapping covers: `Weight (kg)` -> `weight_kg`."""
    cleaned = re.sub(r"[^0-9a-zA-Z]+", "_", header_key(name)).strip("_")
    if not cleaned:
        return "unnamed"
    return cleaned if IDENTIFIER.match(cleaned) else f"_{cleaned}"


def mapped_names(delivered: list[str], rename: dict[str, str]) -> list[str]:
    """The column name each delivered name becomes: its mapping, else itself when Delta can store it,
    else its snake_case form (`Weight (kg)` -> `weight_kg`). Raises ColumnNameError when two delivered names would collide."""
    by_key = {header_key(k): v for k, v in rename.items()}
    names = []
    for name in delivered:
        if header_key(name) in by_key:
            names.append(by_key[header_key(name)])
        elif name and not DELTA_INVALID.search(name):
            names.append(name)
        else:
            names.append(snake_case(name))
    seen: dict[str, str] = {}
    for original, name in zip(delivered, names, strict=True):
        if name in seen:
            raise ColumnNameError(
                f"delivered columns {seen[name]!r} and {original!r} both become {name!r}; "
                "give one of them its own name in the table's rename mapping"
            )
        seen[name] = original
    return names


def rename_columns(frame: DataFrame, columns: list[str], rename: dict[str, str]) -> DataFrame:
    """Rename `columns` of `frame` by `rename` (see `mapped_names`); other columns are kept as they are."""
    targets = dict(zip(columns, mapped_names(columns, rename), strict=True))
    if all(k == v for k, v in targets.items()):
        return frame
    return frame.select(*[F.col(f"`{c}`").alias(targets.get(c, c)) for c in frame.columns])


def _resolve_path(schema: T.StructType, path: str) -> bool:
    """True when the dot path exists in `schema` (so a batch that lacks a nested field gets nulls)."""
    current: T.DataType = schema
    for part in path.split("."):
        if not isinstance(current, T.StructType):
            return False
        match = next((f for f in current.fields if f.name.lower() == part.lower()), None)
        if match is None:
            return False
        current = match.dataType
    return True


def derived_column(frame: DataFrame, expression: str) -> Column:
    """The column for one `derive` expression: a dot path missing from this batch is null (the record is
    then quarantined if the column is a key); any other expression is evaluated as Spark SQL."""
    expression = expression.strip()
    if DOT_PATH.match(expression):
        if not _resolve_path(frame.schema, expression):
            return F.lit(None).cast("string")
        return F.col(".".join(f"`{p}`" for p in expression.split(".")))
    return F.expr(expression)


def derive_columns(frame: DataFrame, derive: dict[str, str]) -> DataFrame:
    """Add (or replace) the `derive` columns, in the order they are declared."""
    for name, expression in derive.items():
        frame = frame.withColumn(name, derived_column(frame, expression))
    return frame
