"""Retry policy of the vendor hooks: what is retried, how long to wait, when to give up.

Retried: connection errors, timeouts, 5xx, 429, and (a bounded number of
times) answers that are not the vendor's JSON because a proxy got in the way
(an HTML page with status 200, truncated JSON). Never retried: any other 4xx,
refused credentials, bodies over the size cap, ambiguous writes.

The wait is exponential with jitter, but never shorter than what the vendor
asked for (``Retry-After``, Feishu ``x-ogw-ratelimit-reset``, HubSpot's
secondly window). Attempts and the total time spent sleeping are bounded; when
the next wait would exceed the budget the last error is raised at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from bridge.hooks.errors import BadResponseError, RateLimitedError, VendorError


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    max_total_wait: float = 120.0  # seconds of sleeping across all retries of one call
    backoff_base: float = 0.5  # first wait (before jitter)
    backoff_max: float = 30.0  # longest single computed wait (a vendor's Retry-After may be longer)
    bad_response_attempts: int = 3  # attempts when the answer is an HTML page / truncated JSON

    @classmethod
    def from_extra(cls, extra: dict[str, Any], base: RetryPolicy | None = None) -> RetryPolicy:
        """Overrides from the Connection's extra (``max_attempts``, ``max_retry_wait``, ``backoff_base``,
        ``backoff_max``); bad values fall back to the defaults."""
        policy = base or cls()
        changes: dict[str, Any] = {}
        for key, attr, kind in (
            ("max_attempts", "max_attempts", int),
            ("max_retry_wait", "max_total_wait", float),
            ("backoff_base", "backoff_base", float),
            ("backoff_max", "backoff_max", float),
        ):
            if key in extra:
                try:
                    value = kind(extra[key])
                except (TypeError, ValueError):
                    continue
                if value >= 0:
                    changes[attr] = value
        if changes.get("max_attempts") == 0:
            changes["max_attempts"] = 1
        return replace(policy, **changes) if changes else policy


def is_retryable(exc: BaseException) -> bool:
    """The retry predicate: only errors another attempt may cure."""
    return isinstance(exc, VendorError) and exc.retryable


def compute_wait(
    exc: BaseException | None, attempt: int, policy: RetryPolicy, rng: random.Random | None = None
) -> float:
    """Seconds to sleep after failed attempt number ``attempt`` (1-based)."""
    rng = rng or _RNG
    backoff = min(policy.backoff_max, policy.backoff_base * (2 ** max(0, attempt - 1)))
    jittered = backoff * rng.uniform(0.5, 1.0)
    if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
        # The vendor said when: wait that long plus a little spread, so parallel tasks do not stampede.
        return max(exc.retry_after * rng.uniform(1.0, 1.1), jittered if attempt > 2 else 0.0)
    if isinstance(exc, RateLimitedError):
        return max(1.0, jittered)
    return jittered


def attempts_for(exc: BaseException, policy: RetryPolicy) -> int:
    """Proxy pages get fewer attempts than real transient faults."""
    if isinstance(exc, BadResponseError):
        return min(policy.max_attempts, policy.bad_response_attempts)
    return policy.max_attempts


_RNG = random.Random()
