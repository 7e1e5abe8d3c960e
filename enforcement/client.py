"""The in-process enforcement client: the same Checker the HTTP API uses, for services that prefer a library call
to an HTTP round trip. No API key: the calling process is trusted (it holds the Redis credentials anyway).

    client = EnforcementClient.connect("redis://127.0.0.1:6379/0", prefix="ss")
    answer = await client.check({"team": "payments", "provider": "openai", "model": "gpt-4o",
                                 "estimated_input_tokens": 1200, "estimated_output_tokens": 300, "reserve": True})
    ...make the call, publish the usage event with reservation_id=answer["reservation_id"]...
    or, if the call is not made: await client.release(answer["reservation_id"])
"""

from __future__ import annotations

import time
from typing import Any, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from enforcement.checker import Checker, CheckRequest, CheckResponse
from sinks.redis.spend_store import RedisSpendStore
from spendstream.pricing import PriceBook, default_price_book

__all__ = ["EnforcementClient", "make_redis"]


def make_redis(url: str, timeout_s: float = 0.05, max_connections: int = 64) -> aioredis.Redis:
    """A Redis client for the enforcement path: tight socket / connect timeouts and one immediate retry (a pooled
    connection may be stale after a Redis restart), so an unreachable Redis costs ~2 x timeout_s, not seconds of
    redis-py's default exponential back-off. The pool is bounded and callers queue for a connection (up to
    0.25 s) instead of failing with "Too many connections" under a burst."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=0.25, socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 1))
    return aioredis.Redis(connection_pool=pool)


class EnforcementClient:
    """check / release with the HTTP API's semantics (same Checker, same Lua). Methods never raise for an
    unreachable Redis on check (fail modes answer); release raises StoreUnavailable."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker

    @classmethod
    def connect(cls, url: str, prefix: str = "ss", *, prices: PriceBook | None = None, timeout_s: float = 0.05,
                clock_ms: Callable[[], int] | None = None, cache_ttl_s: float = 1.0) -> "EnforcementClient":
        store = RedisSpendStore(make_redis(url, timeout_s), prefix)
        return cls(Checker(store, prices or default_price_book(), clock_ms or (lambda: time.time_ns() // 1_000_000),
                           cache_ttl_s=cache_ttl_s))

    async def check_request(self, req: CheckRequest) -> CheckResponse:
        return await self.checker.check(req)

    async def check(self, request: dict[str, Any]) -> dict[str, Any]:
        """The body of POST /v1/check in, its JSON answer out. Raises pydantic.ValidationError for a bad body."""
        return (await self.checker.check(CheckRequest.model_validate(request))).model_dump()

    async def release(self, reservation_id: str) -> bool:
        """Cancel a reservation whose call was not made. Idempotent."""
        return await self.checker.reservations.release(reservation_id)

    async def settle(self, reservation_ids: list[str]) -> int:
        return await self.checker.reservations.settle(reservation_ids)

    async def aclose(self) -> None:
        await self.checker.store.r.aclose()
