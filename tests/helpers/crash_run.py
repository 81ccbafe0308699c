"""A pipeline run killed with SIGKILL at a commit boundary, in a subprocess with its own JVM (crash tests).

`python -m tests.helpers.crash_run LANDING LAKE QUARANTINE KILL_POINT` runs bronze then silver of
marketplace.orders and kills itself (`os.kill(os.getpid(), SIGKILL)`: no exception handler, no `finally`, no
ledger row for the failure) just before or after one commit. Nothing in northstar knows about it: the kill is
injected by wrapping the functions that commit (Delta's DataFrameWriter.save for appends and overwrites,
DeltaMergeBuilder.execute for MERGE, northstar.ledger.append for the ledger row) from this script only.
The JVM exits with the Python process (PySpark's gateway stops when its stdin closes).

`killed_run(...)` starts it from a test and waits until it is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delta.tables import DeltaMergeBuilder
from pyspark.sql.readwriter import DataFrameWriter

from northstar import ledger
from northstar.config import load_source
from northstar.lake import tables
from northstar.silver import pipeline
from northstar.spark import get_spark
from tests.helpers.envs import REPO, make_env

SOURCE, TABLE = "marketplace", "orders"
# the killed run's lease on its table expires this long after its last renewal; the test waits that out
LEASE_SECONDS = 3.0


@dataclass(frozen=True)
class KillPoint:
    """Kill the run `when` ("before" / "after") the first commit of `what` in `layer`'s step."""

    layer: str
    when: str
    what: str  # "bronze", "quarantine", "landing_log": a table written by save(); "merge"; "ledger"

    @property
    def name(self) -> str:
        return f"{self.layer}: {self.when} {self.what}"


KILL_POINTS = {
    "bronze-before-data-commit": KillPoint("bronze", "before", "bronze"),
    "bronze-after-data-commit": KillPoint("bronze", "after", "bronze"),
    "bronze-after-quarantine-before-landing-log": KillPoint("bronze", "before", "landing_log"),
    "bronze-after-landing-log-before-ledger-row": KillPoint("bronze", "after", "landing_log"),
    "bronze-after-ledger-row": KillPoint("bronze", "after", "ledger"),
    "silver-before-data-commit": KillPoint("silver", "before", "merge"),
    "silver-after-data-commit": KillPoint("silver", "after", "merge"),
    "silver-before-ledger-row": KillPoint("silver", "before", "ledger"),
    "silver-after-ledger-row": KillPoint("silver", "after", "ledger"),
}


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _wrap(owner: Any, name: str, point: KillPoint, applies: Callable[..., bool]) -> None:
    """Replace owner.name by a function that kills the process before/after the call when `applies(*args)`."""
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        hit = applies(*args, **kwargs)
        if hit and point.when == "before":
            _die()
        result = original(*args, **kwargs)
        if hit and point.when == "after":
            _die()
        return result

    setattr(owner, name, wrapped)


def arm(point: KillPoint, paths: dict[str, str], layer_now: Callable[[], str]) -> None:
    """Install the kill for `point`; `layer_now()` says which step (bronze / silver) is running."""

    in_layer = lambda: layer_now() == point.layer  # noqa: E731
    if point.what == "merge":
        _wrap(DeltaMergeBuilder, "execute", point, lambda *a, **k: in_layer())
    elif point.what == "ledger":
        _wrap(ledger, "append", point, lambda spark, env, entry, *a, **k: entry.layer == point.layer)
    else:
        target = paths[point.what].rstrip("/")

        def saves_target(writer: Any, path: str | None = None, *a: Any, **k: Any) -> bool:
            return in_layer() and path is not None and path.rstrip("/") == target

        _wrap(DataFrameWriter, "save", point, saves_target)


def main(landing: str, lake: str, quarantine: str, kill_point: str) -> None:

    env = make_env(Path(lake).parent).model_copy(
        update={
            "landing": landing,
            "lake": lake,
            "quarantine": quarantine,
            "run_lease_seconds": LEASE_SECONDS,
        }
    )
    paths = {
        "bronze": tables.bronze(SOURCE, TABLE).path(env),
        "quarantine": tables.quarantine(SOURCE, TABLE).path(env),
        "landing_log": tables.LANDING_FILES.path(env),
    }
    spark = get_spark(env, app_name=f"crash-{kill_point}")
    source = load_source(SOURCE)
    step = {"layer": ""}
    arm(KILL_POINTS[kill_point], paths, lambda: step["layer"])
    for layer in ("bronze", "silver"):
        step["layer"] = layer
        pipeline.run_source(spark, env, source, tables=[TABLE], layers=(layer,))
    print("ran to the end: the kill point was never reached", flush=True)
    sys.exit(3)


@dataclass(frozen=True)
class Outcome:
    returncode: int
    seconds: float
    output: str


def killed_run(landing: Path, lake: Path, quarantine: Path, kill_point: str, timeout: float = 600) -> Outcome:
    """Run the script in a subprocess (its own session: its JVM is its child) and wait until every process of
    that session has exited."""
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.helpers.crash_run",
            str(landing),
            str(lake),
            str(quarantine),
            kill_point,
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        _reap_group(process.pid)
    return Outcome(process.returncode, time.monotonic() - started, output)


def _reap_group(group: int, wait: float = 30) -> None:
    """Wait for the subprocess's process group (its JVM) to exit; SIGKILL it when it outstays `wait`."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        return


if __name__ == "__main__":
    main(*sys.argv[1:5])
