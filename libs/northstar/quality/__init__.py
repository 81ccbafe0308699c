"""Data quality: declarative checks per table (conf/quality/), their stored results, quarantine replay and
write-audit-publish (docs/quality.md); reconciliation, root-cause investigation and audited corrections
(docs/reconciliation.md)."""
