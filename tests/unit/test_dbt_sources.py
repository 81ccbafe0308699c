"""dbt/models/sources.yml is generated from the gold metadata: regenerating gives the committed file (so it cannot
go stale), and what it says (database, freshness, key tests, relationships) follows gold/tables.py."""

from __future__ import annotations

import yaml

from northstar.cli import main
from northstar.config import load_env
from northstar.gold.tables import GOLD
from northstar.warehouse import dbt_sources
from tests.helpers.envs import REPO

COMMITTED = REPO / "dbt" / "models" / "sources.yml"


def test_the_committed_sources_yml_is_what_northstar_dbt_sources_writes(tmp_path, capsys):
    out = tmp_path / "sources.yml"
    assert main(["dbt-sources", "--env", "local", "--out", str(out), "--conf-dir", str(REPO / "conf")]) == 0
    assert "9 tables of NORTHSTAR.ANALYTICS" in capsys.readouterr().out
    assert out.read_text() == COMMITTED.read_text(), (
        "dbt/models/sources.yml is stale: run `northstar dbt-sources` and commit it"
    )


def test_sources_follow_the_gold_metadata():
    spec = load_env("local").snowflake
    assert spec is not None
    doc = yaml.safe_load(dbt_sources.render(spec))
    (source,) = doc["sources"]
    assert (source["name"], source["database"], source["schema"]) == ("northstar", "NORTHSTAR", "ANALYTICS")
    tables = {t["name"]: t for t in source["tables"]}
    assert list(tables) == list(GOLD)
    for name, table in tables.items():
        gold = GOLD[name]
        assert table["description"] == gold.description
        config = table["config"]
        assert config["loaded_at_field"] == "_loaded_at"
        assert config["freshness"]["warn_after"] == {"count": 15, "period": "minute"}
        assert config["freshness"]["error_after"] == {"count": 30, "period": "minute"}
        assert config["meta"]["gold_key"] == list(gold.key)
        columns = {c["name"]: c for c in table["columns"]}
        assert {c: d["description"] for c, d in columns.items()} == gold.column_descriptions(warehouse=True)
        for key in gold.key:
            assert "not_null" in columns[key]["data_tests"]
        table_tests = table.get("data_tests", [])
        if len(gold.key) > 1:
            assert {"northstar_unique_key": {"arguments": {"columns": list(gold.key)}}} in table_tests
        else:
            assert "unique" in columns[gold.key[0]]["data_tests"]
    # facts -> the orders they belong to, and the customer dimension by token (no fact carries customer_sk)
    lines = tables["fact_order_lines"]["data_tests"][1]["northstar_relationships_key"]
    assert lines["arguments"] == {
        "columns": ["source_system", "order_id"],
        "to": "source('northstar', 'fact_orders')",
        "fields": ["source_system", "order_id"],
    }
    token = {c["name"]: c for c in tables["fact_orders"]["columns"]}["customer_token"]["data_tests"]
    assert token == [
        {
            "relationships": {
                "arguments": {"to": "source('northstar', 'dim_customer')", "field": "customer_token"},
                "config": {"severity": "error"},
            }
        }
    ]
    assert not any(
        "customer_sk" in str(t.get("data_tests")) for n, t in tables.items() if n != "dim_customer"
    )
