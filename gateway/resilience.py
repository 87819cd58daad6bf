"""Resilience pieces every outside-system adapter shares: retries, a circuit breaker, a TTL cache.

They work on the gateway's own exception tree, so an adapter first translates its library's
exceptions at its edge (``raise TransientUpstreamError(...) from exc``) and then composes::

    breaker = CircuitBreaker("spar", failure_threshold=5, reset_timeout=30.0)
    retry = RetryPolicy(attempts=3, backoff=0.2, max_backoff=2.0)
    cache: TtlCache[str, Answer] = TtlCache(maxsize=10_000, ttl=300.0)

    async def ask(key: str) -> Answer:
        return await cache.get_or_load(key, lambda: breaker.call(lambda: retry.call(do_one_call)))

- :class:`RetryPolicy` retries ``TransientUpstreamError`` only (exponential backoff with jitter,
  tenacity underneath); a ``PermanentUpstreamError`` or any other exception goes straight out.
- :class:`CircuitBreaker` counts *calls* (a call that used up its retries is one failure): after
  ``failure_threshold`` transient failures in a row it opens and fails fast with
  ``TransientUpstreamError`` for ``reset_timeout`` seconds, then lets one trial call through
  (half-open): success closes it, failure opens it again. A permanent error is an answer, so it
  counts as the system being up.
- :class:`TtlCache` keeps answers (``None`` too) for ``ttl`` seconds; errors are never cached.

Clocks and sleeps are parameters so tests advance time instead of waiting.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from enum import StrEnum
from typing import Generic, TypeVar

import structlog
from cachetools import TTLCache
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from gateway import metrics
from gateway.errors import PermanentUpstreamError, TransientUpstreamError

__all__ = ["BreakerState", "CircuitBreaker", "RetryPolicy", "TtlCache", "breakers"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RetryPolicy:
    """Retry a call on ``TransientUpstreamError`` only, with exponential backoff and jitter.

    ``attempts`` counts every try (1 = no retry). The n-th wait is ``backoff * 2**(n-1)`` capped at
    ``max_backoff``, plus up to ``backoff`` of random jitter (so callers do not retry in step).
    After the last attempt the last ``TransientUpstreamError`` itself is raised (not a tenacity
    ``RetryError``).
    """

    def __init__(
        self,
        *,
        attempts: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        name: str = "upstream",
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.name = name
        self._sleep = sleep

    def _retrying(self) -> AsyncRetrying:
        # A fresh AsyncRetrying per call: tenacity keeps per-call state on the object, and
        # concurrent coroutines on one loop would otherwise share it.
        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=self.max_backoff)
            + wait_random(0, self.backoff),
            retry=retry_if_exception_type(TransientUpstreamError),
            reraise=True,
            sleep=self._sleep,
            before_sleep=self._log_retry,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.info(
            "upstream.retry",
            upstream=self.name,
            attempt=state.attempt_number,
            wait=round(state.upcoming_sleep, 3),
            error=str(error),
        )

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()``, trying again on ``TransientUpstreamError`` up to ``attempts`` times."""

        async def attempt() -> T:  # tenacity awaits only coroutine functions, not any callable
            return await fn()

        result: T = await self._retrying()(attempt)
        return result


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Fail fast while an outside system is down (see the module docstring for the states)."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False
        _BREAKERS.add(self)  # for readiness (gateway/api/health.py)
        metrics.breaker_changed(name, False)

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_timeout:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` unless the circuit is open; count its transient failures."""
        state = self.state
        if state is BreakerState.OPEN or (state is BreakerState.HALF_OPEN and self._trial_running):
            raise TransientUpstreamError(f"{self.name}: circuit open, not calling (fails fast)")
        trial = state is BreakerState.HALF_OPEN
        if trial:
            self._trial_running = True
        try:
            result = await fn()
        except TransientUpstreamError:
            self._record_failure()
            raise
        except PermanentUpstreamError:
            self._record_success()  # the system answered: it is up, the question was wrong
            raise
        finally:
            # Anything else (a bug, a cancellation) says nothing about the system; it neither
            # counts nor closes, and never leaves a half-open trial stuck.
            if trial:
                self._trial_running = False
        self._record_success()
        return result

    def _record_failure(self) -> None:
        self._failures += 1
        reopen = self._opened_at is not None  # a failed half-open trial
        if reopen or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            metrics.breaker_changed(self.name, True)
            log.warning(
                "upstream.circuit_open",
                upstream=self.name,
                failures=self._failures,
                reset_after=self.reset_timeout,
            )

    def _record_success(self) -> None:
        if self._opened_at is not None:
            log.info("upstream.circuit_closed", upstream=self.name)
            metrics.breaker_changed(self.name, False)
        self._failures = 0
        self._opened_at = None


_BREAKERS: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


def breakers() -> list[CircuitBreaker]:
    """The circuit breakers of this process's adapters."""
    return list(_BREAKERS)


class _Missing:
    pass


_MISSING = _Missing()


class TtlCache(Generic[K, V]):
    """Answers kept for ``ttl`` seconds, at most ``maxsize`` of them (least recently used go first).

    ``maxsize=0`` or ``ttl<=0`` turns caching off. A loader that raises caches nothing.
    """

    def __init__(self, *, maxsize: int = 10_000, ttl: float = 300.0, clock: Clock = time.monotonic) -> None:
        self.enabled = maxsize > 0 and ttl > 0
        self._data: TTLCache[K, V] = TTLCache(maxsize=max(maxsize, 1), ttl=max(ttl, 0.001), timer=clock)

    def get(self, key: K) -> V | None:
        """The cached answer, or ``None`` when there is none (use :meth:`get_or_load` to tell apart)."""
        value = self._data.get(key, _MISSING)
        return None if isinstance(value, _Missing) else value

    def __contains__(self, key: K) -> bool:
        return self.enabled and key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        if self.enabled:
            value = self._data.get(key, _MISSING)
            if not isinstance(value, _Missing):
                return value
        loaded = await load()
        if self.enabled:
            self._data[key] = loaded
        return loaded
