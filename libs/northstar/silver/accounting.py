"""How a tagged batch is counted for the run ledger: records per disposition and per quarantine reason, and the
time span they cover. Silver and the conformed models count the same way."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from northstar.ledger import LedgerEntry
from northstar.silver.transforms import (
    CANDIDATE,
    DISPOSITION,
    EXACT_DUPLICATE,
    QUARANTINED,
    REASON,
    SUPERSEDED,
)


@dataclass
class Dispositions:
    """Counts of one batch: per disposition (candidate, exact_duplicate, superseded, quarantined), quarantined
    records per reason, and the earliest and latest value of the batch's time column."""

    by_disposition: Counter[str] = field(default_factory=Counter)
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    first: datetime | None = None
    last: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.by_disposition.values())

    @property
    def candidates(self) -> int:
        return self.by_disposition[CANDIDATE]

    @property
    def exact_duplicates(self) -> int:
        return self.by_disposition[EXACT_DUPLICATE]

    @property
    def superseded(self) -> int:
        return self.by_disposition[SUPERSEDED]

    @property
    def quarantined(self) -> int:
        return self.by_disposition[QUARANTINED]

    def record(self, entry: LedgerEntry) -> None:
        """Write what the ledger keeps of the counts into `entry`: read, the window, reasons, duplicates."""
        entry.records_read = self.total
        entry.window_start, entry.window_end = self.first, self.last
        for reason, n in self.quarantined_by_reason.items():
            entry.details[f"quarantined.{reason}"] = n
        entry.details["exact_duplicates"] = self.exact_duplicates
        entry.details["superseded_in_batch"] = self.superseded
        entry.records_quarantined = self.quarantined


def count_dispositions(tagged: DataFrame, time_column: str) -> Dispositions:
    """Count a batch tagged with `_disposition` / `_reason` in one aggregation."""
    groups = (
        tagged.groupBy(DISPOSITION, REASON)
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.min(time_column).alias("first"),
            F.max(time_column).alias("last"),
        )
        .collect()
    )
    counts = Dispositions(
        first=min((g["first"] for g in groups if g["first"]), default=None),
        last=max((g["last"] for g in groups if g["last"]), default=None),
    )
    for g in groups:
        counts.by_disposition[g[DISPOSITION]] += g["n"]
        if g[DISPOSITION] == QUARANTINED:
            counts.quarantined_by_reason[g[REASON]] = counts.quarantined_by_reason.get(g[REASON], 0) + g["n"]
    return counts
