"""Batch tags in Delta commit info (lake/commits.py) and the ledger row kept in a commit (LedgerEntry payloads)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

from northstar.lake import commits
from northstar.lake.commits import Tag
from northstar.ledger import LedgerEntry


def test_a_tag_reads_back_from_its_text():
    tag = Tag(
        job="silver", table="silver.marketplace_orders", run_id="silver-1", window=(3, 7), full_refresh=True
    )
    assert Tag.parse(tag.text()) == tag


def test_user_metadata_that_is_not_a_northstar_tag_is_no_tag():
    for text in (None, "", "hand-written note", "[1, 2]", '{"job": "silver"}', '{"northstar": 1, "job": 3}'):
        assert Tag.parse(text) is None, text


def test_the_same_batch_whatever_the_run_id_but_not_another_window_or_mode():
    tag = Tag(job="silver", table="silver.marketplace_orders", run_id="a", window=(3, 7))
    assert tag.same_batch(Tag(job="silver", table="silver.marketplace_orders", run_id="b", window=(3, 7)))
    assert not tag.same_batch(Tag(job="silver", table="silver.marketplace_orders", run_id="a", window=(3, 8)))
    assert not tag.same_batch(
        Tag(job="silver", table="silver.marketplace_orders", run_id="a", window=(3, 7), full_refresh=True)
    )
    assert not tag.same_batch(
        Tag(job="silver", table="silver.marketplace_refunds", run_id="a", window=(3, 7))
    )
    assert not tag.same_batch(None)


class _Conf:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value

    def unset(self, key: str) -> None:
        self.values.pop(key, None)


class _Session:
    def __init__(self, values: dict[str, str]) -> None:
        self.conf = _Conf(values)


def test_tagging_sets_the_conf_for_the_body_only_and_restores_it_after_an_error():
    tag = Tag(job="silver", table="silver.t", run_id="r", window=(0, 1))
    spark = _Session({})
    try:
        with commits.tagging(spark, tag):  # type: ignore[arg-type]
            assert spark.conf.values[commits.USER_METADATA_CONF] == tag.text()
            raise RuntimeError("the MERGE failed")
    except RuntimeError:
        pass
    assert commits.USER_METADATA_CONF not in spark.conf.values
    earlier = _Session({commits.USER_METADATA_CONF: "someone else's"})
    with commits.tagging(earlier, tag):  # type: ignore[arg-type]
        pass
    assert earlier.conf.values[commits.USER_METADATA_CONF] == "someone else's"
    with commits.tagging(spark, None):  # type: ignore[arg-type]
        assert commits.USER_METADATA_CONF not in spark.conf.values


def test_tagged_merges_of_one_process_take_turns():
    spark = _Session({})
    seen: list[str | None] = []
    inside = threading.Event()

    def other() -> None:
        inside.wait()
        with commits.tagging(spark, Tag(job="silver", table="b", run_id="b")):  # type: ignore[arg-type]
            seen.append(spark.conf.get(commits.USER_METADATA_CONF))

    thread = threading.Thread(target=other)
    thread.start()
    with commits.tagging(spark, Tag(job="silver", table="a", run_id="a")):  # type: ignore[arg-type]
        inside.set()
        thread.join(timeout=0.2)  # blocked on the lock while this tag is set
        assert thread.is_alive()
        assert Tag.parse(spark.conf.get(commits.USER_METADATA_CONF)).table == "a"  # type: ignore[union-attr]
    thread.join()
    assert Tag.parse(seen[0]).table == "b"  # type: ignore[union-attr]


def test_a_ledger_row_survives_its_payload():
    entry = LedgerEntry(
        run_id="bronze-1",
        job="bronze",
        env="test",
        source="marketplace",
        table_name="orders",
        layer="bronze",
        window_start=datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
        records_read=10,
        records_written=8,
        records_quarantined=2,
        details={"files": 2},
        delta_versions={"bronze.marketplace_orders": 4},
        ended_at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    )
    assert LedgerEntry.from_payload(json.loads(json.dumps(entry.as_payload()))) == entry
