from datetime import UTC, datetime, timedelta

import pytest

from northstar.config import ConfigError, load_source
from northstar.config.jdbc import parse_duration
from northstar.extract import keyset
from northstar.extract.jdbc import _explain
from northstar.secrets import Secret
from tests.helpers.conf import load_from

END = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
START = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)


def test_first_page_is_a_bounded_range_ordered_by_cursor_then_key():
    sql = keyset.page_query("public.orders", "updated_at", ["id"], keyset.Window(START, END), 500)
    assert sql == (
        'SELECT * FROM "public"."orders" WHERE "updated_at" >= \'2026-11-25 11:00:00.000000+00:00\' '
        "AND \"updated_at\" < '2026-11-25 12:00:00.000000+00:00' "
        'ORDER BY "updated_at", "id" LIMIT 500'
    )


def test_next_page_starts_strictly_after_the_last_row_by_row_comparison():
    sql = keyset.page_query(
        "shop.orders",
        "updated_at",
        ["id"],
        keyset.Window(START, END),
        100,
        after=["2026-11-25 11:30:00.123456", "42"],
        columns=["id", "updated_at"],
    )
    assert sql == (
        'SELECT "id", "updated_at" FROM "shop"."orders" '
        "WHERE (\"updated_at\", \"id\") > ('2026-11-25 11:30:00.123456', '42') "
        "AND \"updated_at\" < '2026-11-25 12:00:00.000000+00:00' "
        'ORDER BY "updated_at", "id" LIMIT 100'
    )
    assert " OFFSET " not in sql
    assert "COUNT" not in sql.upper()


def test_composite_keys_and_quotes_in_key_values():
    sql = keyset.page_query(
        "lines", "changed", ["order_id", "line_no"], keyset.Window(START, END), 10, after=["t", "O'1", "2"]
    )
    assert "(\"changed\", \"order_id\", \"line_no\") > ('t', 'O''1', '2')" in sql
    assert 'FROM "lines"' in sql


def test_full_refresh_has_no_lower_bound_then_reads_null_cursors_by_key():
    window = keyset.Window(None, END)
    assert '"updated_at" < ' in keyset.page_query("t", "updated_at", ["id"], window, 5)
    assert ">=" not in keyset.page_query("t", "updated_at", ["id"], window, 5)
    nulls = keyset.page_query("t", "updated_at", ["id"], window, 5, phase=keyset.NULL_CURSOR, after=["7"])
    assert nulls == 'SELECT * FROM "t" WHERE "updated_at" IS NULL AND "id" > \'7\' ORDER BY "id" LIMIT 5'


def test_incremental_window_starts_overlap_before_the_watermark():
    now = datetime(2026, 11, 25, 12, 0, 7, 999, tzinfo=UTC)
    window = keyset.incremental_window(START, timedelta(minutes=15), now)
    assert window == keyset.Window(START - timedelta(minutes=15), now.replace(microsecond=0))
    assert keyset.incremental_window(None, timedelta(minutes=15), now).start is None
    assert window.label == "20261125T104500000000Z_20261125T120007000000Z"


def test_bad_window_and_literal_are_refused():
    with pytest.raises(ValueError, match="not before its end"):
        keyset.Window(END, START)
    with pytest.raises(ValueError, match="NUL"):
        keyset.quote_literal("a\x00b")
    with pytest.raises(ValueError, match="2 values for 3 columns"):
        keyset.page_query("t", "c", ["a", "b"], keyset.Window(START, END), 1, after=["x", "y"])


def test_session_is_read_only_with_the_statement_timeout():
    props = keyset.session_options(timedelta(seconds=30), "northstar-extract:shop.orders")
    assert "-c statement_timeout=30000" in props["options"]
    assert "-c default_transaction_read_only=on" in props["options"]
    assert props["readOnly"] == "true"
    assert props["ApplicationName"] == "northstar-extract:shop.orders"


def test_durations():
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("500ms") == timedelta(milliseconds=500)
    assert parse_duration(90) == timedelta(seconds=90)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("15 minutes")


def test_repo_shop_db_source_loads():
    source = load_source("shop_db")
    assert source.jdbc.password == "env:NORTHSTAR_SHOP_DB_PASSWORD"
    assert source.jdbc.tables["orders"].relation == "public.orders"
    assert source.jdbc.overlap == timedelta(minutes=15)
    assert "NORTHSTAR" not in source.jdbc.url
    assert "password" not in source.jdbc.url


SOURCE = """
jdbc:
  host: db.internal
  database: shop
  user: reader
  password: {password}
  tables:
    orders: {{relation: public.orders{extra}}}
tables:
  orders:
    format: {format}
    landing: shop/orders
    primary_key: [id]
    ordering: [updated_at]
"""


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"password": "hunter22"}, r"jdbc\.password: a secret must be given as a reference: env:"),
        ({"format": "jsonl"}, r"tables\.orders\.format must be parquet"),
        ({"extra": ", columns: [id, status]"}, r"must include the cursor and primary key: add updated_at"),
        ({"extra": ", relation2: x"}, r"jdbc\.tables\.orders\.relation2: unknown setting"),
    ],
)
def test_bad_jdbc_sections_are_reported(tmp_path, values, expected):
    fields = {"password": "env:SHOP_PW", "format": "parquet", "extra": ""} | values
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "shop.yaml").write_text(SOURCE.format(**fields))
    with pytest.raises(ConfigError, match=expected):
        load_from(tmp_path, load_source, "shop")


def test_errors_are_explained_from_the_sqlstate_without_the_password():
    spec = load_source("shop_db").jdbc
    table = spec.tables["orders"]
    secret = Secret(spec.password, "s3cret-value")
    driver_error = RuntimeError(
        "An error occurred while calling o123.load.\n"
        "org.postgresql.util.PSQLException: ERROR: canceling statement due to statement timeout s3cret-value\n"
        "\tat org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse"
    )
    message = _explain(driver_error, "source shop_db table orders (x)", spec, table, secret)
    assert message.startswith("source shop_db table orders (x): the server cancelled a query after")
    assert "statement_timeout (60s)" in message
    assert "SQLSTATE 57014" in message
    assert "s3cret-value" not in message
    assert "***" in message

    refused = RuntimeError("java.net.ConnectException: Connection refused")
    assert "could not connect to 127.0.0.1:54329/shop" in _explain(refused, "c", spec, table, secret)


def test_a_password_pasted_into_config_is_not_echoed(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "shop.yaml").write_text(
        SOURCE.format(password="hunter22", format="parquet", extra="")
    )
    with pytest.raises(ConfigError) as err:
        load_from(tmp_path, load_source, "shop")
    assert "hunter22" not in str(err.value)
