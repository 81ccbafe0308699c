"""Reconciliation runs, root-cause investigation and audited corrections on small Delta tables built here.

One module-scoped lake holds a table per injected fault (a late batch, a schema change at the source, a
duplicate-producing bug, a broken ledger identity, a wrong gold transform) and a clean one; the gold layer
is another helper's work, so the gold tables here are tiny stand-ins named in this module's conf.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable

from northstar import ledger
from northstar.cli import main
from northstar.config import load_source
from northstar.dev.generate.finance_totals import totals_from_orders, write_totals
from northstar.lake import tables
from northstar.reconciliation import investigate as inv
from northstar.reconciliation.corrections import correct, read_log, reproduce
from northstar.reconciliation.errors import CorrectionError
from northstar.reconciliation.reconcile import daily_figures, run_reconciliation
from northstar.reconciliation.spec import load_recon
from northstar.silver.pipeline import run_source
from tests.helpers.conf import load_from
from tests.helpers.envs import make_env
from tests.helpers.postgres_server import ADMIN, PgServer

TODAY = datetime.now(UTC).date()  # schema changes and ledger runs are matched to commits made today
ORDERS = (
    "order_id string, created_at timestamp, currency string, total_amount decimal(18,2), status string, "
    "_ingest_time timestamp"
)
GOLD = "order_date date, currency string, revenue decimal(18,2)"

CONF = """
thresholds: {variance_pct: 0.05, duplicate_rate_pct: 0.1}
tables:
  silver.late: {path: "{lake}/t/late", key: [order_id], date: created_at, currency: currency,
                amount: total_amount, ledger_source: late, ledger_table: orders}
  bronze.src: {path: "{lake}/t/bronze_src", key: [order_id], date: created_at, currency: currency, amount: total_amount}
  silver.src: {path: "{lake}/t/paid", key: [order_id], date: created_at, currency: currency, amount: total_amount,
               bronze: bronze.src}
  silver.dup: {path: "{lake}/t/dup", key: [order_id], date: created_at, currency: currency, amount: total_amount}
  silver.acct: {path: "{lake}/t/paid", key: [order_id], date: created_at, currency: currency,
                amount: total_amount, ledger_source: acct, ledger_table: orders}
  silver.base: {path: "{lake}/t/base", key: [order_id], date: created_at, currency: currency,
                amount: total_amount, filter: "status = 'paid'"}
  gold.wrong: {path: "{lake}/t/gold_wrong", key: [order_date, currency], date: order_date, currency: currency,
               amount: revenue, upstream: silver.base}
  gold.right: {path: "{lake}/t/gold_right", key: [order_date, currency], date: order_date, currency: currency,
               amount: revenue, upstream: silver.base}
  silver.corr: {path: "{lake}/t/corr", key: [order_id], date: created_at, currency: currency, amount: total_amount}
  finance.totals: {path: "{lake}/t/finance", key: [business_date, currency], date: business_date,
                   currency: currency, amount: gross, count: n}
comparisons:
  base_vs_finance: {left: {table: silver.base}, right: {table: finance.totals}}
duplicates: [silver.base, silver.dup]
"""


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _orders(spark, rows):
    return spark.createDataFrame(rows, ORDERS)


def _save(frame, path, mode="append", **options):
    writer = frame.write.format("delta").mode(mode)
    for key, value in options.items():
        writer = writer.option(key, value)
    writer.save(path)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    env = make_env(root, name="t")
    conf = root / "conf"
    (conf / "reconciliation").mkdir(parents=True)
    (conf / "env").mkdir()
    (conf / "reconciliation" / "daily.yaml").write_text(CONF)
    (conf / "env" / "t.yaml").write_text(
        f"profile: local\nlanding: {env.landing}\nlake: {env.lake}\nquarantine: {env.quarantine}\n"
    )
    t = f"{env.lake}/t"
    d, first_ingest = TODAY, _at(TODAY, 1)
    paid = [
        ("o1", _at(d, 9), "USD", Decimal("10.00"), "paid", first_ingest),
        ("o2", _at(d, 10), "USD", Decimal("20.00"), "paid", first_ingest),
        ("o3", _at(d, 11), "USD", Decimal("30.00"), "paid", first_ingest),
    ]
    # a late batch: o4 of day D arrives in a second commit, ingested later; every run adds up
    _save(_orders(spark, paid), f"{t}/late")
    _save(
        _orders(spark, [("o4", _at(d, 12), "USD", Decimal("5.00"), "paid", datetime.now(UTC))]), f"{t}/late"
    )
    late_run = ledger.LedgerEntry(
        run_id="silver-late-0",
        job="t",
        env="t",
        source="late",
        table_name="orders",
        layer="silver",
        records_read=4,
        records_written=3,
        records_duplicate=1,
    )
    ledger.append(spark, env, late_run)
    # a schema change at the source: bronze gains a column and rescues values on day D
    yesterday = d - timedelta(days=1)
    bronze_rows = [(*r, None) for r in paid]
    bronze_schema = ORDERS + ", _rescued_data string"
    _save(
        spark.createDataFrame(
            [(f"y{n}", _at(yesterday, 9), "USD", Decimal(1), "paid", first_ingest, None) for n in range(3)],
            bronze_schema,
        ),
        f"{t}/bronze_src",
    )
    changed = spark.createDataFrame(
        [
            (*r[:-1], '{"shipping_fee": {"amount": 4.5}}' if r[0] == "o1" else None, "SPRING")
            for r in bronze_rows
        ],
        bronze_schema + ", coupon_code string",
    )
    _save(changed, f"{t}/bronze_src", mergeSchema="true")
    _save(_orders(spark, paid), f"{t}/paid")  # silver.src and silver.acct: right in silver, wrong upstream
    # a duplicate-producing bug: o2 twice in silver
    _save(_orders(spark, [*paid, paid[1]]), f"{t}/dup")
    # a run whose counts did not add up (recorded as failed by the ledger's own check)
    with pytest.raises(ledger.AccountingError):
        with ledger.recorded(
            spark,
            env,
            ledger.LedgerEntry(
                run_id="silver-acct-0", job="t", env="t", source="acct", table_name="orders", layer="silver"
            ),
        ) as entry:
            entry.records_read, entry.records_written = 5, 3
    # silver right, gold: one table counts the cancelled order (wrong transform), one does not
    cancelled = ("o9", _at(d, 13), "USD", Decimal("99.00"), "cancelled", first_ingest)
    _save(_orders(spark, [*paid, cancelled]), f"{t}/base")
    _save(spark.createDataFrame([(d, "USD", Decimal("159.00"))], GOLD), f"{t}/gold_wrong")
    _save(spark.createDataFrame([(d, "USD", Decimal("60.00"))], GOLD), f"{t}/gold_right")
    _save(_orders(spark, paid), f"{t}/corr")
    spark.createDataFrame(
        [(d, "USD", 3, Decimal("60.02")), (yesterday, "USD", 2, Decimal("15.00"))],
        "business_date date, currency string, n bigint, gross decimal(18,2)",
    ).write.format("delta").save(f"{t}/finance")
    return env, conf, load_from(conf, load_recon, "daily")


@pytest.mark.parametrize(
    ("table", "expected", "because"),
    [
        ("silver.src", inv.SOURCE_CHANGE, "columns added coupon_code"),
        ("silver.dup", inv.PIPELINE_BUG, "silver.dup has 1 duplicate key(s)"),
        ("silver.acct", inv.PIPELINE_BUG, "read 5 != written 3 + duplicate 0 + quarantined 0"),
        (
            "gold.wrong",
            inv.TRANSFORMATION_LOGIC,
            "gold.wrong sum 159.0000 USD vs upstream silver.base 60.0000",
        ),
        ("gold.right", inv.NO_MISMATCH, None),
    ],
)
def test_each_injected_fault_is_classified(spark, lake, table, expected, because):
    env, conf, spec = lake
    found = load_from(conf, inv.investigate, spark, env, spec, table, TODAY)
    assert found.classification == expected, found.format()
    if because:
        assert any(because in reason for reason in found.reasons), found.reasons
    else:
        assert found.reasons == []
    assert found.evidence["history"], "the Delta history is part of the evidence"


def test_source_change_evidence_names_the_rescued_share(spark, lake):
    env, conf, spec = lake
    found = load_from(conf, inv.investigate, spark, env, spec, "silver.src", TODAY)
    assert found.evidence["bronze_rescued_pct"]["before"] == 0.0
    assert found.evidence["bronze_rescued_pct"]["on_day"] == pytest.approx(100 / 3)
    assert found.evidence["bronze_schema_changes"] == [
        {"version": 1, "added": ["coupon_code"], "removed": [], "retyped": []}
    ]


def test_investigate_command_prints_the_evidence_as_json(lake, capsys):
    env, conf, _ = lake
    code = main(
        [
            "investigate",
            "silver.late",
            "--date",
            TODAY.isoformat(),
            "--json",
            "--env",
            "t",
            "--conf-dir",
            str(conf),
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classification"] == "late_arriving"  # the late batch
    assert any("1 row(s) added and 0 changed for" in reason for reason in report["reasons"])
    assert report["evidence"]["diff_first_to_latest"] == {
        "version_from": 0,
        "version_to": 1,
        "added": 1,
        "removed": 0,
        "changed": 0,
        "unchanged": 3,
    }
    assert report["evidence"]["rows_ingested_after_first_version"] == 1
    assert [r["balanced"] for r in report["evidence"]["ledger_runs"]] == [True]


def test_reconcile_run_is_idempotent_and_the_report_names_the_breaches(spark, lake, tmp_path, capsys):
    env, conf, spec = lake
    first = run_reconciliation(spark, env, spec, TODAY, days=2)
    stored = spark.read.format("delta").load(tables.RECONCILIATION.path(env))
    once = sorted(map(tuple, stored.collect()))
    report = tmp_path / "recon.html"
    args = ["reconcile", "--date", TODAY.isoformat(), "--days", "2", "--env", "t", "--conf-dir", str(conf)]
    assert main([*args, "--report", str(report), "--fail-on-breach"]) == 1  # the retry, through the CLI
    again = sorted(map(tuple, spark.read.format("delta").load(tables.RECONCILIATION.path(env)).collect()))
    assert again == once
    assert first.rows == len(once)
    rows = {(r["comparison"], r["business_date"], r["measure"]): r for r in stored.collect()}
    today_sum = rows[("base_vs_finance", TODAY, "sum")]
    assert (today_sum["left_value"], today_sum["right_value"]) == (Decimal("60.0000"), Decimal("60.0200"))
    assert today_sum["status"] == "ok"
    assert today_sum["variance_pct"] == pytest.approx(0.02 / 60.02 * 100)
    assert rows[("base_vs_finance", TODAY, "count")]["status"] == "ok"  # the cancelled order is not counted
    yesterday = TODAY - timedelta(days=1)
    assert rows[("base_vs_finance", yesterday, "sum")]["status"] == "missing_left"
    assert rows[("duplicates silver.dup", TODAY, "duplicate_rate")]["status"] == "breach"
    assert rows[("duplicates silver.base", TODAY, "duplicate_rate")]["status"] == "ok"
    assert first.breaches == 3
    out = capsys.readouterr().out
    assert "BREACH base_vs_finance" in out
    assert "3 breaches" in out
    page = report.read_text()
    breach_table = page[page.index("<h2>Breaches</h2>") : page.index("<svg")]
    assert breach_table.count("missing_left") == 2
    assert "duplicates silver.dup" in breach_table
    assert "threshold 0.05%" in page
    assert "threshold 0.1%" in page


def test_correction_and_rollback_are_audited_and_figures_reproduce(spark, lake, capsys):
    env, conf, spec = lake
    path = spec.tables["silver.corr"].location(env, "silver.corr")
    profile = spec.tables["silver.corr"]
    published = [tuple(r) for r in reproduce(spark, path, 0, profile, TODAY).collect()]
    assert published == [(TODAY, "USD", Decimal(3), Decimal("60.0000"))]

    with pytest.raises(CorrectionError, match="pass --why, --ticket"):
        correct(
            spark,
            env,
            table_name="silver.corr",
            path=path,
            where="order_id = 'o1'",
            assignments={"total_amount": "12.00"},
            who="ana",
            why=" ",
            ticket=None,
        )
    done = correct(
        spark,
        env,
        table_name="silver.corr",
        path=path,
        where="order_id = 'o1'",
        assignments={"total_amount": "12.00"},
        who="ana",
        why="partner re-priced o1",
        ticket="FIN-1",
    )
    assert (done.rows_affected, done.version_before, done.version_after) == (1, 0, 1)
    # the published figure is still reproducible from its version, after the correction
    assert [tuple(r) for r in reproduce(spark, path, 0, profile, TODAY).collect()] == published

    code = main(
        [
            "rollback",
            "--table",
            "silver.corr",
            "--to-version",
            "0",
            "--who",
            "bo",
            "--why",
            "correction FIN-1 was wrong",
            "--ticket",
            "FIN-2",
            "--env",
            "t",
            "--conf-dir",
            str(conf),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "version 1 -> 2" in capsys.readouterr().out
    assert_df_equality(
        spark.read.format("delta").load(path),
        spark.read.format("delta").option("versionAsOf", 0).load(path),
        ignore_row_order=True,
    )

    log = {r["action"]: r for r in read_log(spark, env).collect()}
    assert set(log) == {"update", "rollback"}
    update, restore = log["update"], log["rollback"]
    assert (update["who"], update["why"], update["ticket"]) == ("ana", "partner re-priced o1", "FIN-1")
    assert (update["rows_affected"], update["version_before"], update["version_after"]) == (1, 0, 1)
    assert update["predicate"] == "order_id = 'o1'"
    assert update["assignments"] == "total_amount = 12.00"
    assert (restore["who"], restore["ticket"], restore["version_before"], restore["version_after"]) == (
        "bo",
        "FIN-2",
        1,
        2,
    )
    assert restore["rows_affected"] == 2  # the corrected row removed, the original back
    assert restore["metrics"]["rows_added"] == 1
    assert restore["metrics"]["rows_removed"] == 1

    # append-only: Delta itself refuses to change or remove an audit row
    audit = DeltaTable.forPath(spark, tables.CORRECTIONS.path(env))
    with pytest.raises(Exception, match="(?i)append.?only|DELTA_CANNOT_MODIFY_APPEND_ONLY"):
        audit.delete("action = 'update'")
    with pytest.raises(Exception, match="(?i)append.?only|DELTA_CANNOT_MODIFY_APPEND_ONLY"):
        audit.update(condition="action = 'update'", set={"who": "'someone else'"})
    assert read_log(spark, env).count() == 2


def test_a_correction_without_who_why_ticket_is_refused_with_what_to_pass(lake, capsys):
    env, conf, _ = lake
    code = main(
        [
            "correct",
            "--table",
            "silver.corr",
            "--where",
            "order_id = 'o2'",
            "--delete",
            "--env",
            "t",
            "--conf-dir",
            str(conf),
        ]
    )
    assert code == 2
    assert "pass --why, --ticket" in capsys.readouterr().err


def test_finance_totals_land_through_the_csv_path_and_the_latest_posting_wins(spark, env):
    d = date(2026, 11, 24)
    orders = [
        {
            "order_id": "a",
            "status": "paid",
            "currency": "usd",
            "created_at": "2026-11-24T10:00:00Z",
            "totals": {"total": 10.5},
        },
        {
            "order_id": "b",
            "status": "delivered",
            "currency": "USD",
            "created_at": "2026-11-24T23:59:59+00:00",
            "totals": {"total": 4.5},
        },
        {
            "order_id": "c",
            "status": "cancelled",
            "currency": "USD",
            "created_at": "2026-11-24T11:00:00Z",
            "totals": {"total": 99},
        },
    ]
    totals = totals_from_orders(orders)
    assert totals == {(d, "USD"): (2, Decimal("15.00"))}
    source = load_source("finance_totals")
    folder = Path(tables.landing_folder(env, source.tables["daily_totals"]))
    write_totals(folder, totals, datetime(2026, 11, 25, 5, tzinfo=UTC), skew={(d, "USD"): Decimal("1.00")})
    write_totals(folder, totals, datetime(2026, 11, 25, 6, tzinfo=UTC))  # finance re-posted the day
    bronze, silver = run_source(spark, env, source)
    assert (bronze.records_read, silver.records_written, silver.records_duplicate) == (2, 1, 1)
    profile = load_recon("daily").tables["silver.finance_totals_daily_totals"]
    figures = daily_figures(
        spark.read.format("delta").load(tables.silver("finance_totals", "daily_totals").path(env)), profile
    )
    assert [tuple(r) for r in figures.collect()] == [(d, "USD", Decimal(2), Decimal("15.0000"))]


def test_lake_vs_postgres_source_totals(spark, env, tmp_path, monkeypatch):
    """The source side is a real count/sum query against the local PostgreSQL (scripts/postgres.sh)."""
    server = PgServer.from_env()
    problem = server.check_up()
    if problem:
        pytest.fail(problem, pytrace=False)
    database = server.create_database("recon")
    try:
        with server.connect(database) as conn:
            conn.execute(
                "create table public.orders (id bigint primary key, status text, amount numeric(12,2), "
                "created_at timestamptz not null, deleted_at timestamptz)"
            )
            conn.execute(
                "insert into public.orders values "
                "(1, 'paid', 10.00, '2026-11-23 23:59:59+00', null), (2, 'paid', 20.00, '2026-11-24 00:00:00+00', null), "
                "(3, 'paid', 30.00, '2026-11-24 08:00:00-05', null), (4, 'paid', 99.00, '2026-11-24 09:00:00+00', now())"
            )
        conf = tmp_path / "conf"
        (conf / "sources").mkdir(parents=True)
        (conf / "reconciliation").mkdir()
        (conf / "sources" / "shop.yaml").write_text(
            "tables:\n  orders: {format: parquet, landing: shop/orders, primary_key: [id], ordering: [id]}\n"
            f"jdbc:\n  host: {server.host}\n  port: {server.port}\n  database: {database}\n  user: {ADMIN}\n"
            "  password: env:RECON_TEST_PG_PASSWORD\n  tables:\n    orders: {relation: public.orders, cursor: created_at}\n"
        )
        (conf / "reconciliation" / "daily.yaml").write_text(
            "tables:\n"
            '  lake.orders: {path: "{lake}/orders", key: [id], date: created_at, amount: amount, filter: deleted_at IS NULL}\n'
            "  source.orders: {postgres: {source: shop, relation: public.orders}, key: [id], date: created_at,\n"
            "                  amount: amount, filter: deleted_at IS NULL}\n"
            "comparisons:\n  lake_vs_source: {left: {table: lake.orders}, right: {table: source.orders}}\n"
        )
        monkeypatch.setenv("RECON_TEST_PG_PASSWORD", server.admin_password)
        # the lake lost order 3 (13:00 UTC on the 24th); order 4 is deleted on both sides
        spark.createDataFrame(
            [
                (1, datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC), Decimal("10.00"), None),
                (2, datetime(2026, 11, 24, tzinfo=UTC), Decimal("20.00"), None),
                (4, datetime(2026, 11, 24, 9, tzinfo=UTC), Decimal("99.00"), datetime.now(UTC)),
            ],
            "id bigint, created_at timestamp, amount decimal(12,2), deleted_at timestamp",
        ).write.format("delta").save(f"{env.lake}/orders")
        run = load_from(
            conf,
            run_reconciliation,
            spark,
            env,
            load_from(conf, load_recon, "daily"),
            date(2026, 11, 24),
            days=2,
        )
        rows = {
            (r["business_date"].day, r["measure"]): (r["left_value"], r["right_value"], r["status"])
            for r in spark.read.format("delta")
            .load(tables.RECONCILIATION.path(env))
            .where(f"run_id = '{run.run_id}'")
            .collect()
        }
        assert rows == {
            (23, "count"): (Decimal(1), Decimal(1), "ok"),
            (23, "sum"): (Decimal(10), Decimal(10), "ok"),
            (24, "count"): (Decimal(1), Decimal(2), "breach"),
            (24, "sum"): (Decimal(20), Decimal(50), "breach"),
        }
    finally:
        server.drop_database(database)
