"""The asyncio-friendly form of the publisher: the same non-blocking `record`, awaitable flush and close.

    async with AsyncPublisher(Publisher(...)) as pub:
        pub.record(provider="openai", model="gpt-4o", input_tokens=..., team=...)

`record` is a plain (non-async) call on purpose: it never does I/O, so awaiting it would only cost a loop turn.
Flushing waits on librdkafka in a worker thread so the event loop keeps serving requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from integrations.publisher import Publisher

__all__ = ["AsyncPublisher"]


class AsyncPublisher:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.record = publisher.record
        self.record_event = publisher.record_event
        self.stats = publisher.stats

    async def flush(self, timeout: float = 10.0) -> int:
        """Messages still queued after `timeout` seconds (0 when everything was delivered)."""
        return await asyncio.to_thread(self.publisher.flush, timeout)

    async def aclose(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self.publisher.close, timeout)

    async def __aenter__(self) -> "AsyncPublisher":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
