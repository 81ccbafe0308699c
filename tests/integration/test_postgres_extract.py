"""PostgreSQL extraction end to end against the real local server: extract -> bronze -> silver.

The server's own log (auto_explain: every statement with its plan and actual row count) is the witness for
how many queries the extractor sent, how many rows each returned, and that none scanned the whole table.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from northstar import ledger
from northstar.cli import main
from northstar.config import load_source
from northstar.extract import jdbc, jdbc_state
from northstar.extract.jdbc import ExtractError, read_query, run_extract
from northstar.lake import delta, tables
from northstar.lake.storage import list_landing_files
from northstar.silver.pipeline import run_source
from tests.helpers import snapshots
from tests.helpers.conf import load_from
from tests.helpers.postgres_server import PgServer, plan_nodes

READER = f"northstar_reader_{uuid.uuid4().hex[:8]}"  # one login per test process: runs never share it
PASSWORD_VAR = "NORTHSTAR_TEST_SHOP_PASSWORD"
APP = "northstar-extract:"
TS = "%Y-%m-%d %H:%M:%S.%f"
ORDER_COLUMNS = ["id", "customer_id", "status", "amount", "created_at", "updated_at", "deleted_at"]
CUSTOMER_COLUMNS = ["id", "email", "updated_at"]


@pytest.fixture(scope="session")
def pg() -> PgServer:
    server = PgServer.from_env()
    problem = server.check_up()
    if problem:
        pytest.fail(problem, pytrace=False)
    return server


@pytest.fixture(scope="session")
def reader_password(pg) -> str:
    password = f"pw-{uuid.uuid4().hex}"
    pg.ensure_role(READER, password)
    yield password
    with pg.connect() as conn:
        conn.execute(f'drop role if exists "{READER}"')


@pytest.fixture
def reader(monkeypatch, reader_password) -> str:
    monkeypatch.setenv(PASSWORD_VAR, reader_password)
    return reader_password


@pytest.fixture
def databases(pg):
    created = []

    def make(prefix: str, orders: int, customers: int = 0) -> str:
        name = pg.create_database(prefix)
        created.append(name)
        with pg.connect(name) as conn:
            conn.execute(
                "create table public.orders (id bigint primary key, customer_id bigint not null, "
                "status text not null, amount numeric(12,2) not null, created_at timestamptz not null, "
                "updated_at timestamptz not null, deleted_at timestamptz, notes text)"
            )
            conn.execute("create index orders_updated_at_id on public.orders (updated_at, id)")
            # groups of 6 rows share one updated_at exactly: pages must split ties by id
            conn.execute(
                "insert into public.orders select i, i %% 13, 'new', i * 1.25, now() - interval '2 days', "
                "now() - interval '2 days' + (i / 6) * interval '1 second', null, repeat(md5(i::text), 60) "
                "from generate_series(1, %s) i",
                [orders],
            )
            conn.execute(
                "create table public.customers (id bigint primary key, email text, updated_at timestamptz not null)"
            )
            conn.execute("create index customers_updated_at_id on public.customers (updated_at, id)")
            conn.execute(
                "insert into public.customers select i, 'c' || i || '@example.com', now() - interval '1 day' "
                "from generate_series(1, %s) i",
                [customers],
            )
            conn.execute(f'grant select on all tables in schema public to "{READER}"')
            conn.execute("analyze")
        return name

    yield make
    for name in created:
        pg.drop_database(name)


def write_source(
    conf: Path,
    name: str,
    pg: PgServer,
    database: str,
    *,
    batch_size: int = 16,
    statement_timeout: str = "30s",
    customers: bool = False,
):
    """A source file for one database, as a user would write it; returns the loaded SourceSpec."""
    (conf / "sources").mkdir(parents=True, exist_ok=True)
    text = f"""
description: test shop database {database}
jdbc:
  host: {pg.host}
  port: {pg.port}
  database: {database}
  user: {READER}
  password: env:{PASSWORD_VAR}
  batch_size: {batch_size}
  fetch_size: 100
  overlap: 15m
  statement_timeout: {statement_timeout}
  tables:
    orders:  # notes (about 2 KB a row, kept in the heap: a table too big to scan casually) is left out
      relation: public.orders
      cursor: updated_at
      columns: [id, customer_id, status, amount, created_at, updated_at, deleted_at]
{"    customers: {relation: public.customers}" if customers else ""}
tables:
  orders:
    format: parquet
    landing: {name}/orders
    primary_key: [id]
    ordering: [updated_at]
    columns:
      - {{name: id, type: bigint, required: true}}
      - {{name: status, type: string, required: true}}
      - {{name: amount, type: "decimal(12,2)", required: true}}
      - {{name: updated_at, type: timestamp, required: true}}
      - {{name: deleted_at, type: timestamp}}
"""
    if customers:
        text += f"""
  customers:
    format: parquet
    landing: {name}/customers
    primary_key: [id]
    ordering: [updated_at]
"""
    (conf / "sources" / f"{name}.yaml").write_text(text)
    return load_from(conf, load_source, name)


def _text(value):
    return value.astimezone(UTC).strftime(TS) if hasattr(value, "astimezone") else value


def source_rows(pg: PgServer, database: str, table: str, columns: list[str]) -> set[tuple]:
    with pg.connect(database) as conn:
        rows = conn.execute(f"select {', '.join(columns)} from public.{table}").fetchall()
    return {tuple(_text(v) for v in row) for row in rows}


def silver_rows(spark, env, source: str, table: str, columns: list[str]) -> set[tuple]:
    frame = spark.read.format("delta").load(tables.silver(source, table).path(env))
    typed = dict(frame.dtypes)
    picked = [
        F.date_format(c, "yyyy-MM-dd HH:mm:ss.SSSSSS").alias(c) if typed[c] == "timestamp" else F.col(c)
        for c in columns
    ]
    rows = frame.select(*picked).collect()
    assert len(rows) == len({r[columns.index("id")] for r in rows}), "silver holds a key twice"
    return {tuple(r) for r in rows}


def landed_ids(spark, files: list[str]) -> Counter:
    if not files:
        return Counter()
    return Counter(r["id"] for r in spark.read.parquet(*files).select("id").collect())


def by_kind(plans: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """Split an extraction's statements: data pages, Spark's schema probes, the driver's catalog lookups."""
    probes = [p for p in plans if "WHERE 1=0" in p["Query Text"]]
    catalog = [p for p in plans if "pg_catalog" in p["Query Text"] and p not in probes]
    pages = [p for p in plans if p not in probes and p not in catalog]
    return pages, probes, catalog


def seq_scans(pg: PgServer, database: str, table: str) -> int:
    time.sleep(1.0)  # backends report their counters when they exit; Spark closes its connections per read
    with pg.connect(database) as conn:
        return conn.execute(
            "select seq_scan from pg_stat_user_tables where relname = %s", [table]
        ).fetchone()[0]


def table_paths(env, source: str, table: str) -> dict[str, str]:
    return {
        "bronze": tables.bronze(source, table).path(env),
        "silver": tables.silver(source, table).path(env),
        "quarantine": tables.quarantine(source, table).path(env),
        "landing_log": tables.LANDING_FILES.path(env),
    }


def change_the_source(pg, database):
    """Updates sharing one updated_at exactly, soft deletes, new rows: the ids of each."""
    with pg.connect(database) as conn:
        with conn.transaction():
            updated = [
                r[0]
                for r in conn.execute(
                    "update orders set status = 'shipped', updated_at = now() where id % 12 = 0 returning id"
                ).fetchall()
            ]
        with conn.transaction():
            deleted = [
                r[0]
                for r in conn.execute(
                    "update orders set status = 'cancelled', deleted_at = now(), updated_at = now() "
                    "where id in (5, 6, 7, 40, 41, 95) returning id"
                ).fetchall()
            ]
        with conn.transaction():
            inserted = [
                r[0]
                for r in conn.execute(
                    "insert into orders select i, 1, 'new', 9.99, now(), now(), null, repeat(md5(i::text), 60) "
                    "from generate_series(97, 101) i returning id"
                ).fetchall()
            ]
    return updated, deleted, inserted


def assert_index_range_scans(pages, probes, catalog):
    """No sequential scan; every page a range scan of the (updated_at, id) index; catalog looks at no table."""
    for plan in pages + probes:
        assert plan["Plan"]["Actual Rows"] <= 16
        scans = [n for n in plan_nodes(plan) if n["Node Type"] == "Seq Scan"]
        assert not scans, f"sequential scan in {plan['Query Text']}"
    for plan in pages:  # each page is a range scan of the (updated_at, id) index that stops at LIMIT
        assert plan["Plan"]["Node Type"] == "Limit"
        assert any(n.get("Index Name") == "orders_updated_at_id" for n in plan_nodes(plan))
    for plan in catalog:
        assert {n.get("Relation Name") for n in plan_nodes(plan)}.isdisjoint({"orders", "customers"})


def test_incremental_extract_lands_only_changes_and_silver_equals_the_source(
    pg, spark, env, tmp_path, reader, databases
):
    database = databases("shop", orders=96)
    source = write_source(tmp_path / "conf", "shop", pg, database, batch_size=16)

    # 1. first run: no watermark yet, so the whole table, in pages of at most 16 rows
    position = pg.log_position()
    [first] = run_extract(spark, env, source)
    assert (first.mode, first.window_start, first.rows) == ("incremental", None, 96)
    pages, probes, catalog = by_kind(pg.statements_since(position, database, APP))
    # 6 full pages, one empty page that ends the window, one page for rows with a NULL cursor
    assert len(pages) == first.queries == 96 // 16 + 2
    # per page Spark also sends a schema probe (`WHERE 1=0`: planned as a false filter, reads nothing) and the
    # driver looks the columns up in pg_catalog: neither touches the table's rows
    assert len(probes) == len(catalog) == len(pages)
    assert all(p["Plan"]["Actual Rows"] == 0 for p in probes)
    assert [p["Plan"]["Actual Rows"] for p in pages] == [16] * 6 + [0, 0]
    assert all("LIMIT 16" in p["Query Text"] and "OFFSET" not in p["Query Text"] for p in pages)
    run_source(spark, env, source)
    assert silver_rows(spark, env, "shop", "orders", ORDER_COLUMNS) == source_rows(
        pg, database, "orders", ORDER_COLUMNS
    )

    # 2. the source changes: updates sharing one updated_at exactly, soft deletes, new rows
    updated, deleted, inserted = change_the_source(pg, database)
    changed = set(updated) | set(deleted) | set(inserted)
    assert (len(updated), len(deleted), len(inserted)) == (8, 6, 5)
    scans_before = seq_scans(pg, database, "orders")

    position = pg.log_position()
    [second] = run_extract(spark, env, source)
    assert second.mode == "incremental"
    assert second.window_start == first.window_end - timedelta(minutes=15)  # watermark minus the overlap
    assert landed_ids(spark, second.files_written) == Counter(changed)  # the changed rows, each once
    plans = pg.statements_since(position, database, APP)
    pages, probes, catalog = by_kind(plans)
    assert [p["Plan"]["Actual Rows"] for p in pages] == [16, 3]  # 19 changed rows; a short page ends it
    assert second.queries == 2
    assert_index_range_scans(pages, probes, catalog)
    assert seq_scans(pg, database, "orders") == scans_before
    run_source(spark, env, source)
    assert silver_rows(spark, env, "shop", "orders", ORDER_COLUMNS) == source_rows(
        pg, database, "orders", ORDER_COLUMNS
    )

    # 3. the same window again: nothing new lands, every table stays exactly as it was
    shop_orders = table_paths(env, "shop", "orders")
    before = snapshots.versions(spark, shop_orders)
    versions = {
        k: delta.latest_version(spark, p) for k, p in [("b", tables.bronze("shop", "orders").path(env))]
    }
    landing_before = list_landing_files(spark, tables.landing_folder(env, source.tables["orders"]), "parquet")
    [again] = run_extract(spark, env, source, start=second.window_start, end=second.window_end)
    assert again.mode == "window"
    assert again.files_written == []
    assert sorted(again.files_unchanged) == sorted(second.files_written)
    entries = run_source(spark, env, source)
    assert [e.status for e in entries] == ["noop", "noop"]
    snapshots.assert_rows_unchanged(spark, shop_orders, before)
    assert delta.latest_version(spark, tables.bronze("shop", "orders").path(env)) == versions["b"]
    assert (
        list_landing_files(spark, tables.landing_folder(env, source.tables["orders"]), "parquet")
        == landing_before
    )
    state = jdbc_state.load(spark, tables.landing_folder(env, source.tables["orders"]))
    assert state.watermark_time == second.window_end
    assert state.in_progress is None  # a window moves nothing

    extract_rows = ledger.read(spark, env).where(F.col("layer") == "extract").collect()
    assert [r.status for r in sorted(extract_rows, key=lambda r: r.started_at)] == [
        "success",
        "success",
        "noop",
    ]
    for row in ledger.read(spark, env).collect():
        assert row.records_read == row.records_written + row.records_duplicate + row.records_quarantined
    assert sorted(extract_rows, key=lambda r: r.started_at)[-1].records_duplicate == second.rows


def test_a_crash_resumes_the_window_with_no_gap_and_no_duplicate(
    pg, spark, env, tmp_path, reader, databases, monkeypatch
):
    database = databases("crash", orders=70)
    source = write_source(tmp_path / "conf", "crash", pg, database, batch_size=16)
    landing = tables.landing_folder(env, source.tables["orders"])
    real, calls = jdbc._land_page, []

    def crash_on_third_page(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated crash: the job was killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(jdbc, "_land_page", crash_on_third_page)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_extract(spark, env, source)
    stopped = jdbc_state.load(spark, landing)
    assert stopped.watermark is None
    assert stopped.in_progress.batch == 2
    monkeypatch.setattr(jdbc, "_land_page", real)

    [resumed] = run_extract(spark, env, source)
    assert resumed.resumed
    assert resumed.window_end.isoformat() == stopped.in_progress.end
    files = [f.path for f in list_landing_files(spark, landing, "parquet")]
    assert landed_ids(spark, files) == Counter(range(1, 71))  # every row exactly once
    assert jdbc_state.load(spark, landing).watermark_time == resumed.window_end
    statuses = [r.status for r in ledger.read(spark, env).orderBy("started_at").collect()]
    assert statuses == ["failed", "success"]


def test_bad_password_and_statement_timeout_say_what_to_do_without_the_password(
    pg, spark, env, tmp_path, reader, databases, monkeypatch, capsys
):
    database = databases("errors", orders=20)
    source = write_source(tmp_path / "conf", "errs", pg, database, statement_timeout="1s")

    monkeypatch.setenv(PASSWORD_VAR, "wrong-password-4711")
    with pytest.raises(ExtractError) as err:
        run_extract(spark, env, source)
    message = str(err.value)
    assert "source errs table orders" in message
    assert f"{pg.port}/{database}" in message
    assert f"rejected the password of user {READER}" in message
    assert f"env:{PASSWORD_VAR}" in message
    assert "28P01" in message
    assert "wrong-password-4711" not in message

    # the command says the same on stderr and exits 1 (a failed run), not with a stack trace
    conf = tmp_path / "conf"
    (conf / "env").mkdir()
    (conf / "env" / "test.yaml").write_text(
        f"profile: local\nlanding: {env.landing}\nlake: {env.lake}\nquarantine: {env.quarantine}\n"
    )
    assert main(["extract", "--source", "errs", "--env", "test", "--conf-dir", str(conf)]) == 1
    stderr = capsys.readouterr().err
    assert "extract failed: source errs table orders" in stderr
    assert "wrong-password-4711" not in stderr

    monkeypatch.setenv(PASSWORD_VAR, reader)
    with pg.connect(database) as conn, conn.transaction():
        conn.execute("lock table orders in access exclusive mode")  # every read of orders now waits
        started = time.monotonic()
        with pytest.raises(ExtractError) as err:
            run_extract(spark, env, source)
        assert time.monotonic() - started < 20
    message = str(err.value)
    assert "source errs table orders" in message
    assert "statement_timeout (1s)" in message
    assert "index on (updated_at, primary key)" in message
    assert "57014" in message
    assert reader not in message

    failed = ledger.read(spark, env).collect()
    assert [r.status for r in failed] == ["failed"] * 3
    assert all(reader not in r.error and "wrong-password-4711" not in r.error for r in failed)


def test_two_databases_two_source_files_no_code_change(pg, spark, env, tmp_path, reader, databases):
    conf = tmp_path / "conf"
    east = write_source(conf, "shop_east", pg, databases("east", orders=30), customers=True)
    west = write_source(conf, "shop_west", pg, databases("west", orders=45, customers=12), customers=True)
    for source in (east, west):
        results = run_extract(spark, env, source)
        assert [r.table for r in results] == ["orders", "customers"]
        run_source(spark, env, source)
        database = source.jdbc.database
        assert silver_rows(spark, env, source.name, "orders", ORDER_COLUMNS) == source_rows(
            pg, database, "orders", ORDER_COLUMNS
        )
        if west is source:
            assert silver_rows(spark, env, source.name, "customers", CUSTOMER_COLUMNS) == source_rows(
                pg, database, "customers", CUSTOMER_COLUMNS
            )
    assert spark.read.format("delta").load(tables.silver("shop_east", "orders").path(env)).count() == 30
    assert spark.read.format("delta").load(tables.silver("shop_west", "orders").path(env)).count() == 45

    # the extractor's sessions are read-only and carry the statement timeout, from the first statement on
    settings = read_query(
        spark,
        west,
        "orders",
        "select current_setting('transaction_read_only') as ro, current_setting('statement_timeout') as st",
    ).first()
    assert (settings["ro"], settings["st"]) == ("on", "30s")
