"""The shared resilience pieces (gateway/resilience.py) with an injected clock and sleep: no waiting."""

from __future__ import annotations

import pytest

from gateway.errors import PermanentUpstreamError, TransientUpstreamError
from gateway.resilience import BreakerState, CircuitBreaker, RetryPolicy, TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Calls:
    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.count = 0

    async def __call__(self) -> object:
        self.count += 1
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def test_retry_policy_retries_transient_then_answers_with_growing_waits() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    calls = Calls(TransientUpstreamError("a"), TransientUpstreamError("b"), "answer")
    policy = RetryPolicy(attempts=3, backoff=0.1, max_backoff=10, sleep=sleep)
    assert await policy.call(calls) == "answer"
    assert calls.count == 3
    assert len(waits) == 2
    assert 0.1 <= waits[0] <= 0.2 and 0.2 <= waits[1] <= 0.3  # exponential plus jitter up to backoff


async def test_retry_policy_gives_up_with_the_last_transient_error() -> None:
    async def sleep(seconds: float) -> None:
        pass

    calls = Calls(*(TransientUpstreamError(str(i)) for i in range(5)))
    with pytest.raises(TransientUpstreamError, match="2"):
        await RetryPolicy(attempts=3, sleep=sleep).call(calls)
    assert calls.count == 3


@pytest.mark.parametrize("error", [PermanentUpstreamError("no"), ValueError("bug")])
async def test_retry_policy_never_retries_anything_but_transient(error: Exception) -> None:
    calls = Calls(error)
    with pytest.raises(type(error)):
        await RetryPolicy(attempts=5).call(calls)
    assert calls.count == 1


async def test_breaker_opens_after_threshold_fails_fast_then_half_opens_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker("t", failure_threshold=2, reset_timeout=30, clock=clock)
    calls = Calls(TransientUpstreamError("1"), TransientUpstreamError("2"))
    for _ in range(2):
        with pytest.raises(TransientUpstreamError):
            await breaker.call(calls)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(TransientUpstreamError, match="circuit open"):
        await breaker.call(calls)
    assert calls.count == 2  # failed fast, no call
    clock.now += 30
    assert breaker.state is BreakerState.HALF_OPEN
    assert await breaker.call(calls) == "ok"
    assert breaker.state is BreakerState.CLOSED


async def test_breaker_failed_trial_opens_again_for_a_whole_reset_time() -> None:
    clock = Clock()
    breaker = CircuitBreaker("t", failure_threshold=1, reset_timeout=10, clock=clock)
    calls = Calls(TransientUpstreamError("1"), TransientUpstreamError("trial"))
    with pytest.raises(TransientUpstreamError):
        await breaker.call(calls)
    clock.now += 10
    with pytest.raises(TransientUpstreamError, match="trial"):
        await breaker.call(calls)
    clock.now += 9
    assert breaker.state is BreakerState.OPEN


async def test_breaker_counts_a_permanent_error_as_the_system_being_up() -> None:
    breaker = CircuitBreaker("t", failure_threshold=2)
    calls = Calls(TransientUpstreamError("1"), PermanentUpstreamError("p"), TransientUpstreamError("2"))
    for _ in range(3):
        with pytest.raises((TransientUpstreamError, PermanentUpstreamError)):
            await breaker.call(calls)
    assert breaker.state is BreakerState.CLOSED


async def test_ttl_cache_keeps_answers_including_none_until_ttl_and_never_errors() -> None:
    clock = Clock()
    cache: TtlCache[str, str | None] = TtlCache(maxsize=10, ttl=60, clock=clock)
    nothing = Calls(None)
    assert await cache.get_or_load("a", nothing) is None
    assert await cache.get_or_load("a", nothing) is None
    assert nothing.count == 1
    clock.now += 60
    assert await cache.get_or_load("a", nothing) == "ok"
    assert nothing.count == 2
    failing = Calls(TransientUpstreamError("x"))
    with pytest.raises(TransientUpstreamError):
        await cache.get_or_load("b", failing)
    assert "b" not in cache
    assert await cache.get_or_load("b", failing) == "ok"


async def test_ttl_cache_of_size_zero_is_off() -> None:
    cache: TtlCache[str, object] = TtlCache(maxsize=0, ttl=60)
    calls = Calls()
    await cache.get_or_load("a", calls)
    await cache.get_or_load("a", calls)
    assert calls.count == 2


async def test_retry_policy_awaits_a_plain_lambda_returning_a_coroutine() -> None:
    calls = Calls(TransientUpstreamError("a"), "answer")

    async def sleep(seconds: float) -> None:
        pass

    assert await RetryPolicy(attempts=2, sleep=sleep).call(lambda: calls()) == "answer"
    assert calls.count == 2
