"""Schema contract and drift: decide each column's target type, and conform a batch to it without losing values.

`plan_columns` compares what a batch delivered (its inferred schema) with the contract and the table's
existing schema, applying the table's drift policy (evolve / rescue / fail). `conform` turns that plan
into columns: values that fit are cast, values that do not are kept as JSON in `_rescued_data`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar.config import ColumnSpec, TableSpec
from northstar.errors import EXIT_DRIFT, NorthstarError

RESCUED = "_rescued_data"

_ATOMIC = {
    "string": T.StringType(),
    "boolean": T.BooleanType(),
    "tinyint": T.ByteType(),
    "smallint": T.ShortType(),
    "int": T.IntegerType(),
    "bigint": T.LongType(),
    "float": T.FloatType(),
    "double": T.DoubleType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}
_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
_COMPLEX = (T.StructType, T.ArrayType, T.MapType)


class SchemaDriftError(NorthstarError, ValueError):
    """The batch's schema changed and the table's drift policy is `fail`."""

    exit_code = EXIT_DRIFT
    label = "stopped"


def contract_type(type_name: str) -> T.DataType | None:
    """The Spark type for a contract type name; None for struct/array/map (keep the delivered shape)."""
    if type_name in _ATOMIC:
        return _ATOMIC[type_name]
    if type_name.startswith("decimal"):
        precision, scale = (int(x) for x in type_name[type_name.index("(") + 1 : -1].split(","))
        return T.DecimalType(precision, scale)
    return None


def merge_types(current: T.DataType, incoming: T.DataType, add_fields: bool = True) -> T.DataType:
    """`current` widened with what `incoming` adds: new struct fields appended (if add_fields), current leaf
    types kept on conflict so the table's types never change under its readers."""
    if isinstance(current, T.StructType) and isinstance(incoming, T.StructType):
        incoming_by_name = {f.name: f for f in incoming.fields}
        fields = [
            T.StructField(
                f.name, merge_types(f.dataType, incoming_by_name[f.name].dataType, add_fields), True
            )
            if f.name in incoming_by_name
            else f
            for f in current.fields
        ]
        if add_fields:
            known = {f.name for f in current.fields}
            fields += [
                T.StructField(f.name, f.dataType, True) for f in incoming.fields if f.name not in known
            ]
        return T.StructType(fields)
    if isinstance(current, T.ArrayType) and isinstance(incoming, T.ArrayType):
        return T.ArrayType(merge_types(current.elementType, incoming.elementType, add_fields), True)
    return current


def _parts_fit(
    fits: Callable[[T.DataType, T.DataType], bool],
    delivered: T.DataType,
    target: T.DataType,
    *,
    map_keys: bool,
) -> bool:
    """For two nested types of one kind: `fits` holds for each field (a struct's: every delivered field is in
    `target`), the array's elements, the map's values (and keys, if map_keys). False for anything else."""
    if isinstance(target, T.StructType) and isinstance(delivered, T.StructType):
        target_by_name = {f.name: f.dataType for f in target.fields}
        return all(
            f.name in target_by_name and fits(f.dataType, target_by_name[f.name]) for f in delivered.fields
        )
    if isinstance(target, T.ArrayType) and isinstance(delivered, T.ArrayType):
        return fits(delivered.elementType, target.elementType)
    if isinstance(target, T.MapType) and isinstance(delivered, T.MapType):
        keys_fit = fits(delivered.keyType, target.keyType) if map_keys else True
        return keys_fit and fits(delivered.valueType, target.valueType)
    return False


def compatible(delivered: T.DataType, target: T.DataType) -> bool:
    """True when values of `delivered` can be expected to fit `target` (JSON has no dates, so strings fit them)."""
    if delivered == target:
        return True
    if isinstance(target, _NUMERIC) and isinstance(delivered, _NUMERIC):
        return True
    if isinstance(target, (T.StringType, T.DateType, T.TimestampType)) and isinstance(
        delivered, T.StringType
    ):
        return True
    return _parts_fit(compatible, delivered, target, map_keys=False)


_INTEGRAL_DIGITS: dict[type[T.DataType], int] = {
    T.ByteType: 3,
    T.ShortType: 5,
    T.IntegerType: 10,
    T.LongType: 19,
}
_INTEGRAL_RANK: list[type[T.DataType]] = [T.ByteType, T.ShortType, T.IntegerType, T.LongType]


def _integral_lossless(delivered: type[T.DataType], target: T.DataType) -> bool:
    """An integral type `delivered` into `target`: a wider integral, a double (not from long), a wide decimal."""
    t = type(target)
    if t in _INTEGRAL_DIGITS:
        return _INTEGRAL_RANK.index(delivered) <= _INTEGRAL_RANK.index(t)
    if t is T.DoubleType:
        return delivered is not T.LongType
    if isinstance(target, T.DecimalType):
        return target.precision - target.scale >= _INTEGRAL_DIGITS[delivered]
    return False


def _atomic_lossless(delivered: T.DataType, target: T.DataType) -> bool:
    d = type(delivered)
    if d in _INTEGRAL_DIGITS:
        return _integral_lossless(d, target)
    if d is T.FloatType:
        return type(target) is T.DoubleType
    if isinstance(delivered, T.DecimalType) and isinstance(target, T.DecimalType):
        return target.scale >= delivered.scale and (
            target.precision - target.scale >= delivered.precision - delivered.scale
        )
    return False


def lossless(delivered: T.DataType, target: T.DataType) -> bool:
    """True when every value of `delivered` is represented exactly in `target`, so no check per row is needed."""
    if delivered == target:
        return True
    return _atomic_lossless(delivered, target) or _parts_fit(lossless, delivered, target, map_keys=True)


def describe_change(delivered: T.DataType, target: T.DataType, path: str) -> list[str]:
    """Human-readable list of what differs, naming nested fields by dot path."""
    if isinstance(target, T.StructType) and isinstance(delivered, T.StructType):
        target_by_name = {f.name: f.dataType for f in target.fields}
        changes = []
        for f in delivered.fields:
            if f.name not in target_by_name:
                changes.append(f"new field {path}.{f.name} ({f.dataType.simpleString()})")
            else:
                changes += describe_change(f.dataType, target_by_name[f.name], f"{path}.{f.name}")
        return changes
    if isinstance(target, T.ArrayType) and isinstance(delivered, T.ArrayType):
        return describe_change(delivered.elementType, target.elementType, f"{path}[]")
    if compatible(delivered, target):
        return []
    return [f"{path} changed type from {target.simpleString()} to {delivered.simpleString()}"]


@dataclass(frozen=True)
class ColumnPlan:
    """What to do with one column of a batch."""

    name: str
    delivered: T.DataType | None  # None: the batch does not have this column
    target: T.DataType | None  # None: not kept as a column (rescued whole)

    @property
    def rescued_whole(self) -> bool:
        return self.delivered is not None and self.target is None


def _plan_declared(
    spec: TableSpec, column: ColumnSpec, got: T.DataType | None, existing: T.DataType | None
) -> tuple[ColumnPlan, list[str]]:
    """The plan of a column the contract declares (`got`: its delivered type, `existing`: the table's), with
    the drift it shows."""
    name = column.name
    fixed = contract_type(column.type)
    target: T.DataType | None
    if fixed is not None:
        target = fixed
    else:
        base = existing or got
        target = (
            merge_types(base, got, spec.drift == "evolve") if base is not None and got is not None else base
        )
        if got is not None and not isinstance(got, _COMPLEX):
            target = existing  # a scalar where a nested value is declared: rescue it
    drift: list[str] = []
    if spec.format == "csv" and isinstance(got, T.StringType) and target is not None:
        return ColumnPlan(
            name, got, target
        ), drift  # CSV delivers text: parsing it to the declared type is no drift
    if got is not None:
        drift = (
            describe_change(got, target, name)
            if target is not None
            else [f"{name} changed type from {column.type} to {got.simpleString()}"]
        )
    return ColumnPlan(name, got, target), drift


def _plan_undeclared(
    spec: TableSpec, name: str, got: T.DataType, existing: T.DataType | None, first_batch_defines: bool
) -> tuple[ColumnPlan, list[str]]:
    """The plan of a delivered column the contract does not declare, with the drift it shows."""
    if existing is not None:
        target = merge_types(existing, got, spec.drift == "evolve")
        return ColumnPlan(name, got, target), describe_change(got, existing, name)
    if first_batch_defines:
        return ColumnPlan(name, got, got), []
    new_column = [f"new column {name} ({got.simpleString()})"]
    if spec.drift == "evolve":
        return ColumnPlan(name, got, got), new_column
    return ColumnPlan(name, got, None), new_column


def plan_columns(spec: TableSpec, delivered: T.StructType, existing: T.StructType | None) -> list[ColumnPlan]:
    """Decide the target type of every column, applying the table's drift policy.

    `existing` is the table's current data schema (lineage columns left out), None before its first write.

    A column is new when neither the contract nor the existing table has it. Under `evolve` it is added,
    under `rescue` its values go to `_rescued_data`, under `fail` the run stops naming it.
    """
    existing_types = {f.name: f.dataType for f in (existing.fields if existing else [])}
    delivered_types = {f.name: f.dataType for f in delivered.fields}
    declared = {c.name: c for c in spec.columns or []}
    first_batch_defines = not declared and not existing_types
    plans: list[ColumnPlan] = []
    drift: list[str] = []

    for name, column in declared.items():
        plan, changes = _plan_declared(spec, column, delivered_types.get(name), existing_types.get(name))
        plans.append(plan)
        drift += changes

    for name, got in delivered_types.items():
        if name in declared:
            continue
        plan, changes = _plan_undeclared(spec, name, got, existing_types.get(name), first_batch_defines)
        plans.append(plan)
        drift += changes

    if spec.drift == "fail" and drift:
        raise SchemaDriftError(
            "schema drift with drift policy 'fail': "
            + "; ".join(drift)
            + ". Update the table's columns in its "
            "source YAML (or set drift: evolve / rescue) and re-run; the landing files stay pending until then."
        )
    return plans


def _convert(value: Column, delivered: T.DataType, target: T.DataType) -> Column:
    """An expression turning `value` of type `delivered` into `target`; unfit values become null."""
    if delivered == target:
        return value
    if isinstance(target, T.StructType) and isinstance(delivered, T.StructType):
        delivered_by_name = {f.name: f.dataType for f in delivered.fields}
        fields = [
            (
                _convert(value.getField(f.name), delivered_by_name[f.name], f.dataType)
                if f.name in delivered_by_name
                else F.lit(None).cast(f.dataType)
            ).alias(f.name)
            for f in target.fields
        ]
        return F.when(value.isNull(), F.lit(None).cast(target)).otherwise(F.struct(*fields))
    if isinstance(target, T.ArrayType) and isinstance(delivered, T.ArrayType):
        return F.transform(
            value, lambda element: _convert(element, delivered.elementType, target.elementType)
        )
    if isinstance(target, _COMPLEX):
        text = value if isinstance(delivered, T.StringType) else F.to_json(value)
        return F.from_json(text, target)  # type: ignore[arg-type]  # any DataType works (sent as .json()); the stub omits MapType
    if isinstance(delivered, _COMPLEX):
        return F.lit(None).cast(target)
    return value.try_cast(target)


def _original_json(value: Column, delivered: T.DataType) -> Column:
    return F.to_json(value) if isinstance(delivered, _COMPLEX) else value


def align_to(frame: DataFrame, target: T.StructType) -> DataFrame:
    """Select `target`'s columns, in its order and with its exact types, from `frame` (null where missing).

    Nested structs are rebuilt by field name and a null struct stays null, so Delta never has to cast
    (its MERGE cast turns a NULL struct into a struct of NULLs: delta-io/delta#2248).
    """
    delivered = {f.name: f.dataType for f in frame.schema.fields}
    return frame.select(
        *[
            (
                _convert(F.col(f"`{f.name}`"), delivered[f.name], f.dataType)
                if f.name in delivered
                else F.lit(None).cast(f.dataType)
            ).alias(f.name)
            for f in target.fields
        ]
    )


def conform(frame: DataFrame, plans: list[ColumnPlan], keep: list[str]) -> DataFrame:
    """Apply `plans` to `frame`: typed columns in plan order, then `keep` columns, then `_rescued_data`.

    `_rescued_data` is a JSON object of the original values that did not fit their column (or that belong
    to columns the policy rescues), or null when everything fit.
    """
    columns: list[Column] = []
    rescued: list[Column] = []
    for plan in plans:
        value = F.col(f"`{plan.name}`")
        if plan.delivered is None:
            if (
                plan.target is None
            ):  # a declared struct/array/map no batch or table has yet: no type to give it
                raise TypeError(
                    f"column {plan.name}: neither delivered nor typed, so it has no type to cast to"
                )
            columns.append(F.lit(None).cast(plan.target).alias(plan.name))
            continue
        if plan.target is None:
            rescued.append(_original_json(value, plan.delivered).alias(plan.name))
            continue
        converted = _convert(value, plan.delivered, plan.target)
        if lossless(plan.delivered, plan.target):
            columns.append(converted.alias(plan.name))
            continue
        lost = _lost(value, converted, plan.delivered, plan.target)
        # a value that did not fit is null in its column, never a rounded, truncated or partial stand-in;
        # the original is in _rescued_data
        converted = F.when(lost, F.lit(None).cast(plan.target)).otherwise(converted)
        columns.append(converted.alias(plan.name))
        rescued.append(F.when(lost, _original_json(value, plan.delivered)).alias(plan.name))

    if rescued:
        as_json = F.to_json(F.struct(*rescued))
        rescued_column = F.when(as_json != F.lit("{}"), as_json)
    else:
        rescued_column = F.lit(None).cast("string")
    return frame.select(*columns, *[F.col(c) for c in keep], rescued_column.alias(RESCUED))


# exact enough to compare any delivered number with what its column kept (a wider scale would overflow sooner)
_WIDE_DECIMAL = T.DecimalType(38, 18)


def _lost(value: Column, converted: Column, delivered: T.DataType, target: T.DataType) -> Column:
    """True where `converted` is not exactly the delivered `value` (null, truncated, rounded or cut)."""
    if isinstance(delivered, _COMPLEX) and not isinstance(target, _COMPLEX):
        # a nested value never fits an atomic column (a batch where every record has the new shape)
        return value.isNotNull()
    if isinstance(target, _COMPLEX) and isinstance(delivered, _COMPLEX):
        # something inside did not fit, or was left out. Both sides are read back through the delivered type
        # before comparing, so 2.0 kept as 2 or a field moved or added is not a difference (maps cannot be
        # compared with =, their JSON can)
        as_read = delivered if isinstance(delivered, T.StructType | T.ArrayType) else delivered.json()
        back = F.from_json(F.to_json(converted), as_read)
        return value.isNotNull() & (converted.isNull() | (F.to_json(back) != F.to_json(value)))
    if isinstance(target, _COMPLEX):
        # text read into a nested column: keep the original when it differs at all
        return value.isNotNull() & (
            converted.isNull() | (F.to_json(converted) != _original_json(value, delivered))
        )
    if isinstance(delivered, _NUMERIC) and isinstance(target, _NUMERIC):
        # narrowing numbers can truncate (0.04 -> 0) or round (12.345 -> 12.35) without becoming null
        return value.isNotNull() & (converted.isNull() | (converted.cast(delivered) != value))
    if isinstance(delivered, T.StringType) and isinstance(target, T.DecimalType | T.IntegralType):
        # text read into a number is rounded to the column's scale ("12.345" -> 12.35) without becoming null
        exact = value.try_cast(_WIDE_DECIMAL)
        return value.isNotNull() & (
            converted.isNull() | (exact.isNotNull() & (converted.cast(_WIDE_DECIMAL) != exact))
        )
    return value.isNotNull() & converted.isNull()
