"""Plain-text reports of what runs did, for the terminal: counts per layer, quarantine reasons, table locations."""

from __future__ import annotations

from northstar.ledger import LedgerEntry


def run_report(entries: list[LedgerEntry], locations: dict[str, str] | None = None) -> str:
    """One line per run with read / written / duplicate / quarantined, then reasons and where tables are."""
    header = (
        f"{'layer':<8}{'table':<28}{'status':<9}{'read':>9}{'written':>9}{'dupes':>8}{'quarant.':>9}  check"
    )
    lines = [header, "-" * len(header)]
    for e in entries:
        check = "ok" if e.balanced else "MISMATCH"
        lines.append(
            f"{e.layer:<8}{e.source + '.' + e.table_name:<28}{e.status:<9}{e.records_read:>9,}"
            f"{e.records_written:>9,}{e.records_duplicate:>8,}{e.records_quarantined:>9,}  {check}"
        )
    details = []
    for e in entries:
        reasons = {
            k.removeprefix("quarantined."): v
            for k, v in e.details.items()
            if k.startswith("quarantined.") and v
        }
        extra = {k: v for k, v in e.details.items() if not k.startswith("quarantined.") and v}
        if reasons or extra:
            parts = [f"quarantined {k}={v:,}" for k, v in sorted(reasons.items())]
            parts += [f"{k}={v:,}" for k, v in sorted(extra.items())]
            details.append(f"  {e.layer} {e.source}.{e.table_name}: " + ", ".join(parts))
    if details:
        lines += [
            "",
            "details (read = written + dupes + quarantined; dupes = exact copies + superseded versions):",
            *details,
        ]
    if locations:
        lines += ["", "tables:"] + [f"  {name:<36}{path}" for name, path in locations.items()]
    return "\n".join(lines)
