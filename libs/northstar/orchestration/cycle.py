"""One source's whole cycle in one Spark application: extract -> bronze -> silver -> the models it feeds ->
gold -> publish (`northstar cycle`, jobs/run_cycle.py).

On EMR Serverless every job run pays a start-up (the driver and executors, the Python archive, the jars): one
job per stage paid it six times per cycle. The cycle keeps the stages separate in code and in the ledger (each
stage writes its own rows, as when run alone) but shares one session. A stage that fails stops the cycle;
Airflow's retry runs the whole cycle again, and every stage is idempotent, so the finished stages are noops.

Two cycles of different sources can run at once: the models, gold and publish steps they share take each
table's run lease (lake/run_lock.py), so a second cycle reaching a table another one is writing stops with
RunInProgress (exit 4) and Airflow retries it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pyspark.sql import SparkSession

from northstar import ledger
from northstar.config import EnvConfig, SourceSpec
from northstar.gold.runner import run_gold
from northstar.ledger import LedgerEntry
from northstar.models.runner import run_model
from northstar.models.spec import ModelSpec, list_models, load_model
from northstar.silver.pipeline import run_source
from northstar.warehouse.connection import connect
from northstar.warehouse.publish import PublishResult, publish_all


@dataclass
class StepReport:
    """What one step of the cycle did: its name, seconds, and a one-line summary."""

    name: str
    seconds: float
    summary: str


@dataclass
class CycleReport:
    source: str
    steps: list[StepReport] = field(default_factory=list)
    entries: list[LedgerEntry] = field(default_factory=list)
    published: list[PublishResult] = field(default_factory=list)

    def format(self) -> str:
        total = sum(s.seconds for s in self.steps)
        lines = [f"cycle {self.source}: {len(self.steps)} steps in {total:.1f} s"]
        lines += [f"  {s.name:<8} {s.seconds:>7.1f} s  {s.summary}" for s in self.steps]
        return "\n".join(lines)


def models_fed_by(source: str) -> list[ModelSpec]:
    """The conformed models with an input from `source` (conf/models/)."""
    return [spec for spec in map(load_model, list_models()) if any(i.source == source for i in spec.inputs)]


def _counts(entries: list[LedgerEntry]) -> str:
    written = sum(e.records_written for e in entries)
    changed = sum(e.status == ledger.SUCCESS for e in entries)
    return f"{len(entries)} runs ({changed} changed something), {written:,} rows written"


def _extract(
    spark: SparkSession, env: EnvConfig, source: SourceSpec, window: tuple[datetime, datetime] | None
) -> str:
    """Land what is new at the source (REST `api:` or PostgreSQL `jdbc:`); file sources land by themselves."""
    start, end = window if window else (None, None)
    if source.api is not None:
        from northstar.extract.rest import run_extract as extract_api  # noqa: PLC0415  no Spark needed

        report = extract_api(
            env, source, start=start.isoformat() if start else None, end=end.isoformat() if end else None
        )
        return f"{report.requests} requests, {sum(t.records for t in report.tables):,} records"
    if source.jdbc is not None:
        from northstar.extract.jdbc import run_extract as extract_jdbc  # noqa: PLC0415

        results = extract_jdbc(spark, env, source, None, start, end)
        return f"{sum(r.queries for r in results)} queries, {sum(r.rows for r in results):,} rows"
    return "files land by themselves (nothing to extract)"


def run_cycle(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    *,
    window: tuple[datetime, datetime] | None = None,
    publish: bool = True,
    progress: Callable[[str], None] = print,
) -> CycleReport:
    """Run the source's cycle; each step's line goes to `progress` as it ends."""
    report = CycleReport(source.name)

    def step(name: str, work: Callable[[], str]) -> None:
        started = time.monotonic()
        summary = work()
        report.steps.append(StepReport(name, time.monotonic() - started, summary))
        progress(f"cycle {source.name}: {name} done in {report.steps[-1].seconds:.1f} s: {summary}")

    def entries_of(run: Callable[[], list[LedgerEntry]]) -> Callable[[], str]:
        def work() -> str:
            entries = run()
            report.entries.extend(entries)
            return _counts(entries)

        return work

    step("extract", lambda: _extract(spark, env, source, window))
    step("ingest", entries_of(lambda: run_source(spark, env, source)))  # bronze then silver, per table
    models = models_fed_by(source.name)
    step("models", entries_of(lambda: [e for spec in models for e in run_model(spark, env, spec)]))
    step("gold", entries_of(lambda: run_gold(spark, env) if models else []))
    if publish and env.snowflake is not None and models:
        step("publish", lambda: _publish(spark, env, report))
    return report


def _publish(spark: SparkSession, env: EnvConfig, report: CycleReport) -> str:
    assert env.snowflake is not None  # run_cycle publishes only to a configured warehouse
    with connect(env.snowflake) as conn:
        report.published = publish_all(spark, env, conn, run_id=ledger.new_run_id("publish"))
    published = report.published
    moved = [r for r in published if r.mode != "noop"]
    upserted, deleted = sum(r.upserted for r in moved), sum(r.deleted for r in moved)
    return (
        f"{len(published)} gold tables: {len(moved)} moved +{upserted:,} -{deleted:,} rows, "
        f"{len(published) - len(moved)} unchanged, {sum(r.reconciled for r in moved)} of {len(moved)} reconciled"
    )
