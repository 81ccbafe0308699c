"""One request budget per API, shared by every endpoint and worker thread: never more than N requests in any window.

The limiter is a sliding-window log. A request takes a slot before it is sent and the slot is stamped with
the time its response *finished*, so even a server that counts arrival times (which lie between the two)
never sees more than N requests in any window of its length. Servers' own signals (`Retry-After`,
`X-RateLimit-Remaining: 0` with `X-RateLimit-Reset`) pause every thread of the API.

Time comes from a `Clock`, so tests run hours of rate-limited traffic in milliseconds with `FakeClock`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class Clock:
    """Wall-clock time in seconds since the epoch (persistable across runs) and a real sleep."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock(Clock):
    """A clock that only moves when someone sleeps on it (or `advance` is called); thread-safe."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        time.sleep(0)  # let other threads run, as a real sleep would

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._now += seconds


class BudgetExhausted(RuntimeError):
    """The run's request budget is spent, or the rate limit would make it wait too long; stop cleanly."""


@dataclass
class _Slot:
    stamp: float | None = None  # None while the request is in flight
    sent: float = 0.0


@dataclass
class RateLimiter:
    """At most `requests` per `per_seconds` for one API; `max_requests` caps one run's total requests."""

    requests: int
    per_seconds: float
    clock: Clock = field(default_factory=Clock)
    max_wait_seconds: float = 300.0
    max_requests: int | None = None
    on_acquire: Callable[[], None] | None = None  # e.g. persist the request log before the request goes out
    _slots: deque = field(default_factory=deque, init=False, repr=False)
    _paused_until: float = field(default=0.0, init=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    sent: int = field(default=0, init=False)
    waited_seconds: float = field(default=0.0, init=False)

    def preload(self, stamps: list[float]) -> None:
        """Requests earlier runs made (epoch seconds): they still count against the current window."""
        with self._cond:
            cutoff = self.clock.now() - self.per_seconds
            for stamp in sorted(s for s in stamps if s > cutoff)[-self.requests :]:
                self._slots.append(_Slot(stamp))

    def recent_stamps(self, in_flight_for: float = 0.0) -> list[float]:
        """Requests inside the current window, to save for the next run.

        A request still in flight counts as finishing `in_flight_for` seconds after it was sent (the
        client's timeout), so a run killed mid-request leaves a log the next run can trust.
        """
        with self._cond:
            cutoff = self.clock.now() - self.per_seconds
            stamps = [s.stamp if s.stamp is not None else s.sent + in_flight_for for s in self._slots]
            return sorted(stamp for stamp in stamps if stamp > cutoff)

    def pause_until(self, when: float) -> None:
        """The server said to wait (Retry-After, or no requests remaining until a reset)."""
        with self._cond:
            self._paused_until = max(self._paused_until, when)
            self._cond.notify_all()

    def budget_left(self) -> int | None:
        with self._cond:
            return None if self.max_requests is None else self.max_requests - self.sent

    def _wait_needed(self, now: float) -> float:
        while (
            self._slots
            and self._slots[0].stamp is not None
            and self._slots[0].stamp <= now - self.per_seconds
        ):
            self._slots.popleft()
        wait = max(0.0, self._paused_until - now)
        if len(self._slots) >= self.requests:
            oldest = self._slots[0].stamp
            # in flight: wait for it to finish (it will free no earlier than per_seconds after that)
            wait = max(wait, self.per_seconds if oldest is None else oldest + self.per_seconds - now)
        return wait

    def acquire(self) -> _Slot:
        """Block until a request may be sent; returns the slot to `release` when the response is in.

        Raises BudgetExhausted when the run's budget is spent or the wait would exceed `max_wait_seconds`.
        """
        waited = 0.0
        while True:
            with self._cond:
                if self.max_requests is not None and self.sent >= self.max_requests:
                    raise BudgetExhausted(f"request budget of {self.max_requests} for this run is spent")
                now = self.clock.now()
                wait = self._wait_needed(now)
                slot = None
                if wait <= 0:
                    slot = _Slot(sent=now)
                    self._slots.append(slot)
                    self.sent += 1
            if slot is not None:
                if self.on_acquire:
                    self.on_acquire()
                return slot
            with self._cond:
                if waited + wait > self.max_wait_seconds:
                    raise BudgetExhausted(
                        f"rate limit of {self.requests} requests per {self.per_seconds:g} s reached; the next "
                        f"request could go in {wait:.0f} s, more than max_wait_seconds={self.max_wait_seconds:g}"
                    )
                in_flight_only = len(self._slots) >= self.requests and self._slots[0].stamp is None
            if in_flight_only:
                with self._cond:  # a slot frees when a response finishes: wait for that signal
                    self._cond.wait(timeout=0.05)
                continue
            self.clock.sleep(wait)
            waited += wait
            with self._cond:
                self.waited_seconds += wait

    def release(self, slot: _Slot) -> None:
        with self._cond:
            slot.stamp = self.clock.now()
            # keep the log ordered by stamp: in-flight slots finish out of order
            ordered = sorted(self._slots, key=lambda s: float("inf") if s.stamp is None else s.stamp)
            self._slots.clear()
            self._slots.extend(ordered)
            self._cond.notify_all()
