"""The demo's one world on the lake: the sources derived from the simulator's orders, and its reconciliation.

The partner API simulator (`stripe_from_orders=True`) serves the marketplace orders and the Stripe payments
of those same orders; `land_drops` writes the file sources of the same orders: the 3PLs' shipment drops
(one shipment per shipped or delivered order) and the finance system's control totals, computed from the
orders the partner serves. Then `reconcile_world` runs conf/reconciliation/daily.yaml over the world's
business days: with no fault injected every comparison is within its threshold. `repost_finance_day` is the
demo's known fault afterwards: finance re-posts one day's total with a difference, which the reconciliation
then reports as a breach and `northstar investigate` classifies; `correct_repost` is the audited correction
(`northstar correct`) after which the reconciliation is clean again.

The simulator's `bad_records` fault adds broken lines to pages (not JSON objects, or a copy of a real record
with a null key) on top of the real records, which are still served: quarantining them loses no order, so
the finance totals are the partner's whole ground truth, not only what passed validation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from pyspark.sql import SparkSession

from northstar.config import EnvConfig, load_source
from northstar.dev.generate.finance_totals import totals_from_orders, write_totals
from northstar.dev.generate.shipments import ShipmentTruth, shipments_from_orders
from northstar.lake import tables
from northstar.ledger import LedgerEntry
from northstar.reconciliation import report_html
from northstar.reconciliation.corrections import Correction, correct
from northstar.reconciliation.reconcile import NOT_RUN, OK, ReconResult, read_run, run_reconciliation
from northstar.reconciliation.spec import ReconSpec, load_recon
from northstar.silver.pipeline import run_source


def land_drops(env: EnvConfig, orders: Iterable[Mapping], posted_at: datetime, seed: int) -> ShipmentTruth:
    """The 3PL shipment drops and the finance control totals (posted at `posted_at`) of `orders` (the
    partner's latest version of each), under the landing folders their sources read."""
    orders = list(orders)
    wms = load_source("wms")
    folder = Path(tables.landing_folder(env, wms.tables["shipments_acme"])).parent  # <landing>/wms/<partner>
    truth = shipments_from_orders(folder, orders, seed=seed)
    finance = load_source("finance_totals")
    write_totals(
        Path(tables.landing_folder(env, finance.tables["daily_totals"])),
        totals_from_orders(orders),
        posted_at,
    )
    return truth


@dataclass(frozen=True)
class Repost:
    """A finance re-posting of one day and currency: what it changed and the runs that loaded it."""

    day: date
    currency: str
    was: Decimal
    now: Decimal
    entries: list[LedgerEntry]


def repost_finance_day(
    spark: SparkSession, env: EnvConfig, orders: Iterable[Mapping], posted_at: datetime, share: str = "0.01"
) -> Repost:
    """The known fault: finance re-posts the first business day's largest currency total `share` higher (a
    manual adjustment the orders and payments do not have), and bronze and silver load it (the latest
    posting of a day wins)."""
    totals = totals_from_orders(orders)
    first = min(day for day, _ in totals)
    currency = max((c for d, c in totals if d == first), key=lambda c: totals[(first, c)][1])
    was = totals[(first, currency)][1]
    skew = (was * Decimal(share)).quantize(Decimal("0.01"))
    finance = load_source("finance_totals")
    folder = Path(tables.landing_folder(env, finance.tables["daily_totals"]))
    write_totals(
        folder, {(first, currency): totals[(first, currency)]}, posted_at, skew={(first, currency): skew}
    )
    return Repost(first, currency, was, was + skew, run_source(spark, env, finance))


FINANCE_TABLE = "silver.finance_totals_daily_totals"


def correct_repost(
    spark: SparkSession, env: EnvConfig, repost: Repost, ticket: str = "FIN-1042"
) -> Correction:
    """The fix, as finance confirms the re-posting was a mistake: an audited correction (ops.corrections: who,
    why, ticket, the Delta versions before and after) puts the day's posted total back to what the orders and
    the payments add up to."""
    table = tables.lookup(FINANCE_TABLE)
    return correct(
        spark,
        env,
        table_name=FINANCE_TABLE,
        path=table.path(env),
        where=f"business_date = DATE'{repost.day.isoformat()}' AND currency = '{repost.currency}'",
        assignments={"gross_amount": f"CAST('{repost.was}' AS DECIMAL(18,2))"},
        who="demo-operator",
        why=f"finance re-posted {repost.day} {repost.currency} as {repost.now} in error; the posting was {repost.was}",
        ticket=ticket,
    )


def business_days(orders: Iterable[Mapping]) -> tuple[date, int]:
    """(last day, days): from the first order's checkout to the last status change, the days a comparison
    can have figures on (orders by created_at, fulfillment by updated_at)."""
    days = [
        datetime.fromisoformat(str(o[name]).replace("Z", "+00:00")).astimezone(UTC).date()
        for o in orders
        for name in ("created_at", "updated_at")
    ]
    return max(days), (max(days) - min(days)).days + 1


@dataclass(frozen=True)
class WorldRecon:
    """One reconciliation run of the world: the run, its stored rows and what was not run (and why)."""

    result: ReconResult
    rows: list[dict]
    not_run: dict[str, str]
    spec: ReconSpec
    last: date
    days: int

    @property
    def breaches(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != OK]

    def format(self, report: Path | None = None) -> list[str]:
        """The summary lines: figures, breaches (each named), what was not run, where the report is."""
        checks = len(self.spec.comparisons) + len(self.spec.duplicates) - len(self.not_run)
        first = self.last - timedelta(days=self.days - 1)
        lines = [
            f"reconciliation ({self.spec.name}, {first} .. {self.last}): {self.days} days x "
            f"{checks} comparisons and duplicate checks, {len(self.rows)} figures checked, "
            f"{len(self.breaches)} breaches, {len(self.not_run)} not run"
        ]
        for r in sorted(self.breaches, key=lambda r: (r["comparison"], r["business_date"], r["currency"])):
            lines.append(
                f"  BREACH {r['comparison']} {r['business_date']} {r['currency']} {r['measure']}: left "
                f"{r['left_value']} right {r['right_value']} variance {r['variance_pct']}% ({r['status']})"
            )
        if not self.breaches:
            lines.append(
                f"  every figure within its threshold (variance < {self.spec.thresholds.variance_pct}%, "
                f"duplicates < {self.spec.thresholds.duplicate_rate_pct}%)"
            )
        lines += [f"  {name}: {reason}" for name, reason in self.not_run.items()]
        if report is not None:
            lines.append(f"  report: {report}")
        return lines


def reconcile_world(
    spark: SparkSession,
    env: EnvConfig,
    last: date,
    days: int,
    report: Path | None = None,
    run_id: str | None = None,
) -> WorldRecon:
    """Run conf/reconciliation/daily.yaml for the `days` business days ending `last`, and write its HTML
    report to `report`; comparisons whose tables this lake lacks come back as not_run with their reason."""
    spec = load_recon("daily")
    result = run_reconciliation(spark, env, spec, last, days, run_id)
    stored = [r.asDict() for r in read_run(spark, env, result.run_id).collect()]
    if report is not None:
        report.write_text(report_html.render(stored, f"Reconciliation {spec.name}: {last} ({days} day(s))"))
    # a comparison whose input table is not in this lake (the shop's PostgreSQL) is stored as not_run
    not_run = {r["comparison"]: r["detail"] for r in stored if r["status"] == NOT_RUN}
    rows = [r for r in stored if r["status"] != NOT_RUN]
    return WorldRecon(result, rows, not_run, spec, last, days)
