"""The in-process enforcement client: the same Checker the HTTP API uses, for services that prefer a library call
to an HTTP round trip. No API key: the calling process is trusted (it holds the Redis credentials anyway).

    client = EnforcementClient.connect("redis://127.0.0.1:6379/0", prefix="ss")
    answer = await client.check({"team": "payments", "provider": "openai", "model": "gpt-4o",
                                 "estimated_input_tokens": 1200, "estimated_output_tokens": 300, "reserve": True})
    ...make the call, publish the usage event with reservation_id=answer["reservation_id"]...
    or, if the call is not made: await client.release(answer["reservation_id"])
"""

from __future__ import annotations

from typing import Any, Callable

from enforcement.checker import Checker, CheckRequest, CheckResponse
from sinks.redis.client import make_redis
from spendstream.cli.clock import SystemClock, WallClock
from sinks.redis.rate_limits import RateLimits
from sinks.redis.reservations import Reservations
from sinks.redis.spend_store import RedisSpendStore
from sinks.redis.throttle import Throttle
from spendstream.pricing import PriceBook, default_price_book

__all__ = ["EnforcementClient"]


class EnforcementClient:
    """check / release with the HTTP API's semantics (same Checker, same Lua). Methods never raise for an
    unreachable Redis on check (fail modes answer); release raises StoreUnavailable."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker

    @classmethod
    def connect(cls, url: str, prefix: str = "ss", *, prices: PriceBook | None = None, timeout_s: float = 0.05,
                clock_ms: Callable[[], int] | None = None, cache_ttl_s: float = 1.0) -> "EnforcementClient":
        r = make_redis(url, timeout_s)
        store = RedisSpendStore(r, prefix)
        clock = SystemClock() if clock_ms is None else WallClock(clock_ms)
        return cls(Checker(store, Reservations(r, prefix), Throttle(r, prefix), prices or default_price_book(), clock,
                           cache_ttl_s=cache_ttl_s, rates=RateLimits(r, prefix)))

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
        await self.checker.store.aclose()
