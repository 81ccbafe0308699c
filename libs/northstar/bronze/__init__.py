"""Bronze: landing files -> parsed, conformed records with lineage in an append-only Delta table, exactly once."""
