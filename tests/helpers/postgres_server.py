"""The local PostgreSQL test server (scripts/postgres.sh): where it is, throw-away databases, its query log.

Every test that needs PostgreSQL gets it through `PgServer.from_env()` (the `pg` fixture), so the address
is decided in one place: 127.0.0.1:$NORTHSTAR_PG_PORT (default 54329), login northstar.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass

import psycopg

HOST = "127.0.0.1"
DEFAULT_PORT = 54329
ADMIN = "northstar"


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    admin_password: str

    @classmethod
    def from_env(cls) -> PgServer:
        return cls(
            HOST,
            int(os.environ.get("NORTHSTAR_PG_PORT", DEFAULT_PORT)),
            os.environ.get("NORTHSTAR_PG_PASSWORD", "northstar"),
        )

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname=database,
            user=ADMIN,
            password=self.admin_password,
            autocommit=True,
            connect_timeout=5,
        )

    def check_up(self) -> str | None:
        """None when the server answers, else what is wrong and how to fix it."""
        try:
            with self.connect() as conn:
                conn.execute("select 1")
            return None
        except psycopg.Error as err:
            return (
                f"PostgreSQL is not reachable on {self.host}:{self.port} as {ADMIN} ({str(err).strip()}); "
                "start it with scripts/postgres.sh (make test does this), or set NORTHSTAR_PG_PORT"
            )

    def create_database(self, prefix: str) -> str:
        """A fresh database whose statements are all logged with their plans and actual row counts."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with self.connect() as conn:
            conn.execute(f'create database "{name}"')
            for setting, value in (
                ("auto_explain.log_min_duration", "0"),
                ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_format", "json"),
            ):
                conn.execute(f'alter database "{name}" set {setting} = {value}')
        return name

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')

    def ensure_role(self, role: str, password: str) -> None:
        with self.connect() as conn:
            exists = conn.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone()
            verb = "alter" if exists else "create"
            conn.execute(f"{verb} role \"{role}\" login password '{password}'")

    def log_position(self) -> int:
        with self.connect() as conn:
            path = conn.execute("select pg_current_logfile('jsonlog')").fetchone()[0]
            return conn.execute("select (pg_stat_file(%s)).size", [path]).fetchone()[0]

    def statements_since(self, position: int, database: str, application_prefix: str) -> list[dict]:
        """Plans (auto_explain JSON) of the statements sessions named `application_prefix*` ran in `database`
        since `position`, read from the server's own log: what the server executed, not what a client says."""
        sentinel = f"log-sentinel-{uuid.uuid4().hex}"
        with self.connect(database) as conn:
            conn.execute(f"select '{sentinel}'")
        deadline = time.monotonic() + 15
        while True:
            with self.connect() as conn:
                path = conn.execute("select pg_current_logfile('jsonlog')").fetchone()[0]
                text = conn.execute("select pg_read_file(%s, %s, 100000000)", [path, position]).fetchone()[0]
            if sentinel in text or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sentinel in text, "the server log did not show the sentinel statement within 15 s"
        plans = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # the first line may be cut at `position`
            message = entry.get("message", "")
            if (
                entry.get("dbname") == database
                and str(entry.get("application_name", "")).startswith(application_prefix)
                and "plan:" in message
            ):
                plans.append(json.loads(message.split("plan:", 1)[1]))
        return plans


def plan_nodes(plan: dict) -> list[dict]:
    """Every node of an EXPLAIN JSON plan tree."""
    nodes, stack = [], [plan["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes
