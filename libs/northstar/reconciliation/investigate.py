"""Root cause of a mismatch in one table for one business date: gather the evidence, classify by rules.

Evidence: the table's Delta history and its figure for the date at each version, a keyed diff between the
first version that had the date and the latest, lineage (`_ingest_time`) of the rows that came later,
schema changes and `_rescued_data` in the bronze table, duplicate keys, the run ledger's accounting,
quarantine counts by reason, and for a downstream table its upstream's figure. The classification, first
rule that holds wins:

1. pipeline_bug          the ledger's identity read = written + duplicate + quarantined is broken for a run
                         of the table or its upstream, or the table (or its upstream) has duplicate keys
2. source_change         the bronze table's columns were added, removed or retyped in a version written on
                         or after the date, or its share of rows with `_rescued_data` rose on the date
3. transformation_logic  the upstream's figure for the date differs from this table's (upstream right,
                         downstream wrong)
4. late_arriving         rows for the date were added or changed after the first version that had the date
5. no_mismatch           none of the above
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import reduce

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar import ledger
from northstar.config import ConfigError, EnvConfig
from northstar.lake import delta, tables
from northstar.reconciliation.reconcile import compare, daily_figures
from northstar.reconciliation.spec import ReconSpec, TableProfile
from northstar.reconciliation.version_diff import VersionDiff, diff_versions, read_version

PIPELINE_BUG, SOURCE_CHANGE = "pipeline_bug", "source_change"
TRANSFORMATION_LOGIC, LATE_ARRIVING, NO_MISMATCH = "transformation_logic", "late_arriving", "no_mismatch"
LEDGER_DAYS_AFTER = 7  # runs up to a week after the date can carry its data (late partner updates)
RESCUED = "_rescued_data"


@dataclass
class Investigation:
    table: str
    business_date: date
    classification: str
    reasons: list[str] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps(
            {
                "table": self.table,
                "business_date": self.business_date.isoformat(),
                "classification": self.classification,
                "reasons": self.reasons,
                "evidence": self.evidence,
            },
            indent=2,
            default=str,
        )

    def format(self) -> str:
        lines = [f"{self.table} on {self.business_date}: {self.classification}"]
        lines += [f"  because {reason}" for reason in self.reasons] or ["  no rule matched"]
        lines.append("evidence:")
        for name, value in self.evidence.items():
            lines.append(f"  {name}: {json.dumps(value, default=str)}")
        return "\n".join(lines)


def _on_day(profile: TableProfile, day: date) -> str:
    return f"to_date({profile.date}) = DATE'{day.isoformat()}'"


def _figure(frame: DataFrame, profile: TableProfile, day: date) -> dict[str, dict[str, float]]:
    rows = daily_figures(frame, profile).where(F.col("business_date") == F.lit(day)).collect()
    return {r["currency"]: {"count": float(r["count"]), "sum": float(r["sum"])} for r in rows}


def figure_history(
    spark: SparkSession, path: str, profile: TableProfile, day: date, max_versions: int = 30
) -> list[dict]:
    """The table's history (newest max_versions commits) with its figure for `day` at each version."""
    history = (
        DeltaTable.forPath(spark, path)
        .history(max_versions)
        .select("version", "timestamp", "operation")
        .orderBy("version")
        .collect()
    )
    out = []
    for commit in history:
        figure = _figure(read_version(spark, path, commit["version"]), profile, day)
        out.append(
            {
                "version": commit["version"],
                "timestamp": commit["timestamp"],
                "operation": commit["operation"],
                "figure": figure,
            }
        )
    return out


def schema_changes(spark: SparkSession, path: str, since: date, max_versions: int = 30) -> list[dict]:
    """Columns added, removed or retyped by commits on or after `since` (each against the version before)."""
    history = DeltaTable.forPath(spark, path).history(max_versions).select("version", "timestamp").collect()
    changes = []
    for commit in sorted(history, key=lambda c: c["version"]):
        version = commit["version"]
        if version == 0 or commit["timestamp"].date() < since:
            continue
        before = {f.name: f.dataType.simpleString() for f in read_version(spark, path, version - 1).schema}
        after = {f.name: f.dataType.simpleString() for f in read_version(spark, path, version).schema}
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        retyped = sorted(c for c in set(before) & set(after) if before[c] != after[c])
        if added or removed or retyped:
            changes.append({"version": version, "added": added, "removed": removed, "retyped": retyped})
    return changes


def rescued_share(frame: DataFrame, profile: TableProfile, day: date, days_before: int = 7) -> dict | None:
    """Share of rows with `_rescued_data` on `day` and over the days before it (None without the column)."""
    if RESCUED not in frame.columns:
        return None
    dated = frame.select(F.to_date(F.expr(profile.date)).alias("d"), F.col(RESCUED).isNotNull().alias("r"))
    dated = dated.where((F.col("d") >= F.lit(day - timedelta(days=days_before))) & (F.col("d") <= F.lit(day)))
    rows = dated.groupBy(F.col("d") == F.lit(day)).agg(
        F.count("*").alias("n"), F.sum(F.col("r").cast("int")).alias("r")
    )
    shares = {"on_day": 0.0, "before": 0.0}
    for row in rows.collect():
        shares["on_day" if row[0] else "before"] = float(row["r"] or 0) / row["n"] * 100
    return shares


def duplicate_keys(frame: DataFrame, profile: TableProfile, day: date) -> int:
    """Keys with more than one row on `day`."""
    return frame.where(_on_day(profile, day)).groupBy(*profile.key).count().where("count > 1").count()


def ledger_evidence(
    spark: SparkSession, env: EnvConfig, profiles: list[TableProfile], day: date
) -> list[dict]:
    """Ledger runs of these tables started from the day before `day` to LEDGER_DAYS_AFTER days after it."""
    wanted = [(p.ledger_source, p.ledger_table) for p in profiles if p.ledger_source and p.ledger_table]
    if not wanted:
        return []
    condition = reduce(
        operator.or_,
        [(F.col("source") == source) & (F.col("table_name") == table) for source, table in wanted],
    )
    start = datetime.combine(day - timedelta(days=1), datetime.min.time())
    end = datetime.combine(day + timedelta(days=LEDGER_DAYS_AFTER + 1), datetime.min.time())
    rows = (
        ledger.read(spark, env)
        .where(condition)
        .where((F.col("started_at") >= F.lit(start)) & (F.col("started_at") < F.lit(end)))
        .orderBy("started_at")
        .collect()
    )
    out = []
    for r in rows:
        balanced = (
            r["records_read"] == r["records_written"] + r["records_duplicate"] + r["records_quarantined"]
        )
        out.append(
            {
                "run_id": r["run_id"],
                "layer": r["layer"],
                "source": r["source"],
                "table": r["table_name"],
                "status": r["status"],
                "read": r["records_read"],
                "written": r["records_written"],
                "duplicate": r["records_duplicate"],
                "quarantined": r["records_quarantined"],
                "balanced": balanced and not str(r["error"] or "").startswith("AccountingError"),
                "started_at": r["started_at"],
            }
        )
    return out


def quarantine_counts(spark: SparkSession, path: str | None, day: date) -> dict[str, int]:
    """Quarantined rows by reason, written from the day before `day` to LEDGER_DAYS_AFTER days after it."""
    if not path or not delta.table_exists(spark, path):
        return {}
    start = datetime.combine(day - timedelta(days=1), datetime.min.time())
    end = datetime.combine(day + timedelta(days=LEDGER_DAYS_AFTER + 1), datetime.min.time())
    rows = (
        spark.read.format("delta")
        .load(path)
        .where((F.col("quarantined_at") >= F.lit(start)) & (F.col("quarantined_at") < F.lit(end)))
        .groupBy("reason")
        .count()
        .collect()
    )
    return {r["reason"]: r["count"] for r in rows}


def _quarantine_path(env: EnvConfig, name: str) -> str | None:
    """The quarantine table of a bronze or silver table, if the registry has one."""
    layer, _, table = name.partition(".")
    if layer not in ("silver", "bronze"):
        return None
    try:
        return tables.lookup(f"quarantine.{table}").path(env)
    except ConfigError:
        return None


def investigate(
    spark: SparkSession,
    env: EnvConfig,
    spec: ReconSpec,
    table: str,
    day: date,
    max_versions: int = 30,
) -> Investigation:
    """Gather the evidence for `table` on `day` and classify it (rules in the module docstring)."""
    profile = _lake_profile(spec, table)
    path = profile.location(env, table)
    if not delta.table_exists(spark, path):
        raise ConfigError(f"{table}: no Delta table at {path}; has it been built in this env?")
    result = Investigation(table=table, business_date=day, classification=NO_MISMATCH)
    evidence = result.evidence

    history = figure_history(spark, path, profile, day, max_versions)
    current = spark.read.format("delta").load(path)
    diff = _version_evidence(spark, path, profile, day, history, current, evidence)
    upstream = _upstream(spark, env, spec, profile)
    mine = _Table(table, profile, current)
    for name, reasons in (
        (PIPELINE_BUG, _pipeline_bug(spark, env, mine, upstream, day, evidence)),
        (SOURCE_CHANGE, _source_change(spark, env, spec, mine, day, max_versions, evidence)),
        (TRANSFORMATION_LOGIC, _transformation_logic(spec, mine, upstream, day, evidence)),
        (LATE_ARRIVING, _late_arriving(diff, day)),
    ):
        if reasons:
            result.classification, result.reasons = name, reasons
            break
    return result


@dataclass
class _Table:
    """A table under investigation: its name, profile and current contents."""

    name: str
    profile: TableProfile
    frame: DataFrame


def _lake_profile(spec: ReconSpec, table: str) -> TableProfile:
    """The profile of `table`, which must be a lake table of the spec."""
    if table not in spec.tables:
        raise ConfigError(
            f"conf/reconciliation/{spec.name}.yaml has no table {table} under tables: "
            f"(known: {', '.join(sorted(spec.tables))}); add its profile (date, amount, key, upstream)"
        )
    profile = spec.tables[table]
    if profile.postgres is not None:
        raise ConfigError(f"{table} is a PostgreSQL source, not a lake table: investigate the lake side")
    return profile


def _version_evidence(
    spark: SparkSession,
    path: str,
    profile: TableProfile,
    day: date,
    history: list[dict],
    current: DataFrame,
    evidence: dict,
) -> VersionDiff | None:
    """History evidence, and the keyed diff from the first version that had the date to the latest."""
    evidence["history"] = history
    covering = [h for h in history if h["figure"]]
    if not covering:
        evidence["first_version_with_date"] = None
        return None
    first, last = covering[0]["version"], history[-1]["version"]
    evidence["first_version_with_date"] = first
    diff = diff_versions(spark, path, first, last, profile.key, _on_day(profile, day))
    evidence["diff_first_to_latest"] = diff.as_dict()
    if "_ingest_time" in current.columns:
        first_time = covering[0]["timestamp"]
        evidence["rows_ingested_after_first_version"] = (
            current.where(_on_day(profile, day)).where(F.col("_ingest_time") > F.lit(first_time)).count()
        )
    return diff


def _upstream(spark: SparkSession, env: EnvConfig, spec: ReconSpec, profile: TableProfile) -> _Table | None:
    """The table this one's figure is computed from, if it has one (the spec checks it is under tables:)."""
    if not profile.upstream:
        return None
    upstream = spec.tables.get(profile.upstream)
    if upstream is None:
        return None
    frame = spark.read.format("delta").load(upstream.location(env, profile.upstream))
    return _Table(profile.upstream, upstream, frame)


def _pipeline_bug(
    spark: SparkSession, env: EnvConfig, mine: _Table, upstream: _Table | None, day: date, evidence: dict
) -> list[str]:
    """1. pipeline bug: accounting identity, duplicate keys (this table and its upstream)."""
    profiles = [mine.profile] + ([upstream.profile] if upstream is not None else [])
    runs = ledger_evidence(spark, env, profiles, day)
    evidence["ledger_runs"] = runs
    evidence["quarantine_by_reason"] = quarantine_counts(spark, _quarantine_path(env, mine.name), day)
    dups = {mine.name: duplicate_keys(mine.frame, mine.profile, day)}
    if upstream is not None:
        dups[upstream.name] = duplicate_keys(upstream.frame, upstream.profile, day)
    evidence["duplicate_keys"] = dups
    reasons = [
        f"run {r['run_id']} ({r['layer']} {r['source']}.{r['table']}) does not add up: read {r['read']} != "
        f"written {r['written']} + duplicate {r['duplicate']} + quarantined {r['quarantined']} "
        f"(status {r['status']})"
        for r in runs
        if not r["balanced"]
    ]
    return reasons + [f"{name} has {n} duplicate key(s) on {day}" for name, n in dups.items() if n]


def _source_change(
    spark: SparkSession,
    env: EnvConfig,
    spec: ReconSpec,
    mine: _Table,
    day: date,
    max_versions: int,
    evidence: dict,
) -> list[str]:
    """2. source change: bronze schema or rescued data."""
    bronze = mine.profile.bronze
    if not bronze:
        return []
    bronze_profile = spec.tables.get(bronze)
    if bronze_profile is None:
        raise ConfigError(f"tables.{mine.name}.bronze: {bronze} needs its own entry under tables:")
    bronze_path = bronze_profile.location(env, bronze)
    changes = schema_changes(spark, bronze_path, day, max_versions)
    evidence["bronze_schema_changes"] = changes
    reasons = []
    for change in changes:
        parts = [
            f"{what} {', '.join(change[what])}" for what in ("added", "removed", "retyped") if change[what]
        ]
        reasons.append(f"{bronze} version {change['version']}: columns {'; '.join(parts)}")
    shares = rescued_share(spark.read.format("delta").load(bronze_path), bronze_profile, day)
    evidence["bronze_rescued_pct"] = shares
    if shares and shares["on_day"] > shares["before"]:
        reasons.append(
            f"{bronze}: {shares['on_day']:.2f}% of rows on {day} have _rescued_data "
            f"(before: {shares['before']:.2f}%)"
        )
    return reasons


def _transformation_logic(
    spec: ReconSpec, mine: _Table, upstream: _Table | None, day: date, evidence: dict
) -> list[str]:
    """3. transformation logic: the upstream's figure differs."""
    if upstream is None:
        return []
    figures = daily_figures(mine.frame, mine.profile).where(F.col("business_date") == F.lit(day))
    theirs = daily_figures(upstream.frame, upstream.profile).where(F.col("business_date") == F.lit(day))
    compared = compare(figures, theirs, ["business_date", "currency"], ["sum"], spec.thresholds.variance_pct)
    rows = compared.collect()
    evidence["upstream_comparison"] = [
        {
            "currency": r["currency"],
            "this": r["left_value"],
            "upstream": r["right_value"],
            "variance_pct": r["variance_pct"],
            "status": r["status"],
        }
        for r in rows
    ]
    return [
        f"{mine.name} sum {r['left_value']} {r['currency']} vs upstream {upstream.name} {r['right_value']} "
        f"({r['status']}, variance {r['variance_pct']}%)"
        for r in rows
        if r["status"] != "ok"
    ]


def _late_arriving(diff: VersionDiff | None, day: date) -> list[str]:
    """4. late arriving: rows added or changed after the first version with the date."""
    if diff is None or not (diff.added or diff.changed):
        return []
    return [
        f"{diff.added} row(s) added and {diff.changed} changed for {day} between version "
        f"{diff.version_from} (the first with the date) and {diff.version_to}"
    ]
