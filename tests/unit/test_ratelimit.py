"""The shared request budget: several threads, a fake clock, never more than N requests in any window."""

from __future__ import annotations

import random
import threading

import pytest

from northstar.extract.ratelimit import BudgetExhausted, FakeClock, RateLimiter


def busiest_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    return max(sum(1 for other in stamps if stamp - window < other <= stamp) for stamp in stamps)


def test_threads_sharing_one_limiter_never_exceed_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(12, 60, clock=clock, max_wait_seconds=10_000)
    sends, finishes, lock = [], [], threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(30):
            slot = limiter.acquire()
            with lock:
                sends.append(clock.now())
            clock.sleep(rng.random() * 4)  # the request takes a while; other threads move on meanwhile
            limiter.release(slot)
            with lock:
                finishes.append(clock.now())

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(sends) == 150
    assert limiter.sent == 150
    assert busiest_window(sends, 60) == 12  # the limit is used, never exceeded
    # the server sees arrivals between send and finish: any arrival times in between stay within the limit
    assert busiest_window(finishes, 60) <= 12
    elapsed = clock.now() - 1_800_000_000.0
    assert elapsed >= (150 / 12 - 1) * 60  # it really waited (in fake time: the test takes milliseconds)


def test_server_pause_blocks_every_thread_until_it_ends():
    clock = FakeClock()
    limiter = RateLimiter(100, 60, clock=clock)
    limiter.pause_until(clock.now() + 30)  # e.g. Retry-After: 30 on a 429
    start = clock.now()
    limiter.release(limiter.acquire())
    assert clock.now() - start >= 30


def test_run_budget_and_max_wait_stop_the_run_cleanly():
    clock = FakeClock()
    budget = RateLimiter(100, 60, clock=clock, max_requests=3)
    for _ in range(3):
        budget.release(budget.acquire())
    with pytest.raises(BudgetExhausted, match="budget of 3"):
        budget.acquire()

    hourly = RateLimiter(2, 3600, clock=clock, max_wait_seconds=60)
    for _ in range(2):
        hourly.release(hourly.acquire())
    with pytest.raises(BudgetExhausted, match="max_wait_seconds=60"):
        hourly.acquire()  # the next slot is an hour away: stop, do not sleep for an hour


def test_requests_of_an_earlier_run_still_count():
    clock = FakeClock()
    first = RateLimiter(5, 60, clock=clock)
    for _ in range(5):
        first.release(first.acquire())
    second = RateLimiter(5, 60, clock=clock)
    second.preload(first.recent_stamps())
    start = clock.now()
    second.release(second.acquire())
    assert clock.now() - start >= 60 - 1e-6


def test_the_request_log_is_saved_before_each_request_so_a_killed_run_still_counts():
    clock = FakeClock()
    saved: list[list[float]] = []
    killed = RateLimiter(2, 60, clock=clock)
    killed.on_acquire = lambda: saved.append(killed.recent_stamps(in_flight_for=5))
    killed.release(killed.acquire())
    killed.acquire()  # the process dies while this request is in flight: it never finishes
    assert len(saved) == 2
    assert saved[-1][-1] == clock.now() + 5  # counted as finishing at its timeout

    resumed = RateLimiter(2, 60, clock=clock)
    resumed.preload(saved[-1])
    start = clock.now()
    resumed.release(resumed.acquire())
    assert clock.now() - start >= 60 - 1e-6  # both earlier requests still fill the window
