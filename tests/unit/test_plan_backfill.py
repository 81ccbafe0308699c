"""Backfill planner: every expected figure below is worked out by hand in the comment beside it."""

from datetime import date, datetime
from fractions import Fraction

import pytest

from northstar import cli
from northstar.extract.backfill_plan import (
    BackfillInputs,
    api_defaults,
    incremental_requests_per_hour,
    min_page_size,
    min_page_size_for_incremental,
    min_rate_limit,
    plan,
)
from tests.helpers.conf import load_from

BRIEF = {"orders": 8_000_000, "refunds": 1_000_000}
EIGHTEEN_MONTHS = {"start": date(2025, 5, 1), "end": date(2026, 10, 31)}  # 549 days


def inputs(**kw) -> BackfillInputs:
    return BackfillInputs(**{"rate_limit_per_hour": 1200, **kw})


def test_orders_alone_at_278_per_page_fit_one_day_per_day():
    # ceil(8,000,000 / 278) = ceil(28,776.98) = 28,777 <= 28,800 requests/day; two days = 57,554 do not fit
    p = plan(
        inputs(
            start=date(2025, 5, 1),
            end=date(2025, 5, 3),
            volumes={"orders": 8_000_000},
            page_size=278,
            lookback_hours=0,
        )
    )
    assert p.fits
    assert p.budget_per_run == 28_800
    assert p.window_hours == 24
    assert [w.requests for w in p.windows] == [28_777] * 3
    assert p.requests_needed == 86_331
    assert p.duration_days == 3
    assert [(w.start, w.end) for w in p.windows][0] == (
        datetime.fromisoformat("2025-05-01T00:00+00:00"),
        datetime.fromisoformat("2025-05-02T00:00+00:00"),
    )


def test_orders_alone_at_277_per_page_split_days_into_halves():
    # ceil(8,000,000 / 277) = 28,881 > 28,800; 12 h = ceil(14,440.43) = 14,441 fits -> 6 runs for 3 days
    p = plan(
        inputs(
            start=date(2025, 5, 1),
            end=date(2025, 5, 3),
            volumes={"orders": 8_000_000},
            page_size=277,
            lookback_hours=0,
        )
    )
    assert p.window_hours == 12
    assert p.runs == 6
    assert p.duration_days == 6
    assert p.requests_needed == 6 * 14_441
    assert (
        min_page_size(
            inputs(
                start=date(2025, 5, 1),
                end=date(2025, 5, 3),
                volumes={"orders": 8_000_000},
                page_size=1,
                lookback_hours=0,
            ),
            3,
        )
        == 278
    )


def test_brief_at_page_size_500_does_not_fit_because_of_the_hourly_lookback():
    # each hourly sync re-reads 24 h: 8,000,000/500 + 1,000,000/500 = 16,000 + 2,000 = 18,000 requests/hour
    p = plan(inputs(**EIGHTEEN_MONTHS, volumes=BRIEF, page_size=500, deadline_days=30))
    assert p.incremental_requests_per_hour == 18_000
    assert not p.fits
    assert "18,000.0 requests/hour" in p.problem
    assert p.requests_needed == 549 * 18_000  # 9,882,000 requests of history


def test_brief_minimum_page_sizes():
    base = inputs(**EIGHTEEN_MONTHS, volumes=BRIEF, page_size=500)
    # incremental alone: 7,512 -> 1,065 + 134 = 1,199 < 1,200; 7,511 -> 1,066 + 134 = 1,200 leaves nothing
    assert min_page_size_for_incremental(base) == 7_512
    # 30 days at 13,446: incremental 595 + 75 = 670/h, backfill 530/h = 12,720 per daily run;
    # 19 days = ceil(11,304.5) + ceil(1,413.06) = 11,305 + 1,414 = 12,719 fit -> ceil(549 / 19) = 29 runs.
    # at 13,445: 596 + 75 = 671/h -> 12,696 per run; 19 days = 12,720 no longer fit, 18 days -> 31 runs
    assert min_page_size(base, 30) == 13_446
    fits = plan(base.model_copy(update={"page_size": 13_446, "deadline_days": 30}))
    assert fits.fits
    assert fits.budget_per_run == 12_720
    assert fits.window_hours == 19 * 24
    assert fits.runs == 29
    assert not plan(base.model_copy(update={"page_size": 13_445, "deadline_days": 30})).fits


def test_rate_limit_to_ask_for():
    # page 500: incremental 18,000/h; history 9,882,000 requests over 30 daily runs; with whole-day windows
    # 19 days per run = 342,000 requests -> 29 runs: (18,000 + 342,000 / 24) = 32,250 requests/hour
    base = inputs(**EIGHTEEN_MONTHS, volumes=BRIEF, page_size=500)
    assert min_rate_limit(base, 30) == 32_250


def test_lookback_sweep_once_a_day_costs_far_less():
    # syncs read their own hour: ceil(666.67) + ceil(83.33) = 667 + 84 = 751; a daily 24 h sweep: 18,000 / 24 = 750
    i = inputs(**EIGHTEEN_MONTHS, volumes=BRIEF, page_size=500, sweep_every_hours=24)
    assert incremental_requests_per_hour(i) == 1_501


def test_headroom_and_sync_period():
    # every 2 h re-read 24 h: (ceil(2,400,000/1,000)) / 2 = 1,200/h; limit 3,000 * 0.9 = 2,700 -> 1,500/h left
    i = inputs(
        start=date(2025, 1, 1),
        end=date(2025, 1, 1),
        volumes={"orders": 2_400_000},
        page_size=1_000,
        rate_limit_per_hour=3_000,
        sync_every_hours=2,
        headroom=0.1,
    )
    p = plan(i)
    assert p.incremental_requests_per_hour == 1_200
    assert p.usable_requests_per_hour == Fraction(2_700)
    assert p.budget_per_run == 36_000
    assert p.runs == 1


def test_not_even_an_hour_fits_one_run():
    # 2,400,000/day = 100,000/hour = 1,000 requests at page 100; an hourly run may spend only 999
    p = plan(
        inputs(
            start=date(2025, 1, 1),
            end=date(2025, 1, 1),
            volumes={"orders": 2_400_000},
            page_size=100,
            rate_limit_per_hour=999,
            lookback_hours=0,
            run_every_hours=1,
        )
    )
    assert not p.fits
    assert "1 hour of data (1,000 requests)" in p.problem
    assert p.windows == []


def test_runs_are_dated_from_begin():
    p = plan(
        inputs(
            start=date(2025, 1, 1),
            end=date(2025, 1, 2),
            volumes={"orders": 28_800},
            page_size=1,
            lookback_hours=0,
            begin=datetime(2026, 11, 2, 1),
        )
    )
    assert [w.run_at.isoformat() for w in p.windows] == [
        "2026-11-02T01:00:00+00:00",
        "2026-11-03T01:00:00+00:00",
    ]


def test_end_before_start_is_refused():
    with pytest.raises(ValueError, match="before start"):
        inputs(start=date(2025, 1, 2), end=date(2025, 1, 1), volumes={"orders": 1}, page_size=1)


def test_defaults_come_from_the_api_section_and_flags_override(tmp_path, capsys):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "partner.yaml").write_text(
        "tables: {}\napi:\n  page_size: 1000\n  rate_limit: {requests_per_hour: 3000}\n  lookback_hours: 0\n"
    )
    (tmp_path / "sources" / "plain.yaml").write_text("tables: {}\n")
    (tmp_path / "sources" / "contract.yaml").write_text(
        "api:\n  page_size: 100\n  rate_limit: {requests: 600, per_seconds: 1800}\n  lookback_hours: 24\n"
    )
    assert load_from(tmp_path, api_defaults, "contract") == {
        "page_size": 100,
        "rate_limit_per_hour": 1200,
        "lookback_hours": 24,
    }
    assert load_from(tmp_path, api_defaults, "partner") == {
        "page_size": 1000,
        "rate_limit_per_hour": 3000,
        "lookback_hours": 0,
    }
    assert load_from(tmp_path, api_defaults, "plain") == {}

    args = ["plan-backfill", "--start", "2025-01-01", "--end", "2025-01-02", "--volume", "orders=72000000"]
    assert cli.main([*args, "--source", "partner", "--conf-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # 72,000,000/1,000 = 72,000 requests/day of data; 3,000 * 24 = 72,000 per daily run -> 2 runs
    assert "page size 1,000, rate limit 3,000" in out
    assert "FITS: 144,000 requests in 2 run(s)" in out
    assert cli.main([*args, "--source", "partner", "--conf-dir", str(tmp_path), "--page-size", "500"]) == 0
    assert "page size 500," in capsys.readouterr().out

    assert cli.main([*args, "--source", "plain", "--conf-dir", str(tmp_path)]) == cli.EXIT_CONFIG
    assert "give --page-size and --rate-limit" in capsys.readouterr().err
    assert cli.main([*args[:-1], "orders", "--page-size", "5", "--rate-limit", "5"]) == cli.EXIT_CONFIG
    assert "ENDPOINT=RECORDS_PER_DAY" in capsys.readouterr().err


def test_brief_report_names_what_to_negotiate(capsys):
    argv = [
        "plan-backfill",
        "--start",
        "2025-05-01",
        "--end",
        "2026-10-31",
        "--volume",
        "orders=8000000",
        "--volume",
        "refunds=1000000",
        "--page-size",
        "500",
        "--rate-limit",
        "1200",
        "--deadline-days",
        "30",
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "DOES NOT FIT" in out
    assert "backfill within 30 days: 13,446 records/page" in out
    assert "32,250 requests/hour" in out
    assert "bulk export" in out
    assert "dedicated backfill key" in out
