"""The shared budget of requests to Plane, against a real Redis."""

import time

import pytest
import redis
import requests

from shared.errors import PlaneRateLimitedError
from shared.rate_limits import RateBudget


def plane_response(status: int, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    return response


def test_budget_allows_up_to_limit(redis_conn):
    budget = RateBudget(redis_conn, kind="api", per_minute=3)

    for _ in range(3):
        budget.take("token-a")

    with pytest.raises(PlaneRateLimitedError) as raised:
        budget.take("token-a")
    assert 1 <= raised.value.retry_after <= 60


def test_budget_is_per_subject(redis_conn):
    budget = RateBudget(redis_conn, kind="api", per_minute=1)

    budget.take("token-a")
    budget.take("token-b")

    with pytest.raises(PlaneRateLimitedError):
        budget.take("token-a")


def test_budget_is_shared_across_connections(redis_url, redis_conn):
    first = RateBudget(redis_conn, kind="token", per_minute=2)
    second = RateBudget(redis.Redis.from_url(redis_url), kind="token", per_minute=2)

    first.take("client")
    second.take("client")

    with pytest.raises(PlaneRateLimitedError):
        first.take("client")


def test_plane_saying_spent_blocks_until_reset(redis_conn):
    budget = RateBudget(redis_conn, kind="api", per_minute=5000)
    reset_at = time.time() + 30

    budget.learn_from(
        "token-a",
        plane_response(
            200,
            **{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(reset_at))},
        ),
    )

    with pytest.raises(PlaneRateLimitedError) as raised:
        budget.take("token-a")
    assert 20 <= raised.value.retry_after <= 31


def test_429_with_retry_after_blocks(redis_conn):
    budget = RateBudget(redis_conn, kind="token", per_minute=300)

    budget.learn_from("client", plane_response(429, **{"Retry-After": "7"}))

    with pytest.raises(PlaneRateLimitedError) as raised:
        budget.take("client")
    assert raised.value.retry_after <= 8


def test_remaining_budget_does_not_block(redis_conn):
    budget = RateBudget(redis_conn, kind="api", per_minute=5000)

    budget.learn_from("token-a", plane_response(200, **{"X-RateLimit-Remaining": "12"}))

    budget.take("token-a")
