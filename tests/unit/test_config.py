from pathlib import Path

import pytest

from northstar.config import ConfigError, list_sources, load_env, load_source
from northstar.lake import tables
from tests.helpers.conf import load_from

GOOD_TABLE = """
tables:
  orders:
    format: jsonl
    landing: partner/orders
    primary_key: [order_id]
    ordering: [updated_at]
"""


def write_source(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / "sources").mkdir(exist_ok=True)
    (tmp_path / "sources" / f"{name}.yaml").write_text(text)
    return tmp_path


def test_repo_sources_load():
    assert "marketplace" in list_sources()
    spec = load_source("marketplace")
    orders = spec.tables["orders"]
    assert orders.primary_key == ["order_id"]
    assert orders.column("shipping_fee").type == "decimal(12,2)"
    assert orders.required_columns == ["status", "created_at", "updated_at", "currency", "totals"]


def test_minimal_source_gets_defaults(tmp_path):
    spec = load_from(write_source(tmp_path, "partner", GOOD_TABLE), load_source, "partner")
    table = spec.tables["orders"]
    assert (table.drift, table.columns, table.partition_by) == ("evolve", None, [])


def test_bad_drift_value_names_file_field_and_choices(tmp_path):
    conf = write_source(tmp_path, "partner", GOOD_TABLE + "    drift: evolv\n")
    with pytest.raises(ConfigError) as err:
        load_from(conf, load_source, "partner")
    message = str(err.value)
    assert "partner.yaml" in message
    assert "tables.orders.drift" in message
    assert "'evolve', 'rescue' or 'fail'" in message
    assert "'evolv'" in message


def test_misspelled_setting_is_reported(tmp_path):
    conf = write_source(tmp_path, "partner", GOOD_TABLE + "    primary_keys: [id]\n")
    with pytest.raises(ConfigError, match=r"tables\.orders\.primary_keys: unknown setting"):
        load_from(conf, load_source, "partner")


def test_yaml_syntax_error_names_line(tmp_path):
    conf = write_source(tmp_path, "partner", "tables:\n  orders: [unclosed\n")
    with pytest.raises(ConfigError, match=r"partner\.yaml: not valid YAML at line \d+"):
        load_from(conf, load_source, "partner")


def test_key_must_be_a_declared_column(tmp_path):
    text = (
        GOOD_TABLE
        + "    columns:\n      - {name: id, type: string}\n      - {name: updated_at, type: timestamp}\n"
    )
    with pytest.raises(
        ConfigError, match="primary_key names order_id, which is not in columns: id, updated_at"
    ):
        load_from(write_source(tmp_path, "partner", text), load_source, "partner")


def test_unknown_type_lists_allowed_types(tmp_path):
    text = (
        GOOD_TABLE
        + "    columns:\n      - {name: order_id, type: varchar}\n      - {name: updated_at, type: timestamp}\n"
    )
    with pytest.raises(ConfigError, match=r"columns\.0\.type: unknown type 'varchar'; allowed: string"):
        load_from(write_source(tmp_path, "partner", text), load_source, "partner")


def test_missing_required_setting(tmp_path):
    with pytest.raises(ConfigError, match=r"tables\.orders\.ordering: Field required"):
        load_from(
            write_source(tmp_path, "partner", GOOD_TABLE.replace("    ordering: [updated_at]\n", "")),
            load_source,
            "partner",
        )


def test_unknown_source_lists_known_ones(tmp_path):
    write_source(tmp_path, "partner", GOOD_TABLE)
    with pytest.raises(ConfigError, match="no such source file .* partner"):
        load_from(tmp_path, load_source, "stripe")


def test_name_must_match_file(tmp_path):
    with pytest.raises(ConfigError, match="name is 'other' but the file is partner.yaml"):
        load_from(write_source(tmp_path, "partner", "name: other\n" + GOOD_TABLE), load_source, "partner")


def test_env_expands_variables_and_resolves_paths(tmp_path, monkeypatch):
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "x.yaml").write_text(
        "profile: local\nlanding: ${DATA:-/d}/landing\nlake: s3://bucket/lake/\nquarantine: rel/q\n"
        "spark: {spark.sql.shuffle.partitions: 8, spark.x: true}\n"
    )
    monkeypatch.setenv("DATA", "/srv/data")
    monkeypatch.chdir(tmp_path)
    env = load_from(tmp_path, load_env, "x")
    assert env.landing == "/srv/data/landing"
    assert env.lake == "s3://bucket/lake"
    assert env.quarantine == str(tmp_path / "rel" / "q")
    assert env.spark == {"spark.sql.shuffle.partitions": "8", "spark.x": "true"}
    assert tables.silver("m", "orders").path(env) == "s3://bucket/lake/silver/m/orders"


def test_env_unset_variable_without_default(tmp_path, monkeypatch):
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "x.yaml").write_text(
        "profile: local\nlanding: ${NOPE_NOT_SET}\nlake: /l\nquarantine: /q\n"
    )
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match="NOPE_NOT_SET is not set and has no default"):
        load_from(tmp_path, load_env, "x")


def test_env_bad_profile(tmp_path):
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "x.yaml").write_text("profile: laptop\nlanding: /a\nlake: /l\nquarantine: /q\n")
    with pytest.raises(
        ConfigError,
        match=r"x\.yaml is not a valid environment:\n  - profile: Input should be 'local' or 'emr'",
    ):
        load_from(tmp_path, load_env, "x")


DEBEZIUM_TABLE = """
tables:
  orders:
    format: jsonl
    landing: shop_db_cdc/orders
    primary_key: [id]
    ordering: [_cdc_lsn]
    drift: {drift}
    cdc: {{format: {format}}}
    columns:
      - {{name: id, type: bigint}}
      - {{name: amount, type: "decimal(12,2)"}}
"""


def test_a_debezium_table_orders_by_the_log_position_and_types_its_rows_in_silver(tmp_path):
    text = DEBEZIUM_TABLE.format(drift="rescue", format="debezium")
    table = load_from(write_source(tmp_path, "cdc", text), load_source, "cdc").tables["orders"]
    assert table.ordering == ["_cdc_lsn"]  # from the envelope: not a declared column, and no `op` needed
    bronze = table.bronze_contract()  # the envelope as delivered, whatever the table's drift policy
    assert (bronze.columns, bronze.drift) == (None, "evolve")
    assert table.columns is not None
    assert table.bronze_contract() is not table


def test_only_a_debezium_table_may_order_by_envelope_columns(tmp_path):
    text = DEBEZIUM_TABLE.format(drift="evolve", format="dms")
    with pytest.raises(ConfigError, match="ordering names _cdc_lsn, which is not in columns: id, amount"):
        load_from(write_source(tmp_path, "cdc", text), load_source, "cdc")


def test_repo_cdc_source_of_the_shop_database():
    spec = load_source("shop_db_cdc")
    assert set(spec.tables) == {"orders", "order_lines", "customers"}
    for table in spec.tables.values():
        assert table.cdc is not None
        assert (table.format, table.cdc.format, table.ordering) == ("jsonl", "debezium", ["_cdc_lsn"])
    assert spec.tables["customers"].pii == ["email"]
