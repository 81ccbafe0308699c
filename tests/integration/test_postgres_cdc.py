"""Change data capture from a real PostgreSQL, read by the real Debezium connector, applied to silver.

No event here is made by the project: the test changes rows in a fresh database of the local server
(scripts/postgres.sh, wal_level = logical), Debezium's PostgreSQL connector reads them from logical decoding
(pgoutput) and scripts/debezium/CaptureToFiles.java lands its envelopes as JSON Lines, one folder per table, as
Debezium Server lands them in S3. The source conf under test is the repo's conf/sources/shop_db_cdc.yaml; its
landing is the env's landing zone, where the capture writes.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar.config import load_source
from northstar.lake import tables
from northstar.privacy import requests
from northstar.privacy.deletion import process_requests, token_of
from northstar.privacy.spec import load_privacy
from northstar.secrets import resolve
from northstar.silver.pipeline import run_source
from northstar.transforms.pii import keyed_token
from tests.helpers import snapshots
from tests.helpers.debezium import Capture, drop_slot, missing_tools
from tests.helpers.postgres_server import PgServer

SOURCE = "shop_db_cdc"
SCHEMA = [
    "create table public.orders (id bigint primary key, customer_id bigint not null, status text not null, "
    "amount numeric(12,2) not null, currency text, tax_amount numeric(12,2), shipping_amount numeric(12,2), "
    "discount_amount numeric(12,2), created_at timestamptz not null, updated_at timestamptz not null, "
    "deleted_at timestamptz)",
    "create table public.order_lines (id bigint primary key, order_id bigint not null, line_number int not null, "
    "sku text not null, quantity int not null, unit_price numeric(12,2) not null, discount_amount numeric(12,2), "
    "created_at timestamptz not null, updated_at timestamptz not null, deleted_at timestamptz)",
    # a delete's `before` carries the whole old row only under REPLICA IDENTITY FULL (orders keep the default)
    "alter table public.order_lines replica identity full",
    "create table public.customers (id bigint primary key, email text, updated_at timestamptz not null)",
]
SEED = [
    "insert into orders select i, i % 3 + 1, 'new', i * 10.25, 'EUR', i * 1.5, null, null, "
    "now() - interval '1 day', now() - interval '1 day', null from generate_series(1, 6) i",
    "insert into order_lines select i, (i + 1) / 2, 2 - i % 2, 'SKU-' || i, i, 5.25 * i, "
    "case when i % 4 = 0 then 0.50 end, now() - interval '1 day', now() - interval '1 day', null "
    "from generate_series(1, 12) i",
    "insert into customers select i, 'c' || i || '@example.com', now() - interval '1 day' "
    "from generate_series(1, 3) i",
]
# one transaction a line; what silver must end up with is whatever the database holds afterwards
CHANGES = [
    [  # two updates of one row in one transaction, and a third in a later one: the last one wins
        "update orders set status = 'paid', updated_at = now() where id = 1",
        "update orders set status = 'packed', amount = 11.10, updated_at = now() where id = 1",
    ],
    ["update orders set status = 'shipped', updated_at = now() where id = 1"],
    ["update orders set amount = amount + 0.01, discount_amount = 1.50, updated_at = now() where id = 2"],
    ["delete from order_lines where order_id = 3", "delete from orders where id = 3"],
    [
        "insert into orders values (7, 2, 'new', 70.70, 'USD', 7.07, 4.99, null, now(), now(), null)",
        "insert into order_lines values (13, 7, 1, 'SKU-13', 1, 70.70, null, now(), now(), null)",
    ],
    ["delete from orders where id = 4"],  # then the same key again, in a later transaction
    ["insert into orders values (4, 99, 'reopened', 44.44, 'EUR', null, null, null, now(), now(), null)"],
    ["insert into orders values (8, 1, 'new', 8.00, 'EUR', null, null, null, now(), now(), null)"],
    ["update orders set status = 'cancelled', updated_at = now() where id = 8"],
    ["delete from orders where id = 8"],  # born and gone between two captures: never in silver
    ["update order_lines set quantity = quantity + 1, updated_at = now() where id = 1"],
    [
        "update customers set email = 'new-2@example.com', updated_at = now() where id = 2",
        "delete from customers where id = 3",
    ],
    ["update orders set deleted_at = now(), updated_at = now() where id = 5"],  # the app's soft delete
]


@pytest.fixture(scope="session")
def pg() -> (
    PgServer
):  # session-scoped and first in the test's arguments: a missing tool fails before Spark starts
    server = PgServer.from_env()
    problem = server.check_up() or missing_tools()
    if problem:
        pytest.fail(problem, pytrace=False)
    return server


@pytest.fixture
def shop(pg):
    """A fresh database with the shop's tables and a few rows; its slot and the database dropped after."""
    name = pg.create_database("cdc")
    try:
        with pg.connect(name) as conn:
            for statement in SCHEMA + SEED:
                conn.execute(statement)
        yield name
    finally:
        drop_slot(pg, name)
        pg.drop_database(name)


def apply_changes(pg: PgServer, database: str) -> tuple[int, int]:
    """Run CHANGES, one transaction each; (rows changed = events Debezium must send, rows deleted)."""
    changed = deleted = 0
    with pg.connect(database) as conn:
        for transaction in CHANGES:
            with conn.transaction():
                for statement in transaction:
                    rows = conn.execute(statement).rowcount
                    changed += rows
                    deleted += rows if statement.startswith("delete") else 0
    return changed, deleted


def database_rows(pg: PgServer, database: str, table: str, columns: list[str]) -> set[tuple]:
    """The table's rows now, timestamps as UTC text with microseconds (as silver_rows writes them)."""
    with pg.connect(database) as conn:
        types = dict(
            conn.execute(
                "select column_name, data_type from information_schema.columns where table_name = %s", [table]
            ).fetchall()
        )
        select = [
            f"to_char({c} at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')" if "timestamp" in types[c] else c
            for c in columns
        ]
        return set(conn.execute(f"select {', '.join(select)} from {table}").fetchall())


def silver_rows(spark, env, table: str, columns: list[str]) -> set[tuple]:
    frame = spark.read.format("delta").load(tables.silver(SOURCE, table).path(env))
    types = {f.name: f.dataType for f in frame.schema.fields}
    select = [
        F.date_format(c, "yyyy-MM-dd HH:mm:ss.SSSSSS") if isinstance(types[c], T.TimestampType) else F.col(c)
        for c in columns
    ]
    return {tuple(r) for r in frame.select(*select).collect()}


def events(folder: Path, table: str, skip: set[Path] = frozenset()) -> list[dict]:
    """The envelopes of the table's landing files (those not in `skip`), in file-name then line order."""
    files = sorted(p for p in (folder / table).glob("*.jsonl") if p not in skip)
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def bronze_and_silver(spark, env, spec) -> list:
    entries = run_source(spark, env, spec)
    for entry in entries:  # every run's ledger balances: read = written + duplicates + quarantined
        assert entry.balanced, entry
        assert entry.records_quarantined == 0, entry
    return entries


def assert_silver_is_the_database(spark, env, spec, pg, database) -> None:
    for table, table_spec in spec.tables.items():
        columns = [c.name for c in table_spec.columns or [] if c.name not in table_spec.pii]
        assert silver_rows(spark, env, table, columns) == database_rows(pg, database, table, columns), table
    # customers' email: what silver keeps is the keyed token of the database's value
    key = resolve(env.pii_token_key).value.encode("utf-8")
    emails = database_rows(pg, database, "customers", ["id", "email"])
    expected = spark.createDataFrame(sorted(emails), "id bigint, email string")
    expected = {tuple(r) for r in expected.select("id", keyed_token(F.col("email"), key)).collect()}
    assert silver_rows(spark, env, "customers", ["id", "email"]) == expected


def assert_debezium_sent_the_changes(landing: Path, skip: set[Path]) -> None:
    """What the connector wrote for CHANGES: every kind of change, a row's changes in commit order, and the
    `before` of a delete as each replica identity gives it."""
    orders = events(landing, "orders", skip=skip)
    assert {e["op"] for e in orders} == {"c", "u", "d"}
    order_1 = [e for e in orders if (e["after"] or e["before"])["id"] == 1]
    lsns = [e["source"]["lsn"] for e in order_1]
    assert len(set(lsns)) == 3
    assert lsns == sorted(lsns)  # three changes, in commit order by log position
    assert [e["after"]["status"] for e in order_1] == ["paid", "packed", "shipped"]
    # what a delete carries: the key (and placeholders for NOT NULL columns) under the default replica identity,
    # the whole old row under REPLICA IDENTITY FULL
    deleted_order = next(e for e in orders if e["op"] == "d" and e["before"]["id"] == 3)
    assert (deleted_order["before"]["status"], deleted_order["before"]["amount"]) == ("", "0.00")
    deleted_line = next(e for e in events(landing, "order_lines", skip=skip) if e["op"] == "d")
    assert deleted_line["before"]["sku"] == f"SKU-{deleted_line['before']['id']}"


def test_database_changes_reach_silver_in_commit_order(pg, spark, env, tmp_path, monkeypatch, shop):
    spec = load_source(SOURCE)
    landing = Path(env.landing) / SOURCE  # the capture writes <landing>/<table>/, the tables' landing folders
    capture = Capture.write(
        tmp_path / "debezium", landing, pg, shop, ["public.orders", "public.order_lines", "public.customers"]
    )

    # 1. the first run snapshots the rows there are (op r)
    first = capture.run(expect=6 + 12 + 3)
    assert (first["events"], first["tombstones"]) == (21, 0), first
    snapshot_files = set(landing.rglob("*.jsonl"))
    assert {e["op"] for t in spec.tables for e in events(landing, t)} == {"r"}
    bronze_and_silver(spark, env, spec)
    assert_silver_is_the_database(spark, env, spec, pg, shop)

    # 2. changes in the database; the second run streams them from the slot, and only them
    changed, deleted = apply_changes(pg, shop)
    second = capture.run(expect=changed)
    assert (second["events"], second["tombstones"]) == (changed, deleted), second
    assert_debezium_sent_the_changes(landing, skip=snapshot_files)

    entries = bronze_and_silver(spark, env, spec)
    assert_silver_is_the_database(spark, env, spec, pg, shop)
    silver_orders = spark.read.format("delta").load(tables.silver(SOURCE, "orders").path(env))
    assert silver_orders.schema["amount"].dataType == T.DecimalType(12, 2)
    assert silver_orders.schema["created_at"].dataType == T.TimestampType()
    latest = {r.id: r for r in silver_orders.collect()}
    # the latest of three updates, two of them in one transaction
    assert (latest[1].status, latest[1].amount) == ("shipped", Decimal("11.10"))
    assert 3 not in latest  # deleted in the database: removed (deletes: hard)
    assert 8 not in latest
    assert (latest[4].status, latest[4].customer_id) == ("reopened", 99)  # deleted, then inserted again
    assert latest[5].deleted_at is not None
    silver = {e.table_name: e for e in entries if e.layer == "silver"}
    # 3 only: 4's delete is superseded by its re-insert in the same batch, and 8 never reached silver
    assert silver["orders"].details["deleted"] == 1
    assert silver["order_lines"].details["deleted"] == 2
    assert silver["customers"].details["deleted"] == 1

    # 3. bronze + silver again with no new file: nothing changes
    paths = {
        f"{layer}.{t}": getattr(tables, layer)(SOURCE, t).path(env)
        for t in spec.tables
        for layer in ("bronze", "silver")
    }
    before = snapshots.versions(spark, paths)
    assert [e.status for e in run_source(spark, env, spec)] == ["noop"] * 6
    assert snapshots.versions(spark, paths) == before
    snapshots.assert_rows_unchanged(spark, paths, before)

    # 4. a capture with nothing new resumes from its offsets and writes nothing
    files = set(landing.rglob("*.jsonl"))
    third = capture.run()
    assert (third["events"], third["files"]) == (0, 0), third
    assert set(landing.rglob("*.jsonl")) == files

    # 5. a deletion request for customer 1 finds them in the CDC tables (conf/privacy.yaml: after.id in bronze)
    erase_customer(spark, env, monkeypatch, "1")
    bronze_customers = spark.read.format("delta").load(tables.bronze(SOURCE, "customers").path(env))
    assert bronze_customers.where("after.id = 1").count() == 0
    assert bronze_customers.where("after.id = 2").count() == 2  # the snapshot row and the update
    silver_customers = spark.read.format("delta").load(tables.silver(SOURCE, "customers").path(env))
    assert {r.id for r in silver_customers.collect()} == {2}


def erase_customer(spark, env, monkeypatch, subject: str) -> None:
    """Record and process a deletion request for `subject` over the privacy.yaml entries of this source."""
    monkeypatch.setenv("NORTHSTAR_USER_TOKEN_KEY", "test-user-token-key")
    privacy = load_privacy()
    entries = [t for t in privacy.tables if f"{SOURCE}_" in t.table]
    assert {t.table.split(".")[0] for t in entries} == {"bronze", "silver", "quarantine"}
    privacy = privacy.model_copy(update={"tables": entries, "vacuum_retain_hours": 0})
    key = resolve(privacy.token_key).value.encode("utf-8")
    requests.record_request(spark, env, token_of(spark, subject, key), privacy.deadline_hours)
    proofs = process_requests(spark, env, privacy)
    deleted = {p["table_name"]: p["rows_deleted"] for p in proofs if p["rows_deleted"]}
    assert deleted == {f"bronze.{SOURCE}_customers": 1, f"silver.{SOURCE}_customers": 1}, deleted
