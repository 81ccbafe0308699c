"""Generate the finance system's daily control-totals CSV drops (conf/sources/finance_totals.yaml).

The totals are computed from ground truth (e.g. the marketplace generator's latest order versions), so a
reconciliation against them passes; `skew` shifts one day's amount to inject a variance on purpose.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

HEADER = ["business_date", "currency", "paid_order_count", "gross_amount", "posted_at"]
PAID = ("paid", "shipped", "delivered")


def totals_from_orders(
    orders: Iterable[Mapping], paid_statuses: tuple[str, ...] = PAID
) -> dict[tuple[date, str], tuple[int, Decimal]]:
    """(business date, currency) -> (paid orders, gross amount) from the latest version of each order
    (dicts with order_id, status, currency, created_at as ISO text, totals.total)."""
    totals: dict[tuple[date, str], list] = defaultdict(lambda: [0, Decimal("0.00")])
    for order in orders:
        if str(order["status"]).lower() not in paid_statuses:
            continue
        created = datetime.fromisoformat(str(order["created_at"]).replace("Z", "+00:00")).astimezone(UTC)
        key = (created.date(), str(order["currency"]).upper())
        totals[key][0] += 1
        totals[key][1] += Decimal(str(order["totals"]["total"])).quantize(Decimal("0.01"))
    return {k: (v[0], v[1]) for k, v in totals.items()}


def write_totals(
    folder: Path,
    totals: Mapping[tuple[date, str], tuple[int, Decimal]],
    posted_at: datetime,
    skew: Mapping[tuple[date, str], Decimal] | None = None,
) -> Path:
    """One posting run's CSV file in `folder` (named by its posting time); `skew` adds to the given days."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"control_totals_{posted_at:%Y%m%dT%H%M%SZ}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for (day, currency), (count, total) in sorted(totals.items()):
            amount = total + (skew or {}).get((day, currency), Decimal("0"))
            writer.writerow(
                [day.isoformat(), currency, count, f"{amount:.2f}", posted_at.strftime("%Y-%m-%dT%H:%M:%SZ")]
            )
    return path
