"""The real Debezium PostgreSQL connector, run by scripts/debezium/CaptureToFiles.java (embedded engine, no Kafka),
for tests: where its jars are, whether Java and the jars are there, and one capture run -> its counts.

The jars are fetched by scripts/setup.sh into .jars-debezium/ (or $NORTHSTAR_DEBEZIUM_JARS_DIR), apart from
Spark's .jars/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.envs import REPO
from tests.helpers.postgres_server import ADMIN, PgServer

CAPTURE = REPO / "scripts" / "debezium" / "CaptureToFiles.java"
CONNECTOR_JAR = "debezium-connector-postgres-3.6.1.Final.jar"


def jars_dir() -> Path:
    return Path(os.environ.get("NORTHSTAR_DEBEZIUM_JARS_DIR", REPO / ".jars-debezium"))


def missing_tools() -> str | None:
    """None when Java 17+ and the Debezium jars are there, else one line saying what is missing and what to run."""
    java = shutil.which("java")
    if java is None:
        return "no java on PATH (Java 17 is required); run make setup (scripts/setup.sh) on a machine with Java 17"
    if not (jars_dir() / CONNECTOR_JAR).is_file():
        return f"the Debezium jars are missing from {jars_dir()} ({CONNECTOR_JAR}); run make setup (scripts/setup.sh)"
    return None


@dataclass(frozen=True)
class Capture:
    """One Debezium deployment: a database, its slot, publication and offsets file, writing under `out`."""

    properties: Path
    out: Path

    @classmethod
    def write(
        cls,
        folder: Path,
        out: Path,
        server: PgServer,
        database: str,
        tables: list[str],
    ) -> Capture:
        """The properties file of a capture of `tables` (schema.table) in `database`; slot and publication are
        named after the database, so concurrent test databases never share one."""
        folder.mkdir(parents=True, exist_ok=True)
        settings = {
            "database.hostname": server.host,
            "database.port": server.port,
            "database.user": ADMIN,
            "database.password": server.admin_password,
            "database.dbname": database,
            "topic.prefix": "shop",
            "table.include.list": ",".join(tables),
            "slot.name": slot_name(database),
            "publication.name": f"{database}_pub",
            "offset.storage.file.filename": folder / "offsets.dat",
        }
        path = folder / "capture.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return cls(path, out)

    def run(self, *, expect: int = 0, idle_seconds: int = 3, max_seconds: int = 240) -> dict:
        """Run the capture until it wrote `expect` events (or, with 0, was idle `idle_seconds` while streaming);
        its counts: events, tombstones, files, seconds."""
        command = [
            "java",
            "-cp",
            f"{jars_dir()}/*",
            str(CAPTURE),
            str(self.properties),
            str(self.out),
            "--idle-seconds",
            str(idle_seconds),
            "--expect",
            str(expect),
            "--max-seconds",
            str(max_seconds),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=max_seconds + 120, check=False)
        if done.returncode != 0:
            raise AssertionError(
                f"the capture exited {done.returncode}:\n{done.stdout}\n{done.stderr[-4000:]}"
            )
        return json.loads(done.stdout.strip().splitlines()[-1])


def slot_name(database: str) -> str:
    return f"{database}_slot"


def drop_slot(server: PgServer, database: str) -> None:
    """Drop the capture's replication slot (it would keep WAL, and DROP DATABASE refuses a database with one)."""
    with server.connect(database) as conn:
        conn.execute(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = %s",
            [slot_name(database)],
        )
