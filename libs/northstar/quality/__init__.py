"""Data quality: reconciliation, root-cause investigation and audited corrections."""
