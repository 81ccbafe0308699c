"""`northstar stream run|replay|catch-up`: the product-event stream (docs/streaming.md). jobs/stream_events.py
runs `northstar stream run`."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from northstar.config import ConfigError, EnvConfig, SourceSpec, load_env, load_source

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyspark.sql import SparkSession

    # (spark, env, source) -> the after-batch publisher (with .flush() and .finish()), or None: no warehouse
    PublisherFactory = Callable[[SparkSession, EnvConfig, SourceSpec], Any]

_PUBLISHER: dict[str, PublisherFactory] = {}  # "factory" -> the one set by use_publisher
FLUSH_SECONDS = 5  # how often the wait loop lets the publisher publish what a quiet stream left pending


def use_publisher(factory: PublisherFactory) -> None:
    """Set the warehouse publisher `stream run` hands to query 2. The warehouse layer sits above this one, so
    the command assembly (cli) passes it in (warehouse.commands.stream_publisher)."""
    _PUBLISHER["factory"] = factory


def _when(text: str, flag: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r} is not an ISO-8601 time; write e.g. 2026-11-20T10:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _context(args: argparse.Namespace, app: str) -> tuple[SparkSession, EnvConfig, SourceSpec]:
    from northstar.spark import get_spark

    env = load_env(args.env)
    source = load_source(args.source)
    stream = source.require_stream()
    from northstar.secrets import SecretError, resolve

    try:
        resolve(stream.user_token_key)  # an unset key stops here, before Spark starts
    except SecretError as err:
        raise ConfigError(f"conf/sources/{source.name}.yaml stream.user_token_key: {err}") from None
    return get_spark(env, app_name=f"northstar-{app}-{source.name}"), env, source


def _cmd_stream_run(args: argparse.Namespace) -> int:
    from northstar.streaming import run

    spark, env, source = _context(args, "stream")
    publisher = None
    if not args.no_publish and "factory" in _PUBLISHER:
        publisher = _PUBLISHER["factory"](spark, env, source)
    after_batch = publisher
    if args.trigger == run.AVAILABLE_NOW:
        result = run.run_available_now(
            spark, env, source, tag=args.checkpoint_tag, starting_version=args.starting_version,
            after_batch=after_batch,
        )  # fmt: skip
        if publisher is not None:
            publisher.finish()
        print(
            f"stream {source.name} [available-now, checkpoint {args.checkpoint_tag}]: {result.bronze_batches} bronze "
            f"and {result.silver_batches} silver micro-batches; {result.dropped_late} events behind the watermark "
            f"(in bronze; run `northstar stream catch-up`), {result.dropped_duplicates} duplicates dropped in-stream"
        )
        return 0
    bronze = run.start_bronze(spark, env, source, run.PROCESSING_TIME, tag=args.checkpoint_tag)
    silver = run.start_silver(
        spark,
        env,
        source,
        run.PROCESSING_TIME,
        tag=args.checkpoint_tag,
        starting_version=args.starting_version,
        after_batch=after_batch,
    )
    stream = source.require_stream()
    published = f", warehouse publish every {stream.publish_seconds} s" if publisher is not None else ""
    print(
        f"stream {source.name}: running every {stream.trigger_interval}{published}; Ctrl-C stops it cleanly"
    )
    deadline = time.monotonic() + args.seconds if args.seconds else None
    try:
        while deadline is None or time.monotonic() < deadline:
            wait = (
                FLUSH_SECONDS
                if deadline is None
                else max(0.1, min(FLUSH_SECONDS, deadline - time.monotonic()))
            )
            if spark.streams.awaitAnyTermination(wait):
                break  # a query stopped (its error is raised by awaitAnyTermination)
            if publisher is not None:
                publisher.flush()  # a quiet stream's last batch is published within publish_seconds too
    except KeyboardInterrupt:
        pass
    for query in (bronze, silver):
        query.stop()
    if publisher is not None:
        publisher.finish()
    return 0


def _cmd_stream_replay(args: argparse.Namespace) -> int:
    from northstar.streaming.run import replay

    spark, env, source = _context(args, "replay")
    entry = replay(spark, env, source, _when(args.start, "--from"), _when(args.end, "--to"))
    print(
        f"replay {source.name} [{entry.window_start} .. {entry.window_end}): {entry.records_read} bronze events, "
        f"{entry.records_written} in silver, {entry.records_duplicate} duplicates; sessions and minutes rebuilt"
    )
    return 0


def _cmd_stream_catch_up(args: argparse.Namespace) -> int:
    from northstar.streaming.run import catch_up

    spark, env, source = _context(args, "catch-up")
    entry = catch_up(spark, env, source, _when(args.since, "--since") if args.since else None)
    print(f"catch-up {source.name}: {entry.records_written} late events brought into silver")
    return 0


def _common(parser: argparse.ArgumentParser, source: bool = True) -> None:
    if source:
        parser.add_argument("--source", default="clickstream", help="a source with a stream: section")
    parser.add_argument("--env", default="local", help="conf/env/<env>.yaml (default: local)")


def add_stream_arguments(run: argparse.ArgumentParser) -> None:
    _common(run)
    run.add_argument("--trigger", choices=["processing-time", "available-now"], default="processing-time")
    run.add_argument("--checkpoint-tag", default="main", help="a new tag starts from a fresh checkpoint")
    run.add_argument(
        "--starting-version",
        type=int,
        help="with a new --checkpoint-tag: read bronze from this Delta version",
    )
    run.add_argument("--seconds", type=int, help="processing-time: stop after this many seconds")
    run.add_argument(
        "--no-publish",
        action="store_true",
        help="do not publish the session and minute tables to the env's warehouse (default: every "
        "stream.publish_seconds when the env has a snowflake: section)",
    )


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`northstar stream run|replay|catch-up`."""
    stream = commands.add_parser(
        "stream", help="product-event stream: run, replay a range, catch up late events"
    )
    sub = stream.add_subparsers(dest="stream_command", required=True)
    run = sub.add_parser("run", help="Firehose files -> bronze -> silver events, sessions, minute aggregates")
    add_stream_arguments(run)
    run.set_defaults(action=_cmd_stream_run)
    replay = sub.add_parser(
        "replay", help="rebuild silver events, sessions and minutes of [--from, --to) from bronze"
    )
    _common(replay)
    replay.add_argument("--from", dest="start", required=True, help="ISO-8601 event time (UTC if no offset)")
    replay.add_argument("--to", dest="end", required=True, help="ISO-8601 event time, exclusive")
    replay.set_defaults(action=_cmd_stream_replay)
    catch = sub.add_parser("catch-up", help="bring bronze events the stream dropped as late into silver")
    _common(catch)
    catch.add_argument("--since", help="only bronze rows ingested from this time (ISO-8601)")
    catch.set_defaults(action=_cmd_stream_catch_up)
