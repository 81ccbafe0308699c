"""Run leases: at most one run of a layer of one source table at a time (bronze of marketplace.orders, ...).

A run takes its table's lease before it reads anything and gives it back when it ends, also on failure. A second
run that finds a live lease changes nothing and stops with `RunInProgress`, one line naming the holder's run id.
A lease expires `run_lease_seconds` (conf/env) after its last renewal; a thread renews it every third of that,
so a run killed with kill -9 blocks its table for at most that long: the next run takes the expired lease over
and says so (a warning, and `lease_taken_over` in its ledger details).

Where the lease lives: a lake on a local path keeps one JSON file per lease under `<lake>/_ops/run_leases/`, each
read-check-write done under an exclusive `flock`; a lake on S3 keeps one item per lease in the env's DynamoDB
commit-coordinator table (`delta_commit_coordinator:`), each change a conditional PutItem. A lake on S3 without
that section has no lease store: runs go unprotected, with a warning.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.exceptions import ClientError

from northstar.config import EnvConfig
from northstar.config.env import CommitCoordinatorSpec
from northstar.errors import EXIT_BUSY, NorthstarError

log = logging.getLogger(__name__)
LEASE_ITEM_PREFIX = "northstar-run-lease/"  # DynamoDB: never a Delta table's id (those are UUIDs)


class RunInProgress(NorthstarError):
    """Another run holds the table's lease; this run changed nothing."""

    exit_code = EXIT_BUSY
    label = ""


@dataclass(frozen=True)
class Lease:
    """Who holds a lease and until when (epoch seconds); `released` once its run ended."""

    run_id: str
    expires_at: float
    released: bool = False

    def live(self, now: float) -> bool:
        return not self.released and self.expires_at > now


class LeaseStore(Protocol):
    """Compare-and-set storage of leases by key."""

    def read(self, key: str) -> Lease | None: ...

    def replace(self, key: str, new: Lease, expected: Lease | None) -> bool:
        """Store `new` if the stored lease is still `expected` (None: none stored); whether it did."""
        ...


class FileLeaseStore:
    """One JSON file per lease; every compare-and-set under an exclusive flock of `<key>.lock`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def read(self, key: str) -> Lease | None:
        path = self.folder / f"{key}.json"
        return Lease(**json.loads(path.read_text())) if path.exists() else None

    def replace(self, key: str, new: Lease, expected: Lease | None) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"{key}.lock", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
            if self.read(key) != expected:
                return False
            staged = self.folder / f"{key}.{os.getpid()}.tmp"
            staged.write_text(json.dumps(asdict(new)))
            staged.replace(self.folder / f"{key}.json")
            return True


class DynamoLeaseStore:
    """One item per lease in the commit coordinator's DynamoDB table; each change a conditional PutItem."""

    def __init__(self, spec: CommitCoordinatorSpec) -> None:
        self.table = spec.dynamodb_table
        self.client = boto3.client("dynamodb", region_name=spec.region, endpoint_url=spec.dynamodb_endpoint)

    def read(self, key: str) -> Lease | None:
        found = self.client.get_item(
            TableName=self.table, Key={"tableId": {"S": LEASE_ITEM_PREFIX + key}}, ConsistentRead=True
        ).get("Item")
        return None if found is None else lease_from_item(found)

    def replace(self, key: str, new: Lease, expected: Lease | None) -> bool:
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(tableId)"}
        if expected is not None:
            condition = {
                "ConditionExpression": "run_id = :run AND expires_at = :expires",
                "ExpressionAttributeValues": {
                    ":run": {"S": expected.run_id},
                    ":expires": {"N": repr(expected.expires_at)},
                },
            }
        item = {
            "tableId": {"S": LEASE_ITEM_PREFIX + key},
            "run_id": {"S": new.run_id},
            "expires_at": {"N": repr(new.expires_at)},
            "released": {"BOOL": new.released},
        }
        try:
            self.client.put_item(TableName=self.table, Item=item, **condition)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


def lease_from_item(item: dict[str, Any]) -> Lease:
    return Lease(item["run_id"]["S"], float(item["expires_at"]["N"]), bool(item["released"]["BOOL"]))


def store_for(env: EnvConfig) -> LeaseStore | None:
    """Where the env's leases live (module docstring); None when it has no place for them."""
    if "://" not in env.lake or env.lake.startswith("file:"):
        return FileLeaseStore(Path(env.lake.removeprefix("file:")) / "_ops" / "run_leases")
    if env.delta_commit_coordinator is not None:
        return DynamoLeaseStore(env.delta_commit_coordinator)
    return None


def lease_key(env: EnvConfig, layer: str, source: str, table: str) -> str:
    return f"{env.name}.{layer}.{source}.{table}"


@dataclass
class HeldLease:
    """A lease this process holds, renewed by a thread until released."""

    store: LeaseStore
    key: str
    what: str
    ttl: float
    current: Lease
    taken_over_from: str | None = None
    lost: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def renew_until_stopped(self) -> None:
        while not self.stop.wait(self.ttl / 3):
            try:
                kept = self.renew()
            except Exception as err:  # no answer (throttled, network): two more tries before it expires
                log.warning(
                    "%s: run %s could not renew its lease, trying again in %.0f s: %s",
                    self.what,
                    self.current.run_id,
                    self.ttl / 3,
                    err,
                )
                continue
            if not kept:
                self.lost = True
                log.error("%s: run %s lost its lease to another run", self.what, self.current.run_id)
                return

    def renew(self) -> bool:
        """Push the expiry out by `ttl`; False when another run holds the lease now."""
        renewed = Lease(self.current.run_id, time.time() + self.ttl)
        if self.store.replace(self.key, renewed, expected=self.current):
            self.current = renewed
            return True
        stored = self.store.read(self.key)
        if stored is not None and stored.run_id == self.current.run_id and not stored.released:
            self.current = stored  # an earlier renewal was stored though its answer was lost: still ours
            return True
        return False

    def release(self) -> None:
        """Mark the lease released (the renewing thread must have stopped)."""
        if not self.lost:
            done = Lease(self.current.run_id, time.time(), released=True)
            self.lost = not self.store.replace(self.key, done, expected=self.current)


def in_progress(what: str, holder: str) -> RunInProgress:
    return RunInProgress(f"another run of {what} is in progress (run id {holder})")


def refuse_if_held(env: EnvConfig, layer: str, source: str, table: str) -> None:
    """Raise RunInProgress if another run holds the lease of `layer` of `source`.`table` right now.

    Only a look, for the CLI before it starts Spark: a run refused here prints its one line alone, without the
    JVM's start-up lines before it. Taking the lease (`held`) still decides, so two runs that both look while
    it is free still race for it there."""
    store = store_for(env)
    found = None if store is None else store.read(lease_key(env, layer, source, table))
    if found is not None and found.live(time.time()):
        raise in_progress(f"{source}.{table}", found.run_id)


def acquire(store: LeaseStore, key: str, what: str, run_id: str, ttl: float) -> HeldLease:
    """Take the lease for `run_id`, or raise RunInProgress naming the run that holds it."""
    found = store.read(key)
    if found is not None and found.live(time.time()):
        raise in_progress(what, found.run_id)
    mine = Lease(run_id, time.time() + ttl)
    if not store.replace(key, mine, expected=found):  # another run took it between our read and write
        holder = store.read(key)
        raise in_progress(what, holder.run_id if holder else "?")
    held = HeldLease(store, key, what, ttl, mine)
    if found is not None and not found.released:
        held.taken_over_from = found.run_id
        log.warning(
            "%s: run %s took over the expired lease of run %s, which ended without releasing it (killed?)",
            what,
            run_id,
            found.run_id,
        )
    return held


@contextmanager
def held(env: EnvConfig, layer: str, source: str, table: str, run_id: str) -> Iterator[HeldLease | None]:
    """Hold the lease of `layer` of `source`.`table` for the body (None: the env has no lease store)."""
    what = f"{source}.{table}"
    store = store_for(env)
    if store is None:
        log.warning(
            "%s: no run lease (lake on S3, no delta_commit_coordinator): concurrent runs unprotected", what
        )
        yield None
        return
    lease = acquire(store, lease_key(env, layer, source, table), what, run_id, env.run_lease_seconds)
    renewer = threading.Thread(target=lease.renew_until_stopped, name=f"lease-{what}", daemon=True)
    renewer.start()
    try:
        yield lease
    finally:
        lease.stop.set()
        renewer.join()
        try:
            lease.release()
        except Exception as err:  # the run's own outcome stands; the lease expires by itself
            log.warning(
                "%s: run %s could not release its lease (it expires within %.0f s): %s",
                what,
                run_id,
                lease.ttl,
                err,
            )
        if lease.lost:
            log.error(
                "%s: run %s did not hold its lease to the end: another run may have overlapped", what, run_id
            )
