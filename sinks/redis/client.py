"""The one way to build the async Redis client that the worker, the API and the CLI share: a single Redis for
`redis://…`, a Redis Cluster (redis-py's asyncio `RedisCluster`) for `redis+cluster://host:port` (any node
bootstraps; the client learns the slot map) or `redis+cluster://h1:p1,h2:p2,...` (several startup nodes: a
process that starts while one node is down, after a failover, still finds the cluster). Every Lua call touches one hash slot, so the same code runs on both."""

from __future__ import annotations

from typing import Union

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = ["RedisClient", "make_redis", "CLUSTER_SCHEME"]

RedisClient = Union[aioredis.Redis, RedisCluster]
CLUSTER_SCHEME = "redis+cluster://"


def make_redis(url: str, timeout_s: float = 0.05, max_connections: int = 64) -> RedisClient:
    """An async Redis client with tight socket / connect timeouts and one immediate retry (a pooled connection may
    be stale after a Redis restart), so an unreachable Redis costs ~2 x timeout_s, not seconds of redis-py's
    default exponential back-off. The pool is bounded and callers queue for a connection (up to 0.25 s) instead
    of failing with "Too many connections" under a burst. The API passes its tight timeout (default 50 ms); the
    worker and the CLI pass seconds."""
    if url.startswith(CLUSTER_SCHEME):
        rest = url.removeprefix(CLUSTER_SCHEME)
        hosts, sep, path = rest.partition("/")
        if "," in hosts:  # several startup nodes: the client still bootstraps when one of them is down (a failover)
            nodes = [ClusterNode(h.rpartition(":")[0] or "127.0.0.1", int(h.rpartition(":")[2]))
                     for h in hosts.split(",") if h]
            return RedisCluster(startup_nodes=nodes, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                max_connections=max_connections)
        return RedisCluster.from_url(
            "redis://" + rest, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, max_connections=max_connections)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=0.25, socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 1))
    return aioredis.Redis(connection_pool=pool)
