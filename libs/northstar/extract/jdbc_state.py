"""Where a JDBC table's extraction stands, kept durably next to its landing data.

`<table landing>/_state/jdbc-<sequence>.json` holds the watermark (the end of the last window read in full)
and, while a window is being read, the keyset position after the last page that landed. Every commit is a
new file with the next sequence number, written under a temporary name and renamed, so a crash leaves
either the old state or the new one, on a local disk and on S3 alike; the newest readable file wins.
Bronze never reads these: names starting with `_` are not data.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession

STATE_FOLDER = "_state"
STATE_FILE = re.compile(r"^jdbc-(\d{8})\.json$")
KEEP = 20  # older state files beyond this many are removed


@dataclass
class Progress:
    """A window being read: where the next page starts."""

    mode: str  # incremental | full_refresh
    start: str | None
    end: str
    phase: str
    after: list[str] | None
    batch: int  # pages landed so far in this window


@dataclass
class ExtractState:
    """A table's extraction state: the watermark and any window in progress."""

    watermark: str | None = None
    in_progress: Progress | None = None
    sequence: int = 0
    updated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def watermark_time(self) -> datetime | None:
        return datetime.fromisoformat(self.watermark) if self.watermark else None


def _jvm(spark: SparkSession) -> Any:
    jvm = spark._jvm
    assert jvm is not None  # a live session always has its JVM
    return jvm


def hadoop_path(spark: SparkSession, *parts: Any) -> Any:
    """A Hadoop `Path` of `parts` (a string, or a parent Path and a child name)."""
    return _jvm(spark).org.apache.hadoop.fs.Path(*parts)


def hadoop_fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """The Hadoop FileSystem holding `path`, and `path` as a Hadoop Path."""
    jpath = hadoop_path(spark, path)
    return jpath.getFileSystem(spark._jsc.hadoopConfiguration()), jpath


def load(spark: SparkSession, landing_folder: str) -> ExtractState:
    """The newest readable state, or an empty one (never extracted)."""
    fs, folder = hadoop_fs(spark, f"{landing_folder}/{STATE_FOLDER}")
    if not fs.exists(folder):
        return ExtractState()
    found = sorted(
        (int(m.group(1)), s.getPath())
        for s in fs.listStatus(folder)
        if (m := STATE_FILE.match(s.getPath().getName()))
    )
    for sequence, path in reversed(found):
        try:
            data = json.loads(_read(spark, fs, path))
            progress = data.pop("in_progress", None)
            data["sequence"] = sequence
            return ExtractState(**data, in_progress=Progress(**progress) if progress else None)
        except (ValueError, TypeError):
            continue  # a torn write cannot happen with rename, but never trust one
    return ExtractState()


def commit(spark: SparkSession, landing_folder: str, state: ExtractState) -> ExtractState:
    """Write `state` as the next sequence and return it; only called after the data it describes landed."""
    state.sequence += 1
    state.updated_at = datetime.now(UTC).isoformat()
    fs, folder = hadoop_fs(spark, f"{landing_folder}/{STATE_FOLDER}")
    fs.mkdirs(folder)
    payload = asdict(state)
    payload.pop("sequence")
    final = hadoop_path(spark, folder, f"jdbc-{state.sequence:08d}.json")
    temporary = hadoop_path(spark, folder, f".jdbc-{uuid.uuid4().hex}.tmp")
    stream = fs.create(temporary, True)
    try:
        stream.write(bytearray(json.dumps(payload, indent=1, sort_keys=True).encode()))
    finally:
        stream.close()
    if not fs.rename(temporary, final):
        fs.delete(temporary, False)
        raise RuntimeError(
            f"could not commit extraction state {final.toString()} (another extraction of this table "
            "running at the same time?); nothing was lost, run again"
        )
    for status in fs.listStatus(folder):
        match = STATE_FILE.match(status.getPath().getName())
        if match and int(match.group(1)) <= state.sequence - KEEP:
            fs.delete(status.getPath(), False)
    return state


def _read(spark: SparkSession, fs: Any, path: Any) -> str:
    stream = fs.open(path)
    try:
        return _jvm(spark).org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
