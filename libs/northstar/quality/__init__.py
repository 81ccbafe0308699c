"""Data quality: declarative checks per table (conf/quality/), their stored results (ops.check_results), and write-audit-publish (ops.published_versions); docs/quality.md."""
