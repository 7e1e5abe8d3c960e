"""The one way to build the async Redis client that the worker, the API and the CLI share."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = ["RedisClient", "make_redis"]

RedisClient = aioredis.Redis


def make_redis(url: str, timeout_s: float = 0.05, max_connections: int = 64) -> RedisClient:
    """An async Redis client with tight socket / connect timeouts and one immediate retry (a pooled connection may
    be stale after a Redis restart), so an unreachable Redis costs ~2 x timeout_s, not seconds of redis-py's
    default exponential back-off. The pool is bounded and callers queue for a connection (up to 0.25 s) instead
    of failing with "Too many connections" under a burst. The API passes its tight timeout (default 50 ms); the
    worker and the CLI pass seconds."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=0.25, socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 1))
    return aioredis.Redis(connection_pool=pool)
