"""Header mappings (`rename`) and derived columns (`derive`) on tiny DataFrames (chispa)."""

from pathlib import Path

import pytest
from chispa import assert_df_equality

from northstar.config import ConfigError, load_source
from northstar.transforms.columns import ColumnNameError, derive_columns, mapped_names, rename_columns
from tests.helpers.conf import load_from

ACME = {"Shipment #": "shipment_id", "Status Code": "status", "Weight (kg)": "weight_kg"}


def test_headers_are_mapped_ignoring_case_spaces_and_byte_order_mark():
    delivered = ["\ufeffShipment #", " STATUS CODE ", "weight (KG)", "carrier", "Dock Door", "order-ref"]
    assert mapped_names(delivered, ACME) == [
        "shipment_id",
        "status",
        "weight_kg",
        "carrier",  # a name Delta can store stays as it is
        "dock_door",  # one it cannot (spaces, brackets...) becomes snake_case
        "order-ref",
    ]


def test_two_headers_mapped_to_one_name_is_an_error_naming_both():
    with pytest.raises(ColumnNameError, match=r"'Status Code' and 'status' both become 'status'"):
        mapped_names(["Status Code", "status"], ACME)


def test_rename_columns_keeps_values_and_other_columns(spark):
    frame = spark.createDataFrame(
        [("S1", "shipped", "f1")], "`Shipment #` string, `Status Code` string, _f string"
    )
    expected = spark.createDataFrame(
        [("S1", "shipped", "f1")], "shipment_id string, status string, _f string"
    )
    assert_df_equality(rename_columns(frame, ["Shipment #", "Status Code"], ACME), expected)


def test_derive_reads_nested_paths_and_expressions(spark):
    events = spark.createDataFrame(
        [("evt_1", 10, ("ch_1", "charge")), ("evt_2", 11, (None, "balance"))],
        "id string, created bigint, data struct<id: string, object: string>",
    )
    out = derive_columns(
        events, {"object_id": "data.id", "object_type": "data.object", "day": "created div 10"}
    )
    expected = spark.createDataFrame(
        [
            ("evt_1", 10, ("ch_1", "charge"), "ch_1", "charge", 1),
            ("evt_2", 11, (None, "balance"), None, "balance", 1),
        ],
        "id string, created bigint, data struct<id: string, object: string>, object_id string, "
        "object_type string, day bigint",
    )
    assert_df_equality(out, expected, ignore_nullable=True)


def test_derive_of_a_path_missing_from_the_batch_is_null(spark):
    events = spark.createDataFrame([("evt_1",)], "id string")
    out = derive_columns(events, {"object_id": "data.object.id"})
    assert [tuple(r) for r in out.collect()] == [("evt_1", None)]


def write_source(tmp_path: Path, text: str) -> Path:
    (tmp_path / "sources").mkdir(exist_ok=True)
    (tmp_path / "sources" / "hooks.yaml").write_text(text)
    return tmp_path


KEYED_BY_DERIVED = """
tables:
  objects:
    format: jsonl
    landing: hooks
    primary_key: [object_id]
    ordering: [created, id]
    derive: {object_id: data.object.id}
    columns:
      - {name: id, type: string}
      - {name: created, type: bigint}
      - {name: data, type: struct}
"""


def test_keys_may_name_derived_columns(tmp_path):
    spec = load_from(write_source(tmp_path, KEYED_BY_DERIVED), load_source, "hooks")
    assert spec.tables["objects"].derive == {"object_id": "data.object.id"}


def test_key_neither_declared_nor_derived_is_reported(tmp_path):
    conf = write_source(
        tmp_path, KEYED_BY_DERIVED.replace("derive: {object_id: data.object.id}", "derive: {}")
    )
    with pytest.raises(
        ConfigError,
        match=r"primary_key names object_id, which is not in columns: id, created, data \(nor in derive\)",
    ):
        load_from(conf, load_source, "hooks")


def test_derive_may_not_overwrite_a_declared_column(tmp_path):
    conf = write_source(
        tmp_path, KEYED_BY_DERIVED.replace("{object_id: data.object.id}", "{object_id: x, id: y}")
    )
    with pytest.raises(ConfigError, match="derive would overwrite declared columns: id"):
        load_from(conf, load_source, "hooks")


def test_rename_targets_must_be_unique(tmp_path):
    text = KEYED_BY_DERIVED + '    rename: {"Event ID": id, "event id ": other}\n'
    with pytest.raises(ConfigError, match="mapped twice"):
        load_from(write_source(tmp_path, text), load_source, "hooks")
