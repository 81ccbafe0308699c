"""The Snowflake publish: DDL from gold schemas, staging + MERGE loads, masking, lake <-> warehouse checks."""
