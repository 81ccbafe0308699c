"""The checks themselves, as pure functions over DataFrames and numbers (no reads or writes).

Row-level checks (not_null, accepted_values, range, pattern, relationship) add one boolean flag column per
check (`_check_failed__<name>`: true when the row fails) plus, for the first failing quarantine-severity check,
`_check` (its name) and a message; `row_results` turns the failure counts into result rows. Table-level
checks (unique, freshness, row_count_anomaly, null_rate_spike, schema_change) return one CheckResult each.
Anomaly ranges come from `expected_range`: median and MAD of the same weekday's history, explained in words.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from northstar.quality import spec as q
from northstar.quality.results import FAIL, PASS, QUARANTINED, SKIPPED, WARN, CheckResult
from northstar.transforms.schema import merge_types

FLAG_PREFIX = "_check_failed__"
CHECK = "_check"  # the first quarantine-severity check a row failed
CHECK_DETAIL = "_check_detail"
MAD_SCALE = 1.4826  # MAD x 1.4826 estimates the standard deviation of normally distributed values
SAMPLE_KEYS = 10
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# the row-level types that judge one column (not_null judges several)
COLUMN_CHECKS = (q.AcceptedValues, q.Range, q.Pattern, q.Relationship)


def flag(check: q.Check) -> str:
    return f"{FLAG_PREFIX}{check.name}"


def _col(name: str) -> Column:
    return F.col(f"`{name}`")


def aggregate(frame: DataFrame, *columns: Column) -> Row:
    """The one row of a global aggregation (`frame.agg(*columns)`), even over an empty frame."""
    row = frame.agg(*columns).first()
    assert row is not None  # an aggregation without groupBy always gives exactly one row
    return row


def _ref_flag(check: q.Relationship) -> str:
    return f"_ref_found__{check.name}"


def failure_condition(check: q.Check) -> Column:
    """True where the row fails the check. Null values fail only not_null (as dbt and Soda treat them)."""
    if isinstance(check, q.NotNull):
        return F.greatest(*[_col(c).isNull() for c in check.columns], F.lit(False))
    if not isinstance(check, COLUMN_CHECKS):
        raise TypeError(f"{check.type} is not a row-level check")
    value = _col(check.column)
    if isinstance(check, q.AcceptedValues):
        return value.isNotNull() & ~value.isin(*check.values)
    if isinstance(check, q.Range):
        outside = F.lit(False)
        if check.min is not None:
            outside = outside | (value < F.lit(check.min))
        if check.max is not None:
            outside = outside | (value > F.lit(check.max))
        return value.isNotNull() & outside
    if isinstance(check, q.Pattern):
        return value.isNotNull() & ~value.cast("string").rlike(f"^(?:{check.regex})$")
    return value.isNotNull() & F.col(_ref_flag(check)).isNull()


def failure_message(check: q.Check) -> Column:
    """Why a failing row fails, in words, with its value."""
    if isinstance(check, q.NotNull):
        nulls = [F.when(_col(c).isNull(), F.lit(c)) for c in check.columns]
        return F.concat(F.lit(f"{check.name}: null in "), F.concat_ws(", ", *nulls))
    if not isinstance(check, COLUMN_CHECKS):
        raise TypeError(f"{check.type} is not a row-level check")
    shown = F.coalesce(_col(check.column).cast("string"), F.lit("null"))
    if isinstance(check, q.AcceptedValues):
        allowed = ", ".join(str(v) for v in check.values)
        return F.concat(
            F.lit(f"{check.name}: {check.column} = '"), shown, F.lit(f"' is not one of {allowed}")
        )
    if isinstance(check, q.Range):
        bounds = (
            f"[{'-inf' if check.min is None else check.min}, {'inf' if check.max is None else check.max}]"
        )
        return F.concat(F.lit(f"{check.name}: {check.column} = "), shown, F.lit(f" is outside {bounds}"))
    if isinstance(check, q.Pattern):
        return F.concat(
            F.lit(f"{check.name}: {check.column} = '"), shown, F.lit(f"' does not match {check.regex}")
        )
    return F.concat(
        F.lit(f"{check.name}: {check.column} = '"),
        shown,
        F.lit(f"' not found in {check.to}.{check.to_column}"),
    )


def flag_rows(
    frame: DataFrame,
    checks: list[q.Check],
    references: dict[str, DataFrame] | None = None,
    eligible: Column | None = None,
) -> DataFrame:
    """Add a failure flag per row-level check, and `_check` / `_check_detail` naming the first failing
    quarantine-severity check. `references` maps a relationship check's `to` table to its DataFrame (joined
    on distinct keys: a left join, so every row stays). Rows outside `eligible` (e.g. already rejected for a
    null key) are never flagged."""
    references = references or {}
    row_checks = [c for c in checks if c.row_level]
    for check in row_checks:
        if isinstance(check, q.Relationship):
            if check.to not in references:
                raise ValueError(f"check {check.name}: pass the referenced table {check.to} in `references`")
            keys = (
                references[check.to]
                .select(_col(check.to_column).alias(_ref_flag(check)))
                .where(F.col(_ref_flag(check)).isNotNull())
                .distinct()
            )
            frame = frame.join(keys, _col(check.column) == F.col(_ref_flag(check)), "left")
    eligible = F.lit(True) if eligible is None else eligible
    for check in row_checks:
        frame = frame.withColumn(flag(check), eligible & F.coalesce(failure_condition(check), F.lit(False)))
    name = F.lit(None).cast("string")
    detail = F.lit(None).cast("string")
    for check in reversed([c for c in row_checks if c.severity == "quarantine"]):
        name = F.when(F.col(flag(check)), F.lit(check.name)).otherwise(name)
        detail = F.when(F.col(flag(check)), failure_message(check)).otherwise(detail)
    frame = frame.withColumn(CHECK, name).withColumn(CHECK_DETAIL, detail)
    return frame.drop(*[_ref_flag(c) for c in row_checks if isinstance(c, q.Relationship)])


def flag_columns(frame: DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(FLAG_PREFIX)] + [
        c for c in (CHECK, CHECK_DETAIL) if c in frame.columns
    ]


def failure_counts(
    flagged: DataFrame, checks: list[q.Check], key: list[str]
) -> dict[str, tuple[int, list[str]]]:
    """check name -> (failing rows, a sample of failing keys), in one pass over the flagged frame."""
    row_checks = [c for c in checks if c.row_level]
    if not row_checks:
        return {}
    key_text = F.concat_ws("|", *[F.coalesce(_col(k).cast("string"), F.lit("null")) for k in key])
    aggregates = []
    for check in row_checks:
        failed = F.col(flag(check))
        aggregates += [
            F.sum(failed.cast("long")).alias(f"n_{check.name}"),
            F.slice(F.collect_set(F.when(failed, key_text)), 1, SAMPLE_KEYS).alias(f"k_{check.name}"),
        ]
    row = aggregate(flagged, *aggregates)
    return {c.name: (row[f"n_{c.name}"] or 0, sorted(row[f"k_{c.name}"] or [])) for c in row_checks}


def _status(check: q.RowCheck, failed: int, total: int) -> str:
    if failed == 0:
        return PASS
    if check.severity == "quarantine":
        return QUARANTINED
    within = failed <= check.max_failed_rows or (
        check.max_failed_fraction is not None and total and failed / total <= check.max_failed_fraction
    )
    if within:
        return PASS
    return FAIL if check.severity == "fail" else WARN


def row_results(
    checks: list[q.Check], counts: dict[str, tuple[int, list[str]]], total: int, run_id: str, table: str
) -> list[CheckResult]:
    """One result per row-level check from its failure count."""
    results = []
    for check in [c for c in checks if isinstance(c, q.RowCheck)]:
        failed, keys = counts[check.name]
        allowed = check.max_failed_rows if check.severity != "quarantine" else 0
        if check.severity == "quarantine":
            how = f"{failed} of {total} rows failed and were quarantined; valid rows continued"
        else:
            limit = f"at most {check.max_failed_rows} failing rows"
            if check.max_failed_fraction is not None:
                limit += f" or a fraction of {check.max_failed_fraction}"
            how = f"{failed} of {total} rows failed ({limit} allowed)"
        results.append(
            CheckResult(
                run_id=run_id,
                table_name=table,
                check_name=check.name,
                check_type=check.type,
                severity=check.severity,
                status=_status(check, failed, total),
                observed=float(failed),
                expected_low=0.0,
                expected_high=float(allowed),
                explanation=f"{_row_rule(check)}: {how}",
                failed_rows=failed,
                rows_checked=total,
                failing_keys=keys,
            )
        )
    return results


def _row_rule(check: q.Check) -> str:
    if isinstance(check, q.NotNull):
        return f"{', '.join(check.columns)} must not be null"
    if isinstance(check, q.AcceptedValues):
        return f"{check.column} must be one of {', '.join(str(v) for v in check.values)}"
    if isinstance(check, q.Range):
        return f"{check.column} must be within [{check.min}, {check.max}]"
    if isinstance(check, q.Pattern):
        return f"{check.column} must match {check.regex}"
    if isinstance(check, q.Relationship):
        return f"{check.column} must exist in {check.to}.{check.to_column}"
    raise TypeError(f"{check.type} is not a row-level check")


def _result(
    check: q.Check, run_id: str, table: str, failed: bool, explanation: str, **values: Any
) -> CheckResult:
    status = (FAIL if check.severity == "fail" else WARN) if failed else PASS
    return CheckResult(
        run_id=run_id,
        table_name=table,
        check_name=check.name,
        check_type=check.type,
        severity=check.severity,
        status=status,
        explanation=explanation,
        **values,
    )


def unique(frame: DataFrame, check: q.Unique, run_id: str, table: str) -> CheckResult:
    """Keys (the check's columns) held by more than one row."""
    keys = [_col(c) for c in check.columns]
    repeated = frame.groupBy(*keys).count().where("count > 1")
    key_text = F.concat_ws("|", *[F.coalesce(_col(c).cast("string"), F.lit("null")) for c in check.columns])
    row = aggregate(
        repeated,
        F.count(F.lit(1)).alias("keys"),
        F.coalesce(F.sum("count"), F.lit(0)).alias("rows"),
        F.slice(F.sort_array(F.collect_list(key_text)), 1, SAMPLE_KEYS).alias("sample"),
    )
    duplicate_keys, rows = row["keys"], row["rows"]
    return _result(
        check,
        run_id,
        table,
        duplicate_keys > check.max_duplicate_keys,
        f"({', '.join(check.columns)}) must be unique: {duplicate_keys} keys appear more than once "
        f"({rows} rows; at most {check.max_duplicate_keys} such keys allowed)",
        observed=float(duplicate_keys),
        expected_low=0.0,
        expected_high=float(check.max_duplicate_keys),
        failed_rows=rows,
        failing_keys=list(row["sample"] or []),
    )


def freshness(frame: DataFrame, check: q.Freshness, run_id: str, table: str, now: datetime) -> CheckResult:
    """Hours between the newest value of the column and `now`."""
    newest = aggregate(frame, F.max(_col(check.column)).alias("newest"))["newest"]
    if newest is None:
        return _result(
            check,
            run_id,
            table,
            True,
            f"{check.column} has no value at all, so freshness cannot be shown (allowed lag {check.max_lag_hours} h)",
            expected_high=check.max_lag_hours,
        )
    if newest.tzinfo is None and now.tzinfo is not None:
        now = now.replace(tzinfo=None)  # Spark returns session-local naive timestamps (UTC in this project)
    lag = (now - newest).total_seconds() / 3600
    return _result(
        check,
        run_id,
        table,
        lag > check.max_lag_hours,
        f"newest {check.column} is {newest.isoformat()}, {lag:.2f} h before {now.isoformat()} "
        f"(at most {check.max_lag_hours} h allowed)",
        observed=round(lag, 4),
        expected_high=check.max_lag_hours,
    )


def expected_range(
    history: list[tuple[datetime, float]], as_of: datetime, check: q.RowCountAnomaly | q.NullRateSpike
) -> tuple[float, float, str] | None:
    """(low, high, how it was derived) from the metric's history, or None when the history is too short.

    The last `lookback` values on the same weekday as `as_of` are used when there are at least
    `min_history` of them, else the last `lookback` values of any day. The range is the median +- k x
    1.4826 x MAD (median absolute deviation, a robust standard deviation), at least +- min_spread x median.
    """
    ordered = sorted(history, key=lambda item: item[0], reverse=True)
    day = WEEKDAYS[as_of.weekday()]
    same_day = [v for t, v in ordered if t.weekday() == as_of.weekday()][: check.lookback]
    if len(same_day) >= check.min_history:
        values, basis = same_day, f"{len(same_day)} previous {day}s"
    else:
        values = [v for _, v in ordered][: check.lookback]
        if len(values) < check.min_history:
            return None
        basis = (
            f"{len(values)} previous runs of any weekday (only {len(same_day)} previous {day}s, "
            f"{check.min_history} needed for a weekday baseline)"
        )
    median = statistics.median(values)
    mad = statistics.median([abs(v - median) for v in values])
    spread = check.k * MAD_SCALE * mad
    floor = check.min_spread * abs(median)
    note = ""
    if floor > spread:
        spread, note = floor, f"; widened to the minimum spread {check.min_spread:g} x median"
    low, high = max(0.0, median - spread), median + spread
    explanation = (
        f"derived from {basis}: median {_num(median)}, MAD {_num(mad)}, k={check.k:g} "
        f"(median +- k x 1.4826 x MAD){note} -> [{_num(low)}, {_num(high)}]"
    )
    return low, high, explanation


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.4g}"


def anomaly(
    check: q.RowCountAnomaly | q.NullRateSpike,
    observed: float,
    history: list[tuple[datetime, float]],
    as_of: datetime,
    run_id: str,
    table: str,
    what: str,
) -> CheckResult:
    """Compare an observed metric with the range its own history gives (`expected_range`)."""
    derived = expected_range(history, as_of, check)
    hard_limit = getattr(check, "max_rate", None)
    over_limit = hard_limit is not None and observed > hard_limit
    limit_note = f"; above the hard limit {hard_limit:g}" if over_limit else ""
    if derived is None:
        if over_limit:
            return _result(
                check,
                run_id,
                table,
                True,
                f"{what} {_num(observed)}{limit_note}",
                observed=observed,
                expected_high=hard_limit,
            )
        return CheckResult(
            run_id=run_id,
            table_name=table,
            check_name=check.name,
            check_type=check.type,
            severity=check.severity,
            status=SKIPPED,
            observed=observed,
            explanation=f"{what} {_num(observed)}; not judged: {len(history)} earlier runs, "
            f"{check.min_history} needed for a baseline",
        )
    low, high, how = derived
    outside = observed < low or observed > high
    verdict = "outside" if outside else "within"
    return _result(
        check,
        run_id,
        table,
        outside or over_limit,
        f"{what} {_num(observed)} is {verdict} the expected range {how}{limit_note}",
        observed=observed,
        expected_low=low,
        expected_high=high,
    )


def null_rate(frame: DataFrame, column: str) -> tuple[float, int]:
    """(fraction of rows where the column is null, rows) of a frame; 0.0 for an empty frame."""
    row = aggregate(
        frame, F.count(F.lit(1)).alias("rows"), F.sum(_col(column).isNull().cast("long")).alias("nulls")
    )
    rows = row["rows"] or 0
    return ((row["nulls"] or 0) / rows if rows else 0.0), rows


def schema_change(
    current: StructType,
    baseline: StructType | None,
    check: q.SchemaChange,
    run_id: str,
    table: str,
    ignore: tuple[str, ...] = (),
) -> CheckResult:
    """Columns added, removed or retyped compared with the baseline (the table as it stands)."""
    if baseline is None:
        return _result(
            check, run_id, table, False, "no earlier schema to compare with (first load)", observed=0.0
        )
    now = {f.name: f.dataType for f in current.fields if f.name not in ignore}
    before = {f.name: f.dataType for f in baseline.fields if f.name not in ignore}
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    changed = sorted(c for c in set(now) & set(before) if now[c] != before[c])
    # a struct (or array of structs) that only gained fields is an addition, not a retype
    widened = [c for c in changed if merge_types(before[c], now[c]) == now[c]]
    added += [f"{c} (new nested fields)" for c in widened]
    retyped = [c for c in changed if c not in widened]
    parts = []
    if added:
        parts.append(f"added {', '.join(added)}" + (" (allowed)" if check.allow_added else ""))
    if removed:
        parts.append(f"removed {', '.join(removed)}")
    if retyped:
        parts.append(
            "retyped "
            + ", ".join(f"{c} {before[c].simpleString()} -> {now[c].simpleString()}" for c in retyped)
        )
    changes = len(removed) + len(retyped) + (0 if check.allow_added else len(added))
    return _result(
        check,
        run_id,
        table,
        changes > 0,
        "schema compared with the table: " + ("; ".join(parts) if parts else "no change"),
        observed=float(changes),
        expected_low=0.0,
        expected_high=0.0,
        failing_keys=[*removed, *retyped, *([] if check.allow_added else added)],
    )
