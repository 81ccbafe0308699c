"""Northstar Lakehouse: config-driven PySpark + Delta Lake jobs for commerce and payments data."""

__version__ = "0.1.0"
