"""Provider limits and retry timing shared by every run that uses one engine instance.

`TokenBucket` refills continuously at `per_minute / 60` units per second and holds at most
`capacity` units (default: one minute's worth, which is how providers state their quotas).
`ProviderLimiter` combines a requests bucket and a tokens bucket. Token counts are not known
before a call, so callers acquire an estimate and `settle` the difference once the provider
reports usage: an underestimate drives the bucket negative and later callers wait it out.

The clock and the sleep function are injectable so tests can run the buckets on a fake clock.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping

import anyio

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    def __init__(
        self,
        per_minute: float,
        *,
        capacity: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not per_minute > 0:
            raise ValueError(f"a rate limit must be positive, got {per_minute!r}")
        self.per_minute = float(per_minute)
        self.capacity = float(capacity if capacity is not None else per_minute)
        self._rate = self.per_minute / 60.0
        self._clock = clock
        self._sleep = sleep
        self._level = self.capacity
        self._stamp = clock()
        # Created on first use: anyio primitives want a running event loop.
        self._lock: anyio.Lock | None = None

    @property
    def level(self) -> float:
        self._refill()
        return self._level

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._level = min(self.capacity, self._level + elapsed * self._rate)

    async def acquire(self, amount: float = 1.0) -> None:
        """Wait until `amount` units are available, then take them. Waiters are served in order."""
        # A request larger than the bucket could never be served: take a full bucket instead and
        # let `debit` charge the rest, which delays the callers that come after it.
        need = min(max(0.0, float(amount)), self.capacity)
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            while True:
                self._refill()
                if self._level >= need:
                    self._level -= need
                    excess = float(amount) - need
                    if excess > 0:
                        self._level -= excess
                    return
                await self._sleep((need - self._level) / self._rate)

    def scale(self, fraction: float) -> None:
        """This process's part of a quota shared with other workers: rate and burst both scale."""
        self._refill()
        self._rate = self.per_minute * fraction / 60.0
        self.capacity = float(self.per_minute * fraction)
        self._level = min(self._level, self.capacity)

    def debit(self, amount: float) -> None:
        """Charge (or, when negative, refund) units without waiting; the level may go below zero."""
        self._refill()
        self._level = min(self.capacity, self._level - amount)


class ProviderLimiter:
    """Requests-per-minute and tokens-per-minute limits of one provider endpoint."""

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.requests = TokenBucket(requests_per_minute, clock=clock, sleep=sleep) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute, clock=clock, sleep=sleep) if tokens_per_minute else None

    @property
    def enabled(self) -> bool:
        return self.requests is not None or self.tokens is not None

    def scale(self, fraction: float) -> None:
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.scale(fraction)

    async def acquire(self, tokens: float = 0.0) -> None:
        if self.requests is not None:
            await self.requests.acquire(1.0)
        if self.tokens is not None and tokens > 0:
            await self.tokens.acquire(tokens)

    def settle(self, estimated: float, actual: float) -> None:
        """Correct the tokens bucket once the provider has reported the real usage."""
        if self.tokens is not None:
            self.tokens.debit(actual - estimated)


def backoff_delay(
    attempt: int,
    retry_after: float | None,
    *,
    base: float = 0.5,
    cap: float = 30.0,
    rng: random.Random,
) -> float:
    """Full-jitter exponential backoff (attempt 0 = first retry), never shorter than `retry_after`."""
    window = min(cap, base * (2.0 ** min(max(attempt, 0), 62)))
    delay = rng.uniform(0.0, window)
    if retry_after is not None and retry_after > delay:
        delay = float(retry_after)
    return delay


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (delta-seconds or HTTP-date) or OpenAI's `retry-after-ms`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value)
    raw = lowered.get("retry-after")
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    return max(0.0, seconds) if math.isfinite(seconds) else None
