"""The masking-policy and grant statements the publish generates, checked by a parser that knows Snowflake's
grammar (sqlglot's Snowflake dialect): fakesnow rejects them, so locally they are never run (docs/snowflake.md).

The statements come from publish.py's own builders (`governance_statements`, which `ensure_schemas` runs, and
`masking_statements`, which `publish_table` runs). GRANT and REVOKE parse
fully; sqlglot 30.22.0 has no grammar for masking policies, so `CREATE MASKING POLICY` and `ALTER TABLE ...
MODIFY COLUMN ... SET MASKING POLICY` fall back to an opaque `exp.Command`: the test names exactly those, and
parses what it can of them (the policy body and the table names), so a sqlglot or a publish change is noticed.
"""

from __future__ import annotations

import sqlglot
from pyspark.sql import types as T
from sqlglot import exp

from northstar.config.env import SnowflakeSpec
from northstar.gold.tables import GOLD
from northstar.warehouse import ddl, publish
from northstar.warehouse.stream_tables import stream_tables

SPEC = SnowflakeSpec(
    mode="snowflake",
    account="xy12345.eu-west-1",
    database="NORTHSTAR",
    warehouse="TRANSFORMING",
    role="PUBLISHER",
    user="env:SNOWFLAKE_USER",
    password="env:SNOWFLAKE_PASSWORD",
    stage_location="s3://northstar-test-lake/warehouse-stage",
    storage_integration="NORTHSTAR_TEST_STAGE",
)
POLICY = "NORTHSTAR.ANALYTICS.PII_MASK"


def governance_statements() -> list[str]:
    """Every governance statement publish.py sends through execute_governance for a publish of fact_orders and
    dim_customer, and of the clickstream stream's sessions and minutes (their columns as strings: the masking
    applies to VARCHAR columns)."""
    statements = publish.governance_statements(SPEC)
    for table in [GOLD["fact_orders"], GOLD["dim_customer"], *stream_tables("clickstream")]:
        columns = ddl.columns_of(T.StructType([T.StructField(c, T.StringType()) for c, _ in table.columns]))
        statements += publish.masking_statements(SPEC, table, publish.qualified(SPEC, table.name), columns)
    return statements


def masking(table: str, column: str) -> str:
    return f"ALTER TABLE NORTHSTAR.ANALYTICS.{table} MODIFY COLUMN {column} SET MASKING POLICY {POLICY} FORCE"


EXPECTED = [
    f"CREATE MASKING POLICY IF NOT EXISTS {POLICY} AS (val VARCHAR) RETURNS VARCHAR -> CASE WHEN "
    "IS_ROLE_IN_SESSION('PII_READER') THEN val ELSE '***MASKED***' END",
    "REVOKE ALL ON SCHEMA NORTHSTAR.RESTRICTED FROM ROLE PUBLIC",
    "GRANT USAGE ON SCHEMA NORTHSTAR.RESTRICTED TO ROLE PII_READER",
    masking("FACT_ORDERS", "CUSTOMER_TOKEN"),
    masking("DIM_CUSTOMER", "CUSTOMER_TOKEN"),
    masking("DIM_CUSTOMER", "CUSTOMER_EMAIL_TOKEN"),
    masking("DIM_CUSTOMER", "CUSTOMER_PHONE_TOKEN"),
    masking("DIM_CUSTOMER", "CUSTOMER_NAME_TOKEN"),
    masking("DIM_CUSTOMER", "SHIP_TO_CITY_TOKEN"),
    # the stream's sessions: the visitor key and both tokens (user, device); the minute table has no user key
    masking("CLICKSTREAM_SESSIONS", "VISITOR_KEY"),
    masking("CLICKSTREAM_SESSIONS", "USER_TOKEN"),
    masking("CLICKSTREAM_SESSIONS", "DEVICE_TOKEN"),
]


def parsed(sql: str) -> exp.Expr:
    return sqlglot.parse_one(sql, read="snowflake")


def test_the_publish_generates_these_governance_statements():
    assert governance_statements() == EXPECTED


def test_grants_and_revokes_parse_fully_with_snowflake_grammar():
    statements = governance_statements()
    full = {s: parsed(s) for s in statements if not isinstance(parsed(s), exp.Command)}
    assert list(full) == [EXPECTED[1], EXPECTED[2]]
    revoke, grant = full.values()
    assert isinstance(revoke, exp.Revoke)
    assert isinstance(grant, exp.Grant)
    for tree in (revoke, grant):
        assert not list(tree.find_all(exp.Command))
        assert tree.args["kind"] == "SCHEMA"
        assert tree.args["securable"].sql(dialect="snowflake") == "NORTHSTAR.RESTRICTED"
    assert [p.sql(dialect="snowflake") for p in revoke.args["principals"]] == ["ROLE PUBLIC"]
    assert [p.sql(dialect="snowflake") for p in grant.args["principals"]] == ["ROLE PII_READER"]
    assert {s: tree.sql(dialect="snowflake") for s, tree in full.items()} == {s: s for s in full}


def test_sqlglot_cannot_parse_masking_policies_and_says_exactly_which():
    """sqlglot 30.22.0 falls back to exp.Command for CREATE MASKING POLICY and for SET MASKING POLICY (with or
    without FORCE): these are validated only on a real account. If sqlglot learns them, this test fails: then
    assert their trees like the grants'."""
    statements = governance_statements()
    opaque = [s for s in statements if isinstance(parsed(s), exp.Command)]
    assert opaque == [EXPECTED[0], *EXPECTED[3:]]
    assert isinstance(parsed("ALTER TABLE A.B.T MODIFY COLUMN C SET MASKING POLICY A.B.P"), exp.Command)
    # what can be parsed of them is: the policy's body is a Snowflake CASE over IS_ROLE_IN_SESSION ...
    signature, body = EXPECTED[0].split(" -> ", 1)
    case = sqlglot.parse_one(body, read="snowflake")
    assert isinstance(case, exp.Case)
    (branch,) = case.args["ifs"]
    assert branch.this.name.upper() == "IS_ROLE_IN_SESSION"
    assert branch.this.expressions[0].this == "PII_READER"
    assert case.args["default"].this == "***MASKED***"
    assert signature.endswith("AS (val VARCHAR) RETURNS VARCHAR")
    # ... and every table and policy name is a valid three-part Snowflake name
    for statement in opaque[1:]:
        words = statement.split()
        for name in (words[2], words[9]):
            table = exp.to_table(name, dialect="snowflake")
            assert (table.catalog, table.db) == ("NORTHSTAR", "ANALYTICS"), name
        assert words[-1] == "FORCE"
