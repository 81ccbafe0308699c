"""Lake <-> warehouse reconciliation: per partition (day, and currency where the table has one) the row
count and the sum of each money column must be equal in gold (at the published Delta version) and in
Snowflake. `compare` is a pure function over two {partition: {metric: value}} maps, so it can be merged
with the generic quality.reconcile later.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

Partition = tuple[str, ...]
Figures = dict[Partition, dict[str, Decimal | int | None]]  # None: a sum over nulls only

RESULT_SCHEMA = (
    "run_id string, table_name string, gold_version bigint, partition string, metric string, "
    "lake_value decimal(38,2), warehouse_value decimal(38,2), matches boolean, checked_at timestamp"
)


@dataclass(frozen=True)
class Difference:
    """One metric of one partition, on both sides (None = the partition is missing on that side)."""

    partition: Partition
    metric: str
    lake: Decimal | int | None
    warehouse: Decimal | int | None

    @property
    def matches(self) -> bool:
        return self.lake == self.warehouse


class ReconciliationError(RuntimeError):
    """Gold and the warehouse disagree after a publish."""


def compare(lake: Figures, warehouse: Figures) -> list[Difference]:
    """Every (partition, metric) of either side, with both values; a partition missing on one side shows
    as None there (and its count as 0 on the other side never matches)."""
    out = []
    for partition in sorted(set(lake) | set(warehouse)):
        left, right = lake.get(partition, {}), warehouse.get(partition, {})
        for metric in sorted(set(left) | set(right)):
            out.append(Difference(partition, metric, left.get(metric), right.get(metric)))
    return out


def partition_columns(columns: list[str], partition: str | None) -> list[str]:
    """The grain of the check: the day partition, plus currency when the table has one (a table without a
    partition, like the customer dimension, is compared as a whole)."""
    return ([partition] if partition else []) + (["currency"] if "currency" in columns else [])


def lake_figures(frame: DataFrame, partition: list[str], amounts: tuple[str, ...]) -> Figures:
    """Row count and money sums per partition, computed by Spark on the gold rows."""
    rows = (
        frame.groupBy(*partition)
        .agg(F.count(F.lit(1)).alias("rows"), *[F.sum(a).alias(a) for a in amounts])
        .collect()
    )
    return {
        tuple(str(r[p]) for p in partition): {
            "rows": int(r["rows"]),
            **{a: _money(r[a]) for a in amounts},
        }
        for r in rows
    }


def warehouse_query(
    qualified: str, partition: list[str], amounts: tuple[str, ...], where: str | None = None
) -> str:
    """The same figures as SQL for the warehouse (of the rows `where` selects, all when None)."""
    keys = ", ".join(f"TO_VARCHAR({p.upper()})" for p in partition)
    sums = "".join(f", SUM({a.upper()})" for a in amounts)
    rows = f"{qualified} WHERE {where}" if where else qualified
    if not partition:
        return f"SELECT COUNT(*){sums} FROM {rows}"
    return f"SELECT {keys}, COUNT(*){sums} FROM {rows} GROUP BY {keys}"


def partition_filter(column: str, values: list[str]) -> str:
    """`<COLUMN> IN ('2026-03-01', ...)`: the day partitions a publish touched, on the bare column so the
    warehouse prunes by it."""
    listed = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"{column.upper()} IN ({listed})"


def warehouse_figures(rows: list[tuple], partition: list[str], amounts: tuple[str, ...]) -> Figures:
    """The result rows of `warehouse_query` as Figures."""
    width = len(partition)
    return {
        tuple(str(v) for v in r[:width]): {
            "rows": int(r[width]),
            **{a: _money(v) for a, v in zip(amounts, r[width + 1 :], strict=True)},
        }
        for r in rows
    }


def _money(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))
