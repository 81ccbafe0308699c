"""DataFrame -> DataFrame transforms, one module per layer; no reading or writing inside."""
