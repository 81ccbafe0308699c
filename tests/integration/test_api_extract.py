"""API extraction against the simulator, checked at the landing zone (no Spark): styles, crashes, budgets."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from northstar.cli import main
from northstar.config import EnvConfig, load_source
from northstar.dev.simulate.partner_api import START, Faults, PartnerApiSimulator, record_hash
from northstar.extract.ratelimit import FakeClock
from northstar.extract.rest import ExtractError, run_extract
from northstar.extract.state import StateStore, state_key
from northstar.landing.writer import LocalStore, S3Store
from tests.helpers.api_sim import RATE, TOKEN, landed_pages, latest_landed, pointed_at
from tests.helpers.envs import REPO, make_env

TIMES = (START + timedelta(days=1), START + timedelta(days=3), START + timedelta(days=9))


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("NORTHSTAR_PARTNER_TOKEN", TOKEN)


def simulator(clock, faults=None, orders=120, **kwargs) -> PartnerApiSimulator:
    return PartnerApiSimulator(
        orders=orders, faults=faults or Faults(), rate_limit=RATE, clock=clock, token=TOKEN, **kwargs
    ).start()


def assert_landed_equals_truth(env, source, sim):
    for table in ("orders", "refunds"):
        truth = sim.ground_truth(table)
        landed = latest_landed(env, source, table)
        assert set(landed) == set(truth), table
        differing = [k for k, record in truth.items() if record_hash(landed[k]) != record_hash(record)]
        assert not differing, (
            f"{table}: {len(differing)} records differ from the simulator, e.g. {differing[:3]}"
        )


def assert_every_page_has_its_manifest(env, source, table):
    root = Path(env.landing)
    for name, text in landed_pages(env, source, table).items():
        manifest = json.loads((root / name.replace(".jsonl.gz", ".manifest.json")).read_text())
        assert manifest["records"] == len(text.decode().splitlines())
        assert manifest["request"]["url"].startswith("http://127.0.0.1:")
        assert manifest["object"] == name


@pytest.mark.parametrize("style", ["cursor", "page", "offset", "link"])
def test_every_pagination_style_lands_the_ground_truth_through_every_fault(env, marketplace, style):
    clock = FakeClock()
    with simulator(clock, Faults.everything(seed=3, timeouts=0)) as sim:
        source = pointed_at(marketplace, sim.partner_url, style)
        reports = []
        for when in TIMES:  # three incremental deliveries: new orders, status changes, late updates
            sim.set_time(when)
            reports.append(run_extract(env, source, clock=clock))
        assert_landed_equals_truth(env, source, sim)
        assert sim.stats.over_limit == 0, sim.stats
        assert sim.stats.faults["server_error"], sim.stats.faults
        assert sim.stats.faults["repeated_record"], sim.stats.faults
        assert sum(v for k, v in sim.stats.faults.items() if k.startswith("partial_")) > 0
    assert [r.tables[0].mode for r in reports] == ["full", "incremental", "incremental"]
    assert all(r.complete for r in reports)
    assert reports[1].tables[0].since < reports[1].tables[0].watermark  # it re-read behind the watermark
    for table in ("orders", "refunds"):
        assert_every_page_has_its_manifest(env, source, table)
    landing = "".join(p.read_text(errors="replace") for p in Path(env.landing).rglob("*.json"))
    assert TOKEN not in landing  # neither manifests nor state hold the credential


CRASH_POINTS = ["fetched", "landed", "manifested", "committed"]


class Crash(BaseException):
    """The process dies here (BaseException: nothing in the extractor may swallow it)."""


def crash_at(point: str, table: str, page: int):
    def hook(where: str, which: str, number: int) -> None:
        if (where, which, number) == (point, table, page):
            raise Crash(f"killed at {where} of {which} page {number}")

    return hook


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_at_any_point_resumes_with_no_gap_and_no_duplicate_page(tmp_path, marketplace, point):
    reference_env, crashed_env = make_env(tmp_path / "reference"), make_env(tmp_path / "crashed")
    contents = {}
    for env, hook in ((reference_env, None), (crashed_env, crash_at(point, "orders", 4))):
        clock = FakeClock()
        with simulator(clock, Faults.everything(seed=5, timeouts=0), now=TIMES[-1]) as sim:
            source = pointed_at(marketplace, sim.partner_url)
            if hook:
                with pytest.raises(Crash):
                    run_extract(env, source, clock=clock, hook=hook)
                state = StateStore(LocalStore(env.landing), state_key("marketplace/orders")).load()
                assert state.in_progress.page == (4 if point == "committed" else 3)
            report = run_extract(env, source, clock=clock)
            assert report.complete
            assert sim.stats.over_limit == 0
        contents[env.name if hook is None else point] = [
            text for _, text in sorted(landed_pages(env, source, "orders").items())
        ]
        if hook:
            assert report.tables[0].resumed_at_page == (4 if point == "committed" else 3)
            assert_landed_equals_truth(env, source, sim)
            assert_every_page_has_its_manifest(env, source, "orders")
    # the same pages with the same records in the same order: nothing skipped, nothing landed twice
    assert contents[point] == contents["test"]


def test_retry_limit_fails_with_a_clear_error_and_the_state_intact(env, marketplace):
    clock = FakeClock()
    with simulator(clock, now=TIMES[0]) as sim:
        source = pointed_at(marketplace, sim.partner_url)
        run_extract(env, source, clock=clock)
        states = StateStore(LocalStore(env.landing), state_key("marketplace/orders"))
        before = states.load()
        sim.faults = Faults(server_errors=1.0, burst=10_000)  # the partner is down
        sim.set_time(TIMES[1])
        with pytest.raises(
            ExtractError, match=r"orders: page 1 failed 6 times in a row \(last: RetryableStatus: HTTP 50"
        ):
            run_extract(env, source, clock=clock, tables=["orders"])
        after = states.load()
        assert after.watermark == before.watermark
        assert after.in_progress.page == 0
        sim.faults = Faults()  # the partner is back: the same command resumes
        assert run_extract(env, source, clock=clock).complete
        assert_landed_equals_truth(env, source, sim)


def test_spent_budget_stops_cleanly_and_the_next_runs_resume(env, marketplace):
    clock = FakeClock()
    with simulator(clock, Faults.everything(seed=9, timeouts=0), now=TIMES[-1]) as sim:
        source = pointed_at(marketplace, sim.partner_url)
        runs = []
        for _ in range(40):  # bounded: 120 orders in pages of 10 need far fewer runs
            report = run_extract(env, source, clock=clock, max_requests=4)
            runs.append(report)
            assert report.requests <= 4
            if report.complete:
                break
        assert runs[-1].complete
        assert len(runs) > 3
        assert any(t.status == "budget_spent" for t in runs[0].tables)
        assert_landed_equals_truth(env, source, sim)
        assert sim.stats.over_limit == 0
        # one object per page: resumed runs continued the same run's page numbers, never re-landed a copy
        names = landed_pages(env, source, "orders")
        assert len({n.split("/")[-2] for n in names}) == 1
        pages = sorted(int(n.rsplit("page-", 1)[1].split(".")[0]) for n in names)
        assert pages == list(range(1, len(pages) + 1))


def test_backfill_window_lands_only_that_window_and_leaves_the_watermark(env, marketplace):
    clock = FakeClock()
    with simulator(clock, now=TIMES[-1]) as sim:
        source = pointed_at(marketplace, sim.partner_url)
        start, end = "2026-11-02T00:00:00.000Z", "2026-11-03T00:00:00.000Z"
        report = run_extract(env, source, clock=clock, tables=["orders"], start=start, end=end)
        assert report.complete
        assert report.tables[0].mode == "backfill"
        landed = latest_landed(env, source, "orders")
        expected = {k for k, r in sim.ground_truth("orders").items() if start <= r["updated_at"] < end}
        assert set(landed) == expected
        assert expected
        assert StateStore(LocalStore(env.landing), state_key("marketplace/orders")).load().watermark is None


def write_conf(root: Path, data_dir: Path, url: str, rate: tuple[int, float]) -> Path:
    (root / "env").mkdir(parents=True)
    (root / "sources").mkdir()
    (root / "env" / "local.yaml").write_text(
        f"profile: local\nlanding: {data_dir}/landing\nlake: {data_dir}/lake\nquarantine: {data_dir}/quarantine\n"
    )
    source = yaml.safe_load((REPO / "conf" / "sources" / "marketplace.yaml").read_text())
    source["api"].update(
        base_url=url,
        page_size=5,
        rate_limit={"requests": rate[0], "per_seconds": rate[1]},
        retries={"attempts": 6, "initial_seconds": 0.05, "max_seconds": 1},
    )
    (root / "sources" / "marketplace.yaml").write_text(yaml.safe_dump(source))
    return root


def test_killed_process_resumes_with_no_gap_and_no_duplicate(tmp_path, marketplace):
    """A real SIGKILL of `northstar extract` part-way, then the same command again."""
    rate = (10, 1.0)  # real time: 10 requests a second, so the run takes a few seconds and can be killed
    with PartnerApiSimulator(
        orders=120, faults=Faults.everything(seed=2, timeouts=0), rate_limit=rate, token=TOKEN, now=TIMES[-1]
    ) as sim:
        conf = write_conf(tmp_path / "conf", tmp_path / "data", sim.partner_url, rate)
        command = [
            sys.executable,
            "-m",
            "northstar.cli",
            "extract",
            "--source",
            "marketplace",
            "--conf-dir",
            str(conf),
        ]
        environment = {**os.environ, "NORTHSTAR_PARTNER_TOKEN": TOKEN}
        process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        orders_folder = tmp_path / "data" / "landing" / "marketplace" / "orders"
        deadline = time.monotonic() + 60
        while len(list(orders_folder.rglob("*.jsonl.gz"))) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "the extract finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        killed_at = len(list(orders_folder.rglob("*.jsonl.gz")))

        resumed = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=120, check=False
        )
        assert resumed.returncode == 0, resumed.stderr
        assert "resumed at page" in resumed.stdout
        env = make_env(tmp_path / "data")
        source = pointed_at(marketplace, sim.partner_url)
        assert_landed_equals_truth(env, source, sim)
        names = sorted(landed_pages(env, source, "orders"))
        assert len(names) > killed_at
        pages = [int(n.rsplit("page-", 1)[1].split(".")[0]) for n in names]
        assert pages == list(range(1, len(pages) + 1))  # one run, every page once
        assert sim.stats.over_limit == 0


def test_stripe_list_api_lands_the_latest_snapshot_of_every_object(env, monkeypatch):
    monkeypatch.setenv("NORTHSTAR_STRIPE_KEY", TOKEN)
    clock = FakeClock()
    stripe = load_source("stripe")
    with PartnerApiSimulator(
        orders=0,
        payments=80,
        rate_limit=RATE,
        clock=clock,
        token=TOKEN,
        now=TIMES[1],
        faults=Faults.everything(seed=6, timeouts=0),
    ) as sim:
        source = pointed_at(stripe, sim.stripe_url)
        first = run_extract(env, source, clock=clock)
        sim.set_time(TIMES[-1])  # refunds succeed, disputes are decided, charges get refunded
        second = run_extract(env, source, clock=clock)
        assert first.complete
        assert second.complete
        assert second.tables[0].mode == "incremental"
        assert isinstance(second.tables[0].since, int)
        assert sim.stats.over_limit == 0
        for table in ("charges", "payment_intents", "refunds", "disputes"):
            truth = sim.ground_truth(table, api="stripe")
            latest: dict[str, dict] = {}
            for text in landed_pages(env, source, table).values():
                for line in text.decode().splitlines():
                    record = json.loads(line)
                    if (
                        record["id"] not in latest
                        or record["_extracted_at"] >= latest[record["id"]]["_extracted_at"]
                    ):
                        latest[record["id"]] = record
            assert truth, table
            pans = {k for k, r in truth.items() if "4242 4242 4242 4242" in json.dumps(r)}
            expected = {
                k: json.loads(json.dumps(r).replace("4242 4242 4242 4242", "[REDACTED-PAN]"))
                for k, r in truth.items()
            }
            assert {
                k: {f: v for f, v in r.items() if f != "_extracted_at"} for k, r in latest.items()
            } == expected
            if table == "charges":
                assert (
                    pans
                )  # some charges carry a card number in free text: it never reached the landing zone
                manifests = list(Path(env.landing, "stripe", "charges").rglob("*.manifest.json"))
                assert sum(json.loads(m.read_text())["pan_redacted"] for m in manifests) >= len(pans)
    stored = b"".join(
        p.read_bytes() for p in Path(env.landing).rglob("*") if p.is_file() and p.suffix != ".gz"
    )
    stored += b"".join(gzip.decompress(p.read_bytes()) for p in Path(env.landing).rglob("*.gz"))
    assert b"4242 4242 4242 4242" not in stored


def test_landing_on_s3_with_crash_and_resume(marketplace, monkeypatch):
    """The env's landing root on S3 (moto on 127.0.0.1): pages, manifests and state through boto3."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        for name, value in {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        boto3.client("s3").create_bucket(Bucket="ns-landing")
        env = EnvConfig(
            name="s3",
            profile="local",
            landing="s3://ns-landing/landing",
            lake="s3a://x/lake",
            quarantine="s3a://x/q",
        )
        clock = FakeClock()
        with simulator(clock, Faults.everything(seed=8, timeouts=0), orders=60, now=TIMES[-1]) as sim:
            source = pointed_at(marketplace, sim.partner_url)
            with pytest.raises(Crash):
                run_extract(env, source, clock=clock, hook=crash_at("landed", "orders", 2))
            assert run_extract(env, source, clock=clock).complete
            truth = sim.ground_truth("orders")
        store = S3Store(env.landing)
        keys = store.list("marketplace/orders")
        pages = [k for k in keys if k.endswith(".jsonl.gz")]
        assert len(pages) == len({k.rsplit("/", 1)[1] for k in pages})  # one object per page number
        assert all(k.replace(".jsonl.gz", ".manifest.json") in keys for k in pages)
        landed = {}
        for key in pages:
            for line in gzip.decompress(store.get(key)).decode().splitlines():
                record = json.loads(line)
                if not isinstance(record, dict) or record.get("order_id") is None:
                    continue  # a broken record the simulator served: landed as delivered, quarantined later
                if (
                    record["order_id"] not in landed
                    or record["updated_at"] > landed[record["order_id"]]["updated_at"]
                ):
                    landed[record["order_id"]] = record
        assert {k: record_hash(v) for k, v in landed.items()} == {k: record_hash(v) for k, v in truth.items()}
        state = StateStore(store, state_key("marketplace/orders")).load()
        assert state.in_progress is None
        assert state.watermark == max(r["updated_at"] for r in truth.values())
    finally:
        server.stop()


def test_lookback_override_lets_hourly_syncs_read_one_hour(tmp_path, marketplace, capsys):
    """`--lookback-hours 1`: the incremental run asks for records since the watermark minus one hour, not 24."""
    rate = (1000, 1.0)
    with PartnerApiSimulator(orders=40, faults=Faults(), rate_limit=rate, token=TOKEN, now=TIMES[0]) as sim:
        conf = write_conf(tmp_path / "conf", tmp_path / "data", sim.partner_url, rate)
        args = ["extract", "--source", "marketplace", "--table", "orders", "--conf-dir", str(conf)]
        assert main(args) == 0
        landing = tmp_path / "data" / "landing"
        store = StateStore(LocalStore(str(landing)), state_key("marketplace/orders"))
        watermark = store.load().watermark
        first_run = set(landing.rglob("*.manifest.json"))

        sim.set_time(TIMES[1])
        assert main([*args, "--lookback-hours", "1"]) == 0
        urls = [
            json.loads(p.read_text())["request"]["url"]
            for p in set(landing.rglob("*.manifest.json")) - first_run
        ]
    assert urls
    since = datetime.fromisoformat(watermark.replace("Z", "+00:00")) - timedelta(hours=1)
    wanted = since.strftime("%Y-%m-%dT%H:%M:%S")
    assert all(wanted in url.replace("%3A", ":") for url in urls), (wanted, urls[:2])
