"""The one way spendstream runs Redis commands and Lua scripts: by SHA, pipelined, cluster-safe per call, and the
one place a RedisError (or a raw socket error) becomes StoreUnavailable.

Every script is idempotent (DEDUPE per record, JOURNAL per offset range, APPLY_SCOPE per watermark, RESERVE /
RELEASE per reservation id), so re-sending a pipeline after a NOSCRIPT reply cannot double-apply anything.

redis-py's `Script` inside a pipeline sends SCRIPT EXISTS before every execute (an extra round trip on the hot
path); here EVALSHA goes out directly and a NOSCRIPT reply (a restarted or failed-over Redis) loads the scripts
once and retries.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from redis.exceptions import NoScriptError, RedisError

from sinks.redis.client import RedisClient
from spendstream.errors import StoreUnavailable

__all__ = ["Call", "RedisClient", "ScriptRunner"]

# (script source, keys, args) runs a script; (None, (), command args) runs a plain command.
Call = tuple[str | None, Sequence[str], Sequence[Any]]


class ScriptRunner:
    """Runs a batch of calls (one pipeline, no MULTI). Raises StoreUnavailable when Redis does not answer."""

    def __init__(self, client: RedisClient) -> None:
        self.r = client
        self._sha: dict[str, str] = {}

    def _sha_of(self, src: str) -> str:
        sha = self._sha.get(src)
        if sha is None:
            sha = self._sha[src] = hashlib.sha1(src.encode()).hexdigest()
        return sha

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        try:
            try:
                return await self._send(calls)
            except NoScriptError:
                for src in {c[0] for c in calls if c[0] is not None}:
                    await self.r.script_load(src)
                return await self._send(calls)
        except RedisError as exc:
            raise StoreUnavailable(f"spend store unavailable: {type(exc).__name__}: {exc}") from exc
        except OSError as exc:  # a socket error redis-py did not wrap
            raise StoreUnavailable(f"spend store unavailable: {exc}") from exc

    async def _send(self, calls: Sequence[Call]) -> list[Any]:
        if len(calls) == 1:
            src, keys, args = calls[0]
            if src is None:
                return [await self.r.execute_command(*args)]
            return [await self.r.execute_command("EVALSHA", self._sha_of(src), len(keys), *keys, *args)]
        pipe = self.r.pipeline(transaction=False)
        for src, keys, args in calls:
            if src is None:
                pipe.execute_command(*args)
            else:
                # not pipe.evalsha: redis-py refuses EVALSHA in a cluster pipeline (as of 8.1); the raw command
                # goes through on both clients, routed by its first key
                pipe.execute_command("EVALSHA", self._sha_of(src), len(keys), *keys, *args)
        return await pipe.execute()
