"""The check-outcome queue while ClickHouse does not answer (no server: the client factory raises, as the driver
does when it cannot connect): a failed insert puts its rows back in front of the rows recorded meanwhile, at the
cap the oldest are dropped and counted, and the background task retries less and less often."""

from __future__ import annotations

import asyncio

import pytest

from sinks.clickhouse.check_outcomes import ClickHouseCheckOutcomes

pytestmark = pytest.mark.asyncio


class Away(Exception):
    pass


async def test_a_failed_insert_keeps_its_rows_before_the_newer_ones_dropping_the_oldest_at_the_cap():
    dropped: list[int] = []
    log: ClickHouseCheckOutcomes

    def connect():
        for i in (10, 11):  # rows recorded while the insert is under way (deque.append is atomic)
            log.record([i])
        raise Away("connection refused")

    log = ClickHouseCheckOutcomes(connect, "db", max_rows=3, on_drop=dropped.append)
    for i in (1, 2):
        log.record([i])
    assert await log.flush() == 0
    assert list(log._rows) == [[2], [10], [11]] and dropped == [1]  # [1], the oldest, fell out at the cap
    assert await log.flush() == 0  # again: [2], [10], [11] back in front of the new [10], [11]; two fall out
    assert list(log._rows) == [[11], [10], [11]] and dropped == [1, 2]


async def test_the_background_insert_backs_off_while_clickhouse_is_away():
    attempts: list[int] = []

    def connect():
        attempts.append(1)
        raise Away("connection refused")

    log = ClickHouseCheckOutcomes(connect, "db", flush_every_s=0.05)
    log.record([1])
    log.start()
    await asyncio.sleep(1.0)
    log._task.cancel()
    # every 0.05 s: ~20 attempts in 1 s; doubling waits (0.05, 0.1, 0.2, 0.4, ...): 4
    assert 2 <= len(attempts) <= 6, attempts
    assert log.pending() == 1  # nothing lost
