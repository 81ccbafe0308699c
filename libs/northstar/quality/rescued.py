"""The built-in check that drift emptying a column is seen: for each column of a batch, the share of its rows
whose value did not fit (null in the column, the original kept in `_rescued_data`). Above the table's
`rescued_share_warn` the result is a warn and an alert names the column, the share and where the values are.

It runs on every bronze batch whatever conf/quality/ says, because rescue happens there: a type change that
turns a quarter of a column null is a contract question for a person, not a silent fact of the data.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from northstar.quality.results import PASS, WARN, CheckResult
from northstar.transforms.schema import RESCUED

CHECK_TYPE = "rescued_share"


def rescued_counts(frame: DataFrame, columns: list[str]) -> tuple[int, dict[str, int]]:
    """(rows, column -> rows where the column is null and its delivered value is in `_rescued_data`)."""
    if RESCUED not in frame.columns:
        return frame.count(), {}
    keys = F.json_object_keys(F.col(RESCUED))
    row = frame.agg(
        F.count(F.lit(1)).alias("_rows"),
        *[
            F.count_if(F.col(f"`{c}`").isNull() & F.coalesce(F.array_contains(keys, c), F.lit(False))).alias(
                c
            )
            for c in columns
        ],
    ).first()
    assert row is not None  # a global aggregate has one row
    return row["_rows"], {c: row[c] for c in columns if row[c]}


def results(
    rows: int, rescued: dict[str, int], *, warn_share: float, run_id: str, table: str, where: str
) -> list[CheckResult]:
    """One result per column that had rescued values: warn when its share of the batch exceeds `warn_share`."""
    found = []
    for column, count in sorted(rescued.items()):
        share = count / rows if rows else 0.0
        status = WARN if share > warn_share else PASS
        found.append(
            CheckResult(
                run_id=run_id,
                table_name=table,
                check_name=f"rescued_share.{column}",
                check_type=CHECK_TYPE,
                severity="warn",
                status=status,
                explanation=(
                    f"{count} of {rows} values of {column} ({share:.1%}) did not fit its type and are null; "
                    f"the delivered values are in {where}, key {column}"
                ),
                observed=share,
                expected_low=0.0,
                expected_high=warn_share,
                failed_rows=count,
                rows_checked=rows,
            )
        )
    return found
