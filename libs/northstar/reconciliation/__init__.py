"""Reconciliation and corrections: daily figures compared across sources, the lake and finance; root cause of a mismatch; audited corrections (SOX)."""
