"""Gold layer: conformed facts and the finance revenue mart, built from the conformed silver models."""
