import asyncio
import itertools
import random

import pytest

from mirror_cli.config import RetryPolicy
from mirror_cli.pacing import (
    ProviderFailure,
    RateLimiter,
    RetryStats,
    backoff_delay,
    call_with_retries,
    parse_duration,
    parse_retry_after,
    parse_try_again,
)


def test_parsers():
    assert parse_try_again("Please try again in 7.2s.") == 7.2
    assert parse_try_again("try again after 51.84 seconds") == 51.84
    assert parse_try_again("try again in 250ms") == 0.25
    assert parse_try_again("no hint") is None
    assert parse_duration("6m0s") == 360 and parse_duration("120ms") == 0.12 and parse_duration("1h2m3s") == 3723
    assert parse_retry_after({"Retry-After-Ms": "1500"}) == 1.5 and parse_retry_after({"retry-after": "3"}) == 3


class VirtualTime:
    """The limiter's clock and sleep, virtual: a sleep advances the clock at once, so pacing is
    asserted exactly, whatever the machine's load."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # still a suspension point: concurrent acquirers interleave


def test_limiter_never_exceeds_the_rate_in_any_window():
    t = VirtualTime()

    async def go():
        limiter = RateLimiter(images_per_minute=10, window_s=0.5, clock=t.clock, sleep=t.sleep)
        await asyncio.gather(*(limiter.acquire() for _ in range(25)))
        return limiter.starts

    starts = sorted(asyncio.run(go()))
    margin = RateLimiter(window_s=0.5).margin_s
    for i, start in enumerate(starts):
        # not even a window widened by the arrival-jitter margin sees N+1 starts
        in_window = [s for s in starts[i:] if s < start + 0.5 + margin - 1e-9]
        assert len(in_window) <= 10
    # never closer than the rate's spacing (1% slack); no slower than that spacing plus the
    # window log's margin once per full window (two of them in 25 starts at 10 per window)
    spacing = 0.5 / 10 * RateLimiter.SAFETY
    assert starts[0] == 1000.0 and min(b - a for a, b in itertools.pairwise(starts)) >= spacing - 1e-9
    assert starts[-1] - starts[0] <= 24 * spacing + 2 * margin + 1e-9


def test_sliding_window_holds_at_a_low_rate_with_arrival_jitter():
    """At 5/min, evenly spaced starts alone let a 60 s window see 6 arrivals when the first
    request reaches the server late; the window log keeps a margin for that."""
    now = [0.0]

    async def virtual_sleep(seconds: float) -> None:  # the limiter's own clock, advanced
        now[0] += seconds

    async def go():
        limiter = RateLimiter(images_per_minute=5, window_s=60, clock=lambda: now[0], sleep=virtual_sleep)
        for _ in range(12):
            await limiter.acquire()
        return limiter

    limiter = asyncio.run(go())
    arrivals = [t + (1.0 if i == 0 else 0.0) for i, t in enumerate(limiter.starts)]  # the first 1 s late
    for t in arrivals:
        assert sum(1 for a in arrivals if t <= a < t + 60) <= 5


def test_limiter_learns_a_lower_limit_from_429s_and_headers():
    limiter = RateLimiter(images_per_minute=120, window_s=60)
    limiter.observe_headers({"x-ratelimit-limit-requests": "60"})
    assert limiter.images_per_minute == 60
    limiter.rate_limited()
    assert limiter.images_per_minute == pytest.approx(45)
    limiter.observe_headers({"x-ratelimit-limit-requests": "500"})  # never raised by a header
    assert limiter.images_per_minute == pytest.approx(45)


def test_tool_faster_than_the_server_learns_its_limit(make_core, openai_env, tmp_path):
    """The tool is configured at 24 per window, the server allows 12 (window scaled to 1.2 s):
    after a few 429s (or the first limit header) the rate drops and every job completes."""
    from conftest import make_config_dir

    openai_env.images_per_minute, openai_env.window_s = 12, 1.2
    cfg = make_config_dir(
        tmp_path,
        {
            "rate_limits": {"gpt-image-2": {"images_per_minute": 24, "window_s": 1.2}},
            "system_daily": 1000,
            "per_user_daily": 100,
        },
    )
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=cfg, concurrency=8)
    from mirror_cli.models import Persona

    core.import_users([Persona(id=f"r{i:02d}", name="R") for i in range(30)])
    report = core.generate(None, "newReflection")
    assert report.failed == 0 and report.count("generated") == 36
    assert openai_env.rate_limited <= 6


def test_token_budget_paces_too():
    t = VirtualTime()

    async def go():
        limiter = RateLimiter(
            images_per_minute=1000, tokens_per_minute=10_000, window_s=1.0, clock=t.clock, sleep=t.sleep
        )
        for _ in range(4):
            await limiter.acquire(tokens=5_000)
        return limiter.starts

    starts = asyncio.run(go())
    # 5,000 tokens of a 10,000-per-second budget: half a second apart (plus the 1% slack)
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([0.5 * RateLimiter.SAFETY] * 3)


def test_headers_pause_when_budget_exhausted():
    t = VirtualTime()

    async def go():
        limiter = RateLimiter(images_per_minute=1000, window_s=60, clock=t.clock, sleep=t.sleep)
        limiter.observe_headers({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"})
        await limiter.acquire()
        return limiter.starts

    assert asyncio.run(go()) == [1002.0] and t.slept == [2.0]  # the next start waits out the reset


def test_backoff_is_capped_and_jittered():
    policy = RetryPolicy(base_delay_s=1, max_delay_s=8)
    rng = random.Random(1)
    delays = [backoff_delay(policy, n, rng) for n in range(10)]
    assert all(0.5 <= d <= 8 for d in delays) and max(delays) > 4


def test_only_transient_failures_are_retried():
    policy = RetryPolicy(max_attempts=5, base_delay_s=0, max_delay_s=0)
    calls = []

    async def flaky(kind):
        calls.append(kind)
        raise ProviderFailure(kind, "x")

    for kind, expected in [("transient", 5), ("stop", 1), ("moderation", 1), ("bad_request", 1)]:
        calls.clear()
        with pytest.raises(ProviderFailure):
            asyncio.run(call_with_retries(lambda k=kind: flaky(k), policy, stats=RetryStats()))
        assert len(calls) == expected, kind


def test_too_long_retry_after_gives_up():
    policy = RetryPolicy(max_attempts=5, base_delay_s=0, max_delay_s=0, max_retry_after_s=30)
    calls = []

    async def slow():
        calls.append(1)
        raise ProviderFailure("transient", "x", status=429, retry_after=3600)

    with pytest.raises(ProviderFailure):
        asyncio.run(call_with_retries(slow, policy))
    assert len(calls) == 1


def test_pipeline_respects_server_rate_limit(make_core, openai_env, tmp_path):
    """Against a server that enforces 12 images per 1.2 s window: no 429s when the limit is known."""
    from conftest import make_config_dir

    openai_env.images_per_minute, openai_env.window_s = 12, 1.2
    cfg = make_config_dir(tmp_path, {"rate_limits": {"gpt-image-2": {"images_per_minute": 12, "window_s": 1.2}}})
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=cfg, concurrency=8)
    report = core.generate(None, "newReflection")
    assert report.count("generated") == 6 and openai_env.rate_limited == 0
