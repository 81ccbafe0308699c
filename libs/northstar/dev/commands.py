"""The development commands, outside the deployed release: `northstar demo`, the benchmarks (`bench`,
`bench-merge`, `bench-extract`, `bench-stream`, `bench-freshness`, `bench-publish`) and `produce-events` (the Firehose-style event producer)."""

from __future__ import annotations

import argparse
from pathlib import Path

from northstar.config import load_env, load_source


def _cmd_demo(args: argparse.Namespace) -> int:
    from northstar.dev.demo import run_demo

    print(run_demo(args.data_dir, orders=args.orders, seed=args.seed))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from northstar.dev.bench.lake import run_bench

    print(run_bench(args.out, records=args.records, files=args.files))
    return 0


def _cmd_bench_merge(args: argparse.Namespace) -> int:
    from northstar.dev.bench.lake import run_merge_bench

    print(run_merge_bench(args.out, sizes=tuple(args.sizes), changes=args.changes))
    return 0


def _cmd_bench_extract(args: argparse.Namespace) -> int:
    from northstar.dev.bench.extract import run_extract_bench

    print(run_extract_bench(args.out, orders=args.orders, page_size=args.page_size))
    return 0


def _cmd_bench_stream(args: argparse.Namespace) -> int:
    from northstar.dev.bench.stream import run_stream_bench

    print(run_stream_bench(args.out, events=args.events, latency_seconds=args.latency_seconds))
    return 0


def _cmd_bench_freshness(args: argparse.Namespace) -> int:
    from northstar.dev.bench.freshness import run_freshness_bench

    print(run_freshness_bench(args.out, rounds=args.rounds, flows=tuple(args.flows)))
    return 0


def _cmd_bench_publish(args: argparse.Namespace) -> int:
    from northstar.dev.bench.publish import run_publish_bench

    print(
        run_publish_bench(
            args.out, sizes=tuple(args.sizes), changed=args.changed, python_rows=args.python_rows
        )
    )
    return 0


def _cmd_produce(args: argparse.Namespace) -> int:
    from northstar.dev.simulate.events import produce

    env = load_env(args.env)
    source = load_source(args.source)
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


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`northstar demo`, `bench`, `bench-merge`, `bench-extract`, `bench-stream`, `produce-events`."""
    demo = commands.add_parser(
        "demo", help="partner API simulator -> extract -> lake -> gold -> warehouse, locally"
    )
    demo.add_argument("--data-dir", type=Path, default=Path("data/demo"), help="reset and used by the demo")
    demo.add_argument("--orders", type=int, default=2000, help="marketplace orders the simulator serves")
    demo.add_argument("--seed", type=int, default=7, help="seed of the simulator and the generators")
    demo.set_defaults(action=_cmd_demo)
    _add_bench_commands(commands)
    _add_producer_command(commands)


def _add_bench_commands(commands: argparse._SubParsersAction) -> None:
    """The benchmarks: `bench`, `bench-merge`, `bench-extract`, `bench-stream`, `bench-freshness`, `bench-publish`."""
    bench = commands.add_parser("bench", help="bronze and silver throughput against a plain-Spark baseline")
    bench.add_argument("--records", type=int, default=200_000, help="orders to generate (default 200000)")
    bench.add_argument("--files", type=int, default=8, help="landing files to spread them over")
    bench.add_argument("--out", type=Path, default=Path("bench-data"), help="working folder (reset)")
    bench.set_defaults(action=_cmd_bench)

    merge = commands.add_parser("bench-merge", help="MERGE cost vs table size, with and without pruning")
    merge.add_argument(
        "--sizes", type=int, nargs="+", default=[500_000, 2_000_000], help="table sizes (rows)"
    )
    merge.add_argument("--changes", type=int, default=20_000, help="rows changed per MERGE")
    merge.add_argument("--out", type=Path, default=Path("bench-data/merge"), help="working folder (reset)")
    merge.set_defaults(action=_cmd_bench_merge)

    extract = commands.add_parser("bench-extract", help="API landing throughput vs plain requests + gzip")
    extract.add_argument("--orders", type=int, default=3000, help="orders the simulator serves")
    extract.add_argument("--page-size", type=int, default=100, help="records per page")
    extract.add_argument(
        "--out", type=Path, default=Path("bench-data/extract"), help="working folder (reset)"
    )
    extract.set_defaults(action=_cmd_bench_extract)

    stream = commands.add_parser(
        "bench-stream", help="events/s per core through bronze and sessions; latency"
    )
    stream.add_argument("--events", type=int, default=200_000, help="events to produce")
    stream.add_argument("--latency-seconds", type=int, default=60, help="how long to measure latency")
    stream.add_argument("--out", type=Path, default=Path("bench-data/stream"), help="working folder (reset)")
    stream.set_defaults(action=_cmd_bench_stream)

    _add_end_to_end_bench_commands(commands)


def _add_end_to_end_bench_commands(commands: argparse._SubParsersAction) -> None:
    """The benchmarks that follow rows to the warehouse: `bench-freshness`, `bench-publish`."""
    freshness = commands.add_parser(
        "bench-freshness",
        help="source change -> warehouse per flow through one cycle, next to the brief's target",
    )
    freshness.add_argument(
        "--out", type=Path, default=Path("bench-data/freshness"), help="data folder (reset)"
    )
    freshness.add_argument(
        "--rounds", type=int, default=3, help="changes measured per flow (after a full load)"
    )
    freshness.add_argument(
        "--flows", nargs="+", default=["shop_db", "stripe_events", "marketplace"],
        choices=["shop_db", "stripe_events", "marketplace"], help="which flows to measure (default: all)",
    )  # fmt: skip
    freshness.set_defaults(action=_cmd_bench_freshness)

    publish = commands.add_parser(
        "bench-publish",
        help="warehouse publish: full load, incremental by table size, noop, vs the Python loader",
    )
    publish.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000], help="gold table sizes (rows)"
    )
    publish.add_argument(
        "--changed", type=int, default=10_000, help="rows changed before the incremental publish"
    )
    publish.add_argument("--python-rows", type=int, default=5_000, help="rows the Python loader is timed on")
    publish.add_argument(
        "--out", type=Path, default=Path("bench-data/publish"), help="working folder (reset)"
    )
    publish.set_defaults(action=_cmd_bench_publish)


def _add_producer_command(commands: argparse._SubParsersAction) -> None:
    """`northstar produce-events`."""
    produce = commands.add_parser("produce-events", help="write Firehose-style event files at a chosen rate")
    produce.add_argument("--source", default="clickstream", help="a source with a stream: section")
    produce.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    produce.add_argument("--rate", type=float, default=200.0, help="events per second")
    produce.add_argument("--seconds", type=float, default=30.0, help="how long to produce")
    produce.add_argument("--seed", type=int, default=7, help="seed of the generator")
    produce.set_defaults(action=_cmd_produce)
