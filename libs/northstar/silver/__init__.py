"""Silver: bronze change feed -> validated, deduplicated, latest version per key (MERGE); quarantine replay."""
