"""Run leases (lake/run_lock.py) on a local lake: taken, refused, taken over, renewed through a store's hiccups."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from northstar.config import EnvConfig
from northstar.lake import run_lock
from northstar.lake.run_lock import FileLeaseStore, HeldLease, Lease, RunInProgress

KEY = "test.bronze.marketplace.orders"


def local_env(tmp_path, **extra) -> EnvConfig:
    return EnvConfig(
        name="test",
        profile="local",
        landing=str(tmp_path / "landing"),
        lake=str(tmp_path / "lake"),
        quarantine=str(tmp_path / "quarantine"),
        **extra,
    )


def test_the_file_store_replaces_only_what_it_expects(tmp_path):
    store = FileLeaseStore(tmp_path)
    first = Lease("run-a", 100.0)
    assert store.replace(KEY, first, expected=None)
    assert not store.replace(KEY, Lease("run-b", 200.0), expected=None)  # one is there already
    assert not store.replace(KEY, Lease("run-b", 200.0), expected=Lease("run-a", 99.0))
    assert store.replace(KEY, Lease("run-b", 200.0), expected=first)
    assert store.read(KEY) == Lease("run-b", 200.0)


def test_a_live_lease_refuses_a_second_run_with_one_line(tmp_path):
    env = local_env(tmp_path)
    with run_lock.held(env, "bronze", "marketplace", "orders", "run-a") as lease:
        assert lease is not None
        with pytest.raises(RunInProgress) as refused:
            run_lock.held(env, "bronze", "marketplace", "orders", "run-b").__enter__()
        # another layer of the same table has its own lease
        with run_lock.held(env, "silver", "marketplace", "orders", "run-c") as other:
            assert other is not None
    assert refused.value.report() == "another run of marketplace.orders is in progress (run id run-a)"
    assert refused.value.exit_code == 4
    # once run-a ended, the next run takes the released lease, no takeover noted
    with run_lock.held(env, "bronze", "marketplace", "orders", "run-d") as lease:
        assert lease is not None
        assert lease.taken_over_from is None


def test_the_look_before_spark_refuses_only_a_live_lease(tmp_path):
    env = local_env(tmp_path)
    run_lock.refuse_if_held(env, "bronze", "marketplace", "orders")  # none yet
    store = run_lock.store_for(env)
    assert store is not None
    key = run_lock.lease_key(env, "bronze", "marketplace", "orders")
    store.replace(key, Lease("run-a", time.time() + 60), expected=None)
    with pytest.raises(
        RunInProgress, match=r"^another run of marketplace.orders is in progress \(run id run-a\)$"
    ):
        run_lock.refuse_if_held(env, "bronze", "marketplace", "orders")
    run_lock.refuse_if_held(env, "silver", "marketplace", "orders")
    store.replace(key, Lease("run-a", time.time() - 1), expected=store.read(key))  # expired: not refused
    run_lock.refuse_if_held(env, "bronze", "marketplace", "orders")


def test_an_expired_lease_is_taken_over_and_said_so(tmp_path, caplog):
    env = local_env(tmp_path)
    store = run_lock.store_for(env)
    assert store is not None
    key = run_lock.lease_key(env, "bronze", "marketplace", "orders")
    store.replace(key, Lease("run-killed", time.time() - 1), expected=None)
    with (
        caplog.at_level(logging.WARNING, logger="northstar.lake.run_lock"),
        run_lock.held(env, "bronze", "marketplace", "orders", "run-b") as lease,
    ):
        assert lease is not None
        assert lease.taken_over_from == "run-killed"
    assert "took over the expired lease of run run-killed" in caplog.text
    released = store.read(key)
    assert released is not None
    assert (released.run_id, released.released) == ("run-b", True)


class FlakyStore(FileLeaseStore):
    """A file store whose next `fail` writes raise (a throttled or unreachable DynamoDB), or store and then raise
    (the answer lost after the write)."""

    def __init__(self, folder, fail: int = 0, lose_answer: bool = False) -> None:
        super().__init__(folder)
        self.fail, self.lose_answer = fail, lose_answer

    def replace(self, key: str, new: Lease, expected: Lease | None) -> bool:
        if self.fail:
            self.fail -= 1
            if self.lose_answer:
                super().replace(key, new, expected)
            raise ConnectionError("store did not answer")
        return super().replace(key, new, expected)


def test_a_renewal_that_fails_once_is_tried_again_and_the_lease_kept(tmp_path, caplog):
    store = FlakyStore(tmp_path)
    lease = run_lock.acquire(store, KEY, "marketplace.orders", "run-a", ttl=0.3)
    taken = lease.current
    store.fail = 1
    with caplog.at_level(logging.WARNING, logger="northstar.lake.run_lock"):
        renewer = threading.Thread(target=lease.renew_until_stopped)
        renewer.start()  # renews every 0.1 s: the first try fails, the next ones succeed
        time.sleep(0.5)
        lease.stop.set()
        renewer.join()
    assert "could not renew its lease" in caplog.text
    assert not lease.lost
    assert store.read(KEY) == lease.current
    assert lease.current.expires_at > taken.expires_at  # renewed after the failure


def test_a_renewal_stored_though_its_answer_was_lost_is_still_ours(tmp_path):
    store = FlakyStore(tmp_path, fail=1, lose_answer=True)
    lease: HeldLease = run_lock.acquire(FileLeaseStore(tmp_path), KEY, "marketplace.orders", "run-a", ttl=60)
    lease.store = store
    with pytest.raises(ConnectionError):
        lease.renew()  # stored, but this run does not know it
    assert lease.renew()  # the compare fails on the stale expiry; the stored lease is still run-a's
    assert not lease.lost
    assert store.read(KEY) == lease.current


def test_a_renewal_finding_another_run_loses_the_lease(tmp_path):
    store = FileLeaseStore(tmp_path)
    lease = run_lock.acquire(store, KEY, "marketplace.orders", "run-a", ttl=60)
    store.replace(KEY, Lease("run-b", time.time() + 60), expected=lease.current)
    assert not lease.renew()


def test_a_release_the_store_refuses_does_not_fail_the_run(tmp_path, monkeypatch, caplog):
    env = local_env(tmp_path)
    monkeypatch.setattr(HeldLease, "release", lambda self: (_ for _ in ()).throw(ConnectionError("down")))
    with caplog.at_level(logging.WARNING, logger="northstar.lake.run_lock"):
        with run_lock.held(env, "bronze", "marketplace", "orders", "run-a"):
            pass
    assert "could not release its lease" in caplog.text
