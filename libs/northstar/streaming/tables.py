"""Where the streaming tables and checkpoints live, by name (`silver.clickstream_sessions`, ...)."""

from __future__ import annotations

from northstar.config import EnvConfig, SourceSpec


def bronze_path(env: EnvConfig, source: SourceSpec) -> str:
    return env.bronze_path(source.name, source.stream.table)


def events_path(env: EnvConfig, source: SourceSpec) -> str:
    """silver.<source>_<table>: one row per event id, user id tokenized."""
    return env.silver_path(source.name, source.stream.table)


def sessions_path(env: EnvConfig, source: SourceSpec) -> str:
    """silver.<source>_sessions: one row per session (visitor, 30-minute inactivity gap)."""
    return env.silver_path(source.name, "sessions")


def minute_path(env: EnvConfig, source: SourceSpec) -> str:
    """gold.<source>_minute: one row per minute of event time for the operational dashboards."""
    return f"{env.lake}/gold/{source.name}/minute"


def quarantine_path(env: EnvConfig, source: SourceSpec) -> str:
    return env.quarantine_path(source.name, source.stream.table)


def checkpoint_path(env: EnvConfig, source: SourceSpec, query: str, tag: str = "main") -> str:
    """One checkpoint per query and tag; a restart from a chosen point uses a new tag (docs/streaming.md)."""
    return f"{env.lake}/_checkpoints/{source.name}/{query}/{tag}"


def table_paths(env: EnvConfig, source: SourceSpec) -> dict[str, str]:
    """The streaming tables beyond the source's own bronze/silver/quarantine, for the catalog."""
    return {
        f"silver.{source.name}_sessions": sessions_path(env, source),
        f"gold.{source.name}_minute": minute_path(env, source),
    }
