"""UsageConsumer._handle: the partitions of one consumed batch are processed concurrently (one partition's CPU work
runs while another's Redis calls are in flight), a partition whose Redis calls fail does not lose the others'
results, and the failure still reaches the retry loop."""

from __future__ import annotations

import asyncio

import pytest

from spendstream.errors import StoreUnavailable
from stream_app.consumer import UsageConsumer
from stream_app.metrics import Metrics
from stream_app.processor import BatchResult

pytestmark = pytest.mark.asyncio


class Msg:
    def __init__(self, partition: int, offset: int) -> None:
        self._p, self._o = partition, offset

    def error(self):
        return None

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"


class Processor:
    """Each batch: some CPU work, then one awaited store call (a Redis round trip) that may fail."""

    def __init__(self, failing: set[int] = frozenset()) -> None:
        self.log: list[tuple[str, int]] = []
        self.failing = failing
        self.in_flight = 0
        self.most_in_flight = 0

    async def process(self, topic: str, partition: int, records) -> BatchResult:
        self.log.append(("start", partition))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)  # the store's round trip
        self.in_flight -= 1
        self.log.append(("booked", partition))
        if partition in self.failing:
            raise StoreUnavailable("redis went away")
        return BatchResult(events=len(records), booked=len(records),
                           totals={("team", f"t{partition}"): {"m": 100 * (partition + 1)}})


class Dlq:
    def send(self, letters) -> None:
        raise AssertionError("no dead letters expected")


def consumer(processor: Processor, evaluated: list) -> UsageConsumer:
    async def on_batch(results):
        evaluated.append(results)

    return UsageConsumer(None, "usage", processor, None, Dlq(), Metrics(), on_batch=on_batch,  # type: ignore[arg-type]
                         evaluate_interval_s=0.0)


def batch() -> list[Msg]:
    return [Msg(p, o) for o in range(10, 13) for p in range(3)]  # interleaved, as a consume returns them


async def test_partitions_of_a_batch_are_processed_while_each_others_store_calls_are_in_flight():
    proc, evaluated = Processor(), []
    uc = consumer(proc, evaluated)
    await uc._handle(batch())
    assert proc.most_in_flight == 3  # every partition's round trip was in flight at once
    assert proc.log[:3] == [("start", 0), ("start", 1), ("start", 2)]
    assert uc._consumed == {0: 12, 1: 12, 2: 12}
    (results,) = evaluated
    assert [r.events for r in results] == [3, 3, 3]
    assert uc.metrics.booked._value.get() == 9


async def test_a_partition_whose_store_fails_raises_after_the_others_are_recorded():
    proc, evaluated = Processor(failing={1}), []
    uc = consumer(proc, evaluated)
    with pytest.raises(StoreUnavailable):
        await uc._handle(batch())
    assert sorted(p for what, p in proc.log if what == "booked") == [0, 1, 2]  # the others were not abandoned
    assert uc._consumed == {0: 12, 2: 12}  # the failed partition's offsets are not committable
    assert uc.metrics.booked._value.get() == 6
    assert evaluated == []
    assert len(uc._unevaluated) == 2  # the booked partitions' totals wait for the retry's evaluation
