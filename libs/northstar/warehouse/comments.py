"""Table and column comments of a published warehouse table, from the table's metadata (`GoldTable` or
`StreamTable`: `.description`, `.column_descriptions()`, `WAREHOUSE_COLUMNS`): pure SQL text, no connection. Snowflake shows them in
`SHOW TABLES` / `DESCRIBE TABLE` / information_schema, and dbt docs read the same descriptions from sources.yml.
"""

from __future__ import annotations

from northstar.warehouse.stream_tables import Publishable


def quoted(text: str) -> str:
    """A Snowflake string literal: backslashes and single quotes escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def comment_statements(target: str, table: Publishable, columns: list[str]) -> list[str]:
    """`COMMENT ON TABLE <target> IS '...'`, then one `COMMENT ON COLUMN <target>.<COL> IS '...'` per column of
    `columns` (the warehouse table's columns, any case) that the metadata describes, in the order given. A
    column without a description gets no statement (the caller's table may be ahead of the metadata)."""
    described = {k.upper(): v for k, v in table.column_descriptions(warehouse=True).items()}
    statements = [f"COMMENT ON TABLE {target} IS {quoted(table.description)}"] if table.description else []
    statements += [
        f"COMMENT ON COLUMN {target}.{column.upper()} IS {quoted(described[column.upper()])}"
        for column in columns
        if column.upper() in described
    ]
    return statements
