"""The `northstar stream ...`, `northstar privacy ...`, `northstar produce-events` and `northstar bench-stream`
commands (registered by cli.build_parser; jobs/stream_events.py calls `stream_main`)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from northstar.config import ConfigError, load_env, load_source


def _when(text: str, flag: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r} is not an ISO-8601 time; write e.g. 2026-11-20T10:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _context(args: argparse.Namespace, app: str):
    from northstar.spark import get_spark

    env = load_env(args.env, args.conf_dir)
    source = load_source(args.source, args.conf_dir)
    if source.stream is None:
        raise ConfigError(
            f"conf/sources/{source.name}.yaml has no stream: section; it is not a streamed source"
        )
    from northstar.secrets import SecretError, resolve

    try:
        resolve(source.stream.user_token_key)  # an unset key stops here, before Spark starts
    except SecretError as err:
        raise ConfigError(f"conf/sources/{source.name}.yaml stream.user_token_key: {err}") from None
    return get_spark(env, app_name=f"northstar-{app}-{source.name}"), env, source


def _cmd_stream_run(args: argparse.Namespace) -> int:
    from northstar.streaming import run

    spark, env, source = _context(args, "stream")
    if args.trigger == run.AVAILABLE_NOW:
        result = run.run_available_now(
            spark, env, source, tag=args.checkpoint_tag, starting_version=args.starting_version
        )
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
    )
    print(f"stream {source.name}: running every {source.stream.trigger_interval}; Ctrl-C stops it cleanly")
    try:
        spark.streams.awaitAnyTermination(
            args.seconds
        ) if args.seconds else spark.streams.awaitAnyTermination()
    except KeyboardInterrupt:
        pass
    for query in (bronze, silver):
        query.stop()
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


def _cmd_privacy_delete(args: argparse.Namespace) -> int:
    from northstar.privacy import deletion, requests
    from northstar.privacy.spec import load_privacy
    from northstar.secrets import SecretError, resolve
    from northstar.spark import get_spark

    privacy = load_privacy(args.conf_dir)
    try:
        key = resolve(privacy.token_key).value.encode("utf-8")
    except SecretError as err:
        raise ConfigError(f"conf/privacy.yaml token_key: {err}") from None
    env = load_env(args.env, args.conf_dir)
    spark = get_spark(env, app_name="northstar-privacy")
    token = deletion.token_of(spark, args.subject, key)
    request_id = requests.record_request(spark, env, token, privacy.deadline_hours)
    print(f"deletion request {request_id} recorded (deadline {privacy.deadline_hours} h)")
    if args.process:
        proofs = deletion.process_requests(spark, env, privacy, args.conf_dir)
        print(_proof_report(proofs))
    return 0


def _cmd_privacy_process(args: argparse.Namespace) -> int:
    from northstar.privacy.deletion import process_requests
    from northstar.privacy.spec import load_privacy
    from northstar.spark import get_spark

    privacy = load_privacy(args.conf_dir)
    env = load_env(args.env, args.conf_dir)
    spark = get_spark(env, app_name="northstar-privacy")
    print(_proof_report(process_requests(spark, env, privacy, args.conf_dir)))
    return 0


def _proof_report(proofs: list[dict]) -> str:
    if not proofs:
        return "no pending deletion requests"
    lines = [f"{'request':<32}{'table':<36}{'rows deleted':>13}{'versions':>12}{'files removed':>15}"]
    for p in proofs:
        versions = f"{p['version_before']}->{p['version_after']}" if p["table_exists"] else "absent"
        lines.append(
            f"{p['request_id']:<32}{p['table_name']:<36}{p['rows_deleted']:>13}{versions:>12}{p['files_removed']:>15}"
        )
    return "\n".join(lines)


def _cmd_produce(args: argparse.Namespace) -> int:
    from northstar.simulate.events import produce

    env = load_env(args.env, args.conf_dir)
    source = load_source(args.source, args.conf_dir)
    prefix = source.tables[source.stream.table].landing if source.stream else "clickstream/events"
    totals = [0, 0, 0, 0]
    for _, batch in produce(
        env.landing, prefix, events_per_second=args.rate, seconds=args.seconds, seed=args.seed, realtime=True
    ):
        for i, n in enumerate((len(batch.lines), batch.duplicates, batch.malformed, batch.missing_id)):
            totals[i] += n
    print(
        f"wrote {totals[0]} lines under {env.landing}/{prefix}: {totals[1]} duplicates, {totals[2]} malformed, "
        f"{totals[3]} without event id"
    )
    return 0


def _cmd_bench_stream(args: argparse.Namespace) -> int:
    from northstar.streaming.bench import run_stream_bench

    print(run_stream_bench(args.out, events=args.events, latency_seconds=args.latency_seconds))
    return 0


def _common(parser: argparse.ArgumentParser, source: bool = True) -> None:
    if source:
        parser.add_argument("--source", default="clickstream", help="a source with a stream: section")
    parser.add_argument("--env", default="local", help="conf/env/<env>.yaml (default: local)")
    parser.add_argument("--conf-dir", type=Path, help="configuration folder (default: ./conf)")


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


def add_commands(commands) -> None:
    """Register the streaming and privacy commands on the `northstar` parser."""
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

    privacy = commands.add_parser("privacy", help="deletion requests (72 h): record, process, prove")
    psub = privacy.add_subparsers(dest="privacy_command", required=True)
    delete = psub.add_parser("delete", help="record a deletion request for a subject (user id)")
    _common(delete, source=False)
    delete.add_argument("--subject", required=True, help="the user id; stored only as its keyed token")
    delete.add_argument("--process", action="store_true", help="process pending requests right away")
    delete.set_defaults(action=_cmd_privacy_delete)
    process = psub.add_parser("process", help="delete, vacuum and write proof for every pending request")
    _common(process, source=False)
    process.set_defaults(action=_cmd_privacy_process)

    produce = commands.add_parser("produce-events", help="write Firehose-style event files at a chosen rate")
    _common(produce)
    produce.add_argument("--rate", type=float, default=200.0, help="events per second")
    produce.add_argument("--seconds", type=float, default=30.0)
    produce.add_argument("--seed", type=int, default=7)
    produce.set_defaults(action=_cmd_produce)

    bench = commands.add_parser("bench-stream", help="events/s per core through bronze and sessions; latency")
    bench.add_argument("--events", type=int, default=200_000)
    bench.add_argument("--latency-seconds", type=int, default=60, help="how long to measure latency")
    bench.add_argument("--out", type=Path, default=Path("bench-data/stream"))
    bench.set_defaults(action=_cmd_bench_stream)


def stream_main(argv: list[str] | None = None, description: str | None = None) -> int:
    """Entry point of jobs/stream_events.py."""
    from northstar.cli import _guarded

    parser = argparse.ArgumentParser(description=description)
    add_stream_arguments(parser)
    args = parser.parse_args(argv)
    return _guarded(_cmd_stream_run, args)


if __name__ == "__main__":
    sys.exit(stream_main())
