"""Extraction from source systems into the landing zone (PostgreSQL over JDBC, ...)."""
